//! The process model in a native program linked with `wmp-guest`: the
//! same API as in a wasm guest, run by an in-process `wmp-host` runtime.
//!
//! A program a wmp runtime started natively is who that runtime handed it
//! (name, identity, daemon flag, authkey, parent: [`Handoff`], read before
//! `main` runs); one started any other way is `MainProcess`. Its children
//! are fresh runs of this same executable that run a named target
//! (CPython's "spawn"), or of another native program (`Process::in_program`
//! takes its path). Its parent view follows the parent's end through a
//! pidfd.

use std::fmt;
use std::path::PathBuf;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wmp_core::{AuthKey, ProcessError};
use wmp_host::{Capabilities, Handoff, NativeProgram, Runtime};

use wmp_core::Pid;

use crate::process::{NewChild, Placement};

pub(crate) mod connection;
pub(crate) mod synchronize;
mod handoff_at_load;

/// The runtime of this process, the target it was started to run, and
/// the sockets of the connection ends and queues its parent passed it
/// (until taken).
struct ThisProcess {
    runtime: Runtime,
    target: Option<wmp_host::Target>,
    connections: Mutex<Vec<UnixStream>>,
    queues: Mutex<Vec<UnixStream>>,
}

fn this_process() -> &'static ThisProcess {
    static THIS: OnceLock<ThisProcess> = OnceLock::new();
    THIS.get_or_init(|| {
        let mut handoff = handoff_at_load::take().unwrap_or_else(|e| {
            eprintln!("wmp-guest: cannot read the handoff from the parent process: {e}");
            std::process::exit(1)
        });
        let target = handoff.as_ref().and_then(Handoff::target);
        let connections = handoff.as_mut().map(Handoff::take_connections).unwrap_or_default();
        let queues = handoff.as_mut().map(Handoff::take_queues).unwrap_or_default();
        let builder = handoff.into_iter().fold(Runtime::builder().worker_threads(1), |b, h| b.handoff(h));
        let runtime = builder.build().unwrap_or_else(|e| {
            eprintln!("wmp-guest: cannot start the process runtime: {e}");
            std::process::exit(1)
        });
        ThisProcess { runtime, target, connections: Mutex::new(connections), queues: Mutex::new(queues) }
    })
}

fn runtime() -> &'static Runtime {
    &this_process().runtime
}

/// The sockets of the connection ends the parent passed (taken once).
fn take_connection_sockets() -> Vec<UnixStream> {
    std::mem::take(&mut this_process().connections.lock().unwrap())
}

/// The sockets of the queues the parent passed (taken once).
fn take_queue_sockets() -> Vec<UnixStream> {
    std::mem::take(&mut this_process().queues.lock().unwrap())
}

pub(crate) struct Process {
    handle: wmp_host::Process,
}

impl Process {
    /// The object, and the error its start must give if its arguments
    /// cannot be used (a main's that are not a JSON list of strings).
    pub(crate) fn create(child: NewChild<'_>) -> (Process, Option<ProcessError>) {
        let NewChild { program, target, args, name, daemon, placement } = child;
        let executable = match program {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        };
        let argv0 = program.map(str::to_owned).or_else(|| std::env::args().next()).unwrap_or_default();
        let mut builder = runtime().native_process(&NativeProgram::new(executable));
        let mut encode_error = None;
        let argv = if target.is_empty() {
            // A program's main: the arguments are its argv after argv[0].
            match wmp_core::main_args::parse(&args) {
                Ok(rest) => std::iter::once(argv0).chain(rest).collect(),
                Err(why) => {
                    encode_error = Some(ProcessError::SpawnFailed(why));
                    vec![argv0]
                }
            }
        } else {
            builder = builder.target(target, args);
            vec![argv0]
        };
        builder = builder.capabilities(Capabilities::new().args(argv));
        if let Some(name) = name {
            builder = builder.name(name);
        }
        if let Some(daemon) = daemon {
            builder = builder.daemon(daemon);
        }
        if let Some(placement) = placement {
            // This process's own runtime has no cluster: the start says so.
            let resource = match placement {
                Placement::AnyNode => None,
                Placement::NodeWith(resource) => Some(resource),
            };
            builder = builder.placement(wmp_host::Placement::Cluster { resource });
        }
        (Process { handle: builder.build() }, encode_error)
    }

