//! `multiprocessing.Pool` for wmp, written once for every side that has
//! one: the Rust guest SDK (`wmp_guest::Pool`) and the host API
//! (`wmp_host::Runtime::pool`) are this [`Pool`] over their own processes
//! and pipes, which they plug in through the [`Workers`] seam (as CPython's
//! process state machine sits over `_Popen`).
//!
//! Workers are children of the pool's process at the reserved target
//! [`wire::WORKER_TARGET`], each joined to the pool by its own duplex pipe
//! and running one task (a chunk of calls of a registered function) at a
//! time. A worker that dies fails the task it was running with
//! [`PoolError::WorkerDied`] and is replaced: the pool waits on each
//! worker's sentinel beside its pipe, so it never hangs on a dead worker,
//! where CPython's can. There are no pool threads: tasks are handed out and
//! results taken in whenever the program is inside a pool call (`map`,
//! `get`, `wait`, `ready`, iterating an [`IMap`], `join`).
//!
//! Functions are referred to by the name their program registered them
//! under, through a [`PoolFn`] that carries their argument and result
//! types; arguments and results travel as MessagePack (see [`wire`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ConnectionError, ProcessError};

mod scheduler;
#[cfg(test)]
mod tests;
pub mod wire;

use scheduler::{Chunk, Scheduler};
use wire::Arguments;

/// What a pool call failed with; the messages are CPython's where it has
/// one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A call on a pool after `close` or `terminate` (CPython's ValueError).
    #[error("Pool not running")]
    NotRunning,
    /// `join` before `close` or `terminate`.
    #[error("Pool is still running")]
    StillRunning,
    #[error("Number of processes must be at least 1")]
    NoProcesses,
    #[error("maxtasksperchild must be a positive int or None")]
    NoTasksPerChild,
    #[error("Chunksize must be 1+, not {0}")]
    Chunksize(usize),
    /// The worker running the task ended before it replied: the function
    /// panicked (on wasm a panic aborts the worker), exited, or the worker
    /// was killed. The pool has replaced the worker.
    #[error("worker {worker} died with exitcode {} running task {task}", exitcode_text(*.exitcode))]
    WorkerDied { worker: String, exitcode: Option<i32>, task: u64 },
    /// The task failed inside the worker: the function is not registered
    /// there, or its arguments or result did not fit its types.
    #[error("{0}")]
    Failed(String),
    /// Arguments (or an initializer's) that cannot be encoded.
    #[error("cannot encode the task: {0}")]
    Encode(String),
    /// A result that does not decode as the expected type.
    #[error("cannot decode the result: {0}")]
    Decode(String),
    /// `get` or `wait` found no result before its timeout (CPython's
    /// `multiprocessing.TimeoutError`).
    #[error("timed out waiting for the result")]
    Timeout,
    /// The pool was terminated before the task finished.
    #[error("the pool was terminated before task {0} finished")]
    Terminated(u64),
    /// A worker could not be started.
    #[error("cannot start a pool worker: {0}")]
    Start(ProcessError),
    /// A worker's pipe could not be set up.
    #[error("cannot connect a pool worker: {0}")]
    Connect(ConnectionError),
}

fn exitcode_text(exitcode: Option<i32>) -> String {
    exitcode.map_or_else(|| "None".to_owned(), |code| code.to_string())
}

/// How a pool starts and watches its workers: what a platform (the guest
/// SDK, the host) plugs in.
pub trait Workers {
    type Worker: Worker;
    /// Starts a worker at [`wire::WORKER_TARGET`] with `spec` (an encoded
    /// [`wire::WorkerSpec`]) as its arguments, joined to the pool by a
    /// duplex pipe.
    fn start(&mut self, spec: &[u8]) -> Result<Self::Worker, PoolError>;
    /// Waits until a worker's pipe has something (or EOF) to receive or a
    /// worker has ended, or the timeout passes.
    fn wait(&self, workers: &[&Self::Worker], timeout: Option<Duration>);
}

