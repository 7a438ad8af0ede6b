//! The instance allocator: a runtime pools slots for its processes by
//! default, and a process the pool has no room for (every slot taken, or a
//! program that fits no slot) runs on demand instead of failing to start,
//! guest-started children and host functions included. And the dense
//! layout (`RuntimeBuilder::dense_layout`): memories and fiber stacks in
//! shared slabs without guard regions, so that a live process maps nothing
//! of its own, and every memory access checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wmp_host::{
    Capabilities, CaptureBuffer, CodeCache, ExitReason, GrowFailure, Limit, Limits, ModuleState, Process, Program,
    Runtime, RuntimeBuilder, Stdin, Stdio,
};

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
    // The next run takes the slot this one wrote in.
    each_of_twenty_runs_finds_zeros(&rt, || wait_for_pool(&rt, "its slot free again", |pool| pool.memories() == 0));
}

/// Runs `LOOKS_THEN_WRITES` twenty times in `rt` (calling `after_each`
/// after each): every run must find its memory zeroed.
fn each_of_twenty_runs_finds_zeros(rt: &Runtime, after_each: impl Fn()) {
    let program = rt.load_bytes("looks-then-writes.wat", LOOKS_THEN_WRITES.as_bytes()).unwrap();
    for run in 0..20 {
        let p = rt.process(&program).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(0)), "run {run} found what an earlier process wrote");
        after_each();
    }
}

/// The dense layout's memory limit in these tests: each memory's slot.
const DENSE_SLOT: usize = 1 << 20;

/// A runtime in the dense layout, its memories in slots of [`DENSE_SLOT`].
fn dense() -> RuntimeBuilder {
    RuntimeBuilder::default().dense_layout(true).limits(Limits { max_memory: Some(DENSE_SLOT), ..Limits::new() })
}

/// A core module of one page of memory that fills its memory with `fill`
/// (if given), prints `r`, waits for its stdin to end (it reads it once:
/// a pipe the test holds, or EOF at once if it is empty) or, if `sleep`,
/// sleeps 600 s, and then runs `then`.
fn ready_then(fill: Option<u8>, sleep: bool, then: &str) -> String {
    let fill = fill.map_or(String::new(), |byte| format!("(memory.fill (i32.const 0) (i32.const {byte}) (i32.const 65536))"));
    let wait = match sleep {
        true => "(i32.store8 (i32.const 8) (i32.const 0)) (i32.store (i32.const 16) (i32.const 1))
                 (i64.store (i32.const 24) (i64.const 600000000000)) (i64.store (i32.const 32) (i64.const 0))
                 (i32.store16 (i32.const 40) (i32.const 0))
                 (drop (call $poll (i32.const 0) (i32.const 300) (i32.const 1) (i32.const 400)))",
        false => "(i32.store (i32.const 100) (i32.const 600)) (i32.store (i32.const 104) (i32.const 16))
                  (drop (call $read (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 108)))",
    };
    format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start")
            {fill}
            (i32.store8 (i32.const 200) (i32.const 114)) ;; r
            (i32.store (i32.const 100) (i32.const 200)) (i32.store (i32.const 104) (i32.const 1))
            (drop (call $write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))
            {wait}
            {then}))"#
    )
}

