"""The Python wmp guest, an ordinary `multiprocessing` program: it prints
its identity, starts two children running `worker` (exit codes 0 and 3),
joins them and prints their exit codes.

With arguments `PROGRAM ARGS...` it instead starts the main of PROGRAM, a
program the host shared with guests (a Rust guest, say), with ARGS as its
argv, and prints its exit code. With `mixed PROGRAM...` it starts the
`echo` target of each PROGRAM (any language) with one end of a pipe, and
prints what comes back."""

import multiprocessing as mp
import sys
from multiprocessing import connection, spawn

from wit_world.imports import environment


def say(line):
    """Writes a line in one write (print writes the newline apart, so the
    lines of children running at the same time could interleave)."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def describe(role, p):
    identity = ",".join(str(n) for n in p._identity)
    parent = "none" if p._parent_pid is None else p._parent_pid
    say(f"{role} name={p.name} pid={p.pid} identity=[{identity}] parent_pid={parent}")


def worker(code):
    describe("worker", mp.current_process())
    sys.exit(int(code))


def echo():
    """Replies to each message on the first inherited connection, upper-cased, until `bye`."""
    conn = connection.inherited_connections()[0]
    tag = f" (python {mp.current_process().name})".encode()
    while (message := conn.recv_bytes()) != b"bye":
        conn.send_bytes(message.upper() + tag)


def mixed(programs):
    for program in programs:
        ours, theirs = mp.Pipe()
        child = mp.Process(target="echo", program=program, args=(theirs,))
        child.start()
        ours.send_bytes(b"hello from python")
        say(f"mixed {program}: {ours.recv_bytes().decode()}")
        ours.send_bytes(b"bye")
        child.join()
        say(f"{program} exitcode={child.exitcode}")


def main():
    argv = environment.get_arguments()[1:]
    if argv[:1] == ["mixed"]:
        return mixed(argv[1:])
    describe("main", mp.current_process())
    if argv:
        children = [mp.Process(args=argv[1:], program=argv[0])]
    else:
        children = [mp.Process(target=worker, args=(code,)) for code in (0, 3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
        say(f"{argv[0] if argv else child.name} exitcode={child.exitcode}")


if __name__ == "__main__":
    main()


# The wasi:cli/run export: this module as __main__, or the target a child was started for.
Run = spawn.command(__name__)
