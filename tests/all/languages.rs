//! Guests written in C, Python and JavaScript against the same WIT contract
//! (examples/c, examples/python, examples/js), built by
//! scripts/language-guests.sh into target/language-guests/: each reads its
//! identity and runs two children, a Python guest and a Rust guest start
//! each other, every pair of languages (Rust included) starts the other's
//! children and talks to them over a pipe, and the plain WASI programs of
//! each language run unchanged under `wmp run`.
//!
//! Building the guests needs toolchains that `cargo test` does not install,
//! so a missing guest skips its test with a note, unless
//! `WMP_LANGUAGE_GUESTS=required` (scripts/test.sh sets it) makes it fail.

use std::path::PathBuf;
use std::process::Command;

use wmp_core::ProcessError;
use wmp_host::{Capabilities, Process, Program, Runtime, Stdio};

use crate::{Output, PATIENCE, probe, run_child, runtime};

/// The built guest `name` (e.g. "python-guest"), or None after a skip note.
pub fn guest(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/language-guests").join(format!("{name}.wasm"));
    if path.exists() {
        return Some(path);
    }
    let message = format!("{} is missing: run `bash scripts/language-guests.sh`", path.display());
    if std::env::var("WMP_LANGUAGE_GUESTS").as_deref() == Ok("required") {
        panic!("{message}");
    }
    eprintln!("skipping: {message} (scripts/test.sh does)");
    None
}

/// Runs `program` as a child of the host's main process, running its main
/// with `argv` or, with `target`, that target with JSON `args`; returns the
/// ended process and its output.
fn run(rt: &Runtime, program: &Program, argv: &[&str], target: Option<(&str, &str)>) -> (Process, Output) {
    let (stdout_stdio, stdout) = Stdio::capture();
    let (stderr_stdio, stderr) = Stdio::capture();
    let caps = Capabilities::new().args(argv.iter().copied()).stdout(stdout_stdio).stderr(stderr_stdio);
    let mut builder = rt.process(program).capabilities(caps);
    if let Some((target, args)) = target {
        builder = builder.target(target, args.as_bytes().to_vec());
    }
    let process = builder.build();
    process.start().expect("start");
    process.join(Some(PATIENCE)).expect("join");
    assert!(!process.is_alive().unwrap(), "{process} still running after {PATIENCE:?}");
    (process, Output { stdout, stderr })
}

