//! The `wmp` command line: `wmp run` behaves like `wasmtime run` on plain
//! WASI programs (p1 modules and p2 components), runs wmp guests as the
//! main process, and turns bad input into one-line errors.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wmp_test_guests::{PLAIN_P1, PLAIN_P2, PROBE};

pub(crate) fn wmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wmp")).args(args).env_remove("RUST_BACKTRACE").output().expect("running wmp")
}

/// `wmp ARGS`, killed if it is still running after 10 s: a regression that
/// makes it hang fails the test instead of hanging it.
fn wmp_within_10s(args: &[&OsStr]) -> Output {
    const DEADLINE: Duration = Duration::from_secs(10);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wmp"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running wmp");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("wmp {args:?} still running after {DEADLINE:?}: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const PLAIN: [(&str, &str); 2] = [("p1", PLAIN_P1), ("p2", PLAIN_P2)];

#[test]
fn version() {
    let out = wmp(&["--version"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("wmp {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn args_are_passed_through_with_the_file_name_as_argv0() {
    for (kind, module) in PLAIN {
        let out = wmp(&["run", module, "args", "--flag", "two words"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", stderr(&out));
        assert_eq!(stdout(&out), "plain.wasm\nargs\n--flag\ntwo words\n", "{kind}");
    }
}

#[test]
fn env_vars_are_set_or_inherited() {
    for (kind, module) in PLAIN {
        let out = wmp(&["run", "--env", "GREETING=hello there", module, "env", "GREETING"]);
        assert_eq!(stdout(&out), "hello there\n", "{kind}");
        let out = Command::new(env!("CARGO_BIN_EXE_wmp"))
            .args(["run", "--env", "FROM_HOST", module, "env", "FROM_HOST"])
            .env("FROM_HOST", "inherited")
            .output()
            .unwrap();
        assert_eq!(stdout(&out), "inherited\n", "{kind}");
        let out = wmp(&["run", module, "env", "HOME"]);
        assert_eq!(stdout(&out), "<unset>\n", "{kind}: nothing leaks in unasked");
    }
}

#[test]
fn an_inherited_env_var_that_is_not_utf8_is_refused_and_an_unset_one_stays_unset() {
    let out = Command::new(env!("CARGO_BIN_EXE_wmp"))
        .args(["run", "--env", "NOT_UTF8", PLAIN_P1, "env", "NOT_UTF8"])
        .env("NOT_UTF8", OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "as a non-UTF-8 argument is: {}", stderr(&out));
    assert_eq!(stderr(&out), "Error: environment variable \"NOT_UTF8\" is not valid UTF-8\n");
    assert_eq!(stdout(&out), "", "the guest does not run");
    let out = Command::new(env!("CARGO_BIN_EXE_wmp"))
        .args(["run", "--env", "NOT_SET", PLAIN_P1, "env", "NOT_SET"])
        .env_remove("NOT_SET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "<unset>\n", "as under wasmtime run");
}

#[test]
fn a_preopened_directory_can_be_read_and_written() {
    for (kind, module) in PLAIN {
        let dir = scratch(&format!("cli-dir-{kind}"));
        std::fs::write(dir.join("in.txt"), "from the host\n").unwrap();
        let mapping = format!("{}::/data", dir.display());
        let out = wmp(&["run", "--dir", &mapping, module, "read", "/data/in.txt"]);
        assert_eq!(stdout(&out), "from the host\n", "{kind}: {}", stderr(&out));
        let out = wmp(&["run", "--dir", &mapping, module, "write", "/data/out.txt", "from the guest"]);
        assert_eq!(out.status.code(), Some(0), "{kind}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "from the guest");
        // HOST alone maps the directory at the same path.
        let same = dir.display().to_string();
        let out = wmp(&["run", "--dir", &same, module, "read", &format!("{same}/in.txt")]);
        assert_eq!(stdout(&out), "from the host\n", "{kind}");
        // Without --dir the guest sees no files.
        let out = wmp(&["run", module, "read", "/data/in.txt"]);
        assert_ne!(out.status.code(), Some(0), "{kind}");
        assert!(stderr(&out).starts_with("read /data/in.txt: "), "{kind}: {}", stderr(&out));
    }
}

#[test]
fn exit_codes_match_wasmtime_run() {
    for (kind, module) in PLAIN {
        assert_eq!(wmp(&["run", module, "args"]).status.code(), Some(0), "{kind}");
    }
    // WASI preview 1 carries any exit code; Rust's std on preview 2 can only
    // say success or failure, so exit(3) arrives as 1, as under wasmtime.
    assert_eq!(wmp(&["run", PLAIN_P1, "exit", "3"]).status.code(), Some(3));
    assert_eq!(wmp(&["run", PLAIN_P2, "exit", "3"]).status.code(), Some(1));
    // wmp guests exit with the real code through wmp:process.
    assert_eq!(wmp(&["run", PROBE, "exit", "3"]).status.code(), Some(3));
}

#[test]
fn a_trap_prints_the_error_and_exits_134() {
    for (kind, module) in PLAIN {
        let out = wmp(&["run", module, "trap"]);
        assert_eq!(out.status.code(), Some(134), "{kind}");
        let err = stderr(&out);
        assert!(err.starts_with(&format!("Error: failed to run main module `{module}`")), "{kind}: {err}");
        assert!(err.contains("wasm trap: wasm `unreachable` instruction executed"), "{kind}: {err}");
        assert!(!err.contains("Stack backtrace"), "{kind}: no host backtrace: {err}");
    }
}

#[test]
fn stdout_and_stderr_are_inherited() {
    let out = wmp(&["run", PLAIN_P2, "stderr", "to stderr"]);
    assert_eq!(stderr(&out), "to stderr\n");
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_wmp_guest_is_the_main_process() {
    let out = wmp(&["run", PROBE]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("name=MainProcess\n"), "{text}");
    let pid: u32 = text.lines().find_map(|l| l.strip_prefix("pid=Some(")).unwrap().trim_end_matches(')').parse().unwrap();
    assert!(pid < wmp_host::FIRST_WASM_PID, "the main process has wmp's OS pid: {text}");
    assert!(text.contains("identity=[]\n"), "{text}");
    assert!(text.contains("parent=None\n"), "{text}");
    assert!(text.contains("repr=<_MainProcess name='MainProcess' parent=None started>\n"), "{text}");
    let out = wmp(&["run", PROBE, "spawn", "identity"]);
    let text = stdout(&out);
    assert!(text.contains("name=Process-1\n"), "{text}");
    assert!(text.contains("Process-1 exitcode=Some(0)"), "{text}");
}

/// `wmp run probe.wasm leave 1 SLEEP_MS`: main starts a daemonic spinner
/// and a non-daemonic sleeper (Process-2), then returns and, by CPython's
/// exit rule, waits for the sleeper; the lines on stderr that say so.
fn lines_about_waiting(sleep_ms: &str) -> (Output, Vec<String>) {
    let out = wmp_within_10s(&["run", PROBE, "leave", "1", sleep_ms].map(OsStr::new));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    let lines = text.lines().filter(|line| line.contains("waits for its non-daemonic children")).map(str::to_owned).collect();
    (out, lines)
}

#[test]
fn main_waiting_for_a_child_says_so_once_naming_it() {
    let started = Instant::now();
    let (out, lines) = lines_about_waiting("2500");
    assert!(started.elapsed() >= Duration::from_millis(2500), "the sleeper was joined");
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    let line = &lines[0];
    assert!(line.starts_with("wmp: the main process has ended"), "{line}");
    assert!(line.contains(": <Process name='Process-2' pid="), "the sleeper, by its repr: {line}");
    assert!(line.ends_with(" started> (daemonic children are not waited for; Ctrl-C stops them all)"), "{line}");
    assert!(!line.contains("Process-1"), "the daemonic spinner is not waited for: {line}");
}

#[test]
fn main_whose_children_end_within_a_second_says_nothing() {
    let (out, lines) = lines_about_waiting("200");
    assert_eq!(lines, Vec::<String>::new(), "{}", stderr(&out));
}

#[test]
fn bad_input_gives_a_one_line_error() {
    let dir = scratch("cli-bad-input");
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, "this is not wasm").unwrap();
    let truncated = dir.join("truncated.wasm");
    let bytes = std::fs::read(PLAIN_P1).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A missing file, in wasmtime's words: the message, then its cause.
    let missing = dir.join("missing.wasm");
    let out = wmp(&["run", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("Error: failed to open wasm module {missing:?}\n\nCaused by:\n    No such file or directory (os error 2)\n")
    );
    let cases = [
        (garbage, "not a WebAssembly module or component"),
        (truncated, "invalid program"),
    ];
    for (path, expected) in cases {
        let out = wmp(&["run", path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        assert!(err.starts_with("Error: ") && err.contains(expected), "{}: {err}", path.display());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let invalid = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    let out = Command::new(env!("CARGO_BIN_EXE_wmp")).arg("run").arg(PLAIN_P1).arg(invalid).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not valid UTF-8"), "{}", stderr(&out));
    let out = wmp(&["run", "--dir", "/no/such/dir::/x", PLAIN_P1, "args"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open directory /no/such/dir"), "{}", stderr(&out));
}

#[test]
fn only_a_regular_file_is_loaded_and_the_others_are_refused_without_waiting() {
    let dir = scratch("cli-not-a-file");
    let fifo = dir.join("program.wasm");
    let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: c_path is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let cases = [(Path::new("/dev/zero"), "a character device"), (&fifo, "a FIFO"), (&dir, "a directory")];
    for (path, kind) in cases {
        let expected = format!("Error: cannot load {}: not a regular file ({kind})\n", path.display());
        let commands: [&[&str]; 4] = [&["run"], &["run", "--allow-precompiled"], &["compile"], &["inspect"]];
        for command in commands {
            let mut args: Vec<&OsStr> = command.iter().map(OsStr::new).collect();
            args.push(path.as_os_str());
            let out = wmp_within_10s(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert_eq!(stderr(&out), expected, "{args:?}");
        }
    }
}

#[test]
fn a_program_larger_than_max_program_size_is_refused_naming_the_limit() {
    let size = std::fs::metadata(PLAIN_P1).unwrap().len();
    let smaller = (size - 1).to_string();
    let out = wmp(&["run", "--max-program-size", &smaller, PLAIN_P1, "args"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let expected = format!("Error: cannot load {PLAIN_P1}: larger than the program size limit of {smaller} bytes\n");
    assert_eq!(stderr(&out), expected);
    let out = wmp(&["run", "--max-program-size", &size.to_string(), PLAIN_P1, "args"]);
    assert_eq!(out.status.code(), Some(0), "a program of exactly the limit runs: {}", stderr(&out));
    let out = wmp(&["run", "--max-program-size", "lots", PLAIN_P1]);
    assert_eq!(out.status.code(), Some(2), "clap rejects it: {}", stderr(&out));
}

#[test]
fn wat_text_runs_too() {
    let dir = scratch("cli-wat");
    let wat = dir.join("exit7.wat");
    std::fs::write(
        &wat,
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") (call $exit (i32.const 7))))"#,
    )
    .unwrap();
    assert_eq!(wmp(&["run", wat.to_str().unwrap()]).status.code(), Some(7));
}

#[test]
fn inspect_tells_kind_world_imports_and_exports() {
    let out = wmp(&["inspect", PLAIN_P1]);
    let text = stdout(&out);
    assert!(text.starts_with("kind: p1"), "{text}");
    assert!(text.contains("world: wasi preview 1 command"), "{text}");
    assert!(text.contains("wasi_snapshot_preview1::fd_write"), "{text}");
    assert!(text.contains("\n  _start\n"), "{text}");
    let text = stdout(&wmp(&["inspect", PLAIN_P2]));
    assert!(text.starts_with("kind: p2"), "{text}");
    assert!(text.contains("world: wasi:cli/command"), "{text}");
    assert!(text.contains("wasi:cli/run@0.2"), "{text}");
    let text = stdout(&wmp(&["inspect", PROBE]));
    assert!(text.contains("world: wmp:process/guest"), "{text}");
    assert!(text.contains("wmp:process/process@0.1.0"), "{text}");
}

#[test]
fn wit_prints_the_guest_interface() {
    let out = wmp(&["wit"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("package wmp:process@0.1.0;"));
    assert!(text.contains("world guest"));
    assert!(text.contains("interface synchronize"), "the locks and shared memory too");
}

#[test]
fn the_demo_guest_says_who_it_is_and_exits_3() {
    let out = wmp(&["run", wmp_test_guests::HELLO, "x"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("hello from <_MainProcess name='MainProcess' parent=None started>"), "{text}");
    assert!(text.contains("identity = []"), "{text}");
    assert!(text.contains("args     = [\"hello.wasm\", \"x\"]"), "{text}");
}

#[test]
fn the_tree_example_splits_the_work_and_cleans_up() {
    let out = wmp(&["run", wmp_test_guests::TREE, "20000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("primes below 20000: 2262 (checked in one process: 2262)"), "{text}");
    for name in ["Process-3:1", "Process-3:2", "Process-4:1", "Process-4:2"] {
        assert!(text.contains(&format!("[{name:<13}] pid=")), "{name} did not run: {text}");
    }
    assert!(text.contains("killed it: <Process name='Process-2'"), "{text}");
    assert!(text.contains("stopped exitcode=-SIGKILL>"), "{text}");
    assert!(text.contains("active children at exit: [<Process name='watchdog'"), "{text}");
}

/// Grows its one page of memory by one: exits 6 if it grew, 5 if
/// `memory.grow` returned -1.
const GROW_ONE_PAGE: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
      (then (call $exit (i32.const 5)))
      (else (call $exit (i32.const 6))))))"#;

#[test]
fn limits_are_set_with_wasmtime_flags() {
    let dir = scratch("cli-limits");
    let spin = dir.join("spin.wat");
    std::fs::write(&spin, r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#).unwrap();
    let spin = spin.to_str().unwrap();
    // A timeout and fuel running out are traps to wasmtime (134, its words),
    // then wmp's reason.
    let out = wmp(&["run", "-W", "timeout=50ms", spin]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!("Error: failed to run main module `{spin}`")), "{}", stderr(&out));
    assert!(stderr(&out).contains("wasm trap: interrupt"), "{}", stderr(&out));
    assert!(stderr(&out).contains("wmp: ") && stderr(&out).contains("was stopped by its timeout"), "{}", stderr(&out));
    let out = wmp(&["run", "-W", "fuel=100000", spin]);
    assert_eq!(out.status.code(), Some(134));
    assert!(stderr(&out).contains("wasm trap: all fuel consumed by WebAssembly"), "{}", stderr(&out));
    assert!(stderr(&out).contains("was stopped by its fuel limit"), "{}", stderr(&out));
    // As under wasmtime, a growth past the memory limit returns -1 (the
    // program exits 5 when it sees it), or with trap-on-grow-failure fails
    // the run: an error, not a wasm trap, so status 1.
    let grow = dir.join("grow.wat");
    std::fs::write(&grow, GROW_ONE_PAGE).unwrap();
    let grow = grow.to_str().unwrap();
    assert_eq!(wmp(&["run", grow]).status.code(), Some(6), "grows within no limit");
    let out = wmp(&["run", "-W", "max-memory-size=65536", grow]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = wmp(&["run", "-W", "max-memory-size=65536,trap-on-grow-failure", grow]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("forcing trap when growing memory to 131072 bytes"), "{}", stderr(&out));
    let out = wmp(&["run", "--max-depth", "1", PROBE, "spawn", "nest identity"]);
    assert!(stdout(&out).contains("Process-1 exitcode=Some(-9)"), "{}", stdout(&out));
    // The child renames itself one MiB longer each time (printing every
    // 16): stopped at 4 MiB, not at the default 64 MiB.
    let out = wmp(&["run", "--max-host-memory", "4194304", PROBE, "spawn", "hoard own_name"]);
    assert!(stdout(&out).contains("Process-1 exitcode=Some(-9)"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("held=16"), "{}", stdout(&out));
    let out = wmp(&["run", "-W", "bogus=1", spin]);
    assert_eq!(out.status.code(), Some(2), "clap rejects it: {}", stderr(&out));
    assert!(stderr(&out).contains("unknown -W / --wasm option: bogus"), "{}", stderr(&out));
    // wasmtime's spellings: comma lists, `-Wkey=value`, `_` in numbers (fuel
    // for far longer than the timeout, which must be what stops it).
    let out = wmp(&["run", "-Wtimeout=50ms,fuel=100_000_000_000", spin]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(stderr(&out).contains("was stopped by its timeout"), "{}", stderr(&out));
    // One wmp cannot honour is refused by name, with the reason.
    let out = wmp(&["run", "-W", "threads", spin]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out), "Error: -W threads: wmp cannot honour it: wmp is built without the threads proposal\n");
}

#[test]
fn an_unknown_flag_is_a_usage_error_and_flags_after_the_module_are_the_programs() {
    let out = wmp(&["run", "--frobnicate", PROBE]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unexpected argument '--frobnicate'"), "{}", stderr(&out));
    let out = wmp(&["run", PLAIN_P1, "args", "--frobnicate"]);
    assert_eq!(stdout(&out), "plain.wasm\nargs\n--frobnicate\n", "{}", stderr(&out));
}

#[test]
fn run_is_implied_and_argv0_can_be_set() {
    let out = wmp(&["--argv0", "renamed", PLAIN_P1, "args", "x"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "renamed\nargs\nx\n");
}

#[test]
fn wasi_options_take_wasmtimes_spellings() {
    let with = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wmp")).args(args).env("WMP_TEST_INHERITED", "yes").output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(with(&["run", "-S", "inherit-env", PLAIN_P1, "env", "WMP_TEST_INHERITED"]), "yes\n");
    // --env after -S inherit-env replaces the inherited value.
    assert_eq!(with(&["run", "-Sinherit-env", "--env", "WMP_TEST_INHERITED=no", PLAIN_P1, "env", "WMP_TEST_INHERITED"]), "no\n");
    assert_eq!(with(&["run", "-S", "inherit-stdout=n", PLAIN_P1, "args", "x"]), "");
    let out = wmp(&["run", "-S", "http", PLAIN_P1]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("Error: -S http: wmp cannot honour it: "), "{}", stderr(&out));
}

#[test]
fn a_precompiled_program_runs_only_when_allowed() {
    let dir = scratch("cli-compile");
    let artifact = dir.join("probe.cwasm");
    let out = wmp(&["compile", PROBE, "-o", artifact.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wmp(&["run", "--allow-precompiled", artifact.to_str().unwrap(), "exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("name=MainProcess"));
    let out = wmp(&["run", artifact.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "refused without --allow-precompiled");
    assert_eq!(stderr(&out), "Error: running a precompiled module requires the `--allow-precompiled` flag\n");
    // Compiled with wasmtime's options, it runs with the same ones only.
    let metered = dir.join("probe-fuel.cwasm");
    let out = wmp(&["compile", "-W", "fuel=100000000", PROBE, "-o", metered.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wmp(&["run", "-W", "fuel=100000000", "--allow-precompiled", metered.to_str().unwrap(), "exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = wmp(&["run", "--allow-precompiled", metered.to_str().unwrap(), "exit", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("compiled with fuel support but it is not enabled for the host"), "{}", stderr(&out));
}

/// Runs an example of the root crate (examples/NAME), which `cargo test`
/// builds next to this binary's directory.
pub(crate) fn example(name: &str, args: &[&str]) -> Output {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    let example = deps.parent().unwrap().join("examples").join(name);
    Command::new(&example).args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", example.display()))
}

#[test]
fn the_embedding_example_waits_on_both_kinds_and_kills_the_one_that_overruns() {
    let out = example("embed", &[wmp_test_guests::HELLO, "300"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("plugin ended after"), "{text}");
    assert!(text.contains("<Process name='plugin' pid=") && text.contains("stopped exitcode=3>"), "{text}");
    assert!(text.contains("helper overran the 300ms deadline: killing it"), "{text}");
    assert!(text.contains("<Process name='helper' pid=") && text.contains("stopped exitcode=-SIGKILL>"), "{text}");
    // A helper that keeps the deadline is left alone.
    let out = example("embed", &[wmp_test_guests::HELLO, "30000", "exit 4"]);
    let text = stdout(&out);
    assert!(text.contains("helper ended after"), "{text}");
    assert!(!text.contains("overran"), "{text}");
    assert!(text.contains("stopped exitcode=4>"), "{text}");
}

#[test]
fn a_guest_starts_a_native_program_only_with_allow_native() {
    let out = wmp(&["run", PROBE, "spawn", "other_program", "/bin/false", "-"]);
    let text = stdout(&out);
    assert!(text.contains("start error=program \"/bin/false\" is not available to guests"), "{text}");
    let out = wmp(&["run", "--allow-native", "/bin/false", PROBE, "spawn", "other_program", "/bin/false", "-"]);
    assert!(stdout(&out).contains("/bin/false exitcode=Some(1)"), "{}{}", stdout(&out), stderr(&out));
    let out = wmp(&["run", "--allow-native", "no=/bin/false", PROBE, "spawn", "other_program", "no", "-"]);
    assert!(stdout(&out).contains("no exitcode=Some(1)"), "granted under another name: {}", stdout(&out));
}

#[test]
fn wmp_run_keeps_compiled_code_in_the_user_cache_unless_told_not_to() {
    let cached = |extra: &[&str], name: &str| {
        let cache = scratch(name);
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend([PLAIN_P2, "args", "hello"]);
        for _ in 0..2 {
            let out = Command::new(env!("CARGO_BIN_EXE_wmp")).args(&args).env("XDG_CACHE_HOME", &cache).output().unwrap();
            assert_eq!(stdout(&out), "plain.wasm\nargs\nhello\n", "{}", stderr(&out));
        }
        let code = cache.join("wmp").join("code");
        std::fs::read_dir(&code).map(|entries| entries.count()).unwrap_or(0)
    };
    assert_eq!(cached(&[], "cache-on"), 1, "one .cwasm, reused by the second run");
    assert_eq!(cached(&["--disable-cache"], "cache-off"), 0);
}

#[test]
fn wmp_cache_shows_and_clears_the_code_cache_and_run_keeps_it_within_max_cache_size() {
    let home = scratch("cli-cache");
    let code = home.join("wmp").join("code");
    let wmp_with_cache = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wmp")).args(args).env("XDG_CACHE_HOME", &home).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "wmp {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let listing = |entries: usize, bytes: u64| {
        format!("entries: {entries}\nsize: {:.1} MiB ({bytes} bytes)\n", bytes as f64 / 1048576.0)
    };
    let show = |entries, bytes| {
        let limit = "limit: 512.0 MiB (536870912 bytes) unless `wmp run --max-cache-size` sets another";
        format!("directory: {}\n{}{limit}\n", code.display(), listing(entries, bytes))
    };
    let stored = || -> (usize, u64) {
        let sizes: Vec<u64> = std::fs::read_dir(&code).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
        (sizes.len(), sizes.iter().sum())
    };
    assert_eq!(wmp_with_cache(&["cache"]), show(0, 0), "no directory yet");
    wmp_with_cache(&["run", PLAIN_P1, "args"]);
    wmp_with_cache(&["run", PLAIN_P2, "args"]);
    let (entries, bytes) = stored();
    assert_eq!(entries, 2);
    assert_eq!(wmp_with_cache(&["cache", "show"]), show(2, bytes));
    // A cap smaller than any entry keeps only the one just stored.
    wmp_with_cache(&["run", "--max-cache-size", "1", PLAIN_P1, "args"]);
    assert_eq!(stored().0, 2, "a hit stores nothing, so it evicts nothing");
    wmp_with_cache(&["run", "--max-cache-size", "1", "-W", "fuel=1000000000", PLAIN_P1, "args"]);
    let (entries, bytes) = stored();
    assert_eq!(entries, 1, "other engine settings, another entry, and the others evicted");
    assert_eq!(wmp_with_cache(&["cache", "clear"]), format!("cleared: {}\n{}", code.display(), listing(1, bytes)));
    assert_eq!(wmp_with_cache(&["cache"]), show(0, 0));
}

#[test]
fn wasmtime_options_reach_the_engine() {
    // A tail call: on by default in wasmtime 48, off with `-W tail-call=n`.
    let dir = scratch("cli-engine-options");
    let tail = dir.join("tail.wat");
    std::fs::write(
        &tail,
        r#"(module (memory (export "memory") 1)
             (func $done)
             (func (export "_start") (return_call $done)))"#,
    )
    .unwrap();
    let tail = tail.to_str().unwrap();
    let out = wmp(&["run", tail]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = wmp(&["run", "-W", "tail-call=n", tail]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tail calls support is not enabled"), "{}", stderr(&out));
}

#[test]
fn help_describes_each_subcommand_and_itself() {
    let out = wmp(&["help", "run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Usage: wmp run [OPTIONS] <WASM>...\n"), "{}", stdout(&out));
    assert!(stdout(&out).contains("wmp options:"), "wmp's own flags under their heading: {}", stdout(&out));
    let out = wmp(&["help", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Usage: wmp help [COMMAND]..."), "{}", stdout(&out));
    let out = wmp(&["help", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: no such subcommand: \"nope\" (see `wmp --help`)\n");
}

#[test]
fn a_module_named_dash_is_read_from_stdin_within_the_size_cap() {
    let exit_7 = r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
        (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 7))))"#;
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wmp"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), exit_7.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&["run", "-"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let out = run(&["run", "--max-program-size", "16", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("Error: cannot load /dev/stdin: "), "{}", stderr(&out));
}

#[test]
fn a_main_guest_starts_more_children_than_the_pool_has_slots_whatever_the_pooling_option() {
    // 20 daemonic spinners and 20 sleepers beside the main guest: past the
    // 32 slots `wmp run` pools by default, so the last run on demand.
    for options in [&[][..], &["-O", "pooling-allocator=n"], &["-O", "pooling-allocator=y", "--max-processes", "50"]] {
        let args: Vec<&str> = ["run"].iter().chain(options).chain(&[PROBE, "leave", "20", "100"]).copied().collect();
        let out = wmp(&args);
        assert_eq!(out.status.code(), Some(0), "{options:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("children started: 40"), "{options:?}: {}", stdout(&out));
    }
}

#[test]
fn a_small_memory_reservation_runs_with_or_without_the_pooling_option() {
    // The pool is off then (a memory could not grow past its slot).
    for options in [&["-O", "memory-reservation=1048576"][..], &["-O", "memory-reservation=1048576", "-O", "pooling-allocator=y"]] {
        let args: Vec<&str> = ["run"].iter().chain(options).chain(&[PLAIN_P2, "compute", "300000"]).copied().collect();
        let out = wmp(&args);
        assert_eq!(out.status.code(), Some(0), "{options:?}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("checksum="), "{options:?}: {}", stdout(&out));
    }
}
