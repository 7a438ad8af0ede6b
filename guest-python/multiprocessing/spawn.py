"""How a Python guest's process begins, as CPython's spawn start method:
the main process runs the main module as `__main__`; a child runs it again
as `__mp_main__` (so its `if __name__ == "__main__":` block does not run),
unpickles its process object from the bootstrap queue its parent handed
it, and runs `_bootstrap`. A child started by another program or language
runs a function of the main module by name, with JSON arguments.

A guest reads no files at run time: componentize-py snapshots the
interpreter after importing the app module at build time. So at build time
this module compiles the top-level modules of the app's directories
(componentize-py mounts them as /0, /1, ...), and runs their code from
that bundle. The app module's `Run` is `command(MODULE)` (or wmp_main's,
which runs the module argv[1] names)."""

import io
import json
import os
import re
import sys
import traceback
import types

from wit_world import exports
from wit_world.imports import environment

from . import _wit, reduction, util
from .process import SPAWN_TARGET

_spawning = False
#: The main module's name, handed to children so they can run it too.
_main_module = None
#: Module name -> code, for the top-level modules of the app's directories.
_bundled = {}


def _bundle():
    """Compiles the top-level modules of the app's directories: not this
    package's, and not a site-packages (one with .dist-info entries), which
    holds libraries rather than programs."""
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for entry in sys.path:
        if re.fullmatch(r"/\d+", entry) and entry != own and os.path.isdir(entry) \
                and not any(name.endswith(".dist-info") for name in os.listdir(entry)):
            for file in sorted(os.listdir(entry)):
                if file.endswith(".py") and file[:-3] not in _bundled:
                    path = os.path.join(entry, file)
                    with open(path, encoding="utf-8") as source:
                        _bundled[file[:-3]] = compile(source.read(), path, "exec")


_bundle()


def bundled_modules():
    """The names of the app's modules this guest can run."""
    return sorted(_bundled)


def command(module=None):
    """The `wasi:cli/run` export of a Python guest: an app module says
    `Run = spawn.command(__name__)` to run itself as `__main__`; with no
    module, argv[1] names it, as for `python -m`."""

    class Run(exports.Run):
        def run(self):
            run_main(module)

    return Run


def spawning():
    """True while a child's process object is being pickled (authkeys may be)."""
    return _spawning


def hand_over(process):
    """Before `process` starts: gives its child what it needs to rebuild it."""
    global _spawning
    if process._handed is not None:
        reduction.hand_over_json(process._handle, process._handed)
        return
    boot = _wit.connection.Queue(0)
    _wit.call(_wit.connection.pass_queue, process._handle, boot)
    buf = io.BytesIO()
    _spawning = True
    try:
        pickler = reduction.HandingPickler(buf, process._handle, queues_passed=1)
        pickler.dump({"main": _main_module})
        pickler.dump(process)
    finally:
        _spawning = False
    _wit.call(boot.put, buf.getvalue(), None)
    boot.close()


def run_main(module=None):
    """Runs `module` (default: the one argv[1] names) as the main process,
    or the target a child was started for; ends the process with the exit
    code CPython would give."""
    request = _wit.process.spawn_context()
    if request is not None:
        return _exit(_child(request, module))
    args = list(environment.get_arguments())
    if module is None:
        if len(args) < 2:
            sys.stderr.write(f"usage: {args[0] if args else 'wmp run APP.wasm'} MODULE [ARGS...]; modules: "
                             f"{' '.join(bundled_modules())}\n")
            _exit(2)
        module = args.pop(1)
    _exit(_run_as_main(module, args[1:]))


def _run_as_main(module, argv):
    global _main_module
    if module not in _bundled:
        sys.stderr.write(f"No module named {module}\n")
        return 1
    _main_module = module
    sys.argv = [_bundled[module].co_filename, *argv]
    try:
        _execute(module, "__main__")
        code = 0
    except SystemExit as e:
        code = _system_exit_code(e)
    except BaseException as e:
        _print_from(e, sys.argv[0])
        code = 1
    util._exit_function()
    return code


def _execute(module, run_name):
    """Runs the bundled `module` as a fresh module named `run_name`, which
    is `__main__` from then on (pickles find targets there)."""
    code = _bundled[module]
    main = types.ModuleType(run_name)
    main.__file__ = code.co_filename
    sys.modules[run_name] = sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _system_exit_code(e):
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    sys.stderr.write(str(e.code) + "\n")
    return 1


def _print_from(e, filename):
    """Prints the traceback as `python script.py` shows it: from the
    script's own frame, without this module's."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb or e.__traceback__)


def _prepare(main):
    """Runs the main module as `__mp_main__`, as CPython's spawn does."""
    global _main_module
    _main_module = main
    if main is not None and "__mp_main__" not in sys.modules:
        _execute(main, "__mp_main__")


def _child(request, module):
    from .context import Process
    if request.target == SPAWN_TARGET:
        boot = reduction.inherited()["queue"][0]
        unpickler = reduction.InheritingUnpickler(io.BytesIO(_wit.call(boot.get, None)))
        boot.close()
        prep = unpickler.load()
        _prepare(prep["main"])
        process = unpickler.load()
    else:  # started by another program: a function of the main module, JSON arguments
        _prepare(module)
        args = json.loads(request.args or b"[]")
        process = Process.__new__(Process)
        process.__setstate__({"_target": _named(sys.modules["__main__"], request.target),
                              "_args": tuple(args) if isinstance(args, list) else (args,),
                              "_kwargs": {}, "_program": None, "_started": False, "_closed": False})
    process._handle = _wit.process.current_process()
    return process._bootstrap()


def _named(module, name):
    """The function `name` of `module`, looked up when called (in the
    child's `_bootstrap`, so a missing one ends it as CPython would)."""
    def call(*args, **kwargs):
        return getattr(module, name)(*args, **kwargs)
    return call


def _exit(code):
    util._flush_std_streams()
    if code:
        _wit.process.exit(code)
