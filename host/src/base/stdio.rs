//! Where a process's standard streams go: its output inherited from the
//! host, thrown away, captured into a buffer the host can read, or sent
//! down a pipe the host reads as the process writes; its input empty,
//! inherited from the host, or a pipe the host writes as the process reads.
//! Both pipes are the same bounded channel of chunks, so a writer on
//! either side waits while it is full.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use wasmtime_wasi::cli::{AsyncStdinStream, IsTerminal, StdinStream, StdoutStream};


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

/// The most bytes one chunk of a pipe holds: a longer write is split.
const PIPE_CHUNK_BYTES: usize = 8 << 10;

/// The bytes a stdio pipe ([`Stdio::pipe`], [`Stdin::pipe`]) holds before
/// its writer waits for the reader (512 KiB).
pub const STDIO_PIPE_CAPACITY: usize = PIPE_CHUNKS * PIPE_CHUNK_BYTES;

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

/// One writer's view of a pipe: an `AsyncWrite` that waits for room, and
/// writes at most a chunk at a time.
struct PipeStream {
    sender: mpsc::Sender<Vec<u8>>,
    reserving: Option<Reserving>,
}

impl tokio::io::AsyncWrite for PipeStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let sender = self.sender.clone();
        let reserving = self.reserving.get_or_insert_with(|| Box::pin(sender.reserve_owned()));
        let permit = std::task::ready!(reserving.as_mut().poll(cx));
        self.reserving = None;
        match permit {
            Ok(permit) => {
                let chunk = &buf[..buf.len().min(PIPE_CHUNK_BYTES)];
                permit.send(chunk.to_vec());
                Poll::Ready(Ok(chunk.len()))
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

/// The source of a process's stdin.
#[derive(Clone, Debug, Default)]
pub enum Stdin {
    /// Empty: the process reads the end of the stream at once (the
    /// default, as CPython's children read `/dev/null`).
    #[default]
    Null,
    /// The host's own stdin (`wmp run` gives it to its main process).
    Inherit,
    /// What the host writes to the [`StdinWriter`] of [`Stdin::pipe`], in
    /// order, then the end of the stream once the writer is closed. Only
    /// one process can be given a pipe: starting a second one with it is
    /// refused.
    Pipe(StdinReader),
}

impl Stdin {
    /// A pipe to the process's stdin (`std::process::Stdio::piped()`):
    /// give the `Stdin` to the process and write to the [`StdinWriter`].
    pub fn pipe() -> (Stdin, StdinWriter) {
        let (sender, receiver) = mpsc::channel(PIPE_CHUNKS);
        let reader = StdinReader(Arc::new(Mutex::new(Some(receiver))));
        (Stdin::Pipe(reader), StdinWriter(PipeStream { sender, reserving: None }))
    }

    /// Gives a wasm process this stdin. wasmtime-wasi reads a pipe on a
    /// task of `runtime`; the pipe closes when the process's WASI context
    /// is dropped with its store, before its end is published.
    pub(crate) fn attach(
        &self,
        builder: &mut wasmtime_wasi::WasiCtxBuilder,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), String> {
        match self {
            Stdin::Null => {} // WasiCtxBuilder's default stdin is empty
            Stdin::Inherit => {
                builder.inherit_stdin();
            }
            Stdin::Pipe(reader) => {
                let pipe = reader.take()?;
                let closes = pipe.closer();
                let _runtime = runtime.enter();
                builder.stdin(WasiStdin { stream: AsyncStdinStream::new(pipe), _closes: closes });
            }
        }
        Ok(())
    }
}

/// The process's end of a [`Stdin::pipe`], until the process it is given
/// to starts and takes it. Copies of a `Capabilities` share it.
#[derive(Clone, Debug)]
pub struct StdinReader(Arc<Mutex<Option<mpsc::Receiver<Vec<u8>>>>>);

impl StdinReader {
    /// The pipe, for the process that starts with it; refused if another
    /// process took it already.
    pub(crate) fn take(&self) -> Result<StdinPipe, String> {
        let receiver = self.0.lock().unwrap().take().ok_or("its stdin pipe was given to another process")?;
        Ok(StdinPipe { receiver: StdinCloser(Arc::new(Mutex::new(receiver))), chunk: Vec::new(), read: 0 })
    }
}

/// The host's end of a process's stdin pipe (tokio's `ChildStdin`). A
/// write waits while the pipe is full (it holds [`STDIO_PIPE_CAPACITY`]
/// bytes; those are the host's, so they are not charged to the process),
/// and fails with [`StdinClosed`] once the process has ended, never
/// waiting for a reader that is gone. Closing it (or dropping it) gives
/// the process the end of its stdin once it has read what was written.
/// It is also a tokio `AsyncWrite`.
pub struct StdinWriter(PipeStream);

/// The process whose stdin it was has ended (a native child also once it
/// closed its stdin), or was dropped without being started: a broken pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("broken pipe: the process's stdin is closed")]
pub struct StdinClosed;

impl From<StdinClosed> for std::io::Error {
    fn from(_: StdinClosed) -> Self {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdinClosed)
    }
}

impl StdinWriter {
    /// Writes all of `bytes`, waiting while the pipe is full.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StdinClosed> {
        tokio::io::AsyncWriteExt::write_all(&mut self.0, bytes).await.map_err(|_| StdinClosed)
    }

    /// [`write`](Self::write) for blocking code (not inside an async
    /// runtime, where it panics).
    pub fn write_blocking(&mut self, bytes: &[u8]) -> Result<(), StdinClosed> {
        for chunk in bytes.chunks(PIPE_CHUNK_BYTES) {
            self.0.sender.blocking_send(chunk.to_vec()).map_err(|_| StdinClosed)?;
        }
        Ok(())
    }

    /// Closes the pipe, as dropping the writer does: the process reads the
    /// end of its stdin after the bytes already written.
    pub fn close(self) {}
}

