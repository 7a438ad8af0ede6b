//! The process model, above IPC and below the backends: the process
//! object's state machine (`process`), the table of running processes and
//! their tree (`registry`), what a process is launched with (`builder`),
//! the identity a native child is handed (`handoff`), and the seam to the
//! backends (`launch`). It imports no backend (see docs/architecture.md).

pub(crate) mod builder;
pub(crate) mod handoff;
pub(crate) mod launch;
pub(crate) mod process;
pub(crate) mod registry;
