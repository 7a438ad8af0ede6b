//! The Rust side of the mixed-language trees (tests/all/languages.rs), the
//! same program in every language's guest: the target `echo` replies to
//! each message on its first inherited connection, upper-cased and tagged
//! `(rust NAME)`, until `bye`; run as `polyglot mixed PROGRAM...`, it starts
//! the `echo` of each PROGRAM the host shared (in any language) with one
//! end of a pipe, says hello, and prints the reply and the exit code.

use wmp_guest::{Process, current_process, inherited_connections, pipe};

fn echo(_: Vec<String>) {
    let conn = inherited_connections().into_iter().next().expect("the parent hands over a connection");
    let tag = format!(" (rust {})", current_process().name());
    loop {
        let message = conn.recv_bytes().expect("a message or bye");
        if message == b"bye" {
            break;
        }
        let mut reply = message.to_ascii_uppercase();
        reply.extend_from_slice(tag.as_bytes());
        conn.send_bytes(&reply).unwrap();
    }
}

fn main_process() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(("mixed", programs)) = args.split_first().map(|(mode, rest)| (mode.as_str(), rest)) else {
        eprintln!("usage: polyglot mixed PROGRAM...");
        std::process::exit(2);
    };
    for program in programs {
        let (ours, theirs) = pipe(true);
        let child = Process::in_program(program, "echo", &Vec::<String>::new());
        child.pass_connection(theirs).unwrap();
        child.start().unwrap();
        ours.send_bytes(b"hello from rust").unwrap();
        let reply = ours.recv_bytes().unwrap();
        println!("mixed {program}: {}", String::from_utf8_lossy(&reply));
        ours.send_bytes(b"bye").unwrap();
        child.join(None).unwrap();
        println!("{program} exitcode={}", child.exitcode().unwrap().unwrap());
    }
}

wmp_guest::main!(main_process, echo);
