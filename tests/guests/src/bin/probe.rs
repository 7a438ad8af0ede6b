//! The wmp guest the tests drive: each target is one behaviour, run as a
//! child through `Process::target(name, args)` from the host or from
//! another guest. Run without a target (`main`), it prints its identity.

use std::time::Duration;

use wmp_guest::{Process, current_process, exit, parent_process};

fn text(args: &[u8]) -> String {
    String::from_utf8_lossy(args).into_owned()
}

/// Prints what a process knows about itself, one `key=value` per line.
fn identity(_: &[u8]) {
    let me = current_process();
    println!("name={}", me.name());
    println!("pid={:?}", me.pid().unwrap());
    println!("identity={:?}", me.identity());
    println!("parent_pid={:?}", me.parent_pid());
    println!("daemon={}", me.daemon());
    println!("alive={}", me.is_alive().unwrap());
    println!("exitcode={:?}", me.exitcode().unwrap());
    println!("authkey={}", me.authkey().as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>());
    println!("authkey_debug={:?}", me.authkey());
    println!("repr={me}");
    println!("join={:?}", me.join(None).map_err(|e| e.to_string()));
    println!("start={:?}", me.start().map_err(|e| e.to_string()));
    println!("sentinel={:?}", me.sentinel().err().map(|e| e.to_string()));
    match parent_process() {
        Some(parent) => {
            println!("parent_name={}", parent.name());
            println!("parent_alive={}", parent.is_alive().unwrap());
            println!("parent_repr={parent}");
        }
        None => println!("parent=None"),
    }
}

fn exit_with(args: &[u8]) {
    exit(text(args).parse().expect("exit code"));
}

fn spin(_: &[u8]) {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn sleep(args: &[u8]) {
    std::thread::sleep(Duration::from_millis(text(args).parse().expect("milliseconds")));
}

/// Serializes the authkey with serde and prints the outcome.
fn authkey_serde(_: &[u8]) {
    match serde_json::to_string(&current_process().authkey()) {
        Ok(json) => println!("serialized={json}"),
        Err(e) => println!("refused={e}"),
    }
}

/// Starts a child (which spins) and reports what happened; used to test
/// that daemonic processes may not have children.
fn spawn_child(_: &[u8]) {
    let child = Process::new("spin", Vec::new());
    match child.start() {
        Ok(()) => {
            println!("started {child}");
            child.kill().unwrap();
            child.join(None).unwrap();
            println!("child exitcode={:?}", child.exitcode().unwrap());
        }
        Err(e) => println!("start error={e}"),
    }
}

/// Starts children that outlive it: `N` daemonic spinners and `N` sleepers
/// (args: "N SLEEP_MS"), then returns; the runtime must terminate the
/// daemons and join the sleepers before this process ends.
fn leave_children(args: &[u8]) {
    let text = text(args);
    let mut parts = text.split_whitespace();
    let n: usize = parts.next().unwrap().parse().unwrap();
    let sleep_ms = parts.next().unwrap().to_owned();
    for _ in 0..n {
        Process::with("spin", Vec::new(), None, Some(true)).start().unwrap();
        Process::new("sleep", sleep_ms.clone().into_bytes()).start().unwrap();
    }
    println!("children started: {}", wmp_guest::active_children().len());
}

/// Starts a child running `target` with the rest of args, waits for it,
/// and prints its exit code (a tree of any depth: "nest nest identity").
fn nest(args: &[u8]) {
    let text = text(args);
    let (target, rest) = text.split_once(' ').unwrap_or((&text, ""));
    let child = Process::new(target, rest.as_bytes().to_vec());
    child.start().unwrap();
    child.join(None).unwrap();
    println!("{} exitcode={:?}", child.name(), child.exitcode().unwrap());
}

/// Starts a spinning grandchild, prints its pid, then spins itself.
fn spawn_and_spin(_: &[u8]) {
    let child = Process::new("spin", Vec::new());
    child.start().unwrap();
    println!("grandchild pid={}", child.pid().unwrap().unwrap());
    spin(&[]);
}

/// Run as a program (`wmp run probe.wasm [exit N | spawn TARGET ARGS]`):
/// prints its identity, then exits with N or starts a child.
fn main_process() {
    identity(&[]);
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("exit") => exit(args[2].parse().expect("exit code")),
        Some("spawn") => nest(args[2..].join(" ").as_bytes()),
        _ => {}
    }
}

fn main() {
    let main = main_process;
    wmp_guest::entry(
        &[
            ("identity", identity),
            ("return", |_| {}),
            ("exit", exit_with),
            ("trap", |_| core::arch::wasm32::unreachable()),
            ("panic", |args| panic!("{}", text(args))),
            ("spin", spin),
            ("sleep", sleep),
            ("print", |args| println!("{}", text(args))),
            ("stderr", |args| eprintln!("{}", text(args))),
            ("authkey-serde", authkey_serde),
            ("spawn-child", spawn_child),
            ("leave-children", leave_children),
            ("nest", nest),
            ("spawn-and-spin", spawn_and_spin),
        ],
        main,
    );
}
