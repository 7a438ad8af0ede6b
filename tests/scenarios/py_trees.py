"""Trees: a child starts its own children (names and identities nest), sees
its parent, and lists its active children; a daemonic child may not have
children and is terminated when its parent ends; the authkey is inherited,
can be set for a child, and refuses to be pickled."""

import multiprocessing as mp
import pickle
import time

from scenario_output import show


def leaf(tag):
    me = mp.current_process()
    show("leaf", tag, me.name, me._identity, mp.parent_process().name)


def branch():
    me = mp.current_process()
    show("branch", me.name, me._identity, repr(mp.parent_process()))
    kids = [mp.Process(target=leaf, args=(n,)) for n in range(2)]
    for kid in kids:
        kid.start()
        kid.join()
    show("branch active", mp.active_children())


def daemon_tries():
    try:
        mp.Process(target=leaf, args=("never",)).start()
    except AssertionError as err:
        show("daemon", f"AssertionError: {err}")


def sleeper():
    time.sleep(60)


def parent_of_a_daemon(inbox):
    watchdog = mp.Process(target=sleeper, daemon=True)
    watchdog.start()
    inbox.put(watchdog.name)


def keys(expected):
    show("child key matches", bytes(mp.current_process().authkey) == expected)


def main():
    mp.set_start_method("spawn")
    b = mp.Process(target=branch)
    b.start()
    b.join()
    show("branch", b.exitcode, b._identity)

    d = mp.Process(target=daemon_tries, daemon=True)
    d.start()
    d.join()
    show("daemon", repr(d))

    q = mp.Queue()
    p = mp.Process(target=parent_of_a_daemon, args=(q,))
    p.start()
    show("its daemon", q.get(timeout=30))
    p.join()
    show("parent of a daemon ended", p.exitcode)

    key = mp.current_process().authkey
    show("key", type(key).__name__, len(key))
    inherit = mp.Process(target=keys, args=(bytes(key),))
    inherit.start()
    inherit.join()
    chosen = mp.Process(target=keys, args=(b"chosen",))
    chosen.authkey = b"chosen"
    chosen.start()
    chosen.join()
    try:
        pickle.dumps(key)
    except TypeError as err:
        show("pickle", f"TypeError: {err}")
    show("active at the end", mp.active_children())


if __name__ == "__main__":
    main()
