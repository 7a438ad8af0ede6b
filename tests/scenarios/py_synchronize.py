"""Synchronization between Python processes, as multiprocessing.synchronize
and sharedctypes have it: the reprs and errors of Lock, RLock, Semaphore,
BoundedSemaphore and Condition; a Value counter that children increment
under its lock (and Pool workers given it by their initializer); an Array
that children write (one held by a Process subclass); an Event, a
Condition (notify, then notify_all) and a Barrier that children wait on;
and a lock held by a child that is killed, which stays held."""

import multiprocessing as mp
import time
from multiprocessing.sharedctypes import copy, synchronized

from scenario_output import attempt, show


def add(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def remember(counter):
    global pool_counter
    pool_counter = counter


def bump(n):
    with pool_counter.get_lock():
        pool_counter.value += n
    return n


class Squarer(mp.Process):
    """Writes the square of its index into the shared array it holds."""

    def __init__(self, squares, index):
        super().__init__()
        self.squares, self.index = squares, index

    def run(self):
        self.squares[self.index] = self.index * self.index


def scale(raw, word, factor):
    raw[:] = [item * factor for item in raw[:]]
    word.value = word.value.upper()


def wait_for_event(event, results):
    results.put(event.wait(30))


def wait_for_notify(cond, results):
    with cond:
        results.put("waiting")
        results.put(cond.wait(30))


def meet(barrier, results):
    results.put(barrier.wait(30))


def hold_forever(lock, results):
    lock.acquire()
    results.put("held")
    time.sleep(60)


def run_all(processes):
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    return [p.exitcode for p in processes]


def locks():
    lock = mp.Lock()
    show(repr(lock), "acquire", lock.acquire())
    show(repr(lock), "again", lock.acquire(timeout=0.05), "non-blocking", lock.acquire(False))
    lock.release()
    attempt("release unheld Lock", lock.release)
    with lock:
        show("with", repr(lock))

    rlock = mp.RLock()
    show(repr(rlock))
    attempt("release unheld RLock", rlock.release)
    show("acquire twice", rlock.acquire(), rlock.acquire(timeout=0), repr(rlock))
    rlock.release()
    rlock.release()
    show(repr(rlock))

    sem = mp.Semaphore(2)
    show(repr(sem), sem.get_value(), sem.acquire(), sem.acquire(), "third", sem.acquire(timeout=0.05))
    for _ in range(3):
        sem.release()
    show(repr(sem))
    bounded = mp.BoundedSemaphore(1)
    show(repr(bounded))
    attempt("release full BoundedSemaphore", bounded.release)
    attempt("Semaphore(-1)", lambda: mp.Semaphore(-1))

    cond = mp.Condition()
    show(repr(cond))
    attempt("wait unheld", cond.wait)
    attempt("notify unheld", cond.notify)
    with cond:
        show("wait times out", cond.wait(0.05), repr(cond), "wait_for", cond.wait_for(lambda: False, 0.05))
    show(repr(mp.Condition(mp.Lock())))

    ours, theirs = mp.Pipe()
    attempt("send a Lock", lambda: ours.send(lock))
    attempt("send a Value", lambda: ours.send(mp.Value("i")))


def shared_memory():
    counter = mp.Value("i", 0)
    show("exitcodes", run_all([mp.Process(target=add, args=(counter, 50)) for _ in range(4)]))
    show("counter", counter.value, repr(counter))
    with mp.Pool(2, initializer=remember, initargs=(counter,)) as pool:
        show("pool", pool.map(bump, range(5)))
    show("counter after the pool", counter.value)

    squares = mp.Array("i", 5)
    show("exitcodes", run_all([Squarer(squares, index) for index in range(5)]))
    show("squares", squares[:], len(squares), squares[-1], squares[1:4])

    raw, word = mp.RawArray("d", [0.5, 1.5, 2.5]), mp.Array("c", b"shared")
    show("exitcodes", run_all([mp.Process(target=scale, args=(raw, word, 2))]))
    show("scaled", list(raw), word.value, word.raw, repr(mp.RawValue("i", 2**31)), repr(mp.Value("c")))
    locked = mp.Value("d", 1.5, lock=mp.Lock())
    show("own lock", repr(locked), repr(locked.get_lock()), "no lock", repr(mp.Value("d", 1.5, lock=False)))
    attempt("lock='x'", lambda: mp.Value("i", lock="x"))
    duplicate = copy(squares.get_obj())
    duplicate[0] = 99
    show("copy", duplicate[:], squares[0], repr(synchronized(mp.RawValue("u", "x"))), mp.RawArray("u", "hé")[:])
    attempt("Value('z')", lambda: mp.Value("z"))
    attempt("index 5", lambda: squares[5])
    attempt("assign a short slice", lambda: squares.__setitem__(slice(0, 2), [1]))


def waits():
    results = mp.Queue()
    event = mp.Event()
    show("event", event.is_set(), event.wait(0.05))
    waiters = [mp.Process(target=wait_for_event, args=(event, results)) for _ in range(3)]
    for p in waiters:
        p.start()
    event.set()
    show("woken", [results.get(timeout=30) for _ in waiters], "set", event.is_set())
    for p in waiters:
        p.join()
    event.clear()
    show("cleared", event.is_set())

    cond = mp.Condition()
    sleepers = [mp.Process(target=wait_for_notify, args=(cond, results)) for _ in range(2)]
    for p in sleepers:
        p.start()
    show("sleepers", [results.get(timeout=30) for _ in sleepers])
    with cond:
        cond.notify()
    show("notified", results.get(timeout=30))
    with cond:
        cond.notify_all()
    show("notified all", results.get(timeout=30))
    for p in sleepers:
        p.join()

    barrier = mp.Barrier(3)
    show("barrier", barrier.parties, barrier.n_waiting, barrier.broken)
    show("exitcodes", run_all([mp.Process(target=meet, args=(barrier, results)) for _ in range(3)]))
    show("indices", sorted(results.get(timeout=30) for _ in range(3)), barrier.n_waiting, barrier.broken)
    barrier.abort()
    attempt("wait on an aborted barrier", barrier.wait)
    barrier.reset()
    show("reset", barrier.broken)


def killed_holder():
    lock, results = mp.Lock(), mp.Queue()
    holder = mp.Process(target=hold_forever, args=(lock, results))
    holder.start()
    show("holder", results.get(timeout=30))
    holder.kill()
    holder.join()
    show("killed", holder.exitcode, "acquire", lock.acquire(timeout=0.2), repr(lock))


def main():
    mp.set_start_method("spawn")
    locks()
    shared_memory()
    waits()
    killed_holder()


if __name__ == "__main__":
    main()
