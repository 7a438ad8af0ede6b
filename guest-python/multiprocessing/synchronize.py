"""multiprocessing.synchronize for wmp guests: Lock, RLock, Semaphore,
BoundedSemaphore, Condition, Event and Barrier, read like CPython's
synchronize.py and built as it builds them, from one primitive: the
semaphore lock the host holds (the `wmp:process/synchronize` semlock, in
the place of CPython's `_multiprocessing.SemLock`, here `_SemLock`). A lock
is the same host semaphore in every process handed it in a `Process`'s
arguments; its owner is a process (a guest has one thread). As with
CPython's POSIX semaphores, a lock held by a process that ends stays held."""

__all__ = [
    'Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition', 'Event'
    ]

import struct
import sys
import threading
import time

from . import _wit
from . import context
from . import process

#
# Constants
#

RECURSIVE_MUTEX, SEMAPHORE = list(range(2))
SEM_VALUE_MAX = 2**31 - 1  # Linux's, as the host has it

_EINVAL = 22  # the errno CPython shows on Linux for a value sem_open refuses


class _SemLock:
    """One process's handle to a semaphore lock the host holds, with the
    API of CPython's `_multiprocessing.SemLock`: the semaphore is shared,
    the count of this process's holds is the handle's own."""

    SEM_VALUE_MAX = SEM_VALUE_MAX

    def __init__(self, kind, value, maxvalue):
        if kind not in (RECURSIVE_MUTEX, SEMAPHORE):
            raise ValueError("unrecognized kind")
        if not 0 <= value <= SEM_VALUE_MAX:
            raise OSError(_EINVAL, "Invalid argument")
        wit_kind = (_wit.synchronize.SemlockKind.RECURSIVE_MUTEX if kind == RECURSIVE_MUTEX
                    else _wit.synchronize.SemlockKind.SEMAPHORE)
        self._setup(_wit.synchronize.Semlock(wit_kind, value, maxvalue), kind, maxvalue)

    def _setup(self, handle, kind, maxvalue):
        self.handle, self.kind, self.maxvalue, self.name = handle, kind, maxvalue, None

    @classmethod
    def _rebuild(cls, handle, kind, maxvalue, name):
        """The handle a child was given, as CPython's `SemLock._rebuild`."""
        semlock = cls.__new__(cls)
        semlock._setup(handle, kind, maxvalue)
        return semlock

    def acquire(self, block=True, timeout=None):
        return _wit.call(self.handle.acquire, _wit.nanos(timeout if block else 0))

    def release(self):
        _wit.call(self.handle.release)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *args):
        self.release()

    def _count(self):
        return self.handle.count()

    def _is_mine(self):
        return self.handle.is_mine()

    def _get_value(self):
        return self.handle.get_value()

    def _is_zero(self):
        return self.handle.get_value() == 0

#
# Base class for semaphores and mutexes; wraps `_SemLock`
#

class SemLock(object):

    def __init__(self, kind, value, maxvalue, *, ctx):
        self._semlock = _SemLock(kind, value, maxvalue)
        self._make_methods()

    def _make_methods(self):
        self.acquire = self._semlock.acquire
        self.release = self._semlock.release

    def __enter__(self):
        return self._semlock.__enter__()

    def __exit__(self, *args):
        return self._semlock.__exit__(*args)

    def __getstate__(self):
        # The host handle is handed to the child by reduction.HandingPickler.
        context.assert_spawning(self)
        sl = self._semlock
        return (sl.handle, sl.kind, sl.maxvalue, sl.name)

    def __setstate__(self, state):
        self._semlock = _SemLock._rebuild(*state)
        self._make_methods()

#
# Semaphore
#

class Semaphore(SemLock):

    def __init__(self, value=1, *, ctx):
        SemLock.__init__(self, SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self):
        return self._semlock._get_value()

    def __repr__(self):
        try:
            value = self._semlock._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s)>' % (self.__class__.__name__, value)

#
# Bounded semaphore
#

class BoundedSemaphore(Semaphore):

    def __init__(self, value=1, *, ctx):
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self):
        try:
            value = self._semlock._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s, maxvalue=%s)>' % \
               (self.__class__.__name__, value, self._semlock.maxvalue)

#
# Non-recursive lock
#

class Lock(SemLock):

    def __init__(self, *, ctx):
        SemLock.__init__(self, SEMAPHORE, 1, 1, ctx=ctx)

    def __repr__(self):
        try:
            if self._semlock._is_mine():
                name = process.current_process().name
            elif self._semlock._get_value() == 1:
                name = 'None'
            elif self._semlock._count() > 0:
                name = 'SomeOtherThread'
            else:
                name = 'SomeOtherProcess'
        except Exception:
            name = 'unknown'
        return '<%s(owner=%s)>' % (self.__class__.__name__, name)

