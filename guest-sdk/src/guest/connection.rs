//! Pipes, queues, listeners and `wait` in a wasm guest (the
//! implementation behind `crate::connection`): thin wrappers over the
//! `wmp:process/connection` imports.

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

pub(crate) struct Connection(wit::Connection);

pub(crate) fn pipe(duplex: bool) -> (Connection, Connection) {
    let (a, b) = wit::pipe(duplex);
    (Connection(a), Connection(b))
}

impl Connection {
    pub(crate) fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.0.send_bytes(message).map_err(connection_error)
    }

    pub(crate) fn send_many<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), ConnectionError> {
        self.0.send_frames(&wmp_core::frames::encode(messages)).map_err(connection_error)
    }

    pub(crate) fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        self.0.recv_bytes().map_err(connection_error)
    }

    pub(crate) fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        let frames = self.0.recv_frames(u32::try_from(max_bytes).unwrap_or(u32::MAX)).map_err(connection_error)?;
        wmp_core::frames::decode(&frames).map_err(|e| ConnectionError::Decode(e.to_string()))
    }

    pub(crate) fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        self.0.poll(nanos(timeout)).map_err(connection_error)
    }

    pub(crate) fn readable(&self) -> bool {
        self.0.readable()
    }

    pub(crate) fn writable(&self) -> bool {
        self.0.writable()
    }

    pub(crate) fn close(&self) {
        self.0.close()
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
        self.0.accept().map(Connection).map_err(connection_error)
    }

    pub(crate) fn address(&self) -> String {
        self.0.address()
    }

    pub(crate) fn close(&self) {
        self.0.close()
    }
}

pub(crate) fn connect(address: &str, authkey: Option<&AuthKey>) -> Result<Connection, ConnectionError> {
    wit::connect(address, authkey.map(AuthKey::as_bytes)).map(Connection).map_err(connection_error)
}

pub(crate) fn pass_connection(process: &Process, end: Connection) -> Result<(), ProcessError> {
    wit::pass_connection(&process.handle, end.0).map_err(process_error)
}

pub(crate) fn pass_queue(process: &Process, queue: &Queue) -> Result<(), ProcessError> {
    wit::pass_queue(&process.handle, &queue.0).map_err(process_error)
}

pub(crate) fn inherited_connections() -> Vec<Connection> {
    wit::inherited_connections().into_iter().map(Connection).collect()
}

pub(crate) fn inherited_queues() -> Vec<Queue> {
    wit::inherited_queues().into_iter().map(Queue).collect()
}

pub(crate) fn wait_ready(sentinels: &[&Sentinel], connections: &[&Connection], timeout: Option<Duration>) -> Vec<usize> {
    let sentinels: Vec<_> = sentinels.iter().map(|s| &s.0).collect();
    let connections: Vec<_> = connections.iter().map(|c| &c.0).collect();
    wit::wait(&sentinels, &connections, nanos(timeout)).into_iter().map(|i| i as usize).collect()
}
