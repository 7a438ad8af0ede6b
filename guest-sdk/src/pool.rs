//! `multiprocessing.Pool` in a guest: `wmp-core`'s pool over children of
//! this process ([`ChildWorkers`]), and the worker target that runs the
//! pool functions the program registered with [`main!`](crate::main).
//!
//! ```ignore
//! fn square(x: u64) -> u64 { x * x }
//! fn add(a: u64, b: u64) -> u64 { a + b }
//! fn start() {
//!     let pool = wmp_guest::Pool::new(2).unwrap();
//!     assert_eq!(pool.map(wmp_guest::pool_fn!(square), 0..4).unwrap(), [0, 1, 4, 9]);
//!     assert_eq!(pool.starmap(wmp_guest::pool_fn!(add), [(1, 2), (3, 4)]).unwrap(), [3, 7]);
//!     let sum = pool.apply_async(wmp_guest::pool_fn!(add), (5, 6)).unwrap();
//!     assert_eq!(sum.get(None).unwrap(), 11);
//! }
//! wmp_guest::main!(start; pool: square, add);
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wmp_core::pool::wire::{self, Arguments, Reply, Task, WORKER_TARGET, WorkerSpec};
use wmp_core::pool::{Worker, Workers};

pub use wmp_core::pool::{PoolError, PoolFn, PoolOptions};

use crate::{Connection, Process, Sentinel, exit, inherited_connections, pipe, wait_ready};

/// A process pool whose workers are daemonic children of this process
/// (`multiprocessing.Pool`): `Pool::new(processes)` or
/// `Pool::with_options(PoolOptions)`. See `wmp_core::pool` for the
/// methods.
pub type Pool = wmp_core::pool::Pool<ChildWorkers>;

/// The handle of `apply_async`, `map_async` and `starmap_async`.
pub type AsyncResult<'p, V> = wmp_core::pool::AsyncResult<'p, ChildWorkers, V>;

/// The iterator of `imap` and `imap_unordered`.
pub type IMap<'p, R> = wmp_core::pool::IMap<'p, ChildWorkers, R>;

/// Starts a pool's workers as children of this process, each running the
/// worker target of this same program, joined by a duplex pipe.
#[derive(Default)]
pub struct ChildWorkers;

/// A pool worker: the child, its sentinel and the pool's end of its pipe.
pub struct ChildWorker {
    process: Process,
    sentinel: Sentinel,
    pipe: Connection,
}

impl Workers for ChildWorkers {
    type Worker = ChildWorker;

    fn start(&mut self, spec: &[u8]) -> Result<ChildWorker, PoolError> {
        let (ours, theirs) = pipe(true);
        let process = Process::with_bytes(WORKER_TARGET, spec.to_vec(), None, Some(true));
        process.pass_connection(theirs).map_err(PoolError::Start)?;
        process.start().map_err(PoolError::Start)?;
        let sentinel = process.sentinel().map_err(PoolError::Start)?;
        Ok(ChildWorker { process, sentinel, pipe: ours })
    }

    fn wait(&self, workers: &[&ChildWorker], timeout: Option<Duration>) {
        let sentinels: Vec<&Sentinel> = workers.iter().map(|w| &w.sentinel).collect();
        let pipes: Vec<&Connection> = workers.iter().map(|w| &w.pipe).collect();
        wait_ready(&sentinels, &pipes, timeout);
    }
}

impl Worker for ChildWorker {
    fn send(&self, message: &[u8]) -> Result<(), wmp_core::ConnectionError> {
        self.pipe.send_bytes(message)
    }

    fn poll(&self) -> bool {
        self.pipe.poll(Some(Duration::ZERO)).unwrap_or(true)
    }

