//! Queues (`multiprocessing.Queue`): many producers, many consumers, byte
//! messages in order, optionally bounded so that `put` waits for room.
//! Every handle (each process's, and one waiting to be handed to a child)
//! counts; a `get` that finds the queue empty with no other handle left
//! fails with EOF instead of waiting forever. A native process's handle to
//! a queue in its parent's runtime is remote (`remote_queue.rs`).

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use wmp_core::ConnectionError;

use crate::base::ledger::Charged;
use crate::ipc::remote_queue::RemoteQueue;
use crate::ipc::wait::within;

/// A queue that lives in this process.
struct LocalQueue {
    state: Mutex<State>,
    /// Most messages held at once; 0 for no bound (as in CPython).
    maxsize: usize,
    /// Signalled when a message is put or a handle goes away.
    put: Notify,
    /// Signalled when a message is taken.
    taken: Notify,
}

struct State {
    /// Each charged to the process that put it, as CPython's feeder
    /// buffer lives in the producer.
    messages: VecDeque<Charged<Vec<u8>>>,
    /// Open handles to this queue.
    handles: usize,
}

impl LocalQueue {
    /// Puts the message if there is room (taking it out of `message`).
    fn try_put(&self, message: &mut Option<Charged<Vec<u8>>>) -> bool {
        let mut state = self.state.lock().unwrap();
        if self.maxsize != 0 && state.messages.len() >= self.maxsize {
            return false;
        }
        state.messages.extend(message.take());
        true
    }

    /// The oldest message, EOF if none can ever come, None if one may.
    fn try_get(&self) -> Option<Result<Vec<u8>, ConnectionError>> {
        let mut state = self.state.lock().unwrap();
        if let Some(message) = state.messages.pop_front() {
            drop(state);
            self.taken.notify_waiters();
            return Some(Ok(message.into_value()));
        }
        (state.handles <= 1).then_some(Err(ConnectionError::Eof))
    }
}

/// A handle to a queue; cloning gives another handle to the same queue
/// (that is how it is passed to a child). See the module docs.
pub struct Queue {
    place: Place,
    closed: AtomicBool,
    handle: tokio::runtime::Handle,
}

/// Where the queue is.
#[derive(Clone)]
enum Place {
    Local(Arc<LocalQueue>),
    /// In another OS process's runtime (one handle there per process).
    Remote(Arc<RemoteQueue>),
}

impl Queue {
    pub(crate) fn new(handle: &tokio::runtime::Handle, maxsize: usize) -> Queue {
        let shared = Arc::new(LocalQueue {
            state: Mutex::new(State { messages: VecDeque::new(), handles: 1 }),
            maxsize,
            put: Notify::new(),
            taken: Notify::new(),
        });
        Queue { place: Place::Local(shared), closed: AtomicBool::new(false), handle: handle.clone() }
    }

    /// A handle to the queue served at the other end of `socket`.
    pub(crate) fn remote(handle: &tokio::runtime::Handle, socket: std::os::unix::net::UnixStream) -> std::io::Result<Queue> {
        let remote = Arc::new(RemoteQueue::new(handle, socket)?);
        Ok(Queue { place: Place::Remote(remote), closed: AtomicBool::new(false), handle: handle.clone() })
    }

    fn check_open(&self) -> Result<(), ConnectionError> {
        if self.closed.load(Ordering::Acquire) { Err(ConnectionError::Closed) } else { Ok(()) }
    }

    /// Puts a message, waiting up to `timeout` for room in a bounded queue
    /// (`None`: as long as it takes); [`ConnectionError::Full`] after that.
    pub fn put_bytes(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.put_bytes_async(message, timeout))
    }

    pub async fn put_bytes_async(&self, message: Vec<u8>, timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.put_charged_async(Charged::uncharged(message), timeout).await
    }

    /// Puts a message charged to the process that puts it, until a
    /// consumer takes it.
    pub(crate) async fn put_charged_async(
        &self,
        message: Charged<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(), ConnectionError> {
        self.check_open()?;
        let shared = match &self.place {
            Place::Local(shared) => shared,
            // The runtime that serves the queue holds it, charged there to
            // this (native) process (see `remote_queue.rs`).
            Place::Remote(remote) => return remote.put(&message.value, timeout).await,
        };
        let mut message = Some(message);
        let put = async {
            loop {
                let mut room = pin!(shared.taken.notified());
                room.as_mut().enable();
                if shared.try_put(&mut message) {
                    shared.put.notify_waiters();
                    return;
                }
                room.await;
            }
        };
        within(&self.handle, timeout, put).await.ok_or(ConnectionError::Full)
    }

    /// Takes the oldest message, waiting up to `timeout` for one;
    /// [`ConnectionError::Empty`] after that, [`ConnectionError::Eof`] at
    /// once if the queue is empty and no other handle could put one.
    pub fn get_bytes(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.get_bytes_async(timeout))
    }

    pub async fn get_bytes_async(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.check_open()?;
        let shared = match &self.place {
            Place::Local(shared) => shared,
            Place::Remote(remote) => return remote.get(timeout).await,
        };
        let get = async {
            loop {
                let mut arrived = pin!(shared.put.notified());
                arrived.as_mut().enable();
                if let Some(taken) = shared.try_get() {
                    return taken;
                }
                arrived.await;
            }
        };
        within(&self.handle, timeout, get).await.unwrap_or(Err(ConnectionError::Empty))
    }

    /// Puts a value as JSON.
    pub fn put<T: Serialize + ?Sized>(&self, value: &T, timeout: Option<Duration>) -> Result<(), ConnectionError> {
        let message = serde_json::to_vec(value).map_err(|e| ConnectionError::Encode(e.to_string()))?;
        self.put_bytes(message, timeout)
    }

    /// Takes a value put as JSON.
    pub fn get<T: DeserializeOwned>(&self, timeout: Option<Duration>) -> Result<T, ConnectionError> {
        let message = self.get_bytes(timeout)?;
        serde_json::from_slice(&message).map_err(|e| ConnectionError::Decode(e.to_string()))
    }

    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Messages in the queue now.
    pub fn qsize(&self) -> usize {
        crate::base::run_slot::block_on(&self.handle, self.qsize_async())
    }

    pub async fn qsize_async(&self) -> usize {
        match &self.place {
            Place::Local(shared) => shared.state.lock().unwrap().messages.len(),
            Place::Remote(remote) => remote.qsize().await,
        }
    }

    /// Closes this handle (the queue lives on while other handles do);
    /// closing twice is fine.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // A remote handle closes with the last of its process's handles.
        if let Place::Local(shared) = &self.place {
            shared.state.lock().unwrap().handles -= 1;
            shared.put.notify_waiters();
        }
    }
}

impl Clone for Queue {
    /// Another open handle; a closed handle clones to a closed one (so
    /// passing it to a child gives the child nothing to use).
    fn clone(&self) -> Self {
        let closed = self.closed.load(Ordering::Acquire);
        if let (false, Place::Local(shared)) = (closed, &self.place) {
            shared.state.lock().unwrap().handles += 1;
        }
        Queue { place: self.place.clone(), closed: AtomicBool::new(closed), handle: self.handle.clone() }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remote = matches!(self.place, Place::Remote(_));
        f.debug_struct("Queue").field("remote", &remote).field("closed", &self.closed.load(Ordering::Acquire)).finish()
    }
}
