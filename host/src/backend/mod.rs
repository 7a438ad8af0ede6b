//! Backends run what stands behind a started process object (CPython's
//! `_Popen`). The state machine in `process.rs` only sees a [`Node`]
//! (crate::registry::Node) that a backend launched and that publishes its
//! end; it never knows how the process runs.

pub(crate) mod wasm;
