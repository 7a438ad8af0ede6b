//! What only native processes have: OS pids and exit statuses (a signal
//! s gives -s), SIGTERM that a program may ignore, pidfd sentinels,
//! reaping without zombies, stdio, and mixing with wasm processes.

use std::time::Duration;

use wmp_host::{Capabilities, ExitReason, NativeProgram, ProcessError, Stdio};

use crate::{Backend, Fixture, Job, PATIENCE, native_builder, probe, run_child, runtime};

/// Whether `pid` names no process at all (reaped, not a zombie).
pub fn is_reaped(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A native child running `sh -c script`, started, with its output captured.
fn started_sh(f: &Fixture, script: &str) -> (wmp_host::Process, crate::Output) {
    let (builder, out) = native_builder(&f.rt, &["sh", "-c", script]);
    let p = builder.build();
    p.start().unwrap();
    (p, out)
}

#[test]
fn a_native_child_has_its_os_pid_and_is_reaped() {
    let f = Fixture::new(Backend::Native);
    let (p, out) = started_sh(&f, "echo $$; exit 4");
    p.join(Some(PATIENCE)).unwrap();
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(out.stdout().trim(), pid.to_string(), "the pid is the OS pid");
    assert_eq!(p.exitcode(), Ok(Some(4)));
    assert!(is_reaped(pid), "no zombie after join");
    // Dropped without join: still reaped.
    let (p, _) = f.child(Job::Noop);
    p.start().unwrap();
    let (pid, sentinel) = (p.pid().unwrap().unwrap(), p.sentinel().unwrap());
    drop(p);
    assert!(sentinel.wait(Some(PATIENCE)));
    assert!(is_reaped(pid), "no zombie after an unjoined child ended");
}

#[test]
fn a_child_killed_by_a_signal_reports_minus_that_signal() {
    let f = Fixture::new(Backend::Native);
    let (p, _) = started_sh(&f, "kill -SEGV $$");
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(-11)));
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Signaled(11))));
    assert!(p.to_string().ends_with("stopped exitcode=-SIGSEGV>"), "{p}");
}

#[test]
fn terminate_can_be_ignored_and_kill_cannot() {
    let f = Fixture::new(Backend::Native);
    let (p, out) = started_sh(&f, "trap '' TERM; echo ready; while :; do sleep 0.01; done");
    crate::wait_for_output(&p, &out, "ready");
    p.terminate().unwrap();
    p.join(Some(Duration::from_millis(200))).unwrap();
    assert_eq!(p.is_alive(), Ok(true), "SIGTERM was ignored");
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(-9)));
}

#[test]
fn a_program_that_handles_terminate_reports_its_own_exit_code() {
    let f = Fixture::new(Backend::Native);
    let (p, out) = started_sh(&f, "trap 'exit 5' TERM; echo ready; while :; do sleep 0.01; done");
    crate::wait_for_output(&p, &out, "ready");
    p.terminate().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(5)), "as CPython: the status the process ended with");
}

#[test]
fn argv_env_cwd_and_stdio_reach_the_program() {
    let rt = runtime();
    let dir = std::env::temp_dir();
    let program = NativeProgram::new("/bin/sh").current_dir(&dir).inherit_env(false);
    let (stdout, out) = Stdio::capture();
    let (stderr, err) = Stdio::capture();
    let caps = Capabilities::new()
        .args(["sh", "-c", "echo \"$0 $1 $GREETING $HOME\"; pwd; echo oops >&2", "zero", "one"])
        .env("GREETING", "hello")
        .stdout(stdout)
        .stderr(stderr);
    let p = rt.native_process(&program).capabilities(caps).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let canonical = dir.canonicalize().unwrap();
    assert_eq!(out.text(), format!("zero one hello \n{}\n", canonical.display()), "no inherited HOME");
    assert_eq!(err.text(), "oops\n");
}

#[test]
fn a_missing_program_fails_to_start_with_a_clear_error() {
    let rt = runtime();
    let p = rt.native_process(&NativeProgram::new("/no/such/program")).build();
    let err = p.start().unwrap_err();
    assert!(matches!(err, ProcessError::SpawnFailed(_)), "{err:?}");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    assert_eq!(p.pid(), Ok(None), "it did not start");
    assert!(p.start().is_err(), "and stays startable only in vain");
}

#[test]
fn a_program_without_a_slash_is_looked_up_in_path() {
    let rt = runtime();
    let exit_4 = Capabilities::new().args(["sh", "-c", "exit 4"]);
    let p = rt.native_process(&NativeProgram::new("sh")).capabilities(exit_4.clone()).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(4)), "found in the host's PATH");
    let only_bin = NativeProgram::new("sh").inherit_env(false);
    let p = rt.native_process(&only_bin).capabilities(exit_4.env("PATH", "/bin")).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(4)), "found in the child's own PATH");
    let p = rt.native_process(&only_bin).capabilities(Capabilities::new().env("PATH", "/nowhere")).build();
    let err = p.start().unwrap_err().to_string();
    assert!(err.contains("No such file or directory"), "{err}");
}

