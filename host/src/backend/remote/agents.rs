//! The runtime's node agents: one per placement, started on first use as
//! a Ray job pinned to the placement's resource, dialing back to the
//! listener here, and from then on one link that carries starts and stops
//! to it and ends back. A link that fails, or that stays silent past
//! [`LINK_TIMEOUT`], is lost: every process on it ends with
//! [`ExitReason::Lost`], and the next start on that placement starts a
//! new agent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::ReadHalf;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use wmp_core::{AuthKey, ProcessError};

use super::Cluster;
use super::channels::Channels;
use super::link::{ServerIdentity, ServerLink, hex};
use super::protocol::{FromAgent, LINK_TIMEOUT, MAX_FRAME_FROM_AGENT, Refusal, ToAgent, read_frame, write_frames};
use super::ray::RayJobs;
use crate::base::exit::ExitReason;
use crate::base::ledger::{Charged, Held, MESSAGE_COST};
use crate::base::limits::Limit;
use crate::base::stdio::Stream;
use crate::model::launch::ProgramSource;
use crate::model::registry::Node;

/// How long an agent may take to answer a start (it may compile).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Of a placement's custom resource, what an agent's job takes: a
/// little, so that the node's own work still fits.
const AGENT_RESOURCE_SHARE: f64 = 0.001;

/// The agents of one runtime, and the listener they dial back to.
pub(crate) struct Agents {
    cluster: Cluster,
    identity: ServerIdentity,
    /// Where agents dial.
    address: String,
    jobs: Arc<RayJobs>,
    /// Agents asked for and not yet in: token id → token and who waits.
    expected: Mutex<HashMap<String, (AuthKey, oneshot::Sender<ServerLink>)>>,
    /// The live agent of each placement (None: any node).
    by_placement: Mutex<HashMap<Option<String>, Arc<Agent>>>,
    /// Serializes agent starts, so that one placement gets one agent.
    starting: tokio::sync::Mutex<()>,
}

impl Agents {
    /// Listens for agents, on `handle`'s runtime.
    pub(crate) fn start(cluster: Cluster, handle: &tokio::runtime::Handle) -> Result<Arc<Agents>, String> {
        let identity = ServerIdentity::generate().map_err(|e| e.to_string())?;
        let listener = std::net::TcpListener::bind(&cluster.bind)
            .map_err(|e| format!("cannot listen for cluster agents at {}: {e}", cluster.bind))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let address = cluster.advertise.clone().unwrap_or_else(|| bound.to_string());
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = {
            let _runtime = handle.enter();
            TcpListener::from_std(listener).map_err(|e| e.to_string())?
        };
        let agents = Arc::new(Agents {
            jobs: Arc::new(RayJobs::new(&cluster.dashboard)),
            cluster,
            identity,
            address,
            expected: Mutex::default(),
            by_placement: Mutex::default(),
            starting: tokio::sync::Mutex::new(()),
        });
        handle.spawn(accept_agents(Arc::downgrade(&agents), listener));
        Ok(agents)
    }

    /// Where agents dial.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The live agent of placement `resource`, started (and waited for)
    /// if there is none; blocks the calling thread meanwhile.
    pub(crate) fn agent_for(self: &Arc<Self>, handle: &tokio::runtime::Handle, resource: Option<String>) -> Result<Arc<Agent>, String> {
        if let Some(agent) = self.live_agent(&resource) {
            return Ok(agent);
        }
        let agents = self.clone();
        wait_here(handle, async move { agents.start_agent(resource).await })
    }

    fn live_agent(&self, resource: &Option<String>) -> Option<Arc<Agent>> {
        let by_placement = self.by_placement.lock().unwrap();
        by_placement.get(resource).filter(|agent| agent.lost().is_none()).cloned()
    }

