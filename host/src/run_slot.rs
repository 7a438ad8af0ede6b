//! Who runs a started wasm process: a runtime worker, or the first thread
//! that joins it.
//!
//! `start` hands a process's run to the tokio runtime. On an idle machine,
//! waking a worker for it and then being woken back when it ends costs tens
//! of microseconds (measured: a spawn + `block_on` round trip is ~70 µs
//! when the other core sleeps, ~4 µs when it is busy), which is more than a
//! small guest's whole life. So the run waits in a [`RunSlot`]: the worker
//! takes it when it gets there, but a caller that blocks in `join` first
//! takes it instead and runs it on its own thread, so a start→exit→join of
//! a short guest never sleeps waiting for another thread to wake (only the
//! worker's wake-up is left, and nobody waits for it). The process runs concurrently with
//! its creator either way, as `start` promises; only who polls it changes.
//!
//! A join with a timeout leaves the run to the runtime (see
//! [`RunSlot::run_here`]).
//!
//! A child started by a guest is not even handed to the runtime at once:
//! it is scheduled when the poll of its parent returns, that is when the
//! parent blocks (a join with a timeout, a wait, a receive, a sleep),
//! yields at an epoch tick (so at most a tick after its start, however
//! long the parent computes), or ends. A parent that joins it before that
//! runs it itself, and the runtime never sees it. This matters because
//! each task handed to a worker that is not needed wakes the other core,
//! and with two cores busy every unmapping and copy-on-write fault of the
//! host has to interrupt the other core to flush its TLB: measured, a
//! guest starting and joining children one after another took ~100 µs per
//! child that way and ~47 µs with one core busy.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::runtime::Handle;

use crate::registry::Pid;

/// A process's whole run, from instantiation to the publication of its end.
pub(crate) type Run = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The run of one process until someone takes it to poll it.
#[derive(Default)]
pub(crate) struct RunSlot {
    run: Mutex<Option<Run>>,
}

impl RunSlot {
    /// Puts `run`, the run of a child of `parent` (none for a main
    /// process), in the slot and schedules it: now, or when `parent` is
    /// the guest being polled on this thread, once that poll returns.
    pub(crate) fn launch(self: &Arc<Self>, handle: &Handle, parent: Option<Pid>, run: Run) {
        *self.run.lock().unwrap() = Some(run);
        let deferred = POLLING.with_borrow_mut(|polls| match polls.last_mut() {
            Some(poll) if Some(poll.guest) == parent => {
                poll.started.push(self.clone());
                true
            }
            _ => false,
        });
        if !deferred {
            self.schedule(handle);
        }
    }

    /// Hands the run to a runtime task, unless a joiner has taken it.
    fn schedule(self: &Arc<Self>, handle: &Handle) {
        if self.run.lock().unwrap().is_none() {
            return;
        }
        let worker = WorkerSide(self.clone());
        handle.spawn(async move {
            if let Some(run) = worker.0.take() {
                run.await;
            }
        });
    }

    fn take(&self) -> Option<Run> {
        self.run.lock().unwrap().take()
    }

    /// Runs the process to its end on this thread, if no worker has taken
    /// it yet. Only a join without a timeout does this: a guest polled here
    /// yields only at its epoch checks, so a join with a timeout could
    /// overrun it by a tick. Blocks like any blocking wait (so it panics on
    /// a runtime thread; the run then goes back to the runtime).
    pub(crate) fn run_here(&self, handle: &Handle) {
        handle.block_on(self.run_in_caller(handle));
    }

    /// [`run_here`](Self::run_here) for an async joiner: the run is polled
    /// as part of the joiner's task, inside the wmp runtime's context
    /// whatever executor that task is on (the guest's timers belong to the
    /// runtime). A joiner dropped before the run ends (a guest killed while
    /// joining) hands the run back to the runtime.
    pub(crate) async fn run_in_caller(&self, handle: &Handle) {
        let Some(run) = self.take() else { return };
        let mut claimed = Claimed { run: Some(run), handle: handle.clone() };
        let run = claimed.run.as_mut().expect("taken only on drop");
        std::future::poll_fn(|cx| {
            let _entered = handle.enter();
            run.as_mut().poll(cx)
        })
        .await;
        claimed.run = None;
    }
}

/// A run taken out of its slot; dropped unfinished (the joiner panicked),
/// it is handed back to the runtime to finish there.
struct Claimed {
    run: Option<Run>,
    handle: Handle,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.handle.spawn(run);
        }
    }
}

/// The runtime task's hold on the slot. A runtime shut down before the
/// task ran drops it unpolled; the run it never took is dropped with it
/// (the store freed, as for a task that was running), not left in the slot.
struct WorkerSide(Arc<RunSlot>);

impl Drop for WorkerSide {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

thread_local! {
    /// The guests being polled on this thread (a joiner polls its child
    /// inside its own poll), innermost last.
    static POLLING: RefCell<Vec<GuestPoll>> = const { RefCell::new(Vec::new()) };
}

/// One poll of a guest's run, and the children it started during it.
struct GuestPoll {
    guest: Pid,
    started: Vec<Arc<RunSlot>>,
}

/// Polls `run`, the run of guest `guest`; the children it starts meanwhile
/// are scheduled when the poll returns (or unwinds), those it has joined
/// meanwhile excepted.
pub(crate) fn poll_guest<F: Future + ?Sized>(
    guest: Pid,
    handle: &Handle,
    run: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    POLLING.with_borrow_mut(|polls| polls.push(GuestPoll { guest, started: Vec::new() }));
    let _end = EndOfPoll(handle);
    run.poll(cx)
}

struct EndOfPoll<'a>(&'a Handle);

impl Drop for EndOfPoll<'_> {
    fn drop(&mut self) {
        let poll = POLLING.with_borrow_mut(Vec::pop).expect("pushed by poll_guest");
        for child in poll.started {
            child.schedule(self.0);
        }
    }
}
