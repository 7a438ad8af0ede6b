//! The process object and its state machine: CPython's `BaseProcess`.
//!
//! A [`Process`] is a handle to a process object as seen by one process
//! (the *caller*): the host's handles are seen by the main process, a
//! guest's handles by that guest. Every public method opens with its
//! preconditions in CPython's order (closed? → who is calling? → which
//! state?) and then acts. What runs behind a started object is a
//! [`Node`](crate::model::registry::Node), launched by the backend that the
//! object's [`Runnable`](crate::model::launch::Runnable) is bound to, the
//! one way the object reaches a backend, as CPython's `Process` reaches
//! one only through `_Popen`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wmp_core::naming::{default_name, exitcode_display, python_repr};
use wmp_core::{AuthKey, ProcessError};

use crate::ipc::connection::Connection;
use crate::base::ledger::{Charge, Held, Ledger, OBJECT_COST, OverBudget};
use crate::base::metrics::ProcessMetrics;
use crate::ipc::queue::Queue;
use crate::ipc::semlock::SemLock;
use crate::ipc::shared_memory::SharedMemory;
use crate::model::registry::{Node, NodeSpec, Pid};
use crate::ipc::sentinel::{Sentinel, wait_any};
use crate::model::builder::LaunchSpec;
use crate::model::launch::ProcessHost;
use crate::base::exit::{ExitReason, Signal};

/// What a process object stands for.
pub(crate) enum Role {
    /// A child created by `creator`, to be started by it.
    Child,
    /// The caller's view of itself (`current_process()`).
    Current(Arc<Node>),
    /// A child's view of its parent (`parent_process()`); the node is gone
    /// only once the parent has ended.
    Parent(Weak<Node>),
}

enum State {
    Initial(Box<LaunchSpec>),
    Started(Arc<Node>),
    Closed,
}

/// The shared object behind [`Process`] handles.
pub(crate) struct ProcessObject {
    id: u64,
    host: Arc<dyn ProcessHost>,
    role: Role,
    /// Pid of the process that created the object (`_parent_pid`).
    creator: Option<Pid>,
    identity: Vec<u32>,
    name: Mutex<String>,
    daemon: AtomicBool,
    authkey: Mutex<AuthKey>,
    state: Mutex<State>,
    /// What the object, its name and (until it starts) its arguments cost,
    /// in the ledger of the guest that created or renamed it.
    charge: Mutex<Charge>,
}

/// What a process object with a name of `name_len` bytes holding
/// `arguments` bytes of arguments costs in its creator's ledger.
fn object_bytes(name_len: usize, arguments: usize) -> usize {
    OBJECT_COST + name_len + arguments
}

impl ProcessObject {
    /// What the object holds now, were its name `name_len` bytes.
    fn held_bytes(&self, name_len: usize) -> usize {
        let arguments = match &*self.state.lock().unwrap() {
            State::Initial(spec) => spec.argument_bytes(),
            State::Started(_) | State::Closed => 0,
        };
        object_bytes(name_len, arguments)
    }

    pub(crate) fn has_ended(&self) -> bool {
        match &*self.state.lock().unwrap() {
            State::Started(node) => node.exit.is_set(),
            State::Initial(_) | State::Closed => true,
        }
    }

    pub(crate) fn started_node(&self) -> Option<Arc<Node>> {
        match &*self.state.lock().unwrap() {
            State::Started(node) => Some(node.clone()),
            State::Initial(_) | State::Closed => None,
        }
    }

    /// The node a parent-process view refers to, while it exists.
    fn parent_node(weak: &Weak<Node>) -> Option<Arc<Node>> {
        weak.upgrade()
    }
}

impl Drop for ProcessObject {
    fn drop(&mut self) {
        if matches!(self.role, Role::Child) {
            self.host.registry().remove_object(self.id);
        }
    }
}

