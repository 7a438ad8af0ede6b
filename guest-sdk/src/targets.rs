//! What both platforms share: creating child process objects (the
//! constructors; each platform's `Process::create` makes the object from
//! a `NewChild`), and
//! the named targets a child runs instead of `main` ([`main!`](crate::main)).

use serde::Serialize;
use serde::de::DeserializeOwned;
use wmp_core::ProcessError;

use crate::process::{NewChild, Placement};
use crate::{Process, current_process, exit};

/// The same as `Display`: CPython's repr.
impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Process {
    /// A child that will run the target registered as `target` (see
    /// [`main!`](crate::main)) with `args`, encoded as JSON
    /// (`Process(target=..., args=...)`). Takes the next number of this
    /// process's child counter.
    pub fn new<T: Serialize + ?Sized>(target: &str, args: &T) -> Process {
        Process::with(target, args, None, None)
    }

    /// [`Process::new`] with an explicit name and daemon flag (None keeps
    /// the default name / inherits this process's daemon flag).
    pub fn with<T: Serialize + ?Sized>(target: &str, args: &T, name: Option<&str>, daemon: Option<bool>) -> Process {
        Process::encoded(NewChild { name, daemon, ..NewChild::of(target) }, args)
    }

    /// [`Process::new`], run where `placement` says on the host's cluster.
    pub fn on_cluster<T: Serialize + ?Sized>(placement: Placement, target: &str, args: &T) -> Process {
        Process::encoded(NewChild { placement: Some(placement), ..NewChild::of(target) }, args)
    }

    /// A child running `target` (its `main` if empty) of another program
    /// that the host has shared with guests under the name `program`.
    /// Starting it fails if the host has not shared it.
    pub fn in_program<T: Serialize + ?Sized>(program: &str, target: &str, args: &T) -> Process {
        Process::encoded(NewChild { program: Some(program), ..NewChild::of(target) }, args)
    }

    /// A child whose target gets `args` as raw bytes (for targets written
    /// with [`entry`](crate::entry), or in another language).
    pub fn with_bytes(target: &str, args: Vec<u8>, name: Option<&str>, daemon: Option<bool>) -> Process {
        Process::create(NewChild { args, name, daemon, ..NewChild::of(target) })
    }

    /// `child` with `args` encoded as JSON.
    fn encoded<T: Serialize + ?Sized>(child: NewChild<'_>, args: &T) -> Process {
        match serde_json::to_vec(args) {
            Ok(bytes) => Process::create(NewChild { args: bytes, ..child }),
            Err(err) => {
                let message = format!("cannot encode the arguments of target {:?}: {err}", child.target);
                let mut process = Process::create(child);
                process.encode_error = Some(ProcessError::SpawnFailed(message));
                process
            }
        }
    }

}

/// A named function a child can run, taking the argument bytes given to
/// [`Process::with_bytes`]. [`main!`](crate::main) makes these for typed
/// targets.
pub type Target = (&'static str, fn(&[u8]));

/// Decodes a child's JSON arguments and runs a typed target with them; a
/// child whose arguments do not decode exits with code 1 and says why.
pub fn run_target<T: DeserializeOwned>(target: fn(T), args: &[u8]) {
    match serde_json::from_slice(args) {
        Ok(args) => target(args),
        Err(err) => {
            eprintln!("cannot decode the arguments of {}: {err}", current_process().name());
            exit(1);
        }
    }
}

/// The bytes of the `wmp:targets` custom section: the target names, one
/// per line (used by [`main!`](crate::main)).
pub const fn target_section<const N: usize>(list: &str) -> [u8; N] {
    let mut section = [0u8; N];
    let bytes = list.as_bytes();
    let mut i = 0;
    while i < N {
        section[i] = bytes[i];
        i += 1;
    }
    section
}

/// Defines `fn main()` for a guest whose children run named targets:
///
/// ```ignore
/// fn worker(n: u64) { println!("worker got {n}"); }
/// fn start() { let p = wmp_guest::Process::new("worker", &7u64); p.start().unwrap(); p.join(None).unwrap(); }
/// wmp_guest::main!(start, worker);
/// ```
///
/// Each target is a `fn(T)` with `T: serde::de::DeserializeOwned`, started
/// by its function name.
///
/// After a `;`, `pool:` lists the functions a [`Pool`](crate::Pool)'s
/// workers may run, each a `fn(A1, ..., An) -> R` (n up to 4) with
/// deserializable arguments and a serializable result, referred to by
/// [`pool_fn!`](crate::pool_fn):
///
/// ```ignore
/// fn square(x: u64) -> u64 { x * x }
/// wmp_guest::main!(start, worker; pool: square);
/// ```
///
/// The target names, and the pool's worker target, are also recorded in
/// the custom section `wmp:targets` of the program, so the host refuses to
/// start an unknown target with a clear error instead of launching a child
/// that cannot run.
#[macro_export]
macro_rules! main {
    ($main:path $(, $target:ident)* $(,)? $(; pool: $($function:ident),* $(,)?)?) => {
        const __WMP_TARGET_LIST: &str = concat!($(stringify!($target), "\n",)* $crate::pool_worker_target!(), "\n");
        #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "wmp:targets"))]
        #[used]
        static __WMP_TARGETS: [u8; __WMP_TARGET_LIST.len()] = $crate::target_section(__WMP_TARGET_LIST);
        static __WMP_POOL_FUNCTIONS: &[$crate::PoolFunction] =
            &[$($((stringify!($function), |calls, arguments| $crate::run_calls($function, calls, arguments))),*)?];
        pub fn main() {
            $crate::entry(
                &[
                    $((stringify!($target), |args: &[u8]| $crate::run_target($target, args)),)*
                    ($crate::WORKER_TARGET, |args: &[u8]| $crate::run_worker(__WMP_POOL_FUNCTIONS, args)),
                ],
                $main,
            )
        }
    };
}
