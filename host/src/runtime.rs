//! The runtime: one wasmtime `Engine`, one tokio runtime that runs every
//! guest as a task, the process table, and the main process that the
//! embedding host (or, under `wmp run`, the main guest) is.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Config;
use wmp_core::synchronize::{SEM_VALUE_MAX, SemLockKind};
use wmp_core::{AUTHKEY_LEN, AuthKey, ConnectionError, ProcessError};

use crate::backend::native::{NativeBackend, NativeProgram};
use crate::backend::wasm::WasmBackend;
use crate::backend::wasm::engines::{Engines, Layout};
use crate::backend::wasm::host_functions::{ComponentLinker, HostFunctions, ModuleLinker};
use crate::backend::wasm::entry::Entry;
use crate::backend::wasm::invocation::{Invocation, Invoked};
use crate::base::error::{Error, Result};
use crate::base::exit::{ExitReason, Signal};
use crate::base::ledger::{Charge, HostMemory};
use crate::base::limits::Limits;
use crate::base::metrics::ProcessMetrics;
use crate::base::program_file;
use crate::model::builder::{Capabilities, LaunchSpec, Placement, ProcessBuilder};
use crate::backend::wasm::code_cache::{CodeCache, CodeCacheDir, DEFAULT_CODE_CACHE_LIMIT};
use crate::model::handoff::Handoff;
use crate::ipc::connection::{Connection, PIPE_CAPACITY};
use crate::ipc::listener::{Addresses, Listener};
use crate::ipc::queue::Queue;
use crate::ipc::semlock::SemLock;
use crate::ipc::shared_memory::SharedMemory;
use crate::ipc::sentinel::{Sentinel, wait_any, wait_blocking};
use crate::ipc::wait::{Waitable, wait_ready};
use crate::model::launch::{ProcessHost, Runnable};
use crate::model::process::Process;
use crate::backend::wasm::program::{self, Program};
use crate::model::registry::{Node, NodeSpec, Pid, Record, Registry};

/// The runtime's own state, behind every process object as its
/// [`ProcessHost`]: the process table, the tokio runtime, the backends,
/// and the embedding host's policy (which programs guests may start,
/// where code is cached, how large a program file may be).
pub(crate) struct Shared {
    handle: tokio::runtime::Handle,
    registry: Registry,
    wasm: Arc<WasmBackend>,
    native: Arc<NativeBackend>,
    /// Names that listeners hold (the wasm backend's guests share them).
    addresses: Arc<Addresses>,
    code_cache: Option<CodeCacheDir>,
    max_program_size: u64,
    /// Programs guests may start by name besides their own.
    programs_for_guests: Mutex<HashMap<String, Arc<dyn Runnable>>>,
    shut_down: AtomicBool,
    /// Where processes placed on the cluster run, if the runtime has one.
    #[cfg(feature = "cluster")]
    remote: Option<crate::backend::remote::RemoteBackend>,
}

impl ProcessHost for Shared {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    fn program_for_guests(&self, name: &str) -> Option<Arc<dyn Runnable>> {
        self.programs_for_guests.lock().unwrap().get(name).cloned()
    }

    fn place(&self, program: &Arc<dyn Runnable>, placement: &Placement) -> std::result::Result<Arc<dyn Runnable>, ProcessError> {
        match placement {
            Placement::Local => Ok(program.clone()),
            #[cfg(feature = "cluster")]
            Placement::Cluster { resource } if self.remote.is_some() => {
                self.remote.as_ref().expect("checked").runnable(program, resource.clone())
            }
            Placement::Cluster { .. } => Err(ProcessError::SpawnFailed(
                "cannot place a process on a cluster: this runtime has none (RuntimeBuilder::cluster, feature `cluster`)"
                    .into(),
            )),
        }
    }
}

impl Shared {

    fn share(&self, name: &str, program: Arc<dyn Runnable>) {
        self.programs_for_guests.lock().unwrap().insert(name.to_owned(), program);
    }
}

/// `multiprocessing.Condition` over the host's semaphore locks.
pub type Condition = wmp_core::synchronize::Condition<SemLock>;
/// `multiprocessing.Event` over the host's semaphore locks.
pub type Event = wmp_core::synchronize::Event<SemLock>;
/// `multiprocessing.Barrier` over the host's semaphore locks and shared memory.
pub type Barrier = wmp_core::synchronize::Barrier<SemLock, SharedMemory>;

/// One process, as [`Runtime::process_tree`] lists a running one and
/// [`Runtime::ended_processes`] an ended one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: Pid,
    pub parent_pid: Option<Pid>,
    pub name: String,
    pub identity: Vec<u32>,
    pub daemon: bool,
    /// A stop (terminate or kill) was asked for and is under way.
    pub stopping: bool,
    /// How it ended; None while it runs.
    pub exit_reason: Option<ExitReason>,
    /// What the host holds on its behalf, against its budget (after its
    /// end, what is still held: messages it put that nobody took yet).
    pub host_memory: HostMemory,
    /// What it has used: CPU time, fuel, memory peaks, IPC bytes.
    pub metrics: ProcessMetrics,
}

impl ProcessInfo {
    fn of(record: &Record) -> ProcessInfo {
        ProcessInfo {
            pid: record.pid,
            parent_pid: record.parent_pid,
            name: record.name.clone(),
            identity: record.identity.clone(),
            daemon: record.daemon,
            stopping: record.stopping,
            exit_reason: record.exit.clone(),
            host_memory: record.ledger.usage(),
            metrics: record.meter.read(record.ledger.peak()),
        }
    }
}

/// Configures a [`Runtime`].
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    worker_threads: Option<usize>,
    cache: CodeCache,
    cache_limit: Option<u64>,
    limits: Limits,
    fuel_metering: bool,
    max_wasm_stack: Option<usize>,
    wasmtime_config: Option<Config>,
    pooling: Option<u32>,
    dense_layout: bool,
    max_live_processes: Option<usize>,
    max_program_size: Option<u64>,
    handoff: Option<Handoff>,
    host_functions: HostFunctions,
    keep_ended: usize,
    #[cfg(feature = "cluster")]
    cluster: Option<crate::backend::remote::Cluster>,
    /// Where its wasm pids start (a node agent's are apart).
    first_wasm_pid: Option<Pid>,
}

/// Memory mappings one live process may need (linear memory and its guard,
/// fiber stack and its guard, instance data); measured at about 7 for a
/// Rust wasip2 guest.
const MAPPINGS_PER_PROCESS: usize = 8;

/// Mappings kept free for the host itself (its heap, threads, libraries).
const MAPPINGS_FOR_THE_HOST: usize = 4096;

/// How many processes have a slot in the pool unless
/// [`RuntimeBuilder::pooling`] says otherwise (or the live-process cap is
/// lower): enough for a wide tree of short-lived processes to start fast,
/// while what the pool maps when the runtime is built stays small (a
/// fiber stack's mapping and guard page per slot, under a millisecond).
pub const DEFAULT_POOL_SLOTS: u32 = 256;

/// How many processes can be alive at once before the kernel's limit on
/// memory mappings (`vm.max_map_count`) is reached: past it, every mmap
/// fails, the host's own allocations included, and the host aborts.
fn default_max_live_processes() -> usize {
    mappings_for_processes() / MAPPINGS_PER_PROCESS
}

