//! Limits: a process that goes past its memory, table, fuel, time, stack,
//! process count or spawn depth ends like a kill (-9) with the limit as
//! its exit reason; children inherit limits; the host survives.

use std::time::Duration;

use wmp_host::{ExitReason, Limit, Limits, Process, Program, Runtime, RuntimeBuilder};

use crate::{Backend, Fixture, Output, PATIENCE, child_builder, probe, run_child, runtime};

const SPIN: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;
const GROW: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (drop (memory.grow (i32.const 1000)))))"#;
const RECURSE: &str = r#"(module (memory (export "memory") 1) (func $f (call $f)) (func (export "_start") (call $f)))"#;

fn run_limited(rt: &Runtime, program: &Program, limits: Limits) -> Process {
    finish(rt.process(program).limits(limits).build())
}

/// Starts the process and waits for its end.
fn finish(p: Process) -> Process {
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert!(!p.is_alive().unwrap(), "{p} outlived {PATIENCE:?}");
    p
}

/// Runs a probe target with limits, to its end.
fn run_probe_limited(rt: &Runtime, target: &str, args: &str, limits: Limits) -> (Process, Output) {
    let (builder, out) = child_builder(rt, &probe(rt), target, args);
    (finish(builder.limits(limits).build()), out)
}

fn assert_limit(p: &Process, limit: Limit) {
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(limit))), "{p}");
    assert_eq!(p.exitcode(), Ok(Some(-9)), "a limit ends a process like a kill");
}

#[test]
fn memory_growth_past_the_limit() {
    let rt = runtime();
    let grow = rt.load_bytes("grow.wat", GROW.as_bytes()).unwrap();
    let p = run_limited(&rt, &grow, Limits { max_memory: Some(32 << 20), ..Limits::new() });
    assert_limit(&p, Limit::Memory);
    let p = run_limited(&rt, &grow, Limits { max_memory: Some(128 << 20), ..Limits::new() });
    assert_eq!(p.exitcode(), Ok(Some(0)), "within the limit");
    // A Rust guest allocating past its limit.
    let (p, _) = run_probe_limited(&rt, "alloc", "64", Limits { max_memory: Some(16 << 20), ..Limits::new() });
    assert_limit(&p, Limit::Memory);
}

#[test]
fn table_growth_past_the_limit() {
    let rt = runtime();
    let grow = r#"(module (table 1 funcref) (memory (export "memory") 1)
        (func (export "_start") (drop (table.grow (ref.null func) (i32.const 1000)))))"#;
    let grow = rt.load_bytes("table.wat", grow.as_bytes()).unwrap();
    let p = run_limited(&rt, &grow, Limits { max_table_elements: Some(100), ..Limits::new() });
    assert_limit(&p, Limit::Table);
}

#[test]
fn an_instance_too_big_for_its_limit_cannot_start_running() {
    let rt = runtime();
    let program = probe(&rt);
    let p = run_limited(&rt, &program, Limits { max_memory: Some(64 << 10), ..Limits::new() });
    assert_limit(&p, Limit::Memory);
}

#[test]
fn a_timeout_stops_a_loop() {
    let rt = runtime();
    let spin = rt.load_bytes("spin.wat", SPIN.as_bytes()).unwrap();
    let p = run_limited(&rt, &spin, Limits { timeout: Some(Duration::from_millis(30)), ..Limits::new() });
    assert_limit(&p, Limit::Timeout);
}

#[test]
fn fuel_runs_out() {
    let rt = Runtime::builder().fuel_metering(true).build().unwrap();
    let spin = rt.load_bytes("spin.wat", SPIN.as_bytes()).unwrap();
    let p = run_limited(&rt, &spin, Limits { fuel: Some(1_000_000), ..Limits::new() });
    assert_limit(&p, Limit::Fuel);
    // Without metering, a fuel limit is refused at start with the reason.
    let rt = runtime();
    let spin = rt.load_bytes("spin.wat", SPIN.as_bytes()).unwrap();
    let p = rt.process(&spin).limits(Limits { fuel: Some(10), ..Limits::new() }).build();
    assert!(p.start().unwrap_err().to_string().contains("fuel metering"));
}

