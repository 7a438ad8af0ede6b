//! Processes placed on a real Ray cluster (feature `cluster`): a head node
//! and a second node with the custom resource `node_b`, both on loopback,
//! which `scripts/ray-cluster.sh` starts around the tests (the README's
//! test command does, with `--include-ignored`). A plain `cargo test`
//! lists them as ignored, with the reason.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use wmp_host::{Cluster, CodeCache, ExitReason, Placement, ProcessError, Program, Runtime};

use crate::{Output, PATIENCE, child_builder, probe};

/// The second node's custom resource.
const NODE_B: &str = "node_b";

/// The cluster's dashboard, which scripts/ray-cluster.sh names.
fn dashboard() -> String {
    std::env::var("WMP_RAY_DASHBOARD").expect("WMP_RAY_DASHBOARD: run the cluster tests under scripts/ray-cluster.sh")
}

/// A runtime that may place processes on the cluster, its agents being
/// this build's `wmp`.
fn cluster_runtime(dashboard: &str) -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wmp-code-cache");
    let cluster = Cluster::ray(dashboard).agent_command(env!("CARGO_BIN_EXE_wmp"));
    Runtime::builder().code_cache(CodeCache::Directory(cache)).cluster(cluster).build().expect("runtime")
}

/// One runtime (and so one agent on node b) for the tests that leave
/// their agent alive.
fn shared() -> &'static (Runtime, Program) {
    static SHARED: OnceLock<(Runtime, Program)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = cluster_runtime(&dashboard());
        let program = probe(&rt);
        (rt, program)
    })
}

/// A child of the main process placed on node b, running the probe's
/// `target` with `args`, its output captured.
fn remote_child(rt: &Runtime, program: &Program, target: &str, args: &str) -> (wmp_host::Process, Output) {
    let (builder, output) = child_builder(rt, program, target, args);
    (builder.placement(Placement::node_with(NODE_B)).build(), output)
}

