//! Who runs a started wasm process, and from when: a runtime worker, or
//! the first thread that joins it.
//!
//! Handing a run to a tokio worker wakes the other core, and on this kind
//! of machine (a VM with two vCPUs) that is the expensive part of a short
//! process: waking an idle vCPU costs tens of microseconds, and while two
//! cores run the host, every unmapping and copy-on-write fault has to
//! interrupt the other core to flush its TLB. Measured: a guest starting
//! and joining children one after another took ~100 µs per child that way
//! and ~47 µs with one core busy; a host start→join of a minimal module
//! ~27 µs against ~6 µs.
//!
//! So a started process's run waits in a [`RunSlot`], and is handed to
//! the runtime only when its starter lets go:
//! - one a guest starts, when the guest's poll returns: it blocks (a join
//!   with a timeout, a wait, a receive, a sleep), yields at an epoch tick
//!   (at most a tick after the start, however long it computes) or ends;
//! - one the host starts, at the host's next blocking wait of any kind or
//!   next start, or at the next epoch tick if it never waits.
//!
//! Wake-ups of readers by a guest's sends wait for the end of its poll
//! the same way ([`wake_after_poll`]).
//!
//! A `join` without a timeout that comes first takes the run and polls it
//! itself (on the joining thread, or inside the joining guest's task), so
//! start→join of a short process involves no other thread. A join with a
//! timeout leaves the run to the runtime (see [`RunSlot::run_here`]). The
//! process runs concurrently with its starter either way, as `start`
//! promises; only who polls it, and from when, changes.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::runtime::Handle;

use wmp_core::Pid;

use crate::base::metrics::{Meter, PollClock};

/// A process's whole run, from instantiation to the publication of its end.
pub(crate) type Run = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The run of one process until someone takes it to poll it.
#[derive(Default)]
pub(crate) struct RunSlot {
    run: Mutex<Option<Run>>,
}

