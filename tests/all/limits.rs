//! Limits: a process that goes past its memory, table, fuel, time, stack,
//! process count or spawn depth ends like a kill (-9) with the limit as
//! its exit reason, unless a failed memory or table growth is to return -1
//! or trap instead (`GrowFailure`, as under `wasmtime run`); children
//! inherit limits; the host survives.

use std::time::Duration;

use wmp_host::{ExitReason, GrowFailure, Limit, Limits, Process, Program, Runtime, RuntimeBuilder};

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

/// Under a 32 MiB (512-page) memory limit: a growth past it returns -1 and
/// counts nothing, so growing to exactly the limit still works, and one
/// page more returns -1 again; exit 7 if all that held, 2-4 for the step
/// that did not.
const GROW_TO_THE_MEMORY_LIMIT: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start")
        (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then (call $exit (i32.const 2))))
        (if (i32.ne (memory.grow (i32.const 511)) (i32.const 1)) (then (call $exit (i32.const 3))))
        (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (call $exit (i32.const 4))))
        (call $exit (i32.const 7))))"#;

/// The same for a 100-element table limit.
const GROW_TO_THE_TABLE_LIMIT: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (table 1 funcref)
    (func (export "_start")
        (if (i32.ne (table.grow (ref.null func) (i32.const 1000)) (i32.const -1)) (then (call $exit (i32.const 2))))
        (if (i32.ne (table.grow (ref.null func) (i32.const 99)) (i32.const 1)) (then (call $exit (i32.const 3))))
        (if (i32.ne (table.grow (ref.null func) (i32.const 1)) (i32.const -1)) (then (call $exit (i32.const 4))))
        (call $exit (i32.const 7))))"#;

/// Grows a memory past its declared maximum of 2 pages (no limit involved):
/// exit 7 if that returned -1.
const GROW_PAST_THE_DECLARED_MAXIMUM: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1 2)
    (func (export "_start")
        (if (i32.ne (memory.grow (i32.const 5)) (i32.const -1)) (then (call $exit (i32.const 2))))
        (call $exit (i32.const 7))))"#;

/// The limits the WAT programs above are written for, with `on_grow_failure`.
fn memory_and_table_limits(on_grow_failure: GrowFailure) -> Limits {
    Limits {
        max_memory: Some(32 << 20),
        max_table_elements: Some(100),
        on_grow_failure: Some(on_grow_failure),
        ..Limits::new()
    }
}

#[test]
fn a_refused_growth_returns_minus_one_counts_nothing_and_the_process_goes_on() {
    // Set for the runtime, as `wmp run` does: every process inherits it.
    let rt = RuntimeBuilder::default().limits(memory_and_table_limits(GrowFailure::Refuse)).build().unwrap();
    for (name, wat) in [("memory.wat", GROW_TO_THE_MEMORY_LIMIT), ("table.wat", GROW_TO_THE_TABLE_LIMIT)] {
        let program = rt.load_bytes(name, wat.as_bytes()).unwrap();
        let p = run_limited(&rt, &program, Limits::new());
        assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Exit(7))), "{name}: {p}");
    }
    // A Rust guest whose allocation fails aborts, which is a trap (under
    // the runtime's table limit above it could not even be instantiated:
    // an error, not a trap).
    let refusing = Limits { max_memory: Some(16 << 20), on_grow_failure: Some(GrowFailure::Refuse), ..Limits::new() };
    let rt = RuntimeBuilder::default().limits(refusing.clone()).build().unwrap();
    let (p, _) = run_probe_limited(&rt, "alloc", "64", refusing);
    assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Trap(_)))), "{p}: {:?}", p.exit_reason());
    assert_eq!(p.exitcode(), Ok(Some(1)));
    let (p, _) = run_probe_limited(&runtime(), "noop", "", memory_and_table_limits(GrowFailure::Refuse));
    assert!(
        matches!(p.exit_reason(), Ok(Some(ExitReason::Error(ref why))) if why.contains("exceeds table limits")),
        "an instance over its limits is never made: {:?}",
        p.exit_reason()
    );
}

