//! `wmp run` beside the real `wasmtime run` 48.0.8 on the same plain WASI
//! programs and flags: the same exit status, the same stdout, the same
//! first line of stderr. `scripts/wasmtime-cli.sh` builds wasmtime and
//! prints its path; these run with that path in `WMP_WASMTIME`, and a
//! plain `cargo test` lists them as ignored, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a command line's run comes to, as compared.
#[derive(Debug, PartialEq)]
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr_first_line: String,
}

fn run(program: &str, args: &[&str]) -> Outcome {
    let out = Command::new(program).arg("run").args(args).env_remove("RUST_BACKTRACE").output().expect(program);
    let stderr = String::from_utf8_lossy(&out.stderr);
    Outcome {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr_first_line: stderr.lines().next().unwrap_or_default().to_owned(),
    }
}

/// Runs `args` under both and asserts they agree.
fn same_under_both(args: &[&str]) -> Outcome {
    let wasmtime = std::env::var("WMP_WASMTIME").expect("WMP_WASMTIME: the path scripts/wasmtime-cli.sh prints");
    let theirs = run(&wasmtime, args);
    let ours = run(env!("CARGO_BIN_EXE_wmp"), args);
    assert_eq!(ours, theirs, "wmp run {args:?} (left) against wasmtime run (right)");
    ours
}

/// A WAT program in a scratch directory.
fn wat(name: &str, text: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasmtime-differential");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const EXIT_3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;
const UNREACHABLE: &str = r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#;
const RECURSE: &str = r#"(module (memory (export "memory") 1) (func $f (export "_start") (call $f)))"#;
const LOOP: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;

#[test]
#[ignore = "needs wasmtime: WMP_WASMTIME=$(bash scripts/wasmtime-cli.sh) cargo test -- --include-ignored wasmtime_differential::"]
fn plain_programs_print_and_exit_the_same() {
    // A preview 2 command can only exit with success or failure (1).
    for (program, exit_7) in [(wmp_test_guests::PLAIN_P1, 7), (wmp_test_guests::PLAIN_P2, 1)] {
        let outcome = same_under_both(&[program, "args", "a b", "--c"]);
        assert_eq!((outcome.status, outcome.stdout.lines().count()), (Some(0), 4), "{outcome:?}");
        assert_eq!(same_under_both(&[program, "exit", "7"]).status, Some(exit_7));
        assert_eq!(same_under_both(&[program, "compute", "1000"]).status, Some(0));
    }
    assert_eq!(same_under_both(&[&wat("exit3.wat", EXIT_3)]).status, Some(3));
}

#[test]
#[ignore = "needs wasmtime: WMP_WASMTIME=$(bash scripts/wasmtime-cli.sh) cargo test -- --include-ignored wasmtime_differential::"]
fn traps_stack_overflows_timeouts_and_fuel_exit_134_with_wasmtime_words() {
    let spin = wat("loop.wat", LOOP);
    for args in [
        vec![wat("unreachable.wat", UNREACHABLE)],
        vec![wat("recurse.wat", RECURSE)],
        vec!["-W".into(), "timeout=100ms".into(), spin.clone()],
        vec!["-W".into(), "fuel=100000".into(), spin.clone()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = same_under_both(&args);
        assert_eq!(outcome.status, Some(134), "{args:?}");
        let module = Path::new(args.last().unwrap());
        assert_eq!(outcome.stderr_first_line, format!("Error: failed to run main module `{}`", module.display()));
    }
}
