//! What a runtime and a node agent say to each other over their link, and
//! how each message travels: one frame, a JSON header and a byte body
//! (a program's binary, a target's arguments), so that bytes are never
//! spelled out as JSON.
//!
//! A frame is its length (u64 little-endian, header and body and the
//! header's own length), the header's length (u32 little-endian), the
//! header, then the body. Before any frame, the two sides authenticate
//! each other with [`RawMessages`], length-prefixed messages that the
//! authkey challenge of `ipc/listener.rs` runs over.

use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wmp_core::{ConnectionError, ProcessError};

use crate::base::exit::{ExitReason, Signal};
use crate::base::limits::Limits;
use crate::base::stdio::Stream;
use crate::ipc::listener::HandshakeChannel;

/// Longest frame an agent accepts from its runtime: a program file at
/// most as large as a runtime loads by default, and its header.
pub(crate) const MAX_FRAME_TO_AGENT: u64 = crate::base::program_file::DEFAULT_MAX_PROGRAM_SIZE + (1 << 20);
/// Longest frame a runtime accepts from an agent (agents send only short
/// reports).
pub(crate) const MAX_FRAME_FROM_AGENT: u64 = 1 << 20;
/// Longest message of the authentication.
const MAX_RAW_MESSAGE: u64 = 256;

/// From the runtime to an agent.
#[derive(Serialize, Deserialize)]
pub(crate) enum ToAgent {
    /// A program that starts will name; the body is its WebAssembly
    /// binary, whose SHA-256 is `hash`. Sent once per agent.
    Program { hash: String, name: String },
    /// Start a process; the body is its target's argument bytes.
    Start(StartRequest),
    /// Stop the process `id`.
    Signal { id: u64, signal: Signal },
    /// Of a connection or queue passed to a process (see `channels.rs`).
    Channel(ChannelFrame),
    /// "Still here" (see `HEARTBEAT`).
    Ping,
}

/// A frame of a channel (see `channels.rs`), either way.
#[derive(Serialize, Deserialize)]
pub(crate) enum ChannelFrame {
    /// The body is the next bytes of the channel.
    Data { channel: u64 },
    /// The other side wrote `bytes` more of the channel into its socket.
    Written { channel: u64, bytes: u64 },
    /// Nothing more comes on the channel.
    End { channel: u64 },
}

/// Everything a process placed on an agent is started with: who it is in
/// the tree, what it runs and with which limits.
#[derive(Serialize, Deserialize)]
pub(crate) struct StartRequest {
    /// The runtime's number for this process on this link.
    pub(crate) id: u64,
    /// Its pid, as its runtime numbered it.
    pub(crate) pid: u32,
    /// The hash of a program sent before.
    pub(crate) program: String,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    /// Only ever inside the encrypted link: never in a job spec, an
    /// environment variable or a log (the type has no `Debug`).
    pub(crate) authkey: Vec<u8>,
    /// Its limits, all of them: those it inherited, narrowed by its own.
    pub(crate) limits: Limits,
    pub(crate) target: Option<String>,
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
    /// The channels of the connection ends and of the queues passed to
    /// it, in the order they were passed.
    pub(crate) connections: Vec<u64>,
    pub(crate) queues: Vec<u64>,
}

/// From an agent to the runtime.
#[derive(Serialize, Deserialize)]
pub(crate) enum FromAgent {
    /// The first frame: which node the agent runs on, and its OS pid.
    Hello { node: String, pid: u32 },
    /// The process `id` started (with the pid its start request gave it).
    Started { id: u64 },
    /// The process `id` could not start.
    Refused { id: u64, refusal: Refusal },
    /// The process `id` wrote the body to `stream`.
    Output { id: u64, stream: Stream },
    /// The process `id` ended (after its last output).
    Ended { id: u64, reason: ExitReason },
    /// Of a connection or queue passed to a process (see `channels.rs`).
    Channel(ChannelFrame),
    Ping,
}

/// Why an agent could not start a process: the [`ProcessError`] a local
/// start would have raised.
#[derive(Serialize, Deserialize)]
pub(crate) enum Refusal {
    UnknownTarget(String),
    LimitReached(String),
    SpawnFailed(String),
}

impl From<ProcessError> for Refusal {
    fn from(err: ProcessError) -> Refusal {
        match err {
            ProcessError::UnknownTarget(why) => Refusal::UnknownTarget(why),
            ProcessError::LimitReached(why) => Refusal::LimitReached(why),
            other => Refusal::SpawnFailed(other.to_string()),
        }
    }
}

impl From<Refusal> for ProcessError {
    fn from(refusal: Refusal) -> ProcessError {
        match refusal {
            Refusal::UnknownTarget(why) => ProcessError::UnknownTarget(why),
            Refusal::LimitReached(why) => ProcessError::LimitReached(why),
            Refusal::SpawnFailed(why) => ProcessError::SpawnFailed(why),
        }
    }
}

