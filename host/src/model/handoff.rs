//! The identity handoff to a native child: who it is in the process tree
//! (name, identity, parent pid, daemon flag, authkey) and which target it
//! is to run, written by the parent into a sealed memfd that only the
//! child inherits, and read back by `wmp-guest` in the child.
//!
//! The authkey never goes on argv or into the environment (other users and
//! any later child would see it there); the environment only says which fd
//! holds the handoff (`WMP_HANDOFF_FD`). Only a wmp guest is handed one
//! (see `backend/native/guest_marker.rs`), and it reads it once, as it
//! loads: the memfd is closed then, and the sockets it names become
//! close-on-exec, so no program the guest execs inherits either.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::base::limits::Limits;
use crate::model::registry::{Node, NodeSpec, Pid};
use crate::model::builder::Target;

/// The environment variable naming the handoff fd.
pub(crate) const HANDOFF_FD_VAR: &str = "WMP_HANDOFF_FD";
/// The memfd's name, checked by the reader so that a stale variable
/// pointing at some other fd is not trusted.
const MEMFD_NAME: &str = "wmp-handoff";

/// What a native child learns from its parent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handoff {
    /// The OS process that started this one: its parent if that is a
    /// native process, else the host running the parent.
    pub(crate) host_pid: u32,
    pub(crate) parent_pid: Pid,
    pub(crate) parent_name: String,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) authkey: Vec<u8>,
    pub(crate) target: Option<HandoffTarget>,
    /// The limits its tree still has room for (see `Node::limits_to_hand_off`).
    pub(crate) limits: Limits,
    /// Inherited sockets that carry the connection ends its parent passed
    /// it, in the order passed.
    #[serde(default)]
    pub(crate) connections: Vec<RawFd>,
    /// Inherited sockets to servers of the queues its parent passed it.
    #[serde(default)]
    pub(crate) queues: Vec<RawFd>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct HandoffTarget {
    name: String,
    args: Vec<u8>,
}

impl Handoff {
    /// What `parent` hands its native child `who`, started to run
    /// `target` under `limits`.
    pub(crate) fn for_child(parent: &Node, who: &NodeSpec, target: Option<&Target>, limits: Limits) -> Handoff {
        Handoff {
            host_pid: std::process::id(),
            parent_pid: parent.pid,
            parent_name: parent.name(),
            name: who.name.clone(),
            identity: who.identity.clone(),
            daemon: who.daemon,
            authkey: who.authkey.as_bytes().to_vec(),
            target: target.map(|t| HandoffTarget { name: t.name.clone(), args: t.args.clone() }),
            limits,
            connections: Vec::new(),
            queues: Vec::new(),
        }
    }

    /// The sockets of the connection ends the parent passed, in the order
    /// passed ([`Runtime::connection_over`](crate::Runtime::connection_over)
    /// makes connections of them); taken once. An fd that is not an open
    /// socket (the handoff outlived it) is skipped.
    pub fn take_connections(&mut self) -> Vec<std::os::unix::net::UnixStream> {
        inherited_sockets(std::mem::take(&mut self.connections))
    }

    /// The sockets of the queues the parent passed, in the order passed
    /// ([`Runtime::queue_over`](crate::Runtime::queue_over) makes queue
    /// handles of them); taken once, as [`take_connections`](Self::take_connections).
    pub fn take_queues(&mut self) -> Vec<std::os::unix::net::UnixStream> {
        inherited_sockets(std::mem::take(&mut self.queues))
    }

    /// The target this process was started to run, if any.
    pub fn target(&self) -> Option<Target> {
        self.target.as_ref().map(|t| Target { name: t.name.clone(), args: t.args.clone() })
    }

    /// Writes the handoff into a fresh sealed memfd (close-on-exec: the
    /// spawner clears that flag in the one child that is to inherit it).
    pub(crate) fn to_memfd(&self) -> std::io::Result<OwnedFd> {
        let name = std::ffi::CString::new(MEMFD_NAME).expect("no NUL in the name");
        // SAFETY: memfd_create reads a valid C string; the result is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut file = std::fs::File::from(fd);
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: fcntl on an fd we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(file.into())
    }

    /// The handoff this process was started with, if a wmp runtime started
    /// it; the fd is closed once read, and the fds it names are made
    /// close-on-exec.
    pub fn from_environment() -> std::io::Result<Option<Handoff>> {
        let Some(fd) = std::env::var(HANDOFF_FD_VAR).ok().and_then(|v| v.parse::<RawFd>().ok()) else {
            return Ok(None);
        };
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
        if !link.to_string_lossy().starts_with(&format!("/memfd:{MEMFD_NAME}")) {
            return Ok(None); // inherited from an ancestor, the fd is something else now
        }
        // SAFETY: the fd is open (it resolved above), is the handoff memfd
        // and nothing else in this process uses it; we take ownership.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut bytes = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut bytes)?;
        drop(file);
        let handoff: Handoff = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        for &fd in handoff.connections.iter().chain(&handoff.queues) {
            // SAFETY: fcntl on an fd number; one that is not open fails
            // harmlessly (and is skipped when the sockets are taken).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(Some(handoff))
    }
}

/// The inherited fds that are open sockets, owned (an fd that is not, the
/// handoff outlived, and is skipped).
fn inherited_sockets(fds: Vec<RawFd>) -> Vec<std::os::unix::net::UnixStream> {
    fds.into_iter()
        .filter(|fd| {
            let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
            link.to_string_lossy().starts_with("socket:")
        })
        // SAFETY: the fd is an open socket that the parent left to this
        // process for this use alone; the handoff gives it out once.
        .map(|fd| unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_survives_the_memfd() {
        let handoff = Handoff {
            host_pid: 7,
            parent_pid: 4194305,
            parent_name: "Process-1".into(),
            name: "Process-1:2".into(),
            identity: vec![1, 2],
            daemon: true,
            authkey: vec![9; 32],
            target: Some(HandoffTarget { name: "work".into(), args: b"[1]".to_vec() }),
            limits: Limits { max_depth: Some(2), timeout: Some(std::time::Duration::from_millis(5)), ..Limits::new() },
            connections: vec![5, 6],
            queues: vec![7],
        };
        let fd = handoff.to_memfd().unwrap();
        let mut file = std::fs::File::from(fd);
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(serde_json::from_slice::<Handoff>(&bytes).unwrap(), handoff);
        assert!(file.write_all(b"x").is_err(), "the memfd is sealed against writes");
    }
}
