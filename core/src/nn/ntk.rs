//! On-board adaptation of an exported network by its linearisation: the finite neural-tangent
//! kernel GP of Maddox, Tang, Moreno, Wilson & Damianou, *Fast Adaptation with Linearized Neural
//! Networks* (AISTATS 2021, §3; reference code `finite_ntk/lazy/ntk.py` and the sine-wave
//! transfer of `experiments/simple_reg/ntk_transfer_regression.py`).
//!
//! # Model
//! Linearise a scalar-output MLP at its trained weights `θ̂`:
//! `f_lin(x; θ̂ + w) = f(x; θ̂) + J(x) w` with `J(x) = ∂f(x; θ̂)/∂θ ∈ R^P` and the prior
//! `w ~ N(0, I)`. Observations `yᵢ = f_lin(xᵢ) + εᵢ`, `εᵢ ~ N(0, σ²)`, give a GP with the
//! Jacobian kernel `k(x, x′) = J(x)·J(x′)` and the prior mean `m` ([`PriorMean`]: zero, as in the
//! reference's regression scripts, or the network `f(x; θ̂)`, its `--bias` option). For `n`
//! adaptation points, `K = JJᵀ + σ²I` (`n × n`), `α = K⁻¹(y − m(X))`, and at a new input `x*`
//!
//! - mean `μ(x*) = m(x*) + J(x*)Jᵀα` (`Jᵀα` is the posterior mean of the weight offset `w`);
//! - variance of the latent `k(x*, x*) − k*ᵀK⁻¹k*`, `k*ᵢ = J(x*)·Jᵢ`, and of a new observation,
//!   that plus `σ²`.
//!
//! # Algorithm and memory (a choice)
//! Each point's Jacobian row comes from one reverse pass through the MLP
//! ([`Mlp::parameter_vjp_factors`]), kept in the factored form of an MLP's gradient — per layer
//! the input `hᵢ` and the output cotangent `δᵢ`, `R = Σᵢ(inᵢ + outᵢ)` scalars — rather than as
//! `P` values: `J(x)·J(x′) = Σᵢ (δᵢ·δᵢ′)(hᵢ·hᵢ′ + 1)` is exact, so the kernel needs no row ever
//! expanded. For the sine network 1 → 40 → 40 → 1 (tanh), `P = 1761` and `R = 162`: in `f32`,
//! 10 stored rows take 6 480 bytes instead of 70 440, and 32 rows 20 736 instead of 225 408
//! (more than many Cortex-M4 parts have); recomputing rows at every prediction instead would
//! cost `n` reverse passes each time.
//!
//! Then `K` is formed (`n²/2` factored products of `O(R)`), factored `K = L Lᵀ` and
//! `z = L⁻¹(y − m(X))` solved with the core's [`linalg`](crate::linalg). A prediction is one
//! reverse pass at `x*`, `n` factored products for `k*`, one triangular solve `v = L⁻¹k*`, and
//! `μ = m(x*) + v·z`, `Var f(x*) = ‖J(x*)‖² − v·v` (clamped at 0; in `f32` the difference
//! cancels near the data, see the accuracy note).
//!
//! The mean through the weight offset, as in the paper's parameter-space view, is also here:
//! [`NtkAdaptation::weight_offset`] expands `u = Jᵀα` (`P` scalars, caller's slice) and
//! [`NtkAdaptation::predict_mean_jvp`] evaluates `m(x*) + J(x*)u` by one forward-mode pass
//! ([`Mlp::parameter_jvp`]) — the same number, for a caller that keeps `u` and needs only
//! means.
//!
//! Storage ([`NtkMemory`] or [`NtkBuffers`]): `N·R + N² + N` scalars for a capacity of `N`
//! points (sine network, `f32`: `N = 10`, 6 920 bytes; `N = 32`, 24 960 bytes). Scratch
//! ([`NtkAdaptation::scratch_len`]): `R + w + N` scalars, `w` the widest layer (sine network,
//! `N = 32`: 234 scalars). Stack: a few scalars; nothing recurses.
//!
//! # Accuracy
//! In `f64`, the adaptation matches a dense reference (explicit Jacobian rows, `K` formed and
//! factored) to rounding. In `f32`, `K`'s condition number `≈ 1 + λ_max(JJᵀ)/σ²` multiplies the
//! rounding of `z` and `v`; the variance `‖J*‖² − v·v` loses absolute accuracy of order
//! `ε·‖J*‖²` where it is much smaller than the prior variance. The tolerances the tests and
//! `keel firmware check` use are stated there.
//!
//! What this is *not*: multi-output adaptation (the reference's `num_outputs`/`used_dims`), a
//! Gaussian-output network, or hyperparameter learning (σ² is given, as in the reference's
//! scripts).

