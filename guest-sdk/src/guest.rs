//! The guest side of `wmp:process`: thin, typed wrappers over the
//! generated WIT bindings.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wmp_core::{AuthKey, ProcessError};

mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "guest" });
}

use bindings::wmp::process::process as wit;

/// A process id, unique within one wmp runtime.
pub type Pid = u32;

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

/// A process object: a child this process created, or the view of the
/// current process or of its parent.
pub struct Process {
    handle: wit::Process,
    /// Arguments that could not be encoded: CPython raises the pickling
    /// error from `start()`, and so does this.
    encode_error: Option<ProcessError>,
}

impl Process {
    /// A child that will run the target registered as `target` (see
    /// [`main!`](crate::main)) with `args`, encoded as JSON
    /// (`Process(target=..., args=...)`). Takes the next number of this
    /// process's child counter.
    pub fn new<T: Serialize + ?Sized>(target: &str, args: &T) -> Process {
        Process::with(target, args, None, None)
    }

    /// [`Process::new`] with an explicit name and daemon flag (None keeps
    /// the default name / inherits this process's daemon flag).
    pub fn with<T: Serialize + ?Sized>(target: &str, args: &T, name: Option<&str>, daemon: Option<bool>) -> Process {
        Process::encoded(None, target, args, name, daemon)
    }

    /// A child running `target` (its `main` if empty) of another program
    /// that the host has shared with guests under the name `program`.
    /// Starting it fails if the host has not shared it.
    pub fn in_program<T: Serialize + ?Sized>(program: &str, target: &str, args: &T) -> Process {
        Process::encoded(Some(program), target, args, None, None)
    }

    /// A child whose target gets `args` as raw bytes (for targets written
    /// with [`entry`], or in another language).
    pub fn with_bytes(target: &str, args: Vec<u8>, name: Option<&str>, daemon: Option<bool>) -> Process {
        Process::create(None, target, args, name, daemon)
    }

    fn encoded<T: Serialize + ?Sized>(
        program: Option<&str>,
        target: &str,
        args: &T,
        name: Option<&str>,
        daemon: Option<bool>,
    ) -> Process {
        match serde_json::to_vec(args) {
            Ok(bytes) => Process::create(program, target, bytes, name, daemon),
            Err(err) => {
                let message = format!("cannot encode the arguments of target {target:?}: {err}");
                let mut process = Process::create(program, target, Vec::new(), name, daemon);
                process.encode_error = Some(ProcessError::SpawnFailed(message));
                process
            }
        }
    }

    fn create(program: Option<&str>, target: &str, args: Vec<u8>, name: Option<&str>, daemon: Option<bool>) -> Process {
        let spec = wit::Spec {
            target: target.to_owned(),
            args,
            name: name.map(str::to_owned),
            daemon,
            program: program.map(str::to_owned),
        };
        Process::from(wit::Process::new(&spec))
    }

    pub fn start(&self) -> Result<(), ProcessError> {
        if let Some(err) = &self.encode_error {
            return Err(err.clone());
        }
        self.handle.start().map_err(process_error)
    }

    /// Waits until the process ends or the timeout passes (no error on
    /// timeout).
    pub fn join(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        self.handle.join(nanos(timeout)).map_err(process_error)
    }

    pub fn is_alive(&self) -> Result<bool, ProcessError> {
        self.handle.is_alive().map_err(process_error)
    }

    pub fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.handle.exitcode().map_err(process_error)
    }

    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.handle.terminate().map_err(process_error)
    }

    pub fn kill(&self) -> Result<(), ProcessError> {
        self.handle.kill().map_err(process_error)
    }

    pub fn close(&self) -> Result<(), ProcessError> {
        self.handle.close().map_err(process_error)
    }

    pub fn pid(&self) -> Result<Option<Pid>, ProcessError> {
        self.handle.pid().map_err(process_error)
    }

    pub fn name(&self) -> String {
        self.handle.name()
    }

    pub fn set_name(&self, name: &str) {
        self.handle.set_name(name)
    }

    pub fn daemon(&self) -> bool {
        self.handle.daemon()
    }

    pub fn set_daemon(&self, daemon: bool) -> Result<(), ProcessError> {
        self.handle.set_daemon(daemon).map_err(process_error)
    }

    pub fn authkey(&self) -> AuthKey {
        AuthKey::new(self.handle.authkey())
    }

    pub fn set_authkey(&self, key: &AuthKey) {
        self.handle.set_authkey(key.as_bytes())
    }

    /// `[]` for the main process, `[2, 1]` for `Process-2:1`.
    pub fn identity(&self) -> Vec<u32> {
        self.handle.identity()
    }

    pub fn parent_pid(&self) -> Option<Pid> {
        self.handle.parent_pid()
    }

    pub fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        self.handle.sentinel().map(Sentinel).map_err(process_error)
    }
}

