//! `wmp run`: run a WASI program as the main process, as `wasmtime run`
//! runs it (same flags, output and exit codes), with the process model
//! available to wmp guests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use wmp_host::{Capabilities, CodeCache, ExitReason, Limit, Limits, NativeProgram, Preopen, Program, Runtime};

/// Exit status for a trap, as `wasmtime run` gives it (128 + SIGABRT).
const TRAP_EXIT_STATUS: i32 = 134;

/// Exit status for a main process stopped like a kill (a limit): 128 + SIGKILL.
const KILLED_EXIT_STATUS: i32 = 137;

/// Exit status for a main process terminated: 128 + SIGTERM.
const TERMINATED_EXIT_STATUS: i32 = 143;

/// A `-W` option, spelled as `wasmtime run` spells it.
#[derive(Clone, Debug)]
enum WasmOption {
    MaxMemorySize(usize),
    MaxTableElements(usize),
    MaxHostMemory(usize),
    Fuel(u64),
    Timeout(Duration),
    MaxWasmStack(usize),
}

impl FromStr for WasmOption {
    type Err = anyhow::Error;

    fn from_str(option: &str) -> anyhow::Result<Self> {
        let (key, value) = option.split_once('=').with_context(|| format!("-W {option}: expected KEY=VALUE"))?;
        let number = || value.parse().with_context(|| format!("-W {key}: {value:?} is not a number"));
        Ok(match key {
            "max-memory-size" => WasmOption::MaxMemorySize(number()?),
            "max-table-elements" => WasmOption::MaxTableElements(number()?),
            "max-host-memory" => WasmOption::MaxHostMemory(number()?),
            "fuel" => WasmOption::Fuel(value.parse().with_context(|| format!("-W fuel: {value:?} is not a number"))?),
            "timeout" => WasmOption::Timeout(parse_duration(value)?),
            "max-wasm-stack" => WasmOption::MaxWasmStack(number()?),
            other => bail!(
                "-W {other}: unknown option (known: max-memory-size, max-table-elements, max-host-memory, fuel, timeout, max-wasm-stack)"
            ),
        })
    }
}

/// How a `.cwasm` artifact (an ELF object) begins.
const PRECOMPILED_MAGIC: &[u8] = b"\x7fELF";

/// `5s`, `100ms`, `2m`, `1h`, `250us`, `10ns`; a bare number is seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().with_context(|| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "ns" => number / 1e9,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("invalid duration {text:?}: the unit must be one of ns, us, ms, s, m, h"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Run a WebAssembly module or component as the main process.
#[derive(clap::Args)]
pub struct RunCommand {
    /// Grant access to a host directory, seen in the guest at GUEST (or at
    /// the same path): HOST[::GUEST].
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<Preopen>,

    /// Like --dir, but the guest can only read the directory.
    #[arg(long = "dir-ro", value_name = "HOST[::GUEST]")]
    read_only_dirs: Vec<Preopen>,

    /// Let the guest use the network as wmp can (TCP, UDP, name lookup);
    /// without it all three are refused.
    #[arg(long)]
    inherit_network: bool,

    /// Pass an environment variable; without `=VAL` the value is taken
    /// from wmp's own environment.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    envs: Vec<String>,

    /// Limits, as `wasmtime run` spells them: `-W max-memory-size=BYTES`,
    /// `-W max-table-elements=N`, `-W fuel=N`, `-W timeout=5s`,
    /// `-W max-wasm-stack=BYTES`; and wmp's `-W max-host-memory=BYTES`
    /// (what the host may hold for each process; default 64 MiB). Every
    /// process inherits them.
    #[arg(short = 'W', value_name = "KEY=VALUE")]
    wasm_options: Vec<WasmOption>,

    /// Most processes alive at once in the whole tree (a fork-bomb guard).
    #[arg(long, value_name = "N")]
    max_processes: Option<usize>,

    /// Most levels of descendants below the main process.
    #[arg(long, value_name = "N")]
    max_depth: Option<usize>,

    /// Allow MODULE to be a precompiled .cwasm (from `wmp compile`). Its
    /// machine code runs as it is, so only use files you made.
    #[arg(long)]
    allow_precompiled: bool,

    /// Let guests start the native program at PATH, by that name (as the
    /// `program` of a spec); `NAME=PATH` grants it under NAME. It runs with
    /// the starting guest's environment and output, and nothing else.
    #[arg(long = "allow-native", value_name = "[NAME=]PATH")]
    allow_native: Vec<String>,

    /// Most bytes MODULE may have; a larger file is refused before it is
    /// compiled.
    #[arg(long, value_name = "BYTES", default_value_t = wmp_host::DEFAULT_MAX_PROGRAM_SIZE)]
    max_program_size: u64,

    /// Do not use the on-disk compilation cache.
    #[arg(long)]
    disable_cache: bool,

