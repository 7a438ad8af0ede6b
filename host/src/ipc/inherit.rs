//! What a child is handed besides its spec: connection ends and queue
//! handles passed to it before start ([`Process::pass_connection`],
//! [`Process::pass_queue`]), which it takes when it starts. Until then the
//! process object holds them, so dropping an unstarted child closes them.
//!
//! [`Process::pass_connection`]: crate::Process::pass_connection
//! [`Process::pass_queue`]: crate::Process::pass_queue

use std::sync::{Arc, Mutex};

use crate::ipc::connection::Connection;
use crate::ipc::queue::Queue;

/// Connection ends and queue handles, in the order they were passed.
#[derive(Default, Debug)]
pub(crate) struct Handles {
    pub(crate) connections: Vec<Connection>,
    pub(crate) queues: Vec<Queue>,
}

/// The handles waiting in a launch spec, shared by its copies so that the
/// child takes them exactly once.
#[derive(Clone, Default)]
pub(crate) struct Inheritance(Arc<Mutex<Handles>>);

impl Inheritance {
    pub(crate) fn add_connection(&self, connection: Connection) {
        self.0.lock().unwrap().connections.push(connection);
    }

    pub(crate) fn add_queue(&self, queue: Queue) {
        self.0.lock().unwrap().queues.push(queue);
    }

    pub(crate) fn take(&self) -> Handles {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}
