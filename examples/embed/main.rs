//! Embedding wmp in a host program: a sandboxed wasm plugin and a native
//! helper run side by side through the same `Process` API. The host waits
//! on both sentinels at once and kills whichever overruns the deadline.
//!
//!     cargo build -p wmp-example-hello --target wasm32-wasip2
//!     cargo run --example embed -- target/wasm32-wasip2/debug/hello.wasm
//!
//! Arguments: `PLUGIN.wasm [DEADLINE_MS] [HELPER_SCRIPT]`; the default
//! helper (`/bin/sh` running the script) takes 30 s, so it overruns the
//! default 1 s deadline and is killed, while the plugin ends by itself.

use std::time::{Duration, Instant};

use anyhow::Context;
use wmp_host::{Capabilities, NativeProgram, Runtime};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let plugin_path = args.next().context("usage: embed PLUGIN.wasm [DEADLINE_MS] [HELPER_SCRIPT]")?;
    let deadline_ms = args.next().map(|ms| ms.parse::<u64>()).transpose().context("DEADLINE_MS")?;
    let deadline = Duration::from_millis(deadline_ms.unwrap_or(1000));
    let script = args.next().unwrap_or_else(|| "echo helper: working; sleep 30; echo helper: done".into());

    let rt = Runtime::new()?;
    let plugin = rt.load(&plugin_path)?;
    let plugin = rt.process(&plugin).name("plugin").build();
    let helper = rt
        .native_process(&NativeProgram::new("/bin/sh"))
        .capabilities(Capabilities::new().args(["helper", "-c", &script]))
        .name("helper")
        .build();
    let processes = [plugin, helper];
    for process in &processes {
        process.start()?;
        println!("started {process}");
    }

    // One wait over a wasm sentinel and a native one (a pidfd), for
    // whichever of them are still running, until the deadline.
    let started = Instant::now();
    let mut running: Vec<usize> = (0..processes.len()).collect();
    while let Some(left) = deadline.checked_sub(started.elapsed())
        && !running.is_empty()
    {
        let sentinels = running.iter().map(|&i| processes[i].sentinel()).collect::<Result<Vec<_>, _>>()?;
        let ended = rt.wait(&sentinels, Some(left));
        for &at in ended.iter().rev() {
            let index = running.remove(at);
            println!("{} ended after {:?}", processes[index].name(), started.elapsed());
        }
    }
    for process in &processes {
        if process.is_alive()? {
            println!("{} overran the {deadline:?} deadline: killing it", process.name());
            process.kill()?;
        }
        process.join(None)?;
        println!("{process}");
    }
    Ok(())
}