/// The steps between the child's creation and its exec (see
/// `backend/native/spawn.rs`) report the one that failed, and leave no
/// child behind.
#[test]
fn a_start_that_fails_before_exec_names_its_cause() {
    let rt = runtime();
    let in_missing_dir = NativeProgram::new("/bin/true").current_dir("/no/such/dir");
    let p = rt.native_process(&in_missing_dir).build();
    let err = p.start().unwrap_err();
    assert!(matches!(err, ProcessError::SpawnFailed(_)), "{err:?}");
    assert!(err.to_string().contains("No such file or directory"), "{err}");
    assert_eq!(p.pid(), Ok(None));

    let not_executable = std::env::temp_dir().join(format!("wmp-not-executable-{}", std::process::id()));
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let p = rt.native_process(&NativeProgram::new(&not_executable)).build();
    let err = p.start().unwrap_err().to_string();
    std::fs::remove_file(&not_executable).unwrap();
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(rt.live_process_count(), 0);
}

/// A native child, and what it starts, die with the host even when the
/// host is SIGKILLed and runs no code of its own at the end (the child's
/// parent-death signal; the supervisor that kills the host's cgroup).
#[test]
fn native_children_and_their_children_die_with_a_killed_host() {
    let stderr = kill_a_host_with_a_native_grandchild(|script| {
        let mut wmp = std::process::Command::new(env!("CARGO_BIN_EXE_wmp"));
        wmp.args(["run", "--allow-native", script, wmp_test_guests::PROBE, "spawn", "other_program", script, "-"]);
        wmp
    });
    assert!(!stderr.contains("cannot be contained in a cgroup"), "this machine has cgroup v2: {stderr}");
}

/// Hides every cgroup2 mount (in a mount namespace of its own), then runs
/// its arguments.
const WITHOUT_CGROUP2: &str = r#"grep ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r m; do umount -l "$m"; done
exec "$@""#;

/// The same where the host has no cgroup v2 hierarchy (hidden in a mount
/// namespace): its supervisor kills the process groups of its native
/// children instead. The host is a copy of this binary with a native child
/// in a process group of its own, the library's default. (Under `wmp run`
/// a native child shares the host's group, to read its terminal: there,
/// only the parent-death signal holds without a cgroup.)
#[test]
fn without_a_cgroup_native_children_and_their_children_die_with_a_killed_host() {
    let stderr = kill_a_host_with_a_native_grandchild(|script| {
        let mut host = std::process::Command::new("unshare");
        host.args(["--mount", "sh", "-c", WITHOUT_CGROUP2, "sh"]).arg(std::env::current_exe().unwrap());
        host.env(crate::NATIVE_HOST_VAR, script);
        host
    });
    assert!(stderr.contains("a supervisor kills their process groups"), "the fallback was not used: {stderr}");
}

/// A supervisor killed from outside takes the host's containment with it:
/// the host says so on stderr instead of losing it silently.
#[test]
fn a_host_whose_supervisor_is_killed_says_so() {
    let script = executable_script("#!/bin/sh\necho child=$$\nexec sleep 600\n");
    let mut host = std::process::Command::new(std::env::current_exe().unwrap())
        .env(crate::NATIVE_HOST_VAR, &script)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = std::io::BufRead::lines(std::io::BufReader::new(host.stdout.take().unwrap()));
    let child = printed_pid(&mut output, "child");
    // The host's other child is its supervisor.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", host.id())).unwrap();
    let children_of = |task: std::fs::DirEntry| std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
    let children: Vec<u32> = tasks
        .map(|task| children_of(task.unwrap()))
        .flat_map(|pids| pids.split_whitespace().map(|pid| pid.parse().unwrap()).collect::<Vec<u32>>())
        .collect();
    let supervisor = children.into_iter().find(|&pid| pid != child).expect("a supervisor beside the native child");
    // SAFETY: a plain kill of the host's own child, read above.
    unsafe { libc::kill(supervisor as libc::pid_t, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !is_reaped(supervisor) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100)); // the warning follows the reap
    host.kill().unwrap();
    host.wait().unwrap();
    std::fs::remove_file(&script).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut host.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains(&format!("the supervisor of native children (pid {supervisor}) has died")), "{stderr}");
}

