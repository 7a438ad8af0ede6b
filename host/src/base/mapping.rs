//! One private anonymous memory mapping, owned: made, opened for reading
//! and writing in part, its pages given back to the kernel, unmapped when
//! dropped. The guarded fiber stacks (`stacks.rs`) and the slabs of the
//! dense layout (`slabs.rs`) are made of these.

use std::ops::Range;
use std::ptr::NonNull;

/// A private anonymous mapping of `len` bytes (a multiple of the page).
pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by whoever holds the value.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` bytes (rounded up to the page) of address space no code may
    /// touch (`PROT_NONE`) until [`open`](Self::open) opens a part of it.
    pub(crate) fn reserve(len: usize) -> std::io::Result<Mapping> {
        Mapping::new(len, libc::PROT_NONE, 0)
    }

    /// `len` bytes (rounded up to the page), readable and writable, with
    /// no swap reserved for them (`MAP_NORESERVE`): a page takes memory
    /// only once it is touched, so a large mapping costs address space.
    /// Never in transparent huge pages (`MADV_NOHUGEPAGE`), where the
    /// first touch of a small part (a slot) would take 2 MiB.
    pub(crate) fn read_write(len: usize) -> std::io::Result<Mapping> {
        let mapping = Mapping::new(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_NORESERVE)?;
        // SAFETY: advice over exactly the mapping just made.
        if unsafe { libc::madvise(mapping.start().cast(), mapping.len, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(mapping)
    }

    fn new(len: usize, protection: libc::c_int, flags: libc::c_int) -> std::io::Result<Mapping> {
        let len = len.max(1).next_multiple_of(page_size());
        // SAFETY: a fresh private anonymous mapping, no address given.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, protection, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { base: NonNull::new(base.cast()).expect("mmap succeeded"), len })
    }

    /// The first byte.
    pub(crate) fn start(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Makes `range` (page-aligned offsets) readable and writable.
    pub(crate) fn open(&self, range: Range<usize>) -> std::io::Result<()> {
        assert!(range.end <= self.len, "inside the mapping");
        // SAFETY: the range lies inside the mapping, which this value owns.
        let opened = unsafe {
            libc::mprotect(self.start().add(range.start).cast(), range.len(), libc::PROT_READ | libc::PROT_WRITE)
        };
        if opened != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Gives the pages of `len` bytes from `start` (page-aligned) back to the
/// kernel: they read as zeros when touched again, and take no memory
/// until then. The range stays mapped.
///
/// # Safety
///
/// The range must lie inside a private anonymous mapping that nothing
/// reads or writes while this runs and whose contents nobody needs.
pub(crate) unsafe fn discard(start: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller's promise; MADV_DONTNEED on private anonymous
    // memory only drops its pages.
    unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) };
}

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_range_reads_as_zeros_and_stays_mapped() {
        let mapping = Mapping::read_write(3 * page_size()).unwrap();
        // SAFETY: all three pages are inside the mapping, which this test owns.
        unsafe {
            mapping.start().write_bytes(0xaa, mapping.len());
            discard(mapping.start().add(page_size()), page_size());
            assert_eq!(*mapping.start(), 0xaa, "before the range: kept");
            assert_eq!(*mapping.start().add(page_size()), 0, "in it: zeros");
            assert_eq!(*mapping.start().add(2 * page_size()), 0xaa, "after it: kept");
            mapping.start().add(page_size()).write(1); // still writable
        }
    }

    #[test]
    fn a_read_write_mapping_is_never_in_huge_pages() {
        let mapping = Mapping::read_write(8 << 20).unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The entry whose range holds the mapping (it may have merged with
        // a neighbour), up to its flags.
        let address = mapping.start() as usize;
        let holds = |line: &str| {
            let range = line.split_whitespace().next().and_then(|range| range.split_once('-'));
            range.is_some_and(|(start, end)| {
                let parse = |hex| usize::from_str_radix(hex, 16).unwrap_or(0);
                (parse(start)..parse(end)).contains(&address)
            })
        };
        let mut lines = smaps.lines().skip_while(|line| !holds(line));
        let flags = lines.find_map(|line| line.strip_prefix("VmFlags:")).expect("the mapping and its flags");
        assert!(flags.split_whitespace().any(|flag| flag == "nh"), "no huge pages: {flags}");
    }

    #[test]
    fn a_reserved_mapping_is_opened_in_part() {
        let mapping = Mapping::reserve(2 * page_size() + 1).unwrap();
        assert_eq!(mapping.len(), 3 * page_size(), "rounded up to the page");
        mapping.open(page_size()..3 * page_size()).unwrap();
        // SAFETY: the opened part lies inside the mapping.
        unsafe { mapping.start().add(page_size()).write(1) };
    }
}
