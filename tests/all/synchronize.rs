//! Synchronization between processes: locks, semaphores, conditions,
//! events, barriers and shared values, held by the host and used from the
//! host and from guests; a lock whose holder is killed stays held, as
//! CPython's POSIX semaphores do.

use std::time::Duration;

use wmp_host::{Capabilities, ExitReason, Limit, Limits, Runtime, SemLockOps, SharedBytes, Stdio, SyncError};

use crate::PATIENCE;
use crate::cli::{stdout, wmp};

const SOON: Duration = Duration::from_millis(30);

fn sync_child(rt: &Runtime, target: &str, args: serde_json::Value) -> (wmp_host::Process, wmp_host::CaptureBuffer) {
    let program = rt.load(wmp_test_guests::SYNC).unwrap();
    let (out, captured) = Stdio::capture();
    let caps = Capabilities::new().args(["sync"]).stdout(out);
    (rt.process(&program).capabilities(caps).target(target, serde_json::to_vec(&args).unwrap()).build(), captured)
}

#[test]
fn a_lock_held_by_a_killed_process_stays_held() {
    // CPython: "if the process has acquired a lock or semaphore etc. then
    // terminating it is liable to cause other processes to deadlock".
    let rt = Runtime::new().unwrap();
    let lock = rt.lock();
    let (holder, out) = sync_child(&rt, "hold_lock", "".into());
    holder.pass_semlock(&lock).unwrap();
    holder.start().unwrap();
    while !out.text().contains("holding") {
        assert!(holder.is_alive().unwrap(), "the holder ended: {}", out.text());
        holder.join(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(lock.acquire(Some(Duration::ZERO)), Ok(false), "held by the child");
    holder.kill().unwrap();
    holder.join(Some(PATIENCE)).unwrap();
    assert_eq!(holder.exitcode(), Ok(Some(-9)));
    assert_eq!(lock.acquire(Some(SOON)), Ok(false), "still held after its holder died");
    assert_eq!(lock.value(), 0);
}

#[test]
fn children_counting_under_one_lock_lose_no_increment() {
    let rt = Runtime::new().unwrap();
    // A Value<i64> as the SDK passes it: its memory, then its RLock.
    let (memory, lock) = (rt.shared_memory(8), rt.rlock());
    let children: Vec<_> = (0..4)
        .map(|_| {
            let (p, _) = sync_child(&rt, "count_up", 250.into());
            p.pass_shared_memory(&memory).unwrap();
            p.pass_semlock(&lock).unwrap();
            p.start().unwrap();
            p
        })
        .collect();
    for p in &children {
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(0)), "{p}");
    }
    assert_eq!(i64::from_le_bytes(memory.read(0, 8).unwrap().try_into().unwrap()), 1000);
}

#[test]
fn an_event_the_host_sets_wakes_a_child_waiting_on_it() {
    let rt = Runtime::new().unwrap();
    let ready = rt.event();
    let (child, out) = sync_child(&rt, "wait_event", "".into());
    ready.parts().iter().try_for_each(|lock| child.pass_semlock(lock)).unwrap();
    child.start().unwrap();
    child.join(Some(SOON)).unwrap();
    assert_eq!(child.is_alive(), Ok(true), "waiting");
    ready.set().unwrap();
    child.join(Some(PATIENCE)).unwrap();
    assert_eq!((child.exitcode(), out.text()), (Ok(Some(0)), "set=true\n".to_owned()));
    assert_eq!(ready.is_set(), Ok(true));
}

#[test]
fn guests_share_their_own_values_events_and_locks_with_their_children() {
    let sync = wmp_test_guests::SYNC;
    let out = wmp(&["run", sync, "count", "4", "200"]);
    assert_eq!(stdout(&out), "total=800\n");
    let out = wmp(&["run", sync, "event"]);
    assert_eq!(stdout(&out), "set=true\nchild exitcode=Some(0)\n");
    let out = wmp(&["run", sync, "release-twice"]);
    assert_eq!(stdout(&out), "semaphore or lock released too many times\n");
}

