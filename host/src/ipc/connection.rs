//! Connections: the ends of a pipe (`multiprocessing.Pipe`). Each direction
//! is a [`Channel`] of whole byte messages with a byte budget, so a fast
//! writer waits for a slow reader instead of growing memory. An end that is
//! closed or dropped (also when the process holding it ends, since its
//! resources are freed then) makes the other end see EOF once it has read
//! everything sent before, or a broken pipe when it writes.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use wmp_core::ConnectionError;

use crate::base::ledger::{Charged, MESSAGE_COST};
use crate::ipc::wait::within;

/// Bytes one direction of a pipe holds before a writer waits (a message
/// larger than that still goes through, alone).
pub const PIPE_CAPACITY: usize = 4 << 20;

/// One direction of a pipe.
///
/// A message in flight costs the writer and the reader one lock of the
/// state each: a side that waits says so in the state (`read_wanted`,
/// `write_wanted`) after it registers with the `Notify`, and the other side
/// signals only then, so streaming between two busy ends touches no
/// `Notify` at all. A guest's send wakes a waiting reader when the guest's
/// poll returns (`run_slot::wake_after_poll`), so a stream of messages
/// wakes it once per poll (measured with `cargo bench --bench
/// connections`).
struct Channel {
    state: Mutex<ChannelState>,
    /// Signalled when a message arrives or the writer goes away, if a
    /// reader asked for it.
    readable: Notify,
    /// Signalled when room is made or the reader goes away, if a writer
    /// asked for it.
    writable: Notify,
    capacity: usize,
}

/// A message in a pipe, charged to the process that sent it.
type Message = Charged<Vec<u8>>;

#[derive(Default)]
struct ChannelState {
    messages: VecDeque<Message>,
    /// Budget used by `messages`.
    used: usize,
    writer_gone: bool,
    reader_gone: bool,
    /// A reader (a receive, or a wait for readiness) is registered with
    /// `readable` and waits for a message or the writer's end.
    read_wanted: bool,
    /// A writer is registered with `writable` and waits for room.
    write_wanted: bool,
}

impl Channel {
    fn new(capacity: usize) -> Arc<Channel> {
        Arc::new(Channel {
            state: Mutex::new(ChannelState::default()),
            readable: Notify::new(),
            writable: Notify::new(),
            capacity,
        })
    }

    /// Queues the messages in order, waiting for room whenever the budget
    /// is spent.
    async fn send(self: &Arc<Self>, messages: impl IntoIterator<Item = Message>) -> Result<(), ConnectionError> {
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() {
            if self.push_while_room(&mut messages, false)? {
                continue;
            }
            let mut room = pin!(self.writable.notified());
            room.as_mut().enable();
            if !self.push_while_room(&mut messages, true)? {
                room.await;
            }
        }
        Ok(())
    }

    /// Queues messages while the budget lasts, waking a waiting reader;
    /// true if it queued any. If it queued none and `wait` is set, the
    /// caller is registered with `writable` and is to be woken by room.
    fn push_while_room(self: &Arc<Self>, messages: &mut impl Iterator<Item = Message>, wait: bool) -> Result<bool, ConnectionError> {
        let mut state = self.state.lock().unwrap();
        if state.reader_gone {
            return Err(ConnectionError::BrokenPipe);
        }
        let mut pushed = false;
        while state.used < self.capacity
            && let Some(message) = messages.next()
        {
            state.used += message.value.len() + MESSAGE_COST;
            state.messages.push_back(message);
            pushed = true;
        }
        state.write_wanted |= wait && !pushed;
        let wake_reader = pushed && std::mem::take(&mut state.read_wanted);
        drop(state);
        if wake_reader {
            let channel = self.clone();
            crate::base::run_slot::wake_after_poll(Box::new(move || channel.readable.notify_waiters()));
        }
        Ok(pushed)
    }

    /// Waits for at least one message and takes what `take` pops; EOF once
    /// the queue is empty and the writer is gone.
    async fn recv<T>(&self, mut take: impl FnMut(&mut ChannelState) -> T) -> Result<T, ConnectionError> {
        self.when_readable(|wait| self.try_take(&mut take, wait)).await
    }

