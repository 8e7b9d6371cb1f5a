//! The exact online GP with a fixed capacity: one rank-1 Cholesky extension per point.

use super::kernel::Kernel;
use super::Prediction;
use crate::error::{expect_count, positive};
use crate::error::{Error, Result};
use crate::linalg::dot_lanes;
use crate::real::Real;

/// Storage for an [`ExactGp`] of capacity `N` in `D` dimensions; `N²` scalars for the factor
/// dominate (`8N²` bytes in `f64`: put large ones in a `static` or on the heap, not the stack).
#[derive(Clone, Debug)]
pub struct ExactMemory<T: Real, const D: usize, const N: usize> {
    x: [[T; D]; N],
    y: [T; N],
    d: [T; N],
    l: [[T; N]; N],
    z: [T; N],
    work: [T; N],
}

impl<T: Real, const D: usize, const N: usize> ExactMemory<T, D, N> {
    /// Zeroed storage.
    pub fn new() -> Self {
        ExactMemory {
            x: [[T::ZERO; D]; N],
            y: [T::ZERO; N],
            d: [T::ZERO; N],
            l: [[T::ZERO; N]; N],
            z: [T::ZERO; N],
            work: [T::ZERO; N],
        }
    }
}

impl<T: Real, const D: usize, const N: usize> Default for ExactMemory<T, D, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The slices an [`ExactGp`] works in, for callers that size them at run time (the host). `l`
/// holds `capacity²` scalars, `x` `capacity·D`, the others `capacity`.
#[derive(Debug)]
pub struct ExactBuffers<'a, T> {
    /// Inputs, row-major `capacity × D`.
    pub x: &'a mut [T],
    /// Targets.
    pub y: &'a mut [T],
    /// Per-point noise factors `d_i` (the noise variance of point i is `σ² d_i`).
    pub d: &'a mut [T],
    /// The Cholesky factor `L` of `K + σ²D` (row-major, stride `capacity`).
    pub l: &'a mut [T],
    /// `z = L⁻¹ y`.
    pub z: &'a mut [T],
    /// Scratch for predictions.
    pub work: &'a mut [T],
}

impl<T: Real, const D: usize, const N: usize> ExactMemory<T, D, N> {
    /// The slices of this storage.
    pub fn buffers(&mut self) -> ExactBuffers<'_, T> {
        ExactBuffers {
            x: self.x.as_flattened_mut(),
            y: &mut self.y,
            d: &mut self.d,
            l: self.l.as_flattened_mut(),
            z: &mut self.z,
            work: &mut self.work,
        }
    }
}

/// A point the GP could not take, handed back with the reason (the buffer was full, or the
/// extended kernel matrix was not positive definite), heapless-style: nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejected<T, const D: usize> {
    /// The input.
    pub x: [T; D],
    /// The target.
    pub y: T,
    /// Why.
    pub error: Error,
}

/// Exact GP regression `y = f(x) + ε`, `f ~ GP(0, k)`, `ε ~ N(0, σ² d)`, holding up to
/// `capacity` points. Adding a point extends the Cholesky factor of `K + σ²D` by one row
/// (`O(n²)`); predictions cost `O(n²)` (one triangular solve) and the log marginal likelihood
/// `O(n)`.
#[derive(Debug)]
pub struct ExactGp<'a, T: Real, const D: usize> {
    kernel: Kernel<T, D>,
    noise: T,
    capacity: usize,
    n: usize,
    buf: ExactBuffers<'a, T>,
}

