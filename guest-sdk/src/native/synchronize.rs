//! Semaphore locks and shared memory in a native program (the
//! implementation behind `crate::synchronize`): the host library's own, in
//! this process's runtime. They cannot be passed to a native child: its
//! start fails and says so.

use std::time::Duration;

use wmp_core::ProcessError;
use wmp_core::synchronize::{SemLockKind, SemLockOps, SharedBytes, SyncError};

use super::{Process, runtime};

pub(crate) struct SemLock(wmp_host::SemLock);

impl SemLock {
    pub(crate) fn new(kind: SemLockKind, value: u32, maxvalue: u32) -> SemLock {
        SemLock(runtime().semlock(kind, value, maxvalue))
    }

    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Result<bool, SyncError> {
        self.0.acquire(timeout)
    }

    pub(crate) fn release(&self) -> Result<(), SyncError> {
        self.0.release()
    }

    pub(crate) fn count(&self) -> u32 {
        self.0.count()
    }

    pub(crate) fn is_mine(&self) -> bool {
        self.0.is_mine()
    }

    pub(crate) fn value(&self) -> u32 {
        self.0.value()
    }
}

pub(crate) struct SharedMemory(wmp_host::SharedMemory);

impl SharedMemory {
    pub(crate) fn new(size: u32) -> SharedMemory {
        SharedMemory(runtime().shared_memory(size))
    }

    pub(crate) fn size(&self) -> u32 {
        self.0.size()
    }

    pub(crate) fn read(&self, offset: u32, len: u32) -> Result<Vec<u8>, SyncError> {
        self.0.read(offset, len)
    }

    pub(crate) fn write(&self, offset: u32, bytes: &[u8]) -> Result<(), SyncError> {
        self.0.write(offset, bytes)
    }
}

pub(crate) fn pass_semlock(process: &Process, lock: &SemLock) -> Result<(), ProcessError> {
    process.handle.pass_semlock(&lock.0)
}

pub(crate) fn pass_shared_memory(process: &Process, memory: &SharedMemory) -> Result<(), ProcessError> {
    process.handle.pass_shared_memory(&memory.0)
}

/// A native child is never handed any (see the module docs).
pub(crate) fn inherited_semlocks() -> Vec<SemLock> {
    Vec::new()
}

pub(crate) fn inherited_shared_memory() -> Vec<SharedMemory> {
    Vec::new()
}
