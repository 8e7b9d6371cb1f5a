//! Priors on every weight, independently, at temperature `T` (`log p_T = log p / T`).
//!
//! The paper compares a Gaussian, a mixture of Gaussians and a logistic prior; the reference code
//! ships only the Gaussian (`bnn_hmc/utils/losses.py`, `make_gaussian_log_prior`), so the other two
//! are defined here in the standard way, each parameterised by the same **prior standard deviation
//! `s`** so that a comparison changes the shape of the prior and not its scale:
//!
//! - `gaussian`: `N(0, s²)`.
//! - `mixture`: the scale mixture `π N(0, σ₁²) + (1 − π) N(0, σ₂²)` of Blundell et al. (2015)
//!   with `σ₁ = r σ₂`, where the weight `π` and the ratio `r > 1` are settings and `σ₂` is
//!   chosen so the variance `π σ₁² + (1 − π) σ₂²` equals `s²` — a heavier-tailed prior of the
//!   same variance.
//! - `logistic`: the logistic density `e^{−θ/b} / (b (1 + e^{−θ/b})²)` with `b = s√3/π`
//!   (variance `b²π²/3 = s²`).

use crate::backend::cpu::hmc as twin;
use crate::backend::hmc::{PriorArgs, PriorKind};
use crate::error::{Error, Result};

/// One prior density, applied to every parameter independently.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prior {
    /// `N(0, std²)`.
    Gaussian {
        /// Standard deviation `s`.
        std: f64,
    },
    /// `π N(0, σ₁²) + (1 − π) N(0, σ₂²)`.
    Mixture {
        /// Weight `π` of the wide component.
        weight: f64,
        /// Standard deviation `σ₁` of the wide component.
        wide: f64,
        /// Standard deviation `σ₂` of the narrow component.
        narrow: f64,
    },
    /// Logistic with scale `b`.
    Logistic {
        /// Scale `b`.
        scale: f64,
    },
}

impl Prior {
    /// The prior named `name` (`gaussian`, `mixture`, `logistic`) with standard deviation `std`;
    /// `weight` and `ratio` shape the mixture.
    ///
    /// # Errors
    /// An unknown name; a standard deviation that is not a positive number; a mixture weight
    /// outside (0, 1) or a ratio not above 1.
    pub fn new(name: &str, std: f64, weight: f64, ratio: f64) -> Result<Prior> {
        if !(std > 0.0 && std.is_finite()) {
            return Err(Error::invalid(
                "prior_std",
                std,
                "must be a positive number",
            ));
        }
        match name {
            "gaussian" => Ok(Prior::Gaussian { std }),
            "mixture" => {
                if !(weight > 0.0 && weight < 1.0) {
                    return Err(Error::invalid(
                        "mixture_weight",
                        weight,
                        "must lie strictly between 0 and 1",
                    ));
                }
                if !(ratio > 1.0 && ratio.is_finite()) {
                    return Err(Error::invalid(
                        "mixture_ratio",
                        ratio,
                        "must be a number above 1 (the wide component's std over the narrow one's)",
                    ));
                }
                let narrow = std / (weight * ratio * ratio + 1.0 - weight).sqrt();
                Ok(Prior::Mixture {
                    weight,
                    wide: ratio * narrow,
                    narrow,
                })
            }
            "logistic" => Ok(Prior::Logistic {
                scale: std * 3f64.sqrt() / std::f64::consts::PI,
            }),
            _ => Err(Error::invalid(
                "prior",
                name,
                "unknown prior; expected gaussian, mixture or logistic",
            )),
        }
    }

