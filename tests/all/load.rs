//! Stability under load: thousands of spawn→kill and spawn→join cycles
//! leave the host's memory, file descriptors and process table where they
//! were.

use wmp_host::{Capabilities, Runtime, Stdio};

use crate::{PATIENCE, probe, rss_bytes, runtime};

const CYCLES: usize = 10_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `cycles` start→`finish`→join cycles and checks that RSS and the fd
/// count end where they began (within margins that absorb the other tests
/// of this binary, which run at the same time).
fn cycles_stay_flat(rt: &Runtime, target: &str, finish: impl Fn(&wmp_host::Process)) {
    let program = probe(rt);
    let quiet = || Capabilities::new().stdout(Stdio::Null).stderr(Stdio::Null);
    let run = |n: usize| {
        for _ in 0..n {
            let p = rt.process(&program).capabilities(quiet()).target(target, serde_json::to_vec("").unwrap()).build();
            p.start().unwrap();
            finish(&p);
            p.join(Some(PATIENCE)).unwrap();
            assert!(!p.is_alive().unwrap());
        }
    };
    run(500); // warm up allocators and caches
    let (rss, fds) = (rss_bytes(), open_fds());
    run(CYCLES);
    let (rss_after, fds_after) = (rss_bytes(), open_fds());
    println!(
        "{target}: {CYCLES} cycles: RSS {} -> {} MiB, fds {fds} -> {fds_after}",
        rss >> 20,
        rss_after >> 20
    );
    assert!(rss_after.saturating_sub(rss) < 200 << 20, "RSS grew {} MiB", (rss_after - rss) >> 20);
    assert!(fds_after <= fds + 32, "fds grew from {fds} to {fds_after}");
    assert_eq!(rt.live_process_count(), 0);
    assert!(rt.active_children().is_empty());
    assert!(rt.dangling().is_empty());
}

#[test]
fn ten_thousand_spawn_kill_cycles() {
    let rt = runtime();
    cycles_stay_flat(&rt, "spin", |p| p.kill().unwrap());
}

#[test]
fn ten_thousand_spawn_join_cycles() {
    let rt = runtime();
    cycles_stay_flat(&rt, "noop", |_| {});
}
