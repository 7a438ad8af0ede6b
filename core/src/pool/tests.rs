//! The pool over a mock of its workers: each `wait` runs the first task
//! each worker holds, in the calling thread, so the scheduler's choices
//! (what a death fails, what goes back to the queue) show deterministically.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;

use super::wire::{self, Reply, Task};
use super::{Pool, PoolError, PoolOptions, Worker, Workers};
use crate::ConnectionError;

/// Workers that square what they are given; the one that gets task
/// `dies_at` dies running it, as if killed.
struct Squarers {
    started: u32,
    dies_at: Option<u64>,
}

struct Squarer {
    name: String,
    dies_at: Option<u64>,
    inbox: RefCell<VecDeque<Vec<u8>>>,
    outbox: RefCell<VecDeque<Vec<u8>>>,
    exitcode: Cell<Option<i32>>,
}

impl Squarer {
    fn run_one(&self) {
        let Some(message) = self.inbox.borrow_mut().pop_front() else { return };
        let (task, start) = wire::decode::<Task>(&message).unwrap();
        if self.dies_at == Some(task.id) {
            self.exitcode.set(Some(-9));
            return;
        }
        let chunk = &message[start..];
        let calls: Vec<u64> = match task.arguments {
            wire::Arguments::Single => wire::decode_chunk(chunk).unwrap(),
            wire::Arguments::Tuples => wire::decode_chunk::<Vec<(u64,)>>(chunk).unwrap().into_iter().map(|(x,)| x).collect(),
        };
        let squares: Vec<u64> = calls.iter().map(|x| x * x).collect();
        self.outbox.borrow_mut().push_back(wire::encode(&Reply { id: task.id, error: None }, &squares).unwrap());
    }
}

impl Workers for Squarers {
    type Worker = Squarer;

    fn start(&mut self, _spec: &[u8]) -> Result<Squarer, PoolError> {
        self.started += 1;
        Ok(Squarer {
            name: format!("Worker-{}", self.started),
            dies_at: self.dies_at,
            inbox: RefCell::default(),
            outbox: RefCell::default(),
            exitcode: Cell::new(None),
        })
    }

    fn wait(&self, workers: &[&Squarer], _timeout: Option<Duration>) {
        workers.iter().filter(|w| w.exitcode.get().is_none()).for_each(|w| w.run_one());
    }
}

impl Worker for Squarer {
    fn send(&self, message: &[u8]) -> Result<(), ConnectionError> {
        match self.exitcode.get() {
            Some(_) => Err(ConnectionError::BrokenPipe),
            None => {
                self.inbox.borrow_mut().push_back(message.to_vec());
                Ok(())
            }
        }
    }

    fn poll(&self) -> bool {
        !self.outbox.borrow().is_empty() || self.exitcode.get().is_some()
    }

    fn recv(&self) -> Result<Vec<u8>, ConnectionError> {
        self.outbox.borrow_mut().pop_front().ok_or(ConnectionError::Eof)
    }

    fn exitcode(&self) -> Option<i32> {
        self.exitcode.get()
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn terminate(&self) {
        self.exitcode.set(Some(-15));
    }

    fn join(&self) {}

    fn hang_up(&self) {}
}

fn pool(processes: usize, dies_at: Option<u64>) -> Pool<Squarers> {
    Pool::over(Squarers { started: 0, dies_at }, PoolOptions::new().processes(processes)).unwrap()
}

#[test]
fn map_splits_into_cpythons_chunks_and_gathers_in_order() {
    let pool = pool(2, None);
    let squares: Vec<u64> = pool.map("square", 0..100u64).unwrap();
    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<u64>>());
    // ceil(100 / (2 * 4)) = 13 items a chunk: 8 tasks.
    assert_eq!(pool.scheduler.borrow_mut().submit("square", wire::Arguments::Single, vec![0u64]), Ok(9));
}

#[test]
fn a_death_fails_the_task_run_and_requeues_the_one_held_next() {
    // One worker holds tasks 1 and 2 and dies running 1: 1 fails, 2 runs
    // on the worker that replaces it.
    let pool = pool(1, Some(1));
    let results: Vec<Result<u64, PoolError>> = pool.imap("square", 1..4u64, 1).unwrap().collect();
    assert_eq!(
        results,
        [Err(PoolError::WorkerDied { worker: "Worker-1".into(), exitcode: Some(-9), task: 1 }), Ok(4), Ok(9)]
    );
    assert_eq!(pool.scheduler.borrow().processes(), 1);
}

#[test]
fn a_dropped_handle_discards_its_results() {
    let pool = pool(1, None);
    drop(pool.apply_async::<(u64,), u64>("square", (3,)).unwrap());
    assert_eq!(pool.apply::<(u64,), u64>("square", (4,)), Ok(16));
    let scheduler = pool.scheduler.borrow();
    assert!(!scheduler.is_done(1), "the dropped handle's result was not kept");
}

#[test]
fn map_fails_with_the_first_failed_chunk_and_the_pool_serves_on() {
    let pool = pool(1, Some(2));
    let died = pool.map_chunked::<u64, u64>("square", 1..5u64, 1).unwrap_err();
    assert_eq!(died, PoolError::WorkerDied { worker: "Worker-1".into(), exitcode: Some(-9), task: 2 });
    assert_eq!(pool.map("square", 1..4u64), Ok(vec![1, 4, 9]));
}

#[test]
fn a_chunk_says_what_its_values_are_so_another_type_fails_instead_of_misreading() {
    #[derive(serde::Serialize)]
    struct Sent {
        x: u64,
        y: String,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct FieldsReordered {
        y: String,
        x: u64,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct OtherFields {
        z: u64,
    }
    let negative = wire::encode_chunk(&[(-3i64,)]).unwrap();
    assert!(wire::decode_chunk::<Vec<(u64,)>>(&negative).is_err(), "a negative number is no u64");
    assert_eq!(wire::decode_chunk::<Vec<(i64,)>>(&negative), Ok(vec![(-3,)]));
    let text = wire::encode_chunk(&["seven"]).unwrap();
    assert!(wire::decode_chunk::<Vec<u64>>(&text).is_err(), "a string is no number");
    let sent = wire::encode_chunk(&[Sent { x: 1, y: "one".into() }]).unwrap();
    assert_eq!(wire::decode_chunk(&sent), Ok(vec![FieldsReordered { y: "one".into(), x: 1 }]), "fields go by name");
    let missing = wire::decode_chunk::<Vec<OtherFields>>(&sent).unwrap_err();
    assert!(missing.contains("missing field `z`"), "{missing}");
}
