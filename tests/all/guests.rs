//! What a guest sees of the process model through the WIT imports (or,
//! built natively, through the handoff and its own runtime): its own
//! identity, its parent, and the rules when it makes children of its own.

use std::time::{Duration, Instant};

use wmp_host::ProcessError;

use crate::{Backend, Fixture, PATIENCE, probe, run_child, runtime};

crate::for_both_backends!(
    a_child_sees_itself_and_its_parent,
    names_and_identities_nest_three_levels_deep,
    a_child_reports_its_childs_exit_code,
    a_panic_gives_exitcode_1_with_its_message,
    a_daemonic_process_may_not_start_children,
    an_ending_process_terminates_daemons_and_joins_the_rest,
    a_child_runs_while_its_parent_computes,
    a_main_started_with_no_arguments_gets_none,
);

/// Empty arguments for a program's main are no arguments, under either
/// backend (the native SDK refused them while the host took them).
fn a_main_started_with_no_arguments_gets_none(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.run_probe("own_main_without_args", "");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    assert!(out.stdout().contains("main exitcode=Some(0)"), "{}", out.stdout());
}

fn a_child_sees_itself_and_its_parent(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.run_probe("identity", "");
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(out.value("name"), "Process-1");
    assert_eq!(out.value("pid"), format!("Some({pid})"));
    assert_eq!(out.value("identity"), "[1]");
    let host = std::process::id();
    assert_eq!(out.value("parent_pid"), format!("Some({host})"));
    assert_eq!(out.value("daemon"), "false");
    assert_eq!(out.value("alive"), "true", "the current process is alive");
    assert_eq!(out.value("exitcode"), "None");
    assert_eq!(out.value("repr"), format!("<Process name='Process-1' parent={host} started>"));
    assert_eq!(out.value("join"), "Err(\"can only join a child process\")");
    assert_eq!(out.value("start"), "Err(\"can only start a process object created by current process\")");
    assert_eq!(out.value("sentinel"), "Some(\"process not started\")");
    assert_eq!(out.value("parent_name"), "MainProcess");
    assert_eq!(out.value("parent_alive"), "true");
    assert_eq!(out.value("parent_join"), "Ok(())", "joining the parent view times out without error");
    assert_eq!(out.value("parent_pid_view"), format!("Some({host})"));
    assert_eq!(out.value("parent_repr"), "<_ParentProcess name='MainProcess' parent=None unknown>");
}

fn names_and_identities_nest_three_levels_deep(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.run_probe("nest", "nest identity");
    assert_eq!(p.exitcode(), Ok(Some(0)));
    let stdout = out.stdout();
    assert_eq!(out.value("name"), "Process-1:1:1", "{stdout}");
    assert_eq!(out.value("identity"), "[1, 1, 1]");
    assert_eq!(out.value("parent_name"), "Process-1:1");
    assert!(stdout.contains("Process-1:1:1 exitcode=Some(0)"), "{stdout}");
    assert!(stdout.contains("Process-1:1 exitcode=Some(0)"), "{stdout}");
}

fn a_child_reports_its_childs_exit_code(backend: Backend) {
    let f = Fixture::new(backend);
    let (_, out) = f.run_probe("nest", "exit_with 42");
    assert!(out.stdout().contains("Process-1:1 exitcode=Some(42)"), "{}", out.stdout());
}

#[test]
fn a_guest_places_a_child_on_the_cluster_only_if_its_host_granted_it() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "place_child", "node_b noop");
    assert_eq!(out.value("start error"), "placing a child on the cluster was not granted to this process (wmp run --cluster)");
    // Granted, but this runtime has no cluster: still refused, by the runtime.
    let (stdout, captured) = wmp_host::Stdio::capture();
    let caps = wmp_host::Capabilities::new().args(["probe"]).stdout(stdout).cluster(true);
    let args = serde_json::to_vec("* noop").unwrap();
    let p = rt.process(&program).capabilities(caps).target("place_child", args).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let stdout = captured.text();
    assert!(stdout.contains("start error=cannot place a process on a cluster: this runtime has none"), "{stdout}");
}

