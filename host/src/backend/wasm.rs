//! The wasm backend: each process is a wasmtime instance in its own
//! `Store`, run as one tokio task that owns the store, so ending the task
//! frees the instance and its memory.
//!
//! Stopping works on both paths a guest can be on: a guest running wasm
//! code (even a tight loop) traps at its next epoch check, which a signal
//! makes immediate by bumping the epoch; a guest parked in an async host
//! call (join, sleep, wait) is cancelled by dropping its future. A guest
//! that is not being polled when it is stopped is ended by the stop itself
//! ([`held_run`]).

pub(crate) mod code_cache;
pub(crate) mod connection_imports;
pub(crate) mod engines;
pub(crate) mod entry;
pub(crate) mod host_functions;
pub(crate) mod invocation;
mod held_run;
pub(crate) mod process_imports;
pub(crate) mod program;
mod synchronize_imports;
pub(crate) mod turns;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use tracing::Instrument;
use wasmtime::{AsContext, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};
use wmp_core::ProcessError;

use crate::base::exit::{ExitReason, Signal};
use crate::base::ledger::{Charge, Held};
use crate::base::limits::{GrowFailure, Limit};
use crate::base::metrics::Meter;
use crate::base::stdio::{Stdio, Stream};
use crate::model::builder::{Capabilities, LaunchSpec, Target};
use crate::ipc::inherit::Handles;
use crate::ipc::listener::Addresses;
#[cfg(feature = "cluster")]
use crate::model::launch::ProgramSource;
use crate::model::launch::{ProcessHost, Runnable};
use crate::backend::wasm::engines::{Engines, Seat};
use crate::backend::wasm::entry::Entry;
use crate::backend::wasm::program::{Code, Linkers, Program, ProgramKind};
use crate::model::registry::{Node, NodeSpec, Pid};
use held_run::HeldRun;
use turns::{Place, Turns};

/// What the wasm backend holds for all its processes: the engines and
/// linkers their programs are compiled and linked with, whether fuel is
/// metered, the turns at the CPU, and the names listeners hold.
pub(crate) struct WasmBackend {
    pub(crate) engines: Engines<Linkers>,
    fuel_metering: bool,
    turns: Turns,
    addresses: Arc<Addresses>,
    /// What the embedder gave its host functions to share
    /// ([`ComponentState::host_data`]).
    host_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl WasmBackend {
    /// A backend on `engines` whose guests take turns on `workers` threads,
    /// their host functions sharing `host_data`.
    pub(crate) fn new(
        engines: Engines<Linkers>,
        fuel_metering: bool,
        workers: usize,
        addresses: Arc<Addresses>,
        host_data: Option<Arc<dyn std::any::Any + Send + Sync>>,
    ) -> WasmBackend {
        WasmBackend { engines, fuel_metering, turns: Turns::new(workers), addresses, host_data }
    }

    /// `program`, as what a process runs on this backend.
    pub(crate) fn runnable(self: &Arc<Self>, program: &Program) -> Arc<dyn Runnable> {
        Arc::new(WasmRunnable { program: program.clone(), backend: self.clone() })
    }
}

/// A wasm program bound to the backend that runs it.
struct WasmRunnable {
    program: Program,
    backend: Arc<WasmBackend>,
}

impl Runnable for WasmRunnable {
    fn name(&self) -> String {
        self.program.name().to_owned()
    }

    fn check_target(&self, target: Option<&Target>) -> Result<(), ProcessError> {
        self.program.check_target(target)
    }

    #[cfg(feature = "cluster")]
    fn source(&self) -> Option<ProgramSource> {
        self.program.source().cloned()
    }

    fn launch(
        &self,
        host: &Arc<dyn ProcessHost>,
        parent: &Arc<Node>,
        who: NodeSpec,
        spec: LaunchSpec,
    ) -> Result<Arc<Node>, ProcessError> {
        let node = Node::new(Some(parent), host.registry().allocate_wasm_pid(), who);
        launch(&self.backend, host, node.clone(), &self.program, spec, Entry::Command).map(|()| node)
    }
}

/// What every guest store carries besides its WASI context: the process
/// it is, what its children inherit, and the guard of its memory limits.
pub(crate) struct GuestCtx {
    pub(crate) node: Arc<Node>,
    pub(crate) host: Arc<dyn ProcessHost>,
    pub(crate) backend: Arc<WasmBackend>,
    pub(crate) program: Program,
    pub(crate) caps: Capabilities,
    limiter: MemoryGuard,
    /// The arguments it was started with, charged to it while it runs.
    _arguments: Charge,
    /// Its place in the line for turns at the CPU.
    place: Arc<Place>,
}

impl GuestCtx {
    /// What this process runs, as what a child of it may run.
    pub(crate) fn own_program(&self) -> Arc<dyn Runnable> {
        self.backend.runnable(&self.program)
    }

