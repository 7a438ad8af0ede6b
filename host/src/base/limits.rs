//! Per-process resource limits: what a process may use, how its children
//! inherit them (and may only narrow them), and how hitting one is
//! recorded. A process that hits a limit ends like a kill (exitcode -9),
//! with an exit reason naming the limit, except that a memory or table
//! growth past its limit may instead fail or trap ([`GrowFailure`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Limits of one process. `None` means "no limit of our own" (the
/// runtime's defaults and the parent's limits still apply).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Bytes of linear memory, summed over all the memories of the
    /// process (a module with several memories shares one allowance).
    pub max_memory: Option<usize>,
    /// Table elements, summed over all the tables of the process.
    pub max_table_elements: Option<usize>,
    /// Bytes the host may hold on the process's behalf (queue messages it
    /// put, pipe bytes it sent, names, unstarted objects' arguments,
    /// listeners, handles); see [`HostMemory`](crate::HostMemory). A
    /// process given none has [`DEFAULT_MAX_HOST_MEMORY`](crate::DEFAULT_MAX_HOST_MEMORY).
    pub max_host_memory: Option<usize>,
    /// Fuel (about one unit per wasm instruction); needs a runtime built
    /// with [`fuel_metering`](crate::RuntimeBuilder::fuel_metering).
    pub fuel: Option<u64>,
    /// Wall-clock time from start.
    pub timeout: Option<Duration>,
    /// Live processes in the subtree of the process that has this limit,
    /// itself included (a fork-bomb guard).
    pub max_processes: Option<usize>,
    /// Levels of descendants below the process that has this limit.
    pub max_depth: Option<usize>,
    /// What a `memory.grow` or `table.grow` that fails does, above all one
    /// that would pass `max_memory` or `max_table_elements`; None is the
    /// parent's choice, and at the root [`GrowFailure::Stop`].
    pub on_grow_failure: Option<GrowFailure>,
}

/// What a failed `memory.grow` or `table.grow` does: one that would pass
/// the process's memory or table limit, or its memory's (table's) declared
/// maximum, or that the host cannot allocate. From the mildest to the
/// strictest, which is the order in which a child may only narrow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum GrowFailure {
    /// The instruction returns -1 and the process goes on, as under
    /// `wasmtime run` (a Rust guest then usually aborts on the failed
    /// allocation, which is a trap).
    Refuse,
    /// The instruction traps, as under `wasmtime run -W
    /// trap-on-grow-failure`: [`ExitReason::Error`](crate::ExitReason::Error)
    /// (wasmtime's limiter fails the run with an error, not a wasm trap),
    /// exitcode 1 like an exception.
    Trap,
    /// A growth past the limit stops the process like a kill, its subtree
    /// with it: [`ExitReason::Limit`](crate::ExitReason::Limit) with
    /// [`Limit::Memory`] or [`Limit::Table`], exitcode -9. Any other failed
    /// growth returns -1.
    Stop,
}

pub(crate) fn narrowest<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Limits {
    pub fn new() -> Self {
        Self::default()
    }

    /// The first limit that `asked` would loosen compared with these (a
    /// child asking for more than its parent has), described.
    pub fn widened_by(&self, asked: &Limits) -> Option<String> {
        fn wider<T: Ord + fmt::Debug>(name: &str, have: Option<T>, asked: Option<T>) -> Option<String> {
            match (have, asked) {
                (Some(have), Some(asked)) if asked > have => {
                    Some(format!("cannot widen the {name} limit from {have:?} to {asked:?}"))
                }
                _ => None,
            }
        }
        wider("memory", self.max_memory, asked.max_memory)
            .or_else(|| wider("table", self.max_table_elements, asked.max_table_elements))
            .or_else(|| wider("host memory", self.max_host_memory, asked.max_host_memory))
            .or_else(|| wider("fuel", self.fuel, asked.fuel))
            .or_else(|| wider("timeout", self.timeout, asked.timeout))
            .or_else(|| wider("process count", self.max_processes, asked.max_processes))
            .or_else(|| wider("spawn depth", self.max_depth, asked.max_depth))
            .or_else(|| {
                // A milder reaction to a failed growth is the wider one.
                let (have, asked) = (self.on_grow_failure?, asked.on_grow_failure?);
                (asked < have).then(|| format!("cannot soften the grow failure reaction from {have:?} to {asked:?}"))
            })
    }

    /// These limits, narrowed by `other`: each limit is the stricter of
    /// the two. (Limits only ever narrow down a tree.)
    pub fn narrowed_by(&self, other: &Limits) -> Limits {
        Limits {
            max_memory: narrowest(self.max_memory, other.max_memory),
            max_table_elements: narrowest(self.max_table_elements, other.max_table_elements),
            max_host_memory: narrowest(self.max_host_memory, other.max_host_memory),
            fuel: narrowest(self.fuel, other.fuel),
            timeout: narrowest(self.timeout, other.timeout),
            max_processes: narrowest(self.max_processes, other.max_processes),
            max_depth: narrowest(self.max_depth, other.max_depth),
            on_grow_failure: self.on_grow_failure.max(other.on_grow_failure),
        }
    }
}