impl RunSlot {
    /// Puts `run`, the run of a child of `parent` (none for a main
    /// process), in the slot, to be scheduled when `parent`'s poll
    /// returns if `parent` is the guest being polled on this thread, else
    /// at the next blocking wait or epoch tick (see [`schedule_waiting`]).
    pub(crate) fn launch(self: &Arc<Self>, handle: &Handle, parent: Option<Pid>, run: Run) {
        *self.run.lock().unwrap() = Some(run);
        let in_parents_poll = POLLING.with_borrow_mut(|polls| match polls.last_mut() {
            Some(poll) if Some(poll.guest) == parent => {
                poll.started.push(self.clone());
                true
            }
            _ => false,
        });
        if !in_parents_poll {
            schedule_waiting(); // those started before this one run meanwhile
            WAITING.lock().unwrap().push((self.clone(), handle.clone()));
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
        if let Some(claimed) = self.claim(handle) {
            handle.block_on(claimed.run_to_end());
        }
    }

    /// [`run_here`](Self::run_here) for an async joiner: the run is polled
    /// as part of the joiner's task. A joiner dropped before the run ends
    /// (a guest killed while joining) hands the run back to the runtime.
    pub(crate) async fn run_in_caller(&self, handle: &Handle) {
        if let Some(claimed) = self.claim(handle) {
            claimed.run_to_end().await;
        }
    }

    /// Takes the run, if no worker has, and lets the other waiting
    /// processes go to the runtime (the caller is about to block).
    fn claim(&self, handle: &Handle) -> Option<Claimed> {
        let run = self.take()?;
        schedule_waiting();
        Some(Claimed { run: Some(run), handle: handle.clone() })
    }
}

/// A run taken out of its slot; dropped unfinished (the joiner panicked),
/// it is handed back to the runtime to finish there.
struct Claimed {
    run: Option<Run>,
    handle: Handle,
}

impl Claimed {
    /// Polls the run to its end, inside the wmp runtime's context whatever
    /// executor polls this (the guest's timers belong to the runtime).
    async fn run_to_end(mut self) {
        let handle = self.handle.clone();
        let run = self.run.as_mut().expect("taken only on drop");
        std::future::poll_fn(|cx| {
            let _entered = handle.enter();
            run.as_mut().poll(cx)
        })
        .await;
        self.run = None;
    }
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

/// Processes started outside their parent's poll (by the embedding host,
/// or for a main process) and not scheduled yet.
static WAITING: Mutex<Vec<(Arc<RunSlot>, Handle)>> = Mutex::new(Vec::new());

/// Hands every process started outside a guest's poll and not yet taken
/// by a joiner to its runtime. Called before every blocking wait of the
/// host API ([`block_on`]), by every start, and at every epoch tick, so a
/// started process runs within a tick even if its starter never waits.
pub(crate) fn schedule_waiting() {
    let waiting = std::mem::take(&mut *WAITING.lock().unwrap());
    for (slot, handle) in waiting {
        slot.schedule(&handle);
    }
}

/// `handle.block_on(future)` for the blocking host API: what the thread
/// started is scheduled first, so it runs while the thread waits.
pub(crate) fn block_on<F: Future>(handle: &Handle, future: F) -> F::Output {
    schedule_waiting();
    handle.block_on(future)
}

thread_local! {
    /// The guests being polled on this thread (a joiner polls its child
    /// inside its own poll), innermost last.
    static POLLING: RefCell<Vec<GuestPoll>> = const { RefCell::new(Vec::new()) };
}

/// One poll of a guest's run, the children it started during it, and its
/// clock.
struct GuestPoll {
    guest: Pid,
    started: Vec<Arc<RunSlot>>,
    /// Readers this poll's sends woke, woken when it returns.
    wakes: Vec<Box<dyn FnOnce()>>,
    clock: PollClock,
}

/// Polls `run`, the run of guest `guest`; the children it starts meanwhile
/// are scheduled when the poll returns (or unwinds), those it has joined
/// meanwhile excepted. The poll's time, less that of the polls of other
/// guests inside it (a joined child's), is added to `meter`'s CPU time.
pub(crate) fn poll_guest<F: Future + ?Sized>(
    guest: Pid,
    meter: &Meter,
    handle: &Handle,
    run: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    POLLING.with_borrow_mut(|polls| {
        polls.push(GuestPoll { guest, started: Vec::new(), wakes: Vec::new(), clock: PollClock::start() })
    });
    let _end = EndOfPoll { handle, meter };
    run.poll(cx)
}

struct EndOfPoll<'a> {
    handle: &'a Handle,
    meter: &'a Meter,
}

impl Drop for EndOfPoll<'_> {
    fn drop(&mut self) {
        let (poll, own) = POLLING.with_borrow_mut(|polls| {
            let poll = polls.pop().expect("pushed by poll_guest");
            let (whole, own) = poll.clock.stop();
            if let Some(outer) = polls.last_mut() {
                outer.clock.nested(whole);
            }
            (poll, own)
        });
        self.meter.add_cpu_time(own);
        for child in poll.started {
            child.schedule(self.handle);
        }
        for wake in poll.wakes {
            wake();
        }
    }
}

/// Runs `wake` (the wake-up of a reader that waits for what a process
/// sent) when the poll of the guest being polled on this thread returns,
/// or now if none is: a guest streaming messages to a waiting reader then
/// wakes it once per poll instead of once per message (each wake-up costs
/// the reader's thread a sleep and a wake, tens of microseconds on this
/// kind of machine). The reader still gets what was sent at the sender's
/// next blocking call, yield at an epoch tick (at most a tick later, for a
/// sender that computes on) or end, as a started child gets its run.
pub(crate) fn wake_after_poll(wake: Box<dyn FnOnce()>) {
    let wake = POLLING.with_borrow_mut(|polls| match polls.last_mut() {
        Some(poll) => {
            poll.wakes.push(wake);
            None
        }
        None => Some(wake),
    });
    if let Some(wake) = wake {
        wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn a_wake_in_a_guests_poll_waits_for_the_poll_to_return_and_one_outside_runs_now() {
        let tokio = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let woken = Arc::new(AtomicBool::new(false));
        let run = std::pin::pin!(async {
            let flag = woken.clone();
            wake_after_poll(Box::new(move || flag.store(true, Ordering::SeqCst)));
            assert!(!woken.load(Ordering::SeqCst), "not while the guest is polled");
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(poll_guest(7, &Meter::default(), tokio.handle(), run, &mut cx).is_ready());
        assert!(woken.load(Ordering::SeqCst), "woken when the poll returned");

        let outside = Arc::new(AtomicBool::new(false));
        let flag = outside.clone();
        wake_after_poll(Box::new(move || flag.store(true, Ordering::SeqCst)));
        assert!(outside.load(Ordering::SeqCst), "outside a guest's poll, at once");
    }
}
