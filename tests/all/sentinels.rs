//! Sentinels and `wait`: ready when the process ends, waitable in groups,
//! pollable as a raw fd.

use std::time::Duration;

use wmp_host::ProcessError;

use crate::{Backend, Fixture, Job, PATIENCE};

crate::for_both_backends!(
    a_sentinel_exists_only_once_started_and_is_ready_at_the_end,
    wait_returns_the_ready_ones,
    the_raw_fd_becomes_readable_when_the_process_ends,
);

fn a_sentinel_exists_only_once_started_and_is_ready_at_the_end(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let (p, _) = f.child(Job::Spin);
    assert_eq!(p.sentinel().err(), Some(ProcessError::NotStarted));
    assert_eq!(p.sentinel().unwrap_err().to_string(), "process not started");
    p.start().unwrap();
    let s = p.sentinel().unwrap();
    assert!(!s.is_ready());
    assert!(rt.wait(std::slice::from_ref(&s), Some(Duration::ZERO)).is_empty(), "wait(0) on a running process");
    assert!(!s.wait(Some(Duration::from_millis(10))));
    p.kill().unwrap();
    assert!(s.wait(Some(PATIENCE)));
    assert!(s.is_ready());
    p.join(None).unwrap();
}

fn wait_returns_the_ready_ones(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let (spinner, _) = f.child(Job::Spin);
    let (quick, _) = f.child(Job::Noop);
    spinner.start().unwrap();
    quick.start().unwrap();
    let sentinels = [spinner.sentinel().unwrap(), quick.sentinel().unwrap()];
    assert_eq!(rt.wait(&sentinels, Some(PATIENCE)), [1]);
    spinner.kill().unwrap();
    spinner.join(None).unwrap();
    assert_eq!(rt.wait(&sentinels, None), [0, 1]);
    assert!(rt.wait(&[], Some(Duration::from_millis(1))).is_empty());
}

fn the_raw_fd_becomes_readable_when_the_process_ends(backend: Backend) {
    let f = Fixture::new(backend);
    let (p, _) = f.child(Job::Spin);
    p.start().unwrap();
    let s = p.sentinel().unwrap();
    let fd = s.raw_fd().unwrap();
    let readable = |timeout_ms: i32| {
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, owned by this frame.
        let n = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        n == 1 && pollfd.revents & libc::POLLIN != 0
    };
    assert!(!readable(10));
    p.kill().unwrap();
    assert!(readable(30_000));
    assert_eq!(s.raw_fd().unwrap(), fd, "the same fd each time");
    // A sentinel asked for its fd only after the end is readable at once.
    let (q, _) = f.child(Job::Noop);
    q.start().unwrap();
    q.join(None).unwrap();
    let fd = q.sentinel().unwrap().raw_fd().unwrap();
    let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::poll(&mut pollfd, 1, 0) }, 1);
}