/// A process object, as `multiprocessing.Process` is one.
///
/// Cloning gives another handle to the same object. Methods that wait come
/// in a blocking form and an `_async` form; the blocking ones must not be
/// called from inside an async runtime.
#[derive(Clone)]
pub struct Process {
    object: Arc<ProcessObject>,
    caller: Arc<Node>,
}

impl Process {
    /// A new child object created by `creator` (`Process(...)`), with
    /// `charge` covering it in the ledger of a guest that creates it (see
    /// [`Process::bytes_to_construct`]).
    pub(crate) fn construct(
        host: Arc<dyn ProcessHost>,
        creator: Arc<Node>,
        spec: LaunchSpec,
        name: Option<String>,
        daemon: Option<bool>,
        authkey: Option<AuthKey>,
        charge: Charge,
    ) -> Process {
        let number = creator.next_child_number();
        let mut identity = creator.identity.clone();
        identity.push(number);
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| default_name(&identity));
        let id = host.registry().allocate_object_id();
        let object = Arc::new(ProcessObject {
            id,
            host: host.clone(),
            role: Role::Child,
            creator: Some(creator.pid),
            identity,
            name: Mutex::new(name),
            daemon: AtomicBool::new(daemon.unwrap_or(creator.daemon)),
            authkey: Mutex::new(authkey.unwrap_or_else(|| creator.authkey())),
            state: Mutex::new(State::Initial(Box::new(spec))),
            charge: Mutex::new(charge),
        });
        host.registry().add_object(id, &object);
        Process { object, caller: creator }
    }

    /// `node`'s view of itself (`current_process()`).
    pub(crate) fn current(host: Arc<dyn ProcessHost>, node: Arc<Node>) -> Process {
        let object = Arc::new(ProcessObject {
            id: host.registry().allocate_object_id(),
            host,
            role: Role::Current(node.clone()),
            creator: node.parent_pid,
            identity: node.identity.clone(),
            name: Mutex::new(String::new()),
            daemon: AtomicBool::new(node.daemon),
            authkey: Mutex::new(node.authkey()),
            state: Mutex::new(State::Started(node.clone())),
            charge: Mutex::new(Charge::none()),
        });
        Process { object, caller: node }
    }

    /// `node`'s view of its parent (`parent_process()`); None for main.
    pub(crate) fn parent_of(host: Arc<dyn ProcessHost>, node: Arc<Node>) -> Option<Process> {
        let weak = node.parent.clone()?;
        let parent = weak.upgrade();
        let (name, identity) = match &parent {
            Some(p) => (p.name(), p.identity.clone()),
            None => (String::new(), Vec::new()),
        };
        let object = Arc::new(ProcessObject {
            id: host.registry().allocate_object_id(),
            host,
            role: Role::Parent(weak),
            creator: None,
            identity,
            name: Mutex::new(name),
            daemon: AtomicBool::new(false),
            authkey: Mutex::new(node.authkey()),
            state: Mutex::new(State::Closed),
            charge: Mutex::new(Charge::none()),
        });
        Some(Process { object, caller: node })
    }

    /// What a new object with `name` and `spec` holds, to charge before
    /// [`construct`](Self::construct).
    pub(crate) fn bytes_to_construct(name: Option<&str>, spec: &LaunchSpec) -> usize {
        object_bytes(name.map_or(0, str::len), spec.argument_bytes())
    }

    /// A handle to the same object as seen by `caller`.
    pub(crate) fn seen_by(object: Arc<ProcessObject>, caller: Arc<Node>) -> Process {
        Process { object, caller }
    }

    /// Starts the process. Only once, only by the process that created the
    /// object, never from a daemonic process.
    pub fn start(&self) -> Result<(), ProcessError> {
        let object = &self.object;
        // A current or parent view is never closed, and was not created by
        // the caller.
        if !matches!(object.role, Role::Child) {
            return Err(ProcessError::NotCreator);
        }
        // CPython's _cleanup(); done before taking the state lock so that
        // the lock order is always children → state.
        self.caller.reap_finished_children();
        let mut state = object.state.lock().unwrap();
        let spec = match &*state {
            State::Closed => return Err(ProcessError::Closed),
            State::Started(_) => return Err(ProcessError::StartedTwice),
            State::Initial(spec) => spec,
        };
        if object.creator != Some(self.caller.pid) {
            return Err(ProcessError::NotCreator);
        }
        if self.caller.daemon {
            return Err(ProcessError::DaemonicChildren);
        }
        spec.check()?;
        if let Some(widening) = self.caller.limits.widened_by(&spec.limits) {
            return Err(ProcessError::LimitReached(widening));
        }
        if let Err((limit, message)) = self.caller.admit_child(&object.identity) {
            // The caller hit a limit of its tree: like any limit, that ends
            // it (unless it is the embedding host itself).
            if !self.caller.is_main() || object.host.registry().is_live(self.caller.pid) {
                self.caller.stop(ExitReason::Limit(limit));
            }
            return Err(ProcessError::LimitReached(message));
        }
        let who = NodeSpec {
            identity: object.identity.clone(),
            name: object.name.lock().unwrap().clone(),
            daemon: object.daemon.load(Ordering::Relaxed),
            authkey: object.authkey.lock().unwrap().clone(),
            limits: spec.limits.clone(),
        };
        let node = crate::model::launch::start(&object.host, &self.caller, who, LaunchSpec::clone(spec))?;
        // The target and its arguments are not kept once launched (bpo-30775).
        *state = State::Started(node);
        drop(state);
        let started_bytes = object.held_bytes(object.name.lock().unwrap().len());
        object.charge.lock().unwrap().resize(started_bytes).expect("shrinking a charge cannot fail");
        self.caller.children.lock().unwrap().push(object.clone());
        Ok(())
    }

    /// Hands a connection end to the child, which takes it when it starts
    /// (a wmp-guest child as `inherited_connections()[i]`, in the order
    /// passed; a native one over an inherited socket); this process no
    /// longer has it. Only before start, only by the creator.
    pub fn pass_connection(&self, connection: Connection) -> Result<(), ProcessError> {
        self.before_start(|spec| spec.inherited.add_connection(connection))
    }

    /// Gives the child a handle to the queue (`inherited_queues()[i]` in a
    /// wmp-guest child; a native one reaches it over an inherited socket);
    /// this process keeps its own.
    pub fn pass_queue(&self, queue: &Queue) -> Result<(), ProcessError> {
        self.before_start(|spec| spec.inherited.add_queue(queue.clone()))
    }

    /// Gives the child a handle to the semaphore lock (a wasm child's
    /// `inherited-semlocks`), holding it no times; this process keeps its
    /// own. A native child cannot be given one: its start fails.
    pub fn pass_semlock(&self, lock: &SemLock) -> Result<(), ProcessError> {
        self.before_start(|spec| spec.inherited.add_semlock(lock.clone()))
    }

    /// Gives the child a handle to the shared memory (a wasm child's
    /// `inherited-shared-memory`); this process keeps its own. A native
    /// child cannot be given one: its start fails.
    pub fn pass_shared_memory(&self, memory: &SharedMemory) -> Result<(), ProcessError> {
        self.before_start(|spec| spec.inherited.add_shared_memory(memory.clone()))
    }

    fn before_start(&self, give: impl FnOnce(&LaunchSpec)) -> Result<(), ProcessError> {
        if !matches!(self.object.role, Role::Child) {
            return Err(ProcessError::NotCreator);
        }
        match &*self.object.state.lock().unwrap() {
            State::Closed => Err(ProcessError::Closed),
            State::Started(_) => Err(ProcessError::AlreadyStarted),
            State::Initial(_) if self.object.creator != Some(self.caller.pid) => Err(ProcessError::NotCreator),
            State::Initial(spec) => {
                give(spec);
                Ok(())
            }
        }
    }

    /// What `join` waits for: the node to watch, after the checks.
    fn joinable(&self) -> Result<Arc<Node>, ProcessError> {
        let state = self.object.state.lock().unwrap();
        match (&self.object.role, &*state) {
            (Role::Parent(weak), _) => {
                return ProcessObject::parent_node(weak).ok_or(ProcessError::NotStarted);
            }
            (_, State::Closed) => return Err(ProcessError::Closed),
            (Role::Current(_), _) => return Err(ProcessError::JoinNotChild),
            (Role::Child, _) => {}
        }
        if self.object.creator != Some(self.caller.pid) {
            return Err(ProcessError::JoinNotChild);
        }
        match &*state {
            State::Started(node) => Ok(node.clone()),
            State::Initial(_) => Err(ProcessError::JoinNotStarted),
            State::Closed => Err(ProcessError::Closed),
        }
    }

    fn after_join(&self, node: &Node) {
        if node.exit.is_set() && matches!(self.object.role, Role::Child) {
            self.caller.forget_child(&self.object);
        }
    }

    /// Waits until the process ends or the timeout passes. A timeout is not
    /// an error: check [`exitcode`](Self::exitcode) or
    /// [`is_alive`](Self::is_alive).
    pub fn join(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        let node = self.joinable()?;
        let sentinel = self.sentinel_of(&node);
        if timeout.is_none() {
            node.run.run_here(&sentinel.handle);
        }
        sentinel.wait(timeout);
        self.after_join(&node);
        Ok(())
    }

    pub async fn join_async(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        let node = self.joinable()?;
        let sentinel = self.sentinel_of(&node);
        if timeout.is_none() {
            node.run.run_in_caller(&sentinel.handle).await;
        }
        wait_any(&sentinel.handle.clone(), std::slice::from_ref(&sentinel), timeout).await;
        self.after_join(&node);
        Ok(())
    }

    /// True while the process runs; always true for the current process.
    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        let state = self.object.state.lock().unwrap();
        match (&self.object.role, &*state) {
            (Role::Parent(weak), _) => {
                return Ok(ProcessObject::parent_node(weak).is_some_and(|p| !p.exit.is_set()));
            }
            (_, State::Closed) => return Err(ProcessError::Closed),
            (Role::Current(_), _) => return Ok(true),
            (Role::Child, _) => {}
        }
        if self.object.creator != Some(self.caller.pid) {
            return Err(ProcessError::TestNotChild);
        }
        let State::Started(node) = &*state else { return Ok(false) };
        let ended = node.exit.is_set();
        drop(state);
        if ended {
            self.caller.forget_child(&self.object);
        }
        Ok(!ended)
    }

    /// Why the process ended: None before start and while running.
    pub fn exit_reason(&self) -> Result<Option<ExitReason>, ProcessError> {
        match (&self.object.role, &*self.object.state.lock().unwrap()) {
            (Role::Parent(_) | Role::Current(_), _) => Ok(None),
            (Role::Child, State::Closed) => Err(ProcessError::Closed),
            (Role::Child, State::Initial(_)) => Ok(None),
            (Role::Child, State::Started(node)) => Ok(node.exit.get()),
        }
    }

    /// None before start and while running; then 0, n for `exit(n)`, 1 for
    /// a trap, -15 after terminate, -9 after kill.
    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        Ok(self.exit_reason()?.map(|reason| reason.exitcode()))
    }

    /// What the process has used so far (CPU time, fuel, memory peaks,
    /// IPC bytes): for a running process, until now; for an ended one, its
    /// whole run. None before start.
    pub fn metrics(&self) -> Result<Option<ProcessMetrics>, ProcessError> {
        match (&self.object.role, &*self.object.state.lock().unwrap()) {
            (Role::Current(node), _) => Ok(Some(node.metrics())),
            (Role::Parent(weak), _) => Ok(ProcessObject::parent_node(weak).map(|node| node.metrics())),
            (Role::Child, State::Closed) => Err(ProcessError::Closed),
            (Role::Child, State::Initial(_)) => Ok(None),
            (Role::Child, State::Started(node)) => Ok(Some(node.metrics())),
        }
    }

    /// Stops the process at once; its exitcode becomes -15.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.send(Signal::Terminate)
    }

    /// Stops the process at once; its exitcode becomes -9.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.send(Signal::Kill)
    }

    fn send(&self, signal: Signal) -> Result<(), ProcessError> {
        match (&self.object.role, &*self.object.state.lock().unwrap()) {
            (Role::Child, State::Closed) => Err(ProcessError::Closed),
            (Role::Parent(_) | Role::Current(_), _) => Err(ProcessError::SignalNotChild),
            (Role::Child, State::Initial(_)) => Err(ProcessError::NotStarted),
            (Role::Child, State::Started(node)) => {
                node.signal(signal);
                Ok(())
            }
        }
    }

    /// Releases the process object. Fails while the process runs; after
    /// it, most methods fail with "process object is closed". Closing twice
    /// is fine; closing the current or parent view does nothing.
    pub fn close(&self) -> Result<(), ProcessError> {
        if !matches!(self.object.role, Role::Child) {
            return Ok(());
        }
        let mut state = self.object.state.lock().unwrap();
        if let State::Started(node) = &*state
            && !node.exit.is_set()
        {
            return Err(ProcessError::CloseRunning);
        }
        *state = State::Closed;
        drop(state);
        self.caller.forget_child(&self.object);
        Ok(())
    }

    /// The pid: None before start.
    pub fn pid(&self) -> Result<Option<Pid>, ProcessError> {
        match (&self.object.role, &*self.object.state.lock().unwrap()) {
            (Role::Current(node), _) => Ok(Some(node.pid)),
            (Role::Parent(_), _) => Ok(self.caller.parent_pid),
            (Role::Child, State::Closed) => Err(ProcessError::Closed),
            (Role::Child, State::Initial(_)) => Ok(None),
            (Role::Child, State::Started(node)) => Ok(Some(node.pid)),
        }
    }

    /// Becomes ready when the process ends.
    pub fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        match (&self.object.role, &*self.object.state.lock().unwrap()) {
            (Role::Parent(weak), _) => match ProcessObject::parent_node(weak) {
                Some(node) => Ok(self.sentinel_of(&node)),
                None => Err(ProcessError::NotStarted),
            },
            (Role::Current(_), _) => Err(ProcessError::NotStarted),
            (Role::Child, State::Closed) => Err(ProcessError::Closed),
            (Role::Child, State::Initial(_)) => Err(ProcessError::NotStarted),
            (Role::Child, State::Started(node)) => Ok(self.sentinel_of(node)),
        }
    }

    fn sentinel_of(&self, node: &Node) -> Sentinel {
        Sentinel { cell: node.exit.clone(), handle: self.object.host.handle().clone() }
    }

    pub fn name(&self) -> String {
        match &self.object.role {
            Role::Current(node) => node.name(),
            Role::Child | Role::Parent(_) => self.object.name.lock().unwrap().clone(),
        }
    }

    /// Renames the object. Renaming a started child does not reach the
    /// child; renaming the current process changes the name it reports.
    pub fn set_name(&self, name: impl Into<String>) {
        let name = name.into();
        match &self.object.role {
            Role::Current(node) => *node.name.lock().unwrap() = name,
            Role::Child | Role::Parent(_) => *self.object.name.lock().unwrap() = name,
        }
    }

    /// [`set_name`](Self::set_name) by a guest: the new name is charged
    /// first, to `ledger` (the renaming guest's) unless the object already
    /// has a charge; nothing changes if it does not fit.
    pub(crate) fn set_name_charged(&self, name: String, ledger: &Arc<Ledger>) -> Result<(), OverBudget> {
        match &self.object.role {
            Role::Current(node) => {
                node.name_charge.lock().unwrap().resize(name.len())?;
                *node.name.lock().unwrap() = name;
            }
            Role::Child | Role::Parent(_) => {
                let bytes = self.object.held_bytes(name.len());
                let mut charge = self.object.charge.lock().unwrap();
                if charge.is_none() {
                    *charge = ledger.charge(Held::ProcessObjects, 0)?;
                }
                charge.resize(bytes)?;
                *self.object.name.lock().unwrap() = name;
            }
        }
        Ok(())
    }

    pub fn daemon(&self) -> bool {
        self.object.daemon.load(Ordering::Relaxed)
    }

    /// Sets the daemon flag; only before start.
    pub fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        let state = self.object.state.lock().unwrap();
        let started = match &self.object.role {
            Role::Child => matches!(*state, State::Started(_)),
            Role::Current(_) | Role::Parent(_) => true,
        };
        if started {
            return Err(ProcessError::AlreadyStarted);
        }
        self.object.daemon.store(daemon, Ordering::Relaxed);
        Ok(())
    }

    pub fn authkey(&self) -> AuthKey {
        match &self.object.role {
            Role::Current(node) => node.authkey(),
            Role::Child | Role::Parent(_) => self.object.authkey.lock().unwrap().clone(),
        }
    }

    /// Sets the key a child starts with; on the current process, the key
    /// of processes it creates from now on.
    pub fn set_authkey(&self, key: AuthKey) {
        match &self.object.role {
            Role::Current(node) => *node.authkey.lock().unwrap() = key,
            Role::Child | Role::Parent(_) => *self.object.authkey.lock().unwrap() = key,
        }
    }

    /// The identity tuple: empty for the main process, `[1, 2]` for
    /// `Process-1:2`.
    pub fn identity(&self) -> &[u32] {
        &self.object.identity
    }

    /// Pid of the process that created this object; None for main.
    pub fn parent_pid(&self) -> Option<Pid> {
        self.object.creator
    }

    /// CPython's status word for the repr.
    fn status(&self) -> String {
        let state = self.object.state.lock().unwrap();
        match (&self.object.role, &*state) {
            (Role::Current(_), _) => "started".into(),
            (Role::Parent(_), _) => "unknown".into(),
            (Role::Child, State::Closed) => "closed".into(),
            (Role::Child, _) if self.object.creator != Some(self.caller.pid) => "unknown".into(),
            (Role::Child, State::Initial(_)) => "initial".into(),
            (Role::Child, State::Started(node)) => match node.exit.get() {
                Some(reason) => format!("stopped exitcode={}", exitcode_display(reason.exitcode())),
                None => "started".into(),
            },
        }
    }

    fn type_name(&self) -> &'static str {
        match &self.object.role {
            Role::Current(node) if node.is_main() => "_MainProcess",
            Role::Parent(_) => "_ParentProcess",
            Role::Current(_) | Role::Child => "Process",
        }
    }
}

