//! The model of one guest's host-memory ledger under IPC calls, which both
//! the bounded random walk in tests/all/containment.rs and the fuzz target
//! fuzz/fuzz_targets/process_api.rs drive; each includes this file with
//! `#[path = "…"] mod ledger_model;`. A [`LedgerSubject`] is a probe guest
//! running its `ipc_calls` target under a small budget: it makes the calls
//! its parent sends (pipes, sends and receives, queues, puts and gets,
//! listeners, unstarted process objects and their names, and dropping each)
//! and answers each. After every answer the model reads the guest's ledger
//! (`ProcessInfo::host_memory`) and checks it to the byte against what the
//! guest holds by the model: each kind's count and bytes, and the total.
//! A call that would pass the budget must stop the guest with
//! `Limit::HostMemory`, and only such a call may. It uses only std and
//! wmp-host, so that tests/all need not depend on `arbitrary`.
//!
//! Being in tests/, it is also built alone as a test binary with no tests.

use std::collections::VecDeque;
use std::time::Duration;

use wmp_host::{
    CaptureBuffer, Capabilities, Connection, ConnectionError, ExitReason, Held, HostMemory, Limit, Limits,
    MESSAGE_COST, OBJECT_COST, Process, Program, Runtime, Stdio,
};

/// The budget a subject runs under: small, so that a walk of a few dozen
/// calls meets it.
pub const BUDGET: usize = 256 << 10;
/// Sizes of messages, names and arguments are drawn below this.
pub const MAX_SIZE: usize = 48 << 10;
/// Only a hang waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// The IPC calls the model knows. An index names one of the live things of
/// its kind, modulo how many there are; a call on a kind with none alive
/// is skipped.
#[derive(Debug, Clone)]
pub enum IpcCall {
    Pipe,
    Send { pipe: usize, bytes: usize },
    Recv { pipe: usize },
    DropPipe { pipe: usize },
    Queue,
    Put { queue: usize, bytes: usize },
    Get { queue: usize },
    DropQueue { queue: usize },
    Listen { bytes: usize },
    DropListener { listener: usize },
    Object { bytes: usize },
    Rename { object: usize, bytes: usize },
    DropObject { object: usize },
}

/// Where the arguments of calls come from: a PRNG or the fuzz input.
pub trait Draw {
    type Error;
    /// A number below `n` (n > 0).
    fn below(&mut self, n: usize) -> Result<usize, Self::Error>;
}

impl IpcCall {
    /// How many kinds of call there are.
    pub const KINDS: usize = 13;

    /// The call of kind `kind` (below [`IpcCall::KINDS`]), its arguments
    /// drawn from `draw`.
    pub fn nth<D: Draw>(kind: usize, draw: &mut D) -> Result<IpcCall, D::Error> {
        let mut index = || draw.below(256);
        Ok(match kind {
            0 => IpcCall::Pipe,
            1 => IpcCall::Send { pipe: index()?, bytes: draw.below(MAX_SIZE)? },
            2 => IpcCall::Recv { pipe: index()? },
            3 => IpcCall::DropPipe { pipe: index()? },
            4 => IpcCall::Queue,
            5 => IpcCall::Put { queue: index()?, bytes: draw.below(MAX_SIZE)? },
            6 => IpcCall::Get { queue: index()? },
            7 => IpcCall::DropQueue { queue: index()? },
            8 => IpcCall::Listen { bytes: draw.below(MAX_SIZE)? },
            9 => IpcCall::DropListener { listener: index()? },
            10 => IpcCall::Object { bytes: draw.below(MAX_SIZE)? },
            11 => IpcCall::Rename { object: index()?, bytes: draw.below(MAX_SIZE)? },
            _ => IpcCall::DropObject { object: index()? },
        })
    }
}

/// What a check that failed says.
pub type Failure = String;

/// An unstarted process object the guest holds, by the model.
#[derive(Debug)]
struct Object {
    /// Its charge: its cost, its name and its arguments.
    bytes: usize,
    name_len: usize,
}

/// What the guest holds, by the model. Each vector is indexed as the
/// guest's own (tests/guests `ipc_calls`); None: dropped.
#[derive(Debug, Default)]
struct Holdings {
    pipes: Vec<Option<PipeModel>>,
    /// Each queue's ungotten messages, by size.
    queues: Vec<Option<VecDeque<usize>>>,
    /// Each listener's address length.
    listeners: Vec<Option<usize>>,
    objects: Vec<Option<Object>>,
}

