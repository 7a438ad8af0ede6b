//! Pipes, queues, listeners and `wait`, as `multiprocessing` has them: one
//! type each, over the implementation for this target (a wasm guest's
//! `wmp:process/connection` imports, or a native program's own runtime),
//! as tokio's `process` module sits over its `imp`.

use std::time::Duration;

use wmp_core::{AuthKey, ConnectionError, ProcessError};

use crate::imp::{self, connection as imp_connection};
use crate::{Process, Sentinel};

/// One end of a pipe, or a connection a listener accepted
/// (`multiprocessing.connection.Connection`). Dropping it closes it.
pub struct Connection(imp_connection::Connection);

/// Two connected ends (`multiprocessing.Pipe(duplex)`): both ways if
/// `duplex`, else the first only receives and the second only sends.
pub fn pipe(duplex: bool) -> (Connection, Connection) {
    let (a, b) = imp_connection::pipe(duplex);
    (Connection(a), Connection(b))
}

impl Connection {
    pub fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.0.send_bytes(message)
    }

    /// Sends many messages, in order, at once (in one call to the host).
    pub fn send_many<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), ConnectionError> {
        self.0.send_many(messages)
    }

    /// Waits for the next message; EOF once the other end is gone and
    /// everything it sent was read.
    pub fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        self.0.recv_bytes()
    }

    /// Waits for at least one message, then takes what else has arrived,
    /// up to about `max_bytes` in all.
    pub fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        self.0.recv_many(max_bytes)
    }

    /// Whether a message (or EOF) can be received, waiting up to `timeout`.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        self.0.poll(timeout)
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
pub struct Queue(imp_connection::Queue);

impl Queue {
    /// At most `maxsize` messages at once; 0 for no bound.
    pub fn new(maxsize: u32) -> Queue {
        Queue(imp_connection::Queue::new(maxsize))
    }

    /// Waits up to `timeout` for room ([`ConnectionError::Full`] after).
    pub fn put_bytes(&self, message: &[u8], timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.0.put_bytes(message, timeout)
    }

    /// Waits up to `timeout` for a message ([`ConnectionError::Empty`]
    /// after; [`ConnectionError::Eof`] at once if no other handle is open).
    pub fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.0.get_bytes(timeout)
    }

    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    pub fn qsize(&self) -> usize {
        self.0.qsize()
    }

    /// Closes this handle; other handles stay open.
    pub fn close(&self) {
        self.0.close()
    }
}

/// A name in the runtime that other processes connect to
/// (`multiprocessing.connection.Listener`).
pub struct Listener(imp_connection::Listener);

impl Listener {
    /// Listens at `address`; clients must prove `authkey` (this process's
    /// if None).
    pub fn bind(address: &str, authkey: Option<&AuthKey>) -> Result<Listener, ConnectionError> {
        imp_connection::Listener::bind(address, authkey).map(Listener)
    }

    /// Waits for a client and authenticates it.
    pub fn accept(&self) -> Result<Connection, ConnectionError> {
        self.0.accept().map(Connection)
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
    imp_connection::connect(address, authkey).map(Connection)
}

impl Process {
    /// Hands a connection end to this child before it starts; the child
    /// takes it from [`inherited_connections`], in the order passed.
    pub fn pass_connection(&self, end: Connection) -> Result<(), ProcessError> {
        imp_connection::pass_connection(&self.imp, end.0)
    }

    /// Gives this child a handle to the queue before it starts; the child
    /// takes it from [`inherited_queues`], in the order passed.
    pub fn pass_queue(&self, queue: &Queue) -> Result<(), ProcessError> {
        imp_connection::pass_queue(&self.imp, &queue.0)
    }
}

/// The connection ends the parent passed to this process (the first call
/// takes them all).
pub fn inherited_connections() -> Vec<Connection> {
    imp_connection::inherited_connections().into_iter().map(Connection).collect()
}

/// The queue handles the parent passed to this process (taken once).
pub fn inherited_queues() -> Vec<Queue> {
    imp_connection::inherited_queues().into_iter().map(Queue).collect()
}

/// Waits until a sentinel is ready or a connection has something (or
/// EOF) to receive, or the timeout passes (`multiprocessing.connection.wait`).
/// Returns indices into `sentinels` followed by `connections` (connection
/// `i` is `sentinels.len() + i`); empty on timeout.
pub fn wait_ready(sentinels: &[&Sentinel], connections: &[&Connection], timeout: Option<Duration>) -> Vec<usize> {
    let sentinels: Vec<&imp::Sentinel> = sentinels.iter().map(|s| &s.0).collect();
    let connections: Vec<&imp_connection::Connection> = connections.iter().map(|c| &c.0).collect();
    imp_connection::wait_ready(&sentinels, &connections, timeout)
}
