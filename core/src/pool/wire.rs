//! The messages between a pool and its workers, as JSON over each worker's
//! duplex pipe. The pool side (the scheduler here, for the guest SDK and
//! the host alike) and the worker (`wmp-guest`'s worker target) both speak
//! through these types, so the format is written once.
//!
//! A worker is started at the target [`WORKER_TARGET`] with a
//! [`WorkerSpec`] as its arguments. It then answers each [`Task`] with a
//! [`Reply`] carrying the same id, and ends at EOF or after `maxtasks`.

use serde::{Deserialize, Serialize};
pub use serde_json::value::RawValue;
use serde_json::Value;

/// The name of the worker target as a literal, for `concat!` in
/// `wmp_guest::main!`, which records it in the `wmp:targets` section.
#[doc(hidden)]
#[macro_export]
macro_rules! pool_worker_target {
    () => {
        "wmp-pool-worker"
    };
}

/// The target a pool starts its workers at; every program made with
/// `wmp_guest::main!` declares it.
pub const WORKER_TARGET: &str = crate::pool_worker_target!();

/// What a worker is started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Run once before the first task.
    pub initializer: Option<Call>,
    /// The worker ends after this many tasks (`maxtasksperchild`).
    pub maxtasks: Option<u64>,
}

/// A registered pool function and its argument tuple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub function: String,
    pub args: Value,
}

/// A chunk of calls of one function: `args` is a JSON array of argument
/// tuples, one per call (`[[3], [4]]` for `f(3)` and `f(4)`, `[[1, 2]]`
/// for `f(1, 2)`); the pool sends a slice of tuples, the worker reads it
/// as [`RawValue`] text to decode as the function's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task<A> {
    pub id: u64,
    pub function: String,
    pub args: A,
}

/// A task's results, a JSON array with one per call in order (as
/// [`RawValue`] text), or why the chunk failed in the worker (an unknown
/// function, arguments that do not decode).
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply<R> {
    pub id: u64,
    pub result: Result<R, String>,
}