/// What a guest's SDK receive takes from the host at once (wmp-guest's
/// `READ_AHEAD_BYTES`; the exact ledger checks would fail if they parted).
const SDK_READ_AHEAD: usize = 64 << 10;

/// One pipe by the model: the messages the host holds, by size, and those
/// the guest's SDK read ahead (its own memory, charged to nothing).
#[derive(Debug, Default)]
struct PipeModel {
    sent: VecDeque<usize>,
    read_ahead: VecDeque<usize>,
}

impl PipeModel {
    fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.read_ahead.is_empty()
    }

    /// One receive: from what was read ahead, else from the host, which
    /// hands over the first message and what else fits the read-ahead.
    fn receive(&mut self) {
        if self.read_ahead.pop_front().is_some() {
            return;
        }
        let Some(mut size) = self.sent.pop_front() else { return };
        while let Some(&next) = self.sent.front()
            && size + next <= SDK_READ_AHEAD
        {
            size += next;
            self.read_ahead.extend(self.sent.pop_front());
        }
    }
}

/// Every kind's (count, bytes) as the model has it, over the baseline.
fn expected(holdings: &Holdings) -> Vec<(Held, usize, usize)> {
    let messages = |of: &Vec<Option<VecDeque<usize>>>| {
        let sizes: Vec<usize> = of.iter().flatten().flatten().map(|n| n + MESSAGE_COST).collect();
        (sizes.len(), sizes.iter().sum())
    };
    let live = |count: usize, cost: usize| (count, count * cost);
    let pipes = holdings.pipes.iter().flatten().count();
    let queues = holdings.queues.iter().flatten().count();
    let listeners: Vec<usize> = holdings.listeners.iter().flatten().map(|len| OBJECT_COST + len).collect();
    let objects: Vec<usize> = holdings.objects.iter().flatten().map(|o| o.bytes).collect();
    let sent: Vec<Option<VecDeque<usize>>> = holdings.pipes.iter().map(|p| p.as_ref().map(|p| p.sent.clone())).collect();
    let (pipe_messages, pipe_bytes) = messages(&sent);
    let (queue_messages, queue_bytes) = messages(&holdings.queues);
    let (connections, connection_bytes) = live(2 * pipes, OBJECT_COST);
    let (queue_handles, queue_handle_bytes) = live(queues, OBJECT_COST);
    vec![
        (Held::PipeMessages, pipe_messages, pipe_bytes),
        (Held::QueueMessages, queue_messages, queue_bytes),
        (Held::Connections, connections, connection_bytes),
        (Held::Queues, queue_handles, queue_handle_bytes),
        (Held::Listeners, listeners.len(), listeners.iter().sum()),
        (Held::ProcessObjects, objects.len(), objects.iter().sum()),
    ]
}

/// Picks the `index`th (modulo) of the live entries; None if none lives.
fn pick<T>(of: &[Option<T>], index: usize) -> Option<usize> {
    let live: Vec<usize> = (0..of.len()).filter(|&i| of[i].is_some()).collect();
    (!live.is_empty()).then(|| live[index % live.len()])
}

/// The answer a guest sends to each call; it is charged as a pipe message
/// until the parent receives it.
const ANSWER_COST: usize = 1 + MESSAGE_COST;

/// What one call does by the model: the charges it makes in order, and
/// what the guest answers.
struct Effect {
    text: String,
    /// Each charge the call makes, in bytes; a charge past the budget
    /// stops the guest. An object's first charge is not known to the byte
    /// before it is made (it holds the program's argv[0]): see
    /// [`LedgerSubject::argv0`].
    charges: Vec<usize>,
    answer: u8,
}

/// A guest running `ipc_calls` under [`BUDGET`], and what it holds by the
/// model.
pub struct LedgerSubject<'rt> {
    rt: &'rt Runtime,
    process: Process,
    stderr: CaptureBuffer,
    control: Connection,
    /// Its ledger before any call: its own name and arguments, the control
    /// connection.
    baseline: HostMemory,
    holdings: Holdings,
    /// How many bytes of an object's charge are its argv[0], once an object
    /// has shown it.
    argv0: Option<usize>,
    listens: usize,
    stopped: bool,
}

