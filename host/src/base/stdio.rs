//! Where a process's standard streams go: inherited from the host, thrown
//! away, captured into a buffer the host can read, or sent down a pipe the
//! host reads as the process writes.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};


/// The destination of a process's stdout or stderr.
#[derive(Clone, Debug, Default)]
pub enum Stdio {
    /// The host's own stream (the default).
    #[default]
    Inherit,
    /// Discarded.
    Null,
    /// Appended to a buffer the host reads with [`CaptureBuffer::contents`].
    /// Children that inherit it write into the same buffer.
    Capture(CaptureBuffer),
    /// Sent to a [`PipeReader`] as it is written, with backpressure: a
    /// writer waits while the pipe is full. Children that inherit it write
    /// into the same pipe.
    Pipe(PipeWriter),
}

/// Chunks a pipe holds before its writers wait for the reader.
const PIPE_CHUNKS: usize = 64;

/// The writing end of a [`Stdio::pipe`].
#[derive(Clone, Debug)]
pub struct PipeWriter(mpsc::Sender<Vec<u8>>);

/// The reading end of a [`Stdio::pipe`]: chunks in the order written, and
/// the end of the stream once every writer is gone (the processes that
/// write to it have ended and the `Stdio` given to them is dropped).
#[derive(Debug)]
pub struct PipeReader(mpsc::Receiver<Vec<u8>>);

impl PipeReader {
    /// The next chunk, waiting for it; None at the end of the stream.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.0.recv().await
    }

    /// [`read`](Self::read) for blocking code (not inside an async runtime).
    pub fn read_blocking(&mut self) -> Option<Vec<u8>> {
        self.0.blocking_recv()
    }
}

/// Waiting for room in a pipe.
type Reserving =
    Pin<Box<dyn Future<Output = Result<mpsc::OwnedPermit<Vec<u8>>, mpsc::error::SendError<()>>> + Send + Sync>>;

/// One stream's view of a pipe: an `AsyncWrite` that waits for room.
struct PipeStream {
    sender: mpsc::Sender<Vec<u8>>,
    reserving: Option<Reserving>,
}

impl tokio::io::AsyncWrite for PipeStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let sender = self.sender.clone();
        let reserving = self.reserving.get_or_insert_with(|| Box::pin(sender.reserve_owned()));
        let permit = std::task::ready!(reserving.as_mut().poll(cx));
        self.reserving = None;
        match permit {
            Ok(permit) => {
                permit.send(buf.to_vec());
                Poll::Ready(Ok(buf.len()))
            }
            Err(_) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for PipeWriter {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PipeWriter {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(PipeStream { sender: self.0.clone(), reserving: None })
    }
}

/// How much a capture buffer keeps unless told otherwise.
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 << 20;

impl Stdio {
    /// A fresh capture buffer keeping up to [`DEFAULT_CAPTURE_LIMIT`] bytes,
    /// returned with the `Stdio` that fills it.
    pub fn capture() -> (Stdio, CaptureBuffer) {
        Stdio::capture_up_to(DEFAULT_CAPTURE_LIMIT)
    }

    /// A pipe: the process's output goes to the returned reader as it is
    /// written.
    pub fn pipe() -> (Stdio, PipeReader) {
        let (sender, receiver) = mpsc::channel(PIPE_CHUNKS);
        (Stdio::Pipe(PipeWriter(sender)), PipeReader(receiver))
    }

    /// A capture buffer that keeps the first `limit` bytes and drops the
    /// rest, so a guest flooding its output cannot exhaust the host.
    pub fn capture_up_to(limit: usize) -> (Stdio, CaptureBuffer) {
        let buffer = CaptureBuffer(Arc::new(Mutex::new(Captured { bytes: Vec::new(), limit, dropped: 0 })));
        (Stdio::Capture(buffer.clone()), buffer)
    }
}

#[derive(Debug)]
struct Captured {
    bytes: Vec<u8>,
    limit: usize,
    dropped: u64,
}

/// Output captured from processes; cheap to clone, all clones share it.
#[derive(Clone, Debug)]
pub struct CaptureBuffer(Arc<Mutex<Captured>>);

impl CaptureBuffer {
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().bytes.clone()
    }

    /// The contents as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap().bytes).into_owned()
    }

    /// How many bytes were dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.0.lock().unwrap().dropped
    }

    fn append(&self, bytes: &[u8]) {
        let mut captured = self.0.lock().unwrap();
        let room = captured.limit.saturating_sub(captured.bytes.len());
        let kept = bytes.len().min(room);
        captured.bytes.extend_from_slice(&bytes[..kept]);
        captured.dropped += (bytes.len() - kept) as u64;
    }
}

