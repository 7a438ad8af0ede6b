//! Owning a native child until it is reaped: the signals a stop sends
//! (to the process group it leads), its pidfd, reaping it (with what the
//! kernel says it used), and what its wait status means as an exit reason.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use super::{spawn, supervisor};
use crate::base::exit::ExitReason;

pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

/// Owns an unreaped child: signals go to it (and to the process group it
/// leads), and dropping it before the child was reaped kills and reaps it,
/// so no zombie is ever left.
pub(super) struct Reaper {
    /// The child, until it is reaped.
    pid: Option<u32>,
    leads_group: bool,
}

impl Reaper {
    pub(super) fn new(pid: u32, leads_group: bool) -> Reaper {
        Reaper { pid: Some(pid), leads_group }
    }

    /// The child is reaped: its group is left to the containment only
    /// while something is still in it.
    fn reaped(&self, pid: u32) {
        if let Some(containment) = supervisor::containment().filter(|_| self.leads_group) {
            containment.forget_group_if_empty(pid);
        }
    }

    fn send(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid {
            let pid = pid as libc::pid_t;
            // SAFETY: the child is not reaped, so its pid (and the group it
            // leads) is still its own.
            unsafe { libc::kill(if self.leads_group { -pid } else { pid }, signal) };
        }
    }

    pub(super) fn signal(&self, reason: &ExitReason) {
        self.send(match reason {
            ExitReason::Terminated => libc::SIGTERM,
            _ => libc::SIGKILL,
        });
    }

    /// Reaps the child, which has exited (its pidfd is readable).
    pub(super) fn reap(&mut self) -> io::Result<(ExitStatus, Usage)> {
        let pid = self.pid.take().expect("reaped once");
        let reaped = spawn::reap(pid).map(|(status, usage)| (ExitStatus::from_raw(status), Usage::of(&usage)));
        self.reaped(pid);
        reaped
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.send(libc::SIGKILL);
        if let Some(pid) = self.pid.take() {
            let _ = spawn::reap(pid);
            self.reaped(pid);
        }
    }
}

/// What a reaped child used, as the kernel reports it (its own and that
/// of the descendants it reaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    /// User and system CPU time.
    pub(super) cpu_time: Duration,
    /// Peak resident set size, in bytes.
    pub(super) max_rss: usize,
}

impl Usage {
    fn of(usage: &libc::rusage) -> Usage {
        let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Usage {
            cpu_time: time(usage.ru_utime) + time(usage.ru_stime),
            max_rss: (usage.ru_maxrss as usize).saturating_mul(1024), // KiB on Linux
        }
    }
}

/// CPython's reading of a wait status: the exit code, or the signal that
/// ended it (with the stop reason it was asked for, if it was ours).
pub(super) fn exit_reason(status: ExitStatus, requested: Option<ExitReason>) -> ExitReason {
    if let Some(code) = status.code() {
        return ExitReason::Exit(code);
    }
    match status.signal() {
        Some(libc::SIGTERM) => ExitReason::Terminated,
        Some(libc::SIGKILL) => match requested {
            Some(ExitReason::Limit(limit)) => ExitReason::Limit(limit),
            _ => ExitReason::Killed,
        },
        Some(signal) => ExitReason::Signaled(signal),
        None => ExitReason::Exit(status.into_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::limits::Limit;

    /// A wait status: exited with `code`, or killed by `signal`.
    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn killed_by(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    #[test]
    fn a_wait_status_reads_as_cpython_reads_it() {
        assert_eq!(exit_reason(exited(0), None), ExitReason::Exit(0));
        assert_eq!(exit_reason(exited(3), Some(ExitReason::Killed)), ExitReason::Exit(3), "it exited first");
        assert_eq!(exit_reason(killed_by(libc::SIGTERM), None), ExitReason::Terminated);
        assert_eq!(exit_reason(killed_by(libc::SIGKILL), None), ExitReason::Killed);
        let timeout = Some(ExitReason::Limit(Limit::Timeout));
        assert_eq!(exit_reason(killed_by(libc::SIGKILL), timeout), ExitReason::Limit(Limit::Timeout));
        assert_eq!(exit_reason(killed_by(libc::SIGSEGV), None), ExitReason::Signaled(libc::SIGSEGV));
    }

    #[test]
    fn a_reaped_child_reports_the_cpu_time_and_memory_it_used() {
        // A 32 MiB buffer, filled 20 times over.
        let child = std::process::Command::new("dd")
            .args(["if=/dev/zero", "of=/dev/null", "bs=32M", "count=20"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::mem::forget(child); // the reaper owns it now
        let (status, usage) = Reaper::new(pid, false).reap().unwrap();
        assert_eq!(status.code(), Some(0));
        assert!(usage.cpu_time > Duration::ZERO, "{usage:?}");
        assert!(usage.max_rss >= 32 << 20, "{usage:?}");
    }

    #[test]
    fn a_reaper_dropped_before_the_reap_kills_and_reaps_its_child() {
        let child = std::process::Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        std::mem::forget(child); // the reaper owns it now
        let pidfd = pidfd_open(pid).unwrap();
        drop(Reaper::new(pid, false));
        // Reaped: its pidfd has no process behind it any more.
        let mut poll = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&pidfd), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd on a live buffer.
        assert_eq!(unsafe { libc::poll(&mut poll, 1, 0) }, 1, "the child has exited");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "and was reaped, no zombie");
    }
}
