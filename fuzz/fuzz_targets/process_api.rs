//! Fuzzes the process state machine through the host API: the input is a
//! sequence of calls on three process objects running tiny core modules
//! (one spins forever, one returns, one exits with 3). Every call must
//! return Ok or the error documented for the state it meets, nothing may
//! panic or hang, and no process may run once the calls are over.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wmp_host::naming::python_repr;
use wmp_host::{KILLED_EXITCODE, Process, ProcessError, Program, Runtime, TERMINATED_EXITCODE};

const OBJECTS: usize = 3;
/// Input past this many calls is ignored, to keep each input quick.
const MAX_CALLS: usize = 64;
const BRIEF_JOIN: Duration = Duration::from_millis(1);
/// Only a hang or a broken kill waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

const SPIN: &str = r#"(module (func (export "_start") (loop $forever (br $forever))))"#;
const RETURN: &str = r#"(module (func (export "_start")))"#;
/// WASI preview 1 calls need the module's memory exported, even proc_exit.
const EXIT_3: &str = r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#;

/// What a process object runs.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Guest {
    Spin,
    Return,
    Exit3,
}

impl Guest {
    /// The exit code it ends with by itself; None: it runs until stopped.
    fn own_exitcode(self) -> Option<i32> {
        match self {
            Guest::Spin => None,
            Guest::Return => Some(0),
            Guest::Exit3 => Some(3),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Call {
    Start,
    JoinBriefly,
    JoinNoWait,
    /// `join(None)`; made as a brief join when it could block forever.
    JoinForever,
    IsAlive,
    Exitcode,
    Terminate,
    Kill,
    Close,
    Pid,
    Sentinel,
    SetDaemon(bool),
    SetName(String),
    Display,
    /// Replaces the object with a fresh one.
    Renew(Guest),
}

/// What an input asks for: the objects' first guests, then calls, each
/// naming its object by index (modulo the number of objects).
struct Script {
    guests: [Guest; OBJECTS],
    calls: Vec<(u8, Call)>,
}

impl Script {
    fn decode(data: &[u8]) -> arbitrary::Result<Script> {
        let mut u = Unstructured::new(data);
        let guests = u.arbitrary()?;
        let mut calls = Vec::new();
        while !u.is_empty() && calls.len() < MAX_CALLS {
            calls.push(u.arbitrary()?);
        }
        Ok(Script { guests, calls })
    }
}

struct Fixture {
    rt: Runtime,
    spin: Program,
    return_: Program,
    exit_3: Program,
}

impl Fixture {
    /// Built once for the whole run: a runtime per input would dwarf the
    /// work under test.
    fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let rt = Runtime::new().expect("runtime");
            let load = |name: &str, text: &str| rt.load_bytes(name, text.as_bytes()).expect(name);
            let (spin, return_, exit_3) =
                (load("spin.wat", SPIN), load("return.wat", RETURN), load("exit3.wat", EXIT_3));
            Fixture { rt, spin, return_, exit_3 }
        })
    }

    fn object(&self, guest: Guest) -> Subject {
        let program = match guest {
            Guest::Spin => &self.spin,
            Guest::Return => &self.return_,
            Guest::Exit3 => &self.exit_3,
        };
        let process = self.rt.process(program).build();
        let name = process.name();
        Subject { process, guest, phase: Phase::Initial, name, daemon: false }
    }
}

/// What the model knows of a started object.
struct Run {
    /// Whether a call has shown that the process ended.
    ended: bool,
    /// Exit codes it may end with: its own, and those of the signals sent
    /// before it was seen to end.
    possible_exitcodes: Vec<i32>,
    /// The exit code, once a call has shown it.
    exitcode: Option<i32>,
}

impl Run {
    /// True while nothing can have stopped it: a spinner never signalled.
    fn surely_running(&self) -> bool {
        self.possible_exitcodes.is_empty()
    }

    fn signalled(&mut self, exitcode: i32) {
        if !self.ended {
            self.possible_exitcodes.push(exitcode);
        }
    }

