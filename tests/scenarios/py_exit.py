"""The end of the main process, as CPython's atexit handler does it: a
daemonic child still running is terminated, a non-daemonic one is waited
for (its last line comes out after main's), and sys.exit's code is the
program's exit status."""

import multiprocessing as mp
import sys
import time

from scenario_output import show


def slow(inbox):
    inbox.recv_bytes()
    time.sleep(0.2)
    show("slow child done")


def forever():
    time.sleep(600)


def main():
    mp.set_start_method("spawn")
    ours, theirs = mp.Pipe()
    slowpoke = mp.Process(target=slow, args=(theirs,))
    watchdog = mp.Process(target=forever, daemon=True)
    slowpoke.start()
    watchdog.start()
    show("main ends with", sorted(p.name for p in mp.active_children()))
    ours.send_bytes(b"go")
    sys.exit(3)


if __name__ == "__main__":
    main()