    /// What `attempt` gives: tried at once (`attempt(false)`), then, until
    /// it gives something, registered with `readable` first and told that
    /// the caller waits (`attempt(true)`, which says so in the state), then
    /// woken by the next message or the writer's end.
    async fn when_readable<T>(&self, mut attempt: impl FnMut(bool) -> Option<T>) -> T {
        if let Some(done) = attempt(false) {
            return done;
        }
        loop {
            let mut arrived = pin!(self.readable.notified());
            arrived.as_mut().enable();
            if let Some(done) = attempt(true) {
                return done;
            }
            arrived.await;
        }
    }

    /// What `take` pops if a message is there (waking a writer that waits
    /// for room), EOF if none can come, None if one may still come; then,
    /// if `wait` is set, the caller is registered with `readable` and is to
    /// be woken by the next message.
    fn try_take<T>(&self, take: &mut impl FnMut(&mut ChannelState) -> T, wait: bool) -> Option<Result<T, ConnectionError>> {
        let mut state = self.state.lock().unwrap();
        if !state.messages.is_empty() {
            let taken = take(&mut state);
            let wake_writer = std::mem::take(&mut state.write_wanted);
            drop(state);
            if wake_writer {
                self.writable.notify_waiters();
            }
            return Some(Ok(taken));
        }
        if state.writer_gone {
            return Some(Err(ConnectionError::Eof));
        }
        state.read_wanted |= wait;
        None
    }

    /// Whether a message or EOF is there; if not and `wait` is set, the
    /// caller is registered with `readable` and is to be woken by one.
    fn is_readable(&self, wait: bool) -> bool {
        let mut state = self.state.lock().unwrap();
        let readable = !state.messages.is_empty() || state.writer_gone;
        state.read_wanted |= wait && !readable;
        readable
    }

    async fn readable(&self) {
        self.when_readable(|wait| self.is_readable(wait).then_some(())).await
    }

    fn writer_leaves(&self) {
        self.state.lock().unwrap().writer_gone = true;
        self.readable.notify_waiters();
    }

    /// What was never read is dropped with the reader.
    fn reader_leaves(&self) {
        let mut state = self.state.lock().unwrap();
        state.reader_gone = true;
        state.messages = VecDeque::new();
        state.used = 0;
        drop(state);
        self.writable.notify_waiters();
    }
}

impl ChannelState {
    fn pop(&mut self) -> Vec<u8> {
        let message = self.messages.pop_front().expect("recv only takes from a non-empty channel");
        self.used -= message.value.len() + MESSAGE_COST;
        message.into_value()
    }
}

/// One end of a pipe (`multiprocessing.connection.Connection`).
///
/// Messages are byte strings delivered whole and in order; [`send`] and
/// [`recv`](Connection::recv) carry serde values as JSON. Sending waits
/// while the other end has [`PIPE_CAPACITY`] bytes unread. Once the other
/// end is closed, dropped, or its process has ended, `recv` returns what
/// was sent before and then [`ConnectionError::Eof`].
///
/// The blocking methods must not be called from inside an async runtime;
/// the `_async` forms can be awaited anywhere.
///
/// [`send`]: Connection::send
pub struct Connection {
    reader: Option<Arc<Channel>>,
    writer: Option<Arc<Channel>>,
    closed: AtomicBool,
    handle: tokio::runtime::Handle,
}

/// A pair of connected ends: two-way if `duplex`, else the first end only
/// receives and the second only sends (`multiprocessing.Pipe(duplex)`).
pub(crate) fn pipe(handle: &tokio::runtime::Handle, duplex: bool, capacity: usize) -> (Connection, Connection) {
    let forward = Channel::new(capacity);
    let end = |reader, writer| Connection { reader, writer, closed: AtomicBool::new(false), handle: handle.clone() };
    if duplex {
        let backward = Channel::new(capacity);
        (end(Some(forward.clone()), Some(backward.clone())), end(Some(backward), Some(forward)))
    } else {
        (end(Some(forward.clone()), None), end(None, Some(forward)))
    }
}

