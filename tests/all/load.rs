//! Stability under load: thousands of spawn→kill and spawn→join cycles
//! leave the host's memory, file descriptors and process table where they
//! were, under both backends (native processes cost a fork and exec each,
//! so they run fewer cycles).

use wmp_host::Process;

use crate::{Backend, Fixture, Job, PATIENCE, rss_bytes};

crate::for_both_backends!(spawn_kill_cycles_stay_flat, spawn_join_cycles_stay_flat);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn cycles(backend: Backend) -> usize {
    match backend {
        Backend::Wasm => 10_000,
        Backend::Native => 500,
    }
}

/// Runs start→`finish`→join cycles of children doing `job` and checks that
/// RSS and the fd count end where they began (within margins that absorb
/// the other tests of this binary, which run at the same time), and that
/// no native child is left a zombie.
fn cycles_stay_flat(backend: Backend, job: Job, finish: impl Fn(&Process)) {
    let f = Fixture::new(backend);
    let run = |n: usize| {
        for _ in 0..n {
            let (p, _) = f.child(job);
            p.start().unwrap();
            finish(&p);
            p.join(Some(PATIENCE)).unwrap();
            assert!(!p.is_alive().unwrap());
            if backend == Backend::Native {
                assert!(crate::native::is_reaped(p.pid().unwrap().unwrap()), "a zombie is left");
            }
        }
    };
    run(cycles(backend) / 20); // warm up allocators and caches
    let (rss, fds) = (rss_bytes(), open_fds());
    run(cycles(backend));
    let (rss_after, fds_after) = (rss_bytes(), open_fds());
    println!(
        "{backend:?} {job:?}: {} cycles: RSS {} -> {} MiB, fds {fds} -> {fds_after}",
        cycles(backend),
        rss >> 20,
        rss_after >> 20
    );
    assert!(rss_after.saturating_sub(rss) < 200 << 20, "RSS grew {} MiB", (rss_after - rss) >> 20);
    assert!(fds_after <= fds + 32, "fds grew from {fds} to {fds_after}");
    assert_eq!(f.rt.live_process_count(), 0);
    assert!(f.rt.active_children().is_empty());
    assert!(f.rt.dangling().is_empty());
}

fn spawn_kill_cycles_stay_flat(backend: Backend) {
    cycles_stay_flat(backend, Job::Spin, |p| p.kill().unwrap());
}

fn spawn_join_cycles_stay_flat(backend: Backend) {
    cycles_stay_flat(backend, Job::Noop, |_| {});
}