    /// The prior's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Prior::Gaussian { .. } => "gaussian",
            Prior::Mixture { .. } => "mixture",
            Prior::Logistic { .. } => "logistic",
        }
    }

    /// Its standard deviation.
    pub fn std(&self) -> f64 {
        match *self {
            Prior::Gaussian { std } => std,
            Prior::Mixture {
                weight,
                wide,
                narrow,
            } => (weight * wide * wide + (1.0 - weight) * narrow * narrow).sqrt(),
            Prior::Logistic { scale } => scale * std::f64::consts::PI / 3f64.sqrt(),
        }
    }

    /// The density as the HMC kernels take it (`backend::hmc`, `cuda/hmc.cu`), whose CPU twin
    /// also evaluates it here.
    pub fn args(&self) -> PriorArgs {
        match *self {
            Prior::Gaussian { std } => PriorArgs {
                kind: PriorKind::Gaussian,
                params: [std, 0.0, 0.0],
            },
            Prior::Mixture {
                weight,
                wide,
                narrow,
            } => PriorArgs {
                kind: PriorKind::Mixture,
                params: [weight, wide, narrow],
            },
            Prior::Logistic { scale } => PriorArgs {
                kind: PriorKind::Logistic,
                params: [scale, 0.0, 0.0],
            },
        }
    }

    /// `log p(θ)` of one parameter (untempered).
    pub fn log_density(&self, t: f64) -> f64 {
        twin::prior_log_density(&self.args(), t)
    }

    /// `d log p / dθ` of one parameter (untempered).
    pub fn gradient(&self, t: f64) -> f64 {
        twin::prior_gradient(&self.args(), t)
    }

    /// `Σ log p(θ)` at temperature `T`.
    pub fn log_prob(&self, theta: &[f64], temperature: f64) -> f64 {
        theta.iter().map(|&t| self.log_density(t)).sum::<f64>() / temperature
    }

    /// Adds `∇ log p_T(θ)` to `grad`.
    pub fn add_gradient(&self, theta: &[f64], temperature: f64, grad: &mut [f64]) {
        for (g, &t) in grad.iter_mut().zip(theta) {
            *g += self.gradient(t) / temperature;
        }
    }

    /// `log p_T(new) − log p_T(old)` as a sum of per-parameter differences (for the Gaussian,
    /// `−Σ(new − old)(new + old)/(2s²T)` as the reference computes it, exact for the normaliser)
    /// — what the sampler computes on its device. `new` and `old` have equal lengths.
    pub fn log_prob_difference(&self, new: &[f64], old: &[f64], temperature: f64) -> f64 {
        twin::prior_difference_sum(&self.args(), new, old) / temperature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(std: f64) -> [Prior; 3] {
        [
            Prior::new("gaussian", std, 0.5, 4.0).unwrap(),
            Prior::new("mixture", std, 0.5, 4.0).unwrap(),
            Prior::new("logistic", std, 0.5, 4.0).unwrap(),
        ]
    }

    #[test]
    fn densities_integrate_to_one_with_the_stated_variance() {
        for p in all(0.7) {
            let (mut mass, mut var) = (0.0, 0.0);
            let h = 1e-3;
            let mut t = -40.0;
            while t < 40.0 {
                let d = p.log_density(t).exp();
                mass += d * h;
                var += t * t * d * h;
                t += h;
            }
            assert!((mass - 1.0).abs() < 1e-6, "{p:?}: mass {mass}");
            assert!((var - 0.49).abs() < 1e-5, "{p:?}: variance {var}");
            assert!((p.std() - 0.7).abs() < 1e-12);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for p in all(0.3) {
            for t in [-2.0, -0.31, -0.01, 0.0, 0.05, 0.4, 3.0] {
                let h = 1e-6;
                let fd = (p.log_density(t + h) - p.log_density(t - h)) / (2.0 * h);
                assert!(
                    (p.gradient(t) - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{p:?} at {t}"
                );
            }
        }
    }

    #[test]
    fn differences_equal_differences_of_sums() {
        let new = [0.3, -1.2, 0.05];
        let old = [-0.1, 0.8, 0.0];
        for p in all(0.5) {
            let d = p.log_prob_difference(&new, &old, 0.3);
            let e = p.log_prob(&new, 0.3) - p.log_prob(&old, 0.3);
            assert!((d - e).abs() < 1e-12, "{p:?}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Prior::new("laplace", 1.0, 0.5, 4.0).is_err());
        assert!(Prior::new("gaussian", 0.0, 0.5, 4.0).is_err());
        assert!(Prior::new("gaussian", f64::NAN, 0.5, 4.0).is_err());
        assert!(Prior::new("mixture", 1.0, 1.0, 4.0).is_err());
        assert!(Prior::new("mixture", 1.0, 0.5, 1.0).is_err());
    }
}