/// A stack overflow is the stack limit's, but a trap, as CPython's
/// RecursionError is an exception: exitcode 1, and its report on the
/// process's stderr, not a kill's -9.
#[test]
fn a_stack_overflow_is_a_trap_of_the_stack_limit() {
    let rt = RuntimeBuilder::default().max_wasm_stack(64 << 10).build().unwrap();
    let recurse = rt.load_bytes("recurse.wat", RECURSE.as_bytes()).unwrap();
    let (stderr, captured) = wmp_host::Stdio::capture();
    let p = finish(rt.process(&recurse).capabilities(wmp_host::Capabilities::new().stderr(stderr)).build());
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Stack))), "{p}");
    assert_eq!(p.exitcode(), Ok(Some(1)), "a trap, not a kill");
    let report = captured.text();
    assert!(report.starts_with(&format!("Process {}:\n", p.name())), "{report}");
    assert!(report.contains("call stack exhausted"), "{report}");
}

#[test]
fn children_inherit_limits_and_cannot_widen_them() {
    let rt = runtime();
    let (p, out) = run_probe_limited(&rt, "nest", "alloc 64", Limits { max_memory: Some(16 << 20), ..Limits::new() });
    assert!(out.stdout().contains("Process-1:1 exitcode=Some(-9)"), "{}", out.stdout());
    assert_eq!(p.exitcode(), Ok(Some(0)));
    // Runtime-wide limits reach every process, and asking to widen them is
    // an error.
    let rt = RuntimeBuilder::default().limits(Limits { max_memory: Some(16 << 20), ..Limits::new() }).build().unwrap();
    let grow = rt.load_bytes("grow.wat", GROW.as_bytes()).unwrap();
    let p = run_limited(&rt, &grow, Limits::new());
    assert_limit(&p, Limit::Memory);
    let wider = rt.process(&grow).limits(Limits { max_memory: Some(1 << 30), ..Limits::new() }).build();
    let err = wider.start().unwrap_err();
    assert_eq!(err.to_string(), "cannot widen the memory limit from 16777216 to 1073741824");
}

#[test]
fn a_fork_bomb_is_contained() {
    let rt = runtime();
    let (p, _) = run_probe_limited(&rt, "fork_bomb", "", Limits { max_processes: Some(8), ..Limits::new() });
    assert_limit(&p, Limit::Processes);
    assert_eq!(rt.live_process_count(), 0, "the whole bomb is gone");
    // The host keeps serving other processes.
    let (q, _) = run_child(&rt, &probe(&rt), "noop", "");
    assert_eq!(q.exitcode(), Ok(Some(0)));
}

crate::for_both_backends!(spawning_too_deep_is_a_limit);

/// Native processes carry the depth left to them into their own runtimes,
/// so the limit holds across them exactly.
fn spawning_too_deep_is_a_limit(backend: Backend) {
    let f = Fixture::new(backend);
    let limits = Limits { max_depth: Some(2), ..Limits::new() };
    let (builder, out) = f.probe_builder("nest", "nest nest nest identity");
    finish(builder.limits(limits).build());
    // Process-1 may have children and grandchildren, not great-grandchildren.
    assert!(out.stdout().contains("Process-1:1:1 exitcode=Some(-9)"), "{}", out.stdout());
    assert!(out.stdout().contains("Process-1:1 exitcode=Some(0)"), "{}", out.stdout());
}

#[test]
fn the_runtime_caps_live_processes() {
    let rt = RuntimeBuilder::default().max_live_processes(2).build().unwrap();
    let spin = rt.load_bytes("spin.wat", SPIN.as_bytes()).unwrap();
    let spinners: Vec<Process> = (0..2).map(|_| rt.process(&spin).build()).collect();
    spinners.iter().for_each(|p| p.start().unwrap());
    let third = rt.process(&spin).build();
    let refused = third.start().unwrap_err();
    assert_eq!(refused.to_string(), "process count limit reached: 3 live processes");
    spinners.iter().for_each(|p| p.kill().unwrap());
    spinners.iter().for_each(|p| p.join(Some(PATIENCE)).unwrap());
    assert_eq!(third.start(), Ok(()), "a place is free again");
    third.kill().unwrap();
}
