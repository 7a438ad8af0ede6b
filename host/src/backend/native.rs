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
//! [`guest_marker`]). What a child is started with is [`command`]'s; who
//! owns it until it is reaped, and what its wait status means, is
//! [`reaper`]'s; this file launches it and watches it to its end.

mod command;
pub(crate) mod guest_marker;
mod reaper;
mod spawn;
mod supervisor;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use wmp_core::ProcessError;

use crate::base::exit::ExitReason;
use crate::base::limits::Limit;
use crate::base::stdio::{Stdin, StdinCloser};
use crate::model::builder::{LaunchSpec, Target};
use crate::model::handoff::Handoff;
use crate::ipc::inherit::Handles;
use crate::ipc::remote_connection::Bridges;
use crate::model::launch::{ProcessHost, Runnable};
use crate::model::registry::{Node, NodeSpec};

use command::{command, environment, refuse_wasm_only_limits};
pub(crate) use reaper::pidfd_open;
use reaper::{Reaper, exit_reason};
use spawn::Spawner;
use spawn::Spawned;

/// A native executable that processes can run: the same process model as
/// a wasm program (state machine, names, identity, authkey, daemon rule),
/// but run by the OS with the host user's rights: preopened directories
/// and the network grant do not confine it. Its pid is the OS pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeProgram {
    pub(crate) path: PathBuf,
    pub(crate) current_dir: Option<PathBuf>,
    pub(crate) inherit_env: bool,
    /// Whether it is handed an identity and the authkey; None: if it
    /// carries the wmp-guest marker (see `backend/native/guest_marker.rs`).
    pub(crate) wmp_guest: Option<bool>,
}

