//! `multiprocessing.Pool` from the host: `wmp-core`'s pool (the one the
//! guest SDK has too) over children of the host's main process that run a
//! program's pool worker target, each joined by a pipe of the runtime.
//! The program registers its pool functions in `wmp_guest::main!`
//! (`main!(start; pool: square)`); the host calls them by name, with serde
//! values:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = wmp_host::Runtime::new()?;
//! let program = rt.load("squares.wasm")?;
//! let pool = rt.pool(&program, wmp_host::PoolOptions::new().processes(2))?;
//! let squares: Vec<u64> = pool.map("square", 0..10u64)?;
//! assert_eq!(squares[3], 9);
//! let sum = pool.apply_async::<(u64, u64), u64>("add", (2, 3))?;
//! assert_eq!(sum.get(None)?, 5);
//! pool.close();
//! pool.join()?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use wmp_core::ConnectionError;
use wmp_core::pool::wire::WORKER_TARGET;
use wmp_core::pool::{PoolError, PoolOptions, Worker, Workers};

use crate::{Capabilities, Connection, Process, Program, Runtime, Sentinel, Waitable};

/// A process pool over workers running a program's pool functions
/// (`multiprocessing.Pool`), made by [`Runtime::pool`]. Dropping it
/// terminates the workers left.
pub type Pool<'rt> = wmp_core::pool::Pool<ProgramWorkers<'rt>>;

/// The handle of `apply_async`, `map_async` and `starmap_async`.
pub type AsyncResult<'p, 'rt, V> = wmp_core::pool::AsyncResult<'p, ProgramWorkers<'rt>, V>;

/// The iterator of `imap` and `imap_unordered`.
pub type IMap<'p, 'rt, R> = wmp_core::pool::IMap<'p, ProgramWorkers<'rt>, R>;

impl Runtime {
    /// A pool of workers running `program`'s pool functions, children of
    /// the main process with the default capabilities.
    pub fn pool(&self, program: &Program, options: PoolOptions) -> Result<Pool<'_>, PoolError> {
        Pool::over(ProgramWorkers::new(self, program), options)
    }
}

/// Starts a pool's workers: daemonic children of the main process at the
/// worker target of a program, each joined by a duplex pipe.
pub struct ProgramWorkers<'rt> {
    rt: &'rt Runtime,
    program: Program,
    capabilities: Capabilities,
}

impl<'rt> ProgramWorkers<'rt> {
    pub fn new(rt: &'rt Runtime, program: &Program) -> Self {
        ProgramWorkers { rt, program: program.clone(), capabilities: Capabilities::new() }
    }

    /// The capabilities each worker gets (its output, for one); use with
    /// [`Pool::over`](wmp_core::pool::Pool::over).
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }
}

/// A pool worker: the child, its sentinel and the pool's end of its pipe.
pub struct ProgramWorker {
    process: Process,
    sentinel: Sentinel,
    pipe: Connection,
}

impl Workers for ProgramWorkers<'_> {
    type Worker = ProgramWorker;

    fn start(&mut self, spec: &[u8]) -> Result<ProgramWorker, PoolError> {
        let (ours, theirs) = self.rt.pipe(true);
        let process = self
            .rt
            .process(&self.program)
            .capabilities(self.capabilities.clone())
            .target(WORKER_TARGET, spec)
            .daemon(true)
            .build();
        process.pass_connection(theirs).map_err(PoolError::Start)?;
        process.start().map_err(PoolError::Start)?;
        let sentinel = process.sentinel().map_err(PoolError::Start)?;
        Ok(ProgramWorker { process, sentinel, pipe: ours })
    }

    fn wait(&self, workers: &[&ProgramWorker], timeout: Option<Duration>) {
        let items: Vec<Waitable<'_>> =
            workers.iter().flat_map(|w| [Waitable::from(&w.pipe), Waitable::from(&w.sentinel)]).collect();
        self.rt.wait_for(&items, timeout);
    }
}

impl Worker for ProgramWorker {
    fn send(&self, message: &[u8]) -> Result<(), ConnectionError> {
        self.pipe.send_bytes(message)
    }

    fn poll(&self) -> bool {
        Waitable::from(&self.pipe).is_ready()
    }

    fn recv(&self) -> Result<Vec<u8>, ConnectionError> {
        self.pipe.recv_bytes()
    }

    fn exitcode(&self) -> Option<i32> {
        self.process.exitcode().ok().flatten()
    }

    fn name(&self) -> String {
        self.process.name()
    }

    fn terminate(&self) {
        let _ = self.process.terminate();
    }

    fn join(&self) {
        let _ = self.process.join(None);
    }

    fn hang_up(&self) {
        self.pipe.close()
    }
}
