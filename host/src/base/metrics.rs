//! What each process used: the lock-free counters a process's node carries
//! ([`Meter`]), which its backend and its IPC calls add to while it runs,
//! and the [`ProcessMetrics`] read from them at any time, during the run
//! or after its end.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one process has used so far (all of its run, once it has ended),
/// as [`ProcessInfo::metrics`](crate::ProcessInfo::metrics) and
/// [`Process::metrics`](crate::Process::metrics) report it.
///
/// Measured are wasm guests (a main process run by
/// [`Runtime::run_main`](crate::Runtime::run_main) too) and native
/// children; the embedding host's own main process uses the host's API
/// unmeasured, and a process placed on a cluster node reports nothing yet.
///
/// ```no_run
/// # fn main() -> wmp_host::Result<()> {
/// let rt = wmp_host::Runtime::builder().fuel_metering(true).build()?;
/// let p = rt.process(&rt.load("worker.wasm")?).build();
/// p.start()?;
/// p.join(None)?;
/// let used = p.metrics()?.expect("started");
/// println!("{:?} of CPU, {:?} fuel, {} bytes of memory at most", used.cpu_time, used.fuel_consumed, used.memory_peak);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessMetrics {
    /// Time spent running it. For a wasm process, the time its run was
    /// being polled: its wasm code and the host calls that return at once
    /// (instantiation included), not the time it waited (a join, a sleep,
    /// a receive) or waited for its turn. For a native process, the user
    /// and system CPU time the kernel reports when it is reaped (zero
    /// until then).
    pub cpu_time: Duration,
    /// Fuel its wasm code consumed, when the runtime meters fuel
    /// ([`RuntimeBuilder::fuel_metering`](crate::RuntimeBuilder::fuel_metering));
    /// None without metering, and for a native process. Read at each epoch
    /// tick (10 ms) of a running guest and at the end of its run (a return,
    /// an exit, a trap, or a stop while it runs), so a live reading may lag
    /// by a tick, and a guest stopped while it waits (in a join, a sleep, a
    /// receive) keeps the reading of its last tick.
    pub fuel_consumed: Option<u64>,
    /// The most bytes of linear memory it held at once, all its memories
    /// together; for a native process, its peak resident set size as the
    /// kernel reports it when it is reaped.
    pub memory_peak: usize,
    /// The most table elements it held at once, all its tables together
    /// (wasm only).
    pub table_elements_peak: usize,
    /// The most bytes its host-memory ledger held at once (what the host
    /// held on its behalf; [`ProcessInfo::host_memory`](crate::ProcessInfo::host_memory)
    /// is what it holds now).
    pub host_memory_peak: usize,
    /// Bytes of the messages it sent into pipes and put into queues (for a
    /// native child, those that crossed its sockets to this runtime).
    pub ipc_bytes_sent: u64,
    /// Bytes of the messages it received from pipes and took from queues.
    pub ipc_bytes_received: u64,
}

/// The counters of one process, behind its [`ProcessMetrics`]. Each has
/// one writer at a time (the poller of its run, its memory guard, its
/// reaper) or adds atomically (IPC calls), so all are relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    cpu_nanos: AtomicU64,
    fuel_metered: AtomicBool,
    fuel_consumed: AtomicU64,
    memory_peak: AtomicUsize,
    table_elements_peak: AtomicUsize,
    ipc_bytes_sent: AtomicU64,
    ipc_bytes_received: AtomicU64,
}

