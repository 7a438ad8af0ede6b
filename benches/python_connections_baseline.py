#!/usr/bin/env python3
"""Throughput of Python multiprocessing.Pipe and Queue between two processes.

Usage: python_connections_baseline.py [SCALE]   (default 1.0: message counts)
The parent sends N messages of SIZE bytes to a child that receives them all;
the time runs from the first send until the child has them all (joined).
Prints one line per case:
  `case=pipe_64B n=200000 size=64 msgs_per_s=412345.6 mib_per_s=25.2`
"""
import multiprocessing as mp
import sys
import time


def pipe_sink(conn, n):
    for _ in range(n):
        conn.recv_bytes()


def queue_sink(queue, n):
    for _ in range(n):
        queue.get()


def timed_case(channel, sink, send, n, size):
    """Seconds from the first send of n messages of `size` bytes until the
    child draining `channel` with `sink` has read them all and ended."""
    child = mp.Process(target=sink, args=(channel, n))
    child.start()
    message = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        send(message)
    child.join()
    return time.perf_counter() - t0


def pipe_case(n, size):
    rx, tx = mp.Pipe(duplex=False)
    return timed_case(rx, pipe_sink, tx.send_bytes, n, size)


def queue_case(n, size):
    queue = mp.Queue()
    return timed_case(queue, queue_sink, queue.put, n, size)


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    mp.set_start_method("fork")
    cases = [
        ("pipe_64B", pipe_case, 200_000, 64),
        ("pipe_1MiB", pipe_case, 500, 1 << 20),
        ("queue_64B", queue_case, 100_000, 64),
        ("queue_1MiB", queue_case, 200, 1 << 20),
    ]
    for name, case, n, size in cases:
        n = max(10, int(n * scale))
        seconds = case(n, size)
        print(f"case={name} n={n} size={size} msgs_per_s={n / seconds:.1f} "
              f"mib_per_s={n * size / seconds / (1 << 20):.1f}", flush=True)
