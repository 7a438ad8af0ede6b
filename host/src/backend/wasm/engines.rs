//! The wasmtime engines a runtime's processes run on, and their linkers.
//!
//! By default (the guarded layout) a runtime has two: one with wasmtime's
//! pooling allocator, whose slots (memories, tables, instance data, fiber
//! stacks) are mapped once when the runtime is built and reused from one
//! process to the next, so a start maps and unmaps nothing; and one with the
//! on-demand allocator (fiber stacks recycled by `stacks.rs`), made the
//! first time a process needs it: when every seat in the pool is taken
//! ([`Engines::seat`]), or for a program that fits no slot of it (more
//! memories or tables than a slot has, a table larger than a slot's). So
//! the pool's size bounds only how many processes start fast, never how
//! many may be alive.
//!
//! wasmtime binds a module, a linker and a store to one engine, so the
//! on-demand engine has linkers of its own (made by the same function as
//! the pooled engine's, which defines the host functions again), and a
//! program's code is copied into it from the pooled engine's: compiled
//! code does not depend on the allocator, so the same artifact loads in
//! both, and nothing is compiled twice.
//!
//! In the dense layout ([`Layout::Dense`]) there is no pool (its slots are
//! guarded), only the on-demand engine, whose memories and fiber stacks are
//! slots of shared slabs without guard regions (`slot_memories.rs`,
//! `stacks.rs`) and whose code checks every memory access explicitly.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::base::slot_memories::SlotMemories;
use crate::base::stacks::{GuardedStacks, SlabStacks, StackRecycler};

/// What makes the linkers of an engine's programs.
pub(crate) type MakeLinkers<L> = Box<dyn Fn(&Engine) -> wasmtime::Result<L> + Send + Sync>;

/// How often running guests are interrupted to check for a stop request
/// and to yield to other guests.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How a runtime lays out its processes' memories and stacks.
pub(crate) enum Layout {
    /// Each memory and fiber stack with guard regions of its own: in the
    /// pool's slots if there is a pool (its configuration and how many
    /// processes it has room for), else (and past it) on demand.
    Guarded { pool: Option<(PoolingAllocationConfig, u32)> },
    /// Memories in slots of `memory_slot` bytes and stacks carved from
    /// shared slabs, no guard regions, every memory access checked; no pool.
    Dense { memory_slot: usize },
}

/// An engine and the linkers `L` its programs are linked with.
pub(crate) struct Linked<L> {
    pub(crate) engine: Engine,
    pub(crate) linkers: L,
}

impl<L> Linked<L> {
    fn new(config: &Config, make_linkers: &MakeLinkers<L>) -> wasmtime::Result<Linked<L>> {
        let engine = Engine::new(config)?;
        let linkers = make_linkers(&engine)?;
        Ok(Linked { engine, linkers })
    }
}

/// The pooled engine (if the runtime pools) and the on-demand one.
pub(crate) struct Engines<L> {
    /// The engine with the pooling allocator; None if the runtime pools nothing.
    pooled: Option<Linked<L>>,
    /// How many processes the pool has room for, and how many it holds.
    slots: u32,
    seated: Arc<AtomicU32>,
    /// The engine with the on-demand allocator: made when first needed, or
    /// with the runtime if it pools nothing.
    on_demand: OnceLock<Result<Linked<L>, String>>,
    on_demand_config: Config,
    make_linkers: MakeLinkers<L>,
    /// The on-demand engine once it is made, for the epoch ticker.
    ticked_later: Arc<OnceLock<EngineWeak>>,
}

impl<L> Engines<L> {
    /// The engines of `config` (its allocation strategy is replaced) in
    /// `layout`: pooled with a pool that has room for `slots` processes
    /// (see [`seat`](Self::seat)), and on demand; or on demand only when
    /// there is no pool. Each has the linkers `make_linkers` makes for it.
    /// An epoch ticker bumps the epoch of both for as long as the first
    /// lives.
    pub(crate) fn new(config: Config, layout: Layout, make_linkers: MakeLinkers<L>) -> wasmtime::Result<Engines<L>> {
        let mut on_demand_config = config.clone();
        on_demand_config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        let pool = match layout {
            Layout::Guarded { pool } => {
                on_demand_config.with_host_stack(Arc::new(StackRecycler::<GuardedStacks>::default()));
                pool
            }
            Layout::Dense { memory_slot } => {
                dense(&mut on_demand_config, memory_slot);
                None
            }
        };
        let (pooled, slots) = match pool {
            Some((pool, slots)) => {
                let mut pooled_config = config;
                pooled_config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
                (Some(Linked::new(&pooled_config, &make_linkers)?), slots)
            }
            None => (None, 0),
        };
        let engines = Engines {
            pooled,
            slots,
            seated: Arc::default(),
            on_demand: OnceLock::new(),
            on_demand_config,
            make_linkers,
            ticked_later: Arc::default(),
        };
        let first = match &engines.pooled {
            Some(pooled) => &pooled.engine,
            None => {
                let linked = Linked::new(&engines.on_demand_config, &engines.make_linkers)?;
                &engines.on_demand.get_or_init(|| Ok(linked)).as_ref().expect("just made").engine
            }
        };
        start_epoch_ticker(first.weak(), engines.ticked_later.clone());
        Ok(engines)
    }