#[test]
fn a_semaphore_counts_and_a_bounded_one_refuses_to_pass_its_bound() {
    let rt = Runtime::new().unwrap();
    let semaphore = rt.semaphore(2);
    assert_eq!((semaphore.acquire(None), semaphore.acquire(None)), (Ok(true), Ok(true)));
    assert_eq!(semaphore.acquire(Some(Duration::ZERO)), Ok(false));
    (0..3).for_each(|_| semaphore.release().unwrap());
    assert_eq!(semaphore.value(), 3, "an unbounded semaphore goes past its start");
    let bounded = rt.bounded_semaphore(1);
    assert_eq!(bounded.release(), Err(SyncError::ReleasedTooManyTimes));
    let rlock = rt.rlock();
    assert_eq!(rlock.release().unwrap_err().to_string(), "attempt to release recursive lock not owned by thread");
}

#[test]
fn a_condition_wakes_a_thread_waiting_for_a_predicate() {
    let rt = Runtime::new().unwrap();
    let (cond, flag) = (rt.condition(None), rt.shared_memory(1));
    assert_eq!(cond.wait(Some(SOON)), Err(SyncError::WaitWithoutLock));
    assert_eq!(cond.notify(1), Err(SyncError::NotifyWithoutLock));
    let (waiter_cond, waiter_flag) = (cond.clone(), flag.clone());
    let waiter = std::thread::spawn(move || {
        waiter_cond.acquire(None).unwrap();
        let seen = waiter_cond.wait_for(|| waiter_flag.read(0, 1).unwrap() == [1], Some(PATIENCE));
        waiter_cond.release().unwrap();
        seen
    });
    std::thread::sleep(SOON);
    cond.acquire(None).unwrap();
    flag.write(0, &[1]).unwrap();
    cond.notify_all().unwrap();
    cond.release().unwrap();
    assert_eq!(waiter.join().unwrap(), Ok(true));
    // Nobody notifies: a wait times out.
    cond.acquire(None).unwrap();
    assert_eq!(cond.wait(Some(SOON)), Ok(false));
    assert!(cond.parts()[0].is_mine(), "the lock is taken back after the wait");
    cond.release().unwrap();
}

#[test]
fn a_barrier_lets_its_parties_through_together_and_breaks_on_a_timeout() {
    let rt = Runtime::new().unwrap();
    let barrier = rt.barrier(3, None);
    let parties: Vec<_> = (0..3)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || barrier.wait(Some(PATIENCE)))
        })
        .collect();
    let mut indices: Vec<u32> = parties.into_iter().map(|party| party.join().unwrap().unwrap()).collect();
    indices.sort();
    assert_eq!(indices, [0, 1, 2]);
    // One party alone times out, which breaks the barrier for all.
    assert_eq!(barrier.wait(Some(SOON)), Err(SyncError::BrokenBarrier));
    assert_eq!(barrier.broken(), Ok(true));
    assert_eq!(barrier.wait(Some(SOON)), Err(SyncError::BrokenBarrier));
    barrier.reset().unwrap();
    assert_eq!((barrier.broken(), barrier.n_waiting()), (Ok(false), Ok(0)));
}

#[test]
fn shared_memory_a_guest_makes_is_charged_to_it() {
    let rt = wmp_host::RuntimeBuilder::default()
        .limits(Limits { max_host_memory: Some(4 << 20), ..Limits::new() })
        .build()
        .unwrap();
    let (p, _) = sync_child(&rt, "hoard_memory", "".into());
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::HostMemory))));
}

#[test]
fn a_native_child_cannot_be_given_a_lock() {
    let rt = Runtime::new().unwrap();
    let child = rt.native_process(&wmp_host::NativeProgram::new("/bin/true")).build();
    child.pass_semlock(&rt.lock()).unwrap();
    let refused = child.start().unwrap_err().to_string();
    assert!(refused.contains("semaphore locks and shared memory cannot be passed to a native child"), "{refused}");
}