/// The `ROLE name=N pid=P identity=[..] parent_pid=Q` line of the process
/// named `name`, as a map from key to value.
fn described(out: &Output, name: &str) -> std::collections::HashMap<String, String> {
    let stdout = out.stdout();
    let line = stdout
        .lines()
        .find(|line| line.split(' ').nth(1) == Some(&format!("name={name}")))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"));
    line.split(' ').skip(1).filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// The language's guest prints its identity, starts two workers that exit
/// 0 and 3, and prints their exit codes; a worker started from the host
/// gets its JSON argument; an unknown target is refused at start (C lists
/// its targets in the `wmp:targets` section) or ends the child with code 1.
fn two_children(language: &str) {
    let Some(path) = guest(&format!("{language}-guest")) else { return };
    let rt = runtime();
    let program = rt.load(&path).unwrap();

    let (p, out) = run(&rt, &program, &["guest"], None);
    assert_eq!(p.exitcode(), Ok(Some(0)), "{language}: {}{}", out.stdout(), out.stderr());
    let main = described(&out, "Process-1");
    let main_pid = p.pid().unwrap().unwrap().to_string();
    assert_eq!(main["pid"], main_pid, "{language}");
    assert_eq!(main["identity"], "[1]", "{language}");
    assert_eq!(main["parent_pid"], rt.current_process().pid().unwrap().unwrap().to_string(), "{language}");
    for (n, code) in [(1, 0), (2, 3)] {
        let worker = described(&out, &format!("Process-1:{n}"));
        assert_eq!(worker["identity"], format!("[1,{n}]"), "{language}");
        assert_eq!(worker["parent_pid"], main_pid, "{language}");
        assert_ne!(worker["pid"], main_pid, "{language}");
        assert!(out.stdout().contains(&format!("\nProcess-1:{n} exitcode={code}\n")), "{language}: {}", out.stdout());
    }

    let (p, out) = run(&rt, &program, &["guest"], Some(("worker", "5")));
    assert_eq!(p.exitcode(), Ok(Some(5)), "{language}: {}", out.stderr());
    assert_eq!(described(&out, "Process-2")["identity"], "[2]", "{language}");

    let unknown = rt.process(&program).target("no_such_target", b"0".to_vec()).capabilities(Capabilities::new().stderr(Stdio::capture().0)).build();
    match unknown.start() {
        Err(err) => {
            assert_eq!(language, "c", "only the C guest declares its targets");
            assert!(matches!(err, ProcessError::UnknownTarget(_)), "{err}");
        }
        Ok(()) => {
            unknown.join(Some(PATIENCE)).unwrap();
            assert_eq!(unknown.exitcode(), Ok(Some(1)), "{language}");
        }
    }
}

#[test]
fn a_c_guest_reads_its_identity_and_runs_two_children() {
    two_children("c");
}

#[test]
fn a_python_guest_reads_its_identity_and_runs_two_children() {
    two_children("python");
}

#[test]
fn a_js_guest_reads_its_identity_and_runs_two_children() {
    two_children("js");
}

/// Mixed trees: the Python guest starts the Rust probe's main (shared as
/// "probe"), and the Rust probe starts the Python guest's `worker` (shared
/// as "python").
#[test]
fn python_and_rust_guests_start_each_other() {
    let Some(path) = guest("python-guest") else { return };
    let rt = runtime();
    let python = rt.load(&path).unwrap();
    let rust = probe(&rt);
    rt.share_program("probe", &rust);
    rt.share_program("python", &python);

    let (p, out) = run(&rt, &python, &["guest", "probe", "exit", "5"], None);
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    assert_eq!(out.value("name"), "Process-1:1", "the probe, a child of the Python guest");
    assert_eq!(out.value("identity"), "[1, 1]");
    assert_eq!(out.value("parent_pid"), format!("{:?}", p.pid().unwrap()));
    assert_eq!(out.value("probe exitcode"), "5");

    let (p, out) = run_child(&rt, &rust, "other_program", "python worker 4");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    let worker = described(&out, "Process-2:1");
    assert_eq!(worker["identity"], "[2,1]", "the Python worker, a child of the probe");
    assert_eq!(worker["parent_pid"], p.pid().unwrap().unwrap().to_string());
    assert_eq!(out.value("python exitcode"), "Some(4)");
}

/// Mixed trees: the guest of each language (Rust, C, Python, JS) starts
/// the `echo` target of every language's guest, shared by the host under
/// the language's name, hands it one end of a pipe, and gets its hello back
/// upper-cased and tagged by the child's language and process name.
#[test]
fn every_pair_of_languages_starts_each_others_children_and_talks_over_a_pipe() {
    const LANGUAGES: [&str; 4] = ["rust", "c", "python", "js"];
    let rt = runtime();
    let mut programs = vec![rt.load(wmp_test_guests::POLYGLOT).unwrap()];
    for language in &LANGUAGES[1..] {
        let Some(path) = guest(&format!("{language}-guest")) else { return };
        programs.push(rt.load(&path).unwrap());
    }
    for (language, program) in LANGUAGES.iter().zip(&programs) {
        rt.share_program(language, program);
    }
    for (parent, program) in LANGUAGES.iter().zip(&programs) {
        let argv = [["guest", "mixed"].as_slice(), &LANGUAGES].concat();
        let (p, out) = run(&rt, program, &argv, None);
        assert_eq!(p.exitcode(), Ok(Some(0)), "{parent}: {}{}", out.stdout(), out.stderr());
        let name = p.name();
        for (n, child) in LANGUAGES.iter().enumerate() {
            let reply = format!("mixed {child}: HELLO FROM {} ({child} {name}:{})\n", parent.to_uppercase(), n + 1);
            assert!(out.stdout().contains(&reply), "{parent} → {child}: no {reply:?} in\n{}", out.stdout());
            assert!(out.stdout().contains(&format!("{child} exitcode=0\n")), "{parent} → {child}: {}", out.stdout());
        }
    }
}

fn wmp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wmp")).args(args).output().expect("running wmp")
}

/// The plain WASI programs (no wmp imports) run under `wmp run` as under
/// any WASI runtime: arguments, environment, exit code (a C preview 1
/// module keeps its code; a WASI 0.2 command has only 0 and 1). The wmp
/// guests run as `wmp run`'s main process too.
#[test]
fn plain_programs_and_guests_in_each_language_run_under_wmp_run() {
    for language in ["c", "python", "js"] {
        let Some(plain) = guest(&format!("{language}-plain")) else { return };
        let plain = plain.to_str().unwrap();
        let out = wmp(&["run", plain, "args", "two words"]);
        assert_eq!(out.status.code(), Some(0), "{language}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{language}-plain.wasm\nargs\ntwo words\n"));
        let out = wmp(&["run", "--env", "GREETING=hello there", plain, "env", "GREETING"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello there\n", "{language}");
        let out = wmp(&["run", plain, "env", "HOME"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "<unset>\n", "{language}");
        assert_eq!(wmp(&["run", plain, "exit", "0"]).status.code(), Some(0), "{language}");
        let code = if language == "c" { 3 } else { 1 };
        assert_eq!(wmp(&["run", plain, "exit", "3"]).status.code(), Some(code), "{language}");

        let Some(guest) = guest(&format!("{language}-guest")) else { return };
        let out = wmp(&["run", guest.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{language}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("main name=MainProcess "), "{language}: {stdout}");
        assert!(stdout.contains(" identity=[] parent_pid=none\n"), "{language}: {stdout}");
        assert!(stdout.contains("\nProcess-2 exitcode=3\n"), "{language}: {stdout}");
    }
}
