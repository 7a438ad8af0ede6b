//! The native backend: a process is a real OS child process, run with the
//! same state machine as a wasm one. Its pid is the OS pid; its end is
//! watched through a pidfd (which is also its pollable sentinel); a stop
//! request becomes SIGTERM or SIGKILL, sent to the process group the child
//! leads (so `sh -c` takes its own children with it, as wmp's rule that a
//! stopped process takes its subtree wants); the exit status becomes the
//! exitcode CPython gives (`n`, or `-s` after signal `s`).
//!
//! Every child is reaped by the task that watches it, also when every
//! handle is dropped without a join; if that task is dropped (the runtime
//! shuts down) the child is killed and reaped on the spot. Children are
//! started (see [`spawn`]) by one long-lived spawner thread with
//! `PR_SET_PDEATHSIG`, so they die with the runtime even if the host
//! process is killed; and inside a cgroup that a supervisor kills when
//! the host ends, or without one in process groups it kills (see
//! [`supervisor`]), so what they start dies too.
//!
//! Only a wmp guest is handed its identity and the authkey (see
//! [`guest_marker`]).

pub(crate) mod guest_marker;
mod spawn;
mod supervisor;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use wmp_core::ProcessError;

use crate::ipc::remote_connection::Payer;
use crate::handoff::{HANDOFF_FD_VAR, Handoff};
use crate::ipc::inherit::Handles;
use crate::base::ledger::OverBudget;
use crate::base::limits::{Limit, Limits};
use crate::registry::{Node, NodeSpec};
use crate::runtime::Shared;
use crate::builder::{Capabilities, LaunchSpec, NativeProgram};
use crate::base::exit::ExitReason;
use crate::base::stdio::{Forwarder, Stdio};

use spawn::{ChildOutput, ChildStack, Spawn, Spawned};

/// How long a process's end waits for the rest of its output to be
/// forwarded (after that, only a grandchild that kept the stream open
/// still writes, and its output keeps flowing after the end is published).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Starts `native` as a child of `parent` and returns its node (whose pid
/// is the OS pid).
pub(crate) fn launch(
    shared: &Arc<Shared>,
    parent: &Arc<Node>,
    who: NodeSpec,
    native: &NativeProgram,
    spec: LaunchSpec,
) -> Result<Arc<Node>, ProcessError> {
    let failed = |why: String| ProcessError::SpawnFailed(format!("cannot start process {}: {why}", who.name));
    let limits = parent.limits.narrowed_by(&who.limits);
    refuse_wasm_only_limits(&limits).map_err(failed)?;
    let Handles { connections, queues } = spec.inherited.take();
    let env = environment(native, &spec.caps);
    let executable =
        spawn::resolve(&native.path, &env).map_err(|e| failed(format!("{}: {e}", native.path.display())))?;
    // Only a wmp guest learns who it is: any other program gets no handoff
    // fd, so the authkey cannot reach it or what it starts.
    let is_guest = native.wmp_guest.unwrap_or_else(|| guest_marker::is_wmp_guest(&executable));
    if !is_guest && connections.len() + queues.len() > 0 {
        let why = format!("{} is not a wmp guest, so it cannot take connections or queues", executable.display());
        return Err(failed(why));
    }
    // Each connection end and queue passed to the child crosses over a
    // socket pair: the child inherits one side; here a bridge pumps the
    // other (a connection) or a server answers on it (a queue).
    let pairs = (0..connections.len() + queues.len())
        .map(|_| UnixStream::pair())
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| failed(format!("cannot make a socket for a connection or queue: {e}")))?;
    let inherited_fds: Vec<RawFd> = pairs.iter().map(|(_, theirs)| theirs.as_raw_fd()).collect();
    let handoff = is_guest
        .then(|| {
            let handed_limits = parent.limits_to_hand_off(&who.identity, &who.limits, &limits);
            let mut handoff = Handoff::for_child(parent, &who, spec.target.as_ref(), handed_limits);
            let (connection_fds, queue_fds) = inherited_fds.split_at(connections.len());
            handoff.connections = connection_fds.to_vec();
            handoff.queues = queue_fds.to_vec();
            handoff.to_memfd()
        })
        .transpose()
        .map_err(|e| failed(format!("cannot write the handoff: {e}")))?;
    let (command, forwarders) = command(native, executable, env, &spec, handoff.as_ref(), &inherited_fds, &limits);
    let child = shared.spawner.spawn(command).map_err(|e| failed(format!("{}: {e}", native.path.display())))?;
    drop(handoff);
    let Spawned { pid, stdout, stderr } = child;
    let pipes = [stdout, stderr];
    let reaper = Reaper::new(pid, !spec.caps.inherit_stdin);
    let pidfd = Arc::new(pidfd_open(pid).map_err(|e| failed(format!("pidfd_open: {e}")))?);
    let _runtime = shared.handle.enter();
    // SAFETY: the Arc keeps the pidfd open, unchanged, for as long as the
    // registration lives.
    let exited = unsafe { AsyncFd::register_with_interest(pidfd.clone(), tokio::io::Interest::READABLE) }
        .map_err(|e| failed(format!("cannot watch its pidfd: {e}")))?;
    let forwarders = forwarders.into_iter().zip(pipes.into_iter().flatten()).map(|(f, pipe)| f.start(pipe));
    let forwarders =
        forwarders.collect::<io::Result<Vec<_>>>().map_err(|e| failed(format!("cannot forward its output: {e}")))?;
    let node = Node::new(Some(parent), pid, who);
    node.exit.set_pidfd(pidfd);
    let mut ours = pairs.into_iter().map(|(ours, _theirs)| ours);
    // A bridge or server that cannot start drops its connection or queue
    // handle: the other side sees EOF, as if the child had closed it. What
    // the child sends or puts is charged to it.
    let child = node.clone();
    let over_budget = Arc::new(move |over: &OverBudget| {
        tracing::debug!(pid = child.pid, %over, "a native child sent past its budget");
        child.stop(ExitReason::Limit(Limit::HostMemory));
    });
    let payer = Payer::Child { ledger: node.ledger.clone(), over_budget };
    for (connection, socket) in connections.into_iter().zip(ours.by_ref()) {
        let _ = shared.bridges.bridge(&shared.handle, connection, socket, payer.clone());
    }
    for (queue, socket) in queues.into_iter().zip(ours) {
        let _ = crate::ipc::remote_queue::serve(&shared.handle, queue, socket, payer.clone());
    }
    shared.registry.add_live(&node);
    shared.handle.spawn(supervise(shared.clone(), node.clone(), reaper, exited, forwarders));
    Ok(node)
}

