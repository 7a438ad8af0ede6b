//! Programs: WebAssembly core modules (WASI preview 1) and components
//! (WASI preview 2) compiled and pre-linked once, then instantiated for
//! every process that runs them. One that is no command (a reactor, a
//! library component) loads too, for its functions to be invoked (see
//! `entry.rs`); a reactor run as a command is only instantiated, and
//! starting a library component as a command is refused.
//!
//! A program is loaded for the pooled engine, or for the on-demand one
//! alone if it fits no slot of the pool; a pooled program's on-demand copy
//! is made from its code the first time a process of it finds the pool
//! full (see `engines.rs`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use wasmtime::component::{Component, HasSelf};
use wasmtime::{Engine, InstancePre, Module};
use wasmtime_wasi::p2::bindings::CommandIndices;

use crate::backend::wasm::{ModuleState, ComponentState};
use crate::backend::wasm::code_cache::CodeCacheDir;
use crate::backend::wasm::engines::Engines;
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
    /// Its code on the engine it was loaded for: the pooled one, unless the
    /// runtime pools nothing or the program fits no slot.
    code: Code,
    /// Whether `code` is on the pooled engine.
    pooled: bool,
    /// Its code on the on-demand engine, copied from `code` when first
    /// needed (or why it cannot be); unused if `code` is on demand.
    on_demand: OnceLock<Result<Code, String>>,
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

    /// Its code on the engine it was loaded for (the pooled one if it fits).
    pub(crate) fn code(&self) -> &Code {
        &self.inner.code
    }

    /// Whether its processes start on the pooled engine.
    pub(crate) fn is_pooled(&self) -> bool {
        self.inner.pooled
    }

    /// Its code for a process that has a seat in the pool (`seated`: the
    /// code it was loaded with) or has none (its code on the on-demand
    /// engine).
    pub(crate) fn code_for(&self, engines: &Engines<Linkers>, seated: bool) -> Result<&Code, String> {
        if seated { Ok(self.code()) } else { self.code_on_demand(engines) }
    }

    /// Its code on the on-demand engine of `engines`, copied from the
    /// pooled engine's the first time it is asked for.
    fn code_on_demand(&self, engines: &Engines<Linkers>) -> Result<&Code, String> {
        if !self.inner.pooled {
            return Ok(&self.inner.code);
        }
        let copied = self.inner.on_demand.get_or_init(|| {
            let linked = engines.on_demand()?;
            let failed = |e: wasmtime::Error| format!("cannot copy {} to the on-demand engine: {}", self.name(), one_line(&e));
            let artifact = self.inner.code.serialize().map_err(failed)?;
            // SAFETY: the artifact was just serialized by an engine with the
            // same compilation settings (the two differ in their allocator,
            // which compiled code does not depend on).
            let compiled = unsafe { Compiled::from_artifact(&linked.engine, &artifact) }.expect("an artifact just made");
            linked_code(&linked.linkers, compiled.map_err(failed)?)
                .map_err(|reason| format!("cannot link {} on the on-demand engine: {reason}", self.name()))
        });
        copied.as_ref().map_err(Clone::clone)
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

impl Code {
    /// Its compiled code as an artifact that [`Compiled::from_artifact`] loads.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Code::Component { pre, .. } => pre.component().serialize(),
            Code::Module(pre) => pre.module().serialize(),
        }
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

/// Code compiled for one engine, not linked yet.
pub(crate) enum Compiled {
    Component(Component),
    Module(Module),
}

/// A `.cwasm` artifact, in memory or in a file (which is mapped).
#[derive(Clone, Copy)]
pub(crate) enum Artifact<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// Compiled code, and whether it is on the pooled engine.
pub(crate) struct Placed {
    compiled: Compiled,
    pooled: bool,
}

impl Artifact<'_> {
    /// The code in the artifact, for `engine`.
    ///
    /// # Safety
    ///
    /// As for [`Compiled::from_artifact`].
    pub(crate) unsafe fn load(self, engine: &Engine) -> wasmtime::Result<Compiled> {
        match self {
            // SAFETY: passed on to the caller.
            Artifact::Bytes(bytes) => unsafe { Compiled::from_artifact(engine, bytes) }
                .unwrap_or_else(|| Err(wasmtime::format_err!("not a precompiled (.cwasm) program"))),
            // SAFETY: passed on to the caller.
            Artifact::File(path) => unsafe { Compiled::from_artifact_file(engine, path) },
        }
    }

    /// The code in the artifact, on the pooled engine of `engines` if it
    /// fits a slot of the pool (wasmtime checks when it loads code for a
    /// pooled engine), else on the on-demand one; the error is the
    /// on-demand engine's.
    ///
    /// # Safety
    ///
    /// As for [`Compiled::from_artifact`].
    pub(crate) unsafe fn place(self, engines: &Engines<Linkers>) -> wasmtime::Result<Placed> {
        if let Some(pooled) = engines.pooled() {
            // SAFETY: passed on to the caller.
            if let Ok(compiled) = unsafe { self.load(&pooled.engine) } {
                return Ok(Placed { compiled, pooled: true });
            }
        }
        let on_demand = engines.on_demand().map_err(wasmtime::Error::msg)?;
        // SAFETY: passed on to the caller.
        Ok(Placed { compiled: unsafe { self.load(&on_demand.engine) }?, pooled: false })
    }
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
/// through `cache` if there is one, for the pooled engine of `engines` if
/// it fits a slot, else for the on-demand one.
pub(crate) fn compile(engines: &Engines<Linkers>, cache: Option<&CodeCacheDir>, name: &str, bytes: &[u8]) -> Result<Program> {
    let invalid = |e: wasmtime::Error| Error::InvalidProgram { name: name.to_owned(), reason: one_line(&e) };
    let bytes = binary(name, bytes)?;
    let engine = &engines.first().engine;
    // SAFETY: the artifacts are the cache's (see `CodeCacheDir::load`) or
    // were just made by an engine with the same compilation settings.
    let place = |artifact: Artifact<'_>| unsafe { artifact.place(engines) };
    let placed = match cache {
        Some(cache) => cache.load(engine, &bytes, place),
        None => Compiled::artifact(engine, &bytes).and_then(|artifact| place(Artifact::Bytes(&artifact))),
    };
    link(engines, name, placed.map_err(invalid)?, declared_targets(&bytes))
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
pub(crate) unsafe fn deserialize(engines: &Engines<Linkers>, name: &str, bytes: &[u8]) -> Result<Program> {
    let invalid = |reason: String| Error::InvalidProgram { name: name.to_owned(), reason };
    if Engine::detect_precompiled(bytes).is_none() {
        return Err(invalid("not a precompiled (.cwasm) program".into()));
    }
    // SAFETY: the caller vouches for the bytes (see above).
    let placed = unsafe { Artifact::Bytes(bytes).place(engines) };
    // An artifact keeps no custom sections, so its targets are not known.
    link(engines, name, placed.map_err(|e| invalid(one_line(&e)))?, None)
}

/// `compiled` linked by `linkers` (the error is why it cannot be).
fn linked_code(linkers: &Linkers, compiled: Compiled) -> Result<Code, String> {
    Ok(match compiled {
        Compiled::Component(component) => {
            let pre = linkers.component.instantiate_pre(&component).map_err(|e| one_line(&e))?;
            let command = CommandIndices::new(&pre).map_err(|e| {
                format!("not a WASI command component (it must export wasi:cli/run): {}", one_line(&e))
            });
            Code::Component { pre, command }
        }
        Compiled::Module(module) => Code::Module(linkers.module.instantiate_pre(&module).map_err(|e| one_line(&e))?),
    })
}

fn link(engines: &Engines<Linkers>, name: &str, placed: Placed, targets: Option<Vec<String>>) -> Result<Program> {
    let linkers = match placed.pooled {
        true => &engines.pooled().expect("placed on it").linkers,
        false => &engines.on_demand().map_err(Error::Setup)?.linkers,
    };
    let code = linked_code(linkers, placed.compiled)
        .map_err(|reason| Error::InvalidProgram { name: name.to_owned(), reason })?;
    let inner = ProgramInner {
        name: name.to_owned(),
        code,
        pooled: placed.pooled,
        on_demand: OnceLock::new(),
        targets,
        #[cfg(feature = "cluster")]
        source: None,
    };
    Ok(Program { inner: Arc::new(inner) })
}