fn run_remote(rt: &Runtime, program: &Program, target: &str, args: &str) -> (wmp_host::Process, Output) {
    let (p, output) = remote_child(rt, program, target, args);
    p.start().expect("start on the cluster");
    p.join(Some(PATIENCE)).unwrap();
    assert!(!p.is_alive().unwrap(), "{p} still running after {PATIENCE:?}");
    (p, output)
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn exit_codes_come_back_from_the_cluster_as_from_a_local_process() {
    let (rt, program) = shared();
    let (p, _) = run_remote(rt, program, "noop", "");
    assert_eq!(p.exitcode(), Ok(Some(0)));
    let (p, _) = run_remote(rt, program, "exit_with", "3");
    assert_eq!(p.exitcode(), Ok(Some(3)));
    let (p, output) = run_remote(rt, program, "panic", "boom on node b");
    assert_eq!(p.exitcode(), Ok(Some(1)));
    let stderr = output.stderr();
    assert!(stderr.contains("boom on node b"), "its output comes back: {stderr}");
    assert!(stderr.contains(&format!("Process {}:\n", p.name())), "with the report of its trap: {stderr}");
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn terminate_and_kill_reach_a_process_on_the_cluster_at_once() {
    let (rt, program) = shared();
    let (p, output) = remote_child(rt, program, "spin", "");
    p.start().unwrap();
    p.join(Some(Duration::from_millis(200))).unwrap();
    assert!(p.is_alive().unwrap(), "a join that times out leaves it running: {}", output.stderr());
    p.terminate().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!((p.exitcode(), p.exit_reason()), (Ok(Some(-15)), Ok(Some(ExitReason::Terminated))));
    let (q, _) = remote_child(rt, program, "spin", "");
    q.start().unwrap();
    q.kill().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    assert_eq!(q.exitcode(), Ok(Some(-9)));
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_process_on_the_cluster_is_who_the_tree_says_and_starts_its_own_children_there() {
    let (rt, program) = shared();
    let (builder, output) = child_builder(rt, program, "identity", "");
    let p = builder.placement(Placement::node_with(NODE_B)).name("remote-worker").build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", output.stderr());
    assert_eq!(output.value("name"), "remote-worker");
    assert_eq!(output.value("pid"), format!("{:?}", p.pid().unwrap()), "its pid is the one its parent sees");
    let identity = p.identity();
    assert_eq!(output.value("identity"), format!("{identity:?}"), "the identity continues the tree");
    let main = rt.current_process();
    assert_eq!(output.value("parent_pid"), format!("Some({})", main.pid().unwrap().unwrap()));
    assert_eq!(output.value("parent_name"), "MainProcess");
    let key: String = main.authkey().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(output.value("authkey"), key, "the authkey is inherited across the link");

    let (q, output) = run_remote(rt, program, "spawn_child", "");
    assert_eq!(q.exitcode(), Ok(Some(0)), "{}", output.stderr());
    let stdout = output.stdout();
    let grandchild = format!("{}:1", q.name());
    assert!(stdout.contains(&format!("started <Process name='{grandchild}'")), "{stdout}");
    assert!(stdout.contains("child exitcode=Some(-9)"), "{stdout}");
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_placement_no_node_has_is_refused_at_start() {
    let (rt, program) = shared();
    let (builder, _) = child_builder(rt, program, "noop", "");
    let p = builder.placement(Placement::node_with("no_such_resource")).build();
    let refused = p.start();
    assert!(
        matches!(refused, Err(ProcessError::SpawnFailed(ref why)) if why.contains("no alive node") && why.contains("no_such_resource")),
        "{refused:?}"
    );
    assert_eq!(p.exitcode(), Ok(None), "it stays initial");
}

/// The pids of the agents that dial `address`.
fn agent_pids(address: &str) -> Vec<i32> {
    let wanted = format!("--connect={address}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.contains(&b"agent".as_slice()) && args.contains(&wanted.as_bytes())
        })
        .collect()
}

/// Waits until no agent dials `address` any more.
fn wait_until_no_agent(address: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !agent_pids(address).is_empty() {
        assert!(std::time::Instant::now() < deadline, "an agent of {address} outlived its runtime");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_killed_agent_ends_its_processes_as_lost_and_the_next_start_gets_a_new_one() {
    let dashboard = dashboard();
    let rt = cluster_runtime(&dashboard);
    let program = probe(&rt);
    let (p, _) = remote_child(&rt, &program, "spin", "");
    p.start().unwrap();
    let address = rt.cluster_address().unwrap().to_owned();
    let agents = agent_pids(&address);
    assert_eq!(agents.len(), 1, "one agent for node b");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(agents[0], libc::SIGKILL) };
    p.join(Some(PATIENCE)).unwrap();
    assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Lost(_)))), "{:?}", p.exit_reason());
    assert_eq!(p.exitcode(), Ok(Some(-9)));
    let (q, _) = run_remote(&rt, &program, "exit_with", "4");
    assert_eq!(q.exitcode(), Ok(Some(4)), "a new agent serves the placement");
    assert_eq!(agent_pids(&address).len(), 1);
}