impl NativeProgram {
    /// The executable at `path` (looked up in `PATH` if it has no `/`),
    /// started with the host's environment plus the process's `env`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        NativeProgram { path: path.into(), current_dir: None, inherit_env: true, wmp_guest: None }
    }

    /// Declares whether it is a wmp guest, to be handed its identity and
    /// the authkey, instead of asking its executable: by default only a
    /// program linked with `wmp-guest` (which marks its binary) is one.
    pub fn wmp_guest(mut self, is_guest: bool) -> Self {
        self.wmp_guest = Some(is_guest);
        self
    }

    /// The working directory it starts in (the host's by default).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Whether it starts with the host's environment (before the
    /// process's own `env`); when a guest starts it, it never does.
    pub fn inherit_env(mut self, inherit: bool) -> Self {
        self.inherit_env = inherit;
        self
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// What the native backend holds for all its processes: the thread that
/// starts them, and the bridges of the connections they were passed.
#[derive(Default)]
pub(crate) struct NativeBackend {
    spawner: Spawner,
    /// Connections to other OS processes: the native children's, and
    /// (in a native wmp guest) its parent's.
    pub(crate) bridges: Bridges,
}

impl NativeBackend {
    /// `program`, as what a process runs on this backend.
    pub(crate) fn runnable(self: &Arc<Self>, program: &NativeProgram) -> Arc<dyn Runnable> {
        Arc::new(NativeRunnable { program: program.clone(), backend: self.clone() })
    }
}

/// A native program bound to the backend that runs it.
struct NativeRunnable {
    program: NativeProgram,
    backend: Arc<NativeBackend>,
}

impl Runnable for NativeRunnable {
    fn name(&self) -> String {
        self.program.path.display().to_string()
    }

    /// A native program's targets are not known before it runs.
    fn check_target(&self, _: Option<&Target>) -> Result<(), ProcessError> {
        Ok(())
    }

    /// A native program does not travel: it is a path on this machine.
    #[cfg(feature = "cluster")]
    fn source(&self) -> Option<crate::model::launch::ProgramSource> {
        None
    }

    fn launch(
        &self,
        host: &Arc<dyn ProcessHost>,
        parent: &Arc<Node>,
        who: NodeSpec,
        spec: LaunchSpec,
    ) -> Result<Arc<Node>, ProcessError> {
        launch(&self.backend, host, parent, who, &self.program, spec)
    }
}

/// How long a process's end waits for the rest of its output to be
/// forwarded (after that, only a grandchild that kept the stream open
/// still writes, and its output keeps flowing after the end is published).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Starts `native` as a child of `parent` and returns its node (whose pid
/// is the OS pid).
fn launch(
    backend: &NativeBackend,
    host: &Arc<dyn ProcessHost>,
    parent: &Arc<Node>,
    who: NodeSpec,
    native: &NativeProgram,
    spec: LaunchSpec,
) -> Result<Arc<Node>, ProcessError> {
    let failed = |why: String| ProcessError::SpawnFailed(format!("cannot start process {}: {why}", who.name));
    let limits = parent.limits.narrowed_by(&who.limits);
    refuse_wasm_only_limits(&limits).map_err(failed)?;
    let stdin = match &spec.caps.stdin {
        Stdin::Pipe(reader) => Some(reader.take().map_err(failed)?),
        Stdin::Null | Stdin::Inherit => None,
    };
    let handles = spec.inherited.take();
    if handles.has_synchronization() {
        return Err(failed("semaphore locks and shared memory cannot be passed to a native child".into()));
    }
    let Handles { connections, queues, .. } = handles;
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
    let own_group = command.own_group;
    let child = backend.spawner.spawn(command).map_err(|e| failed(format!("{}: {e}", native.path.display())))?;
    drop(handoff);
    let Spawned { pid, stdin: stdin_end, stdout, stderr } = child;
    let pipes = [stdout, stderr];
    let reaper = Reaper::new(pid, own_group);
    let pidfd = Arc::new(pidfd_open(pid).map_err(|e| failed(format!("pidfd_open: {e}")))?);
    let _runtime = host.handle().enter();
    // SAFETY: the Arc keeps the pidfd open, unchanged, for as long as the
    // registration lives.
    let exited = unsafe { AsyncFd::register_with_interest(pidfd.clone(), tokio::io::Interest::READABLE) }
        .map_err(|e| failed(format!("cannot watch its pidfd: {e}")))?;
    let forwarders = forwarders.into_iter().zip(pipes.into_iter().flatten()).map(|(f, pipe)| f.start(pipe));
    let forwarders =
        forwarders.collect::<io::Result<Vec<_>>>().map_err(|e| failed(format!("cannot forward its output: {e}")))?;
    let stdin = stdin
        .zip(stdin_end)
        .map(|(pipe, end)| {
            let closer = pipe.closer();
            pipe.feed(end).map(|()| closer)
        })
        .transpose()
        .map_err(|e| failed(format!("cannot feed its stdin: {e}")))?;
    let node = Node::new(Some(parent), pid, who);
    node.exit.set_pidfd(pidfd);
    let mut ours = pairs.into_iter().map(|(ours, _theirs)| ours);
    // A bridge or server that cannot start drops its connection or queue
    // handle: the other side sees EOF, as if the child had closed it. What
    // the child sends or puts is charged to it.
    let payer = node.payer();
    for (connection, socket) in connections.into_iter().zip(ours.by_ref()) {
        let _ = backend.bridges.bridge(host.handle(), connection, socket, payer.clone());
    }
    for (queue, socket) in queues.into_iter().zip(ours) {
        let _ = crate::ipc::remote_queue::serve(host.handle(), queue, socket, payer.clone());
    }
    host.registry().add_live(&node);
    host.handle().spawn(supervise(host.clone(), node.clone(), reaper, exited, forwarders, stdin));
    Ok(node)
}

/// Watches the child until it exits, passing on stop requests as signals
/// and stopping it at its timeout; then reaps it, closes its stdin pipe
/// (a write then fails at once) and publishes its end.
async fn supervise(
    host: Arc<dyn ProcessHost>,
    node: Arc<Node>,
    mut reaper: Reaper,
    exited: AsyncFd<Arc<OwnedFd>>,
    forwarders: Vec<tokio::task::JoinHandle<()>>,
    stdin: Option<StdinCloser>,
) {
    let mut stops_seen = 0; // so a stop asked before this task ran is seen too
    let timer = node.time_limit();
    tokio::pin!(timer);
    let mut timed_out = false;
    loop {
        tokio::select! {
            biased;
            _ = exited.readable() => break,
            (seen, request) = node.stop_request_after(stops_seen) => {
                stops_seen = seen;
                if let Some(reason) = request {
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
    host.registry().remove_live(node.pid);
    let reaped = tokio::task::block_in_place(|| reaper.reap());
    let reason = match reaped {
        Ok((status, usage)) => {
            node.meter.set_cpu_time(usage.cpu_time);
            node.meter.set_memory_peak(usage.max_rss);
            exit_reason(status, node.stop_requested())
        }
        Err(e) => ExitReason::Error(format!("cannot reap the process: {e}")),
    };
    drop(stdin);
    let _ = tokio::time::timeout(OUTPUT_GRACE, all_ended(forwarders)).await;
    host.registry().end(&node, reason);
}

async fn all_ended(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}