impl Meter {
    /// Adds `time` of running to the process's CPU time.
    pub(crate) fn add_cpu_time(&self, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Sets the CPU time at once (the kernel's total for a native process).
    pub(crate) fn set_cpu_time(&self, time: Duration) {
        self.cpu_nanos.store(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Says that fuel is metered for this process (so 0 consumed is known).
    pub(crate) fn meter_fuel(&self) {
        self.fuel_metered.store(true, Ordering::Relaxed);
    }

    /// Whether fuel is metered for this process.
    pub(crate) fn fuel_metered(&self) -> bool {
        self.fuel_metered.load(Ordering::Relaxed)
    }

    /// The fuel consumed so far, as its store last reported it.
    pub(crate) fn set_fuel_consumed(&self, fuel: u64) {
        self.fuel_consumed.store(fuel, Ordering::Relaxed);
    }

    /// The memory (bytes) and table (elements) high-water marks, as the
    /// process's memory guard or its reaper knows them.
    pub(crate) fn set_memory_peak(&self, bytes: usize) {
        self.memory_peak.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_table_elements_peak(&self, elements: usize) {
        self.table_elements_peak.store(elements, Ordering::Relaxed);
    }

    /// Counts the bytes of messages sent or put.
    pub(crate) fn sent(&self, bytes: usize) {
        self.ipc_bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts the bytes of messages received or taken.
    pub(crate) fn received(&self, bytes: usize) {
        self.ipc_bytes_received.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The metrics now, with the host-memory peak its ledger keeps.
    pub(crate) fn read(&self, host_memory_peak: usize) -> ProcessMetrics {
        ProcessMetrics {
            cpu_time: Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed)),
            fuel_consumed: self.fuel_metered().then(|| self.fuel_consumed.load(Ordering::Relaxed)),
            memory_peak: self.memory_peak.load(Ordering::Relaxed),
            table_elements_peak: self.table_elements_peak.load(Ordering::Relaxed),
            host_memory_peak,
            ipc_bytes_sent: self.ipc_bytes_sent.load(Ordering::Relaxed),
            ipc_bytes_received: self.ipc_bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// Times one poll of a process's run: started when the poll begins, it
/// gives the poll's own time when it ends, less the time spent polling
/// other processes inside it (a guest that joins a child may poll the
/// child's run within its own poll; that time is the child's).
pub(crate) struct PollClock {
    began: Instant,
    nested: Duration,
}

impl PollClock {
    pub(crate) fn start() -> PollClock {
        PollClock { began: Instant::now(), nested: Duration::ZERO }
    }

    /// Counts `time` spent in a poll of another process inside this one.
    pub(crate) fn nested(&mut self, time: Duration) {
        self.nested += time;
    }

    /// The whole poll's time, and this process's own share of it.
    pub(crate) fn stop(&self) -> (Duration, Duration) {
        let whole = self.began.elapsed();
        (whole, whole.saturating_sub(self.nested))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_read_back_as_metrics() {
        let meter = Meter::default();
        assert_eq!(meter.read(0), ProcessMetrics::default(), "nothing used, and no fuel without metering");
        meter.add_cpu_time(Duration::from_micros(3));
        meter.add_cpu_time(Duration::from_micros(4));
        meter.meter_fuel();
        meter.sent(10);
        meter.sent(5);
        meter.received(7);
        meter.set_memory_peak(65536);
        meter.set_table_elements_peak(12);
        let read = meter.read(300);
        assert_eq!(read.cpu_time, Duration::from_micros(7));
        assert_eq!(read.fuel_consumed, Some(0), "metered, none consumed yet");
        assert_eq!((read.ipc_bytes_sent, read.ipc_bytes_received), (15, 7));
        assert_eq!((read.memory_peak, read.table_elements_peak, read.host_memory_peak), (65536, 12, 300));
        meter.set_fuel_consumed(42);
        meter.set_cpu_time(Duration::from_secs(2));
        assert_eq!((meter.read(0).fuel_consumed, meter.read(0).cpu_time), (Some(42), Duration::from_secs(2)));
    }

    #[test]
    fn a_poll_clock_leaves_out_the_nested_polls() {
        let mut clock = PollClock::start();
        clock.nested(Duration::from_secs(3600));
        let (whole, own) = clock.stop();
        assert!(whole < Duration::from_secs(3600), "the clock measured the real poll");
        assert_eq!(own, Duration::ZERO, "more nested than the whole counts as none of its own");
    }
}
