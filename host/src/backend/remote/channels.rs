//! The connections and queues passed to a process on another machine,
//! carried on the link as numbered channels.
//!
//! Each side of a channel is one end of a Unix socket pair whose other end
//! is where a native child's connection or queue already is spoken: on the
//! runtime's side the bridge or queue server of `ipc/remote_connection.rs`
//! and `ipc/remote_queue.rs`, on the agent's side `Runtime::connection_over`
//! and `Runtime::queue_over`. The bytes between are opaque here. A channel
//! sends at most [`WINDOW`] bytes the other side has not written into its
//! socket yet (it acknowledges what it wrote), so neither side holds more
//! than that per channel however slowly the other reads; and the end of a
//! socket is sent on as the end of the channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};

use super::protocol::{ChannelFrame, FromAgent, ToAgent};

/// Most bytes in flight on one channel, one way.
pub(crate) const WINDOW: usize = 1 << 20;
/// Most bytes in one frame of a channel.
const CHUNK: usize = 64 << 10;

/// Where a side's channel frames go: its queue of frames for the link.
pub(crate) trait ChannelSink: Clone + Send + Sync + 'static {
    fn send(&self, frame: ChannelFrame, body: Vec<u8>) -> impl Future<Output = bool> + Send;
}

impl ChannelSink for mpsc::UnboundedSender<(ToAgent, Vec<u8>)> {
    async fn send(&self, frame: ChannelFrame, body: Vec<u8>) -> bool {
        mpsc::UnboundedSender::send(self, (ToAgent::Channel(frame), body)).is_ok()
    }
}

impl ChannelSink for mpsc::Sender<(FromAgent, Vec<u8>)> {
    async fn send(&self, frame: ChannelFrame, body: Vec<u8>) -> bool {
        mpsc::Sender::send(self, (FromAgent::Channel(frame), body)).await.is_ok()
    }
}

/// The channels of one link, as one side carries them.
#[derive(Default)]
pub(crate) struct Channels(Mutex<HashMap<u64, Carried>>);

/// One channel: what waits to be written into its socket, and how many
/// more bytes it may send.
struct Carried {
    /// None once the other side ended it.
    to_socket: Option<mpsc::UnboundedSender<Vec<u8>>>,
    credit: Arc<Semaphore>,
}

impl Channels {
    /// Carries `socket` as channel `id`: what is read from it goes to
    /// `sink`, what comes for `id` ([`take`](Self::take)) is written into
    /// it; the end of either is the end of the other.
    pub(crate) fn carry(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        id: u64,
        socket: std::os::unix::net::UnixStream,
        sink: impl ChannelSink,
    ) -> std::io::Result<()> {
        let (from_socket, into_socket) = crate::ipc::remote_connection::tokio_socket(handle, socket)?.into_split();
        let (to_socket, queued) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(WINDOW));
        self.0.lock().unwrap().insert(id, Carried { to_socket: Some(to_socket), credit: credit.clone() });
        handle.spawn(read_socket(id, from_socket, credit, sink.clone()));
        handle.spawn(write_socket(id, into_socket, queued, sink));
        Ok(())
    }

    /// A frame of a channel, from the other side.
    pub(crate) fn take(&self, frame: ChannelFrame, body: Vec<u8>) {
        let mut channels = self.0.lock().unwrap();
        match frame {
            ChannelFrame::Data { channel } => {
                // For a channel that is not (or no longer) carried: dropped.
                if let Some(to_socket) = channels.get(&channel).and_then(|c| c.to_socket.as_ref()) {
                    let _ = to_socket.send(body);
                }
            }
            ChannelFrame::Written { channel, bytes } => {
                if let Some(carried) = channels.get(&channel) {
                    carried.credit.add_permits(bytes.min(WINDOW as u64) as usize);
                }
            }
            ChannelFrame::End { channel } => {
                if let Some(carried) = channels.get_mut(&channel) {
                    carried.to_socket = None; // the writer shuts the socket's writing side
                }
            }
        }
        channels.retain(|_, carried| carried.to_socket.is_some() || !carried.credit.is_closed());
    }

    /// The link is gone: every channel ends, on this side.
    pub(crate) fn end_all(&self) {
        for (_, carried) in self.0.lock().unwrap().drain() {
            carried.credit.close();
        }
    }
}

