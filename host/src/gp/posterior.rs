//! The posterior at test inputs from training data: the exact GP and WISKI through the core's
//! online models (WISKI as in Stanton et al., *Kernel Interpolation for Scalable Online Gaussian
//! Processes*, AISTATS 2021: each training row one constant-time update), and the dense SKI
//! posterior from explicit `W` and `K_UU` as the host's reference, which
//! `fixtures/gen/gp.py` reproduces with numpy.

use keel_core::gp::{ExactGp, MAX_NONZEROS};
use keel_core::linalg::{cholesky_in_place, solve_lower_in_place};
use serde::Serialize;

use super::dim::row;
use super::hyper::{GridSpec, Hyper};
use super::store::{ExactStore, Feed, WiskiStore};
use crate::error::{Error, Result};

/// Training data: row-major inputs `[n, dim]`, targets, per-point noise factors.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainData {
    /// Input dimension.
    pub dim: usize,
    /// Inputs, row-major.
    pub x: Vec<f64>,
    /// Targets.
    pub y: Vec<f64>,
    /// Noise factors `d_i` (noise variance σ² d_i).
    pub d: Vec<f64>,
}

impl TrainData {
    /// Rows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A posterior at test inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Posterior {
    /// Predictive mean.
    pub mean: Vec<f64>,
    /// Variance of f.
    pub var_f: Vec<f64>,
    /// Variance of a new observation (var_f + σ²).
    pub var_y: Vec<f64>,
    /// log p(y) of the training data.
    pub log_marginal_likelihood: f64,
}

/// Exact GP posterior through the core's online GP (points added one at a time).
///
/// # Errors
/// [`Error::InvalidInput`] for bad hyperparameters or dimensions; [`Error::Core`] if the kernel
/// matrix is not positive definite (with the failing row).
pub fn exact(hyper: &Hyper, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    by_dim!(train.dim, 8, exact_d(&hyper, train, test))
}

fn exact_d<const D: usize>(hyper: &Hyper, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let n = train.len();
    let mut store = ExactStore::new(n, D);
    let mut gp = ExactGp::new(hyper.kernel::<D>()?, hyper.noise, store.buffers())
        .map_err(Error::core("exact GP"))?;
    for i in 0..n {
        gp.push_with_noise(row::<D>(&train.x, i), train.y[i], train.d[i])
            .map_err(|r| Error::Core {
                context: format!("training row {}", i + 1),
                source: r.error,
            })?;
    }
    let lml = gp.log_marginal_likelihood();
    predict_rows::<D>(test, lml, |x| gp.predict(x))
}

/// WISKI posterior: the training rows streamed one at a time through the core's constant-time
/// update.
///
/// # Errors
/// As [`exact`], plus [`Error::Core`] with `OutOfGrid` naming the row for inputs off the grid.
pub fn wiski(hyper: &Hyper, grid: &GridSpec, train: &TrainData, test: &[f64]) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, wiski_d(&hyper, &grid, train, test))
}

fn wiski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let mut store = WiskiStore::new(grid.nodes());
    let (gp, _) = store.fed::<D>(grid, hyper, train, train.len(), Feed::Observe, "training")?;
    predict_rows::<D>(test, gp.log_marginal_likelihood(), |x| gp.predict(x))
}

