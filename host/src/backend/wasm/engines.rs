//! The wasmtime engines a runtime's processes run on, and their linkers.
//!
//! By default a runtime has two: one with wasmtime's pooling allocator,
//! whose slots (memories, tables, instance data, fiber stacks) are mapped
//! once when the runtime is built and reused from one process to the next,
//! so a start maps and unmaps nothing; and one with the on-demand allocator
//! (fiber stacks recycled by `stacks.rs`), made the first time a process
//! needs it: when every seat in the pool is taken ([`Engines::seat`]), or
//! for a program that fits no slot of it (more memories or tables than a
//! slot has, a table larger than a slot's). So the pool's size bounds only
//! how many processes start fast, never how many may be alive.
//!
//! wasmtime binds a module, a linker and a store to one engine, so the
//! on-demand engine has linkers of its own (made by the same function as
//! the pooled engine's, which defines the host functions again), and a
//! program's code is copied into it from the pooled engine's: compiled
//! code does not depend on the allocator, so the same artifact loads in
//! both, and nothing is compiled twice.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig};

/// What makes the linkers of an engine's programs.
pub(crate) type MakeLinkers<L> = Box<dyn Fn(&Engine) -> wasmtime::Result<L> + Send + Sync>;

/// How often running guests are interrupted to check for a stop request
/// and to yield to other guests.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    /// The engines of `config` (its allocation strategy is replaced):
    /// pooled with `pool`, which has room for `slots` processes (see
    /// [`seat`](Self::seat)), and on demand; or on demand only when there
    /// is no pool. Each has the linkers `make_linkers` makes for it. An epoch ticker bumps the epoch of both for as long as the
    /// first lives.
    pub(crate) fn new(
        config: Config,
        pool: Option<(PoolingAllocationConfig, u32)>,
        make_linkers: MakeLinkers<L>,
    ) -> wasmtime::Result<Engines<L>> {
        let mut on_demand_config = config.clone();
        on_demand_config
            .allocation_strategy(InstanceAllocationStrategy::OnDemand)
            .with_host_stack(Arc::new(crate::base::stacks::StackRecycler::default()));
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

