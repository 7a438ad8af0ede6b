//! `Pool` (`multiprocessing.Pool`) from inside a guest, under both
//! backends (the probe's `pool` target runs a scenario and prints what it
//! saw), and from the host API over the wasm probe's pool functions.

use std::collections::BTreeSet;
use std::time::Duration;

use wmp_host::{PoolError, PoolOptions};

use crate::{Backend, Fixture, PATIENCE, probe, runtime};

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
    let each = out.value("imap_exit");
    assert!(each.starts_with("[\"0\", \"1\", \"2\", \"worker Process-1:"), "{each}");
    assert!(each.ends_with(" died with exitcode 7\", \"4\", \"5\"]"), "only the task that ran fails: {each}");
    assert_eq!(out.value("after_exit"), squares(5));
    let panic = out.value("panic");
    assert!(panic.starts_with("error: worker Process-1:"), "{panic}");
    assert!(panic.ends_with(" died with exitcode 1 running task 21"), "{panic}");
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

#[test]
fn a_host_pool_computes_what_the_plain_calls_do() {
    let rt = runtime();
    let pool = rt.pool(&probe(&rt), PoolOptions::new().processes(2)).unwrap();
    let expected: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(pool.map::<u64, u64>("pool_square", 0..100).unwrap(), expected);
    assert_eq!(pool.map_chunked::<u64, u64>("pool_square", 0..100, 7).unwrap(), expected);
    let sums: Vec<u64> = pool.starmap("pool_add", (0..100u64).map(|i| (i, 2 * i))).unwrap();
    assert_eq!(sums, (0..100).map(|i| 3 * i).collect::<Vec<u64>>());
    let ordered: Vec<u64> = pool.imap("pool_square", 0..100u64, 1).unwrap().map(Result::unwrap).collect();
    assert_eq!(ordered, expected);
    let mut unordered: Vec<u64> = pool.imap_unordered("pool_square", 0..100u64, 9).unwrap().map(Result::unwrap).collect();
    unordered.sort();
    assert_eq!(unordered, expected);
    let handles: Vec<_> = (0..10u64).map(|i| pool.apply_async::<(u64,), u64>("pool_square", (i,)).unwrap()).collect();
    let applied: Vec<u64> = handles.iter().map(|h| h.get(Some(PATIENCE)).unwrap()).collect();
    assert_eq!(applied, expected[..10]);
    assert_eq!(pool.apply::<(u64, u64), u64>("pool_add", (40, 2)), Ok(42));
    pool.close();
    pool.join().unwrap();
    assert!(rt.active_children().is_empty(), "joined workers have ended");
}

#[test]
fn a_host_pool_replaces_workers_after_maxtasksperchild_and_initializes_each_once() {
    let rt = runtime();
    let options = PoolOptions::new().processes(2).maxtasksperchild(3).initializer("pool_init", (9u32,));
    let pool = rt.pool(&probe(&rt), options).unwrap();
    let seen: Vec<(u32, u32, u32)> = pool.map_chunked("pool_inits", 0..30u64, 1).unwrap();
    let mut per_worker = std::collections::BTreeMap::<u32, usize>::new();
    seen.iter().for_each(|(pid, _, _)| *per_worker.entry(*pid).or_default() += 1);
    assert_eq!(per_worker.values().max(), Some(&3), "no worker ran more than 3 tasks: {per_worker:?}");
    assert!(per_worker.len() >= 10, "30 tasks, at most 3 per worker: {per_worker:?}");
    let inits: BTreeSet<(u32, u32)> = seen.iter().map(|(_, runs, arg)| (*runs, *arg)).collect();
    assert_eq!(inits, BTreeSet::from([(1, 9)]));
}

#[test]
fn a_host_pool_fails_the_task_of_a_killed_or_exiting_worker_and_serves_on() {
    let rt = runtime();
    let pool = rt.pool(&probe(&rt), PoolOptions::new().processes(2)).unwrap();
    let died = pool.map_chunked::<u64, u64>("pool_exit_at", 0..6, 1).unwrap_err();
    match &died {
        PoolError::WorkerDied { worker, exitcode: Some(7), task: 4 } => assert!(worker.starts_with("Process-"), "{died}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.map::<u64, u64>("pool_square", 0..5).unwrap(), [0, 1, 4, 9, 16]);

    let slow = pool.apply_async::<(u64,), u64>("pool_sleep", (60_000,)).unwrap();
    assert!(!slow.ready());
    let workers = rt.active_children();
    assert_eq!(workers.len(), 2);
    workers.iter().for_each(|w| w.kill().unwrap());
    workers.iter().for_each(|w| w.join(Some(PATIENCE)).unwrap());
    let err = slow.get(Some(PATIENCE)).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("worker Process-") && text.ends_with(" died with exitcode -9 running task 12"), "{text}");
    assert_eq!(pool.map::<u64, u64>("pool_square", 0..5).unwrap(), [0, 1, 4, 9, 16]);
    assert_eq!(rt.active_children().len(), 2, "the killed workers were replaced");
}

#[test]
fn a_host_pool_terminates_its_workers_and_then_refuses_work() {
    let rt = runtime();
    let pool = rt.pool(&probe(&rt), PoolOptions::new().processes(2)).unwrap();
    let slow = pool.apply_async::<(u64,), u64>("pool_sleep", (60_000,)).unwrap();
    assert_eq!(slow.get(Some(Duration::from_millis(20))), Err(PoolError::Timeout));
    pool.terminate();
    assert_eq!(slow.get(None), Err(PoolError::Terminated(1)));
    assert!(rt.active_children().is_empty(), "terminate ended the workers");
    let refused = pool.map::<u64, u64>("pool_square", 0..3).unwrap_err();
    assert_eq!(refused.to_string(), "Pool not running");
    pool.join().unwrap();
}

#[test]
fn a_host_pool_says_which_function_it_lacks_and_which_types_do_not_fit() {
    let rt = runtime();
    let pool = rt.pool(&probe(&rt), PoolOptions::new().processes(1)).unwrap();
    let missing = pool.apply::<(u64,), u64>("nowhere", (1,)).unwrap_err();
    assert!(missing.to_string().starts_with("no pool function \"nowhere\": this program registered [\"pool_square\""), "{missing}");
    let mistyped = pool.apply::<(&str,), u64>("pool_square", ("seven",)).unwrap_err();
    assert!(mistyped.to_string().starts_with("pool function \"pool_square\": cannot decode the arguments: "), "{mistyped}");
    let negative = pool.apply::<(i64,), u64>("pool_square", (-7,)).unwrap_err();
    assert!(negative.to_string().starts_with("pool function \"pool_square\": cannot decode the arguments: "), "{negative}");
    let mistaken_result = pool.apply::<(u64,), String>("pool_square", (7,)).unwrap_err();
    assert!(mistaken_result.to_string().starts_with("cannot decode the result: "), "{mistaken_result}");
    assert_eq!(pool.apply::<(u64,), u64>("pool_square", (7,)), Ok(49), "a failed task leaves the worker serving");
}

#[test]
fn a_dropped_host_pool_terminates_its_workers() {
    let rt = runtime();
    let pool = rt.pool(&probe(&rt), PoolOptions::new().processes(3)).unwrap();
    let running = pool.apply_async::<(u64,), u64>("pool_sleep", (60_000,)).unwrap();
    assert_eq!(rt.active_children().len(), 3);
    drop(running);
    drop(pool);
    assert!(rt.active_children().is_empty(), "dropping the pool ended its workers");
}
