//! Moving messages between processes, timed the same way in every bench
//! that reports it: a guest sending to its guest child over a one-way pipe
//! (the probe guest's `pipe_to_child` target, which times itself from the
//! first send until the child has read everything and ended), and
//! Python's `multiprocessing.Pipe` and `Queue` doing the same in
//! `benches/python_connections_baseline.py`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wmp_host::{Capabilities, Program, Runtime, Stdio};

/// How long a guest takes to send `n` messages of `size` bytes, `batch`
/// per call (one WIT call each), to its child, which receives them one per
/// call (or a batch per call when they come in batches).
pub fn guest_to_guest(rt: &Runtime, probe: &Program, target: &str, n: usize, size: usize, batch: usize) -> Duration {
    let (stdout, captured) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).stdout(stdout).stderr(Stdio::Inherit);
    let args = if target == "pipe_to_child" { format!("{n} {size} {batch}") } else { format!("{n} {size}") };
    let sender = rt.process(probe).capabilities(caps).target(target, serde_json::to_vec(&args).unwrap()).build();
    sender.start().unwrap();
    sender.join(None).unwrap();
    assert_eq!(sender.exitcode().unwrap(), Some(0));
    let text = captured.text();
    let nanos = text.lines().find_map(|l| l.strip_prefix("elapsed_ns=")).expect("the sender reports its time");
    Duration::from_nanos(nanos.parse().unwrap())
}

/// Python's rates in the same run: (case, messages per second) for
/// `pipe_64B`, `pipe_1MiB`, `queue_64B` and `queue_1MiB`, with the message
/// counts scaled by `scale`; none without python3.
pub fn python_rates(scale: f64) -> Vec<(String, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_connections_baseline.py");
    let Ok(out) = Command::new("python3").arg(&script).arg(scale.to_string()).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let field = |key: &str| line.split(' ').find_map(|f| f.strip_prefix(key)).map(str::to_owned);
            Some((field("case=")?, field("msgs_per_s=")?.parse().ok()?))
        })
        .collect()
}
