//! A wasm guest's run (the future that owns its store), held where a stop
//! can reach it, so that a stop takes effect at once under any load.
//!
//! The run is polled through its [`HeldRun`]; between polls (the guest
//! yielded at an epoch tick, or waits in a host call, or was never
//! scheduled) nobody holds it, and a stop takes it out and drops it on the
//! stopping thread: the store is freed there and then, and if the process
//! has no child still running, its end is published before the stop
//! returns, without waiting for a scheduler slot behind other guests. A
//! guest being polled at that instant stops at its next epoch check, which
//! the stop makes immediate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::task::{Context, Poll};

use super::GuestRun;
use super::turns::Place;

/// The run of one guest, its place in the line for turns at the CPU, and
/// whether its end has been claimed.
pub(super) struct HeldRun {
    run: Mutex<Option<GuestRun>>,
    place: Arc<Place>,
    ended: AtomicBool,
}

impl HeldRun {
    pub(super) fn new(run: GuestRun, place: Arc<Place>) -> Arc<HeldRun> {
        Arc::new(HeldRun { run: Mutex::new(Some(run)), place, ended: AtomicBool::new(false) })
    }

    /// Polls the run; `Pending` for good once a stop has taken it (the
    /// stop itself is then what the caller waits for). A guest that waits
    /// for anything but its next turn gives back the turn it holds, and so
    /// does one that ended.
    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<wasmtime::Result<()>> {
        let poll = match self.run.lock().unwrap().as_mut() {
            Some(run) => run.as_mut().poll(cx),
            None => Poll::Pending,
        };
        match poll {
            Poll::Pending => self.place.after_pending_poll(),
            Poll::Ready(_) => self.place.leave(),
        }
        poll
    }

    /// Takes the run out unless it is being polled right now.
    pub(super) fn take_if_idle(&self) -> Option<GuestRun> {
        let run = match self.run.try_lock() {
            Ok(mut run) => run.take(),
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
        };
        self.place.leave();
        run
    }

    /// Takes the run out, waiting for a poll in progress to return.
    pub(super) fn take(&self) -> Option<GuestRun> {
        let run = self.run.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        self.place.leave();
        run
    }

    /// True for the one caller that gets to publish the process's end.
    pub(super) fn claim_end(&self) -> bool {
        !self.ended.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_run() -> Arc<HeldRun> {
        HeldRun::new(Box::pin(std::future::pending()), super::super::turns::Turns::new(1).place())
    }

    #[test]
    fn an_idle_run_is_taken_and_a_polled_one_is_not() {
        let held = pending_run();
        let guard = held.run.lock().unwrap(); // as during a poll
        assert!(held.take_if_idle().is_none(), "a run being polled is left to its epoch check");
        drop(guard);
        assert!(held.take_if_idle().is_some());
        assert!(held.take_if_idle().is_none(), "taken once");
        let waker = std::task::Waker::noop();
        assert!(held.poll(&mut Context::from_waker(waker)).is_pending(), "a taken run never completes");
    }

    #[test]
    fn a_run_that_ends_holding_a_turn_gives_it_back() {
        let turns = super::super::turns::Turns::new(1);
        let place = turns.place();
        let turn = place.clone().next_turn();
        let run: GuestRun = Box::pin(async move {
            turn.await;
            Ok(())
        });
        let held = HeldRun::new(run, place);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while held.poll(&mut cx).is_pending() {}
        let next = turns.place();
        let mut again = std::pin::pin!(next.clone().next_turn());
        assert!(again.as_mut().poll(&mut cx).is_pending(), "got a turn, then yields");
        assert!(again.as_mut().poll(&mut cx).is_ready(), "the ended run's turn was free");
    }

    #[test]
    fn the_end_is_claimed_once() {
        let held = pending_run();
        assert!(held.claim_end());
        assert!(!held.claim_end());
    }
}
