//! The pool's bookkeeping, with no I/O of its own: which worker runs which
//! task, the tasks not handed out yet, and the results not taken yet. Work
//! advances only inside its calls (there are no pool threads): each
//! [`step`](Scheduler::step) hands workers tasks, waits on every worker's
//! pipe beside its sentinel, and takes in replies and ends. A worker holds
//! up to [`IN_FLIGHT`] tasks, so that it has the next at hand while the
//! pool takes in its last reply; it runs them in order, so the first it
//! holds is the one it runs. A worker that ends fails that task, gives the
//! ones it had not started back to the queue, and is replaced.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::wire::{self, Arguments, Reply, Task, WorkerSpec};
use super::{PoolError, Worker, Workers};

/// CPython's pool states: RUN until `close` or `terminate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Run,
    Close,
    Terminate,
}

/// How many tasks a worker holds at once: the one it runs and the next.
const IN_FLIGHT: usize = 2;

/// A worker and the tasks sent to it that it has not replied to, the one
/// it runs first (kept encoded, to go back to the queue if it dies).
struct Slot<H> {
    worker: H,
    sent: VecDeque<(u64, Vec<u8>)>,
    completed: u64,
}

impl<H> Slot<H> {
    fn new(worker: H) -> Self {
        Slot { worker, sent: VecDeque::new(), completed: 0 }
    }

    fn idle(&self) -> bool {
        self.sent.is_empty()
    }
}

/// A task's results as its reply carries them, decoded into the
/// caller's types when taken.
pub(crate) struct Chunk {
    message: Vec<u8>,
    start: usize,
}

impl Chunk {
    pub(crate) fn results(&self) -> &[u8] {
        &self.message[self.start..]
    }
}

pub(crate) struct Scheduler<W: Workers> {
    workers: W,
    /// The encoded [`WorkerSpec`] each worker starts with.
    spec: Vec<u8>,
    maxtasks: Option<u64>,
    processes: usize,
    state: State,
    slots: Vec<Slot<W::Worker>>,
    /// Encoded tasks not handed out yet, by id.
    pending: VecDeque<(u64, Vec<u8>)>,
    /// Results not taken yet.
    done: HashMap<u64, Result<Chunk, PoolError>>,
    /// Tasks whose results nobody will take (their handle was dropped).
    abandoned: HashSet<u64>,
    next_id: u64,
    /// Why the last replacement worker could not start.
    start_error: Option<PoolError>,
}

impl<W: Workers> Scheduler<W> {
    pub(crate) fn new(workers: W, processes: usize, spec: &WorkerSpec) -> Result<Self, PoolError> {
        let mut scheduler = Scheduler {
            workers,
            spec: serde_json::to_vec(spec).map_err(|e| PoolError::Encode(e.to_string()))?,
            maxtasks: spec.maxtasks,
            processes,
            state: State::Run,
            slots: Vec::new(),
            pending: VecDeque::new(),
            done: HashMap::new(),
            abandoned: HashSet::new(),
            next_id: 1,
            start_error: None,
        };
        for _ in 0..processes {
            let worker = scheduler.workers.start(&scheduler.spec)?;
            scheduler.slots.push(Slot::new(worker));
        }
        Ok(scheduler)
    }

    pub(crate) fn check_running(&self) -> Result<(), PoolError> {
        if self.state == State::Run { Ok(()) } else { Err(PoolError::NotRunning) }
    }

    /// How many workers the pool keeps.
    pub(crate) fn processes(&self) -> usize {
        self.processes
    }

    /// Queues a task calling `function` once per item of `args` (as
    /// `arguments` says); its id.
    pub(crate) fn submit<A: Serialize>(&mut self, function: &str, arguments: Arguments, args: Vec<A>) -> Result<u64, PoolError> {
        self.check_running()?;
        let id = self.next_id;
        let task = Task { id, function: function.to_owned(), arguments };
        let message = wire::encode(&task, &args).map_err(PoolError::Encode)?;
        self.next_id += 1;
        self.pending.push_back((id, message));
        Ok(id)
    }

