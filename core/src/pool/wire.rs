//! The messages between a pool and its workers, over each worker's
//! duplex pipe. The pool side (the scheduler here, for the guest SDK and
//! the host alike) and the worker (`wmp-guest`'s worker target) both speak
//! through these types, so the format is written once.
//!
//! A worker is started at the target [`WORKER_TARGET`] with a
//! [`WorkerSpec`] as its arguments. It then answers each [`Task`] with a
//! [`Reply`] carrying the same id, and ends at EOF or after `maxtasks`.
//! Tasks and replies are a small JSON header, a newline, then the chunk
//! as MessagePack ([`encode`], [`decode`], [`decode_chunk`]): the pool and
//! the worker read the header alone, and the chunk straight into its
//! types, once. MessagePack, not JSON, for the chunks: it is as
//! self-describing (a value of another type than the reader expects is an
//! error, not a misread; structs go as maps of their fields), and encoding
//! and decoding it takes a fraction of the time, which for small tasks is
//! most of a map's (measured with `cargo bench --bench pool`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// A registered pool function and one call of it: a chunk (see
/// [`encode_chunk`]) holding its argument tuple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub function: String,
    pub chunk: Vec<u8>,
}

/// The header of a chunk of calls of one function; the chunk after it is
/// an array with one item per call, as `arguments` says.
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

/// The header of a task's results; the chunk after it is an array with
/// one result per call, in order, unless `error` says why the task
/// failed in the worker (an unknown function, arguments that do not
/// decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub error: Option<String>,
}

/// A message: `header` as JSON, a newline, then `chunk` as
/// [`encode_chunk`] makes it.
pub fn encode<H: Serialize, C: Serialize + ?Sized>(header: &H, chunk: &C) -> Result<Vec<u8>, String> {
    let mut message = header_line(header)?;
    rmp_serde::encode::write_named(&mut message, chunk).map_err(|e| e.to_string())?;
    Ok(message)
}

/// [`encode`] of a chunk already encoded.
pub fn encode_encoded<H: Serialize>(header: &H, chunk: &[u8]) -> Result<Vec<u8>, String> {
    let mut message = header_line(header)?;
    message.extend_from_slice(chunk);
    Ok(message)
}

fn header_line<H: Serialize>(header: &H) -> Result<Vec<u8>, String> {
    let mut line = serde_json::to_vec(header).map_err(|e| e.to_string())?;
    line.push(b'\n');
    Ok(line)
}

/// A chunk of arguments or results: MessagePack, structs as maps of
/// their fields.
pub fn encode_chunk<C: Serialize + ?Sized>(chunk: &C) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(chunk).map_err(|e| e.to_string())
}

/// A chunk made by [`encode_chunk`] (or the tail of an [`encode`]d
/// message), read as `C`.
pub fn decode_chunk<C: DeserializeOwned>(chunk: &[u8]) -> Result<C, String> {
    rmp_serde::from_slice(chunk).map_err(|e| e.to_string())
}

/// The header of a message made by [`encode`], and where its chunk
/// starts. Compact JSON has no raw newline, so the first ends the header.
pub fn decode<H: DeserializeOwned>(message: &[u8]) -> serde_json::Result<(H, usize)> {
    let end = message.iter().position(|byte| *byte == b'\n').unwrap_or(message.len());
    Ok((serde_json::from_slice(&message[..end])?, (end + 1).min(message.len())))
}
