//! How processes talk, as in `multiprocessing`: connections (pipes and
//! accepted clients), queues, listeners, sentinels and `wait` over them,
//! semaphore locks and shared memory, what a child inherits of them, and the bridges that carry connections
//! and queues to native children. Built on base only (see
//! docs/architecture.md).

pub(crate) mod connection;
pub(crate) mod inherit;
pub(crate) mod listener;
pub(crate) mod queue;
pub(crate) mod remote_connection;
pub(crate) mod remote_queue;
pub(crate) mod semlock;
pub(crate) mod sentinel;
pub(crate) mod shared_memory;
pub(crate) mod wait;