    /// Takes the result of task `id` if it has one.
    pub(crate) fn take(&mut self, id: u64) -> Option<Result<Chunk, PoolError>> {
        self.done.remove(&id)
    }

    pub(crate) fn is_done(&self, id: u64) -> bool {
        self.done.contains_key(&id)
    }

    /// Forgets tasks whose results nobody will take: pending ones are
    /// dropped, running ones' results discarded on arrival.
    pub(crate) fn abandon(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            if self.done.remove(&id).is_none() {
                let queued = self.pending.len();
                self.pending.retain(|(pending, _)| *pending != id);
                if self.pending.len() == queued {
                    self.abandoned.insert(id);
                }
            }
        }
    }

    fn finish(&mut self, id: u64, result: Result<Chunk, PoolError>) {
        if !self.abandoned.remove(&id) {
            self.done.insert(id, result);
        }
    }

    /// Whether the worker has run its `maxtasksperchild` and is ending.
    fn retiring(&self, slot: &Slot<W::Worker>) -> bool {
        self.maxtasks.is_some_and(|max| slot.completed >= max)
    }

    /// Whether the worker takes another task now: it holds fewer than
    /// [`IN_FLIGHT`], and not as many as it has left to run.
    fn takes_another(&self, slot: &Slot<W::Worker>) -> bool {
        let held = slot.sent.len() as u64;
        slot.sent.len() < IN_FLIGHT && self.maxtasks.is_none_or(|max| slot.completed + held < max)
    }

    /// Hands pending tasks to the workers that take another, the least
    /// busy first.
    pub(crate) fn dispatch(&mut self) {
        for held in 0..IN_FLIGHT {
            let mut i = 0;
            while i < self.slots.len() && !self.pending.is_empty() {
                let takes = self.slots[i].sent.len() == held && self.takes_another(&self.slots[i]);
                // A worker found gone leaves its slot to the next one.
                if !takes || self.send_next(i) {
                    i += 1;
                }
            }
        }
    }

    /// Sends the next pending task to the worker in slot `i`; false if
    /// the worker was gone (the task waits for another).
    fn send_next(&mut self, i: usize) -> bool {
        if self.slots[i].worker.exitcode().is_some() {
            // Ended while idle: it is replaced before it is given a task
            // it would fail without running.
            self.lose(i);
            return false;
        }
        let (id, message) = self.pending.pop_front().expect("a pending task");
        match self.slots[i].worker.send(&message) {
            Ok(()) => {
                self.slots[i].sent.push_back((id, message));
                true
            }
            Err(_) => {
                self.pending.push_front((id, message));
                self.lose(i);
                false
            }
        }
    }

    /// Hands out work, then waits up to `timeout` for a reply or a
    /// worker's end and takes it in.
    pub(crate) fn step(&mut self, timeout: Option<Duration>) {
        self.dispatch();
        if self.slots.iter().all(|slot| slot.idle() && !self.retiring(slot)) {
            return;
        }
        let workers: Vec<&W::Worker> = self.slots.iter().map(|slot| &slot.worker).collect();
        self.workers.wait(&workers, timeout);
        let mut i = 0;
        while i < self.slots.len() {
            while self.slots[i].worker.poll() {
                match self.slots[i].worker.recv() {
                    Ok(message) => self.take_reply(i, message),
                    Err(_) => {
                        // Ending without a reply: its end is near.
                        self.slots[i].worker.join();
                        break;
                    }
                }
            }
            if self.slots[i].worker.exitcode().is_some() {
                self.lose(i);
            } else {
                i += 1;
            }
        }
        self.dispatch();
    }

    /// A reply from the worker in slot `i`.
    fn take_reply(&mut self, i: usize, message: Vec<u8>) {
        let slot = &mut self.slots[i];
        let Some((running, _)) = slot.sent.pop_front() else { return };
        slot.completed += 1;
        let result = match wire::decode::<Reply>(&message) {
            Ok((Reply { id, .. }, _)) if id != running => {
                Err(PoolError::Decode(format!("a reply to task {id} from a worker running task {running}")))
            }
            Ok((Reply { error: Some(why), .. }, _)) => Err(PoolError::Failed(why)),
            Ok((Reply { error: None, .. }, start)) => Ok(Chunk { message, start }),
            Err(err) => Err(PoolError::Decode(err.to_string())),
        };
        self.finish(running, result);
    }

    /// The worker in slot `i` has ended: what it still sent is taken in,
    /// the task it ran (if it had one left) fails, those it had not
    /// started go back to the front of the queue, and another takes its
    /// place.
    fn lose(&mut self, i: usize) {
        while let Ok(message) = self.slots[i].worker.recv() {
            self.take_reply(i, message);
        }
        let mut slot = self.slots.remove(i);
        slot.worker.join();
        slot.worker.hang_up();
        if let Some((task, _)) = slot.sent.pop_front() {
            let exitcode = slot.worker.exitcode();
            self.finish(task, Err(PoolError::WorkerDied { worker: slot.worker.name(), exitcode, task }));
        }
        while let Some(unstarted) = slot.sent.pop_back() {
            self.pending.push_front(unstarted);
        }
        if self.state != State::Terminate {
            match self.workers.start(&self.spec) {
                Ok(worker) => self.slots.push(Slot::new(worker)),
                Err(err) => self.start_error = Some(err),
            }
        }
    }

    /// Moves work along until `done(self)` or the timeout; whether done.
    pub(crate) fn wait_until(&mut self, done: impl Fn(&Self) -> bool, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        while !done(self) {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return false;
            }
            if self.slots.is_empty() && !self.pending.is_empty() {
                // No worker could be started: the waiting tasks cannot run.
                let why = self.start_error.clone().unwrap_or(PoolError::NotRunning);
                for (id, _) in std::mem::take(&mut self.pending) {
                    self.finish(id, Err(why.clone()));
                }
                continue;
            }
            if self.pending.is_empty() && self.slots.iter().all(Slot::idle) {
                return done(self);
            }
            self.step(remaining);
        }
        true
    }

    pub(crate) fn close(&mut self) {
        if self.state == State::Run {
            self.state = State::Close;
        }
    }

    /// Stops the workers at once; the tasks not finished fail.
    pub(crate) fn terminate(&mut self) {
        self.state = State::Terminate;
        for (id, _) in std::mem::take(&mut self.pending) {
            self.finish(id, Err(PoolError::Terminated(id)));
        }
        for slot in &self.slots {
            slot.worker.terminate();
        }
        for slot in std::mem::take(&mut self.slots) {
            slot.worker.join();
            slot.worker.hang_up();
            for (id, _) in slot.sent {
                self.finish(id, Err(PoolError::Terminated(id)));
            }
        }
    }

    /// Waits for the queued work to finish, then for the workers to end
    /// (CPython's `join`, after `close` or `terminate`).
    pub(crate) fn join(&mut self) -> Result<(), PoolError> {
        if self.state == State::Run {
            return Err(PoolError::StillRunning);
        }
        if self.state == State::Close {
            self.wait_until(|s| s.pending.is_empty() && s.slots.iter().all(Slot::idle), None);
        }
        // All hear EOF first, so they end together.
        let slots = std::mem::take(&mut self.slots);
        slots.iter().for_each(|slot| slot.worker.hang_up());
        slots.iter().for_each(|slot| slot.worker.join());
        Ok(())
    }
}

impl<W: Workers> Drop for Scheduler<W> {
    /// A pool dropped with workers left terminates them, as CPython's
    /// `with Pool() as p:` does on leaving the block.
    fn drop(&mut self) {
        if !self.slots.is_empty() {
            self.terminate();
        }
    }
}
