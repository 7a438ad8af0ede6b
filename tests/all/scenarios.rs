//! Differential tests against the host's CPython: each scenario of
//! tests/scenarios is a Python script that uses `multiprocessing`. CPython
//! runs it with its own `multiprocessing`; a wmp guest runs the same
//! scenario (the script itself, componentized with wmp's Python package, or
//! its C or JS rendering) under `wmp run`. Their stdout and stderr must be
//! equal line for line once what legitimately differs is masked: pids
//! (`pid=N`, `parent=N`) and, in tracebacks, file paths, line numbers and
//! the quoted source lines.
//!
//! The guests are built by scripts/language-guests.sh, like languages.rs's.

use std::path::{Path, PathBuf};
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::languages::guest;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// What one run printed, masked, and how it ended.
#[derive(Debug, PartialEq)]
struct Transcript {
    status: Option<i32>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Transcript {
    fn of(output: Output) -> Transcript {
        Transcript {
            status: output.status.code(),
            stdout: masked(&String::from_utf8_lossy(&output.stdout)),
            stderr: masked(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// The lines of `text` with pids and traceback details masked.
fn masked(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_traceback = false;
    for line in text.lines() {
        if line == "Traceback (most recent call last):" {
            in_traceback = true;
        } else if in_traceback && line.starts_with("  File \"") {
            lines.push(traceback_frame(line));
            continue;
        } else if in_traceback && line.starts_with("    ") {
            continue; // a quoted source line, or its ^^^ markers
        } else {
            in_traceback = false;
        }
        lines.push(mask_pids(line));
    }
    lines
}

/// `  File "/a/b/process.py", line 314, in _bootstrap` as
/// `  File "process.py", in _bootstrap`.
fn traceback_frame(line: &str) -> String {
    let rest = &line["  File \"".len()..];
    let Some((path, after)) = rest.split_once('"') else { return line.to_owned() };
    let file = Path::new(path).file_name().map_or(path.into(), |name| name.to_string_lossy());
    let function = after.split_once(", in ").map_or("", |(_, function)| function);
    format!("  File \"{file}\", in {function}")
}

/// Replaces the digits after `pid=` and `parent=` with `N`.
fn mask_pids(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = ["pid=", "parent="].iter().filter_map(|key| rest.find(key).map(|i| i + key.len())).min() {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Runs `scenario` under CPython and as `wmp run GUEST SCENARIO`, where
/// GUEST is the built language guest `guest` (e.g. "python-scenarios"),
/// and asserts their transcripts are equal.
pub fn matches_cpython(guest_name: &str, scenario: &str) {
    let Some(guest) = guest(guest_name) else { return };
    let script = scenarios_dir().join(format!("{scenario}.py"));
    let cpython = output_within(
        Command::new("python3").arg(&script).current_dir(scenarios_dir()).env_remove("PYTHONPATH"),
        SCENARIO_PATIENCE,
    );
    let (cpython, wmp) = (Transcript::of(cpython), under_wmp(guest_name, &guest, scenario));
    assert!(
        cpython == wmp,
        "{guest_name} {scenario}: the transcripts differ\n--- CPython\n{}\n--- wmp\n{}",
        render(&cpython),
        render(&wmp)
    );
}

/// The transcript of `wmp run GUEST SCENARIO`.
fn under_wmp(guest_name: &str, guest: &Path, scenario: &str) -> Transcript {
    Transcript::of(first_compiles(guest_name, || {
        output_within(Command::new(env!("CARGO_BIN_EXE_wmp")).arg("run").arg(guest).arg(scenario), SCENARIO_PATIENCE)
    }))
}

/// How long a scenario may run (the first run of a guest compiles it).
const SCENARIO_PATIENCE: Duration = Duration::from_secs(180);

/// `command`'s output; a command still running after `patience` is
/// killed and the test fails with what it printed, so a hang fails fast.
fn output_within(command: &mut Command, patience: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting the command");
    let stdout = read_all_of(child.stdout.take().unwrap());
    let stderr = read_all_of(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the command") {
            break status;
        }
        if started.elapsed() > patience {
            child.kill().ok();
            let status = child.wait().expect("waiting for the killed command");
            let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
            panic!("{command:?} still ran after {patience:?}; it printed:\n{}", render(&Transcript::of(output)));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

fn read_all_of(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).ok();
        bytes
    })
}

/// Runs `run`; the first run of each guest runs alone, so that it compiles
/// the guest into wmp's code cache once, and the tests running beside it
/// find the code there instead of all compiling it at once.
fn first_compiles(guest_name: &str, run: impl FnOnce() -> Output) -> Output {
    static COMPILED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if compiled.iter().any(|name| name == guest_name) {
        drop(compiled);
        return run();
    }
    let output = run();
    compiled.push(guest_name.to_owned());
    output
}

fn render(t: &Transcript) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", t.status, t.stdout.join("\n"), t.stderr.join("\n"))
}

#[test]
fn masking_keeps_what_a_transcript_means() {
    let text = "<Process name='Process-1' pid=4194305 parent=12 started>\n\
                Process Process-1:\n\
                Traceback (most recent call last):\n  \
                File \"/usr/lib/python3.11/multiprocessing/process.py\", line 314, in _bootstrap\n    \
                self.run()\n    \
                ^^^^^^^^^^\n\
                ValueError: boom\n    \
                indented output after it stays\n\
                pid=None\n";
    assert_eq!(
        masked(text),
        [
            "<Process name='Process-1' pid=N parent=N started>",
            "Process Process-1:",
            "Traceback (most recent call last):",
            "  File \"process.py\", in _bootstrap",
            "ValueError: boom",
            "    indented output after it stays",
            "pid=None",
        ]
    );
}

/// The Python guest runs the scenario scripts themselves, with wmp's
/// `multiprocessing` package in place of CPython's.
mod python {
    use super::matches_cpython;

    #[test]
    fn lang_lifecycle() {
        matches_cpython("python-scenarios", "lang_lifecycle");
    }

    #[test]
    fn lang_pipes() {
        matches_cpython("python-scenarios", "lang_pipes");
    }

    #[test]
    fn lang_queues() {
        matches_cpython("python-scenarios", "lang_queues");
    }

    #[test]
    fn lang_wait() {
        matches_cpython("python-scenarios", "lang_wait");
    }

    #[test]
    fn lang_listener() {
        matches_cpython("python-scenarios", "lang_listener");
    }

    #[test]
    fn py_errors() {
        matches_cpython("python-scenarios", "py_errors");
    }

    #[test]
    fn py_trees() {
        matches_cpython("python-scenarios", "py_trees");
    }

    #[test]
    fn py_objects() {
        matches_cpython("python-scenarios", "py_objects");
    }

    #[test]
    fn py_exit() {
        matches_cpython("python-scenarios", "py_exit");
    }

    #[test]
    fn py_pool() {
        matches_cpython("python-scenarios", "py_pool");
    }

    #[test]
    fn py_synchronize() {
        matches_cpython("python-scenarios", "py_synchronize");
    }

    /// Where CPython has no answer (its Pool waits forever for the task of
    /// a worker that died), wmp's fails the task and goes on.
    #[test]
    fn a_pool_worker_that_dies_fails_its_task() {
        let Some(guest) = super::guest("python-scenarios") else { return };
        let t = super::under_wmp("python-scenarios", &guest, "wmp_pool_death");
        assert_eq!(t.status, Some(0), "{}", super::render(&t));
        assert_eq!(
            t.stdout,
            [
                "ProcessError: the pool worker SpawnPoolWorker-1 ended with exitcode 3 during its task",
                "then [0, 1, 4, 9]"
            ],
            "{}",
            super::render(&t)
        );
    }
}

/// The C renderings of the `lang_` scenarios (tests/scenarios/c), one
/// component that runs the scenario its argv names.
mod c {
    use super::matches_cpython;

    #[test]
    fn lang_lifecycle() {
        matches_cpython("c-scenarios", "lang_lifecycle");
    }

    #[test]
    fn lang_pipes() {
        matches_cpython("c-scenarios", "lang_pipes");
    }

    #[test]
    fn lang_queues() {
        matches_cpython("c-scenarios", "lang_queues");
    }

    #[test]
    fn lang_wait() {
        matches_cpython("c-scenarios", "lang_wait");
    }

    #[test]
    fn lang_listener() {
        matches_cpython("c-scenarios", "lang_listener");
    }
}

/// The JS renderings of the `lang_` scenarios (tests/scenarios/js, on
/// examples/js/multiprocessing.js), one component that runs the scenario
/// its argv names.
mod js {
    use super::matches_cpython;

    #[test]
    fn lang_lifecycle() {
        matches_cpython("js-scenarios", "lang_lifecycle");
    }

    #[test]
    fn lang_pipes() {
        matches_cpython("js-scenarios", "lang_pipes");
    }

    #[test]
    fn lang_queues() {
        matches_cpython("js-scenarios", "lang_queues");
    }

    #[test]
    fn lang_wait() {
        matches_cpython("js-scenarios", "lang_wait");
    }

    #[test]
    fn lang_listener() {
        matches_cpython("js-scenarios", "lang_listener");
    }
}
