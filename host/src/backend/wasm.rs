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

use crate::inherit::Handles;
use crate::limits::Limit;
use crate::program::{Code, Program};
use crate::registry::{Node, Pid};
use crate::runtime::Shared;
use crate::spec::{Capabilities, LaunchSpec, Target};
use crate::status::ExitReason;
use crate::stdio::{Stdio, Stream};

/// What every guest store carries besides its WASI context: the process
/// it is, what its children inherit, and the guard of its memory limits.
pub(crate) struct GuestCtx {
    pub(crate) node: Arc<Node>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) program: Program,
    pub(crate) caps: Capabilities,
    limiter: MemoryGuard,
}

/// Enforces a process's memory and table limits; growing past one stops
/// the process with that limit as its exit reason.
struct MemoryGuard {
    node: Arc<Node>,
}

impl MemoryGuard {
    fn check(&self, limit: Limit, max: Option<usize>, desired: usize) -> wasmtime::Result<bool> {
        match max {
            Some(max) if desired > max => {
                self.node.stop(ExitReason::Limit(limit));
                Err(wasmtime::format_err!("{limit} of {max} reached (asked for {desired})"))
            }
            _ => Ok(true),
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryGuard {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.check(Limit::Memory, self.node.limits.max_memory, desired)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.check(Limit::Table, self.node.limits.max_table_elements, desired)
    }
}

/// Store data of a component (WASI preview 2) guest.
pub(crate) struct P2State {
    pub(crate) guest: GuestCtx,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) target: Option<Target>,
    /// Connections and queues its parent passed to it, until it takes them.
    pub(crate) inherited: Handles,
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
    fn guest_mut(&mut self) -> &mut GuestCtx;
}

impl HasGuest for P2State {
    fn guest(&self) -> &GuestCtx {
        &self.guest
    }

    fn guest_mut(&mut self) -> &mut GuestCtx {
        &mut self.guest
    }
}

impl HasGuest for P1State {
    fn guest(&self) -> &GuestCtx {
        &self.guest
    }

    fn guest_mut(&mut self) -> &mut GuestCtx {
        &mut self.guest
    }
}

/// A guest's whole run, from instantiation to the return of its entry
/// point; it owns the store.
type GuestRun = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send>>;

/// Launches `node` running `program` with `spec`, on the runtime or on the
/// thread that joins it first (see `run_slot`).
pub(crate) fn launch(
    shared: &Arc<Shared>,
    node: Arc<Node>,
    program: &Program,
    spec: LaunchSpec,
) -> Result<(), ProcessError> {
    if shared.is_shut_down() {
        return Err(ProcessError::SpawnFailed("cannot start process: the wmp runtime has shut down".into()));
    }
    let report_to = TrapReport { stderr: spec.caps.stderr.clone(), program: program.name().to_owned() };
    let run = prepare(shared, &node, program, spec)
        .map_err(|why| ProcessError::SpawnFailed(format!("cannot start process {}: {why}", node.name())))?;
    shared.registry.add_live(&node);
    let parent = node.parent_pid;
    node.run.clone().launch(&shared.handle, parent, Box::pin(supervise(shared.clone(), node, report_to, run)));
    Ok(())
}

fn prepare(shared: &Arc<Shared>, node: &Arc<Node>, program: &Program, spec: LaunchSpec) -> Result<GuestRun, String> {
    if node.limits.fuel.is_some() && !shared.fuel_metering {
        return Err("a fuel limit needs a runtime with fuel metering (RuntimeBuilder::fuel_metering)".into());
    }
    let mut wasi = spec.caps.wasi_builder().map_err(|e| e.to_string())?;
    let guest = GuestCtx {
        node: node.clone(),
        shared: shared.clone(),
        program: program.clone(),
        caps: spec.caps,
        limiter: MemoryGuard { node: node.clone() },
    };
    match program.code() {
        Code::Component(pre) => {
            let pre = pre.clone();
            let state = P2State {
                guest,
                wasi: wasi.build(),
                table: ResourceTable::new(),
                target: spec.target,
                inherited: spec.inherited.take(),
            };
            let mut store = new_store(shared, state)?;
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
            let mut store = new_store(shared, P1State { guest, wasi: wasi.build_p1() })?;
            Ok(Box::pin(async move {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            }))
        }
    }
}

fn new_store<T: HasGuest>(shared: &Shared, state: T) -> Result<Store<T>, String> {
    let fuel = state.guest().node.limits.fuel;
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|state| &mut state.guest_mut().limiter);
    if shared.fuel_metering {
        store.set_fuel(fuel.unwrap_or(u64::MAX)).map_err(|e| e.to_string())?;
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if ctx.data().guest().node.stop_requested().is_some() {
            return Err(Trap::Interrupt.into());
        }
        // Yield through tokio so that timers of other guests keep running
        // while this one computes (a plain Yield starves them).
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    });
    Ok(store)
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
    let timeout = node.limits.timeout;
    let timer = async move {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let (mut reason, report) = tokio::select! {
        biased;
        reason = node.stopped() => (reason, None),
        () = timer => (ExitReason::Limit(Limit::Timeout), None),
        result = PanicGuard { run, guest: node.pid, handle: &shared.handle } => match result {
            Ok(result) => classify(result, &node),
            Err(panic) => host_failure(&panic),
        },
    };
    // The store was dropped with `run` when the select ended.
    if let Some(stop) = super::end_children(&node, &reason).await {
        reason = stop;
    }
    node.release_budgets();
    if let Some(report) = report {
        report_to.write(&node, &report);
    }
    tracing::debug!(pid = node.pid, %reason, "process ended");
    // Out of the table, and counted by its parent, before anyone waiting
    // on the end can look.
    shared.registry.remove_live(node.pid);
    if let Some(parent) = node.parent.as_ref().and_then(std::sync::Weak::upgrade) {
        parent.child_ending();
    }
    node.exit.publish(reason);
}

/// Polls a guest's run (see `run_slot::poll_guest`), and turns a panic
/// while running it (a bug in the host or in wasmtime-wasi) into the end
/// of that one process instead of a task that never publishes its end.
struct PanicGuard<'a> {
    run: GuestRun,
    guest: Pid,
    handle: &'a tokio::runtime::Handle,
}

impl Future for PanicGuard<'_> {
    type Output = std::thread::Result<wasmtime::Result<()>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let PanicGuard { run, guest, handle } = &mut *self;
        let poll = || crate::run_slot::poll_guest(*guest, handle, run.as_mut(), cx);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(poll)) {
            Ok(poll) => poll.map(Ok),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

fn host_failure(panic: &(dyn std::any::Any + Send)) -> (ExitReason, Option<String>) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let message = format!("the host failed while running this process: {message}");
    (ExitReason::Trap(message.clone()), Some(message))
}

/// The exit reason of a finished run, and for a trap the full report
/// (with the wasm backtrace) for the process's stderr.
fn classify(result: wasmtime::Result<()>, node: &Node) -> (ExitReason, Option<String>) {
    let Err(err) = result else { return (ExitReason::Returned, None) };
    if let Some(I32Exit(code)) = err.downcast_ref::<I32Exit>() {
        return (ExitReason::Exit(*code), None);
    }
    // Stopped by a signal or a limit: the run failed because of it.
    if let Some(reason) = node.stop_requested() {
        return (reason, None);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => (ExitReason::Limit(Limit::Stack), None),
        Some(Trap::OutOfFuel) => (ExitReason::Limit(Limit::Fuel), None),
        _ => (ExitReason::Trap(err.root_cause().to_string()), Some(crate::error::report(&err))),
    }
}