use super::{Mlp, Output};
use crate::error::{expect_count, positive};
use crate::gp::Prediction;
use crate::linalg::{cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place};
use crate::{Error, Real, Result};

/// The GP's prior mean `m(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PriorMean {
    /// `m = 0`: the linearised model's offset is fitted to the targets themselves (the
    /// reference's regression scripts: a constant mean left at 0).
    Zero,
    /// `m(x) = f(x; θ̂)`: the network plus a correction (the reference's `--bias`).
    Network,
}

/// The slices an [`NtkAdaptation`] works in, for a capacity of `N` points and gradient factors
/// of `R` scalars ([`Mlp::gradient_factors_len`]).
#[derive(Debug)]
pub struct NtkBuffers<'a, T> {
    /// The points' gradient factors, row-major `N × R`.
    pub factors: &'a mut [T],
    /// The Cholesky factor `L` of `K` (`n × n` row-major in the first `n²` entries; `N²`).
    pub factor: &'a mut [T],
    /// `z = L⁻¹(y − m(X))` (`N`).
    pub z: &'a mut [T],
}

/// Storage for an [`NtkAdaptation`] of capacity `N` points and gradient factors of `R` scalars:
/// `N·R + N² + N` scalars (the sine network's `R = 162`, `N = 10`, `f32`: 6 920 bytes).
#[derive(Clone, Debug)]
pub struct NtkMemory<T: Real, const N: usize, const R: usize> {
    factors: [[T; R]; N],
    factor: [[T; N]; N],
    z: [T; N],
}

impl<T: Real, const N: usize, const R: usize> NtkMemory<T, N, R> {
    /// Zeroed storage.
    pub fn new() -> Self {
        NtkMemory {
            factors: [[T::ZERO; R]; N],
            factor: [[T::ZERO; N]; N],
            z: [T::ZERO; N],
        }
    }

    /// The slices of this storage.
    pub fn buffers(&mut self) -> NtkBuffers<'_, T> {
        NtkBuffers {
            factors: self.factors.as_flattened_mut(),
            factor: self.factor.as_flattened_mut(),
            z: &mut self.z,
        }
    }
}

impl<T: Real, const N: usize, const R: usize> Default for NtkMemory<T, N, R> {
    fn default() -> Self {
        Self::new()
    }
}

/// A network adapted to a few points by its linearisation (see the module documentation).
#[derive(Debug)]
pub struct NtkAdaptation<'a, T: Real, const L: usize> {
    mlp: &'a Mlp<'a, L>,
    mean: PriorMean,
    noise: T,
    capacity: usize,
    row: usize,
    n: usize,
    buf: NtkBuffers<'a, T>,
}

impl<'a, T: Real, const L: usize> NtkAdaptation<'a, T, L> {
    /// An adaptation of `mlp` with prior mean `mean` and noise variance `noise` (σ²), holding
    /// no points yet (predictions are the prior's).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `mlp` is a regression network with one output;
    /// [`Error::InvalidParameter`] (`noise`) unless σ² is positive and finite;
    /// [`Error::CountMismatch`] unless the buffers hold `N·R`, `N²` and `N` scalars for one
    /// capacity `N = z.len()` (`expected` saturated at `usize::MAX` where a product overflows).
    pub fn new(
        mlp: &'a Mlp<'a, L>,
        mean: PriorMean,
        noise: T,
        buf: NtkBuffers<'a, T>,
    ) -> Result<Self> {
        if mlp.config().output() != Output::Regression || mlp.outputs() != 1 {
            return Err(Error::InvalidConfig {
                what: "NTK adaptation needs a regression MLP with one output",
            });
        }
        positive("noise", noise)?;
        let capacity = buf.z.len();
        let row = mlp.gradient_factors_len();
        expect_count(
            "gradient factor buffer entries",
            buf.factors.len(),
            capacity.saturating_mul(row),
        )?;
        expect_count(
            "Cholesky factor buffer entries",
            buf.factor.len(),
            capacity.saturating_mul(capacity),
        )?;
        Ok(NtkAdaptation {
            mlp,
            mean,
            noise,
            capacity,
            row,
            n: 0,
            buf,
        })
    }

    /// The network.
    pub fn mlp(&self) -> &'a Mlp<'a, L> {
        self.mlp
    }

    /// The prior mean.
    pub fn prior_mean(&self) -> PriorMean {
        self.mean
    }

    /// The noise variance σ².
    pub fn noise(&self) -> T {
        self.noise
    }