#[test]
fn an_unknown_target_fails_to_start_with_a_clear_error() {
    let rt = runtime();
    let program = probe(&rt);
    assert!(program.targets().unwrap().iter().any(|t| t == "identity"), "targets: {:?}", program.targets());
    let (p, _) = crate::child(&rt, &program, "no_such_target", "");
    let err = p.start().unwrap_err();
    assert!(matches!(err, ProcessError::UnknownTarget(_)));
    assert!(err.to_string().starts_with("unknown target \"no_such_target\": "), "{err}");
    assert_eq!(p.pid(), Ok(None), "it did not start");
    // The same from inside a guest.
    let (_, out) = run_child(&rt, &program, "unknown_target", "");
    assert!(out.value("start error").starts_with("unknown target \"no_such_target\": "), "{}", out.stdout());
    // A core module has no targets at all.
    let module = rt.load(wmp_test_guests::PLAIN_P1).unwrap();
    let err = rt.process(&module).target("x", Vec::new()).build().start().unwrap_err();
    assert!(err.to_string().contains("is a core module"), "{err}");
}

#[test]
fn a_guest_starts_another_program_only_if_the_host_shared_it() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "other_program", "plain - exit 0");
    assert_eq!(out.value("start error"), "program \"plain\" is not available to guests (the host has not shared or granted it)");
    rt.share_program("plain", &rt.load(wmp_test_guests::PLAIN_P1).unwrap());
    let (_, out) = run_child(&rt, &program, "other_program", "plain - exit 0");
    assert_eq!(out.value("plain exitcode"), "Some(0)");
    // A shared wmp guest runs its targets, three levels down.
    rt.share_program("probe-too", &program);
    let (_, out) = run_child(&rt, &program, "nest", "other_program probe-too identity");
    assert_eq!(out.value("name"), "Process-3:1:1");
    assert_eq!(out.value("probe-too exitcode"), "Some(0)");
}

#[test]
fn only_the_creator_may_start_join_or_test_an_object() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, out) = crate::child(&rt, &program, "spawn_and_spin", "");
    p.start().unwrap();
    crate::wait_for_output(&p, &out, "grandchild pid=");
    // The host reaches the guest's own child object through the dangling
    // view; it is not the host's child.
    let grandchild = rt.dangling().into_iter().find(|q| q.name() == "Process-1:1").expect("grandchild object");
    assert_eq!(grandchild.start(), Err(ProcessError::StartedTwice));
    assert_eq!(grandchild.join(None), Err(ProcessError::JoinNotChild));
    assert_eq!(grandchild.is_alive(), Err(ProcessError::TestNotChild));
    assert_eq!(grandchild.is_alive().unwrap_err().to_string(), "can only test a child process");
    assert!(grandchild.to_string().ends_with(" unknown>"), "{grandchild}");
    p.kill().unwrap();
    p.join(None).unwrap();
}

fn a_panic_gives_exitcode_1_with_its_message(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.probe_builder("panic", "bad thing");
    let p = p.name("boom").build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(1)));
    let stderr = out.stderr();
    assert!(stderr.contains("bad thing"), "stderr: {stderr}");
    assert!(stderr.contains("Process boom:\n"), "the report uses the current name: {stderr}");
}

fn a_daemonic_process_may_not_start_children(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.probe_builder("spawn_child", "");
    let p = p.daemon(true).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(out.value("start error"), "daemonic processes are not allowed to have children");
    // A non-daemonic process may.
    let (p, out) = f.run_probe("spawn_child", "");
    assert!(out.stdout().contains("started <Process name='Process-2:1' pid="), "{}", out.stdout());
    assert_eq!(out.value("child exitcode"), "Some(-9)");
    assert_eq!(p.exitcode(), Ok(Some(0)));
}

fn an_ending_process_terminates_daemons_and_joins_the_rest(backend: Backend) {
    let f = Fixture::new(backend);
    let before = Instant::now();
    let (p, out) = f.run_probe("leave_children", "2 300");
    assert!(out.stdout().contains("children started: 4"), "{}", out.stdout());
    assert_eq!(p.exitcode(), Ok(Some(0)));
    // The parent ended only after its sleeping children were joined ...
    assert!(before.elapsed() >= Duration::from_millis(300), "ended after {:?}", before.elapsed());
    // ... and the spinning daemons were stopped rather than left behind.
    assert_eq!(f.rt.live_process_count(), 0);
}

/// A child a guest starts is scheduled when its parent's poll returns
/// (see `run_slot`): a parent that computes without ever blocking still
/// lets it run, within about an epoch tick.
fn a_child_runs_while_its_parent_computes(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, out) = f.run_probe("start_then_compute", "exit_with 7");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    let text = out.stdout();
    let line = text.lines().find(|l| l.starts_with("child exitcode=")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("child exitcode=Some(7) after "), "{line}");
    let ms: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(ms < 2000, "the child waited {ms} ms for its parent: {line}");
}
