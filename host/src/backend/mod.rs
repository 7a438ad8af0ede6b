//! Backends run what stands behind a started process object (CPython's
//! `_Popen`): a wasm instance ([`wasm`]) or an OS process ([`native`]).
//! The state machine in `process.rs` only sees the [`Node`] a backend
//! launched and that publishes its end; it never knows how the process
//! runs.

pub(crate) mod native;
pub(crate) mod wasm;

use std::sync::Arc;

use wmp_core::ProcessError;

use crate::registry::{Node, NodeSpec};
use crate::runtime::Shared;
use crate::spec::{LaunchSpec, Runnable};

/// Starts a child of `parent` that is `who` and runs `spec`; on failure
/// the place the child took in its tree's budgets is given back.
pub(crate) fn start(
    shared: &Arc<Shared>,
    parent: &Arc<Node>,
    who: NodeSpec,
    spec: LaunchSpec,
) -> Result<Arc<Node>, ProcessError> {
    let started = match spec.program.clone() {
        Runnable::Wasm(program) => {
            let node = Node::new(&shared.engine, Some(parent), shared.registry.allocate_wasm_pid(), who);
            wasm::launch(shared, node.clone(), &program, spec).map(|()| node)
        }
        Runnable::Native(native) => native::launch(shared, parent, who, &native, spec),
    };
    if started.is_err() {
        parent.return_child_place();
    }
    started
}
