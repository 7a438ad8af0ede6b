//! The host-memory ledger of one process: what the host holds because a
//! guest asked for it (queue messages it put, bytes it wrote into pipes not
//! yet read, names, the arguments of process objects it has not started,
//! listener addresses, handles to host objects), charged to that process
//! against its `max_host_memory` budget.
//!
//! A [`Charge`] is the receipt: whatever holds the thing holds its charge,
//! and dropping it gives the bytes back, so a message charged when put is
//! released when a consumer takes it, and everything a process holds is
//! released when the process (its store) goes away. Charges made for the
//! embedding host itself are [`Charge::none`]: the host is trusted.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget of a process that was given none: every guest is contained
/// by default. 64 MiB holds sixteen full pipes, or a queue backlog of 64
/// one-MiB messages, and is still small next to the linear memory a guest
/// may have.
pub const DEFAULT_MAX_HOST_MEMORY: usize = 64 << 20;

/// What a host object a guest holds costs in the budget besides its bytes
/// (the object itself, its table entry, its locks); so that many empty
/// objects are bounded too.
pub const OBJECT_COST: usize = 256;

/// What each queued or piped message costs besides its bytes.
pub const MESSAGE_COST: usize = 16;

/// The kinds of things a ledger counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Held {
    /// Messages this process put into queues, not yet taken.
    QueueMessages,
    /// Messages this process sent into pipes, not yet received (and the
    /// output of a process on another machine, not yet written here).
    PipeMessages,
    /// Process objects this process holds, with their names and the
    /// arguments of those not started.
    ProcessObjects,
    /// Handles to pipe ends.
    Connections,
    /// Handles to queues.
    Queues,
    /// Listeners, with their addresses.
    Listeners,
    /// Handles to sentinels.
    Sentinels,
    /// The name of the process itself (`current_process().name = ...`),
    /// and the arguments it was started with.
    OwnName,
    /// Resources the embedder's host functions handed the process
    /// ([`ComponentState::hold_resource`](crate::ComponentState::hold_resource)).
    HostFunctionObjects,
    /// Handles to semaphore locks and shared memory, and the bytes of
    /// shared memory it made.
    SyncObjects,
}

impl Held {
    const ALL: [Held; 10] = [
        Held::QueueMessages,
        Held::PipeMessages,
        Held::ProcessObjects,
        Held::Connections,
        Held::Queues,
        Held::Listeners,
        Held::Sentinels,
        Held::OwnName,
        Held::HostFunctionObjects,
        Held::SyncObjects,
    ];

    fn index(self) -> usize {
        Held::ALL.iter().position(|&held| held == self).expect("listed in ALL")
    }
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Held::QueueMessages => "queue messages",
            Held::PipeMessages => "pipe messages",
            Held::ProcessObjects => "process objects",
            Held::Connections => "connections",
            Held::Queues => "queues",
            Held::Listeners => "listeners",
            Held::Sentinels => "sentinels",
            Held::OwnName => "its own name and arguments",
            Held::HostFunctionObjects => "host function objects",
            Held::SyncObjects => "locks and shared memory",
        })
    }
}

/// A charge that would take a process past its budget; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host memory budget of {budget} bytes reached: {held} bytes held, {asked} more asked for {what}")]
pub struct OverBudget {
    pub budget: usize,
    pub held: usize,
    pub asked: usize,
    pub what: Held,
}

/// One process's ledger.
#[derive(Debug)]
pub(crate) struct Ledger {
    budget: Option<usize>,
    held: AtomicUsize,
    /// The most `held` has been.
    peak: AtomicUsize,
    counts: [AtomicUsize; Held::ALL.len()],
    bytes: [AtomicUsize; Held::ALL.len()],
}

impl Ledger {
    /// A ledger with `budget` bytes (None: unbounded).
    pub(crate) fn new(budget: Option<usize>) -> Arc<Ledger> {
        Arc::new(Ledger {
            budget,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            counts: Default::default(),
            bytes: Default::default(),
        })
    }

    /// Charges one `what` of `bytes`, or nothing if that would pass the
    /// budget.
    pub(crate) fn charge(self: &Arc<Self>, what: Held, bytes: usize) -> Result<Charge, OverBudget> {
        self.take(what, bytes)?;
        self.counts[what.index()].fetch_add(1, Ordering::Relaxed);
        Ok(Charge { ledger: Some(self.clone()), what, bytes })
    }

    fn take(&self, what: Held, bytes: usize) -> Result<(), OverBudget> {
        let taken = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            let after = held.checked_add(bytes)?;
            self.budget.is_none_or(|budget| after <= budget).then_some(after)
        });
        match taken {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::Relaxed);
                self.bytes[what.index()].fetch_add(bytes, Ordering::Relaxed);
                Ok(())
            }
            Err(held) => Err(OverBudget { budget: self.budget.unwrap_or(usize::MAX), held, asked: bytes, what }),
        }
    }

    fn give_back(&self, what: Held, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
        self.bytes[what.index()].fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The most bytes the ledger has held at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// What the ledger holds now.
    pub(crate) fn usage(&self) -> HostMemory {
        HostMemory {
            budget: self.budget,
            held: self.held.load(Ordering::Acquire),
            by_kind: Held::ALL
                .iter()
                .map(|&what| {
                    let i = what.index();
                    (what, self.counts[i].load(Ordering::Relaxed), self.bytes[i].load(Ordering::Relaxed))
                })
                .filter(|&(_, count, _)| count > 0)
                .collect(),
        }
    }
}

