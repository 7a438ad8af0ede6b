//! Pipes, queues, listeners and `wait` in a native program (the
//! implementation behind `crate::connection`): the host library's own, in
//! this process's runtime. Connection ends and queues
//! passed to a native child reach it over inherited sockets.

use std::time::Duration;

use wmp_core::{AuthKey, ConnectionError, ProcessError};

use super::{Process, Sentinel, runtime, take_connection_sockets, take_queue_sockets};

pub(crate) struct Connection(wmp_host::Connection);

pub(crate) fn pipe(duplex: bool) -> (Connection, Connection) {
    let (a, b) = runtime().pipe(duplex);
    (Connection(a), Connection(b))
}

impl Connection {
    pub(crate) fn send_bytes(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.0.send_bytes(message)
    }

    pub(crate) fn send_many<M: AsRef<[u8]>>(&self, messages: &[M]) -> Result<(), ConnectionError> {
        self.0.send_many(messages.iter().map(|m| m.as_ref().to_vec()).collect())
    }

    pub(crate) fn recv_bytes(&self) -> Result<Vec<u8>, ConnectionError> {
        self.0.recv_bytes()
    }

    pub(crate) fn recv_many(&self, max_bytes: usize) -> Result<Vec<Vec<u8>>, ConnectionError> {
        self.0.recv_many(max_bytes)
    }

    pub(crate) fn poll(&self, timeout: Option<Duration>) -> Result<bool, ConnectionError> {
        self.0.poll(timeout)
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

pub(crate) struct Queue(wmp_host::Queue);

impl Queue {
    pub(crate) fn new(maxsize: u32) -> Queue {
        Queue(runtime().queue(maxsize as usize))
    }

    pub(crate) fn put_bytes(&self, message: &[u8], timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.0.put_bytes(message.to_vec(), timeout)
    }

    pub(crate) fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.0.get_bytes(timeout)
    }

    pub(crate) fn empty(&self) -> bool {
        self.0.empty()
    }

    pub(crate) fn qsize(&self) -> usize {
        self.0.qsize()
    }

    pub(crate) fn close(&self) {
        self.0.close()
    }
}

pub(crate) struct Listener(wmp_host::Listener);

impl Listener {
    pub(crate) fn bind(address: &str, authkey: Option<&AuthKey>) -> Result<Listener, ConnectionError> {
        runtime().listen(address, authkey.cloned()).map(Listener)
    }

    pub(crate) fn accept(&self) -> Result<Connection, ConnectionError> {
        self.0.accept().map(Connection)
    }

    pub(crate) fn address(&self) -> String {
        self.0.address().to_owned()
    }

    pub(crate) fn close(&self) {
        self.0.close()
    }
}

pub(crate) fn connect(address: &str, authkey: Option<&AuthKey>) -> Result<Connection, ConnectionError> {
    runtime().connect(address, authkey.cloned()).map(Connection)
}

pub(crate) fn pass_connection(process: &Process, end: Connection) -> Result<(), ProcessError> {
    process.handle.pass_connection(end.0)
}

pub(crate) fn pass_queue(process: &Process, queue: &Queue) -> Result<(), ProcessError> {
    process.handle.pass_queue(&queue.0)
}

pub(crate) fn inherited_connections() -> Vec<Connection> {
    take_connection_sockets()
        .into_iter()
        .map(|socket| {
            let connection = runtime().connection_over(socket);
            Connection(connection.unwrap_or_else(|e| panic!("cannot use a connection the parent passed: {e}")))
        })
        .collect()
}

pub(crate) fn inherited_queues() -> Vec<Queue> {
    take_queue_sockets()
        .into_iter()
        .map(|socket| {
            let queue = runtime().queue_over(socket);
            Queue(queue.unwrap_or_else(|e| panic!("cannot use a queue the parent passed: {e}")))
        })
        .collect()
}

pub(crate) fn wait_ready(sentinels: &[&Sentinel], connections: &[&Connection], timeout: Option<Duration>) -> Vec<usize> {
    let items: Vec<wmp_host::Waitable<'_>> = sentinels
        .iter()
        .map(|s| wmp_host::Waitable::from(&s.0))
        .chain(connections.iter().map(|c| wmp_host::Waitable::from(&c.0)))
        .collect();
    runtime().wait_for(&items, timeout)
}
