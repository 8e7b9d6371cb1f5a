//! The distillation stream: the inputs the student is trained on, on which the frozen teacher
//! is evaluated afresh every batch (the reference's `gnosis/distillation/dataloaders.py` and
//! `distillation_epoch.py`). Real training rows, optionally augmented by ±1-pixel shifts or
//! mixup on the inputs (`λ ∼ Beta(α, α)`, `x ← λx + (1 − λ)x[perm]`, no label mixing: with
//! `α = 0` the labels are not used), plus synthetic rows at a ratio (1 synthetic : `(1 − r)/r`
//! real, as `synth_ratio`).

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use crate::data::permutation;
use crate::error::{Error, Result};

/// How real rows are transformed before the student and teacher see them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Augment {
    /// As they are.
    None,
    /// Each image shifted by `(dy, dx) ∈ {−1, 0, 1}²`, drawn per row, the uncovered border
    /// filled with 0 (needs an image shape).
    Shift,
    /// Mixup on the inputs with `λ ∼ Beta(α, α)`, one `λ` and one permutation per batch.
    Mixup {
        /// `α > 0`.
        alpha: f64,
    },
}

/// One `Gamma(a, 1)` draw (Marsaglia & Tsang 2000; `a < 1` by `Gamma(a + 1)·U^{1/a}`).
pub fn gamma(a: f64, rng: &mut Xoshiro256PlusPlus) -> f64 {
    if a < 1.0 {
        let u: f64 = uniform(rng);
        return gamma(a + 1.0, rng) * u.max(f64::MIN_POSITIVE).powf(1.0 / a);
    }
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z: f64 = standard_normal(rng);
        let v = 1.0 + c * z;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u: f64 = uniform(rng);
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// One `Beta(a, a)` draw: `X/(X + Y)` with `X, Y ∼ Gamma(a, 1)`.
pub fn beta_symmetric(a: f64, rng: &mut Xoshiro256PlusPlus) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(a, rng);
    if x + y > 0.0 {
        x / (x + y)
    } else {
        0.5
    }
}

/// Shifts each `[c, h, w]` image of `x` (row-major rows) by a `(dy, dx) ∈ {−1, 0, 1}²` drawn
/// per row from `rng`, filling with 0; returns the shifts.
///
/// # Errors
/// [`Error::InvalidInput`] if the rows are not `c·h·w` long.
pub fn shift(
    x: &mut [f64],
    shape: [usize; 3],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<(i64, i64)>> {
    let [c, h, w] = shape;
    let per = c * h * w;
    if per == 0 || !x.len().is_multiple_of(per) {
        return Err(Error::invalid(
            "image_shape",
            format!("{c}x{h}x{w}"),
            format!("rows of {} values are not whole images", x.len()),
        ));
    }
    let mut shifts = Vec::with_capacity(x.len() / per);
    let mut src = vec![0.0; per];
    for img in x.chunks_exact_mut(per) {
        let dy = (uniform::<f64, _>(rng) * 3.0).floor().min(2.0) as i64 - 1;
        let dx = (uniform::<f64, _>(rng) * 3.0).floor().min(2.0) as i64 - 1;
        shifts.push((dy, dx));
        src.copy_from_slice(img);
        for ch in 0..c {
            for r in 0..h as i64 {
                for q in 0..w as i64 {
                    let (sr, sq) = (r - dy, q - dx);
                    img[ch * h * w + (r as usize) * w + q as usize] =
                        if (0..h as i64).contains(&sr) && (0..w as i64).contains(&sq) {
                            src[ch * h * w + (sr as usize) * w + sq as usize]
                        } else {
                            0.0
                        };
                }
            }
        }
    }
    Ok(shifts)
}

/// Mixup on the rows of `x` (`cols` wide): `λ ∼ Beta(α, α)` and a permutation drawn from
/// `rng`, `x ← λx + (1 − λ)x[perm]`; returns `λ` and the permutation.
pub fn mixup(
    x: &mut [f64],
    cols: usize,
    alpha: f64,
    rng: &mut Xoshiro256PlusPlus,
) -> (f64, Vec<usize>) {
    let rows = x.len() / cols.max(1);
    let lambda = beta_symmetric(alpha, rng);
    let perm = permutation(rows, rng);
    let src = x.to_vec();
    for (i, &j) in perm.iter().enumerate() {
        for k in 0..cols {
            x[i * cols + k] = lambda * src[i * cols + k] + (1.0 - lambda) * src[j * cols + k];
        }
    }
    (lambda, perm)
}

/// How many synthetic rows join `real` real rows at ratio `r` (the synthetic share of the
/// batch): `round(real·r/(1 − r))`.
pub fn synthetic_rows(real: usize, ratio: f64) -> usize {
    if ratio <= 0.0 {
        0
    } else {
        (real as f64 * ratio / (1.0 - ratio)).round() as usize
    }
}
