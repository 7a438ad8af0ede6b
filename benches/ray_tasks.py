#!/usr/bin/env python3
"""Ray's own figures for benches/cluster.rs, from the same cluster in the same run.

Usage: $WMP_RAY_PYTHON ray_tasks.py [SAMPLES [TASKS [ROUNDS [ACTORS]]]]
(defaults 500 1000 10 5), with WMP_RAY_ADDRESS naming the GCS
(scripts/ray-cluster.sh sets both). Connects as a driver and measures:

- a trivial `@ray.remote` task's round trip, `ray.get(f.remote())` one at a
  time: placed as Ray likes, and pinned to node b (resource node_b);
- tasks per second with many in flight: `ray.get([f.remote() for _ in
  range(TASKS)])`, ROUNDS times, as Ray places them over both nodes;
- an actor's start on node b, to its first method's answer (a new worker
  process on that node), ACTORS times.

Prints one JSON object on stdout (Ray's own messages go to stderr):
timings in microseconds as {"p50", "p90", "n"}, rates as {"p50", "p90",
"n", "rounds"} where p90 is the rate of the slower 90th-percentile round.
"""
import json
import os
import sys
import time

import ray


@ray.remote
def f():
    return None


@ray.remote(num_cpus=0, resources={"node_b": 0.001})
class Pinger:
    def ping(self):
        return None


def percentiles(samples):
    samples = sorted(samples)
    return {
        "p50": samples[len(samples) // 2],
        "p90": samples[min(len(samples) * 9 // 10, len(samples) - 1)],
        "n": len(samples),
    }


def round_trips(task, samples):
    for _ in range(samples // 10 + 1):
        ray.get(task.remote())  # warm up: workers started, leases cached
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        ray.get(task.remote())
        times.append((time.perf_counter() - t0) * 1e6)
    return percentiles(times)


def throughput(tasks, rounds):
    ray.get([f.remote() for _ in range(tasks)])  # warm up
    durations = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ray.get([f.remote() for _ in range(tasks)])
        durations.append(time.perf_counter() - t0)
    durations.sort()
    return {
        "p50": tasks / durations[len(durations) // 2],
        "p90": tasks / durations[min(len(durations) * 9 // 10, len(durations) - 1)],
        "n": tasks,
        "rounds": rounds,
    }


def actor_starts(count):
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        actor = Pinger.remote()
        ray.get(actor.ping.remote())
        times.append((time.perf_counter() - t0) * 1e6)
        ray.kill(actor)
    return percentiles(times)


def main():
    args = [int(a) for a in sys.argv[1:]]
    samples, tasks, rounds, actors = args + [500, 1000, 10, 5][len(args):]
    t0 = time.perf_counter()
    ray.init(address=os.environ["WMP_RAY_ADDRESS"], log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0
    nodes = [n for n in ray.nodes() if n["Alive"]]
    result = {
        "ray_version": ray.__version__,
        "nodes": len(nodes),
        "cpus": ray.cluster_resources().get("CPU", 0),
        "init_s": init_s,
        "task_round_trip_us": round_trips(f, samples),
        "task_round_trip_node_b_us": round_trips(f.options(resources={"node_b": 0.001}), samples),
        "tasks_per_s": throughput(tasks, rounds),
        "actor_start_node_b_us": actor_starts(actors),
    }
    ray.shutdown()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
