//! Fiber stacks for guests, recycled from one process to the next.
//!
//! Every guest runs on a fiber stack of its own (wasmtime's async calls),
//! and wasmtime's default allocator maps a fresh stack per store and
//! unmaps it when the store is dropped. Unmapping frees page tables, and
//! the kernel then has to interrupt every other core that has run this
//! host's threads to flush its TLB; on a VM with idle cores that
//! interrupt waits for a halted vCPU to wake, and it was most of the cost
//! of starting a short guest (measured with `perf`: `munmap` from
//! `deallocate_fiber_stack` in `smp_call_function_many_cond`). So ended
//! processes give their stacks back here, and new ones take them: no
//! mapping, no unmapping, no page-table teardown.
//!
//! Stacks come in two layouts ([`StackSource`]): by default each is a
//! mapping of its own with a guard page below it ([`GuardedStacks`]), so
//! host code that overflows the stack faults; in the dense layout
//! (`RuntimeBuilder::dense_layout`) stacks are slots of shared slabs
//! (`slabs.rs`) with no guard page ([`SlabStacks`]), so a live process adds
//! no mapping of its own. Wasm code cannot overflow either way: wasmtime
//! checks its depth (`max_wasm_stack`) in software. Host code running on
//! the fiber (WASI and host functions) has `async_stack_size -
//! max_wasm_stack` bytes below the deepest wasm frame, and in the dense
//! layout nothing would catch it going past them.
//!
//! A recycled stack keeps at most [`KEPT_RESIDENT`] bytes at its top in
//! memory (a deep recursion's pages are given back to the kernel), and at
//! most [`MAX_IDLE_STACKS`] idle stacks keep theirs: past that, a guarded
//! stack is unmapped, and a slab stack gives back all its pages.
//! Reusing a stack without zeroing it is what wasmtime's pooling allocator
//! does too: wasm code cannot read its native stack.

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::{StackCreator, StackMemory};

use crate::base::mapping::{self, Mapping};
use crate::base::slabs::{Slabs, Slot};

/// Most idle stacks that keep their top resident.
const MAX_IDLE_STACKS: usize = 128;

/// Bytes at the top of an idle stack (where every call starts) left
/// resident; the rest is discarded when the stack comes back.
const KEPT_RESIDENT: usize = 64 << 10;

/// The memory of one stack.
pub(crate) trait StackArea: Send + Sync + 'static {
    /// Its lowest byte.
    fn start(&self) -> *mut u8;
    fn len(&self) -> usize;
    /// The protected pages below it (empty if it has none).
    fn guard_range(&self) -> Range<*mut u8>;
    /// Gives the pages of `range` (offsets into the stack) back to the
    /// kernel; they read as zeros when touched again.
    ///
    /// # Safety
    ///
    /// No fiber may be using the stack.
    unsafe fn discard(&self, range: Range<usize>);
}

/// Where stacks come from and go back to.
pub(crate) trait StackSource: Send + Sync + 'static {
    type Area: StackArea;
    /// A stack of at least `size` bytes no one else holds.
    fn take(&self, size: usize) -> std::io::Result<Self::Area>;
    /// A stack no longer in use, its depths already discarded.
    fn give_back(&self, area: Self::Area);
}

/// wasmtime's stack creator over a [`StackSource`].
#[derive(Default)]
pub(crate) struct StackRecycler<S> {
    source: Arc<S>,
}

// SAFETY: every stack handed out is a page-aligned area of the source that
// no other stack overlaps and that one fiber uses at a time (it goes back
// only once the `StackMemory` holding it is dropped). A slab stack has no
// guard page (the dense layout's documented trade: see the module
// documentation).
unsafe impl<S: StackSource> StackCreator for StackRecycler<S> {
    fn new_stack(&self, size: usize, zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        let area = self.source.take(size)?;
        if zeroed {
            // SAFETY: the stack was idle or new: no fiber uses it yet.
            unsafe { area.discard(0..area.len()) };
        }
        Ok(Box::new(RecycledStack { area: Some(area), source: self.source.clone() }))
    }
}

