//! What the benches share: the floor (raw wasmtime running a program with
//! the same WASI context and no process model) and the programs measured.

use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store};
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

/// Raw wasmtime, configured as wmp configures it (epoch interruption).
pub struct Floor {
    engine: Engine,
    tokio: tokio::runtime::Runtime,
    module: InstancePre<WasiP1Ctx>,
    component: CommandPre<FloorState>,
}

impl Floor {
    pub fn new() -> Floor {
        Floor::with_epochs(true)
    }

    /// Raw wasmtime with or without epoch interruption (the checks wmp's
    /// kill relies on), to tell their cost from the rest.
    pub fn with_epochs(epochs: bool) -> Floor {
        let mut config = Config::new();
        config.epoch_interruption(epochs);
        let engine = Engine::new(&config).unwrap();
        let mut linker = Linker::<WasiP1Ctx>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| s).unwrap();
        let module = linker.instantiate_pre(&Module::new(&engine, MINIMAL_MODULE).unwrap()).unwrap();
        let mut linker = wasmtime::component::Linker::<FloorState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        let component = Component::from_file(&engine, wmp_test_guests::PLAIN_P2).unwrap();
        let component = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Floor { engine, tokio, module, component }
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
        self.tokio.block_on(async {
            let wasi = WasiCtxBuilder::new().args(args).build();
            let mut store = self.store(FloorState { wasi, table: ResourceTable::new() });
            let command = self.component.instantiate_async(&mut store).await.unwrap();
            let _exit = command.wasi_cli_run().call_run(&mut store).await;
        })
    }
}
