//! `wmp run`: run a WASI program as the main process, as `wasmtime run`
//! runs it (same flags, output and exit codes), with the process model
//! available to wmp guests.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use wmp_host::{Capabilities, CodeCache, ExitReason, Preopen, Runtime};

/// Exit status for a trap, as `wasmtime run` gives it (128 + SIGABRT).
const TRAP_EXIT_STATUS: i32 = 134;

/// Run a WebAssembly module or component as the main process.
#[derive(clap::Args)]
pub struct RunCommand {
    /// Grant access to a host directory, seen in the guest at GUEST (or at
    /// the same path): HOST[::GUEST].
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<Preopen>,

    /// Pass an environment variable; without `=VAL` the value is taken
    /// from wmp's own environment.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    envs: Vec<String>,

    /// Do not use the on-disk compilation cache.
    #[arg(long)]
    disable_cache: bool,

    /// The program (.wasm or .wat), then the arguments passed to it.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "MODULE [ARGS]...")]
    module_and_args: Vec<OsString>,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let module = PathBuf::from(&self.module_and_args[0]);
        let cache = if self.disable_cache { CodeCache::Off } else { CodeCache::System };
        let runtime = Runtime::builder().code_cache(cache).build()?;
        let program = runtime.load(&module)?;
        let reason = runtime.run_main(&program, self.capabilities(&module)?)?;
        drop(runtime);
        std::process::exit(match reason {
            ExitReason::Returned => 0,
            ExitReason::Trap(_) => TRAP_EXIT_STATUS,
            other => other.exitcode(),
        });
    }

    fn capabilities(&self, module: &std::path::Path) -> anyhow::Result<Capabilities> {
        // argv[0] is the file name only, so no host path leaks in (as
        // `wasmtime run` does).
        let argv0 = module.file_name().unwrap_or(module.as_os_str()).to_string_lossy().into_owned();
        let mut args = vec![argv0];
        for arg in &self.module_and_args[1..] {
            let arg = arg.to_str().with_context(|| format!("argument {arg:?} is not valid UTF-8"))?;
            args.push(arg.to_owned());
        }
        let mut caps = Capabilities::new().args(args).inherit_stdin(true);
        for env in &self.envs {
            caps = match env.split_once('=') {
                Some((name, value)) => caps.env(name, value),
                None => match std::env::var(env) {
                    Ok(value) => caps.env(env, value),
                    Err(_) => caps,
                },
            };
        }
        for dir in &self.dirs {
            caps = caps.preopen(dir.clone());
        }
        Ok(caps)
    }
}
