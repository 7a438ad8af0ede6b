//! The `wmp:process` WIT imports as the host implements them for a guest:
//! thin adapters from the WIT resources to [`Process`] and [`Sentinel`],
//! with the calling guest as the caller of every operation.

use std::time::Duration;

use wasmtime::component::Resource;
use wmp_core::{AuthKey, ProcessError};

use crate::backend::wasm::ComponentState;
use crate::base::ledger::{Held, OBJECT_COST};
use crate::model::process::Process;
use crate::ipc::sentinel::{Sentinel, wait_any};
use crate::model::builder::{LaunchSpec, Placement, Target};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "guest",
        // The model's calls that wait (`join`, `wait`) are futures run on
        // the guest's fiber; the others never block, so they are plain
        // calls: an async host call boxes a future and switches into it
        // every time (profiled, most of a guest-started child's cost over a
        // host-started one was its parent's calls into the model).
        imports: {
            "wmp:process/process.wait": async | trappable,
            "wmp:process/process.[method]process.join": async | trappable,
            "wmp:process/process": trappable,
            default: async | trappable,
        },
        with: {
            "wmp:process/process.process": crate::model::process::Process,
            "wmp:process/process.sentinel": crate::ipc::sentinel::Sentinel,
            "wmp:process/connection.connection": crate::ipc::connection::Connection,
            "wmp:process/connection.queue": crate::ipc::queue::Queue,
            "wmp:process/connection.listener": crate::ipc::listener::Listener,
            "wmp:process/synchronize.semlock": crate::ipc::semlock::SemLock,
            "wmp:process/synchronize.shared-memory": crate::ipc::shared_memory::SharedMemory,
        },
    });
}

use bindings::wmp::process::process::{self as wit, Error as WitError};

pub(crate) fn wit_error(err: ProcessError) -> WitError {
    let message = err.to_string();
    match err {
        ProcessError::Closed => WitError::Closed(message),
        ProcessError::StartedTwice => WitError::StartedTwice(message),
        ProcessError::NotCreator => WitError::NotCreator(message),
        ProcessError::DaemonicChildren => WitError::DaemonicChildren(message),
        ProcessError::JoinNotChild => WitError::JoinNotChild(message),
        ProcessError::JoinNotStarted => WitError::JoinNotStarted(message),
        ProcessError::TestNotChild => WitError::TestNotChild(message),
        ProcessError::AlreadyStarted => WitError::AlreadyStarted(message),
        ProcessError::NotStarted => WitError::NotStarted(message),
        ProcessError::CloseRunning => WitError::CloseRunning(message),
        ProcessError::SignalNotChild => WitError::SignalNotChild(message),
        ProcessError::UnknownTarget(_) => WitError::UnknownTarget(message),
        ProcessError::SpawnFailed(_) => WitError::SpawnFailed(message),
        ProcessError::LimitReached(_) => WitError::LimitReached(message),
    }
}

pub(crate) type WitResult<T> = wasmtime::Result<Result<T, WitError>>;

pub(crate) fn nanos(timeout: Option<u64>) -> Option<Duration> {
    timeout.map(Duration::from_nanos)
}

impl ComponentState {
    fn handle(&self, process: &Resource<Process>) -> wasmtime::Result<Process> {
        Ok(self.table.get(process)?.clone())
    }

    /// A handle to a process object that exists anyway (a view, a
    /// started child), charged as a handle.
    fn push(&mut self, process: Process) -> wasmtime::Result<Resource<Process>> {
        self.hold(Held::ProcessObjects, OBJECT_COST, process)
    }

    /// Runs a state-machine operation on the process behind a resource.
    fn with<T>(
        &self,
        process: &Resource<Process>,
        op: impl FnOnce(&Process) -> Result<T, ProcessError>,
    ) -> WitResult<T> {
        Ok(op(self.table.get(process)?).map_err(wit_error))
    }
}

impl wit::Host for ComponentState {
    async fn wait(&mut self, sentinels: Vec<Resource<Sentinel>>, timeout: Option<u64>) -> wasmtime::Result<Vec<u32>> {
        let sentinels =
            sentinels.iter().map(|s| Ok(self.table.get(s)?.clone())).collect::<wasmtime::Result<Vec<_>>>()?;
        let ready = wait_any(self.guest.host.handle(), &sentinels, nanos(timeout)).await;
        Ok(ready.into_iter().map(|i| i as u32).collect())
    }

    fn current_process(&mut self) -> wasmtime::Result<Resource<Process>> {
        let me = Process::current(self.guest.host.clone(), self.guest.node.clone());
        self.push(me)
    }

    fn parent_process(&mut self) -> wasmtime::Result<Option<Resource<Process>>> {
        match Process::parent_of(self.guest.host.clone(), self.guest.node.clone()) {
            Some(parent) => Ok(Some(self.push(parent)?)),
            None => Ok(None),
        }
    }

    fn active_children(&mut self) -> wasmtime::Result<Vec<Resource<Process>>> {
        let node = self.guest.node.clone();
        node.reap_finished_children();
        let children = node.children.lock().unwrap().clone();
        children.into_iter().map(|child| self.push(Process::seen_by(child, node.clone()))).collect()
    }

    fn authkey(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.guest.node.authkey().as_bytes().to_vec())
    }

    fn spawn_context(&mut self) -> wasmtime::Result<Option<wit::SpawnRequest>> {
        Ok(self.target.clone().map(|t| wit::SpawnRequest { target: t.name, args: t.args }))
    }

    fn exit(&mut self, code: i32) -> wasmtime::Result<()> {
        Err(wasmtime_wasi::I32Exit(code).into())
    }
}