/// Socket → link, within the window; then the channel's end.
async fn read_socket(id: u64, mut socket: OwnedReadHalf, credit: Arc<Semaphore>, sink: impl ChannelSink) {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match credit.acquire_many(n as u32).await {
            Ok(permits) => permits.forget(),
            Err(_) => return, // the link is gone
        }
        if !sink.send(ChannelFrame::Data { channel: id }, chunk[..n].to_vec()).await {
            return;
        }
    }
    credit.close();
    sink.send(ChannelFrame::End { channel: id }, Vec::new()).await;
}

/// Link → socket, saying how much was written; shuts the socket's writing
/// side when the other side ended the channel.
async fn write_socket(
    id: u64,
    mut socket: OwnedWriteHalf,
    mut queued: mpsc::UnboundedReceiver<Vec<u8>>,
    sink: impl ChannelSink,
) {
    while let Some(bytes) = queued.recv().await {
        if socket.write_all(&bytes).await.is_err() {
            return;
        }
        let written = ChannelFrame::Written { channel: id, bytes: bytes.len() as u64 };
        if !sink.send(written, Vec::new()).await {
            return;
        }
    }
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Two sides of one channel, joined by in-memory links; counts the
    /// data bytes that crossed from the first to the second.
    fn joined(runtime: &tokio::runtime::Runtime) -> (std::os::unix::net::UnixStream, std::os::unix::net::UnixStream, Arc<AtomicUsize>) {
        let (a, b) = (Arc::new(Channels::default()), Arc::new(Channels::default()));
        let (a_out, mut to_b) = mpsc::unbounded_channel::<(ToAgent, Vec<u8>)>();
        let (b_out, mut to_a) = mpsc::unbounded_channel::<(ToAgent, Vec<u8>)>();
        let (a_socket, a_user) = std::os::unix::net::UnixStream::pair().unwrap();
        let (b_socket, b_user) = std::os::unix::net::UnixStream::pair().unwrap();
        a.carry(runtime.handle(), 1, a_socket, a_out).unwrap();
        b.carry(runtime.handle(), 1, b_socket, b_out).unwrap();
        let crossed = Arc::new(AtomicUsize::new(0));
        let counted = crossed.clone();
        runtime.spawn(async move {
            while let Some((ToAgent::Channel(frame), body)) = to_b.recv().await {
                counted.fetch_add(body.len(), Ordering::SeqCst);
                b.take(frame, body);
            }
        });
        runtime.spawn(async move {
            while let Some((ToAgent::Channel(frame), body)) = to_a.recv().await {
                a.take(frame, body);
            }
        });
        (a_user, b_user, crossed)
    }

    #[test]
    fn a_slow_reader_holds_the_sender_to_the_window_and_then_gets_every_byte() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (mut sender, mut reader, crossed) = joined(&runtime);
        let sent: Vec<u8> = (0..10 << 20).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                sender.write_all(&sent).unwrap(); // blocks once the window is full
                drop(sender); // the end of the channel
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        // What the reader's socket buffers took, plus one window.
        let in_flight = crossed.load(Ordering::SeqCst);
        assert!(in_flight <= WINDOW + (2 << 20), "{in_flight} bytes crossed for a reader that reads nothing");
        let mut received = Vec::new();
        reader.read_to_end(&mut received).unwrap(); // until the end the sender's close brings
        writer.join().unwrap();
        assert!(received == sent, "every byte, in order ({} of {})", received.len(), sent.len());
    }
}
