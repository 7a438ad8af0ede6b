//! Host functions: what an embedder adds to the imports its guests link
//! against (Extism's `with_function`), defined on the same wasmtime linkers
//! as WASI and `wmp:process`, and the view a host function has of the
//! process that calls it.
//!
//! Registration is wasmtime's own, so it is typed and may be sync or async:
//! `func_wrap`/`func_wrap_async` on a component linker's instance (or a
//! `bindgen!`-generated `add_to_linker` over [`ComponentState`]), and
//! `func_wrap`/`func_wrap_async` on a core-module linker. A program whose
//! imports the linker lacks is refused when it is loaded. The definers are
//! kept and run once per engine: on the pooled engine's linkers when the
//! runtime is built, and again on the on-demand engine's when that engine
//! is first needed (see `engines.rs`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use wasmtime::Engine;

use crate::backend::wasm::program::Linkers;
use crate::backend::wasm::{ComponentState, GuestCtx, HasGuest, ModuleState};
use crate::base::exit::Signal;
use crate::base::ledger::{Held, OBJECT_COST};
use crate::model::registry::{Node, Pid};

/// The linker components are linked with; host functions of components
/// are defined on it ([`RuntimeBuilder::component_functions`](crate::RuntimeBuilder::component_functions)).
pub type ComponentLinker = wasmtime::component::Linker<ComponentState>;

/// The linker core modules are linked with ([`RuntimeBuilder::module_functions`](crate::RuntimeBuilder::module_functions)).
pub type ModuleLinker = wasmtime::Linker<ModuleState>;

type Definer<L> = Box<dyn Fn(&mut L) -> wasmtime::Result<()> + Send + Sync>;

/// The host functions an embedder registered, defined on each engine's
/// linkers after WASI and `wmp:process`, and the data they share.
#[derive(Default)]
pub(crate) struct HostFunctions {
    pub(crate) component: Vec<Definer<ComponentLinker>>,
    pub(crate) module: Vec<Definer<ModuleLinker>>,
    /// The embedder's value every host function can reach from its store
    /// ([`RuntimeBuilder::host_data`](crate::RuntimeBuilder::host_data)).
    pub(crate) data: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostFunctions")
            .field("component", &self.component.len())
            .field("module", &self.module.len())
            .field("data", &self.data.is_some())
            .finish()
    }
}

impl HostFunctions {
    /// The linkers of an `engine`'s programs: WASI and `wmp:process`, then
    /// every registered function.
    pub(crate) fn linkers(&self, engine: &Engine) -> wasmtime::Result<Linkers> {
        let mut linkers = Linkers::new(engine)?;
        let defined = (self.component.iter().try_for_each(|define| define(&mut linkers.component)))
            .and_then(|()| self.module.iter().try_for_each(|define| define(&mut linkers.module)));
        defined.map_err(|e| e.context("cannot add the host functions"))?;
        Ok(linkers)
    }
}

/// The process that calls a host function, as the host sees it: who it
/// is, and a way to stop it.
#[derive(Clone, Copy)]
pub struct CallingProcess<'a> {
    node: &'a Arc<Node>,
}

impl CallingProcess<'_> {
    pub fn pid(&self) -> Pid {
        self.node.pid
    }

    /// Its name now (a process may rename itself).
    pub fn name(&self) -> String {
        self.node.name()
    }

    /// Its `_identity`: `[]` for the main process, `[2, 1]` for Process-2:1.
    pub fn identity(&self) -> &[u32] {
        &self.node.identity
    }

    pub fn parent_pid(&self) -> Option<Pid> {
        self.node.parent_pid
    }

    pub fn daemon(&self) -> bool {
        self.node.daemon
    }

    /// Sends the process `signal`, as [`Process::kill`](crate::Process::kill)
    /// or [`terminate`](crate::Process::terminate) would. It ends at its next
    /// check: a host function that stops its caller should then return an
    /// error, which ends the call at once.
    pub fn signal(&self, signal: Signal) {
        self.node.signal(signal);
    }
}

impl GuestCtx {
    fn calling_process(&self) -> CallingProcess<'_> {
        CallingProcess { node: &self.node }
    }

    fn host_data<T: Any>(&self) -> Option<&T> {
        self.backend.host_data.as_deref()?.downcast_ref()
    }
}

impl ComponentState {
    /// The process whose store this is: the caller of a host function.
    pub fn process(&self) -> CallingProcess<'_> {
        self.guest().calling_process()
    }

    /// The value given to [`RuntimeBuilder::host_data`](crate::RuntimeBuilder::host_data),
    /// if it is a `T`: how a `bindgen!` host implementation over
    /// `ComponentState` (whose methods get only `&mut self`) reaches the
    /// embedder's state.
    pub fn host_data<T: Any>(&self) -> Option<&T> {
        self.guest().host_data()
    }

    /// The guest's resource table, for host functions that hand the guest
    /// resources of their own (`bindgen!`'s `with` types); such a resource
    /// is not charged to the guest unless pushed with
    /// [`hold_resource`](Self::hold_resource).
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Puts `value` in the guest's table as a resource, charged to the
    /// guest's host-memory budget ([`Limits::max_host_memory`](crate::Limits::max_host_memory))
    /// as `bytes` plus [`OBJECT_COST`] under [`Held::HostFunctionObjects`]
    /// until a host function takes it out with [`release`](Self::release)
    /// (its drop function, when the guest drops it) or the process ends.
    /// Past the budget the guest is stopped and the error is returned, for
    /// the host function to return too.
    pub fn hold_resource<T: Send + 'static>(&mut self, bytes: usize, value: T) -> wasmtime::Result<Resource<T>> {
        self.hold(Held::HostFunctionObjects, OBJECT_COST.saturating_add(bytes), value)
    }
}

impl ModuleState {
    /// The process whose store this is: the caller of a host function.
    pub fn process(&self) -> CallingProcess<'_> {
        self.guest().calling_process()
    }

    /// As [`ComponentState::host_data`].
    pub fn host_data<T: Any>(&self) -> Option<&T> {
        self.guest().host_data()
    }
}
