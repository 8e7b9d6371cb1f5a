//! Sample-quality metrics of image GANs, on feature or logit rows in `f64` on the host: the
//! Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017, as
//! pytorch-fid computes it) and the Inception Score (Salimans et al. 2016, as
//! openai/improved-gan's `inception_score/model.py`, which "Improving GAN Training with
//! Probability Ratio Clipping and Sample Reweighting" (Wu et al., NeurIPS 2020) reports), from
//! whatever network supplies the features or logits — Keel has no Inception network; a
//! classifier trained on the same data stands in for it, so the numbers are comparable between
//! runs of one set-up, not with published Inception-based ones.
//!
//! Rows are row-major `&[f64]`, `dim` (or `classes`) values each. Every entry point refuses
//! fewer than 2 rows, a length that is not a whole number of rows, and non-finite values.
//!
//! **FID** `‖μ₁ − μ₂‖² + tr(S₁ + S₂ − 2(S₁S₂)^{1/2})`. pytorch-fid takes a general matrix square
//! root of the non-symmetric `S₁S₂` (`scipy.linalg.sqrtm`), adds `1e−6·I` to both covariances
//! when that product is singular, and drops a small imaginary part. Here the trace is taken
//! without a general square root: `S₁S₂` is similar to the symmetric positive semi-definite
//! `S₁^{1/2} S₂ S₁^{1/2}`, so `tr (S₁S₂)^{1/2} = Σ_i √λ_i` over that matrix's eigenvalues, with
//! `S₁^{1/2} = V Λ^{1/2} Vᵀ` from the symmetric eigen-decomposition of `S₁`. Eigenvalues that
//! rounding makes slightly negative are clamped to 0 (in both decompositions), so a singular
//! covariance (fewer rows than features) needs no offset, and the result is real. Both
//! decompositions are the core's Jacobi rotations ([`keel_core::linalg::symmetric_eigen`]),
//! accurate to rounding in every eigenvalue but `O(dim³)` per sweep: meant for classifier
//! features of up to a few hundred dimensions, not Inception's 2048.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Checks a row-major table: `dim ≥ 1`, a whole number of at least 2 rows, finite values.
/// Returns the row count.
fn rows_of(name: &'static str, rows: &[f64], dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(Error::invalid(
            name,
            "0 columns",
            "rows need at least one value",
        ));
    }
    if !rows.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            name,
            format!("{} values", rows.len()),
            format!("not a whole number of rows of {dim}"),
        ));
    }
    let n = rows.len() / dim;
    if n < 2 {
        return Err(Error::invalid(
            name,
            format!("{n} rows"),
            "a mean and a covariance need at least 2 rows",
        ));
    }
    finite(name, rows)?;
    Ok(n)
}

/// Refuses NaN and ±∞, naming the first.
fn finite(name: &'static str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::invalid(
            name,
            v[i],
            format!("entry {i} is not finite"),
        )),
        None => Ok(()),
    }
}

/// The mean (`dim`) and unbiased covariance (`dim × dim`, row-major, divided by `n − 1` as
/// `numpy.cov`) of `n` rows of `dim` features.
///
/// # Errors
/// [`Error::InvalidInput`] for `dim = 0`, a length that is not a whole number of rows, fewer
/// than 2 rows, or a non-finite value.
pub fn mean_and_covariance(rows: &[f64], dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows_of("features", rows, dim)?;
    let mut mean = vec![0.0; dim];
    for r in rows.chunks_exact(dim) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // Centred columns, each contiguous, so every covariance entry is one dot product.
    let mut cols = vec![0.0; n * dim];
    for (i, r) in rows.chunks_exact(dim).enumerate() {
        for j in 0..dim {
            cols[j * n + i] = r[j] - mean[j];
        }
    }
    let upper: Vec<Vec<f64>> = (0..dim)
        .into_par_iter()
        .map(|i| {
            let ci = &cols[i * n..(i + 1) * n];
            (i..dim)
                .map(|j| {
                    let cj = &cols[j * n..(j + 1) * n];
                    ci.iter().zip(cj).map(|(a, b)| a * b).sum::<f64>() / (n - 1) as f64
                })
                .collect()
        })
        .collect();
    let mut cov = vec![0.0; dim * dim];
    for (i, row) in upper.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            let j = i + k;
            cov[i * dim + j] = *v;
            cov[j * dim + i] = *v;
        }
    }
    Ok((mean, cov))
}

