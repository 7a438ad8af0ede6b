//! What a program file is, without running it: module or component, its
//! imports and exports, and which world it targets (`wmp inspect`).

use std::fmt;
use std::path::Path;

use wasmparser::{Parser, Payload};

use crate::base::error::{Error, Result};
use crate::backend::wasm::program::{self, ProgramKind};
use crate::base::program_file::{self, DEFAULT_MAX_PROGRAM_SIZE};

/// The world a program was built for, as far as its imports and exports
/// tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// A component importing `wmp:process`: a wmp guest (`wmp:process/guest`
    /// plus `wasi:cli/command`).
    WmpGuest,
    /// A plain WASI preview 2 command component (`wasi:cli/command`).
    WasiCommand,
    /// A WASI preview 1 command module (exports `_start`).
    WasiP1Command,
    /// Anything else (a library component or a reactor module): wmp cannot
    /// run it as a command, only invoke its functions.
    Other,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::WmpGuest => "wmp:process/guest (a wasi:cli command using the wmp process model)",
            World::WasiCommand => "wasi:cli/command (plain WASI preview 2 program)",
            World::WasiP1Command => "wasi preview 1 command (plain core module)",
            World::Other => "none wmp runs as a command (no wasi:cli/run or _start export); its functions can be invoked",
        })
    }
}

/// The outline of a program.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub kind: ProgramKind,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub world: World,
}

/// [`inspect`] of the program file at `path`, read as
/// [`Runtime::read_program`](crate::Runtime::read_program) reads it under
/// the default cap ([`DEFAULT_MAX_PROGRAM_SIZE`]).
pub fn inspect_file(path: &Path) -> Result<Inspection> {
    let bytes = program_file::read(path, DEFAULT_MAX_PROGRAM_SIZE)?;
    inspect(&path.display().to_string(), &bytes)
}

/// Reads the outline of a program (binary or text format).
pub fn inspect(name: &str, bytes: &[u8]) -> Result<Inspection> {
    let invalid = |e: wasmparser::BinaryReaderError| Error::InvalidProgram { name: name.to_owned(), reason: e.to_string() };
    let bytes = program::binary(name, bytes)?;
    let kind = if Parser::is_component(&bytes) { ProgramKind::Component } else { ProgramKind::Module };
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components have sections of their own: only the
    // outermost level (depth 0) counts.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ImportSection(section) if depth == 0 => {
                for import in section.into_imports() {
                    let import = import.map_err(invalid)?;
                    imports.push(format!("{}::{}", import.module, import.name));
                }
            }
            Payload::ExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.map_err(invalid)?.name.to_owned());
                }
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.map_err(invalid)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.map_err(invalid)?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    let world = match kind {
        ProgramKind::Component if !exports.iter().any(|e| e.starts_with("wasi:cli/run@")) => World::Other,
        ProgramKind::Component if imports.iter().any(|i| i.starts_with("wmp:process/")) => World::WmpGuest,
        ProgramKind::Component => World::WasiCommand,
        ProgramKind::Module if exports.iter().any(|e| e == "_start") => World::WasiP1Command,
        ProgramKind::Module => World::Other,
    };
    Ok(Inspection { kind, imports, exports, world })
}