/// The kernel's limit on memory mappings (`vm.max_map_count`), less what
/// the host keeps for itself.
fn mappings_for_processes() -> usize {
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    max_map_count.saturating_sub(MAPPINGS_FOR_THE_HOST)
}

/// Mappings a live process of the dense layout adds in the host's own
/// allocator, at most: measured, 20,000 sleeping minimal guests added 8
/// mappings in all, slabs included (adjacent slabs merge); a glibc arena
/// adds two per 64 MiB heap, about 1,500 processes' worth.
const DENSE_HOST_MAPPINGS_PER_PROCESS: f64 = 0.01;

/// Address space the dense layout's slots may take in all: half of the
/// 128 TiB a Linux process has on x86-64 (47-bit addresses).
const ADDRESS_SPACE_FOR_SLOTS: usize = 64 << 40;

/// How many processes of the dense layout can be alive at once, each with
/// a memory slot of `memory_slot` bytes (one memory: a program with more
/// takes more) and a fiber stack of `stack` bytes: as many as the kernel's
/// mapping limit allows, counting for each process its share of the slabs
/// its slots are carved from (a whole slab when a slot is one) and
/// [`DENSE_HOST_MAPPINGS_PER_PROCESS`], and whose slots fit in
/// [`ADDRESS_SPACE_FOR_SLOTS`].
fn dense_max_live_processes(memory_slot: usize, stack: usize) -> usize {
    let slab_share = |slot| 1.0 / crate::base::slabs::slots_per_slab(slot) as f64;
    let mappings_each = slab_share(memory_slot) + slab_share(stack) + DENSE_HOST_MAPPINGS_PER_PROCESS;
    let by_mappings = (mappings_for_processes() as f64 / mappings_each) as usize;
    let by_address_space = ADDRESS_SPACE_FOR_SLOTS / memory_slot.saturating_add(stack).max(1);
    by_mappings.min(by_address_space)
}

/// A wasm page: what the dense layout rounds a memory slot up to.
const WASM_PAGE: usize = 64 << 10;

/// wasmtime's `async_stack_size` unless set: a guest's fiber stack.
const WASMTIME_ASYNC_STACK_SIZE: usize = 2 << 20;

/// What a fiber stack has beside `max_wasm_stack` when wmp sets that: room
/// for the host code that runs on the stack below the wasm frames.
const FIBER_STACK_FOR_THE_HOST: usize = 1 << 20;