    async fn start_agent(self: Arc<Self>, resource: Option<String>) -> Result<Arc<Agent>, String> {
        let _one_at_a_time = self.starting.lock().await;
        if let Some(agent) = self.live_agent(&resource) {
            return Ok(agent);
        }
        if let Some(name) = &resource {
            // Ray would keep the agent's job pending for ever.
            let nodes = self.ask_ray(RayJobs::alive_nodes).await?;
            let nodes = nodes.map_err(|e| format!("cannot list the cluster's nodes: {e}"))?;
            if !nodes.iter().any(|node| node.resources.contains_key(name)) {
                return Err(format!("no alive node of the cluster has the resource {name:?}"));
            }
        }
        let token_id = hex(&random::<16>()?);
        let token = random::<32>()?;
        let (dialed_in, link) = oneshot::channel();
        self.expected.lock().unwrap().insert(token_id.clone(), (AuthKey::new(token.to_vec()), dialed_in));
        // `exec`: the agent's parent is then Ray's worker for the job, whose
        // death (its node is gone) the agent does not outlive.
        let entrypoint = [
            "exec".into(),
            shell_word(&self.cluster.agent_command.display().to_string()),
            "agent".into(),
            format!("--connect={}", self.address),
            format!("--pin={}", self.identity.pin()),
            format!("--token-id={token_id}"),
            format!("--token={}", hex(&token)),
        ]
        .join(" ");
        let resources: BTreeMap<String, f64> =
            resource.iter().map(|name| (name.clone(), AGENT_RESOURCE_SHARE)).collect();
        let submitted = self.ask_ray(move |jobs| jobs.submit(&entrypoint, &resources)).await;
        let job = match submitted.and_then(|job| job.map_err(|e| format!("cannot start a node agent through Ray: {e}"))) {
            Ok(job) => job,
            Err(why) => {
                self.expected.lock().unwrap().remove(&token_id);
                return Err(why);
            }
        };
        let placed = match &resource {
            Some(name) => format!("a node with resource {name:?}"),
            None => "any node".into(),
        };
        let dialed_in = tokio::time::timeout(self.cluster.agent_start_timeout, self.watch_job(&job, link)).await;
        let why = match dialed_in {
            Ok(Ok(link)) => {
                let agent = Agent::run(link, job).await?;
                tracing::info!(node = agent.node(), job = %agent.job, %placed, "a node agent joined");
                self.by_placement.lock().unwrap().insert(resource, agent.clone());
                return Ok(agent);
            }
            Ok(Err(why)) => format!("the node agent for {placed} did not start: {why}"),
            Err(_) => {
                self.stop_job(&job);
                let timeout = self.cluster.agent_start_timeout;
                format!("the node agent for {placed} did not dial back within {timeout:?} (Ray job {job})")
            }
        };
        // Its token is no longer good for anything.
        self.expected.lock().unwrap().remove(&token_id);
        Err(why)
    }

    /// Asks Ray, on a thread that may block (its client does).
    async fn ask_ray<T: Send + 'static>(&self, ask: impl FnOnce(&RayJobs) -> T + Send + 'static) -> Result<T, String> {
        let jobs = self.jobs.clone();
        tokio::task::spawn_blocking(move || ask(&jobs)).await.map_err(|e| e.to_string())
    }

    /// Waits for the agent of Ray job `job` to dial in; an error if the
    /// job ends first.
    async fn watch_job(&self, job: &str, mut link: oneshot::Receiver<ServerLink>) -> Result<ServerLink, String> {
        loop {
            if let Ok(dialed) = tokio::time::timeout(Duration::from_millis(500), &mut link).await {
                return dialed.map_err(|_| "its link was dropped".to_owned());
            }
            let id = job.to_owned();
            match self.ask_ray(move |jobs| jobs.status(&id)).await? {
                Ok(info) if info.status.is_terminal() => {
                    let id = job.to_owned();
                    let logs = self.ask_ray(move |jobs| jobs.logs(&id)).await.ok().and_then(Result::ok);
                    let tail: String = logs.unwrap_or_default().lines().rev().take(5).collect::<Vec<_>>().join(" / ");
                    return Err(format!("Ray job {job} ended ({:?}): {tail}", info.status));
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%e, "cannot read the agent job's status yet"),
            }
        }
    }

    fn stop_job(&self, job: &str) {
        let (jobs, job) = (self.jobs.clone(), job.to_owned());
        std::thread::spawn(move || jobs.stop(&job));
    }
}

/// Takes every agent that dials in and proves its token.
async fn accept_agents(agents: std::sync::Weak<Agents>, listener: TcpListener) {
    loop {
        let Ok((tcp, from)) = listener.accept().await else { continue };
        let Some(owner) = agents.upgrade() else { return };
        tokio::spawn(async move {
            let expected = &owner.expected;
            let accepted = owner
                .identity
                .accept(tcp, |id| expected.lock().unwrap().get(id).map(|(token, _)| token.clone()))
                .await;
            match accepted {
                Ok((link, id)) => {
                    if let Some((_, waiting)) = expected.lock().unwrap().remove(&id) {
                        let _ = waiting.send(link);
                    }
                }
                Err(e) => tracing::warn!(%from, %e, "refused a connection to the cluster listener"),
            }
        });
    }
}