impl std::fmt::Debug for StdinWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinWriter").field("closed", &self.0.sender.is_closed()).finish()
    }
}

impl tokio::io::AsyncWrite for StdinWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A started process's end of its stdin pipe, read as an `AsyncRead`.
/// Dropping it closes the pipe, so its writer fails instead of waiting.
pub(crate) struct StdinPipe {
    receiver: StdinCloser,
    /// The chunk being read, and how much of it has been.
    chunk: Vec<u8>,
    read: usize,
}

impl StdinPipe {
    /// What closes the pipe when the process ends, even if this end is
    /// still held (by a task that has yet to drop it).
    pub(crate) fn closer(&self) -> StdinCloser {
        StdinCloser(self.receiver.0.clone())
    }

    /// Copies the pipe, on the current tokio runtime, into `pipe`, the
    /// writing end of the OS pipe a native child reads as its stdin, and
    /// closes that at the end of the stream (or once the child stops
    /// reading).
    pub(crate) fn feed(mut self, pipe: std::os::fd::OwnedFd) -> std::io::Result<()> {
        let mut sink = tokio::net::unix::pipe::Sender::from_owned_fd(pipe)?;
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut self, &mut sink).await;
        });
        Ok(())
    }
}

impl tokio::io::AsyncRead for StdinPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let pipe = &mut *self;
        while pipe.read == pipe.chunk.len() {
            match std::task::ready!(pipe.receiver.0.lock().unwrap().poll_recv(cx)) {
                Some(chunk) => (pipe.chunk, pipe.read) = (chunk, 0),
                None => return Poll::Ready(Ok(())), // the end of the stream
            }
        }
        let unread = &pipe.chunk[pipe.read..];
        let len = unread.len().min(buf.remaining());
        buf.put_slice(&unread[..len]);
        pipe.read += len;
        Poll::Ready(Ok(()))
    }
}

/// Closes a stdin pipe when dropped: what is in it can still be read, but
/// its writer fails from then on instead of waiting.
pub(crate) struct StdinCloser(Arc<Mutex<mpsc::Receiver<Vec<u8>>>>);

impl Drop for StdinCloser {
    fn drop(&mut self) {
        self.0.lock().unwrap().close();
    }
}

/// A wasm process's stdin pipe as WASI sees it (for preview 1 and 2 alike);
/// it closes the pipe when the process's WASI context is dropped.
struct WasiStdin {
    stream: AsyncStdinStream,
    _closes: StdinCloser,
}

impl IsTerminal for WasiStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for WasiStdin {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        self.stream.async_stream()
    }

    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::InputStream> {
        self.stream.p2_stream()
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
