//! The guest side of `wmp:process`: thin, typed wrappers over the
//! generated WIT bindings.

use std::fmt;
use std::time::Duration;

use wmp_core::{AuthKey, ProcessError};

mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "guest" });
}

use bindings::wmp::process::process as wit;

pub(crate) mod connection;
pub(crate) mod synchronize;

use wmp_core::Pid;

use crate::process::{NewChild, Placement};

fn process_error(err: wit::Error) -> ProcessError {
    use wit::Error as E;
    match err {
        E::Closed(_) => ProcessError::Closed,
        E::StartedTwice(_) => ProcessError::StartedTwice,
        E::NotCreator(_) => ProcessError::NotCreator,
        E::DaemonicChildren(_) => ProcessError::DaemonicChildren,
        E::JoinNotChild(_) => ProcessError::JoinNotChild,
        E::JoinNotStarted(_) => ProcessError::JoinNotStarted,
        E::TestNotChild(_) => ProcessError::TestNotChild,
        E::AlreadyStarted(_) => ProcessError::AlreadyStarted,
        E::NotStarted(_) => ProcessError::NotStarted,
        E::CloseRunning(_) => ProcessError::CloseRunning,
        E::SignalNotChild(_) => ProcessError::SignalNotChild,
        E::UnknownTarget(message) => ProcessError::UnknownTarget(message),
        E::SpawnFailed(message) => ProcessError::SpawnFailed(message),
        E::LimitReached(message) => ProcessError::LimitReached(message),
    }
}

fn nanos(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) struct Process {
    handle: wit::Process,
}

impl Process {
    /// The object, and the error its start must give if its arguments
    /// cannot be used (none here).
    pub(crate) fn create(child: NewChild<'_>) -> (Process, Option<ProcessError>) {
        let NewChild { program, target, args, name, daemon, placement } = child;
        let spec = wit::Spec {
            target: target.to_owned(),
            args,
            name: name.map(str::to_owned),
            daemon,
            program: program.map(str::to_owned),
            placement: placement.map(|placement| match placement {
                Placement::AnyNode => wit::Placement::AnyNode,
                Placement::NodeWith(resource) => wit::Placement::NodeWith(resource),
            }),
        };
        (Process::from(wit::Process::new(&spec)), None)
    }

    pub(crate) fn start(&self) -> Result<(), ProcessError> {
        self.handle.start().map_err(process_error)
    }

    /// Waits until the process ends or the timeout passes (no error on
    /// timeout).
    pub(crate) fn join(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        self.handle.join(nanos(timeout)).map_err(process_error)
    }

    pub(crate) fn is_alive(&self) -> Result<bool, ProcessError> {
        self.handle.is_alive().map_err(process_error)
    }

    pub(crate) fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.handle.exitcode().map_err(process_error)
    }

    pub(crate) fn terminate(&self) -> Result<(), ProcessError> {
        self.handle.terminate().map_err(process_error)
    }

    pub(crate) fn kill(&self) -> Result<(), ProcessError> {
        self.handle.kill().map_err(process_error)
    }

    pub(crate) fn close(&self) -> Result<(), ProcessError> {
        self.handle.close().map_err(process_error)
    }

    pub(crate) fn pid(&self) -> Result<Option<Pid>, ProcessError> {
        self.handle.pid().map_err(process_error)
    }

    pub(crate) fn name(&self) -> String {
        self.handle.name()
    }

    pub(crate) fn set_name(&self, name: &str) {
        self.handle.set_name(name)
    }

    pub(crate) fn daemon(&self) -> bool {
        self.handle.daemon()
    }

    pub(crate) fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        self.handle.set_daemon(daemon).map_err(process_error)
    }

    pub(crate) fn authkey(&self) -> AuthKey {
        AuthKey::new(self.handle.authkey())
    }

    pub(crate) fn set_authkey(&self, key: &AuthKey) {
        self.handle.set_authkey(key.as_bytes())
    }

    /// `[]` for the main process, `[2, 1]` for `Process-2:1`.
    pub(crate) fn identity(&self) -> Vec<u32> {
        self.handle.identity()
    }

    pub(crate) fn parent_pid(&self) -> Option<Pid> {
        self.handle.parent_pid()
    }

    pub(crate) fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        self.handle.sentinel().map(Sentinel).map_err(process_error)
    }
}

impl From<wit::Process> for Process {
    fn from(handle: wit::Process) -> Self {
        Process { handle }
    }
}

/// CPython's repr of the process.
impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.handle.display())
    }
}

/// Becomes ready when its process ends.
pub(crate) struct Sentinel(wit::Sentinel);

impl Sentinel {
    pub(crate) fn is_ready(&self) -> bool {
        self.0.ready()
    }
}

/// Waits until a sentinel is ready or the timeout passes; returns the
/// indices of the ready ones (empty on timeout).
pub(crate) fn wait(sentinels: &[&Sentinel], timeout: Option<Duration>) -> Vec<usize> {
    let borrowed: Vec<&wit::Sentinel> = sentinels.iter().map(|s| &s.0).collect();
    wit::wait(&borrowed, nanos(timeout)).into_iter().map(|i| i as usize).collect()
}

/// The process running this code.
pub(crate) fn current_process() -> Process {
    Process::from(wit::current_process())
}

/// The process that started this one; None in the main process.
pub(crate) fn parent_process() -> Option<Process> {
    wit::parent_process().map(Process::from)
}

/// Started children that have not ended (finished ones are reaped first).
pub(crate) fn active_children() -> Vec<Process> {
    wit::active_children().into_iter().map(Process::from).collect()
}

/// The current process's authkey.
pub fn authkey() -> AuthKey {
    AuthKey::new(wit::authkey())
}

/// Ends the current process at once with this exit code (unlike
/// `std::process::exit`, whose code WASI preview 2 reduces to 0 or 1).
pub fn exit(code: i32) -> ! {
    wit::exit(code);
    unreachable!("the host ends the process in exit()")
}

/// The program's entry point: runs `main` in a process started normally,
/// or the requested target in a child. A child asking for a target that is
/// not in `targets` prints the error and exits with code 1.
pub fn entry(targets: &[crate::Target], main: impl FnOnce()) {
    let Some(request) = wit::spawn_context() else {
        return main();
    };
    match targets.iter().find(|(name, _)| *name == request.target) {
        Some((_, target)) => target(&request.args),
        None => {
            let known: Vec<&str> = targets.iter().map(|(name, _)| *name).collect();
            eprintln!("{}", ProcessError::UnknownTarget(format!("unknown target {:?}; this program has {known:?}", request.target)));
            exit(1);
        }
    }
}
