//! Synchronization between processes as `multiprocessing.synchronize`
//! builds it: everything from one primitive that the host holds, the
//! semaphore lock (CPython's `_multiprocessing.SemLock`, here
//! [`SemLockOps`]). This module has that primitive's rules (its kinds,
//! its errors with CPython's messages) and the algorithms CPython builds
//! over it, [`Condition`], [`Event`] and [`Barrier`], once for the host
//! API and the guest SDK, each of which supplies its semaphore locks.

use std::time::Duration;

/// The largest value a semaphore may have (Linux's `SEM_VALUE_MAX`), the
/// maximum of an unbounded `Semaphore`.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// What a semaphore lock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemLockKind {
    /// A counter: `Lock` (value and maximum 1), `Semaphore`, `BoundedSemaphore`.
    Semaphore,
    /// `RLock`: held by one process at a time, any number of times.
    RecursiveMutex,
}

/// A mistake in using a lock, condition or barrier, with CPython's message
/// (the exception type CPython raises is in each variant's doc).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// ValueError: a release past the maximum value.
    #[error("semaphore or lock released too many times")]
    ReleasedTooManyTimes,
    /// AssertionError: a recursive lock released by a process that does
    /// not hold it.
    #[error("attempt to release recursive lock not owned by thread")]
    NotOwner,
    /// AssertionError: `Condition.wait` without holding its lock.
    #[error("must acquire() condition before using wait()")]
    WaitWithoutLock,
    /// AssertionError: `Condition.notify` without holding its lock.
    #[error("lock is not owned")]
    NotifyWithoutLock,
    /// `threading.BrokenBarrierError`: the barrier was reset or aborted, or
    /// a wait on it timed out.
    #[error("")]
    BrokenBarrier,
    /// IndexError: shared memory accessed outside its bounds.
    #[error("{0}")]
    OutOfRange(String),
    /// The host could not be reached (a handle was closed, the runtime ended).
    #[error("{0}")]
    Host(String),
}

/// A semaphore lock, as a process holds a handle to it: the semaphore is
/// shared, the count of how many times this process holds it is its own.
pub trait SemLockOps {
    /// Waits up to `timeout` (None: as long as it takes; zero: not at
    /// all); whether it was acquired.
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError>;
    fn release(&self) -> Result<(), SyncError>;
    /// How many times this process holds it (`_count()`).
    fn count(&self) -> u32;
    /// Whether this process holds it (`_is_mine()`).
    fn is_mine(&self) -> bool;
    /// The semaphore's value now (`_get_value()`).
    fn value(&self) -> u32;
}

/// Zeroed bytes shared between processes, which a [`Barrier`] keeps its
/// state in (CPython's `heap.BufferWrapper`).
pub trait SharedBytes {
    fn read(&self, offset: u32, len: u32) -> Result<Vec<u8>, SyncError>;
    fn write(&self, offset: u32, bytes: &[u8]) -> Result<(), SyncError>;
}

const NOW: Option<Duration> = Some(Duration::ZERO);

/// `multiprocessing.Condition`: a lock (an RLock unless given) and three
/// semaphores counting sleepers, woken sleepers and wake-ups, as CPython's
/// synchronize.py has it. Cloning clones each lock (for the host's
/// semaphore locks: new handles, one per thread).
#[derive(Clone)]
pub struct Condition<L> {
    lock: L,
    sleeping_count: L,
    woken_count: L,
    wait_semaphore: L,
}

impl<L: SemLockOps> Condition<L> {
    /// A condition over `lock` and three semaphores of value 0 (made by the
    /// caller, which knows how to make them; handed to a child in this order).
    pub fn from_parts(lock: L, sleeping_count: L, woken_count: L, wait_semaphore: L) -> Condition<L> {
        Condition { lock, sleeping_count, woken_count, wait_semaphore }
    }

    /// Its four semaphore locks, in the order [`from_parts`](Self::from_parts) takes them.
    pub fn parts(&self) -> [&L; 4] {
        [&self.lock, &self.sleeping_count, &self.woken_count, &self.wait_semaphore]
    }

    /// A condition over `lock`, its three semaphores (of value 0) made by
    /// `zero_semaphore`.
    pub fn new(lock: L, mut zero_semaphore: impl FnMut() -> L) -> Condition<L> {
        Condition::from_parts(lock, zero_semaphore(), zero_semaphore(), zero_semaphore())
    }

