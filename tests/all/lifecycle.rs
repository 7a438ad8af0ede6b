//! The lifecycle of a process started by the host: identity and names,
//! start, join, is_alive, exitcode, terminate/kill, close, daemon, the
//! exit function and orphans.

use std::time::{Duration, Instant};

use wmp_host::{ExitReason, Limit, Limits, ProcessError};

use crate::{Backend, Fixture, Job, PATIENCE, child, probe, run_child, runtime};

crate::for_both_backends!(
    the_host_is_the_main_process,
    every_constructed_object_takes_the_next_number,
    pid_is_none_before_start_and_unique_after,
    start_only_once,
    a_start_after_the_runtime_is_dropped_is_refused,
    a_placement_on_a_cluster_the_runtime_lacks_is_refused_at_start,
    join_checks_and_timeout,
    exitcode_of_a_normal_return_and_of_exit,
    terminate_and_kill_stop_a_spinning_process,
    a_process_being_joined_is_stopped_from_another_thread,
    a_join_that_cannot_block_leaves_the_process_running,
    a_started_process_runs_while_the_host_never_waits,
    signals_before_start_fail_and_after_exit_do_nothing,
    close_rules,
    an_unstarted_object_can_be_closed,
    daemon_is_settable_only_before_start,
    active_children_lists_started_live_children_and_reaps_ended_ones,
    nothing_dangles_once_handles_are_gone,
    dropping_the_runtime_kills_what_still_runs,
    the_async_api_joins_and_waits_without_blocking,
    an_async_join_works_on_an_executor_without_timers,
    start_reaps_ended_children_first,
);

fn the_host_is_the_main_process(backend: Backend) {
    let rt = Fixture::new(backend).rt;
    let main = rt.current_process();
    assert_eq!(main.name(), "MainProcess");
    assert_eq!(main.identity(), &[] as &[u32]);
    assert_eq!(main.pid(), Ok(Some(std::process::id())), "the host's OS pid");
    assert_eq!(main.parent_pid(), None);
    assert_eq!(main.is_alive(), Ok(true));
    assert_eq!(main.exitcode(), Ok(None));
    assert!(!main.daemon());
    assert_eq!(main.join(None), Err(ProcessError::JoinNotChild));
    assert_eq!(main.start(), Err(ProcessError::NotCreator));
    assert_eq!(main.sentinel().err(), Some(ProcessError::NotStarted));
    assert_eq!(main.terminate(), Err(ProcessError::SignalNotChild));
    assert_eq!(main.close(), Ok(()), "closing the main process is a no-op");
    assert_eq!(main.is_alive(), Ok(true));
}

fn every_constructed_object_takes_the_next_number(backend: Backend) {
    let f = Fixture::new(backend);
    let names: Vec<String> = (0..3).map(|_| f.unstarted().build().name()).collect();
    assert_eq!(names, ["Process-1", "Process-2", "Process-3"]);
    let named = f.unstarted().name("worker").build();
    assert_eq!(named.name(), "worker");
    assert_eq!(named.identity(), &[4]);
    assert_eq!(f.unstarted().name("").build().name(), "Process-5", "an empty name keeps the default");
    let p = f.unstarted().build();
    p.set_name("renamed");
    assert_eq!(p.name(), "renamed");
}

fn pid_is_none_before_start_and_unique_after(backend: Backend) {
    let f = Fixture::new(backend);
    let (a, _) = f.child(Job::Noop);
    let (b, _) = f.child(Job::Noop);
    assert_eq!(a.pid(), Ok(None));
    a.start().unwrap();
    b.start().unwrap();
    let (pa, pb) = (a.pid().unwrap().unwrap(), b.pid().unwrap().unwrap());
    assert!(pa != pb && pa != std::process::id(), "pids {pa} {pb}");
    let wasm_pid = |pid| pid >= wmp_host::FIRST_WASM_PID;
    assert_eq!(wasm_pid(pa), backend == Backend::Wasm, "wasm pids lie above every OS pid: {pa}");
    a.join(None).unwrap();
    assert_eq!(a.pid(), Ok(Some(pa)), "the pid stays after exit");
    b.join(None).unwrap();
}

fn start_only_once(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.run_child(Job::Noop);
    assert_eq!(p.start(), Err(ProcessError::StartedTwice));
    assert_eq!(p.start().unwrap_err().to_string(), "cannot start a process twice");
}

/// A process object that outlives its runtime cannot start: the runtime
/// that would run it is gone.
fn a_start_after_the_runtime_is_dropped_is_refused(backend: Backend) {
    let f = Fixture::new(backend);
    let p = f.unstarted().build();
    drop(f);
    let refused = p.start().unwrap_err();
    assert_eq!(refused, ProcessError::SpawnFailed("cannot start process: the wmp runtime has shut down".into()));
    assert_eq!(p.exitcode(), Ok(None), "{p}");
}

