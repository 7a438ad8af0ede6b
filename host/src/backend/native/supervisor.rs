//! Containment of the native processes a host starts and of everything
//! they start, also when the host is SIGKILLed: each native child joins a
//! cgroup (v2) made for this host under the host's own, before it execs,
//! so its descendants are born there too; and a supervisor process,
//! forked once when the first native child starts, holds the reading end
//! of a pipe whose writing end only the host holds. However the host
//! ends, the pipe then reaches EOF, and the supervisor writes `1` to the
//! cgroup's `cgroup.kill`: the kernel kills every process in it and in
//! the cgroups under it (those a native wmp guest made for its own
//! children), also any that left its process group or session. Then it
//! removes those cgroups and exits.
//!
//! Where no cgroup v2 hierarchy lets the host make a cgroup under its own
//! and move processes into it (no `cgroup2` mount, or no right to write
//! there), there is no supervisor, and a warning says so once: a native
//! child still dies with its host (its parent-death signal, see
//! `spawn.rs`) and takes its process group along when stopped, but a
//! process it started may outlive the host.
//!
//! The supervisor is a fork of the host that makes system calls only: it
//! keeps five fds (and closes every other), blocks every signal it may
//! block, and leaves the host's session, so a signal to the host's group
//! (a terminal's ^C) ends the host and so, through the pipe, the children.
//! Being a fork, it shares the host's memory pages as they were at the
//! first native start, copy-on-write, for as long as the host lives.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The host's containment cgroup, while its supervisor runs.
pub(crate) struct Containment {
    /// The cgroup's `cgroup.procs`: a child that writes `0` to it joins.
    procs: OwnedFd,
    /// The pipe's writing end: never written, closed only when the host
    /// ends (or execs: it is close-on-exec).
    _lifeline: OwnedFd,
}

impl Containment {
    /// The `cgroup.procs` a native child writes `0` to before its exec.
    pub(crate) fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }
}

/// The host's containment, set up when first asked for; None where the
/// host cannot have one.
pub(crate) fn containment() -> Option<&'static Containment> {
    static CONTAINMENT: OnceLock<Option<Containment>> = OnceLock::new();
    CONTAINMENT
        .get_or_init(|| match contain() {
            Ok(containment) => {
                tracing::debug!("native descendants are contained in a cgroup");
                Some(containment)
            }
            Err(why) => {
                tracing::warn!(
                    "native children cannot be contained in a cgroup ({why}): \
                     a process they start may outlive a killed host"
                );
                None
            }
        })
        .as_ref()
}

/// Why containment is off.
#[derive(Debug, thiserror::Error)]
enum NoContainment {
    #[error("no cgroup v2 hierarchy holds this process")]
    NoHierarchy,
    #[error("cannot make the cgroup {0}: {1}")]
    Make(PathBuf, io::Error),
    #[error("cannot start the supervisor: {0}")]
    Supervisor(io::Error),
    #[error("the host may not move processes into {0}")]
    CannotJoin(PathBuf),
}

/// The cgroup v2 directory this process is in, from the text of
/// `/proc/self/mountinfo` and `/proc/self/cgroup`.
fn own_cgroup(mountinfo: &str, cgroups: &str) -> Option<PathBuf> {
    let (root, mount_point) = mountinfo.lines().find_map(|line| {
        let (fields, filesystem) = line.split_once(" - ")?;
        if filesystem.split(' ').next()? != "cgroup2" {
            return None;
        }
        let mut fields = fields.split(' ').skip(3);
        Some((unescape(fields.next()?), unescape(fields.next()?)))
    })?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    let below_root = if root == "/" { path } else { path.strip_prefix(root.as_str())? };
    Some(Path::new(&mount_point).join(below_root.trim_start_matches('/')))
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match octal {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Makes the cgroup and starts the supervisor.
fn contain() -> Result<Containment, NoContainment> {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let own = own_cgroup(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup")).ok_or(NoContainment::NoHierarchy)?;
    let cgroup = own.join(format!("wmp-{}", std::process::id()));
    match std::fs::create_dir(&cgroup) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {} // left by a host of the same pid
        Err(e) => return Err(NoContainment::Make(cgroup, e)),
    }
    let started = start_supervisor(&own, &cgroup);
    if !matches!(started, Ok(Some(_))) {
        let _ = std::fs::remove_dir(&cgroup);
    }
    match started {
        Ok(Some(containment)) => Ok(containment),
        Ok(None) => Err(NoContainment::CannotJoin(cgroup)),
        Err(e) => Err(NoContainment::Supervisor(e)),
    }
}

/// What the supervisor keeps, at these fd numbers.
const LIFELINE: RawFd = 0;
const READY: RawFd = 1;
const JOIN: RawFd = 2;
const LEAVE: RawFd = 3;
const KILL: RawFd = 4;
const KEPT: usize = 5;

/// Forks the supervisor of `cgroup` (made under `own`); None if it could
/// not join the cgroup (so neither could a child).
fn start_supervisor(own: &Path, cgroup: &Path) -> io::Result<Option<Containment>> {
    let open_write = |path: PathBuf| std::fs::OpenOptions::new().write(true).open(path).map(OwnedFd::from);
    let procs = open_write(cgroup.join("cgroup.procs"))?;
    let leave = open_write(own.join("cgroup.procs"))?;
    let kill = open_write(cgroup.join("cgroup.kill"))?;
    let (lifeline_end, lifeline) = pipe()?;
    let (ready_end, ready_write) = pipe()?;
    let dir = CString::new(cgroup.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // Above the numbers the supervisor moves them to, so that no dup2
    // there overwrites one it still has to move.
    let kept = [&lifeline_end, &ready_write, &procs, &leave, &kill].map(above_kept).into_iter();
    let kept: [OwnedFd; KEPT] = kept.collect::<io::Result<Vec<_>>>()?.try_into().expect("five fds");
    let fds = kept.each_ref().map(AsRawFd::as_raw_fd);
    // SAFETY: the child of the fork makes system calls only (see
    // `supervise`), on data prepared before it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the fork's child: `fds` are open, `dir` is a C string.
        unsafe { supervise(fds, &dir) }
    }
    drop((kept, lifeline_end, ready_write));
    let mut joined = [0u8];
    let ready = std::fs::File::from(ready_end);
    let joined = std::io::Read::read(&mut &ready, &mut joined).is_ok_and(|n| n == 1) && joined[0] == 1;
    if !joined {
        let _ = super::spawn::reap(pid as u32);
        return Ok(None);
    }
    Ok(Some(Containment { procs, _lifeline: lifeline }))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two fds, which nothing else owns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((read, write))
}

/// A close-on-exec copy of `fd` numbered at least [`KEPT`].
fn above_kept(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl duplicates an fd we own into a fresh one.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, KEPT as RawFd) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The supervisor: joins the cgroup (and says whether it could), waits for
/// the pipe's EOF, then leaves the cgroup, kills everything in it and
/// removes it. System calls only.
///
/// # Safety
/// To be called in the child of a fork, with `fds` open (in the order of
/// [`LIFELINE`] .. [`KILL`], each numbered at least [`KEPT`]).
unsafe fn supervise(fds: [RawFd; KEPT], cgroup: &CStr) -> ! {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::setsid();
        for (target, &fd) in (0..).zip(&fds) {
            libc::dup2(fd, target);
        }
        libc::syscall(libc::SYS_close_range, KEPT as u32, u32::MAX, 0u32);
        let joined = libc::write(JOIN, c"0".as_ptr().cast(), 1) == 1;
        libc::write(READY, [u8::from(joined)].as_ptr().cast(), 1);
        libc::close(READY);
        if !joined {
            libc::_exit(1);
        }
        let mut byte = 0u8;
        loop {
            let n = libc::read(LIFELINE, (&raw mut byte).cast(), 1);
            if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                break;
            }
        }
        libc::write(LEAVE, c"0".as_ptr().cast(), 1);
        libc::write(KILL, c"1".as_ptr().cast(), 1);
        remove_cgroup(libc::AT_FDCWD, cgroup);
        libc::_exit(0)
    }
}