/// Fuel, table and stack limits count wasm instructions and structures; a
/// native program cannot be held to them, so a tree under such a limit
/// cannot start one.
fn refuse_wasm_only_limits(limits: &Limits) -> Result<(), String> {
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
fn child_output(stdio: &Stdio) -> (ChildOutput, Option<Forwarder>) {
    match stdio {
        Stdio::Inherit => (ChildOutput::Inherit, None),
        Stdio::Null => (ChildOutput::Null, None),
        Stdio::Capture(_) | Stdio::Pipe(_) => (ChildOutput::Pipe, stdio.forwarder()),
    }
}

/// The environment `native` starts with: the host's if it inherits it,
/// then the process's own variables.
fn environment(native: &NativeProgram, caps: &Capabilities) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> =
        if native.inherit_env { std::env::vars_os().collect() } else { BTreeMap::new() };
    env.extend(caps.env.iter().map(|(k, v)| (k.into(), v.into())));
    env
}

/// How to start `native`, found at `executable`: its argv, environment, directory, stdio,
/// memory limit and the fds it inherits (the handoff if it is a wmp
/// guest, and the sockets of its connections and queues); and the output
/// streams that must be forwarded once it runs.
fn command(
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
        inherit_stdin: caps.inherit_stdin,
        stdout,
        stderr,
        keep_fds: handoff.map(AsRawFd::as_raw_fd).into_iter().chain(inherited_fds.iter().copied()).collect(),
        // A child reading the host's terminal must stay in its process
        // group (or reading would stop it); any other leads a group of its own.
        own_group: !caps.inherit_stdin,
        cgroup_procs: supervisor::containment().and_then(supervisor::Containment::procs_fd),
        group_lifeline: supervisor::containment().and_then(supervisor::Containment::group_lifeline_fd),
        max_memory: limits.max_memory,
    };
    (spawn, stdout_forwarder.into_iter().chain(stderr_forwarder).collect())
}

pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

/// Owns an unreaped child: signals go to it (and to the process group it
/// leads), and dropping it before the child was reaped kills and reaps it,
/// so no zombie is ever left.
struct Reaper {
    /// The child, until it is reaped.
    pid: Option<u32>,
    leads_group: bool,
}

