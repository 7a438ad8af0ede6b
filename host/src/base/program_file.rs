//! Reading a program from its file: only a regular file is opened, and no
//! more of it is read than the cap on program size.

use std::fs::{Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::base::error::{Error, Result};

/// The default cap on the size of a program file
/// ([`RuntimeBuilder::max_program_size`](crate::RuntimeBuilder::max_program_size)):
/// 1 GiB. Real programs are far smaller (a language runtime compiled to a
/// component is tens of MiB; its `.cwasm` artifact or its text format a
/// few times that), and 1 GiB is also the most wasmparser accepts for a
/// module nested in a component. What the cap is for is that no file —
/// one that never ends like `/dev/zero`, or one still growing — makes a
/// load read without bound.
pub const DEFAULT_MAX_PROGRAM_SIZE: u64 = 1 << 30;

/// Reads the program file at `path` (symlinks followed) if it is a regular
/// file of at most `max_size` bytes.
pub(crate) fn read(path: &Path, max_size: u64) -> Result<Vec<u8>> {
    let read_error = |error| Error::Read { path: path.to_owned(), error };
    // Checked before opening: opening a FIFO for reading waits for a
    // writer, and opening a device can act on it.
    refuse_unless_regular(path, &std::fs::metadata(path).map_err(read_error)?)?;
    // Non-blocking, and checked again once open, in case the path was
    // replaced in between: the open then cannot wait either.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(read_error)?;
    refuse_unless_regular(path, &file.metadata().map_err(read_error)?)?;
    read_capped(file, path, max_size)
}

/// Reads a program from `reader` (a stream such as stdin, named `path` in
/// errors) to its end, if that comes within `max_size` bytes.
pub(crate) fn read_capped(reader: impl Read, path: &Path, max_size: u64) -> Result<Vec<u8>> {
    // One byte past the cap tells a program over it, however its file
    // grows while it is read (or whatever size it claims, as /proc files
    // do), and a stream that never ends is not read without bound.
    let mut bytes = Vec::new();
    reader
        .take(max_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| Error::Read { path: path.to_owned(), error })?;
    if bytes.len() as u64 > max_size {
        return Err(Error::ProgramTooLarge { path: path.to_owned(), max_size });
    }
    Ok(bytes)
}

fn refuse_unless_regular(path: &Path, metadata: &Metadata) -> Result<()> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    let kind = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    };
    Err(Error::NotARegularFile { path: path.to_owned(), kind })
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    use super::*;

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wmp-program-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn refusal(path: &Path) -> String {
        match read(path, DEFAULT_MAX_PROGRAM_SIZE) {
            Err(err @ Error::NotARegularFile { .. }) => err.to_string(),
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = scratch("kinds");
        let fifo = dir.join("fifo");
        let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: c_path is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
        let socket = dir.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(refusal(&fifo), format!("cannot load {}: not a regular file (a FIFO)", fifo.display()));
        assert_eq!(refusal(&socket), format!("cannot load {}: not a regular file (a socket)", socket.display()));
        assert_eq!(refusal(&dir), format!("cannot load {}: not a regular file (a directory)", dir.display()));
        assert_eq!(refusal(Path::new("/dev/zero")), "cannot load /dev/zero: not a regular file (a character device)");
        let link = dir.join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(refusal(&link).ends_with("(a character device)"), "a symlink is followed");
        let file = dir.join("file.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        std::os::unix::fs::symlink(&file, dir.join("file-link")).unwrap();
        assert_eq!(read(&dir.join("file-link"), DEFAULT_MAX_PROGRAM_SIZE).unwrap(), b"\0asm");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_naming_the_cap() {
        let dir = scratch("cap");
        let file = dir.join("ten.wasm");
        std::fs::write(&file, [0u8; 10]).unwrap();
        assert_eq!(read(&file, 10).unwrap().len(), 10, "the cap itself is allowed");
        let err = read(&file, 9).unwrap_err();
        assert!(matches!(err, Error::ProgramTooLarge { max_size: 9, .. }), "{err:?}");
        let expected = format!("cannot load {}: larger than the program size limit of 9 bytes", file.display());
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn the_cap_holds_for_a_file_larger_than_it_claims() {
        // A /proc file is a regular file of size 0 with content: only the
        // bytes read can tell how large it is.
        let maps = Path::new("/proc/self/maps");
        assert_eq!(std::fs::metadata(maps).unwrap().len(), 0);
        let err = read(maps, 16).unwrap_err();
        assert!(matches!(err, Error::ProgramTooLarge { max_size: 16, .. }), "{err:?}");
    }
}
