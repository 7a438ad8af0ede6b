//! The smallest wmp guest that starts children: what the SDK itself costs
//! per process, without the test probe's size. The benches time it, and
//! the tree tests start a thousand children with it.

use wmp_guest::{Process, active_children};

fn main_process() {}

fn noop(_: String) {}

/// Starts and joins N children running `noop`, one after the other.
fn spawn_many(n: String) {
    for _ in 0..n.parse::<usize>().unwrap() {
        let child = Process::new("noop", "");
        child.start().unwrap();
        child.join(None).unwrap();
        assert_eq!(child.exitcode().unwrap(), Some(0));
    }
    println!("spawned={n} active={}", active_children().len());
}

wmp_guest::main!(main_process, noop, spawn_many);
