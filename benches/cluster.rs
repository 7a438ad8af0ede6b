//! Processes on a Ray cluster, side by side with Ray's own tasks on the
//! same cluster in the same run: one table of medians, p90s and ratios.
//!
//! Rows: a noop process's start+join on node b (`Placement::node_with("node_b")`),
//! split into its start() (to the agent's Started) and the join() after
//! it, on any node, and locally; processes per second, many noop processes started from
//! several threads over two nodes (node b and `Placement::Cluster { resource:
//! None }`, which has an agent of its own) and joined; the start-up of a
//! node agent (a placement's first start: a Ray job, its dial back, the
//! program sent and compiled there), which no other row counts. Beside
//! them, from `benches/ray_tasks.py` run with `$WMP_RAY_PYTHON`: a trivial
//! `@ray.remote` task's round trip (one at a time, as Ray places it and
//! pinned to node b), Ray tasks per second with many in flight, and an
//! actor's start on node b.
//!
//! Run (the agents are the release `wmp` beside this bench's executable):
//!
//! ```sh
//! cargo build --release --features cluster --bin wmp
//! bash scripts/ray-cluster.sh run -- cargo bench --features cluster --bench cluster   # add `-- quick` for fewer samples
//! ```

#[path = "common/timing.rs"]
mod timing;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wmp_host::{Capabilities, Cluster, CodeCache, Placement, Program, Runtime, Stdio};

/// The second node's custom resource (scripts/ray-cluster.sh).
const NODE_B: &str = "node_b";

/// Median and 90th percentile of a sample.
#[derive(Clone, Copy)]
struct Timing {
    p50: f64,
    p90: f64,
}

fn percentiles(mut samples: Vec<f64>) -> Timing {
    let mut at = |q| timing::quantile(&mut samples, q);
    Timing { p50: at(0.5), p90: at(0.9) }
}

/// Microseconds per `run`, after `samples / 10 + 1` runs of warm-up.
fn measure(samples: usize, run: impl FnMut()) -> Timing {
    percentiles(timing::micros_per_run(samples, run))
}

/// How a row's figure is shown.
#[derive(Clone, Copy)]
enum Unit {
    Micros,
    Millis,
    PerSecond,
}

impl Unit {
    fn show(self, value: f64) -> String {
        match self {
            Unit::Micros => format!("{value:.1}"),
            Unit::Millis => format!("{:.1}", value / 1e3),
            Unit::PerSecond => format!("{value:.0}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::PerSecond => "per s",
        }
    }
}

struct Table {
    rows: Vec<(String, Timing, Unit, String)>,
}

impl Table {
    fn add(&mut self, name: &str, timing: Timing, unit: Unit, side_by_side: String) {
        self.rows.push((name.to_owned(), timing, unit, side_by_side));
    }

    fn print(&self) {
        println!("\n| what | p50 | p90 | unit | side by side |");
        println!("|---|---:|---:|---|---|");
        for (name, t, unit, side_by_side) in &self.rows {
            println!("| {name} | {} | {} | {} | {side_by_side} |", unit.show(t.p50), unit.show(t.p90), unit.name());
        }
    }
}

/// "N× faster" or "N× slower": time `ours` against time `theirs` (p50s).
fn faster(ours: f64, theirs: f64) -> String {
    if ours <= theirs { format!("{:.1}× faster", theirs / ours) } else { format!("{:.1}× slower", ours / theirs) }
}

/// "N× as many" or "1/N as many": rate `ours` against rate `theirs` (p50s).
fn as_many(ours: f64, theirs: f64) -> String {
    if ours >= theirs { format!("{:.1}× as many", ours / theirs) } else { format!("1/{:.1} as many", theirs / ours) }
}

/// The release `wmp` beside this bench's executable (target/release/deps/cluster-…).
fn wmp_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    let beside = exe.parent().and_then(Path::parent).map(|dir| dir.join("wmp"));
    beside.filter(|path| path.exists()).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wmp")))
}

fn cluster_runtime(dashboard: &str, wmp: &Path) -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wmp-code-cache");
    let cluster = Cluster::ray(dashboard).agent_command(wmp);
    Runtime::builder().code_cache(CodeCache::Directory(cache)).cluster(cluster).build().expect("runtime")
}