    fn saw_exitcode(&mut self, code: Option<i32>) {
        match code {
            None => assert!(!self.ended, "no exitcode after the process was seen to end"),
            Some(code) => {
                assert!(
                    self.possible_exitcodes.contains(&code),
                    "exitcode {code}, expected one of {:?}",
                    self.possible_exitcodes
                );
                assert!(
                    self.exitcode.is_none_or(|seen| seen == code),
                    "exitcode changed from {:?} to {code}",
                    self.exitcode
                );
                self.ended = true;
                self.exitcode = Some(code);
            }
        }
    }
}

/// The model's state of one process object.
enum Phase {
    Initial,
    Started(Run),
    Closed,
}

struct Subject {
    process: Process,
    guest: Guest,
    phase: Phase,
    name: String,
    daemon: bool,
}

/// Asserts that `result` is Ok when `refusal` is None, else that error.
#[track_caller]
fn assert_result<T: std::fmt::Debug>(call: &Call, result: &Result<T, ProcessError>, refusal: Option<ProcessError>) {
    match (result, &refusal) {
        (Ok(_), None) => {}
        (Err(error), Some(expected)) if error == expected => {}
        _ => panic!("{call:?}: expected {refusal:?} (None: Ok), got {result:?}"),
    }
}

impl Subject {
    /// The error the current state refuses a call with: None means Ok.
    fn refusal(&self, on_initial: Option<ProcessError>, on_started: Option<ProcessError>) -> Option<ProcessError> {
        match self.phase {
            Phase::Initial => on_initial,
            Phase::Started(_) => on_started,
            Phase::Closed => Some(ProcessError::Closed),
        }
    }

    fn run(&mut self) -> Option<&mut Run> {
        match &mut self.phase {
            Phase::Started(run) => Some(run),
            Phase::Initial | Phase::Closed => None,
        }
    }

    fn apply(&mut self, call: &Call) {
        let p = &self.process;
        match call {
            Call::Start => {
                let result = p.start();
                assert_result(call, &result, self.refusal(None, Some(ProcessError::StartedTwice)));
                if result.is_ok() {
                    let possible_exitcodes = self.guest.own_exitcode().into_iter().collect();
                    self.phase = Phase::Started(Run { ended: false, possible_exitcodes, exitcode: None });
                }
            }
            Call::JoinBriefly => self.join(call, Some(BRIEF_JOIN)),
            Call::JoinNoWait => self.join(call, Some(Duration::ZERO)),
            Call::JoinForever => match self.run() {
                Some(run) if run.surely_running() => self.join(call, Some(BRIEF_JOIN)),
                _ => self.join(call, None),
            },
            Call::IsAlive => {
                let result = p.is_alive();
                assert_result(call, &result, self.refusal(None, None));
                match (result, &mut self.phase) {
                    (Ok(alive), Phase::Initial) => assert!(!alive, "alive before start"),
                    (Ok(alive), Phase::Started(run)) => {
                        assert!(!(alive && run.ended), "alive after it was seen to end");
                        assert!(alive || !run.surely_running(), "an unsignalled spinner is not alive");
                        run.ended |= !alive;
                    }
                    _ => {}
                }
            }
            Call::Exitcode => {
                let result = p.exitcode();
                assert_result(call, &result, self.refusal(None, None));
                match (result, &mut self.phase) {
                    (Ok(code), Phase::Initial) => assert_eq!(code, None, "exitcode before start"),
                    (Ok(code), Phase::Started(run)) => run.saw_exitcode(code),
                    _ => {}
                }
            }
            Call::Terminate => self.signal(call, Process::terminate, TERMINATED_EXITCODE),
            Call::Kill => self.signal(call, Process::kill, KILLED_EXITCODE),
            Call::Close => {
                let result = p.close();
                let refusal = match &self.phase {
                    Phase::Started(run) if run.surely_running() => Some(ProcessError::CloseRunning),
                    // A signalled or self-ending process may not have ended yet.
                    Phase::Started(run) if !run.ended && result.is_err() => Some(ProcessError::CloseRunning),
                    Phase::Initial | Phase::Started(_) | Phase::Closed => None,
                };
                assert_result(call, &result, refusal);
                if result.is_ok() {
                    self.phase = Phase::Closed;
                }
            }
            Call::Pid => {
                let result = p.pid();
                assert_result(call, &result, self.refusal(None, None));
                match (result, &self.phase) {
                    (Ok(pid), Phase::Initial) => assert_eq!(pid, None, "pid before start"),
                    (Ok(pid), Phase::Started(_)) => assert!(pid.is_some_and(|pid| pid > 1), "pid {pid:?} after start"),
                    _ => {}
                }
            }
            Call::Sentinel => {
                let result = p.sentinel();
                let refusal = self.refusal(Some(ProcessError::NotStarted), None);
                assert_result(call, &result.as_ref().map(|_| ()).map_err(ProcessError::clone), refusal);
                if let (Ok(sentinel), Phase::Started(run)) = (result, &mut self.phase) {
                    let ready = Fixture::get().rt.wait(&[sentinel], Some(Duration::ZERO)) == [0];
                    assert!(ready || !run.ended, "the sentinel of an ended process is not ready");
                    assert!(!ready || !run.surely_running(), "the sentinel of an unsignalled spinner is ready");
                    run.ended |= ready;
                }
            }
            Call::SetDaemon(daemon) => {
                let result = p.set_daemon(*daemon);
                // The daemon flag still works after close.
                let refusal = match self.phase {
                    Phase::Started(_) => Some(ProcessError::AlreadyStarted),
                    Phase::Initial | Phase::Closed => None,
                };
                assert_result(call, &result, refusal);
                if result.is_ok() {
                    self.daemon = *daemon;
                }
                assert_eq!(p.daemon(), self.daemon);
            }
            Call::SetName(name) => {
                p.set_name(name.as_str());
                self.name.clone_from(name);
                assert_eq!(&p.name(), name);
            }
            Call::Display => self.check_display(),
            Call::Renew(_) => unreachable!("renewing replaces the subject"),
        }
    }

