//! Types that the wmp host and wmp guests share, so both sides speak with one
//! voice: the process errors with CPython's messages ([`ProcessError`]) and
//! those of connections and queues ([`ConnectionError`]), the
//! authentication key that refuses to leave the process ([`AuthKey`]),
//! process ids ([`Pid`]), the naming rules for processes and exit codes
//! ([`naming`]), the framing of many messages in one call ([`frames`]),
//! `multiprocessing.Pool`, over a seam each side fills with its own
//! processes and pipes ([`pool`]), and the locks, conditions, events and
//! barriers built over the host's semaphore locks ([`synchronize`]).
//!
//! It has no runtime and no I/O; `wmp-host` and `wmp-guest` build on it.

mod authkey;
mod connection_error;
mod error;
pub mod frames;
pub mod main_args;
pub mod naming;
pub mod synchronize;
pub mod pool;

pub use authkey::{AUTHKEY_LEN, AuthKey};

/// A process id, unique within one wmp runtime and never reused there: the
/// OS pid of a native process (and of the host), and for a wasm process
/// one above every OS pid.
pub type Pid = u32;
pub use connection_error::ConnectionError;
pub use error::ProcessError;