/// Placement is explicit, and a runtime without a cluster refuses it at
/// start, as a start that cannot happen is refused; the object stays
/// initial and can still run here.
fn a_placement_on_a_cluster_the_runtime_lacks_is_refused_at_start(backend: Backend) {
    let f = Fixture::new(backend);
    let p = f.unstarted().placement(wmp_host::Placement::node_with("node_b")).build();
    let refused = p.start().unwrap_err();
    assert!(matches!(refused, ProcessError::SpawnFailed(ref why) if why.contains("this runtime has none")), "{refused}");
    assert_eq!(p.exitcode(), Ok(None), "{p}");
    let q = f.unstarted().placement(wmp_host::Placement::Local).build();
    q.start().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    assert_eq!(q.exitcode(), Ok(Some(0)));
}

fn join_checks_and_timeout(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Spin);
    assert_eq!(p.join(None), Err(ProcessError::JoinNotStarted));
    assert_eq!(p.join(None).unwrap_err().to_string(), "can only join a started process");
    assert_eq!(p.is_alive(), Ok(false), "not alive before start");
    p.start().unwrap();
    assert_eq!(p.join(Some(Duration::ZERO)), Ok(()), "join(0) returns at once");
    let before = Instant::now();
    assert_eq!(p.join(Some(Duration::from_millis(50))), Ok(()), "a timeout is not an error");
    assert!(before.elapsed() >= Duration::from_millis(50));
    assert_eq!(p.is_alive(), Ok(true));
    assert_eq!(p.exitcode(), Ok(None), "no exitcode while running");
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.is_alive(), Ok(false));
}

fn exitcode_of_a_normal_return_and_of_exit(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Noop);
    assert_eq!(p.exitcode(), Ok(None), "no exitcode before start");
    p.start().unwrap();
    p.join(None).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
    let returned = match backend {
        Backend::Wasm => ExitReason::Returned,
        Backend::Native => ExitReason::Exit(0),
    };
    assert_eq!(p.exit_reason(), Ok(Some(returned)));
    for code in [3, 7, 255] {
        let (p, _) = f.run_child(Job::ExitWith(code));
        assert_eq!(p.exitcode(), Ok(Some(code)));
        assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Exit(code))));
    }
}

#[test]
fn a_trap_gives_exitcode_1_and_a_report_on_stderr() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, out) = run_child(&rt, &program, "trap", "");
    assert_eq!(p.exitcode(), Ok(Some(1)));
    assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Trap(ref m))) if m.contains("unreachable")));
    let stderr = out.stderr();
    assert!(stderr.starts_with("Process Process-1:\n"), "stderr: {stderr}");
    assert!(stderr.contains("wasm trap: wasm `unreachable` instruction executed"), "stderr: {stderr}");
}

fn terminate_and_kill_stop_a_spinning_process(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    for (signal, code, reason) in [("terminate", -15, ExitReason::Terminated), ("kill", -9, ExitReason::Killed)] {
        let (p, _) = f.child(Job::Spin);
        p.start().unwrap();
        p.join(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(p.is_alive(), Ok(true));
        if signal == "terminate" { p.terminate().unwrap() } else { p.kill().unwrap() }
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(code)), "{signal}");
        assert_eq!(p.exit_reason(), Ok(Some(reason)));
    }
    assert_eq!(rt.live_process_count(), 0, "the stores (or OS processes) are gone");
}

/// A join without a timeout may run the guest on the joining thread (see
/// `run_slot`): a signal from another thread must still reach it, and the
/// process's own time limit still applies.
fn a_process_being_joined_is_stopped_from_another_thread(backend: Backend) {
    let f = Fixture::new(backend);
    for (signal, code) in [("terminate", -15), ("kill", -9)] {
        let (p, _) = f.child(Job::Spin);
        p.start().unwrap();
        let signaller = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                if signal == "terminate" { p.terminate() } else { p.kill() }
            })
        };
        p.join(None).unwrap();
        signaller.join().unwrap().unwrap();
        assert_eq!(p.exitcode(), Ok(Some(code)), "{signal}");
    }
    let (builder, _) = f.builder(Job::Spin);
    let p = builder.limits(Limits { timeout: Some(Duration::from_millis(50)), ..Limits::new() }).build();
    p.start().unwrap();
    p.join(None).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Timeout))));
}

/// A process the host starts is handed to a worker at the host's next
/// blocking wait (see `run_slot`); a host that never waits, only polls,
/// still sees it run, within about an epoch tick.
fn a_started_process_runs_while_the_host_never_waits(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::ExitWith(3));
    p.start().unwrap();
    let started = Instant::now();
    while p.is_alive().unwrap() && started.elapsed() < PATIENCE {
        std::hint::spin_loop();
    }
    assert_eq!(p.exitcode(), Ok(Some(3)));
    assert!(started.elapsed() < Duration::from_secs(2), "it waited {:?} for the host", started.elapsed());
}

