//! Derivatives of an [`Mlp`] with respect to its parameters: the reverse pass (a
//! vector-Jacobian product `cᵀ ∂out/∂θ`, kept in factored form or expanded to `P` values) and
//! the forward pass along a parameter direction (the Jacobian-vector product `∂out/∂θ · u`).
//! These are the two primitives of the linearised network of Maddox et al., *Fast Adaptation
//! with Linearized Neural Networks* (AISTATS 2021, §3; the reference's `finite_ntk/lazy/jacobian.py`
//! pairs them as `Jacvec` and `Rop`).
//!
//! # Parameter order
//! The export's: layer by layer, the weight `[out, in]` row-major then the bias `[out]`, so
//! `P = Σᵢ outᵢ·(inᵢ + 1)` (1761 for the sine network 1 → 40 → 40 → 1).
//!
//! # Factored gradients
//! With `hᵢ` the input of layer `i` (after the input standardisation and the activations) and
//! `δᵢ = cᵀ ∂out/∂zᵢ` the cotangent at its pre-activation `zᵢ = Wᵢhᵢ + bᵢ`, the gradient is
//! `∂/∂Wᵢ = δᵢ hᵢᵀ`, `∂/∂bᵢ = δᵢ`: an outer product per layer. The factors `[h₀ δ₀ h₁ δ₁ …]`
//! hold `R = Σᵢ (inᵢ + outᵢ)` values (162 for the sine network, against `P = 1761`), and the
//! inner product of two gradients needs only them:
//! `∇θ·∇θ′ = Σᵢ (δᵢ·δᵢ′)(hᵢ·hᵢ′ + 1)` (Frobenius product of outer products). The
//! neural-tangent kernel `k(x, x′) = J(x)·J(x′)` of a scalar output therefore costs `O(R)` per
//! pair once each point's factors are known, and storing a point's Jacobian row costs `R`
//! scalars instead of `P` ([`crate::nn::NtkAdaptation`] relies on this).

use super::{copy, slice_mut, Mlp};
use crate::{Error, Real, Result};

impl<'a, const L: usize> Mlp<'a, L> {
    /// The number of parameters `P = Σᵢ outᵢ·(inᵢ + 1)` (saturated at `usize::MAX`).
    pub fn parameter_count(&self) -> usize {
        self.layers().iter().fold(0usize, |acc, l| {
            acc.saturating_add(l.outputs().saturating_mul(l.inputs().saturating_add(1)))
        })
    }

    /// The length `R = Σᵢ (inᵢ + outᵢ)` of a factored parameter gradient
    /// ([`parameter_vjp_factors`](Mlp::parameter_vjp_factors)).
    pub fn gradient_factors_len(&self) -> usize {
        self.layers().iter().fold(0usize, |acc, l| {
            acc.saturating_add(l.inputs().saturating_add(l.outputs()))
        })
    }

    /// Scratch scalars [`parameter_vjp_factors`](Mlp::parameter_vjp_factors) needs: the widest
    /// size.
    pub fn parameter_vjp_factors_scratch_len(&self) -> usize {
        self.width
    }

    /// Scratch scalars [`parameter_vjp`](Mlp::parameter_vjp) needs: the factors and the widest
    /// size.
    pub fn parameter_vjp_scratch_len(&self) -> usize {
        self.gradient_factors_len().saturating_add(self.width)
    }

    /// Scratch scalars [`parameter_jvp`](Mlp::parameter_jvp) needs: four times the widest size.
    pub fn parameter_jvp_scratch_len(&self) -> usize {
        self.width.saturating_mul(4)
    }

