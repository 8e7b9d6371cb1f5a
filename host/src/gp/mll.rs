//! The log marginal likelihood `L = log p(y)` and its gradient with respect to
//! `θ = log(s, ℓ, σ²)`: the exact GP's, dense, and SKI's from WISKI's cached statistics alone
//! (`O(m³)`, independent of n) — the quantity Stanton et al., *Kernel Interpolation for Scalable
//! Online Gaussian Processes* (AISTATS 2021), maximise online, which the reference code computes
//! by Woodbury identities in `online_gp/mlls/batched_woodbury_marginal_log_likelihood.py`
//! (wjmaddox/online_gp) and Keel from the square-root cache without an inverse of `K_UU`.

use keel_core::gp::Wiski;
use keel_core::linalg::{cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place};

use super::hyper::{GridSpec, Hyper};
use super::posterior::TrainData;
use super::store::{Feed, WiskiStore};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The exact GP's log marginal likelihood and its gradient with respect to [`to_theta`](super::to_theta):
/// `∂L/∂θ = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ)`, dense (`O(n³)`).
///
/// # Errors
/// [`Error::Core`] if `K + σ²D` is not positive definite.
pub fn exact_mll_grad(h: &Hyper, train: &TrainData) -> Result<(f64, Vec<f64>)> {
    let (n, dim) = (train.len(), train.dim);
    let h = h.for_dim(dim)?;
    let x = |i: usize| &train.x[i * dim..(i + 1) * dim];
    let r2 = |i: usize, j: usize| -> f64 {
        x(i).iter()
            .zip(x(j))
            .zip(&h.lengthscale)
            .map(|((a, b), l)| ((a - b) / l).powi(2))
            .sum()
    };
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] = h.outputscale * h.family.profile(r2(i, j));
        }
        k[i * n + i] += h.noise * train.d[i];
    }
    let (mll, g) = dense_mll(k, &train.y, "exact GP kernel matrix")?;
    let mut grad = vec![0.0; dim + 2];
    for i in 0..n {
        for j in 0..n {
            let w = g[i * n + j];
            let rr = r2(i, j);
            let kf = h.outputscale * h.family.profile(rr);
            grad[0] += 0.5 * w * kf;
            let dp = h.outputscale * h.family.profile_derivative(rr);
            for (kd, (a, b)) in x(i).iter().zip(x(j)).enumerate() {
                let s2 = ((a - b) / h.lengthscale[kd]).powi(2);
                grad[1 + kd] += 0.5 * w * dp * (-2.0 * s2);
            }
        }
        grad[dim + 1] += 0.5 * g[i * n + i] * h.noise * train.d[i];
    }
    Ok((mll, grad))
}

/// `log p(y)` of the dense `K` (its Cholesky factor named `what` in errors) and
/// `G = ααᵀ − K⁻¹` (`α = K⁻¹y`), with which `∂L/∂K = ½G`.
///
/// # Errors
/// [`Error::Core`] if `K` is not positive definite.
pub(crate) fn dense_mll(mut kmat: Vec<f64>, y: &[f64], what: &str) -> Result<(f64, Vec<f64>)> {
    let n = y.len();
    cholesky_in_place(&mut kmat, n).map_err(Error::core(what))?;
    let l = kmat;
    let mut alpha = y.to_vec();
    solve_lower_in_place(&l, n, &mut alpha).map_err(Error::core("kernel matrix solve"))?;
    let quad: f64 = alpha.iter().map(|v| v * v).sum();
    let logdet: f64 = (0..n).map(|i| 2.0 * l[i * n + i].ln()).sum();
    let mll = -0.5 * (quad + logdet + n as f64 * (2.0 * std::f64::consts::PI).ln());
    solve_lower_transpose_in_place(&l, n, &mut alpha)
        .map_err(Error::core("kernel matrix solve"))?;
    let mut g = vec![0.0; n * n];
    let mut col = vec![0.0; n];
    for c in 0..n {
        col.fill(0.0);
        col[c] = 1.0;
        solve_lower_in_place(&l, n, &mut col).map_err(Error::core("kernel matrix solve"))?;
        solve_lower_transpose_in_place(&l, n, &mut col)
            .map_err(Error::core("kernel matrix solve"))?;
        for r in 0..n {
            g[r * n + c] = alpha[r] * alpha[c] - col[r];
        }
    }
    Ok((mll, g))
}

