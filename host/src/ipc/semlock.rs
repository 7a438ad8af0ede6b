//! Semaphore locks (CPython's `_multiprocessing.SemLock`): the one
//! primitive `multiprocessing.synchronize` builds `Lock`, `RLock`,
//! `Semaphore`, `BoundedSemaphore`, `Condition`, `Event` and `Barrier`
//! from (`wmp_core::synchronize`). The semaphore is shared; each handle
//! (one per process: cloning makes the handle a child is given) counts how
//! many times its process holds it, as each process's `SemLock` object
//! does in CPython. As with POSIX semaphores, nothing is released when a
//! holder ends: the others wait until their timeout.

use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use wmp_core::synchronize::{SemLockKind, SemLockOps, SyncError};

use crate::ipc::wait::within;

/// The semaphore every handle shares.
struct Semaphore {
    kind: SemLockKind,
    maxvalue: u32,
    value: Mutex<u32>,
    /// Signalled at each release.
    released: Notify,
}

impl Semaphore {
    fn try_take(&self) -> bool {
        let mut value = self.value.lock().unwrap();
        let taken = *value > 0;
        if taken {
            *value -= 1;
        }
        taken
    }
}

/// A handle to a semaphore lock; see the module docs.
pub struct SemLock {
    semaphore: Arc<Semaphore>,
    /// How many times this handle's process holds it.
    count: AtomicU32,
    handle: tokio::runtime::Handle,
}

impl SemLock {
    pub(crate) fn new(handle: &tokio::runtime::Handle, kind: SemLockKind, value: u32, maxvalue: u32) -> SemLock {
        let semaphore = Semaphore { kind, maxvalue, value: Mutex::new(value.min(maxvalue)), released: Notify::new() };
        SemLock { semaphore: Arc::new(semaphore), count: AtomicU32::new(0), handle: handle.clone() }
    }

    pub fn kind(&self) -> SemLockKind {
        self.semaphore.kind
    }

    pub fn maxvalue(&self) -> u32 {
        self.semaphore.maxvalue
    }

    /// [`SemLockOps::acquire`] for async code (a guest's call).
    pub async fn acquire_async(&self, timeout: Option<Duration>) -> bool {
        if self.semaphore.kind == SemLockKind::RecursiveMutex && self.count.load(Ordering::Acquire) > 0 {
            self.count.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        let taken = within(&self.handle, timeout, async {
            loop {
                let mut released = pin!(self.semaphore.released.notified());
                released.as_mut().enable();
                if self.semaphore.try_take() {
                    return;
                }
                released.await;
            }
        })
        .await
        .is_some();
        if taken {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        taken
    }
}

/// Another handle to the same semaphore, holding it no times: the one a
/// child is given, and the one each host thread needs, since a handle is
/// one holder (an RLock's owner, CPython's process and thread).
impl Clone for SemLock {
    fn clone(&self) -> SemLock {
        SemLock { semaphore: self.semaphore.clone(), count: AtomicU32::new(0), handle: self.handle.clone() }
    }
}

impl SemLockOps for SemLock {
    fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        Ok(crate::base::run_slot::block_on(&self.handle, self.acquire_async(timeout)))
    }

    /// Releases it once; a recursive mutex only by the process that holds
    /// it, and no semaphore past its maximum.
    fn release(&self) -> Result<(), SyncError> {
        let semaphore = &*self.semaphore;
        if semaphore.kind == SemLockKind::RecursiveMutex {
            let count = self.count.load(Ordering::Acquire);
            if count == 0 {
                return Err(SyncError::NotOwner);
            }
            if count > 1 {
                self.count.fetch_sub(1, Ordering::AcqRel);
                return Ok(());
            }
        }
        {
            let mut value = semaphore.value.lock().unwrap();
            if *value >= semaphore.maxvalue {
                return Err(SyncError::ReleasedTooManyTimes);
            }
            *value += 1;
        }
        let _ = self.count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| count.checked_sub(1));
        semaphore.released.notify_one();
        Ok(())
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    fn is_mine(&self) -> bool {
        self.count() > 0
    }

    fn value(&self) -> u32 {
        *self.semaphore.value.lock().unwrap()
    }
}

impl std::fmt::Debug for SemLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemLock")
            .field("kind", &self.semaphore.kind)
            .field("value", &self.value())
            .field("maxvalue", &self.semaphore.maxvalue)
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wmp_core::synchronize::SEM_VALUE_MAX;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    }

    #[test]
    fn a_lock_is_taken_once_and_released_once() {
        let rt = runtime();
        let lock = SemLock::new(rt.handle(), SemLockKind::Semaphore, 1, 1);
        assert_eq!(lock.acquire(None), Ok(true));
        assert!(lock.is_mine());
        assert_eq!(lock.acquire(Some(Duration::from_millis(5))), Ok(false), "a Lock is not recursive");
        assert_eq!(lock.release(), Ok(()));
        assert_eq!(lock.release(), Err(SyncError::ReleasedTooManyTimes));
        assert_eq!(SyncError::ReleasedTooManyTimes.to_string(), "semaphore or lock released too many times");
    }

    #[test]
    fn a_recursive_mutex_is_held_by_one_process_any_number_of_times() {
        let rt = runtime();
        let rlock = SemLock::new(rt.handle(), SemLockKind::RecursiveMutex, 1, 1);
        let other = rlock.clone();
        assert_eq!(other.release(), Err(SyncError::NotOwner));
        assert_eq!((rlock.acquire(None), rlock.acquire(None), rlock.count()), (Ok(true), Ok(true), 2));
        assert_eq!(other.acquire(Some(Duration::ZERO)), Ok(false));
        assert_eq!((rlock.release(), rlock.count(), rlock.value()), (Ok(()), 1, 0));
        assert_eq!((rlock.release(), rlock.count(), rlock.value()), (Ok(()), 0, 1));
        assert_eq!(other.acquire(Some(Duration::ZERO)), Ok(true));
    }

    #[test]
    fn a_release_wakes_a_waiter_and_a_bounded_semaphore_keeps_its_bound() {
        let rt = runtime();
        let semaphore = Arc::new(SemLock::new(rt.handle(), SemLockKind::Semaphore, 0, SEM_VALUE_MAX));
        let waiter = semaphore.clone();
        let woken = std::thread::spawn(move || waiter.acquire(Some(Duration::from_secs(30))));
        std::thread::sleep(Duration::from_millis(20));
        semaphore.release().unwrap();
        assert_eq!(woken.join().unwrap(), Ok(true));
        let bounded = SemLock::new(rt.handle(), SemLockKind::Semaphore, 2, 2);
        assert_eq!(bounded.release(), Err(SyncError::ReleasedTooManyTimes));
        assert_eq!((bounded.acquire(None), bounded.value()), (Ok(true), 1));
    }
}