/// Starts a process of `program` with `caps`' stdout captured, and waits
/// until it has printed `r` (its memory and stack are taken by then).
fn start_ready(rt: &Runtime, program: &Program, caps: Capabilities) -> (Process, CaptureBuffer) {
    let (stdout, printed) = Stdio::capture();
    let p = rt.process(program).capabilities(caps.stdout(stdout)).build();
    p.start().unwrap();
    let started = Instant::now();
    while printed.text().is_empty() {
        assert!(p.is_alive().unwrap() && started.elapsed() < PATIENCE, "{p} never got ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    (p, printed)
}

#[test]
fn a_dense_runtime_needs_a_memory_limit() {
    let refused = RuntimeBuilder::default().dense_layout(true).build().err().expect("refused");
    assert_eq!(
        refused.to_string(),
        "cannot set up the runtime: the dense layout needs a memory limit (Limits::max_memory): each memory is a slot of that size, with no \
         guard region, and cannot grow past it"
    );
}

/// A guest's memory slot lies right below its neighbour's, with no guard
/// between them: every load past the end of its memory must trap in the
/// compiled bounds check, whether it lands in the rest of its own slot or
/// in the neighbour's memory, which holds a marker.
#[test]
fn a_dense_guest_cannot_reach_past_its_memory_into_its_neighbours() {
    let rt = dense().build().unwrap();
    let neighbour = rt.load_bytes("neighbour.wat", ready_then(Some(0x5e), true, "").as_bytes()).unwrap();
    let probes = [
        ("just past its end", "(i32.const 65536)", 0),
        ("across its end", "(i32.const 65534)", 0),
        ("the neighbour's first word, by a static offset", "(i32.const 0)", DENSE_SLOT),
        ("inside the neighbour's memory", &format!("(i32.const {})", DENSE_SLOT + 64), 0),
        ("far past it", "(i32.const -16)", 0),
    ];
    let mut neighbour_process = None;
    for (what, address, offset) in probes {
        // It loads the word, and prints it if it got one.
        let load = format!(
            "(i32.store (i32.const 500) (i32.load offset={offset} {address}))
             (i32.store (i32.const 100) (i32.const 500)) (i32.store (i32.const 104) (i32.const 4))
             (drop (call $write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))"
        );
        let prober = rt.load_bytes("prober.wat", ready_then(None, false, &load).as_bytes()).unwrap();
        let (stdin, mut release) = Stdin::pipe();
        // The first prober takes the first slot, the neighbour the next;
        // each later prober takes the first slot again (the last given back).
        let (p, printed) = start_ready(&rt, &prober, Capabilities::new().stdin(stdin).stderr(Stdio::Null));
        neighbour_process.get_or_insert_with(|| start_ready(&rt, &neighbour, Capabilities::new()));
        release.write_blocking(b"go").unwrap();
        release.close();
        p.join(Some(PATIENCE)).unwrap();
        match p.exit_reason().unwrap() {
            Some(ExitReason::Trap(trap)) => assert!(trap.contains("out of bounds memory access"), "{what}: {trap}"),
            other => panic!("{what}: {other:?}, printed {:?}", printed.contents()),
        }
        assert_eq!(printed.contents(), b"r", "{what}: it saw nothing");
    }
    let (neighbour_process, _) = neighbour_process.unwrap();
    assert!(neighbour_process.is_alive().unwrap());
    kill_and_join(&neighbour_process);
}

/// A memory grows to its whole slot, every byte of it usable; a growth
/// past it returns -1 and the process goes on (the memory limit, which the
/// slot is as large as, refuses it first; `slot_memories` unit tests
/// refuse it in the slot too).
#[test]
fn a_dense_memory_grows_to_its_slot_and_no_further() {
    let limits = Limits { max_memory: Some(DENSE_SLOT), on_grow_failure: Some(GrowFailure::Refuse), ..Limits::new() };
    let rt = RuntimeBuilder::default().dense_layout(true).limits(limits).build().unwrap();
    let last_word = DENSE_SLOT - 4;
    let grows = format!(
        r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1 100)
        (func (export "_start")
            (if (i32.ne (memory.grow (i32.const 15)) (i32.const 1)) (then (call $exit (i32.const 2))))
            (i32.store (i32.const {last_word}) (i32.const 7))
            (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (call $exit (i32.const 3))))
            (if (i32.ne (memory.size) (i32.const 16)) (then (call $exit (i32.const 4))))
            (call $exit (i32.ne (i32.load (i32.const {last_word})) (i32.const 7)))))"#
    );
    let program = rt.load_bytes("grows.wat", grows.as_bytes()).unwrap();
    for _ in 0..2 {
        let p = rt.process(&program).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Exit(0))), "{p}");
    }
}

/// Each process takes the slot (and stack) the one before it wrote in,
/// past its first page too: none may find what an earlier one wrote.
#[test]
fn a_dense_process_in_a_reused_slot_finds_its_memory_zeroed() {
    each_of_twenty_runs_finds_zeros(&dense().build().unwrap(), || {});
}