/// One started worker: its process and the pool's end of its pipe.
pub trait Worker {
    fn send(&self, message: &[u8]) -> Result<(), ConnectionError>;
    /// Whether a message or EOF can be received now.
    fn poll(&self) -> bool;
    fn recv(&self) -> Result<Vec<u8>, ConnectionError>;
    /// None while the worker runs.
    fn exitcode(&self) -> Option<i32>;
    fn name(&self) -> String;
    fn terminate(&self);
    fn join(&self);
    /// Closes the pool's end of the pipe: the worker sees EOF and ends.
    fn hang_up(&self);
}

/// A function the pool's program registered for its workers, by name,
/// with its argument tuple type `A` (`(u64,)` for `fn(u64) -> R`) and
/// result type `R`. A guest makes one with `wmp_guest::pool_fn!(square)`,
/// which checks the types against the function; the host names it
/// (`"square".into()`, or a `&str` where a pool call takes one).
pub struct PoolFn<A, R> {
    name: Cow<'static, str>,
    types: PhantomData<fn(A) -> R>,
}

impl<A, R> PoolFn<A, R> {
    pub const fn named(name: &'static str) -> Self {
        PoolFn { name: Cow::Borrowed(name), types: PhantomData }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<A, R> Clone for PoolFn<A, R> {
    fn clone(&self) -> Self {
        PoolFn { name: self.name.clone(), types: PhantomData }
    }
}

impl<A, R> fmt::Debug for PoolFn<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolFn({:?})", self.name)
    }
}

impl<A, R> From<&str> for PoolFn<A, R> {
    fn from(name: &str) -> Self {
        PoolFn { name: Cow::Owned(name.to_owned()), types: PhantomData }
    }
}

impl<A, R> From<String> for PoolFn<A, R> {
    fn from(name: String) -> Self {
        PoolFn { name: Cow::Owned(name), types: PhantomData }
    }
}

/// `Pool(processes, initializer, initargs, maxtasksperchild)`.
#[derive(Clone, Debug, Default)]
pub struct PoolOptions {
    processes: Option<usize>,
    maxtasksperchild: Option<u64>,
    initializer: Option<Result<wire::Call, PoolError>>,
}

impl PoolOptions {
    pub fn new() -> Self {
        PoolOptions::default()
    }

    /// How many workers; by default the number of CPUs this process sees
    /// (1 in a wasm guest, as the sandbox reports).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Each worker ends after this many tasks and a fresh one replaces it.
    pub fn maxtasksperchild(mut self, tasks: u64) -> Self {
        self.maxtasksperchild = Some(tasks);
        self
    }

    /// A registered function each worker runs once with `initargs` before
    /// its first task.
    pub fn initializer<A: Serialize>(mut self, function: impl Into<PoolFn<A, ()>>, initargs: A) -> Self {
        let call = wire::encode_chunk(&[initargs])
            .map(|chunk| wire::Call { function: function.into().name().to_owned(), chunk })
            .map_err(PoolError::Encode);
        self.initializer = Some(call);
        self
    }
}

/// A process pool (`multiprocessing.Pool`) over the workers `W` starts.
/// Made by `wmp_guest::Pool::new` in a guest and `Runtime::pool` on the
/// host. Dropping it terminates the workers left.
pub struct Pool<W: Workers> {
    scheduler: RefCell<Scheduler<W>>,
}

impl<W: Workers + Default> Pool<W> {
    /// A pool of `processes` workers (`Pool(processes)`).
    pub fn new(processes: usize) -> Result<Self, PoolError> {
        Pool::with_options(PoolOptions::new().processes(processes))
    }

    pub fn with_options(options: PoolOptions) -> Result<Self, PoolError> {
        Pool::over(W::default(), options)
    }
}

impl<W: Workers> Pool<W> {
    /// A pool whose workers `workers` starts, as `options` says.
    pub fn over(workers: W, options: PoolOptions) -> Result<Self, PoolError> {
        let processes =
            options.processes.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if processes == 0 {
            return Err(PoolError::NoProcesses);
        }
        if options.maxtasksperchild == Some(0) {
            return Err(PoolError::NoTasksPerChild);
        }
        let spec = wire::WorkerSpec { initializer: options.initializer.transpose()?, maxtasks: options.maxtasksperchild };
        Ok(Pool { scheduler: RefCell::new(Scheduler::new(workers, processes, &spec)?) })
    }

