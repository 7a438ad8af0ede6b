//! How to start a native program: its argv, its environment, where its
//! output goes, the fds it keeps (the handoff and its connections'
//! sockets), its process group and containment, and the limits a native
//! program cannot be held to.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::spawn::{ChildStdio, Spawn};
use super::supervisor;
use crate::base::limits::{Limit, Limits};
use crate::base::stdio::{Forwarder, Stdin, Stdio};
use super::NativeProgram;
use crate::model::builder::{Capabilities, LaunchSpec};
use crate::model::handoff::HANDOFF_FD_VAR;

/// Fuel, table and stack limits count wasm instructions and structures; a
/// native program cannot be held to them, so a tree under such a limit
/// cannot start one.
pub(super) fn refuse_wasm_only_limits(limits: &Limits) -> Result<(), String> {
    let limit = if limits.fuel.is_some() {
        Limit::Fuel
    } else if limits.max_table_elements.is_some() {
        Limit::Table
    } else {
        return Ok(());
    };
    Err(format!("a native program cannot run under a {limit}"))
}

/// The output stream a native child gets for `stdio`, and the forwarder
/// that must copy its pipe where `stdio` says.
fn child_output(stdio: &Stdio) -> (ChildStdio, Option<Forwarder>) {
    match stdio {
        Stdio::Inherit => (ChildStdio::Inherit, None),
        Stdio::Null => (ChildStdio::Null, None),
        Stdio::Capture(_) | Stdio::Pipe(_) => (ChildStdio::Pipe, stdio.forwarder()),
    }
}

/// The stdin a native child gets for `stdin` (a pipe is fed once it runs).
fn child_input(stdin: &Stdin) -> ChildStdio {
    match stdin {
        Stdin::Null => ChildStdio::Null,
        Stdin::Inherit => ChildStdio::Inherit,
        Stdin::Pipe(_) => ChildStdio::Pipe,
    }
}

/// The environment `native` starts with: the host's if it inherits it,
/// then the process's own variables.
pub(super) fn environment(native: &NativeProgram, caps: &Capabilities) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> =
        if native.inherit_env { std::env::vars_os().collect() } else { BTreeMap::new() };
    env.extend(caps.env.iter().map(|(k, v)| (k.into(), v.into())));
    env
}

/// How to start `native`, found at `executable`: its argv, environment, directory, stdio,
/// memory limit and the fds it inherits (the handoff if it is a wmp
/// guest, and the sockets of its connections and queues); and the output
/// streams that must be forwarded once it runs.
pub(super) fn command(
    native: &NativeProgram,
    executable: PathBuf,
    mut env: BTreeMap<OsString, OsString>,
    spec: &LaunchSpec,
    handoff: Option<&OwnedFd>,
    inherited_fds: &[RawFd],
    limits: &Limits,
) -> (Spawn, Vec<Forwarder>) {
    let caps = &spec.caps;
    let argv = if caps.args.is_empty() {
        vec![executable.clone().into_os_string()]
    } else {
        caps.args.iter().map(OsString::from).collect()
    };
    if let Some(handoff) = handoff {
        env.insert(HANDOFF_FD_VAR.into(), handoff.as_raw_fd().to_string().into());
    }
    let (stdout, stdout_forwarder) = child_output(&caps.stdout);
    let (stderr, stderr_forwarder) = child_output(&caps.stderr);
    let spawn = Spawn {
        program: executable,
        argv,
        env,
        current_dir: native.current_dir.clone(),
        stdin: child_input(&caps.stdin),
        stdout,
        stderr,
        keep_fds: handoff.map(AsRawFd::as_raw_fd).into_iter().chain(inherited_fds.iter().copied()).collect(),
        // A child reading the host's terminal must stay in its process
        // group (or reading would stop it); any other leads a group of its own.
        own_group: !matches!(caps.stdin, Stdin::Inherit),
        cgroup_procs: supervisor::containment().and_then(supervisor::Containment::procs_fd),
        group_lifeline: supervisor::containment().and_then(supervisor::Containment::group_lifeline_fd),
        max_memory: limits.max_memory,
    };
    (spawn, stdout_forwarder.into_iter().chain(stderr_forwarder).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_a_native_program_cannot_be_held_to_are_refused() {
        assert!(refuse_wasm_only_limits(&Limits::new()).is_ok());
        let memory = Limits { max_memory: Some(1 << 20), timeout: Some(std::time::Duration::from_secs(1)), ..Limits::new() };
        assert!(refuse_wasm_only_limits(&memory).is_ok(), "memory (RLIMIT_AS) and time hold natively");
        let fuel = refuse_wasm_only_limits(&Limits { fuel: Some(10), ..Limits::new() }).unwrap_err();
        assert!(fuel.starts_with("a native program cannot run under a ") && fuel.contains("fuel"), "{fuel}");
        let table = refuse_wasm_only_limits(&Limits { max_table_elements: Some(10), ..Limits::new() }).unwrap_err();
        assert!(table.contains("table"), "{table}");
    }

    #[test]
    fn the_environment_is_the_hosts_only_if_inherited_and_the_processs_own_wins() {
        let caps = Capabilities::new().env("PATH", "/mine").env("WMP_TEST_ONLY_HERE", "1");
        let own = environment(&NativeProgram::new("/bin/true").inherit_env(false), &caps);
        assert_eq!(own.len(), 2, "{own:?}");
        assert_eq!(own[&OsString::from("PATH")], "/mine");
        let inherited = environment(&NativeProgram::new("/bin/true"), &caps);
        assert!(inherited.len() >= std::env::vars_os().count(), "the host's variables too");
        assert_eq!(inherited[&OsString::from("PATH")], "/mine", "the process's own value wins");
    }

    #[test]
    fn a_command_keeps_the_handoff_and_the_sockets_and_leads_a_group_unless_it_reads_the_terminal() {
        let native = NativeProgram::new("/bin/true");
        let program = std::sync::Arc::new(super::super::NativeBackend::default()).runnable(&native);
        let (stdout, _captured) = Stdio::capture();
        let caps = Capabilities::new().stdout(stdout);
        let spec = LaunchSpec::new(program.clone(), caps, None);
        let handoff = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let (spawn, forwarders) =
            command(&native, "/bin/true".into(), BTreeMap::new(), &spec, Some(&handoff), &[41, 42], &Limits::new());
        assert_eq!(spawn.argv, [OsString::from("/bin/true")], "argv[0] is the executable when no args are given");
        assert_eq!(spawn.env[&OsString::from(HANDOFF_FD_VAR)], handoff.as_raw_fd().to_string().as_str());
        assert_eq!(spawn.keep_fds, [handoff.as_raw_fd(), 41, 42]);
        assert!(spawn.own_group);
        assert_eq!(forwarders.len(), 1, "captured stdout is forwarded; inherited stderr is not");
        let reading = LaunchSpec::new(program, Capabilities::new().args(["true", "x"]).stdin(Stdin::Inherit), None);
        let (spawn, forwarders) = command(&native, "/bin/true".into(), BTreeMap::new(), &reading, None, &[], &Limits::new());
        assert!(!spawn.own_group, "a child reading the terminal stays in the host's group");
        assert_eq!(spawn.argv, [OsString::from("true"), OsString::from("x")]);
        assert!(spawn.keep_fds.is_empty() && forwarders.is_empty());
    }
}
