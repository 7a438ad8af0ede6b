//! Guest compute against the same code compiled natively: a sort of one
//! million u64 (`tests/guests/src/workload.rs`, built into the plain guest
//! and into this bench), natively, in raw wasmtime without and with the
//! epoch checks that wmp's kill relies on, and in a wmp process. Each wasm
//! run is timed end to end; instantiating is noise next to the sort.
//!
//! Run: `cargo bench --bench compute`.

mod common;
#[path = "../tests/guests/src/workload.rs"]
mod workload;

use criterion::{Criterion, criterion_group, criterion_main};
use wmp_host::{Capabilities, Runtime, Stdio};

use common::Floor;

const SIZE: usize = 1_000_000;

fn sort(c: &mut Criterion) {
    let mut group = c.benchmark_group("sort_1m_u64");
    group.sample_size(10);
    group.bench_function("native", |b| {
        b.iter(|| workload::sort_checksum(std::hint::black_box(SIZE)))
    });
    let size = SIZE.to_string();
    let argv = ["plain", "compute", size.as_str()];
    for (name, epochs) in [("raw_wasmtime_no_epoch_checks", false), ("raw_wasmtime", true)] {
        let floor = Floor::with_epochs(epochs);
        group.bench_function(name, |b| b.iter(|| floor.run_rust_component_with(&argv)));
    }
    let rt = Runtime::new().unwrap();
    let plain = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    group.bench_function("wmp", |b| {
        b.iter(|| {
            let caps = Capabilities::new().args(argv).stdout(Stdio::Null).stderr(Stdio::Null);
            let p = rt.process(&plain).capabilities(caps).build();
            p.start().unwrap();
            p.join(None).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, sort);
criterion_main!(benches);
