"""multiprocessing.connection for wmp guests: `Pipe`, `Listener`, `Client`
and `wait`, over the host's connections (wmp:process/connection). A
message is bytes (`send_bytes`) or a pickled object (`send`), as in
CPython; a listener's address is a name in the runtime (any string)."""

import itertools

from . import _wit, reduction
from .context import AuthenticationError, BufferTooShort

__all__ = ["Client", "Listener", "Pipe", "wait", "AuthenticationError", "BufferTooShort"]

BUFSIZE = 8192
_names = itertools.count()


class Connection:
    """One end of a pipe, or a connection a listener accepted."""

    def __init__(self, handle, readable=True, writable=True):
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable

    def _check_closed(self):
        if self._handle is None:
            raise OSError("handle is closed")

    def _check_readable(self):
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if not self._writable:
            raise OSError("connection is read-only")

    @property
    def closed(self):
        """True if the connection is closed"""
        return self._handle is None

    @property
    def readable(self):
        """True if the connection is readable"""
        return self._readable

    @property
    def writable(self):
        """True if the connection is writable"""
        return self._writable

    def close(self):
        """Close the connection"""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()

    def send_bytes(self, buf, offset=0, size=None):
        """Send the bytes data from a bytes-like object"""
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        _wit.call(self._handle.send_bytes, bytes(m[offset:offset + size]))

    def send(self, obj):
        """Send a (picklable) object"""
        self._check_closed()
        self._check_writable()
        _wit.call(self._handle.send_bytes, reduction.dumps(obj))

    def recv_bytes(self, maxlength=None):
        """Receive bytes data as a bytes object."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        buf = _wit.call(self._handle.recv_bytes)
        if maxlength is not None and len(buf) > maxlength:
            self.close()
            raise OSError("bad message length")
        return buf

    def recv_bytes_into(self, buf, offset=0):
        """Receive bytes data into a writeable bytes-like object. Return the number of bytes read."""
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            data = _wit.call(self._handle.recv_bytes)
            if bytesize - offset < len(data):
                raise BufferTooShort(data)
            m.cast("B")[offset:offset + len(data)] = data
            return len(data) // itemsize

    def recv(self):
        """Receive a (picklable) object"""
        self._check_closed()
        self._check_readable()
        return reduction.loads(_wit.call(self._handle.recv_bytes))

    def poll(self, timeout=0.0):
        """Whether there is any input available to be read"""
        self._check_closed()
        self._check_readable()
        return _wit.call(self._handle.poll, _wit.nanos(timeout))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __del__(self):
        self.close()


def _end(handle):
    return Connection(handle, handle.readable(), handle.writable())


def Pipe(duplex=True):
    """Returns pair of connection objects at either end of a pipe"""
    first, second = _wit.connection.pipe(bool(duplex))
    return _end(first), _end(second)


def inherited_connections():
    """wmp: the connection ends a parent in another program or language
    handed this process (a Python parent puts them in the args instead)."""
    return [_end(handle) for handle in reduction.inherited()["connection"]]


class Listener:
    """A name in the runtime that clients connect to, authenticated by `authkey`."""

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError("authkey should be a byte string")
        from .process import current_process
        if address is None:
            address = f"wmp-listener-{current_process().pid}-{next(_names)}"
        self._listener = _wit.call(_wit.connection.listen, str(address), authkey)
        self._address = address

    def accept(self):
        """Accept a connection on the bound socket or named pipe of `self`."""
        if self._listener is None:
            raise OSError("listener is closed")
        return _end(_wit.call(self._listener.accept))

    def close(self):
        """Close the bound socket or named pipe of `self`."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    @property
    def address(self):
        return self._address

    @property
    def last_accepted(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address, family=None, authkey=None):
    """Returns a connection to the address of a `Listener`"""
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError("authkey should be a byte string")
    return _end(_wit.call(_wit.connection.connect, str(address), authkey))


def wait(object_list, timeout=None):
    """Wait till an object in object_list is ready/readable; returns the
    ready ones, in the order given. Takes connections and sentinels."""
    from .process import _Sentinel
    objects = list(object_list)
    sentinels = [(i, o._handle) for i, o in enumerate(objects) if isinstance(o, _Sentinel)]
    connections = [(i, o._handle) for i, o in enumerate(objects) if isinstance(o, Connection)]
    if len(sentinels) + len(connections) != len(objects):
        bad = next(o for o in objects if not isinstance(o, (_Sentinel, Connection)))
        raise TypeError(f"wmp can wait only on connections and sentinels, not {type(bad).__name__!r}")
    if any(handle is None for _, handle in connections):
        raise OSError("handle is closed")
    order = [i for i, _ in sentinels] + [i for i, _ in connections]
    ready = _wit.connection.wait([h for _, h in sentinels], [h for _, h in connections], _wit.nanos(timeout))
    return [objects[i] for i in sorted(order[n] for n in ready)]
