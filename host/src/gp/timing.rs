//! Wall-clock measurements of the GP commands: the per-update times that show WISKI's constant
//! cost per observation (Stanton et al., *Kernel Interpolation for Scalable Online Gaussian
//! Processes*, AISTATS 2021) against the exact GP's growing one.

use std::time::Instant;

/// Wall time of `f` in seconds with its result.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// The median of `v` (sorted in place); NaN for none.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}