fn quiet() -> Capabilities {
    Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null)
}

/// Starts a noop process placed at `placement`, and the process.
fn start_noop(rt: &Runtime, program: &Program, placement: Placement) -> wmp_host::Process {
    let p = rt.process(program).capabilities(quiet()).target("noop", br#""""#.to_vec()).placement(placement).build();
    p.start().expect("start");
    p
}

fn start_join(rt: &Runtime, program: &Program, placement: Placement) {
    let p = start_noop(rt, program, placement);
    p.join(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "{p}");
}

/// start() alone and the join() after it, of `samples` noop processes at
/// `placement` one after another (after warm-up), in microseconds.
fn start_then_join(rt: &Runtime, program: &Program, placement: &Placement, samples: usize) -> (Timing, Timing) {
    let (mut starts, mut joins) = (Vec::new(), Vec::new());
    for i in 0..samples + samples / 10 + 1 {
        let at = Instant::now();
        let p = start_noop(rt, program, placement.clone());
        let started = at.elapsed();
        p.join(Some(Duration::from_secs(60))).unwrap();
        let joined = at.elapsed() - started;
        assert_eq!(p.exitcode(), Ok(Some(0)), "{p}");
        if i > samples / 10 {
            starts.push(started.as_secs_f64() * 1e6);
            joins.push(joined.as_secs_f64() * 1e6);
        }
    }
    (percentiles(starts), percentiles(joins))
}

/// Processes per second, each round `count` noop processes started from
/// `threads` threads (the i-th at `placements[i % len]`), then joined;
/// the p90 is the rate of the slower 90th-percentile round.
fn throughput(rt: &Runtime, program: &Program, placements: &[Placement], count: usize, threads: usize, rounds: usize) -> Timing {
    let round = || {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                scope.spawn(move || {
                    let started: Vec<_> = (t..count)
                        .step_by(threads)
                        .map(|i| start_noop(rt, program, placements[i % placements.len()].clone()))
                        .collect();
                    for p in started {
                        p.join(Some(Duration::from_secs(60))).unwrap();
                        assert_eq!(p.exitcode(), Ok(Some(0)), "{p}");
                    }
                });
            }
        });
        start.elapsed().as_secs_f64()
    };
    rate_over_rounds(count, rounds, round)
}

/// `count` per second over `rounds` runs of `round` (which returns its
/// seconds), after one to warm up; the p90 is the rate of the slower
/// 90th-percentile round.
fn rate_over_rounds(count: usize, rounds: usize, mut round: impl FnMut() -> f64) -> Timing {
    round();
    let mut durations: Vec<f64> = (0..rounds).map(|_| round()).collect();
    durations.sort_by(f64::total_cmp);
    let rate = |at: usize| count as f64 / durations[at.min(durations.len() - 1)];
    Timing { p50: rate(durations.len() / 2), p90: rate(durations.len() * 9 / 10) }
}

