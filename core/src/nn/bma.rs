//! The Bayesian model average of a set of ReLU MLPs stored as one sample matrix: HMC states,
//! SG-MCMC samples or deep-ensemble members exported by `keel bayes export`.
//!
//! `p(y | x) = (1/S) Σ_s softmax(f_{θ_s}(x))` — probabilities averaged, not logits (Izmailov et
//! al., What Are Bayesian Neural Network Posteriors Really Like?, ICML 2021). The file
//! (`keel.kind = "bma"`) holds:
//! - `samples` `[S, P]`: one flat parameter vector per row, layer by layer `W` (`[out, in]`,
//!   row-major) then `b`;
//! - `sizes` `[L + 1]`: the widths `[in, h₁, …, classes]` (integers stored as floats);
//! - `input.mean`, `input.std` `[in]`: the standardisation the samples were drawn with.
//!
//! Everything stays borrowed from the file (flash on a controller); [`Bma::predict`] reads the
//! parameters in place, takes caller scratch and never allocates.

use super::weights::Floats;
use crate::io::SafeTensors;
use crate::{Error, Real, Result};

/// A model average over the samples of one file, with at most `L` layers.
#[derive(Clone, Copy, Debug)]
pub struct Bma<'a, const L: usize> {
    samples: Floats<'a>,
    mean: Floats<'a>,
    std: Floats<'a>,
    /// Widths `[in, h₁, …, out]`; the first `layers + 1` are used.
    sizes: [usize; 16],
    layers: usize,
    count: usize,
    params: usize,
    widest: usize,
}

impl<'a, const L: usize> Bma<'a, L> {
    /// Reads and checks a `bma` file.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another `keel.kind`, widths that are not positive integers,
    /// or a parameter count that disagrees with them; [`Error::CapacityExceeded`] for more than
    /// `L` layers (or 15); [`Error::TensorNotFound`] / [`Error::TensorShape`] for missing or
    /// misshapen tensors; [`Error::UnsupportedDtype`] for non-float data.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        match st.metadata("keel.kind") {
            Some(k) if k == "bma" => {}
            _ => {
                return Err(Error::InvalidConfig {
                    what: "`keel.kind` is not `bma`",
                })
            }
        }
        let find = |name: &'static str| {
            st.tensor(name).map_err(|_| Error::TensorNotFound {
                role: name,
                layer: None,
            })
        };
        let samples = find("samples")?;
        let sizes_t = find("sizes")?;
        let mean = find("input.mean")?;
        let std = find("input.std")?;
        let shape_err = |role| Error::TensorShape { role, layer: None };
        if samples.rank() != 2 || samples.shape()[0] == 0 {
            return Err(shape_err("samples"));
        }
        if sizes_t.rank() != 1 || sizes_t.len() < 2 {
            return Err(shape_err("sizes"));
        }
        let (sizes, layers, params) = widths::<L>(&sizes_t, "BMA layers")?;
        if samples.shape()[1] != params {
            return Err(Error::InvalidConfig {
                what: "the samples' length disagrees with `sizes`",
            });
        }
        for (t, role) in [(&mean, "input.mean"), (&std, "input.std")] {
            if t.rank() != 1 || t.len() != sizes[0] {
                return Err(shape_err(role));
            }
        }
        for i in 0..sizes[0] {
            let s = std.get_f64(i)?;
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::InvalidConfig {
                    what: "`input.std` must be positive",
                });
            }
        }
        Ok(Bma {
            samples: Floats::new(&samples)?,
            mean: Floats::new(&mean)?,
            std: Floats::new(&std)?,
            sizes,
            layers,
            count: samples.shape()[0],
            params,
            widest: sizes[..=layers].iter().copied().max().unwrap_or(0),
        })
    }

    /// Number of samples averaged.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Classes (output width).
    pub fn classes(&self) -> usize {
        self.sizes[self.layers]
    }

    /// Parameters per sample.
    pub fn parameters(&self) -> usize {
        self.params
    }

    /// Scratch [`Bma::predict`] needs: two activation buffers of the widest layer.
    pub fn scratch_len(&self) -> usize {
        2 * self.widest
    }

    /// The averaged class probabilities of raw (unstandardised) input `x` into `probs`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for `x` or `probs` of the wrong length;
    /// [`Error::ScratchTooSmall`]; [`Error::NonFinite`] if an output is not finite.
    pub fn predict<T: Real>(&self, x: &[T], probs: &mut [T], scratch: &mut [T]) -> Result<()> {
        let (n_in, classes) = (self.inputs(), self.classes());
        if x.len() != n_in {
            return Err(Error::ShapeMismatch {
                what: "x",
                expected: n_in,
                got: x.len(),
            });
        }
        if probs.len() != classes {
            return Err(Error::ShapeMismatch {
                what: "probs",
                expected: classes,
                got: probs.len(),
            });
        }
        if scratch.len() < self.scratch_len() {
            return Err(Error::ScratchTooSmall {
                needed: self.scratch_len(),
                got: scratch.len(),
            });
        }
        probs.fill(T::ZERO);
        let weight = T::ONE / T::from_f64(self.count as f64);
        let (a, b) = scratch[..self.scratch_len()].split_at_mut(self.widest);
        for s in 0..self.count {
            for (((ai, &xi), m), sd) in a
                .iter_mut()
                .zip(x)
                .zip(self.mean.iter::<T>())
                .zip(self.std.iter::<T>())
            {
                *ai = (xi - m) / sd;
            }
            let mut at = s * self.params;
            let (mut cur, mut next) = (&mut *a, &mut *b);
            for l in 0..self.layers {
                let (inp, out) = (self.sizes[l], self.sizes[l + 1]);
                let weight = self.samples.slice(at, out * inp);
                let bias = self.samples.slice(at + out * inp, out);
                let hidden = l + 1 < self.layers;
                for ((nj, row), bj) in next.iter_mut().zip(weight.rows(inp)).zip(bias.iter::<T>()) {
                    // cannot fail: cur holds `widest` ≥ every width (from_safetensors).
                    let v = row.dot(&cur[..inp]) + bj;
                    *nj = if hidden && v < T::ZERO { T::ZERO } else { v };
                }
                at += out * inp + out;
                core::mem::swap(&mut cur, &mut next);
            }
            // Stable softmax of `cur[..classes]`, accumulated.
            // cannot fail: 1 ≤ classes ≤ widest = cur.len() (sizes are checked ≥ 1).
            let logits = &cur[..classes];
            let mut max = logits[0];
            for &v in logits {
                if v > max {
                    max = v;
                }
            }
            let mut total = T::ZERO;
            for &v in logits {
                total += (v - max).libm_exp();
            }
            if !total.is_finite() || !max.is_finite() {
                return Err(Error::NonFinite { index: s, t: 0.0 });
            }
            for (p, &v) in probs.iter_mut().zip(logits) {
                *p += weight * (v - max).libm_exp() / total;
            }
        }
        Ok(())
    }
}