    /// The number of workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.scheduler.borrow().processes()
    }

    /// `f` applied to each item, in order (`Pool.map`), in chunks of the
    /// size CPython picks: the items over four times the workers, rounded
    /// up. The error of the first chunk, in order, that failed (the chunks
    /// after it are discarded).
    pub fn map<T: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<(T,), R>>,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError> {
        let items: Vec<T> = items.into_iter().collect();
        let chunksize = self.map_chunksize(items.len());
        self.iterate(f.into().name(), items, Arguments::Single, chunksize, true)?.gather()
    }

    /// [`map`](Pool::map) in chunks of `chunksize` items.
    pub fn map_chunked<T: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<(T,), R>>,
        items: impl IntoIterator<Item = T>,
        chunksize: usize,
    ) -> Result<Vec<R>, PoolError> {
        self.iterate(f.into().name(), items.into_iter().collect(), Arguments::Single, chunksize, true)?.gather()
    }

    /// [`map`](Pool::map) without waiting: its handle (`Pool.map_async`).
    pub fn map_async<T: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<(T,), R>>,
        items: impl IntoIterator<Item = T>,
    ) -> Result<AsyncResult<'_, W, Vec<R>>, PoolError> {
        self.results(f.into().name(), items.into_iter().collect(), Arguments::Single, None, decode_all)
    }

    /// `f` applied to each argument tuple, in order (`Pool.starmap`):
    /// `starmap(add, [(1, 2), (3, 4)])` is `[add(1, 2), add(3, 4)]`.
    pub fn starmap<A: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<A, R>>,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError> {
        let items: Vec<A> = items.into_iter().collect();
        let chunksize = self.map_chunksize(items.len());
        self.iterate(f.into().name(), items, Arguments::Tuples, chunksize, true)?.gather()
    }

    pub fn starmap_async<A: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<A, R>>,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<'_, W, Vec<R>>, PoolError> {
        self.results(f.into().name(), items.into_iter().collect(), Arguments::Tuples, None, decode_all)
    }

    /// `f(args...)` in a worker (`Pool.apply`).
    pub fn apply<A: Serialize, R: DeserializeOwned>(&self, f: impl Into<PoolFn<A, R>>, args: A) -> Result<R, PoolError> {
        self.apply_async(f, args)?.get(None)
    }

    /// [`apply`](Pool::apply) without waiting: its handle.
    pub fn apply_async<A: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<A, R>>,
        args: A,
    ) -> Result<AsyncResult<'_, W, R>, PoolError> {
        self.results(f.into().name(), vec![args], Arguments::Tuples, Some(1), decode_first)
    }

    /// The results of `f` over the items, in order, as they come
    /// (`Pool.imap`; CPython's default chunksize is 1). A failed chunk
    /// yields its error once, in its place.
    pub fn imap<T: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<(T,), R>>,
        items: impl IntoIterator<Item = T>,
        chunksize: usize,
    ) -> Result<IMap<'_, W, R>, PoolError> {
        self.iterate(f.into().name(), items.into_iter().collect(), Arguments::Single, chunksize, true)
    }

    /// [`imap`](Pool::imap) in the order the chunks finish
    /// (`Pool.imap_unordered`).
    pub fn imap_unordered<T: Serialize, R: DeserializeOwned>(
        &self,
        f: impl Into<PoolFn<(T,), R>>,
        items: impl IntoIterator<Item = T>,
        chunksize: usize,
    ) -> Result<IMap<'_, W, R>, PoolError> {
        self.iterate(f.into().name(), items.into_iter().collect(), Arguments::Single, chunksize, false)
    }

    /// No more tasks are accepted; the queued ones still run.
    pub fn close(&self) {
        self.scheduler.borrow_mut().close()
    }

    /// Stops the workers now; tasks not finished fail with
    /// [`PoolError::Terminated`].
    pub fn terminate(&self) {
        self.scheduler.borrow_mut().terminate()
    }

    /// After `close`: runs the queued tasks to their end, then waits for
    /// the workers to end. After `terminate`: waits for them.
    pub fn join(&self) -> Result<(), PoolError> {
        self.scheduler.borrow_mut().join()
    }

    /// Queues `items` (arguments as `arguments` says) as tasks of
    /// `chunksize` calls (CPython's for `map` if None); their handle.
    fn results<A: Serialize, V>(
        &self,
        function: &str,
        items: Vec<A>,
        arguments: Arguments,
        chunksize: Option<usize>,
        decode: fn(&[Chunk]) -> Result<V, PoolError>,
    ) -> Result<AsyncResult<'_, W, V>, PoolError> {
        let chunksize = match chunksize {
            Some(0) => return Err(PoolError::Chunksize(0)),
            Some(size) => size,
            None => self.map_chunksize(items.len()),
        };
        let ids = self.submit(function, items, arguments, chunksize)?;
        Ok(AsyncResult { pool: self, ids, outcome: RefCell::new(None), decode })
    }

    /// Queues `items` as tasks of `chunksize` calls; their results as they
    /// come, each chunk decoded as it is reached (while the workers run
    /// the next ones).
    fn iterate<A: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        items: Vec<A>,
        arguments: Arguments,
        chunksize: usize,
        ordered: bool,
    ) -> Result<IMap<'_, W, R>, PoolError> {
        if chunksize == 0 {
            return Err(PoolError::Chunksize(0));
        }
        let calls = items.len();
        let ids = self.submit(function, items, arguments, chunksize)?;
        Ok(IMap { pool: self, ids: ids.into(), calls, ordered, ready: VecDeque::new(), types: PhantomData })
    }

    /// CPython's chunksize for `map`: `ceil(len / (4 * workers))`.
    fn map_chunksize(&self, items: usize) -> usize {
        items.div_ceil(self.processes() * 4).max(1)
    }

    fn submit<A: Serialize>(
        &self,
        function: &str,
        items: Vec<A>,
        arguments: Arguments,
        chunksize: usize,
    ) -> Result<Vec<u64>, PoolError> {
        let mut scheduler = self.scheduler.borrow_mut();
        scheduler.check_running()?;
        let mut ids = Vec::with_capacity(items.len().div_ceil(chunksize));
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            match scheduler.submit(function, arguments, items.by_ref().take(chunksize).collect()) {
                Ok(id) => {
                    ids.push(id);
                    // Idle workers start on the first chunks while the
                    // rest are encoded.
                    scheduler.dispatch();
                }
                Err(err) => {
                    scheduler.abandon(ids);
                    return Err(err);
                }
            }
        }
        // Start the work now, as CPython's pool threads would.
        scheduler.step(Some(Duration::ZERO));
        Ok(ids)
    }
}