impl Reaper {
    fn new(pid: u32, leads_group: bool) -> Reaper {
        Reaper { pid: Some(pid), leads_group }
    }

    /// The child is reaped: its group is left to the containment only
    /// while something is still in it.
    fn reaped(&self, pid: u32) {
        if let Some(containment) = supervisor::containment().filter(|_| self.leads_group) {
            containment.forget_group_if_empty(pid);
        }
    }

    fn send(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid {
            let pid = pid as libc::pid_t;
            // SAFETY: the child is not reaped, so its pid (and the group it
            // leads) is still its own.
            unsafe { libc::kill(if self.leads_group { -pid } else { pid }, signal) };
        }
    }

    fn signal(&self, reason: &ExitReason) {
        self.send(match reason {
            ExitReason::Terminated => libc::SIGTERM,
            _ => libc::SIGKILL,
        });
    }

    /// Reaps the child, which has exited (its pidfd is readable).
    fn reap(&mut self) -> io::Result<ExitStatus> {
        let pid = self.pid.take().expect("reaped once");
        let status = spawn::reap(pid).map(ExitStatus::from_raw);
        self.reaped(pid);
        status
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.send(libc::SIGKILL);
        if let Some(pid) = self.pid.take() {
            let _ = spawn::reap(pid);
            self.reaped(pid);
        }
    }
}

/// Watches the child until it exits, passing on stop requests as signals
/// and stopping it at its timeout; then reaps it and publishes its end.
async fn supervise(
    shared: Arc<Shared>,
    node: Arc<Node>,
    mut reaper: Reaper,
    exited: AsyncFd<Arc<OwnedFd>>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
) {
    let mut stops = node.stop_requests();
    stops.mark_changed(); // a stop asked before this task ran
    let timer = node.time_limit();
    tokio::pin!(timer);
    let mut timed_out = false;
    loop {
        tokio::select! {
            biased;
            _ = exited.readable() => break,
            Ok(()) = stops.changed() => {
                if let Some(reason) = stops.borrow_and_update().clone() {
                    reaper.signal(&reason);
                }
            }
            () = &mut timer, if !timed_out => {
                timed_out = true;
                node.stop(ExitReason::Limit(Limit::Timeout));
            }
        }
    }
    // Out of the table while it is still a zombie, so that its pid cannot
    // have been handed to a new process yet.
    shared.registry.remove_live(node.pid);
    let status = tokio::task::block_in_place(|| reaper.reap());
    let reason = match status {
        Ok(status) => exit_reason(status, node.stop_requested()),
        Err(e) => ExitReason::Trap(format!("cannot reap the process: {e}")),
    };
    let _ = tokio::time::timeout(OUTPUT_GRACE, all_ended(forwarders)).await;
    node.publish_end(reason);
}

async fn all_ended(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// CPython's reading of a wait status: the exit code, or the signal that
/// ended it (with the stop reason it was asked for, if it was ours).
fn exit_reason(status: ExitStatus, requested: Option<ExitReason>) -> ExitReason {
    if let Some(code) = status.code() {
        return ExitReason::Exit(code);
    }
    match status.signal() {
        Some(libc::SIGTERM) => ExitReason::Terminated,
        Some(libc::SIGKILL) => match requested {
            Some(ExitReason::Limit(limit)) => ExitReason::Limit(limit),
            _ => ExitReason::Killed,
        },
        Some(signal) => ExitReason::Signaled(signal),
        None => ExitReason::Exit(status.into_raw()),
    }
}

/// The one thread that starts native children. A child's parent-death
/// signal fires when the thread that started it ends, so starting them
/// from callers' threads (which come and go) would kill children early.
#[derive(Default)]
pub(crate) struct Spawner {
    jobs: OnceLock<Mutex<mpsc::Sender<SpawnJob>>>,
}

type SpawnJob = (Spawn, mpsc::SyncSender<io::Result<Spawned>>);

impl Spawner {
    fn spawn(&self, command: Spawn) -> io::Result<Spawned> {
        let jobs = self.jobs.get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("wmp-spawner".into())
                .spawn(move || {
                    let mut stack = ChildStack::default();
                    for (command, reply) in receiver {
                        let _ = reply.send(command.run(&mut stack));
                    }
                })
                .expect("spawning the wmp-spawner thread");
            Mutex::new(sender)
        });
        let (reply, result) = mpsc::sync_channel(1);
        jobs.lock().unwrap().send((command, reply)).map_err(|_| io::Error::other("the spawner thread is gone"))?;
        result.recv().map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}
