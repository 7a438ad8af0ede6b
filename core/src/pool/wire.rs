//! The messages between a pool and its workers, as JSON over each worker's
//! duplex pipe. The pool side (the scheduler here, for the guest SDK and
//! the host alike) and the worker (`wmp-guest`'s worker target) both speak
//! through these types, so the format is written once.
//!
//! A worker is started at the target [`WORKER_TARGET`] with a
//! [`WorkerSpec`] as its arguments. It then answers each [`Task`] with a
//! [`Reply`] carrying the same id, and ends at EOF or after `maxtasks`.
//! Tasks and replies are a small JSON header, a newline, then the chunk
//! as JSON ([`encode`], [`decode`]): the pool and the worker read the
//! header alone, and the chunk straight into its types, once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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

/// The header of a chunk of calls of one function; the chunk after it is
/// a JSON array with one item per call, as `arguments` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: u64,
    pub function: String,
    pub arguments: Arguments,
}

/// What each item of a task's chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arguments {
    /// The one argument of a one-argument function (`map`): `[3,4]` for
    /// `f(3)` and `f(4)`.
    Single,
    /// An argument tuple (`starmap`, `apply`): `[[1,2]]` for `f(1, 2)`.
    Tuples,
}

/// The header of a task's results; the chunk after it is a JSON array
/// with one result per call, in order, unless `error` says why the task
/// failed in the worker (an unknown function, arguments that do not
/// decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub error: Option<String>,
}

/// A message: `header` as JSON, a newline, then `chunk` as JSON.
pub fn encode<H: Serialize, C: Serialize + ?Sized>(header: &H, chunk: &C) -> serde_json::Result<Vec<u8>> {
    let mut message = header_line(header)?;
    serde_json::to_writer(&mut message, chunk)?;
    Ok(message)
}

/// [`encode`] of a chunk already encoded as JSON.
pub fn encode_encoded<H: Serialize>(header: &H, chunk: &[u8]) -> serde_json::Result<Vec<u8>> {
    let mut message = header_line(header)?;
    message.extend_from_slice(chunk);
    Ok(message)
}

fn header_line<H: Serialize>(header: &H) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(header)?;
    line.push(b'\n');
    Ok(line)
}

/// The header of a message made by [`encode`], and where its chunk
/// starts. Compact JSON has no raw newline, so the first ends the header.
pub fn decode<H: DeserializeOwned>(message: &[u8]) -> serde_json::Result<(H, usize)> {
    let end = message.iter().position(|byte| *byte == b'\n').unwrap_or(message.len());
    Ok((serde_json::from_slice(&message[..end])?, (end + 1).min(message.len())))
}