    /// The names listeners hold in this runtime.
    pub(crate) fn addresses(&self) -> &Arc<Addresses> {
        &self.backend.addresses
    }

    /// Charges `bytes` of `what` to this process; past its host-memory
    /// budget, the process is stopped for it (as for any limit) and the
    /// call that asked traps.
    pub(crate) fn charge(&self, what: Held, bytes: usize) -> wasmtime::Result<Charge> {
        self.node.ledger.charge(what, bytes).map_err(|over| self.over_budget(over))
    }

    /// Stops the process for going over its budget; the error to trap with.
    pub(crate) fn over_budget(&self, over: crate::base::ledger::OverBudget) -> wasmtime::Error {
        self.node.stop(ExitReason::Limit(Limit::HostMemory));
        wasmtime::Error::new(over)
    }
}

/// Enforces a process's memory and table limits, each summed over all its
/// memories (tables), and does what its [`GrowFailure`] says with a growth
/// that fails: past a limit, past the declared maximum, or one the host
/// cannot allocate. It keeps the process's memory and table peaks in its
/// metrics.
struct MemoryGuard {
    node: Arc<Node>,
    memory: Allowance,
    tables: Allowance,
}

/// What a process has of one limit (bytes of memory, table elements), and
/// the growth wasmtime was last allowed. A refused growth (past the limit
/// or the declared maximum) is never counted. Of those allowed, wasmtime
/// fails only a memory growth the host cannot allocate, which is taken
/// back. It also fails some growths without asking first, which have
/// nothing to take back: any table growth it fails (its size overflowed),
/// and a memory growth past what the memory's type can hold
/// ([`UNASKED_MEMORY_GROWTH_FAILURE`]).
#[derive(Default)]
struct Allowance {
    used: usize,
    last_growth: usize,
    /// The most `used` has been, and what that was before the last growth.
    peak: usize,
    peak_before_last_growth: usize,
}

impl Allowance {
    /// Counts a growth by `growth` to `total`; the peak after it.
    fn allow(&mut self, total: usize, growth: usize) -> usize {
        self.used = total;
        self.last_growth = growth;
        self.peak_before_last_growth = self.peak;
        self.peak = self.peak.max(total);
        self.peak
    }

    /// Takes back the last growth, which wasmtime failed; the peak after it.
    fn take_back_last_growth(&mut self) -> usize {
        self.used -= std::mem::take(&mut self.last_growth);
        self.peak = self.peak_before_last_growth;
        self.peak
    }
}

/// Where the peak of `limit` (memory or tables) goes in a process's metrics.
fn record_peak(meter: &Meter, limit: Limit, peak: usize) {
    match limit {
        Limit::Table => meter.set_table_elements_peak(peak),
        _ => meter.set_memory_peak(peak),
    }
}

impl MemoryGuard {
    fn new(node: Arc<Node>) -> MemoryGuard {
        MemoryGuard { node, memory: Allowance::default(), tables: Allowance::default() }
    }

    fn on_failure(&self) -> GrowFailure {
        self.node.limits.on_grow_failure.unwrap_or(GrowFailure::Stop)
    }

    /// Whether one memory (table, as `limit` says) may grow from `current`
    /// to `desired`, past neither the process's limit nor its own declared
    /// `maximum`; counted if so.
    fn growing(&mut self, limit: Limit, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let on_failure = self.on_failure();
        let (allowance, max) = match limit {
            Limit::Table => (&mut self.tables, self.node.limits.max_table_elements),
            _ => (&mut self.memory, self.node.limits.max_memory),
        };
        let growth = desired.saturating_sub(current);
        let total = allowance.used.saturating_add(growth);
        let past_limit = max.filter(|&max| total > max);
        if let Some(max) = past_limit
            && on_failure == GrowFailure::Stop
        {
            self.node.stop(ExitReason::Limit(limit));
            return Err(wasmtime::format_err!("{limit} of {max} reached (asked for {total} in all)"));
        }
        if past_limit.is_some() || maximum.is_some_and(|maximum| desired > maximum) {
            return match on_failure {
                GrowFailure::Trap => Err(wasmtime::format_err!("forcing trap when growing {}", growing_to(limit, desired))),
                GrowFailure::Refuse | GrowFailure::Stop => Ok(false),
            };
        }
        record_peak(&self.node.meter, limit, allowance.allow(total, growth));
        Ok(true)
    }

