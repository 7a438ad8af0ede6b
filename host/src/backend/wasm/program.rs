//! Programs: WebAssembly core modules (WASI preview 1) and components
//! (WASI preview 2) compiled and pre-linked once, then instantiated for
//! every process that runs them. One that is no command (a reactor, a
//! library component) loads too, for its functions to be invoked (see
//! `entry.rs`); a reactor run as a command is only instantiated, and
//! starting a library component as a command is refused.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf};
use wasmtime::{Engine, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandIndices;

use crate::backend::wasm::{ModuleState, ComponentState};
use crate::backend::wasm::code_cache::CodeCacheDir;
use wmp_core::ProcessError;

use crate::base::error::{Error, Result, one_line};
use crate::model::builder::Target;
use crate::backend::wasm::process_imports::bindings::Guest;

/// A compiled, pre-linked program, cheap to clone and to start many times.
#[derive(Clone)]
pub struct Program {
    inner: Arc<ProgramInner>,
}

struct ProgramInner {
    name: String,
    code: Code,
    /// The targets the program declares (the `wmp:targets` custom section
    /// that `wmp_guest::main!` writes); None if it declares none.
    targets: Option<Vec<String>>,
    /// The WebAssembly it was compiled from, kept only in a runtime that
    /// can send programs to other machines.
    #[cfg(feature = "cluster")]
    source: Option<crate::model::launch::ProgramSource>,
}

/// The custom section in which a guest lists its targets, one per line.
const TARGETS_SECTION: &str = "wmp:targets";

pub(crate) enum Code {
    /// A component, and where its `wasi:cli/run` is if it is a command
    /// (else why it is none).
    Component { pre: wasmtime::component::InstancePre<ComponentState>, command: Result<CommandIndices, String> },
    Module(InstancePre<ModuleState>),
}

/// Which kind of WebAssembly a program is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// A core module using WASI preview 1 (`wasm32-wasip1`).
    Module,
    /// A component: of the `wasi:cli/command` world (`wasm32-wasip2`),
    /// possibly importing `wmp:process`, or one whose functions are invoked.
    Component,
}

impl Program {
    /// The name the program was loaded under (its path for files); also the
    /// default `argv[0]`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn kind(&self) -> ProgramKind {
        match self.inner.code {
            Code::Component { .. } => ProgramKind::Component,
            Code::Module(_) => ProgramKind::Module,
        }
    }

    pub(crate) fn code(&self) -> &Code {
        &self.inner.code
    }

    /// The targets the program declares, if it declares them.
    pub fn targets(&self) -> Option<&[String]> {
        self.inner.targets.as_deref()
    }

    /// The WebAssembly it was compiled from, if it was kept.
    #[cfg(feature = "cluster")]
    pub(crate) fn source(&self) -> Option<&crate::model::launch::ProgramSource> {
        self.inner.source.as_ref()
    }

    /// The same program, keeping `bytes` as the WebAssembly it was
    /// compiled from.
    #[cfg(feature = "cluster")]
    pub(crate) fn with_source(mut self, bytes: &[u8]) -> Program {
        let source = crate::model::launch::ProgramSource::new(&self.inner.name, bytes);
        Arc::get_mut(&mut self.inner).expect("a program just compiled is not shared yet").source = Some(source);
        self
    }

    /// Why the program cannot run as a command, if it cannot: a component
    /// without `wasi:cli/run`. (A core module always can: without `_start`
    /// its command is its instantiation, as under `wasmtime run`.)
    pub(crate) fn check_command(&self) -> Result<(), String> {
        match &self.inner.code {
            Code::Module(_) => Ok(()),
            Code::Component { command, .. } => command.as_ref().map(|_| ()).map_err(Clone::clone),
        }
    }

    /// Whether a child of this program can run `target`.
    pub(crate) fn check_target(&self, target: Option<&Target>) -> Result<(), ProcessError> {
        let Some(target) = target else { return Ok(()) };
        let known = match (&self.inner.code, &self.inner.targets) {
            (Code::Module(_), _) => {
                return Err(ProcessError::UnknownTarget(format!(
                    "unknown target {:?}: {} is a core module, and only wmp guest components have targets",
                    target.name,
                    self.name()
                )));
            }
            (Code::Component { .. }, None) => return Ok(()),
            (Code::Component { .. }, Some(known)) => known,
        };
        if known.contains(&target.name) {
            return Ok(());
        }
        Err(ProcessError::UnknownTarget(format!(
            "unknown target {:?}: {} has {known:?}",
            target.name,
            self.name()
        )))
    }
}

/// Reads the `wmp:targets` section, wherever in the program it stands.
fn declared_targets(bytes: &[u8]) -> Option<Vec<String>> {
    wasmparser::Parser::new(0).parse_all(bytes).find_map(|payload| match payload {
        Ok(wasmparser::Payload::CustomSection(section)) if section.name() == TARGETS_SECTION => {
            let text = String::from_utf8_lossy(section.data());
            Some(text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        }
        _ => None,
    })
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("name", &self.name()).field("kind", &self.kind()).finish()
    }
}

/// The host functions every program is linked against: WASI p1 for modules;
/// WASI p2 and `wmp:process` for components (and the embedder's, which
/// `host_functions.rs` adds).
pub(crate) struct Linkers {
    pub(crate) component: wasmtime::component::Linker<ComponentState>,
    pub(crate) module: wasmtime::Linker<ModuleState>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        Guest::add_to_linker::<ComponentState, HasSelf<ComponentState>>(&mut component, |state| state)?;
        let mut module = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut module, |state: &mut ModuleState| &mut state.wasi)?;
        Ok(Self { component, module })
    }
}

