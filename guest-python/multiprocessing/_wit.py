"""The one door to the host: the generated `wmp:process` bindings, and the
translation of every WIT error into the exception CPython raises for the
same mistake (with the message the host carries, which is CPython's)."""

import queue

from componentize_py_types import Err
from wit_world.imports import connection, process, synchronize

__all__ = ["connection", "process", "synchronize", "call", "nanos"]


# The errnos CPython shows on Linux (WASI numbers them differently).
_LINUX_EPIPE, _LINUX_ECONNREFUSED, _LINUX_EADDRINUSE = 32, 111, 98

_process_errors = {
    process.Error_Closed: ValueError,
    process.Error_NotStarted: ValueError,
    process.Error_CloseRunning: ValueError,
}


def _translated(error):
    """The exception for a WIT error case."""
    message = error.value
    if isinstance(error, connection.Error_Eof):
        return EOFError()
    if isinstance(error, connection.Error_Closed):
        return OSError("handle is closed")
    if isinstance(error, connection.Error_BrokenPipe):
        return BrokenPipeError(_LINUX_EPIPE, "Broken pipe")
    if isinstance(error, (connection.Error_WriteOnly, connection.Error_ReadOnly)):
        return OSError(message)
    if isinstance(error, connection.Error_Empty):
        return queue.Empty()
    if isinstance(error, connection.Error_Full):
        return queue.Full()
    if isinstance(error, connection.Error_Authentication):
        from .context import AuthenticationError
        return AuthenticationError(message)
    if isinstance(error, connection.Error_Refused):
        return ConnectionRefusedError(_LINUX_ECONNREFUSED, "Connection refused")
    if isinstance(error, connection.Error_AddressInUse):
        return OSError(_LINUX_EADDRINUSE, "Address already in use")
    if isinstance(error, synchronize.Error_ReleasedTooManyTimes):
        return ValueError(message)
    if isinstance(error, synchronize.Error_NotOwner):
        return AssertionError(message)
    if isinstance(error, synchronize.Error_OutOfRange):
        return IndexError(message)
    if isinstance(error, (process.Error_SpawnFailed, process.Error_LimitReached, process.Error_UnknownTarget)):
        return OSError(message)
    return _process_errors.get(type(error), AssertionError)(message)


def call(method, *args):
    """Calls a binding, raising CPython's exception for its error."""
    try:
        return method(*args)
    except Err as err:
        raise _translated(err.value) from None


def nanos(seconds):
    """A timeout in seconds (None: no timeout) as the host's nanoseconds."""
    return None if seconds is None else max(0, int(seconds * 1e9))