impl<'rt> LedgerSubject<'rt> {
    /// Starts `program`'s `ipc_calls` target (a probe guest) as a child of
    /// the host, under [`BUDGET`].
    pub fn start(rt: &'rt Runtime, program: &Program) -> Result<LedgerSubject<'rt>, Failure> {
        let (stderr_stdio, stderr) = Stdio::capture();
        let process = rt
            .process(program)
            .capabilities(Capabilities::new().args(["probe"]).stderr(stderr_stdio))
            .target("ipc_calls", &b"\"\""[..])
            .limits(Limits { max_host_memory: Some(BUDGET), ..Limits::new() })
            .build();
        let (mine, theirs) = rt.pipe(true);
        process.pass_connection(theirs).map_err(|e| format!("passing the control connection: {e}"))?;
        process.start().map_err(|e| format!("starting ipc_calls: {e}"))?;
        let mut subject = LedgerSubject {
            rt,
            process,
            stderr,
            control: mine,
            baseline: HostMemory::default(),
            holdings: Holdings::default(),
            argv0: None,
            listens: 0,
            stopped: false,
        };
        match subject.answer()? {
            Some(b'k') => {}
            other => return Err(format!("ipc_calls did not get ready: {other:?}")),
        }
        subject.baseline = subject.ledger()?;
        Ok(subject)
    }

    /// Whether the guest was stopped by its budget; no call is made then.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn answer(&self) -> Result<Option<u8>, Failure> {
        match self.control.recv_bytes() {
            Ok(answer) if answer.len() == 1 => Ok(Some(answer[0])),
            Ok(answer) => Err(format!("ipc_calls answered {answer:?}")),
            Err(ConnectionError::Eof) => Ok(None),
            Err(other) => Err(format!("receiving the answer: {other}")),
        }
    }

    fn ledger(&self) -> Result<HostMemory, Failure> {
        let pid = self.process.pid().ok().flatten().ok_or("a started subject has a pid")?;
        self.rt
            .process_tree()
            .into_iter()
            .find(|info| info.pid == pid)
            .map(|info| info.host_memory)
            .ok_or_else(|| format!("pid {pid} is not in the process tree"))
    }

    /// Makes one call and checks the ledger after it.
    pub fn apply(&mut self, call: &IpcCall) -> Result<(), Failure> {
        if self.stopped {
            return Ok(());
        }
        let Some(effect) = self.effect(call) else { return Ok(()) };
        let before = self.ledger()?;
        self.control.send_bytes(effect.text.as_bytes()).map_err(|e| format!("{call:?}: sending: {e}"))?;
        let answer = self.answer()?;
        // Which charge, if any, passes the budget: the guest must stop
        // there, and only there. An object's first charge is known once
        // argv[0] is; until then the guest's fate tells it.
        let mut held = before.held;
        let mut passes = None;
        for (i, charge) in effect.charges.iter().chain([&ANSWER_COST]).enumerate() {
            if held + charge > BUDGET {
                passes = Some(i);
                break;
            }
            held += charge;
        }
        let Some(answer) = answer else {
            return self.check_stopped(call, &before, &effect, passes);
        };
        if let Some(i) = passes {
            return Err(format!(
                "{call:?}: charge {i} takes {} bytes past the budget of {BUDGET}, yet the guest answered",
                before.held
            ));
        }
        if answer != effect.answer {
            return Err(format!("{call:?}: answered {:?}, the model says {:?}", answer as char, effect.answer as char));
        }
        self.commit(call);
        let after = self.ledger()?;
        self.learn_argv0(call, &before, &after)?;
        self.check(call, &after)
    }

    /// An object's first charge is its cost, its name (none yet), its
    /// target with its JSON arguments, and argv[0]; the first object made
    /// shows argv[0]'s length, and every later one must agree.
    fn learn_argv0(&mut self, call: &IpcCall, before: &HostMemory, after: &HostMemory) -> Result<(), Failure> {
        let IpcCall::Object { bytes } = call else { return Ok(()) };
        let known = object_bytes(*bytes, 0);
        let shown = after.bytes(Held::ProcessObjects)
            .checked_sub(before.bytes(Held::ProcessObjects) + known)
            .ok_or_else(|| format!("{call:?}: the object's charge is below its {known} known bytes"))?;
        match self.argv0 {
            None => self.argv0 = Some(shown),
            Some(argv0) if argv0 == shown => {}
            Some(argv0) => return Err(format!("{call:?}: argv[0] cost {shown} bytes, earlier {argv0}")),
        }
        let object = self.holdings.objects.last_mut().and_then(Option::as_mut).expect("just made");
        object.bytes = known + shown;
        Ok(())
    }

