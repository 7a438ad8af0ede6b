//! Pipes, queues, listeners and `wait` in a wasm guest (the
//! implementation behind `crate::connection`): thin wrappers over the
//! `wmp:process/connection` imports, but for one thing: a connection
//! reads ahead. A receive takes every message that has arrived (up to
//! [`READ_AHEAD_BYTES`]) in one call and keeps the rest for the next
//! receives, so one message per receive costs a host call only when
//! nothing is waiting; `poll` and `wait_ready` see what is kept, and an
//! end passed to a child first hands it back to the host (`unread`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use wmp_core::{AuthKey, ConnectionError, ProcessError};

use super::bindings::wmp::process::connection as wit;
use super::{Process, Sentinel, nanos, process_error};

fn connection_error(err: wit::Error) -> ConnectionError {
    use wit::Error as E;
    match err {
        E::Eof(_) => ConnectionError::Eof,
        E::Closed(_) => ConnectionError::Closed,
        E::BrokenPipe(_) => ConnectionError::BrokenPipe,
        E::WriteOnly(_) => ConnectionError::WriteOnly,
        E::ReadOnly(_) => ConnectionError::ReadOnly,
        E::Empty(_) => ConnectionError::Empty,
        E::Full(_) => ConnectionError::Full,
        E::Authentication(why) => ConnectionError::Authentication(why),
        E::Refused(address) => ConnectionError::Refused(address),
        E::AddressInUse(address) => ConnectionError::AddressInUse(address),
    }
}

/// Most bytes a receive takes ahead of what it was asked for.
const READ_AHEAD_BYTES: u32 = 64 << 10;

pub(crate) struct Connection {
    end: wit::Connection,
    /// Messages received ahead, in order.
    unread: RefCell<VecDeque<Vec<u8>>>,
}

impl From<wit::Connection> for Connection {
    fn from(end: wit::Connection) -> Connection {
        Connection { end, unread: RefCell::default() }
    }
}

pub(crate) fn pipe(duplex: bool) -> (Connection, Connection) {
    let (a, b) = wit::pipe(duplex);
    (a.into(), b.into())
}

impl Connection {
    pub(crate) fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.end.send_bytes(message).map_err(connection_error)
    }

    pub(crate) fn send_many<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), ConnectionError> {
        self.end.send_frames(&wmp_core::frames::encode(messages)).map_err(connection_error)
    }

    pub(crate) fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        if let Some(message) = self.unread.borrow_mut().pop_front() {
            return Ok(message);
        }
        let mut arrived = self.receive(READ_AHEAD_BYTES)?.into_iter();
        let first = arrived.next().ok_or_else(|| ConnectionError::Decode("the host sent no message".into()))?;
        self.unread.borrow_mut().extend(arrived);
        Ok(first)
    }

    pub(crate) fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        let kept: Vec<Vec<u8>> = self.unread.borrow_mut().drain(..).collect();
        if !kept.is_empty() {
            return Ok(kept);
        }
        self.receive(u32::try_from(max_bytes).unwrap_or(u32::MAX))
    }

    /// At least one message from the host, and what else has arrived.
    fn receive(&self, max_bytes: u32) -> Result<Vec<Vec<u8>>, ConnectionError> {
        let frames = self.end.recv_frames(max_bytes).map_err(connection_error)?;
        wmp_core::frames::decode(&frames).map_err(|e| ConnectionError::Decode(e.to_string()))
    }

    fn has_unread(&self) -> bool {
        !self.unread.borrow().is_empty()
    }

    pub(crate) fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        if self.has_unread() {
            return Ok(true);
        }
        self.end.poll(nanos(timeout)).map_err(connection_error)
    }

    pub(crate) fn readable(&self) -> bool {
        self.end.readable()
    }

    pub(crate) fn writable(&self) -> bool {
        self.end.writable()
    }

    pub(crate) fn close(&self) {
        self.unread.borrow_mut().clear();
        self.end.close()
    }

    /// The host end, with what was read ahead handed back to it first.
    fn into_end(self) -> Result<wit::Connection, ConnectionError> {
        let kept: Vec<Vec<u8>> = self.unread.into_inner().into();
        if !kept.is_empty() {
            self.end.unread(&wmp_core::frames::encode(&kept)).map_err(connection_error)?;
        }
        Ok(self.end)
    }
}

pub(crate) struct Queue(wit::Queue);

impl Queue {
    pub(crate) fn new(maxsize: u32) -> Queue {
        Queue(wit::Queue::new(maxsize))
    }

    pub(crate) fn put_bytes(&self, message: &[u8], timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.0.put(message, nanos(timeout)).map_err(connection_error)
    }

    pub(crate) fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.0.get(nanos(timeout)).map_err(connection_error)
    }

    pub(crate) fn empty(&self) -> bool {
        self.0.empty()
    }

    pub(crate) fn qsize(&self) -> usize {
        self.0.qsize() as usize
    }

    pub(crate) fn close(&self) {
        self.0.close()
    }
}

pub(crate) struct Listener(wit::Listener);

impl Listener {
    pub(crate) fn bind(address: &str, authkey: Option<&AuthKey>) -> Result<Listener, ConnectionError> {
        wit::listen(address, authkey.map(AuthKey::as_bytes)).map(Listener).map_err(connection_error)
    }

    pub(crate) fn accept(&self) -> Result<Connection, ConnectionError> {
        self.0.accept().map(Connection::from).map_err(connection_error)
    }

    pub(crate) fn address(&self) -> String {
        self.0.address()
    }

    pub(crate) fn close(&self) {
        self.0.close()
    }
}

pub(crate) fn connect(address: &str, authkey: Option<&AuthKey>) -> Result<Connection, ConnectionError> {
    wit::connect(address, authkey.map(AuthKey::as_bytes)).map(Connection::from).map_err(connection_error)
}

pub(crate) fn pass_connection(process: &Process, end: Connection) -> Result<(), ProcessError> {
    let end = end.into_end().map_err(|e| ProcessError::SpawnFailed(format!("cannot pass the connection: {e}")))?;
    wit::pass_connection(&process.handle, end).map_err(process_error)
}

pub(crate) fn pass_queue(process: &Process, queue: &Queue) -> Result<(), ProcessError> {
    wit::pass_queue(&process.handle, &queue.0).map_err(process_error)
}

pub(crate) fn inherited_connections() -> Vec<Connection> {
    wit::inherited_connections().into_iter().map(Connection::from).collect()
}

pub(crate) fn inherited_queues() -> Vec<Queue> {
    wit::inherited_queues().into_iter().map(Queue).collect()
}

pub(crate) fn wait_ready(sentinels: &[&Sentinel], connections: &[&Connection], timeout: Option<Duration>) -> Vec<usize> {
    // What was read ahead is ready now: then only look, without waiting.
    let kept: Vec<usize> =
        connections.iter().enumerate().filter(|(_, c)| c.has_unread()).map(|(i, _)| sentinels.len() + i).collect();
    let timeout = if kept.is_empty() { timeout } else { Some(Duration::ZERO) };
    let ends: Vec<_> = connections.iter().map(|c| &c.end).collect();
    let sentinels: Vec<_> = sentinels.iter().map(|s| &s.0).collect();
    let mut ready: Vec<usize> = wit::wait(&sentinels, &ends, nanos(timeout)).into_iter().map(|i| i as usize).collect();
    ready.extend(kept);
    ready.sort_unstable();
    ready.dedup();
    ready
}
