//! The integration tests, one binary (as wasmtime does): the process
//! semantics of DESIGN.md through the host API and from inside guests, the
//! `wmp` CLI, and leak checks. Guests come from tests/guests, built for
//! wasm by tests/guest-artifacts.
//!
//! The semantics tests that do not depend on what runs inside the process
//! run once per backend (wasm and native) from one body each: see
//! [`Fixture`] and [`for_both_backends!`]. Under the native backend the
//! probe guest is this very binary: see [`native_probe`].

mod allocator;
mod architecture;
mod authkey;
mod cli;
#[cfg(feature = "cluster")]
mod cluster;
mod connections;
mod containment;
mod guests;
mod hostile;
mod host_functions;
mod invoke;
mod lifecycle;
mod limits;
mod languages;
mod load;
mod metrics;
mod native;
mod pool;
mod repr;
mod scenarios;
mod sentinels;
mod state_machine;
mod synchronize;
mod stdin;
mod trees;
mod wasmtime_differential;

use std::path::PathBuf;
use std::time::Duration;

use wmp_host::{
    Capabilities, CaptureBuffer, CodeCache, NativeProgram, Process, ProcessBuilder, Program, Runtime, Stdio,
};

/// The probe guest (tests/guests/src/bin/probe.rs) built natively against
/// the native `wmp-guest`: this test binary runs it, instead of the tests,
/// when a runtime starts it with [`NATIVE_PROBE_VAR`] set. One binary
/// holds both, so the native probe costs no second build of wmp-host.
#[path = "../guests/src/bin/probe.rs"]
mod native_probe;

/// Set in the environment of a native probe child.
pub const NATIVE_PROBE_VAR: &str = "WMP_TEST_NATIVE_PROBE";

/// Runs before the test harness's `main` (an ELF initializer), so a
/// native probe child never reaches the harness.
#[used]
#[unsafe(link_section = ".init_array")]
static RUN_AS_NATIVE_PROBE: extern "C" fn() = run_as_native_probe;

extern "C" fn run_as_native_probe() {
    if std::env::var_os(NATIVE_PROBE_VAR).is_some() {
        native_probe::main(); // exits: it never returns to the harness
    }
    if let Some(program) = std::env::var_os(NATIVE_HOST_VAR) {
        host_a_native_child(program.into());
    }
    if let Some(guests) = std::env::var_os(allocator::DENSE_MAPPINGS_VAR) {
        allocator::count_dense_mappings(guests.to_str().and_then(|n| n.parse().ok()).expect("a count of guests"));
    }
    #[cfg(feature = "cluster")]
    if let Ok(dashboard) = std::env::var(cluster::CLUSTER_HOST_VAR) {
        cluster::host_a_remote_spinner(dashboard);
    }
}

/// Set in the environment of a copy of this binary that is to be a host
/// of the native program it names, instead of running the tests.
pub const NATIVE_HOST_VAR: &str = "WMP_TEST_NATIVE_HOST";

/// Starts `program` as a native child with the library's defaults (in a
/// process group of its own, its output this process's), waits for it and
/// exits; warnings go to stderr.
fn host_a_native_child(program: PathBuf) -> ! {
    // Its warnings on its stderr, as `wmp run` shows them.
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let rt = Runtime::new().expect("runtime");
    let p = rt.native_process(&NativeProgram::new(program)).build();
    p.start().expect("starting the native child");
    p.join(None).expect("joining it");
    std::process::exit(0)
}

/// Long enough that a correct process always ends within it; only a hang
/// or a broken kill hits it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A runtime whose compiled code is cached under target/, so the suite
/// compiles each guest once.
pub fn runtime() -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wmp-code-cache");
    Runtime::builder().code_cache(CodeCache::Directory(cache)).build().expect("runtime")
}

pub fn probe(rt: &Runtime) -> Program {
    rt.load(wmp_test_guests::PROBE).expect("loading the probe guest")
}

/// A process's captured stdout and stderr.
pub struct Output {
    pub stdout: CaptureBuffer,
    pub stderr: CaptureBuffer,
}

impl Output {
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The value of a `key=value` line the probe printed.
    pub fn value(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.stdout()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {key}= in output:\n{}", self.stdout()))
    }
}

/// A builder for a child of the main process running the probe's `target`
/// with `args` (a JSON string, as `wmp_guest::main!` targets take it), with
/// its output captured.
pub fn child_builder(rt: &Runtime, program: &Program, target: &str, args: &str) -> (ProcessBuilder, Output) {
    let (stdout_stdio, stdout) = Stdio::capture();
    let (stderr_stdio, stderr) = Stdio::capture();
    let caps = Capabilities::new().args(["probe"]).stdout(stdout_stdio).stderr(stderr_stdio);
    let builder = rt.process(program).capabilities(caps).target(target, serde_json::to_vec(args).unwrap());
    (builder, Output { stdout, stderr })
}

/// [`child_builder`], built.
pub fn child(rt: &Runtime, program: &Program, target: &str, args: &str) -> (Process, Output) {
    let (builder, output) = child_builder(rt, program, target, args);
    (builder.build(), output)
}

/// Starts a child, waits for it, and returns it with its output.
pub fn run_child(rt: &Runtime, program: &Program, target: &str, args: &str) -> (Process, Output) {
    run_to_end(child(rt, program, target, args))
}