    pub fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.lock.acquire(timeout)
    }

    /// Runs `body` holding the lock (`with cond:`).
    pub fn locked<T>(&self, body: impl FnOnce() -> Result<T, SyncError>) -> Result<T, SyncError> {
        self.lock.acquire(None)?;
        let result = body();
        self.lock.release()?;
        result
    }

    pub fn release(&self) -> Result<(), SyncError> {
        self.lock.release()
    }

    /// Releases the lock, waits up to `timeout` to be notified, and takes
    /// the lock back as many times as it was held; whether it was notified.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        if !self.lock.is_mine() {
            return Err(SyncError::WaitWithoutLock);
        }
        self.sleeping_count.release()?;
        let count = self.lock.count();
        for _ in 0..count {
            self.lock.release()?;
        }
        let notified = self.wait_semaphore.acquire(timeout);
        let woken = self.woken_count.release();
        for _ in 0..count {
            self.lock.acquire(None)?;
        }
        woken?;
        notified
    }

    /// Wakes up to `n` processes waiting on the condition.
    pub fn notify(&self, n: usize) -> Result<(), SyncError> {
        if !self.lock.is_mine() {
            return Err(SyncError::NotifyWithoutLock);
        }
        // Sleepers that timed out since the last notify woke without
        // being counted: take them off the sleepers.
        while self.woken_count.acquire(NOW)? {
            self.sleeping_count.acquire(NOW)?;
        }
        let mut sleepers = 0;
        while sleepers < n && self.sleeping_count.acquire(NOW)? {
            self.wait_semaphore.release()?;
            sleepers += 1;
        }
        if sleepers > 0 {
            for _ in 0..sleepers {
                self.woken_count.acquire(None)?;
            }
            // Wake-ups not taken (their sleepers timed out meanwhile).
            while self.wait_semaphore.acquire(NOW)? {}
        }
        Ok(())
    }

    pub fn notify_all(&self) -> Result<(), SyncError> {
        self.notify(usize::MAX)
    }

    /// Waits until `predicate` holds or `timeout` passes; the last value
    /// of the predicate.
    pub fn wait_for(&self, mut predicate: impl FnMut() -> bool, timeout: Option<Duration>) -> Result<bool, SyncError> {
        let deadline = timeout.map(|timeout| std::time::Instant::now() + timeout);
        let mut result = predicate();
        while !result {
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(std::time::Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break,
                },
                None => None,
            };
            self.wait(left)?;
            result = predicate();
        }
        Ok(result)
    }
}

/// `multiprocessing.Event`: a flag (a semaphore of value 0 or 1) under a
/// condition over a plain lock.
#[derive(Clone)]
pub struct Event<L> {
    cond: Condition<L>,
    flag: L,
}

impl<L: SemLockOps> Event<L> {
    /// An event over `cond` (whose lock is a plain `Lock`) and a semaphore
    /// of value 0.
    pub fn from_parts(cond: Condition<L>, flag: L) -> Event<L> {
        Event { cond, flag }
    }

    /// An event over a plain `lock`, its semaphores (of value 0) made by
    /// `zero_semaphore`.
    pub fn new(lock: L, mut zero_semaphore: impl FnMut() -> L) -> Event<L> {
        Event::from_parts(Condition::new(lock, &mut zero_semaphore), zero_semaphore())
    }

    /// Its five semaphore locks: the condition's, then the flag.
    pub fn parts(&self) -> [&L; 5] {
        let [a, b, c, d] = self.cond.parts();
        [a, b, c, d, &self.flag]
    }

    /// Whether the flag is up, leaving it as it is.
    fn peek(&self) -> Result<bool, SyncError> {
        let up = self.flag.acquire(NOW)?;
        if up {
            self.flag.release()?;
        }
        Ok(up)
    }

    pub fn is_set(&self) -> Result<bool, SyncError> {
        self.cond.locked(|| self.peek())
    }

    pub fn set(&self) -> Result<(), SyncError> {
        self.cond.locked(|| {
            self.flag.acquire(NOW)?;
            self.flag.release()?;
            self.cond.notify_all()
        })
    }

    pub fn clear(&self) -> Result<(), SyncError> {
        self.cond.locked(|| self.flag.acquire(NOW).map(drop))
    }

    /// Waits up to `timeout` for the flag; whether it is up.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.cond.locked(|| {
            if !self.peek()? {
                self.cond.wait(timeout)?;
            }
            self.peek()
        })
    }
}

/// `multiprocessing.Barrier`: `threading.Barrier`'s algorithm over a
/// condition, with its state and count in shared memory (two i32s).
#[derive(Clone)]
pub struct Barrier<L, M> {
    parties: u32,
    timeout: Option<Duration>,
    cond: Condition<L>,
    shared: M,
}

/// `threading.Barrier`'s states.
const FILLING: i32 = 0;
const DRAINING: i32 = 1;
const RESETTING: i32 = -1;
const BROKEN: i32 = -2;

