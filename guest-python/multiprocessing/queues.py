"""multiprocessing.queues for wmp guests: `Queue`, `SimpleQueue` and
`JoinableQueue` over the host's queues, shared by every process that was
handed one at start. Items are pickled, as in CPython; there is no feeder
thread, so a put has reached the queue when it returns."""

import time
from queue import Empty, Full

from . import _wit, context, reduction

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]


def _get(queue, timeout):
    """A get with CPython's outcome. The host answers EOF at once when the
    queue is empty and no other process holds it, where CPython waits: with
    a timeout that is queue.Empty once it has passed; without one, CPython
    would wait forever, and the EOFError says why it will not."""
    try:
        return _wit.call(queue.get, _wit.nanos(timeout))
    except EOFError:
        if timeout is None:
            raise EOFError("the queue is empty and no other process holds it: a get would wait forever") from None
        time.sleep(timeout)
        raise Empty from None


class Queue:
    def __init__(self, maxsize=0, *, ctx=None):
        self._maxsize = maxsize if maxsize > 0 else 0
        self._queue = _wit.connection.Queue(self._maxsize)
        self._closed = False

    def __getstate__(self):
        context.assert_spawning(self)
        return self.__dict__

    def _check_open(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj, block=True, timeout=None):
        self._check_open()
        _wit.call(self._queue.put, reduction.dumps(obj), _wit.nanos(timeout if block else 0))

    def get(self, block=True, timeout=None):
        self._check_open()
        return reduction.loads(_get(self._queue, timeout if block else 0))

    def qsize(self):
        return self._queue.qsize()

    def empty(self):
        return self._queue.empty()

    def full(self):
        return bool(self._maxsize) and self._queue.qsize() >= self._maxsize

    def get_nowait(self):
        return self.get(False)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def close(self):
        """No more puts or gets from this process; the others keep the queue."""
        if not self._closed:
            self._closed = True
            self._queue.close()

    def join_thread(self):
        assert self._closed, f"Queue {self!r} not closed"

    def cancel_join_thread(self):
        pass


class JoinableQueue(Queue):
    """A Queue whose `join` waits until every item put has been marked done.
    The count of unfinished tasks is a second host queue of tokens."""

    def __init__(self, maxsize=0, *, ctx=None):
        super().__init__(maxsize)
        self._unfinished = _wit.connection.Queue(0)

    def put(self, obj, block=True, timeout=None):
        super().put(obj, block, timeout)
        _wit.call(self._unfinished.put, b"", None)

    def task_done(self):
        try:
            _get(self._unfinished, 0)
        except Empty:
            raise ValueError("task_done() called too many times") from None

    def join(self):
        """Waits until every item put has been marked done (by any process)."""
        pause = 0.0005
        while not self._unfinished.empty():
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


class SimpleQueue:
    def __init__(self, *, ctx=None):
        self._queue = _wit.connection.Queue(0)
        self._closed = False

    __getstate__ = Queue.__getstate__

    def close(self):
        if not self._closed:
            self._closed = True
            self._queue.close()

    def empty(self):
        return self._queue.empty()

    def get(self):
        return reduction.loads(_get(self._queue, None))

    def put(self, obj):
        _wit.call(self._queue.put, reduction.dumps(obj), None)