impl wit::HostSentinel for ComponentState {
    fn ready(&mut self, sentinel: Resource<Sentinel>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&sentinel)?.is_ready())
    }

    fn drop(&mut self, sentinel: Resource<Sentinel>) -> wasmtime::Result<()> {
        self.release(sentinel)?;
        Ok(())
    }
}

impl wit::HostProcess for ComponentState {
    fn new(&mut self, spec: wit::Spec) -> wasmtime::Result<Resource<Process>> {
        let guest = &self.guest;
        let caps = guest.caps.for_child();
        let refuse = |why: String| LaunchSpec {
            refusal: Some(ProcessError::SpawnFailed(why)),
            ..LaunchSpec::new(guest.own_program(), caps.clone(), None)
        };
        // Its own program, or one the host shared (a wasm program) or
        // granted (a native one); nothing else.
        let program = match &spec.program {
            None => Some(guest.own_program()),
            Some(name) => guest.host.program_for_guests(name),
        };
        let argv0 = spec.program.clone().unwrap_or_else(|| caps.args.first().cloned().unwrap_or_default());
        let placement = match spec.placement {
            None => Placement::Local,
            Some(wit::Placement::AnyNode) => Placement::Cluster { resource: None },
            Some(wit::Placement::NodeWith(resource)) => Placement::Cluster { resource: Some(resource) },
        };
        let launch = match (program, spec.target.is_empty()) {
            _ if placement != Placement::Local && !caps.cluster => {
                refuse("placing a child on the cluster was not granted to this process (wmp run --cluster)".into())
            }
            (None, _) => refuse(format!(
                "program {:?} is not available to guests (the host has not shared or granted it)",
                spec.program.unwrap_or_default()
            )),
            (Some(program), false) => {
                LaunchSpec::new(program, caps.args([argv0]), Some(Target { name: spec.target, args: spec.args }))
            }
            // An empty target runs `main`; the arguments are its argv after
            // argv[0], as a JSON list of strings.
            (Some(program), true) => match wmp_core::main_args::parse(&spec.args) {
                Ok(args) => LaunchSpec::new(program, caps.args(std::iter::once(argv0).chain(args)), None),
                Err(why) => refuse(why),
            },
        };
        let launch = LaunchSpec { placement, ..launch };
        // The object itself carries its charge (it may outlive the handle).
        let charge = guest.charge(Held::ProcessObjects, Process::bytes_to_construct(spec.name.as_deref(), &launch))?;
        let child =
            Process::construct(guest.host.clone(), guest.node.clone(), launch, spec.name, spec.daemon, None, charge);
        Ok(self.table.push(child)?)
    }

    fn start(&mut self, process: Resource<Process>) -> WitResult<()> {
        self.with(&process, Process::start)
    }

    async fn join(&mut self, process: Resource<Process>, timeout: Option<u64>) -> WitResult<()> {
        let process = self.handle(&process)?;
        Ok(process.join_async(nanos(timeout)).await.map_err(wit_error))
    }

    fn is_alive(&mut self, process: Resource<Process>) -> WitResult<bool> {
        self.with(&process, Process::is_alive)
    }

    fn exitcode(&mut self, process: Resource<Process>) -> WitResult<Option<i32>> {
        self.with(&process, Process::exitcode)
    }

    fn terminate(&mut self, process: Resource<Process>) -> WitResult<()> {
        self.with(&process, Process::terminate)
    }

    fn kill(&mut self, process: Resource<Process>) -> WitResult<()> {
        self.with(&process, Process::kill)
    }

    fn close(&mut self, process: Resource<Process>) -> WitResult<()> {
        self.with(&process, Process::close)
    }

    fn pid(&mut self, process: Resource<Process>) -> WitResult<Option<u32>> {
        self.with(&process, Process::pid)
    }

    fn name(&mut self, process: Resource<Process>) -> wasmtime::Result<String> {
        Ok(self.table.get(&process)?.name())
    }

    fn set_name(&mut self, process: Resource<Process>, name: String) -> wasmtime::Result<()> {
        let renamed = self.table.get(&process)?.set_name_charged(name, &self.guest.node.ledger);
        renamed.map_err(|over| self.guest.over_budget(over))
    }

    fn daemon(&mut self, process: Resource<Process>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&process)?.daemon())
    }

    fn set_daemon(&mut self, process: Resource<Process>, daemon: bool) -> WitResult<()> {
        self.with(&process, |p| p.set_daemon(daemon))
    }

    fn authkey(&mut self, process: Resource<Process>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&process)?.authkey().as_bytes().to_vec())
    }

    fn set_authkey(&mut self, process: Resource<Process>, key: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get(&process)?.set_authkey(AuthKey::new(key));
        Ok(())
    }

    fn identity(&mut self, process: Resource<Process>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&process)?.identity().to_vec())
    }

    fn parent_pid(&mut self, process: Resource<Process>) -> wasmtime::Result<Option<u32>> {
        Ok(self.table.get(&process)?.parent_pid())
    }

    fn sentinel(&mut self, process: Resource<Process>) -> wasmtime::Result<Result<Resource<Sentinel>, WitError>> {
        match self.handle(&process)?.sentinel() {
            Ok(sentinel) => Ok(Ok(self.hold(Held::Sentinels, OBJECT_COST, sentinel)?)),
            Err(err) => Ok(Err(wit_error(err))),
        }
    }

    fn display(&mut self, process: Resource<Process>) -> wasmtime::Result<String> {
        Ok(self.table.get(&process)?.to_string())
    }

    fn drop(&mut self, process: Resource<Process>) -> wasmtime::Result<()> {
        self.release(process)?;
        Ok(())
    }
}
