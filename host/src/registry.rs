//! The process table: every running process as a [`Node`] (its identity,
//! children and end), the pid counter, and the `_dangling` view of process
//! objects that are still alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;
use wmp_core::AuthKey;

use crate::process::ProcessObject;
use crate::sentinel::ExitCell;
use crate::status::Signal;

/// A process id, unique within one runtime and never reused.
pub type Pid = u32;

/// A process that runs or ran: the analog of the OS process behind a
/// CPython `Process` object. The main process is a node too.
pub(crate) struct Node {
    pub(crate) pid: Pid,
    pub(crate) parent: Option<Weak<Node>>,
    pub(crate) parent_pid: Option<Pid>,
    pub(crate) identity: Vec<u32>,
    /// The name the process sees as its own (`current_process().name`).
    pub(crate) name: Mutex<String>,
    pub(crate) daemon: bool,
    pub(crate) authkey: Mutex<AuthKey>,
    /// The number the next child object created by this process takes.
    child_counter: AtomicU32,
    /// Started children not yet reaped (CPython's `_children`): a strong
    /// reference keeps each alive until join, is_alive, active_children,
    /// start or close finds it finished.
    pub(crate) children: Mutex<Vec<Arc<ProcessObject>>>,
    pub(crate) exit: Arc<ExitCell>,
    stop: watch::Sender<Option<Signal>>,
    engine: wasmtime::Engine,
}

impl Node {
    pub(crate) fn new(
        engine: &wasmtime::Engine,
        pid: Pid,
        parent: Option<&Arc<Node>>,
        identity: Vec<u32>,
        name: String,
        daemon: bool,
        authkey: AuthKey,
    ) -> Arc<Node> {
        Arc::new(Node {
            pid,
            parent: parent.map(Arc::downgrade),
            parent_pid: parent.map(|p| p.pid),
            identity,
            name: Mutex::new(name),
            daemon,
            authkey: Mutex::new(authkey),
            child_counter: AtomicU32::new(1),
            children: Mutex::new(Vec::new()),
            exit: Arc::new(ExitCell::new()),
            stop: watch::Sender::new(None),
            engine: engine.clone(),
        })
    }

    pub(crate) fn is_main(&self) -> bool {
        self.parent_pid.is_none()
    }

    pub(crate) fn name(&self) -> String {
        self.name.lock().unwrap().clone()
    }

    pub(crate) fn authkey(&self) -> AuthKey {
        self.authkey.lock().unwrap().clone()
    }

    /// Takes the next child number (every constructed object takes one).
    pub(crate) fn next_child_number(&self) -> u32 {
        self.child_counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the process to stop. A kill overrides an earlier terminate that
    /// has not taken effect; signals to an ended process are ignored.
    pub(crate) fn signal(&self, signal: Signal) {
        if self.exit.is_set() {
            return;
        }
        self.stop.send_if_modified(|slot| match (*slot, signal) {
            (None, _) | (Some(Signal::Terminate), Signal::Kill) => {
                *slot = Some(signal);
                true
            }
            _ => false,
        });
        // A spinning guest notices at its next epoch check: make that now.
        self.engine.increment_epoch();
    }

    pub(crate) fn stop_requested(&self) -> Option<Signal> {
        *self.stop.borrow()
    }

    /// Resolves when a stop has been requested.
    pub(crate) async fn stopped(&self) -> Signal {
        let mut rx = self.stop.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("wait_for checked is_some"),
            Err(_) => unreachable!("the sender lives in self"),
        }
    }

    /// Drops finished children from the active set (CPython's `_cleanup`).
    pub(crate) fn reap_finished_children(&self) {
        self.children.lock().unwrap().retain(|child| !child.has_ended());
    }

    pub(crate) fn forget_child(&self, object: &ProcessObject) {
        self.children.lock().unwrap().retain(|child| !std::ptr::eq(Arc::as_ptr(child), object));
    }

    /// The started children's nodes, for the exit and kill paths.
    pub(crate) fn child_nodes(&self) -> Vec<(Arc<Node>, bool)> {
        let children = self.children.lock().unwrap();
        children.iter().filter_map(|c| c.started_node().map(|n| (n.clone(), n.daemon))).collect()
    }
}

/// Runtime-wide bookkeeping: pids, the live process table and the
/// dangling-object set.
pub(crate) struct Registry {
    next_pid: AtomicU32,
    live: Mutex<HashMap<Pid, Weak<Node>>>,
    next_object: AtomicU64,
    objects: Mutex<HashMap<u64, Weak<ProcessObject>>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            next_pid: AtomicU32::new(1),
            live: Mutex::new(HashMap::new()),
            next_object: AtomicU64::new(1),
            objects: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn allocate_pid(&self) -> Pid {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add_live(&self, node: &Arc<Node>) {
        self.live.lock().unwrap().insert(node.pid, Arc::downgrade(node));
    }

    pub(crate) fn remove_live(&self, pid: Pid) {
        self.live.lock().unwrap().remove(&pid);
    }

    pub(crate) fn live_nodes(&self) -> Vec<Arc<Node>> {
        self.live.lock().unwrap().values().filter_map(Weak::upgrade).collect()
    }

    pub(crate) fn allocate_object_id(&self) -> u64 {
        self.next_object.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add_object(&self, id: u64, object: &Arc<ProcessObject>) {
        self.objects.lock().unwrap().insert(id, Arc::downgrade(object));
    }

    pub(crate) fn remove_object(&self, id: u64) {
        self.objects.lock().unwrap().remove(&id);
    }

    pub(crate) fn objects(&self) -> Vec<Arc<ProcessObject>> {
        self.objects.lock().unwrap().values().filter_map(Weak::upgrade).collect()
    }
}