/// The results of one chunk.
fn decode_chunk<R: DeserializeOwned>(chunk: &Chunk) -> Result<Vec<R>, PoolError> {
    wire::decode_chunk(chunk.results()).map_err(PoolError::Decode)
}

fn decode_all<R: DeserializeOwned>(chunks: &[Chunk]) -> Result<Vec<R>, PoolError> {
    let mut all = Vec::new();
    for chunk in chunks {
        all.append(&mut decode_chunk(chunk)?);
    }
    Ok(all)
}

fn decode_first<R: DeserializeOwned>(chunks: &[Chunk]) -> Result<R, PoolError> {
    let first = chunks.first().map(|chunk| decode_chunk(chunk)).transpose()?.and_then(|values| values.into_iter().next());
    first.ok_or_else(|| PoolError::Decode("a task that returned no result".to_owned()))
}

/// The pending result of `apply_async`, `map_async` or `starmap_async`
/// (`multiprocessing.pool.AsyncResult`). Waiting on it moves the pool's
/// work along. Dropping it unfinished discards its result.
pub struct AsyncResult<'p, W: Workers, V> {
    pool: &'p Pool<W>,
    ids: Vec<u64>,
    /// The results of every task, or the first failure, once all ended.
    outcome: RefCell<Option<Result<Vec<Chunk>, PoolError>>>,
    decode: fn(&[Chunk]) -> Result<V, PoolError>,
}

