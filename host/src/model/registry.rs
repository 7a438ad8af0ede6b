//! The process table: every running process as a [`Node`] (its identity,
//! children, end and metrics), the pid counter, the `_dangling` view of
//! process objects that are still alive, and, when asked for, the records
//! of ended processes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use wmp_core::AuthKey;

use crate::base::ledger::{Charge, DEFAULT_MAX_HOST_MEMORY, Held, Ledger};
use crate::base::limits::{Limit, Limits, ProcessBudget, narrowest};
use crate::base::metrics::{Meter, ProcessMetrics};
use crate::model::process::ProcessObject;
use crate::base::run_slot::RunSlot;
use crate::base::watched::Watched;
use crate::ipc::remote_connection::Payer;
use crate::ipc::sentinel::ExitCell;
use crate::base::exit::{ExitReason, Signal};

pub use wmp_core::Pid;

/// A process that runs or ran: the analog of the OS process behind a
/// CPython `Process` object. The main process is a node too.
pub(crate) struct Node {
    pub(crate) pid: Pid,
    pub(crate) parent: Option<Weak<Node>>,
    pub(crate) parent_pid: Option<Pid>,
    pub(crate) identity: Vec<u32>,
    /// The name the process sees as its own (`current_process().name`).
    pub(crate) name: Mutex<String>,
    /// What a name the process gave itself costs, in its own ledger.
    pub(crate) name_charge: Mutex<Charge>,
    pub(crate) daemon: bool,
    pub(crate) authkey: Mutex<AuthKey>,
    /// The number the next child object created by this process takes.
    child_counter: AtomicU32,
    /// Started children not yet reaped (CPython's `_children`): a strong
    /// reference keeps each alive until join, is_alive, active_children,
    /// start or close finds it finished.
    pub(crate) children: Mutex<Vec<Arc<ProcessObject>>>,
    /// How many of `children` have ended (counted just before each child
    /// publishes its end), so that reaping, done on every start, costs
    /// nothing while no child has ended.
    ended_children: AtomicIsize,
    pub(crate) exit: Arc<ExitCell>,
    /// A wasm process's run until a runtime worker or its joiner takes it.
    pub(crate) run: Arc<RunSlot>,
    /// Why the process is being stopped (a signal or a limit), once asked.
    stop: Watched<Option<ExitReason>>,
    /// What its backend does at once when a stop is asked (the wasm
    /// backend makes a running guest check in now, and ends one that is not
    /// running there and then).
    stop_hook: OnceLock<StopHook>,
    /// The limits in force for this process (its parent's, narrowed).
    pub(crate) limits: Limits,
    /// What the host holds on this process's behalf, against its
    /// host-memory budget.
    pub(crate) ledger: Arc<Ledger>,
    /// What it has used (CPU time, fuel, memory peaks, IPC bytes).
    pub(crate) meter: Arc<Meter>,
    /// The longest identity a process of this subtree may have.
    max_identity_len: Option<usize>,
    /// The process-count budgets of the subtrees this process is in, and
    /// which of them it takes a place in (all but its own).
    budgets: Vec<Arc<ProcessBudget>>,
    counted_in: Vec<Arc<ProcessBudget>>,
}

/// See [`Node::on_stop`].
pub(crate) type StopHook = Box<dyn Fn(&Node) + Send + Sync>;

/// Who a new node is: its place in the tree and what it inherits.
pub(crate) struct NodeSpec {
    pub(crate) identity: Vec<u32>,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) authkey: AuthKey,
    /// The limits its creator asked for (narrowed by the parent's).
    pub(crate) limits: Limits,
}

