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
use crate::builder::{LaunchSpec, Runnable};
use crate::base::exit::{ExitReason, Signal};

/// Starts a child of `parent` that is `who` and runs `spec`, unless the
/// runtime has shut down; on failure the place the child took in its
/// tree's budgets is given back.
pub(crate) fn start(
    shared: &Arc<Shared>,
    parent: &Arc<Node>,
    who: NodeSpec,
    spec: LaunchSpec,
) -> Result<Arc<Node>, ProcessError> {
    let started = match spec.program.clone() {
        _ if shared.is_shut_down() => {
            Err(ProcessError::SpawnFailed("cannot start process: the wmp runtime has shut down".into()))
        }
        Runnable::Wasm(program) => {
            let node = Node::new(Some(parent), shared.registry.allocate_wasm_pid(), who);
            wasm::launch(shared, node.clone(), &program, spec).map(|()| node)
        }
        Runnable::Native(native) => native::launch(shared, parent, who, &native, spec),
    };
    if started.is_err() {
        parent.return_child_place();
    }
    started
}

/// CPython's exit function for a process that ends: a process that was
/// stopped takes its whole subtree with it; one that ended by itself
/// terminates its daemonic children and joins the others. Returns the
/// stop reason if the process was stopped while joining.
pub(crate) async fn end_children(node: &Node, reason: &ExitReason) -> Option<ExitReason> {
    let children = node.child_nodes();
    let mut stopped_by = None;
    if reason.is_stop() {
        children.iter().for_each(|(child, _)| child.signal(Signal::Kill));
    } else {
        for (child, daemon) in &children {
            if *daemon {
                child.signal(Signal::Terminate);
            }
        }
        let join_all = async {
            for (child, _) in &children {
                child.exit.ended().await;
            }
        };
        tokio::select! {
            () = join_all => {}
            stop = node.stopped() => {
                children.iter().for_each(|(child, _)| child.signal(Signal::Kill));
                stopped_by = Some(stop);
            }
        }
    }
    for (child, _) in &children {
        child.exit.ended().await;
    }
    node.children.lock().unwrap().clear();
    stopped_by
}
