//! Spawn → exit → join of a trivial guest, side by side with its peers in
//! the same run (machines here are noisy; read the ratios, not the
//! absolute times):
//!
//! - `wasmtime_floor`: raw wasmtime instantiating and running the same
//!   program with the same WASI context, no process model — the floor;
//! - `wmp`: the same program as a wmp process (`start` + `join`);
//! - `kill_spinning`: start a spinning guest, kill it, join it;
//! - `native_true`: `std::process::Command::new("true")` spawn + wait.
//!
//! Run: `cargo bench --bench spawn`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wmp_host::{Capabilities, Runtime, Stdio};

/// The smallest WASI command there is.
const MINIMAL_MODULE: &str = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;

struct FloorState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for FloorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn floor_engine() -> Engine {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config).unwrap()
}

fn floor_store<T>(engine: &Engine, state: T) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn spawn_join(c: &mut Criterion) {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let rt = Runtime::new().unwrap();
    let quiet = || Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null);

    // A Rust wasip2 component that exits at once.
    let mut group = c.benchmark_group("spawn_join_p2_component");
    let engine = floor_engine();
    let mut linker = wasmtime::component::Linker::<FloorState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    let component = Component::from_file(&engine, wmp_test_guests::PLAIN_P2).unwrap();
    let pre = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    group.bench_function("wasmtime_floor", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let wasi = WasiCtxBuilder::new().args(&["plain", "exit", "0"]).build();
                let mut store = floor_store(&engine, FloorState { wasi, table: ResourceTable::new() });
                let command = pre.instantiate_async(&mut store).await.unwrap();
                let _ = command.wasi_cli_run().call_run(&mut store).await;
            })
        })
    });
    let program = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let p = rt.process(&program).capabilities(quiet().args(["plain", "exit", "0"])).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.finish();

    // A minimal core module.
    let mut group = c.benchmark_group("spawn_join_minimal_module");
    let module = Module::new(&engine, MINIMAL_MODULE).unwrap();
    let mut linker = Linker::<wasmtime_wasi::p1::WasiP1Ctx>::new(&engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| s).unwrap();
    let pre = linker.instantiate_pre(&module).unwrap();
    group.bench_function("wasmtime_floor", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let mut store = floor_store(&engine, WasiCtxBuilder::new().build_p1());
                let instance = pre.instantiate_async(&mut store).await.unwrap();
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap();
                start.call_async(&mut store, ()).await.unwrap();
            })
        })
    });
    let program = rt.load_bytes("minimal.wat", MINIMAL_MODULE.as_bytes()).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let p = rt.process(&program).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.bench_function("native_true", |b| {
        b.iter(|| std::process::Command::new("true").status().unwrap())
    });
    group.finish();

    // Kill of a guest spinning in a tight loop, from start to joined.
    let mut group = c.benchmark_group("kill_spinning");
    let probe = rt.load(wmp_test_guests::PROBE).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let p = rt.process(&probe).capabilities(quiet()).target("spin", Vec::new()).build();
            p.start().unwrap();
            p.join(Some(Duration::from_micros(200))).unwrap();
            p.kill().unwrap();
            p.join(None).unwrap();
            assert_eq!(p.exitcode(), Ok(Some(-9)));
        })
    });
    group.finish();
}

criterion_group!(benches, spawn_join);
criterion_main!(benches);