#
# Recursive lock
#

class RLock(SemLock):

    def __init__(self, *, ctx):
        SemLock.__init__(self, RECURSIVE_MUTEX, 1, 1, ctx=ctx)

    def __repr__(self):
        try:
            if self._semlock._is_mine():
                name = process.current_process().name
                count = self._semlock._count()
            elif self._semlock._get_value() == 1:
                name, count = 'None', 0
            elif self._semlock._count() > 0:
                name, count = 'SomeOtherThread', 'nonzero'
            else:
                name, count = 'SomeOtherProcess', 'nonzero'
        except Exception:
            name, count = 'unknown', 'unknown'
        return '<%s(%s, %s)>' % (self.__class__.__name__, name, count)

#
# Condition variable
#

class Condition(object):

    def __init__(self, lock=None, *, ctx):
        self._lock = lock or ctx.RLock()
        self._sleeping_count = ctx.Semaphore(0)
        self._woken_count = ctx.Semaphore(0)
        self._wait_semaphore = ctx.Semaphore(0)
        self._make_methods()

    def __getstate__(self):
        context.assert_spawning(self)
        return (self._lock, self._sleeping_count,
                self._woken_count, self._wait_semaphore)

    def __setstate__(self, state):
        (self._lock, self._sleeping_count,
         self._woken_count, self._wait_semaphore) = state
        self._make_methods()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def _make_methods(self):
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __repr__(self):
        try:
            num_waiters = (self._sleeping_count._semlock._get_value() -
                           self._woken_count._semlock._get_value())
        except Exception:
            num_waiters = 'unknown'
        return '<%s(%s, %s)>' % (self.__class__.__name__, self._lock, num_waiters)

    def wait(self, timeout=None):
        assert self._lock._semlock._is_mine(), \
               'must acquire() condition before using wait()'

        # indicate that this process is going to sleep
        self._sleeping_count.release()

        # release lock
        count = self._lock._semlock._count()
        for i in range(count):
            self._lock.release()

        try:
            # wait for notification or timeout
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            # indicate that this process has woken
            self._woken_count.release()

            # reacquire lock
            for i in range(count):
                self._lock.acquire()

    def notify(self, n=1):
        assert self._lock._semlock._is_mine(), 'lock is not owned'
        assert not self._wait_semaphore.acquire(
            False), ('notify: Should not have been able to acquire '
                     + '_wait_semaphore')

        # to take account of timeouts since last notify*() we subtract
        # woken_count from sleeping_count and rezero woken_count
        while self._woken_count.acquire(False):
            res = self._sleeping_count.acquire(False)
            assert res, ('notify: Bug in sleeping_count.acquire'
                         + '- res should not be False')

        sleepers = 0
        while sleepers < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()        # wake up one sleeper
            sleepers += 1

        if sleepers:
            for i in range(sleepers):
                self._woken_count.acquire()       # wait for a sleeper to wake

            # rezero wait_semaphore in case some timeouts just happened
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self):
        self.notify(n=sys.maxsize)

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

#
# Event
#

class Event(object):

    def __init__(self, *, ctx):
        self._cond = ctx.Condition(ctx.Lock())
        self._flag = ctx.Semaphore(0)

    def is_set(self):
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def set(self):
        with self._cond:
            self._flag.acquire(False)
            self._flag.release()
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._flag.acquire(False)

    def wait(self, timeout=None):
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
            else:
                self._cond.wait(timeout)

            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def __repr__(self) -> str:
        set_status = 'set' if self.is_set() else 'unset'
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"

#
# Barrier
#

class Barrier(threading.Barrier):
    """threading.Barrier's algorithm over a Condition, with its state and
    count in shared memory (two ints, as CPython's BufferWrapper holds them)."""

    _cell = struct.Struct('<i')

    def __init__(self, parties, action=None, timeout=None, *, ctx):
        wrapper = _wit.synchronize.SharedMemory(self._cell.size * 2)
        cond = ctx.Condition()
        self.__setstate__((parties, action, timeout, cond, wrapper))
        self._state = 0
        self._count = 0

    def __setstate__(self, state):
        (self._parties, self._action, self._timeout,
         self._cond, self._wrapper) = state

    def __getstate__(self):
        return (self._parties, self._action, self._timeout,
                self._cond, self._wrapper)

    def _get(self, index):
        return self._cell.unpack(_wit.call(self._wrapper.read, index * self._cell.size, self._cell.size))[0]

    def _set(self, index, value):
        _wit.call(self._wrapper.write, index * self._cell.size, self._cell.pack(value))

    @property
    def _state(self):
        return self._get(0)

    @_state.setter
    def _state(self, value):
        self._set(0, value)

    @property
    def _count(self):
        return self._get(1)

    @_count.setter
    def _count(self, value):
        self._set(1, value)
