//! Connections across an OS process boundary: a connection end whose peer
//! lives in another OS process (a native child), carried over a Unix
//! socket. Each message is framed as its length (u64, little-endian), then
//! its bytes; a length of `u64::MAX` says the sender will send no more.
//! One task pumps each direction. The socket's end (the other process
//! closed it or died) is EOF for this side's reader and a broken pipe for
//! its writers, as a closed end is.
//!
//! Messages sent here are on their way once `send` returns, so a native
//! process flushes its bridges before it exits ([`Bridges::flush`]).
//!
//! What a bridge reads from a native child is charged to that child
//! ([`Payer`]) before it is read, so a forged length cannot make the host
//! allocate past the child's host-memory budget; the bytes that cross are
//! counted in the child's metrics.

use std::io;
use std::sync::{Arc, Mutex, Weak};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::ipc::connection::Connection;
use crate::base::ledger::{Charge, Charged, Held, Ledger, MESSAGE_COST, OverBudget};
use crate::base::metrics::Meter;

/// Who pays for what a bridge reads from the other OS process until it is
/// delivered: nobody when that is this process's parent (trusted, as the
/// embedding host is), the native child otherwise; and whose metrics count
/// the bytes that cross.
#[derive(Clone)]
pub(crate) enum Payer {
    Parent,
    /// A native child's ledger and metrics, and what ends the child when a
    /// message passes its budget.
    Child { ledger: Arc<Ledger>, meter: Arc<Meter>, over_budget: Arc<dyn Fn(&OverBudget) + Send + Sync> },
}

impl Payer {
    /// Charges one `what` of `bytes`.
    pub(crate) fn charge(&self, what: Held, bytes: usize) -> Result<Charge, OverBudget> {
        match self {
            Payer::Parent => Ok(Charge::none()),
            Payer::Child { ledger, over_budget, .. } => ledger.charge(what, bytes).inspect_err(|over| over_budget(over)),
        }
    }

    /// Counts `bytes` the other process sent (it is the child).
    pub(crate) fn sent(&self, bytes: usize) {
        if let Payer::Child { meter, .. } = self {
            meter.sent(bytes);
        }
    }

    /// Counts `bytes` the other process was given (it is the child).
    pub(crate) fn received(&self, bytes: usize) {
        if let Payer::Child { meter, .. } = self {
            meter.received(bytes);
        }
    }
}

/// Most bytes taken from the connection per socket write.
const CHUNK: usize = 1 << 20;

/// The frame length that means "no more messages from this side".
const WRITER_CLOSED: u64 = u64::MAX;

/// The bridges of a runtime, so that they can be flushed at exit.
#[derive(Default)]
pub(crate) struct Bridges(Mutex<Vec<Outgoing>>);

/// One bridge's outgoing pump: its connection, and whether the pump has
/// sent its last frame (or can send no more).
struct Outgoing {
    connection: Weak<Connection>,
    done: watch::Receiver<bool>,
}

impl Bridges {
    /// Pumps messages between `connection` and `socket` until the socket
    /// ends; then the connection is closed. What comes in is charged to
    /// `payer` until it is received.
    pub(crate) fn bridge(
        &self,
        handle: &tokio::runtime::Handle,
        connection: Connection,
        socket: std::os::unix::net::UnixStream,
        payer: Payer,
    ) -> io::Result<()> {
        let (from_socket, to_socket) = tokio_socket(handle, socket)?.into_split();
        let connection = Arc::new(connection);
        let (done_tx, done) = watch::channel(false);
        let mut list = self.0.lock().unwrap();
        list.retain(|o| o.connection.strong_count() > 0);
        list.push(Outgoing { connection: Arc::downgrade(&connection), done });
        drop(list);
        let outgoing = handle.spawn(outgoing(connection.clone(), to_socket, done_tx, payer.clone()));
        handle.spawn(async move {
            incoming(&connection, from_socket, &payer).await;
            // The other side is gone: nothing more comes, nothing more
            // can be delivered.
            connection.close();
            outgoing.abort();
        });
        Ok(())
    }

    /// Sends everything written so far and then "no more", on every
    /// bridge: what a process does with its connections when it exits.
    pub(crate) async fn flush(&self) {
        let pumps: Vec<Outgoing> = std::mem::take(&mut *self.0.lock().unwrap());
        for pump in &pumps {
            if let Some(connection) = pump.connection.upgrade() {
                connection.end_input();
            }
        }
        for mut pump in pumps {
            // An error means the pump was stopped: nothing left to wait for.
            let _ = pump.done.wait_for(|done| *done).await;
        }
    }
}

/// Connection → socket, until the connection's EOF (then "no more"), or
/// until the socket takes no more (then the connection's writers see a
/// broken pipe). What it writes is counted as received by `payer` (the
/// other side).
async fn outgoing(connection: Arc<Connection>, mut socket: OwnedWriteHalf, done: watch::Sender<bool>, payer: Payer) {
    let mut frames = Vec::new();
    loop {
        frames.clear();
        let mut bytes = 0;
        match connection.recv_many_async(CHUNK).await {
            Ok(messages) => messages.iter().for_each(|message| {
                bytes += message.len();
                put_frame(&mut frames, message);
            }),
            // EOF, or a write-only end: nothing (more) to send.
            Err(_) => frames.extend_from_slice(&WRITER_CLOSED.to_le_bytes()),
        }
        let last = frames.len() == 8 && frames[..] == WRITER_CLOSED.to_le_bytes();
        payer.received(bytes);
        if socket.write_all(&frames).await.is_err() {
            connection.close();
            done.send_replace(true);
            return;
        }
        if last {
            done.send_replace(true);
            // Keep the socket open: the other side may still be sending.
            std::future::pending::<()>().await;
        }
    }
}

/// Socket → connection, until the socket ends or a message does not fit
/// the payer's budget. Messages for a reader that is gone are dropped.
async fn incoming(connection: &Connection, mut socket: OwnedReadHalf, payer: &Payer) {
    loop {
        match read_frame(&mut socket, payer, Held::PipeMessages).await {
            Ok(Some(message)) => {
                payer.sent(message.value.len());
                let _ = connection.send_charged_async(vec![message]).await;
            }
            Ok(None) => connection.stop_writing(),
            Err(_) => return,
        }
    }
}

/// `socket`, made non-blocking and registered with `handle`'s runtime.
pub(crate) fn tokio_socket(handle: &tokio::runtime::Handle, socket: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
    socket.set_nonblocking(true)?;
    let _runtime = handle.enter();
    UnixStream::from_std(socket)
}

/// Appends `message` to `frames` as one frame.
pub(crate) fn put_frame(frames: &mut Vec<u8>, message: &[u8]) {
    frames.extend_from_slice(&(message.len() as u64).to_le_bytes());
    frames.extend_from_slice(message);
}

/// Reads one frame: its message, charged to `payer` as one `what` before
/// any of it is read, or None for the "no more" marker; an error once the
/// socket has ended, or if the message does not fit the payer's budget.
pub(crate) async fn read_frame(
    socket: &mut OwnedReadHalf,
    payer: &Payer,
    what: Held,
) -> io::Result<Option<Charged<Vec<u8>>>> {
    let mut len = [0u8; 8];
    socket.read_exact(&mut len).await?;
    let len = u64::from_le_bytes(len);
    if len == WRITER_CLOSED {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(io::Error::other)?;
    let charge = payer.charge(what, len.saturating_add(MESSAGE_COST)).map_err(io::Error::other)?;
    let mut message = vec![0u8; len];
    socket.read_exact(&mut message).await?;
    Ok(Some(Charged::new(message, charge)))
}