impl IsTerminal for CaptureBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureBuffer {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CaptureBuffer {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Copies a native child's output pipe into a capture buffer or a pipe.
pub(crate) struct Forwarder {
    sink: Box<dyn tokio::io::AsyncWrite + Send + Sync>,
}

impl Forwarder {
    /// Starts copying from `pipe` (on the current tokio runtime) until
    /// every writer has closed it.
    pub(crate) fn start(self, pipe: std::os::fd::OwnedFd) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let mut source = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe)?;
        let mut sink = Box::into_pin(self.sink);
        Ok(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut source, &mut sink).await;
        }))
    }
}

/// Writes `bytes` to the host's own `stream`.
fn write_inherited(stream: Stream, bytes: &[u8]) {
    let _ = match stream {
        Stream::Stdout => std::io::stdout().lock().write_all(bytes),
        Stream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
}

/// Which of the two output streams.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stdio {
    /// Writes a message from the host (such as `Process <name>:` after a
    /// trap) into the stream, as if the process had written it.
    pub(crate) fn write_host_message(&self, stream: Stream, text: &str) {
        match self {
            Stdio::Inherit => write_inherited(stream, text.as_bytes()),
            Stdio::Null => {}
            Stdio::Capture(buffer) => buffer.append(text.as_bytes()),
            // Best effort: a full pipe drops the message rather than block.
            Stdio::Pipe(PipeWriter(sender)) => {
                let _ = sender.try_send(text.as_bytes().to_vec());
            }
        }
    }

    /// Writes `bytes` into the stream as the process would, waiting for
    /// room in a pipe (the output of a process on another machine).
    #[cfg(feature = "cluster")]
    pub(crate) async fn write(&self, stream: Stream, bytes: &[u8]) {
        match self {
            Stdio::Pipe(PipeWriter(sender)) => {
                let _ = sender.send(bytes.to_vec()).await;
            }
            Stdio::Capture(buffer) => buffer.append(bytes),
            Stdio::Inherit => write_inherited(stream, bytes),
            Stdio::Null => {}
        }
    }

    /// What copies a native child's output pipe to where this `Stdio`
    /// says; None for `Inherit` and `Null`, which the child gets directly.
    pub(crate) fn forwarder(&self) -> Option<Forwarder> {
        let sink = match self {
            Stdio::Inherit | Stdio::Null => return None,
            Stdio::Capture(buffer) => buffer.async_stream(),
            Stdio::Pipe(pipe) => pipe.async_stream(),
        };
        Some(Forwarder { sink })
    }

    pub(crate) fn attach(&self, builder: &mut wasmtime_wasi::WasiCtxBuilder, stream: Stream) {
        match (self, stream) {
            (Stdio::Inherit, Stream::Stdout) => builder.inherit_stdout(),
            (Stdio::Inherit, Stream::Stderr) => builder.inherit_stderr(),
            (Stdio::Null, _) => builder, // WasiCtxBuilder's default sink discards
            (Stdio::Capture(buffer), Stream::Stdout) => builder.stdout(buffer.clone()),
            (Stdio::Capture(buffer), Stream::Stderr) => builder.stderr(buffer.clone()),
            (Stdio::Pipe(pipe), Stream::Stdout) => builder.stdout(pipe.clone()),
            (Stdio::Pipe(pipe), Stream::Stderr) => builder.stderr(pipe.clone()),
        };
    }
}