impl RuntimeBuilder {
    /// Threads that run guests (default: one per core).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads.max(1));
        self
    }

    /// Where compiled code is kept between runs (default: nowhere).
    pub fn code_cache(mut self, cache: CodeCache) -> Self {
        self.cache = cache;
        self
    }

    /// Most bytes the code cache's entries may take together, those of
    /// other engine settings included (default [`DEFAULT_CODE_CACHE_LIMIT`]):
    /// storing an entry past it removes the least recently used others.
    pub fn code_cache_limit(mut self, bytes: u64) -> Self {
        self.cache_limit = Some(bytes);
        self
    }

    /// Limits of the main process, and so of every process in the runtime
    /// (each child inherits its parent's and can only narrow them).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Count fuel in every guest, so that [`Limits::fuel`] can be used
    /// (on whenever the runtime's own limits have fuel). Metering costs
    /// some speed in all guests.
    pub fn fuel_metering(mut self, on: bool) -> Self {
        self.fuel_metering = on;
        self
    }

    /// How many processes alive at once have a slot in wasmtime's pooling
    /// allocator (default: [`DEFAULT_POOL_SLOTS`], or the live-process cap
    /// if it is lower). A slot's memories, tables, instance data and fiber
    /// stack are mapped once, when the runtime is built, and reused by one
    /// process after another, so a process with a slot starts without
    /// mapping or unmapping anything. A process that finds every slot taken,
    /// or whose program fits no slot (more than one memory or eight tables
    /// in a core module, a table of more than a million elements), runs on
    /// wasmtime's on-demand allocator instead, as fast as before pooling:
    /// the pool bounds how many processes start fast, never how many may
    /// be alive ([`max_live_processes`](Self::max_live_processes) does).
    /// `pooling(0)` turns the pool off: every process runs on demand.
    ///
    /// The pool reserves address space only (4 GiB and a guard per memory
    /// slot unless [`Limits::max_memory`] is set, two memory slots per
    /// process slot) and a mapping per fiber stack and its guard page. A
    /// memory in a slot cannot grow past the memory reservation, so a
    /// [`wasmtime_config`](Self::wasmtime_config) that reserves less than
    /// the most a memory may have (the memory limit, or 4 GiB) has no pool.
    pub fn pooling(mut self, slots: u32) -> Self {
        self.pooling = Some(slots);
        self
    }

    /// Lays processes out densely, so that many more can be alive at once
    /// under the kernel's limit on memory mappings (`vm.max_map_count`;
    /// default: off, the guarded layout). In the guarded layout each live
    /// process has mappings of its own, since a guard region never merges
    /// with what it guards: its linear memory and the guard regions beside
    /// it, its fiber stack and the guard page below (about 5 for a minimal
    /// module, 7 for a Rust SDK guest), so by default at most
    /// `vm.max_map_count / 8` processes are alive. In the dense layout the
    /// memories and fiber stacks are slots carved out of large shared
    /// mappings (`MAP_NORESERVE`: address space, and memory only for the
    /// pages touched), with no guard regions between them, so a live
    /// process maps nothing of its own, and the live cap is set by what
    /// the layout takes instead (see
    /// [`max_live_processes`](Self::max_live_processes)): 100,000 minimal
    /// guests with a 1 MiB memory limit fit under the default
    /// `vm.max_map_count` of 65,530.
    ///
    /// What it costs:
    /// - The compiled code checks every memory access against the memory's
    ///   size (no guard region can catch one past its end), so compute on
    ///   memory runs slower: the sort in `cargo bench --bench compare` took
    ///   1.4 times as long as in the guarded layout without a memory limit
    ///   (whose 4 GiB reservations need no checks), and 1.2 times as long
    ///   as in the guarded layout with the same limit (whose 64 KiB guard
    ///   region spares the checks of small offsets).
    ///   Code compiled for one layout does not load in the other (a code
    ///   cache shared by both keeps an entry for each).
    /// - A memory is at most a slot, and every memory reserves a whole slot
    ///   of address space: [`Limits::max_memory`] sets its size (rounded
    ///   up to a 64 KiB wasm page), and [`build`](Self::build) refuses a
    ///   dense runtime without it. A growth past the slot fails as one
    ///   past a memory's maximum (`memory.grow` returns -1); the memory
    ///   limit, which a slot is as large as, is met first.
    /// - No instance pool (its slots are guarded: [`pooling`](Self::pooling)
    ///   is not used) and no copy-on-write memory images: a program's data
    ///   segments are copied into each new memory, so a program with a
    ///   large initial image (a pre-initialized interpreter) starts slower.
    /// - A fiber stack has no guard page. Wasm code cannot overflow it:
    ///   wasmtime checks its depth in software ([`max_wasm_stack`](Self::max_wasm_stack),
    ///   [`Limit::Stack`](crate::Limit::Stack)). Host code running on the
    ///   stack (WASI, wmp's imports, host functions) has the rest,
    ///   `async_stack_size - max_wasm_stack` bytes below the deepest wasm
    ///   frame (1.5 MiB with wasmtime's defaults, 1 MiB once
    ///   `max_wasm_stack` is set); a host function that went past them
    ///   would write into the stack of another process instead of
    ///   faulting.
    ///
    /// A freed slot's touched pages are given back to the kernel before
    /// another process takes it, so a process finds its memory zeroed,
    /// as in the guarded layout.
    pub fn dense_layout(mut self, on: bool) -> Self {
        self.dense_layout = on;
        self
    }

    /// Most processes alive at once in the whole runtime besides the main
    /// process; a start past it
    /// fails like a start past [`Limits::max_processes`]. The default keeps
    /// the host clear of the kernel's memory-mapping limit
    /// (`vm.max_map_count / 8`, about 7,700 on a default Linux); raise that
    /// sysctl to run more. In the [dense layout](Self::dense_layout) the
    /// default is what the address space its slots take and the few
    /// mappings a process adds there allow instead.
    pub fn max_live_processes(mut self, max: usize) -> Self {
        self.max_live_processes = Some(max);
        self
    }

    /// Most bytes a program file may have ([`Runtime::load`] and
    /// [`Runtime::load_precompiled`] refuse a larger one with
    /// [`Error::ProgramTooLarge`]); default [`DEFAULT_MAX_PROGRAM_SIZE`](crate::DEFAULT_MAX_PROGRAM_SIZE).
    pub fn max_program_size(mut self, bytes: u64) -> Self {
        self.max_program_size = Some(bytes);
        self
    }

    /// Most bytes of native stack wasm code may use; deeper recursion ends
    /// the process with [`Limit::Stack`](crate::Limit::Stack).
    pub fn max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = Some(bytes);
        self
    }

    /// The wasmtime settings to start from: compiler, optimisation, proposals,
    /// memory layout, debug info (as `wasmtime run`'s `-O`, `-C`, `-D` and
    /// `-W` flags make them). [`build`](Self::build) refuses a configuration
    /// that turns epoch interruption off (kills and turns need it); async
    /// support is always on in wasmtime 48 (`Config::async_support` does
    /// nothing). Fuel metering is on if the configuration turns
    /// `consume_fuel` on. The runtime then sets what its process model
    /// needs over them: epoch interruption, fuel metering
    /// when [`fuel_metering`](Self::fuel_metering) or a fuel limit asks for
    /// it, the wasm and fiber stack sizes when
    /// [`max_wasm_stack`](Self::max_wasm_stack) is set, the memory
    /// reservation when [`Limits::max_memory`] is set, and the instance
    /// allocator ([`pooling`](Self::pooling), falling back to recycled
    /// fiber stacks; an allocation strategy set in `config` is not used).
    pub fn wasmtime_config(mut self, config: Config) -> Self {
        self.wasmtime_config = Some(config);
        self
    }

    /// Adds host functions that components may import: `define` is given
    /// the linker after WASI and `wmp:process` are on it, and defines
    /// functions with wasmtime's typed API (`linker.instance("my:host/api")?
    /// .func_wrap("log", ...)`, `func_wrap_async` for async ones, or a
    /// `bindgen!`-generated `add_to_linker` over [`ComponentState`](crate::ComponentState)).
    /// Each function sees its caller as [`ComponentState::process`](crate::ComponentState::process). A component
    /// importing what no linker defines is refused by [`Runtime::load`].
    ///
    /// An async function is cancelled (its future dropped) when its caller
    /// is killed; a sync one runs on a runtime worker, so it must not block.
    ///
    /// `define` may run more than once: on the pooled engine's linker when
    /// the runtime is built, and on the on-demand engine's when that is
    /// first needed (see [`pooling`](Self::pooling)), so it is an `Fn` that
    /// clones what its functions capture.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = wmp_host::Runtime::builder()
    ///     .component_functions(|linker| {
    ///         linker.instance("example:plugin/host")?.func_wrap(
    ///             "log",
    ///             |store: wasmtime::StoreContextMut<'_, wmp_host::ComponentState>, (line,): (String,)| {
    ///                 println!("[{}] {line}", store.data().process().name());
    ///                 Ok(())
    ///             },
    ///         )
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn component_functions(
        mut self,
        define: impl Fn(&mut ComponentLinker) -> wasmtime::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.host_functions.component.push(Box::new(define));
        self
    }

    /// A value every host function can reach from its store
    /// ([`ComponentState::host_data`](crate::ComponentState::host_data)):
    /// the embedder's state for host implementations that cannot capture
    /// it, such as `bindgen!`'s `Host` traits implemented for
    /// `ComponentState`. Shared by all processes; key it by
    /// [`CallingProcess::pid`](crate::CallingProcess::pid) for state per
    /// process.
    pub fn host_data(mut self, data: impl std::any::Any + Send + Sync) -> Self {
        self.host_functions.data = Some(Arc::new(data));
        self
    }

    /// Adds host functions that core modules may import, as
    /// [`component_functions`](Self::component_functions) does for
    /// components (and may run as many times); each sees its caller as
    /// [`ModuleState::process`](crate::ModuleState::process).
    pub fn module_functions(
        mut self,
        define: impl Fn(&mut ModuleLinker) -> wasmtime::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.host_functions.module.push(Box::new(define));
        self
    }

    /// Keeps the records of the last `max` processes that end, for
    /// [`Runtime::ended_processes`] (none by default; older records are
    /// dropped first, so the memory they take stays bounded: a few hundred
    /// bytes each). `wmp run --stats` keeps them to print the whole tree.
    pub fn keep_ended_processes(mut self, max: usize) -> Self {
        self.keep_ended = max;
        self
    }

    /// Makes the main process the one a wmp runtime started natively and
    /// handed this identity ([`Handoff::from_environment`]): its name,
    /// identity, daemon flag, authkey and parent; `wmp-guest` does this in
    /// a native program.
    /// Its limits narrow this builder's: a native tree keeps the limits of
    /// the tree it was started from.
    pub fn handoff(mut self, handoff: Handoff) -> Self {
        self.limits = self.limits.narrowed_by(&handoff.limits);
        self.handoff = Some(handoff);
        self
    }

    /// Lets processes be placed on `cluster`'s nodes
    /// ([`Placement::Cluster`](crate::Placement::Cluster)); they run here
    /// unless placed.
    #[cfg(feature = "cluster")]
    pub fn cluster(mut self, cluster: crate::backend::remote::Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// A node agent's runtime: its own processes' pids start at `first`,
    /// clear of the pids its processes were given by their runtime.
    #[cfg(feature = "cluster")]
    pub(crate) fn first_wasm_pid(mut self, first: Pid) -> Self {
        self.first_wasm_pid = Some(first);
        self
    }

    pub fn build(mut self) -> Result<Runtime> {
        let setup = |e: wasmtime::Error| Error::Setup(crate::base::error::one_line(&e));
        let asked = self.wasmtime_config.as_ref().map(ConfigChoices::of).transpose()?.unwrap_or_default();
        let fuel_metering = self.fuel_metering || self.limits.fuel.is_some() || asked.fuel;
        // The main process's budget is the whole runtime's (plus one: the
        // budget counts the main process itself).
        let dense_memory_slot = self.dense_memory_slot()?;
        let layout_max_live = match dense_memory_slot {
            Some(memory_slot) => dense_max_live_processes(memory_slot, self.fiber_stack_size()),
            None => default_max_live_processes(),
        };
        let max_live = self.max_live_processes.unwrap_or(layout_max_live).saturating_add(1);
        let main_limits = Limits {
            max_processes: Some(self.limits.max_processes.map_or(max_live, |m| m.min(max_live))),
            ..self.limits.clone()
        };
        let layout = match dense_memory_slot {
            Some(memory_slot) => Layout::Dense { memory_slot },
            None => Layout::Guarded { pool: self.guarded_pool(&asked, max_live) },
        };
        let host_data = self.host_functions.data.take();
        let config = self.engine_config(fuel_metering);
        let host_functions = std::mem::take(&mut self.host_functions);
        let make_linkers = Box::new(move |engine: &wasmtime::Engine| host_functions.linkers(engine));
        let engines = Engines::new(config, layout, make_linkers).map_err(setup)?;
        let cache_limit = self.cache_limit.unwrap_or(DEFAULT_CODE_CACHE_LIMIT);
        let code_cache = self.cache.directory().map(|dir| CodeCacheDir::new(dir, &engines.first().engine, cache_limit));
        let tokio = tokio_runtime(self.worker_threads)?;
        let addresses = Arc::<Addresses>::default();
        let workers = tokio.metrics().num_workers();
        let wasm = WasmBackend::new(engines, fuel_metering, workers, addresses.clone(), host_data);
        let shared = Arc::new(Shared {
            handle: tokio.handle().clone(),
            registry: Registry::numbering_from(self.first_wasm_pid.unwrap_or(crate::FIRST_WASM_PID))
                .keeping_ended(self.keep_ended),
            wasm: Arc::new(wasm),
            native: Arc::default(),
            addresses,
            code_cache,
            max_program_size: self.max_program_size.unwrap_or(crate::DEFAULT_MAX_PROGRAM_SIZE),
            programs_for_guests: Mutex::default(),
            shut_down: AtomicBool::new(false),
            #[cfg(feature = "cluster")]
            remote: self
                .cluster
                .map(|cluster| crate::backend::remote::RemoteBackend::new(cluster, tokio.handle()))
                .transpose()
                .map_err(Error::Setup)?,
        });
        let (main, parent) = main_process(&shared, self.handoff, main_limits)?;
        Ok(Runtime { shared, main, _parent: parent, tokio: Some(tokio) })
    }

    /// The guarded layout's pool and how many processes it has room for
    /// (with `max_live` processes alive at most), or None if it pools
    /// nothing.
    fn guarded_pool(&self, asked: &ConfigChoices, max_live: usize) -> Option<(wasmtime::PoolingAllocationConfig, u32)> {
        // A memory in a slot cannot grow past the slot, which is at most the
        // memory reservation: pooled only where that is the most a memory
        // may have anyway (the memory limit, or 4 GiB).
        // (A memory limit sets the reservation to itself: see engine_config.)
        let most_memory = self.limits.max_memory.map_or(1 << 32, |max| (max as u64).min(1 << 32));
        let reserves_less = self.limits.max_memory.is_none() && asked.memory_reservation.is_some_and(|r| r < most_memory);
        let slots = match reserves_less {
            true => 0,
            false => self.pooling.unwrap_or_else(|| DEFAULT_POOL_SLOTS.min(u32::try_from(max_live).unwrap_or(u32::MAX))),
        };
        (slots > 0).then(|| (self.pool_config(slots, most_memory), slots))
    }

    /// The size of a memory slot in the dense layout (the memory limit,
    /// rounded up to a wasm page), or None in the guarded one; an error
    /// for a dense layout without a memory limit.
    fn dense_memory_slot(&self) -> Result<Option<usize>> {
        if !self.dense_layout {
            return Ok(None);
        }
        let max_memory = self.limits.max_memory.ok_or_else(|| {
            Error::Setup(
                "the dense layout needs a memory limit (Limits::max_memory): each memory is a slot of that size, \
                 with no guard region, and cannot grow past it"
                    .into(),
            )
        })?;
        Ok(Some(max_memory.max(1).next_multiple_of(WASM_PAGE)))
    }

    /// The size of a guest's fiber stack, as [`engine_config`](Self::engine_config)
    /// sets it (or wasmtime's default, unless the embedder's wasmtime
    /// configuration set another).
    fn fiber_stack_size(&self) -> usize {
        self.max_wasm_stack.map_or(WASMTIME_ASYNC_STACK_SIZE, |stack| stack + FIBER_STACK_FOR_THE_HOST)
    }

    /// The wasmtime configuration of both engines: the one given, or
    /// wasmtime's defaults, with epoch interruption (for kills and turns),
    /// fuel if metered, and the stack and memory limits (`engines.rs` sets
    /// the allocator of each).
    fn engine_config(&self, fuel_metering: bool) -> Config {
        let mut config = self.wasmtime_config.clone().unwrap_or_default();
        config.epoch_interruption(true).consume_fuel(fuel_metering);
        if let Some(stack) = self.max_wasm_stack {
            // Guests run on fiber stacks, which must hold the wasm stack.
            config.max_wasm_stack(stack).async_stack_size(self.fiber_stack_size());
        }
        if let Some(max_memory) = self.limits.max_memory {
            // No memory may grow past the limit, so reserve no more address
            // space than that: many more processes then fit. (The dense
            // layout reserves none: engines.rs.) Every memory then has room
            // to grow to the limit where it is, so none ever moves, and the
            // code need not reload a memory's base after each call that
            // might have grown it: a sort under a 64 MiB limit took 45 ms
            // against 66 (38 with no limit).
            config.memory_reservation(max_memory as u64).memory_guard_size(64 << 10).memory_may_move(false);
        }
        config
    }

    /// The pool of `slots` processes, each with room for one program: a
    /// component of up to 8 core instances (a Rust wasip2 component holds
    /// several: its module, the WASI adapter's, shims), 2 memories and 8
    /// tables in all, or a core module of one memory and 8 tables; memories
    /// of up to `max_memory` bytes (what a 32-bit memory can hold, or the
    /// memory limit), and tables
    /// of up to a million elements (a table's minimum is checked when a
    /// program is loaded, and one that grows past its slot fails to grow,
    /// as past its maximum). A program needing more runs on demand. A freed
    /// slot keeps the first 64 KiB of each memory (16 KiB of each table)
    /// resident and zeroes what was written there, so the next process in it
    /// takes fewer page faults (a Rust SDK guest started 14% faster); on
    /// Linux 6.7 and later the kernel's `PAGEMAP_SCAN` tells it which pages
    /// were written, so only those are reset (an SDK guest's start+join then
    /// took 11.5 µs against 25–26 µs, a minimal module's 5.0 against 5.6).
    fn pool_config(&self, slots: u32, max_memory: u64) -> wasmtime::PoolingAllocationConfig {
        const CORE_INSTANCES: u32 = 8;
        const MEMORIES: u32 = 2;
        const TABLES: u32 = 8;
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES))
            .total_memories(slots.saturating_mul(MEMORIES))
            .total_tables(slots.saturating_mul(TABLES))
            .total_stacks(slots)
            .max_core_instances_per_component(CORE_INSTANCES)
            .max_memories_per_component(MEMORIES)
            .max_tables_per_component(TABLES)
            .max_tables_per_module(TABLES)
            .table_elements(POOLED_TABLE_ELEMENTS)
            .max_memory_size(usize::try_from(max_memory).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        pool
    }
}

