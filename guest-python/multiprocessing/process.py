"""multiprocessing.process for wmp guests: the process objects, read like
CPython's process.py. The host holds each object's state (name, identity,
daemon flag, authkey, pid, exit code) and enforces CPython's checks with
CPython's messages; this module keeps what only Python has (the target,
its arguments, a subclass's attributes) and hands them to the child at
start, pickled, as CPython's spawn start method does (see spawn.py)."""

import sys

from . import _wit

__all__ = ["BaseProcess", "current_process", "active_children", "parent_process"]

#: The spawn-context target of a child that unpickles its process object.
SPAWN_TARGET = "multiprocessing.spawn"

_current_process = None
_parent_process = None
#: Started children by pid, so active_children() gives back the objects the program made.
_children = {}


def current_process():
    """The Process object of the process running this code."""
    global _current_process
    if _current_process is None:
        _current_process = _MainProcess(_wit.process.current_process())
    return _current_process


def parent_process():
    """The process that started this one; None in the main process."""
    global _parent_process
    if _parent_process is None:
        handle = _wit.process.parent_process()
        if handle is not None:
            _parent_process = _ParentProcess(handle)
    return _parent_process


def active_children():
    """The started children of this process that have not ended."""
    alive = [handle for handle in _wit.process.active_children()]
    pids = {_wit.call(handle.pid) for handle in alive}
    for pid in list(_children):
        if pid not in pids:
            del _children[pid]
    return [_children.get(_wit.call(handle.pid)) or _View(handle) for handle in alive]


class _Sentinel:
    """A process's sentinel, for connection.wait (an int fd under CPython)."""

    def __init__(self, handle):
        self._handle = handle

    def __reduce__(self):
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


