//! A compute workload built twice: into the plain guest (`plain compute N`)
//! and natively into benches/compare.rs, so guest code is measured against
//! the same code running natively.

/// Fills `n` pseudo-random numbers, sorts them and folds a checksum.
pub fn sort_checksum(n: usize) -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut values: Vec<u64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        })
        .collect();
    values.sort_unstable();
    values.iter().step_by(97).fold(0, |sum, v| sum.wrapping_mul(31).wrapping_add(*v))
}