/// Most elements a table in a pool slot may have.
const POOLED_TABLE_ELEMENTS: usize = 1 << 20;

/// What an embedder's wasmtime configuration chose that the runtime must
/// heed. A `Config` has no getters (an `Engine` has, but building one
/// from the embedder's settings could reserve a whole pool): its `Debug`
/// lists the settings made explicitly (`epoch_interruption: false`), which
/// is what is read; wasmtime is pinned, and a test per setting keeps it so.
#[derive(Default)]
struct ConfigChoices {
    /// `consume_fuel(true)`: the embedder meters fuel.
    fuel: bool,
    /// `memory_reservation(bytes)`, if set.
    memory_reservation: Option<u64>,
}

impl ConfigChoices {
    fn of(config: &Config) -> Result<ConfigChoices> {
        let settings = format!("{config:?}");
        if settings.contains("epoch_interruption: false") {
            return Err(Error::Setup(
                "the wasmtime configuration turns epoch interruption off: wmp needs it to stop a process at any \
                 instruction and to share the CPU among processes (leave Config::epoch_interruption unset)"
                    .into(),
            ));
        }
        let memory_reservation = settings.split_once("memory_reservation: ").and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|digits| digits.parse().ok())
        });
        Ok(ConfigChoices { fuel: settings.contains("consume_fuel: true"), memory_reservation })
    }
}