impl Node {
    pub(crate) fn new(parent: Option<&Arc<Node>>, pid: Pid, spec: NodeSpec) -> Arc<Node> {
        let inherited = parent.map(|p| p.limits.clone()).unwrap_or_default();
        let limits = inherited.narrowed_by(&spec.limits);
        let own_depth = spec.limits.max_depth.map(|depth| spec.identity.len() + depth);
        let max_identity_len = match (parent.and_then(|p| p.max_identity_len), own_depth) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let counted_in = parent.map(|p| p.budgets.clone()).unwrap_or_default();
        let mut budgets = counted_in.clone();
        budgets.extend(spec.limits.max_processes.map(ProcessBudget::new));
        let ledger = Ledger::new(Some(limits.max_host_memory.unwrap_or(DEFAULT_MAX_HOST_MEMORY)));
        Arc::new(Node {
            pid,
            parent: parent.map(Arc::downgrade),
            parent_pid: parent.map(|p| p.pid),
            identity: spec.identity,
            name: Mutex::new(spec.name),
            name_charge: Mutex::new(ledger.charge(Held::OwnName, 0).expect("nothing charged fits any budget")),
            daemon: spec.daemon,
            authkey: Mutex::new(spec.authkey),
            child_counter: AtomicU32::new(1),
            children: Mutex::new(Vec::new()),
            ended_children: AtomicIsize::new(0),
            exit: Arc::new(ExitCell::new()),
            run: Arc::default(),
            stop: Watched::new(None),
            stop_hook: OnceLock::new(),
            limits,
            ledger,
            meter: Arc::default(),
            max_identity_len,
            budgets,
            counted_in,
        })
    }

    /// Checks that this process may start a child with `identity`, and
    /// takes the child's place in the process-count budgets.
    pub(crate) fn admit_child(&self, identity: &[u32]) -> Result<(), (Limit, String)> {
        if let Some(max) = self.max_identity_len
            && identity.len() > max
        {
            return Err((Limit::Depth, format!("spawn depth limit reached: {max} levels")));
        }
        ProcessBudget::acquire_all(&self.budgets)
            .map_err(|limit| (Limit::Processes, format!("process count limit reached: {limit} live processes")))
    }

    /// The limits a child of this process (already admitted, with
    /// `identity`, asking for `own` limits and so having `limits`) carries
    /// into a runtime of its own (a native process that runs `wmp-guest`):
    /// the same limits, the spawn depth left below it, and the process
    /// count still free in its tree, itself included. That runtime counts
    /// its own subtree only, so across native processes the count is a
    /// per-runtime bound, not one shared count; depth is exact.
    pub(crate) fn limits_to_hand_off(&self, identity: &[u32], own: &Limits, limits: &Limits) -> Limits {
        let depth_left = self.max_identity_len.map(|max| max.saturating_sub(identity.len()));
        let free = ProcessBudget::headroom(&self.budgets).map(|free| free + 1);
        Limits {
            max_depth: narrowest(own.max_depth, depth_left),
            max_processes: narrowest(own.max_processes, free),
            ..limits.clone()
        }
    }

    /// Gives back the place a child took with [`admit_child`](Self::admit_child)
    /// when it could not start after all.
    pub(crate) fn return_child_place(&self) {
        ProcessBudget::release_all(&self.budgets);
    }

    /// The last steps of every end, whichever backend ran the process
    /// (which has taken it out of the live table first): it gives back
    /// its places in the budgets, its parent counts it, and anyone waiting
    /// sees its end.
    pub(crate) fn publish_end(&self, reason: ExitReason) {
        ProcessBudget::release_all(&self.counted_in);
        let used = self.metrics();
        tracing::debug!(
            pid = self.pid,
            name = %self.name(),
            %reason,
            cpu_time_us = used.cpu_time.as_micros() as u64,
            fuel_consumed = used.fuel_consumed,
            memory_peak = used.memory_peak,
            table_elements_peak = used.table_elements_peak,
            host_memory_peak = used.host_memory_peak,
            ipc_bytes_sent = used.ipc_bytes_sent,
            ipc_bytes_received = used.ipc_bytes_received,
            "process ended"
        );
        if let Some(parent) = self.parent.as_ref().and_then(std::sync::Weak::upgrade) {
            parent.child_ending();
        }
        self.exit.publish(reason);
    }