/// Turns file contents into WebAssembly binary: binary passes through, the
/// text format is parsed, anything else is refused.
pub(crate) fn binary<'a>(name: &str, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    let invalid = |reason: String| Error::InvalidProgram { name: name.to_owned(), reason };
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.into());
    }
    let looks_like_text = std::str::from_utf8(bytes).is_ok_and(|text| {
        let text = text.trim_start();
        text.starts_with('(') || text.starts_with(";;")
    });
    if !looks_like_text {
        return Err(invalid("not a WebAssembly module or component (no \\0asm header)".into()));
    }
    wat::parse_bytes(bytes).map_err(|e| invalid(e.to_string().replace('\n', " ")))
}

/// Code compiled for this engine, not linked yet.
pub(crate) enum Compiled {
    Component(Component),
    Module(Module),
}

impl Compiled {
    /// The `.cwasm` artifact of WebAssembly binary `wasm` for `engine`.
    pub(crate) fn artifact(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        if wasmparser::Parser::is_component(wasm) {
            engine.precompile_component(wasm)
        } else {
            engine.precompile_module(wasm)
        }
    }

    /// The code in an artifact made by [`artifact`](Self::artifact); None
    /// if `bytes` is no artifact at all.
    ///
    /// # Safety
    ///
    /// The bytes must come from `artifact` (of a compatible engine):
    /// wasmtime runs the machine code in them as it is.
    pub(crate) unsafe fn from_artifact(engine: &Engine, bytes: &[u8]) -> Option<wasmtime::Result<Compiled>> {
        // SAFETY: the caller vouches for the bytes.
        Some(match Engine::detect_precompiled(bytes)? {
            wasmtime::Precompiled::Component => unsafe { Component::deserialize(engine, bytes) }.map(Compiled::Component),
            wasmtime::Precompiled::Module => unsafe { Module::deserialize(engine, bytes) }.map(Compiled::Module),
        })
    }

    /// [`from_artifact`](Self::from_artifact) from a file, which is mapped
    /// rather than read.
    ///
    /// # Safety
    ///
    /// As for `from_artifact`, for the file's contents.
    pub(crate) unsafe fn from_artifact_file(engine: &Engine, path: &Path) -> wasmtime::Result<Compiled> {
        // SAFETY: the caller vouches for the file.
        match Engine::detect_precompiled_file(path)? {
            Some(wasmtime::Precompiled::Component) => {
                unsafe { Component::deserialize_file(engine, path) }.map(Compiled::Component)
            }
            Some(wasmtime::Precompiled::Module) => unsafe { Module::deserialize_file(engine, path) }.map(Compiled::Module),
            None => Err(wasmtime::format_err!("not a precompiled (.cwasm) program")),
        }
    }
}

/// Compiles and links a program from WebAssembly (binary or text),
/// through `cache` if there is one.
pub(crate) fn compile(
    engine: &Engine,
    linkers: &Linkers,
    cache: Option<&CodeCacheDir>,
    name: &str,
    bytes: &[u8],
) -> Result<Program> {
    let invalid = |e: wasmtime::Error| Error::InvalidProgram { name: name.to_owned(), reason: one_line(&e) };
    let bytes = binary(name, bytes)?;
    let compiled = match cache {
        Some(cache) => cache.load(engine, &bytes),
        None if wasmparser::Parser::is_component(&bytes) => Component::new(engine, &bytes).map(Compiled::Component),
        None => Module::new(engine, &bytes).map(Compiled::Module),
    };
    link(linkers, name, compiled.map_err(invalid)?, declared_targets(&bytes))
}

/// Compiles WebAssembly to a `.cwasm` artifact for this engine's settings.
pub(crate) fn precompile(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let bytes = binary(name, bytes)?;
    Compiled::artifact(engine, &bytes).map_err(|e| Error::InvalidProgram { name: name.to_owned(), reason: one_line(&e) })
}

/// Links a program from a `.cwasm` artifact made by [`precompile`].
///
/// # Safety
///
/// The bytes must come from `precompile` (of a compatible engine): wasmtime
/// runs the machine code in them as it is.
pub(crate) unsafe fn deserialize(engine: &Engine, linkers: &Linkers, name: &str, bytes: &[u8]) -> Result<Program> {
    let invalid = |reason: String| Error::InvalidProgram { name: name.to_owned(), reason };
    // SAFETY: the caller vouches for the bytes (see above).
    let Some(compiled) = (unsafe { Compiled::from_artifact(engine, bytes) }) else {
        return Err(invalid("not a precompiled (.cwasm) program".into()));
    };
    // An artifact keeps no custom sections, so its targets are not known.
    link(linkers, name, compiled.map_err(|e| invalid(one_line(&e)))?, None)
}

fn link(linkers: &Linkers, name: &str, compiled: Compiled, targets: Option<Vec<String>>) -> Result<Program> {
    let invalid = |reason: String| Error::InvalidProgram { name: name.to_owned(), reason };
    let code = match compiled {
        Compiled::Component(component) => {
            let pre = linkers.component.instantiate_pre(&component).map_err(|e| invalid(one_line(&e)))?;
            let command = CommandIndices::new(&pre).map_err(|e| {
                format!("not a WASI command component (it must export wasi:cli/run): {}", one_line(&e))
            });
            Code::Component { pre, command }
        }
        Compiled::Module(module) => Code::Module(linkers.module.instantiate_pre(&module).map_err(|e| invalid(one_line(&e)))?),
    };
    let inner = ProgramInner {
        name: name.to_owned(),
        code,
        targets,
        #[cfg(feature = "cluster")]
        source: None,
    };
    Ok(Program { inner: Arc::new(inner) })
}
