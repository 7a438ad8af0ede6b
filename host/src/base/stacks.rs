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
//! A recycled stack keeps at most [`KEPT_RESIDENT`] bytes at its top in
//! memory (a deep recursion's pages are given back to the kernel), and at
//! most [`MAX_IDLE_STACKS`] stacks wait here; past that they are unmapped.
//! Reusing a stack without zeroing it is what wasmtime's pooling allocator
//! does too: wasm code cannot read its native stack.

use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use wasmtime::{StackCreator, StackMemory};

/// Most idle stacks kept for reuse.
const MAX_IDLE_STACKS: usize = 128;

/// Bytes at the top of an idle stack (where every call starts) left
/// resident; the rest is discarded when the stack comes back.
const KEPT_RESIDENT: usize = 64 << 10;

/// One stack's mapping: a guard page, then `size` bytes of stack.
struct Mapping {
    base: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is plain memory owned by whoever holds the value.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(size: usize) -> std::io::Result<Mapping> {
        let page = page_size();
        let size = size.max(1).next_multiple_of(page);
        // SAFETY: a fresh private anonymous mapping, no address given.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), size + page, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mapping = Mapping { base: NonNull::new(base.cast()).expect("mmap succeeded"), size };
        // SAFETY: the range lies inside the mapping just made.
        if unsafe { libc::mprotect(mapping.stack_start().cast(), size, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(mapping)
    }

    fn stack_start(&self) -> *mut u8 {
        self.base.as_ptr().wrapping_add(page_size())
    }

    /// Gives the pages of `range` (offsets into the stack) back to the
    /// kernel; they read as zeros when touched again.
    fn discard(&self, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        // SAFETY: the range lies inside the stack part of the mapping,
        // which no fiber uses while the stack is being recycled.
        unsafe { libc::madvise(self.stack_start().add(range.start).cast(), range.len(), libc::MADV_DONTNEED) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size + page_size()) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The stacks waiting to be reused (all of one size: the engine's
/// `async_stack_size`).
#[derive(Default)]
pub(crate) struct StackRecycler {
    idle: Arc<Mutex<Vec<Mapping>>>,
}

// SAFETY: every stack handed out is a mapping with a guard page below it,
// page aligned, used by one fiber at a time (it is back here only once the
// `StackMemory` holding it is dropped).
unsafe impl StackCreator for StackRecycler {
    fn new_stack(&self, size: usize, zeroed: bool) -> wasmtime::Result<Box<dyn StackMemory>> {
        let reused = {
            let mut idle = self.idle.lock().unwrap();
            idle.iter().position(|m| m.size >= size).map(|i| idle.swap_remove(i))
        };
        let mapping = match reused {
            Some(mapping) => {
                if zeroed {
                    mapping.discard(0..mapping.size);
                }
                mapping
            }
            None => Mapping::new(size)?,
        };
        Ok(Box::new(RecycledStack { mapping: Some(mapping), idle: self.idle.clone() }))
    }
}

/// A stack in use; dropped, it goes back to the idle list.
struct RecycledStack {
    mapping: Option<Mapping>,
    idle: Arc<Mutex<Vec<Mapping>>>,
}

impl RecycledStack {
    fn mapping(&self) -> &Mapping {
        self.mapping.as_ref().expect("taken only on drop")
    }
}

// SAFETY: `top`, `range` and `guard_range` describe the mapping this value
// owns until it is dropped.
unsafe impl StackMemory for RecycledStack {
    fn top(&self) -> *mut u8 {
        let mapping = self.mapping();
        mapping.stack_start().wrapping_add(mapping.size)
    }

    fn range(&self) -> Range<usize> {
        let start = self.mapping().stack_start() as usize;
        start..start + self.mapping().size
    }

    fn guard_range(&self) -> Range<*mut u8> {
        let mapping = self.mapping();
        mapping.base.as_ptr()..mapping.stack_start()
    }
}

impl Drop for RecycledStack {
    fn drop(&mut self) {
        let Some(mapping) = self.mapping.take() else { return };
        mapping.discard(0..mapping.size.saturating_sub(KEPT_RESIDENT));
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE_STACKS {
            idle.push(mapping);
        }
        // Otherwise the mapping is unmapped as it drops (after the guard).
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
        let recycler = StackRecycler::default();
        let first = recycler.new_stack(SIZE, false).unwrap();
        let top = first.top();
        assert_eq!(first.range().len(), SIZE);
        assert_eq!(first.range().start, first.guard_range().end as usize, "the guard is right below");
        assert_eq!(first.guard_range().end as usize - first.guard_range().start as usize, page_size());
        drop(first);
        let second = recycler.new_stack(SIZE, false).unwrap();
        assert_eq!(second.top(), top, "the same mapping, not a new one");
        let third = recycler.new_stack(SIZE, false).unwrap();
        assert_ne!(third.top(), top, "a stack in use is not handed out twice");
    }

    #[test]
    fn the_top_stays_resident_and_the_depths_are_given_back() {
        let recycler = StackRecycler::default();
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
    fn idle_stacks_are_capped() {
        let recycler = StackRecycler::default();
        let stacks: Vec<_> = (0..MAX_IDLE_STACKS + 5).map(|_| recycler.new_stack(SIZE, false).unwrap()).collect();
        drop(stacks);
        assert_eq!(recycler.idle.lock().unwrap().len(), MAX_IDLE_STACKS);
    }
}