    fn check_stopped(
        &mut self,
        call: &IpcCall,
        before: &HostMemory,
        effect: &Effect,
        passes: Option<usize>,
    ) -> Result<(), Failure> {
        // An object's first charge is a lower bound until argv[0] is known:
        // the guest may stop at it although the model's sum fits.
        let unsure = matches!(call, IpcCall::Object { .. }) && self.argv0.is_none();
        if passes.is_none() && !unsure {
            return Err(format!(
                "{call:?}: the guest stopped, but its {} bytes and the call's charges {:?} fit the budget; its stderr:\n{}",
                before.held,
                effect.charges,
                self.stderr.text()
            ));
        }
        self.process.join(Some(PATIENCE)).map_err(|e| format!("joining: {e}"))?;
        let reason = self.process.exit_reason().map_err(|e| format!("exit_reason: {e}"))?;
        if reason != Some(ExitReason::Limit(Limit::HostMemory)) {
            return Err(format!(
                "{call:?}: the guest ended with {reason:?}, not by its host-memory budget; its stderr:\n{}",
                self.stderr.text()
            ));
        }
        self.stopped = true;
        Ok(())
    }

    /// What `call` does to the guest's holdings once it is done.
    fn commit(&mut self, call: &IpcCall) {
        let address_len = match *call {
            IpcCall::Listen { bytes } => {
                let address = self.address(bytes);
                self.listens += 1;
                Some(address.len())
            }
            _ => None,
        };
        let holdings = &mut self.holdings;
        match *call {
            IpcCall::Pipe => holdings.pipes.push(Some(PipeModel::default())),
            IpcCall::Send { pipe, bytes } => live_mut(&mut holdings.pipes, pipe).sent.push_back(bytes),
            IpcCall::Recv { pipe } => live_mut(&mut holdings.pipes, pipe).receive(),
            IpcCall::DropPipe { pipe } => drop_live(&mut holdings.pipes, pipe),
            IpcCall::Queue => holdings.queues.push(Some(VecDeque::new())),
            IpcCall::Put { queue, bytes } => live_mut(&mut holdings.queues, queue).push_back(bytes),
            IpcCall::Get { queue } => drop(live_mut(&mut holdings.queues, queue).pop_front()),
            IpcCall::DropQueue { queue } => drop_live(&mut holdings.queues, queue),
            IpcCall::Listen { .. } => holdings.listeners.push(address_len),
            IpcCall::DropListener { listener } => drop_live(&mut holdings.listeners, listener),
            IpcCall::Object { bytes } => {
                holdings.objects.push(Some(Object { bytes: object_bytes(bytes, 0), name_len: 0 }));
            }
            IpcCall::Rename { object, bytes } => {
                let object = live_mut(&mut holdings.objects, object);
                object.bytes = object.bytes - object.name_len + bytes;
                object.name_len = bytes;
            }
            IpcCall::DropObject { object } => drop_live(&mut holdings.objects, object),
        }
    }

    /// The address of the next listener, `bytes` long or as short as its
    /// unique prefix.
    fn address(&self, bytes: usize) -> String {
        let pid = self.process.pid().ok().flatten().unwrap_or(0);
        let mut address = format!("ledger-{pid}-{}-", self.listens);
        let pad = bytes.saturating_sub(address.len());
        address.extend(std::iter::repeat_n('a', pad));
        address
    }

