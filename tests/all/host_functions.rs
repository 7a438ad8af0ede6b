//! Host functions: what an embedder adds to the imports of components and
//! core modules, sync and async, seeing the calling process; a program
//! importing what is not defined is refused at load; what a host function
//! holds for a guest is charged to it; and the plugin-host example.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{Resource, ResourceType};
use wmp_host::{
    Capabilities, ComponentLinker, ComponentState, Error, ExitReason, Limit, Limits, ModuleState, Pid, Process,
    Runtime, RuntimeBuilder, Signal, Stdio,
};

use crate::PATIENCE;
use crate::cli::{stderr, stdout};

/// What a `log` host function heard: who called, and the line.
type Heard = Arc<Mutex<Vec<(Pid, String, Vec<u32>, String)>>>;

const HOST: &str = "wmp-example:plugin/host";

/// The plugin's imports: `log` as given, `kv-get` answering [`greeting`]
/// after an await (and never for `forever`), `scratch` buffers charged to
/// the plugin.
fn plugin_host(
    log: impl Fn(&ComponentState, String) -> wasmtime::Result<()> + Send + Sync + 'static,
) -> impl Fn(&mut ComponentLinker) -> wasmtime::Result<()> + Send + Sync + 'static {
    let log = Arc::new(log);
    move |linker| {
        let mut host = linker.instance(HOST)?;
        let log = log.clone();
        host.func_wrap("log", move |store: StoreContextMut<'_, ComponentState>, (line,): (String,)| log(store.data(), line))?;
        host.func_wrap_async("kv-get", move |_store, (key,): (String,)| {
            Box::new(async move {
                tokio::task::yield_now().await;
                if key == "forever" {
                    std::future::pending::<()>().await;
                }
                Ok((greeting(&key),))
            })
        })?;
        host.resource("scratch", ResourceType::host::<Vec<u8>>(), |mut store, rep| {
            store.data_mut().release(Resource::<Vec<u8>>::new_own(rep)).map(drop)
        })?;
        host.func_wrap("[constructor]scratch", |mut store: StoreContextMut<'_, ComponentState>, (size,): (u32,)| {
            Ok((store.data_mut().hold_resource(size as usize, vec![0u8; size as usize])?,))
        })?;
        host.func_wrap("[method]scratch.len", |mut store: StoreContextMut<'_, ComponentState>, (this,): (Resource<Vec<u8>>,)| {
            Ok((store.data_mut().table().get(&this)?.len() as u32,))
        })
    }
}

/// A `log` that records who called it into `heard`.
fn recording(heard: &Heard) -> impl Fn(&ComponentState, String) -> wasmtime::Result<()> + Send + Sync + 'static {
    let heard = heard.clone();
    move |state, line| {
        let caller = state.process();
        heard.lock().unwrap().push((caller.pid(), caller.name(), caller.identity().to_vec(), line));
        Ok(())
    }
}

fn greeting(key: &str) -> Option<String> {
    (key == "greeting").then(|| "hi there".to_owned())
}

fn plugin_runtime(heard: &Heard, limits: Limits) -> Runtime {
    RuntimeBuilder::default().limits(limits).component_functions(plugin_host(recording(heard))).build().unwrap()
}

/// A plugin process doing `behaviour`, its stdout captured.
fn plugin(rt: &Runtime, behaviour: &[&str]) -> (Process, wmp_host::CaptureBuffer) {
    let program = rt.load(wmp_test_guests::PLUGIN).unwrap();
    let (out, captured) = Stdio::capture();
    let args = std::iter::once("plugin").chain(behaviour.iter().copied());
    (rt.process(&program).capabilities(Capabilities::new().args(args).stdout(out)).build(), captured)
}

#[test]
fn a_sync_host_function_sees_which_process_calls_it() {
    let heard = Heard::default();
    let rt = plugin_runtime(&heard, Limits::new());
    let (first, _) = plugin(&rt, &["greet"]);
    let (second, _) = plugin(&rt, &["greet"]);
    for p in [&first, &second] {
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(p.exitcode(), Ok(Some(0)), "{p}");
    }
    let mut heard = heard.lock().unwrap().clone();
    heard.sort();
    let line = |p: &Process, n: u32, text: &str| (p.pid().unwrap().unwrap(), format!("Process-{n}"), vec![n], text.to_owned());
    assert_eq!(
        heard,
        [
            line(&first, 1, "hello"),
            line(&first, 1, "the host says hi there"),
            line(&second, 2, "hello"),
            line(&second, 2, "the host says hi there"),
        ]
    );
}