/// Starts a built child and waits for it to end.
pub fn run_to_end((process, output): (Process, Output)) -> (Process, Output) {
    process.start().expect("start");
    process.join(Some(PATIENCE)).expect("join");
    assert!(!process.is_alive().unwrap(), "{process} still running after {PATIENCE:?}");
    (process, output)
}

/// Waits until a running process has printed `text` on its stdout.
pub fn wait_for_output(process: &Process, output: &Output, text: &str) {
    while !output.stdout().contains(text) {
        assert!(process.is_alive().unwrap(), "{process} ended before printing {text:?}: {}", output.stdout());
        process.join(Some(Duration::from_millis(5))).unwrap();
    }
}

/// Resident set size of this test process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Which backend runs the processes of a test written for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The probe guest's targets.
    Wasm,
    /// `/bin/sh` doing the same.
    Native,
}

/// What a child does, the same under either backend.
#[derive(Clone, Copy, Debug)]
pub enum Job {
    /// Ends at once with exitcode 0.
    Noop,
    /// Runs until stopped.
    Spin,
    /// Ends with this exit code.
    ExitWith(i32),
    /// Sleeps this many milliseconds, then ends with 0.
    Sleep(u64),
}

/// A runtime and the means to start children of one backend doing a [`Job`].
pub struct Fixture {
    pub rt: Runtime,
    /// The probe guest under the wasm backend; none under the native one.
    probe: Option<Program>,
}

impl Fixture {
    pub fn new(backend: Backend) -> Fixture {
        let rt = runtime();
        let probe = (backend == Backend::Wasm).then(|| probe(&rt));
        Fixture { rt, probe }
    }

    /// A builder for a child doing `job`, with its output captured.
    pub fn builder(&self, job: Job) -> (ProcessBuilder, Output) {
        match &self.probe {
            Some(program) => {
                let (target, args) = match job {
                    Job::Noop => ("noop", String::new()),
                    Job::Spin => ("spin", String::new()),
                    Job::ExitWith(code) => ("exit_with", code.to_string()),
                    Job::Sleep(ms) => ("sleep", ms.to_string()),
                };
                child_builder(&self.rt, program, target, &args)
            }
            None => {
                let script = match job {
                    Job::Noop => "exit 0".to_owned(),
                    Job::Spin => "exec sleep 600".to_owned(),
                    Job::ExitWith(code) => format!("exit {code}"),
                    Job::Sleep(ms) => format!("exec sleep {}", ms as f64 / 1000.0),
                };
                native_builder(&self.rt, &["sh", "-c", &script])
            }
        }
    }

    /// [`Fixture::builder`], built.
    pub fn child(&self, job: Job) -> (Process, Output) {
        let (builder, output) = self.builder(job);
        (builder.build(), output)
    }

    /// Starts a child doing `job` and waits for it.
    pub fn run_child(&self, job: Job) -> (Process, Output) {
        run_to_end(self.child(job))
    }

    /// A builder for a child running the probe guest's `target` with `args`
    /// (a JSON string), with its output captured: the wasm probe, or this
    /// binary as the native probe.
    pub fn probe_builder(&self, target: &str, args: &str) -> (ProcessBuilder, Output) {
        match &self.probe {
            Some(program) => child_builder(&self.rt, program, target, args),
            None => {
                let exe = std::env::current_exe().expect("the test binary's path");
                let (stdout_stdio, stdout) = Stdio::capture();
                let (stderr_stdio, stderr) = Stdio::capture();
                let caps = Capabilities::new()
                    .args(["probe"])
                    .env(NATIVE_PROBE_VAR, "1")
                    .stdout(stdout_stdio)
                    .stderr(stderr_stdio);
                let builder = self.rt.native_process(&NativeProgram::new(exe)).capabilities(caps);
                (builder.target(target, serde_json::to_vec(args).unwrap()), Output { stdout, stderr })
            }
        }
    }

    /// Starts the probe's `target` with `args` and waits for it.
    pub fn run_probe(&self, target: &str, args: &str) -> (Process, Output) {
        let (builder, output) = self.probe_builder(target, args);
        run_to_end((builder.build(), output))
    }

    /// A process object that is never meant to start.
    pub fn unstarted(&self) -> ProcessBuilder {
        self.builder(Job::Noop).0
    }
}

/// A builder for a native child running `/bin/sh` (argv as given, argv[0]
/// first) with its output captured.
pub fn native_builder(rt: &Runtime, argv: &[&str]) -> (ProcessBuilder, Output) {
    let (stdout_stdio, stdout) = Stdio::capture();
    let (stderr_stdio, stderr) = Stdio::capture();
    let caps = Capabilities::new().args(argv.iter().copied()).stdout(stdout_stdio).stderr(stderr_stdio);
    let builder = rt.native_process(&NativeProgram::new("/bin/sh")).capabilities(caps);
    (builder, Output { stdout, stderr })
}

/// Runs each listed test body (a `fn(Backend)` in the calling module)
/// once per backend, as `MODULE::wasm::NAME` and `MODULE::native::NAME`.
#[macro_export]
macro_rules! for_both_backends {
    ($($test:ident),* $(,)?) => {
        mod wasm {
            $( #[test] fn $test() { super::$test($crate::Backend::Wasm) } )*
        }
        mod native {
            $( #[test] fn $test() { super::$test($crate::Backend::Native) } )*
        }
    };
}