    /// A growth wasmtime failed: under [`GrowFailure::Trap`] the failure
    /// traps, as wasmtime's `StoreLimits` makes it.
    fn failed(&self, limit: Limit, error: wasmtime::Error) -> wasmtime::Result<()> {
        match self.on_failure() {
            GrowFailure::Trap => Err(error.context(format!("forcing a {} growth failure to be a trap", grown(limit)))),
            GrowFailure::Refuse | GrowFailure::Stop => Ok(()),
        }
    }
}

/// wasmtime's words (`Memory::grow`) for a memory growth it fails without
/// asking the limiter: past the 4 GiB a 32-bit memory of 1-byte pages can
/// hold. Taking back the last growth for it would let a guest that
/// alternates it with real growths grow without bound.
const UNASKED_MEMORY_GROWTH_FAILURE: &str = "memory growth exceeds memory type's limits";

/// What grows under `limit`, in wasmtime's words.
fn grown(limit: Limit) -> &'static str {
    if limit == Limit::Table { "table" } else { "memory" }
}

/// "memory to N bytes", "table to N elements", as wasmtime says it.
fn growing_to(limit: Limit, desired: usize) -> String {
    let unit = if limit == Limit::Table { "elements" } else { "bytes" };
    format!("{} to {desired} {unit}", grown(limit))
}

impl wasmtime::ResourceLimiter for MemoryGuard {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.growing(Limit::Memory, current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if error.to_string() != UNASKED_MEMORY_GROWTH_FAILURE {
            record_peak(&self.node.meter, Limit::Memory, self.memory.take_back_last_growth());
        }
        self.failed(Limit::Memory, error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.growing(Limit::Table, current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.failed(Limit::Table, error)
    }
}

/// Store data of a component (WASI preview 2) guest.
pub struct ComponentState {
    pub(crate) guest: GuestCtx,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) target: Option<Target>,
    /// Connections and queues its parent passed to it, until it takes them.
    pub(crate) inherited: Handles,
    /// The charge of each handle to a host object in `table`, by its rep.
    held: HashMap<u32, Charge>,
}

impl ComponentState {
    /// Puts a host object in the guest's table, charged `bytes` of `what`
    /// until the guest drops the handle.
    pub(crate) fn hold<T: Send + 'static>(&mut self, what: Held, bytes: usize, value: T) -> wasmtime::Result<Resource<T>> {
        let charge = self.guest.charge(what, bytes)?;
        let handle = self.table.push(value)?;
        self.held.insert(handle.rep(), charge);
        Ok(handle)
    }

    /// Takes a host object out of the guest's table, giving back its charge
    /// if it has one.
    pub fn release<T: 'static>(&mut self, handle: Resource<T>) -> wasmtime::Result<T> {
        self.held.remove(&handle.rep());
        Ok(self.table.delete(handle)?)
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Store data of a core-module (WASI preview 1) guest.
pub struct ModuleState {
    guest: GuestCtx,
    pub(crate) wasi: WasiP1Ctx,
}

trait HasGuest: Send + 'static {
    fn guest(&self) -> &GuestCtx;
    fn guest_mut(&mut self) -> &mut GuestCtx;
}

impl HasGuest for ComponentState {
    fn guest(&self) -> &GuestCtx {
        &self.guest
    }

    fn guest_mut(&mut self) -> &mut GuestCtx {
        &mut self.guest
    }
}

