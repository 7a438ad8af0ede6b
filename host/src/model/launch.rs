//! The seam between the process model and the backends, CPython's
//! `_Popen`: a [`Runnable`] is what a process runs bound to the backend
//! that runs it, a [`ProcessHost`] is what the model asks of the runtime,
//! and [`start`] and [`end_children`] are the steps every backend's
//! process takes at its start and at its end ([`end_children_of_main`]
//! for the main process, which says whom it waits for). The model knows
//! no backend; a backend knows the model only through this file and the
//! [`Node`] it launches.

use std::sync::Arc;
use std::time::Duration;

use wmp_core::ProcessError;

use crate::base::exit::{ExitReason, Signal};
use crate::model::builder::{LaunchSpec, Placement, Target};
use crate::model::process::Process;
use crate::model::registry::{Node, NodeSpec, Registry};

/// What a process runs (a wasm program, a native executable), bound to
/// the backend that runs it.
pub(crate) trait Runnable: Send + Sync {
    /// The name shown for it, and its default `argv[0]`.
    fn name(&self) -> String;

    /// Whether a process of it can run `target` (None: its `main`).
    fn check_target(&self, target: Option<&Target>) -> Result<(), ProcessError>;

    /// The program as it can travel to another machine: its name and the
    /// bytes it was loaded from; None if it cannot (a native executable,
    /// a precompiled artifact).
    #[cfg(feature = "cluster")]
    fn source(&self) -> Option<ProgramSource>;

    /// Launches a child of `parent` that is `who` and runs `spec`, and
    /// returns its node, which is in the process table until the backend
    /// publishes its end.
    fn launch(
        &self,
        host: &Arc<dyn ProcessHost>,
        parent: &Arc<Node>,
        who: NodeSpec,
        spec: LaunchSpec,
    ) -> Result<Arc<Node>, ProcessError>;
}

/// A program's name, the bytes it was loaded from, and their SHA-256
/// (taken once, when the program is loaded).
#[cfg(feature = "cluster")]
#[derive(Clone)]
pub(crate) struct ProgramSource {
    pub(crate) name: String,
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) sha256: [u8; 32],
}

#[cfg(feature = "cluster")]
impl ProgramSource {
    pub(crate) fn new(name: &str, bytes: &[u8]) -> ProgramSource {
        let sha256 = <sha2::Sha256 as sha2::Digest>::digest(bytes).into();
        ProgramSource { name: name.to_owned(), bytes: bytes.into(), sha256 }
    }
}

/// What the model and the backends need of the runtime they live in: the
/// process table, the tokio runtime, whether it has shut down, and which
/// programs guests may start. The runtime implements it; the state
/// machine's unit tests implement it with a mock.
pub(crate) trait ProcessHost: Send + Sync {
    fn registry(&self) -> &Registry;

    fn handle(&self) -> &tokio::runtime::Handle;

    /// Once true, nothing starts any more.
    fn is_shut_down(&self) -> bool;

    /// The program a guest may start by `name` besides its own: one the
    /// embedding host shared or granted.
    fn program_for_guests(&self, name: &str) -> Option<Arc<dyn Runnable>>;

    /// `program`, run where `placement` says (never [`Placement::Local`]):
    /// bound to the backend that runs it there, or why it cannot be.
    fn place(&self, program: &Arc<dyn Runnable>, placement: &Placement) -> Result<Arc<dyn Runnable>, ProcessError>;
}

/// Starts a child of `parent` that is `who` and runs `spec` where it is
/// placed, unless the runtime has shut down; on failure the place the
/// child took in its tree's budgets is given back.
pub(crate) fn start(
    host: &Arc<dyn ProcessHost>,
    parent: &Arc<Node>,
    who: NodeSpec,
    spec: LaunchSpec,
) -> Result<Arc<Node>, ProcessError> {
    let started = if host.is_shut_down() {
        Err(ProcessError::SpawnFailed("cannot start process: the wmp runtime has shut down".into()))
    } else {
        match &spec.placement {
            Placement::Local => Ok(spec.program.clone()),
            placement => host.place(&spec.program, placement),
        }
        .and_then(|program| program.launch(host, parent, who, spec))
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

/// How long the main process joins its non-daemonic children at its end
/// before [`end_children_of_main`] says which ones it waits for.
pub(crate) const PATIENCE_BEFORE_TELLING: Duration = Duration::from_secs(1);

/// [`end_children`] for the main process. CPython's exit rule keeps it until
/// its non-daemonic children have ended, which looks like a hang: if that
/// takes longer than [`PATIENCE_BEFORE_TELLING`], `tell` gets one line
/// (no newline) naming the children it still waits for, by their reprs.
pub(crate) async fn end_children_of_main(main: &Arc<Node>, reason: &ExitReason, tell: impl FnOnce(&str)) -> Option<ExitReason> {
    let mut ending = std::pin::pin!(end_children(main, reason));
    if reason.is_stop() {
        return ending.await; // it kills them, waiting for none
    }
    if let Ok(stopped_by) = tokio::time::timeout(PATIENCE_BEFORE_TELLING, &mut ending).await {
        return stopped_by;
    }
    let children = main.children.lock().unwrap().clone();
    let waited_for: Vec<String> = children
        .into_iter()
        .filter(|child| child.started_node().is_some_and(|node| !node.daemon && !node.exit.is_set()))
        .map(|child| Process::seen_by(child, main.clone()).to_string())
        .collect();
    if !waited_for.is_empty() {
        tell(&format!(
            "wmp: the main process has ended and, as in CPython, waits for its non-daemonic children to end: {} \
             (daemonic children are not waited for; Ctrl-C stops them all)",
            waited_for.join(", ")
        ));
    }
    ending.await
}
