"""multiprocessing.sharedctypes for wmp guests: RawValue, RawArray, Value
and Array in memory the host shares between processes (the
`wmp:process/synchronize` shared-memory resource), read like CPython's
sharedctypes.py. componentize-py's CPython has no ctypes, so the objects
are ctypes' look-alikes for the typecodes CPython maps to ctypes types
(`'i'` is `c_int`, ...), packed with `struct` at the sizes of 64-bit Linux:
a value has `.value`, an array indexing, slicing and `len` (a `'c'`
array `.value` and `.raw`), and they print as ctypes does. Each access
reads or writes the shared bytes, so every process handed the object in
a `Process`'s arguments sees the others' writes."""

import operator
import struct

from . import _wit
from . import context
from .context import assert_spawning

__all__ = ['RawValue', 'RawArray', 'Value', 'Array', 'copy', 'synchronized']


class _Element:
    """A C type: its ctypes name (as CPython on 64-bit Linux shows it),
    its struct format, and how a Python value becomes one."""

    def __init__(self, name, fmt, default):
        self.name, self.format, self.default = name, struct.Struct('<' + fmt), default
        self.size = self.format.size

    def pack(self, value):
        return self.format.pack(self.convert(value))

    def unpack(self, data):
        return self.format.unpack(data)[0]

    def convert(self, value):
        return value


class _Integer(_Element):
    """Stores the low bits, as a ctypes integer does."""

    def __init__(self, name, fmt):
        super().__init__(name, fmt, 0)
        bits = 8 * self.size
        self._signed = fmt.islower()
        self._mask, self._sign = (1 << bits) - 1, 1 << (bits - 1)

    def convert(self, value):
        value = operator.index(value) & self._mask
        return value - (self._mask + 1) if self._signed and value & self._sign else value


class _Real(_Element):
    def __init__(self, name, fmt):
        super().__init__(name, fmt, 0.0)

    def convert(self, value):
        if not hasattr(value, '__float__'):
            raise TypeError(f"must be real number, not {type(value).__name__}")
        return float(value)


class _Char(_Element):
    """c_char: one byte, given as bytes or an int."""

    def __init__(self):
        super().__init__('c_char', 'c', b'\x00')

    def convert(self, value):
        if isinstance(value, int) and 0 <= value < 256:
            return bytes([value])
        if isinstance(value, (bytes, bytearray)) and len(value) == 1:
            return bytes(value)
        raise TypeError("one character bytes, bytearray or integer expected")


class _WideChar(_Element):
    """c_wchar: a character, four bytes (UTF-32) as on Linux."""

    def __init__(self):
        super().__init__('c_wchar', 'I', '\x00')

    def pack(self, value):
        if not (isinstance(value, str) and len(value) == 1):
            raise TypeError("one character unicode string expected")
        return self.format.pack(ord(value))

    def unpack(self, data):
        return chr(self.format.unpack(data)[0])


typecode_to_type = {
    'c': _Char(),                  'u': _WideChar(),
    'b': _Integer('c_byte', 'b'),  'B': _Integer('c_ubyte', 'B'),
    'h': _Integer('c_short', 'h'), 'H': _Integer('c_ushort', 'H'),
    'i': _Integer('c_int', 'i'),   'I': _Integer('c_uint', 'I'),
    'l': _Integer('c_long', 'q'),  'L': _Integer('c_ulong', 'Q'),
    'q': _Integer('c_long', 'q'),  'Q': _Integer('c_ulong', 'Q'),  # c_longlong is c_long on 64-bit Linux
    'f': _Real('c_float', 'f'),    'd': _Real('c_double', 'd'),
    }


def _element(typecode_or_type):
    try:
        return typecode_to_type[typecode_or_type]
    except (KeyError, TypeError):
        raise TypeError("this type has no size") from None


class _SharedCData:
    """A value or array of one C type in shared memory (the host handle
    `_memory`), handed to a child only in a Process's arguments."""

    _typecode = None
    _length = None

    @classmethod
    def _new(cls, memory=None):
        obj = cls.__new__(cls)
        obj._memory = memory if memory is not None else _wit.synchronize.SharedMemory(cls._type_.size * (cls._length or 1))
        return obj

    def __reduce__(self):
        # The host handle is handed to the child by reduction.HandingPickler.
        assert_spawning(self)
        return _rebuild_ctype, (self._typecode, self._length, self._memory)

    def _read(self, index, count=1):
        size = self._type_.size
        return _wit.call(self._memory.read, index * size, count * size)

    def _write(self, index, data):
        _wit.call(self._memory.write, index * self._type_.size, data)


class _SimpleCData(_SharedCData):
    """A C value: `c_int(5)`."""

    def __init__(self, value=None):
        if value is not None:
            self.value = value

    @property
    def value(self):
        return self._type_.unpack(self._read(0))

    @value.setter
    def value(self, value):
        self._write(0, self._type_.pack(value))

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"


