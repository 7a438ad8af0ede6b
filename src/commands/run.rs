//! `wmp run`: run a WASI program as the main process, as `wasmtime run`
//! runs it (the same flags, parsed by wasmtime's own crate; the same output
//! and exit codes), with the process model available to wmp guests.

mod stats;
pub mod wasmtime_options;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use wasmtime_cli_flags::CommonOptions;
use wmp_host::{
    Capabilities, CodeCache, ExitReason, Invocation, Limit, Limits, NativeProgram, Preopen, Program, ProgramKind, Runtime,
    Stdin, Stdio,
};

/// Exit status for a trap, as `wasmtime run` gives it (128 + SIGABRT).
const TRAP_EXIT_STATUS: i32 = 134;

/// Exit status for a main process stopped like a kill (a limit): 128 + SIGKILL.
const KILLED_EXIT_STATUS: i32 = 137;

/// Exit status for a main process terminated: 128 + SIGTERM.
const TERMINATED_EXIT_STATUS: i32 = 143;

/// How a `.cwasm` artifact (an ELF object) begins.
const PRECOMPILED_MAGIC: &[u8] = b"\x7fELF";

/// Run a WebAssembly module or component as the main process.
#[derive(clap::Args)]
pub struct RunCommand {
    #[command(flatten)]
    common: CommonOptions,

    /// Allow executing precompiled WebAssembly modules as `*.cwasm` files
    /// (made by `wmp compile`). Their machine code runs as it is: only pass
    /// files you made.
    #[arg(long)]
    allow_precompiled: bool,

    /// Refused: wmp has no profiler integration.
    #[arg(long, value_name = "STRATEGY")]
    profile: Option<String>,

    /// Grant access of a host directory to a guest, at the same path or at
    /// GUEST_DIR.
    #[arg(long = "dir", value_name = "HOST_DIR[::GUEST_DIR]")]
    dirs: Vec<Preopen>,

    /// Pass an environment variable to the program: `NAME=VAL` sets it,
    /// `NAME` alone passes on the host's value (unset on the host, it stays
    /// unset).
    #[arg(long = "env", number_of_values = 1, value_name = "NAME[=VAL]")]
    envs: Vec<String>,

    /// Refused: wmp has no debugger integration.
    #[arg(short = 'g', long = "gdbstub", value_name = "[ADDR:]PORT")]
    gdbstub: Option<String>,

    /// The function to run instead of the command's main. For a module,
    /// the name of an export, its arguments the ones after WASM (i32/i64
    /// in decimal or 0x hex, f32/f64); for a component, a WAVE-encoded
    /// call such as `add(1, 2)` or `my:pkg/iface.f("x")` (a bare name is
    /// searched for in the exported instances). Each result is printed on
    /// a line of stdout.
    #[arg(long, value_name = "FUNCTION")]
    invoke: Option<String>,

    /// Refused for now: load the given WebAssembly module before the main
    /// module.
    #[arg(long = "preload", number_of_values = 1, value_name = "NAME=MODULE_PATH")]
    preloads: Vec<String>,

    /// Override the value of `argv[0]` (default: the file name of WASM).
    #[arg(long)]
    argv0: Option<String>,

    /// Like --dir, but the guest can only read the directory.
    #[arg(long = "dir-ro", value_name = "HOST_DIR[::GUEST_DIR]", help_heading = "wmp options")]
    read_only_dirs: Vec<Preopen>,

    /// Let the guest use the network (TCP, UDP and name lookup), as
    /// `-S inherit-network` does.
    #[arg(long, help_heading = "wmp options")]
    inherit_network: bool,

    /// Most bytes the host may hold for each process (messages, queues,
    /// objects); default 64 MiB. Every process inherits it.
    #[arg(long, value_name = "BYTES", help_heading = "wmp options")]
    max_host_memory: Option<usize>,

    /// Most processes alive at once in the whole tree (a fork-bomb guard).
    #[arg(long, value_name = "N", help_heading = "wmp options")]
    max_processes: Option<usize>,

    /// Most levels of descendants below the main process.
    #[arg(long, value_name = "N", help_heading = "wmp options")]
    max_depth: Option<usize>,

    /// Let guests start the native program at PATH, by that name (as the
    /// `program` of a spec); `NAME=PATH` grants it under NAME. It runs with
    /// the starting guest's environment and output, and nothing else.
    #[arg(long = "allow-native", value_name = "[NAME=]PATH", help_heading = "wmp options")]
    allow_native: Vec<String>,

    /// Most bytes WASM may have; a larger file is refused before it is
    /// compiled.
    #[arg(long, value_name = "BYTES", default_value_t = wmp_host::DEFAULT_MAX_PROGRAM_SIZE, help_heading = "wmp options")]
    max_program_size: u64,

