//! Per-process metrics: CPU time, fuel, memory peaks, the host-memory
//! peak and IPC bytes of each process, read live and after the end, and
//! the records of ended processes a runtime keeps when asked to.

use std::path::PathBuf;
use std::time::Duration;

use wmp_host::{Capabilities, CodeCache, ExitReason, NativeProgram, ProcessInfo, Runtime, Stdio};

use crate::{PATIENCE, probe, runtime};

/// A runtime that keeps the records of the last `kept` ended processes,
/// metering fuel if `fuel`, with the suite's code cache.
fn keeping(kept: usize, fuel: bool) -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wmp-code-cache");
    let builder = Runtime::builder().code_cache(CodeCache::Directory(cache)).fuel_metering(fuel);
    builder.keep_ended_processes(kept).build().expect("runtime")
}

/// Runs the probe's `target` with `args` as a child of the host, to its end.
fn run_to_end(rt: &Runtime, target: &str, args: &str) -> wmp_host::Process {
    let program = probe(rt);
    let caps = Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null);
    let p = rt.process(&program).capabilities(caps).target(target, serde_json::to_vec(args).unwrap()).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "{target} {args}");
    p
}

/// The record of the ended process named `name`.
fn ended<'a>(records: &'a [ProcessInfo], name: &str) -> &'a ProcessInfo {
    records.iter().find(|record| record.name == name).unwrap_or_else(|| panic!("no record of {name}: {records:?}"))
}

#[test]
fn a_guest_that_computes_shows_cpu_time_and_the_fuel_it_burnt() {
    let rt = keeping(0, true);
    let program = probe(&rt);
    let p = rt.process(&program).target("spin", serde_json::to_vec("").unwrap()).build();
    assert_eq!(p.metrics(), Ok(None), "nothing before start");
    p.start().unwrap();
    // Read live: the epoch tick reports the fuel of a guest that runs on.
    let started = std::time::Instant::now();
    while p.metrics().unwrap().unwrap().fuel_consumed == Some(0) {
        assert!(started.elapsed() < PATIENCE, "no fuel reported while it spins");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let used = p.metrics().unwrap().expect("an ended process keeps its metrics");
    assert!(used.cpu_time > Duration::ZERO, "{used:?}");
    assert!(used.fuel_consumed.is_some_and(|fuel| fuel > 0), "{used:?}");
    assert!(used.memory_peak > 0, "its linear memory: {used:?}");

    // Without metering there is no fuel to report.
    let unmetered = run_to_end(&runtime(), "noop", "");
    let used = unmetered.metrics().unwrap().unwrap();
    assert_eq!(used.fuel_consumed, None);
    assert!(used.cpu_time > Duration::ZERO, "instantiating and running it took some time: {used:?}");
}

#[test]
fn fuel_consumed_is_counted_against_a_fuel_limit() {
    let rt = Runtime::builder().fuel_metering(true).build().unwrap();
    let program = probe(&rt);
    let limits = wmp_host::Limits { fuel: Some(5_000_000), ..wmp_host::Limits::new() };
    let p = rt.process(&program).limits(limits).target("spin", serde_json::to_vec("").unwrap()).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(wmp_host::Limit::Fuel))));
    assert_eq!(p.metrics().unwrap().unwrap().fuel_consumed, Some(5_000_000), "all of its fuel, read at the end of its run");
}

#[test]
fn a_guest_that_grows_its_memory_shows_the_peak_after_its_end() {
    let rt = runtime();
    let p = run_to_end(&rt, "alloc", "16");
    let used = p.metrics().unwrap().unwrap();
    assert!(used.memory_peak >= 16 << 20, "it held 16 MiB at once: {used:?}");
    assert!(used.memory_peak < 64 << 20, "and not much more: {used:?}");
    assert!(used.host_memory_peak > 0, "its arguments were charged while it ran: {used:?}");
}

#[test]
fn a_pipe_or_queue_transfer_counts_its_bytes_on_both_ends() {
    let rt = keeping(16, false);
    // One message per call, then batches (send_frames / recv_frames), then a queue.
    for (target, args, bytes) in [("pipe_to_child", "10 1000 1", 10_000), ("pipe_to_child", "12 500 4", 6_000), ("queue_to_child", "7 300", 2_100)] {
        let p = run_to_end(&rt, target, args);
        let sender = p.metrics().unwrap().unwrap();
        assert_eq!(sender.ipc_bytes_sent, bytes, "{target} {args}");
        assert_eq!(sender.ipc_bytes_received, 0, "{target} {args}");
        assert!(sender.host_memory_peak >= 300, "what it sent was charged to it until taken: {sender:?}");
        let records = rt.ended_processes();
        let sink = ended(&records, &format!("{}:1", p.name()));
        assert_eq!((sink.metrics.ipc_bytes_received, sink.metrics.ipc_bytes_sent), (bytes, 0), "{target} {args}");
    }
}

#[test]
fn ended_processes_are_kept_only_when_asked_and_at_most_as_many_as_asked() {
    let rt = runtime();
    run_to_end(&rt, "noop", "");
    assert_eq!(rt.ended_processes(), [], "kept only when asked");

    let rt = keeping(2, false);
    let names: Vec<String> = (0..3).map(|_| run_to_end(&rt, "noop", "").name()).collect();
    let records = rt.ended_processes();
    let kept: Vec<&str> = records.iter().map(|record| record.name.as_str()).collect();
    assert_eq!(kept, [names[1].as_str(), names[2].as_str()], "the last two, in pid order");
    for record in &records {
        assert_eq!(record.exit_reason, Some(ExitReason::Returned));
        assert_eq!(record.parent_pid, Some(std::process::id()));
        assert!(record.metrics.cpu_time > Duration::ZERO, "{record:?}");
    }
    assert!(rt.process_tree().iter().all(|live| live.exit_reason.is_none()), "the live ones have no end yet");
}