    /// The reverse pass with respect to the parameters, in factored form: `out` receives
    /// [`forward`](Mlp::forward)'s output and `factors` (length
    /// [`gradient_factors_len`](Mlp::gradient_factors_len)) the layers' `[hᵢ, δᵢ]` of
    /// `cotangentᵀ ∂out/∂θ` (module documentation). The head (target standardisation, Gaussian
    /// scales) is differentiated as in [`input_gradient`](Mlp::input_gradient).
    ///
    /// Cost: one forward pass and one pass back through the weights (`≈ 2P` multiply–adds); the
    /// outer products are never formed. NaN or infinite inputs propagate.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()`, `cotangent.len() == out.len() ==
    /// outputs()` and `factors.len() == gradient_factors_len()`; [`Error::ScratchTooSmall`] if
    /// `scratch.len() < parameter_vjp_factors_scratch_len()`.
    pub fn parameter_vjp_factors<T: Real>(
        &self,
        x: &[T],
        cotangent: &[T],
        out: &mut [T],
        factors: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_len("cotangent", cotangent.len())?;
        self.check_len("output", out.len())?;
        let total = self.gradient_factors_len();
        if factors.len() != total {
            return Err(Error::ShapeMismatch {
                what: "gradient factors",
                expected: total,
                got: factors.len(),
            });
        }
        let too_small = Error::ScratchTooSmall {
            needed: self.width,
            got: scratch.len(),
        };
        let g = scratch.get_mut(..self.width).ok_or(too_small)?;
        let activation = self.config.activation();
        let layers = self.layers();

        // Forward: hᵢ into its slot, zᵢ into δᵢ's slot, act(zᵢ) into hᵢ₊₁'s slot.
        let mut start = 0;
        for (i, layer) in layers.iter().enumerate() {
            let (ni, no) = (layer.inputs(), layer.outputs());
            let (left, right) = split_mut(factors, start + ni + no)?;
            let (h, z) = split_mut(left.get_mut(start..).unwrap_or_default(), ni)?;
            if i == 0 {
                self.standardize_input(x, h)?;
            }
            layer.forward(h, z)?;
            if i + 1 < layers.len() {
                for (hk, &zk) in slice_mut(right, 0, no)?.iter_mut().zip(z.iter()) {
                    *hk = activation.apply(zk);
                }
            }
            start += ni + no;
        }

        // The head and its cotangent δ_last, which replaces the raw output in its slot.
        let no = self.outputs();
        let raw = slice_mut(factors, total.saturating_sub(no), no)?;
        self.head(raw, out)?;
        let g_out = slice_mut(g, 0, no)?;
        self.head_vjp(raw, cotangent, g_out)?;
        copy(raw, g_out);

        // Backward: δᵢ₋₁ = (Wᵢᵀ δᵢ) ⊙ act′(zᵢ₋₁), with zᵢ₋₁ in δᵢ₋₁'s slot and act(zᵢ₋₁) = hᵢ.
        let mut end = total;
        for (i, layer) in layers.iter().enumerate().rev() {
            let (ni, no) = (layer.inputs(), layer.outputs());
            let begin = end.saturating_sub(ni + no);
            if i > 0 {
                let (before, seg) = split_mut(factors, begin)?;
                let (h, delta) = split_mut(seg, ni)?;
                let delta = super::slice(delta, no)?;
                let gi = slice_mut(g, 0, ni)?;
                layer.backward(delta, gi)?;
                let prev = slice_mut(before, begin.saturating_sub(ni), ni)?;
                for ((p, &gk), &hk) in prev.iter_mut().zip(gi.iter()).zip(h.iter()) {
                    *p = gk * activation.derivative_given(*p, hk);
                }
            }
            end = begin;
        }
        Ok(())
    }