/// A process started natively by a wmp runtime ends like a kill when it is
/// stopped (it hit a limit of its tree), taking its children with it.
fn end_this_process_when_stopped(shared: &Shared, main: &Arc<Node>) {
    let main = main.clone();
    shared.handle.spawn(async move {
        let reason = main.stopped().await;
        tracing::debug!(%reason, "this process is stopped");
        crate::model::launch::end_children(&main, &reason).await;
        kill_this_process();
    });
}

fn kill_this_process() -> ! {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL cannot be caught")
}

/// The parent of a process started natively by a wmp runtime, as far as
/// it can see it: name, identity and pid from the handoff, and an end
/// published when the OS process that started it (the parent, or the host
/// running a wasm parent) exits, watched through a pidfd.
fn parent_view(shared: &Shared, handoff: &Handoff) -> Arc<Node> {
    let authkey = AuthKey::new(handoff.authkey.clone());
    let parent = view_of_parent(&handoff.identity, &handoff.parent_name, handoff.parent_pid, authkey);
    let starter = handoff.host_pid;
    let still_my_parent = || std::os::unix::process::parent_id() == starter;
    let watch = if still_my_parent() { crate::backend::native::pidfd_open(starter).ok() } else { None };
    // Checked again once the pidfd is open: it then names the live parent.
    match watch.filter(|_| still_my_parent()) {
        None => parent.exit.publish(ExitReason::Returned),
        Some(pidfd) => {
            let _runtime = shared.handle.enter();
            // SAFETY: the AsyncFd owns the pidfd for as long as it is registered.
            match unsafe { tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) } {
                Ok(exited) => {
                    let parent = parent.clone();
                    shared.handle.spawn(async move {
                        let _ = exited.readable().await;
                        parent.exit.publish(ExitReason::Returned);
                    });
                }
                Err(_) => parent.exit.publish(ExitReason::Returned),
            }
        }
    }
    parent
}

/// The node that stands for the parent, in another OS process, of the
/// process whose identity is `child_identity`: its name, pid and authkey,
/// and no limits of its own; only a watcher of that process, if any,
/// publishes its end.
fn view_of_parent(child_identity: &[u32], name: &str, pid: Pid, authkey: AuthKey) -> Arc<Node> {
    let identity = child_identity.split_last().map(|(_, parent)| parent.to_vec()).unwrap_or_default();
    let who = NodeSpec { identity, name: name.to_owned(), daemon: false, authkey, limits: Limits::default() };
    Node::new(None, pid, who)
}

fn random_authkey() -> Result<AuthKey> {
    let mut key = [0u8; AUTHKEY_LEN];
    getrandom::fill(&mut key).map_err(|e| Error::Setup(format!("no randomness for the authkey: {e}")))?;
    Ok(AuthKey::new(key))
}

/// The tokio runtime the processes run on: `threads` workers (tokio's
/// default: one per core), with timers and I/O.
fn tokio_runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut tokio = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        tokio.worker_threads(threads);
    }
    tokio
        .thread_name("wmp-worker")
        .enable_all() // timers for sleeps and timeouts, I/O for WASI sockets
        .build()
        .map_err(|e| Error::Setup(format!("cannot start the tokio runtime: {e}")))
}

/// The main process, and the view of its parent if it has one. The main
/// process is the host process: its pid is the OS pid. A process a wmp
/// runtime started natively is who the handoff says, below a view of its
/// parent.
fn main_process(
    shared: &Arc<Shared>,
    handoff: Option<Handoff>,
    limits: Limits,
) -> Result<(Arc<Node>, Option<Arc<Node>>)> {
    let Some(handoff) = handoff else {
        let who = NodeSpec {
            identity: Vec::new(),
            name: wmp_core::naming::default_name(&[]),
            daemon: false,
            authkey: random_authkey()?,
            limits,
        };
        return Ok((Node::new(None, std::process::id(), who), None));
    };
    let parent = parent_view(shared, &handoff);
    let who = NodeSpec {
        identity: handoff.identity,
        name: handoff.name,
        daemon: handoff.daemon,
        authkey: AuthKey::new(handoff.authkey),
        limits,
    };
    let main = Node::new(Some(&parent), std::process::id(), who);
    end_this_process_when_stopped(shared, &main);
    Ok((main, Some(parent)))
}

