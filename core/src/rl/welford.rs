//! Running observation statistics (Welford's algorithm) and the normalisation the reference
//! applies to every observation: `(x − mean)/std` with the population standard deviation
//! clamped to `[0.1, 10]` (the reference's `svg/replay_buffer.py`, `get_obs_stats`).

use crate::real::Real;

/// Smallest standard deviation used to normalise.
pub const MIN_STD: f64 = 0.1;
/// Largest standard deviation used to normalise.
pub const MAX_STD: f64 = 10.0;

/// One step of Welford's algorithm on slices of equal length: `count` observations including
/// `x` (so at least 1), `mean` and `m2` (sums of squared deviations) updated in place.
pub fn welford_update<T: Real>(count: u64, mean: &mut [T], m2: &mut [T], x: &[T]) {
    let n = T::from_f64(count as f64);
    for ((m, s), &v) in mean.iter_mut().zip(m2.iter_mut()).zip(x) {
        let delta = v - *m;
        *m += delta / n;
        *s += delta * (v - *m);
    }
}

/// The population standard deviations `√(m2/count)` clamped to `[MIN_STD, MAX_STD]`, into `out`
/// (no data counts as one observation: the floor).
pub fn clamped_std<T: Real>(count: u64, m2: &[T], out: &mut [T]) {
    let n = T::from_f64(count.max(1) as f64);
    let (lo, hi) = (T::from_f64(MIN_STD), T::from_f64(MAX_STD));
    for (o, s) in out.iter_mut().zip(m2) {
        *o = (*s / n).sqrt().max(lo).min(hi);
    }
}

/// Running mean and population variance of `O`-dimensional observations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welford<T, const O: usize> {
    count: u64,
    mean: [T; O],
    m2: [T; O],
}

impl<T: Real, const O: usize> Default for Welford<T, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real, const O: usize> Welford<T, O> {
    /// No observations yet (mean 0, standard deviation clamped up to 0.1).
    pub fn new() -> Self {
        Welford {
            count: 0,
            mean: [T::ZERO; O],
            m2: [T::ZERO; O],
        }
    }

    /// Restores saved statistics (`m2` is the sum of squared deviations).
    pub fn from_parts(count: u64, mean: [T; O], m2: [T; O]) -> Self {
        Welford { count, mean, m2 }
    }

    /// Adds one observation.
    pub fn push(&mut self, x: &[T; O]) {
        self.count += 1;
        welford_update(self.count, &mut self.mean, &mut self.m2, x);
    }

    /// Observations seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The running mean.
    pub fn mean(&self) -> &[T; O] {
        &self.mean
    }

    /// The sums of squared deviations.
    pub fn m2(&self) -> &[T; O] {
        &self.m2
    }

    /// The population standard deviation, clamped to [`MIN_STD`, `MAX_STD`].
    pub fn std(&self) -> [T; O] {
        let mut s = [T::ZERO; O];
        clamped_std(self.count, &self.m2, &mut s);
        s
    }

    /// `(x − mean)/std` in place.
    pub fn normalize(&self, x: &mut [T; O]) {
        let s = self.std();
        for i in 0..O {
            x[i] = (x[i] - self.mean[i]) / s[i];
        }
    }
}