/// A join called where it cannot block (inside an async context) panics,
/// as tokio's `block_on` does; the process it was about to wait for keeps
/// running to its end.
fn a_join_that_cannot_block_leaves_the_process_running(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::ExitWith(3));
    p.start().unwrap();
    let elsewhere = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| elsewhere.block_on(async { p.join(None) })));
    assert!(joined.is_err(), "a blocking join inside an async context panics");
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(3)));
}

#[test]
fn kill_stops_a_guest_blocked_in_a_host_call() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, _) = child(&rt, &program, "sleep", "600000");
    p.start().unwrap();
    p.join(Some(Duration::from_millis(20))).unwrap();
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(-9)));
}

fn signals_before_start_fail_and_after_exit_do_nothing(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Noop);
    assert_eq!(p.terminate(), Err(ProcessError::NotStarted));
    assert_eq!(p.kill(), Err(ProcessError::NotStarted));
    p.start().unwrap();
    p.join(None).unwrap();
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "a signal to an ended process changes nothing");
}

fn close_rules(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let (p, _) = f.child(Job::Spin);
    p.start().unwrap();
    assert_eq!(p.close(), Err(ProcessError::CloseRunning));
    assert_eq!(
        p.close().unwrap_err().to_string(),
        "Cannot close a process while it is still running. You should first call join() or terminate()."
    );
    p.kill().unwrap();
    // Ended but never joined: closing is allowed.
    while rt.wait(&[p.sentinel().unwrap()], Some(PATIENCE)).is_empty() {}
    assert_eq!(p.close(), Ok(()));
    assert_eq!(p.close(), Ok(()), "closing twice is fine");
    assert_eq!(p.start(), Err(ProcessError::Closed));
    assert_eq!(p.join(None), Err(ProcessError::Closed));
    assert_eq!(p.is_alive(), Err(ProcessError::Closed));
    assert_eq!(p.terminate(), Err(ProcessError::Closed));
    assert_eq!(p.kill(), Err(ProcessError::Closed));
    assert_eq!(p.exitcode(), Err(ProcessError::Closed));
    assert_eq!(p.pid(), Err(ProcessError::Closed));
    assert_eq!(p.sentinel().err(), Some(ProcessError::Closed));
    assert_eq!(p.exitcode().unwrap_err().to_string(), "process object is closed");
    // What still works after close.
    assert_eq!(p.name(), "Process-1");
    assert!(!p.daemon());
    assert_eq!(p.authkey(), rt.current_process().authkey());
    assert!(p.to_string().ends_with(" closed>"));
    assert!(rt.active_children().is_empty());
}

fn an_unstarted_object_can_be_closed(backend: Backend) {
    let f = Fixture::new(backend);
    let p = f.unstarted().build();
    assert_eq!(p.close(), Ok(()));
    assert_eq!(p.start(), Err(ProcessError::Closed));
}

fn daemon_is_settable_only_before_start(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Spin);
    assert!(!p.daemon(), "inherited from the main process");
    p.set_daemon(true).unwrap();
    assert!(p.daemon());
    p.start().unwrap();
    assert_eq!(p.set_daemon(false), Err(ProcessError::AlreadyStarted));
    assert_eq!(p.set_daemon(false).unwrap_err().to_string(), "process has already started");
    assert!(p.daemon());
    p.kill().unwrap();
    p.join(None).unwrap();
}

fn active_children_lists_started_live_children_and_reaps_ended_ones(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let (spinner, _) = f.child(Job::Spin);
    let (quick, _) = f.child(Job::Noop);
    let unstarted = f.unstarted().build();
    assert!(rt.active_children().is_empty());
    spinner.start().unwrap();
    quick.start().unwrap();
    // Wait for the quick one to end, without joining it.
    while rt.wait(&[quick.sentinel().unwrap()], Some(PATIENCE)).is_empty() {}
    let active: Vec<String> = rt.active_children().iter().map(|p| p.name()).collect();
    assert_eq!(active, [spinner.name()], "ended children are reaped, unstarted ones not listed");
    spinner.kill().unwrap();
    spinner.join(None).unwrap();
    assert!(rt.active_children().is_empty());
    drop(unstarted);
}

fn nothing_dangles_once_handles_are_gone(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    {
        let (p, _) = f.run_child(Job::Noop);
        let unstarted = f.unstarted().build();
        assert_eq!(rt.dangling().len(), 2);
        drop((p, unstarted));
    }
    assert!(rt.dangling().is_empty(), "dangling: {:?}", rt.dangling());
    // A started child that nobody joined is held by the main process until
    // it is reaped, as CPython's _children holds it.
    let (p, _) = f.child(Job::Noop);
    p.start().unwrap();
    let sentinel = p.sentinel().unwrap();
    drop(p);
    rt.wait(&[sentinel], Some(PATIENCE));
    assert_eq!(rt.dangling().len(), 1);
    assert!(rt.active_children().is_empty());
    assert!(rt.dangling().is_empty());
}

