//! The remote backend (feature `cluster`): processes placed on the nodes
//! of a Ray cluster. Ray runs, on each node a placement names, one
//! long-lived wmp node agent (a Ray job pinned to the node's resource;
//! see [`agents`]); the agent dials back to this runtime over an
//! encrypted, authenticated [`link`], and a process's start is then one
//! message to it, not a Ray job. The agent runs the process in its own
//! runtime as the process the tree says it is (its name, identity,
//! authkey, limits) and reports its end; a stop travels as a message.
//! A lost link ends the agent's processes here with
//! [`ExitReason::Lost`], and the agent kills them there.

pub(crate) mod agents;
pub(crate) mod channels;
pub(crate) mod link;
pub(crate) mod protocol;
pub(crate) mod ray;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wmp_core::ProcessError;

use crate::base::exit::ExitReason;
use crate::base::ledger::Charged;
use crate::base::stdio::{Stdin, Stdio, Stream};
use crate::ipc::inherit::Handles;
use crate::ipc::remote_connection::Bridges;
use crate::model::builder::{LaunchSpec, Target};
use crate::model::launch::{ProcessHost, ProgramSource, Runnable};
use crate::model::registry::{Node, NodeSpec};
use agents::{Agent, Agents};
use protocol::{StartRequest, ToAgent};

/// How a runtime reaches its cluster ([`RuntimeBuilder::cluster`](crate::RuntimeBuilder::cluster)).
#[derive(Clone, Debug)]
pub struct Cluster {
    pub(crate) dashboard: String,
    pub(crate) agent_command: PathBuf,
    pub(crate) bind: String,
    pub(crate) advertise: Option<String>,
    pub(crate) agent_start_timeout: Duration,
}

impl Cluster {
    /// The Ray cluster whose dashboard (and Jobs REST API) is at
    /// `dashboard_url`, e.g. `http://127.0.0.1:8265`.
    pub fn ray(dashboard_url: impl Into<String>) -> Cluster {
        Cluster {
            dashboard: dashboard_url.into().trim_end_matches('/').to_owned(),
            agent_command: default_agent_command(),
            bind: "127.0.0.1:0".into(),
            advertise: None,
            agent_start_timeout: Duration::from_secs(90),
        }
    }

    /// The `wmp` executable that runs an agent on a node (`wmp agent`):
    /// by default this executable if it is `wmp`, else `wmp` on the
    /// node's `PATH`.
    pub fn agent_command(mut self, wmp: impl Into<PathBuf>) -> Cluster {
        self.agent_command = wmp.into();
        self
    }

    /// Where this runtime listens for its agents to dial back (default
    /// `127.0.0.1:0`: a cluster on this machine; a cluster of several
    /// machines needs an address they reach).
    pub fn bind(mut self, address: impl Into<String>) -> Cluster {
        self.bind = address.into();
        self
    }

    /// The address agents dial, `HOST:PORT` (default: the bound one), for
    /// a runtime behind a NAT or a proxy.
    pub fn advertise(mut self, address: impl Into<String>) -> Cluster {
        self.advertise = Some(address.into());
        self
    }

    /// How long an agent may take to start and dial back (default 90 s).
    pub fn agent_start_timeout(mut self, timeout: Duration) -> Cluster {
        self.agent_start_timeout = timeout;
        self
    }
}

fn default_agent_command() -> PathBuf {
    std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_name().is_some_and(|name| name == "wmp"))
        .unwrap_or_else(|| PathBuf::from("wmp"))
}

/// What the remote backend holds: its agents, one per placement, and the
/// bridges of the connections passed to their processes.
pub(crate) struct RemoteBackend {
    agents: Arc<Agents>,
    bridges: Arc<Bridges>,
}

impl RemoteBackend {
    /// Listens for agents as `cluster` says, on `handle`'s runtime.
    pub(crate) fn new(cluster: Cluster, handle: &tokio::runtime::Handle) -> Result<RemoteBackend, String> {
        Ok(RemoteBackend { agents: Agents::start(cluster, handle)?, bridges: Arc::default() })
    }

    /// The address agents dial.
    pub(crate) fn address(&self) -> &str {
        self.agents.address()
    }

    /// `program`, placed on a node that has `resource` (any node if None).
    pub(crate) fn runnable(
        &self,
        program: &Arc<dyn Runnable>,
        resource: Option<String>,
    ) -> Result<Arc<dyn Runnable>, ProcessError> {
        let source = program.source().ok_or_else(|| {
            ProcessError::SpawnFailed(format!(
                "{} cannot be placed on a cluster: only a WebAssembly program loaded from its .wasm (or .wat) travels",
                program.name()
            ))
        })?;
        let runnable = RemoteRunnable {
            local: program.clone(),
            source,
            resource,
            agents: self.agents.clone(),
            bridges: self.bridges.clone(),
        };
        Ok(Arc::new(runnable))
    }
}

/// A wasm program bound to the agent of a placement.
struct RemoteRunnable {
    /// The same program here: its name and targets.
    local: Arc<dyn Runnable>,
    source: ProgramSource,
    resource: Option<String>,
    agents: Arc<Agents>,
    bridges: Arc<Bridges>,
}

impl Runnable for RemoteRunnable {
    fn name(&self) -> String {
        self.local.name()
    }

    fn check_target(&self, target: Option<&Target>) -> Result<(), ProcessError> {
        self.local.check_target(target)
    }

