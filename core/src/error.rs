//! The errors of the process state machine, worded as CPython words them.

use thiserror::Error;

/// A process operation that the state machine refuses.
///
/// `Display` is CPython's message word for word (`multiprocessing/process.py`,
/// 3.11); the variants that CPython lacks say what went wrong in the same
/// style.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProcessError {
    #[error("process object is closed")]
    Closed,
    #[error("cannot start a process twice")]
    StartedTwice,
    #[error("can only start a process object created by current process")]
    NotCreator,
    #[error("daemonic processes are not allowed to have children")]
    DaemonicChildren,
    #[error("can only join a child process")]
    JoinNotChild,
    #[error("can only join a started process")]
    JoinNotStarted,
    #[error("can only test a child process")]
    TestNotChild,
    #[error("process has already started")]
    AlreadyStarted,
    #[error("process not started")]
    NotStarted,
    #[error(
        "Cannot close a process while it is still running. You should first call join() or terminate()."
    )]
    CloseRunning,
    /// terminate/kill on the current process or the parent-process view
    /// (CPython fails there only by accident, with an AttributeError).
    #[error("can only terminate or kill a child process")]
    SignalNotChild,
    /// A spec names a target the program does not know; the text says which.
    #[error("{0}")]
    UnknownTarget(String),
    /// The host could not launch the process; the text says why.
    #[error("{0}")]
    SpawnFailed(String),
    /// Starting the process would break a limit of the tree (process count,
    /// spawn depth); the text says which.
    #[error("{0}")]
    LimitReached(String),
}

#[cfg(test)]
mod tests {
    use super::ProcessError as E;

    #[test]
    fn messages_are_cpythons_word_for_word() {
        let expected = [
            (E::Closed, "process object is closed"),
            (E::StartedTwice, "cannot start a process twice"),
            (E::NotCreator, "can only start a process object created by current process"),
            (E::DaemonicChildren, "daemonic processes are not allowed to have children"),
            (E::JoinNotChild, "can only join a child process"),
            (E::JoinNotStarted, "can only join a started process"),
            (E::TestNotChild, "can only test a child process"),
            (E::AlreadyStarted, "process has already started"),
            (E::NotStarted, "process not started"),
            (
                E::CloseRunning,
                "Cannot close a process while it is still running. You should first call join() or terminate().",
            ),
        ];
        for (error, message) in expected {
            assert_eq!(error.to_string(), message);
        }
    }
}
