//! Data augmentation by random ±1-pixel shifts of image rows, for the cold-posterior study of
//! Izmailov, Vikram, Hoffman & Wilson ("What Are Bayesian Neural Network Posteriors Really
//! Like?", ICML 2021), whose abstract finds the "cold posterior" effect "largely an artifact of
//! data augmentation".
//!
//! Each image is moved by `(dy, dx) ∈ {−1, 0, 1}²` (nine offsets, the identity included), the
//! uncovered border filled with 0 ([`crate::images::corrupt::translate`]) — on the raw pixels,
//! before the split's standardisation, which then maps the filled zeros where a zero pixel goes.
//! Two ways to use it, because augmentation has no one posterior:
//!
//! - **Per step** ([`ShiftAugment::batch`]): the mini-batch methods (SGD and ensembles, SGLD,
//!   SGHMC, MFVI) draw a fresh offset for every example of every step, as a data loader does in
//!   the augmented training the paper discusses. The gradient is then an unbiased estimate of
//!   that of the likelihood averaged over shifts, `Σᵢ E_s[log p(yᵢ | s(xᵢ), θ)]`.
//! - **As extra data** ([`expanded`]): full-batch HMC cannot draw offsets per leapfrog step —
//!   the Hamiltonian would change inside a trajectory and the Metropolis–Hastings test would no
//!   longer correct the right target. Instead it samples the posterior of the training set
//!   expanded with all nine shifted copies of every image: a fixed, well-defined target (the
//!   way augmentation is usually modelled as extra data), which counts every image nine times,
//!   i.e. its likelihood is `9 · Σᵢ E_s[…]`, the per-step target's at temperature 1/9. That
//!   over-counting is what the paper's explanation of the cold-posterior effect is about; the
//!   results in `benches/RESULTS.md` report both.

use std::sync::Arc;

use keel_core::random::{uniform, Xoshiro256PlusPlus};

use super::mlp::{Labels, Split};
use crate::data;
use crate::error::{Error, Result};
use crate::images::corrupt::translate;
use crate::images::ImageShape;

/// The nine offsets `(dy, dx)`, the identity first.
pub const OFFSETS: [(i64, i64); 9] = [
    (0, 0),
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

/// The raw training images of a split and its standardisation, to shift rows on the fly.
#[derive(Clone, Debug)]
pub struct ShiftAugment {
    shape: ImageShape,
    raw: Arc<Vec<f64>>,
    mean: Vec<f64>,
    std: Vec<f64>,
}

/// `split`'s training inputs back in raw units (`x·std + mean`, exact to rounding).
fn raw_rows(x: &[f64], split: &Split) -> Vec<f64> {
    let d = split.d.max(1);
    x.iter()
        .enumerate()
        .map(|(i, v)| v * split.x_std[i % d] + split.x_mean[i % d])
        .collect()
}

/// `shape` must have one pixel per input of `split`.
fn check_shape(split: &Split, shape: ImageShape) -> Result<()> {
    if shape.pixels() != split.d {
        return Err(Error::invalid(
            "image_shape",
            shape,
            format!(
                "{} pixels per image, but the data have {} feature columns",
                shape.pixels(),
                split.d
            ),
        ));
    }
    Ok(())
}

impl ShiftAugment {
    /// The augmentation of `split`'s training rows as images of `shape`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `image_shape`) when `shape` does not have one pixel per
    /// feature column.
    pub fn new(split: &Split, shape: ImageShape) -> Result<ShiftAugment> {
        check_shape(split, shape)?;
        Ok(ShiftAugment {
            shape,
            raw: Arc::new(raw_rows(&split.x_train, split)),
            mean: split.x_mean.clone(),
            std: split.x_std.clone(),
        })
    }

    /// The image shape.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// The standardised inputs of training `rows`, each shifted by an offset drawn uniformly
    /// from the nine of [`OFFSETS`] with `rng`; and the offsets.
    ///
    /// # Panics
    /// If a row is out of range.
    pub fn batch(
        &self,
        rows: &[usize],
        rng: &mut Xoshiro256PlusPlus,
    ) -> (Vec<f64>, Vec<(i64, i64)>) {
        let d = self.shape.pixels();
        let mut out = vec![0.0; rows.len() * d];
        let mut offsets = Vec::with_capacity(rows.len());
        for (&r, dst) in rows.iter().zip(out.chunks_exact_mut(d)) {
            let k = (uniform::<f64, _>(rng) * 9.0).floor().min(8.0) as usize;
            let (dy, dx) = OFFSETS[k];
            offsets.push((dy, dx));
            translate(&self.raw[r * d..(r + 1) * d], self.shape, dy, dx, dst);
        }
        (data::standardize(&out, &self.mean, &self.std), offsets)
    }
}

/// `split` with its training rows replaced by all nine shifted copies of each (offset-major:
/// the identity copy of every row first, then each other offset in [`OFFSETS`] order); the test
/// rows and the standardisation are kept.
///
/// # Errors
/// As [`ShiftAugment::new`]; [`crate::limits::memory`] for a set too large to hold nine times.
pub fn expanded(split: &Split, shape: ImageShape) -> Result<Split> {
    check_shape(split, shape)?;
    let d = split.d;
    let n = split.y_train.len();
    crate::limits::memory(
        "augment",
        "shift1",
        "the training rows with their eight shifted copies",
        (9 * n as u128) * d as u128 * 8,
    )?;
    let raw = raw_rows(&split.x_train, split);
    let mut x = vec![0.0; 9 * n * d];
    for (k, &(dy, dx)) in OFFSETS.iter().enumerate() {
        for i in 0..n {
            let at = (k * n + i) * d;
            translate(&raw[i * d..(i + 1) * d], shape, dy, dx, &mut x[at..at + d]);
        }
    }
    let y_train = match &split.y_train {
        Labels::Classes(l) => Labels::Classes(l.repeat(9)),
        Labels::Values(v) => Labels::Values(v.repeat(9)),
    };
    Ok(Split {
        x_train: data::standardize(&x, &split.x_mean, &split.x_std),
        y_train,
        ..split.clone()
    })
}
