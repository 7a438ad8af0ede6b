//! The process object, as `multiprocessing.Process` has it, and the calls
//! about the current process: one type each, over the implementation for
//! this target (a wasm guest's `wmp:process` imports, or a native
//! program's own runtime), as tokio's `process` module sits over its `imp`.

use std::fmt;
use std::time::Duration;

use wmp_core::{AuthKey, Pid, ProcessError};

use crate::imp;

/// A process object: a child this process created, or the view of the
/// current process or of its parent.
pub struct Process {
    pub(crate) imp: imp::Process,
    /// Arguments that could not be encoded: CPython raises the pickling
    /// error from `start()`, and so does this.
    pub(crate) encode_error: Option<ProcessError>,
}

/// What a new child object is made from (see `targets.rs` for the
/// constructors).
pub(crate) struct NewChild<'a> {
    /// Another program the host shared with guests; None: this one.
    pub(crate) program: Option<&'a str>,
    /// The target to run; empty: the program's `main`.
    pub(crate) target: &'a str,
    pub(crate) args: Vec<u8>,
    pub(crate) name: Option<&'a str>,
    pub(crate) daemon: Option<bool>,
    /// Where it runs; None: here.
    pub(crate) placement: Option<Placement>,
}

impl<'a> NewChild<'a> {
    /// A child of this program running `target`, with no arguments yet.
    pub(crate) fn of(target: &'a str) -> NewChild<'a> {
        NewChild { program: None, target, args: Vec::new(), name: None, daemon: None, placement: None }
    }
}

/// Where on the host's cluster a child runs ([`Process::on_cluster`]);
/// the host must have granted this process the cluster (`wmp run
/// --cluster`), or its start is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Any node.
    AnyNode,
    /// A node that has this custom resource (Ray's `--resources`).
    NodeWith(String),
}

impl Process {
    pub(crate) fn create(child: NewChild<'_>) -> Process {
        let (imp, encode_error) = imp::Process::create(child);
        Process { imp, encode_error }
    }

    fn from_imp(imp: imp::Process) -> Process {
        Process { imp, encode_error: None }
    }

    pub fn start(&self) -> Result<(), ProcessError> {
        if let Some(err) = &self.encode_error {
            return Err(err.clone());
        }
        self.imp.start()
    }

    /// Waits until the process ends or the timeout passes (no error on
    /// timeout).
    pub fn join(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        self.imp.join(timeout)
    }

    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        self.imp.is_alive()
    }

    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.imp.exitcode()
    }

    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.imp.terminate()
    }

    pub fn kill(&self) -> Result<(), ProcessError> {
        self.imp.kill()
    }

    pub fn close(&self) -> Result<(), ProcessError> {
        self.imp.close()
    }

    pub fn pid(&self) -> Result<Option<Pid>, ProcessError> {
        self.imp.pid()
    }

    pub fn name(&self) -> String {
        self.imp.name()
    }

    pub fn set_name(&self, name: &str) {
        self.imp.set_name(name)
    }

    pub fn daemon(&self) -> bool {
        self.imp.daemon()
    }

    pub fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        self.imp.set_daemon(daemon)
    }

    pub fn authkey(&self) -> AuthKey {
        self.imp.authkey()
    }

    pub fn set_authkey(&self, key: &AuthKey) {
        self.imp.set_authkey(key)
    }

    /// `[]` for the main process, `[2, 1]` for `Process-2:1`.
    pub fn identity(&self) -> Vec<u32> {
        self.imp.identity()
    }

    pub fn parent_pid(&self) -> Option<Pid> {
        self.imp.parent_pid()
    }

    pub fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        self.imp.sentinel().map(Sentinel)
    }
}

/// CPython's repr of the process.
impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.imp, f)
    }
}

/// Becomes ready when its process ends.
pub struct Sentinel(pub(crate) imp::Sentinel);

impl Sentinel {
    pub fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

/// Waits until a sentinel is ready or the timeout passes; returns the
/// indices of the ready ones (empty on timeout).
pub fn wait(sentinels: &[&Sentinel], timeout: Option<Duration>) -> Vec<usize> {
    let sentinels: Vec<&imp::Sentinel> = sentinels.iter().map(|s| &s.0).collect();
    imp::wait(&sentinels, timeout)
}

/// The process running this code.
pub fn current_process() -> Process {
    Process::from_imp(imp::current_process())
}

/// The process that started this one; None in the main process.
pub fn parent_process() -> Option<Process> {
    imp::parent_process().map(Process::from_imp)
}

/// Started children that have not ended (finished ones are reaped first).
pub fn active_children() -> Vec<Process> {
    imp::active_children().into_iter().map(Process::from_imp).collect()
}
