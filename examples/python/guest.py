"""The Python wmp guest: prints its identity, starts two children running
`worker` (exit codes 0 and 3), joins them and prints their exit codes.

With arguments `PROGRAM ARGS...` it instead starts the main of PROGRAM, a
program the host shared with guests (a Rust guest, say), with ARGS as its
argv, and prints its exit code.
"""

import sys

from wit_world import exports
from wit_world.imports import environment
from wmp_multiprocessing import Process, current_process, exit, run


def say(line):
    """Writes a line in one write (print writes the newline apart, so the
    lines of children running at the same time could interleave)."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()

def describe(role, p):
    identity = ",".join(str(n) for n in p.identity)
    parent = "none" if p.parent_pid is None else p.parent_pid
    say(f"{role} name={p.name} pid={p.pid} identity=[{identity}] parent_pid={parent}")

def worker(code):
    describe("worker", current_process())
    exit(int(code))

def main():
    argv = environment.get_arguments()[1:]
    describe("main", current_process())
    if argv:
        children = [Process(args=argv[1:], program=argv[0])]
    else:
        children = [Process(target=worker, args=(code,)) for code in (0, 3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
        say(f"{argv[0] if argv else child.name} exitcode={child.exitcode}")

class Run(exports.Run):
    def run(self):
        run(main, worker)
