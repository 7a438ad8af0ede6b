//! A plugin for the plugin-host example: a WASI command that imports the
//! host's `log` and `kv-get` (wit/plugin.wit). What it does is its first
//! argument:
//!
//! - `greet` (the default): logs a hello and the host's `greeting`;
//! - `spin`: logs, then computes forever (the host kills it at its deadline);
//! - `flood`: logs without end (the host's log quota kills it);
//! - `hoard`: keeps taking 1 MiB scratch buffers from the host (its
//!   host-memory budget stops it);
//! - `ask KEY`: prints the host's value under KEY on stdout.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use wmp_example::plugin::host::{Scratch, kv_get, log};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str).unwrap_or("greet") {
        "greet" => {
            log("hello");
            log(&format!("the host says {}", kv_get("greeting").as_deref().unwrap_or("nothing")));
        }
        "spin" => {
            log("computing forever");
            loop {
                std::hint::spin_loop();
            }
        }
        "flood" => loop {
            log("more");
        },
        "hoard" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(Scratch::new(1 << 20));
                log(&format!("holding {} MiB", hoard.iter().map(|s| s.len() as usize >> 20).sum::<usize>()));
            }
        }
        "ask" => println!("{:?}", kv_get(args.get(2).map(String::as_str).unwrap_or(""))),
        other => {
            eprintln!("plugin: unknown behaviour {other:?}");
            std::process::exit(2);
        }
    }
}
