"""Objects over pipes and queues between Python processes (pickled, as
CPython does): send/recv of Python values, a JoinableQueue whose join
waits for task_done, a SimpleQueue, a listener whose client proves the
authkey it inherited, and wait over several sentinels."""

import multiprocessing as mp
from multiprocessing.connection import Client, Listener, wait

from scenario_output import show


def square_all(conn):
    while (item := conn.recv()) is not None:
        conn.send((item, item * item))
    conn.close()


def consume(tasks, results):
    while (task := tasks.get()) is not None:
        results.put(task.upper())
        tasks.task_done()
    tasks.task_done()


def reply(simple):
    simple.put({"from": mp.current_process().name, "values": [1, 2.5, None, ("t",)]})


def call_home(address):
    with Client(address, authkey=mp.current_process().authkey) as conn:
        conn.send(["hello", mp.current_process().name])


def nothing():
    pass


def main():
    mp.set_start_method("spawn")
    ours, theirs = mp.Pipe()
    p = mp.Process(target=square_all, args=(theirs,))
    p.start()
    theirs.close()
    for n in (3, 4.5, -2):
        ours.send(n)
        show("squared", ours.recv())
    ours.send(None)
    p.join()
    show("closed", ours.closed)
    ours.close()
    show("closed", ours.closed)

    tasks, results = mp.JoinableQueue(), mp.Queue()
    worker = mp.Process(target=consume, args=(tasks, results))
    worker.start()
    for word in ("alpha", "beta", "gamma"):
        tasks.put(word)
    tasks.join()
    show("all done", sorted(results.get() for _ in range(3)))
    tasks.put(None)
    worker.join()
    try:
        tasks.task_done()
    except ValueError as err:
        show("task_done", f"ValueError: {err}")

    simple = mp.SimpleQueue()
    r = mp.Process(target=reply, args=(simple,))
    r.start()
    show("simple", simple.get(), simple.empty())
    r.join()

    address = f"/tmp/wmp-scenario-objects-{mp.current_process().pid}"
    with Listener(address, authkey=mp.current_process().authkey) as listener:
        c = mp.Process(target=call_home, args=(address,))
        c.start()
        with listener.accept() as conn:
            show("listener got", conn.recv())
        c.join()

    sleepers = [mp.Process(target=nothing) for _ in range(2)]
    for s in sleepers:
        s.start()
    for s in sleepers:
        s.join()
    ready = wait([s.sentinel for s in sleepers], timeout=10)
    show("ended", len(ready), [s.exitcode for s in sleepers])


if __name__ == "__main__":
    main()
