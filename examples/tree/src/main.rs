//! A process tree inside one sandbox: the main process counts the primes
//! below a bound by splitting the range across two children, each of which
//! splits its half across two grandchildren. A daemonic watchdog runs
//! beside them (and is terminated when main ends), and a child that spins
//! forever is killed. Every process says who it is.
//!
//! Results travel up over queues, as in a parallel map with
//! `multiprocessing.Queue`: each parent passes a queue to the children it
//! starts, each child puts its (range, count) on it, and the parent takes
//! the results in the order they finish.
//!
//!     cargo build -p wmp-example-tree --target wasm32-wasip2
//!     cargo run -- run target/wasm32-wasip2/debug/tree.wasm 200000
//!
//! Across the machines of a Ray cluster: a second argument names, one
//! custom resource each, the nodes the two halves run on (their own
//! children start there too; the queue to main crosses the network):
//!
//!     cargo build --features cluster
//!     bash scripts/ray-cluster.sh run -- target/debug/wmp run --cluster http://127.0.0.1:8265 \
//!         target/wasm32-wasip2/debug/tree.wasm 200000 node:__internal_head__,node_b

use std::time::Duration;

use wmp_guest::{Placement, Process, Queue, current_process, exit, inherited_queues};

fn introduce(task: &str) {
    let me = current_process();
    println!(
        "[{:<13}] pid={:<3} parent={:<3} {task}",
        me.name(),
        me.pid().unwrap().unwrap(),
        me.parent_pid().map_or("-".to_string(), |p| p.to_string())
    );
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// One part's result, as a child puts it on its parent's queue.
type PartCount = ((u64, u64), u64);

/// Starts one child per part of `range` (here, or where `placements`
/// says for that part), running `target` with a queue to put its result
/// on, and returns the sum of the results.
fn fan_out(target: &str, range: (u64, u64), parts: u64, placements: &[Placement]) -> u64 {
    let results = Queue::new(0);
    let step = (range.1 - range.0).div_ceil(parts);
    let children: Vec<Process> = (0..parts)
        .map(|i| {
            let part = (range.0 + i * step, (range.0 + (i + 1) * step).min(range.1));
            let child = match placements.get(i as usize) {
                Some(placement) => Process::on_cluster(placement.clone(), target, &part),
                None => Process::new(target, &part),
            };
            child.pass_queue(&results).unwrap();
            child.start().unwrap();
            child
        })
        .collect();
    let me = current_process().name();
    let total = children
        .iter()
        .map(|_| {
            let ((a, b), count): PartCount = results.get(None).unwrap();
            println!("[{me:<13}] [{a}, {b}) -> {count}");
            count
        })
        .sum();
    for child in &children {
        child.join(None).unwrap();
        println!("[{me:<13}] {child}");
    }
    total
}

/// Puts this process's result on the queue its parent passed.
fn report(range: (u64, u64), count: u64) {
    let results = inherited_queues().pop().expect("the parent passes a queue");
    results.put(&(range, count), None).unwrap();
}

/// Level 2: count the primes in [a, b) and report the count.
fn count(range: (u64, u64)) {
    introduce(&format!("counting primes in [{}, {})", range.0, range.1));
    report(range, (range.0..range.1).filter(|&n| is_prime(n)).count() as u64);
}

/// Level 1: split [a, b) across two grandchildren and report their sum.
fn split(range: (u64, u64)) {
    introduce(&format!("splitting [{}, {}) in two", range.0, range.1));
    report(range, fan_out("count", range, 2, &[]));
}

/// A daemonic watchdog: reports every period until its parent ends.
fn watchdog(period_ms: u64) {
    introduce("watchdog (daemon)");
    loop {
        std::thread::sleep(Duration::from_millis(period_ms));
        println!("[watchdog     ] still watching");
    }
}

/// A runaway: computes forever until killed.
fn spinner(_: ()) {
    introduce("spinning until killed");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

fn start() {
    let bound: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    introduce(&format!("counting primes below {bound}"));

    let dog = Process::with("watchdog", &250u64, Some("watchdog"), Some(true));
    dog.start().unwrap();

    let runaway = Process::new("spinner", &());
    runaway.start().unwrap();

    // Where the two halves run: here, or on the cluster nodes that have
    // these resources.
    let placements: Vec<Placement> = std::env::args()
        .nth(2)
        .map(|nodes| nodes.split(',').map(|resource| Placement::NodeWith(resource.to_owned())).collect())
        .unwrap_or_default();
    let total = fan_out("split", (0, bound), 2, &placements);

    runaway.join(Some(Duration::from_millis(20))).unwrap();
    println!("[MainProcess  ] {runaway} is still alive: {}", runaway.is_alive().unwrap());
    runaway.kill().unwrap();
    runaway.join(None).unwrap();
    println!("[MainProcess  ] killed it: {runaway}");

    let expected = (0..bound).filter(|&n| is_prime(n)).count() as u64;
    println!("[MainProcess  ] primes below {bound}: {total} (checked in one process: {expected})");
    println!("[MainProcess  ] active children at exit: {:?}", wmp_guest::active_children());
    if total != expected {
        exit(1);
    }
}

wmp_guest::main!(start, count, split, watchdog, spinner);
