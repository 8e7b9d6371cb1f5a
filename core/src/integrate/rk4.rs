//! Classic fourth-order Runge–Kutta and its 3/8-rule variant, fixed step.

use super::{check_finite, StateVector, VectorField};
use crate::error::{Error, Result};
use crate::real::Real;

/// Which fourth-order tableau [`Rk4`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rk4Variant {
    /// The classic tableau: nodes (0, ½, ½, 1), weights (1, 2, 2, 1)/6.
    #[default]
    Classic,
    /// Kutta's 3/8 rule: nodes (0, ⅓, ⅔, 1), weights (1, 3, 3, 1)/8. This is what torchdiffeq's
    /// fixed-grid `rk4` computes, so the CHNN reference code trains with it.
    ThreeEighths,
}

/// Fixed-step fourth-order Runge–Kutta with step `dt`. There is no tolerance: the error is
/// whatever `dt` gives (O(dt⁴) globally).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rk4<T> {
    /// Step size (positive, finite).
    pub dt: T,
    /// Tableau.
    pub variant: Rk4Variant,
}

impl<T: Real> Rk4<T> {
    /// Classic RK4 with step `dt`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dt` is not positive and finite.
    pub fn new(dt: T) -> Result<Self> {
        Self::with_variant(dt, Rk4Variant::Classic)
    }

    /// The 3/8-rule variant with step `dt`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dt` is not positive and finite.
    pub fn three_eighths(dt: T) -> Result<Self> {
        Self::with_variant(dt, Rk4Variant::ThreeEighths)
    }

    /// RK4 with the given tableau.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `dt` is not positive and finite.
    pub fn with_variant(dt: T, variant: Rk4Variant) -> Result<Self> {
        if !(dt > T::ZERO) || !dt.is_finite() {
            return Err(Error::InvalidParameter {
                name: "dt",
                value: dt.as_f64(),
            });
        }
        Ok(Self { dt, variant })
    }

    /// Advances `z` from `t` to `t + dt` in place.
    ///
    /// # Errors
    /// Errors of the vector field, and [`Error::NonFinite`] if the new state is not finite (then
    /// `z` is left unchanged).
    pub fn step<F: VectorField<T>>(&self, f: &F, t: T, z: &mut F::State) -> Result<()> {
        let h = self.dt;
        let mut k1 = F::State::zeroed();
        let mut k2 = F::State::zeroed();
        let mut k3 = F::State::zeroed();
        let mut k4 = F::State::zeroed();
        let mut tmp = *z;
        f.rate(t, z, &mut k1)?;
        let out;
        match self.variant {
            Rk4Variant::Classic => {
                let hh = h * T::HALF;
                axpy_into(tmp.as_mut_slice(), z.as_slice(), hh, k1.as_slice());
                f.rate(t + hh, &tmp, &mut k2)?;
                axpy_into(tmp.as_mut_slice(), z.as_slice(), hh, k2.as_slice());
                f.rate(t + hh, &tmp, &mut k3)?;
                axpy_into(tmp.as_mut_slice(), z.as_slice(), h, k3.as_slice());
                f.rate(t + h, &tmp, &mut k4)?;
                let h6 = h / T::from_f64(6.0);
                out = {
                    let mut o = *z;
                    for ((((o, a), b), c), d) in o
                        .as_mut_slice()
                        .iter_mut()
                        .zip(k1.as_slice())
                        .zip(k2.as_slice())
                        .zip(k3.as_slice())
                        .zip(k4.as_slice())
                    {
                        *o += h6 * (*a + T::TWO * (*b + *c) + *d);
                    }
                    o
                };
            }
            Rk4Variant::ThreeEighths => {
                let third = T::ONE / T::from_f64(3.0);
                axpy_into(tmp.as_mut_slice(), z.as_slice(), h * third, k1.as_slice());
                f.rate(t + h * third, &tmp, &mut k2)?;
                for ((o, (zi, a)), b) in tmp
                    .as_mut_slice()
                    .iter_mut()
                    .zip(z.as_slice().iter().zip(k1.as_slice()))
                    .zip(k2.as_slice())
                {
                    *o = *zi + h * (*b - *a * third);
                }
                f.rate(t + h * (T::TWO * third), &tmp, &mut k3)?;
                for (((o, (zi, a)), b), c) in tmp
                    .as_mut_slice()
                    .iter_mut()
                    .zip(z.as_slice().iter().zip(k1.as_slice()))
                    .zip(k2.as_slice())
                    .zip(k3.as_slice())
                {
                    *o = *zi + h * (*a - *b + *c);
                }
                f.rate(t + h, &tmp, &mut k4)?;
                let h8 = h / T::from_f64(8.0);
                let three = T::from_f64(3.0);
                out = {
                    let mut o = *z;
                    for ((((o, a), b), c), d) in o
                        .as_mut_slice()
                        .iter_mut()
                        .zip(k1.as_slice())
                        .zip(k2.as_slice())
                        .zip(k3.as_slice())
                        .zip(k4.as_slice())
                    {
                        *o += h8 * (*a + three * (*b + *c) + *d);
                    }
                    o
                };
            }
        }
        check_finite(out.as_slice(), t + h)?;
        *z = out;
        Ok(())
    }

