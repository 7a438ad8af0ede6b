"""Pickling between Python guests, as CPython's ForkingPickler under spawn:
a child's process object and its arguments travel pickled, and the
connection ends, queues, semaphore locks and shared memory inside them
(in its connections, queues, locks, conditions, events, barriers, values
and arrays) are handed to the child by the host (`pass-connection` moves
an end, `pass-queue`, `pass-semlock` and `pass-shared-memory` share the
object) and stand in the pickle as persistent ids, which the child
resolves against what it inherited. A message sent on a connection or put
on a queue is pickled the same way but cannot carry a handle: wmp hands
them over only at a child's start."""

import io
import json
import pickle

from . import _wit

_unpicklable = (_wit.connection.Connection, _wit.connection.Queue, _wit.connection.Listener,
                _wit.process.Process, _wit.process.Sentinel, _wit.synchronize.Semlock, _wit.synchronize.SharedMemory)

#: The host objects shared with a child (the parent keeps its own handle), by persistent-id kind.
_shared = {"queue": (_wit.connection.Queue, _wit.connection.pass_queue),
           "semlock": (_wit.synchronize.Semlock, _wit.synchronize.pass_semlock),
           "shared-memory": (_wit.synchronize.SharedMemory, _wit.synchronize.pass_shared_memory)}


class _Pickler(pickle.Pickler):
    """Pickles messages: no handles."""

    def persistent_id(self, obj):
        from .connection import Connection
        if isinstance(obj, _unpicklable + (Connection,)):
            raise TypeError(f"cannot pickle {type(obj).__name__!r} object: wmp hands connections and queues to a "
                            "child only in its Process arguments")
        return None


def dumps(obj):
    buf = io.BytesIO()
    _Pickler(buf).dump(obj)
    return buf.getvalue()


loads = pickle.loads


def _take(connection):
    """The handle of a Connection about to be handed to a child; the
    Connection here is closed from now on (the end has moved)."""
    connection._check_closed()
    handle, connection._handle = connection._handle, None
    return handle


class HandingPickler(_Pickler):
    """Pickles what a child gets at start, handing it the handles inside."""

    def __init__(self, file, child, queues_passed):
        super().__init__(file)
        self._child = child
        self._passed = {"connection": 0, "queue": queues_passed, "semlock": 0, "shared-memory": 0}
        #: id of a shared host object -> its persistent id, so that one met twice is handed over once.
        self._shared_ids = {}

    def persistent_id(self, obj):
        from .connection import Connection
        if isinstance(obj, Connection):
            readable, writable = obj.readable, obj.writable
            return self._hand("connection", _wit.connection.pass_connection, _take(obj)) + (readable, writable)
        for kind, (resource, pass_it) in _shared.items():
            if isinstance(obj, resource):
                if id(obj) not in self._shared_ids:
                    self._shared_ids[id(obj)] = self._hand(kind, pass_it, obj)
                return self._shared_ids[id(obj)]
        return super().persistent_id(obj)

    def _hand(self, kind, pass_it, handle):
        _wit.call(pass_it, self._child, handle)
        index = self._passed[kind]
        self._passed[kind] += 1
        return (kind, index)


_inherited = None


def inherited():
    """The connection ends, queues, semaphore locks and shared memory this
    process's parent handed it."""
    global _inherited
    if _inherited is None:
        _inherited = {"connection": _wit.connection.inherited_connections(),
                      "queue": _wit.connection.inherited_queues(),
                      "semlock": _wit.synchronize.inherited_semlocks(),
                      "shared-memory": _wit.synchronize.inherited_shared_memory()}
    return _inherited


class InheritingUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        from .connection import Connection
        kind, index, *flags = pid
        handle = inherited()[kind][index]
        return Connection(handle, *flags) if kind == "connection" else handle


def as_json(args, main):
    """A call across programs or languages: `args` as JSON (a `main`'s argv
    must be strings), with the connections and queues among them taken out,
    to be handed to the child in order at start; returns (bytes, them)."""
    from .connection import Connection
    from .queues import Queue
    handed = [arg for arg in args if isinstance(arg, (Connection, Queue))]
    rest = [arg for arg in args if not isinstance(arg, (Connection, Queue))]
    if main and not all(isinstance(arg, str) for arg in rest):
        raise TypeError("the arguments of another program's main are its argv: strings")
    return json.dumps(rest).encode(), handed


def hand_over_json(child, handed):
    """Hands the connections and queues that as_json took out to the child."""
    from .connection import Connection
    for obj in handed:
        if isinstance(obj, Connection):
            _wit.call(_wit.connection.pass_connection, child, _take(obj))
        else:
            _wit.call(_wit.connection.pass_queue, child, obj._queue)
