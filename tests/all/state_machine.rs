//! A bounded random walk over the host's Process API: seeded sequences of
//! calls on a few process objects at once, each checked against a model of
//! the state machine (initial → started → ended → closed). Every call must
//! return Ok or the error documented for the state it meets, the host must
//! never panic or hang, and nothing may run once the walk is over.

use std::collections::HashSet;
use std::time::Duration;

use wmp_host::naming::{exitcode_display, python_repr};
use wmp_host::{KILLED_EXITCODE, Pid, Process, ProcessError, Program, Runtime, TERMINATED_EXITCODE};

use crate::{PATIENCE, child, probe, runtime};

/// Each seed replays the same walk; a failure names its seed and the calls
/// that led to it.
const SEEDS: [u64; 8] = [
    0x9e37_79b9_7f4a_7c15,
    0xdead_beef_cafe_f00d,
    0x2545_f491_4f6c_dd1d,
    0x0123_4567_89ab_cdef,
    0xfeed_face_0bad_f00d,
    0x5151_5151_5151_5151,
    0xc2b2_ae3d_27d4_eb4f,
    0x94d0_49bb_1331_11eb,
];
const STEPS_PER_SEED: usize = 60;
const OBJECTS_AT_ONCE: usize = 3;
/// Long enough for `sleep 5` to end sometimes, short enough to keep the
/// walk fast.
const BRIEF_JOIN: Duration = Duration::from_millis(3);
/// Names a walk gives objects: quotes and an empty name test the repr.
const NAMES: [&str; 4] = ["worker", "it's", "", "Process-99"];

#[test]
fn random_call_sequences_meet_only_documented_errors() {
    for seed in SEEDS {
        Walk::new(seed).run();
    }
}

/// xorshift64: a tiny deterministic generator.
struct Xorshift64(u64);

impl Xorshift64 {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// A probe target and the exit code it ends with by itself (None: it runs
/// until stopped).
struct Workload {
    target: &'static str,
    args: &'static str,
    own_exitcode: Option<i32>,
}

const WORKLOADS: [Workload; 4] = [
    Workload { target: "spin", args: "", own_exitcode: None },
    Workload { target: "noop", args: "", own_exitcode: Some(0) },
    Workload { target: "sleep", args: "5", own_exitcode: Some(0) },
    Workload { target: "exit_with", args: "3", own_exitcode: Some(3) },
];

/// The calls a walk makes; each applies to one object.
#[derive(Debug, Clone, Copy)]
enum Call {
    Start,
    JoinBriefly,
    JoinNoWait,
    /// `join(None)`; only made when it cannot block forever.
    JoinForever,
    IsAlive,
    Exitcode,
    Terminate,
    Kill,
    Close,
    Pid,
    Sentinel,
    SetDaemon(bool),
    SetName(&'static str),
    Display,
    /// Replaces a closed object with a fresh one.
    Renew,
}

/// What the model knows of a started object.
struct Run {
    /// The pid, once a call has shown it.
    pid: Option<Pid>,
    /// Whether a call has shown that the process ended.
    ended: bool,
    /// Exit codes it may end with: its own, and those of the signals sent
    /// before it was seen to end.
    possible_exitcodes: Vec<i32>,
    /// The exit code, once a call has shown it.
    exitcode: Option<i32>,
}

impl Run {
    fn new(workload: &Workload) -> Self {
        Run { pid: None, ended: false, possible_exitcodes: workload.own_exitcode.into_iter().collect(), exitcode: None }
    }

    /// True while nothing can have stopped it: a spinner never signalled.
    fn surely_running(&self) -> bool {
        self.possible_exitcodes.is_empty()
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
    workload: &'static Workload,
    phase: Phase,
    name: String,
    daemon: bool,
}

struct Walk {
    seed: u64,
    rng: Xorshift64,
    rt: Runtime,
    program: Program,
    subjects: Vec<Subject>,
    pids_seen: HashSet<Pid>,
    history: Vec<String>,
}

impl Walk {
    fn new(seed: u64) -> Self {
        let rt = runtime();
        let program = probe(&rt);
        let mut walk = Walk {
            seed,
            rng: Xorshift64(seed),
            rt,
            program,
            subjects: Vec::new(),
            pids_seen: HashSet::new(),
            history: Vec::new(),
        };
        walk.subjects = (0..OBJECTS_AT_ONCE).map(|_| walk.fresh_subject()).collect();
        walk
    }

