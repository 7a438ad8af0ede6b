//! The `wmp:process/synchronize` WIT imports as the host implements them
//! for a guest: thin adapters to [`SemLock`] and [`SharedMemory`], whose
//! handles are charged to the guest that holds them (and a shared
//! memory's bytes to the guest that made it).

use std::time::Duration;

use wasmtime::component::Resource;
use wmp_core::synchronize::{SemLockKind, SemLockOps, SharedBytes, SyncError};

use crate::backend::wasm::ComponentState;
use crate::backend::wasm::process_imports::bindings::wmp::process::synchronize as wit;
use crate::backend::wasm::process_imports::{WitResult as ProcessResult, wit_error};
use crate::base::ledger::{Held, OBJECT_COST};
use crate::ipc::semlock::SemLock;
use crate::ipc::shared_memory::SharedMemory;
use crate::model::process::Process;

type SyncResult<T> = wasmtime::Result<Result<T, wit::Error>>;

fn sync_result<T>(result: Result<T, SyncError>) -> SyncResult<T> {
    Ok(result.map_err(|err| {
        let message = err.to_string();
        match err {
            SyncError::ReleasedTooManyTimes => wit::Error::ReleasedTooManyTimes(message),
            SyncError::NotOwner => wit::Error::NotOwner(message),
            _ => wit::Error::OutOfRange(message),
        }
    }))
}

fn kind_of(kind: wit::SemlockKind) -> SemLockKind {
    match kind {
        wit::SemlockKind::Semaphore => SemLockKind::Semaphore,
        wit::SemlockKind::RecursiveMutex => SemLockKind::RecursiveMutex,
    }
}

impl ComponentState {
    fn hold_semlock(&mut self, lock: SemLock) -> wasmtime::Result<Resource<SemLock>> {
        self.hold(Held::SyncObjects, OBJECT_COST, lock)
    }

    fn hold_shared_memory(&mut self, memory: SharedMemory) -> wasmtime::Result<Resource<SharedMemory>> {
        self.hold(Held::SyncObjects, OBJECT_COST, memory)
    }
}

impl wit::Host for ComponentState {
    async fn pass_semlock(&mut self, child: Resource<Process>, lock: Resource<SemLock>) -> ProcessResult<()> {
        let child = self.table.get(&child)?.clone();
        Ok(child.pass_semlock(self.table.get(&lock)?).map_err(wit_error))
    }

    async fn pass_shared_memory(&mut self, child: Resource<Process>, memory: Resource<SharedMemory>) -> ProcessResult<()> {
        let child = self.table.get(&child)?.clone();
        Ok(child.pass_shared_memory(self.table.get(&memory)?).map_err(wit_error))
    }

    async fn inherited_semlocks(&mut self) -> wasmtime::Result<Vec<Resource<SemLock>>> {
        let locks = std::mem::take(&mut self.inherited.semlocks);
        locks.into_iter().map(|lock| self.hold_semlock(lock)).collect()
    }

    async fn inherited_shared_memory(&mut self) -> wasmtime::Result<Vec<Resource<SharedMemory>>> {
        let memories = std::mem::take(&mut self.inherited.shared_memory);
        memories.into_iter().map(|memory| self.hold_shared_memory(memory)).collect()
    }
}

impl wit::HostSemlock for ComponentState {
    async fn new(&mut self, kind: wit::SemlockKind, value: u32, maxvalue: u32) -> wasmtime::Result<Resource<SemLock>> {
        let lock = SemLock::new(self.guest.host.handle(), kind_of(kind), value, maxvalue);
        self.hold_semlock(lock)
    }

    async fn acquire(&mut self, lock: Resource<SemLock>, timeout: Option<u64>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&lock)?.acquire_async(timeout.map(Duration::from_nanos)).await)
    }

    async fn release(&mut self, lock: Resource<SemLock>) -> SyncResult<()> {
        sync_result(self.table.get(&lock)?.release())
    }

    async fn count(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&lock)?.count())
    }

    async fn is_mine(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&lock)?.is_mine())
    }

    async fn get_value(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&lock)?.value())
    }

    async fn kind(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<wit::SemlockKind> {
        Ok(match self.table.get(&lock)?.kind() {
            SemLockKind::Semaphore => wit::SemlockKind::Semaphore,
            SemLockKind::RecursiveMutex => wit::SemlockKind::RecursiveMutex,
        })
    }

    async fn maxvalue(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&lock)?.maxvalue())
    }

    async fn drop(&mut self, lock: Resource<SemLock>) -> wasmtime::Result<()> {
        self.release(lock).map(drop)
    }
}

impl wit::HostSharedMemory for ComponentState {
    async fn new(&mut self, size: u32) -> wasmtime::Result<Resource<SharedMemory>> {
        let bytes = self.guest.charge(Held::SyncObjects, size as usize)?;
        self.hold_shared_memory(SharedMemory::new(size, bytes))
    }

    async fn size(&mut self, memory: Resource<SharedMemory>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&memory)?.size())
    }

    async fn read(&mut self, memory: Resource<SharedMemory>, offset: u32, len: u32) -> SyncResult<Vec<u8>> {
        sync_result(self.table.get(&memory)?.read(offset, len))
    }

    async fn write(&mut self, memory: Resource<SharedMemory>, offset: u32, bytes: Vec<u8>) -> SyncResult<()> {
        sync_result(self.table.get(&memory)?.write(offset, &bytes))
    }

    async fn drop(&mut self, memory: Resource<SharedMemory>) -> wasmtime::Result<()> {
        self.release(memory).map(drop)
    }
}
