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


def pipe_case(n, size):
    rx, tx = mp.Pipe(duplex=False)
    child = mp.Process(target=pipe_sink, args=(rx, n))
    child.start()
    message = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        tx.send_bytes(message)
    child.join()
    return time.perf_counter() - t0


def queue_case(n, size):
    queue = mp.Queue()
    child = mp.Process(target=queue_sink, args=(queue, n))
    child.start()
    message = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        queue.put(message)
    child.join()
    return time.perf_counter() - t0


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
