//! Rolling variance of training losses: the measure behind the re-weighting claim of Wu et al.
//! ("Improving GAN Training with Probability Ratio Clipping and Sample Reweighting", NeurIPS
//! 2020, Figure 1 middle and right: with re-weighting, both the critic's and the generator's
//! losses vary less over training).
//!
//! [`rolling_variance`] is the *population* variance (divided by the window's length, not one
//! less) over a trailing window, reported once the window is full; each window is computed in
//! two passes (mean, then squared deviations), so a loss with a large offset keeps its digits,
//! at `O(len · window)` cost.

use crate::error::{Error, Result};

/// The logged losses of a GAN run, one entry per logged outer iteration, and the window of
/// their rolling variance.
#[derive(Clone, Debug, PartialEq)]
pub struct GanLossSeries {
    /// Outer iteration of each entry (strictly increasing).
    pub iterations: Vec<usize>,
    /// Critic loss at each entry.
    pub critic: Vec<f64>,
    /// Generator loss at each entry.
    pub generator: Vec<f64>,
    /// Entries per rolling-variance window (≥ 1).
    pub window: usize,
}

impl GanLossSeries {
    /// Checks that the series are non-empty, of one length, finite, the iterations strictly
    /// increasing, and `window ≥ 1`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `iterations`, `critic`, `generator` or `window`.
    pub fn validate(&self) -> Result<()> {
        let n = self.iterations.len();
        if n == 0 {
            return Err(Error::invalid("iterations", "[]", "no losses logged"));
        }
        if let Some(w) = self.iterations.windows(2).find(|w| w[1] <= w[0]) {
            return Err(Error::invalid(
                "iterations",
                format!("{} after {}", w[1], w[0]),
                "must be strictly increasing",
            ));
        }
        for (name, v) in [("critic", &self.critic), ("generator", &self.generator)] {
            if v.len() != n {
                return Err(Error::invalid(
                    name,
                    format!("{} values", v.len()),
                    format!("must have one value per logged iteration ({n})"),
                ));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::invalid(
                    name,
                    v[i],
                    format!("non-finite loss at iteration {}", self.iterations[i]),
                ));
            }
        }
        if self.window == 0 {
            return Err(Error::invalid("window", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// The critic loss's rolling variance, each value paired with the iteration that ends its
    /// window (empty while fewer than `window` entries are logged).
    pub fn critic_variance(&self) -> Vec<(usize, f64)> {
        self.paired(&self.critic)
    }

    /// The generator loss's rolling variance, paired as [`GanLossSeries::critic_variance`].
    pub fn generator_variance(&self) -> Vec<(usize, f64)> {
        self.paired(&self.generator)
    }

    fn paired(&self, values: &[f64]) -> Vec<(usize, f64)> {
        let offset = self.window.saturating_sub(1);
        self.iterations
            .iter()
            .skip(offset)
            .copied()
            .zip(rolling_variance(values, self.window))
            .collect()
    }
}

/// Population variance of every full trailing window of `values`: entry `i` is the variance
/// of `values[i .. i + window]` (so it belongs to position `i + window − 1`); the result has
/// `values.len() − window + 1` entries, none if `values` is shorter than `window` or `window`
/// is 0.
pub fn rolling_variance(values: &[f64], window: usize) -> Vec<f64> {
    if window == 0 {
        return Vec::new();
    }
    values
        .windows(window)
        .map(|w| {
            let n = w.len() as f64;
            let mean = w.iter().sum::<f64>() / n;
            w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, spelled out: Σ(x − x̄)² / n over `values[end + 1 − window ..= end]`.
    fn naive(values: &[f64], window: usize, end: usize) -> f64 {
        let mut sum = 0.0;
        for k in end + 1 - window..=end {
            sum += values[k];
        }
        let mean = sum / window as f64;
        let mut ss = 0.0;
        for k in end + 1 - window..=end {
            ss += (values[k] - mean) * (values[k] - mean);
        }
        ss / window as f64
    }

    #[test]
    fn matches_the_naive_definition() {
        let values: Vec<f64> = (0..57)
            .map(|i| 1e3 + (0.7 * i as f64).sin() * (1.0 + 0.05 * i as f64))
            .collect();
        for window in [1, 2, 5, 13, 57] {
            let got = rolling_variance(&values, window);
            assert_eq!(got.len(), values.len() + 1 - window);
            for (i, g) in got.iter().enumerate() {
                let want = naive(&values, window, i + window - 1);
                assert!(
                    (g - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "window {window}, entry {i}: {g} vs {want}"
                );
            }
        }
        assert!(rolling_variance(&values, 58).is_empty());
        assert!(rolling_variance(&values, 0).is_empty());
        assert_eq!(rolling_variance(&[3.0, 3.0, 3.0], 2), [0.0, 0.0]);
        // Population, not sample, variance: {0, 2} → 1.
        assert_eq!(rolling_variance(&[0.0, 2.0], 2), [1.0]);
    }

    #[test]
    fn variance_is_paired_with_the_iteration_ending_its_window() {
        let s = GanLossSeries {
            iterations: vec![10, 20, 30, 40],
            critic: vec![0.0, 2.0, 0.0, 2.0],
            generator: vec![1.0, 1.0, 1.0, 4.0],
            window: 3,
        };
        s.validate().unwrap();
        let c = s.critic_variance();
        assert_eq!(c.iter().map(|p| p.0).collect::<Vec<_>>(), [30, 40]);
        assert!((c[0].1 - 8.0 / 9.0).abs() < 1e-15);
        assert_eq!(s.generator_variance()[0], (30, 0.0));
        assert_eq!(s.generator_variance()[1], (40, 2.0));
    }

    #[test]
    fn bad_series_are_refused() {
        let good = GanLossSeries {
            iterations: vec![1, 2],
            critic: vec![0.0, 1.0],
            generator: vec![0.0, 1.0],
            window: 1,
        };
        let cases = [
            GanLossSeries {
                iterations: vec![],
                critic: vec![],
                generator: vec![],
                ..good.clone()
            },
            GanLossSeries {
                critic: vec![0.0],
                ..good.clone()
            },
            GanLossSeries {
                generator: vec![0.0, f64::NAN],
                ..good.clone()
            },
            GanLossSeries {
                window: 0,
                ..good.clone()
            },
            GanLossSeries {
                iterations: vec![2, 2],
                ..good.clone()
            },
        ];
        good.validate().unwrap();
        for c in &cases {
            assert!(matches!(c.validate(), Err(Error::InvalidInput { .. })));
        }
    }
}
