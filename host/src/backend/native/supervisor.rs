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
//! there), a warning says so once, and the supervisor kills process groups
//! instead: each native child that leads a group of its own tells it its
//! pid over the lifeline (a socket) before its exec, and the host tells it
//! to forget a group once it is empty; when the lifeline ends, the
//! supervisor sends SIGKILL to every group it knows.
//! What a native child starts is in its group unless it leaves it (a new
//! session or group, as a daemon or an interactive shell makes), so only
//! such a process may outlive a killed host there. (A group whose leader
//! was reaped while its members lived is forgotten only when the host
//! sees it empty; a pid the kernel reuses after that could in principle
//! name an unrelated group.)
//!
//! The supervisor is a fork of the host that makes system calls only: it
//! keeps its few fds (and closes every other), blocks every signal it may
//! block, and leaves the host's session, so a signal to the host's group
//! (a terminal's ^C) ends the host and so, through the lifeline, the
//! children. Being a fork, it shares the host's memory pages as they were
//! at the first native start, copy-on-write, for as long as the host
//! lives. Should it die while the host lives (killed from outside), a
//! thread of the host that watches its pidfd reaps it and warns that
//! containment is gone.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The host's containment, while its supervisor runs.
pub(crate) struct Containment {
    /// The cgroup's `cgroup.procs` (a child that writes `0` to it joins);
    /// None where the supervisor kills process groups instead.
    procs: Option<OwnedFd>,
    /// The host's end of the lifeline, closed only when the host ends (or
    /// execs: it is close-on-exec). Written only to tell the supervisor of
    /// process groups: a group's pid (4 bytes, native-endian), by the
    /// child that leads it before its exec, and negated by the host when
    /// it finds the group empty.
    lifeline: OwnedFd,
}

impl Containment {
    /// The `cgroup.procs` a native child writes `0` to before its exec;
    /// None without a cgroup.
    pub(crate) fn procs_fd(&self) -> Option<RawFd> {
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The lifeline a native child that leads its own process group writes
    /// its pid to before its exec, so that the supervisor kills the group
    /// when the host ends; None with a cgroup, which holds it already.
    pub(crate) fn group_lifeline_fd(&self) -> Option<RawFd> {
        self.procs.is_none().then(|| self.lifeline.as_raw_fd())
    }

    /// The group `pgid` led by a native child the host has reaped: if no
    /// process is left in it, the supervisor of groups forgets it (with a
    /// cgroup there is nothing to do).
    pub(crate) fn forget_group_if_empty(&self, pgid: u32) {
        let Some(lifeline) = self.group_lifeline_fd() else { return };
        let pgid = pgid as libc::pid_t;
        // SAFETY: signal 0 only asks whether the group has a process.
        let asked = unsafe { libc::kill(-pgid, 0) };
        if asked == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
            return;
        }
        let forget = (-pgid).to_ne_bytes();
        // SAFETY: a send of 4 bytes from a live buffer on a socket we own;
        // MSG_NOSIGNAL: a supervisor that is gone is no SIGPIPE.
        let sent = unsafe { libc::send(lifeline, forget.as_ptr().cast(), 4, libc::MSG_NOSIGNAL) };
        if sent != 4 {
            tracing::warn!("cannot tell the supervisor to forget process group {pgid}: {}", io::Error::last_os_error());
        }
    }
}