    pub(crate) fn start(&self) -> Result<(), ProcessError> {
        self.handle.start()
    }

    /// Waits until the process ends or the timeout passes (no error on
    /// timeout).
    pub(crate) fn join(&self, timeout: Option<Duration>) -> Result<(), ProcessError> {
        self.handle.join(timeout)
    }

    pub(crate) fn is_alive(&self) -> Result<bool, ProcessError> {
        self.handle.is_alive()
    }

    pub(crate) fn exitcode(&self) -> Result<Option<i32>, ProcessError> {
        self.handle.exitcode()
    }

    pub(crate) fn terminate(&self) -> Result<(), ProcessError> {
        self.handle.terminate()
    }

    pub(crate) fn kill(&self) -> Result<(), ProcessError> {
        self.handle.kill()
    }

    pub(crate) fn close(&self) -> Result<(), ProcessError> {
        self.handle.close()
    }

    pub(crate) fn pid(&self) -> Result<Option<Pid>, ProcessError> {
        self.handle.pid()
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
        self.handle.set_daemon(daemon)
    }

    pub(crate) fn authkey(&self) -> AuthKey {
        self.handle.authkey()
    }

    pub(crate) fn set_authkey(&self, key: &AuthKey) {
        self.handle.set_authkey(key.clone())
    }

    /// `[]` for the main process, `[2, 1]` for `Process-2:1`.
    pub(crate) fn identity(&self) -> Vec<u32> {
        self.handle.identity().to_vec()
    }

    pub(crate) fn parent_pid(&self) -> Option<Pid> {
        self.handle.parent_pid()
    }

    pub(crate) fn sentinel(&self) -> Result<Sentinel, ProcessError> {
        self.handle.sentinel().map(Sentinel)
    }
}

impl From<wmp_host::Process> for Process {
    fn from(handle: wmp_host::Process) -> Self {
        Process { handle }
    }
}

/// CPython's repr of the process.
impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.handle, f)
    }
}

/// Becomes ready when its process ends.
pub(crate) struct Sentinel(wmp_host::Sentinel);

impl Sentinel {
    pub(crate) fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

/// Waits until a sentinel is ready or the timeout passes; returns the
/// indices of the ready ones (empty on timeout).
pub(crate) fn wait(sentinels: &[&Sentinel], timeout: Option<Duration>) -> Vec<usize> {
    let sentinels: Vec<wmp_host::Sentinel> = sentinels.iter().map(|s| s.0.clone()).collect();
    runtime().wait(&sentinels, timeout)
}

/// The process running this code.
pub(crate) fn current_process() -> Process {
    Process::from(runtime().current_process())
}

/// The process that started this one; None in the main process.
pub(crate) fn parent_process() -> Option<Process> {
    runtime().parent_process().map(Process::from)
}

/// Started children that have not ended (finished ones are reaped first).
pub(crate) fn active_children() -> Vec<Process> {
    runtime().active_children().into_iter().map(Process::from).collect()
}

/// The current process's authkey.
pub fn authkey() -> AuthKey {
    runtime().current_process().authkey()
}

/// Ends the current process with this exit code, after what CPython does
/// at exit: daemonic children are terminated, the others joined.
pub fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    runtime().exit_process(code)
}

/// The program's entry point: runs `main` in a process started normally,
/// or the requested target in a child, then exits as [`exit`] does (with
/// 0, or 1 after a panic, reported as `Process <name>:` and the panic).
/// A child asking for a target that is not in `targets` prints the error
/// and exits with code 1.
pub fn entry(targets: &[crate::Target], main: impl FnOnce()) -> ! {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("Process {}:", current_process().name());
        report(info);
    }));
    let run = || match &this_process().target {
        None => main(),
        Some(request) => match targets.iter().find(|(name, _)| *name == request.name) {
            Some((_, target)) => target(&request.args),
            None => {
                let known: Vec<&str> = targets.iter().map(|(name, _)| *name).collect();
                let why = format!("unknown target {:?}; this program has {known:?}", request.name);
                eprintln!("{}", ProcessError::UnknownTarget(why));
                exit(1);
            }
        },
    };
    let code = if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_ok() { 0 } else { 1 };
    exit(code)
}