#[test]
fn an_async_host_function_answers_after_an_await() {
    let rt = plugin_runtime(&Heard::default(), Limits::new());
    for (key, answer) in [("greeting", "Some(\"hi there\")"), ("other", "None")] {
        let (p, out) = plugin(&rt, &["ask", key]);
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        assert_eq!(out.text(), format!("{answer}\n"));
    }
}

#[test]
fn a_kill_cancels_an_async_host_function_that_never_returns() {
    let rt = plugin_runtime(&Heard::default(), Limits::new());
    let (p, _) = plugin(&rt, &["ask", "forever"]);
    p.start().unwrap();
    p.join(Some(Duration::from_millis(50))).unwrap();
    assert_eq!(p.is_alive(), Ok(true), "parked in kv-get");
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Killed)));
}

#[test]
fn a_host_function_that_stops_its_caller_ends_it_with_that_signal() {
    let lines = Mutex::new(0);
    let quota = move |state: &ComponentState, _line| {
        let mut lines = lines.lock().unwrap();
        *lines += 1;
        if *lines > 5 {
            state.process().signal(Signal::Terminate);
            return Err(wasmtime::format_err!("log quota used up"));
        }
        Ok(())
    };
    let rt = RuntimeBuilder::default().component_functions(plugin_host(quota)).build().unwrap();
    let (p, _) = plugin(&rt, &["flood"]);
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Terminated)));
}

#[test]
fn what_a_host_function_holds_for_a_guest_is_charged_to_it() {
    let budget = 4 << 20;
    let rt = plugin_runtime(&Heard::default(), Limits { max_host_memory: Some(budget), ..Limits::new() });
    let (p, _) = plugin(&rt, &["hoard"]);
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::HostMemory))));
    // Its buffers went with it.
    assert_eq!(rt.process_tree().iter().map(|info| info.host_memory.held).sum::<usize>(), 0);
}

#[test]
fn a_component_importing_an_undefined_host_function_is_refused_at_load() {
    let rt = Runtime::new().unwrap();
    let refused = rt.load(wmp_test_guests::PLUGIN).err().expect("refused");
    assert!(matches!(refused, Error::InvalidProgram { .. }), "{refused}");
    assert!(refused.to_string().contains(HOST), "{refused}");
}

#[test]
fn a_host_function_that_cannot_be_defined_fails_the_build() {
    let refused = RuntimeBuilder::default()
        .component_functions(|linker| {
            // Twice the same name, and shadowing is off.
            let mut host = linker.instance(HOST)?;
            host.func_wrap("log", |_, (_line,): (String,)| Ok(()))?;
            host.func_wrap("log", |_, (_line,): (String,)| Ok(()))
        })
        .build()
        .err()
        .expect("refused");
    assert!(matches!(refused, Error::Setup(_)), "{refused}");
    assert!(refused.to_string().contains("cannot add the host functions"), "{refused}");
}

#[test]
fn a_core_module_imports_a_host_function_that_sees_its_caller() {
    let heard = Heard::default();
    let recorder = heard.clone();
    let rt = RuntimeBuilder::default()
        .module_functions(move |linker| {
            let recorder = recorder.clone();
            linker.func_wrap("host", "log", move |mut caller: wasmtime::Caller<'_, ModuleState>, at: u32, len: u32| {
                let memory = caller.get_export("memory").and_then(|export| export.into_memory());
                let memory = memory.ok_or_else(|| wasmtime::format_err!("no memory exported"))?;
                let bytes = memory.data(&caller).get(at as usize..(at + len) as usize).map(<[u8]>::to_vec);
                let line = String::from_utf8(bytes.ok_or_else(|| wasmtime::format_err!("out of bounds"))?)?;
                let process = caller.data().process();
                recorder.lock().unwrap().push((process.pid(), process.name(), process.identity().to_vec(), line));
                Ok(())
            })?;
            Ok(())
        })
        .build()
        .unwrap();
    let module = rt
        .load_bytes(
            "logs.wat",
            br#"(module
                 (import "host" "log" (func $log (param i32 i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 8) "from a module")
                 (func (export "_start") (call $log (i32.const 8) (i32.const 13))))"#,
        )
        .unwrap();
    let p = rt.process(&module).name("logger").build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)));
    assert_eq!(*heard.lock().unwrap(), [(p.pid().unwrap().unwrap(), "logger".to_owned(), vec![1], "from a module".to_owned())]);
}

