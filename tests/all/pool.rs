//! `Pool` (`multiprocessing.Pool`) from inside a guest, under both
//! backends (the probe's `pool` target runs a scenario and prints what it
//! saw).

use crate::{Backend, Fixture};

crate::for_both_backends!(
    a_guest_pool_computes_what_the_plain_calls_do,
    a_guest_pool_replaces_workers_after_maxtasksperchild,
    a_guest_pool_runs_the_initializer_once_per_worker,
    a_guest_pool_fails_the_task_of_a_dying_worker_and_serves_on,
    a_guest_pool_terminate_kills_its_workers,
    a_closed_guest_pool_refuses_work_with_cpythons_message,
);

fn squares(n: u64) -> String {
    format!("{:?}", (0..n).map(|x| x * x).collect::<Vec<u64>>())
}

fn a_guest_pool_computes_what_the_plain_calls_do(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "results");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}{}", out.stdout(), out.stderr());
    for key in ["map", "map_chunked", "imap", "imap_chunked", "imap_unordered_sorted", "apply_async", "map_async"] {
        assert_eq!(out.value(key), squares(20), "{key}");
    }
    assert_eq!(out.value("map_empty"), "[]");
    assert_eq!(out.value("starmap"), format!("{:?}", (0..20).map(|i| i + 100 * i).collect::<Vec<u64>>()));
    assert_eq!(out.value("apply"), "Ok(42)");
    assert_eq!(out.value("successful"), "Some(true)");
    assert!(out.value("unknown").starts_with("error: no pool function \"nowhere\": this program registered ["), "{}", out.stdout());
    assert_eq!(out.value("join"), "Ok(())");
}

fn a_guest_pool_replaces_workers_after_maxtasksperchild(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "maxtasks");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    // 20 tasks, at most 2 per worker: at least 10 workers, each with its own pid.
    assert_eq!(out.value("tasks"), "20");
    assert_eq!(out.value("most_tasks_of_a_worker"), "2");
    assert!(out.value("workers").parse::<u32>().unwrap() >= 10, "{}", out.stdout());
}

fn a_guest_pool_runs_the_initializer_once_per_worker(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "initializer");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}", out.stderr());
    // 12 tasks, at most 3 per worker: 4 workers or more, each initialized
    // once with 7.
    assert!(out.value("workers").parse::<u32>().unwrap() >= 4, "{}", out.stdout());
    assert_eq!(out.value("init_runs_and_args"), "{(1, 7)}");
}

fn a_guest_pool_fails_the_task_of_a_dying_worker_and_serves_on(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "death");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}{}", out.stdout(), out.stderr());
    let exit = out.value("exit");
    assert!(exit.starts_with("error: worker Process-1:"), "{exit}");
    assert!(exit.ends_with(" died with exitcode 7 running task 4"), "{exit}");
    assert_eq!(out.value("after_exit"), squares(5));
    let panic = out.value("panic");
    assert!(panic.starts_with("error: worker Process-1:"), "{panic}");
    assert!(panic.ends_with(" died with exitcode 1 running task 15"), "{panic}");
    assert_eq!(out.value("after_panic"), squares(5));
    assert!(out.value("apply_exit").contains("died with exitcode 7 running task"), "{}", out.stdout());
    assert_eq!(out.value("workers_alive"), "2", "each dead worker was replaced");
}

fn a_guest_pool_terminate_kills_its_workers(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "terminate");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}{}", out.stdout(), out.stderr());
    assert_eq!(out.value("ready"), "false timeout=Err(\"timed out waiting for the result\")");
    assert_eq!(out.value("slow"), "Err(\"the pool was terminated before task 1 finished\")");
    assert_eq!(out.value("children"), "0 quick=true");
    assert_eq!(out.value("map_after"), "error: Pool not running");
    assert_eq!(out.value("join"), "Ok(())");
}

fn a_closed_guest_pool_refuses_work_with_cpythons_message(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pool", "closed");
    assert_eq!(p.exitcode(), Ok(Some(0)), "{}{}", out.stdout(), out.stderr());
    assert_eq!(out.value("join_running"), "Err(\"Pool is still running\")");
    assert_eq!(out.value("map_closed"), "error: Pool not running");
    assert_eq!(out.value("apply_closed"), "Some(\"Pool not running\")");
    assert_eq!(out.value("join"), format!("Ok(()) queued={}", squares(4)), "close lets queued work finish");
    assert_eq!(out.value("zero"), "Some(\"Number of processes must be at least 1\")");
    assert_eq!(out.value("no_tasks"), "Some(\"maxtasksperchild must be a positive int or None\")");
}
