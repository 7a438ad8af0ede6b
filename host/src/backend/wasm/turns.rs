//! Turns at the CPU for guests that compute, so that a guest woken by a
//! timer, a message or a join runs within about one slice however many
//! others spin.
//!
//! A guest that used up its slice (an epoch tick passed while it ran, and
//! it waited for nothing since its last tick) waits for a turn in one
//! first-come, first-served line, and at most as many guests hold a turn
//! as the runtime has workers. A guest gives its turn back when its slice
//! ends and whenever it waits for anything else; a guest that waited since
//! its last tick (it slept, or waited for a message or a join) gets a
//! fresh slice without a turn.
//!
//! Without turns, every spinner sits in tokio's run queues, and a worker
//! that always has a task to poll looks at its timers only every 61 polls
//! (tokio's event interval): with 10 ms slices, a sleeper beside 1,000
//! spinners woke 560 ms late. With them, the run queues hold a worker's
//! share of turn holders; each new turn starts with a yield, which lets the
//! worker reach its timers and what they woke before the next slice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The turns of one runtime.
pub(crate) struct Turns(Arc<Semaphore>);

impl Turns {
    /// `count` turns (the runtime's worker count).
    pub(crate) fn new(count: usize) -> Turns {
        Turns(Arc::new(Semaphore::new(count.max(1))))
    }

    /// A guest's place in the line, holding no turn.
    pub(crate) fn place(&self) -> Arc<Place> {
        Arc::new(Place {
            turns: self.0.clone(),
            held: Mutex::new(None),
            in_line: AtomicBool::new(false),
            waited: AtomicBool::new(false),
        })
    }
}

/// One guest's place: the turn it holds, if any, whether it is in the
/// line for one, and whether it waited for anything else since its last
/// epoch tick.
pub(crate) struct Place {
    turns: Arc<Semaphore>,
    held: Mutex<Option<OwnedSemaphorePermit>>,
    in_line: AtomicBool,
    waited: AtomicBool,
}

impl Place {
    /// At an epoch tick: whether the guest used up its slice (and so must
    /// wait for [`next_turn`](Self::next_turn)), rather than having waited
    /// for something since its last tick. Starts the next slice either way.
    pub(crate) fn slice_used_up(&self) -> bool {
        !self.waited.swap(false, Ordering::AcqRel)
    }

    /// At the end of a slice: gives back the turn held, and waits in line
    /// for the next one; a turn got at once still yields to what else the
    /// worker has to run.
    pub(crate) async fn next_turn(self: Arc<Self>) {
        self.held.lock().unwrap().take();
        self.in_line.store(true, Ordering::Release);
        let turn = match self.turns.clone().try_acquire_owned() {
            Ok(turn) => turn,
            Err(_) => self.turns.clone().acquire_owned().await.expect("the turns are never closed"),
        };
        *self.held.lock().unwrap() = Some(turn);
        tokio::task::yield_now().await;
        self.in_line.store(false, Ordering::Release);
    }

    /// After a poll of the guest that returned Pending: unless it waits
    /// for a turn, it waits for something else, and gives its turn back.
    pub(crate) fn after_pending_poll(&self) {
        if !self.in_line.load(Ordering::Acquire) {
            self.waited.store(true, Ordering::Release);
            self.leave();
        }
    }

    /// The guest ended, or waits for something else: gives back the turn
    /// it holds, if any. (The place itself may live on in the process's
    /// handles.)
    pub(crate) fn leave(&self) {
        self.held.lock().unwrap().take();
    }

    #[cfg(test)]
    fn holds_turn(&self) -> bool {
        self.held.lock().unwrap().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;

    fn poll_once(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        future.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn turns_are_given_first_come_first_served() {
        let turns = Turns::new(1);
        let (first, second, third) = (turns.place(), turns.place(), turns.place());
        first.clone().next_turn().await;
        assert!(first.holds_turn());
        let mut second_waits = pin!(second.clone().next_turn());
        let mut third_waits = pin!(third.clone().next_turn());
        assert!(poll_once(second_waits.as_mut()).is_pending());
        assert!(poll_once(third_waits.as_mut()).is_pending());
        // The first slice ends: the first goes to the back of the line.
        let mut first_waits = pin!(first.clone().next_turn());
        assert!(poll_once(first_waits.as_mut()).is_pending());
        assert!(!first.holds_turn());
        second_waits.as_mut().await;
        assert!(second.holds_turn() && !third.holds_turn());
        second.after_pending_poll(); // it waits for something else
        third_waits.as_mut().await;
        assert!(third.holds_turn() && !first.holds_turn(), "the third came before the first came back");
    }

    #[tokio::test]
    async fn a_guest_keeps_its_turn_only_while_in_line_for_it() {
        let turns = Turns::new(1);
        let place = turns.place();
        let mut next = pin!(place.clone().next_turn());
        // Got at once, then yields: Pending, still in line, turn kept.
        assert!(poll_once(next.as_mut()).is_pending());
        place.after_pending_poll();
        assert!(place.holds_turn(), "a yield after getting the turn keeps it");
        next.as_mut().await;
        place.after_pending_poll();
        assert!(!place.holds_turn(), "a guest waiting for anything else gives its turn back");
        assert_eq!(turns.0.available_permits(), 1);
    }

    #[test]
    fn only_a_guest_that_waited_for_nothing_since_its_last_tick_used_up_its_slice() {
        let place = Turns::new(1).place();
        assert!(place.slice_used_up(), "it computed since it started");
        place.after_pending_poll(); // it slept
        assert!(!place.slice_used_up(), "it slept: a fresh slice");
        assert!(place.slice_used_up(), "then it computed a whole slice");
    }

    #[tokio::test]
    async fn a_guest_that_ends_holding_a_turn_gives_it_back() {
        let turns = Turns::new(1);
        let place = turns.place();
        place.clone().next_turn().await;
        assert_eq!(turns.0.available_permits(), 0);
        place.leave();
        assert_eq!(turns.0.available_permits(), 1, "though the place lives on");
    }
}