    fn recv(&self) -> Result<Vec<u8>, wmp_core::ConnectionError> {
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

/// A function a pool worker can call with an argument tuple `A`: every
/// `fn(A1, ..., An) -> R` for n up to 4 is one, with `A = (A1, ..., An)`.
pub trait PoolCallable<A: DeserializeOwned, R> {
    fn call(&self, args: A) -> R;

    /// The calls of a chunk: argument tuples, or single arguments for a
    /// one-argument function.
    fn decode_calls(calls: &[u8], arguments: Arguments) -> Result<Vec<A>, String> {
        match arguments {
            Arguments::Tuples => wire::decode_chunk(calls),
            Arguments::Single => Err("it takes other than one argument".to_owned()),
        }
    }
}

macro_rules! pool_callable {
    ($($arg:ident),*) => {
        impl<F, R, $($arg: DeserializeOwned),*> PoolCallable<($($arg,)*), R> for F
        where
            F: Fn($($arg),*) -> R,
        {
            #[allow(non_snake_case)]
            fn call(&self, ($($arg,)*): ($($arg,)*)) -> R {
                self($($arg),*)
            }
        }
    };
}
pool_callable!();
pool_callable!(A1, A2);
pool_callable!(A1, A2, A3);
pool_callable!(A1, A2, A3, A4);

impl<F: Fn(A1) -> R, R, A1: DeserializeOwned> PoolCallable<(A1,), R> for F {
    fn call(&self, (arg,): (A1,)) -> R {
        self(arg)
    }

    fn decode_calls(calls: &[u8], arguments: Arguments) -> Result<Vec<(A1,)>, String> {
        match arguments {
            Arguments::Tuples => wire::decode_chunk(calls),
            Arguments::Single => {
                let calls: Vec<A1> = wire::decode_chunk(calls)?;
                Ok(calls.into_iter().map(|arg| (arg,)).collect())
            }
        }
    }
}

/// The handle of the pool function `function` registered as `name`, with
/// its types (what [`pool_fn!`](crate::pool_fn) expands to).
pub fn pool_fn_of<A: DeserializeOwned, R, F: PoolCallable<A, R>>(name: &'static str, function: F) -> PoolFn<A, R> {
    let _ = function;
    PoolFn::named(name)
}

/// The handle of a pool function the program registered in
/// [`main!`](crate::main)'s `pool:` list, typed after the function:
/// `pool.map(wmp_guest::pool_fn!(square), 0..10)`.
#[macro_export]
macro_rules! pool_fn {
    ($function:ident) => {
        $crate::pool_fn_of(stringify!($function), $function)
    };
}

/// A pool function as [`main!`](crate::main) registers it: its name, and
/// how a worker runs a chunk of calls of it (an encoded array of argument
/// tuples in, one of results out: `wmp_core::pool::wire::encode_chunk`).
pub type PoolFunction = (&'static str, fn(&[u8], Arguments) -> Result<Vec<u8>, String>);

/// Runs `function` once per argument tuple in `calls`; the results, or
/// why the arguments or results did not fit its types.
#[doc(hidden)]
pub fn run_calls<A: DeserializeOwned, R: Serialize, F: PoolCallable<A, R>>(
    function: F,
    calls: &[u8],
    arguments: Arguments,
) -> Result<Vec<u8>, String> {
    let calls = F::decode_calls(calls, arguments).map_err(|e| format!("cannot decode the arguments: {e}"))?;
    let results: Vec<R> = calls.into_iter().map(|args| function.call(args)).collect();
    wire::encode_chunk(&results).map_err(|e| format!("cannot encode the result: {e}"))
}

fn call(functions: &[PoolFunction], name: &str, calls: &[u8], arguments: Arguments) -> Result<Vec<u8>, String> {
    match functions.iter().find(|(registered, _)| *registered == name) {
        Some((_, run)) => run(calls, arguments).map_err(|why| format!("pool function {name:?}: {why}")),
        None => {
            let known: Vec<&str> = functions.iter().map(|(name, _)| *name).collect();
            Err(format!("no pool function {name:?}: this program registered {known:?}"))
        }
    }
}

/// The worker target ([`WORKER_TARGET`]): runs the initializer, then the
/// tasks its pipe brings, replying to each, until EOF or `maxtasks`.
#[doc(hidden)]
pub fn run_worker(functions: &[PoolFunction], spec: &[u8]) {
    let spec: WorkerSpec = serde_json::from_slice(spec).unwrap_or_else(|e| {
        eprintln!("a pool worker cannot decode its arguments: {e}");
        exit(1)
    });
    let Some(pipe) = inherited_connections().into_iter().next() else {
        eprintln!("a pool worker was started without its pipe");
        exit(1)
    };
    if let Some(initializer) = spec.initializer
        && let Err(why) = call(functions, &initializer.function, &initializer.chunk, Arguments::Tuples)
    {
        eprintln!("the pool initializer failed: {why}");
        exit(1);
    }
    let mut completed = 0;
    while spec.maxtasks.is_none_or(|max| completed < max) {
        let Ok(message) = pipe.recv_bytes() else { break };
        let (task, start) = wire::decode::<Task>(&message).unwrap_or_else(|e| {
            eprintln!("a pool worker cannot decode its task: {e}");
            exit(1)
        });
        let reply = match call(functions, &task.function, &message[start..], task.arguments) {
            Ok(results) => wire::encode_encoded(&Reply { id: task.id, error: None }, &results),
            Err(why) => wire::encode(&Reply { id: task.id, error: Some(why) }, &()),
        };
        let reply = reply.expect("a reply header encodes");
        if pipe.send_bytes(&reply).is_err() {
            break;
        }
        completed += 1;
    }
}