    /// At exit, print on stderr a table of every process the run had (those
    /// that ended before the main one too): pid, parent, name, exit code,
    /// CPU time, fuel (under -W fuel), memory and table peaks, host-memory
    /// peak, and bytes sent and received over pipes and queues.
    #[arg(long, help_heading = "wmp options")]
    stats: bool,

    /// Do not use the on-disk compilation cache.
    #[arg(long, help_heading = "wmp options")]
    disable_cache: bool,

    /// Most bytes the compilation cache may take; storing past it removes
    /// the least recently used entries (`wmp cache` shows them).
    #[arg(long, value_name = "BYTES", default_value_t = wmp_host::DEFAULT_CODE_CACHE_LIMIT, help_heading = "wmp options")]
    max_cache_size: u64,

    /// Let the guest tree place children on the Ray cluster whose
    /// dashboard is at URL (e.g. http://127.0.0.1:8265); each node a
    /// placement names runs a `wmp agent` (this executable) started
    /// through Ray.
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "URL", help_heading = "wmp options")]
    cluster: Option<String>,

    /// The WebAssembly module (.wasm, .wat, or with --allow-precompiled a
    /// .cwasm; `-` reads it from stdin) to run, and the arguments passed
    /// to it.
    #[arg(value_name = "WASM", trailing_var_arg = true, required = true)]
    module_and_args: Vec<OsString>,
}