impl<L: SemLockOps, M: SharedBytes> Barrier<L, M> {
    /// The zeroed bytes of shared memory a barrier keeps its state in.
    pub const SHARED_BYTES: u32 = 8;

    /// A barrier for `parties` over `cond` (an RLock's) and
    /// [`SHARED_BYTES`](Self::SHARED_BYTES) zeroed bytes of `shared`;
    /// `timeout` is the default of [`wait`](Self::wait).
    pub fn from_parts(parties: u32, timeout: Option<Duration>, cond: Condition<L>, shared: M) -> Barrier<L, M> {
        Barrier { parties, timeout, cond, shared }
    }

    pub fn condition(&self) -> &Condition<L> {
        &self.cond
    }

    pub fn shared(&self) -> &M {
        &self.shared
    }

    pub fn parties(&self) -> u32 {
        self.parties
    }

    fn cell(&self, at: u32) -> Result<i32, SyncError> {
        let bytes = self.shared.read(at * 4, 4)?;
        Ok(i32::from_le_bytes(bytes.try_into().map_err(|_| SyncError::OutOfRange("short read".into()))?))
    }

    fn set_cell(&self, at: u32, value: i32) -> Result<(), SyncError> {
        self.shared.write(at * 4, &value.to_le_bytes())
    }

    fn state(&self) -> Result<i32, SyncError> {
        self.cell(0)
    }

    /// Processes waiting now (`n_waiting`).
    pub fn n_waiting(&self) -> Result<u32, SyncError> {
        self.cond.locked(|| Ok(if self.state()? == FILLING { self.cell(1)? as u32 } else { 0 }))
    }

    pub fn broken(&self) -> Result<bool, SyncError> {
        self.cond.locked(|| Ok(self.state()? == BROKEN))
    }

    /// Waits until all parties wait (up to `timeout`, else the barrier's);
    /// each gets a distinct index in `0..parties`. [`SyncError::BrokenBarrier`]
    /// if the barrier breaks or the wait times out (which breaks it).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<u32, SyncError> {
        let timeout = timeout.or(self.timeout);
        self.cond.locked(|| {
            self.enter()?;
            let index = self.cell(1)?;
            self.set_cell(1, index + 1)?;
            let result = if index as u32 + 1 == self.parties {
                self.release_all()
            } else {
                self.wait_for_release(timeout)
            };
            let count = self.cell(1)? - 1;
            self.set_cell(1, count)?;
            self.exit(count)?;
            result.map(|()| index as u32)
        })
    }

    /// Waits while the barrier drains or resets; refuses a broken one.
    fn enter(&self) -> Result<(), SyncError> {
        let state = self.state()?;
        if state == DRAINING || state == RESETTING {
            self.cond.wait_for(|| self.state().is_ok_and(|state| state != DRAINING && state != RESETTING), None)?;
        }
        if self.state()? < 0 {
            return Err(SyncError::BrokenBarrier);
        }
        Ok(())
    }

    fn release_all(&self) -> Result<(), SyncError> {
        self.set_cell(0, DRAINING)?;
        self.cond.notify_all()
    }

    fn wait_for_release(&self, timeout: Option<Duration>) -> Result<(), SyncError> {
        let released = self.cond.wait_for(|| self.state().is_ok_and(|state| state != FILLING), timeout)?;
        if !released {
            self.break_barrier()?;
            return Err(SyncError::BrokenBarrier);
        }
        if self.state()? < 0 {
            return Err(SyncError::BrokenBarrier);
        }
        Ok(())
    }

    /// The last one out of a draining or resetting barrier fills it again.
    fn exit(&self, count: i32) -> Result<(), SyncError> {
        if count == 0 {
            let state = self.state()?;
            if state == RESETTING || state == DRAINING {
                self.set_cell(0, FILLING)?;
                self.cond.notify_all()?;
            }
        }
        Ok(())
    }

    fn break_barrier(&self) -> Result<(), SyncError> {
        self.set_cell(0, BROKEN)?;
        self.cond.notify_all()
    }

    /// Breaks the barrier: waiting and future waits fail.
    pub fn abort(&self) -> Result<(), SyncError> {
        self.cond.locked(|| self.break_barrier())
    }

    /// Puts the barrier back to its first state; those waiting fail.
    pub fn reset(&self) -> Result<(), SyncError> {
        self.cond.locked(|| {
            if self.cell(1)? > 0 {
                // Those waiting wake and fail; the last one out fills it.
                if matches!(self.state()?, FILLING | BROKEN) {
                    self.set_cell(0, RESETTING)?;
                }
            } else {
                self.set_cell(0, FILLING)?;
            }
            self.cond.notify_all()
        })
    }
}
