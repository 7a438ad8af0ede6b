//! The node agent (`wmp agent`, feature `cluster`): what Ray runs on a
//! node for a runtime that places processes there. It dials back to that
//! runtime (see `backend/remote/link.rs`), then runs in a runtime of its
//! own each process it is asked to start, as the process the tree says it
//! is, and reports each end. It lives as long as its link: when the link
//! fails or stays silent, it kills everything it runs and exits, so a
//! runtime that is gone leaves no process behind on the cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wmp_core::AuthKey;

use crate::backend::remote::channels::Channels;
use crate::backend::remote::link;
use crate::ipc::inherit::Handles;
use crate::backend::remote::protocol::{
    FromAgent, LINK_TIMEOUT, MAX_FRAME_TO_AGENT, StartRequest, ToAgent, read_frame, write_frames,
};
use crate::backend::wasm::program::Program;
use crate::base::error::{Error, Result};
use crate::base::stdio::{PipeReader, Stdio, Stream};
use crate::model::registry::Node;
use crate::backend::wasm::code_cache::CodeCache;
use crate::runtime::Runtime;

/// Where an agent dials and how it proves who it is: what its runtime put
/// on its command line.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The runtime's address, `HOST:PORT`.
    pub connect: String,
    /// The SHA-256 of the runtime's certificate, in hex.
    pub pin: String,
    /// Names the token to the runtime.
    pub token_id: String,
    /// The one-time token, in hex.
    pub token: String,
}

/// Runs the agent until its link ends. An error if it cannot reach or
/// authenticate its runtime.
pub fn run_agent(options: &AgentOptions) -> Result<()> {
    let agent_error = |why: String| Error::Setup(format!("wmp agent: {why}"));
    die_with_parent().map_err(|e| agent_error(format!("cannot tie itself to its parent: {e}")))?;
    let token = AuthKey::new(from_hex(&options.token).ok_or_else(|| agent_error("--token is not hex".into()))?);
    let runtime = Runtime::builder().code_cache(CodeCache::System).first_wasm_pid(AGENT_FIRST_PID).build()?;
    let handle = runtime.handle().clone();
    let link = handle
        .block_on(link::dial(&options.connect, &options.pin, &options.token_id, &token))
        .map_err(|e| agent_error(e.to_string()))?;
    let (mut from_runtime, to_runtime_half) = tokio::io::split(link);
    let (to_runtime, outgoing) = mpsc::channel::<(FromAgent, Vec<u8>)>(OUTGOING_FRAMES);
    let node = std::env::var("RAY_NODE_ID").unwrap_or_else(|_| hostname());
    let _ = to_runtime.blocking_send((FromAgent::Hello { node, pid: std::process::id() }, Vec::new()));
    handle.spawn(write_frames(to_runtime_half, outgoing, || FromAgent::Ping));
    let mut served =
        Served { runtime: &runtime, to_runtime, programs: HashMap::new(), running: Arc::default(), channels: Arc::default() };
    let why = loop {
        // Through run_slot: what the last frame started runs while the
        // agent waits for the next (a plain block_on left it to the next
        // 10 ms epoch tick).
        let frame = crate::base::run_slot::block_on(&handle, async {
            tokio::time::timeout(LINK_TIMEOUT, read_frame::<_, ToAgent>(&mut from_runtime, MAX_FRAME_TO_AGENT)).await
        });
        match frame {
            Ok(Ok((message, body))) => served.take(message, body),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break "the runtime closed the link".to_owned(),
            Ok(Err(e)) => break format!("the link failed: {e}"),
            Err(_) => break format!("the runtime said nothing for {LINK_TIMEOUT:?}"),
        }
    };
    tracing::info!(%why, "the agent ends, and every process it runs with it");
    served.channels.end_all();
    drop(served);
    drop(runtime); // kills every process still running
    Ok(())
}

/// Where the pids of an agent's own processes (the children of those
/// placed on it) start: far above those its runtime gives out.
const AGENT_FIRST_PID: crate::Pid = 1 << 31;

/// Frames an agent queues for its link before a process's output waits.
const OUTGOING_FRAMES: usize = 256;

/// How long a process's end waits for the rest of its output to be sent
/// (after that, only a descendant that kept the stream still writes).
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// What an agent serves: the programs it was sent, and the processes it
/// runs.
struct Served<'a> {
    runtime: &'a Runtime,
    to_runtime: mpsc::Sender<(FromAgent, Vec<u8>)>,
    /// By hash: the compiled program, or why it did not compile.
    programs: HashMap<String, std::result::Result<Program, String>>,
    /// By the runtime's number: each running process, and the view of its
    /// parent it is a child of.
    running: Arc<Mutex<HashMap<u64, (Arc<Node>, Arc<Node>)>>>,
    /// The connections and queues passed to them.
    channels: Arc<Channels>,
}