class BaseProcess:
    """Process objects, as CPython's BaseProcess.

    `target` is a function of this program (pickled by reference, with
    `args` and `kwargs`, for the child, as under spawn), or, as a wmp
    extension, the name of a target of `program`: another program the host
    shared, in any language; its `args` then travel as JSON, and the
    connections and queues among them are handed to the child in order."""

    _start_method = None

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={}, *, daemon=None, program=None):
        assert group is None, "group argument must be None for now"
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._program = program
        self._started = False
        self._closed = False
        self._sentinel = None
        if isinstance(target, str) or (target is None and program is not None):
            from .reduction import as_json
            spec_target, spec_args, self._handed = target or "", *as_json(self._args, main=target is None)
        else:
            spec_target, spec_args, self._handed = SPAWN_TARGET, b"", None
        spec_name = name if isinstance(name, str) else None
        self._handle = _wit.process.Process(_wit.process.Spec(spec_target, spec_args, spec_name, daemon, program, None))
        if name is not None and spec_name is None:
            self.name = name
        elif name is None and type(self).__name__ != "Process":  # CPython names it after its class
            self._handle.set_name(f"{type(self).__name__}-{':'.join(map(str, self._identity))}")

    def run(self):
        """Method to be run in sub-process; can be overridden in sub-class."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self):
        """Start child process."""
        self._check_closed()
        assert not self._started, "cannot start a process twice"
        assert self._handle.parent_pid() == current_process().pid, \
            "can only start a process object created by current process"
        assert not current_process().daemon, "daemonic processes are not allowed to have children"
        from . import spawn
        spawn.hand_over(self)
        _wit.call(self._handle.start)
        self._started = True
        del self._target, self._args, self._kwargs
        _children[_wit.call(self._handle.pid)] = self

    def terminate(self):
        """Terminate process; sends SIGTERM signal or uses TerminateProcess()."""
        self._signal(self._handle.terminate, "terminate")

    def kill(self):
        """Terminate process; sends SIGKILL signal or uses TerminateProcess()."""
        self._signal(self._handle.kill, "kill")

    def _signal(self, method, name):
        self._check_closed()
        if not self._started or self is current_process():
            raise AttributeError(f"'NoneType' object has no attribute '{name}'")
        _wit.call(method)

    def join(self, timeout=None):
        """Wait until child process terminates."""
        self._check_closed()
        _wit.call(self._handle.join, _wit.nanos(timeout))
        if self._started and _wit.call(self._handle.exitcode) is not None:
            _children.pop(_wit.call(self._handle.pid), None)

    def is_alive(self):
        """Return whether process is alive."""
        self._check_closed()
        return _wit.call(self._handle.is_alive)

    def close(self):
        """Close the Process object, releasing the resources it holds."""
        if self._closed:
            return
        _wit.call(self._handle.close)
        for pid in [pid for pid, child in _children.items() if child is self]:
            del _children[pid]
        self._sentinel = None
        self._closed = True

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    @property
    def name(self):
        return self._handle.name()

    @name.setter
    def name(self, name):
        assert isinstance(name, str), "name must be a string"
        self._handle.set_name(name)

    @property
    def daemon(self):
        """Return whether process is a daemon."""
        return self._handle.daemon()

    @daemon.setter
    def daemon(self, daemonic):
        """Set whether process is a daemon."""
        assert not self._started, "process has already started"
        _wit.call(self._handle.set_daemon, bool(daemonic))

    @property
    def authkey(self):
        return AuthenticationString(self._handle.authkey())

    @authkey.setter
    def authkey(self, authkey):
        """Set authorization key of process."""
        self._handle.set_authkey(bytes(AuthenticationString(authkey)))

    @property
    def exitcode(self):
        """Return exit code of process or `None` if it has yet to stop."""
        self._check_closed()
        return _wit.call(self._handle.exitcode)

    @property
    def ident(self):
        """Return identifier (PID) of process or `None` if it has yet to start."""
        self._check_closed()
        return _wit.call(self._handle.pid)

    pid = ident

    @property
    def sentinel(self):
        """Return a sentinel, ready when the process has ended (connection.wait takes it)."""
        self._check_closed()
        if self._sentinel is None:
            self._sentinel = _Sentinel(_wit.call(self._handle.sentinel))
        return self._sentinel

    @property
    def _identity(self):
        return tuple(self._handle.identity())

    @property
    def _parent_pid(self):
        return self._handle.parent_pid()

    def __getstate__(self):
        """What a child gets of this object: the handles stay here."""
        state = dict(self.__dict__)
        for handle in ("_handle", "_sentinel", "_handed"):
            state.pop(handle, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._handle, self._sentinel, self._handed = None, None, None

    def __repr__(self):
        text = self._handle.display()  # `<Process name=...>`: a subclass shows its own name
        return text if isinstance(self, _View) else f"<{type(self).__name__} {text.split(' ', 1)[1]}"

    def _bootstrap(self, parent_sentinel=None):
        """Runs the process's `run` in the child; returns its exit code."""
        from . import util
        global _current_process, _children
        try:
            _children = {}
            util._close_stdin()
            _current_process = self
            try:
                self.run()
                exitcode = 0
            finally:
                util._exit_function()
        except SystemExit as e:
            if e.code is None:
                exitcode = 0
            elif isinstance(e.code, int):
                exitcode = e.code
            else:
                sys.stderr.write(str(e.code) + "\n")
                exitcode = 1
        except:
            exitcode = 1
            import traceback
            sys.stderr.write("Process %s:\n" % self.name)
            traceback.print_exc()
        finally:
            util._flush_std_streams()
        return exitcode


class AuthenticationString(bytes):
    """An authkey: bytes that refuse to be pickled except for a child's start."""

    def __reduce__(self):
        from .spawn import spawning
        if not spawning():
            raise TypeError("Pickling an AuthenticationString object is disallowed for security reasons")
        return AuthenticationString, (bytes(self),)


class _View(BaseProcess):
    """A process object this program did not make (a host-side view)."""

    def __init__(self, handle):
        self._handle = handle
        self._started = True
        self._closed = False
        self._sentinel = None
        self._handed = None


class _MainProcess(_View):
    def close(self):
        pass


class _ParentProcess(_View):
    def join(self, timeout=None):
        """Wait until parent process terminates."""
        from .connection import wait
        wait([self.sentinel], timeout=timeout)