    /// Points adapted to.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No points: predictions are the prior's.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The most points an adaptation can take.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets the points (back to the prior).
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Scratch scalars [`adapt`](NtkAdaptation::adapt), [`predict`](NtkAdaptation::predict),
    /// [`weight_offset`](NtkAdaptation::weight_offset) and
    /// [`predict_mean_jvp`](NtkAdaptation::predict_mean_jvp) need: `R + w + N`, or the MLP's
    /// [`parameter_jvp_scratch_len`](Mlp::parameter_jvp_scratch_len) (`4w`) if larger.
    pub fn scratch_len(&self) -> usize {
        Self::scratch_len_for(self.mlp, self.capacity)
    }

    /// [`scratch_len`](NtkAdaptation::scratch_len) of an adaptation of `mlp` with capacity
    /// `capacity`, before building one (saturated at `usize::MAX`).
    pub fn scratch_len_for(mlp: &Mlp<'_, L>, capacity: usize) -> usize {
        mlp.gradient_factors_len()
            .saturating_add(mlp.parameter_vjp_factors_scratch_len())
            .saturating_add(capacity)
            .max(mlp.parameter_jvp_scratch_len())
    }

    /// Scalars of storage ([`NtkBuffers`]) an adaptation of `mlp` with capacity `capacity`
    /// needs: `N·R + N² + N` (saturated at `usize::MAX`).
    pub fn memory_len(mlp: &Mlp<'_, L>, capacity: usize) -> usize {
        capacity
            .saturating_mul(mlp.gradient_factors_len())
            .saturating_add(capacity.saturating_mul(capacity))
            .saturating_add(capacity)
    }

    /// Adapts to the points `(xᵢ, yᵢ)` (`x` row-major `n × inputs`), replacing any earlier
    /// ones: `n` reverse passes, `K = JJᵀ + σ²I`, its Cholesky factor and `z = L⁻¹(y − m(X))`.
    /// On an error the adaptation holds no points.
    ///
    /// Cost: `n` reverse passes (`≈ 2P` multiply–adds each), `n(n + 1)/2` kernel entries of
    /// `O(R)`, `n³/6` for the factorisation.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] (`adaptation points`) for more than `N` points;
    /// [`Error::ShapeMismatch`] unless `x.len() == y.len() · inputs()`; [`Error::NonFinite`]
    /// with the index of the first NaN or infinite value of `x`, or of `y` offset by `x.len()`;
    /// [`Error::ScratchTooSmall`]; [`Error::NotPositiveDefinite`] if `K` is not positive
    /// definite in floating point (a network output that is not finite, or σ² below rounding
    /// of `K`).
    pub fn adapt(&mut self, x: &[T], y: &[T], scratch: &mut [T]) -> Result<()> {
        self.n = 0;
        let n = y.len();
        if n > self.capacity {
            return Err(Error::CapacityExceeded {
                what: "adaptation points",
                capacity: self.capacity,
            });
        }
        let d = self.mlp.inputs();
        if x.len() != n.saturating_mul(d) {
            return Err(Error::ShapeMismatch {
                what: "adaptation inputs",
                expected: n.saturating_mul(d),
                got: x.len(),
            });
        }
        if let Some(index) = x.iter().chain(y).position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        self.check_scratch(scratch)?;
        let row = self.row;
        for (i, (xi, &yi)) in x.chunks_exact(d.max(1)).zip(y).enumerate() {
            let factors = self
                .buf
                .factors
                .get_mut(i * row..(i + 1) * row)
                .unwrap_or_default();
            let mut out = [T::ZERO];
            self.mlp
                .parameter_vjp_factors(xi, &[T::ONE], &mut out, factors, scratch)?;
            if let Some(zi) = self.buf.z.get_mut(i) {
                *zi = match self.mean {
                    PriorMean::Zero => yi,
                    PriorMean::Network => yi - out[0],
                };
            }
        }
        // K in the first n² entries, row-major n × n; only the lower triangle is read.
        let k = self.buf.factor.get_mut(..n * n).unwrap_or_default();
        for i in 0..n {
            let fi = point(self.buf.factors, row, i);
            for j in 0..=i {
                let fj = point(self.buf.factors, row, j);
                let mut kij = self.mlp.gradient_factors_dot(fi, fj)?;
                if i == j {
                    kij += self.noise;
                }
                if let Some(e) = k.get_mut(i * n + j) {
                    *e = kij;
                }
            }
        }
        cholesky_in_place(k, n)?;
        let z = self.buf.z.get_mut(..n).unwrap_or_default();
        solve_lower_in_place(k, n, z)?;
        self.n = n;
        Ok(())
    }