impl<'a, T: Real, const D: usize> ExactGp<'a, T, D> {
    /// An empty GP with kernel `kernel` and noise variance `noise` (σ²).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive noise; [`Error::CountMismatch`] if the
    /// buffers' lengths disagree with one capacity (`expected` saturated at `usize::MAX` where
    /// `capacity²` overflows).
    pub fn new(kernel: Kernel<T, D>, noise: T, buf: ExactBuffers<'a, T>) -> Result<Self> {
        positive("noise", noise)?;
        let capacity = buf.y.len();
        // Saturated sizes: capacity² of a long `y` must not overflow (a panic in debug builds; a
        // wrapped size a short factor buffer could match, e.g. 65 536 points on a 32-bit
        // target); no buffer holds usize::MAX scalars.
        expect_count(
            "input buffer entries",
            buf.x.len(),
            capacity.saturating_mul(D),
        )?;
        expect_count("noise buffer entries", buf.d.len(), capacity)?;
        expect_count(
            "factor buffer entries",
            buf.l.len(),
            capacity.saturating_mul(capacity),
        )?;
        expect_count("z buffer entries", buf.z.len(), capacity)?;
        expect_count("work buffer entries", buf.work.len(), capacity)?;
        Ok(ExactGp {
            kernel,
            noise,
            capacity,
            n: 0,
            buf,
        })
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No points yet.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The fixed capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every point (the storage is kept).
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Forgets all but the first `len` points (`O(1)`: the factor's leading rows do not depend on
    /// later points). Does nothing if `len ≥ self.len()`.
    pub fn truncate(&mut self, len: usize) {
        self.n = self.n.min(len);
    }

    /// The kernel.
    pub fn kernel(&self) -> &Kernel<T, D> {
        &self.kernel
    }

    /// The noise variance σ².
    pub fn noise(&self) -> T {
        self.noise
    }

    fn point(&self, i: usize) -> [T; D] {
        let mut p = [T::ZERO; D];
        p.copy_from_slice(&self.buf.x[i * D..(i + 1) * D]);
        p
    }

    /// Adds `(x, y)` with noise variance σ² (`d = 1`).
    ///
    /// # Errors
    /// As [`ExactGp::push_with_noise`].
    pub fn push(&mut self, x: [T; D], y: T) -> core::result::Result<(), Rejected<T, D>> {
        self.push_with_noise(x, y, T::ONE)
    }

    /// Adds `(x, y)` with noise variance `σ² d`.
    ///
    /// # Errors
    /// The point comes back in [`Rejected`] with [`Error::CapacityExceeded`] when full,
    /// [`Error::NonFinite`] / [`Error::InvalidParameter`] for a non-finite input or target or a
    /// non-positive `d`, and [`Error::NotPositiveDefinite`] (pivot = the new point's index) if
    /// the new diagonal entry of the factor is not positive — a duplicate input with tiny noise.
    pub fn push_with_noise(
        &mut self,
        x: [T; D],
        y: T,
        d: T,
    ) -> core::result::Result<(), Rejected<T, D>> {
        let reject = |error| Err(Rejected { x, y, error });
        if self.n == self.capacity {
            return reject(Error::CapacityExceeded {
                what: "GP training points",
                capacity: self.capacity,
            });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return reject(Error::NonFinite { index, t: 0.0 });
        }
        if !y.is_finite() {
            return reject(Error::NonFinite { index: D, t: 0.0 });
        }
        if let Err(e) = positive("noise factor", d) {
            return reject(e);
        }
        let (n, cap) = (self.n, self.capacity);
        // New row l = L⁻¹ k(X, x), written straight into row n of the factor.
        for j in 0..n {
            self.buf.l[n * cap + j] = self.kernel.eval(&self.point(j), &x);
        }
        let (top, bottom) = self.buf.l.split_at_mut(n * cap);
        let new_row = &mut bottom[..cap];
        for i in 0..n {
            let s = new_row[i] - dot_lanes(&top[i * cap..i * cap + i], &new_row[..i]);
            new_row[i] = s / top[i * cap + i];
        }
        let diag =
            self.kernel.eval(&x, &x) + self.noise * d - dot_lanes(&new_row[..n], &new_row[..n]);
        let lz = dot_lanes(&new_row[..n], &self.buf.z[..n]);
        let l = &mut self.buf.l;
        if !(diag > T::ZERO) || !diag.is_finite() {
            return reject(Error::NotPositiveDefinite {
                pivot: n,
                value: diag.as_f64(),
            });
        }
        let diag = diag.sqrt();
        l[n * cap + n] = diag;
        self.buf.z[n] = (y - lz) / diag;
        self.buf.x[n * D..(n + 1) * D].copy_from_slice(&x);
        self.buf.y[n] = y;
        self.buf.d[n] = d;
        self.n += 1;
        Ok(())
    }

    /// Writes `v = L⁻¹ k(X, x)` (the whitened cross-covariance, `L` the Cholesky factor of
    /// `K + σ²D`) into `out[..n]`, `n = len()`, in `O(n²)`: posterior covariances between any
    /// two inputs follow as `k(a, b) − v_aᵀ v_b`, and the mean as `v_xᵀ z` (for joint posteriors
    /// on the host: noisy expected improvement, integrated variance).
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a non-finite input; [`Error::CountMismatch`] if `out` holds fewer
    /// than `n` scalars.
    pub fn whiten(&self, x: &[T; D], out: &mut [T]) -> Result<()> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        let (n, cap) = (self.n, self.capacity);
        if out.len() < n {
            return Err(Error::CountMismatch {
                what: "whitened vector entries (points held)",
                expected: n,
                got: out.len(),
            });
        }
        let l = &self.buf.l;
        for i in 0..n {
            let k = self.kernel.eval(&self.point(i), x);
            let s = k - dot_lanes(&l[i * cap..i * cap + i], &out[..i]);
            out[i] = s / l[i * cap + i];
        }
        Ok(())
    }

    /// `z = L⁻¹ y` of the points held (the posterior mean at `x` is `whiten(x)ᵀ z`).
    pub fn whitened_targets(&self) -> &[T] {
        &self.buf.z[..self.n]
    }

    /// Posterior mean and variances at `x` (`var_y` adds the noise σ²).
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a non-finite input.
    pub fn predict(&mut self, x: &[T; D]) -> Result<Prediction<T>> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        let (n, cap) = (self.n, self.capacity);
        for j in 0..n {
            self.buf.work[j] = self.kernel.eval(&self.point(j), x);
        }
        let l = &self.buf.l;
        let v = &mut self.buf.work;
        let mut mean = T::ZERO;
        let mut vv = T::ZERO;
        for i in 0..n {
            let s = v[i] - dot_lanes(&l[i * cap..i * cap + i], &v[..i]);
            let vi = s / l[i * cap + i];
            v[i] = vi;
            mean += vi * self.buf.z[i];
            vv += vi * vi;
        }
        let var_f = (self.kernel.eval(x, x) - vv).max(T::ZERO);
        Ok(Prediction {
            mean,
            var_f,
            var_y: var_f + self.noise,
        })
    }