/// `c = a·b` for row-major `n × n` matrices.
fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    c.par_chunks_mut(n).enumerate().for_each(|(i, ci)| {
        for k in 0..n {
            let aik = a[i * n + k];
            for (cij, bkj) in ci.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *cij += aik * bkj;
            }
        }
    });
    c
}

/// Eigenvalues (clamped at 0) and eigenvectors (columns of a row-major matrix) of the symmetric
/// `m`, symmetrised first.
fn psd_eigen(m: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = 0.5 * (m[i * n + j] + m[j * n + i]);
        }
    }
    let mut v = vec![0.0; n * n];
    keel_core::linalg::symmetric_eigen(&mut a, n, &mut v)
        .map_err(Error::core("FID: eigen-decomposition of a covariance"))?;
    let lambda = (0..n).map(|i| a[i * n + i].max(0.0)).collect();
    Ok((lambda, v))
}

/// Checks a mean and a covariance of dimension `dim`: lengths, finite values, symmetry to 1e−9
/// of the largest entry.
fn check_gaussian(
    mu_name: &'static str,
    mu: &[f64],
    s_name: &'static str,
    s: &[f64],
    dim: usize,
) -> Result<()> {
    if mu.len() != dim {
        return Err(Error::invalid(
            mu_name,
            format!("{} values", mu.len()),
            format!("a mean of dimension {dim}"),
        ));
    }
    if s.len() != dim * dim {
        return Err(Error::invalid(
            s_name,
            format!("{} values", s.len()),
            format!("a {dim} × {dim} covariance has {} entries", dim * dim),
        ));
    }
    finite(mu_name, mu)?;
    finite(s_name, s)?;
    let scale = s.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for i in 0..dim {
        for j in i + 1..dim {
            if (s[i * dim + j] - s[j * dim + i]).abs() > 1e-9 * scale {
                return Err(Error::invalid(
                    s_name,
                    format!(
                        "entries ({i}, {j}) = {} and ({j}, {i}) = {}",
                        s[i * dim + j],
                        s[j * dim + i]
                    ),
                    "a covariance is symmetric",
                ));
            }
        }
    }
    Ok(())
}

/// The Fréchet distance `‖μ₁ − μ₂‖² + tr(S₁ + S₂ − 2(S₁S₂)^{1/2})` between `N(μ₁, S₁)` and
/// `N(μ₂, S₂)` in `dim` dimensions (covariances row-major, symmetric positive semi-definite), by
/// symmetric eigen-decompositions (module docs). Never negative: a rounding-level negative
/// result is returned as 0.
///
/// # Errors
/// [`Error::InvalidInput`] for `dim = 0`, lengths that do not match `dim`, non-finite values or
/// an asymmetric covariance; [`Error::Core`] if an eigen-decomposition does not converge.
pub fn frechet_distance(
    mu1: &[f64],
    s1: &[f64],
    mu2: &[f64],
    s2: &[f64],
    dim: usize,
) -> Result<f64> {
    if dim == 0 {
        return Err(Error::invalid("dim", 0, "must be at least 1"));
    }
    check_gaussian("mu1", mu1, "s1", s1, dim)?;
    check_gaussian("mu2", mu2, "s2", s2, dim)?;
    let diff: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let trace = |s: &[f64]| (0..dim).map(|i| s[i * dim + i]).sum::<f64>();
    // S₁^{1/2} = V Λ^{1/2} Vᵀ.
    let (lambda, v) = psd_eigen(s1, dim)?;
    let mut v_scaled = v.clone();
    for i in 0..dim {
        for j in 0..dim {
            v_scaled[i * dim + j] *= lambda[j].sqrt();
        }
    }
    let mut vt = vec![0.0; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            vt[j * dim + i] = v[i * dim + j];
        }
    }
    let root = matmul(&v_scaled, &vt, dim);
    let inner = matmul(&matmul(&root, s2, dim), &root, dim);
    let (mu, _) = psd_eigen(&inner, dim)?;
    let tr_covmean: f64 = mu.iter().map(|m| m.sqrt()).sum();
    Ok((diff + trace(s1) + trace(s2) - 2.0 * tr_covmean).max(0.0))
}