impl HasGuest for ModuleState {
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

/// Launches `node` running `entry` of `program` with `spec`, on the runtime
/// or on the thread that joins it first (see `run_slot`). Only the main
/// process is launched at an entry other than its command.
pub(crate) fn launch(
    backend: &Arc<WasmBackend>,
    host: &Arc<dyn ProcessHost>,
    node: Arc<Node>,
    program: &Program,
    spec: LaunchSpec,
    entry: Entry,
) -> Result<(), ProcessError> {
    let report_to = TrapReport { stderr: spec.caps.stderr.clone(), program: program.name().to_owned() };
    let place = backend.turns.place();
    let run = prepare(backend, host, &node, program, spec, entry, place.clone())
        .map_err(|why| ProcessError::SpawnFailed(format!("cannot start process {}: {why}", node.name())))?;
    host.registry().add_live(&node);
    let held = HeldRun::new(run, place);
    let (backend, stopper, stopped) = (backend.clone(), host.clone(), held.clone());
    node.on_stop(Box::new(move |node| {
        // A running guest notices at its next epoch check: make that now.
        backend.engines.interrupt();
        end_at_once(&*stopper, &stopped, node);
    }));
    let parent = node.parent_pid;
    node.run.clone().launch(host.handle(), parent, Box::pin(supervise(host.clone(), node, report_to, held)));
    Ok(())
}

/// What a stop does beyond asking: if the guest is not being polled, its
/// run is dropped here (its store freed), its children are killed, and if
/// none of them still runs, its end is published before the stop returns.
/// Otherwise its task publishes the end, as soon as it is polled (a guest
/// being polled stops at its next epoch check, which the stop made
/// immediate) or its last child has ended.
fn end_at_once(host: &dyn ProcessHost, held: &HeldRun, node: &Node) {
    let Some(run) = held.take_if_idle() else { return };
    {
        // What the store holds (timers, sockets) may need the runtime to drop.
        let _runtime = host.handle().enter();
        drop(run);
    }
    let Some(reason) = node.stop_requested() else { return };
    let children = node.child_nodes();
    children.iter().for_each(|(child, _)| child.signal(Signal::Kill));
    if children.iter().all(|(child, _)| child.exit.is_set()) && held.claim_end() {
        node.children.lock().unwrap().clear();
        publish_end(host, node, reason);
    }
}

/// The end of a wasm process: out of the table, and counted by its
/// parent, before anyone waiting on the end can look.
fn publish_end(host: &dyn ProcessHost, node: &Node, reason: ExitReason) {
    host.registry().remove_live(node.pid);
    host.registry().end(node, reason);
}

fn prepare(
    backend: &Arc<WasmBackend>,
    host: &Arc<dyn ProcessHost>,
    node: &Arc<Node>,
    program: &Program,
    spec: LaunchSpec,
    entry: Entry,
    place: Arc<Place>,
) -> Result<GuestRun, String> {
    if let Entry::Command = entry {
        program.check_command()?;
    }
    if node.limits.fuel.is_some() && !backend.fuel_metering {
        return Err("a fuel limit needs a runtime with fuel metering (RuntimeBuilder::fuel_metering)".into());
    }
    let mut wasi = wasi_builder(&spec.caps, host.handle()).map_err(|e| e.to_string())?;
    let arguments = node.ledger.charge(Held::OwnName, spec.argument_bytes()).map_err(|over| over.to_string())?;
    let guest = GuestCtx {
        node: node.clone(),
        host: host.clone(),
        backend: backend.clone(),
        program: program.clone(),
        caps: spec.caps,
        limiter: MemoryGuard::new(node.clone()),
        _arguments: arguments,
        place,
    };
    // A seat in the pool if the program fits it and one is free, else on demand.
    let seat = program.is_pooled().then(|| backend.engines.seat()).flatten();
    let (engine, entry) = match (&seat, program.code_for(&backend.engines, seat.is_some())?) {
        (Some(_), _) => (&backend.engines.pooled().expect("a pooled program's engine").engine, entry),
        (None, Code::Component { pre, .. }) if program.is_pooled() => {
            (&backend.engines.on_demand()?.engine, entry.for_component(pre.component()).map_err(|e| e.to_string())?)
        }
        (None, _) => (&backend.engines.on_demand()?.engine, entry),
    };
    match program.kind() {
        ProgramKind::Component => {
            let state = ComponentState {
                guest,
                wasi: wasi.build(),
                table: ResourceTable::new(),
                target: spec.target,
                inherited: spec.inherited.take(),
                held: HashMap::new(),
            };
            Ok(Box::pin(run(Seated { store: new_store(backend, engine, state)?, seat }, entry)))
        }
        ProgramKind::Module => {
            let state = ModuleState { guest, wasi: wasi.build_p1() };
            Ok(Box::pin(run(Seated { store: new_store(backend, engine, state)?, seat }, entry)))
        }
    }
}

/// A program's instance in a store, and what runs its entry.
trait Instantiate: HasGuest + Sized {
    type Instance: Send;

    /// Instantiates `code` (of this store's kind) in `store`.
    fn instantiate<'a>(
        code: &'a Code,
        store: &'a mut Store<Self>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send + 'a;

