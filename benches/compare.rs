//! The side-by-side comparison: one run, one table of medians and ratios.
//!
//! Rows: raw wasmtime (the floor), wmp processes (host-started with the
//! default pool, on demand only and in the dense layout, guest-started),
//! `std::process::Command` and a wmp native process running the same
//! program, Python `multiprocessing` (fork / forkserver / spawn, through
//! `benches/python_mp_baseline.py` when python3 is there), `wmp run` end
//! to end (and `wasmtime run` when a `wasmtime` binary is on PATH), kill
//! latency (alone, and among 1,000 spinning siblings), how late a sleeping
//! guest wakes beside 1,000 spinners, the sort in a wmp process (also with
//! a memory limit, in the guarded layout and in the dense one, whose code
//! checks every memory access), and the memory and mappings of many live
//! guests (minimal ones in both layouts). Under the table, each target of
//! the performance issue that its rows measure, as met or not met in this
//! run.
//!
//! Run: `cargo bench --bench compare` (add `-- quick` for fewer samples).

mod common;
#[path = "../tests/guests/src/workload.rs"]
mod workload;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wmp_host::{Capabilities, CodeCache, Limits, NativeProgram, Process, Program, Runtime, Stdio};

use common::{Floor, MINIMAL_MODULE, QUIET_EXIT};

/// A core module that spins until it is stopped.
const SPIN_MODULE: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

/// Median and 99th percentile of a sample, in microseconds.
#[derive(Clone, Copy)]
struct Timing {
    p50: f64,
    p99: f64,
}

fn measure(samples: usize, run: impl FnMut()) -> Timing {
    percentiles(common::timing::micros_per_run(samples, run))
}

struct Table {
    rows: Vec<(String, Timing, Option<f64>)>,
}

/// The performance issue's targets, each with what this run measured and
/// whether it is met: printed after the table.
struct Targets {
    rows: Vec<(String, String, bool)>,
}

impl Targets {
    /// `what` must come to at most `bound` (a ratio, `×`).
    fn at_most(&mut self, what: &str, ratio: f64, bound: f64) {
        self.rows.push((format!("{what} ≤ {bound}×"), format!("{ratio:.2}×"), ratio <= bound));
    }

    /// `what` must come to at least `bound` (a ratio, `×`).
    fn at_least(&mut self, what: &str, ratio: f64, bound: f64) {
        self.rows.push((format!("{what} ≥ {bound}×"), format!("{ratio:.1}×"), ratio >= bound));
    }

    /// `what` must take at most `bound` microseconds.
    fn at_most_micros(&mut self, what: &str, micros: f64, bound: f64) {
        self.rows.push((format!("{what} ≤ {bound} µs"), format!("{micros:.0} µs"), micros <= bound));
    }

    /// `what` must come to at least `bound` per second.
    fn at_least_per_second(&mut self, what: &str, rate: f64, bound: f64) {
        self.rows.push((format!("{what} ≥ {:.1} M/s", bound / 1e6), format!("{:.2} M/s", rate / 1e6), rate >= bound));
    }

    /// A yes-or-no target.
    fn holds(&mut self, what: &str, measured: String, met: bool) {
        self.rows.push((what.to_owned(), measured, met));
    }

    fn print(&self) {
        println!("\n| target (with the defaults, in this run) | measured | verdict |");
        println!("|---|---:|---|");
        for (target, measured, met) in &self.rows {
            println!("| {target} | {measured} | {} |", if *met { "met" } else { "not met" });
        }
    }
}

impl Table {
    /// A row, with its ratio to `floor` (a p50) if given.
    fn add(&mut self, name: &str, timing: Timing, floor: Option<f64>) {
        let ratio = floor.map(|f| timing.p50 / f);
        self.rows.push((name.to_owned(), timing, ratio));
    }