/// A shell script of `text`, in a file of its own, executable.
fn executable_script(text: &str) -> std::path::PathBuf {
    static SCRIPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SCRIPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let script = std::env::temp_dir().join(format!("wmp-sleeper-{}-{n}.sh", std::process::id()));
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// The pid a script printed as `what=PID`, reading lines until it comes.
fn printed_pid(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) -> u32 {
    let prefix = format!("{what}=");
    let line = lines.find_map(|line| line.unwrap().strip_prefix(&prefix).map(str::to_owned));
    line.unwrap_or_else(|| panic!("the {what}'s pid")).parse().unwrap()
}

/// Runs the host `host_of(script)` gives, whose native child runs a script
/// that starts a grandchild, SIGKILLs it, and checks that neither outlives
/// it (nor its cgroup, if it made one); returns what it wrote on stderr.
fn kill_a_host_with_a_native_grandchild(host_of: impl FnOnce(&str) -> std::process::Command) -> String {
    let script = executable_script("#!/bin/sh\necho child=$$\nsleep 600 &\necho grandchild=$!\nwait\n");
    let mut host = host_of(script.to_str().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = std::io::BufRead::lines(std::io::BufReader::new(host.stdout.take().unwrap()));
    let (child, grandchild) = (printed_pid(&mut output, "child"), printed_pid(&mut output, "grandchild"));
    host.kill().unwrap();
    host.wait().unwrap();
    std::fs::remove_file(&script).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    // Killed, and then reaped by whoever adopted it (or left a zombie).
    let gone = |pid: u32| {
        is_reaped(pid) || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    };
    while !(gone(child) && gone(grandchild)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let outlived: Vec<u32> = [child, grandchild].into_iter().filter(|&pid| !gone(pid)).collect();
    for &pid in &outlived {
        // SAFETY: a plain kill of a pid read above, so a failure here
        // does not leave it holding the test harness's output open.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let which = format!("of the native child {child} and its child {grandchild}, {outlived:?}");
    assert!(outlived.is_empty(), "{which} outlived their killed host");
    let cgroup = own_cgroup().map(|dir| dir.join(format!("wmp-{}", host.id())));
    while cgroup.as_ref().is_some_and(|dir| dir.exists()) {
        assert!(std::time::Instant::now() < deadline, "the supervisor left {cgroup:?} behind");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut host.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// This process's cgroup v2 directory, if it is under the usual mounts.
fn own_cgroup() -> Option<std::path::PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?.trim_start_matches('/').to_owned();
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|mount| std::path::Path::new(mount).join(&path))
        .find(|dir| dir.join("cgroup.procs").exists())
}

/// The fds a program lists of its own (`ls -l /proc/self/fd`, run by `sh`
/// with `sh`'s fds), one per line.
const LIST_FDS: &str = "ls -l /proc/self/fd; echo \"handoff_var=${WMP_HANDOFF_FD-}\"";

#[test]
fn a_program_that_is_no_wmp_guest_gets_no_handoff() {
    let rt = runtime();
    let (builder, out) = native_builder(&rt, &["sh", "-c", LIST_FDS]);
    run_child_to_end(builder.build());
    let text = out.stdout();
    assert!(!text.contains("wmp-handoff"), "{text}");
    assert!(text.contains("handoff_var=\n"), "{text}");
    // Declared a guest, the same program is handed one.
    let caps = Capabilities::new().args(["sh", "-c", LIST_FDS]);
    let (stdout, out) = Stdio::capture();
    let declared = NativeProgram::new("/bin/sh").wmp_guest(true);
    run_child_to_end(rt.native_process(&declared).capabilities(caps.stdout(stdout)).build());
    let text = out.text();
    assert!(text.contains("memfd:wmp-handoff"), "{text}");
    assert!(!text.contains("handoff_var=\n"), "{text}");
}

#[test]
fn a_program_declared_no_guest_gets_no_identity() {
    let f = Fixture::new(Backend::Native);
    let (builder, out) = f.probe_builder("identity", "");
    let p = builder.build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(out.value("name"), "Process-1", "the probe, a wmp guest, knows who it is");
    assert_eq!(out.value("authkey"), hex(&f.rt.current_process().authkey()));
    let exe = std::env::current_exe().unwrap();
    let not_a_guest = NativeProgram::new(exe).wmp_guest(false);
    let (stdout, out) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).env(crate::NATIVE_PROBE_VAR, "1").stdout(stdout);
    run_child_to_end(f.rt.native_process(&not_a_guest).capabilities(caps).build());
    let text = out.text();
    assert!(text.contains("name=MainProcess\n"), "{text}");
    assert!(!text.contains(&hex(&f.rt.current_process().authkey())), "{text}");
}

fn hex(key: &wmp_host::AuthKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn run_child_to_end(p: wmp_host::Process) {
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
}

/// A wmp guest reads its handoff as it loads, and a program it execs
/// itself inherits neither the handoff nor the sockets it names.
#[test]
fn what_a_wmp_guest_execs_inherits_no_handoff_and_no_sockets() {
    let f = Fixture::new(Backend::Native);
    let (builder, out) = f.probe_builder("fds_of_an_exec", "");
    let p = builder.build();
    let (_ours, theirs) = f.rt.pipe(true);
    p.pass_connection(theirs).unwrap();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let text = out.stdout();
    assert!(text.contains("ls status=exit status: 0"), "{text}{}", out.stderr());
    assert!(!text.contains("wmp-handoff"), "{text}");
    assert!(!text.contains("socket:"), "{text}");
}

#[test]
fn a_program_that_is_no_wmp_guest_cannot_take_connections() {
    let rt = runtime();
    let (builder, _) = native_builder(&rt, &["sh", "-c", "exit 0"]);
    let p = builder.build();
    let (_ours, theirs) = rt.pipe(true);
    p.pass_connection(theirs).unwrap();
    let err = p.start().unwrap_err().to_string();
    assert!(err.contains("/bin/sh is not a wmp guest, so it cannot take connections or queues"), "{err}");
}

#[test]
fn the_sentinel_is_a_pollable_pidfd() {
    let f = Fixture::new(Backend::Native);
    let (p, _) = f.child(Job::Spin);
    p.start().unwrap();
    let s = p.sentinel().unwrap();
    let fd = s.raw_fd().unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert_eq!(link.to_string_lossy(), "anon_inode:[pidfd]");
    let readable = |timeout_ms: i32| {
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, owned by this frame.
        unsafe { libc::poll(&mut pollfd, 1, timeout_ms) == 1 }
    };
    assert!(!readable(10));
    p.kill().unwrap();
    assert!(readable(30_000));
    p.join(None).unwrap();
}

#[test]
fn wait_and_active_children_mix_wasm_and_native() {
    let rt = runtime();
    let program = probe(&rt);
    let (wasm, _) = crate::child(&rt, &program, "spin", "");
    let (native, _) = native_builder(&rt, &["sh", "-c", "exec sleep 600"]);
    let native = native.build();
    wasm.start().unwrap();
    native.start().unwrap();
    let mut names: Vec<String> = rt.active_children().iter().map(|p| p.name()).collect();
    names.sort();
    assert_eq!(names, ["Process-1", "Process-2"]);
    let sentinels = [wasm.sentinel().unwrap(), native.sentinel().unwrap()];
    assert!(rt.wait(&sentinels, Some(Duration::from_millis(20))).is_empty());
    native.kill().unwrap();
    assert_eq!(rt.wait(&sentinels, Some(PATIENCE)), [1]);
    wasm.terminate().unwrap();
    while rt.wait(&sentinels, Some(PATIENCE)).len() < 2 {}
    assert_eq!((wasm.exitcode(), native.exitcode()), (Ok(Some(-15)), Ok(Some(-9))));
    assert!(rt.active_children().is_empty());
}

#[test]
fn a_timeout_limit_kills_a_native_child() {
    let f = Fixture::new(Backend::Native);
    let (builder, _) = f.builder(Job::Spin);
    let limits = wmp_host::Limits { timeout: Some(Duration::from_millis(50)), ..Default::default() };
    let p = builder.limits(limits).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(-9)));
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(wmp_host::Limit::Timeout))));
}