/// A WISKI model holding the training statistics, for evaluating the log marginal likelihood
/// and its gradient at any hyperparameters from the caches alone (`O(m³)` each, independent
/// of n): `∂L/∂θ = ½ vᵀ∂K_UU v/σ⁴ − ½ tr(∂K_UU G)/σ²` for kernel parameters and
/// `−½[vᵀK′v/σ² − q/σ² − tr(K′G) + n]` for `log σ²`, with `a = Cb`, `v = b − Aa`,
/// `G = A − ACA`, `q = c_yy − bᵀa` — no inverse of `K_UU` anywhere.
pub(crate) fn ski_mll_grad_d<const D: usize>(
    gp: &mut Wiski<'_, f64, D>,
    h: &Hyper,
    scratch: &mut [f64],
) -> Result<(f64, Vec<f64>)> {
    if gp.kernel() != &h.kernel::<D>()? || gp.noise() != h.noise {
        gp.set_hyperparameters(h.kernel::<D>()?, h.noise, scratch)
            .map_err(Error::core("WISKI refactorisation"))?;
    }
    let grid = *gp.grid();
    let m = grid.len();
    let size = *grid.size();
    let (a_mat, b, c_yy, _, n) = gp.statistics();
    let a = gp.grid_mean();
    let s = gp.root();
    let v: Vec<f64> = (0..m)
        .map(|i| b[i] - (0..m).map(|j| a_mat[i * m + j] * a[j]).sum::<f64>())
        .collect();
    let q = c_yy - b.iter().zip(a).map(|(x, y)| x * y).sum::<f64>();
    // AS, then G = A − (AS)(AS)ᵀ.
    let mut as_ = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a_mat[i * m + k];
            if aik != 0.0 {
                for j in 0..m {
                    as_[i * m + j] += aik * s[k * m + j];
                }
            }
        }
    }
    // ACA = (AS)(AS)ᵀ by the engine's blocked gemm (the step's one O(m³) product).
    let aca = {
        let p = Tensor::from_vec(as_, &[m, m])?;
        p.matmul_t(&p, false, true)?.to_vec_f64()?
    };
    let sigma2 = h.noise;
    // Per-dimension factors and their log-lengthscale derivatives.
    let factors: Vec<(Vec<f64>, Vec<f64>)> = (0..D)
        .map(|k| {
            let g = size[k];
            let mut f = vec![0.0; g * g];
            let mut df = vec![0.0; g * g];
            for i in 0..g {
                for j in 0..g {
                    let r2 = ((grid.coordinate(k, i) - grid.coordinate(k, j)) / h.lengthscale[k])
                        .powi(2);
                    f[i * g + j] = h.family.profile(r2);
                    df[i * g + j] = h.family.profile_derivative(r2) * (-2.0 * r2);
                }
            }
            (f, df)
        })
        .collect();
    let mut grad = vec![0.0; D + 2];
    let mut tr_kg = 0.0;
    let mut vkv = 0.0;
    let mut digits_i = [0usize; D];
    let mut digits_j = [0usize; D];
    for i in 0..m {
        let mut r = i;
        for k in (0..D).rev() {
            digits_i[k] = r % size[k];
            r /= size[k];
        }
        for j in 0..m {
            let mut r = j;
            for k in (0..D).rev() {
                digits_j[k] = r % size[k];
                r /= size[k];
            }
            let g_ij = a_mat[i * m + j] - aca[i * m + j];
            let vv = v[i] * v[j];
            let mut kuu = h.outputscale;
            for k in 0..D {
                let gk = size[k];
                kuu *= factors[k].0[digits_i[k] * gk + digits_j[k]];
            }
            // ∂K_UU/∂log s = K_UU.
            grad[0] += 0.5 * vv * kuu / (sigma2 * sigma2) - 0.5 * kuu * g_ij / sigma2;
            for k in 0..D {
                let gk = size[k];
                let f = factors[k].0[digits_i[k] * gk + digits_j[k]];
                let df = factors[k].1[digits_i[k] * gk + digits_j[k]];
                let dk = if f != 0.0 {
                    kuu / f * df
                } else {
                    let mut p = h.outputscale * df;
                    for l in (0..D).filter(|&l| l != k) {
                        p *= factors[l].0[digits_i[l] * size[l] + digits_j[l]];
                    }
                    p
                };
                grad[1 + k] += 0.5 * vv * dk / (sigma2 * sigma2) - 0.5 * dk * g_ij / sigma2;
            }
            tr_kg += kuu / sigma2 * g_ij;
            vkv += vv * kuu / sigma2;
        }
    }
    grad[D + 1] = -0.5 * (vkv / sigma2 - q / sigma2 - tr_kg + n as f64);
    Ok((gp.log_marginal_likelihood(), grad))
}

/// SKI's log marginal likelihood and gradient (see [`fit`](fn@super::fit)) for one set of hyperparameters,
/// absorbing `train` first.
///
/// # Errors
/// As [`wiski`](super::wiski).
pub fn ski_mll_grad(hyper: &Hyper, grid: &GridSpec, train: &TrainData) -> Result<(f64, Vec<f64>)> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, ski_mll_grad_once_d(&hyper, &grid, train))
}

fn ski_mll_grad_once_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
) -> Result<(f64, Vec<f64>)> {
    let mut store = WiskiStore::new(grid.nodes());
    let (mut gp, scratch) = store.fed::<D>(
        grid,
        hyper,
        train,
        train.len(),
        Feed::Statistics,
        "training",
    )?;
    ski_mll_grad_d(&mut gp, hyper, scratch)
}
