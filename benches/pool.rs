//! `Pool.map` of 10,000 small tasks (squaring ints) with 2 workers: wmp's
//! host `Pool` over the probe guest's `pool_square` against Python's
//! `multiprocessing.Pool(2).map` in the same run, each timed the same way
//! (the median of many runs, timed inside the process that runs the pool):
//! a warm map on a pool already started, a cold one that starts the pool,
//! maps, and closes and joins it, and one `apply` (a task's round trip).
//! Prints both sides and the ratios.
//!
//! Run: `cargo bench --bench pool` (add `-- quick` for fewer samples).

mod common;

use std::process::Command;

use wmp_host::{PoolOptions, Runtime};

const TASKS: u64 = 10_000;

/// Python's side: the median microseconds of a warm map, of a cold pool's
/// start, map, close and join, and of one `apply` on a warm pool, printed
/// as `warm_us=.. cold_us=.. apply_us=..`.
const PYTHON: &str = r#"
import multiprocessing as mp, statistics, sys, time
def square(x):
    return x * x
if __name__ == "__main__":
    samples, tasks = int(sys.argv[1]), int(sys.argv[2])
    expected = [x * x for x in range(tasks)]
    def timed(run):
        out = []
        for _ in range(samples // 10 + 1):
            run()
        for _ in range(samples):
            t0 = time.perf_counter()
            run()
            out.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(out)
    with mp.Pool(2) as pool:
        warm = timed(lambda: pool.map(square, range(tasks)))
        assert pool.map(square, range(tasks)) == expected
        apply = timed(lambda: pool.apply(square, (3,)))
    def cold():
        with mp.Pool(2) as pool:
            pool.map(square, range(tasks))
            pool.close()
            pool.join()
    print(f"warm_us={warm:.1f} cold_us={timed(cold):.1f} apply_us={apply:.1f} method={mp.get_start_method()}")
"#;

fn median(mut samples: Vec<f64>) -> f64 {
    common::timing::quantile(&mut samples, 0.5)
}

/// The medians of Python's runs, in microseconds, and its start method.
struct Python {
    warm: f64,
    cold: f64,
    apply: f64,
    method: String,
}

fn python(samples: usize) -> Option<Python> {
    let out = Command::new("python3").args(["-c", PYTHON, &samples.to_string(), &TASKS.to_string()]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| text.split_whitespace().find_map(|f| f.strip_prefix(key)).map(str::to_owned);
    let micros = |key: &str| field(key)?.parse().ok();
    Some(Python { warm: micros("warm_us=")?, cold: micros("cold_us=")?, apply: micros("apply_us=")?, method: field("method=")? })
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let samples = if quick { 10 } else { 50 };
    let rt = Runtime::new().unwrap();
    let probe = rt.load(wmp_test_guests::PROBE).unwrap();
    let expected: Vec<u64> = (0..TASKS).map(|x| x * x).collect();
    let options = || PoolOptions::new().processes(2);

    let pool = rt.pool(&probe, options()).unwrap();
    let warm = median(common::timing::micros_per_run(samples, || {
        let squares: Vec<u64> = pool.map("pool_square", 0..TASKS).unwrap();
        assert_eq!(squares, expected);
    }));
    let apply = median(common::timing::micros_per_run(samples * 10, || {
        assert_eq!(pool.apply::<(u64,), u64>("pool_square", (3,)), Ok(9));
    }));
    drop(pool);
    let cold = median(common::timing::micros_per_run(samples, || {
        let pool = rt.pool(&probe, options()).unwrap();
        let squares: Vec<u64> = pool.map("pool_square", 0..TASKS).unwrap();
        assert_eq!(squares, expected);
        pool.close();
        pool.join().unwrap();
    }));

    let py = python(samples);
    println!("\n| Pool(2) | wmp µs | Python µs | Python / wmp |");
    println!("|---|---:|---:|---:|");
    let rows = [
        ("map of 10,000 squares, warm pool", warm, py.as_ref().map(|p| p.warm)),
        ("start, map of 10,000 squares, close, join", cold, py.as_ref().map(|p| p.cold)),
        ("one apply, warm pool", apply, py.as_ref().map(|p| p.apply)),
    ];
    for (what, wmp, python) in rows {
        match python {
            Some(python) => println!("| {what} | {wmp:.0} | {python:.0} | {:.1}× |", python / wmp),
            None => println!("| {what} | {wmp:.0} | (no python3) | |"),
        }
    }
    if let Some(py) = py {
        println!("\nPython's start method: {}. Target: wmp ≥ 10× Python's speed.", py.method);
    }
}