    /// Runs `entry` of the instance.
    fn run_entry(
        entry: Entry,
        store: &mut Store<Self>,
        instance: Self::Instance,
    ) -> impl Future<Output = wasmtime::Result<()>> + Send + '_;
}

impl Instantiate for ComponentState {
    type Instance = (wasmtime::component::Instance, Result<wasmtime_wasi::p2::bindings::CommandIndices, String>);

    async fn instantiate<'a>(code: &'a Code, store: &'a mut Store<Self>) -> wasmtime::Result<Self::Instance> {
        let Code::Component { pre, command } = code else { wasmtime::bail!("a core module in a component's store") };
        Ok((pre.instantiate_async(store).await?, command.clone()))
    }

    fn run_entry(
        entry: Entry,
        store: &mut Store<Self>,
        (instance, command): Self::Instance,
    ) -> impl Future<Output = wasmtime::Result<()>> + Send + '_ {
        entry.run_component(store, instance, command)
    }
}

impl Instantiate for ModuleState {
    type Instance = wasmtime::Instance;

    async fn instantiate<'a>(code: &'a Code, store: &'a mut Store<Self>) -> wasmtime::Result<Self::Instance> {
        let Code::Module(pre) = code else { wasmtime::bail!("a component in a core module's store") };
        pre.instantiate_async(store).await
    }

    fn run_entry(
        entry: Entry,
        store: &mut Store<Self>,
        instance: Self::Instance,
    ) -> impl Future<Output = wasmtime::Result<()>> + Send + '_ {
        entry.run_module(store, instance)
    }
}

/// A process's store, and its seat in the pool if it has one, given back
/// only once the store has given its slots back (fields drop in order).
struct Seated<T: 'static> {
    store: Store<T>,
    seat: Option<Seat>,
}

/// A guest's whole run: its program instantiated in its store (on the
/// pooled engine if it has a seat), then `entry` run, and the fuel it used
/// recorded.
async fn run<T: Instantiate>(mut seated: Seated<T>, entry: Entry) -> wasmtime::Result<()> {
    let (backend, program) = (seated.store.data().guest().backend.clone(), seated.store.data().guest().program.clone());
    let code = program.code_for(&backend.engines, seated.seat.is_some()).map_err(wasmtime::Error::msg)?;
    let store = &mut seated.store;
    let ran = match T::instantiate(code, store).await {
        Ok(instance) => T::run_entry(entry, store, instance).await,
        Err(failed) => Err(failed),
    };
    record_fuel(&*store);
    ran
}

/// The WASI context of a process with `caps` (a stdin pipe is read on
/// `runtime`).
fn wasi_builder(
    caps: &Capabilities,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<wasmtime_wasi::WasiCtxBuilder> {
    let mut builder = wasmtime_wasi::WasiCtxBuilder::new();
    builder.args(&caps.args);
    for (key, value) in &caps.env {
        builder.env(key, value);
    }
    for dir in &caps.dirs {
        let perms = if dir.read_only {
            wasmtime_wasi::FsPerms::ReadOnly
        } else {
            wasmtime_wasi::FsPerms::ReadWrite
        };
        builder.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            std::io::Error::other(format!("cannot open directory {}: {e}", dir.host.display()))
        })?;
    }
    caps.stdin.attach(&mut builder, runtime).map_err(std::io::Error::other)?;
    if caps.network {
        builder.inherit_network().allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
    }
    caps.stdout.attach(&mut builder, Stream::Stdout);
    caps.stderr.attach(&mut builder, Stream::Stderr);
    Ok(builder)
}

/// A store on `engine` (one of the backend's) for a process with `state`:
/// its memory guard, fuel, and epoch deadline set.
fn new_store<T: HasGuest>(backend: &WasmBackend, engine: &wasmtime::Engine, state: T) -> Result<Store<T>, String> {
    let fuel = state.guest().node.limits.fuel;
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.guest_mut().limiter);
    if backend.fuel_metering {
        store.set_fuel(fuel.unwrap_or(u64::MAX)).map_err(|e| e.to_string())?;
        store.data().guest().node.meter.meter_fuel();
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        record_fuel(&ctx);
        if ctx.data().guest().node.stop_requested().is_some() {
            return Err(Trap::Interrupt.into());
        }
        // A guest that computed its whole slice waits for its next turn
        // (see turns.rs); a plain Yield would starve the timers of other
        // guests. One that waited for something since its last tick goes on.
        let place = &ctx.data().guest().place;
        if !place.slice_used_up() {
            return Ok(UpdateDeadline::Continue(1));
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(place.clone().next_turn())))
    });
    Ok(store)
}

