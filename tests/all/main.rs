//! The integration tests, one binary (as wasmtime does): the process
//! semantics of DESIGN.md through the host API and from inside guests, the
//! `wmp` CLI, and leak checks. Guests come from tests/guests, built for
//! wasm by tests/guest-artifacts.

mod authkey;
mod cli;
mod guests;
mod hostile;
mod lifecycle;
mod limits;
mod load;
mod repr;
mod sentinels;
mod state_machine;
mod trees;

use std::path::PathBuf;
use std::time::Duration;

use wmp_host::{Capabilities, CaptureBuffer, CodeCache, Process, ProcessBuilder, Program, Runtime, Stdio};

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
    let (process, output) = child(rt, program, target, args);
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