/// A stack in use; dropped, it goes back to its source.
struct RecycledStack<S: StackSource> {
    area: Option<S::Area>,
    source: Arc<S>,
}

impl<S: StackSource> RecycledStack<S> {
    fn area(&self) -> &S::Area {
        self.area.as_ref().expect("taken only on drop")
    }
}

// SAFETY: `top`, `range` and `guard_range` describe the area this value
// owns until it is dropped.
unsafe impl<S: StackSource> StackMemory for RecycledStack<S> {
    fn top(&self) -> *mut u8 {
        self.area().start().wrapping_add(self.area().len())
    }

    fn range(&self) -> Range<usize> {
        let start = self.area().start() as usize;
        start..start + self.area().len()
    }

    fn guard_range(&self) -> Range<*mut u8> {
        self.area().guard_range()
    }
}

impl<S: StackSource> Drop for RecycledStack<S> {
    fn drop(&mut self) {
        let Some(area) = self.area.take() else { return };
        // SAFETY: wasmtime drops a stack once its fiber is done with it.
        unsafe { area.discard(0..area.len().saturating_sub(KEPT_RESIDENT)) };
        self.source.give_back(area);
    }
}

/// Stacks that are mappings of their own, each with a guard page below.
#[derive(Default)]
pub(crate) struct GuardedStacks {
    idle: Mutex<Vec<GuardedStack>>,
}

/// A guard page, then the stack.
pub(crate) struct GuardedStack {
    mapping: Mapping,
}

impl StackArea for GuardedStack {
    fn start(&self) -> *mut u8 {
        self.mapping.start().wrapping_add(mapping::page_size())
    }

    fn len(&self) -> usize {
        self.mapping.len() - mapping::page_size()
    }

    fn guard_range(&self) -> Range<*mut u8> {
        self.mapping.start()..self.start()
    }

    unsafe fn discard(&self, range: Range<usize>) {
        // SAFETY: the range lies inside the stack part of the mapping,
        // which the caller promises no fiber uses.
        unsafe { mapping::discard(self.start().add(range.start), range.len()) }
    }
}

impl StackSource for GuardedStacks {
    type Area = GuardedStack;

    fn take(&self, size: usize) -> std::io::Result<GuardedStack> {
        let reused = {
            let mut idle = self.idle.lock().unwrap();
            idle.iter().position(|stack| stack.len() >= size).map(|i| idle.swap_remove(i))
        };
        if let Some(stack) = reused {
            return Ok(stack);
        }
        let page = mapping::page_size();
        let size = size.max(1).next_multiple_of(page);
        let mapping = Mapping::reserve(size + page)?;
        mapping.open(page..page + size)?;
        Ok(GuardedStack { mapping })
    }

    fn give_back(&self, stack: GuardedStack) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE_STACKS {
            idle.push(stack);
        }
        // Otherwise the mapping is unmapped as it drops (after the guard).
    }
}

/// Stacks carved from shared slabs, with no guard pages; all of the size
/// first asked for (the engine's `async_stack_size`).
#[derive(Default)]
pub(crate) struct SlabStacks {
    slabs: OnceLock<Arc<Slabs>>,
}

impl StackArea for Slot {
    fn start(&self) -> *mut u8 {
        Slot::start(self)
    }

    fn len(&self) -> usize {
        Slot::len(self)
    }

    fn guard_range(&self) -> Range<*mut u8> {
        std::ptr::null_mut()..std::ptr::null_mut()
    }

    unsafe fn discard(&self, range: Range<usize>) {
        // SAFETY: the caller promises no fiber uses the stack.
        unsafe { Slot::discard(self, range) }
    }
}

impl StackSource for SlabStacks {
    type Area = Slot;

    fn take(&self, size: usize) -> std::io::Result<Slot> {
        let slabs = self.slabs.get_or_init(|| Slabs::new(size));
        if size > slabs.slot_size() {
            return Err(std::io::Error::other(format!("no stack of {size} bytes: slab stacks have {}", slabs.slot_size())));
        }
        slabs.take()
    }

