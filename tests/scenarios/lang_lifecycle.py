"""A child's life as the process model reports it: reprs before start,
while running and after its end, exit codes of exit(n), terminate and
kill, and the errors of misuse, printed as `Type: message`."""

import multiprocessing as mp
import sys
import time

from scenario_output import show


def worker(code):
    show("worker", mp.current_process().name, "exits with", code)
    sys.exit(int(code))


def spin():
    while True:
        time.sleep(0.01)


def attempt(what, action):
    try:
        action()
        show(what, "ok")
    except Exception as err:
        show(what, f"{type(err).__name__}: {err}")


def main():
    show("main", mp.current_process().name, repr(mp.parent_process()))
    p = mp.Process(target=worker, args=("3",))
    show(repr(p), p.exitcode, p.is_alive())
    p.start()
    p.join()
    show(repr(p), p.exitcode, p.is_alive())
    show(p.name, p.daemon, p.pid == p.ident)
    attempt("start again", p.start)

    for stop in ("terminate", "kill"):
        q = mp.Process(target=spin, name=f"spinner-{stop}")
        q.start()
        getattr(q, stop)()
        q.join()
        show(repr(q), q.exitcode)

    r = mp.Process(target=spin, daemon=True)
    show(repr(r))
    r.start()
    attempt("close while running", r.close)
    r.kill()
    r.join()
    attempt("close", r.close)
    attempt("is_alive after close", r.is_alive)
    attempt("join unstarted", mp.Process(target=spin).join)
    show("active", mp.active_children())


if __name__ == "__main__":
    main()
