//! Timing a closure over many runs, and the percentiles of what was timed:
//! what every side-by-side table measures with.

use std::time::Instant;

/// Microseconds of each of `samples` runs of `run`, after `samples / 10 + 1`
/// runs of warm-up.
pub fn micros_per_run(samples: usize, mut run: impl FnMut()) -> Vec<f64> {
    for _ in 0..samples / 10 + 1 {
        run();
    }
    (0..samples)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// The `q`-quantile (0.5 for the median) of `samples`, nearest rank.
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = (samples.len() as f64 * q) as usize;
    samples[rank.min(samples.len() - 1)]
}