impl Served<'_> {
    fn take(&mut self, message: ToAgent, body: Vec<u8>) {
        match message {
            ToAgent::Program { hash, name } => {
                let program = if link::hex(&Sha256::digest(&body)) != hash {
                    Err(format!("the bytes of {name} do not have the hash they were sent with"))
                } else {
                    self.runtime.load_bytes(&name, &body).map_err(|e| e.to_string())
                };
                self.programs.insert(hash, program);
            }
            ToAgent::Start(request) => self.start(request, body),
            ToAgent::Signal { id, signal } => {
                if let Some((node, _)) = self.running.lock().unwrap().get(&id) {
                    node.signal(signal);
                }
            }
            ToAgent::Channel(frame) => self.channels.take(frame, body),
            ToAgent::Ping => {}
        }
    }

    fn start(&mut self, request: StartRequest, target_args: Vec<u8>) {
        let id = request.id;
        let (stdout, stdout_reader) = Stdio::pipe();
        let (stderr, stderr_reader) = Stdio::pipe();
        let started = match (self.programs.get(&request.program), self.handles(&request)) {
            (None, _) => Err(wmp_core::ProcessError::SpawnFailed("the agent was not sent the program".into())),
            (Some(Err(why)), _) => Err(wmp_core::ProcessError::SpawnFailed(why.clone())),
            (_, Err(e)) => Err(wmp_core::ProcessError::SpawnFailed(format!("cannot take its connections and queues: {e}"))),
            (Some(Ok(program)), Ok(handles)) => self.runtime.adopt(program, &request, target_args, handles, [stdout, stderr]),
        };
        let (node, parent) = match started {
            Ok(started) => started,
            Err(err) => {
                let _ = self.to_runtime.blocking_send((FromAgent::Refused { id, refusal: err.into() }, Vec::new()));
                return;
            }
        };
        let _ = self.to_runtime.blocking_send((FromAgent::Started { id }, Vec::new()));
        self.running.lock().unwrap().insert(id, (node.clone(), parent));
        let handle = self.runtime.handle();
        let forwarders = [(Stream::Stdout, stdout_reader), (Stream::Stderr, stderr_reader)]
            .map(|(stream, reader)| handle.spawn(forward(id, stream, reader, self.to_runtime.clone())));
        let (running, to_runtime) = (self.running.clone(), self.to_runtime.clone());
        handle.spawn(async move {
            node.exit.ended().await;
            let reason = node.exit.get().expect("ended() returns once the reason is set");
            running.lock().unwrap().remove(&id);
            let _ = tokio::time::timeout(OUTPUT_GRACE, async {
                for forwarder in forwarders {
                    let _ = forwarder.await;
                }
            })
            .await;
            let _ = to_runtime.send((FromAgent::Ended { id, reason }, Vec::new())).await;
        });
    }

    /// The connection ends and queues passed to the process `request`
    /// starts, each over a socket whose other end is carried on its
    /// channel, as a native child's cross a socket.
    fn handles(&self, request: &StartRequest) -> std::io::Result<Handles> {
        let handle = self.runtime.handle();
        let mut handles = Handles::default();
        for &channel in &request.connections {
            let (mine, carried) = std::os::unix::net::UnixStream::pair()?;
            self.channels.carry(handle, channel, carried, self.to_runtime.clone())?;
            handles.connections.push(self.runtime.connection_over(mine)?);
        }
        for &channel in &request.queues {
            let (mine, carried) = std::os::unix::net::UnixStream::pair()?;
            self.channels.carry(handle, channel, carried, self.to_runtime.clone())?;
            handles.queues.push(self.runtime.queue_over(mine)?);
        }
        Ok(handles)
    }
}

/// Sends what process `id` writes to `stream`, as it writes it.
async fn forward(id: u64, stream: Stream, mut reader: PipeReader, to_runtime: mpsc::Sender<(FromAgent, Vec<u8>)>) {
    while let Some(chunk) = reader.read().await {
        if to_runtime.send((FromAgent::Output { id, stream }, chunk)).await.is_err() {
            return;
        }
    }
}

/// Ends this process when its parent (Ray's worker for the agent's job)
/// ends: when its node leaves the cluster, Ray's processes there end, and
/// so do the agent and what it runs, though its link may still stand.
fn die_with_parent() -> std::io::Result<()> {
    let parent = std::os::unix::process::parent_id();
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(1); // the parent ended before the flag was set
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect()
}
