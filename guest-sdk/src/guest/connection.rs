//! Pipes, queues, listeners and `wait` in a wasm guest: thin wrappers over
//! the `wmp:process/connection` imports.

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

/// One end of a pipe, or a connection a listener accepted
/// (`multiprocessing.connection.Connection`). Dropping it closes it.
pub struct Connection(wit::Connection);

/// Two connected ends (`multiprocessing.Pipe(duplex)`): both ways if
/// `duplex`, else the first only receives and the second only sends.
pub fn pipe(duplex: bool) -> (Connection, Connection) {
    let (a, b) = wit::pipe(duplex);
    (Connection(a), Connection(b))
}

impl Connection {
    pub fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.0.send_bytes(message).map_err(connection_error)
    }

    /// Sends many messages, in order, in one call to the host.
    pub fn send_many<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), ConnectionError> {
        self.0.send_frames(&wmp_core::frames::encode(messages)).map_err(connection_error)
    }

    /// Waits for the next message; EOF once the other end is gone and
    /// everything it sent was read.
    pub fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        self.0.recv_bytes().map_err(connection_error)
    }

    /// Waits for at least one message, then takes what else has arrived,
    /// up to about `max_bytes` in all, in one call to the host.
    pub fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        let frames = self.0.recv_frames(u32::try_from(max_bytes).unwrap_or(u32::MAX)).map_err(connection_error)?;
        wmp_core::frames::decode(&frames).map_err(|e| ConnectionError::Decode(e.to_string()))
    }

    /// Whether a message (or EOF) can be received, waiting up to `timeout`.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        self.0.poll(nanos(timeout)).map_err(connection_error)
    }

    pub fn readable(&self) -> bool {
        self.0.readable()
    }

    pub fn writable(&self) -> bool {
        self.0.writable()
    }

    pub fn close(&self) {
        self.0.close()
    }
}

/// A queue shared by every process that holds a handle to it
/// (`multiprocessing.Queue`).
pub struct Queue(wit::Queue);

impl Queue {
    /// At most `maxsize` messages at once; 0 for no bound.
    pub fn new(maxsize: u32) -> Queue {
        Queue(wit::Queue::new(maxsize))
    }

    /// Waits up to `timeout` for room ([`ConnectionError::Full`] after).
    pub fn put_bytes(&self, message: &[u8], timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.0.put(message, nanos(timeout)).map_err(connection_error)
    }

    /// Waits up to `timeout` for a message ([`ConnectionError::Empty`]
    /// after; [`ConnectionError::Eof`] at once if no other handle is open).
    pub fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.0.get(nanos(timeout)).map_err(connection_error)
    }

    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    pub fn qsize(&self) -> usize {
        self.0.qsize() as usize
    }

    /// Closes this handle; other handles stay open.
    pub fn close(&self) {
        self.0.close()
    }
}

/// A name in the runtime that other processes connect to
/// (`multiprocessing.connection.Listener`).
pub struct Listener(wit::Listener);

impl Listener {
    /// Listens at `address`; clients must prove `authkey` (this process's
    /// if None).
    pub fn bind(address: &str, authkey: Option<&AuthKey>) -> Result<Listener, ConnectionError> {
        wit::listen(address, authkey.map(AuthKey::as_bytes)).map(Listener).map_err(connection_error)
    }

    /// Waits for a client and authenticates it.
    pub fn accept(&self) -> Result<Connection, ConnectionError> {
        self.0.accept().map(Connection).map_err(connection_error)
    }

    pub fn address(&self) -> String {
        self.0.address()
    }

    pub fn close(&self) {
        self.0.close()
    }
}

/// Connects to the listener at `address`, proving `authkey` (this
/// process's if None) (`multiprocessing.connection.Client`).
pub fn connect(address: &str, authkey: Option<&AuthKey>) -> Result<Connection, ConnectionError> {
    wit::connect(address, authkey.map(AuthKey::as_bytes)).map(Connection).map_err(connection_error)
}

impl Process {
    /// Hands a connection end to this child before it starts; the child
    /// takes it from [`inherited_connections`], in the order passed.
    pub fn pass_connection(&self, end: Connection) -> Result<(), ProcessError> {
        wit::pass_connection(&self.handle, end.0).map_err(process_error)
    }

    /// Gives this child a handle to the queue before it starts; the child
    /// takes it from [`inherited_queues`], in the order passed.
    pub fn pass_queue(&self, queue: &Queue) -> Result<(), ProcessError> {
        wit::pass_queue(&self.handle, &queue.0).map_err(process_error)
    }
}

/// The connection ends the parent passed to this process (the first call
/// takes them all).
pub fn inherited_connections() -> Vec<Connection> {
    wit::inherited_connections().into_iter().map(Connection).collect()
}

/// The queue handles the parent passed to this process (taken once).
pub fn inherited_queues() -> Vec<Queue> {
    wit::inherited_queues().into_iter().map(Queue).collect()
}

/// Waits until a sentinel is ready or a connection has something (or
/// EOF) to receive, or the timeout passes (`multiprocessing.connection.wait`).
/// Returns indices into `sentinels` followed by `connections` (connection
/// `i` is `sentinels.len() + i`); empty on timeout.
pub fn wait_ready(sentinels: &[&Sentinel], connections: &[&Connection], timeout: Option<Duration>) -> Vec<usize> {
    let sentinels: Vec<_> = sentinels.iter().map(|s| &s.0).collect();
    let connections: Vec<_> = connections.iter().map(|c| &c.0).collect();
    wit::wait(&sentinels, &connections, nanos(timeout)).into_iter().map(|i| i as usize).collect()
}