    fn print(&self) {
        println!("\n| what | p50 µs | p99 µs | × its floor |");
        println!("|---|---:|---:|---:|");
        for (name, t, ratio) in &self.rows {
            let ratio = ratio.map_or("".to_owned(), |r| format!("{r:.2}"));
            let p99 = if t.p99.is_nan() { "".to_owned() } else { format!("{:.1}", t.p99) };
            println!("| {name} | {:.1} | {p99} | {ratio} |", t.p50);
        }
    }
}

fn quiet() -> Capabilities {
    Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null)
}

fn start_join(rt: &Runtime, program: &Program, caps: Capabilities, target: Option<&str>) {
    let mut builder = rt.process(program).capabilities(caps);
    if let Some(target) = target {
        builder = builder.target(target, br#""""#.to_vec());
    }
    let p = builder.build();
    p.start().unwrap();
    p.join(None).unwrap();
}

/// p50 and p99 of samples in microseconds.
fn percentiles(mut samples: Vec<f64>) -> Timing {
    let mut at = |q| common::timing::quantile(&mut samples, q);
    Timing { p50: at(0.5), p99: at(0.99) }
}

/// kill→joined of `samples` spinning guests made by `spinner`, each killed
/// once it is well into its loop.
fn kill_latency(samples: usize, spinner: impl Fn() -> Process) -> Timing {
    let kills = (0..samples)
        .map(|_| {
            let p = spinner();
            p.start().unwrap();
            p.join(Some(Duration::from_millis(2))).unwrap(); // a wait: it runs meanwhile
            let start = Instant::now();
            p.kill().unwrap();
            p.join(None).unwrap();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(kills)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Python multiprocessing start+join per start method, as the baseline
/// script prints it (`method=fork n=200 p50_us=1640.2 p90_us=1900.1`).
fn python_rows(samples: usize) -> Vec<(String, f64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_mp_baseline.py");
    let Ok(out) = Command::new("python3").arg(&script).arg(samples.to_string()).output() else { return Vec::new() };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|line| {
            let field = |key: &str| line.split_whitespace().find_map(|f| f.strip_prefix(key)).map(str::to_owned);
            Some((field("method=")?, field("p50_us=")?.parse().ok()?, field("p90_us=")?.parse().ok()?))
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let n = if quick { 200 } else { 2000 };
    let floor = Floor::new();
    let rt = Runtime::new().unwrap();
    let on_demand = Runtime::builder().pooling(0).build().unwrap();
    let dense = Runtime::builder()
        .dense_layout(true)
        .limits(Limits { max_memory: Some(1 << 20), ..Limits::new() })
        .build()
        .unwrap();
    let mut table = Table { rows: Vec::new() };
    let mut targets = Targets { rows: Vec::new() };

    // A minimal core module.
    let module_floor = measure(n, || floor.run_minimal_module());
    let f = module_floor.p50;
    table.add("wasmtime instantiate+run, minimal module (floor)", module_floor, Some(f));
    let minimal = rt.load_bytes("minimal.wat", MINIMAL_MODULE.as_bytes()).unwrap();
    let minimal_default = measure(n, || start_join(&rt, &minimal, quiet(), None));
    targets.at_most("minimal module start+join / its floor", minimal_default.p50 / f, 2.0);
    table.add("wmp start+join, minimal module", minimal_default, Some(f));
    let minimal_on_demand = on_demand.load_bytes("minimal.wat", MINIMAL_MODULE.as_bytes()).unwrap();
    table.add(
        "wmp start+join, minimal module, on demand (no pool)",
        measure(n, || start_join(&on_demand, &minimal_on_demand, quiet(), None)),
        Some(f),
    );
    let minimal_dense = dense.load_bytes("minimal.wat", MINIMAL_MODULE.as_bytes()).unwrap();
    table.add(
        "wmp start+join, minimal module, dense layout (1 MiB memory limit)",
        measure(n, || start_join(&dense, &minimal_dense, quiet(), None)),
        Some(f),
    );

    // A Rust wasip2 component.
    let component_floor = measure(n, || floor.run_rust_component());
    let f = component_floor.p50;
    table.add("wasmtime instantiate+run, Rust p2 component (floor)", component_floor, Some(f));
    let plain = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    table.add(
        "wmp start+join, Rust p2 component",
        measure(n, || start_join(&rt, &plain, quiet().args(QUIET_EXIT), None)),
        Some(f),
    );
    let plain_on_demand = on_demand.load(wmp_test_guests::PLAIN_P2).unwrap();
    table.add(
        "wmp start+join, Rust p2 component, on demand (no pool)",
        measure(n, || start_join(&on_demand, &plain_on_demand, quiet().args(QUIET_EXIT), None)),
        Some(f),
    );
    let probe = rt.load(wmp_test_guests::PROBE).unwrap();
    let sdk = rt.load(wmp_test_guests::MINIMAL).unwrap();
    let sdk_floor = measure(n, || floor.run_sdk_noop());
    let f = sdk_floor.p50;
    table.add("wasmtime instantiate+run, Rust SDK component, model stubbed (floor)", sdk_floor, Some(f));
    let sdk_default = measure(n, || start_join(&rt, &sdk, quiet(), Some("noop")));
    targets.at_most("Rust SDK start+join / its floor", sdk_default.p50 / f, 1.2);
    table.add("wmp start+join, Rust SDK component (minimal guest, target noop)", sdk_default, Some(f));
    let sdk_on_demand = on_demand.load(wmp_test_guests::MINIMAL).unwrap();
    table.add(
        "wmp start+join, Rust SDK component (minimal guest), on demand (no pool)",
        measure(n, || start_join(&on_demand, &sdk_on_demand, quiet(), Some("noop"))),
        Some(f),
    );
    table.add(
        "wmp start+join, Rust SDK component (the bigger test probe, target noop)",
        measure(n, || start_join(&rt, &probe, quiet(), Some("noop"))),
        Some(f),
    );
    // Guest-started: one guest starts and joins `children` children; the
    // row is the time per child (the parent's own start amortized).
    let children = if quick { 200 } else { 1000 };
    let per_child = measure(10, || {
        let p = rt.process(&sdk).capabilities(quiet()).target("spawn_many", serde_json::to_vec(&children.to_string()).unwrap()).build();
        p.start().unwrap();
        p.join(None).unwrap();
    });
    let scale = |t: f64| t / children as f64;
    targets.at_most("guest-started child start+join / the SDK floor", scale(per_child.p50) / f, 1.3);
    table.add(
        "wmp guest-started child start+join (per child)",
        Timing { p50: scale(per_child.p50), p99: scale(per_child.p99) },
        Some(f),
    );

    // Native processes and Python.
    let native = measure(n / 4, || {
        Command::new("true").status().unwrap();
    });
    let f = native.p50;
    table.add("std::process::Command `true` spawn+wait (floor)", native, Some(f));
    let true_program = NativeProgram::new("/bin/true");
    table.add(
        "wmp start+join, native process `true`",
        measure(n / 4, || {
            let p = rt.native_process(&true_program).capabilities(quiet()).build();
            p.start().unwrap();
            p.join(None).unwrap();
        }),
        Some(f),
    );
    for (method, p50, p90) in python_rows(if quick { 50 } else { 200 }) {
        if method == "fork" {
            targets.at_least("Python fork start+join / Rust SDK start+join", p50 / sdk_default.p50, 40.0);
        }
        table.add(&format!("Python multiprocessing {method} start+join (p90 in the p99 column)"), Timing { p50, p99: p90 }, None);
    }

    // Big guests: a componentize-py and a componentize-js component (built
    // by scripts/language-guests.sh), whose toolchains pre-initialize them
    // at build time (the interpreter and the program's imports are in the
    // image, which wasmtime maps copy-on-write), started and joined with
    // the defaults and the code cache `wmp run` uses.
    let cached = Runtime::builder().code_cache(CodeCache::System).build().unwrap();
    for (language, guest) in [("Python (componentize-py)", "python-plain"), ("JavaScript (componentize-js)", "js-plain")] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/language-guests/{guest}.wasm"));
        let Ok(program) = cached.load(&path) else {
            println!("({guest}.wasm is not built: bash scripts/language-guests.sh)");
            continue;
        };
        let timing = measure(if quick { 20 } else { 200 }, || start_join(&cached, &program, quiet().args([guest, "x"]), None));
        if guest == "python-plain" {
            targets.at_most_micros("componentize-py guest start+join", timing.p50, 1000.0);
        }
        table.add(&format!("wmp start+join, {language} guest"), timing, None);
    }

    // Kill latency of a guest spinning in a tight loop.
    let spin = rt.load(wmp_test_guests::PROBE).unwrap();
    let kills = if quick { 50 } else { 200 };
    let probe_spinner = || rt.process(&spin).capabilities(quiet()).target("spin", br#""""#.to_vec()).build();
    table.add("wmp kill→joined, spinning guest", kill_latency(kills, probe_spinner), None);

    // The same under load: one spinning guest among 1,000 spinning
    // siblings; and how late a guest that sleeps 10 ms at a time wakes
    // beside them (fairness).
    let minimal_spin = rt.load_bytes("spin.wat", SPIN_MODULE.as_bytes()).unwrap();
    let spinners: Vec<Process> = (0..1000)
        .map(|_| rt.process(&minimal_spin).build())
        .inspect(|p| p.start().unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // all running
    table.add(
        "wmp kill→joined, spinning guest among 1,000 spinning siblings",
        kill_latency(kills, || rt.process(&minimal_spin).build()),
        None,
    );
    let (sleeps, (stdout, printed)) = (if quick { 5 } else { 20 }, Stdio::capture());
    let sleeper = rt
        .process(&spin)
        .capabilities(quiet().stdout(stdout))
        .target("oversleep", serde_json::to_vec(&format!("{sleeps} 10")).unwrap())
        .build();
    sleeper.start().unwrap();
    sleeper.join(None).unwrap();
    let printed = printed.text();
    let late = printed.trim().trim_start_matches("late_us=").split(',').map(|v| v.parse().unwrap()).collect();
    table.add("wmp 10 ms sleep's lateness beside 1,000 spinning guests", percentiles(late), None);
    spinners.iter().for_each(|p| p.kill().unwrap());
    spinners.iter().for_each(|p| p.join(None).unwrap());

    // Guest compute against the same code compiled natively: the sort in
    // raw wasmtime without and with the epoch checks that wmp's kill needs,
    // and in a wmp process; each timed end to end (instantiating is noise
    // next to the sort).
    let size = 1_000_000;
    let runs = if quick { 3 } else { 9 };
    let native = measure(runs, || {
        std::hint::black_box(workload::sort_checksum(std::hint::black_box(size)));
    });
    let size_arg = size.to_string();
    let compute = ["plain", "compute", size_arg.as_str()];
    let no_epochs = Floor::with_epochs(false);
    let raw = measure(runs, || no_epochs.run_rust_component_with(&compute));
    let raw_with_epochs = measure(runs, || floor.run_rust_component_with(&compute));
    let in_wmp = measure(runs, || start_join(&rt, &plain, quiet().args(compute), None));
    // With a memory limit (64 MiB: the sort's 8 MB fit): in the guarded
    // layout, whose memory reservation is then the limit (less than the
    // 4 GiB a 32-bit address reaches, so its code checks accesses too, a
    // 64 KiB guard region past the memory catching small offsets), and in
    // the dense layout, whose code checks every access itself.
    let sort_limit = Limits { max_memory: Some(64 << 20), ..Limits::new() };
    let in_limited_layout = |dense: bool| {
        let limited = Runtime::builder().dense_layout(dense).limits(sort_limit.clone()).build().unwrap();
        let plain = limited.load(wmp_test_guests::PLAIN_P2).unwrap();
        measure(runs, || start_join(&limited, &plain, quiet().args(compute), None))
    };
    let (in_wmp_limited, in_wmp_dense) = (in_limited_layout(false), in_limited_layout(true));
    let f = native.p50;
    table.add("sort 1M u64, native (floor)", native, Some(f));
    table.add("sort 1M u64, raw wasmtime, no epoch checks", raw, Some(f));
    table.add("sort 1M u64, raw wasmtime, epoch checks", raw_with_epochs, Some(f));
    table.add("sort 1M u64, in a wmp process", in_wmp, Some(f));
    table.add("sort 1M u64, in a wmp process, 64 MiB memory limit", in_wmp_limited, Some(f));
    let dense_row = "sort 1M u64, in a wmp process, 64 MiB memory limit, dense layout (every access checked)";
    table.add(dense_row, in_wmp_dense, Some(f));

    // IPC at one message per call: 64-byte messages from a guest to its
    // child over a pipe (as `cargo bench --bench connections` times them),
    // beside Python's Pipe in the same run.
    let messages = if quick { 100_000 } else { 1_000_000 };
    let mut rates: Vec<f64> = (0..3)
        .map(|_| messages as f64 / common::ipc::guest_to_guest(&rt, &spin, "pipe_to_child", messages, 64, 1).as_secs_f64())
        .collect();
    let ipc = common::timing::quantile(&mut rates, 0.5);
    targets.at_least_per_second("guest→guest pipe messages, 64 B one per call", ipc, 2e6);
    let python_pipe = common::ipc::python_rates(if quick { 0.2 } else { 1.0 })
        .into_iter()
        .find_map(|(case, rate)| (case == "pipe_64B").then_some(rate));
    let micros_each = |rate: f64| Timing { p50: 1e6 / rate, p99: f64::NAN };
    if let Some(python) = python_pipe {
        targets.at_least("guest→guest pipe messages / Python Pipe's, 64 B one per call", ipc / python, 5.0);
        table.add("Python multiprocessing Pipe, 64 B one per call, µs per message (floor)", micros_each(python), Some(1e6 / python));
    }
    table.add("wmp guest→guest pipe, 64 B one per call, µs per message", micros_each(ipc), python_pipe.map(|p| 1e6 / p));

    // End to end: `wmp run` (the release binary, which `cargo bench` does
    // not build: `cargo build --release` first) and, when a `wasmtime`
    // binary is on PATH, `wasmtime run`, on the same plain Rust component
    // printing hello (the demo guest imports wmp:process, which wasmtime
    // lacks).
    let wmp = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wmp");
    if wmp.exists() {
        let run = |cmd: &Path| {
            measure(if quick { 10 } else { 40 }, || {
                let out = Command::new(cmd).args(["run", wmp_test_guests::PLAIN_P2, "args", "hello"]).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            })
        };
        let wmp_run = run(&wmp);
        let peer = Command::new("wasmtime").arg("--version").output().is_ok().then(|| run(Path::new("wasmtime")));
        let f = peer.as_ref().map(|t| t.p50);
        if let Some(peer) = peer {
            table.add("wasmtime run, hello component (warm cache) (floor)", peer, f);
        }
        table.add("wmp run, hello component (warm cache)", wmp_run, f);
    }
    table.print();

    // Many live guests at once, each parked in a host call: RSS and memory
    // mappings per guest; minimal ones in the default (guarded) layout,
    // whose live cap the kernel's mapping limit sets, and in the dense one.
    let sleeping_module = r#"(module
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
            (i32.store (i32.const 16) (i32.const 1))               ;; clock: monotonic
            (i64.store (i32.const 24) (i64.const 600000000000))    ;; timeout: 600 s
            (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"#;
    let limited = Runtime::builder().limits(Limits { max_memory: Some(1 << 20), ..Limits::new() }).build().unwrap();
    let sleeper = limited.load_bytes("sleep.wat", sleeping_module.as_bytes()).unwrap();
    let dense_sleeper = dense.load_bytes("sleep.wat", sleeping_module.as_bytes()).unwrap();
    let minimal_count = if quick { 2000 } else { 100_000 };
    // Each case: what it is, how many, in which runtime, the probe target
    // it runs (none: a core module), and the layout its verdict names.
    // (The dense case runs before the guarded one, whose freed memory
    // would otherwise hide part of what the dense guests take.)
    let guarded_label = "minimal modules (1 MiB memory limit)";
    let dense_label = format!("{guarded_label}, dense layout");
    let cases = [
        ("Rust SDK guests", if quick { 500 } else { 10_000 }, &rt, &probe, Some("sleep"), None),
        (dense_label.as_str(), minimal_count, &dense, &dense_sleeper, None, Some("dense layout")),
        (guarded_label, minimal_count, &limited, &sleeper, None, Some("default (guarded) layout")),
    ];
    let mappings = || std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    for (label, count, runtime, program, target, layout) in cases {
        let before = rss_bytes();
        let mappings_before = mappings();
        let started = Instant::now();
        let mut live = Vec::new();
        for _ in 0..count {
            let mut builder = runtime.process(program).capabilities(quiet());
            if let Some(target) = target {
                builder = builder.target(target, serde_json::to_vec("600000").unwrap());
            }
            let p = builder.build();
            if let Err(refused) = p.start() {
                println!("  start {} refused: {refused}", live.len() + 1);
                break;
            }
            live.push(p);
        }
        let count = live.len();
        if let Some(layout) = layout.filter(|_| !quick) {
            let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default();
            let max_map_count = max_map_count.trim();
            targets.holds(
                &format!("100,000 live minimal guests with this machine's vm.max_map_count ({max_map_count}), in the \
                          {layout}"),
                format!("{count} live"),
                count >= 100_000,
            );
        }
        // Let every task instantiate and park.
        std::thread::sleep(Duration::from_secs(2));
        let alive = live.iter().filter(|p| p.is_alive().unwrap()).count();
        let per_guest = rss_bytes().saturating_sub(before) as f64 / count as f64;
        let mappings_added = mappings().saturating_sub(mappings_before);
        println!(
            "{count} live {label}: {alive} alive, {:.0} KiB RSS each, {:.0} MiB in all, {mappings_added} \
             memory mappings added ({:.4} each; started in {:.2} s)",
            per_guest / 1024.0,
            per_guest * count as f64 / (1 << 20) as f64,
            mappings_added as f64 / count as f64,
            started.elapsed().as_secs_f64() - 2.0
        );
        if let Some(ended) = live.iter().find(|p| !p.is_alive().unwrap()) {
            println!("  first to end early: {:?}", ended.exit_reason().unwrap());
        }
        live.iter().for_each(|p| p.kill().unwrap());
        live.iter().for_each(|p| p.join(None).unwrap());
    }

    // Start throughput with many starters at once.
    println!("\n| concurrent starters | minimal modules started+joined per second | Rust SDK guests per second |");
    println!("|---:|---:|---:|");
    let span = Duration::from_millis(if quick { 300 } else { 2000 });
    for starters in [1, 10, 100, 1000] {
        let minimal_rate = start_throughput(&rt, &minimal, starters, span, None);
        let sdk_rate = start_throughput(&rt, &sdk, starters, span, Some("noop"));
        println!("| {starters} | {minimal_rate:.0} | {sdk_rate:.0} |");
    }
    targets.print();
}

/// Start throughput: `starters` threads each starting and joining a
/// process of `program` (at `target`) one after another until `span` has
/// passed; processes started and joined per second, all starters together.
fn start_throughput(rt: &Runtime, program: &Program, starters: usize, span: Duration, target: Option<&str>) -> f64 {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let began = Instant::now();
    let deadline = began + span;
    std::thread::scope(|scope| {
        for _ in 0..starters {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    start_join(rt, program, quiet(), target);
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    done.into_inner() as f64 / began.elapsed().as_secs_f64()
}
