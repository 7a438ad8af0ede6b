//! # wmp-host: WebAssembly guests as processes
//!
//! `wmp-host` runs WebAssembly programs as *processes* with the semantics of
//! Python's `multiprocessing.Process`: each process is a wasmtime instance
//! in its own store, started in microseconds, sandboxed, and killable at
//! any instruction, with identities and names, a parent/child tree,
//! start/join/is_alive/exitcode, terminate/kill/close, daemon children,
//! sentinels and an authkey.
//!
//! ```no_run
//! use std::time::Duration;
//! # fn main() -> wmp_host::Result<()> {
//! let rt = wmp_host::Runtime::new()?;
//! let program = rt.load("worker.wasm")?;
//! let p = rt.process(&program).build();          // Process-1, not started
//! p.start()?;
//! p.join(Some(Duration::from_millis(100)))?;    // no error on timeout
//! if p.is_alive()? {
//!     p.kill()?;                                 // stops even a tight loop
//!     p.join(None)?;
//! }
//! println!("{p}");  // <Process name='Process-1' pid=4194305 parent=8120 stopped exitcode=-SIGKILL>
//! # Ok(()) }
//! ```
//!
//! The host that owns the [`Runtime`] is the main process; guests reach the
//! same model through the `wmp:process` WIT imports (see `wit/` and the
//! `wmp-guest` crate). Errors of the state machine are [`ProcessError`],
//! whose messages are CPython's, word for word.
//!
//! Every process can be given [`Limits`] (memory, fuel, wall-clock time,
//! process count, spawn depth); children inherit them and can only narrow
//! them.
//!
//! What each process uses is measured ([`ProcessMetrics`]): CPU time (for
//! wasm, the time inside its polls), fuel when metered, memory and table
//! peaks, the peak of what the host held for it, and the bytes it sent and
//! received over pipes and queues. [`Process::metrics`] reads it for a live
//! or an ended process, [`Runtime::process_tree`] for every live one, and
//! [`Runtime::ended_processes`] for those that ended, when the runtime keeps
//! their records ([`RuntimeBuilder::keep_ended_processes`]). Each guest's
//! polls run inside a `tracing` span `process` (pid, parent, name), and its
//! end is a debug event carrying its final metrics.
//!
//! ```no_run
//! # fn main() -> wmp_host::Result<()> {
//! let rt = wmp_host::Runtime::builder().fuel_metering(true).keep_ended_processes(1_000).build()?;
//! let p = rt.process(&rt.load("worker.wasm")?).build();
//! p.start()?;
//! p.join(None)?;
//! for ended in rt.ended_processes() {   // the worker, and any child it had
//!     let used = ended.metrics;
//!     println!("{} {:?}: {:?}, {:?} fuel, {} bytes at most", ended.name, ended.exit_reason, used.cpu_time, used.fuel_consumed, used.memory_peak);
//! }
//! # Ok(()) }
//! ```
//!
//! Processes talk as in `multiprocessing`: pipes ([`Runtime::pipe`], two
//! [`Connection`] ends), queues ([`Runtime::queue`], [`Queue`]), both
//! handed to a child before start ([`Process::pass_connection`],
//! [`Process::pass_queue`]), and listeners at names in the runtime whose
//! clients prove the authkey by CPython's HMAC challenge
//! ([`Runtime::listen`], [`Runtime::connect`]); [`Runtime::wait_for`] waits
//! on connections beside sentinels. Their errors are [`ConnectionError`].
//!
//! Locks, semaphores, conditions, events and barriers are
//! `multiprocessing.synchronize`'s, built over one host-held primitive, the
//! semaphore lock ([`SemLock`]: [`Runtime::lock`], [`Runtime::rlock`],
//! [`Runtime::semaphore`], [`Runtime::condition`], [`Runtime::event`],
//! [`Runtime::barrier`]), passed to a child with
//! [`Process::pass_semlock`]; [`SharedMemory`] holds what `Value` and
//! `Array` share ([`Process::pass_shared_memory`]). Each host thread uses
//! its own clone of a lock, as a handle is one holder.
//!
//! ```no_run
//! use wmp_host::SemLockOps;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = wmp_host::Runtime::new()?;
//! let lock = rt.lock();
//! let p = rt.process(&rt.load("worker.wasm")?).build();
//! p.pass_semlock(&lock)?;           // the child's inherited_semlocks()[0]
//! p.start()?;
//! if lock.acquire(Some(std::time::Duration::from_secs(1)))? {
//!     lock.release()?;
//! }
//! # Ok(()) }
//! ```
//!
//! An embedder gives guests host functions of its own
//! ([`RuntimeBuilder::component_functions`],
//! [`RuntimeBuilder::module_functions`]): wasmtime's typed registration on
//! the linkers guests are linked with, sync or async, where each function
//! sees the process that calls it ([`ComponentState::process`]) and may
//! hold resources for it, charged to it ([`ComponentState::hold_resource`]).
//!
//! ```no_run
//! use wasmtime::StoreContextMut;
//! use wmp_host::ComponentState;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = wmp_host::Runtime::builder()
//!     .component_functions(|linker| {
//!         let mut host = linker.instance("example:plugin/host")?;
//!         host.func_wrap("log", |store: StoreContextMut<'_, ComponentState>, (line,): (String,)| {
//!             println!("[{}] {line}", store.data().process().name());
//!             Ok(())
//!         })
//!     })
//!     .build()?;
//! let plugin = rt.load("plugin.wasm")?;   // refused if it imports more than the host defines
//! # Ok(()) }
//! ```
//!
//! A [`Pool`] (`multiprocessing.Pool`: `map`, `starmap`, `imap`,
//! `imap_unordered`, `apply_async`, `close`/`join`/`terminate`, with
//! [`PoolOptions`]) runs the pool functions a guest program registered,
//! by name, in workers that are children of the main process; a worker
//! that dies fails its task ([`PoolError::WorkerDied`]) and is replaced:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = wmp_host::Runtime::new()?;
//! let program = rt.load("squares.wasm")?; // wmp_guest::main!(start; pool: square)
//! let pool = rt.pool(&program, wmp_host::PoolOptions::new().processes(2))?;
//! let squares: Vec<u64> = pool.map("square", 0..10u64)?;
//! # Ok(()) }
//! ```
//!
//! The same API runs native programs ([`Runtime::native_process`]): real
//! OS child processes with the same state machine, whose pid is the OS
//! pid, whose sentinel is a pidfd, and which a guest may start only when
//! the host granted it ([`Runtime::share_native`]).
//!
//! A process's standard streams are set in its [`Capabilities`]: its
//! output inherited, discarded, captured or piped ([`Stdio`]); its stdin
//! empty (the default, as for CPython's children), the host's own
//! ([`Stdin::Inherit`]), or a pipe the host writes ([`Stdin::pipe`], as
//! `std::process::Stdio::piped()`), for wasm and native processes alike.
//! Its [`StdinWriter`] waits while the pipe is full (it holds
//! [`STDIO_PIPE_CAPACITY`] bytes), fails with [`StdinClosed`] once the
//! process has ended, and gives the process the end of its stdin when it
//! is closed or dropped:
//!
//! ```no_run
//! use wmp_host::{Capabilities, Stdin, Stdio};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = wmp_host::Runtime::new()?;
//! let (stdin, mut writer) = Stdin::pipe();
//! let (stdout, output) = Stdio::capture();
//! let caps = Capabilities::new().args(["cat"]).stdin(stdin).stdout(stdout);
//! let p = rt.process(&rt.load("cat.wasm")?).capabilities(caps).build();
//! p.start()?;
//! writer.write_blocking(b"hello\n")?;  // `write(..).await` in async code
//! writer.close();                      // the end of its stdin
//! p.join(None)?;
//! assert_eq!(output.text(), "hello\n");
//! # Ok(()) }
//! ```
//!
//! Scheduling: a started process runs concurrently with its starter, on a
//! tokio worker, from the moment the starter next waits (or at the next
//! 10 ms epoch tick); a `join` without a timeout that comes first runs it
//! on the joining thread, so a short start→join involves no other thread.
//! A guest that computes a whole 10 ms slice then waits its turn, first
//! come first served, behind the others that do; one that slept or waited
//! needs no turn, so it runs within about a slice of being woken however
//! many others spin.