/// A fiber stack of the dense layout has no guard page, and the stack of
/// a process started next lies right above the last one's: a recursion
/// must end at wasmtime's software check (`Limit::Stack`), leaving the
/// stack below it whole, so the process parked there runs on to its
/// return, and the host serves new processes.
#[test]
fn deep_recursion_in_a_dense_runtime_ends_at_the_stack_limit_and_its_neighbour_runs_on() {
    let rt = dense().build().unwrap();
    let waits = rt.load_bytes("waits.wat", ready_then(None, false, "").as_bytes()).unwrap();
    let (stdin, release) = Stdin::pipe();
    let (parked, _) = start_ready(&rt, &waits, Capabilities::new().stdin(stdin));
    let recurse = r#"(module (memory 1) (func $f (call $f)) (func (export "_start") (call $f)))"#;
    let recursing = rt.load_bytes("recurse.wat", recurse.as_bytes()).unwrap();
    let p = rt.process(&recursing).capabilities(Capabilities::new().stderr(Stdio::Null)).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Stack))));
    release.close();
    parked.join(Some(PATIENCE)).unwrap();
    assert_eq!(parked.exit_reason(), Ok(Some(ExitReason::Returned)), "its stack was left whole");
    let after = rt.process(&waits).capabilities(Capabilities::new().stdout(Stdio::Null)).build();
    after.start().unwrap();
    after.join(Some(PATIENCE)).unwrap();
    assert_eq!(after.exit_reason(), Ok(Some(ExitReason::Returned)), "the host serves on");
}

/// A code cache shared with a guarded runtime keeps each layout's code
/// apart, and code compiled for the guarded layout (which leaves bounds
/// checks to guard regions) is refused by a dense runtime.
#[test]
fn a_dense_runtime_never_runs_code_compiled_for_the_guarded_layout() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dense-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cached = |builder: RuntimeBuilder| builder.code_cache(CodeCache::Directory(dir.clone())).build().unwrap();
    let guarded = cached(RuntimeBuilder::default().limits(Limits { max_memory: Some(DENSE_SLOT), ..Limits::new() }));
    let dense = cached(dense());
    let past_the_end = r#"(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 65536)))))"#;
    for rt in [&guarded, &dense] {
        let program = rt.load_bytes("past-the-end.wat", past_the_end.as_bytes()).unwrap();
        let p = rt.process(&program).capabilities(Capabilities::new().stderr(Stdio::Null)).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Trap(_)))), "{p}");
    }
    assert_eq!(CodeCache::Directory(dir.clone()).usage().unwrap().entries, 2, "an entry for each layout");
    let artifact = guarded.precompile("past-the-end.wat", past_the_end.as_bytes()).unwrap();
    // SAFETY: the artifact was just made by `precompile`.
    let refused = unsafe { dense.load_precompiled_bytes("past-the-end.cwasm", &artifact) }.err().expect("refused");
    assert!(refused.to_string().contains("memory"), "{refused}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Set in the environment of a copy of this binary that is to count the
/// memory mappings of live dense guests ([`count_dense_mappings`]) instead
/// of running the tests: alone in its process, nothing else maps meanwhile.
pub const DENSE_MAPPINGS_VAR: &str = "WMP_TEST_DENSE_MAPPINGS";

/// Starts as many sleeping minimal guests in a dense runtime as
/// [`DENSE_MAPPINGS_VAR`] says, waits until each has its memory and stack,
/// prints how many mappings they added (`added_mappings=N`), and exits.
pub fn count_dense_mappings(guests: usize) -> ! {
    let rt = dense().build().unwrap();
    let program = rt.load_bytes("sleeps.wat", ready_then(None, true, "").as_bytes()).unwrap();
    let mappings = || std::fs::read_to_string("/proc/self/maps").unwrap().lines().count();
    let before = mappings();
    let (stdout, printed) = Stdio::capture();
    let live: Vec<Process> = (0..guests)
        .map(|_| rt.process(&program).capabilities(Capabilities::new().stdout(stdout.clone())).build())
        .inspect(|p| p.start().unwrap())
        .collect();
    let started = Instant::now();
    while printed.contents().len() < guests {
        assert!(started.elapsed() < PATIENCE, "only {} of {guests} got ready", printed.contents().len());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(live.iter().all(|p| p.is_alive().unwrap()));
    println!("added_mappings={}", mappings() - before);
    std::process::exit(0)
}

#[test]
fn a_few_thousand_live_dense_guests_add_fewer_than_one_mapping_per_ten() {
    let guests = 3000;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(DENSE_MAPPINGS_VAR, guests.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let added: usize = stdout.trim().strip_prefix("added_mappings=").and_then(|n| n.parse().ok()).expect(&stdout);
    assert!(added < guests / 10, "{guests} guests added {added} mappings");
}