/// The host's containment, set up when first asked for; None where the
/// host cannot have one (not even a supervisor of process groups).
pub(crate) fn containment() -> Option<&'static Containment> {
    static CONTAINMENT: OnceLock<Option<Containment>> = OnceLock::new();
    CONTAINMENT
        .get_or_init(|| {
            let why = match contain() {
                Ok(containment) => {
                    tracing::debug!("native descendants are contained in a cgroup");
                    return Some(containment);
                }
                Err(why) => why,
            };
            match start_group_supervisor() {
                Ok(containment) => {
                    tracing::warn!(
                        "native children cannot be contained in a cgroup ({why}): a supervisor kills their \
                         process groups when the host ends, so a process that leaves its group may outlive a killed host"
                    );
                    Some(containment)
                }
                Err(e) => {
                    tracing::warn!(
                        "native children cannot be contained in a cgroup ({why}), nor by a supervisor ({e}): \
                         a process they start may outlive a killed host"
                    );
                    None
                }
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

/// What the supervisor of a cgroup keeps, at these fd numbers (the
/// supervisor of process groups keeps the lifeline only).
const LIFELINE: RawFd = 0;
const READY: RawFd = 1;
const JOIN: RawFd = 2;
const LEAVE: RawFd = 3;
const KILL: RawFd = 4;
/// Most fds a supervisor keeps.
const KEPT: usize = 5;

/// Most process groups the supervisor of process groups keeps; a group
/// made past them is not killed with the host.
const MAX_GROUPS: usize = 1 << 16;

/// Forks the supervisor of `cgroup` (made under `own`); None if it could
/// not join the cgroup (so neither could a child).
fn start_supervisor(own: &Path, cgroup: &Path) -> io::Result<Option<Containment>> {
    let open_write = |path: PathBuf| std::fs::OpenOptions::new().write(true).open(path).map(OwnedFd::from);
    let procs = open_write(cgroup.join("cgroup.procs"))?;
    let leave = open_write(own.join("cgroup.procs"))?;
    let kill = open_write(cgroup.join("cgroup.kill"))?;
    let (lifeline_end, lifeline) = lifeline()?;
    let (ready_end, ready_write) = pipe()?;
    let dir = CString::new(cgroup.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `supervise_cgroup` makes system calls only, on `dir`.
    let pid = fork_supervisor([&lifeline_end, &ready_write, &procs, &leave, &kill], || unsafe {
        supervise_cgroup(&dir)
    })?;
    drop((lifeline_end, ready_write));
    let mut joined = [0u8];
    let ready = std::fs::File::from(ready_end);
    let joined = std::io::Read::read(&mut &ready, &mut joined).is_ok_and(|n| n == 1) && joined[0] == 1;
    if !joined {
        let _ = super::spawn::reap(pid as u32);
        return Ok(None);
    }
    watch(pid);
    Ok(Some(Containment { procs: Some(procs), lifeline }))
}

/// Forks the supervisor of process groups, for a host without a cgroup.
fn start_group_supervisor() -> io::Result<Containment> {
    let (lifeline_end, lifeline) = lifeline()?;
    // Allocated here: the fork's child may not allocate.
    let mut groups = vec![0 as libc::pid_t; MAX_GROUPS];
    // SAFETY: `supervise_groups` makes system calls only, on `groups`.
    let pid = fork_supervisor([&lifeline_end], move || unsafe { supervise_groups(&mut groups) })?;
    watch(pid);
    Ok(Containment { procs: None, lifeline })
}

/// Warns, and reaps it, if the supervisor dies while the host lives (only
/// a kill from outside ends it early): what native children start may
/// then outlive a killed host, and the host should say so rather than
/// lose its containment silently.
fn watch(pid: libc::pid_t) {
    let Ok(pidfd) = super::reaper::pidfd_open(pid as u32) else { return };
    let watcher = std::thread::Builder::new().name("wmp-supervisor-watch".into()).spawn(move || {
        let mut ended = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd on a live buffer; retried on EINTR.
        while unsafe { libc::poll(&mut ended, 1, -1) } < 0 {}
        let _ = super::spawn::reap(pid as u32);
        tracing::warn!(
            "the supervisor of native children (pid {pid}) has died: \
             what they start may now outlive a killed host"
        );
    });
    if let Err(e) = watcher {
        tracing::warn!("cannot watch the supervisor of native children: {e}");
    }
}

/// Forks a supervisor that keeps `kept` at fds 0, 1, … and closes every
/// other, blocks every signal it may block, leaves the host's session and
/// runs `body`, which must make system calls only and never return (the
/// supervisor exits if it does). Returns its pid.
fn fork_supervisor<const N: usize>(kept: [&OwnedFd; N], body: impl FnOnce()) -> io::Result<libc::pid_t> {
    // Above the numbers the supervisor moves them to, so that no dup2
    // there overwrites one it still has to move.
    let copies = kept.map(above_kept).into_iter().collect::<io::Result<Vec<_>>>()?;
    let fds: Vec<RawFd> = copies.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the child of the fork makes system calls only (here and in
    // `body`), on data prepared before it.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the fork's child, on fds that are open.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            libc::setsid();
            for (target, &fd) in (0..).zip(&fds) {
                libc::dup2(fd, target);
            }
            libc::syscall(libc::SYS_close_range, N as u32, u32::MAX, 0u32);
        }
        body();
        // SAFETY: ends the fork's child.
        unsafe { libc::_exit(1) }
    }
    Ok(pid)
}

/// The lifeline: (the supervisor's end, the host's end), a stream socket
/// pair, so that the host's writes to a supervisor that is gone fail
/// instead of raising SIGPIPE.
fn lifeline() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills the two fds, which nothing else owns.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let [supervisor, host] = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((supervisor, host))
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

/// Reads the lifeline until it ends, passing each record (see
/// [`Containment::lifeline`]) to `record`. System calls only.
///
/// # Safety
/// In a supervisor, with [`LIFELINE`] open.
unsafe fn read_lifeline(mut record: impl FnMut(libc::pid_t)) {
    let mut bytes = [0u8; 4];
    let mut have = 0;
    loop {
        // SAFETY: reads into the unfilled rest of `bytes`.
        let n = unsafe { libc::read(LIFELINE, bytes[have..].as_mut_ptr().cast(), 4 - have) };
        match n {
            0 => return,
            n if n < 0 => {
                // SAFETY: errno of this thread.
                if unsafe { *libc::__errno_location() } != libc::EINTR {
                    return;
                }
            }
            n => {
                have += n as usize;
                if have == 4 {
                    have = 0;
                    record(libc::pid_t::from_ne_bytes(bytes));
                }
            }
        }
    }
}

/// The supervisor of a cgroup: joins it (and says whether it could), waits
/// for the lifeline's end, then leaves the cgroup, kills everything in it
/// and removes it. System calls only.
///
/// # Safety
/// In a supervisor keeping [`LIFELINE`] .. [`KILL`].
unsafe fn supervise_cgroup(cgroup: &CStr) -> ! {
    unsafe {
        let joined = libc::write(JOIN, c"0".as_ptr().cast(), 1) == 1;
        libc::write(READY, [u8::from(joined)].as_ptr().cast(), 1);
        libc::close(READY);
        if !joined {
            libc::_exit(1);
        }
        read_lifeline(|_| {});
        libc::write(LEAVE, c"0".as_ptr().cast(), 1);
        libc::write(KILL, c"1".as_ptr().cast(), 1);
        remove_cgroup(libc::AT_FDCWD, cgroup);
        libc::_exit(0)
    }
}

/// The supervisor of process groups: keeps the groups the host tells it of
/// in `groups` until the lifeline ends, then kills each. System calls only.
///
/// # Safety
/// In a supervisor keeping [`LIFELINE`].
unsafe fn supervise_groups(groups: &mut [libc::pid_t]) -> ! {
    let mut known = 0;
    unsafe {
        read_lifeline(|record| known = record_group(groups, known, record));
        for &pgid in &groups[..known] {
            libc::kill(-pgid, libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Applies one lifeline record to the first `known` of `groups`: a pid
/// adds its group (if there is room), a negated one removes it. Returns
/// how many are known now. Allocates nothing.
fn record_group(groups: &mut [libc::pid_t], known: usize, record: libc::pid_t) -> usize {
    if record > 0 {
        if known == groups.len() {
            return known;
        }
        groups[known] = record;
        return known + 1;
    }
    match groups[..known].iter().position(|&pgid| pgid == -record) {
        Some(at) => {
            groups[at] = groups[known - 1];
            known - 1
        }
        None => known,
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
    fn the_supervisor_of_groups_keeps_those_not_forgotten() {
        let mut groups = [0; 3];
        let mut known = 0;
        for record in [10, 11, 12, 13, -11, -99, 14] {
            known = record_group(&mut groups, known, record);
        }
        let mut kept = groups[..known].to_vec();
        kept.sort_unstable();
        assert_eq!(kept, [10, 12, 14], "13 found no room; 11 was forgotten; 99 was never known");
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