#[test]
fn a_native_child_reports_the_cpu_time_and_memory_the_kernel_counted() {
    let rt = runtime();
    let argv = ["dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=20"];
    let caps = Capabilities::new().args(argv).stdout(Stdio::Null).stderr(Stdio::Null);
    let p = rt.native_process(&NativeProgram::new("dd")).capabilities(caps).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
    let used = p.metrics().unwrap().unwrap();
    assert!(used.cpu_time > Duration::ZERO, "{used:?}");
    assert!(used.memory_peak >= 32 << 20, "its 32 MiB buffer: {used:?}");
    assert_eq!(used.fuel_consumed, None);
}

/// `wmp run ARGS` with `WMP_LOG` set to `log`: its stderr, ANSI colours
/// taken out.
fn wmp_stderr(args: &[&str], log: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wmp")).args(args).env("WMP_LOG", log).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut plain = String::new();
    let mut rest = stderr.as_ref();
    while let Some(at) = rest.find('\x1b') {
        plain.push_str(&rest[..at]);
        rest = rest[at..].find('m').map_or("", |end| &rest[at + end + 1..]);
    }
    plain + rest
}

#[test]
fn run_with_stats_prints_a_row_for_every_process_of_the_tree() {
    let stderr = wmp_stderr(&["run", "--stats", "-W", "fuel=100000000000", wmp_test_guests::PROBE, "spawn", "nest", "noop"], "");
    let lines: Vec<Vec<&str>> = stderr.lines().map(|line| line.split_whitespace().collect()).collect();
    let header = lines.iter().position(|line| line.first() == Some(&"PID")).unwrap_or_else(|| panic!("no table: {stderr}"));
    assert_eq!(lines[header][2..6], ["NAME", "EXIT", "CPU", "FUEL"], "{stderr}");
    let rows = &lines[header + 1..];
    let names: Vec<&str> = rows.iter().map(|row| row[2]).collect();
    assert_eq!(names, ["MainProcess", "Process-1", "Process-1:1"], "the two that ended before main too: {stderr}");
    for row in rows {
        assert_eq!(row[3], "0", "{stderr}");
        assert!(row[5].parse::<u64>().is_ok_and(|fuel| fuel > 0), "fuel under -W fuel: {stderr}");
    }
    assert_eq!(rows[1][1], rows[0][0], "Process-1's parent is the main process: {stderr}");
    assert_eq!(rows[2][1], rows[1][0], "{stderr}");
    let plain = wmp_stderr(&["run", wmp_test_guests::PROBE, "spawn", "noop"], "");
    assert!(!plain.contains("IPC-SENT"), "no table without --stats: {plain}");
}

#[test]
fn each_process_logs_its_metrics_at_its_end_inside_the_span_of_its_joiner() {
    let stderr = wmp_stderr(&["run", wmp_test_guests::PROBE, "spawn", "nest", "noop"], "wmp_host=debug");
    let end_of = |name: &str| {
        stderr
            .lines()
            .find(|line| line.contains("process ended pid=") && line.contains(&format!(" name={name} ")))
            .unwrap_or_else(|| panic!("no end event for {name}: {stderr}"))
    };
    for name in ["MainProcess", "Process-1", "Process-1:1"] {
        let line = end_of(name);
        for field in ["reason=returned", "cpu_time_us=", "memory_peak=", "host_memory_peak=", "ipc_bytes_sent=0"] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
    // A child joined by its parent runs (and ends) inside its parent's polls,
    // so inside the span of its parent.
    let in_span_of = |line: &str, name: &str| line.contains("process{pid=") && line.contains(&format!(" name={name}}}: "));
    assert!(in_span_of(end_of("Process-1:1"), "Process-1"), "{stderr}");
    assert!(in_span_of(end_of("Process-1"), "MainProcess"), "{stderr}");
    assert!(!end_of("MainProcess").contains("process{"), "the main process ends outside any poll: {stderr}");
}

#[test]
fn a_native_guest_counts_the_bytes_that_cross_its_sockets() {
    let f = crate::Fixture::new(crate::Backend::Native);
    let (builder, out) = f.probe_builder("echo", "");
    let echo = builder.build();
    let (ours, theirs) = f.rt.pipe(true);
    echo.pass_connection(theirs).unwrap();
    echo.start().unwrap();
    for size in [100, 200, 300] {
        ours.send_bytes(&vec![1u8; size]).unwrap();
        assert_eq!(ours.recv_bytes().unwrap().len(), size);
    }
    ours.close();
    echo.join(Some(PATIENCE)).unwrap();
    assert!(out.stdout().contains("echoed=3"), "{}{}", out.stdout(), out.stderr());
    let used = echo.metrics().unwrap().unwrap();
    assert_eq!((used.ipc_bytes_received, used.ipc_bytes_sent), (600, 600), "{used:?}");

    let (builder, out) = f.probe_builder("queue_drain", "4");
    let drain = builder.build();
    let queue = f.rt.queue(0);
    drain.pass_queue(&queue).unwrap();
    drain.start().unwrap();
    (0..4).for_each(|_| queue.put_bytes(vec![2u8; 50], None).unwrap());
    drain.join(Some(PATIENCE)).unwrap();
    assert_eq!(drain.exitcode(), Ok(Some(0)), "{}", out.stderr());
    let used = drain.metrics().unwrap().unwrap();
    assert_eq!((used.ipc_bytes_received, used.ipc_bytes_sent), (200, 0), "{used:?}");
}
