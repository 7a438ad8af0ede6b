//! # wmp-guest: the process model from inside a wmp guest
//!
//! A Rust program built for `wasm32-wasip2` and run by wmp (`wmp run` or the
//! `wmp-host` library) is a *process* with the semantics of Python's
//! `multiprocessing.Process`. This crate is its view of that model, over the
//! `wmp:process` WIT imports:
//!
//! ```ignore
//! fn main() {
//!     let me = wmp_guest::current_process();
//!     println!("{} pid={:?} identity={:?}", me.name(), me.pid(), me.identity());
//!     wmp_guest::exit(3);
//! }
//! ```
//!
//! Children are fresh instances of the same program that run a named
//! *target* instead of `main` (CPython's "spawn" start method). Write
//! `main` through [`entry`], which dispatches a child to its target:
//!
//! ```ignore
//! fn work(args: &[u8]) { println!("child got {args:?}"); }
//! fn main() {
//!     wmp_guest::entry(&[("work", work)], || {
//!         let p = wmp_guest::Process::new("work", b"hi".to_vec());
//!         p.start().unwrap();
//!         p.join(None).unwrap();
//!         assert_eq!(p.exitcode().unwrap(), Some(0));
//!     });
//! }
//! ```
//!
//! Errors are [`ProcessError`], whose messages are CPython's. The authkey is
//! an [`AuthKey`], which refuses to be serialized.
//!
//! Processes talk through pipes ([`pipe`], whose ends a parent hands to a
//! child with [`Process::pass_connection`]), queues ([`Queue`],
//! [`Process::pass_queue`]) and listeners that authenticate clients with
//! the authkey ([`Listener`], [`connect`]); [`wait_ready`] waits on
//! connections beside sentinels. Values travel as JSON
//! ([`Connection::send`]/[`recv`](Connection::recv)), bytes as they are
//! ([`Connection::send_bytes`]); [`ConnectionError`] says what failed.
//!
//! ```ignore
//! fn worker(_: ()) {
//!     let results = wmp_guest::inherited_queues().remove(0);
//!     results.put(&42u32, None).unwrap();
//! }
//! fn start() {
//!     let results = wmp_guest::Queue::new(0);
//!     let p = wmp_guest::Process::new("worker", &());
//!     p.pass_queue(&results).unwrap();
//!     p.start().unwrap();
//!     assert_eq!(results.get::<u32>(None).unwrap(), 42);
//! }
//! wmp_guest::main!(start, worker);
//! ```
//!
//! A [`Pool`] runs functions the program registered in workers, as
//! `multiprocessing.Pool` does (`map`, `starmap`, `imap`,
//! `imap_unordered`, `apply_async`, `close`/`join`/`terminate`, with
//! `processes`, `maxtasksperchild` and an initializer in [`PoolOptions`]);
//! a worker that dies fails its task with [`PoolError::WorkerDied`] and is
//! replaced:
//!
//! ```ignore
//! fn square(x: u64) -> u64 { x * x }
//! fn start() {
//!     let pool = wmp_guest::Pool::new(2).unwrap();
//!     assert_eq!(pool.map(wmp_guest::pool_fn!(square), 0..4).unwrap(), [0, 1, 4, 9]);
//! }
//! wmp_guest::main!(start; pool: square);
//! ```
//!
//! Locks, semaphores, conditions, events, barriers and shared values are
//! in [`synchronize`] (`multiprocessing.synchronize` over host-held
//! semaphore locks):
//!
//! ```ignore
//! use wmp_guest::synchronize::{Inherited, SemLockOps};
//! fn count(times: u32) {
//!     let total: wmp_guest::Value<i64> = Inherited::take().next().unwrap();
//!     for _ in 0..times {
//!         total.get_lock().acquire(None).unwrap();
//!         total.set(total.get().unwrap() + 1).unwrap();
//!         total.get_lock().release().unwrap();
//!     }
//! }
//! fn start() {
//!     let total = wmp_guest::Value::new(0i64);
//!     let p = wmp_guest::Process::new("count", &100u32);
//!     p.pass_sync(&total).unwrap();
//!     p.start().unwrap();
//!     p.join(None).unwrap();
//!     assert_eq!(total.get().unwrap(), 100);
//! }
//! wmp_guest::main!(start, count);
//! ```
//!
//! On `wasm32` the calls go to the host through the WIT imports. Built
//! natively, the same API runs the program as a native process: a wmp
//! runtime that started it hands it its identity, and its children are
//! native runs of the same executable (see `native.rs`). Each type is
//! defined once (`process.rs`, `connection.rs`) over the implementation
//! for the target (`guest.rs` or `native.rs`, and their `connection.rs`),
//! as tokio's `process` module sits over its `imp`. `tests/guests`
//! uses every call and runs both ways in the test suite (the examples
//! above are not doctests: they need a runtime to start them).

pub use wmp_core::{AuthKey, ConnectionError, Pid, ProcessError};

#[cfg(target_arch = "wasm32")]
mod guest;
#[cfg(target_arch = "wasm32")]
use guest as imp;
#[cfg(target_arch = "wasm32")]
pub use guest::{authkey, entry, exit};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
use native as imp;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{authkey, entry, exit};

mod connection;
pub use connection::*;
mod process;
pub use process::*;
pub mod synchronize;
pub use synchronize::{Array, Barrier, Condition, Event, SemLock, SemLockOps, SharedMemory, Value};

mod messages;
mod pool;
pub use pool::*;
mod targets;
pub use targets::*;
#[doc(hidden)]
pub use wmp_core::pool::wire::WORKER_TARGET;
#[doc(hidden)]
pub use wmp_core::pool_worker_target;
