//! `wmp compile`: compile a program ahead of time to a `.cwasm` artifact,
//! which `wmp run --allow-precompiled` starts without compiling.

use std::path::PathBuf;

use anyhow::Context;
use wmp_host::Runtime;

/// Compile a WebAssembly module or component to a precompiled .cwasm file.
#[derive(clap::Args)]
pub struct CompileCommand {
    /// The .wasm or .wat file.
    module: PathBuf,

    /// Where to write the artifact (default: MODULE with a .cwasm extension).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl CompileCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let runtime = Runtime::new()?;
        let bytes = runtime.read_program(&self.module)?;
        let artifact = runtime.precompile(&self.module.display().to_string(), &bytes)?;
        let output = self.output.unwrap_or_else(|| self.module.with_extension("cwasm"));
        std::fs::write(&output, artifact).with_context(|| format!("cannot write {}", output.display()))?;
        Ok(())
    }
}
