"""A queue shared by a parent and two children: what each put arrives
once, a get on an empty queue times out with queue.Empty, and a full
bounded queue refuses a put with queue.Full."""

import multiprocessing as mp
import queue

from scenario_output import attempt, show


def producer(q, tag, count):
    for n in range(count):
        q.put(f"{tag}{n}".encode())


def main():
    q = mp.Queue()
    children = [mp.Process(target=producer, args=(q, tag, 3)) for tag in ("a", "b")]
    for child in children:
        child.start()
    got = sorted(q.get(timeout=10) for _ in range(6))
    for child in children:
        child.join()
    show("got", got, [child.exitcode for child in children])
    attempt("empty", q.empty)
    attempt("get from an empty queue", lambda: q.get(timeout=0.05))

    bounded = mp.Queue(1)
    bounded.put(b"only")
    attempt("put into a full queue", lambda: bounded.put(b"more", timeout=0.05))
    attempt("get", bounded.get)


if __name__ == "__main__":
    main()
