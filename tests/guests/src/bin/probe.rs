//! The wmp guest the tests drive. Each target is one behaviour, run as a
//! child through `Process::target(name, args)` from the host or from
//! another guest; its argument is a JSON string (often "TARGET ARGS" for
//! targets that start a child running TARGET, so trees of any depth can be
//! described: "nest nest identity"). Run as a program, it prints its
//! identity (`wmp run probe.wasm [exit N | spawn TARGET ARGS | leave N
//! SLEEP_MS]`).

use std::time::{Duration, Instant};

use wmp_guest::{
    AuthKey, Connection, Listener, Placement, Process, Queue, active_children, current_process, exit,
    inherited_connections, inherited_queues, parent_process, pipe, wait_ready,
};

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

/// Places a child on the host's cluster ("RESOURCE TARGET ARGS", RESOURCE
/// `*` for any node), joins it, and prints its name and exit code, or the
/// error of its start.
fn place_child(args: String) {
    let (resource, rest) = split(&args);
    let (target, rest) = split(rest);
    let placement = match resource {
        "*" => Placement::AnyNode,
        resource => Placement::NodeWith(resource.to_owned()),
    };
    let child = Process::on_cluster(placement, target, rest);
    match child.start() {
        Ok(()) => {
            child.join(None).unwrap();
            println!("{} exitcode={:?}", child.name(), child.exitcode().unwrap());
        }
        Err(e) => println!("start error={e}"),
    }
}

