//! Parameter initialisers from an explicit, seeded generator.

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use crate::backend::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How to initialise a weight matrix `[out, in]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's `nn.Linear` default: `U(−1/√in, 1/√in)` (Kaiming-uniform with a = √5).
    PyTorchDefault,
    /// Glorot/Xavier uniform: `U(±√(6/(in+out)))`.
    XavierUniform,
    /// Glorot/Xavier normal: `N(0, 2/(in+out))`.
    XavierNormal,
    /// He/Kaiming normal for ReLU (fan-in): `N(0, 2/in)`.
    KaimingNormal,
    /// He/Kaiming uniform for ReLU (fan-in): `U(±√(6/in))`.
    KaimingUniform,
    /// A (semi-)orthogonal matrix with the given gain (Saxe et al. 2014; PyTorch's
    /// `orthogonal_`): QR of a Gaussian matrix with the signs of R's diagonal fixed.
    Orthogonal {
        /// Gain.
        gain: f64,
    },
}

fn uniform_sym(rng: &mut Xoshiro256PlusPlus, bound: f64) -> f64 {
    (2.0 * uniform::<f64, _>(rng) - 1.0) * bound
}

/// A weight matrix `[out, in]`.
///
/// # Errors
/// [`Error::InvalidArgument`] for a zero dimension.
pub fn weight(
    init: Init,
    out: usize,
    inp: usize,
    dtype: DType,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Tensor> {
    if out == 0 || inp == 0 {
        return Err(Error::invalid(
            "layer size",
            format!("{out}×{inp}"),
            "must be positive",
        ));
    }
    crate::memory::check(
        || format!("a {out}×{inp} weight matrix"),
        out as u128 * inp as u128,
        DType::F64,
    )?;
    let n = out * inp;
    let (fi, fo) = (inp as f64, out as f64);
    let data: Vec<f64> = match init {
        Init::PyTorchDefault => (0..n).map(|_| uniform_sym(rng, 1.0 / fi.sqrt())).collect(),
        Init::XavierUniform => (0..n)
            .map(|_| uniform_sym(rng, (6.0 / (fi + fo)).sqrt()))
            .collect(),
        Init::XavierNormal => (0..n)
            .map(|_| standard_normal::<f64, _>(rng) * (2.0 / (fi + fo)).sqrt())
            .collect(),
        Init::KaimingNormal => (0..n)
            .map(|_| standard_normal::<f64, _>(rng) * (2.0 / fi).sqrt())
            .collect(),
        Init::KaimingUniform => (0..n)
            .map(|_| uniform_sym(rng, (6.0 / fi).sqrt()))
            .collect(),
        Init::Orthogonal { gain } => orthogonal(out, inp, rng)
            .into_iter()
            .map(|v| v * gain)
            .collect(),
    };
    Tensor::from_f64s(&data, &[out, inp], dtype)
}

/// A bias vector `[out]` with PyTorch's default `U(−1/√in, 1/√in)`.
///
/// # Errors
/// As [`weight`].
pub fn bias(out: usize, inp: usize, dtype: DType, rng: &mut Xoshiro256PlusPlus) -> Result<Tensor> {
    let data: Vec<f64> = (0..out)
        .map(|_| uniform_sym(rng, 1.0 / (inp as f64).sqrt()))
        .collect();
    Tensor::from_f64s(&data, &[out], dtype)
}

/// Row-major `rows×cols` matrix with orthonormal rows (rows ≤ cols) or columns (rows > cols).
fn orthogonal(rows: usize, cols: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    // Work on the tall orientation: t (tall) × s (short) with orthonormal columns.
    let (t, s) = (rows.max(cols), rows.min(cols));
    let mut a: Vec<f64> = (0..t * s).map(|_| standard_normal::<f64, _>(rng)).collect(); // column-major t×s
                                                                                        // Modified Gram–Schmidt (twice for stability) = QR; sign fix makes Q unique (diag R > 0).
    for j in 0..s {
        for _pass in 0..2 {
            for k in 0..j {
                let dot: f64 = (0..t).map(|i| a[k * t + i] * a[j * t + i]).sum();
                for i in 0..t {
                    a[j * t + i] -= dot * a[k * t + i];
                }
            }
        }
        let norm: f64 = (0..t).map(|i| a[j * t + i].powi(2)).sum::<f64>().sqrt();
        for i in 0..t {
            a[j * t + i] /= norm;
        }
    }
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Tall case: Q[r][c] = column c, entry r. Wide case: transpose.
            out[r * cols + c] = if rows >= cols {
                a[c * t + r]
            } else {
                a[r * t + c]
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for (r, c) in [(5, 5), (3, 7), (7, 3)] {
            let w = orthogonal(r, c, &mut rng);
            let (n, m, by_rows) = if r <= c { (r, c, true) } else { (c, r, false) };
            for a in 0..n {
                for b in 0..n {
                    let dot: f64 = (0..m)
                        .map(|k| {
                            if by_rows {
                                w[a * c + k] * w[b * c + k]
                            } else {
                                w[k * c + a] * w[k * c + b]
                            }
                        })
                        .sum();
                    assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn pytorch_default_bound_and_seeding() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let w = weight(Init::PyTorchDefault, 50, 100, DType::F64, &mut rng)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        assert!(w.iter().all(|v| v.abs() <= 0.1));
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!(
            (var - 0.01 / 3.0).abs() < 0.0005,
            "U(±b) has variance b²/3: {var}"
        );
        let mut rng2 = Xoshiro256PlusPlus::seed_from_u64(0);
        assert_eq!(
            weight(Init::PyTorchDefault, 50, 100, DType::F64, &mut rng2)
                .unwrap()
                .to_vec_f64()
                .unwrap(),
            w
        );
    }
}