    /// `grad += scale · ∇θ` for a gradient in factored form (`factors` as written by
    /// [`parameter_vjp_factors`](Mlp::parameter_vjp_factors)), in the export's parameter order:
    /// `P` multiply–adds.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `factors.len() == gradient_factors_len()` and
    /// `grad.len() == parameter_count()`.
    pub fn accumulate_gradient<T: Real>(
        &self,
        factors: &[T],
        scale: T,
        grad: &mut [T],
    ) -> Result<()> {
        self.check_factors(factors)?;
        if grad.len() != self.parameter_count() {
            return Err(Error::ShapeMismatch {
                what: "parameter gradient",
                expected: self.parameter_count(),
                got: grad.len(),
            });
        }
        let mut f = factors;
        let mut g = grad;
        for layer in self.layers() {
            let (ni, no) = (layer.inputs(), layer.outputs());
            let (h, rest) = split(f, ni)?;
            let (delta, rest) = split(rest, no)?;
            f = rest;
            let (gw, rest) = split_mut(g, no * ni)?;
            let (gb, rest) = split_mut(rest, no)?;
            g = rest;
            for ((row, bj), &dj) in gw.chunks_exact_mut(ni).zip(gb.iter_mut()).zip(delta) {
                let s = scale * dj;
                for (w, &hk) in row.iter_mut().zip(h) {
                    *w += s * hk;
                }
                *bj += s;
            }
        }
        Ok(())
    }

    /// The inner product `∇θ·∇θ′ = Σᵢ (δᵢ·δᵢ′)(hᵢ·hᵢ′ + 1)` of two gradients in factored form:
    /// `R` multiply–adds instead of `P`. For the gradients of a scalar output at `x` and `x′`
    /// this is the finite neural-tangent kernel `k(x, x′) = J(x)·J(x′)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless both have length `gradient_factors_len()`.
    pub fn gradient_factors_dot<T: Real>(&self, a: &[T], b: &[T]) -> Result<T> {
        self.check_factors(a)?;
        self.check_factors(b)?;
        let mut s = T::ZERO;
        let mut start = 0;
        for layer in self.layers() {
            let (ni, no) = (layer.inputs(), layer.outputs());
            let (ha, da) = split(a.get(start..start + ni + no).unwrap_or_default(), ni)?;
            let (hb, db) = split(b.get(start..start + ni + no).unwrap_or_default(), ni)?;
            s += crate::linalg::dot(da, db) * (crate::linalg::dot(ha, hb) + T::ONE);
            start += ni + no;
        }
        Ok(s)
    }

    /// The reverse pass with respect to the parameters: `out` receives
    /// [`forward`](Mlp::forward)'s output and `grad` (length
    /// [`parameter_count`](Mlp::parameter_count), export order) `cotangentᵀ ∂out/∂θ`.
    ///
    /// # Errors
    /// As [`parameter_vjp_factors`](Mlp::parameter_vjp_factors), with `grad.len()` checked
    /// against `parameter_count()` and `scratch.len()` against
    /// [`parameter_vjp_scratch_len`](Mlp::parameter_vjp_scratch_len).
    pub fn parameter_vjp<T: Real>(
        &self,
        x: &[T],
        cotangent: &[T],
        out: &mut [T],
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        let r = self.gradient_factors_len();
        let too_small = Error::ScratchTooSmall {
            needed: self.parameter_vjp_scratch_len(),
            got: scratch.len(),
        };
        let (factors, rest) = scratch.split_at_mut_checked(r).ok_or(too_small)?;
        if rest.len() < self.width {
            return Err(too_small);
        }
        if grad.len() != self.parameter_count() {
            return Err(Error::ShapeMismatch {
                what: "parameter gradient",
                expected: self.parameter_count(),
                got: grad.len(),
            });
        }
        self.parameter_vjp_factors(x, cotangent, out, factors, rest)?;
        grad.fill(T::ZERO);
        self.accumulate_gradient(factors, T::ONE, grad)
    }

