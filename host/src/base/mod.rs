//! The lowest layer: what every other layer uses, and which uses nothing
//! else of the crate's (see docs/architecture.md).

pub(crate) mod error;
pub(crate) mod exit;
pub(crate) mod ledger;
pub(crate) mod limits;
pub(crate) mod mapping;
pub(crate) mod metrics;
pub(crate) mod program_file;
pub(crate) mod run_slot;
pub(crate) mod slabs;
pub(crate) mod slot_memories;
pub(crate) mod stacks;
pub(crate) mod stdio;
pub(crate) mod watched;