    fn fresh_subject(&mut self) -> Subject {
        let workload = &WORKLOADS[self.rng.below(WORKLOADS.len())];
        let (process, _) = child(&self.rt, &self.program, workload.target, workload.args);
        let name = process.name();
        Subject { process, workload, phase: Phase::Initial, name, daemon: false }
    }

    fn run(mut self) {
        for _ in 0..STEPS_PER_SEED {
            let index = self.rng.below(self.subjects.len());
            let call = self.pick_call(index);
            self.history.push(format!("#{index} {} {call:?}", self.subjects[index].workload.target));
            self.apply(index, call);
        }
        self.stop_everything();
    }

    fn pick_call(&mut self, index: usize) -> Call {
        // Objects are started and renewed more often than chance would, so
        // that the walk spends its steps on running and ended processes.
        let subject = &self.subjects[index];
        match subject.phase {
            Phase::Initial if self.rng.below(3) == 0 => return Call::Start,
            Phase::Closed if self.rng.below(3) == 0 => return Call::Renew,
            Phase::Initial | Phase::Started(_) | Phase::Closed => {}
        }
        let call = match self.rng.below(14) {
            0 => Call::Start,
            1 => Call::JoinBriefly,
            2 => Call::JoinNoWait,
            3 => Call::JoinForever,
            4 => Call::IsAlive,
            5 => Call::Exitcode,
            6 => Call::Terminate,
            7 => Call::Kill,
            8 => Call::Close,
            9 => Call::Pid,
            10 => Call::Sentinel,
            11 => Call::SetDaemon(self.rng.coin()),
            12 => Call::SetName(NAMES[self.rng.below(NAMES.len())]),
            _ => Call::Display,
        };
        match (call, &subject.phase) {
            (Call::JoinForever, Phase::Started(run)) if run.surely_running() => Call::JoinBriefly,
            _ => call,
        }
    }

    /// Panics with the seed and the calls so far unless `holds`.
    #[track_caller]
    fn check(&self, holds: bool, what: impl FnOnce() -> String) {
        if !holds {
            panic!("seed {:#x}: {}\ncalls so far:\n  {}", self.seed, what(), self.history.join("\n  "));
        }
    }

    fn apply(&mut self, index: usize, call: Call) {
        match call {
            Call::Start => self.start(index),
            Call::JoinBriefly => self.join(index, Some(BRIEF_JOIN)),
            Call::JoinNoWait => self.join(index, Some(Duration::ZERO)),
            Call::JoinForever => self.join(index, None),
            Call::IsAlive => self.is_alive(index),
            Call::Exitcode => self.exitcode(index),
            Call::Terminate => self.signal(index, Process::terminate, TERMINATED_EXITCODE),
            Call::Kill => self.signal(index, Process::kill, KILLED_EXITCODE),
            Call::Close => self.close(index),
            Call::Pid => self.pid(index),
            Call::Sentinel => self.sentinel(index),
            Call::SetDaemon(daemon) => self.set_daemon(index, daemon),
            Call::SetName(name) => self.set_name(index, name),
            Call::Display => self.display(index),
            Call::Renew => self.subjects[index] = self.fresh_subject(),
        }
    }

    /// The error a state refuses a call with: None means Ok is expected.
    fn refusal(
        &self,
        index: usize,
        on_initial: Option<ProcessError>,
        on_started: Option<ProcessError>,
    ) -> Option<ProcessError> {
        match self.subjects[index].phase {
            Phase::Initial => on_initial,
            Phase::Started(_) => on_started,
            Phase::Closed => Some(ProcessError::Closed),
        }
    }

    #[track_caller]
    fn check_result<T: std::fmt::Debug>(&self, result: &Result<T, ProcessError>, expected_error: Option<ProcessError>) {
        let holds = match (&result, &expected_error) {
            (Ok(_), None) => true,
            (Err(error), Some(expected)) => error == expected,
            _ => false,
        };
        self.check(holds, || {
            let expected = expected_error.as_ref().map_or("Ok".to_owned(), |e| format!("Err({e:?})"));
            format!("expected {expected}, got {result:?}")
        });
    }

