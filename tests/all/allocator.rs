//! The instance allocator: a runtime pools slots for its processes by
//! default, and a process the pool has no room for (every slot taken, or a
//! program that fits no slot) runs on demand instead of failing to start,
//! guest-started children and host functions included.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wmp_host::{ExitReason, ModuleState, Process, Program, Runtime, RuntimeBuilder};

use crate::{PATIENCE, child, probe};

/// A core module that spins until it is stopped.
const SPIN: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

/// Waits until `holds` is true of the runtime's pool.
fn wait_for_pool(rt: &Runtime, what: &str, holds: impl Fn(&wasmtime::PoolingAllocatorMetrics) -> bool) {
    let started = Instant::now();
    while !holds(&rt.pool_metrics().expect("a pooled runtime")) {
        assert!(started.elapsed() < PATIENCE, "the pool never came to hold {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spinner(rt: &Runtime) -> Process {
    let program = rt.load_bytes("spin.wat", SPIN.as_bytes()).unwrap();
    let p = rt.process(&program).build();
    p.start().unwrap();
    p
}

fn kill_and_join(p: &Process) {
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Killed)));
}

#[test]
fn the_default_runtime_starts_its_processes_in_its_pool_and_pooling_0_turns_it_off() {
    let rt = Runtime::new().unwrap();
    let p = spinner(&rt);
    wait_for_pool(&rt, "the spinner's instance", |pool| pool.core_instances() == 1);
    kill_and_join(&p);

    let on_demand = RuntimeBuilder::default().pooling(0).build().unwrap();
    assert!(on_demand.pool_metrics().is_none());
    let p = spinner(&on_demand);
    assert!(p.is_alive().unwrap());
    kill_and_join(&p);
}

#[test]
fn more_processes_alive_than_the_pool_has_slots_all_run_and_end_normally() {
    let rt = RuntimeBuilder::default().pooling(2).build().unwrap();
    let program = probe(&rt);
    let sleepers: Vec<_> = (0..6).map(|_| child(&rt, &program, "sleep", "300")).collect();
    sleepers.iter().for_each(|(p, _)| p.start().unwrap());
    wait_for_pool(&rt, "two component instances", |pool| pool.component_instances() == 2);
    assert!(sleepers.iter().all(|(p, _)| p.is_alive().unwrap()), "six alive with two slots");
    let pool = rt.pool_metrics().unwrap();
    assert!(pool.stacks() <= 2 && pool.memories() <= 4, "two processes' worth: {} stacks, {} memories", pool.stacks(), pool.memories());
    for (p, output) in &sleepers {
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Returned)), "{}", output.stderr());
    }
}

#[test]
fn children_a_guest_starts_past_the_pools_size_run_on_demand() {
    let rt = RuntimeBuilder::default().pooling(2).keep_ended_processes(16).build().unwrap();
    let program = probe(&rt);
    // Three daemonic spinners (terminated when the parent returns) and
    // three sleepers (joined), beside their parent: seven processes alive.
    let (parent, output) = crate::run_child(&rt, &program, "leave_children", "3 300");
    assert_eq!(parent.exit_reason(), Ok(Some(ExitReason::Returned)), "{}", output.stderr());
    assert!(output.stdout().contains("children started: 6"), "{}", output.stdout());
    let mut ends: Vec<_> = rt
        .ended_processes()
        .into_iter()
        .filter(|info| info.parent_pid == parent.pid().unwrap())
        .map(|info| info.exit_reason.unwrap())
        .collect();
    ends.sort_by_key(|reason| format!("{reason:?}"));
    assert_eq!(ends, [vec![ExitReason::Returned; 3], vec![ExitReason::Terminated; 3]].concat());
}

#[test]
fn a_program_that_fits_no_slot_loads_and_runs_on_demand() {
    let rt = Runtime::new().unwrap();
    let two_memories = |body: &str| format!(r#"(module (memory 1) (memory 1) (func (export "_start") {body}))"#);
    let nine_tables = format!(r#"(module {} (func (export "_start")))"#, "(table 1 funcref) ".repeat(9));
    let huge_table = r#"(module (table 2000000 funcref) (func (export "_start")))"#;
    for wat in [two_memories(""), nine_tables, huge_table.to_owned()] {
        let program = rt.load_bytes("no-fit.wat", wat.as_bytes()).unwrap_or_else(|e| panic!("{wat}: {e}"));
        run_to_return(&rt, &program);
    }
    let spinning = rt.load_bytes("no-fit-spin.wat", two_memories("(loop (br 0))").as_bytes()).unwrap();
    let p = rt.process(&spinning).build();
    p.start().unwrap();
    p.join(Some(Duration::from_millis(50))).unwrap();
    assert!(p.is_alive().unwrap());
    let pool = rt.pool_metrics().unwrap();
    assert_eq!((pool.core_instances(), pool.memories()), (0, 0), "it runs outside the pool");
    kill_and_join(&p);
}

fn run_to_return(rt: &Runtime, program: &Program) {
    let p = rt.process(program).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Returned)));
}

