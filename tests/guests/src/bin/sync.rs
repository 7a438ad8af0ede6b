//! The guest the synchronization tests drive: each target takes what its
//! parent passed (a lock, an event, a value) and uses it, printing what it
//! saw; run as a program it starts children of its own that share a lock
//! and a value (`wmp run sync.wasm count CHILDREN TIMES`).

use std::time::Duration;

use wmp_guest::synchronize::{Inherited, SemLockOps, event};
use wmp_guest::{Event, Process, SemLock, Value};

/// Takes the lock it was given, says so, and keeps it until it is killed.
fn hold_lock(_: String) {
    let lock: SemLock = Inherited::take().next().expect("a lock");
    assert!(lock.acquire(None).unwrap());
    println!("holding");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Adds 1 to the value it was given `times` times, each under its lock.
fn count_up(times: u32) {
    let value: Value<i64> = Inherited::take().next().expect("a value");
    for _ in 0..times {
        let lock = value.get_lock();
        lock.acquire(None).unwrap();
        let now = value.get().unwrap();
        std::thread::yield_now();
        value.set(now + 1).unwrap();
        lock.release().unwrap();
    }
}

/// Waits up to 30 s for the event it was given; exits 0 if it was set.
fn wait_event(_: String) {
    let set: Event = Inherited::take().next().expect("an event");
    let was_set = set.wait(Some(Duration::from_secs(30))).unwrap();
    println!("set={was_set}");
    wmp_guest::exit(if was_set { 0 } else { 1 });
}

/// Makes 1 MiB shared memories and keeps them, until its host-memory
/// budget stops it.
fn hoard_memory(_: String) {
    let mut hoard = Vec::new();
    loop {
        hoard.push(wmp_guest::SharedMemory::new(1 << 20));
    }
}

/// `count CHILDREN TIMES`: starts CHILDREN children that each count up
/// TIMES on one value, and prints the total; `event`: a child waits on an
/// event this process sets.
fn main_process() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("count") => {
            let (children, times): (u32, u32) = (args[2].parse().unwrap(), args[3].parse().unwrap());
            let value = Value::new(0i64);
            let started: Vec<Process> = (0..children)
                .map(|_| {
                    let p = Process::new("count_up", &times);
                    p.pass_sync(&value).unwrap();
                    p.start().unwrap();
                    p
                })
                .collect();
            started.iter().for_each(|p| p.join(None).unwrap());
            println!("total={}", value.get().unwrap());
        }
        Some("event") => {
            let ready = event();
            let p = Process::new("wait_event", "");
            p.pass_sync(&ready).unwrap();
            p.start().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            ready.set().unwrap();
            p.join(None).unwrap();
            println!("child exitcode={:?}", p.exitcode().unwrap());
        }
        Some("release-twice") => {
            let lock = SemLock::lock();
            lock.acquire(None).unwrap();
            lock.release().unwrap();
            println!("{}", lock.release().unwrap_err());
        }
        _ => eprintln!("usage: sync.wasm count CHILDREN TIMES | event | release-twice"),
    }
}

wmp_guest::main!(main_process, hold_lock, count_up, wait_event, hoard_memory);
