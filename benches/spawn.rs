//! Spawn → exit → join of a trivial guest, side by side with its peers in
//! the same run (machines here are noisy; read the ratios, not the
//! absolute times):
//!
//! - `wasmtime_floor`: raw wasmtime instantiating and running the same
//!   program with the same WASI context, no process model — the floor;
//! - `wmp`: the same program as a wmp process (`start` + `join`);
//! - `sdk_noop`: the smallest Rust `wmp-guest` program, target `noop`;
//! - `guest_started/sdk_child`: that program started and joined by a
//!   guest (one parent starts 100 children in turn; time per child);
//! - `kill_spinning`: kill a guest spinning in a tight loop, until joined;
//! - `native_true` / `wmp_native_true`: `/bin/true` spawned with
//!   `std::process::Command` and as a wmp native process;
//! - `run_command/wmp` and `run_command/wasmtime`: `wmp run` and (when a
//!   `wasmtime` binary is on PATH) `wasmtime run` of the plain hello
//!   component, end to end, caches warm (`cargo build --release` first).
//!
//! Run: `cargo bench --bench spawn`.

use std::time::{Duration, Instant};

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use wmp_host::{Capabilities, NativeProgram, Runtime, Stdio};

use common::{Floor, MINIMAL_MODULE, QUIET_EXIT};

fn spawn_join(c: &mut Criterion) {
    let floor = Floor::new();
    let rt = Runtime::new().unwrap();
    let quiet = || Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null);

    // A Rust wasip2 component that exits at once.
    let mut group = c.benchmark_group("spawn_join_p2_component");
    group.bench_function("wasmtime_floor", |b| b.iter(|| floor.run_rust_component()));
    let program = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let p = rt.process(&program).capabilities(quiet().args(QUIET_EXIT)).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    let sdk = rt.load(wmp_test_guests::MINIMAL).unwrap();
    group.bench_function("sdk_noop", |b| {
        b.iter(|| {
            let p = rt.process(&sdk).capabilities(quiet()).target("noop", br#""""#.to_vec()).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.finish();

    // A minimal core module.
    let mut group = c.benchmark_group("spawn_join_minimal_module");
    group.bench_function("wasmtime_floor", |b| b.iter(|| floor.run_minimal_module()));
    let program = rt.load_bytes("minimal.wat", MINIMAL_MODULE.as_bytes()).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let p = rt.process(&program).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.bench_function("native_true", |b| {
        b.iter(|| std::process::Command::new("/bin/true").status().unwrap())
    });
    let true_program = NativeProgram::new("/bin/true");
    group.bench_function("wmp_native_true", |b| {
        b.iter(|| {
            let p = rt.native_process(&true_program).capabilities(quiet()).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.finish();

    // Children started and joined by a guest, one after another.
    let mut group = c.benchmark_group("guest_started");
    let children = 100;
    let sdk = rt.load(wmp_test_guests::MINIMAL).unwrap();
    group.bench_function("sdk_child", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let args = serde_json::to_vec(&children.to_string()).unwrap();
                let parent = rt.process(&sdk).capabilities(quiet()).target("spawn_many", args).build();
                let started = Instant::now();
                parent.start().unwrap();
                parent.join(None).unwrap();
                total += started.elapsed() / children;
                assert_eq!(parent.exitcode(), Ok(Some(0)));
            }
            total
        })
    });
    group.finish();

    // Kill of a guest spinning in a tight loop: from kill() to joined.
    let mut group = c.benchmark_group("kill_spinning");
    let probe = rt.load(wmp_test_guests::PROBE).unwrap();
    group.bench_function("wmp", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let p = rt.process(&probe).capabilities(quiet()).target("spin", br#""""#.to_vec()).build();
                p.start().unwrap();
                p.join(Some(Duration::from_millis(2))).unwrap(); // a wait: it runs meanwhile, well into its loop
                let killed = Instant::now();
                p.kill().unwrap();
                p.join(None).unwrap();
                total += killed.elapsed();
                assert_eq!(p.exitcode(), Ok(Some(-9)));
            }
            total
        })
    });
    group.finish();
}

/// `wmp run` against `wasmtime run` on the same component, end to end.
fn run_command(c: &mut Criterion) {
    let wmp = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wmp");
    let has_wasmtime = std::process::Command::new("wasmtime").arg("--version").output().is_ok();
    let mut group = c.benchmark_group("run_command");
    for (name, binary) in [("wmp", wmp.exists().then_some(wmp.as_path())), ("wasmtime", has_wasmtime.then_some("wasmtime".as_ref()))] {
        let Some(binary) = binary else { continue };
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = std::process::Command::new(binary)
                    .args(["run", wmp_test_guests::PLAIN_P2, "args", "hello"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, spawn_join, run_command);
criterion_main!(benches);
