//! The backends, which run what stands behind a started process object
//! (CPython's `_Popen`): a wasm instance ([`wasm`]) or an OS process
//! ([`native`]). Each offers its programs to the model as a
//! [`Runnable`](crate::model::launch::Runnable); the two never import each other,
//! and the model never imports either.

pub(crate) mod native;
#[cfg(feature = "cluster")]
pub(crate) mod remote;
pub(crate) mod wasm;
