//! The small-scale data set of the GAN experiments: a mixture of Gaussians on a circle, and the
//! two numbers that judge a generator's samples of it (Wu et al., "Improving GAN Training with
//! Probability Ratio Clipping and Sample Reweighting", NeurIPS 2020; the set-up is the usual
//! 2-D benchmark of the mode-collapse literature).
//!
//! **Data.** [`Ring::default`] is 8 Gaussians with centres `c_k = r·(cos 2πk/8, sin 2πk/8)`,
//! `r = 2`, each with covariance `σ²I`, `σ = 0.02`, mixed with equal weights. [`Ring::sample`]
//! picks a mode uniformly and adds `N(0, σ²I)` noise, from an explicit generator.
//!
//! **Metrics** ([`ring_quality`]). A sample is *high quality* when it lies within `3σ` of its
//! nearest centre (Euclidean distance in the plane); a mode is *covered* when at least 20 of
//! 2,000 samples are high quality and nearest to it. For another sample count `n` the 20 is
//! scaled in proportion: the threshold is `⌈20·n/2000⌉ = ⌈n/100⌉`, at least 1
//! ([`coverage_threshold`]). For samples of the ring itself the expected high-quality fraction
//! is `P(‖ε‖ ≤ 3σ) = 1 − e^{−9/2} ≈ 0.9889` (`‖ε‖/σ` is chi-distributed with 2 degrees of
//! freedom), so a perfect generator scores about 0.989, not 1; the nearest centre is always the
//! own one here (neighbouring centres are `2r·sin(π/8) ≈ 1.53` apart, 38σ).
//!
//! Not for: higher-dimensional mixtures, or ring set-ups whose modes overlap (then "nearest
//! centre" no longer names the mode a sample came from).

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use crate::error::{Error, Result};

/// Number of samples the coverage rule is stated for (20 of 2,000).
pub const REFERENCE_COUNT: usize = 2000;
/// High-quality samples per mode needed, out of [`REFERENCE_COUNT`], for the mode to count as
/// covered.
pub const REFERENCE_THRESHOLD: usize = 20;

/// A mixture of `modes` equally weighted isotropic Gaussians with standard deviation `std`,
/// centred on a circle of radius `radius` around the origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Ring {
    /// Number of Gaussians (8 in the paper's set-up).
    pub modes: usize,
    /// Radius of the circle of centres (2).
    pub radius: f64,
    /// Standard deviation of each Gaussian, per axis (0.02).
    pub std: f64,
}

impl Default for Ring {
    /// The paper's small-scale set-up: 8 Gaussians on a circle of radius 2, std 0.02.
    fn default() -> Self {
        Self {
            modes: 8,
            radius: 2.0,
            std: 0.02,
        }
    }
}

impl Ring {
    /// Checks the parameters: at least one mode, a finite radius ≥ 0, a finite std > 0.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `modes`, `radius` or `std`.
    pub fn validate(&self) -> Result<()> {
        if self.modes == 0 {
            return Err(Error::invalid("modes", 0, "a ring needs at least one mode"));
        }
        if !(self.radius >= 0.0) || !self.radius.is_finite() {
            return Err(Error::invalid(
                "radius",
                self.radius,
                "must be finite and not negative",
            ));
        }
        if !(self.std > 0.0) || !self.std.is_finite() {
            return Err(Error::invalid(
                "std",
                self.std,
                "must be finite and positive",
            ));
        }
        Ok(())
    }

    /// The centres `radius·(cos 2πk/modes, sin 2πk/modes)`, `k = 0 … modes−1`: the first at
    /// `(radius, 0)`, then counter-clockwise.
    pub fn centres(&self) -> Vec<[f64; 2]> {
        (0..self.modes)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / self.modes as f64;
                [self.radius * a.cos(), self.radius * a.sin()]
            })
            .collect()
    }

    /// `n` samples, row-major `[n, 2]`: for each, a mode drawn uniformly (one uniform draw),
    /// then its centre plus `N(0, std²)` noise on each axis (two standard normals, x then y).
    ///
    /// # Panics
    /// If [`Ring::validate`] fails (no mode, or a non-finite or non-positive spread); check it
    /// first for parameters that come from a user.
    #[track_caller]
    pub fn sample(&self, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
        if let Err(e) = self.validate() {
            panic!("Ring::sample: {e}");
        }
        let centres = self.centres();
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let k = ((uniform::<f64, _>(rng) * self.modes as f64) as usize).min(self.modes - 1);
            let [cx, cy] = centres[k];
            let dx: f64 = standard_normal(rng);
            let dy: f64 = standard_normal(rng);
            out.push(cx + self.std * dx);
            out.push(cy + self.std * dy);
        }
        out
    }
}

/// How well a set of samples reproduces a [`Ring`] (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct RingQuality {
    /// Modes with at least [`coverage_threshold`] high-quality samples.
    pub modes_covered: usize,
    /// Fraction of all samples within `3σ` of their nearest centre.
    pub high_quality_fraction: f64,
    /// High-quality samples per mode, in the order of [`Ring::centres`].
    pub per_mode: Vec<usize>,
}

/// High-quality samples a mode needs, out of `n`, to count as covered: 20 of 2,000 scaled in
/// proportion, `⌈20·n/2000⌉ = ⌈n/100⌉`, and at least 1.
pub fn coverage_threshold(n: usize) -> usize {
    // ⌈20·n/2000⌉ without the overflow of 20·n.
    n.div_ceil(REFERENCE_COUNT / REFERENCE_THRESHOLD).max(1)
}

