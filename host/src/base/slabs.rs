//! Fixed-size slots carved out of large shared mappings (slabs), for the
//! dense layout (`RuntimeBuilder::dense_layout`): its linear memories
//! (`slot_memories.rs`) and fiber stacks (`stacks.rs`) are slots, many to a
//! mapping, with no guard region between them, so that a live process adds
//! no memory mapping of its own to the kernel's count (`vm.max_map_count`).
//!
//! A slab is one readable and writable mapping with no swap reserved
//! (`MAP_NORESERVE`): it costs address space, and memory only for the pages
//! touched. Slots are handed out from the newest slab in address order; a
//! slot given back is kept for the next taker (the last one given back is
//! taken first), and its user has given its touched pages back to the
//! kernel before (a slot taken reads as zeros wherever its last user
//! asked). Slabs are never unmapped: the address space of the most slots
//! ever in use at once stays reserved, not resident.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::base::mapping::{self, Mapping};

/// About how many bytes each slab maps (at least one slot).
const SLAB_BYTES: usize = 1 << 30;

/// How many slots of `slot_size` bytes each slab has: a slab is one
/// mapping, whatever the kernel makes of adjacent ones.
pub(crate) fn slots_per_slab(slot_size: usize) -> usize {
    (SLAB_BYTES / slot_size.max(1)).max(1)
}

/// Slots of one size and the slabs they are carved from.
pub(crate) struct Slabs {
    slot_size: usize,
    slots_per_slab: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slabs: Vec<Mapping>,
    /// Addresses of the slots given back, the latest last.
    free: Vec<usize>,
    /// Slots at the end of the newest slab never handed out yet.
    uncarved: usize,
}

impl Slabs {
    /// Slots of `slot_size` bytes, rounded up to the page.
    pub(crate) fn new(slot_size: usize) -> Arc<Slabs> {
        let slot_size = slot_size.max(1).next_multiple_of(mapping::page_size());
        Arc::new(Slabs { slot_size, slots_per_slab: slots_per_slab(slot_size), state: Mutex::default() })
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// A slot no one else holds: the last one given back, else the next of
    /// the newest slab, else the first of a new slab.
    pub(crate) fn take(self: &Arc<Self>) -> std::io::Result<Slot> {
        let mut state = self.state.lock().unwrap();
        let address = match state.free.pop() {
            Some(address) => address,
            None => {
                if state.uncarved == 0 {
                    state.slabs.push(Mapping::read_write(self.slot_size * self.slots_per_slab)?);
                    state.uncarved = self.slots_per_slab;
                }
                let carved = self.slots_per_slab - state.uncarved;
                state.uncarved -= 1;
                state.slabs.last().expect("a slab with uncarved slots").start() as usize + carved * self.slot_size
            }
        };
        let start = NonNull::new(address as *mut u8).expect("slots are inside a mapping");
        Ok(Slot { start, slabs: self.clone() })
    }

    /// How many slots were given back and wait for a taker.
    pub(crate) fn idle(&self) -> usize {
        self.state.lock().unwrap().free.len()
    }
}

/// One slot of a slab, held by one user until it is dropped (then it is
/// kept for the next taker as it is: its user gives back the pages it
/// touched first, with [`discard`](Slot::discard)).
pub(crate) struct Slot {
    start: NonNull<u8>,
    slabs: Arc<Slabs>,
}

// SAFETY: a slot is plain memory inside a slab its `Slabs` keeps mapped,
// used only by whoever holds the value.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

impl Slot {
    /// The first byte.
    pub(crate) fn start(&self) -> *mut u8 {
        self.start.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.slabs.slot_size
    }

    /// Gives the pages of `range` (offsets into the slot, rounded out to
    /// whole pages) back to the kernel: they read as zeros when touched
    /// again.
    ///
    /// # Safety
    ///
    /// Nothing may read or write the range while this runs, and nothing
    /// in it may still be needed (the stack or memory in it is not in use).
    pub(crate) unsafe fn discard(&self, range: std::ops::Range<usize>) {
        let page = mapping::page_size();
        let (start, end) = (range.start / page * page, range.end.min(self.len()).next_multiple_of(page));
        if start < end {
            // SAFETY: the range lies inside this slot, inside a slab, and
            // the caller promises no one uses it.
            unsafe { mapping::discard(self.start().add(start), end - start) };
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slabs.state.lock().unwrap().free.push(self.start.as_ptr() as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_carved_in_address_order_and_the_last_given_back_is_taken_first() {
        let slabs = Slabs::new(100 << 10);
        let size = slabs.slot_size();
        assert_eq!(size, (100usize << 10).next_multiple_of(mapping::page_size()));
        let slots: Vec<Slot> = (0..3).map(|_| slabs.take().unwrap()).collect();
        for pair in slots.windows(2) {
            assert_eq!(pair[1].start() as usize, pair[0].start() as usize + size, "adjacent, no guard between");
        }
        let starts: Vec<*mut u8> = slots.iter().map(Slot::start).collect();
        drop(slots); // given back in order: slot 2 last
        assert_eq!(slabs.idle(), 3);
        let again = slabs.take().unwrap();
        assert_eq!(again.start(), starts[2], "the last given back");
        assert_eq!(slabs.take().unwrap().start(), starts[1], "then the one before");
    }

    #[test]
    fn a_full_slab_is_followed_by_a_new_one_and_no_slot_is_handed_out_twice() {
        let slabs = Slabs::new(SLAB_BYTES / 2);
        let slots: Vec<Slot> = (0..5).map(|_| slabs.take().unwrap()).collect();
        assert_eq!(slabs.state.lock().unwrap().slabs.len(), 3);
        let mut starts: Vec<usize> = slots.iter().map(|slot| slot.start() as usize).collect();
        starts.sort();
        starts.dedup();
        assert_eq!(starts.len(), 5);
    }

    #[test]
    fn a_discarded_slot_reads_as_zeros_to_its_next_taker() {
        let slabs = Slabs::new(4 * mapping::page_size());
        let slot = slabs.take().unwrap();
        // SAFETY: the whole slot is this test's.
        unsafe {
            slot.start().write_bytes(0x5e, slot.len());
            slot.discard(10..2 * mapping::page_size() + 1); // rounded out to pages 0..3
        }
        let start = slot.start();
        drop(slot);
        let again = slabs.take().unwrap();
        assert_eq!(again.start(), start);
        // SAFETY: the slot is this test's.
        let bytes = unsafe { std::slice::from_raw_parts(again.start(), again.len()) };
        let page = mapping::page_size();
        assert!(bytes[..3 * page].iter().all(|&b| b == 0), "discarded");
        assert!(bytes[3 * page..].iter().all(|&b| b == 0x5e), "outside the range: as it was left");
    }
}