    /// How what this process sends from another OS process (a native
    /// child, a process on another machine) is charged to it until it is
    /// delivered: to its ledger, and past its budget it is stopped for it.
    pub(crate) fn payer(self: &Arc<Self>) -> Payer {
        let node = self.clone();
        let over_budget = Arc::new(move |over: &crate::base::ledger::OverBudget| {
            tracing::debug!(pid = node.pid, %over, "a process in another OS process sent past its budget");
            node.stop(ExitReason::Limit(Limit::HostMemory));
        });
        Payer::Child { ledger: self.ledger.clone(), meter: self.meter.clone(), over_budget }
    }

    /// Ends when the process has run for its `Limits::timeout`; never
    /// without one.
    pub(crate) async fn time_limit(&self) {
        match self.limits.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    }

    /// What the process has used so far.
    pub(crate) fn metrics(&self) -> ProcessMetrics {
        self.meter.read(self.ledger.peak())
    }

    /// What [`ProcessInfo`](crate::ProcessInfo) shows of it now; its end,
    /// if known, is `exit`.
    pub(crate) fn record(&self, exit: Option<ExitReason>) -> Record {
        Record {
            pid: self.pid,
            parent_pid: self.parent_pid,
            name: self.name(),
            identity: self.identity.clone(),
            daemon: self.daemon,
            stopping: exit.is_none() && self.stop_requested().is_some(),
            exit,
            meter: self.meter.clone(),
            ledger: self.ledger.clone(),
        }
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

    pub(crate) fn signal(&self, signal: Signal) {
        self.stop(signal.reason());
    }

    /// Asks the process to stop, for `reason`. A kill or a limit overrides
    /// an earlier terminate that has not taken effect; a stop asked of an
    /// ended process is ignored.
    pub(crate) fn stop(&self, reason: ExitReason) {
        if self.exit.is_set() {
            return;
        }
        self.stop.modify(|slot| match slot {
            None | Some(ExitReason::Terminated) => {
                *slot = Some(reason);
                true
            }
            Some(_) => false,
        });
        if let Some(hook) = self.stop_hook.get() {
            hook(self);
        }
    }

    /// Sets what a stop does at once, beyond asking (once, by the backend
    /// that launches the node).
    pub(crate) fn on_stop(&self, hook: StopHook) {
        assert!(self.stop_hook.set(hook).is_ok(), "a node is launched once");
    }

    pub(crate) fn stop_requested(&self) -> Option<ExitReason> {
        self.stop.get()
    }

    /// The next stop request after the `seen`-th (0 for none seen, so a
    /// watcher starting at 0 also gets one asked before it came): how many
    /// there have been, and the reason now.
    pub(crate) async fn stop_request_after(&self, seen: u64) -> (u64, Option<ExitReason>) {
        self.stop.changed_since(seen).await
    }

    /// Resolves when a stop has been requested, with its reason.
    pub(crate) async fn stopped(&self) -> ExitReason {
        self.stop.wait_for(Option::is_some).await.expect("wait_for checked is_some")
    }

    /// Drops finished children from the active set (CPython's `_cleanup`).
    pub(crate) fn reap_finished_children(&self) {
        if self.ended_children.load(Ordering::Acquire) <= 0 {
            return;
        }
        let mut children = self.children.lock().unwrap();
        let before = children.len();
        children.retain(|child| !child.has_ended());
        self.ended_children.fetch_sub((before - children.len()) as isize, Ordering::AcqRel);
    }

    /// Removes an ended (or closed) child from the active set.
    pub(crate) fn forget_child(&self, object: &ProcessObject) {
        let mut children = self.children.lock().unwrap();
        if let Some(at) = children.iter().position(|child| std::ptr::eq(Arc::as_ptr(child), object)) {
            children.swap_remove(at);
            self.ended_children.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Called by a child just before it publishes its end.
    pub(crate) fn child_ending(&self) {
        self.ended_children.fetch_add(1, Ordering::AcqRel);
    }

    /// The started children's nodes, for the exit and kill paths.
    pub(crate) fn child_nodes(&self) -> Vec<(Arc<Node>, bool)> {
        let children = self.children.lock().unwrap();
        children.iter().filter_map(|c| c.started_node().map(|n| (n.clone(), n.daemon))).collect()
    }
}

/// The first pid of a wasm process: above every pid the kernel can give
/// (`PID_MAX_LIMIT`, 2^22 on 64-bit Linux), so wasm pids, native (OS)
/// pids and the host's own pid share one namespace without clashing.
pub const FIRST_WASM_PID: Pid = (1 << 22) + 1;

/// A process as [`ProcessInfo`](crate::ProcessInfo) shows it: what it
/// is, and counters that stay readable after its node is gone (its
/// metrics, and what its ledger still holds, such as queue messages it put
/// and nobody took yet).
#[derive(Clone)]
pub(crate) struct Record {
    pub(crate) pid: Pid,
    pub(crate) parent_pid: Option<Pid>,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) stopping: bool,
    pub(crate) exit: Option<ExitReason>,
    pub(crate) meter: Arc<Meter>,
    pub(crate) ledger: Arc<Ledger>,
}

/// Runtime-wide bookkeeping: pids, the live process table, the
/// dangling-object set and the ended processes' records.
pub(crate) struct Registry {
    next_pid: AtomicU32,
    live: Mutex<HashMap<Pid, Weak<Node>>>,
    next_object: AtomicU64,
    objects: Mutex<HashMap<u64, Weak<ProcessObject>>>,
    /// How many ended processes' records to keep, and the last of them.
    keep_ended: usize,
    ended: Mutex<VecDeque<Record>>,
}

impl Registry {
    /// A table whose wasm pids start at `first`: [`FIRST_WASM_PID`], or for
    /// a node agent far above, so that its own processes' pids stay clear
    /// of those its runtime gave the processes it runs.
    pub(crate) fn numbering_from(first: Pid) -> Self {
        Self {
            next_pid: AtomicU32::new(first),
            live: Mutex::new(HashMap::new()),
            next_object: AtomicU64::new(1),
            objects: Mutex::new(HashMap::new()),
            keep_ended: 0,
            ended: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps the records of the last `capacity` processes that end (none
    /// by default), oldest dropped first.
    pub(crate) fn keeping_ended(self, capacity: usize) -> Self {
        Self { keep_ended: capacity, ..self }
    }

    /// Publishes `node`'s end (see [`Node::publish_end`]), recorded first
    /// if ended processes are kept, so that whoever sees the end finds its
    /// record.
    pub(crate) fn end(&self, node: &Node, reason: ExitReason) {
        if self.keep_ended > 0 {
            let record = node.record(Some(reason.clone()));
            let mut ended = self.ended.lock().unwrap();
            if ended.len() == self.keep_ended {
                ended.pop_front();
            }
            ended.push_back(record);
        }
        node.publish_end(reason);
    }

    /// The records kept of ended processes, oldest end first.
    pub(crate) fn ended_records(&self) -> Vec<Record> {
        self.ended.lock().unwrap().iter().cloned().collect()
    }

    /// A new wasm pid (native processes have their OS pid).
    pub(crate) fn allocate_wasm_pid(&self) -> Pid {
        self.next_pid.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add_live(&self, node: &Arc<Node>) {
        self.live.lock().unwrap().insert(node.pid, Arc::downgrade(node));
    }

    pub(crate) fn remove_live(&self, pid: Pid) {
        self.live.lock().unwrap().remove(&pid);
    }

    pub(crate) fn is_live(&self, pid: Pid) -> bool {
        self.live.lock().unwrap().contains_key(&pid)
    }

    pub(crate) fn live_node(&self, pid: Pid) -> Option<Arc<Node>> {
        self.live.lock().unwrap().get(&pid).and_then(Weak::upgrade)
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