/// Removes the cgroup `name` (relative to `dir`) and the cgroups under it,
/// deepest first, retrying for a while as long as killed processes are
/// still leaving them. System calls only.
///
/// # Safety
/// `dir` is `AT_FDCWD` or an open directory.
unsafe fn remove_cgroup(dir: RawFd, name: &CStr) {
    const RETRY: libc::timespec = libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 };
    unsafe {
        let fd = libc::openat(dir, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut entries = [0u64; 512];
        loop {
            let n = libc::syscall(libc::SYS_getdents64, fd, entries.as_mut_ptr(), size_of_val(&entries));
            if n <= 0 {
                break;
            }
            let bytes = entries.as_ptr().cast::<u8>();
            let mut at = 0;
            while at < n as usize {
                // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
                let entry = bytes.add(at);
                let length = entry.add(16).cast::<u16>().read_unaligned() as usize;
                let child = CStr::from_ptr(entry.add(19).cast());
                if *entry.add(18) == libc::DT_DIR && child != c"." && child != c".." {
                    remove_cgroup(fd, child);
                }
                at += length;
            }
        }
        for _ in 0..500 {
            if libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) == 0 || *libc::__errno_location() != libc::EBUSY {
                break;
            }
            libc::nanosleep(&RETRY, std::ptr::null_mut());
        }
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
24 31 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
35 24 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_own_cgroup_is_found_under_the_cgroup2_mount() {
        let hybrid = "4:memory:/ci/job\n0::/user.slice/wmp.scope\n";
        assert_eq!(own_cgroup(MOUNTINFO, hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified/user.slice/wmp.scope")));
        assert_eq!(own_cgroup(MOUNTINFO, "0::/\n"), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let bound = "50 1 0:38 /ci\\040jobs /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let in_bound_subtree = own_cgroup(bound, "0::/ci jobs/7\n");
        assert_eq!(in_bound_subtree, Some(PathBuf::from("/sys/fs/cgroup/7")), "a bind of a subtree");
        assert_eq!(own_cgroup(bound, "0::/elsewhere\n"), None, "outside the mounted subtree");
    }

    #[test]
    fn without_a_cgroup2_hierarchy_there_is_no_own_cgroup() {
        let v1_only: String = MOUNTINFO.lines().filter(|l| !l.contains("cgroup2")).map(|l| format!("{l}\n")).collect();
        assert_eq!(own_cgroup(&v1_only, "4:memory:/\n0::/\n"), None);
        assert_eq!(own_cgroup(MOUNTINFO, "4:memory:/\n"), None, "no unified entry");
    }

    #[test]
    fn cgroups_are_removed_deepest_first() {
        // Plain directories stand in for cgroups (which hold no files that
        // need removing either).
        let top = std::env::temp_dir().join(format!("wmp-remove-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(top.join("wmp-7/wmp-8")).unwrap();
        std::fs::create_dir_all(top.join("wmp-9")).unwrap();
        let name = CString::new(top.as_os_str().as_bytes()).unwrap();
        // SAFETY: AT_FDCWD and a C string.
        unsafe { remove_cgroup(libc::AT_FDCWD, &name) };
        assert!(!top.exists());
    }
}
