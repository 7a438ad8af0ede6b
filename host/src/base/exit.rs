//! How a process ended: the exit reason the host sees and the exitcode
//! CPython would report for it.

use std::fmt;

use crate::base::limits::Limit;

/// Why a process ended. CPython only reports an exit code; the host also
/// knows the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitReason {
    /// The program returned from its entry point normally.
    Returned,
    /// The program called `exit(code)` (WASI `proc_exit`, wmp `exit`), or
    /// its `main` returned an error (code 1).
    Exit(i32),
    /// The program trapped (a Rust panic, `unreachable`, a bad memory
    /// access); the text is wasmtime's description of the trap.
    Trap(String),
    /// The run failed with an error that is not a WebAssembly trap, as
    /// wasmtime tells the two apart: a growth failed under
    /// [`GrowFailure::Trap`](crate::GrowFailure::Trap), a host call that
    /// could not go on, an instance that could not be made. Exitcode 1,
    /// like a trap (both are exceptions to CPython); `wmp run` exits 1 for
    /// it where a trap gives 134, as `wasmtime run` does.
    Error(String),
    /// `terminate()` stopped it.
    Terminated,
    /// `kill()` stopped it, or its parent was stopped.
    Killed,
    /// It hit one of its limits and was stopped like a kill.
    Limit(Limit),
    /// A native process ended by a signal other than the two above (a
    /// segfault is `Signaled(11)`, exitcode -11).
    Signaled(i32),
    /// It ran on another machine, and the node agent that ran it, its node
    /// or the network to it was lost; the agent kills what it runs when it
    /// loses its link, so this ends like a kill (exitcode -9). The text
    /// says what was lost.
    Lost(String),
}

/// `-SIGTERM` as CPython reports it.
pub const TERMINATED_EXITCODE: i32 = -15;
/// `-SIGKILL` as CPython reports it.
pub const KILLED_EXITCODE: i32 = -9;

impl ExitReason {
    /// The `exitcode` CPython gives for this end: 0, n, 1 for a trap, -15,
    /// -9.
    pub fn exitcode(&self) -> i32 {
        match self {
            ExitReason::Returned => 0,
            ExitReason::Exit(code) => *code,
            // A stack overflow is a trap, as a RecursionError is an
            // exception: exitcode 1.
            ExitReason::Trap(_) | ExitReason::Error(_) | ExitReason::Limit(Limit::Stack) => 1,
            ExitReason::Terminated => TERMINATED_EXITCODE,
            ExitReason::Killed | ExitReason::Limit(_) | ExitReason::Lost(_) => KILLED_EXITCODE,
            ExitReason::Signaled(signal) => -signal,
        }
    }
}

impl ExitReason {
    /// Whether the process was stopped from outside (signal or limit)
    /// rather than ending by itself.
    pub fn is_stop(&self) -> bool {
        match self {
            ExitReason::Limit(limit) => *limit != Limit::Stack,
            reason => matches!(reason, ExitReason::Terminated | ExitReason::Killed | ExitReason::Lost(_)),
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Returned => f.write_str("returned"),
            ExitReason::Exit(code) => write!(f, "exit({code})"),
            ExitReason::Trap(msg) => write!(f, "trap: {msg}"),
            ExitReason::Error(msg) => write!(f, "error: {msg}"),
            ExitReason::Terminated => f.write_str("terminated"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Limit(Limit::Stack) => f.write_str("trap: call stack exhausted (its stack overflow limit)"),
            ExitReason::Limit(limit) => write!(f, "stopped by its {limit}"),
            ExitReason::Signaled(signal) => match wmp_core::naming::signal_name(*signal) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {signal}"),
            },
            ExitReason::Lost(what) => write!(f, "lost: {what}"),
        }
    }
}

/// A request to stop a running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Signal {
    Terminate,
    Kill,
}

impl Signal {
    pub(crate) fn reason(self) -> ExitReason {
        match self {
            Signal::Terminate => ExitReason::Terminated,
            Signal::Kill => ExitReason::Killed,
        }
    }
}
