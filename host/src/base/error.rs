//! The host library's error type.

use std::path::PathBuf;

pub use wmp_core::ProcessError;

/// Everything the host library can fail with.
///
/// Process state-machine errors are [`ProcessError`], whose `Display` is
/// CPython's message word for word; the other variants are about loading
/// programs and setting up the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// A program path names a directory, FIFO, device or socket: only
    /// regular files are loaded. `kind` says which it is ("a FIFO").
    #[error("cannot load {path}: not a regular file ({kind})")]
    NotARegularFile { path: PathBuf, kind: &'static str },
    /// A program file is larger than
    /// [`RuntimeBuilder::max_program_size`](crate::RuntimeBuilder::max_program_size).
    #[error("cannot load {path}: larger than the program size limit of {max_size} bytes")]
    ProgramTooLarge { path: PathBuf, max_size: u64 },
    /// The bytes are not a WebAssembly module or component, or do not
    /// validate, or the program needs something wmp does not provide.
    #[error("invalid program {name}: {reason}")]
    InvalidProgram { name: String, reason: String },
    /// An [`Invocation`](crate::Invocation) names no function the program
    /// exports (or, by a bare name, one in several of a component's
    /// instances); wasmtime's message.
    #[error("{0}")]
    NoSuchFunction(String),
    /// The arguments of an [`Invocation`](crate::Invocation) do not fit the
    /// function's parameters, or its call does not parse; wasmtime's message.
    #[error("{0}")]
    InvalidArguments(String),
    #[error("cannot set up the runtime: {0}")]
    Setup(String),
    /// A code cache's directory or one of its entries cannot be listed,
    /// read or removed ([`CodeCache::usage`](crate::CodeCache::usage),
    /// [`CodeCache::clear`](crate::CodeCache::clear)).
    #[error("code cache {path}: {error}")]
    CodeCache { path: PathBuf, error: std::io::Error },
    #[error("no running process has pid {0}")]
    NoSuchProcess(wmp_core::Pid),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Flattens a wasmtime error chain into one line (`outer: inner: root`).
pub(crate) fn one_line(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = err.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}

/// A wasmtime error as a multi-line report: the message (for a trap, with
/// its wasm backtrace) and its causes, without any host backtrace.
pub(crate) fn report(err: &wasmtime::Error) -> String {
    let mut out = err.to_string();
    let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        out.push_str("\n\nCaused by:");
        for cause in causes {
            out.push_str("\n    ");
            out.push_str(&cause);
        }
    }
    out
}