/// FID between two feature sets (`dim` features a row): [`frechet_distance`] of their
/// [`mean_and_covariance`].
///
/// # Errors
/// As [`mean_and_covariance`] for either set; as [`frechet_distance`].
pub fn fid(features_a: &[f64], features_b: &[f64], dim: usize) -> Result<f64> {
    let (m1, s1) = mean_and_covariance(features_a, dim)?;
    let (m2, s2) = mean_and_covariance(features_b, dim)?;
    frechet_distance(&m1, &s1, &m2, &s2, dim)
}

/// The Inception Score of `n` rows of `classes` logits: `p(y|x) = softmax(logits)`, the rows cut
/// into `splits` consecutive parts at `⌊k·n/splits⌋` (as openai/improved-gan; parts differ by
/// at most one row), and per part `exp(mean_x KL(p(y|x) ‖ p(y)))` with `p(y)` the part's mean;
/// returns the mean and the population standard deviation (`numpy.std`) over the parts. The
/// logarithms come from a log-softmax, and a probability that underflows to 0 contributes 0
/// (its limit), where the reference's `p·log p` would give NaN.
///
/// # Errors
/// [`Error::InvalidInput`] for fewer than 2 classes, a length that is not a whole number of
/// rows, fewer than 2 rows, `splits` outside `1..=n`, or a non-finite logit.
pub fn inception_score(logits: &[f64], classes: usize, splits: usize) -> Result<(f64, f64)> {
    if classes < 2 {
        return Err(Error::invalid(
            "classes",
            classes,
            "the score compares class distributions: at least 2 classes",
        ));
    }
    let n = rows_of("logits", logits, classes)?;
    if splits == 0 || splits > n {
        return Err(Error::invalid(
            "splits",
            splits,
            format!("between 1 and the number of rows ({n})"),
        ));
    }
    let log_p: Vec<f64> = logits
        .chunks_exact(classes)
        .flat_map(crate::distill::loss::log_softmax_row)
        .collect();
    let scores: Vec<f64> = (0..splits)
        .map(|k| {
            let (lo, hi) = (k * n / splits, (k + 1) * n / splits);
            let part = &log_p[lo * classes..hi * classes];
            let rows = (hi - lo) as f64;
            let mut py = vec![0.0; classes];
            for r in part.chunks_exact(classes) {
                for (m, l) in py.iter_mut().zip(r) {
                    *m += l.exp();
                }
            }
            let log_py: Vec<f64> = py.iter().map(|m| (m / rows).ln()).collect();
            let kl: f64 = part
                .chunks_exact(classes)
                .map(|r| {
                    r.iter()
                        .zip(&log_py)
                        .map(|(l, lm)| {
                            let p = l.exp();
                            if p == 0.0 {
                                0.0
                            } else {
                                p * (l - lm)
                            }
                        })
                        .sum::<f64>()
                })
                .sum();
            (kl / rows).exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_of_three_by_three_matrices() {
        let a = [1.0, 2.0, 0.0, 0.0, 1.0, 3.0, 4.0, 0.0, 1.0];
        let b = [2.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 2.0, 1.0];
        assert_eq!(
            matmul(&a, &b, 3),
            [4.0, 2.0, 1.0, 1.0, 7.0, 3.0, 8.0, 2.0, 5.0]
        );
    }

    #[test]
    fn psd_eigen_clamps_rounding_negatives() {
        // Rank 1: [1 1; 1 1] has eigenvalues 0 and 2.
        let (l, _) = psd_eigen(&[1.0, 1.0, 1.0, 1.0], 2).unwrap();
        let mut l = l;
        l.sort_by(f64::total_cmp);
        assert!(l[0] >= 0.0 && l[0] < 1e-15, "{l:?}");
        assert!((l[1] - 2.0).abs() < 1e-15);
    }
}