    /// The posterior at `x` (length `inputs()`): mean, variance of the latent and of a new
    /// observation (that plus σ²). With no points, the prior: `m(x)` and `‖J(x)‖²`.
    ///
    /// Cost: one reverse pass, `n` kernel entries of `O(R)`, one `n × n` triangular solve.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a NaN or infinite input; [`Error::ShapeMismatch`] for a wrong
    /// input length; [`Error::ScratchTooSmall`].
    pub fn predict(&self, x: &[T], scratch: &mut [T]) -> Result<Prediction<T>> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        self.check_scratch(scratch)?;
        let (n, row) = (self.n, self.row);
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len(),
            got: scratch.len(),
        };
        let (star, rest) = scratch.split_at_mut_checked(row).ok_or(too_small)?;
        let (v, rest) = rest.split_at_mut_checked(n).ok_or(too_small)?;
        let mut out = [T::ZERO];
        self.mlp
            .parameter_vjp_factors(x, &[T::ONE], &mut out, star, rest)?;
        let prior_var = self.mlp.gradient_factors_dot(star, star)?;
        for (i, vi) in v.iter_mut().enumerate() {
            let fi = point(self.buf.factors, row, i);
            *vi = self.mlp.gradient_factors_dot(star, fi)?;
        }
        let l = self.buf.factor.get(..n * n).unwrap_or_default();
        solve_lower_in_place(l, n, v)?;
        let z = self.buf.z.get(..n).unwrap_or_default();
        let correction = crate::linalg::dot(v, z);
        let explained = crate::linalg::dot(v, v);
        let var_f = (prior_var - explained).max(T::ZERO);
        Ok(Prediction {
            mean: self.prior_at(out[0]) + correction,
            var_f,
            var_y: var_f + self.noise,
        })
    }

    /// The posterior mean of the weight offset, `u = Jᵀα` with `α = K⁻¹(y − m(X)) = L⁻ᵀz`,
    /// written into `u` (length [`Mlp::parameter_count`], the export's parameter order): the
    /// linearised network `f(x; θ̂) + J(x)u` is the adapted mean (with [`PriorMean::Network`]).
    /// `n·P` multiply–adds.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong length of `u`; [`Error::ScratchTooSmall`].
    pub fn weight_offset(&self, u: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.check_scratch(scratch)?;
        if u.len() != self.mlp.parameter_count() {
            return Err(Error::ShapeMismatch {
                what: "weight offset",
                expected: self.mlp.parameter_count(),
                got: u.len(),
            });
        }
        let (n, row) = (self.n, self.row);
        let alpha = scratch.get_mut(..n).unwrap_or_default();
        alpha.copy_from_slice(self.buf.z.get(..n).unwrap_or_default());
        let l = self.buf.factor.get(..n * n).unwrap_or_default();
        solve_lower_transpose_in_place(l, n, alpha)?;
        u.fill(T::ZERO);
        for (i, &a) in alpha.iter().enumerate() {
            let fi = point(self.buf.factors, row, i);
            self.mlp.accumulate_gradient(fi, a, u)?;
        }
        Ok(())
    }

    /// The posterior mean at `x` by forward mode along `u` (from
    /// [`weight_offset`](NtkAdaptation::weight_offset)): `m(x) + J(x)u`, one
    /// [`Mlp::parameter_jvp`]. Equal to [`predict`](NtkAdaptation::predict)'s mean up to
    /// rounding.
    ///
    /// # Errors
    /// As [`Mlp::parameter_jvp`]; [`Error::NonFinite`] for a NaN or infinite input.
    pub fn predict_mean_jvp(&self, x: &[T], u: &[T], scratch: &mut [T]) -> Result<T> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        let mut out = [T::ZERO];
        let mut tangent = [T::ZERO];
        self.mlp
            .parameter_jvp(x, u, &mut out, &mut tangent, scratch)?;
        Ok(self.prior_at(out[0]) + tangent[0])
    }

    /// `log p(y)` of the points under the GP: `−½(zᵀz + 2 Σ log Lᵢᵢ + n log 2π)`, for choosing
    /// σ² among a few candidates.
    pub fn log_marginal_likelihood(&self) -> T {
        let n = self.n;
        let mut s = T::ZERO;
        for i in 0..n {
            let zi = self.buf.z.get(i).copied().unwrap_or(T::ZERO);
            let lii = self.buf.factor.get(i * n + i).copied().unwrap_or(T::ONE);
            s += zi * zi + T::TWO * lii.libm_ln();
        }
        -T::HALF * (s + T::from_usize(n) * (T::TWO * T::PI).libm_ln())
    }

    fn prior_at(&self, f: T) -> T {
        match self.mean {
            PriorMean::Zero => T::ZERO,
            PriorMean::Network => f,
        }
    }

    fn check_scratch(&self, scratch: &[T]) -> Result<()> {
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::ScratchTooSmall {
                needed,
                got: scratch.len(),
            });
        }
        Ok(())
    }
}

/// Point `i`'s gradient factors in the row-major `N × R` buffer (empty past the end: the
/// callers index below the count they checked).
fn point<T>(factors: &[T], row: usize, i: usize) -> &[T] {
    factors.get(i * row..(i + 1) * row).unwrap_or_default()
}