    fn run_mut(&mut self, index: usize) -> Option<&mut Run> {
        match &mut self.subjects[index].phase {
            Phase::Started(run) => Some(run),
            Phase::Initial | Phase::Closed => None,
        }
    }

    fn start(&mut self, index: usize) {
        let result = self.subjects[index].process.start();
        let expected = self.refusal(index, None, Some(ProcessError::StartedTwice));
        self.check_result(&result, expected);
        if result.is_ok() {
            let subject = &mut self.subjects[index];
            subject.phase = Phase::Started(Run::new(subject.workload));
        }
    }

    fn join(&mut self, index: usize, timeout: Option<Duration>) {
        let result = self.subjects[index].process.join(timeout);
        self.check_result(&result, self.refusal(index, Some(ProcessError::JoinNotStarted), None));
        if let (Ok(()), None, Some(run)) = (result, timeout, self.run_mut(index)) {
            run.ended = true;
        }
    }

    fn is_alive(&mut self, index: usize) {
        let result = self.subjects[index].process.is_alive();
        self.check_result(&result, self.refusal(index, None, None));
        let Ok(alive) = result else { return };
        match &self.subjects[index].phase {
            Phase::Initial => self.check(!alive, || "alive before start".into()),
            Phase::Started(run) => {
                self.check(!(alive && run.ended), || "alive after it was seen to end".into());
                self.check(alive || !run.surely_running(), || "an unsignalled spinner is not alive".into());
            }
            Phase::Closed => {}
        }
        if let (false, Some(run)) = (alive, self.run_mut(index)) {
            run.ended = true;
        }
    }

    fn exitcode(&mut self, index: usize) {
        let result = self.subjects[index].process.exitcode();
        self.check_result(&result, self.refusal(index, None, None));
        let Ok(code) = result else { return };
        let Phase::Started(run) = &self.subjects[index].phase else {
            return self.check(code.is_none(), || format!("exitcode {code:?} before start"));
        };
        match code {
            None => self.check(!run.ended, || "no exitcode after it was seen to end".into()),
            Some(code) => {
                self.check(run.possible_exitcodes.contains(&code), || {
                    format!("exitcode {code}, expected one of {:?}", run.possible_exitcodes)
                });
                self.check(run.exitcode.is_none_or(|seen| seen == code), || {
                    format!("exitcode changed from {:?} to {code}", run.exitcode)
                });
                let run = self.run_mut(index).expect("started");
                run.ended = true;
                run.exitcode = Some(code);
            }
        }
    }

    fn signal(&mut self, index: usize, send: fn(&Process) -> Result<(), ProcessError>, exitcode: i32) {
        let result = send(&self.subjects[index].process);
        self.check_result(&result, self.refusal(index, Some(ProcessError::NotStarted), None));
        if let Some(run) = self.run_mut(index)
            && !run.ended
        {
            run.possible_exitcodes.push(exitcode);
        }
    }

    fn close(&mut self, index: usize) {
        let result = self.subjects[index].process.close();
        let expected = match &self.subjects[index].phase {
            Phase::Started(run) if run.surely_running() => Some(ProcessError::CloseRunning),
            // A signalled or self-ending process may or may not have ended yet.
            Phase::Started(run) if !run.ended && result.is_err() => Some(ProcessError::CloseRunning),
            Phase::Initial | Phase::Started(_) | Phase::Closed => None,
        };
        self.check_result(&result, expected);
        if result.is_ok() {
            self.subjects[index].phase = Phase::Closed;
        }
    }

    fn pid(&mut self, index: usize) {
        let result = self.subjects[index].process.pid();
        self.check_result(&result, self.refusal(index, None, None));
        let Ok(pid) = result else { return };
        let Phase::Started(run) = &self.subjects[index].phase else {
            return self.check(pid.is_none(), || format!("pid {pid:?} before start"));
        };
        let Some(pid) = pid else { return self.check(false, || "no pid after start".into()) };
        match run.pid {
            Some(seen) => self.check(pid == seen, || format!("pid changed from {seen} to {pid}")),
            None => {
                let fresh = pid > 1 && self.pids_seen.insert(pid);
                self.check(fresh, || format!("pid {pid} is not fresh"));
                self.run_mut(index).expect("started").pid = Some(pid);
            }
        }
    }

