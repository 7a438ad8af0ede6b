//! The one model of a process object's state machine (initial → started →
//! ended → closed) that both the bounded random walk in
//! tests/all/state_machine.rs and the fuzz target
//! fuzz/fuzz_targets/process_api.rs drive; each includes this file with
//! `#[path = "…"] mod state_model;`. It owns the call set ([`Call`], and how
//! a source of choices picks one), what the model knows of each object
//! ([`Subject`]), and [`Model::apply`], which makes one call on a
//! `wmp_host::Process` and checks that it returns Ok or the
//! `wmp_host::ProcessError` documented for the state it meets, and that what
//! it shows agrees with the model. The drivers own only what differs: where
//! the calls and the guests come from (a seeded PRNG over probe targets; fuzz
//! input over tiny WAT modules) and how a failure is reported. It uses only
//! std and wmp-host, so that tests/all need not depend on `arbitrary`.
//!
//! Being in tests/, it is also built alone as a test binary with no tests.

use std::collections::HashSet;
use std::time::Duration;

use wmp_host::naming::{exitcode_display, python_repr};
use wmp_host::{KILLED_EXITCODE, Pid, Process, ProcessError, Runtime, TERMINATED_EXITCODE};

/// The calls the model knows; each applies to one object.
#[derive(Debug, Clone)]
pub enum Call {
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
}

/// Where the arguments of calls come from: a PRNG or the fuzz input.
pub trait Choices {
    type Error;
    fn flag(&mut self) -> Result<bool, Self::Error>;
    fn name(&mut self) -> Result<String, Self::Error>;
}

impl Call {
    /// How many kinds of call there are.
    pub const KINDS: usize = 14;

    /// The call of kind `kind` (below [`Call::KINDS`]), its argument drawn
    /// from `choices`.
    pub fn nth<C: Choices>(kind: usize, choices: &mut C) -> Result<Call, C::Error> {
        Ok(match kind {
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
            11 => Call::SetDaemon(choices.flag()?),
            12 => Call::SetName(choices.name()?),
            _ => Call::Display,
        })
    }
}

/// What a check that failed says.
pub type Failure = String;

/// Fails with `what` unless `holds`.
fn ensure(holds: bool, what: impl FnOnce() -> String) -> Result<(), Failure> {
    if holds { Ok(()) } else { Err(what()) }
}

/// Checks that `result` is Ok when `refusal` is None, else that error.
fn ensure_result<T: std::fmt::Debug>(
    result: &Result<T, ProcessError>,
    refusal: Option<ProcessError>,
) -> Result<(), Failure> {
    let holds = match (result, &refusal) {
        (Ok(_), None) => true,
        (Err(error), Some(expected)) => error == expected,
        _ => false,
    };
    ensure(holds, || {
        let expected = refusal.as_ref().map_or("Ok".to_owned(), |e| format!("Err({e:?})"));
        format!("expected {expected}, got {result:?}")
    })
}

/// What the model knows of a started object.
pub struct Run {
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
    /// True while nothing can have stopped it: a spinner never signalled.
    fn surely_running(&self) -> bool {
        self.possible_exitcodes.is_empty()
    }

    fn saw_exitcode(&mut self, code: Option<i32>) -> Result<(), Failure> {
        let Some(code) = code else { return ensure(!self.ended, || "no exitcode after it was seen to end".into()) };
        ensure(self.possible_exitcodes.contains(&code), || {
            format!("exitcode {code}, expected one of {:?}", self.possible_exitcodes)
        })?;
        ensure(self.exitcode.is_none_or(|seen| seen == code), || {
            format!("exitcode changed from {:?} to {code}", self.exitcode)
        })?;
        self.ended = true;
        self.exitcode = Some(code);
        Ok(())
    }
}

/// The model's state of one process object.
pub enum Phase {
    Initial,
    Started(Run),
    Closed,
}

/// A process object and what the model knows of it.
pub struct Subject {
    process: Process,
    /// The exit code it ends with by itself; None: it runs until stopped.
    own_exitcode: Option<i32>,
    phase: Phase,
    name: String,
    daemon: bool,
}

impl Subject {
    /// A fresh (unstarted) object whose guest ends with `own_exitcode` by
    /// itself, or runs until stopped if that is None.
    pub fn new(process: Process, own_exitcode: Option<i32>) -> Self {
        let name = process.name();
        Subject { process, own_exitcode, phase: Phase::Initial, name, daemon: false }
    }