/// CPython's repr: `<Process name='Process-1' pid=7 parent=1 started daemon>`.
impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} name={}", self.type_name(), python_repr(&self.name()))?;
        if matches!(self.object.role, Role::Child)
            && let Ok(Some(pid)) = self.pid()
        {
            write!(f, " pid={pid}")?;
        }
        match self.object.creator {
            Some(parent) if !matches!(self.object.role, Role::Parent(_)) => write!(f, " parent={parent}")?,
            _ => f.write_str(" parent=None")?,
        }
        write!(f, " {}", self.status())?;
        if self.daemon() {
            f.write_str(" daemon")?;
        }
        f.write_str(">")
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The state machine against a mock backend (as tokio tests its process
/// code with `MockWait`): the mock's "process" is a bare node that ends
/// only when the test publishes its end, or at once when it is stopped.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::{Capabilities, Placement, Target};
    use crate::model::launch::Runnable;
    use crate::model::registry::Registry;

    /// The runtime of the mock: a process table and a tokio runtime.
    struct MockHost {
        registry: Registry,
        runtime: tokio::runtime::Runtime,
        shut_down: bool,
    }

    impl ProcessHost for MockHost {
        fn registry(&self) -> &Registry {
            &self.registry
        }

        fn handle(&self) -> &tokio::runtime::Handle {
            self.runtime.handle()
        }

        fn is_shut_down(&self) -> bool {
            self.shut_down
        }

        fn program_for_guests(&self, _: &str) -> Option<Arc<dyn Runnable>> {
            None
        }

        fn place(&self, _: &Arc<dyn Runnable>, _: &Placement) -> Result<Arc<dyn Runnable>, ProcessError> {
            Err(ProcessError::SpawnFailed("the mock has no cluster".into()))
        }
    }

    /// The mock backend: starts nodes that run nothing, or refuses to
    /// start when told to.
    #[derive(Default)]
    struct MockBackend {
        refuse: bool,
        started: Mutex<Vec<Arc<Node>>>,
    }

    impl Runnable for MockBackend {
        fn name(&self) -> String {
            "mock".into()
        }

        fn check_target(&self, _: Option<&Target>) -> Result<(), ProcessError> {
            Ok(())
        }

        #[cfg(feature = "cluster")]
        fn source(&self) -> Option<crate::model::launch::ProgramSource> {
            None
        }

        fn launch(
            &self,
            host: &Arc<dyn ProcessHost>,
            parent: &Arc<Node>,
            who: NodeSpec,
            _: LaunchSpec,
        ) -> Result<Arc<Node>, ProcessError> {
            if self.refuse {
                return Err(ProcessError::SpawnFailed("the mock refuses".into()));
            }
            let node = Node::new(Some(parent), host.registry().allocate_wasm_pid(), who);
            // A stop ends the mock's process at once, as a backend does.
            node.on_stop(Box::new(|node| {
                if let Some(reason) = node.stop_requested() {
                    node.publish_end(reason);
                }
            }));
            self.started.lock().unwrap().push(node.clone());
            Ok(node)
        }
    }

    fn host(refuse: bool) -> (Arc<dyn ProcessHost>, Arc<MockBackend>, Arc<Node>) {
        host_with(refuse, false, crate::base::limits::Limits::new())
    }

    /// A mock host and backend, and a main process with `limits`.
    fn host_with(
        refuse: bool,
        shut_down: bool,
        limits: crate::base::limits::Limits,
    ) -> (Arc<dyn ProcessHost>, Arc<MockBackend>, Arc<Node>) {
        // A worker drives the timers of joins with a timeout.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let host = Arc::new(MockHost { registry: Registry::numbering_from(crate::FIRST_WASM_PID), runtime, shut_down });
        let main = NodeSpec {
            identity: Vec::new(),
            name: "MainProcess".into(),
            daemon: false,
            authkey: AuthKey::new(vec![7u8; 32]),
            limits,
        };
        let backend = Arc::new(MockBackend { refuse, ..MockBackend::default() });
        (host, backend, Node::new(None, 1, main))
    }

    fn child(host: &Arc<dyn ProcessHost>, backend: &Arc<MockBackend>, main: &Arc<Node>) -> Process {
        let spec = LaunchSpec::new(backend.clone(), Capabilities::new(), None);
        Process::construct(host.clone(), main.clone(), spec, None, None, None, Charge::none())
    }

    /// The end of the last process the mock started, as its backend would
    /// publish it.
    fn end_last(backend: &MockBackend, reason: ExitReason) {
        backend.started.lock().unwrap().last().expect("a started process").publish_end(reason);
    }

    #[test]
    fn initial_started_ended_closed() {
        let (host, backend, main) = host(false);
        let p = child(&host, &backend, &main);
        assert_eq!(p.to_string(), "<Process name='Process-1' parent=1 initial>");
        assert_eq!(p.join(None), Err(ProcessError::JoinNotStarted));
        assert_eq!(p.kill(), Err(ProcessError::NotStarted));
        assert_eq!((p.is_alive(), p.exitcode()), (Ok(false), Ok(None)));
        p.start().unwrap();
        assert_eq!(p.start(), Err(ProcessError::StartedTwice));
        assert_eq!((p.is_alive(), p.exitcode()), (Ok(true), Ok(None)));
        assert_eq!(p.close(), Err(ProcessError::CloseRunning));
        p.join(Some(Duration::from_millis(1))).unwrap();
        assert_eq!(p.is_alive(), Ok(true), "a join that times out leaves it running");
        end_last(&backend, ExitReason::Exit(3));
        p.join(None).unwrap();
        assert_eq!((p.is_alive(), p.exitcode()), (Ok(false), Ok(Some(3))));
        p.close().unwrap();
        assert_eq!(p.is_alive(), Err(ProcessError::Closed));
        assert_eq!(p.start(), Err(ProcessError::Closed));
        assert_eq!(p.join(None), Err(ProcessError::Closed));
    }

    #[test]
    fn a_kill_reaches_the_backend_and_ends_the_process_with_minus_nine() {
        let (host, backend, main) = host(false);
        let p = child(&host, &backend, &main);
        p.start().unwrap();
        p.kill().unwrap();
        assert_eq!(p.exitcode(), Ok(Some(-9)), "the mock ended it when asked");
        let q = child(&host, &backend, &main);
        q.start().unwrap();
        // Starting reaps the children that ended (CPython's _cleanup).
        assert_eq!(main.child_nodes().len(), 1, "the killed one was reaped");
        q.terminate().unwrap();
        q.join(None).unwrap();
        assert_eq!(q.exitcode(), Ok(Some(-15)));
    }

    #[test]
    fn a_start_the_backend_refuses_leaves_the_object_initial() {
        let (host, backend, main) = host(true);
        let p = child(&host, &backend, &main);
        let refused = p.start();
        assert!(matches!(refused, Err(ProcessError::SpawnFailed(ref why)) if why.contains("the mock refuses")));
        assert_eq!(p.exitcode(), Ok(None));
        assert!(p.to_string().ends_with(" initial>"), "{p}");
        assert!(main.child_nodes().is_empty());
    }

    #[test]
    fn a_refused_start_gives_its_place_in_the_process_budget_back() {
        // Room for the main process and one child.
        let limits = crate::base::limits::Limits { max_processes: Some(2), ..Default::default() };
        let (host, refusing, main) = host_with(true, false, limits);
        for _ in 0..3 {
            assert!(matches!(child(&host, &refusing, &main).start(), Err(ProcessError::SpawnFailed(_))));
        }
        let backend = Arc::new(MockBackend::default());
        let p = child(&host, &backend, &main);
        p.start().expect("the refused starts took no place");
        let over = child(&host, &backend, &main).start();
        assert!(matches!(over, Err(ProcessError::LimitReached(_))), "{over:?}");
        end_last(&backend, ExitReason::Returned);
        p.join(None).unwrap();
    }

    #[test]
    fn a_host_that_has_shut_down_starts_nothing() {
        let (host, backend, main) = host_with(false, true, crate::base::limits::Limits::new());
        let refused = child(&host, &backend, &main).start();
        assert!(matches!(refused, Err(ProcessError::SpawnFailed(ref why)) if why.contains("has shut down")));
        assert!(backend.started.lock().unwrap().is_empty(), "the backend was not asked");
    }

    #[test]
    fn only_the_creator_may_start_or_ask_after_a_child() {
        let (host, backend, main) = host(false);
        let p = child(&host, &backend, &main);
        p.start().unwrap();
        let other = Node::new(Some(&main), 99, NodeSpec {
            identity: vec![2],
            name: "other".into(),
            daemon: false,
            authkey: main.authkey(),
            limits: crate::base::limits::Limits::new(),
        });
        let seen_by_other = Process::seen_by(p.object.clone(), other);
        assert_eq!(seen_by_other.is_alive(), Err(ProcessError::TestNotChild));
        end_last(&backend, ExitReason::Returned);
        assert_eq!(p.exitcode(), Ok(Some(0)));
    }
}
