//! How a runtime tells a wmp guest from any other native program: a
//! program linked with `wmp-guest` carries an ELF note (put there by
//! [`declare_wmp_guest!`](crate::declare_wmp_guest)), and before starting
//! a program the runtime looks for it among the executable's section
//! headers. Only a program that carries it is handed an identity and the
//! authkey; any other program (a shell, a tool, a script) gets no handoff
//! fd, so neither it nor anything it starts can read the key.
//!
//! The note is a declaration, not a credential: it says the program reads
//! the handoff (and closes it before its `main` runs), so the key goes no
//! further. Its description is the handoff's version, and a guest of
//! another version is treated as no guest.
//!
//! The scan is three reads at fixed offsets (the ELF64 header, the section
//! header table, the section-name table), written out here rather than
//! taken from a general ELF crate (`object`, `goblin`), which would bring
//! thousands of lines for them.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The section the note is in (the one [`declare_wmp_guest!`](crate::declare_wmp_guest) names).
const GUEST_NOTE_SECTION: &str = ".note.wmp-guest";
/// The version of the handoff a guest reads: bumped whenever a runtime
/// hands off something an older guest would misread.
const HANDOFF_VERSION: u32 = 1;
const NOTE_NAME: [u8; 4] = *b"wmp\0";
const NOTE_TYPE: u32 = 1;

/// The note's bytes, as the ELF `Nhdr` lays them out in the program's own
/// byte order: name size, description size, type, the name `wmp`, and the
/// handoff version as description.
#[doc(hidden)]
pub const GUEST_NOTE: [u32; 5] = [4, 4, NOTE_TYPE, u32::from_ne_bytes(NOTE_NAME), HANDOFF_VERSION];

/// Declares the program that expands it a wmp guest: a static `$name`
/// holding the note, in the section a runtime looks for. Code of the
/// program must refer to `$name`, or the linker may leave it out.
#[doc(hidden)]
#[macro_export]
macro_rules! declare_wmp_guest {
    ($name:ident) => {
        #[used]
        #[unsafe(link_section = ".note.wmp-guest")]
        static $name: [u32; 5] = $crate::GUEST_NOTE;
    };
}

/// Whether the executable at `path` is a wmp guest of this runtime's
/// handoff version. A file that cannot be read or is no ELF64 of this
/// machine's byte order is not.
pub(crate) fn is_wmp_guest(path: &Path) -> bool {
    let version = std::fs::File::open(path).ok().and_then(|file| guest_note_version(&file));
    match version {
        Some(HANDOFF_VERSION) => true,
        Some(other) => {
            tracing::warn!(
                program = %path.display(),
                "a wmp guest of handoff version {other} (this runtime hands off version {HANDOFF_VERSION}): \
                 it starts without an identity"
            );
            false
        }
        None => false,
    }
}

/// Bytes of an executable image at an offset: the file, or a buffer in tests.
trait Image {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    fn read_vec(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        self.read_exact_at(&mut bytes, offset).ok()?;
        Some(bytes)
    }
}

impl Image for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl Image for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let bytes = start.checked_add(buf.len()).and_then(|end| self.get(start..end));
        buf.copy_from_slice(bytes.ok_or(io::ErrorKind::UnexpectedEof)?);
        Ok(())
    }
}

const ELF_HEADER_SIZE: usize = 64;
const SECTION_HEADER_SIZE: usize = 64;
const ELFCLASS64: u8 = 2;
const NATIVE_DATA: u8 = if cfg!(target_endian = "little") { 1 } else { 2 };
/// Larger tables than these are no program's: refused rather than read.
const MAX_SECTIONS: u64 = 1 << 14;
const MAX_NAMES_SIZE: u64 = 1 << 20;