    /// Let the guest tree place children on the Ray cluster whose
    /// dashboard is at URL (e.g. http://127.0.0.1:8265); each node a
    /// placement names runs a `wmp agent` (this executable) started
    /// through Ray.
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// The program (.wasm or .wat), then the arguments passed to it.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "MODULE [ARGS]...")]
    module_and_args: Vec<OsString>,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let module = PathBuf::from(&self.module_and_args[0]);
        let cache = if self.disable_cache { CodeCache::Off } else { CodeCache::System };
        let mut builder =
            Runtime::builder().code_cache(cache).limits(self.limits()).max_program_size(self.max_program_size);
        for option in &self.wasm_options {
            if let WasmOption::MaxWasmStack(bytes) = option {
                builder = builder.max_wasm_stack(*bytes);
            }
        }
        #[cfg(feature = "cluster")]
        if let Some(dashboard) = &self.cluster {
            builder = builder.cluster(wmp_host::Cluster::ray(dashboard));
        }
        let runtime = builder.build()?;
        let program = self.load(&runtime, &module)?;
        for grant in &self.allow_native {
            let (name, path) = grant.split_once('=').unwrap_or((grant, grant));
            runtime.share_native(name, &NativeProgram::new(path));
        }
        let reason = runtime.run_main(&program, self.capabilities(&module)?)?;
        drop(runtime);
        std::process::exit(match reason {
            ExitReason::Returned => 0,
            ExitReason::Exit(code) => code,
            ExitReason::Trap(_) => TRAP_EXIT_STATUS,
            ExitReason::Terminated => TERMINATED_EXIT_STATUS,
            ExitReason::Killed => KILLED_EXIT_STATUS,
            // Traps to wasmtime, which exits 134 with the trap: so does wmp,
            // with wasmtime's words and then wmp's reason (a stack
            // overflow's report is already out, as any trap's).
            ExitReason::Limit(Limit::Stack) => {
                eprintln!("wmp: {} overflowed its stack (-W max-wasm-stack)", module.display());
                TRAP_EXIT_STATUS
            }
            ExitReason::Limit(limit @ (Limit::Timeout | Limit::Fuel)) => {
                let trap = if limit == Limit::Timeout { "interrupt" } else { "all fuel consumed by WebAssembly" };
                eprintln!("Error: failed to run main module `{}`\n\nCaused by:\n    wasm trap: {trap}\n", module.display());
                eprintln!("wmp: {} was stopped by its {limit}", module.display());
                TRAP_EXIT_STATUS
            }
            ExitReason::Limit(limit) => {
                eprintln!("Error: {} was stopped by its {limit}", module.display());
                KILLED_EXIT_STATUS
            }
            ExitReason::Signaled(signal) => 128 + signal,
            ExitReason::Lost(what) => {
                eprintln!("Error: {} was lost: {what}", module.display());
                KILLED_EXIT_STATUS
            }
        });
    }

    /// Loads MODULE from one read of the file: a `.cwasm` artifact if
    /// allowed, else WebAssembly.
    fn load(&self, runtime: &Runtime, module: &Path) -> anyhow::Result<Program> {
        let name = module.display().to_string();
        let bytes = runtime.read_program(module)?;
        Ok(if self.allow_precompiled && bytes.starts_with(PRECOMPILED_MAGIC) {
            // SAFETY: the user vouched for the file with --allow-precompiled.
            unsafe { runtime.load_precompiled_bytes(&name, &bytes)? }
        } else {
            runtime.load_bytes(&name, &bytes)?
        })
    }

    fn limits(&self) -> Limits {
        let mut limits = Limits { max_processes: self.max_processes, max_depth: self.max_depth, ..Limits::new() };
        for option in &self.wasm_options {
            match *option {
                WasmOption::MaxMemorySize(bytes) => limits.max_memory = Some(bytes),
                WasmOption::MaxTableElements(n) => limits.max_table_elements = Some(n),
                WasmOption::MaxHostMemory(bytes) => limits.max_host_memory = Some(bytes),
                WasmOption::Fuel(fuel) => limits.fuel = Some(fuel),
                WasmOption::Timeout(timeout) => limits.timeout = Some(timeout),
                WasmOption::MaxWasmStack(_) => {}
            }
        }
        limits
    }

    fn capabilities(&self, module: &Path) -> anyhow::Result<Capabilities> {
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
                // Unset on the host, it stays unset in the guest, as under
                // `wasmtime run`.
                None => match std::env::var_os(env) {
                    Some(value) => {
                        let value = value
                            .into_string()
                            .map_err(|_| anyhow!("environment variable {env:?} is not valid UTF-8"))?;
                        caps.env(env, value)
                    }
                    None => caps,
                },
            };
        }
        for dir in &self.dirs {
            caps = caps.preopen(dir.clone());
        }
        for dir in &self.read_only_dirs {
            caps = caps.preopen(dir.clone().read_only());
        }
        #[cfg(feature = "cluster")]
        let caps = caps.cluster(self.cluster.is_some());
        Ok(caps.network(self.inherit_network))
    }
}
