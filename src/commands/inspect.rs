//! `wmp inspect`: what a program is, without running it.

use std::path::PathBuf;

/// Show a program's kind (p1 module or p2 component), imports, exports and
/// world.
#[derive(clap::Args)]
pub struct InspectCommand {
    /// The .wasm or .wat file.
    module: PathBuf,
}

impl InspectCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let outline = wmp_host::inspect::inspect_file(&self.module)?;
        let kind = match outline.kind {
            wmp_host::ProgramKind::Module => "p1 (core module, WASI preview 1)",
            wmp_host::ProgramKind::Component => "p2 (component, WASI preview 2)",
        };
        let mut text = format!("kind: {kind}\nworld: {}\nimports:\n", outline.world);
        outline.imports.iter().for_each(|name| text.push_str(&format!("  {name}\n")));
        text.push_str("exports:\n");
        outline.exports.iter().for_each(|name| text.push_str(&format!("  {name}\n")));
        // A closed pipe (`wmp inspect x | head`) is not an error.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
        Ok(())
    }
}