/// The handoff version in the image's wmp-guest note, if it has one.
fn guest_note_version(image: &(impl Image + ?Sized)) -> Option<u32> {
    let mut header = [0u8; ELF_HEADER_SIZE];
    image.read_exact_at(&mut header, 0).ok()?;
    if header[..4] != *b"\x7fELF" || header[4] != ELFCLASS64 || header[5] != NATIVE_DATA {
        return None;
    }
    let table_offset = u64_at(&header, 0x28);
    let (entry_size, count, names_index) = (u16_at(&header, 0x3a), u16_at(&header, 0x3c), u16_at(&header, 0x3e));
    if usize::from(entry_size) != SECTION_HEADER_SIZE || u64::from(count) > MAX_SECTIONS || names_index >= count {
        return None; // no section headers, or an extended count or index no program needs
    }
    let table = image.read_vec(table_offset, u64::from(count) * SECTION_HEADER_SIZE as u64)?;
    let sections: Vec<&[u8]> = table.chunks_exact(SECTION_HEADER_SIZE).collect();
    let names = sections[usize::from(names_index)];
    let names_size = u64_at(names, 0x20);
    if names_size > MAX_NAMES_SIZE {
        return None;
    }
    let names = image.read_vec(u64_at(names, 0x18), names_size)?;
    let wanted = GUEST_NOTE_SECTION.as_bytes();
    let note = sections.iter().find(|section| {
        let start = u32_at(section, 0) as usize;
        names.get(start..).is_some_and(|name| name.strip_prefix(wanted).is_some_and(|rest| rest.first() == Some(&0)))
    })?;
    let mut bytes = [0u8; size_of::<[u32; 5]>()];
    if u64_at(note, 0x20) < bytes.len() as u64 {
        return None;
    }
    image.read_exact_at(&mut bytes, u64_at(note, 0x18)).ok()?;
    let words: [u32; 5] = std::array::from_fn(|i| u32_at(&bytes, 4 * i));
    let [name_size, description_size, kind, name, version] = words;
    (name_size == 4 && description_size == 4 && kind == NOTE_TYPE && name == u32::from_ne_bytes(NOTE_NAME))
        .then_some(version)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image of this machine: the header, then the
    /// section-name table, the note's bytes, and the section headers (a
    /// null one, the names, one section named `section`).
    fn image(section: &str, note: &[u32]) -> Vec<u8> {
        let names = format!("\0.shstrtab\0{section}\0");
        let note: Vec<u8> = note.iter().flat_map(|word| word.to_ne_bytes()).collect();
        let names_at = ELF_HEADER_SIZE;
        let note_at = names_at + names.len();
        let table_at = note_at + note.len();
        let mut elf = vec![0u8; ELF_HEADER_SIZE];
        elf[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', ELFCLASS64, NATIVE_DATA]);
        elf[0x28..0x30].copy_from_slice(&(table_at as u64).to_ne_bytes());
        elf[0x3a..0x3c].copy_from_slice(&(SECTION_HEADER_SIZE as u16).to_ne_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_ne_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_ne_bytes());
        elf.extend_from_slice(names.as_bytes());
        elf.extend_from_slice(&note);
        let header = |name: u32, offset: usize, size: usize| {
            let mut h = [0u8; SECTION_HEADER_SIZE];
            h[..4].copy_from_slice(&name.to_ne_bytes());
            h[0x18..0x20].copy_from_slice(&(offset as u64).to_ne_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_ne_bytes());
            h
        };
        elf.extend_from_slice(&[0u8; SECTION_HEADER_SIZE]);
        elf.extend_from_slice(&header(1, names_at, names.len()));
        elf.extend_from_slice(&header(11, note_at, note.len()));
        elf
    }

    #[test]
    fn the_note_is_found_with_its_version() {
        assert_eq!(guest_note_version(&image(GUEST_NOTE_SECTION, &GUEST_NOTE)[..]), Some(HANDOFF_VERSION));
        let mut newer = GUEST_NOTE;
        newer[4] = 7;
        assert_eq!(guest_note_version(&image(GUEST_NOTE_SECTION, &newer)[..]), Some(7));
    }

    #[test]
    fn only_the_note_in_its_own_section_counts() {
        assert_eq!(guest_note_version(&image(".note.other", &GUEST_NOTE)[..]), None);
        assert_eq!(guest_note_version(&image(".note.wmp-guestx", &GUEST_NOTE)[..]), None, "a longer name");
        let mut other_owner = GUEST_NOTE;
        other_owner[3] = u32::from_ne_bytes(*b"GNU\0");
        assert_eq!(guest_note_version(&image(GUEST_NOTE_SECTION, &other_owner)[..]), None);
        assert_eq!(guest_note_version(&image(GUEST_NOTE_SECTION, &GUEST_NOTE[..4])[..]), None, "too short");
    }

    #[test]
    fn what_is_not_an_elf64_of_this_machine_is_no_guest() {
        let elf = image(GUEST_NOTE_SECTION, &GUEST_NOTE);
        assert_eq!(guest_note_version(&b"#!/bin/sh\nexec true\n"[..]), None);
        assert_eq!(guest_note_version(&elf[..ELF_HEADER_SIZE + 3]), None, "truncated");
        let mut other_class = elf.clone();
        other_class[4] = 1;
        assert_eq!(guest_note_version(&other_class[..]), None);
        let mut other_order = elf;
        other_order[5] = 3 - NATIVE_DATA;
        assert_eq!(guest_note_version(&other_order[..]), None);
    }

    #[test]
    fn real_executables_without_the_note_are_no_guests() {
        // This test binary links wmp-host but not wmp-guest.
        let this = std::env::current_exe().unwrap();
        let file = std::fs::File::open(&this).unwrap();
        let mut header = [0u8; 4];
        Image::read_exact_at(&file, &mut header, 0).unwrap();
        assert_eq!(&header, b"\x7fELF");
        assert!(!is_wmp_guest(&this));
        assert!(!is_wmp_guest(Path::new("/bin/sh")));
        assert!(!is_wmp_guest(Path::new("/no/such/program")));
    }
}