fn dropping_the_runtime_kills_what_still_runs(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Spin);
    p.start().unwrap();
    drop(f);
    assert_eq!(p.exitcode(), Ok(Some(-9)));
    assert!(p.start().is_err());
}

fn the_async_api_joins_and_waits_without_blocking(backend: Backend) {
    let embedder = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    embedder.block_on(async {
        let f = Fixture::new(backend);
        let (p, _) = f.child(Job::Sleep(20));
        p.start().unwrap();
        p.join_async(Some(PATIENCE)).await.unwrap();
        assert_eq!(p.exitcode(), Ok(Some(0)));
        let (q, _) = f.child(Job::Spin);
        q.start().unwrap();
        let s = q.sentinel().unwrap();
        assert!(f.rt.wait_async(std::slice::from_ref(&s), Some(Duration::from_millis(10))).await.is_empty());
        q.kill().unwrap();
        assert_eq!(f.rt.wait_async(&[s], Some(PATIENCE)).await, [0]);
        // The runtime owns a tokio runtime; drop it outside this async context.
        tokio::task::spawn_blocking(move || drop(f)).await.unwrap();
    });
}

/// An async join may poll the guest itself (see `run_slot`): a guest that
/// sleeps must still work when the embedder's executor has no timers.
fn an_async_join_works_on_an_executor_without_timers(backend: Backend) {
    let f = Fixture::new(backend);
    let embedder = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (p, _) = f.child(Job::Sleep(20));
    p.start().unwrap();
    embedder.block_on(p.join_async(None)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
}

fn start_reaps_ended_children_first(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let (first, _) = f.child(Job::Noop);
    first.start().unwrap();
    let sentinel = first.sentinel().unwrap();
    drop(first);
    rt.wait(&[sentinel], Some(PATIENCE));
    assert_eq!(rt.dangling().len(), 1, "the ended, unjoined child is still held");
    let (second, _) = f.child(Job::Spin);
    second.start().unwrap();
    let names: Vec<String> = rt.dangling().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["Process-2"], "start() dropped the ended child");
    second.kill().unwrap();
    second.join(None).unwrap();
}

#[test]
fn a_runtime_runs_a_guest_as_its_main_process_blocking_or_async() {
    // A WASI p2 exit carries only success or failure: any non-zero is 1.
    let exit_3 = || wmp_host::Capabilities::new().args(["plain", "exit", "3"]);
    let rt = runtime();
    let program = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    assert_eq!(rt.run_main(&program, exit_3()).unwrap(), ExitReason::Exit(1));
    assert!(rt.run_main(&program, exit_3()).is_err(), "a runtime has one main process");
    let rt = runtime();
    let program = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    let embedder = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = Instant::now();
    assert_eq!(embedder.block_on(rt.run_main_async(&program, exit_3())).unwrap(), ExitReason::Exit(1));
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn a_wasmtime_config_is_the_base_and_its_spinner_can_still_be_killed() {
    // The embedder's Config is the base; the runtime sets epoch
    // interruption over it, which its kills and turns need.
    let mut config = wasmtime::Config::new();
    config.cranelift_opt_level(wasmtime::OptLevel::None);
    let rt = wmp_host::RuntimeBuilder::default().wasmtime_config(config).build().unwrap();
    let spin = rt.load_bytes("spin.wat", br#"(module (func (export "_start") (loop (br 0))))"#).unwrap();
    let p = rt.process(&spin).build();
    p.start().unwrap();
    p.join(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(p.is_alive(), Ok(true));
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Killed)));
}

#[test]
fn a_wasmtime_config_that_turns_epoch_interruption_off_is_refused() {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(false);
    let refused = wmp_host::RuntimeBuilder::default().wasmtime_config(config).build().err().expect("refused");
    let message = refused.to_string();
    assert!(matches!(refused, wmp_host::Error::Setup(_)), "{message}");
    assert!(message.contains("turns epoch interruption off"), "{message}");
}

#[test]
fn a_wasmtime_config_that_consumes_fuel_meters_it() {
    // Fuel metering asked for in the Config is kept (not turned off for a
    // runtime that was not told), so a fuel limit works.
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    let rt = wmp_host::RuntimeBuilder::default().wasmtime_config(config).build().unwrap();
    let spin = rt.load_bytes("spin.wat", br#"(module (func (export "_start") (loop (br 0))))"#).unwrap();
    let p = rt.process(&spin).limits(wmp_host::Limits { fuel: Some(10_000), ..wmp_host::Limits::new() }).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(wmp_host::Limit::Fuel))));
}
