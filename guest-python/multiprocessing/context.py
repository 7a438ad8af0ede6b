"""multiprocessing.context for wmp guests: the exceptions, the `Process`
class, and the contexts, of which there is one: spawn, the only start
method a sandbox has (each child is a fresh instance). What needs memory
or semaphores shared between processes is refused as CPython refuses it
on a platform that lacks them."""

import os

from . import process

__all__ = ()

_SEM_OPEN = ("This platform lacks a functioning sem_open implementation, therefore, the required synchronization "
             "primitives needed will not function, see issue 3770.")


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


def _no_semaphores(*args, **kwargs):
    raise ImportError(_SEM_OPEN)


def _no_shared_memory(*args, **kwargs):
    raise ModuleNotFoundError("No module named 'mmap'", name="mmap")


class BaseContext:
    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self):
        """Returns the number of CPUs in the system"""
        num = os.cpu_count()
        if num is None:
            raise NotImplementedError("cannot determine number of cpus")
        return num

    def Pipe(self, duplex=True):
        """Returns two connection object connected by a pipe"""
        from .connection import Pipe
        return Pipe(duplex)

    def Queue(self, maxsize=0):
        """Returns a queue object"""
        from .queues import Queue
        return Queue(maxsize, ctx=self.get_context())

    def JoinableQueue(self, maxsize=0):
        """Returns a queue object"""
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self.get_context())

    def SimpleQueue(self):
        """Returns a queue object"""
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self.get_context())

    # Semaphores shared between processes: a sandboxed guest has none.
    Lock = RLock = Condition = Semaphore = BoundedSemaphore = Event = Barrier = staticmethod(_no_semaphores)
    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None):
        """Returns a process pool object"""
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild, context=self.get_context())

    # Memory shared between processes: each guest has its own.
    RawValue = RawArray = Value = Array = staticmethod(_no_shared_memory)

    def Manager(self):
        raise NotImplementedError("wmp's multiprocessing has no Manager: share data through a Queue or a Pipe")

    def freeze_support(self):
        """Nothing to do: a guest is never a frozen Windows executable."""

    def get_logger(self):
        from .util import get_logger
        return get_logger()

    def log_to_stderr(self, level=None):
        from .util import log_to_stderr
        return log_to_stderr(level)

    def allow_connection_pickling(self):
        """Nothing to do: connections are handed to a child in its arguments."""

    def get_context(self, method=None):
        if method is None:
            return self
        try:
            return _concrete_contexts[method]
        except KeyError:
            raise ValueError("cannot find context for %r" % method) from None

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self):
        return ["spawn"]


class Process(process.BaseProcess):
    _start_method = None


class SpawnProcess(process.BaseProcess):
    _start_method = "spawn"


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class DefaultContext(BaseContext):
    Process = Process

    def __init__(self, context):
        self._default_context = context
        self._actual_context = None

    def get_context(self, method=None):
        if method is None:
            if self._actual_context is None:
                self._actual_context = self._default_context
            return self._actual_context
        return super().get_context(method)

    def set_start_method(self, method, force=False):
        if self._actual_context is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none=False):
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = self._default_context
        return self._actual_context._name


_concrete_contexts = {"spawn": SpawnContext()}
_default_context = DefaultContext(_concrete_contexts["spawn"])