class _Array(_SharedCData):
    """A C array: indexing, slicing, len and iteration, as a ctypes array."""

    def __init__(self, *items):
        if len(items) > self._length:
            raise IndexError("invalid index")
        for index, item in enumerate(items):
            self[index] = item

    def __len__(self):
        return self._length

    def _index(self, index):
        if not hasattr(index, '__index__'):
            raise TypeError("indices must be integers")
        index = operator.index(index)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("invalid index")
        return index

    def _items(self, start, count):
        data = self._read(start, count)
        size = self._type_.size
        return [self._type_.unpack(data[at:at + size]) for at in range(0, len(data), size)]

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            items = self._items(0, self._length)[start:stop:step]
            if self._typecode == 'c':
                return b''.join(items)
            if self._typecode == 'u':
                return ''.join(items)
            return items
        return self._type_.unpack(self._read(self._index(index)))

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            indices = range(*index.indices(self._length))
            values = list(value)
            if len(values) != len(indices):
                raise ValueError("Can only assign sequence of same size")
            for at, item in zip(indices, values):
                self._write(at, self._type_.pack(item))
            return
        self._write(self._index(index), self._type_.pack(value))

    def __iter__(self):
        return iter(self[:])


class _CharArray(_Array):
    """A `'c'` array: also `.value` (up to the first NUL) and `.raw`."""

    @property
    def raw(self):
        return self._read(0, self._length)

    @raw.setter
    def raw(self, value):
        if len(value) > self._length:
            raise ValueError("byte string too long")
        self._write(0, bytes(value))

    @property
    def value(self):
        return self.raw.split(b'\x00', 1)[0]

    @value.setter
    def value(self, value):
        if len(value) > self._length:
            raise ValueError("byte string too long")
        self._write(0, bytes(value) + (b'\x00' if len(value) < self._length else b''))


_types = {}


def _ctype(typecode, length=None):
    """The class of a value (`c_int`) or array (`c_int_Array_10`) of a typecode."""
    key = (typecode, length)
    if key not in _types:
        element = typecode_to_type[typecode]
        if length is None:
            name, base = element.name, _SimpleCData
        else:
            name, base = f"{element.name}_Array_{length}", _CharArray if typecode == 'c' else _Array
        _types[key] = type(name, (base,), {'_type_': element, '_typecode': typecode, '_length': length,
                                           '__module__': __name__, '__qualname__': name})
    return _types[key]


def _rebuild_ctype(typecode, length, memory):
    return _ctype(typecode, length)._new(memory)

#
#
#

def RawValue(typecode_or_type, *args):
    '''
    Returns a ctypes object allocated from shared memory
    '''
    _element(typecode_or_type)
    obj = _ctype(typecode_or_type)._new()
    obj.__init__(*args)
    return obj

def RawArray(typecode_or_type, size_or_initializer):
    '''
    Returns a ctypes array allocated from shared memory
    '''
    _element(typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _ctype(typecode_or_type, size_or_initializer)._new()
    else:
        result = _ctype(typecode_or_type, len(size_or_initializer))._new()
        result.__init__(*size_or_initializer)
        return result

def Value(typecode_or_type, *args, lock=True, ctx=None):
    '''
    Return a synchronization wrapper for a Value
    '''
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    if lock in (True, None):
        ctx = ctx or context._default_context.get_context()
        lock = ctx.RLock()
    if not hasattr(lock, 'acquire'):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return synchronized(obj, lock, ctx=ctx)

def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    '''
    Return a synchronization wrapper for a RawArray
    '''
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    if lock in (True, None):
        ctx = ctx or context._default_context.get_context()
        lock = ctx.RLock()
    if not hasattr(lock, 'acquire'):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return synchronized(obj, lock, ctx=ctx)

def copy(obj):
    new_obj = _ctype(obj._typecode, obj._length)._new()
    new_obj._write(0, obj._read(0, obj._length or 1))
    return new_obj

def synchronized(obj, lock=None, ctx=None):
    assert not isinstance(obj, SynchronizedBase), 'object already synchronized'
    ctx = ctx or context._default_context.get_context()

    if isinstance(obj, _SimpleCData):
        return Synchronized(obj, lock, ctx)
    elif isinstance(obj, _CharArray):
        return SynchronizedString(obj, lock, ctx)
    elif isinstance(obj, _Array):
        return SynchronizedArray(obj, lock, ctx)
    raise TypeError("wmp's sharedctypes synchronizes only its own values and arrays")

#
# Synchronized wrappers
#

class SynchronizedBase(object):

    def __init__(self, obj, lock=None, ctx=None):
        self._obj = obj
        if lock:
            self._lock = lock
        else:
            ctx = ctx or context._default_context.get_context()
            self._lock = ctx.RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def get_obj(self):
        return self._obj

    def get_lock(self):
        return self._lock

    def __repr__(self):
        return '<%s wrapper for %s>' % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):

    @property
    def value(self):
        with self:
            return self._obj.value

    @value.setter
    def value(self, value):
        with self:
            self._obj.value = value


class SynchronizedArray(SynchronizedBase):

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self:
            return self._obj[i]

    def __setitem__(self, i, value):
        with self:
            self._obj[i] = value

    def __getslice__(self, start, stop):
        with self:
            return self._obj[start:stop]

    def __setslice__(self, start, stop, values):
        with self:
            self._obj[start:stop] = values


class SynchronizedString(SynchronizedArray):

    @property
    def value(self):
        with self:
            return self._obj.value

    @value.setter
    def value(self, value):
        with self:
            self._obj.value = value

    @property
    def raw(self):
        with self:
            return self._obj.raw

    @raw.setter
    def raw(self, value):
        with self:
            self._obj.raw = value
