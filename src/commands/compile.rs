//! `wmp compile`: compile a program ahead of time to a `.cwasm` artifact,
//! which `wmp run --allow-precompiled` starts without compiling.

use std::path::PathBuf;

use anyhow::Context;
use wasmtime_cli_flags::CommonOptions;
use wmp_host::Limits;

use super::run::wasmtime_options;

/// Compile a WebAssembly module or component to a precompiled .cwasm file.
#[derive(clap::Args)]
pub struct CompileCommand {
    /// The options of `wmp run` that shape the compiled code: run the
    /// artifact with the same ones.
    #[command(flatten)]
    common: CommonOptions,

    /// The .wasm or .wat file.
    module: PathBuf,

    /// Where to write the artifact (default: MODULE with a .cwasm extension).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl CompileCommand {
    pub fn execute(mut self) -> anyhow::Result<()> {
        let runtime = wasmtime_options::runtime_builder(&mut self.common, Limits::new())?.build()?;
        let bytes = runtime.read_program(&self.module)?;
        let artifact = runtime.precompile(&self.module.display().to_string(), &bytes)?;
        let output = self.output.unwrap_or_else(|| self.module.with_extension("cwasm"));
        std::fs::write(&output, artifact).with_context(|| format!("cannot write {}", output.display()))?;
        Ok(())
    }
}
