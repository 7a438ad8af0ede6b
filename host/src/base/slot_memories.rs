//! Linear memories of the dense layout (`RuntimeBuilder::dense_layout`):
//! wasmtime's `MemoryCreator` giving each memory a slot of a slab
//! (`slabs.rs`), as large as the most a memory may have, with no guard
//! region. The code of a dense runtime checks every access against the
//! memory's size (it is compiled with no reservation and no guard, see
//! `engines.rs`), so a guest reaches only its own memory.
//!
//! A memory never moves: its capacity is its slot, and a growth past it
//! fails (as one past a memory's maximum: `memory.grow` returns -1). When
//! the memory is dropped, the pages it may have touched (up to the largest
//! size it had) are given back to the kernel, so the next memory in the
//! slot starts as zeros.

use std::sync::Arc;

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use crate::base::slabs::{Slabs, Slot};

/// Memories in slots of one size.
pub(crate) struct SlotMemories {
    slabs: Arc<Slabs>,
}

impl SlotMemories {
    /// Memories of at most `slot_size` bytes each (rounded up to the page).
    pub(crate) fn new(slot_size: usize) -> SlotMemories {
        SlotMemories { slabs: Slabs::new(slot_size) }
    }
}

// SAFETY: every memory handed out is a slot of `slot_size` bytes that no
// other memory or stack holds until this one is dropped, zero-filled (a
// slot is fresh or was discarded up to its last memory's size), and never
// moves. It has no guard region, so a memory is refused to code compiled
// to rely on one (a guard, or a reservation past the slot): wasmtime must
// check every access itself.
unsafe impl MemoryCreator for SlotMemories {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        _maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let slot_size = self.slabs.slot_size();
        if guard_size_in_bytes != 0 || reserved_size_in_bytes.is_some_and(|reserved| reserved > slot_size) {
            return Err(format!(
                "a memory slot of the dense layout has no guard region: code compiled for a reservation of \
                 {reserved_size_in_bytes:?} bytes and a guard of {guard_size_in_bytes} cannot use it"
            ));
        }
        if minimum > slot_size {
            return Err(format!("a memory of {minimum} bytes does not fit a slot of {slot_size}"));
        }
        let slot = self.slabs.take().map_err(|error| format!("cannot map a slab for memories: {error}"))?;
        Ok(Box::new(SlotMemory { slot, byte_size: minimum, largest: minimum }))
    }
}

/// One linear memory in its slot.
struct SlotMemory {
    slot: Slot,
    /// What wasm may reach now.
    byte_size: usize,
    /// The largest `byte_size` it had: what it may have touched.
    largest: usize,
}

// SAFETY: the memory is the slot this value holds alone: `as_ptr` is its
// start for as long as the value lives (it never moves), and `byte_size`
// never passes `byte_capacity`, the slot's size.
unsafe impl LinearMemory for SlotMemory {
    fn byte_size(&self) -> usize {
        self.byte_size
    }

    fn byte_capacity(&self) -> usize {
        self.slot.len()
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size > self.slot.len() {
            wasmtime::bail!("a memory cannot grow past its slot of {} bytes", self.slot.len());
        }
        self.byte_size = new_size;
        self.largest = self.largest.max(new_size);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.slot.start()
    }
}

impl Drop for SlotMemory {
    fn drop(&mut self) {
        // SAFETY: the memory is dropped with its instance, so nothing uses
        // it any more; nothing was written past the largest size it had.
        unsafe { self.slot.discard(0..self.largest) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 64 << 10;

    fn memory(memories: &SlotMemories, minimum: usize) -> Result<Box<dyn LinearMemory>, String> {
        memories.new_memory(MemoryType::new(1, None), minimum, None, Some(0), 0)
    }

    #[test]
    fn a_memory_grows_within_its_slot_and_not_past_it() {
        let memories = SlotMemories::new(4 * PAGE);
        let mut memory = memory(&memories, PAGE).unwrap();
        let base = memory.as_ptr();
        assert_eq!((memory.byte_size(), memory.byte_capacity()), (PAGE, 4 * PAGE));
        memory.grow_to(4 * PAGE).unwrap();
        assert_eq!(memory.as_ptr(), base, "it never moves");
        let refused = memory.grow_to(5 * PAGE).unwrap_err();
        assert_eq!(refused.to_string(), format!("a memory cannot grow past its slot of {} bytes", 4 * PAGE));
        assert_eq!(memory.byte_size(), 4 * PAGE, "unchanged by the refused growth");
    }

    #[test]
    fn the_next_memory_in_a_slot_finds_zeros() {
        let memories = SlotMemories::new(4 * PAGE);
        let mut memory = memory(&memories, PAGE).unwrap();
        memory.grow_to(3 * PAGE).unwrap();
        // SAFETY: the first three pages are the memory's.
        unsafe { memory.as_ptr().write_bytes(0x5e, 3 * PAGE) };
        let base = memory.as_ptr();
        drop(memory);
        let next = self::memory(&memories, PAGE).unwrap();
        assert_eq!(next.as_ptr(), base, "the same slot");
        // SAFETY: the whole slot is the new memory's to grow into.
        let bytes = unsafe { std::slice::from_raw_parts(next.as_ptr(), 4 * PAGE) };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn code_relying_on_a_guard_or_a_memory_larger_than_a_slot_is_refused() {
        let memories = SlotMemories::new(4 * PAGE);
        let ty = MemoryType::new(1, None);
        assert!(memories.new_memory(ty.clone(), PAGE, None, Some(0), PAGE).is_err(), "a guard");
        assert!(memories.new_memory(ty.clone(), PAGE, None, Some(4 << 30), 0).is_err(), "a 4 GiB reservation");
        let too_big = memory(&memories, 5 * PAGE).err().unwrap();
        assert_eq!(too_big, format!("a memory of {} bytes does not fit a slot of {}", 5 * PAGE, 4 * PAGE));
    }
}