    fn give_back(&self, stack: Slot) {
        let slabs = self.slabs.get().expect("a stack was taken");
        if slabs.idle() >= MAX_IDLE_STACKS {
            // SAFETY: a stack given back is no longer in use.
            unsafe { StackArea::discard(&stack, 0..stack.len()) };
        }
        // Dropped, the slot waits for the next taker.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 1 << 20;

    fn write(stack: &dyn StackMemory, offset_from_top: usize, byte: u8) {
        // SAFETY: the offset lies inside the stack's range.
        unsafe { stack.top().sub(offset_from_top).write_volatile(byte) }
    }

    fn read(stack: &dyn StackMemory, offset_from_top: usize) -> u8 {
        // SAFETY: the offset lies inside the stack's range.
        unsafe { stack.top().sub(offset_from_top).read_volatile() }
    }

    #[test]
    fn a_stack_is_reused_with_its_guard_page() {
        let recycler = StackRecycler::<GuardedStacks>::default();
        let first = recycler.new_stack(SIZE, false).unwrap();
        let top = first.top();
        assert_eq!(first.range().len(), SIZE);
        assert_eq!(first.range().start, first.guard_range().end as usize, "the guard is right below");
        assert_eq!(first.guard_range().end as usize - first.guard_range().start as usize, mapping::page_size());
        drop(first);
        let second = recycler.new_stack(SIZE, false).unwrap();
        assert_eq!(second.top(), top, "the same mapping, not a new one");
        let third = recycler.new_stack(SIZE, false).unwrap();
        assert_ne!(third.top(), top, "a stack in use is not handed out twice");
    }

    /// What both layouts do with a stack that comes back.
    fn the_top_stays_resident_and_the_depths_are_given_back<S: StackSource + Default>() {
        let recycler = StackRecycler::<S>::default();
        let stack = recycler.new_stack(SIZE, false).unwrap();
        write(&*stack, 8, 0xaa);
        write(&*stack, SIZE - 8, 0xbb);
        drop(stack);
        let stack = recycler.new_stack(SIZE, false).unwrap();
        assert_eq!(read(&*stack, 8), 0xaa, "kept: a reused stack is not zeroed");
        assert_eq!(read(&*stack, SIZE - 8), 0, "discarded below the kept top");
        write(&*stack, 8, 0xaa);
        drop(stack);
        let stack = recycler.new_stack(SIZE, true).unwrap();
        assert_eq!(read(&*stack, 8), 0, "zeroed when asked");
    }

    #[test]
    fn a_guarded_stack_keeps_its_top_resident_and_gives_back_its_depths() {
        the_top_stays_resident_and_the_depths_are_given_back::<GuardedStacks>();
    }

    #[test]
    fn a_slab_stack_keeps_its_top_resident_and_gives_back_its_depths() {
        the_top_stays_resident_and_the_depths_are_given_back::<SlabStacks>();
    }

    #[test]
    fn idle_guarded_stacks_are_capped() {
        let recycler = StackRecycler::<GuardedStacks>::default();
        let stacks: Vec<_> = (0..MAX_IDLE_STACKS + 5).map(|_| recycler.new_stack(SIZE, false).unwrap()).collect();
        drop(stacks);
        assert_eq!(recycler.source.idle.lock().unwrap().len(), MAX_IDLE_STACKS);
    }

    #[test]
    fn slab_stacks_are_adjacent_without_guards_and_idle_ones_past_the_cap_keep_nothing_resident() {
        let recycler = StackRecycler::<SlabStacks>::default();
        let stacks: Vec<_> = (0..MAX_IDLE_STACKS + 1).map(|_| recycler.new_stack(SIZE, false).unwrap()).collect();
        assert_eq!(stacks[1].range().start, stacks[0].range().end, "no guard between them");
        assert!(stacks[0].guard_range().is_empty());
        stacks.iter().for_each(|stack| write(&**stack, 8, 0xaa));
        drop(stacks); // the last one comes back with the cap's worth idle already
        let last = recycler.new_stack(SIZE, false).unwrap();
        assert_eq!(read(&*last, 8), 0, "past the cap: discarded whole");
        let before = recycler.new_stack(SIZE, false).unwrap();
        assert_eq!(read(&*before, 8), 0xaa, "within the cap: its top kept");
    }
}
