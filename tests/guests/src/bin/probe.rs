//! The wmp guest the tests drive. Each target is one behaviour, run as a
//! child through `Process::target(name, args)` from the host or from
//! another guest; its argument is a JSON string (often "TARGET ARGS" for
//! targets that start a child running TARGET, so trees of any depth can be
//! described: "nest nest identity"). Run as a program, it prints its
//! identity (`wmp run probe.wasm [exit N | spawn TARGET ARGS]`).

use std::time::Duration;

use wmp_guest::{AuthKey, Process, active_children, current_process, exit, parent_process};

/// Splits "TARGET REST" into the target and the rest.
fn split(args: &str) -> (&str, &str) {
    args.split_once(' ').unwrap_or((args, ""))
}

/// Starts `args`' TARGET with REST as a child (daemonic or not), joins it,
/// and prints its exit code.
fn run_child(args: &str, daemon: Option<bool>) {
    let (target, rest) = split(args);
    let child = Process::with(target, rest, None, daemon);
    child.start().unwrap();
    child.join(None).unwrap();
    println!("{} exitcode={:?}", child.name(), child.exitcode().unwrap());
}

/// Prints what a process knows about itself, one `key=value` per line.
fn identity(_: String) {
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
            println!("parent_join={:?}", parent.join(Some(Duration::from_millis(1))).map_err(|e| e.to_string()));
            println!("parent_pid_view={:?}", parent.pid().unwrap());
            println!("parent_repr={parent}");
        }
        None => println!("parent=None"),
    }
}

fn noop(_: String) {}

fn exit_with(code: String) {
    exit(code.parse().expect("exit code"));
}

fn spin(_: String) {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn sleep(ms: String) {
    std::thread::sleep(Duration::from_millis(ms.parse().expect("milliseconds")));
}

fn print(text: String) {
    println!("{text}");
}

fn env(name: String) {
    println!("env {name}={}", std::env::var(&name).unwrap_or_else(|_| "<unset>".into()));
}

fn panic(message: String) {
    panic!("{message}");
}

fn trap(_: String) {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    // Built natively, the nearest thing is a crash: SIGABRT, exitcode -6.
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Serializes the authkey with serde, and passes it as a child's
/// arguments, and prints what each gave.
fn authkey_serde(_: String) {
    let key = current_process().authkey();
    match serde_json::to_string(&key) {
        Ok(json) => println!("serialized={json}"),
        Err(e) => println!("refused={e}"),
    }
    println!("as_args={:?}", Process::new("print", &key).start().map_err(|e| e.to_string()));
}

/// Starts a spinning child and reports what happened; in a daemonic
/// process, start must fail.
fn spawn_child(_: String) {
    let child = Process::new("spin", "");
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

/// Starts N daemonic spinners and N sleepers ("N SLEEP_MS"), then returns:
/// the runtime must terminate the daemons and join the sleepers before
/// this process ends.
fn leave_children(args: String) {
    let (n, sleep_ms) = split(&args);
    for _ in 0..n.parse::<usize>().unwrap() {
        Process::with("spin", "", None, Some(true)).start().unwrap();
        Process::new("sleep", sleep_ms).start().unwrap();
    }
    println!("children started: {}", active_children().len());
}

/// Starts a child running "TARGET ARGS", waits, prints its exit code.
fn nest(args: String) {
    run_child(&args, None);
}

/// Like `nest`, with a daemonic child.
fn daemon(args: String) {
    run_child(&args, Some(true));
}

/// Runs "TARGET ARGS" as two children in turn (counters count per process).
fn twice(args: String) {
    run_child(&args, None);
    run_child(&args, None);
}

/// Sets this process's authkey to the hex KEY, then runs "KEY TARGET ARGS"'s
/// TARGET as a child: the key reaches its subtree.
fn set_authkey(args: String) {
    let (hex, rest) = split(&args);
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    current_process().set_authkey(&AuthKey::new(bytes));
    run_child(rest, None);
}

/// Starts a quick child, waits for its end without joining it, and shows
/// that `active_children()` has reaped it.
fn reap(_: String) {
    let child = Process::new("sleep", "0");
    child.start().unwrap();
    println!("active_before={}", active_children().len());
    let sentinel = child.sentinel().unwrap();
    wmp_guest::wait(&[&sentinel], None);
    println!("active_after={}", active_children().len());
}

/// Starts a child of another program ("PROGRAM TARGET ARGS"; TARGET "-"
/// runs its main with ARGS as argv), joins it and prints its exit code or
/// the start error.
fn other_program(args: String) {
    let (program, rest) = split(&args);
    let child = match split(rest) {
        ("-", argv) => Process::in_program(program, "", &argv.split_whitespace().collect::<Vec<_>>()),
        (target, rest) => Process::in_program(program, target, rest),
    };
    match child.start() {
        Ok(()) => {
            child.join(None).unwrap();
            println!("{program} exitcode={:?}", child.exitcode().unwrap());
        }
        Err(e) => println!("start error={e}"),
    }
}

/// Starts a child running a target this program does not have.
fn unknown_target(_: String) {
    println!("start error={}", Process::new("no_such_target", "").start().unwrap_err());
}

/// Allocates and touches MIB mebibytes, then prints how much it holds.
fn alloc(mib: String) {
    let mib: usize = mib.parse().unwrap();
    let block = vec![1u8; mib << 20];
    println!("holding {} MiB", std::hint::black_box(block).len() >> 20);
}

/// Writes to stdout forever.
fn flood(_: String) {
    let line = "x".repeat(1023);
    loop {
        println!("{line}");
    }
}

/// Starts children running this same target, forever.
fn fork_bomb(_: String) {
    loop {
        if let Err(e) = Process::new("fork_bomb", "").start() {
            println!("{}: {e}", current_process().name());
        }
    }
}

/// Starts a spinning grandchild, prints its pid, then spins itself.
fn spawn_and_spin(_: String) {
    let child = Process::new("spin", "");
    child.start().unwrap();
    println!("grandchild pid={}", child.pid().unwrap().unwrap());
    spin(String::new());
}

fn main_process() {
    identity(String::new());
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("exit") => exit(args[2].parse().expect("exit code")),
        Some("spawn") => nest(args[2..].join(" ")),
        _ => {}
    }
}

wmp_guest::main!(
    main_process,
    identity,
    noop,
    exit_with,
    spin,
    sleep,
    print,
    env,
    panic,
    trap,
    authkey_serde,
    spawn_child,
    leave_children,
    nest,
    daemon,
    twice,
    set_authkey,
    reap,
    spawn_and_spin,
    other_program,
    unknown_target,
    alloc,
    fork_bomb,
    flood,
);
