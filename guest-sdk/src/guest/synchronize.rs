//! Semaphore locks and shared memory in a wasm guest (the implementation
//! behind `crate::synchronize`): thin wrappers over the
//! `wmp:process/synchronize` imports.

use std::time::Duration;

use wmp_core::ProcessError;
use wmp_core::synchronize::{SemLockKind, SyncError};

use super::bindings::wmp::process::synchronize as wit;
use super::{Process, nanos, process_error};

fn sync_error(err: wit::Error) -> SyncError {
    match err {
        wit::Error::ReleasedTooManyTimes(_) => SyncError::ReleasedTooManyTimes,
        wit::Error::NotOwner(_) => SyncError::NotOwner,
        wit::Error::OutOfRange(why) => SyncError::OutOfRange(why),
    }
}

pub(crate) struct SemLock(wit::Semlock);

impl SemLock {
    pub(crate) fn new(kind: SemLockKind, value: u32, maxvalue: u32) -> SemLock {
        let kind = match kind {
            SemLockKind::Semaphore => wit::SemlockKind::Semaphore,
            SemLockKind::RecursiveMutex => wit::SemlockKind::RecursiveMutex,
        };
        SemLock(wit::Semlock::new(kind, value, maxvalue))
    }

    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        Ok(self.0.acquire(nanos(timeout)))
    }

    pub(crate) fn release(&self) -> Result<(), SyncError> {
        self.0.release().map_err(sync_error)
    }

    pub(crate) fn count(&self) -> u32 {
        self.0.count()
    }

    pub(crate) fn is_mine(&self) -> bool {
        self.0.is_mine()
    }

    pub(crate) fn value(&self) -> u32 {
        self.0.get_value()
    }
}

pub(crate) struct SharedMemory(wit::SharedMemory);

impl SharedMemory {
    pub(crate) fn new(size: u32) -> SharedMemory {
        SharedMemory(wit::SharedMemory::new(size))
    }

    pub(crate) fn size(&self) -> u32 {
        self.0.size()
    }

    pub(crate) fn read(&self, offset: u32, len: u32) -> Result<Vec<u8>, SyncError> {
        self.0.read(offset, len).map_err(sync_error)
    }

    pub(crate) fn write(&self, offset: u32, bytes: &[u8]) -> Result<(), SyncError> {
        self.0.write(offset, bytes).map_err(sync_error)
    }
}

pub(crate) fn pass_semlock(process: &Process, lock: &SemLock) -> Result<(), ProcessError> {
    wit::pass_semlock(&process.handle, &lock.0).map_err(process_error)
}

pub(crate) fn pass_shared_memory(process: &Process, memory: &SharedMemory) -> Result<(), ProcessError> {
    wit::pass_shared_memory(&process.handle, &memory.0).map_err(process_error)
}

pub(crate) fn inherited_semlocks() -> Vec<SemLock> {
    wit::inherited_semlocks().into_iter().map(SemLock).collect()
}

pub(crate) fn inherited_shared_memory() -> Vec<SharedMemory> {
    wit::inherited_shared_memory().into_iter().map(SharedMemory).collect()
}
