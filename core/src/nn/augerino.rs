//! Augerino's averaged prediction on the controller (Benton, Finzi, Izmailov & Wilson, *Learning
//! Invariances in Neural Networks*, NeurIPS 2020, §4 and the test-time model of the reference
//! repository's `augerino/models/aug_modules.py`, `AugAveragedModel`).
//!
//! The model is `h(x) = E_{g∼μ_θ} f(g·x)`: a CNN `f` applied to the image warped by a random
//! affine map `g`, averaged over the learned distribution `μ_θ`. At test time the reference
//! estimates it with `J` draws and averages log-probabilities:
//!
//! `h(x) ≈ (1/J) Σⱼ log_softmax(f(warp(x, Tⱼ)))`, `Tⱼ = exp(Σᵢ εⱼᵢ Gᵢ)`,
//! `εⱼᵢ = uⱼᵢ θᵢ − θᵢ/2`, `uⱼᵢ ∼ U[0, 1)`,
//!
//! with the six generators `Gᵢ` of [`crate::vision::AUGERINO_GENERATORS`] (translation x,
//! translation y, rotation, scale, stretch, shear) and the learned widths `θ` that the file
//! stores (`augerino.widths`, already `softplus(w)`). The warp is
//! [`crate::vision::warp_bilinear`] with `Tⱼ`'s top two rows, the output the input's size.
//!
//! Draw order (so the host can reproduce a prediction from the same generator state): copy by
//! copy, and within a copy generator by generator, `u = random::uniform::<T>(rng)` — exactly
//! `6·J` draws per prediction, none when `J = 0` is refused.
//!
//! A regression CNN (`output = "regression"`) averages its outputs instead of log-softmaxes: the
//! Monte Carlo estimate of the same expectation.
//!
//! Cost: `J` warps (`O(C·H·W)` each, four taps per pixel) and `J` forward passes; the matrix
//! exponential is a few hundred flops. Scratch: [`Augerino::scratch_len`] — the warped image,
//! one output vector and the CNN's own scratch.

use rand_core::Rng;

use super::cnn::Cnn;
use super::Output;
use crate::random::uniform;
use crate::vision::{augerino_transform, warp_bilinear};
use crate::{Error, Real, Result};

/// An exported Augerino model: a [`Cnn`] whose file holds the learned widths.
#[derive(Clone, Copy, Debug)]
pub struct Augerino<'m, 'a, const L: usize> {
    cnn: &'m Cnn<'a, L>,
    widths: [f64; 6],
}

impl<'m, 'a, const L: usize> Augerino<'m, 'a, L> {
    /// The averaged model of `cnn`, whose file has an `augerino` block.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the file has no Augerino widths.
    pub fn new(cnn: &'m Cnn<'a, L>) -> Result<Self> {
        let widths = cnn.augerino_widths().ok_or(Error::InvalidConfig {
            what: "the CNN file has no `augerino` block (a plain CNN)",
        })?;
        Ok(Augerino { cnn, widths })
    }

    /// The network.
    pub fn cnn(&self) -> &'m Cnn<'a, L> {
        self.cnn
    }

    /// The learned widths θ (translation x, translation y, rotation, scale, stretch, shear).
    pub fn widths(&self) -> [f64; 6] {
        self.widths
    }

    /// The number of copies the exporter recommends (the training run's `J`).
    pub fn default_copies(&self) -> usize {
        self.cnn.config().augerino_copies().unwrap_or(1)
    }

    /// Scratch scalars [`predict`](Augerino::predict) needs: the warped image, one output vector
    /// and [`Cnn::scratch_len`].
    pub fn scratch_len(&self) -> usize {
        self.cnn
            .input_len()
            .saturating_add(self.cnn.outputs())
            .saturating_add(self.cnn.scratch_len())
    }