#[cfg(feature = "cluster")]
pub mod agent;
mod backend;
mod base;
mod ipc;
mod model;
mod pool;
mod runtime;

pub mod inspect;

pub use backend::native::NativeProgram;
#[cfg(feature = "cluster")]
pub use backend::remote::Cluster;
#[doc(hidden)]
pub use backend::native::guest_marker::GUEST_NOTE;
pub use backend::wasm::{ComponentState, ModuleState};
pub use backend::wasm::host_functions::{CallingProcess, ComponentLinker, ModuleLinker};
pub use backend::wasm::code_cache::{CodeCache, CodeCacheUsage, DEFAULT_CODE_CACHE_LIMIT};
pub use backend::wasm::invocation::{Invocation, Invoked};
pub use backend::wasm::program::{Program, ProgramKind};
pub use base::error::{Error, ProcessError, Result};
pub use base::exit::{ExitReason, KILLED_EXITCODE, Signal, TERMINATED_EXITCODE};
pub use base::ledger::{DEFAULT_MAX_HOST_MEMORY, Held, HostMemory, MESSAGE_COST, OBJECT_COST, OverBudget};
pub use base::limits::{GrowFailure, Limit, Limits};
pub use base::metrics::ProcessMetrics;
pub use base::program_file::DEFAULT_MAX_PROGRAM_SIZE;
pub use base::stdio::{
    CaptureBuffer, DEFAULT_CAPTURE_LIMIT, PipeReader, PipeWriter, STDIO_PIPE_CAPACITY, Stdin, StdinClosed, StdinReader,
    StdinWriter, Stdio,
};
pub use ipc::connection::{Connection, PIPE_CAPACITY};
pub use ipc::listener::Listener;
pub use ipc::queue::Queue;
pub use ipc::semlock::SemLock;
pub use ipc::shared_memory::SharedMemory;
pub use ipc::sentinel::Sentinel;
pub use ipc::wait::Waitable;
pub use model::builder::{Capabilities, Placement, Preopen, ProcessBuilder, Target};
pub use model::handoff::Handoff;
pub use model::process::Process;
pub use model::registry::{FIRST_WASM_PID, Pid};
pub use pool::{AsyncResult, IMap, Pool, ProgramWorker, ProgramWorkers};
pub use runtime::{Barrier, Condition, DEFAULT_POOL_SLOTS, Event, ProcessInfo, Runtime, RuntimeBuilder};
pub use wmp_core::synchronize::{SEM_VALUE_MAX, SemLockKind, SemLockOps, SharedBytes, SyncError};
pub use wmp_core::pool::{PoolError, PoolFn, PoolOptions};
pub use wmp_core::{AuthKey, ConnectionError, naming};

/// The `wmp:process` WIT package, as `wmp wit` prints it: the process
/// interface and the world, then the connection and synchronize interfaces.
pub const WIT: &str = concat!(
    include_str!("../../wit/process.wit"),
    "\n",
    include_str!("../../wit/connection.wit"),
    "\n",
    include_str!("../../wit/synchronize.wit")
);
