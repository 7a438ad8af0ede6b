//! Sentinels: the "has this process ended?" signal of every started process,
//! awaitable from async code, waitable from blocking code, and pollable from
//! an embedder's own event loop through a raw eventfd.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::base::exit::ExitReason;
use crate::base::watched::Watched;
use crate::ipc::wait::{Waitable, wait_ready};

/// Where a process publishes its end, exactly once.
pub(crate) struct ExitCell {
    reason: Watched<Option<ExitReason>>,
    /// Made on first request only: most processes are never polled from
    /// outside, and an fd per process would cap how many can live.
    eventfd: Mutex<Option<OwnedFd>>,
    /// A native process's pidfd: readable once it has exited, so it serves
    /// as the pollable fd instead of an eventfd.
    pidfd: OnceLock<Arc<OwnedFd>>,
}

impl ExitCell {
    pub(crate) fn new() -> Self {
        Self { reason: Watched::new(None), eventfd: Mutex::new(None), pidfd: OnceLock::new() }
    }

    pub(crate) fn get(&self) -> Option<ExitReason> {
        self.reason.get()
    }

    pub(crate) fn is_set(&self) -> bool {
        self.reason.with(Option::is_some)
    }

    /// Records the end; later calls are ignored.
    pub(crate) fn publish(&self, reason: ExitReason) {
        let first = self.reason.modify(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(reason);
            true
        });
        if first && let Some(fd) = self.eventfd.lock().unwrap().as_ref() {
            signal_eventfd(fd);
        }
    }

    pub(crate) async fn ended(&self) {
        self.reason.wait_for(Option::is_some).await;
    }

    pub(crate) fn set_pidfd(&self, pidfd: Arc<OwnedFd>) {
        let _ = self.pidfd.set(pidfd);
    }

    fn raw_fd(&self) -> std::io::Result<RawFd> {
        if let Some(pidfd) = self.pidfd.get() {
            return Ok(pidfd.as_raw_fd());
        }
        let mut slot = self.eventfd.lock().unwrap();
        if let Some(fd) = slot.as_ref() {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: eventfd has no memory-safety preconditions; the result is
        // checked and owned from here on.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if self.is_set() {
            signal_eventfd(&fd);
        }
        let raw = fd.as_raw_fd();
        *slot = Some(fd);
        Ok(raw)
    }
}

fn signal_eventfd(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A full
    // counter (EAGAIN) still leaves the fd readable, which is all we need.
    unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

/// Becomes ready when its process ends (`Process::sentinel`).
///
/// Wait for it with [`Sentinel::wait`] / [`Runtime::wait`](crate::Runtime::wait)
/// (and their async twins), test it with [`Sentinel::is_ready`], or put
/// [`Sentinel::raw_fd`] into your own `poll`/`epoll` loop: the fd becomes
/// readable when the process ends.
#[derive(Clone)]
pub struct Sentinel {
    pub(crate) cell: Arc<ExitCell>,
    pub(crate) handle: tokio::runtime::Handle,
}

impl Sentinel {
    pub fn is_ready(&self) -> bool {
        self.cell.is_set()
    }

    /// An fd that becomes readable when the process ends: an eventfd for a
    /// wasm process, the pidfd of a native one. It stays owned by the
    /// sentinel: do not close it or read from it.
    pub fn raw_fd(&self) -> std::io::Result<RawFd> {
        self.cell.raw_fd()
    }

    /// Waits until the process ends or the timeout passes; true if it ended.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        !wait_blocking(&self.handle, std::slice::from_ref(self), timeout).is_empty()
    }

    pub async fn wait_async(&self, timeout: Option<Duration>) -> bool {
        !wait_any(&self.handle, std::slice::from_ref(self), timeout).await.is_empty()
    }
}

impl std::fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentinel").field("ready", &self.is_ready()).finish()
    }
}

/// Waits until at least one sentinel is ready or the timeout passes, and
/// returns the indices of all that are ready (`multiprocessing.connection.wait`).
/// An empty result means the timeout passed.
pub(crate) async fn wait_any(
    handle: &tokio::runtime::Handle,
    sentinels: &[Sentinel],
    timeout: Option<Duration>,
) -> Vec<usize> {
    let items: Vec<Waitable<'_>> = sentinels.iter().map(Waitable::from).collect();
    wait_ready(handle, &items, timeout).await
}

/// The blocking form of [`wait_any`], for callers outside async code.
pub(crate) fn wait_blocking(
    handle: &tokio::runtime::Handle,
    sentinels: &[Sentinel],
    timeout: Option<Duration>,
) -> Vec<usize> {
    crate::base::run_slot::block_on(handle, wait_any(handle, sentinels, timeout))
}
