//! The errors of connections, queues and listeners (`multiprocessing.connection`
//! and `multiprocessing.Queue`), worded after CPython's where it has one.

use thiserror::Error;

/// A connection, queue or listener operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    /// Nothing is left to read and nothing can arrive any more: the other
    /// end was closed or its process ended (CPython's `EOFError`).
    #[error("EOF: the other end is closed and nothing is left to read")]
    Eof,
    /// This handle was closed, or handed to a child process.
    #[error("handle is closed")]
    Closed,
    /// A send on a connection whose reading end is gone.
    #[error("broken pipe: the other end of the connection is closed")]
    BrokenPipe,
    /// A receive on the sending end of a one-way pipe.
    #[error("connection is write-only")]
    WriteOnly,
    /// A send on the receiving end of a one-way pipe.
    #[error("connection is read-only")]
    ReadOnly,
    /// `Queue::get` found nothing before its timeout (`queue.Empty`).
    #[error("queue is empty")]
    Empty,
    /// `Queue::put` found no room before its timeout (`queue.Full`).
    #[error("queue is full")]
    Full,
    /// The challenge/response failed; the text is CPython's
    /// `AuthenticationError` message.
    #[error("{0}")]
    Authentication(String),
    /// No listener at the address (`ConnectionRefusedError`).
    #[error("connection refused: no listener at address {0:?}")]
    Refused(String),
    /// Another listener holds the address.
    #[error("address {0:?} is already in use")]
    AddressInUse(String),
    /// A value could not be encoded for `send`.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// A message could not be decoded by `recv`.
    #[error("cannot decode the message: {0}")]
    Decode(String),
}