    fn source(&self) -> Option<ProgramSource> {
        Some(self.source.clone())
    }

    fn launch(
        &self,
        host: &Arc<dyn ProcessHost>,
        parent: &Arc<Node>,
        who: NodeSpec,
        spec: LaunchSpec,
    ) -> Result<Arc<Node>, ProcessError> {
        let name = who.name.clone();
        let failed = |why: String| ProcessError::SpawnFailed(format!("cannot start process {name} on the cluster: {why}"));
        if let Stdin::Pipe(_) = spec.caps.stdin {
            return Err(failed("a stdin pipe does not reach a cluster node".into()));
        }
        let agent = self.agents.agent_for(host.handle(), self.resource.clone()).map_err(failed)?;
        let limits = parent.limits.narrowed_by(&who.limits);
        let handed_limits = parent.limits_to_hand_off(&who.identity, &who.limits, &limits);
        let node = Node::new(Some(parent), host.registry().allocate_wasm_pid(), who);
        let (id, reports) = agent.new_process(node.clone());
        let (connections, queues) = self.carry_handles(host.handle(), &agent, &node, spec.inherited.take()).map_err(|e| {
            agent.forget(id);
            failed(format!("cannot pass it its connections and queues: {e}"))
        })?;
        let request = StartRequest {
            id,
            pid: node.pid,
            program: agent.send_program(&self.source),
            name: node.name(),
            identity: node.identity.clone(),
            daemon: node.daemon,
            authkey: node.authkey().as_bytes().to_vec(),
            limits: handed_limits,
            target: spec.target.as_ref().map(|t| t.name.clone()),
            argv: spec.caps.args.clone(),
            env: spec.caps.env.clone(),
            parent_pid: parent.pid,
            parent_name: parent.name(),
            connections,
            queues,
        };
        let body = spec.target.map(|t| t.args).unwrap_or_default();
        agent.start(host.handle(), ToAgent::Start(request), body)?;
        tracing::debug!(pid = node.pid, node = agent.node(), "started on the cluster");
        host.registry().add_live(&node);
        let output = host.handle().spawn(write_output(reports.output, spec.caps.stdout, spec.caps.stderr));
        host.handle().spawn(supervise(host.clone(), agent, id, node.clone(), reports.ended, output));
        Ok(node)
    }
}

impl RemoteRunnable {
    /// Carries each connection end and queue passed to `node` to its agent,
    /// as a native child's cross a socket: here a bridge pumps the
    /// connection (a server answers for the queue), charging what comes
    /// from the process to it; the channels' numbers, connections first.
    fn carry_handles(
        &self,
        handle: &tokio::runtime::Handle,
        agent: &Agent,
        node: &Arc<Node>,
        handles: Handles,
    ) -> std::io::Result<(Vec<u64>, Vec<u64>)> {
        if handles.has_synchronization() {
            return Err(std::io::Error::other("semaphore locks and shared memory cannot be passed to a process on the cluster"));
        }
        let Handles { connections, queues, .. } = handles;
        let payer = node.payer();
        let mut connection_channels = Vec::new();
        for connection in connections {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            self.bridges.bridge(handle, connection, ours, payer.clone())?;
            connection_channels.push(agent.carry(handle, theirs)?);
        }
        let mut queue_channels = Vec::new();
        for queue in queues {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            crate::ipc::remote_queue::serve(handle, queue, ours, payer.clone())?;
            queue_channels.push(agent.carry(handle, theirs)?);
        }
        Ok((connection_channels, queue_channels))
    }
}

/// How long a process's end waits for the rest of its output to be
/// written here (a pipe its host does not read holds it up no longer).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Writes a remote process's output where its `Stdio` says, in order.
async fn write_output(
    mut output: tokio::sync::mpsc::UnboundedReceiver<(Stream, Charged<Vec<u8>>)>,
    stdout: Stdio,
    stderr: Stdio,
) {
    while let Some((stream, chunk)) = output.recv().await {
        let stdio = match stream {
            Stream::Stdout => &stdout,
            Stream::Stderr => &stderr,
        };
        stdio.write(stream, &chunk.value).await;
    }
}

/// Passes the process's stop requests on to its agent, and publishes the
/// end the agent reports (or `Lost`, if the link goes first) once its
/// output is written.
async fn supervise(
    host: Arc<dyn ProcessHost>,
    agent: Arc<Agent>,
    id: u64,
    node: Arc<Node>,
    ended: tokio::sync::oneshot::Receiver<ExitReason>,
    output: tokio::task::JoinHandle<()>,
) {
    let mut stops_seen = 0; // so a stop asked before this task ran is seen too
    tokio::pin!(ended);
    let reason = loop {
        tokio::select! {
            biased;
            reason = &mut ended => break reason.unwrap_or_else(|_| ExitReason::Lost("the agent's link is gone".into())),
            (seen, request) = node.stop_request_after(stops_seen) => {
                stops_seen = seen;
                let signal = match request {
                    Some(ExitReason::Terminated) => crate::base::exit::Signal::Terminate,
                    Some(_) => crate::base::exit::Signal::Kill,
                    None => continue,
                };
                agent.send(ToAgent::Signal { id, signal }, Vec::new());
            }
        }
    };
    // The agent sent all output before the end: the writer has it all.
    let _ = tokio::time::timeout(OUTPUT_GRACE, output).await;
    host.registry().remove_live(node.pid);
    host.registry().end(&node, reason);
}