/// What one process's ledger holds, as [`ProcessInfo`](crate::ProcessInfo)
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostMemory {
    /// The budget in bytes; None: unbounded.
    pub budget: Option<usize>,
    /// Bytes charged now.
    pub held: usize,
    /// For each kind held: how many, and their bytes.
    pub by_kind: Vec<(Held, usize, usize)>,
}

impl HostMemory {
    /// How many of `what` are held.
    pub fn count(&self, what: Held) -> usize {
        self.of(what).0
    }

    /// The bytes held for `what`.
    pub fn bytes(&self, what: Held) -> usize {
        self.of(what).1
    }

    fn of(&self, what: Held) -> (usize, usize) {
        self.by_kind.iter().find(|(held, ..)| *held == what).map_or((0, 0), |&(_, count, bytes)| (count, bytes))
    }
}

/// The receipt of one charge; dropping it gives the bytes back.
#[derive(Debug)]
pub(crate) struct Charge {
    ledger: Option<Arc<Ledger>>,
    what: Held,
    bytes: usize,
}

impl Charge {
    /// No charge: for what the embedding host itself holds.
    pub(crate) fn none() -> Charge {
        Charge { ledger: None, what: Held::OwnName, bytes: 0 }
    }

    /// Whether this is [`Charge::none`].
    pub(crate) fn is_none(&self) -> bool {
        self.ledger.is_none()
    }

    /// Charges the difference so that this charge covers `bytes`; on
    /// failure it keeps what it had.
    pub(crate) fn resize(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let Some(ledger) = &self.ledger else { return Ok(()) };
        if bytes > self.bytes {
            ledger.take(self.what, bytes - self.bytes)?;
        } else {
            ledger.give_back(self.what, self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }
}

/// A value held together with its charge (a queued or piped message).
#[derive(Debug)]
pub(crate) struct Charged<T> {
    pub(crate) value: T,
    _charge: Charge,
}

impl<T> Charged<T> {
    pub(crate) fn new(value: T, charge: Charge) -> Self {
        Charged { value, _charge: charge }
    }

    /// A value the embedding host itself holds: charged to nobody.
    pub(crate) fn uncharged(value: T) -> Self {
        Charged::new(value, Charge::none())
    }

    /// The value; its charge is given back.
    pub(crate) fn into_value(self) -> T {
        self.value
    }

    /// Another value under the same charge.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Charged<U> {
        Charged { value: f(self.value), _charge: self._charge }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger {
            ledger.give_back(self.what, self.bytes);
            ledger.counts[self.what.index()].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_given_back_on_drop() {
        let ledger = Ledger::new(Some(100));
        let a = ledger.charge(Held::QueueMessages, 60).unwrap();
        let err = ledger.charge(Held::PipeMessages, 41).unwrap_err();
        assert_eq!(err, OverBudget { budget: 100, held: 60, asked: 41, what: Held::PipeMessages });
        assert_eq!(ledger.usage().held, 60, "a refused charge takes nothing");
        assert_eq!(ledger.usage().count(Held::PipeMessages), 0);
        let b = ledger.charge(Held::PipeMessages, 40).unwrap();
        assert_eq!(ledger.usage().held, 100);
        drop(a);
        assert_eq!(ledger.usage().by_kind, vec![(Held::PipeMessages, 1, 40)]);
        assert_eq!((ledger.usage().count(Held::PipeMessages), ledger.usage().bytes(Held::PipeMessages)), (1, 40));
        assert_eq!(ledger.usage().bytes(Held::QueueMessages), 0, "given back");
        drop(b);
        assert_eq!(ledger.usage(), HostMemory { budget: Some(100), held: 0, by_kind: vec![] });
        assert_eq!(ledger.peak(), 100, "the most it held at once (the refused charge counted nothing)");
    }

    #[test]
    fn a_resize_past_the_budget_keeps_the_old_charge() {
        let ledger = Ledger::new(Some(100));
        let mut name = ledger.charge(Held::ProcessObjects, 10).unwrap();
        assert!(name.resize(101).is_err());
        assert_eq!(ledger.usage().held, 10);
        name.resize(90).unwrap();
        assert_eq!(ledger.usage().held, 90);
        name.resize(5).unwrap();
        assert_eq!(ledger.usage().held, 5);
    }

    #[test]
    fn an_unbounded_ledger_still_counts_and_none_charges_nothing() {
        let ledger = Ledger::new(None);
        let _a = ledger.charge(Held::Listeners, usize::MAX / 2).unwrap();
        assert!(ledger.charge(Held::Listeners, usize::MAX).is_err(), "no overflow");
        let mut none = Charge::none();
        none.resize(1 << 40).unwrap();
        assert_eq!(ledger.usage().count(Held::Listeners), 1);
    }
}