impl From<wit::Process> for Process {
    fn from(handle: wit::Process) -> Self {
        Process { handle, encode_error: None }
    }
}

/// CPython's repr of the process.
impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.handle.display())
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Becomes ready when its process ends.
pub struct Sentinel(wit::Sentinel);

impl Sentinel {
    pub fn is_ready(&self) -> bool {
        self.0.ready()
    }
}

/// Waits until a sentinel is ready or the timeout passes; returns the
/// indices of the ready ones (empty on timeout).
pub fn wait(sentinels: &[&Sentinel], timeout: Option<Duration>) -> Vec<usize> {
    let borrowed: Vec<&wit::Sentinel> = sentinels.iter().map(|s| &s.0).collect();
    wit::wait(&borrowed, nanos(timeout)).into_iter().map(|i| i as usize).collect()
}

/// The process running this code.
pub fn current_process() -> Process {
    Process::from(wit::current_process())
}

/// The process that started this one; None in the main process.
pub fn parent_process() -> Option<Process> {
    wit::parent_process().map(Process::from)
}

/// Started children that have not ended (finished ones are reaped first).
pub fn active_children() -> Vec<Process> {
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

/// A named function a child can run, taking the argument bytes given to
/// [`Process::with_bytes`]. [`main!`](crate::main) makes these for typed
/// targets.
pub type Target = (&'static str, fn(&[u8]));

/// Decodes a child's JSON arguments and runs a typed target with them; a
/// child whose arguments do not decode exits with code 1 and says why.
pub fn run_target<T: DeserializeOwned>(target: fn(T), args: &[u8]) {
    match serde_json::from_slice(args) {
        Ok(args) => target(args),
        Err(err) => {
            eprintln!("cannot decode the arguments of {}: {err}", current_process().name());
            exit(1);
        }
    }
}

/// The bytes of the `wmp:targets` custom section: the target names, one
/// per line (used by [`main!`](crate::main)).
pub const fn target_section<const N: usize>(list: &str) -> [u8; N] {
    let mut section = [0u8; N];
    let bytes = list.as_bytes();
    let mut i = 0;
    while i < N {
        section[i] = bytes[i];
        i += 1;
    }
    section
}

/// Defines `fn main()` for a guest whose children run named targets:
///
/// ```ignore
/// fn worker(n: u64) { println!("worker got {n}"); }
/// fn start() { let p = wmp_guest::Process::new("worker", &7u64); p.start().unwrap(); p.join(None).unwrap(); }
/// wmp_guest::main!(start, worker);
/// ```
///
/// Each target is a `fn(T)` with `T: serde::de::DeserializeOwned`, started
/// by its function name.
///
/// The target names are also recorded in the custom section `wmp:targets`
/// of the program, so the host refuses to start an unknown target with a
/// clear error instead of launching a child that cannot run.
#[macro_export]
macro_rules! main {
    ($main:path $(, $target:ident)* $(,)?) => {
        const __WMP_TARGET_LIST: &str = concat!($(stringify!($target), "\n"),*);
        #[unsafe(link_section = "wmp:targets")]
        #[used]
        static __WMP_TARGETS: [u8; __WMP_TARGET_LIST.len()] = $crate::target_section(__WMP_TARGET_LIST);
        fn main() {
            $crate::entry(
                &[$((stringify!($target), |args: &[u8]| $crate::run_target($target, args))),*],
                $main,
            )
        }
    };
}

/// The program's entry point: runs `main` in a process started normally,
/// or the requested target in a child. A child asking for a target that is
/// not in `targets` prints the error and exits with code 1.
pub fn entry(targets: &[Target], main: impl FnOnce()) {
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