/// Judges samples (row-major `[n, 2]`) of a generator trained on `ring`: each sample is
/// assigned to its nearest centre and is high quality within `3·ring.std` of it; a mode is
/// covered with at least [`coverage_threshold`]`(n)` high-quality samples.
///
/// # Errors
/// [`Error::InvalidInput`]: an invalid ring (`modes`, `radius`, `std`, as [`Ring::validate`]),
/// or `samples` empty, of odd length, or holding a non-finite value (the first one's index is
/// named).
pub fn ring_quality(ring: &Ring, samples: &[f64]) -> Result<RingQuality> {
    ring.validate()?;
    if samples.is_empty() {
        return Err(Error::invalid(
            "samples",
            "[]",
            "no samples to judge (need [n, 2], n ≥ 1)",
        ));
    }
    if !samples.len().is_multiple_of(2) {
        return Err(Error::invalid(
            "samples",
            format!("{} values", samples.len()),
            "2-D samples need an even number of values (row-major [n, 2])",
        ));
    }
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "samples",
            samples[i],
            format!("non-finite value at row {}, column {}", i / 2, i % 2),
        ));
    }
    let centres = ring.centres();
    let limit2 = (3.0 * ring.std).powi(2);
    let mut per_mode = vec![0usize; ring.modes];
    for p in samples.chunks_exact(2) {
        let (k, d2) = centres
            .iter()
            .map(|c| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2))
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |best, (k, d2)| {
                    if d2 < best.1 {
                        (k, d2)
                    } else {
                        best
                    }
                },
            );
        if d2 <= limit2 {
            per_mode[k] += 1;
        }
    }
    let n = samples.len() / 2;
    let threshold = coverage_threshold(n);
    let good: usize = per_mode.iter().sum();
    Ok(RingQuality {
        modes_covered: per_mode.iter().filter(|&&c| c >= threshold).count(),
        high_quality_fraction: good as f64 / n as f64,
        per_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_start_on_the_x_axis_and_go_counter_clockwise() {
        let c = Ring::default().centres();
        assert_eq!(c.len(), 8);
        assert_eq!(c[0], [2.0, 0.0]);
        let s = 2.0 * std::f64::consts::FRAC_1_SQRT_2;
        assert!((c[1][0] - s).abs() < 1e-15 && (c[1][1] - s).abs() < 1e-15);
        assert!(c[2][0].abs() < 1e-15 && (c[2][1] - 2.0).abs() < 1e-15);
        for p in &c {
            assert!((p[0].hypot(p[1]) - 2.0).abs() < 1e-15);
        }
    }

    #[test]
    fn threshold_is_20_of_2000_scaled_up() {
        assert_eq!(coverage_threshold(2000), 20);
        assert_eq!(coverage_threshold(1000), 10);
        assert_eq!(coverage_threshold(2001), 21);
        assert_eq!(coverage_threshold(50), 1);
        assert_eq!(coverage_threshold(1), 1);
        assert_eq!(coverage_threshold(usize::MAX), usize::MAX.div_ceil(100));
    }

    #[test]
    fn three_sigma_bounds_quality_and_the_nearest_centre_wins() {
        let ring = Ring::default();
        // Just inside 3σ along x from centre 0, and just beyond.
        let q = ring_quality(&ring, &[2.0599, 0.0, 2.0601, 0.0]).unwrap();
        assert_eq!(q.per_mode[0], 1);
        assert_eq!(q.high_quality_fraction, 0.5);
        // Near centre 3 (at 135°).
        let c = ring.centres()[3];
        let q = ring_quality(&ring, &[c[0] + 0.01, c[1] - 0.01]).unwrap();
        assert_eq!(q.per_mode, [0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(q.modes_covered, 1);
    }

    #[test]
    fn sampling_is_seeded_and_centred() {
        let ring = Ring::default();
        let a = ring.sample(500, &mut Xoshiro256PlusPlus::seed_from_u64(7));
        let b = ring.sample(500, &mut Xoshiro256PlusPlus::seed_from_u64(7));
        assert_eq!(a, b);
        assert_eq!(a.len(), 1000);
        // The mixture's mean is the origin: |mean| within 5 standard errors (per axis the
        // variance is r²/2 + σ² = 2.0004).
        let n = 500.0;
        let se = (2.0004f64 / n).sqrt();
        let mx = a.iter().step_by(2).sum::<f64>() / n;
        let my = a.iter().skip(1).step_by(2).sum::<f64>() / n;
        assert!(mx.abs() < 5.0 * se && my.abs() < 5.0 * se, "{mx} {my}");
    }

    #[test]
    fn bad_rings_are_refused() {
        let bad = [
            Ring {
                modes: 0,
                ..Ring::default()
            },
            Ring {
                std: 0.0,
                ..Ring::default()
            },
            Ring {
                std: f64::NAN,
                ..Ring::default()
            },
            Ring {
                radius: f64::INFINITY,
                ..Ring::default()
            },
        ];
        for r in &bad {
            assert!(matches!(
                ring_quality(r, &[0.0, 0.0]),
                Err(Error::InvalidInput { .. })
            ));
        }
    }
}
