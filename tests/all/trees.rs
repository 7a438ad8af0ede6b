//! Process trees built from inside guests, three and more levels deep: the
//! same rules as for the host's children hold at every level, and the host
//! can see and kill the whole tree.

use wmp_host::{Capabilities, Stdio};

use crate::{PATIENCE, child, probe, rss_bytes, run_child, runtime, wait_for_output};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn each_process_counts_its_own_children() {
    let rt = runtime();
    let program = probe(&rt);
    // main → Process-1 (nest) → Process-1:1 (twice) → Process-1:1:1, Process-1:1:2
    let (_, out) = run_child(&rt, &program, "nest", "twice identity");
    let names: Vec<String> =
        out.stdout().lines().filter_map(|l| l.strip_prefix("name=").map(str::to_owned)).collect();
    assert_eq!(names, ["Process-1:1:1", "Process-1:1:2"], "{}", out.stdout());
    assert!(out.stdout().contains("identity=[1, 1, 2]"));
}

#[test]
fn the_current_process_rules_hold_at_depth_three() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "nest", "nest identity");
    assert_eq!(out.value("name"), "Process-1:1:1");
    assert_eq!(out.value("join"), "Err(\"can only join a child process\")");
    assert_eq!(out.value("start"), "Err(\"can only start a process object created by current process\")");
    assert_eq!(out.value("parent_name"), "Process-1:1");
    assert_eq!(out.value("parent_alive"), "true");
    assert_eq!(out.value("authkey"), hex(rt.current_process().authkey().as_bytes()), "the key is inherited");
    assert!(out.value("repr").starts_with("<Process name='Process-1:1:1' parent="));
}

#[test]
fn a_daemon_at_depth_may_not_have_children() {
    let rt = runtime();
    let program = probe(&rt);
    // main → Process-1 (nest) → Process-1:1 (daemon) → Process-1:1:1, daemonic, tries to start one.
    let (_, out) = run_child(&rt, &program, "nest", "daemon spawn_child");
    assert_eq!(out.value("start error"), "daemonic processes are not allowed to have children");
    assert!(out.stdout().contains("Process-1:1:1 exitcode=Some(0)"), "{}", out.stdout());
}

#[test]
fn a_child_may_set_the_key_of_its_subtree() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "nest", "set_authkey 5ec4e7 nest identity");
    assert_eq!(out.value("name"), "Process-1:1:1:1");
    assert_eq!(out.value("authkey"), "5ec4e7");
    assert_eq!(out.value("authkey_debug"), "AuthKey(<redacted>)");
}

#[test]
fn a_panic_deep_in_the_tree_is_exitcode_1_with_its_message() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, out) = run_child(&rt, &program, "nest", "nest panic deep trouble");
    assert_eq!(p.exitcode(), Ok(Some(0)));
    assert!(out.stdout().contains("Process-1:1:1 exitcode=Some(1)"), "{}", out.stdout());
    let stderr = out.stderr();
    assert!(stderr.contains("deep trouble"), "{stderr}");
    assert!(stderr.contains("Process Process-1:1:1:\n"), "{stderr}");
}

#[test]
fn exit_codes_travel_up_the_tree() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "nest", "nest exit_with 42");
    assert!(out.stdout().contains("Process-1:1:1 exitcode=Some(42)"), "{}", out.stdout());
    assert!(out.stdout().contains("Process-1:1 exitcode=Some(0)"), "{}", out.stdout());
}

#[test]
fn active_children_reaps_at_depth() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "nest", "nest reap");
    assert_eq!(out.value("active_before"), "1");
    assert_eq!(out.value("active_after"), "0");
}

#[test]
fn exit_rules_hold_at_depth() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "nest", "nest leave_children 2 100");
    assert!(out.stdout().contains("children started: 4"), "{}", out.stdout());
    assert!(out.stdout().contains("Process-1:1:1 exitcode=Some(0)"), "{}", out.stdout());
    assert_eq!(rt.live_process_count(), 0);
}

#[test]
fn capabilities_are_inherited_down_the_tree() {
    let rt = runtime();
    let program = probe(&rt);
    let (stdout_stdio, stdout) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).env("COLOUR", "teal").stdout(stdout_stdio).stderr(Stdio::Null);
    let p = rt.process(&program).capabilities(caps).target("nest", serde_json::to_vec("nest env COLOUR").unwrap()).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert!(stdout.text().contains("env COLOUR=teal"), "{}", stdout.text());
}

#[test]
fn the_host_sees_the_tree_and_kills_a_subtree() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, out) = child(&rt, &program, "nest", "spawn_and_spin");
    p.start().unwrap();
    wait_for_output(&p, &out, "grandchild pid=");
    let tree = rt.process_tree();
    let names: Vec<&str> = tree.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["MainProcess", "Process-1", "Process-1:1", "Process-1:1:1"]);
    for pair in tree.windows(2) {
        assert_eq!(pair[1].parent_pid, Some(pair[0].pid), "{tree:?}");
    }
    assert!(tree.iter().all(|i| !i.stopping));
    // Kill the middle of the tree: it and its child go, its parent stays.
    rt.kill_tree(tree[2].pid).unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert!(out.stdout().contains("Process-1:1 exitcode=Some(-9)"), "{}", out.stdout());
    assert_eq!(p.exitcode(), Ok(Some(0)));
    assert_eq!(rt.live_process_count(), 0);
    assert!(rt.kill_tree(tree[3].pid).is_err(), "no such process any more");
}

#[test]
fn killing_a_parent_leaves_no_orphan_at_any_depth() {
    let rt = runtime();
    let program = probe(&rt);
    // (target, its argument, processes running once the leaf spins)
    for (target, args, live) in [("spawn_and_spin", "", 2), ("nest", "nest nest spawn_and_spin", 5)] {
        let (p, out) = child(&rt, &program, target, args);
        p.start().unwrap();
        wait_for_output(&p, &out, "grandchild pid=");
        assert_eq!(rt.live_process_count(), live);
        p.kill().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(-9)));
        assert_eq!(rt.live_process_count(), 0, "{:?}", rt.process_tree());
    }
}

#[test]
fn a_thousand_children_leave_nothing_behind() {
    let rt = runtime();
    let program = rt.load(wmp_test_guests::MINIMAL).unwrap();
    run_child(&rt, &program, "spawn_many", "100"); // warm up allocators and caches
    let baseline = rss_bytes();
    let (p, out) = run_child(&rt, &program, "spawn_many", "1000");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    assert!(out.stdout().contains("spawned=1000 active=0"), "{}", out.stdout());
    drop(p);
    assert!(rt.dangling().is_empty(), "dangling: {:?}", rt.dangling());
    assert_eq!(rt.live_process_count(), 0);
    // Each leaked child would hold at least its linear memory (> 1 MiB);
    // the margin absorbs the other tests running in this process.
    let grown = rss_bytes().saturating_sub(baseline);
    assert!(grown < 200 << 20, "RSS grew by {} MiB over 1000 children", grown >> 20);
}