/// Which limit a process hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Limit {
    Memory,
    Table,
    /// The host-memory budget ([`Limits::max_host_memory`]).
    HostMemory,
    Fuel,
    Timeout,
    /// The wasm stack overflowed (the runtime's `max_wasm_stack`).
    Stack,
    /// It tried to start more processes than its tree may have.
    Processes,
    /// It tried to start a process deeper than its tree may go.
    Depth,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Memory => "memory limit",
            Limit::Table => "table limit",
            Limit::HostMemory => "host memory budget",
            Limit::Fuel => "fuel limit",
            Limit::Timeout => "timeout",
            Limit::Stack => "stack overflow",
            Limit::Processes => "process count limit",
            Limit::Depth => "spawn depth limit",
        })
    }
}

/// A count of the live processes in one subtree, against its limit. Every
/// process holds the budgets of all its ancestors that have one.
#[derive(Debug)]
pub(crate) struct ProcessBudget {
    limit: usize,
    live: AtomicUsize,
}

impl ProcessBudget {
    /// A budget for a subtree whose root is already running (counted).
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(ProcessBudget { limit, live: AtomicUsize::new(1) })
    }

    /// Takes one place in every budget, or none if any is full; returns
    /// the limit that was hit.
    pub(crate) fn acquire_all(budgets: &[Arc<ProcessBudget>]) -> Result<(), usize> {
        for (i, budget) in budgets.iter().enumerate() {
            let taken = budget.live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < budget.limit).then_some(live + 1)
            });
            if taken.is_err() {
                Self::release_all(&budgets[..i]);
                return Err(budget.limit);
            }
        }
        Ok(())
    }

    /// How many more processes the fullest of these budgets admits.
    pub(crate) fn headroom(budgets: &[Arc<ProcessBudget>]) -> Option<usize> {
        budgets.iter().map(|b| b.limit.saturating_sub(b.live.load(Ordering::Acquire))).min()
    }

    pub(crate) fn release_all(budgets: &[Arc<ProcessBudget>]) {
        for budget in budgets {
            budget.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_keeps_the_stricter_limit() {
        let parent = Limits { max_memory: Some(10), fuel: Some(5), ..Limits::new() };
        let asked = Limits { max_memory: Some(20), timeout: Some(Duration::from_secs(1)), ..Limits::new() };
        let child = parent.narrowed_by(&asked);
        assert_eq!(child.max_memory, Some(10), "a child cannot widen");
        assert_eq!(child.fuel, Some(5), "inherited");
        assert_eq!(child.timeout, Some(Duration::from_secs(1)), "narrowed");
        assert_eq!(child.max_processes, None);
        assert_eq!(parent.widened_by(&asked), Some("cannot widen the memory limit from 10 to 20".into()));
        assert_eq!(parent.widened_by(&child), None);
    }

    #[test]
    fn a_child_can_only_make_a_failed_growth_stricter() {
        let refusing = Limits { on_grow_failure: Some(GrowFailure::Refuse), ..Limits::new() };
        let trapping = Limits { on_grow_failure: Some(GrowFailure::Trap), ..Limits::new() };
        assert_eq!(refusing.narrowed_by(&Limits::new()).on_grow_failure, Some(GrowFailure::Refuse), "inherited");
        assert_eq!(refusing.narrowed_by(&trapping).on_grow_failure, Some(GrowFailure::Trap), "made stricter");
        assert_eq!(trapping.narrowed_by(&refusing).on_grow_failure, Some(GrowFailure::Trap), "not softened");
        assert_eq!(refusing.widened_by(&trapping), None);
        assert_eq!(
            trapping.widened_by(&refusing),
            Some("cannot soften the grow failure reaction from Trap to Refuse".into())
        );
    }

    #[test]
    fn budgets_are_all_or_nothing() {
        let outer = ProcessBudget::new(3);
        let inner = ProcessBudget::new(2);
        let chain = [outer.clone(), inner.clone()];
        assert_eq!(ProcessBudget::acquire_all(&chain), Ok(()));
        assert_eq!(ProcessBudget::acquire_all(&chain), Err(2), "the inner budget is full");
        assert_eq!(outer.live.load(Ordering::Relaxed), 2, "nothing kept from a failed acquire");
        ProcessBudget::release_all(&chain);
        assert_eq!(ProcessBudget::acquire_all(&chain), Ok(()));
    }
}