/// Records in the guest's metrics the fuel it has consumed so far, when
/// fuel is metered (the store's fuel is what is left of its limit). The
/// store is asked only then: unmetered, `get_fuel` makes an error, and an
/// error captures a backtrace when `RUST_BACKTRACE` is set, which was 40%
/// of a minimal module's start+join.
fn record_fuel<T: HasGuest>(store: impl AsContext<Data = T>) {
    let store = store.as_context();
    let node = &store.data().guest().node;
    if node.meter.fuel_metered()
        && let Ok(left) = store.get_fuel()
    {
        node.meter.set_fuel_consumed(node.limits.fuel.unwrap_or(u64::MAX).saturating_sub(left));
    }
}

/// Where and how a trap is reported: on the process's stderr, as CPython
/// reports an uncaught exception (`Process <name>:` and the trap for a
/// child; for the main process, as `wasmtime run` reports it). The main
/// process's line about the children it waits for goes there too.
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
async fn supervise(host: Arc<dyn ProcessHost>, node: Arc<Node>, report_to: TrapReport, held: Arc<HeldRun>) {
    let timer = node.time_limit();
    // Entered around every poll of the guest; free without a subscriber.
    let span = tracing::info_span!(parent: None, "process", pid = node.pid, parent = node.parent_pid, name = %node.name());
    let guest = PanicGuard { held: &held, guest: node.pid, meter: &node.meter, handle: host.handle() };
    let (mut reason, report) = tokio::select! {
        biased;
        reason = node.stopped() => (reason, None),
        () = timer => (ExitReason::Limit(Limit::Timeout), None),
        result = guest.instrument(span) => match result {
            Ok(result) => classify(result, &node),
            Err(panic) => host_failure(&panic),
        },
    };
    // The store is freed before the end is published.
    drop(held.take());
    let stopped_by = if node.is_main() {
        let tell = |line: &str| report_to.stderr.write_host_message(Stream::Stderr, &format!("{line}\n"));
        crate::model::launch::end_children_of_main(&node, &reason, tell).await
    } else {
        crate::model::launch::end_children(&node, &reason).await
    };
    if let Some(stop) = stopped_by {
        reason = stop;
    }
    if !held.claim_end() {
        return; // a stop ended it at once
    }
    if let Some(report) = report {
        report_to.write(&node, &report);
    }
    publish_end(&*host, &node, reason);
}

/// Polls a guest's run (see `run_slot::poll_guest`, which counts its
/// time in `meter`), and turns a panic while running it (a bug in the host
/// or in wasmtime-wasi) into the end of that one process instead of a task
/// that never publishes its end.
struct PanicGuard<'a> {
    held: &'a HeldRun,
    guest: Pid,
    meter: &'a Meter,
    handle: &'a tokio::runtime::Handle,
}

impl Future for PanicGuard<'_> {
    type Output = std::thread::Result<wasmtime::Result<()>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let PanicGuard { held, guest, meter, handle } = *self;
        let run = std::pin::pin!(std::future::poll_fn(|cx| held.poll(cx)));
        let poll = || crate::base::run_slot::poll_guest(guest, meter, handle, run, cx);
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
    (ExitReason::Error(message.clone()), Some(message))
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
        // A trap, reported as one (CPython's RecursionError is an exception).
        Some(Trap::StackOverflow) => (ExitReason::Limit(Limit::Stack), Some(crate::base::error::report(&err))),
        Some(Trap::OutOfFuel) => (ExitReason::Limit(Limit::Fuel), None),
        Some(_) => (ExitReason::Trap(err.root_cause().to_string()), Some(crate::base::error::report(&err))),
        None => (ExitReason::Error(err.root_cause().to_string()), Some(crate::base::error::report(&err))),
    }
}

#[cfg(test)]
mod tests {
    use super::Allowance;

    #[test]
    fn a_growth_taken_back_takes_its_peak_back_too() {
        let mut memory = Allowance::default();
        assert_eq!(memory.allow(64, 64), 64, "the memory as it is created");
        assert_eq!(memory.allow(128, 64), 128);
        assert_eq!(memory.take_back_last_growth(), 64, "the failed growth never held its memory");
        assert_eq!(memory.used, 64);
        assert_eq!(memory.allow(96, 32), 96);
    }
}