    /// The averaged prediction over `copies` transforms drawn from `rng` (see the module doc
    /// for the order of the draws): `out` receives the mean of the `copies` log-softmaxes
    /// (logits) or of the outputs (regression).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] (`copies`) for zero copies; [`Error::ShapeMismatch`] unless
    /// `image.len() == cnn().input_len()` and `out.len() == cnn().outputs()`;
    /// [`Error::ScratchTooSmall`] if `scratch.len() < scratch_len()`; as
    /// [`crate::vision::augerino_transform`] if a transform overflows.
    pub fn predict<T: Real, R: Rng + ?Sized>(
        &self,
        image: &[T],
        copies: usize,
        rng: &mut R,
        out: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        if copies == 0 {
            return Err(Error::InvalidParameter {
                name: "copies",
                value: 0.0,
            });
        }
        let n_in = self.cnn.input_len();
        let n_out = self.cnn.outputs();
        if image.len() != n_in {
            return Err(Error::ShapeMismatch {
                what: "image",
                expected: n_in,
                got: image.len(),
            });
        }
        if out.len() != n_out {
            return Err(Error::ShapeMismatch {
                what: "output",
                expected: n_out,
                got: out.len(),
            });
        }
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len(),
            got: scratch.len(),
        };
        let (warped, rest) = scratch.split_at_mut_checked(n_in).ok_or(too_small)?;
        let (_, cnn_scratch) = rest.split_at_mut_checked(n_out).ok_or(too_small)?;
        if cnn_scratch.len() < self.cnn.scratch_len() {
            return Err(too_small);
        }
        let [c, h, w] = self.cnn.input_shape();
        let widths = self.widths.map(T::from_f64);
        let logits = self.cnn.config().output() == Output::Logits;
        out.fill(T::ZERO);
        for _ in 0..copies {
            let mut eps = [T::ZERO; 6];
            for (e, &theta) in eps.iter_mut().zip(&widths) {
                let u: T = uniform(rng);
                *e = u * theta - theta * T::HALF;
            }
            let t = augerino_transform(&eps)?;
            warp_bilinear(image, c, h, w, &[t[0], t[1]], warped, h, w)?;
            let y = self.cnn.run(warped, cnn_scratch)?;
            let shift = if logits { log_sum_exp(y) } else { T::ZERO };
            for (o, &v) in out.iter_mut().zip(y) {
                *o += v - shift;
            }
        }
        let j = T::from_usize(copies);
        for o in out.iter_mut() {
            *o /= j;
        }
        Ok(())
    }

    /// The class with the largest averaged log-probability (the first on ties).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless the CNN's output is logits; as
    /// [`predict`](Augerino::predict), with `out` taken from the front of `scratch`, which must
    /// then hold [`scratch_len`](Augerino::scratch_len) + `cnn().outputs()` scalars;
    /// [`Error::NonFinite`] for a NaN log-probability.
    pub fn predict_class<T: Real, R: Rng + ?Sized>(
        &self,
        image: &[T],
        copies: usize,
        rng: &mut R,
        scratch: &mut [T],
    ) -> Result<usize> {
        if self.cnn.config().output() != Output::Logits {
            return Err(Error::InvalidConfig {
                what: "`predict_class` needs a `logits` output",
            });
        }
        let n_out = self.cnn.outputs();
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len().saturating_add(n_out),
            got: scratch.len(),
        };
        let (out, rest) = scratch.split_at_mut_checked(n_out).ok_or(too_small)?;
        if rest.len() < self.scratch_len() {
            return Err(too_small);
        }
        self.predict(image, copies, rng, out, rest)?;
        super::cnn::argmax(out)
    }
}

/// `ln Σ exp(v)`, shifted by the largest value so nothing overflows (NaN propagates).
fn log_sum_exp<T: Real>(v: &[T]) -> T {
    let mut m = T::neg_infinity();
    for &x in v {
        if x > m || x.is_nan() {
            m = x;
        }
    }
    if !m.is_finite() {
        return m;
    }
    let mut s = T::ZERO;
    for &x in v {
        s += (x - m).libm_exp();
    }
    m + s.libm_ln()
}

#[cfg(test)]
mod tests {
    use super::log_sum_exp;

    #[test]
    fn log_sum_exp_is_stable_and_exact_on_known_values() {
        let v = [1000.0f64, 1000.0];
        assert!((log_sum_exp(&v) - (1000.0 + core::f64::consts::LN_2)).abs() < 1e-12);
        let v = [0.0f64, (3.0f64).ln()];
        assert!((log_sum_exp(&v) - 4.0f64.ln()).abs() < 1e-15);
        assert!(log_sum_exp(&[1.0f32, f32::NAN]).is_nan());
    }
}