    /// The engine programs are loaded for first: the pooled one if there
    /// is one. Artifacts made by it load in the other too.
    pub(crate) fn first(&self) -> &Linked<L> {
        match &self.pooled {
            Some(pooled) => pooled,
            None => self.on_demand.get().and_then(|made| made.as_ref().ok()).expect("made with the runtime"),
        }
    }

    /// The pooled engine, if the runtime pools.
    pub(crate) fn pooled(&self) -> Option<&Linked<L>> {
        self.pooled.as_ref()
    }

    /// A seat in the pool for one process, if one is free: while it is held,
    /// the pool has room for the process's instances, memories, tables and
    /// fiber stack (a slot's share of each is as large as what the pool lets
    /// one program have, which wasmtime checks when it loads a program).
    /// Counting seats, rather than trying the pool and falling back when
    /// wasmtime finds it full, matters because a store takes its fiber
    /// stack only at its first call into wasm, after instantiation: once
    /// every seat is taken, a process starts on demand from the outset.
    pub(crate) fn seat(&self) -> Option<Seat> {
        let mut taken = self.seated.load(Ordering::Relaxed);
        loop {
            if taken >= self.slots {
                return None;
            }
            match self.seated.compare_exchange_weak(taken, taken + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(Seat { seated: self.seated.clone() }),
                Err(now) => taken = now,
            }
        }
    }

    /// The on-demand engine, made now if it was not yet (the error is why
    /// it cannot be).
    pub(crate) fn on_demand(&self) -> Result<&Linked<L>, String> {
        let made = self.on_demand.get_or_init(|| {
            let linked = Linked::new(&self.on_demand_config, &self.make_linkers)
                .map_err(|e| format!("cannot make the on-demand engine: {}", crate::base::error::one_line(&e)))?;
            let _ = self.ticked_later.set(linked.engine.weak());
            Ok(linked)
        });
        made.as_ref().map_err(Clone::clone)
    }

    /// Makes every running guest, on either engine, check in at once (a
    /// stop is then noticed without waiting for the next tick).
    pub(crate) fn interrupt(&self) {
        if let Some(pooled) = &self.pooled {
            pooled.engine.increment_epoch();
        }
        if let Some(Ok(on_demand)) = self.on_demand.get() {
            on_demand.engine.increment_epoch();
        }
    }
}

/// Makes `config` the dense layout's: memories from slots of `memory_slot`
/// bytes, stacks from slabs, and code that checks every memory access
/// against the memory's size (no reservation to elide checks into, no
/// guard region to catch an access past the end, and a memory that never
/// moves, so its base may stay in a register). No copy-on-write images:
/// they map a file over part of each memory, a mapping per process.
fn dense(config: &mut Config, memory_slot: usize) {
    config
        .memory_reservation(0)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .guard_before_linear_memory(false)
        .memory_may_move(false)
        .memory_init_cow(false)
        .with_host_memory(Arc::new(SlotMemories::new(memory_slot)))
        .with_host_stack(Arc::new(StackRecycler::<SlabStacks>::default()));
}

/// Bumps the epoch of `first` (and of the engine in `later`, once there is
/// one) every tick so running guests check in, and schedules processes
/// whose starter has not waited since (see `run_slot`); the thread ends
/// when `first` is dropped.
fn start_epoch_ticker(first: EngineWeak, later: Arc<OnceLock<EngineWeak>>) {
    std::thread::Builder::new()
        .name("wmp-epoch".into())
        .spawn(move || {
            while let Some(engine) = first.upgrade() {
                engine.increment_epoch();
                drop(engine);
                if let Some(engine) = later.get().and_then(EngineWeak::upgrade) {
                    engine.increment_epoch();
                }
                crate::base::run_slot::schedule_waiting();
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// One process's room in the pool ([`Engines::seat`]); given back when
/// dropped, which must be after the process's store is.
pub(crate) struct Seat {
    seated: Arc<AtomicU32>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.seated.fetch_sub(1, Ordering::Release);
    }
}