impl<W: Workers, V> AsyncResult<'_, W, V> {
    /// Whether the call has finished (after moving the work along once).
    pub fn ready(&self) -> bool {
        self.wait(Some(Duration::ZERO))
    }

    /// Waits up to `timeout` for the call to finish; whether it has.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        if self.outcome.borrow().is_some() {
            return true;
        }
        let mut scheduler = self.pool.scheduler.borrow_mut();
        if !scheduler.wait_until(|s| self.ids.iter().all(|id| s.is_done(*id)), timeout) {
            return false;
        }
        let mut chunks = Vec::with_capacity(self.ids.len());
        let mut failure = None;
        for id in &self.ids {
            match scheduler.take(*id).expect("a finished task's result") {
                Ok(values) => chunks.push(values),
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        *self.outcome.borrow_mut() = Some(failure.map_or(Ok(chunks), Err));
        true
    }

    /// Whether the call succeeded; None while it runs.
    pub fn successful(&self) -> Option<bool> {
        self.ready().then(|| matches!(*self.outcome.borrow(), Some(Ok(_))))
    }

    /// The result, waiting up to `timeout` ([`PoolError::Timeout`] after);
    /// may be asked again.
    pub fn get(&self, timeout: Option<Duration>) -> Result<V, PoolError> {
        if !self.wait(timeout) {
            return Err(PoolError::Timeout);
        }
        match self.outcome.borrow().as_ref().expect("a finished call") {
            Ok(chunks) => (self.decode)(chunks),
            Err(err) => Err(err.clone()),
        }
    }
}

impl<W: Workers, V> Drop for AsyncResult<'_, W, V> {
    fn drop(&mut self) {
        if self.outcome.get_mut().is_none() {
            self.pool.scheduler.borrow_mut().abandon(self.ids.iter().copied());
        }
    }
}

/// The results of [`Pool::imap`] or [`Pool::imap_unordered`], each as its
/// chunk ends. Dropping it discards the results not taken.
pub struct IMap<'p, W: Workers, R> {
    pool: &'p Pool<W>,
    /// The tasks whose results are not taken, in order.
    ids: VecDeque<u64>,
    /// How many calls the tasks make together.
    calls: usize,
    ordered: bool,
    /// The taken results not yielded yet.
    ready: VecDeque<Result<R, PoolError>>,
    types: PhantomData<fn() -> R>,
}

impl<W: Workers, R: DeserializeOwned> Iterator for IMap<'_, W, R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() {
            if self.ids.is_empty() {
                return None;
            }
            let mut scheduler = self.pool.scheduler.borrow_mut();
            let ids = &self.ids;
            if self.ordered {
                scheduler.wait_until(|s| s.is_done(ids[0]), None);
            } else {
                scheduler.wait_until(|s| ids.iter().any(|id| s.is_done(*id)), None);
            }
            let index = self.ids.iter().position(|id| scheduler.is_done(*id)).filter(|i| !self.ordered || *i == 0);
            let id = self.ids.remove(index.unwrap_or(0)).expect("a task not taken");
            match scheduler.take(id) {
                Some(Ok(chunk)) => match decode_chunk(&chunk) {
                    Ok(values) => self.ready.extend(values.into_iter().map(Ok)),
                    Err(err) => self.ready.push_back(Err(err)),
                },
                Some(Err(err)) => self.ready.push_back(Err(err)),
                None => self.ready.push_back(Err(PoolError::Terminated(id))),
            }
        }
        self.ready.pop_front()
    }
}

impl<W: Workers, R: DeserializeOwned> IMap<'_, W, R> {
    /// All the results, in order (what `map` returns): each chunk decoded
    /// straight onto the others as it ends, while the workers run the
    /// next; the error of the first chunk that failed.
    fn gather(mut self) -> Result<Vec<R>, PoolError> {
        let mut all = Vec::with_capacity(self.calls);
        while let Some(id) = self.ids.pop_front() {
            let mut scheduler = self.pool.scheduler.borrow_mut();
            scheduler.wait_until(|s| s.is_done(id), None);
            match scheduler.take(id) {
                Some(Ok(chunk)) => all.append(&mut decode_chunk(&chunk)?),
                Some(Err(err)) => return Err(err),
                None => return Err(PoolError::Terminated(id)),
            }
        }
        Ok(all)
    }
}

impl<W: Workers, R> Drop for IMap<'_, W, R> {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.pool.scheduler.borrow_mut().abandon(self.ids.iter().copied());
        }
    }
}