impl RunCommand {
    pub fn execute(mut self) -> anyhow::Result<()> {
        let limits = Limits {
            max_processes: self.max_processes,
            max_depth: self.max_depth,
            max_host_memory: self.max_host_memory,
            ..Limits::new()
        };
        let builder = wasmtime_options::runtime_builder(&mut self.common, limits)?;
        self.refuse_unsupported_flags()?;
        let module = PathBuf::from(&self.module_and_args[0]);
        let cache = if self.disable_cache { CodeCache::Off } else { CodeCache::System };
        let mut builder = builder.code_cache(cache).code_cache_limit(self.max_cache_size).max_program_size(self.max_program_size);
        if self.stats {
            builder = builder.keep_ended_processes(stats::KEPT_RECORDS);
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
        let caps = self.capabilities(&module)?;
        let reason = match &self.invoke {
            // A start that fails, in wasmtime's words over wmp's reason.
            None => runtime.run_main(&program, caps).with_context(|| format!("failed to run main module `{}`", module.display()))?,
            Some(function) => self.invoke(&runtime, &program, &module, function, caps)?,
        };
        if self.stats {
            eprint!("{}", stats::table(&runtime));
        }
        drop(runtime);
        std::process::exit(exit_status(&module, reason));
    }

    /// The flags of `wasmtime run` (besides the option groups) that wmp
    /// parses but cannot honour.
    fn refuse_unsupported_flags(&self) -> anyhow::Result<()> {
        let refused = [
            (self.profile.is_some(), "--profile", "wmp has no profiler integration"),
            (self.gdbstub.is_some(), "--gdbstub", "wmp has no debugger integration"),
            (!self.preloads.is_empty(), "--preload", "wmp links a program with WASI and its own interface only"),
        ];
        match refused.into_iter().find(|(given, ..)| *given) {
            Some((_, flag, reason)) => bail!("{flag}: wmp cannot honour it: {reason}"),
            None => Ok(()),
        }
    }

    /// Runs `function` of `program` as the main process (`--invoke`), with
    /// the arguments after WASM, and prints its results as wasmtime does:
    /// one line per value of a core function, one WAVE line for a
    /// component's; a call that does not fit the function fails before it
    /// starts, in wasmtime's words.
    fn invoke(
        &self,
        runtime: &Runtime,
        program: &Program,
        module: &Path,
        function: &str,
        caps: Capabilities,
    ) -> anyhow::Result<ExitReason> {
        // wasmtime warns of both, for core functions only.
        let core = program.kind() == ProgramKind::Module;
        let warn = |what| eprintln!("warning: using `--invoke` with a function that {what} is experimental and may break in the future");
        let invocation = match Invocation::new(program, function, &self.program_args()?) {
            Ok(invocation) => invocation,
            Err(err) => {
                if core && matches!(err, wmp_host::Error::InvalidArguments(_)) {
                    warn("takes arguments");
                }
                eprintln!("Error: failed to run main module `{}`\n\nCaused by:\n    {err}\n", module.display());
                return Ok(ExitReason::Error(err.to_string()));
            }
        };
        if core && invocation.takes_arguments() {
            warn("takes arguments");
        }
        let invoked = runtime.invoke_main(&invocation, caps)?;
        if let Some(lines) = &invoked.results {
            if core && invocation.returns_values() {
                warn("returns values");
            }
            for line in lines {
                println!("{line}");
            }
        }
        Ok(invoked.exit)
    }

    /// The arguments after WASM: the program's argv after argv[0], or the
    /// arguments of the function `--invoke` names.
    fn program_args(&self) -> anyhow::Result<Vec<String>> {
        self.module_and_args[1..]
            .iter()
            .map(|arg| arg.to_str().map(str::to_owned).with_context(|| format!("argument {arg:?} is not valid UTF-8")))
            .collect()
    }

    /// Loads WASM from one read of the file (or of stdin, for `-`): a
    /// `.cwasm` artifact if allowed, else WebAssembly.
    fn load(&self, runtime: &Runtime, module: &Path) -> anyhow::Result<Program> {
        let name = module.display().to_string();
        let bytes = match module.to_str() {
            Some("-") => runtime.read_program_from(std::io::stdin().lock(), "/dev/stdin")?,
            _ => match runtime.read_program(module) {
                // wasmtime's words, the OS's reason below them.
                Err(wmp_host::Error::Read { path, error }) => {
                    return Err(anyhow::Error::new(error).context(format!("failed to open wasm module {path:?}")));
                }
                read => read?,
            },
        };
        if !bytes.starts_with(PRECOMPILED_MAGIC) {
            return Ok(runtime.load_bytes(&name, &bytes)?);
        }
        if !self.allow_precompiled {
            // wasmtime's words.
            bail!("running a precompiled module requires the `--allow-precompiled` flag");
        }
        // SAFETY: the user vouched for the file with --allow-precompiled.
        Ok(unsafe { runtime.load_precompiled_bytes(&name, &bytes)? })
    }

    fn capabilities(&self, module: &Path) -> anyhow::Result<Capabilities> {
        // argv[0] is the file name only, so no host path leaks in (as
        // `wasmtime run` does).
        let argv0 = match &self.argv0 {
            Some(argv0) => argv0.clone(),
            None => module.file_name().unwrap_or(module.as_os_str()).to_string_lossy().into_owned(),
        };
        let args = std::iter::once(argv0).chain(self.program_args()?);
        let wasi = &self.common.wasi;
        let stdin = if wasi.inherit_stdin == Some(false) { Stdin::Null } else { Stdin::Inherit };
        let mut caps = Capabilities::new().args(args).stdin(stdin);
        for (name, value) in self.environment()? {
            caps = caps.env(name, value);
        }
        if wasi.inherit_stdout == Some(false) {
            caps = caps.stdout(Stdio::Null);
        }
        if wasi.inherit_stderr == Some(false) {
            caps = caps.stderr(Stdio::Null);
        }
        for dir in &self.dirs {
            caps = caps.preopen(dir.clone());
        }
        for dir in &self.read_only_dirs {
            caps = caps.preopen(dir.clone().read_only());
        }
        #[cfg(feature = "cluster")]
        let caps = caps.cluster(self.cluster.is_some());
        Ok(caps.network(self.inherit_network || wasi.inherit_network == Some(true)))
    }

    /// The guest's environment: all of wmp's with `-S inherit-env`, then
    /// each --env, a later one replacing an earlier one of the same name.
    fn environment(&self) -> anyhow::Result<Vec<(String, String)>> {
        let utf8 = |name: &str, value: OsString| {
            value.into_string().map_err(|_| anyhow!("environment variable {name:?} is not valid UTF-8"))
        };
        let mut vars = Vec::new();
        if self.common.wasi.inherit_env == Some(true) {
            for (name, value) in std::env::vars_os() {
                let name = name.into_string().map_err(|name| anyhow!("environment variable name {name:?} is not valid UTF-8"))?;
                let value = utf8(&name, value)?;
                vars.push((name, value));
            }
        }
        for env in &self.envs {
            let (name, value) = match env.split_once('=') {
                Some((name, value)) => (name, value.to_owned()),
                // Unset on the host, it stays unset in the guest, as under
                // `wasmtime run`.
                None => match std::env::var_os(env) {
                    Some(value) => (env.as_str(), utf8(env, value)?),
                    None => continue,
                },
            };
            vars.retain(|(known, _)| known != name);
            vars.push((name.to_owned(), value));
        }
        Ok(vars)
    }
}

/// The exit status of `wmp run` for how the main process ended: the one
/// `wasmtime run` gives, with a line of wmp's reason where wmp stopped it.
fn exit_status(module: &Path, reason: ExitReason) -> i32 {
    match reason {
        ExitReason::Returned => 0,
        ExitReason::Exit(code) => code,
        ExitReason::Trap(_) => TRAP_EXIT_STATUS,
        // wasmtime's error exit; the report is already out, as a trap's.
        ExitReason::Error(_) => 1,
        ExitReason::Terminated => TERMINATED_EXIT_STATUS,
        ExitReason::Killed => KILLED_EXIT_STATUS,
        // Traps to wasmtime, which exits 134 with the trap: so does wmp,
        // with wasmtime's words and then wmp's reason (a stack overflow's
        // report is already out, as any trap's).
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
    }
}