/// One agent, as its runtime sees it: the link's writer, and the
/// processes it runs.
pub(crate) struct Agent {
    node: String,
    job: String,
    to_agent: mpsc::UnboundedSender<(ToAgent, Vec<u8>)>,
    /// Numbers processes and channels.
    next_id: AtomicU64,
    programs_sent: Mutex<HashSet<String>>,
    processes: Mutex<Processes>,
    channels: Arc<Channels>,
}

/// The processes of one agent.
#[derive(Default)]
struct Processes {
    /// Those that have not answered their start yet.
    starting: HashMap<u64, oneshot::Sender<Result<(), Refusal>>>,
    /// Every one that has not ended.
    running: HashMap<u64, Running>,
    /// Why the link is gone, once it is.
    lost: Option<String>,
}

/// A process on an agent, as the link's reader serves it.
struct Running {
    node: Arc<Node>,
    /// Who waits for its end.
    ended: oneshot::Sender<ExitReason>,
    /// Its output on its way to its `Stdio`, charged to it until written.
    output: mpsc::UnboundedSender<(Stream, Charged<Vec<u8>>)>,
}

/// What a process placed on an agent hears back: its end, and its output
/// (which ends before its end is sent).
pub(crate) struct Reports {
    pub(crate) ended: oneshot::Receiver<ExitReason>,
    pub(crate) output: mpsc::UnboundedReceiver<(Stream, Charged<Vec<u8>>)>,
}

impl Agent {
    /// Reads the agent's hello from `link`, and runs the link.
    async fn run(link: ServerLink, job: String) -> Result<Arc<Agent>, String> {
        let (mut from_agent, to_agent_half) = tokio::io::split(link);
        let hello = tokio::time::timeout(LINK_TIMEOUT, read_frame(&mut from_agent, MAX_FRAME_FROM_AGENT)).await;
        let node = match hello {
            Ok(Ok((FromAgent::Hello { node, pid }, _))) => format!("{node} (agent pid {pid})"),
            Ok(Ok(_)) => return Err("the agent did not say hello first".into()),
            Ok(Err(e)) => return Err(format!("the agent's link failed: {e}")),
            Err(_) => return Err("the agent said nothing".into()),
        };
        let (to_agent, outgoing) = mpsc::unbounded_channel();
        let agent = Arc::new(Agent {
            node,
            job,
            to_agent,
            next_id: AtomicU64::new(1),
            programs_sent: Mutex::default(),
            processes: Mutex::default(),
            channels: Arc::default(),
        });
        tokio::spawn(write_frames(to_agent_half, outgoing, || ToAgent::Ping));
        tokio::spawn(read_from_agent(Arc::downgrade(&agent), from_agent));
        Ok(agent)
    }