/// A wmp runtime: loads programs and runs them as processes.
///
/// The host that owns the runtime is the main process (`MainProcess`,
/// identity `()`); processes it starts are its children. Dropping the
/// runtime kills every process still running.
///
/// ```no_run
/// # fn main() -> wmp_host::Result<()> {
/// let rt = wmp_host::Runtime::new()?;
/// let program = rt.load("guest.wasm")?;
/// let p = rt.process(&program).name("worker").build();
/// p.start()?;
/// p.join(None)?;
/// println!("{p}: exitcode {:?}", p.exitcode()?);
/// # Ok(()) }
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    main: Arc<Node>,
    /// The view of the process that started this one natively (the main
    /// process holds it only weakly).
    _parent: Option<Arc<Node>>,
    tokio: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// A runtime with default settings.
    pub fn new() -> Result<Runtime> {
        Runtime::builder().build()
    }

    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Loads a program from a `.wasm` (or `.wat`) file, read as
    /// [`read_program`](Self::read_program) reads it.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Program> {
        let path = path.as_ref();
        let bytes = self.read_program(path)?;
        self.load_bytes(&path.display().to_string(), &bytes)
    }

    /// Reads a program file without loading it: a regular file (symlinks
    /// followed) of at most [`RuntimeBuilder::max_program_size`] bytes. A
    /// directory, FIFO, device or socket is refused before it is opened
    /// ([`Error::NotARegularFile`]), a larger file once the byte past the
    /// cap is read ([`Error::ProgramTooLarge`]).
    pub fn read_program(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        program_file::read(path.as_ref(), self.shared.max_program_size)
    }

    /// Reads a program from a stream (`wmp run -` reads stdin), to its
    /// end, within the same cap as [`read_program`](Self::read_program);
    /// `name` names it in errors.
    pub fn read_program_from(&self, stream: impl std::io::Read, name: &str) -> Result<Vec<u8>> {
        program_file::read_capped(stream, Path::new(name), self.shared.max_program_size)
    }

    /// Loads a program from bytes; `name` names it in errors and is its
    /// default `argv[0]`.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Program> {
        let program = program::compile(&self.shared.wasm.engines, self.shared.code_cache.as_ref(), name, bytes)?;
        // A program that may travel to the cluster keeps its bytes.
        #[cfg(feature = "cluster")]
        if self.shared.remote.is_some() {
            return Ok(program.with_source(bytes));
        }
        Ok(program)
    }

    /// Compiles a program to a `.cwasm` artifact that
    /// [`load_precompiled`](Self::load_precompiled) loads without compiling
    /// (on a runtime built with the same settings).
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        program::precompile(&self.shared.wasm.engines.first().engine, name, bytes)
    }

    /// Loads a `.cwasm` artifact made by [`precompile`](Self::precompile)
    /// from a file, read as [`read_program`](Self::read_program) reads it.
    ///
    /// # Safety
    ///
    /// wasmtime runs the machine code in the file as it is: it must come
    /// from `precompile` and must not have been tampered with.
    pub unsafe fn load_precompiled(&self, path: impl AsRef<Path>) -> Result<Program> {
        let path = path.as_ref();
        let bytes = self.read_program(path)?;
        // SAFETY: passed on to the caller.
        unsafe { self.load_precompiled_bytes(&path.display().to_string(), &bytes) }
    }

    /// [`load_precompiled`](Self::load_precompiled) from the artifact's
    /// bytes; `name` names the program as in [`load_bytes`](Self::load_bytes).
    ///
    /// # Safety
    ///
    /// As for `load_precompiled`, for the bytes.
    pub unsafe fn load_precompiled_bytes(&self, name: &str, bytes: &[u8]) -> Result<Program> {
        // SAFETY: passed on to the caller.
        unsafe { program::deserialize(&self.shared.wasm.engines, name, bytes) }
    }

    /// Lets guests start `program` as a child by `name` (the `program` field
    /// of a spec). Guests can start no program but their own unless it is
    /// shared here.
    pub fn share_program(&self, name: &str, program: &Program) {
        self.shared.share(name, self.shared.wasm.runnable(program));
    }

    /// Grants guests the right to start the native `program` by `name`
    /// (`wmp run --allow-native`). It runs with the starting guest's
    /// environment only (never the host's) and its output streams.
    pub fn share_native(&self, name: &str, program: &NativeProgram) {
        self.shared.share(name, self.shared.native.runnable(&program.clone().inherit_env(false)));
    }

    /// Starts building a child of the main process that runs `program`.
    pub fn process(&self, program: &Program) -> ProcessBuilder {
        ProcessBuilder::new(self.shared.clone(), self.main.clone(), self.shared.wasm.runnable(program))
    }

    /// Starts building a child of the main process that runs the native
    /// `program` (argv, environment and stdio through
    /// [`ProcessBuilder::capabilities`]).
    pub fn native_process(&self, program: &NativeProgram) -> ProcessBuilder {
        ProcessBuilder::new(self.shared.clone(), self.main.clone(), self.shared.native.runnable(program))
    }

    /// The main process, as the host sees itself.
    pub fn current_process(&self) -> Process {
        Process::current(self.shared.clone(), self.main.clone())
    }

    /// The process that started this one natively (see
    /// [`RuntimeBuilder::handoff`]); None for a host's own runtime.
    pub fn parent_process(&self) -> Option<Process> {
        Process::parent_of(self.shared.clone(), self.main.clone())
    }

    /// Children of the main process that have started and not ended;
    /// finished ones are reaped first.
    pub fn active_children(&self) -> Vec<Process> {
        self.main.reap_finished_children();
        let children = self.main.children.lock().unwrap().clone();
        children.into_iter().map(|object| Process::seen_by(object, self.main.clone())).collect()
    }

    /// Every process object still alive anywhere in this runtime (CPython's
    /// `_dangling`), for leak checks.
    pub fn dangling(&self) -> Vec<Process> {
        let objects = self.shared.registry.objects();
        objects.into_iter().map(|object| Process::seen_by(object, self.main.clone())).collect()
    }

    /// What wasmtime's pooling allocator holds now (instances, memories,
    /// tables and stacks in its slots); None if the runtime pools nothing
    /// ([`RuntimeBuilder::pooling`]).
    pub fn pool_metrics(&self) -> Option<wasmtime::PoolingAllocatorMetrics> {
        self.shared.wasm.engines.pooled()?.engine.pooling_allocator_metrics()
    }

    /// Number of processes running now (instances alive) in this runtime.
    pub fn live_process_count(&self) -> usize {
        self.shared.registry.live_nodes().len()
    }

    /// The live process tree: the main process, then every running process
    /// with its parent, in pid order (a parent before its children).
    pub fn process_tree(&self) -> Vec<ProcessInfo> {
        let mut nodes = self.shared.registry.live_nodes();
        if !nodes.iter().any(|n| n.pid == self.main.pid) && !self.main.exit.is_set() {
            nodes.push(self.main.clone());
        }
        nodes.sort_by_key(|n| n.pid);
        nodes.iter().map(|n| ProcessInfo::of(&n.record(None))).collect()
    }

    /// The processes that have ended, with how they ended and their final
    /// metrics, as many as [`RuntimeBuilder::keep_ended_processes`] keeps
    /// (none unless set), in pid order. With [`process_tree`](Self::process_tree)
    /// it is every process the runtime ran: a main process run by
    /// [`run_main`](Self::run_main) is here once it has returned.
    pub fn ended_processes(&self) -> Vec<ProcessInfo> {
        let mut records = self.shared.registry.ended_records();
        records.sort_by_key(|record| record.pid);
        records.iter().map(ProcessInfo::of).collect()
    }

    /// Kills the process `pid` and its whole subtree (for the embedding
    /// host's own main process: every process it started).
    pub fn kill_tree(&self, pid: Pid) -> Result<()> {
        match self.shared.registry.live_node(pid) {
            Some(node) => node.signal(Signal::Kill),
            None if pid == self.main.pid => {
                self.main.child_nodes().iter().for_each(|(child, _)| child.signal(Signal::Kill));
            }
            None => return Err(Error::NoSuchProcess(pid)),
        }
        Ok(())
    }

    /// Waits until a sentinel is ready or the timeout passes, and returns
    /// the indices of the ready ones; empty on timeout.
    pub fn wait(&self, sentinels: &[Sentinel], timeout: Option<Duration>) -> Vec<usize> {
        wait_blocking(&self.shared.handle, sentinels, timeout)
    }

    pub async fn wait_async(&self, sentinels: &[Sentinel], timeout: Option<Duration>) -> Vec<usize> {
        wait_any(&self.shared.handle, sentinels, timeout).await
    }

    /// Waits until a sentinel has ended or a connection has something (or
    /// EOF) to receive, or the timeout passes; returns the indices of the
    /// ready ones, empty on timeout (`multiprocessing.connection.wait`).
    pub fn wait_for(&self, items: &[Waitable<'_>], timeout: Option<Duration>) -> Vec<usize> {
        crate::base::run_slot::block_on(&self.shared.handle, wait_ready(&self.shared.handle, items, timeout))
    }

    pub async fn wait_for_async(&self, items: &[Waitable<'_>], timeout: Option<Duration>) -> Vec<usize> {
        wait_ready(&self.shared.handle, items, timeout).await
    }

    /// A pipe (`multiprocessing.Pipe(duplex)`): two connected ends, both
    /// ways if `duplex`, else the first only receives and the second only
    /// sends. Pass an end to a child with [`Process::pass_connection`].
    pub fn pipe(&self, duplex: bool) -> (Connection, Connection) {
        crate::ipc::connection::pipe(&self.shared.handle, duplex, PIPE_CAPACITY)
    }

    /// A connection whose other end is in another OS process, across
    /// `socket` (each message framed as its u64 little-endian length, then
    /// its bytes): how a native process uses the ends its parent passed it
    /// ([`Handoff::take_connections`]).
    pub fn connection_over(&self, socket: std::os::unix::net::UnixStream) -> std::io::Result<Connection> {
        let (mine, theirs) = self.pipe(true);
        self.shared.native.bridges.bridge(&self.shared.handle, theirs, socket, crate::ipc::remote_connection::Payer::Parent)?;
        Ok(mine)
    }

    /// A handle to a queue in another OS process, served across `socket`:
    /// how a native process uses the queues its parent passed it
    /// ([`Handoff::take_queues`]).
    pub fn queue_over(&self, socket: std::os::unix::net::UnixStream) -> std::io::Result<Queue> {
        Queue::remote(&self.shared.handle, socket)
    }

    /// A queue (`multiprocessing.Queue(maxsize)`); `maxsize` 0 for no bound.
    /// Pass it to a child with [`Process::pass_queue`].
    pub fn queue(&self, maxsize: usize) -> Queue {
        Queue::new(&self.shared.handle, maxsize)
    }

    /// A semaphore lock of `kind` (CPython's `SemLock`) starting at `value`,
    /// released at most up to `maxvalue`; the main process's handle. Pass it
    /// to a child with [`Process::pass_semlock`].
    pub fn semlock(&self, kind: SemLockKind, value: u32, maxvalue: u32) -> SemLock {
        SemLock::new(&self.shared.handle, kind, value, maxvalue)
    }

    /// `multiprocessing.Lock()`: acquired once at a time, by anyone.
    pub fn lock(&self) -> SemLock {
        self.semlock(SemLockKind::Semaphore, 1, 1)
    }

    /// `multiprocessing.RLock()`: held by one process, any number of times.
    /// The host's threads are all the main process, so they share it.
    pub fn rlock(&self) -> SemLock {
        self.semlock(SemLockKind::RecursiveMutex, 1, 1)
    }

    /// `multiprocessing.Semaphore(value)`.
    pub fn semaphore(&self, value: u32) -> SemLock {
        self.semlock(SemLockKind::Semaphore, value, SEM_VALUE_MAX)
    }

    /// `multiprocessing.BoundedSemaphore(value)`: released no higher than `value`.
    pub fn bounded_semaphore(&self, value: u32) -> SemLock {
        self.semlock(SemLockKind::Semaphore, value, value)
    }

    /// `multiprocessing.Condition(lock)`, over an [`rlock`](Self::rlock) if
    /// no lock is given. A child is given it as its
    /// [`parts`](Condition::parts), each passed in order.
    pub fn condition(&self, lock: Option<SemLock>) -> Condition {
        Condition::new(lock.unwrap_or_else(|| self.rlock()), || self.semaphore(0))
    }

    /// `multiprocessing.Event()`.
    pub fn event(&self) -> Event {
        Event::new(self.lock(), || self.semaphore(0))
    }

    /// `multiprocessing.Barrier(parties, timeout=timeout)`.
    pub fn barrier(&self, parties: u32, timeout: Option<Duration>) -> Barrier {
        Barrier::from_parts(parties, timeout, self.condition(None), self.shared_memory(Barrier::SHARED_BYTES))
    }

    /// `size` zeroed bytes shared with the children it is passed to
    /// ([`Process::pass_shared_memory`]): what `Value` and `Array` keep
    /// their data in.
    pub fn shared_memory(&self, size: u32) -> SharedMemory {
        SharedMemory::new(size, Charge::none())
    }

    /// Listens at `address`, a name in this runtime that any of its
    /// processes can connect to; clients must prove they hold `authkey`
    /// (the main process's key if None).
    pub fn listen(&self, address: &str, authkey: Option<AuthKey>) -> Result<Listener, ConnectionError> {
        let authkey = authkey.unwrap_or_else(|| self.main.authkey());
        self.shared.addresses.listen(&self.shared.handle, address, authkey)
    }

    /// Connects to the listener at `address`, proving `authkey` (the main
    /// process's key if None); waits until the listener accepts.
    pub fn connect(&self, address: &str, authkey: Option<AuthKey>) -> Result<Connection, ConnectionError> {
        crate::base::run_slot::block_on(&self.shared.handle, self.connect_async(address, authkey))
    }

    pub async fn connect_async(&self, address: &str, authkey: Option<AuthKey>) -> Result<Connection, ConnectionError> {
        let authkey = authkey.unwrap_or_else(|| self.main.authkey());
        self.shared.addresses.connect(&self.shared.handle, address, &authkey).await
    }

    /// Runs `program` as the main process itself (what `wmp run` does): it
    /// is `MainProcess`, its children are the runtime's children, and when
    /// it returns, its daemonic children are terminated and the others
    /// joined. Returns how it ended.
    pub fn run_main(&self, program: &Program, caps: Capabilities) -> Result<ExitReason> {
        self.run_main_at(program, caps, Entry::Command)
    }

    pub async fn run_main_async(&self, program: &Program, caps: Capabilities) -> Result<ExitReason> {
        self.run_main_at_async(program, caps, Entry::Command).await
    }

    /// Runs the main process as [`run_main`](Self::run_main) does, but it
    /// calls one function of its program instead of its command (`wasmtime
    /// run --invoke`), after `_initialize` if a core module exports it. The
    /// function's return is the process's ([`ExitReason::Returned`], exit
    /// code 0); a trap, an exit, a limit or a stop in it ends the process as
    /// in a command. Only the main process invokes: the children it starts
    /// run their program's command.
    pub fn invoke_main(&self, invocation: &Invocation, caps: Capabilities) -> Result<Invoked> {
        let (entry, results) = invocation.entry();
        let exit = self.run_main_at(invocation.program(), caps, entry)?;
        Ok(Invoked::after(exit, &results))
    }

    pub async fn invoke_main_async(&self, invocation: &Invocation, caps: Capabilities) -> Result<Invoked> {
        let (entry, results) = invocation.entry();
        let exit = self.run_main_at_async(invocation.program(), caps, entry).await?;
        Ok(Invoked::after(exit, &results))
    }

    fn run_main_at(&self, program: &Program, caps: Capabilities, entry: Entry) -> Result<ExitReason> {
        let ended = self.start_main(program, caps, entry)?;
        self.main.run.run_here(&self.shared.handle);
        Ok(crate::base::run_slot::block_on(&self.shared.handle, ended))
    }

    async fn run_main_at_async(&self, program: &Program, caps: Capabilities, entry: Entry) -> Result<ExitReason> {
        let ended = self.start_main(program, caps, entry)?;
        self.main.run.run_in_caller(&self.shared.handle).await;
        Ok(ended.await)
    }

    fn start_main(
        &self,
        program: &Program,
        caps: Capabilities,
        entry: Entry,
    ) -> Result<impl std::future::Future<Output = ExitReason> + use<>> {
        if self.main.exit.is_set() || self.shared.registry.is_live(self.main.pid) {
            return Err(Error::Setup("the main process of this runtime has already run".into()));
        }
        let spec = LaunchSpec::new(self.shared.wasm.runnable(program), caps, None);
        let host: Arc<dyn ProcessHost> = self.shared.clone();
        crate::backend::wasm::launch(&self.shared.wasm, &host, self.main.clone(), program, spec, entry)?;
        let exit = self.main.exit.clone();
        Ok(async move {
            exit.ended().await;
            exit.get().expect("ended() returns once the reason is set")
        })
    }

    /// Where this runtime's node agents dial back (`HOST:PORT`): what to
    /// open in a firewall, and what each agent's command line names; None
    /// without a cluster.
    #[cfg(feature = "cluster")]
    pub fn cluster_address(&self) -> Option<&str> {
        self.shared.remote.as_ref().map(|remote| remote.address())
    }

    /// The tokio runtime its processes run on.
    #[cfg(feature = "cluster")]
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.shared.handle
    }

    /// Runs `program` as the process `request` describes, whose parent is
    /// in another runtime (a node agent does this for each process placed
    /// on it): a child of a view of that parent, with the name, identity,
    /// authkey and limits its parent gave it. Returns it and the view,
    /// which must be kept as long as it runs.
    #[cfg(feature = "cluster")]
    pub(crate) fn adopt(
        &self,
        program: &Program,
        request: &crate::backend::remote::protocol::StartRequest,
        target_args: Vec<u8>,
        handles: crate::ipc::inherit::Handles,
        [stdout, stderr]: [crate::base::stdio::Stdio; 2],
    ) -> std::result::Result<(Arc<Node>, Arc<Node>), ProcessError> {
        let authkey = AuthKey::new(request.authkey.clone());
        let parent = view_of_parent(&request.identity, &request.parent_name, request.parent_pid, authkey.clone());
        let target = request.target.clone().map(|name| crate::model::builder::Target { name, args: target_args });
        program.check_target(target.as_ref())?;
        let who = NodeSpec {
            identity: request.identity.clone(),
            name: request.name.clone(),
            daemon: request.daemon,
            authkey,
            limits: request.limits.clone(),
        };
        // The pid its runtime gave it, which the agent's own never reach.
        let node = Node::new(Some(&parent), request.pid, who);
        let mut caps = Capabilities::new().args(request.argv.clone()).stdout(stdout).stderr(stderr);
        caps.env = request.env.clone();
        let spec = LaunchSpec::new(self.shared.wasm.runnable(program), caps, target);
        handles.connections.into_iter().for_each(|connection| spec.inherited.add_connection(connection));
        handles.queues.into_iter().for_each(|queue| spec.inherited.add_queue(queue));
        let host: Arc<dyn ProcessHost> = self.shared.clone();
        crate::backend::wasm::launch(&self.shared.wasm, &host, node.clone(), program, spec, Entry::Command)?;
        Ok((node, parent))
    }

    /// Ends this OS process as a process of the model ends (a native
    /// `wmp-guest` program calls this to exit): what it sent over
    /// connections to other OS processes is flushed, then CPython's exit
    /// function (daemonic children terminated, the others joined), then
    /// `exit(code)`; but a process that was stopped (it hit a limit of its
    /// tree) takes its children with it and ends like a kill.
    pub fn exit_process(&self, code: i32) -> ! {
        let reason = self.main.stop_requested().unwrap_or(ExitReason::Exit(code));
        if !reason.is_stop() {
            // What this process sent to others is delivered, as the OS
            // delivers what a process wrote to a pipe before it exits.
            crate::base::run_slot::block_on(&self.shared.handle, self.shared.native.bridges.flush());
        }
        let stop = crate::base::run_slot::block_on(&self.shared.handle, crate::model::launch::end_children(&self.main, &reason));
        if reason.is_stop() || stop.is_some() {
            kill_this_process();
        }
        std::process::exit(code)
    }

    /// A sentinel for the main process run by [`run_main`](Self::run_main).
    pub fn main_sentinel(&self) -> Sentinel {
        Sentinel { cell: self.main.exit.clone(), handle: self.shared.handle.clone() }
    }

    /// Stops the main process run by [`run_main`](Self::run_main) (and with
    /// it, its whole tree).
    pub fn signal_main(&self, signal: Signal) {
        self.main.signal(signal);
    }
}