/// The widths `[in, h₁, …, out]` of a ReLU MLP stored as floats in `sizes_t` (rank 1, at least
/// two entries, checked by the caller), its layer count and its parameters per network
/// (`Σ in·out + out`), shared by the `bma` and `simplex` readers.
///
/// # Errors
/// [`Error::CapacityExceeded`] for more than `L` layers (or 15); [`Error::InvalidConfig`] for
/// widths that are not positive integers or a parameter count that overflows.
pub(super) fn widths<const L: usize>(
    sizes_t: &crate::io::TensorView<'_>,
    what: &'static str,
) -> Result<([usize; 16], usize, usize)> {
    let layers = sizes_t.len() - 1;
    if layers > L || layers >= 16 {
        return Err(Error::CapacityExceeded {
            what,
            capacity: L.min(15),
        });
    }
    let mut sizes = [0usize; 16];
    for (i, s) in sizes.iter_mut().take(layers + 1).enumerate() {
        let v = sizes_t.get_f64(i)?;
        if !((1.0..=1e9).contains(&v) && v == (v as usize) as f64) {
            return Err(Error::InvalidConfig {
                what: "`sizes` must hold positive integers",
            });
        }
        *s = v as usize;
    }
    let mut params = 0usize;
    for w in sizes[..=layers].windows(2) {
        params = w[0]
            .checked_mul(w[1])
            .and_then(|p| p.checked_add(w[1]))
            .and_then(|p| p.checked_add(params))
            .ok_or(Error::InvalidConfig {
                what: "`sizes` overflow",
            })?;
    }
    Ok((sizes, layers, params))
}