/// Writes one frame of `header` and `body`.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(out: &mut W, header: &impl Serialize, body: &[u8]) -> io::Result<()> {
    let header = serde_json::to_vec(header).map_err(io::Error::other)?;
    let header_len = u32::try_from(header.len()).map_err(io::Error::other)?;
    let len = 4 + header.len() as u64 + body.len() as u64;
    let mut frame = Vec::with_capacity(12 + header.len() + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&header_len.to_le_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(body);
    out.write_all(&frame).await?;
    out.flush().await
}

/// Reads one frame of at most `max` bytes: its header and its body. An
/// error for a frame that is too long or malformed, or once the stream
/// has ended.
pub(crate) async fn read_frame<R: AsyncRead + Unpin, H: DeserializeOwned>(
    input: &mut R,
    max: u64,
) -> io::Result<(H, Vec<u8>)> {
    let len = input.read_u64_le().await?;
    if !(4..=max).contains(&len) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes (at most {max})")));
    }
    let header_len = u64::from(input.read_u32_le().await?);
    if header_len > len - 4 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a frame header longer than its frame"));
    }
    let mut header = vec![0; header_len as usize];
    input.read_exact(&mut header).await?;
    let mut body = vec![0; (len - 4 - header_len) as usize];
    input.read_exact(&mut body).await?;
    let header = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("a frame header that does not parse: {e}")))?;
    Ok((header, body))
}

/// How often each side of a link says it is still there.
pub(crate) const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a link may stay silent before it counts as lost.
pub(crate) const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Frames queued for the other side of a link: unbounded from a runtime
/// (which sends only what its own calls ask), bounded from an agent (so
/// that a process's output waits for the link).
pub(crate) trait Outgoing<H> {
    async fn next(&mut self) -> Option<(H, Vec<u8>)>;
}

impl<H> Outgoing<H> for tokio::sync::mpsc::UnboundedReceiver<(H, Vec<u8>)> {
    async fn next(&mut self) -> Option<(H, Vec<u8>)> {
        self.recv().await
    }
}

impl<H> Outgoing<H> for tokio::sync::mpsc::Receiver<(H, Vec<u8>)> {
    async fn next(&mut self) -> Option<(H, Vec<u8>)> {
        self.recv().await
    }
}

/// Writes what is queued to the other side, and `ping` every
/// [`HEARTBEAT`] when there is nothing; returns when the queue's senders
/// are all gone (closing the link) or the link fails.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin, H: Serialize>(
    mut link: W,
    mut outgoing: impl Outgoing<H>,
    ping: impl Fn() -> H,
) {
    // The first ping after a beat: what is queued goes first (an agent's
    // hello is its first frame).
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let (header, body) = tokio::select! {
            biased;
            next = outgoing.next() => match next {
                Some(message) => message,
                None => return,
            },
            _ = heartbeat.tick() => (ping(), Vec::new()),
        };
        if write_frame(&mut link, &header, &body).await.is_err() {
            return; // the reader sees the link fail too
        }
    }
}

/// Length-prefixed messages over a stream, for the authentication.
pub(crate) struct RawMessages<'a, S>(pub(crate) &'a mut S);

impl<S: AsyncRead + AsyncWrite + Unpin> HandshakeChannel for RawMessages<'_, S> {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), ConnectionError> {
        let mut frame = (message.len() as u64).to_le_bytes().to_vec();
        frame.extend_from_slice(&message);
        self.0.write_all(&frame).await.map_err(link_error)?;
        self.0.flush().await.map_err(link_error)
    }

    async fn recv(&mut self) -> Result<Vec<u8>, ConnectionError> {
        let len = self.0.read_u64_le().await.map_err(link_error)?;
        if len > MAX_RAW_MESSAGE {
            return Err(ConnectionError::Authentication(format!("bad message length: {len}")));
        }
        let mut message = vec![0; len as usize];
        self.0.read_exact(&mut message).await.map_err(link_error)?;
        Ok(message)
    }
}

fn link_error(err: io::Error) -> ConnectionError {
    ConnectionError::Authentication(format!("the link failed during authentication: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_comes_back_as_it_went_and_a_bad_one_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &ToAgent::Signal { id: 7, signal: Signal::Kill }, b"body").await.unwrap();
        let (header, body): (ToAgent, Vec<u8>) = read_frame(&mut b, 1 << 10).await.unwrap();
        assert!(matches!(header, ToAgent::Signal { id: 7, signal: Signal::Kill }));
        assert_eq!(body, b"body");
        // Longer than the reader takes: refused before anything is allocated.
        a.write_all(&(u64::MAX).to_le_bytes()).await.unwrap();
        let err = read_frame::<_, ToAgent>(&mut b, 1 << 10).await.err().unwrap();
        assert!(err.to_string().contains("at most 1024"), "{err}");
    }

    #[tokio::test]
    async fn a_header_longer_than_its_frame_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let mut frame = 8u64.to_le_bytes().to_vec();
        frame.extend_from_slice(&100u32.to_le_bytes());
        frame.extend_from_slice(b"{}{}");
        a.write_all(&frame).await.unwrap();
        let err = read_frame::<_, ToAgent>(&mut b, 1 << 10).await.err().unwrap();
        assert!(err.to_string().contains("longer than its frame"), "{err}");
    }
}