impl Drop for Runtime {
    /// Kills every process still running: a sandbox leaves no orphans.
    fn drop(&mut self) {
        self.shared.shut_down.store(true, Ordering::Release);
        let live = self.shared.registry.live_nodes();
        for node in &live {
            node.signal(Signal::Kill);
        }
        crate::base::run_slot::schedule_waiting(); // handed to the runtime, so the shutdown drops them
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
        // Tasks that never got to publish (dropped by the shutdown) would
        // leave joins on outstanding handles waiting forever.
        for node in live {
            node.exit.publish(ExitReason::Killed);
        }
        self.main.children.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dense_live_cap_is_far_past_the_guarded_one_and_bounded_by_the_address_space_of_large_slots() {
        let guarded = default_max_live_processes();
        let small = dense_max_live_processes(1 << 20, WASMTIME_ASYNC_STACK_SIZE);
        assert!(small >= 100_000 && small > 50 * guarded, "1 MiB slots: {small} against {guarded}");
        let large = dense_max_live_processes(4 << 30, WASMTIME_ASYNC_STACK_SIZE);
        assert_eq!(large, ADDRESS_SPACE_FOR_SLOTS / ((4 << 30) + WASMTIME_ASYNC_STACK_SIZE), "4 GiB slots");
    }
}
