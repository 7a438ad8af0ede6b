//! Shared memory (the buffer behind `multiprocessing.Value` and `Array`,
//! and a `Barrier`'s state): zeroed bytes the host holds, read and written
//! by every process with a handle, charged to the process that made them
//! until the last handle is gone.

use std::sync::{Arc, Mutex};

use wmp_core::synchronize::{SharedBytes, SyncError};

use crate::base::ledger::Charge;

struct Bytes {
    bytes: Mutex<Vec<u8>>,
    _charge: Charge,
}

/// A handle to shared memory; cloning gives another handle to the same
/// bytes (that is how it is passed to a child).
#[derive(Clone)]
pub struct SharedMemory(Arc<Bytes>);

impl SharedMemory {
    pub(crate) fn new(size: u32, charge: Charge) -> SharedMemory {
        SharedMemory(Arc::new(Bytes { bytes: Mutex::new(vec![0; size as usize]), _charge: charge }))
    }

    pub fn size(&self) -> u32 {
        self.0.bytes.lock().unwrap().len() as u32
    }

    fn out_of_range(&self, offset: u32, len: usize) -> SyncError {
        SyncError::OutOfRange(format!("{len} bytes at {offset} are outside the shared memory's {} bytes", self.size()))
    }
}

impl SharedBytes for SharedMemory {
    fn read(&self, offset: u32, len: u32) -> Result<Vec<u8>, SyncError> {
        let bytes = self.0.bytes.lock().unwrap();
        let range = offset as usize..(offset as usize).saturating_add(len as usize);
        let read = bytes.get(range).map(<[u8]>::to_vec);
        drop(bytes);
        read.ok_or_else(|| self.out_of_range(offset, len as usize))
    }

    fn write(&self, offset: u32, data: &[u8]) -> Result<(), SyncError> {
        let mut bytes = self.0.bytes.lock().unwrap();
        let range = offset as usize..(offset as usize).saturating_add(data.len());
        match bytes.get_mut(range) {
            Some(place) => {
                place.copy_from_slice(data);
                Ok(())
            }
            None => {
                drop(bytes);
                Err(self.out_of_range(offset, data.len()))
            }
        }
    }
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory").field("size", &self.size()).finish()
    }
}