/// A TCP proxy from `listen` to `target` that can be frozen: it then
/// forwards nothing more and keeps every connection open, as a network
/// that is cut (no FIN, no RST) looks to both ends.
struct Proxy {
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(listen: std::net::TcpListener, target: String) -> Proxy {
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for client in listen.incoming().flatten() {
                let server = std::net::TcpStream::connect(&target).unwrap();
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 1 << 16];
                        while let Ok(n) = std::io::Read::read(&mut from, &mut buf) {
                            if n == 0 || flag.load(std::sync::atomic::Ordering::SeqCst) {
                                // Cut: hold both sockets open, forward nothing.
                                std::thread::sleep(Duration::from_secs(3600));
                            }
                            if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Proxy { frozen }
    }

    fn cut(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_cut_network_ends_the_processes_behind_it_as_lost_on_both_sides() {
    let dashboard = dashboard();
    let runtime_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_address = proxy_listener.local_addr().unwrap().to_string();
    let proxy = Proxy::start(proxy_listener, format!("127.0.0.1:{runtime_port}"));
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wmp-code-cache");
    let cluster = Cluster::ray(&dashboard)
        .agent_command(env!("CARGO_BIN_EXE_wmp"))
        .bind(format!("127.0.0.1:{runtime_port}"))
        .advertise(&proxy_address);
    let rt = Runtime::builder().code_cache(CodeCache::Directory(cache)).cluster(cluster).build().unwrap();
    let program = probe(&rt);
    let (p, _) = remote_child(&rt, &program, "spin", "");
    p.start().unwrap();
    assert!(p.is_alive().unwrap());
    let cut_at = std::time::Instant::now();
    proxy.cut();
    p.join(Some(PATIENCE)).unwrap();
    let noticed = cut_at.elapsed();
    assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Lost(_)))), "{:?}", p.exit_reason());
    assert!(noticed >= Duration::from_secs(4), "lost only after the link's silence: {noticed:?}");
    // The agent, cut off too, kills what it ran and ends.
    wait_until_no_agent(&proxy_address);
}

/// Set in the environment of a copy of this binary that is to be a host
/// with a spinning process on the cluster whose dashboard it names.
pub const CLUSTER_HOST_VAR: &str = "WMP_TEST_CLUSTER_HOST";

/// Places a spinning process on node b, prints the runtime's cluster
/// address, and waits to be killed.
pub fn host_a_remote_spinner(dashboard: String) -> ! {
    let rt = cluster_runtime(&dashboard);
    let program = probe(&rt);
    let (p, _) = remote_child(&rt, &program, "spin", "");
    p.start().expect("start on the cluster");
    println!("{}", rt.cluster_address().unwrap());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_killed_parent_leaves_no_process_on_the_cluster() {
    let dashboard = dashboard();
    let mut host = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CLUSTER_HOST_VAR, &dashboard)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(host.stdout.take().unwrap()), &mut line).unwrap();
    let address = line.trim().to_owned();
    assert_eq!(agent_pids(&address).len(), 1, "the host's agent runs its spinner");
    host.kill().unwrap(); // SIGKILL: the host gets no say
    host.wait().unwrap();
    wait_until_no_agent(&address);
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn one_wait_takes_local_native_and_remote_sentinels() {
    let (rt, program) = shared();
    let (remote, _) = remote_child(rt, program, "sleep", "300");
    let (local, _) = crate::child(rt, program, "spin", "");
    let (native, _) = crate::native_builder(rt, &["/bin/sh", "-c", "exec sleep 600"]);
    let native = native.build();
    for p in [&remote, &local, &native] {
        p.start().unwrap();
    }
    let sentinels = [local.sentinel().unwrap(), native.sentinel().unwrap(), remote.sentinel().unwrap()];
    assert_eq!(rt.wait(&sentinels, Some(PATIENCE)), [2], "the remote process ends first");
    native.kill().unwrap();
    assert_eq!(rt.wait(&sentinels[..2], Some(PATIENCE)), [1]);
    local.kill().unwrap();
    local.join(Some(PATIENCE)).unwrap();
    assert_eq!(rt.wait(&sentinels, Some(PATIENCE)), [0, 1, 2]);
    assert_eq!(remote.exitcode(), Ok(Some(0)));
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn the_daemon_and_close_rules_hold_on_the_cluster() {
    let (rt, program) = shared();
    let (builder, output) = child_builder(rt, program, "spawn_child", "");
    let p = builder.placement(Placement::node_with(NODE_B)).daemon(true).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(output.value("start error"), "daemonic processes are not allowed to have children");
    let (q, _) = remote_child(rt, program, "spin", "");
    q.start().unwrap();
    assert_eq!(q.close(), Err(ProcessError::CloseRunning));
    q.kill().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    q.close().unwrap();
    assert_eq!(q.is_alive(), Err(ProcessError::Closed));
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn limits_are_enforced_on_the_agent() {
    use wmp_host::{Limit, Limits};
    let (rt, program) = shared();
    let (builder, _) = child_builder(rt, program, "alloc", "64");
    let limits = Limits { max_memory: Some(16 << 20), ..Limits::default() };
    let p = builder.placement(Placement::node_with(NODE_B)).limits(limits).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Memory))));
    assert_eq!(p.exitcode(), Ok(Some(-9)));
    let (builder, _) = child_builder(rt, program, "spin", "");
    let limits = Limits { timeout: Some(Duration::from_millis(300)), ..Limits::default() };
    let q = builder.placement(Placement::node_with(NODE_B)).limits(limits).build();
    q.start().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    assert_eq!(q.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Timeout))));
}