/// Messages per second a `source` child at `placement` sends the host
/// over a pipe, each round `count` messages of `size` bytes received
/// until the EOF its end brings.
fn pipe_rate(rt: &Runtime, program: &Program, placement: &Placement, count: usize, size: usize, rounds: usize) -> Timing {
    let round = || {
        let (rx, tx) = rt.pipe(false);
        let args = serde_json::to_vec(&format!("{count} {size} 1")).unwrap();
        let p = rt.process(program).capabilities(quiet()).target("source", args).placement(placement.clone()).build();
        p.pass_connection(tx).unwrap();
        let start = Instant::now();
        p.start().expect("start");
        let mut received = 0;
        while let Ok(batch) = rx.recv_many(1 << 20) {
            received += batch.len();
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert_eq!(received, count, "every message arrived");
        p.join(Some(Duration::from_secs(60))).unwrap();
        elapsed
    };
    rate_over_rounds(count, rounds, round)
}

/// Ray's figures, from benches/ray_tasks.py (or why there are none).
fn ray_figures(samples: usize, tasks: usize, rounds: usize, actors: usize) -> Result<serde_json::Value, String> {
    let python = std::env::var("WMP_RAY_PYTHON").map_err(|_| "WMP_RAY_PYTHON is not set".to_owned())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ray_tasks.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([samples, tasks, rounds, actors].map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|line| line.starts_with('{'));
    match (out.status.success(), line) {
        (true, Some(line)) => serde_json::from_str(line).map_err(|e| format!("{e}: {line}")),
        _ => Err(format!("{} failed ({}): {}", script.display(), out.status, String::from_utf8_lossy(&out.stderr))),
    }
}

fn timing(figures: &serde_json::Value, key: &str) -> Timing {
    let field = |name: &str| figures[key][name].as_f64().unwrap_or_else(|| panic!("{key}.{name} in {figures}"));
    Timing { p50: field("p50"), p90: field("p90") }
}

fn main() {
    let Ok(dashboard) = std::env::var("WMP_RAY_DASHBOARD") else {
        println!(
            "benches/cluster.rs needs a Ray cluster: bash scripts/ray-cluster.sh run -- cargo bench --features cluster --bench cluster"
        );
        return;
    };
    let quick = std::env::args().any(|a| a == "quick");
    let latency_samples = if quick { 100 } else { 500 };
    let (count, threads, rounds) = (200, 8, if quick { 3 } else { 10 });
    let agent_starts = if quick { 1 } else { 3 };
    let (ray_tasks, ray_actors) = (1000, if quick { 2 } else { 5 });
    let wmp = wmp_binary();
    println!("agents: {}", wmp.display());

    // Ray first, on a cluster with no wmp agent yet.
    let ray = ray_figures(latency_samples, ray_tasks, rounds, ray_actors).unwrap_or_else(|why| panic!("Ray's figures: {why}"));
    println!(
        "Ray {} ({} nodes, {} CPUs; ray.init took {:.2} s)",
        ray["ray_version"].as_str().unwrap_or("?"),
        ray["nodes"],
        ray["cpus"],
        ray["init_s"].as_f64().unwrap_or(f64::NAN)
    );
    let ray_rtt = timing(&ray, "task_round_trip_us");
    let ray_rtt_b = timing(&ray, "task_round_trip_node_b_us");
    let ray_rate = timing(&ray, "tasks_per_s");
    let ray_actor = timing(&ray, "actor_start_node_b_us");

    // Agent start-up: the first start+join on a placement, each in a
    // runtime of its own (so with a new agent); the last runtime serves
    // the rest.
    let any_node = Placement::Cluster { resource: None };
    let (mut first_b, mut first_any) = (Vec::new(), Vec::new());
    let mut runtime = None;
    for _ in 0..agent_starts {
        drop(runtime.take()); // its agents exit with their links
        let rt = cluster_runtime(&dashboard, &wmp);
        let program = rt.load(wmp_test_guests::PROBE).expect("the probe guest");
        for (placement, samples) in [(Placement::node_with(NODE_B), &mut first_b), (any_node.clone(), &mut first_any)] {
            let start = Instant::now();
            start_join(&rt, &program, placement);
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
        runtime = Some((rt, program));
    }
    let (rt, program) = runtime.as_ref().unwrap();
    let (first_b, first_any) = (percentiles(first_b), percentiles(first_any));

    let remote = measure(latency_samples, || start_join(rt, program, Placement::node_with(NODE_B)));
    let remote_any = measure(latency_samples, || start_join(rt, program, any_node.clone()));
    let (remote_start, remote_join) = start_then_join(rt, program, &Placement::node_with(NODE_B), latency_samples);
    let local = measure(latency_samples * 4, || start_join(rt, program, Placement::Local));
    let two_nodes = [Placement::node_with(NODE_B), any_node.clone()];
    let rate = throughput(rt, program, &two_nodes, count, threads, rounds);
    let rate_b = throughput(rt, program, &[Placement::node_with(NODE_B)], count, threads, rounds);
    let rate_local = throughput(rt, program, &[Placement::Local], count, threads, rounds);
    let (messages, message_size) = (if quick { 5_000 } else { 20_000 }, 1024);
    let pipe_b = pipe_rate(rt, program, &Placement::node_with(NODE_B), messages, message_size, rounds);
    let pipe_local = pipe_rate(rt, program, &Placement::Local, messages, message_size, rounds);

    let mut table = Table { rows: Vec::new() };
    let n = latency_samples;
    table.add(&format!("Ray task round trip, `ray.get(f.remote())` one at a time (n={n})"), ray_rtt, Unit::Micros, String::new());
    table.add(
        &format!("Ray task round trip, pinned to node b (n={n})"),
        ray_rtt_b,
        Unit::Micros,
        String::new(),
    );
    table.add(
        &format!("wmp remote start+join, noop process on node b (n={n})"),
        remote,
        Unit::Micros,
        format!(
            "wmp remote start+join is {} than a Ray task round trip ({} than one pinned to node b)",
            faster(remote.p50, ray_rtt.p50),
            faster(remote.p50, ray_rtt_b.p50)
        ),
    );
    table.add(
        &format!("… of which start() alone, node b: to the agent's Started (n={n})"),
        remote_start,
        Unit::Micros,
        format!("wmp remote start() alone is {} than a Ray task round trip", faster(remote_start.p50, ray_rtt.p50)),
    );
    table.add(
        &format!("… of which the join() after it, node b (n={n})"),
        remote_join,
        Unit::Micros,
        String::new(),
    );
    table.add(
        &format!("wmp remote start+join, noop process on any node (n={n})"),
        remote_any,
        Unit::Micros,
        format!("wmp remote start+join is {} than a Ray task round trip", faster(remote_any.p50, ray_rtt.p50)),
    );
    table.add(
        &format!("wmp local start+join, noop process, for scale (n={})", n * 4),
        local,
        Unit::Micros,
        format!("a start+join on node b takes {:.1}× a local one", remote.p50 / local.p50),
    );
    let ray_rate_name = format!("Ray tasks per second, {ray_tasks} in flight, as Ray places them ({rounds} rounds)");
    table.add(&ray_rate_name, ray_rate, Unit::PerSecond, String::new());
    table.add(
        &format!("wmp processes per second, {count} noop over node b and any node, started from {threads} threads, joined ({rounds} rounds)"),
        rate,
        Unit::PerSecond,
        format!("wmp starts+joins {} processes per second as Ray runs tasks", as_many(rate.p50, ray_rate.p50)),
    );
    table.add(
        &format!("wmp processes per second, {count} noop on node b only, {threads} threads ({rounds} rounds)"),
        rate_b,
        Unit::PerSecond,
        format!("wmp starts+joins {} processes per second as Ray runs tasks", as_many(rate_b.p50, ray_rate.p50)),
    );
    table.add(
        &format!("wmp processes per second, {count} noop local, {threads} threads, for scale ({rounds} rounds)"),
        rate_local,
        Unit::PerSecond,
        format!("{} as over two nodes", as_many(rate_local.p50, rate.p50)),
    );
    table.add(
        &format!("pipe from a process on node b to the host, {messages} messages of {message_size} B ({rounds} rounds)"),
        pipe_b,
        Unit::PerSecond,
        format!("{:.1} MB/s", pipe_b.p50 * message_size as f64 / 1e6),
    );
    table.add(
        &format!("pipe from a local process to the host, the same, for scale ({rounds} rounds)"),
        pipe_local,
        Unit::PerSecond,
        format!("{} as from node b", as_many(pipe_local.p50, pipe_b.p50)),
    );
    table.add(
        &format!("Ray actor start on node b, to its first method's answer (n={ray_actors})"),
        ray_actor,
        Unit::Millis,
        String::new(),
    );
    table.add(
        &format!("wmp agent start-up on node b: first start+join of a runtime there (n={agent_starts})"),
        first_b,
        Unit::Millis,
        format!("a wmp agent start-up is {} than a Ray actor start", faster(first_b.p50, ray_actor.p50)),
    );
    table.add(
        &format!("wmp agent start-up on any node: first start+join there (n={agent_starts})"),
        first_any,
        Unit::Millis,
        format!("a wmp agent start-up is {} than a Ray actor start", faster(first_any.p50, ray_actor.p50)),
    );
    table.print();
}