impl Connection {
    fn reader(&self) -> Result<&Channel, ConnectionError> {
        self.check_open()?;
        self.reader.as_deref().ok_or(ConnectionError::WriteOnly)
    }

    fn writer(&self) -> Result<&Arc<Channel>, ConnectionError> {
        self.check_open()?;
        self.writer.as_ref().ok_or(ConnectionError::ReadOnly)
    }

    fn check_open(&self) -> Result<(), ConnectionError> {
        if self.closed.load(Ordering::Acquire) { Err(ConnectionError::Closed) } else { Ok(()) }
    }

    /// Whether this end can receive / send (false for the wrong end of a
    /// one-way pipe).
    pub fn readable(&self) -> bool {
        self.reader.is_some()
    }

    pub fn writable(&self) -> bool {
        self.writer.is_some()
    }

    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends one message.
    pub fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.send_bytes_async(message.to_vec()))
    }

    pub async fn send_bytes_async(&self, message: Vec<u8>) -> Result<(), ConnectionError> {
        self.send_charged_async(vec![Charged::uncharged(message)]).await
    }

    /// Sends messages, each charged to the process that sends it until it
    /// is received (or dropped with the reading end).
    pub(crate) async fn send_charged_async(&self, messages: Vec<Message>) -> Result<(), ConnectionError> {
        self.writer()?.send(messages).await
    }

    /// Sends many messages at once, in order (one wakeup of the reader
    /// instead of one per message).
    pub fn send_many(&self, messages: Vec<Vec<u8>>) -> Result<(), ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.send_many_async(messages))
    }

    pub async fn send_many_async(&self, messages: Vec<Vec<u8>>) -> Result<(), ConnectionError> {
        self.send_charged_async(messages.into_iter().map(Charged::uncharged).collect()).await
    }

    /// Sends a value as JSON.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), ConnectionError> {
        let message = serde_json::to_vec(value).map_err(|e| ConnectionError::Encode(e.to_string()))?;
        crate::base::run_slot::block_on(&self.handle, self.send_bytes_async(message))
    }

    /// Puts messages back at the front of what this end receives, in
    /// order (a guest SDK that read ahead hands back what it did not use
    /// before it passes the end on); they may take the pipe past its
    /// capacity, and stay charged as given.
    pub(crate) fn unread_charged(&self, messages: Vec<Message>) -> Result<(), ConnectionError> {
        let channel = self.reader()?;
        let mut state = channel.state.lock().unwrap();
        for message in messages.into_iter().rev() {
            state.used += message.value.len() + MESSAGE_COST;
            state.messages.push_front(message);
        }
        state.read_wanted = false;
        drop(state);
        channel.readable.notify_waiters();
        Ok(())
    }

    /// Receives one message, waiting for it; EOF once the other end is
    /// gone and everything it sent has been read.
    pub fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.recv_bytes_async())
    }

    pub async fn recv_bytes_async(&self) -> Result<Vec<u8>, ConnectionError> {
        self.reader()?.recv(ChannelState::pop).await
    }

    /// Receives at least one message, waiting for it, and then whatever
    /// else has arrived, up to about `max_bytes` in all.
    pub fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.recv_many_async(max_bytes))
    }

    pub async fn recv_many_async(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        self.reader()?
            .recv(|state| {
                let mut taken = vec![state.pop()];
                let mut size = taken[0].len();
                while let Some(next) = state.messages.front()
                    && size + next.value.len() <= max_bytes
                {
                    size += next.value.len();
                    taken.push(state.pop());
                }
                taken
            })
            .await
    }

    /// Receives a value sent as JSON.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, ConnectionError> {
        let message = self.recv_bytes()?;
        serde_json::from_slice(&message).map_err(|e| ConnectionError::Decode(e.to_string()))
    }

    /// Whether a message (or EOF) is ready to be received, waiting up to
    /// `timeout` for one (`None`: as long as it takes).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.poll_async(timeout))
    }

    pub async fn poll_async(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        let reader = self.reader()?;
        Ok(within(&self.handle, timeout, reader.readable()).await.is_some())
    }

    /// Ready for [`wait`](crate::Runtime::wait_for): something (or EOF) to
    /// receive, or this end closed (so that a wait never hangs on it).
    pub(crate) fn is_ready(&self) -> bool {
        self.closed() || self.reader.as_ref().is_some_and(|r| r.is_readable(false))
    }

    pub(crate) async fn ready(&self) {
        match (&self.reader, self.closed()) {
            (Some(reader), false) => reader.readable().await,
            (None, false) => std::future::pending().await,
            (_, true) => {}
        }
    }

    /// Half of [`close`](Self::close): the other end sees EOF after what
    /// was sent; this end can still receive.
    pub(crate) fn stop_writing(&self) {
        if let Some(writer) = &self.writer {
            writer.writer_leaves();
        }
    }

    /// As if the other end had closed its sending side: this end reads
    /// what was sent, then EOF.
    pub(crate) fn end_input(&self) {
        if let Some(reader) = &self.reader {
            reader.writer_leaves();
        }
    }

    /// The other half of `close`: the other end's sends fail with a
    /// broken pipe.
    pub(crate) fn stop_reading(&self) {
        if let Some(reader) = &self.reader {
            reader.reader_leaves();
        }
    }

    /// Closes this end: the other end sees EOF after what was sent, and
    /// what was not read here is dropped. Closing twice is fine.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Reading first: once the other end sees EOF, its sends fail too.
        self.stop_reading();
        self.stop_writing();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("readable", &self.readable())
            .field("writable", &self.writable())
            .field("closed", &self.closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! The channel's wake-ups, which only a side that said it waits gets.

    use std::time::Duration;

    use super::*;

    fn message(bytes: &[u8]) -> Message {
        Charged::uncharged(bytes.to_vec())
    }

    const LONG_ENOUGH: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_message_wakes_every_waiter_for_readiness_and_then_a_receiver() {
        let channel = Channel::new(1 << 20);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let channel = channel.clone();
                tokio::spawn(async move { channel.readable().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await; // the waiters are parked by now
        channel.send([message(b"one")]).await.unwrap();
        for waiter in waiters {
            tokio::time::timeout(LONG_ENOUGH, waiter).await.expect("a waiter woke").unwrap();
        }
        let received = tokio::time::timeout(LONG_ENOUGH, channel.recv(ChannelState::pop)).await;
        assert_eq!(received.expect("the message is still there"), Ok(b"one".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_out_of_room_waits_and_resumes_when_the_reader_takes() {
        let channel = Channel::new(8);
        channel.send([message(b"fills it")]).await.unwrap();
        let writer = tokio::spawn({
            let channel = channel.clone();
            async move { channel.send([message(b"next")]).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the writer waits for room");
        assert_eq!(channel.recv(ChannelState::pop).await, Ok(b"fills it".to_vec()));
        tokio::time::timeout(LONG_ENOUGH, writer).await.expect("the writer woke").unwrap().unwrap();
        assert_eq!(channel.recv(ChannelState::pop).await, Ok(b"next".to_vec()));
    }

    /// Two tasks bounce a message back and forth many times, so that a
    /// send often lands while the other side is between its check and its
    /// wait: a lost wake-up would hang a round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_wake_up_is_lost_between_a_check_and_a_wait() {
        let (ping, pong) = (Channel::new(64), Channel::new(64));
        let echo = tokio::spawn({
            let (ping, pong) = (ping.clone(), pong.clone());
            async move {
                for _ in 0..20_000 {
                    let got = ping.recv(ChannelState::pop).await.unwrap();
                    pong.send([message(&got)]).await.unwrap();
                }
            }
        });
        let rounds = async {
            for round in 0..20_000u32 {
                ping.send([message(&round.to_le_bytes())]).await.unwrap();
                assert_eq!(pong.recv(ChannelState::pop).await, Ok(round.to_le_bytes().to_vec()));
            }
        };
        tokio::time::timeout(LONG_ENOUGH, rounds).await.expect("every round came back");
        echo.await.unwrap();
    }
}
