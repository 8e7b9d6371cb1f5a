//! The CHNN paper's error metrics (Finzi, Wang & Wilson, NeurIPS 2020; the reference's
//! `notebooks/plot-relative-errors-v2.ipynb` and `plot-energy-conservation-v2.ipynb`), as
//! library functions.

use crate::real::Real;

/// Relative error `‖a − b‖₂ / (‖a‖₂ + ‖b‖₂)` of two states (0 when both are zero). This is the
/// denominator of the paper's figures (`notebooks/plot-relative-errors-v2.ipynb`).
pub fn relative_error<T: Real>(a: &[T], b: &[T]) -> T {
    let (mut diff, mut na, mut nb) = (T::ZERO, T::ZERO, T::ZERO);
    for (x, y) in a.iter().zip(b) {
        diff += (*x - *y) * (*x - *y);
        na += *x * *x;
        nb += *y * *y;
    }
    let den = na.sqrt() + nb.sqrt();
    if den == T::ZERO {
        T::ZERO
    } else {
        diff.sqrt() / den
    }
}

/// The per-trajectory geometric mean of relative errors sampled every `dt` over a total time
/// `t_total`: `exp( (1/T) ∫ log(err(t) + 10⁻⁸) dt )`, the integral by the trapezoid rule.
/// With the paper's 100 samples, `t_total = 100·dt`. Returns `None` for fewer than two samples
/// or a non-positive `dt` or `t_total`.
pub fn trapezoid_geometric_mean<T: Real>(errors: &[T], dt: T, t_total: T) -> Option<T> {
    if errors.len() < 2 || !(dt > T::ZERO) || !(t_total > T::ZERO) {
        return None;
    }
    let floor = T::from_f64(1e-8);
    let mut integral = T::ZERO;
    let mut prev = (errors[0] + floor).libm_ln();
    for e in &errors[1..] {
        let cur = (*e + floor).libm_ln();
        integral += T::HALF * (prev + cur) * dt;
        prev = cur;
    }
    Some((integral / t_total).libm_exp())
}

/// Relative energy error `|H(ẑ) − H(z)| / (|H(ẑ)| + |H(z)|)` (0 when both are zero).
pub fn relative_energy_error<T: Real>(predicted: T, truth: T) -> T {
    let den = predicted.abs() + truth.abs();
    if den == T::ZERO {
        T::ZERO
    } else {
        (predicted - truth).abs() / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_values() {
        assert_eq!(relative_error(&[1.0f64, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(relative_error(&[0.0f64], &[0.0]), 0.0);
        // a = (3, 4), b = (0, 0): |a| / |a| = 1.
        assert!((relative_error(&[3.0f64, 4.0], &[0.0, 0.0]) - 1.0).abs() < 1e-15);
        // a = 1, b = −1: 2 / 2 = 1.
        assert!((relative_error(&[1.0f64], &[-1.0]) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn geometric_mean_of_constant_error_is_that_error() {
        let e = [1e-3f64; 100];
        let gm = trapezoid_geometric_mean(&e, 0.03, 3.0).unwrap();
        // trapezoid over 99 intervals of 0.03 spans 2.97 of the 3.0: exp(0.99·log(1e-3 + 1e-8)).
        let expected = (0.99 * (1e-3f64 + 1e-8).libm_ln()).libm_exp();
        assert!((gm - expected).abs() < 1e-15 * expected.max(1.0));
        assert!(trapezoid_geometric_mean(&e[..1], 0.03, 3.0).is_none());
    }
}
