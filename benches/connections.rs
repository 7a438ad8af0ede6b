//! Throughput of connections: 64-byte and 1 MiB messages host→guest and
//! guest→guest over a one-way pipe, sent one per call and in batches
//! (`send_many`, one WIT call per batch), and guest→guest over a queue,
//! as criterion benches; then one
//! side-by-side table of the same cases beside Python's
//! `multiprocessing.Pipe` and `Queue` measured in the same run
//! (`benches/python_connections_baseline.py`, when python3 is there).
//!
//! Each case times from the first send until the receiving process has
//! read everything and ended (joined), as the Python script does. The
//! receiver takes batches when the sender sends them, else one message
//! per call.
//!
//! Run: `cargo bench --bench connections` (add `-- quick` for the table
//! only, with fewer messages).

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use wmp_host::{Capabilities, Program, Runtime, Stdio};

/// Who sends to whom, over what.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The host, over a pipe, to a guest child.
    HostToGuest,
    /// A guest, over a pipe, to its guest child.
    GuestToGuest,
    /// A guest, over a queue, to its guest child (one put per message).
    GuestQueue,
}

/// One way of moving `n` messages of `size` bytes, `batch` per call.
#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    route: Route,
    n: usize,
    size: usize,
    batch: usize,
}

const CASES: [Case; 8] = [
    Case { name: "host→guest pipe 64 B, batched", route: Route::HostToGuest, n: 1_000_000, size: 64, batch: 1000 },
    Case { name: "host→guest pipe 64 B, one per call", route: Route::HostToGuest, n: 200_000, size: 64, batch: 1 },
    Case { name: "host→guest pipe 1 MiB", route: Route::HostToGuest, n: 500, size: 1 << 20, batch: 1 },
    Case { name: "guest→guest pipe 64 B, batched", route: Route::GuestToGuest, n: 1_000_000, size: 64, batch: 1000 },
    Case { name: "guest→guest pipe 64 B, one per call", route: Route::GuestToGuest, n: 200_000, size: 64, batch: 1 },
    Case { name: "guest→guest pipe 1 MiB", route: Route::GuestToGuest, n: 500, size: 1 << 20, batch: 1 },
    Case { name: "guest→guest queue 64 B", route: Route::GuestQueue, n: 100_000, size: 64, batch: 1 },
    Case { name: "guest→guest queue 1 MiB", route: Route::GuestQueue, n: 200, size: 1 << 20, batch: 1 },
];

/// Runs a case once and returns how long it took.
fn run(rt: &Runtime, probe: &Program, case: Case) -> Duration {
    match case.route {
        Route::GuestToGuest => return common::ipc::guest_to_guest(rt, probe, "pipe_to_child", case.n, case.size, case.batch),
        Route::GuestQueue => return common::ipc::guest_to_guest(rt, probe, "queue_to_child", case.n, case.size, 1),
        Route::HostToGuest => {}
    }
    let (stdout, captured) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).stdout(stdout).stderr(Stdio::Inherit);
    let target = if case.batch > 1 { "batched" } else { "single" };
    let process = rt.process(probe).capabilities(caps).target("drain", serde_json::to_vec(target).unwrap()).build();
    let (theirs, mine) = rt.pipe(false);
    let sink = process;
    sink.pass_connection(theirs).unwrap();
    sink.start().unwrap();
    let message = vec![7u8; case.size];
    let started = Instant::now();
    let mut sent = 0;
    while sent < case.n {
        let count = case.batch.min(case.n - sent);
        if count == 1 {
            mine.send_bytes(&message).unwrap();
        } else {
            mine.send_many(vec![message.clone(); count]).unwrap();
        }
        sent += count;
    }
    mine.close();
    sink.join(None).unwrap();
    let elapsed = started.elapsed();
    assert!(captured.text().contains(&format!("received={} ", case.n)), "{}", captured.text());
    elapsed
}

fn criterion_benches(rt: &Runtime, probe: &Program) {
    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut group = c.benchmark_group("pipe_throughput");
    for case in CASES {
        group.throughput(Throughput::Elements(case.n as u64));
        group.bench_function(case.name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(rt, probe, case)).sum());
        });
    }
    group.finish();
    c.final_summary();
}

fn comparison(rt: &Runtime, probe: &Program, quick: bool) {
    let scale = if quick { 0.2 } else { 1.0 };
    let python = common::ipc::python_rates(scale);
    let python_rate = |case: &str| python.iter().find(|(name, _)| name == case).map(|(_, rate)| *rate);
    println!("\n{:<42} {:>14} {:>12} {:>10}", "case", "msgs/s", "MiB/s", "× Python");
    for case in CASES {
        let case = Case { n: ((case.n as f64 * scale) as usize).max(10), ..case };
        let runs = 3;
        let mut rates: Vec<f64> = (0..runs).map(|_| case.n as f64 / run(rt, probe, case).as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        let rate = rates[runs / 2];
        // Beside Python's Pipe or Queue of the same message size.
        let kind = if case.route == Route::GuestQueue { "queue" } else { "pipe" };
        let size = if case.size == 64 { "64B" } else { "1MiB" };
        let versus = python_rate(&format!("{kind}_{size}")).map_or("-".to_owned(), |python| format!("{:.1}×", rate / python));
        let mib = rate * case.size as f64 / (1 << 20) as f64;
        println!("{:<42} {:>14.0} {:>12.1} {:>10}", format!("wmp {}", case.name), rate, mib, versus);
    }
    for (case, rate) in &python {
        let size = if case.ends_with("64B") { 64.0 } else { (1 << 20) as f64 };
        println!("{:<42} {:>14.0} {:>12.1}", format!("Python multiprocessing {case}"), rate, rate * size / (1 << 20) as f64);
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let rt = Runtime::new().unwrap();
    let probe = rt.load(wmp_test_guests::PROBE).unwrap();
    if !quick {
        criterion_benches(&rt, &probe);
    }
    comparison(&rt, &probe, quick);
}
