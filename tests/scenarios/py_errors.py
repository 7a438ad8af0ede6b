"""How a Python child ends: normally, by sys.exit with an int, None or a
message, by an uncaught exception (the `Process NAME:` header and the
traceback on stderr), and a subclass that overrides run(); the arguments
arrive with their types (pickled); and the errors of misuse, with
CPython's exception types and messages."""

import multiprocessing as mp
import sys

from scenario_output import attempt, show


def exits(how):
    if how == "none":
        sys.exit()
    if how == "message":
        sys.exit("exiting with a message")
    sys.exit(how)


def fails():
    raise ValueError("something went wrong in the child")


def types(*args, **kwargs):
    show("args", args, "kwargs", kwargs)


class Worker(mp.Process):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def run(self):
        show("run of", mp.current_process().name, "factor", self.factor)
        sys.exit(self.factor * 2)


def run_to_end(p):
    p.start()
    p.join()
    return p.exitcode


def main():
    mp.set_start_method("spawn")
    for how in ("none", 0, 7, "message"):
        show("exit", how, run_to_end(mp.Process(target=exits, args=(how,))))
    show("fails", run_to_end(mp.Process(target=fails)))
    show("types", run_to_end(mp.Process(target=types, args=((1, 2), b"\x00bytes", {"k": [1.5]}),
                                        kwargs={"flag": True, "none": None})))
    w = Worker(21)
    show(repr(w))
    show("worker", run_to_end(w), repr(w))

    p = mp.Process(target=exits, args=(0,))
    attempt("sentinel before start", lambda: p.sentinel)
    attempt("terminate before start", p.terminate)
    attempt("kill before start", p.kill)
    attempt("is_alive before start", p.is_alive)
    attempt("exitcode before start", lambda: p.exitcode)
    attempt("pid before start", lambda: p.pid)
    attempt("a name that is no string", lambda: setattr(p, "name", 3))
    attempt("a group", lambda: mp.Process(group="g"))
    p.start()
    attempt("daemon after start", lambda: setattr(p, "daemon", True))
    p.join()
    attempt("join current", mp.current_process().join)
    attempt("terminate current", mp.current_process().terminate)
    attempt("start method", mp.get_start_method)
    attempt("set it again", lambda: mp.set_start_method("spawn"))
    attempt("spawn context", lambda: mp.get_context("spawn").get_start_method())
    attempt("no such method", lambda: mp.get_context("teleport"))
    ctx_process = mp.get_context("spawn").Process(target=exits, args=(0,))
    show(repr(ctx_process))
    raise RuntimeError("the main process fails at the end")


if __name__ == "__main__":
    main()
