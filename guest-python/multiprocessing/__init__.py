"""`multiprocessing` for wmp guests written in Python (componentize-py).

CPython's public API over the wmp process model: processes are wasm
instances started by the host (spawn is the only start method), and
pipes, queues and listeners are the host's. Put this package's directory
on the componentize-py path before the standard library's, and a
`multiprocessing` program runs unchanged; `wmp_main.py` beside it is the
app module that runs one (see examples/python/README.md)."""

from . import context

__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort", "Condition", "Event",
    "JoinableQueue", "Lock", "Manager", "Pipe", "Pool", "Process", "ProcessError", "Queue", "RLock", "RawArray",
    "RawValue", "Semaphore", "SimpleQueue", "TimeoutError", "Value", "active_children", "allow_connection_pickling",
    "cpu_count", "current_process", "freeze_support", "get_all_start_methods", "get_context", "get_logger",
    "get_start_method", "log_to_stderr", "parent_process", "set_start_method",
]

globals().update((name, getattr(context._default_context, name)) for name in __all__)

# Imported now, at build time: a guest has no files to import from when it runs.
from . import connection, pool, queues, reduction, sharedctypes, spawn, synchronize, util  # noqa: E402,F401