    /// `log p(y)` of the points held: `−½(zᵀz + 2 Σ log L_ii + n log 2π)`.
    pub fn log_marginal_likelihood(&self) -> T {
        let cap = self.capacity;
        let mut s = T::ZERO;
        for i in 0..self.n {
            s += self.buf.z[i] * self.buf.z[i] + T::TWO * self.buf.l[i * cap + i].libm_ln();
        }
        -T::HALF * (s + T::from_usize(self.n) * (T::TWO * T::PI).libm_ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp::Family;

    #[test]
    fn two_points_by_hand() {
        let k = Kernel::new(Family::Rbf, 1.0, [1.0]).unwrap();
        let mut mem = ExactMemory::<f64, 1, 4>::new();
        let mut gp = ExactGp::new(k, 0.1, mem.buffers()).unwrap();
        gp.push([0.0], 1.0).unwrap();
        gp.push([1.0], -1.0).unwrap();
        // K + σ²I = [[1.1, e], [e, 1.1]], e = exp(−1/2).
        let e = (-0.5f64).libm_exp();
        let det = 1.1 * 1.1 - e * e;
        // α = (K + σ²I)⁻¹ y with y = (1, −1).
        let alpha = [(1.1 + e) / det, (-e - 1.1) / det];
        let ks = [(-0.125f64).libm_exp(), (-0.125f64).libm_exp()];
        let p = gp.predict(&[0.5]).unwrap();
        assert!((p.mean - (ks[0] * alpha[0] + ks[1] * alpha[1])).abs() < 1e-14);
        let quad = 1.0 * alpha[0] - alpha[1];
        let lml = -0.5 * (quad + det.libm_ln() + 2.0 * (2.0 * core::f64::consts::PI).libm_ln());
        assert!((gp.log_marginal_likelihood() - lml).abs() < 1e-13);
        assert!((p.var_y - p.var_f - 0.1).abs() < 1e-15);
    }

    #[test]
    fn full_buffer_and_bad_points_come_back() {
        let k = Kernel::new(Family::Matern52, 1.0, [0.5, 0.5]).unwrap();
        let mut mem = ExactMemory::<f32, 2, 2>::new();
        let mut gp = ExactGp::new(k, 1e-2, mem.buffers()).unwrap();
        gp.push([0.0, 0.0], 1.0).unwrap();
        let r = gp.push([0.0, f32::NAN], 1.0).unwrap_err();
        assert!(matches!(r.error, Error::NonFinite { index: 1, .. }));
        gp.push([1.0, 0.0], 2.0).unwrap();
        let r = gp.push([2.0, 0.0], 3.0).unwrap_err();
        assert_eq!((r.x, r.y), ([2.0, 0.0], 3.0));
        assert!(matches!(
            r.error,
            Error::CapacityExceeded { capacity: 2, .. }
        ));
        assert_eq!(gp.len(), 2);
    }

    #[test]
    fn duplicate_point_with_no_noise_reports_the_pivot() {
        let k = Kernel::new(Family::Rbf, 1.0, [1.0]).unwrap();
        let mut mem = ExactMemory::<f32, 1, 3>::new();
        let mut gp = ExactGp::new(k, 1e-30, mem.buffers()).unwrap();
        gp.push([0.5], 1.0).unwrap();
        let r = gp.push([0.5], 1.0).unwrap_err();
        assert!(matches!(
            r.error,
            Error::NotPositiveDefinite { pivot: 1, .. }
        ));
        assert_eq!(gp.len(), 1);
    }
}