    /// Takes `steps` steps from time `t`, returning the final time.
    ///
    /// # Errors
    /// As [`Rk4::step`]; `z` holds the last good state.
    pub fn advance<F: VectorField<T>>(
        &self,
        f: &F,
        t: T,
        z: &mut F::State,
        steps: usize,
    ) -> Result<T> {
        let mut t = t;
        for _ in 0..steps {
            self.step(f, t, z)?;
            t += self.dt;
        }
        Ok(t)
    }
}

#[inline]
fn axpy_into<T: Real>(out: &mut [T], z: &[T], a: T, k: &[T]) {
    for ((o, zi), ki) in out.iter_mut().zip(z).zip(k) {
        *o = *zi + a * *ki;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Harmonic oscillator ẋ = v, v̇ = −x.
    struct Sho;
    impl VectorField<f64> for Sho {
        type State = [f64; 2];
        fn rate(&self, _t: f64, z: &[f64; 2], dz: &mut [f64; 2]) -> Result<()> {
            *dz = [z[1], -z[0]];
            Ok(())
        }
    }

    fn global_error(variant: Rk4Variant, n: usize) -> f64 {
        let rk = Rk4::with_variant(1.0 / n as f64, variant).unwrap();
        let mut z = [1.0, 0.0];
        rk.advance(&Sho, 0.0, &mut z, n).unwrap();
        ((z[0] - 1f64.libm_cos()).powi(2) + (z[1] + 1f64.libm_sin()).powi(2)).sqrt()
    }

    #[test]
    fn fourth_order_convergence() {
        for variant in [Rk4Variant::Classic, Rk4Variant::ThreeEighths] {
            let e1 = global_error(variant, 20);
            let e2 = global_error(variant, 40);
            let order = (e1 / e2).log2();
            assert!(
                (order - 4.0).abs() < 0.1,
                "{variant:?}: observed order {order}"
            );
        }
    }

    #[test]
    fn rejects_bad_step() {
        assert!(Rk4::new(0.0f64).is_err());
        assert!(Rk4::new(f64::NAN).is_err());
        assert!(Rk4::three_eighths(-1.0f32).is_err());
    }

    #[test]
    fn non_finite_state_is_an_error_and_state_is_kept() {
        struct Blow;
        impl VectorField<f64> for Blow {
            type State = [f64; 1];
            fn rate(&self, _t: f64, z: &[f64; 1], dz: &mut [f64; 1]) -> Result<()> {
                dz[0] = 1.0 / (z[0] - 1.0);
                Ok(())
            }
        }
        let rk = Rk4::new(0.5).unwrap();
        let mut z = [1.0];
        let err = rk.step(&Blow, 0.0, &mut z).unwrap_err();
        assert!(matches!(err, Error::NonFinite { index: 0, .. }));
        assert_eq!(z, [1.0]);
    }
}
