//! A plugin host: each plugin is a wasm process that imports the host's
//! `log` and `kv-get` and its `scratch` buffers (examples/plugin/wit/plugin.wit),
//! defined here as host functions that see which plugin calls them. The
//! host runs 100 plugins at once, each with a deadline, a log quota and a
//! host-memory budget, and stops the three that misbehave: one computes
//! forever (killed at the deadline), one floods the log (killed by `log`
//! itself), one hoards scratch buffers (stopped by its budget).
//!
//!     cargo build -p wmp-example-plugin --target wasm32-wasip2
//!     cargo run --example plugin-host -- target/wasm32-wasip2/debug/plugin.wasm
//!
//! Arguments: `PLUGIN.wasm [COUNT] [DEADLINE_MS]` (default 100 plugins, 2 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmtime::StoreContextMut;
use wasmtime::component::{Resource, ResourceType};
use wmp_host::{Capabilities, ComponentState, Limits, Pid, Runtime, Signal};

/// Lines a plugin may log before `log` kills it.
const LOG_QUOTA: usize = 20;

/// What a plugin may make the host hold for it (its scratch buffers).
const HOST_MEMORY_BUDGET: usize = 8 << 20;

/// A scratch buffer the host keeps for a plugin.
struct Scratch(Vec<u8>);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let plugin_path = args.next().context("usage: plugin-host PLUGIN.wasm [COUNT] [DEADLINE_MS]")?;
    let count = args.next().map(|n| n.parse::<usize>()).transpose().context("COUNT")?.unwrap_or(100);
    let deadline = Duration::from_millis(args.next().map(|ms| ms.parse()).transpose().context("DEADLINE_MS")?.unwrap_or(2000));

    let kv: Arc<HashMap<String, String>> = Arc::new([("greeting".into(), "welcome aboard".into())].into());
    let logged: Arc<Mutex<HashMap<Pid, usize>>> = Arc::default();
    let rt = Runtime::builder()
        .limits(Limits { max_host_memory: Some(HOST_MEMORY_BUDGET), ..Limits::new() })
        .component_functions(move |linker| {
            // This runs once per engine of the runtime, so it shares what
            // its functions capture.
            let (logged, kv) = (logged.clone(), kv.clone());
            let mut host = linker.instance("wmp-example:plugin/host")?;
            // A sync function: it sees its caller, and stops it past the quota.
            host.func_wrap("log", move |store: StoreContextMut<'_, ComponentState>, (line,): (String,)| {
                let caller = store.data().process();
                let mut logged = logged.lock().unwrap();
                let lines = logged.entry(caller.pid()).or_default();
                *lines += 1;
                if *lines > LOG_QUOTA {
                    println!("{} used up its log quota of {LOG_QUOTA} lines: killing it", caller.name());
                    caller.signal(Signal::Kill);
                    return Err(wasmtime::format_err!("{} used up its log quota of {LOG_QUOTA} lines", caller.name()));
                }
                println!("[{}] {line}", caller.name());
                Ok(())
            })?;
            // An async one: a lookup that waits (as a real store would)
            // without holding a thread; a kill cancels it.
            host.func_wrap_async("kv-get", move |_store, (key,): (String,)| {
                let kv = kv.clone();
                Box::new(async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok((kv.get(&key).cloned(),))
                })
            })?;
            // A resource the host holds for the plugin, charged to it.
            host.resource("scratch", ResourceType::host::<Scratch>(), |mut store, rep| {
                store.data_mut().release(Resource::<Scratch>::new_own(rep)).map(drop)
            })?;
            host.func_wrap("[constructor]scratch", |mut store: StoreContextMut<'_, ComponentState>, (size,): (u32,)| {
                Ok((store.data_mut().hold_resource(size as usize, Scratch(vec![0; size as usize]))?,))
            })?;
            host.func_wrap("[method]scratch.len", |mut store: StoreContextMut<'_, ComponentState>, (this,): (Resource<Scratch>,)| {
                Ok((store.data_mut().table().get(&this)?.0.len() as u32,))
            })?;
            Ok(())
        })
        .build()?;
    let plugin = rt.load(&plugin_path)?;

    let behaviour = |i: usize| match i {
        13 => "spin",
        42 => "flood",
        77 => "hoard",
        _ => "greet",
    };
    let plugins = (1..=count)
        .map(|i| rt.process(&plugin).capabilities(Capabilities::new().args(["plugin", behaviour(i)])).build())
        .collect::<Vec<_>>();
    let started = Instant::now();
    for plugin in &plugins {
        plugin.start()?;
    }
    let mut running: Vec<usize> = (0..plugins.len()).collect();
    while let Some(left) = deadline.checked_sub(started.elapsed())
        && !running.is_empty()
    {
        let sentinels = running.iter().map(|&i| plugins[i].sentinel()).collect::<Result<Vec<_>, _>>()?;
        for at in rt.wait(&sentinels, Some(left)).into_iter().rev() {
            running.remove(at);
        }
    }
    for &i in &running {
        println!("{} overran the {deadline:?} deadline: killing it", plugins[i].name());
        plugins[i].kill()?;
    }
    let mut clean = 0;
    for plugin in &plugins {
        plugin.join(None)?;
        match plugin.exitcode()? {
            Some(0) => clean += 1,
            _ => println!("{plugin} ({})", plugin.exit_reason()?.map(|r| r.to_string()).unwrap_or_default()),
        }
    }
    println!("{clean} of {count} plugins ran cleanly in {:?}", started.elapsed());
    Ok(())
}