    /// Which node it runs on.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    fn lost(&self) -> Option<String> {
        self.processes.lock().unwrap().lost.clone()
    }

    /// A number for `node`, a new process on this agent, and where what
    /// it does will be reported.
    pub(crate) fn new_process(&self, node: Arc<Node>) -> (u64, Reports) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (ended_tx, ended) = oneshot::channel();
        let (output_tx, output) = mpsc::unbounded_channel();
        let running = Running { node, ended: ended_tx, output: output_tx };
        self.processes.lock().unwrap().running.insert(id, running);
        (id, Reports { ended, output })
    }

    /// Carries `socket` to the agent as a new channel; its number.
    pub(crate) fn carry(&self, handle: &tokio::runtime::Handle, socket: std::os::unix::net::UnixStream) -> std::io::Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.channels.carry(handle, id, socket, self.to_agent.clone())?;
        Ok(id)
    }

    /// Sends `program` unless it was sent before; its hash.
    pub(crate) fn send_program(&self, program: &ProgramSource) -> String {
        let hash = hex(&program.sha256);
        if self.programs_sent.lock().unwrap().insert(hash.clone()) {
            let header = ToAgent::Program { hash: hash.clone(), name: program.name.clone() };
            self.send(header, program.bytes.to_vec());
        }
        hash
    }

    /// Queues a message to the agent (dropped if the link is gone: then
    /// every process on it ends as lost anyway).
    pub(crate) fn send(&self, header: ToAgent, body: Vec<u8>) {
        let _ = self.to_agent.send((header, body));
    }

    /// Sends a start and waits for its answer: started, or the error a
    /// local start would have raised.
    pub(crate) fn start(&self, handle: &tokio::runtime::Handle, start: ToAgent, body: Vec<u8>) -> Result<(), ProcessError> {
        let ToAgent::Start(request) = &start else { unreachable!("only starts are answered") };
        let id = request.id;
        let (answer, answered) = oneshot::channel();
        {
            let mut processes = self.processes.lock().unwrap();
            if let Some(why) = processes.lost.clone() {
                drop(processes);
                self.forget(id);
                return Err(ProcessError::SpawnFailed(format!("the agent on {} is lost: {why}", self.node)));
            }
            processes.starting.insert(id, answer);
        }
        self.send(start, body);
        let node = self.node.clone();
        let answer = wait_here(handle, async move {
            match tokio::time::timeout(START_TIMEOUT, answered).await {
                Ok(Ok(answer)) => answer.map_err(ProcessError::from),
                Ok(Err(_)) => Err(ProcessError::SpawnFailed(format!("the agent on {node} was lost during the start"))),
                Err(_) => Err(ProcessError::SpawnFailed(format!("the agent on {node} did not answer the start"))),
            }
        });
        if answer.is_err() {
            self.forget(id);
        }
        answer
    }

    fn answer_start(&self, id: u64, answer: Result<(), Refusal>) {
        if let Some(waiting) = self.processes.lock().unwrap().starting.remove(&id) {
            let _ = waiting.send(answer);
        }
    }

    /// Forgets process `id`, which did not start.
    pub(crate) fn forget(&self, id: u64) {
        self.processes.lock().unwrap().running.remove(&id);
    }

    fn ended(&self, id: u64, reason: ExitReason) {
        if let Some(running) = self.processes.lock().unwrap().running.remove(&id) {
            let _ = running.ended.send(reason);
        }
    }

    /// Output of process `id`, charged to it; past its budget, it is
    /// stopped for it, as a local process would be.
    fn output(&self, id: u64, stream: Stream, chunk: Vec<u8>) {
        let processes = self.processes.lock().unwrap();
        let Some(running) = processes.running.get(&id) else { return };
        match running.node.ledger.charge(Held::PipeMessages, chunk.len() + MESSAGE_COST) {
            Ok(charge) => {
                let _ = running.output.send((stream, Charged::new(chunk, charge)));
            }
            Err(over) => {
                tracing::debug!(pid = running.node.pid, %over, "a remote process wrote past its budget");
                running.node.stop(ExitReason::Limit(Limit::HostMemory));
            }
        }
    }

    /// The link is gone: every process on it ends as lost.
    fn lose(&self, why: String) {
        tracing::warn!(node = %self.node, %why, "lost a node agent");
        let mut processes = self.processes.lock().unwrap();
        processes.lost = Some(why.clone());
        self.channels.end_all();
        processes.starting.clear();
        for (_, running) in processes.running.drain() {
            let _ = running.ended.send(ExitReason::Lost(format!("the agent on {}: {why}", self.node)));
        }
    }
}

/// Reads the agent's reports until the link fails or stays silent.
async fn read_from_agent(agent: std::sync::Weak<Agent>, mut link: ReadHalf<ServerLink>) {
    let why = loop {
        let frame = tokio::time::timeout(LINK_TIMEOUT, read_frame::<_, FromAgent>(&mut link, MAX_FRAME_FROM_AGENT)).await;
        let Some(agent) = agent.upgrade() else { return };
        match frame {
            Ok(Ok((FromAgent::Started { id }, _))) => agent.answer_start(id, Ok(())),
            Ok(Ok((FromAgent::Refused { id, refusal }, _))) => agent.answer_start(id, Err(refusal)),
            Ok(Ok((FromAgent::Ended { id, reason }, _))) => agent.ended(id, reason),
            Ok(Ok((FromAgent::Output { id, stream }, chunk))) => agent.output(id, stream, chunk),
            Ok(Ok((FromAgent::Channel(frame), body))) => agent.channels.take(frame, body),
            Ok(Ok((FromAgent::Ping | FromAgent::Hello { .. }, _))) => {}
            Ok(Err(e)) => break format!("its link failed: {e}"),
            Err(_) => break format!("it said nothing for {LINK_TIMEOUT:?}"),
        }
    };
    if let Some(agent) = agent.upgrade() {
        agent.lose(why);
    }
}

/// Runs `future` on `handle`'s runtime and waits for it on this thread,
/// which may be a worker of that runtime (its other tasks then move to
/// another thread meanwhile).
pub(crate) fn wait_here<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(future.await);
    });
    let wait = || rx.recv().expect("the task sends before it ends");
    match tokio::runtime::Handle::try_current() {
        Ok(current) if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes)
}

/// `word` quoted for a POSIX shell (Ray runs an entrypoint with `sh -c`).
fn shell_word(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
