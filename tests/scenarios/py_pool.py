"""Pool, as CPython's: map, starmap, imap, imap_unordered, apply and
apply_async with callbacks, an exception in a task raised again by get,
an initializer, maxtasksperchild, timeouts, and the errors of a pool that
is closed, still running or too small."""

import multiprocessing as mp
import time

from scenario_output import attempt, show

_greeting = None


def square(x):
    return x * x


def power(x, y):
    return x ** y


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"three is not allowed (got {x})")
    return x


def setup(greeting):
    global _greeting
    _greeting = greeting


def greet(name):
    return f"{_greeting}, {name}"


def whoami(_):
    return mp.current_process().name


def slow(x):
    time.sleep(0.5)
    return x


def main():
    mp.set_start_method("spawn")
    with mp.Pool(2) as pool:
        show("map", pool.map(square, range(10)))
        show("map chunks", pool.map(square, range(7), chunksize=3))
        show("starmap", pool.starmap(power, [(2, 3), (3, 2), (10, 0)]))
        show("imap", list(pool.imap(square, range(6))))
        show("imap chunks", list(pool.imap(square, range(6), chunksize=4)))
        show("imap_unordered", sorted(pool.imap_unordered(square, range(6))))
        show("apply", pool.apply(power, (2, 10)))
        got = []
        r = pool.apply_async(square, (12,), callback=got.append)
        show("apply_async", r.get(timeout=30), r.successful(), got)
        attempt("map with a failing task", lambda: pool.map(fail_on_three, range(5)))
        errors = []
        r = pool.apply_async(fail_on_three, (3,), error_callback=errors.append)
        attempt("apply_async of a failing task", lambda: r.get(timeout=30))
        show("error_callback", [f"{type(e).__name__}: {e}" for e in errors], r.successful())
        it = pool.imap(fail_on_three, [1, 3, 5])
        attempt("imap 1", lambda: next(it))
        attempt("imap 2", lambda: next(it))
        attempt("imap 3", lambda: next(it))
        attempt("imap end", lambda: next(it))
        r = pool.apply_async(slow, (1,))
        attempt("get with a short timeout", lambda: r.get(timeout=0.01))
        attempt("then", lambda: r.get(timeout=30))
        show("empty map", pool.map(square, []))

    with mp.Pool(2, initializer=setup, initargs=("hello",)) as pool:
        show("initializer", pool.map(greet, ["a", "b", "c"]))

    pool = mp.Pool(2, maxtasksperchild=1)
    names = pool.map(whoami, range(4), chunksize=1)
    show("maxtasksperchild", len(set(names)), sorted(set(n.split("-")[0] for n in names)))
    attempt("join while running", pool.join)
    pool.close()
    attempt("apply_async after close", lambda: pool.apply_async(square, (1,)))
    pool.join()
    show("joined")
    attempt("no processes", lambda: mp.Pool(0))
    attempt("bad maxtasksperchild", lambda: mp.Pool(1, maxtasksperchild=0))
    attempt("bad initializer", lambda: mp.Pool(1, initializer=3))


if __name__ == "__main__":
    main()