    fn sentinel(&mut self, index: usize) {
        let result = self.subjects[index].process.sentinel();
        let expected = self.refusal(index, Some(ProcessError::NotStarted), None);
        // Sentinel is not Debug: check the result's shape.
        self.check_result(&result.as_ref().map(|_| ()).map_err(ProcessError::clone), expected);
        let (Ok(sentinel), Phase::Started(run)) = (result, &self.subjects[index].phase) else { return };
        let ready = self.rt.wait(&[sentinel], Some(Duration::ZERO)) == [0];
        self.check(ready || !run.ended, || "the sentinel of an ended process is not ready".into());
        self.check(!ready || !run.surely_running(), || "the sentinel of an unsignalled spinner is ready".into());
        if ready {
            self.run_mut(index).expect("started").ended = true;
        }
    }

    fn set_daemon(&mut self, index: usize, daemon: bool) {
        let subject = &self.subjects[index];
        let result = subject.process.set_daemon(daemon);
        // The daemon flag still works after close.
        let expected = match subject.phase {
            Phase::Started(_) => Some(ProcessError::AlreadyStarted),
            Phase::Initial | Phase::Closed => None,
        };
        self.check_result(&result, expected);
        if result.is_ok() {
            self.subjects[index].daemon = daemon;
        }
        let subject = &self.subjects[index];
        self.check(subject.process.daemon() == subject.daemon, || format!("daemon() is not {}", subject.daemon));
    }

    fn set_name(&mut self, index: usize, name: &str) {
        let subject = &mut self.subjects[index];
        subject.process.set_name(name);
        subject.name = name.to_owned();
        let subject = &self.subjects[index];
        self.check(subject.process.name() == name, || format!("name() is {:?}, not {name:?}", subject.process.name()));
    }

    fn display(&self, index: usize) {
        let subject = &self.subjects[index];
        let text = subject.process.to_string();
        let head = format!("<Process name={} ", python_repr(&subject.name));
        self.check(text.starts_with(&head), || format!("{text} does not start with {head}"));
        self.check(text.ends_with(" daemon>") == subject.daemon, || format!("{text}: daemon is {}", subject.daemon));
        let status_ok = match &subject.phase {
            Phase::Initial => text.contains(" initial"),
            Phase::Closed => text.contains(" closed"),
            Phase::Started(run) => {
                let stopped = match run.exitcode {
                    Some(code) => format!(" stopped exitcode={}", exitcode_display(code)),
                    None => " stopped exitcode=".to_owned(),
                };
                let pid_ok = run.pid.is_none_or(|pid| text.contains(&format!(" pid={pid} ")));
                let started = text.contains(" started");
                pid_ok
                    && match (run.ended, run.surely_running()) {
                        (true, _) => text.contains(&stopped),
                        (false, true) => started,
                        (false, false) => started || text.contains(&stopped),
                    }
            }
        };
        self.check(status_ok, || format!("{text} does not show the state the model expects"));
    }

    /// Kills and joins whatever was started, then checks that nothing runs.
    fn stop_everything(mut self) {
        self.history.push("kill and join everything".into());
        for index in 0..self.subjects.len() {
            if !matches!(self.subjects[index].phase, Phase::Started(_)) {
                continue;
            }
            self.signal(index, Process::kill, KILLED_EXITCODE);
            let process = &self.subjects[index].process;
            self.check(process.join(Some(PATIENCE)).is_ok(), || "join after kill failed".into());
            self.check(process.is_alive() == Ok(false), || format!("{process} still runs {PATIENCE:?} after kill"));
            self.run_mut(index).expect("started").ended = true;
            self.exitcode(index);
        }
        let live = self.rt.live_process_count();
        self.check(live == 0, || format!("{live} processes still run after the walk"));
    }
}
