//! The wasm backend: each process is a wasmtime instance in its own
//! `Store`, run as one tokio task that owns the store, so ending the task
//! frees the instance and its memory.
//!
//! Stopping works on both paths a guest can be on: a guest running wasm
//! code (even a tight loop) traps at its next epoch check, which a signal
//! makes immediate by bumping the epoch; a guest parked in an async host
//! call (join, sleep, wait) is cancelled by dropping its future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};
use wmp_core::ProcessError;

use crate::program::{Code, Program};
use crate::registry::Node;
use crate::runtime::Shared;
use crate::spec::{Capabilities, LaunchSpec, Target};
use crate::status::{ExitReason, Signal};
use crate::stdio::{Stdio, Stream};

/// What every guest store carries besides its WASI context: the process
/// it is, and what its children inherit.
pub(crate) struct GuestCtx {
    pub(crate) node: Arc<Node>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) program: Program,
    pub(crate) caps: Capabilities,
}

/// Store data of a component (WASI preview 2) guest.
pub(crate) struct P2State {
    pub(crate) guest: GuestCtx,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) target: Option<Target>,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Store data of a core-module (WASI preview 1) guest.
pub(crate) struct P1State {
    guest: GuestCtx,
    pub(crate) wasi: WasiP1Ctx,
}

trait HasGuest: Send + 'static {
    fn guest(&self) -> &GuestCtx;
}

impl HasGuest for P2State {
    fn guest(&self) -> &GuestCtx {
        &self.guest
    }
}

impl HasGuest for P1State {
    fn guest(&self) -> &GuestCtx {
        &self.guest
    }
}

/// A guest's whole run, from instantiation to the return of its entry
/// point; it owns the store.
type GuestRun = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// Launches `node` running `spec` as a tokio task on the runtime.
pub(crate) fn launch(shared: &Arc<Shared>, node: Arc<Node>, spec: LaunchSpec) -> Result<(), ProcessError> {
    if shared.is_shut_down() {
        return Err(ProcessError::SpawnFailed("cannot start process: the wmp runtime has shut down".into()));
    }
    let report_to = TrapReport { stderr: spec.caps.stderr.clone(), program: spec.program.name().to_owned() };
    let run = prepare(shared, &node, spec)
        .map_err(|why| ProcessError::SpawnFailed(format!("cannot start process {}: {why}", node.name())))?;
    shared.registry.add_live(&node);
    shared.handle.spawn(supervise(shared.clone(), node, report_to, run));
    Ok(())
}

fn prepare(shared: &Arc<Shared>, node: &Arc<Node>, spec: LaunchSpec) -> Result<GuestRun, String> {
    let mut wasi = spec.caps.wasi_builder().map_err(|e| e.to_string())?;
    let guest = GuestCtx {
        node: node.clone(),
        shared: shared.clone(),
        program: spec.program.clone(),
        caps: spec.caps,
    };
    match spec.program.code() {
        Code::Component(pre) => {
            let pre = pre.clone();
            let state = P2State { guest, wasi: wasi.build(), table: ResourceTable::new(), target: spec.target };
            let mut store = new_store(&shared.engine, state);
            Ok(Box::pin(async move {
                let command = pre.instantiate_async(&mut store).await?;
                match command.wasi_cli_run().call_run(&mut store).await? {
                    Ok(()) => Ok(()),
                    Err(()) => Err(I32Exit(1).into()),
                }
            }))
        }
        Code::Module(pre) => {
            let pre = pre.clone();
            let mut store = new_store(&shared.engine, P1State { guest, wasi: wasi.build_p1() });
            Ok(Box::pin(async move {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            }))
        }
    }
}

fn new_store<T: HasGuest>(engine: &wasmtime::Engine, state: T) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if ctx.data().guest().node.stop_requested().is_some() {
            return Err(Trap::Interrupt.into());
        }
        // Yield through tokio so that timers of other guests keep running
        // while this one computes (a plain Yield starves them).
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    });
    store
}

/// Where and how a trap is reported: on the process's stderr, as CPython
/// reports an uncaught exception (`Process <name>:` and the trap for a
/// child; for the main process, as `wasmtime run` reports it).
struct TrapReport {
    stderr: Stdio,
    program: String,
}

impl TrapReport {
    fn write(&self, node: &Node, report: &str) {
        let text = if node.is_main() {
            format!("Error: failed to run main module `{}`\n\n{report}\n", self.program)
        } else {
            format!("Process {}:\n{report}\n", node.name())
        };
        self.stderr.write_host_message(Stream::Stderr, &text);
    }
}

/// Runs the guest, then does what CPython does when a process ends: deal
/// with its children, report a trap, publish the end.
async fn supervise(shared: Arc<Shared>, node: Arc<Node>, report_to: TrapReport, run: GuestRun) {
    let (mut reason, report) = tokio::select! {
        biased;
        signal = node.stopped() => (signal.reason(), None),
        result = run => classify(result, &node),
    };
    // The store was dropped with `run` when the select ended.
    if let Some(signal) = end_children(&node, &reason).await {
        reason = signal.reason();
    }
    if let Some(report) = report {
        report_to.write(&node, &report);
    }
    tracing::debug!(pid = node.pid, %reason, "process ended");
    // Out of the table before anyone waiting on the end can look at it.
    shared.registry.remove_live(node.pid);
    node.exit.publish(reason);
}

/// The exit reason of a finished run, and for a trap the full report
/// (with the wasm backtrace) for the process's stderr.
fn classify(result: wasmtime::Result<()>, node: &Node) -> (ExitReason, Option<String>) {
    let Err(err) = result else { return (ExitReason::Returned, None) };
    if let Some(I32Exit(code)) = err.downcast_ref::<I32Exit>() {
        return (ExitReason::Exit(*code), None);
    }
    if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>()
        && let Some(signal) = node.stop_requested()
    {
        return (signal.reason(), None);
    }
    (ExitReason::Trap(err.root_cause().to_string()), Some(crate::error::report(&err)))
}

/// CPython's exit function for a process that ends: a process that was
/// stopped takes its whole subtree with it; one that ended by itself
/// terminates its daemonic children and joins the others. Returns the
/// signal if the process was stopped while joining.
async fn end_children(node: &Node, reason: &ExitReason) -> Option<Signal> {
    let children = node.child_nodes();
    let mut stopped_by = None;
    if matches!(reason, ExitReason::Terminated | ExitReason::Killed) {
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
            signal = node.stopped() => {
                children.iter().for_each(|(child, _)| child.signal(Signal::Kill));
                stopped_by = Some(signal);
            }
        }
    }
    for (child, _) in &children {
        child.exit.ended().await;
    }
    node.children.lock().unwrap().clear();
    stopped_by
}