/// The posterior at every test row (`D` numbers each) by `predict`, with the training data's
/// log marginal likelihood `lml`.
fn predict_rows<const D: usize>(
    test: &[f64],
    lml: f64,
    mut predict: impl FnMut(&[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>>,
) -> Result<Posterior> {
    let mut post = Posterior {
        mean: vec![],
        var_f: vec![],
        var_y: vec![],
        log_marginal_likelihood: lml,
    };
    for i in 0..test.len() / D {
        let p = predict(&row::<D>(test, i)).map_err(|source| Error::Core {
            context: format!("test row {}", i + 1),
            source,
        })?;
        post.mean.push(p.mean);
        post.var_f.push(p.var_f);
        post.var_y.push(p.var_y);
    }
    Ok(post)
}

/// Dense SKI posterior (the host's reference): explicit sparse `W`, dense `K_UU`, and a Cholesky
/// of `W K_UU Wᵀ + σ²D` (`O(n³)`; meant for checking, not for large n).
///
/// # Errors
/// As [`wiski`]; [`Error::Core`] with `NotPositiveDefinite` if the n×n system is not.
pub fn ski_dense(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let hyper = hyper.for_dim(train.dim)?;
    let grid = grid.for_dim(train.dim)?;
    by_dim!(train.dim, 3, ski_dense_d(&hyper, &grid, train, test))
}

type SparseRow = Vec<(usize, f64)>;

fn ski_dense_d<const D: usize>(
    hyper: &Hyper,
    spec: &GridSpec,
    train: &TrainData,
    test: &[f64],
) -> Result<Posterior> {
    let grid = spec.grid::<D>()?;
    let kernel = hyper.kernel::<D>()?;
    let m = grid.len();
    let size = *grid.size();
    let mut kuu = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            let (mut ri, mut rj, mut v) = (i, j, kernel.outputscale());
            for k in (0..D).rev() {
                let g = size[k];
                v *= kernel.factor(k, grid.coordinate(k, ri % g) - grid.coordinate(k, rj % g));
                ri /= g;
                rj /= g;
            }
            kuu[i * m + j] = v;
        }
    }
    let sparse = |x: &[f64; D], what: &str, i: usize| -> Result<SparseRow> {
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [0.0; MAX_NONZEROS];
        let nnz = grid
            .weights(x, &mut idx, &mut w)
            .map_err(|source| Error::Core {
                context: format!("{what} row {}", i + 1),
                source,
            })?;
        Ok(idx[..nnz]
            .iter()
            .copied()
            .zip(w[..nnz].iter().copied())
            .collect())
    };
    // K_UU w for a sparse w.
    let kw = |w: &SparseRow| -> Vec<f64> {
        let mut out = vec![0.0; m];
        for &(j, wj) in w {
            for (o, k) in out.iter_mut().zip(&kuu[j * m..(j + 1) * m]) {
                *o += wj * k;
            }
        }
        out
    };
    let n = train.len();
    let rows: Vec<SparseRow> = (0..n)
        .map(|i| sparse(&row::<D>(&train.x, i), "training", i))
        .collect::<Result<_>>()?;
    let kwt: Vec<Vec<f64>> = rows.iter().map(kw).collect();
    let mut kxx = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v: f64 = rows[i].iter().map(|&(a, wa)| wa * kwt[j][a]).sum();
            kxx[i * n + j] = v;
            kxx[j * n + i] = v;
        }
        kxx[i * n + i] += hyper.noise * train.d[i];
    }
    cholesky_in_place(&mut kxx, n).map_err(Error::core("dense SKI system W K Wᵀ + σ²D"))?;
    let mut z = train.y.clone();
    solve_lower_in_place(&kxx, n, &mut z).map_err(Error::core("dense SKI solve"))?;
    let logdet: f64 = (0..n).map(|i| 2.0 * kxx[i * n + i].ln()).sum();
    let lml = -0.5
        * (z.iter().map(|v| v * v).sum::<f64>()
            + logdet
            + n as f64 * (2.0 * std::f64::consts::PI).ln());
    let mut post = Posterior {
        mean: vec![],
        var_f: vec![],
        var_y: vec![],
        log_marginal_likelihood: lml,
    };
    for t in 0..test.len() / D {
        let ws = sparse(&row::<D>(test, t), "test", t)?;
        let kws = kw(&ws);
        let prior: f64 = ws.iter().map(|&(a, wa)| wa * kws[a]).sum();
        let mut c: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().map(|&(a, wa)| wa * kws[a]).sum())
            .collect();
        solve_lower_in_place(&kxx, n, &mut c).map_err(Error::core("dense SKI solve"))?;
        let var_f = (prior - c.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        post.mean.push(c.iter().zip(&z).map(|(a, b)| a * b).sum());
        post.var_f.push(var_f);
        post.var_y.push(var_f + hyper.noise);
    }
    Ok(post)
}
