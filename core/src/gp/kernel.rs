//! Stationary covariance functions with ARD lengthscales and an outputscale.

use crate::error::{positive, Result};
use crate::real::Real;
use num_traits::Float;

/// The shape of a stationary kernel as a function of the scaled distance
/// `r = ‖(x − x′)/ℓ‖`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Squared exponential `exp(−r²/2)`.
    Rbf,
    /// Matérn ν = 1/2: `exp(−r)`.
    Matern12,
    /// Matérn ν = 3/2: `(1 + √3 r) exp(−√3 r)`.
    Matern32,
    /// Matérn ν = 5/2: `(1 + √5 r + 5r²/3) exp(−√5 r)`.
    Matern52,
}

impl Family {
    /// The unit-variance profile at squared scaled distance `r2 = r²`.
    #[inline]
    pub fn profile<T: Real>(self, r2: T) -> T {
        match self {
            Family::Rbf => (-T::HALF * r2).libm_exp(),
            Family::Matern12 => (-r2.sqrt()).libm_exp(),
            Family::Matern32 => {
                let s = T::from_f64(Float::sqrt(3f64)) * r2.sqrt();
                (T::ONE + s) * (-s).libm_exp()
            }
            Family::Matern52 => {
                let s = T::from_f64(Float::sqrt(5f64)) * r2.sqrt();
                (T::ONE + s + s * s / T::from_f64(3.0)) * (-s).libm_exp()
            }
        }
    }

    /// `d profile / d(r²)` at `r2 = r²` (finite at `r = 0` for every family but Matérn-1/2,
    /// whose derivative there is only ever multiplied by a zero distance: 0 is returned).
    #[inline]
    pub fn profile_derivative<T: Real>(self, r2: T) -> T {
        match self {
            Family::Rbf => -T::HALF * (-T::HALF * r2).libm_exp(),
            Family::Matern12 => {
                let r = r2.sqrt();
                if r > T::ZERO {
                    -(-r).libm_exp() / (T::TWO * r)
                } else {
                    T::ZERO
                }
            }
            Family::Matern32 => {
                let s = T::from_f64(Float::sqrt(3f64)) * r2.sqrt();
                T::from_f64(-1.5) * (-s).libm_exp()
            }
            Family::Matern52 => {
                let s = T::from_f64(Float::sqrt(5f64)) * r2.sqrt();
                T::from_f64(-5.0 / 6.0) * (T::ONE + s) * (-s).libm_exp()
            }
        }
    }

    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Family::Rbf => "rbf",
            Family::Matern12 => "matern12",
            Family::Matern32 => "matern32",
            Family::Matern52 => "matern52",
        }
    }

    /// Parses [`Family::name`] (also `matern-5/2`-style spellings).
    pub fn from_name(s: &str) -> Option<Family> {
        match s {
            "rbf" | "se" | "squared-exponential" => Some(Family::Rbf),
            "matern12" | "matern-1/2" | "matern1/2" | "exponential" => Some(Family::Matern12),
            "matern32" | "matern-3/2" | "matern3/2" => Some(Family::Matern32),
            "matern52" | "matern-5/2" | "matern5/2" => Some(Family::Matern52),
            _ => None,
        }
    }
}

/// `k(x, x′) = s · profile(‖(x − x′)/ℓ‖²)` on `R^D`, `s` the outputscale (a variance) and `ℓ`
/// one lengthscale per dimension (ARD).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kernel<T: Real, const D: usize> {
    family: Family,
    outputscale: T,
    lengthscale: [T; D],
}

impl<T: Real, const D: usize> Kernel<T, D> {
    /// # Errors
    /// [`Error::InvalidParameter`](crate::Error::InvalidParameter) if the outputscale or a lengthscale is not positive and
    /// finite.
    pub fn new(family: Family, outputscale: T, lengthscale: [T; D]) -> Result<Self> {
        positive("outputscale", outputscale)?;
        for l in lengthscale {
            positive("lengthscale", l)?;
        }
        Ok(Kernel {
            family,
            outputscale,
            lengthscale,
        })
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The outputscale `s` (the prior variance `k(x, x)`).
    pub fn outputscale(&self) -> T {
        self.outputscale
    }

    /// The lengthscales.
    pub fn lengthscale(&self) -> &[T; D] {
        &self.lengthscale
    }

    /// `k(x, x′)`.
    #[inline]
    pub fn eval(&self, x: &[T; D], y: &[T; D]) -> T {
        let mut r2 = T::ZERO;
        for k in 0..D {
            let d = (x[k] - y[k]) / self.lengthscale[k];
            r2 += d * d;
        }
        self.outputscale * self.family.profile(r2)
    }

    /// The unit-variance one-dimensional factor of dimension `dim` at separation `delta`:
    /// `profile((δ/ℓ_dim)²)`. The grid kernel `K_UU` is `s ⊗_k K_k` with these factors (exact
    /// for the RBF, a product of 1-D Matérns otherwise — the structured-kernel convention).
    ///
    /// # Panics
    /// If `dim ≥ D` (a dimension, not data: callers loop over `0..D`).
    #[inline]
    pub fn factor(&self, dim: usize, delta: T) -> T {
        debug_assert!(dim < D, "kernel dimension {dim} of {D}");
        let d = delta / self.lengthscale[dim];
        self.family.profile(d * d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_match_closed_forms() {
        let r: f64 = 0.7;
        let r2 = r * r;
        assert!((Family::Rbf.profile(r2) - (-0.245f64).libm_exp()).abs() < 1e-15);
        assert!((Family::Matern12.profile(r2) - (-0.7f64).libm_exp()).abs() < 1e-15);
        let s3 = 3f64.sqrt() * r;
        assert!((Family::Matern32.profile(r2) - (1.0 + s3) * (-s3).libm_exp()).abs() < 1e-15);
        let s5 = 5f64.sqrt() * r;
        let m52 = (1.0 + s5 + 5.0 * r2 / 3.0) * (-s5).libm_exp();
        assert!((Family::Matern52.profile(r2) - m52).abs() < 1e-15);
        for f in [
            Family::Rbf,
            Family::Matern12,
            Family::Matern32,
            Family::Matern52,
        ] {
            assert_eq!(f.profile(0.0f64), 1.0);
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
    }

    #[test]
    fn ard_and_bad_parameters() {
        let k = Kernel::new(Family::Rbf, 2.0, [1.0, 0.5]).unwrap();
        let v = k.eval(&[0.0, 0.0], &[1.0, 0.5]);
        assert!((v - 2.0 * (-1.0f64).libm_exp()).abs() < 1e-15);
        assert!(Kernel::new(Family::Rbf, 0.0, [1.0]).is_err());
        assert!(Kernel::new(Family::Rbf, 1.0, [f64::NAN]).is_err());
        assert!(Kernel::new(Family::Rbf, 1.0, [-1.0]).is_err());
    }
}