/// A memory of 1-byte pages starting at 64 KiB, under a 1 MiB limit: 64
/// times, it grows by 64 KiB, then by 4 GiB - 1 bytes, a growth wasmtime
/// fails without asking the limiter (the memory's type cannot hold it);
/// exits with how many of the 64 KiB growths worked.
const GROW_BETWEEN_UNASKED_FAILURES: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 65536 (pagesize 1))
    (func (export "_start") (local $grown i32) (local $round i32)
        (loop $again
            (if (i32.ne (memory.grow (i32.const 65536)) (i32.const -1))
                (then (local.set $grown (i32.add (local.get $grown) (i32.const 1)))))
            (drop (memory.grow (i32.const -1)))
            (local.set $round (i32.add (local.get $round) (i32.const 1)))
            (br_if $again (i32.lt_u (local.get $round) (i32.const 64))))
        (call $exit (local.get $grown))))"#;

#[test]
fn a_growth_failed_without_asking_takes_back_no_earlier_growth() {
    let mut config = wasmtime::Config::new();
    config.wasm_custom_page_sizes(true);
    let rt = RuntimeBuilder::default().wasmtime_config(config).build().unwrap();
    let program = rt.load_bytes("pages.wat", GROW_BETWEEN_UNASKED_FAILURES.as_bytes()).unwrap();
    let limits = Limits { max_memory: Some(1 << 20), on_grow_failure: Some(GrowFailure::Refuse), ..Limits::new() };
    let p = run_limited(&rt, &program, limits);
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Exit(15))), "64 KiB to start, 15 more make 1 MiB: {p}");
}

#[test]
fn a_failed_growth_traps_when_asked_to() {
    let rt = runtime();
    let trapping = memory_and_table_limits(GrowFailure::Trap);
    let cases = [
        ("memory.wat", GROW_TO_THE_MEMORY_LIMIT, "forcing trap when growing memory to 65601536 bytes"),
        ("table.wat", GROW_TO_THE_TABLE_LIMIT, "forcing trap when growing table to 1001 elements"),
        ("maximum.wat", GROW_PAST_THE_DECLARED_MAXIMUM, "forcing trap when growing memory to 393216 bytes"),
    ];
    for (name, wat, trap) in cases {
        let program = rt.load_bytes(name, wat.as_bytes()).unwrap();
        let (stderr, captured) = wmp_host::Stdio::capture();
        let p = rt.process(&program).limits(trapping.clone()).capabilities(wmp_host::Capabilities::new().stderr(stderr));
        let p = finish(p.build());
        assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Error(trap.into()))), "{name}: {p}");
        assert_eq!(p.exitcode(), Ok(Some(1)), "the failed run ends a child like an exception");
        assert!(captured.text().starts_with(&format!("Process {}:\n", p.name())), "{}", captured.text());
    }
    // By default a growth past the declared maximum returns -1 (only the
    // limits stop a process).
    let program = rt.load_bytes("maximum.wat", GROW_PAST_THE_DECLARED_MAXIMUM.as_bytes()).unwrap();
    assert_eq!(run_limited(&rt, &program, Limits::new()).exit_reason(), Ok(Some(ExitReason::Exit(7))));
}

#[test]
fn a_child_cannot_soften_what_a_failed_growth_does() {
    let rt = RuntimeBuilder::default().limits(memory_and_table_limits(GrowFailure::Trap)).build().unwrap();
    let program = rt.load_bytes("memory.wat", GROW_TO_THE_MEMORY_LIMIT.as_bytes()).unwrap();
    let softer = rt.process(&program).limits(Limits { on_grow_failure: Some(GrowFailure::Refuse), ..Limits::new() });
    let err = softer.build().start().unwrap_err();
    assert_eq!(err.to_string(), "cannot soften the grow failure reaction from Trap to Refuse");
    let stricter = Limits { on_grow_failure: Some(GrowFailure::Stop), ..Limits::new() };
    assert_limit(&run_limited(&rt, &program, stricter), Limit::Memory);
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
