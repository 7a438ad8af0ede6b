//! A bounded random walk over the host's Process API: seeded sequences of
//! calls on a few process objects at once, each checked against the model
//! of the state machine (initial → started → ended → closed) in
//! tests/state_model.rs, which the fuzz target process_api shares. Every
//! call must return Ok or the error documented for the state it meets, the
//! host must never panic or hang, and nothing may run once the walk is over.
//! This file owns only the walk: a seeded PRNG choosing calls on objects
//! running probe targets.

#[path = "../state_model.rs"]
mod state_model;

use std::convert::Infallible;
use std::time::Duration;

use wmp_host::{Program, Runtime};

use self::state_model::{Call, Choices, Model, Phase, Subject};
use crate::{PATIENCE, child, probe, runtime};

/// Each seed replays the same walk; a failure names its seed and the calls
/// that led to it.
pub(crate) const SEEDS: [u64; 8] = [
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
        let rt = runtime();
        let program = probe(&rt);
        Walk::new(seed, &rt, &program).run();
    }
}

/// xorshift64: a tiny deterministic generator (the containment walk
/// draws from it too).
pub(crate) struct Xorshift64(pub(crate) u64);

impl Xorshift64 {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

impl Choices for Xorshift64 {
    type Error = Infallible;

    fn flag(&mut self) -> Result<bool, Infallible> {
        Ok(self.next() & 1 == 1)
    }

    fn name(&mut self) -> Result<String, Infallible> {
        Ok(NAMES[self.below(NAMES.len())].to_owned())
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

struct Walk<'rt> {
    seed: u64,
    rng: Xorshift64,
    rt: &'rt Runtime,
    program: &'rt Program,
    model: Model<'rt>,
    /// The objects, each with the probe target it runs.
    subjects: Vec<(&'static str, Subject)>,
    history: Vec<String>,
}

impl<'rt> Walk<'rt> {
    fn new(seed: u64, rt: &'rt Runtime, program: &'rt Program) -> Self {
        let mut walk = Walk {
            seed,
            rng: Xorshift64(seed),
            rt,
            program,
            model: Model::new(rt, BRIEF_JOIN, PATIENCE),
            subjects: Vec::new(),
            history: Vec::new(),
        };
        walk.subjects = (0..OBJECTS_AT_ONCE).map(|_| walk.fresh_subject()).collect();
        walk
    }

    fn fresh_subject(&mut self) -> (&'static str, Subject) {
        let workload = &WORKLOADS[self.rng.below(WORKLOADS.len())];
        let (process, _) = child(self.rt, self.program, workload.target, workload.args);
        (workload.target, Subject::new(process, workload.own_exitcode))
    }

    fn run(mut self) {
        for _ in 0..STEPS_PER_SEED {
            let index = self.rng.below(self.subjects.len());
            let call = self.pick_call(index);
            let shown = call.as_ref().map_or("Renew".to_owned(), |call| format!("{call:?}"));
            self.history.push(format!("#{index} {} {shown}", self.subjects[index].0));
            match call {
                // Replaces a closed object with a fresh one.
                None => self.subjects[index] = self.fresh_subject(),
                Some(call) => {
                    let outcome = self.model.apply(&mut self.subjects[index].1, &call);
                    self.check(outcome);
                }
            }
        }
        self.stop_everything();
    }

    /// The next call on object `index`; None: renew it.
    fn pick_call(&mut self, index: usize) -> Option<Call> {
        // Objects are started and renewed more often than chance would, so
        // that the walk spends its steps on running and ended processes.
        match self.subjects[index].1.phase() {
            Phase::Initial if self.rng.below(3) == 0 => return Some(Call::Start),
            Phase::Closed if self.rng.below(3) == 0 => return None,
            Phase::Initial | Phase::Started(_) | Phase::Closed => {}
        }
        let kind = self.rng.below(Call::KINDS);
        let Ok(call) = Call::nth(kind, &mut self.rng);
        Some(call)
    }

    /// Panics with the seed and the calls so far on a failed check.
    #[track_caller]
    fn check(&self, outcome: Result<(), state_model::Failure>) {
        if let Err(what) = outcome {
            panic!("seed {:#x}: {what}\ncalls so far:\n  {}", self.seed, self.history.join("\n  "));
        }
    }

    /// Kills and joins whatever was started, then checks that nothing runs.
    fn stop_everything(mut self) {
        self.history.push("kill and join everything".into());
        for index in 0..self.subjects.len() {
            let outcome = self.model.stop(&mut self.subjects[index].1);
            self.check(outcome);
        }
        let live = self.rt.live_process_count();
        self.check(if live == 0 { Ok(()) } else { Err(format!("{live} processes still run after the walk")) });
    }
}
