"""`multiprocessing` for wmp guests written in Python (componentize-py).

A thin layer over the generated `wmp:process` bindings that reads like
CPython's module: `Process(target=worker, args=(3,))`, `.start()`,
`.join()`, `.exitcode`, `current_process().name`. A child is a fresh
instance of this program: `run(main, worker, ...)` is the entry point that
runs `main` in a process started normally and the requested target in a
child. Arguments travel as JSON: `args` as a list; a target gets the list
as its positional arguments, or any other JSON value (what a Rust guest's
`Process::new(target, &value)` sends) as its one argument.
"""

import json
import sys
import traceback

from componentize_py_types import Err
from wit_world.imports import process as wit


class ProcessError(Exception):
    """An error of the process model, with CPython's message."""


def _call(method, *args):
    try:
        return method(*args)
    except Err as err:
        raise ProcessError(err.value.value) from None


class Process:
    """A child process object, or the view of the current or parent process.

    `target` is a function passed to `run` (or its name); None runs the main
    of `program`, another program the host shared, with `args` as its argv.
    """

    def __init__(self, target=None, args=(), name=None, daemon=None, program=None, *, _handle=None):
        if _handle is None:
            target_name = target if isinstance(target, str) else getattr(target, "__name__", "")
            spec = wit.Spec(target_name, json.dumps(list(args)).encode(), name, daemon, program, None)
            _handle = wit.Process(spec)
        self._handle = _handle

    def start(self):
        _call(self._handle.start)

    def join(self, timeout=None):
        """Waits until the process ends or `timeout` seconds pass."""
        _call(self._handle.join, None if timeout is None else int(timeout * 1e9))

    def is_alive(self):
        return _call(self._handle.is_alive)

    def terminate(self):
        _call(self._handle.terminate)

    def kill(self):
        _call(self._handle.kill)

    def close(self):
        _call(self._handle.close)

    @property
    def exitcode(self):
        return _call(self._handle.exitcode)

    @property
    def pid(self):
        return _call(self._handle.pid)

    ident = pid

    @property
    def name(self):
        return self._handle.name()

    @name.setter
    def name(self, name):
        self._handle.set_name(name)

    @property
    def daemon(self):
        return self._handle.daemon()

    @daemon.setter
    def daemon(self, daemon):
        _call(self._handle.set_daemon, daemon)

    @property
    def identity(self):
        """`[]` for the main process, `[2, 1]` for `Process-2:1`."""
        return list(self._handle.identity())

    @property
    def parent_pid(self):
        return self._handle.parent_pid()

    def __repr__(self):
        return self._handle.display()


def current_process():
    return Process(_handle=wit.current_process())


def parent_process():
    parent = wit.parent_process()
    return None if parent is None else Process(_handle=parent)


def active_children():
    return [Process(_handle=child) for child in wit.active_children()]


def exit(code):
    """Ends this process at once with `code` (sys.exit in WASI 0.2 gives only 0 or 1)."""
    sys.stdout.flush()
    sys.stderr.flush()
    wit.exit(code)


def run(main, *targets):
    """Runs `main()`, or in a child the target it was started for; an
    uncaught exception prints its traceback and exits with code 1."""
    try:
        request = wit.spawn_context()
        if request is None:
            main()
        else:
            by_name = {target.__name__: target for target in targets}
            if request.target not in by_name:
                raise ProcessError(f"unknown target {request.target!r}; this program has {sorted(by_name)}")
            target, args = by_name[request.target], json.loads(request.args)
            if isinstance(args, list):
                target(*args)
            else:
                target(args)
    except Exception:
        traceback.print_exc()
        exit(1)
    sys.stdout.flush()
