//! Fuzzes the process state machine through the host API: the input is a
//! sequence of calls on three process objects running tiny core modules
//! (one spins forever, one returns, one exits with 3), mixed with IPC calls
//! made by one guest (the probe's `ipc_calls`) under a small host-memory
//! budget. Every call must return Ok or the error documented for the state
//! it meets, the guest's ledger must agree with the model to the byte after
//! each IPC call and its budget must stop it exactly when a call passes it,
//! nothing may panic or hang, and no process may run once the calls are
//! over. The models are tests/state_model.rs and tests/ledger_model.rs,
//! which the test suite's bounded walks (tests/all/state_machine.rs,
//! tests/all/containment.rs) share; this file owns only the decoding of
//! calls from the input and the guests.

#![no_main]

#[path = "../../tests/ledger_model.rs"]
mod ledger_model;
#[path = "../../tests/state_model.rs"]
mod state_model;

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wmp_host::{Program, Runtime};

use ledger_model::{Draw, IpcCall, LedgerSubject};
use state_model::{Call, Choices, Model, Subject};

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

/// One step of an input: a call of the model, replacing the object with
/// a fresh one running `Guest`, or an IPC call by the ledger's guest.
#[derive(Debug)]
enum Step {
    Call(Call),
    Renew(Guest),
    Ipc(IpcCall),
}

/// The input supplies the arguments of calls.
impl Choices for Unstructured<'_> {
    type Error = arbitrary::Error;

    fn flag(&mut self) -> arbitrary::Result<bool> {
        self.arbitrary()
    }

    fn name(&mut self) -> arbitrary::Result<String> {
        self.arbitrary()
    }
}

impl Draw for Unstructured<'_> {
    type Error = arbitrary::Error;

    fn below(&mut self, n: usize) -> arbitrary::Result<usize> {
        self.int_in_range(0..=n - 1)
    }
}

impl<'a> Arbitrary<'a> for Step {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // The model's calls, renewing, then the IPC calls.
        let kind = u.choose_index(Call::KINDS + 1 + IpcCall::KINDS)?;
        Ok(match kind.checked_sub(Call::KINDS) {
            None => Step::Call(Call::nth(kind, u)?),
            Some(0) => Step::Renew(u.arbitrary()?),
            Some(ipc) => Step::Ipc(IpcCall::nth(ipc - 1, u)?),
        })
    }
}

/// What an input asks for: the objects' first guests, then steps, each
/// naming its object by index (modulo the number of objects).
struct Script {
    guests: [Guest; OBJECTS],
    steps: Vec<(u8, Step)>,
}

impl Script {
    fn decode(data: &[u8]) -> arbitrary::Result<Script> {
        let mut u = Unstructured::new(data);
        let guests = u.arbitrary()?;
        let mut steps = Vec::new();
        while !u.is_empty() && steps.len() < MAX_CALLS {
            steps.push(u.arbitrary()?);
        }
        Ok(Script { guests, steps })
    }
}

struct Fixture {
    rt: Runtime,
    spin: Program,
    return_: Program,
    exit_3: Program,
    /// The test suite's probe guest, for its `ipc_calls` target.
    probe: Program,
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
            let probe = rt.load(wmp_test_guests::PROBE).expect("the probe guest");
            Fixture { rt, spin, return_, exit_3, probe }
        })
    }

    fn object(&self, guest: Guest) -> Subject {
        let program = match guest {
            Guest::Spin => &self.spin,
            Guest::Return => &self.return_,
            Guest::Exit3 => &self.exit_3,
        };
        Subject::new(self.rt.process(program).build(), guest.own_exitcode())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(script) = Script::decode(data) else { return };
    let fixture = Fixture::get();
    let mut model = Model::new(&fixture.rt, BRIEF_JOIN, PATIENCE);
    let mut subjects = script.guests.map(|guest| fixture.object(guest));
    // Started at the first IPC call, and again after its budget stops it.
    let mut ledger: Option<LedgerSubject> = None;
    for (index, step) in &script.steps {
        let subject = &mut subjects[usize::from(*index) % OBJECTS];
        let outcome = match step {
            Step::Renew(guest) => model.stop(subject).map(|()| *subject = fixture.object(*guest)),
            Step::Call(call) => model.apply(subject, call),
            Step::Ipc(call) => {
                if ledger.as_ref().is_none_or(LedgerSubject::stopped) {
                    let fresh = LedgerSubject::start(&fixture.rt, &fixture.probe);
                    ledger = Some(fresh.unwrap_or_else(|what| panic!("{what}")));
                }
                ledger.as_mut().expect("started above").apply(call)
            }
        };
        if let Err(what) = outcome {
            panic!("{step:?}: {what}");
        }
    }
    for subject in &mut subjects {
        if let Err(what) = model.stop(subject) {
            panic!("stopping after the calls: {what}");
        }
    }
    if let Some(Err(what)) = ledger.map(LedgerSubject::finish) {
        panic!("ending the IPC guest: {what}");
    }
    assert_eq!(fixture.rt.live_process_count(), 0, "processes still run after the calls");
});