    fn join(&mut self, call: &Call, timeout: Option<Duration>) {
        let result = self.process.join(timeout);
        assert_result(call, &result, self.refusal(Some(ProcessError::JoinNotStarted), None));
        if let (Ok(()), None, Some(run)) = (result, timeout, self.run()) {
            run.ended = true;
        }
    }

    fn signal(&mut self, call: &Call, send: fn(&Process) -> Result<(), ProcessError>, exitcode: i32) {
        let result = send(&self.process);
        assert_result(call, &result, self.refusal(Some(ProcessError::NotStarted), None));
        if let Some(run) = self.run() {
            run.signalled(exitcode);
        }
    }

    fn check_display(&self) {
        let text = self.process.to_string();
        let head = format!("<Process name={} ", python_repr(&self.name));
        // The status is read after the name, which may hold any text.
        let Some(after_name) = text.strip_prefix(&head) else { panic!("{text} does not start with {head}") };
        assert_eq!(after_name.ends_with(" daemon>"), self.daemon, "{text}: daemon is {}", self.daemon);
        let started = after_name.contains(" started");
        let stopped = after_name.contains(" stopped exitcode=");
        let status_ok = match &self.phase {
            Phase::Initial => after_name.contains(" initial"),
            Phase::Closed => after_name.contains(" closed"),
            Phase::Started(run) if run.ended => stopped,
            Phase::Started(run) if run.surely_running() => started,
            Phase::Started(_) => started || stopped,
        };
        assert!(status_ok, "{text} does not show the state the model expects");
    }

    /// Kills what was started and waits for it to end.
    fn stop(&mut self) {
        if self.run().is_none() {
            return;
        }
        self.signal(&Call::Kill, Process::kill, KILLED_EXITCODE);
        assert_eq!(self.process.join(Some(PATIENCE)), Ok(()));
        assert_eq!(self.process.is_alive(), Ok(false), "{} still runs {PATIENCE:?} after kill", self.process);
        let code = self.process.exitcode().expect("exitcode of a started object");
        self.run().expect("started").saw_exitcode(code);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(script) = Script::decode(data) else { return };
    let fixture = Fixture::get();
    let mut subjects = script.guests.map(|guest| fixture.object(guest));
    for (index, call) in &script.calls {
        let subject = &mut subjects[usize::from(*index) % OBJECTS];
        match call {
            Call::Renew(guest) => {
                subject.stop();
                *subject = fixture.object(*guest);
            }
            _ => subject.apply(call),
        }
    }
    subjects.iter_mut().for_each(Subject::stop);
    assert_eq!(fixture.rt.live_process_count(), 0, "processes still run after the calls");
});
