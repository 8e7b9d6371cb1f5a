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

/// What the online streams report of their per-point update times (seconds in, µs out).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct UpdateTimes {
    /// Mean, seconds.
    pub(crate) mean_seconds: f64,
    /// Median, µs.
    pub(crate) median_us: f64,
    /// Median over the first tenth, µs.
    pub(crate) first_tenth_us: f64,
    /// Median over the last tenth, µs.
    pub(crate) last_tenth_us: f64,
}

impl UpdateTimes {
    /// The summary of `seconds` (one entry per update; NaN medians for none).
    pub(crate) fn of(seconds: &[f64]) -> UpdateTimes {
        let tenth = (seconds.len() / 10).max(1).min(seconds.len());
        let us = |v: &[f64]| median(&mut v.iter().map(|s| s * 1e6).collect::<Vec<_>>());
        UpdateTimes {
            mean_seconds: seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
            median_us: us(seconds),
            first_tenth_us: us(&seconds[..tenth]),
            last_tenth_us: us(&seconds[seconds.len() - tenth..]),
        }
    }
}
