"""multiprocessing.pool for wmp guests: `Pool`, with CPython's API, errors
and results, over worker processes each joined to the pool by a pipe.

The pool hands each idle worker one task at a time (a chunk of items, as
CPython's chunksize makes them) and knows which task each worker runs, so
a worker that dies fails its task with a ProcessError and is replaced:
the pool never hangs on it, where CPython's would. There are no pool
threads (a guest has none): tasks are handed out and results gathered
whenever the program is inside a Pool call (get, wait, ready, iteration,
join)."""

import collections
import itertools
import os
import time
import traceback

from .connection import Pipe, wait
from .context import ProcessError, TimeoutError

__all__ = ["Pool"]

INIT, RUN, CLOSE, TERMINATE = "INIT", "RUN", "CLOSE", "TERMINATE"

job_counter = itertools.count()


def mapstar(args):
    return list(map(*args))


def starmapstar(args):
    return list(itertools.starmap(args[0], args[1]))


class RemoteTraceback(Exception):
    def __init__(self, tb):
        self.tb = tb

    def __str__(self):
        return self.tb


class ExceptionWithTraceback:
    def __init__(self, exc, tb):
        tb = "".join(traceback.format_exception(type(exc), exc, tb))
        self.exc = exc
        self.tb = '\n"""\n%s"""' % tb

    def __reduce__(self):
        return rebuild_exc, (self.exc, self.tb)


def rebuild_exc(exc, tb):
    exc.__cause__ = RemoteTraceback(tb)
    return exc


class MaybeEncodingError(Exception):
    """Wraps possible unpickleable errors, so they can be
    safely sent through the socket."""

    def __init__(self, exc, value):
        self.exc = repr(exc)
        self.value = repr(value)
        super().__init__(self.exc, self.value)

    def __str__(self):
        return "Error sending result: '%s'. Reason: '%s'" % (self.value, self.exc)

    def __repr__(self):
        return "<%s: %s>" % (self.__class__.__name__, self)


def worker(conn, initializer=None, initargs=(), maxtasks=None):
    """A pool worker: runs the tasks its pipe brings, sends back each
    result, and ends after `maxtasks` of them (or when told to)."""
    if initializer is not None:
        initializer(*initargs)
    completed = 0
    while maxtasks is None or completed < maxtasks:
        try:
            task = conn.recv()
        except EOFError:
            break
        if task is None:
            break
        job, i, func, args, kwds = task
        try:
            result = (True, func(*args, **kwds))
        except Exception as e:
            result = (False, ExceptionWithTraceback(e, e.__traceback__))
        try:
            conn.send((job, i, result))
        except Exception as e:
            conn.send((job, i, (False, MaybeEncodingError(e, result[1]))))
        completed += 1


class _Worker:
    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.task = None  # (job, i) in flight
        self.done = 0


class Pool:
    """Class which supports an async version of applying functions to arguments."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, context=None):
        self._state = INIT
        from .context import _default_context
        self._ctx = context or _default_context.get_context()
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasksperchild = maxtasksperchild
        self._cache = {}
        self._pending = collections.deque()  # iterators of tasks not handed out yet
        self._workers = []
        for _ in range(processes):
            self._add_worker()
        self._state = RUN

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={len(self._workers)}>"

    def _add_worker(self):
        ours, theirs = Pipe()
        w = self._ctx.Process(target=worker, args=(theirs, self._initializer, self._initargs, self._maxtasksperchild))
        w.name = w.name.replace("Process", "PoolWorker")
        w.daemon = True
        w.start()
        self._workers.append(_Worker(w, ours))

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    # --- moving work along ---------------------------------------------

    def _dispatch(self):
        """Hands pending tasks to idle workers that will take another."""
        for w in list(self._workers):
            while w.task is None and not self._retiring(w) and self._pending:
                try:
                    task = next(self._pending[0])
                except StopIteration:
                    self._pending.popleft()
                    continue
                job, i = task[0], task[1]
                try:
                    w.conn.send(task)
                except OSError:  # the worker is gone: the task waits for another
                    self._pending.appendleft(iter([task]))
                    self._lose(w)
                    break
                except Exception as e:  # the task cannot be pickled
                    self._set(job, i, (False, e))
                    continue
                w.task = (job, i)

    def _retiring(self, w):
        """Whether the worker has done its `maxtasksperchild` and is ending."""
        return self._maxtasksperchild is not None and w.done >= self._maxtasksperchild

    def _set(self, job, i, result):
        if job in self._cache:
            self._cache[job]._set(i, result)

    def _step(self, timeout):
        """Hands out work, then waits up to `timeout` for a result or a
        worker's end and takes it in."""
        self._dispatch()
        if not any(w.task is not None or self._retiring(w) for w in self._workers):
            return
        busy = [w.conn for w in self._workers if w.task is not None]
        wait(busy + [w.process.sentinel for w in self._workers], timeout)
        for w in list(self._workers):
            if w.task is not None and w.conn.poll(0):
                try:
                    job, i, result = w.conn.recv()
                except EOFError:  # it is ending without a result
                    w.process.join()
                else:
                    w.task = None
                    w.done += 1
                    self._set(job, i, result)
            if not w.process.is_alive():
                self._lose(w)
        self._dispatch()

    def _lose(self, w):
        """A worker has ended: its task fails, and another takes its place."""
        self._workers.remove(w)
        w.process.join()
        if w.task is not None:
            job, i = w.task
            self._set(job, i, (False, ProcessError(
                f"the pool worker {w.process.name} ended with exitcode {w.process.exitcode} during its task")))
        w.conn.close()
        if self._state != TERMINATE:
            self._add_worker()

    def _wait_for(self, done, timeout):
        """Moves work along until `done()` or the timeout; whether done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if not any(w.task is not None for w in self._workers) and not self._pending:
                return done()
            self._step(remaining)
        return True

    # --- the API ---------------------------------------------------------

    def apply(self, func, args=(), kwds={}):
        """Equivalent of `func(*args, **kwds)`. Pool must be running."""
        return self.apply_async(func, args, kwds).get()

    def map(self, func, iterable, chunksize=None):
        """Apply `func` to each element in `iterable`, collecting the results in a list that is returned."""
        return self._map_async(func, iterable, mapstar, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        """Like `map()` method but the elements of the `iterable` are expected to be iterables as well and will be
        unpacked as arguments."""
        return self._map_async(func, iterable, starmapstar, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """Asynchronous version of `starmap()` method."""
        return self._map_async(func, iterable, starmapstar, chunksize, callback, error_callback)

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """Asynchronous version of `map()` method."""
        return self._map_async(func, iterable, mapstar, chunksize, callback, error_callback)

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """Asynchronous version of `apply()` method."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        self._pending.append(iter([(result._job, 0, func, args, kwds)]))
        self._dispatch()
        return result

    def imap(self, func, iterable, chunksize=1):
        """Equivalent of `map()` -- can be MUCH slower than `Pool.map()`."""
        return self._imap(IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Like `imap()` method but ordering of results is arbitrary."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize)

    def _imap(self, kind, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        result = kind(self)
        if chunksize == 1:
            tasks = ((result._job, i, func, (x,), {}) for i, x in enumerate(iterable))
        else:
            tasks = ((result._job, i, mapstar, (x,), {}) for i, x in enumerate(self._get_tasks(func, iterable, chunksize)))
        self._pending.append(result._counting(tasks))
        self._dispatch()
        return result if chunksize == 1 else (item for chunk in result for item in chunk)

    @staticmethod
    def _get_tasks(func, it, size):
        it = iter(it)
        while True:
            x = tuple(itertools.islice(it, size))
            if not x:
                return
            yield (func, x)

    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), len(self._workers) * 4)
            if extra:
                chunksize += 1
        if len(iterable) == 0:
            chunksize = 0
        result = MapResult(self, chunksize, len(iterable), callback, error_callback=error_callback)
        if chunksize:
            batches = self._get_tasks(func, iterable, chunksize)
            self._pending.append((result._job, i, mapper, (x,), {}) for i, x in enumerate(batches))
            self._dispatch()
        return result

    def close(self):
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self):
        self._state = TERMINATE
        self._pending.clear()
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self._workers:
            w.process.join()

    def join(self):
        if self._state == RUN:
            raise ValueError("Pool is still running")
        elif self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        if self._state == CLOSE:
            self._wait_for(lambda: not self._pending and all(w.task is None for w in self._workers), None)
            for w in self._workers:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self._workers:
            w.process.join()
            w.conn.close()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


