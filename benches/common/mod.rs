//! What the benches share: the floor (raw wasmtime running a program with
//! the same WASI context and no process model) and the programs measured.

// Each bench compiles this module for itself and uses part of it.
#![allow(dead_code)]

pub mod ipc;
pub mod timing;

use wasmtime::component::{Component, ResourceTable, Val};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The smallest WASI command there is.
pub const MINIMAL_MODULE: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

/// argv of the plain Rust component: exit at once, print nothing.
pub const QUIET_EXIT: [&str; 3] = ["plain", "exit", "0"];

struct FloorState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for FloorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Raw wasmtime, configured as wmp configures it (epoch interruption, the
/// reset of a freed pool slot),
/// with the pooling allocator: the floor the performance issue defines.
pub struct Floor {
    engine: Engine,
    tokio: tokio::runtime::Runtime,
    module: InstancePre<WasiP1Ctx>,
    component: CommandPre<FloorState>,
    sdk_noop: CommandPre<FloorState>,
}

impl Floor {
    pub fn new() -> Floor {
        Floor::with_epochs(true)
    }

    /// Raw wasmtime with or without epoch interruption (the checks wmp's
    /// kill relies on), to tell their cost from the rest.
    pub fn with_epochs(epochs: bool) -> Floor {
        let mut config = Config::new();
        let mut pool = PoolingAllocationConfig::new();
        pool.max_tables_per_module(8) // a Rust component's core modules have several
            // A freed slot is reset as wmp's pool resets it.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.epoch_interruption(epochs).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).unwrap();
        let mut linker = Linker::<WasiP1Ctx>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| s).unwrap();
        let module = linker.instantiate_pre(&Module::new(&engine, MINIMAL_MODULE).unwrap()).unwrap();
        let mut linker = wasmtime::component::Linker::<FloorState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        let component = Component::from_file(&engine, wmp_test_guests::PLAIN_P2).unwrap();
        let component = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let sdk_noop = sdk_guest_told_to_run_noop(&engine);
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Floor { engine, tokio, module, component, sdk_noop }
    }

    fn store<T>(&self, state: T) -> Store<T> {
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    /// Instantiates the minimal module and runs `_start`.
    pub fn run_minimal_module(&self) {
        self.tokio.block_on(async {
            let mut store = self.store(WasiCtxBuilder::new().build_p1());
            let instance = self.module.instantiate_async(&mut store).await.unwrap();
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap();
            start.call_async(&mut store, ()).await.unwrap();
        })
    }

    /// Instantiates the plain Rust component and runs it to its exit.
    pub fn run_rust_component(&self) {
        self.run_rust_component_with(&QUIET_EXIT)
    }

    /// The plain Rust component run with this argv (its output discarded).
    pub fn run_rust_component_with(&self, args: &[&str]) {
        let _exit = self.run_command(&self.component, args);
    }

    /// The minimal Rust SDK guest running its `noop` target, with the
    /// process model replaced by stubs (see [`sdk_guest_told_to_run_noop`]).
    pub fn run_sdk_noop(&self) {
        let ran = self.run_command(&self.sdk_noop, &[]);
        assert!(matches!(ran, Ok(Ok(()))), "the stubbed SDK guest did not run to its end: {ran:?}");
    }

    /// Instantiates `command` and runs it: a trap (or an exit through
    /// `proc_exit`) is the error, the guest's own failure the inner one.
    fn run_command(&self, command: &CommandPre<FloorState>, args: &[&str]) -> wasmtime::Result<Result<(), ()>> {
        self.tokio.block_on(async {
            let wasi = WasiCtxBuilder::new().args(args).build();
            let mut store = self.store(FloorState { wasi, table: ResourceTable::new() });
            let command = command.instantiate_async(&mut store).await.unwrap();
            command.wasi_cli_run().call_run(&mut store).await
        })
    }
}

/// The floor of an SDK guest: the minimal guest (tests/guests/src/bin/minimal.rs)
/// linked with WASI and no process model. Its one call into the model,
/// `spawn-context` at start, answers "run `noop`" as wmp answers a child;
/// every other import of `wmp:process` traps (the `noop` target calls none).
fn sdk_guest_told_to_run_noop(engine: &Engine) -> CommandPre<FloorState> {
    let component = Component::from_file(engine, wmp_test_guests::MINIMAL).unwrap();
    let mut linker = wasmtime::component::Linker::<FloorState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let args: Vec<Val> = br#""""#.iter().map(|b| Val::U8(*b)).collect();
    let request = Val::Record(vec![("target".into(), Val::String("noop".into())), ("args".into(), Val::List(args))]);
    linker
        .instance("wmp:process/process@0.1.0")
        .unwrap()
        .func_new("spawn-context", move |_, _, _, results| {
            results[0] = Val::Option(Some(Box::new(request.clone())));
            Ok(())
        })
        .unwrap();
    linker.define_unknown_imports_as_traps(&component).unwrap();
    CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}