    /// The model's state of the object, for a driver that steers by it.
    #[allow(dead_code, reason = "the test's walk steers by it; the fuzz target does not")]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

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
}

/// Applies calls to objects and checks each result against the model.
pub struct Model<'rt> {
    rt: &'rt Runtime,
    /// How long a brief join waits.
    brief_join: Duration,
    /// How long stopping an object may take: only a hang or a broken kill
    /// waits this long.
    patience: Duration,
    /// Every pid shown so far: a started object's pid must be fresh.
    pids_seen: HashSet<Pid>,
}

impl<'rt> Model<'rt> {
    /// A model for objects of `rt`.
    pub fn new(rt: &'rt Runtime, brief_join: Duration, patience: Duration) -> Self {
        Model { rt, brief_join, patience, pids_seen: HashSet::new() }
    }

    /// Makes `call` on `subject`'s process and checks what it returns and
    /// shows against the model, which it then updates.
    pub fn apply(&mut self, subject: &mut Subject, call: &Call) -> Result<(), Failure> {
        let p = &subject.process;
        match call {
            Call::Start => {
                let result = p.start();
                ensure_result(&result, subject.refusal(None, Some(ProcessError::StartedTwice)))?;
                if result.is_ok() {
                    let possible_exitcodes = subject.own_exitcode.into_iter().collect();
                    subject.phase = Phase::Started(Run { pid: None, ended: false, possible_exitcodes, exitcode: None });
                }
            }
            Call::JoinBriefly => self.join(subject, Some(self.brief_join))?,
            Call::JoinNoWait => self.join(subject, Some(Duration::ZERO))?,
            Call::JoinForever => match subject.run() {
                Some(run) if run.surely_running() => self.join(subject, Some(self.brief_join))?,
                _ => self.join(subject, None)?,
            },
            Call::IsAlive => {
                let result = p.is_alive();
                ensure_result(&result, subject.refusal(None, None))?;
                match (result, &mut subject.phase) {
                    (Ok(alive), Phase::Initial) => ensure(!alive, || "alive before start".into())?,
                    (Ok(alive), Phase::Started(run)) => {
                        ensure(!(alive && run.ended), || "alive after it was seen to end".into())?;
                        ensure(alive || !run.surely_running(), || "an unsignalled spinner is not alive".into())?;
                        run.ended |= !alive;
                    }
                    _ => {}
                }
            }
            Call::Exitcode => {
                let result = p.exitcode();
                ensure_result(&result, subject.refusal(None, None))?;
                match (result, &mut subject.phase) {
                    (Ok(code), Phase::Initial) => ensure(code.is_none(), || format!("exitcode {code:?} before start"))?,
                    (Ok(code), Phase::Started(run)) => run.saw_exitcode(code)?,
                    _ => {}
                }
            }
            Call::Terminate => signal(subject, Process::terminate, TERMINATED_EXITCODE)?,
            Call::Kill => signal(subject, Process::kill, KILLED_EXITCODE)?,
            Call::Close => {
                let result = p.close();
                let refusal = match &subject.phase {
                    Phase::Started(run) if run.surely_running() => Some(ProcessError::CloseRunning),
                    // A signalled or self-ending process may or may not have ended yet.
                    Phase::Started(run) if !run.ended && result.is_err() => Some(ProcessError::CloseRunning),
                    Phase::Initial | Phase::Started(_) | Phase::Closed => None,
                };
                ensure_result(&result, refusal)?;
                if result.is_ok() {
                    subject.phase = Phase::Closed;
                }
            }
            Call::Pid => {
                let result = p.pid();
                ensure_result(&result, subject.refusal(None, None))?;
                match (result, &mut subject.phase) {
                    (Ok(pid), Phase::Initial) => ensure(pid.is_none(), || format!("pid {pid:?} before start"))?,
                    (Ok(pid), Phase::Started(run)) => {
                        let Some(pid) = pid else { return Err("no pid after start".into()) };
                        match run.pid {
                            Some(seen) => ensure(pid == seen, || format!("pid changed from {seen} to {pid}"))?,
                            None => {
                                ensure(pid > 1 && self.pids_seen.insert(pid), || format!("pid {pid} is not fresh"))?;
                                run.pid = Some(pid);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Call::Sentinel => {
                let result = p.sentinel();
                let refusal = subject.refusal(Some(ProcessError::NotStarted), None);
                // Sentinel is not Debug: check the result's shape.
                ensure_result(&result.as_ref().map(|_| ()).map_err(ProcessError::clone), refusal)?;
                if let (Ok(sentinel), Phase::Started(run)) = (result, &mut subject.phase) {
                    let ready = self.rt.wait(&[sentinel], Some(Duration::ZERO)) == [0];
                    ensure(ready || !run.ended, || "the sentinel of an ended process is not ready".into())?;
                    ensure(!ready || !run.surely_running(), || {
                        "the sentinel of an unsignalled spinner is ready".into()
                    })?;
                    run.ended |= ready;
                }
            }
            Call::SetDaemon(daemon) => {
                let result = p.set_daemon(*daemon);
                // The daemon flag still works after close.
                let refusal = match subject.phase {
                    Phase::Started(_) => Some(ProcessError::AlreadyStarted),
                    Phase::Initial | Phase::Closed => None,
                };
                ensure_result(&result, refusal)?;
                if result.is_ok() {
                    subject.daemon = *daemon;
                }
                ensure(subject.process.daemon() == subject.daemon, || format!("daemon() is not {}", subject.daemon))?;
            }
            Call::SetName(name) => {
                p.set_name(name.as_str());
                subject.name.clone_from(name);
                let shown = subject.process.name();
                ensure(&shown == name, || format!("name() is {shown:?}, not {name:?}"))?;
            }
            Call::Display => check_display(subject)?,
        }
        Ok(())
    }

    fn join(&self, subject: &mut Subject, timeout: Option<Duration>) -> Result<(), Failure> {
        let result = subject.process.join(timeout);
        ensure_result(&result, subject.refusal(Some(ProcessError::JoinNotStarted), None))?;
        if let (Ok(()), None, Some(run)) = (result, timeout, subject.run()) {
            run.ended = true;
        }
        Ok(())
    }

    /// Kills the object if it was started, waits for it to end, and checks
    /// that it ended with an exit code the model allows.
    pub fn stop(&mut self, subject: &mut Subject) -> Result<(), Failure> {
        if subject.run().is_none() {
            return Ok(());
        }
        signal(subject, Process::kill, KILLED_EXITCODE)?;
        let (process, patience) = (&subject.process, self.patience);
        ensure(process.join(Some(patience)) == Ok(()), || "join after kill failed".into())?;
        ensure(process.is_alive() == Ok(false), || format!("{process} still runs {patience:?} after kill"))?;
        subject.run().expect("started").ended = true;
        self.apply(subject, &Call::Exitcode)
    }
}

fn signal(subject: &mut Subject, send: fn(&Process) -> Result<(), ProcessError>, exitcode: i32) -> Result<(), Failure> {
    let result = send(&subject.process);
    ensure_result(&result, subject.refusal(Some(ProcessError::NotStarted), None))?;
    if let Some(run) = subject.run()
        && !run.ended
    {
        run.possible_exitcodes.push(exitcode);
    }
    Ok(())
}

/// Checks that the object's Display shows its name, daemon flag and the
/// state, pid and exit code the model expects.
fn check_display(subject: &Subject) -> Result<(), Failure> {
    let text = subject.process.to_string();
    let head = format!("<Process name={}", python_repr(&subject.name));
    // The status is read after the name (from the space that follows it),
    // as the name may hold any text.
    let Some(after_name) = text.strip_prefix(&head).filter(|rest| rest.starts_with(' ')) else {
        return Err(format!("{text} does not start with {head} and a space"));
    };
    ensure(after_name.ends_with(" daemon>") == subject.daemon, || format!("{text}: daemon is {}", subject.daemon))?;
    let status_ok = match &subject.phase {
        Phase::Initial => after_name.contains(" initial"),
        Phase::Closed => after_name.contains(" closed"),
        Phase::Started(run) => {
            let stopped = match run.exitcode {
                Some(code) => format!(" stopped exitcode={}", exitcode_display(code)),
                None => " stopped exitcode=".to_owned(),
            };
            let pid_ok = run.pid.is_none_or(|pid| after_name.contains(&format!(" pid={pid} ")));
            let started = after_name.contains(" started");
            pid_ok
                && match (run.ended, run.surely_running()) {
                    (true, _) => after_name.contains(&stopped),
                    (false, true) => started,
                    (false, false) => started || after_name.contains(&stopped),
                }
        }
    };
    ensure(status_ok, || format!("{text} does not show the state the model expects"))
}