#[test]
fn host_functions_serve_processes_in_the_pool_and_outside_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let rt = RuntimeBuilder::default()
        .pooling(1)
        .module_functions(move |linker| {
            let counted = counted.clone();
            linker.func_wrap("host", "count", move |_: wasmtime::Caller<'_, ModuleState>| {
                counted.fetch_add(1, Ordering::Relaxed);
            })?;
            Ok(())
        })
        .build()
        .unwrap();
    let counting = r#"(module (import "host" "count" (func $count)) (func (export "_start") (call $count)))"#;
    let program = rt.load_bytes("count.wat", counting.as_bytes()).unwrap();
    run_to_return(&rt, &program);
    let holder = spinner(&rt);
    wait_for_pool(&rt, "the spinner in the one slot", |pool| pool.core_instances() == 1);
    run_to_return(&rt, &program);
    kill_and_join(&holder);
    assert_eq!(calls.load(Ordering::Relaxed), 2, "called once in the pool, once on demand");
}

#[test]
fn a_memory_reservation_smaller_than_a_memory_may_grow_turns_the_pool_off() {
    // On demand, a memory grows past its reservation by moving; in a slot
    // it could not, so such a runtime has no pool, even when told.
    let reserving = |bytes| {
        let mut config = wasmtime::Config::new();
        config.memory_reservation(bytes);
        RuntimeBuilder::default().wasmtime_config(config)
    };
    let grows_to_2_mib = r#"(module (memory 1)
        (func (export "_start") (if (i32.eq (memory.grow (i32.const 31)) (i32.const -1)) (then unreachable))))"#;
    let rt = reserving(1 << 20).build().unwrap();
    assert!(rt.pool_metrics().is_none());
    run_to_return(&rt, &rt.load_bytes("grow.wat", grows_to_2_mib.as_bytes()).unwrap());
    let told = reserving(1 << 20).pooling(2).build().unwrap();
    assert!(told.pool_metrics().is_none());
    run_to_return(&told, &told.load_bytes("grow.wat", grows_to_2_mib.as_bytes()).unwrap());
    assert!(reserving(4 << 30).build().unwrap().pool_metrics().is_some(), "4 GiB is as much as a memory may have");
}

/// A core module that fails (exits with 1) if any of the words it looks at
/// in its memory, grown to four pages, is not zero, and then writes there.
const LOOKS_THEN_WRITES: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start")
        (local $seen i32)
        (drop (memory.grow (i32.const 3)))
        (local.set $seen (i32.or (i32.load (i32.const 0)) (i32.load (i32.const 12288))))
        (local.set $seen (i32.or (local.get $seen) (i32.load (i32.const 65600))))
        (local.set $seen (i32.or (local.get $seen) (i32.load (i32.const 200000))))
        (i32.store (i32.const 0) (i32.const 0x5eed))
        (i32.store (i32.const 12288) (i32.const 0x5eed))
        (i32.store (i32.const 65600) (i32.const 0x5eed))
        (i32.store (i32.const 200000) (i32.const 0x5eed))
        (call $exit (i32.ne (local.get $seen) (i32.const 0)))))"#;

/// Every process in a one-slot pool takes the slot the one before it
/// wrote in, within the pages kept resident and past them: none may find
/// what an earlier one wrote.
#[test]
fn a_process_in_a_reused_slot_finds_its_memory_zeroed() {
    let rt = RuntimeBuilder::default().pooling(1).build().unwrap();
    let program = rt.load_bytes("looks-then-writes.wat", LOOKS_THEN_WRITES.as_bytes()).unwrap();
    for run in 0..20 {
        let p = rt.process(&program).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(0)), "run {run} found what an earlier process wrote");
        // The next run takes the slot this one wrote in.
        wait_for_pool(&rt, "its slot free again", |pool| pool.memories() == 0);
    }
}