#[test]
fn the_plugin_host_example_runs_100_plugins_and_stops_the_three_that_misbehave() {
    let out = crate::cli::example("plugin-host", &[wmp_test_guests::PLUGIN, "100", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("[Process-1] hello") && text.contains("[Process-100] the host says welcome aboard"), "{text}");
    assert!(text.contains("Process-13 overran the 1s deadline: killing it"), "{text}");
    assert!(text.contains("<Process name='Process-13' ") && text.contains("exitcode=-SIGKILL> (killed)"), "{text}");
    assert!(text.contains("Process-42 used up its log quota of 20 lines: killing it"), "{text}");
    assert!(text.contains("<Process name='Process-42' ") && text.contains("exitcode=-SIGKILL> (killed)"), "{text}");
    assert!(text.contains("<Process name='Process-77' ") && text.contains("(stopped by its host memory budget)"), "{text}");
    assert!(text.contains("97 of 100 plugins ran cleanly"), "{text}");
}

/// The plugin's imports as `bindgen!` types them, implemented for
/// `ComponentState` over the embedder's [`Shelf`] (its host data).
mod typed {
    wasmtime::component::bindgen!({
        path: "examples/plugin/wit",
        world: "plugin",
        imports: { default: async | trappable },
        with: { "wmp-example:plugin/host.scratch": super::Scratch },
    });
}

/// A scratch buffer of the typed implementation.
pub struct Scratch(Vec<u8>);

/// The embedder's state: what `kv-get` answers.
struct Shelf(std::collections::HashMap<String, String>);

impl typed::wmp_example::plugin::host::Host for ComponentState {
    async fn log(&mut self, _line: String) -> wasmtime::Result<()> {
        Ok(())
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let shelf = self.host_data::<Shelf>().ok_or_else(|| wasmtime::format_err!("no shelf"))?;
        Ok(shelf.0.get(&key).cloned())
    }
}

impl typed::wmp_example::plugin::host::HostScratch for ComponentState {
    async fn new(&mut self, size: u32) -> wasmtime::Result<Resource<Scratch>> {
        self.hold_resource(size as usize, Scratch(vec![0; size as usize]))
    }

    async fn len(&mut self, this: Resource<Scratch>) -> wasmtime::Result<u32> {
        Ok(self.table().get(&this)?.0.len() as u32)
    }

    async fn drop(&mut self, this: Resource<Scratch>) -> wasmtime::Result<()> {
        self.release(this).map(drop)
    }
}

#[test]
fn a_bindgen_implementation_serves_the_plugin_from_the_embedders_host_data() {
    let shelf = Shelf([("greeting".to_owned(), "typed hello".to_owned())].into());
    let rt = RuntimeBuilder::default()
        .limits(Limits { max_host_memory: Some(2 << 20), ..Limits::new() })
        .host_data(shelf)
        .component_functions(|linker| {
            typed::Plugin::add_to_linker::<ComponentState, wasmtime::component::HasSelf<ComponentState>>(linker, |s| s)
        })
        .build()
        .unwrap();
    let (p, out) = plugin(&rt, &["ask", "greeting"]);
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(out.text(), "Some(\"typed hello\")\n");
    let (p, _) = plugin(&rt, &["hoard"]);
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::HostMemory))));
}

#[test]
fn a_core_module_awaits_an_async_host_function_and_a_kill_cancels_it() {
    let rt = RuntimeBuilder::default()
        .module_functions(|linker| {
            linker.func_wrap_async("host", "pause", |_caller: wasmtime::Caller<'_, ModuleState>, (ms,): (u64,)| {
                Box::new(async move {
                    if ms == u64::MAX {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(ms as i32)
                })
            })?;
            Ok(())
        })
        .build()
        .unwrap();
    let pauses = |ms: i64| {
        let wat = format!(
            r#"(module
                 (import "host" "pause" (func $pause (param i64) (result i32)))
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (call $pause (i64.const {ms})))))"#
        );
        let module = rt.load_bytes("pauses.wat", wat.as_bytes()).unwrap();
        rt.process(&module).build()
    };
    let p = pauses(7);
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(7)), "the awaited result came back");
    let p = pauses(-1);
    p.start().unwrap();
    p.join(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(p.is_alive(), Ok(true), "parked in pause");
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Killed)));
}
