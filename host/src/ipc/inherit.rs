//! What a child is handed besides its spec: connection ends, queue,
//! semaphore-lock and shared-memory handles passed to it before start
//! ([`Process::pass_connection`], [`Process::pass_queue`],
//! [`Process::pass_semlock`], [`Process::pass_shared_memory`]), which it
//! takes when it starts. Until then the
//! process object holds them, so dropping an unstarted child closes them.
//!
//! [`Process::pass_connection`]: crate::Process::pass_connection
//! [`Process::pass_queue`]: crate::Process::pass_queue
//! [`Process::pass_semlock`]: crate::Process::pass_semlock
//! [`Process::pass_shared_memory`]: crate::Process::pass_shared_memory

use std::sync::{Arc, Mutex};

use crate::ipc::connection::Connection;
use crate::ipc::queue::Queue;
use crate::ipc::semlock::SemLock;
use crate::ipc::shared_memory::SharedMemory;

/// Connection ends and handles to queues, semaphore locks and shared
/// memory, each kind in the order passed.
#[derive(Default, Debug)]
pub(crate) struct Handles {
    pub(crate) connections: Vec<Connection>,
    pub(crate) queues: Vec<Queue>,
    pub(crate) semlocks: Vec<SemLock>,
    pub(crate) shared_memory: Vec<SharedMemory>,
}

impl Handles {
    /// Whether it holds what only a wasm child can take (a native child
    /// is handed connections and queues over sockets, and nothing else).
    pub(crate) fn has_synchronization(&self) -> bool {
        !self.semlocks.is_empty() || !self.shared_memory.is_empty()
    }
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

    pub(crate) fn add_semlock(&self, lock: SemLock) {
        self.0.lock().unwrap().semlocks.push(lock);
    }

    pub(crate) fn add_shared_memory(&self, memory: SharedMemory) {
        self.0.lock().unwrap().shared_memory.push(memory);
    }

    pub(crate) fn take(&self) -> Handles {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}