/// Places a daemonic spinner on the nodes with RESOURCE, prints its name,
/// and returns: its end must terminate the spinner.
fn place_daemon(resource: String) {
    let child = Process::on_cluster(Placement::NodeWith(resource), "spin", "");
    child.set_daemon(true).unwrap();
    child.start().unwrap();
    println!("placed={}", child.name());
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

/// Starts this program's own `main` with no arguments at all (empty
/// bytes, not an empty JSON list) and prints how it ended.
fn own_main_without_args(_: String) {
    let child = Process::with_bytes("", Vec::new(), None, None);
    match child.start() {
        Ok(()) => {
            child.join(None).unwrap();
            println!("main exitcode={:?}", child.exitcode().unwrap());
        }
        Err(e) => println!("start error={e}"),
    }
}

/// Lists the fds a program it execs itself (not through wmp) inherits:
/// `ls -l /proc/self/fd`, its output inherited. Native only.
fn fds_of_an_exec(_: String) {
    let status = std::process::Command::new("ls").args(["-l", "/proc/self/fd"]).status().unwrap();
    println!("ls status={status}");
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

/// Starts "TARGET ARGS" and computes, never blocking, until the child has
/// ended: the child must run meanwhile, not wait for its parent to block.
fn start_then_compute(args: String) {
    let (target, rest) = split(&args);
    let child = Process::new(target, rest);
    child.start().unwrap();
    let started = Instant::now();
    let mut x: u64 = 0;
    while child.is_alive().unwrap() && started.elapsed() < Duration::from_secs(20) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let ms = started.elapsed().as_millis();
    println!("child exitcode={:?} after {ms} ms of computing", child.exitcode().unwrap());
}

fn main_process() {
    identity(String::new());
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("exit") => exit(args[2].parse().expect("exit code")),
        Some("spawn") => nest(args[2..].join(" ")),
        Some("leave") => leave_children(args[2..].join(" ")),
        _ => {}
    }
}

/// The one connection end the parent passed to this process.
fn passed_connection() -> Connection {
    inherited_connections().pop().expect("the parent passes a connection")
}

fn passed_queue_of_parent() -> Queue {
    inherited_queues().pop().expect("the parent passes a queue")
}

/// Sends every message it receives back, until EOF; then says how many.
fn echo(_: String) {
    let conn = passed_connection();
    let mut echoed = 0;
    let end = loop {
        match conn.recv_bytes() {
            Ok(message) => conn.send_bytes(&message).unwrap(),
            Err(end) => break end,
        }
        echoed += 1;
    };
    println!("echoed={echoed} end={end}");
}

/// Receives until EOF, in batches ("batched") or one message per call
/// ("single"); says how many messages and bytes.
fn drain(how: String) {
    let conn = passed_connection();
    let (mut messages, mut bytes) = (0usize, 0usize);
    let end = loop {
        let received = match how.as_str() {
            "batched" => conn.recv_many(1 << 20),
            "single" => conn.recv_bytes().map(|message| vec![message]),
            other => panic!("drain batched|single, not {other:?}"),
        };
        match received {
            Ok(batch) => {
                messages += batch.len();
                bytes += batch.iter().map(Vec::len).sum::<usize>();
            }
            Err(end) => break end,
        }
    };
    println!("received={messages} bytes={bytes} end={end}");
}

/// Receives one message from the passed end (the wasm SDK reads ahead
/// whatever else has arrived), then passes the end to a `drain single`
/// child, which must get everything after that one.
fn recv_one_then_pass(_: String) {
    let conn = passed_connection();
    println!("first={}", String::from_utf8(conn.recv_bytes().unwrap()).unwrap());
    let sink = Process::new("drain", "single");
    sink.pass_connection(conn).unwrap();
    sink.start().unwrap();
    sink.join(None).unwrap();
}

/// Sends "N SIZE BATCH" on `conn`: N messages of SIZE bytes, BATCH per
/// call (one `send_bytes` each if BATCH is 1).
fn send_all(conn: &Connection, args: &str) {
    let numbers: Vec<usize> = args.split(' ').map(|n| n.parse().expect("N SIZE BATCH")).collect();
    let [n, size, batch] = numbers[..] else { panic!("N SIZE BATCH") };
    let message = vec![7u8; size];
    let mut sent = 0;
    while sent < n {
        let count = batch.min(n - sent);
        if count == 1 {
            conn.send_bytes(&message).unwrap();
        } else {
            conn.send_many(&vec![message.as_slice(); count]).unwrap();
        }
        sent += count;
    }
}

/// Sends "N SIZE BATCH" (see [`send_all`]) on the passed connection.
fn source(args: String) {
    send_all(&passed_connection(), &args);
}

/// Sends one message on its passed connection, then computes forever
/// without another call.
fn send_then_spin(message: String) {
    passed_connection().send_bytes(message.as_bytes()).unwrap();
    spin(String::new());
}

/// Guest↔guest: sends "N SIZE BATCH" to a `drain` child over a one-way
/// pipe (which receives in batches too if BATCH > 1) and says how long
/// until the child had them all.
fn pipe_to_child(args: String) {
    let (theirs, mine) = pipe(false);
    let batch: usize = args.rsplit(' ').next().and_then(|b| b.parse().ok()).expect("N SIZE BATCH");
    let sink = Process::new("drain", if batch > 1 { "batched" } else { "single" });
    sink.pass_connection(theirs).unwrap();
    sink.start().unwrap();
    let started = Instant::now();
    send_all(&mine, &args);
    mine.close();
    sink.join(None).unwrap();
    println!("elapsed_ns={}", started.elapsed().as_nanos());
}

/// Guest↔guest over a queue: puts "N SIZE" messages for a `queue_drain`
/// child and says how long until the child had them all.
fn queue_to_child(args: String) {
    let (n, size) = split(&args);
    let (n, size): (usize, usize) = (n.parse().expect("N SIZE"), size.parse().expect("N SIZE"));
    let queue = Queue::new(0);
    let sink = Process::new("queue_drain", &n.to_string());
    sink.pass_queue(&queue).unwrap();
    sink.start().unwrap();
    let started = Instant::now();
    let message = vec![7u8; size];
    for _ in 0..n {
        queue.put_bytes(&message, None).unwrap();
    }
    sink.join(None).unwrap();
    println!("elapsed_ns={}", started.elapsed().as_nanos());
}

/// Takes N messages from the passed queue.
fn queue_drain(n: String) {
    let queue = passed_queue_of_parent();
    for _ in 0..n.parse::<usize>().expect("a count") {
        queue.get_bytes(None).unwrap();
    }
}

/// Holds the passed connection, says so over it, and sleeps until killed.
fn hold(_: String) {
    let conn = passed_connection();
    conn.send("holding").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Guest↔guest, parent and child: N values to an `echo` child and back,
/// in order; then closes and joins.
fn pipe_parent(n: String) {
    let n: u32 = n.parse().expect("a count");
    let (mine, theirs) = pipe(true);
    let child = Process::new("echo", "");
    child.pass_connection(theirs).unwrap();
    println!("pass_after_start={:?}", {
        child.start().unwrap();
        child.pass_connection(pipe(true).0).map_err(|e| e.to_string())
    });
    for i in 0..n {
        mine.send(&i).unwrap();
    }
    let back: Vec<u32> = (0..n).map(|_| mine.recv().unwrap()).collect();
    println!("in_order={}", back == (0..n).collect::<Vec<_>>());
    mine.close();
    child.join(None).unwrap();
    println!("child_exitcode={:?}", child.exitcode().unwrap());
}

/// Siblings: a `produce` child sends 0..N over a one-way pipe to a
/// `consume` child; the parent keeps neither end.
fn siblings(n: String) {
    let (rx, tx) = pipe(false);
    let producer = Process::new("produce", &n);
    producer.pass_connection(tx).unwrap();
    let consumer = Process::new("consume", "");
    consumer.pass_connection(rx).unwrap();
    consumer.start().unwrap();
    producer.start().unwrap();
    producer.join(None).unwrap();
    consumer.join(None).unwrap();
}

fn produce(n: String) {
    let conn = passed_connection();
    for i in 0..n.parse::<u64>().expect("a count") {
        conn.send(&i).unwrap();
    }
}

fn consume(_: String) {
    let conn = passed_connection();
    let (mut count, mut sum) = (0u64, 0u64);
    let end = loop {
        match conn.recv::<u64>() {
            Ok(value) => {
                count += 1;
                sum += value;
            }
            Err(end) => break end,
        }
    };
    println!("consumed={count} sum={sum} end={end}");
}

/// A parallel map: N `square` workers put (i, i*i) on a queue passed to
/// them; the parent collects them, then finds the queue at EOF.
fn queue_map(n: String) {
    let results = Queue::new(0);
    let workers: Vec<Process> = (1..=n.parse::<u64>().expect("a count"))
        .map(|i| {
            let worker = Process::new("square", &i.to_string());
            worker.pass_queue(&results).unwrap();
            worker.start().unwrap();
            worker
        })
        .collect();
    let mut got: Vec<(u64, u64)> = workers.iter().map(|_| results.get(Some(Duration::from_secs(30))).unwrap()).collect();
    got.sort();
    println!("results={got:?}");
    workers.iter().for_each(|w| w.join(None).unwrap());
    println!("after_workers={:?}", results.get::<(u64, u64)>(Some(Duration::from_secs(5))).map_err(|e| e.to_string()));
}

fn square(i: String) {
    let results = passed_queue_of_parent();
    let i: u64 = i.parse().expect("a number");
    results.put(&(i, i * i), None).unwrap();
}

/// The queue its parent passed (bounded to 1, empty): puts one message,
/// times out on a second, then waits for room for it; once the parent has
/// emptied the queue, waits for the parent's message, then finds EOF once
/// the parent has closed its handle.
fn queue_peer(_: String) {
    let queue = passed_queue_of_parent();
    println!("first_put={:?}", queue.put("first", None).map_err(|e| e.to_string()));
    println!("second_put={:?}", queue.put("second", Some(Duration::from_millis(20))).map_err(|e| e.to_string()));
    println!("waited_put={:?}", queue.put("second", None).map_err(|e| e.to_string()));
    while !queue.empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("emptied");
    println!("got={}", queue.get::<String>(None).unwrap());
    println!("then={:?}", queue.get::<String>(None).map_err(|e| e.to_string()));
}

/// A bounded queue: put blocks (times out) when full, get when empty.
fn queue_bounds(_: String) {
    let queue = Queue::new(2);
    queue.put("a", None).unwrap();
    queue.put("b", None).unwrap();
    let started = Instant::now();
    println!("third_put={:?}", queue.put("c", Some(Duration::from_millis(50))).map_err(|e| e.to_string()));
    println!("waited={}", started.elapsed() >= Duration::from_millis(50));
    println!("qsize={} empty={}", queue.qsize(), queue.empty());
    let a: String = queue.get(None).unwrap();
    let b: String = queue.get(None).unwrap();
    println!("got={a}{b}");
    // Only this handle is open: nothing can ever arrive.
    println!("get_alone={:?}", queue.get::<String>(Some(Duration::from_secs(5))).map_err(|e| e.to_string()));
    queue.close();
    println!("put_closed={:?}", queue.put("d", None).map_err(|e| e.to_string()));
}

/// "ADDRESS [KEY]": listens, serves one client (prints what it sent,
/// replies), or prints why accepting failed.
fn serve(args: String) {
    let (address, key) = split(&args);
    let key = (!key.is_empty()).then(|| AuthKey::new(key.as_bytes().to_vec()));
    let listener = Listener::bind(address, key.as_ref()).unwrap();
    println!("listening at {}", listener.address());
    match listener.accept() {
        Ok(conn) => {
            println!("server got={}", conn.recv::<String>().unwrap());
            conn.send("welcome").unwrap();
        }
        Err(e) => println!("server error={e}"),
    }
}

/// "ADDRESS [KEY]": connects (with its own authkey if no KEY), says hello
/// and prints the reply, or why connecting failed.
fn client(args: String) {
    let (address, key) = split(&args);
    let key = (!key.is_empty()).then(|| AuthKey::new(key.as_bytes().to_vec()));
    match wmp_guest::connect(address, key.as_ref()) {
        Ok(conn) => {
            conn.send("hello from a client").unwrap();
            println!("client got={}", conn.recv::<String>().unwrap());
        }
        Err(e) => println!("client error={e}"),
    }
}

/// A killed peer: a `hold` child gets one end and is killed; this end
/// then reads EOF and cannot send.
fn killed_peer(_: String) {
    let (mine, theirs) = pipe(true);
    let child = Process::new("hold", "");
    child.pass_connection(theirs).unwrap();
    child.start().unwrap();
    println!("child says={}", mine.recv::<String>().unwrap());
    child.kill().unwrap();
    child.join(None).unwrap();
    println!("recv={:?}", mine.recv_bytes().map_err(|e| e.to_string()));
    println!("send={:?}", mine.send_bytes(b"anyone?").map_err(|e| e.to_string()));
}

/// wait_ready on a child's sentinel and a pipe from it: the pipe is ready
/// first (the child sends after MS ms), both once the child has ended.
fn wait_both(ms: String) {
    let (mine, theirs) = pipe(true);
    let child = Process::new("send_later", &ms);
    child.pass_connection(theirs).unwrap();
    child.start().unwrap();
    let sentinel = child.sentinel().unwrap();
    println!("nothing_yet={:?}", wait_ready(&[&sentinel], &[&mine], Some(Duration::ZERO)));
    println!("first_ready={:?}", wait_ready(&[&sentinel], &[&mine], Some(Duration::from_secs(30))));
    println!("message={}", mine.recv::<String>().unwrap());
    mine.send("thanks").unwrap();
    child.join(None).unwrap();
    mine.poll(Some(Duration::from_secs(30))).unwrap();
    println!("then_ready={:?}", wait_ready(&[&sentinel], &[&mine], Some(Duration::from_secs(30))));
}

/// Sends "late" after MS ms, then ends once the other side answers (or
/// goes away), so it is still running when "late" is read.
fn send_later(ms: String) {
    let conn = passed_connection();
    std::thread::sleep(Duration::from_millis(ms.parse().expect("milliseconds")));
    conn.send("late").unwrap();
    let _ = conn.recv_bytes();
}

/// Makes the host hold ever more on this process's behalf, one way (the
/// containment issue's attacks), printing how many it holds every so
/// often; only a limit stops it.
fn hoard(how: String) {
    const MIB: usize = 1 << 20;
    let mut kept: Vec<Box<dyn std::any::Any>> = Vec::new();
    let queue = Queue::new(0);
    let (mut passed_queue, mut passed_pipe) = (None, None);
    for i in 0u64.. {
        if i % 16 == 0 {
            println!("held={i}");
        }
        match how.as_str() {
            "queue" => queue.put_bytes(&vec![7u8; MIB], None).unwrap(),
            "pipe" => {
                let (rx, tx) = pipe(false);
                tx.send_many(&[vec![7u8; MIB], vec![7u8; MIB], vec![7u8; MIB], vec![7u8; MIB - 64]]).unwrap();
                kept.push(Box::new((rx, tx)));
            }
            "listener" => {
                let address = format!("{i:08}{}", "a".repeat(MIB));
                kept.push(Box::new(Listener::bind(&address, None).unwrap()));
            }
            "objects" => kept.push(Box::new(Process::new("noop", &"a".repeat(8 * MIB)))),
            "names" => {
                let p = Process::new("noop", "");
                p.set_name(&"n".repeat(8 * MIB));
                kept.push(Box::new(p));
            }
            // One name at a time, one MiB longer each time.
            "own_name" => current_process().set_name(&"n".repeat(i as usize * MIB)),
            "handles" => kept.push(Box::new(Queue::new(0))),
            // Into what the parent passed, which nobody reads.
            "passed_queue" => passed_queue.get_or_insert_with(passed_queue_of_parent).put_bytes(&vec![7u8; MIB], None).unwrap(),
            "passed_pipe" => passed_pipe.get_or_insert_with(passed_connection).send_bytes(&vec![7u8; MIB]).unwrap(),
            other => panic!("hoard queue|pipe|listener|objects|names|own_name|handles|passed_queue|passed_pipe, not {other:?}"),
        }
    }
}

/// Makes the IPC calls its parent sends over the passed connection, one
/// per message (`pipe`, `send P N`, `recv P`, `drop-pipe P`, `queue`,
/// `put Q N`, `get Q`, `drop-queue Q`, `listen ADDRESS`, `drop-listener L`,
/// `object N`, `rename O N`, `drop-object O`; N is a size in bytes, the
/// others index what it made of that kind), and answers each with one
/// byte: `k` done, `e` nothing to receive or get. The parent reads this
/// process's ledger between calls (tests/ledger_model.rs).
fn ipc_calls(_: String) {
    let control = passed_connection();
    let mut pipes: Vec<Option<(Connection, Connection)>> = Vec::new();
    let mut queues: Vec<Option<Queue>> = Vec::new();
    let mut listeners: Vec<Option<Listener>> = Vec::new();
    let mut objects: Vec<Option<Process>> = Vec::new();
    let bytes = |n: &str| vec![7u8; n.parse().expect("a size")];
    let index = |i: &str| i.parse::<usize>().expect("an index");
    control.send_bytes(b"k").unwrap();
    while let Ok(call) = control.recv_bytes() {
        let call = String::from_utf8(call).expect("a call is text");
        let words: Vec<&str> = call.split(' ').collect();
        let answer: &[u8] = match words[..] {
            ["pipe"] => {
                pipes.push(Some(pipe(false)));
                b"k"
            }
            ["send", p, n] => {
                pipes[index(p)].as_ref().unwrap().1.send_bytes(&bytes(n)).unwrap();
                b"k"
            }
            ["recv", p] => {
                let (rx, _) = pipes[index(p)].as_ref().unwrap();
                if rx.poll(Some(Duration::ZERO)).unwrap() {
                    rx.recv_bytes().unwrap();
                    b"k"
                } else {
                    b"e"
                }
            }
            ["drop-pipe", p] => {
                pipes[index(p)] = None;
                b"k"
            }
            ["queue"] => {
                queues.push(Some(Queue::new(0)));
                b"k"
            }
            ["put", q, n] => {
                queues[index(q)].as_ref().unwrap().put_bytes(&bytes(n), None).unwrap();
                b"k"
            }
            ["get", q] => match queues[index(q)].as_ref().unwrap().get_bytes(Some(Duration::ZERO)) {
                Ok(_) => b"k",
                // EOF: empty, and this is the queue's only handle.
                Err(wmp_guest::ConnectionError::Empty | wmp_guest::ConnectionError::Eof) => b"e",
                Err(other) => panic!("get: {other}"),
            },
            ["drop-queue", q] => {
                queues[index(q)] = None;
                b"k"
            }
            ["listen", address] => {
                listeners.push(Some(Listener::bind(address, None).unwrap()));
                b"k"
            }
            ["drop-listener", l] => {
                listeners[index(l)] = None;
                b"k"
            }
            ["object", n] => {
                objects.push(Some(Process::new("noop", &"a".repeat(index(n)))));
                b"k"
            }
            ["rename", o, n] => {
                objects[index(o)].as_ref().unwrap().set_name(&"n".repeat(index(n)));
                b"k"
            }
            ["drop-object", o] => {
                objects[index(o)] = None;
                b"k"
            }
            _ => panic!("ipc_calls: unknown call {call:?}"),
        };
        control.send_bytes(answer).unwrap();
    }
}

/// Sleeps "N MS": N times MS milliseconds, and prints how late each
/// wake-up was, in microseconds (`late_us=a,b,...`).
fn oversleep(args: String) {
    let (n, ms) = split(&args);
    let nap = Duration::from_millis(ms.parse().expect("milliseconds"));
    let late: Vec<String> = (0..n.parse::<usize>().expect("a count"))
        .map(|_| {
            let asked = Instant::now();
            std::thread::sleep(nap);
            (asked.elapsed().saturating_sub(nap).as_micros()).to_string()
        })
        .collect();
    println!("late_us={}", late.join(","));
}

/// Runs one pool scenario (`pool MODE`) over the pool functions below and
/// prints what it saw, `key=value` per line.
fn pool(mode: String) {
    use wmp_guest::{Pool, PoolOptions, pool_fn};
    let shown = |result: Result<Vec<u64>, wmp_guest::PoolError>| match result {
        Ok(values) => format!("{values:?}"),
        Err(err) => format!("error: {err}"),
    };
    match mode.as_str() {
        "results" => {
            let pool = Pool::new(2).unwrap();
            println!("map={}", shown(pool.map(pool_fn!(pool_square), 0..20)));
            println!("map_chunked={}", shown(pool.map_chunked(pool_fn!(pool_square), 0..20, 3)));
            println!("map_empty={}", shown(pool.map(pool_fn!(pool_square), 0..0)));
            println!("starmap={}", shown(pool.starmap(pool_fn!(pool_add), (0..20).map(|i| (i, 100 * i)))));
            println!("imap={}", shown(pool.imap(pool_fn!(pool_square), 0..20, 1).unwrap().collect()));
            println!("imap_chunked={}", shown(pool.imap(pool_fn!(pool_square), 0..20, 6).unwrap().collect()));
            let mut unordered = pool.imap_unordered(pool_fn!(pool_square), 0..20, 4).unwrap().collect::<Result<Vec<u64>, _>>();
            if let Ok(values) = &mut unordered {
                values.sort();
            }
            println!("imap_unordered_sorted={}", shown(unordered));
            println!("apply={:?}", pool.apply(pool_fn!(pool_add), (20, 22)));
            let pending: Vec<_> = (0..20).map(|i| pool.apply_async(pool_fn!(pool_square), (i,)).unwrap()).collect();
            println!("apply_async={}", shown(pending.iter().map(|r| r.get(None)).collect()));
            let async_map = pool.map_async(pool_fn!(pool_square), 0..20).unwrap();
            println!("map_async={}", shown(async_map.get(Some(Duration::from_secs(30)))));
            println!("successful={:?}", async_map.successful());
            let unknown: Result<Vec<u64>, _> = pool.map(wmp_guest::PoolFn::<(u64,), u64>::named("nowhere"), [1]);
            println!("unknown={}", shown(unknown));
            pool.close();
            println!("join={:?}", pool.join());
        }
        "maxtasks" => {
            let pool = Pool::with_options(PoolOptions::new().processes(2).maxtasksperchild(2)).unwrap();
            let pids = pool.map_chunked(pool_fn!(pool_pid), 0..20, 1).unwrap();
            let mut per_worker = std::collections::BTreeMap::<u32, usize>::new();
            pids.iter().for_each(|pid| *per_worker.entry(*pid).or_default() += 1);
            println!("tasks={}", pids.len());
            println!("workers={}", per_worker.len());
            println!("most_tasks_of_a_worker={}", per_worker.values().max().unwrap());
        }
        "initializer" => {
            let options = PoolOptions::new().processes(2).maxtasksperchild(3).initializer(pool_fn!(pool_init), (7,));
            let pool = Pool::with_options(options).unwrap();
            let seen = pool.map_chunked(pool_fn!(pool_inits), 0..12, 1).unwrap();
            let workers: std::collections::BTreeSet<u32> = seen.iter().map(|(pid, _, _)| *pid).collect();
            let runs: std::collections::BTreeSet<(u32, u32)> = seen.iter().map(|(_, runs, arg)| (*runs, *arg)).collect();
            println!("workers={}", workers.len());
            println!("init_runs_and_args={runs:?}");
        }
        "death" => {
            let pool = Pool::new(2).unwrap();
            println!("exit={}", shown(pool.map_chunked(pool_fn!(pool_exit_at), 0..6, 1)));
            // Only the task the worker ran fails; the next it held runs elsewhere.
            let each: Vec<String> = pool
                .imap(pool_fn!(pool_exit_at), 0..6, 1)
                .unwrap()
                .map(|r| r.map_or_else(|e| e.to_string().split(" running").next().unwrap().to_owned(), |v| v.to_string()))
                .collect();
            println!("imap_exit={each:?}");
            println!("after_exit={}", shown(pool.map(pool_fn!(pool_square), 0..5)));
            println!("panic={}", shown(pool.map_chunked(pool_fn!(pool_panic_at), 0..6, 1)));
            println!("after_panic={}", shown(pool.map(pool_fn!(pool_square), 0..5)));
            let apply = pool.apply_async(pool_fn!(pool_exit_at), (3,)).unwrap();
            println!("apply_exit={:?}", apply.get(None).map_err(|e| e.to_string()));
            println!("workers_alive={}", active_children().len());
        }
        "terminate" => {
            let pool = Pool::new(2).unwrap();
            let slow = pool.apply_async(pool_fn!(pool_sleep), (60_000,)).unwrap();
            println!("ready={} timeout={:?}", slow.ready(), slow.get(Some(Duration::from_millis(50))).map_err(|e| e.to_string()));
            let started = Instant::now();
            pool.terminate();
            println!("slow={:?}", slow.get(None).map_err(|e| e.to_string()));
            println!("children={} quick={}", active_children().len(), started.elapsed() < Duration::from_secs(20));
            println!("map_after={}", shown(pool.map(pool_fn!(pool_square), 0..3)));
            println!("join={:?}", pool.join());
        }
        "closed" => {
            let pool = Pool::new(1).unwrap();
            println!("join_running={:?}", pool.join().map_err(|e| e.to_string()));
            let queued = pool.map_async(pool_fn!(pool_square), 0..4).unwrap();
            pool.close();
            println!("map_closed={}", shown(pool.map(pool_fn!(pool_square), 0..3)));
            println!("apply_closed={:?}", pool.apply_async(pool_fn!(pool_add), (1, 2)).err().map(|e| e.to_string()));
            println!("join={:?} queued={}", pool.join(), shown(queued.get(None)));
            println!("zero={:?}", Pool::new(0).err().map(|e| e.to_string()));
            println!("no_tasks={:?}", Pool::with_options(PoolOptions::new().maxtasksperchild(0)).err().map(|e| e.to_string()));
        }
        other => panic!("unknown pool mode {other:?}"),
    }
}

fn pool_square(x: u64) -> u64 {
    x * x
}

fn pool_add(a: u64, b: u64) -> u64 {
    a + b
}

fn pool_pid(_: u64) -> u32 {
    current_process().pid().unwrap().unwrap()
}

/// How many times this worker ran [`pool_init`], and with what.
static POOL_INIT: std::sync::Mutex<(u32, u32)> = std::sync::Mutex::new((0, 0));

fn pool_init(arg: u32) {
    let mut init = POOL_INIT.lock().unwrap();
    *init = (init.0 + 1, arg);
}

/// (this worker's pid, its initializer runs, the initializer's argument).
fn pool_inits(_: u64) -> (u32, u32, u32) {
    let (runs, arg) = *POOL_INIT.lock().unwrap();
    (pool_pid(0), runs, arg)
}

fn pool_exit_at(x: u64) -> u64 {
    if x == 3 {
        exit(7);
    }
    x
}

fn pool_panic_at(x: u64) -> u64 {
    if x == 3 {
        panic!("pool_panic_at got 3");
    }
    x
}

fn pool_sleep(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

wmp_guest::main!(
    main_process,
    recv_one_then_pass,
    place_child,
    place_daemon,
    hoard,
    ipc_calls,
    oversleep,
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
    start_then_compute,
    other_program,
    own_main_without_args,
    fds_of_an_exec,
    unknown_target,
    alloc,
    fork_bomb,
    flood,
    echo,
    drain,
    source,
    send_then_spin,
    pipe_to_child,
    hold,
    pipe_parent,
    siblings,
    produce,
    consume,
    queue_map,
    square,
    queue_bounds,
    serve,
    client,
    killed_peer,
    wait_both,
    send_later,
    queue_to_child,
    queue_drain,
    queue_peer,
    pool;
    pool: pool_square, pool_add, pool_pid, pool_init, pool_inits, pool_exit_at, pool_panic_at, pool_sleep,
);