    /// The wire text, the charges and the answer of `call`; None if it
    /// names a kind the guest has none of.
    fn effect(&self, call: &IpcCall) -> Option<Effect> {
        let holdings = &self.holdings;
        let effect = |text: String, charges: Vec<usize>, answer: u8| Some(Effect { text, charges, answer });
        let empty = |of: &[Option<VecDeque<usize>>], i: usize| of[i].as_ref().is_none_or(VecDeque::is_empty);
        match *call {
            IpcCall::Pipe => effect("pipe".into(), vec![OBJECT_COST, OBJECT_COST], b'k'),
            IpcCall::Send { pipe, bytes } => {
                let p = pick(&holdings.pipes, pipe)?;
                effect(format!("send {p} {bytes}"), vec![bytes + MESSAGE_COST], b'k')
            }
            IpcCall::Recv { pipe } => {
                let p = pick(&holdings.pipes, pipe)?;
                let answer = if holdings.pipes[p].as_ref().is_none_or(PipeModel::is_empty) { b'e' } else { b'k' };
                effect(format!("recv {p}"), vec![], answer)
            }
            IpcCall::DropPipe { pipe } => effect(format!("drop-pipe {}", pick(&holdings.pipes, pipe)?), vec![], b'k'),
            IpcCall::Queue => effect("queue".into(), vec![OBJECT_COST], b'k'),
            IpcCall::Put { queue, bytes } => {
                let q = pick(&holdings.queues, queue)?;
                effect(format!("put {q} {bytes}"), vec![bytes + MESSAGE_COST], b'k')
            }
            IpcCall::Get { queue } => {
                let q = pick(&holdings.queues, queue)?;
                let answer = if empty(&holdings.queues, q) { b'e' } else { b'k' };
                effect(format!("get {q}"), vec![], answer)
            }
            IpcCall::DropQueue { queue } => {
                effect(format!("drop-queue {}", pick(&holdings.queues, queue)?), vec![], b'k')
            }
            IpcCall::Listen { bytes } => {
                let address = self.address(bytes);
                let cost = OBJECT_COST + address.len();
                effect(format!("listen {address}"), vec![cost], b'k')
            }
            IpcCall::DropListener { listener } => {
                effect(format!("drop-listener {}", pick(&holdings.listeners, listener)?), vec![], b'k')
            }
            IpcCall::Object { bytes } => {
                let charge = object_bytes(bytes, self.argv0.unwrap_or(0));
                effect(format!("object {bytes}"), vec![charge], b'k')
            }
            IpcCall::Rename { object, bytes } => {
                let o = pick(&holdings.objects, object)?;
                let now = holdings.objects[o].as_ref().expect("picked a live one");
                let grows = bytes.saturating_sub(now.name_len);
                effect(format!("rename {o} {bytes}"), vec![grows], b'k')
            }
            IpcCall::DropObject { object } => {
                effect(format!("drop-object {}", pick(&holdings.objects, object)?), vec![], b'k')
            }
        }
    }

    /// The ledger agrees with the model, kind by kind and in total.
    fn check(&self, call: &IpcCall, after: &HostMemory) -> Result<(), Failure> {
        let mut total = self.baseline.held;
        for (what, count, bytes) in expected(&self.holdings) {
            total += bytes;
            let (count, bytes) = (self.baseline.count(what) + count, self.baseline.bytes(what) + bytes);
            let shown = (after.count(what), after.bytes(what));
            if shown != (count, bytes) {
                return Err(format!("after {call:?}: {what}: the ledger shows {shown:?}, the model ({count}, {bytes})"));
            }
        }
        if after.held != total {
            return Err(format!("after {call:?}: the ledger holds {} bytes, the model {total}", after.held));
        }
        if after.budget != Some(BUDGET) {
            return Err(format!("the budget shows as {:?}", after.budget));
        }
        Ok(())
    }

    /// Ends the guest (closing the control connection ends its loop) and
    /// joins it.
    pub fn finish(self) -> Result<(), Failure> {
        self.control.close();
        self.process.join(Some(PATIENCE)).map_err(|e| format!("joining: {e}"))?;
        match self.process.exitcode() {
            Ok(Some(0)) if !self.stopped => Ok(()),
            Ok(Some(-9)) if self.stopped => Ok(()),
            other => Err(format!("ipc_calls ended with {other:?} (stopped by its budget: {})", self.stopped)),
        }
    }
}

/// An unstarted object's first charge: its cost, its name, the target
/// "noop" and its arguments (`bytes` letters as a JSON string), and argv[0].
fn object_bytes(bytes: usize, argv0: usize) -> usize {
    OBJECT_COST + "noop".len() + bytes + 2 + argv0
}

fn live_mut<T>(of: &mut [Option<T>], index: usize) -> &mut T {
    let i = pick(of, index).expect("the call was made on a live one");
    of[i].as_mut().expect("picked a live one")
}

fn drop_live<T>(of: &mut [Option<T>], index: usize) {
    let i = pick(of, index).expect("the call was made on a live one");
    of[i] = None;
}