/// What `curl` gets from the dashboard at `path`.
fn dashboard_get(path: &str) -> String {
    let out = std::process::Command::new("curl").args(["-sf", &format!("{}{path}", dashboard())]).output().unwrap();
    assert!(out.status.success(), "GET {path}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn the_authkey_is_in_no_job_spec_environment_or_log() {
    let (rt, program) = shared();
    let (p, output) = run_remote(rt, program, "identity", "");
    assert_eq!(p.exitcode(), Ok(Some(0)));
    let key: String = rt.current_process().authkey().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(output.value("authkey"), key, "the process has it");
    let jobs = dashboard_get("/api/jobs/");
    assert!(jobs.contains("agent --connect="), "the agents' jobs are listed: {jobs}");
    assert!(!jobs.contains(&key), "no job spec holds the authkey");
    let address = rt.cluster_address().unwrap();
    for pid in agent_pids(address) {
        for file in ["environ", "cmdline"] {
            let text = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/{file}")).unwrap()).into_owned();
            assert!(!text.contains(&key), "the agent's {file} does not hold the authkey");
        }
    }
    let submissions: Vec<String> = serde_json::from_str::<serde_json::Value>(&jobs).unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["entrypoint"].as_str().is_some_and(|e| e.contains(address)))
        .map(|job| job["submission_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!submissions.is_empty());
    for id in submissions {
        let logs = dashboard_get(&format!("/api/jobs/{id}/logs"));
        assert!(!logs.contains(&key), "the agent's log does not hold the authkey");
    }
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_granted_guest_places_its_child_on_the_cluster() {
    let (rt, program) = shared();
    let (stdout, captured) = wmp_host::Stdio::capture();
    let caps = wmp_host::Capabilities::new().args(["probe"]).stdout(stdout).cluster(true);
    let args = serde_json::to_vec("node_b exit_with 6").unwrap();
    let p = rt.process(program).capabilities(caps).target("place_child", args).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
    assert_eq!(captured.text().trim(), format!("{}:1 exitcode=Some(6)", p.name()));
}

/// The stdout of `wmp run --cluster DASHBOARD ARGS`, which must succeed.
fn wmp_run_on_the_cluster(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wmp"))
        .args(["run", "--cluster", &dashboard()])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn wmp_run_with_a_cluster_lets_the_guest_tree_place_children_there() {
    let stdout = wmp_run_on_the_cluster(&[wmp_test_guests::PROBE, "spawn", "place_child", "node_b", "exit_with", "7"]);
    assert!(stdout.contains("name=MainProcess"), "{stdout}");
    assert!(stdout.contains("Process-1:1 exitcode=Some(7)"), "the grandchild ran on node b: {stdout}");
}

/// A process on node b running `target` with `args`, passed `connections`
/// and `queues`, started.
fn remote_with(
    rt: &Runtime,
    program: &Program,
    target: &str,
    args: &str,
    connections: Vec<wmp_host::Connection>,
    queues: &[&wmp_host::Queue],
) -> (wmp_host::Process, Output) {
    let (p, output) = remote_child(rt, program, target, args);
    connections.into_iter().for_each(|connection| p.pass_connection(connection).unwrap());
    queues.iter().for_each(|queue| p.pass_queue(queue).unwrap());
    p.start().expect("start on the cluster");
    (p, output)
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_pipe_crosses_the_cluster_both_ways_and_loses_nothing() {
    use wmp_host::ConnectionError;
    let (rt, program) = shared();
    let (mine, theirs) = rt.pipe(true);
    let (echo, output) = remote_with(rt, program, "echo", "", vec![theirs], &[]);
    // Far more than a channel's window in flight, in messages of every size.
    let sizes: Vec<usize> = (0..300).map(|i| [0, 1, 100, 70_000, 300_000][i % 5]).collect();
    let mine = std::sync::Arc::new(mine);
    let sender = {
        let (mine, sizes) = (mine.clone(), sizes.clone());
        std::thread::spawn(move || {
            for (i, size) in sizes.iter().enumerate() {
                mine.send_bytes(&vec![i as u8; *size]).unwrap();
            }
        })
    };
    for (i, size) in sizes.iter().enumerate() {
        assert_eq!(mine.recv_bytes().unwrap(), vec![i as u8; *size], "message {i} came back whole, in order");
    }
    sender.join().unwrap();
    mine.close();
    echo.join(Some(PATIENCE)).unwrap();
    assert_eq!(echo.exitcode(), Ok(Some(0)), "{}", output.stderr());
    assert!(output.stdout().contains("echoed=300 end=EOF"), "{}", output.stdout());
    // And from there to here, until the EOF its end brings.
    let (mine, theirs) = rt.pipe(false);
    let (source, _) = remote_with(rt, program, "source", "3000 4096 1", vec![theirs], &[]);
    let mut received = 0;
    let end = loop {
        match mine.recv_many(1 << 20) {
            Ok(batch) => {
                assert!(batch.iter().all(|m| m == &[7u8; 4096]));
                received += batch.len();
            }
            Err(end) => break end,
        }
    };
    assert_eq!((received, end), (3000, ConnectionError::Eof), "everything sent before the end arrives");
    source.join(Some(PATIENCE)).unwrap();
    assert_eq!(source.exitcode(), Ok(Some(0)));
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_queue_is_shared_by_local_and_remote_producers() {
    let (rt, program) = shared();
    let results = rt.queue(0);
    let remote: Vec<_> = (1..=3u64).map(|i| remote_with(rt, program, "square", &i.to_string(), vec![], &[&results]).0).collect();
    let (local, _) = crate::child_builder(rt, program, "square", "4");
    let local = local.build();
    local.pass_queue(&results).unwrap();
    local.start().unwrap();
    let mut got: Vec<(u64, u64)> = (0..4).map(|_| results.get(Some(PATIENCE)).unwrap()).collect();
    got.sort();
    assert_eq!(got, [(1, 1), (2, 4), (3, 9), (4, 16)]);
    for worker in remote.iter().chain([&local]) {
        worker.join(Some(PATIENCE)).unwrap();
        assert_eq!(worker.exitcode(), Ok(Some(0)));
    }
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn two_processes_on_the_cluster_talk_over_a_pipe_between_them() {
    let (rt, program) = shared();
    let (rx, tx) = rt.pipe(false);
    let (drain, output) = remote_with(rt, program, "drain", "single", vec![rx], &[]);
    let (source, _) = remote_with(rt, program, "source", "500 1000 1", vec![tx], &[]);
    source.join(Some(PATIENCE)).unwrap();
    drain.join(Some(PATIENCE)).unwrap();
    assert_eq!(drain.exitcode(), Ok(Some(0)), "{}", output.stderr());
    let received = output.value("received");
    assert!(received.starts_with("500 bytes=500000 end=EOF"), "all of it, then EOF: {received}");
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_killed_remote_peer_gives_eof_not_a_hang() {
    use wmp_host::ConnectionError;
    let (rt, program) = shared();
    let (mine, theirs) = rt.pipe(true);
    let (holder, _) = remote_with(rt, program, "hold", "", vec![theirs], &[]);
    assert_eq!(mine.recv::<String>().unwrap(), "holding");
    holder.kill().unwrap();
    holder.join(Some(PATIENCE)).unwrap();
    assert_eq!(mine.recv_bytes(), Err(ConnectionError::Eof));
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn the_tree_example_splits_its_work_across_two_nodes() {
    let stdout = wmp_run_on_the_cluster(&[wmp_test_guests::TREE, "20000", "node:__internal_head__,node_b"]);
    assert!(stdout.contains("primes below 20000: 2262 (checked in one process: 2262)"), "{stdout}");
    for half in ["[Process-3    ] pid=", "[Process-4    ] pid=", "[Process-3:2  ]", "[Process-4:2  ]"] {
        assert!(stdout.contains(half), "{half} ran on its node and said so: {stdout}");
    }
}

/// SIGKILLs `pid` and every process below it, as a machine that goes away
/// takes them.
fn kill_with_descendants(pid: i32) {
    let parent_of = |pid: i32| -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut doomed = vec![pid];
    while let Some(child) = all.iter().find(|p| !doomed.contains(p) && parent_of(**p).is_some_and(|pp| doomed.contains(&pp))) {
        doomed.push(*child);
    }
    for pid in doomed {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Run alone, on a cluster of its own: it removes node b (scripts/test.sh
/// runs it after the others).
#[test]
#[ignore = "removes node b: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored --exact cluster::a_removed_node_ends_its_processes_as_lost"]
fn a_removed_node_ends_its_processes_as_lost() {
    let rt = cluster_runtime(&dashboard());
    let program = probe(&rt);
    let (p, _) = remote_child(&rt, &program, "spin", "");
    p.start().unwrap();
    let address = rt.cluster_address().unwrap().to_owned();
    assert_eq!(agent_pids(&address).len(), 1);
    let node_b: i32 = std::env::var("WMP_RAY_NODE_B_PID").expect("scripts/ray-cluster.sh names node b").parse().unwrap();
    kill_with_descendants(node_b); // `ray start --block` ignores SIGTERM
    p.join(Some(PATIENCE)).unwrap();
    assert!(matches!(p.exit_reason(), Ok(Some(ExitReason::Lost(_)))), "{:?}", p.exit_reason());
    wait_until_no_agent(&address);
    let (q, _) = remote_child(&rt, &program, "noop", "");
    let refused = q.start();
    assert!(matches!(refused, Err(ProcessError::SpawnFailed(ref why)) if why.contains("node_b")), "{refused:?}");
}

#[test]
#[ignore = "needs a Ray cluster: scripts/ray-cluster.sh run -- cargo test --features cluster -- --include-ignored cluster::"]
fn a_daemonic_child_on_the_cluster_is_terminated_when_its_parent_ends() {
    let (rt, program) = shared();
    let (stdout, captured) = wmp_host::Stdio::capture();
    let caps = wmp_host::Capabilities::new().args(["probe"]).stdout(stdout).cluster(true);
    let args = serde_json::to_vec("node_b").unwrap();
    let p = rt.process(program).capabilities(caps).target("place_daemon", args).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "its end waited for its daemon's, which its exit function terminated");
    let daemon = captured.text().trim().strip_prefix("placed=").expect("the daemon's name").to_owned();
    assert_eq!(daemon, format!("{}:1", p.name()));
    assert!(rt.process_tree().iter().all(|info| info.name != daemon), "the daemon on node b has ended");
}