#[test]
fn a_guest_starts_a_native_program_only_when_granted() {
    let rt = runtime();
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "other_program", "/bin/false -");
    assert_eq!(
        out.value("start error"),
        "program \"/bin/false\" is not available to guests (the host has not shared or granted it)"
    );
    rt.share_native("/bin/false", &NativeProgram::new("/bin/false"));
    let (p, out) = run_child(&rt, &program, "other_program", "/bin/false -");
    assert_eq!(out.value("/bin/false exitcode"), "Some(1)", "{}", out.stderr());
    assert_eq!(p.exitcode(), Ok(Some(0)));
}

#[test]
fn a_granted_program_gets_the_guests_environment_not_the_hosts() {
    let rt = runtime();
    let program = probe(&rt);
    rt.share_native("env", &NativeProgram::new("/usr/bin/env"));
    let (stdout, out) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).env("GUEST_VAR", "1").stdout(stdout);
    let p = rt.process(&program).capabilities(caps).target("other_program", b"\"env -\"".to_vec()).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let text = out.text();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["GUEST_VAR=1", "env exitcode=Some(0)"], "no variable of the host's, nor a handoff");
}

#[test]
fn kill_takes_the_programs_own_children_with_it() {
    let f = Fixture::new(Backend::Native);
    let (p, out) = started_sh(&f, "sleep 600 & echo $!; wait");
    crate::wait_for_output(&p, &out, "\n");
    let grandchild: u32 = out.stdout().trim().parse().unwrap();
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(-9)));
    // The sleep was in the group the child leads; once killed, init reaps it.
    let gone = std::time::Instant::now();
    while !is_reaped(grandchild) {
        assert!(gone.elapsed() < PATIENCE, "the program's own child {grandchild} outlived the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
}