    /// The forward pass along a parameter direction: `out` receives
    /// [`forward`](Mlp::forward)'s output and `tangent` the directional derivative
    /// `∂out/∂θ · direction` (`direction` in the export's order, length
    /// [`parameter_count`](Mlp::parameter_count)): `żᵢ = Uᵢhᵢ + Wᵢḣᵢ + uᵢ`,
    /// `ḣᵢ₊₁ = act′(zᵢ) ⊙ żᵢ`, then the head's derivative. About three forward passes of
    /// multiply–adds (`Wh`, `Wḣ`, `Uh`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()`, `out.len() == tangent.len() ==
    /// outputs()` and `direction.len() == parameter_count()`; [`Error::ScratchTooSmall`] if
    /// `scratch.len() < parameter_jvp_scratch_len()`.
    pub fn parameter_jvp<T: Real>(
        &self,
        x: &[T],
        direction: &[T],
        out: &mut [T],
        tangent: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_len("output", out.len())?;
        self.check_len("tangent", tangent.len())?;
        if direction.len() != self.parameter_count() {
            return Err(Error::ShapeMismatch {
                what: "parameter direction",
                expected: self.parameter_count(),
                got: direction.len(),
            });
        }
        let w = self.width;
        let too_small = Error::ScratchTooSmall {
            needed: self.parameter_jvp_scratch_len(),
            got: scratch.len(),
        };
        let (mut h, rest) = scratch.split_at_mut_checked(w).ok_or(too_small)?;
        let (mut hd, rest) = rest.split_at_mut_checked(w).ok_or(too_small)?;
        let (mut z, rest) = rest.split_at_mut_checked(w).ok_or(too_small)?;
        let mut zd = rest.get_mut(..w).ok_or(too_small)?;
        self.standardize_input(x, h)?;
        slice_mut(hd, 0, self.inputs())?.fill(T::ZERO);
        let activation = self.config.activation();
        let layers = self.layers();
        let mut u = direction;
        for (i, layer) in layers.iter().enumerate() {
            let (ni, no) = (layer.inputs(), layer.outputs());
            let (uw, rest) = split(u, no * ni)?;
            let (ub, rest) = split(rest, no)?;
            u = rest;
            let hi = super::slice(h, ni)?;
            let zi = slice_mut(z, 0, no)?;
            layer.forward(hi, zi)?;
            let zdi = slice_mut(zd, 0, no)?;
            layer.weight_product(super::slice(hd, ni)?, zdi)?;
            for ((zdj, row), &bj) in zdi.iter_mut().zip(uw.chunks_exact(ni)).zip(ub) {
                *zdj += crate::linalg::dot(row, hi) + bj;
            }
            if i + 1 < layers.len() {
                for (zk, zdk) in zi.iter_mut().zip(zdi.iter_mut()) {
                    let a = activation.apply(*zk);
                    *zdk *= activation.derivative_given(*zk, a);
                    *zk = a;
                }
                core::mem::swap(&mut h, &mut z);
                core::mem::swap(&mut hd, &mut zd);
            }
        }
        let no = self.outputs();
        let raw = super::slice(z, no)?;
        self.head(raw, out)?;
        // The head is elementwise, so its Jacobian-vector product is its vector-Jacobian one.
        self.head_vjp(raw, super::slice(zd, no)?, tangent)
    }

    fn check_factors<T>(&self, factors: &[T]) -> Result<()> {
        let expected = self.gradient_factors_len();
        if factors.len() == expected {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what: "gradient factors",
                expected,
                got: factors.len(),
            })
        }
    }
}

/// `s.split_at(n)`, or [`Error::ScratchTooSmall`] (lengths are checked at entry, so this is
/// never reached; it keeps a panic path out of the firmware).
fn split<T>(s: &[T], n: usize) -> Result<(&[T], &[T])> {
    let got = s.len();
    s.split_at_checked(n)
        .ok_or(Error::ScratchTooSmall { needed: n, got })
}

/// `s.split_at_mut(n)`, or [`Error::ScratchTooSmall`] (as [`split`]).
fn split_mut<T>(s: &mut [T], n: usize) -> Result<(&mut [T], &mut [T])> {
    let got = s.len();
    s.split_at_mut_checked(n)
        .ok_or(Error::ScratchTooSmall { needed: n, got })
}
