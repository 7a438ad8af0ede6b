//! Types that the wmp host and wmp guests share, so both sides speak with one
//! voice: the process errors with CPython's messages ([`ProcessError`]) and
//! those of connections and queues ([`ConnectionError`]), the
//! authentication key that refuses to leave the process ([`AuthKey`]), and
//! the naming rules for processes and exit codes ([`naming`]).
//!
//! It has no runtime and no I/O; `wmp-host` and `wmp-guest` build on it.

mod authkey;
mod connection_error;
mod error;
pub mod naming;

pub use authkey::{AUTHKEY_LEN, AuthKey};
pub use connection_error::ConnectionError;
pub use error::ProcessError;