class ApplyResult:
    def __init__(self, pool, callback, error_callback):
        self._pool = pool
        self._done = False
        self._job = next(job_counter)
        self._cache = pool._cache
        self._callback = callback
        self._error_callback = error_callback
        self._cache[self._job] = self

    def ready(self):
        if not self._done and self._pool is not None:
            self._pool._step(0)
        return self._done

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout=None):
        if self._pool is not None:
            self._pool._wait_for(lambda: self._done, timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self._done:
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, i, obj):
        self._success, self._value = obj
        if self._callback and self._success:
            self._callback(self._value)
        if self._error_callback and not self._success:
            self._error_callback(self._value)
        self._finish()

    def _finish(self):
        self._done = True
        del self._cache[self._job]
        self._pool = None


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    def __init__(self, pool, chunksize, length, callback, error_callback):
        super().__init__(pool, callback, error_callback=error_callback)
        self._success = True
        self._value = [None] * length
        self._chunksize = chunksize
        if chunksize <= 0:
            self._number_left = 0
            self._finish()
        else:
            self._number_left = length // chunksize + bool(length % chunksize)

    def _set(self, i, success_result):
        self._number_left -= 1
        success, result = success_result
        if success and self._success:
            self._value[i * self._chunksize:(i + 1) * self._chunksize] = result
            if self._number_left == 0:
                if self._callback:
                    self._callback(self._value)
                self._finish()
        else:
            if not success and self._success:
                # only store first exception
                self._success = False
                self._value = result
            if self._number_left == 0:
                # only consider the result ready once all jobs are done
                if self._error_callback:
                    self._error_callback(self._value)
                self._finish()


class IMapIterator:
    def __init__(self, pool):
        self._pool = pool
        self._job = next(job_counter)
        self._cache = pool._cache
        self._items = collections.deque()
        self._unsorted = {}
        self._index = 0
        self._length = None
        self._cache[self._job] = self

    def _counting(self, tasks):
        """`tasks`, telling this iterator how many there were once they end."""
        n = 0
        for n, task in enumerate(tasks, 1):
            yield task
        self._set_length(n)

    def __iter__(self):
        return self

    def next(self, timeout=None):
        done = lambda: self._items or (self._length is not None and self._index >= self._length)
        if not self._pool._wait_for(done, timeout) and not done():
            raise TimeoutError
        if not self._items:
            self._cache.pop(self._job, None)
            raise StopIteration from None
        self._index += 1
        success, value = self._items.popleft()
        if success:
            return value
        raise value

    __next__ = next

    def _set(self, i, obj):
        if self._index + len(self._items) == i:
            self._items.append(obj)
            while self._index + len(self._items) in self._unsorted:
                self._items.append(self._unsorted.pop(self._index + len(self._items)))
        else:
            self._unsorted[i] = obj

    def _set_length(self, length):
        self._length = length


class IMapUnorderedIterator(IMapIterator):
    def _set(self, i, obj):
        self._items.append(obj)
