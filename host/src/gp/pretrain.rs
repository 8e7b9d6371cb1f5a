//! Pretraining before a stream: the reference's batch fit on the first rows (Stanton et al.,
//! *Kernel Interpolation for Scalable Online Gaussian Processes*, AISTATS 2021; `fit` in
//! `online_gp/models/online_ski_regression.py`, wjmaddox/online_gp: Adam on the kernel
//! hyperparameters and the stem together, cosine-annealed to 10⁻⁴), with the log marginal
//! likelihood's gradient carried to the features and from there into the stem.
//!
//! The likelihood is dense over the pretraining rows (`O(n³)` per epoch): the exact GP's for the
//! exact and sparse models, SKI's `K = W K_UU Wᵀ + σ²I` for WISKI, whose features move through
//! the interpolation weights `W` (`∂L/∂W = G W K_UU` with `G = ααᵀ − K⁻¹`). Both use the RBF
//! kernel (the reference's for regression), for which SKI's `K_UU` is the kernel on the grid.

use keel_core::gp::Family;

use super::fit::ThetaAdam;
use super::hyper::{from_theta, to_theta, GridSpec, Hyper};
use super::mll::dense_mll;
use super::stem::LinearStem;
use super::weights::{grid_3d, weight_gradient};
use crate::error::{Error, Result};

/// Which likelihood pretraining climbs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Objective<'a> {
    /// The exact GP's.
    Exact,
    /// SKI's on this grid (as many dimensions as the features).
    Ski(&'a GridSpec),
}

/// `L`, `∂L/∂θ` (`θ = log(s, ℓ, σ²)`) and `∂L/∂z` (`[n, k]`) at features `z` (`[n, k]`), with
/// the noise `σ²·dᵢ` on row `i` (`d`: fixed per-row factors, all 1 when `None`).
///
/// # Errors
/// [`Error::Core`] if the kernel matrix is not positive definite or a feature is off the grid.
pub(crate) fn mll_gradients(
    h: &Hyper,
    objective: Objective<'_>,
    z: &[f64],
    y: &[f64],
    d: Option<&[f64]>,
) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    if h.family != Family::Rbf {
        return Err(Error::invalid(
            "kernel",
            format!("{:?}", h.family),
            "pretraining through features uses the RBF kernel",
        ));
    }
    let n = y.len();
    let k = h.lengthscale.len();
    let ones;
    let d = match d {
        Some(d) => d,
        None => {
            ones = vec![1.0; n];
            &ones
        }
    };
    match objective {
        Objective::Exact => exact(h, z, y, d, k),
        Objective::Ski(spec) => ski(h, spec, z, y, d, k),
    }
}

fn exact(
    h: &Hyper,
    z: &[f64],
    y: &[f64],
    d: &[f64],
    k: usize,
) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    let n = y.len();
    let zi = |i: usize| &z[i * k..(i + 1) * k];
    let r2 = |i: usize, j: usize| -> f64 {
        zi(i)
            .iter()
            .zip(zi(j))
            .zip(&h.lengthscale)
            .map(|((a, b), l)| ((a - b) / l).powi(2))
            .sum()
    };
    let mut kmat = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            kmat[i * n + j] = h.outputscale * h.family.profile(r2(i, j));
        }
        kmat[i * n + i] += h.noise * d[i];
    }
    let (mll, g) = dense_mll(kmat, y, "pretraining kernel matrix")?;
    let mut gt = vec![0.0; k + 2];
    let mut gz = vec![0.0; n * k];
    for i in 0..n {
        for j in 0..n {
            let gij = g[i * n + j];
            let rr = r2(i, j);
            gt[0] += 0.5 * gij * h.outputscale * h.family.profile(rr);
            let dp = h.outputscale * h.family.profile_derivative(rr);
            for c in 0..k {
                let delta = zi(i)[c] - zi(j)[c];
                let l2 = h.lengthscale[c] * h.lengthscale[c];
                gt[1 + c] += 0.5 * gij * dp * (-2.0 * delta * delta / l2);
                // ∂K_ij/∂z_ic = dp · 2Δ/ℓ²; K_ij and K_ji both move: Σ_j G_ij ∂K_ij/∂z_i.
                gz[i * k + c] += gij * dp * 2.0 * delta / l2;
            }
        }
        gt[k + 1] += 0.5 * g[i * n + i] * h.noise * d[i];
    }
    Ok((mll, gt, gz))
}

fn ski(
    h: &Hyper,
    spec: &GridSpec,
    z: &[f64],
    y: &[f64],
    d: &[f64],
    k: usize,
) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    let n = y.len();
    let grid3 = grid_3d(spec)?;
    let m = spec.nodes();
    // Node coordinates, K_UU and the per-dimension squared scaled distances.
    let node = |p: usize, d: usize| -> f64 {
        let mut rest = p;
        let mut idx = 0;
        for (dd, &g) in spec.size.iter().enumerate().rev() {
            if dd == d {
                idx = rest % g;
            }
            rest /= g;
        }
        grid3.coordinate(d, idx)
    };
    let coords: Vec<f64> = (0..m)
        .flat_map(|p| (0..k).map(move |d| (p, d)))
        .map(|(p, d)| node(p, d))
        .collect();
    let mut kuu = vec![0.0; m * m];
    for p in 0..m {
        for q in 0..m {
            let r2: f64 = (0..k)
                .map(|d| ((coords[p * k + d] - coords[q * k + d]) / h.lengthscale[d]).powi(2))
                .sum();
            kuu[p * m + q] = h.outputscale * h.family.profile(r2);
        }
    }
    let rows: Vec<_> = (0..n)
        .map(|i| weight_gradient(&grid3, spec.clamp, &z[i * k..(i + 1) * k]))
        .collect::<Result<_>>()?;
    // W K_UU (n × m), then K = W K_UU Wᵀ + σ²I.
    let mut wk = vec![0.0; n * m];
    for (i, r) in rows.iter().enumerate() {
        for e in 0..r.nnz {
            let (p, w) = (r.index[e], r.weight[e]);
            for (o, kv) in wk[i * m..(i + 1) * m]
                .iter_mut()
                .zip(&kuu[p * m..(p + 1) * m])
            {
                *o += w * kv;
            }
        }
    }
    let mut kmat = vec![0.0; n * n];
    for i in 0..n {
        for (j, r) in rows.iter().enumerate() {
            kmat[i * n + j] = (0..r.nnz)
                .map(|e| r.weight[e] * wk[i * m + r.index[e]])
                .sum();
        }
        kmat[i * n + i] += h.noise * d[i];
    }
    let (mll, g) = dense_mll(kmat, y, "pretraining kernel matrix")?;
    // GW (n × m) and H = WᵀGW (m × m).
    let mut gw = vec![0.0; n * m];
    for i in 0..n {
        for (j, r) in rows.iter().enumerate() {
            let gij = g[i * n + j];
            for e in 0..r.nnz {
                gw[i * m + r.index[e]] += gij * r.weight[e];
            }
        }
    }
    let mut hmat = vec![0.0; m * m];
    for (i, r) in rows.iter().enumerate() {
        for e in 0..r.nnz {
            let (p, w) = (r.index[e], r.weight[e]);
            for (o, v) in hmat[p * m..(p + 1) * m]
                .iter_mut()
                .zip(&gw[i * m..(i + 1) * m])
            {
                *o += w * v;
            }
        }
    }
    let mut gt = vec![0.0; k + 2];
    for p in 0..m {
        for q in 0..m {
            let hk = 0.5 * hmat[p * m + q] * kuu[p * m + q];
            gt[0] += hk;
            for c in 0..k {
                let s2 = ((coords[p * k + c] - coords[q * k + c]) / h.lengthscale[c]).powi(2);
                // RBF: ∂K_UU/∂log ℓ_c = K_UU · s2.
                gt[1 + c] += hk * s2;
            }
        }
    }
    gt[k + 1] = 0.5 * (0..n).map(|i| g[i * n + i] * d[i]).sum::<f64>() * h.noise;
    // ∂L/∂W_ip = (G W K_UU)_ip on each row's support, then through ∂w/∂z.
    let mut gz = vec![0.0; n * k];
    for (i, r) in rows.iter().enumerate() {
        for e in 0..r.nnz {
            let p = r.index[e];
            let dw: f64 = gw[i * m..(i + 1) * m]
                .iter()
                .zip(&kuu[p * m..(p + 1) * m])
                .map(|(a, b)| a * b)
                .sum();
            for c in 0..k {
                gz[i * k + c] += dw * r.grad[e][c];
            }
        }
    }
    Ok((mll, gt, gz))
}

/// The pretraining schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct PretrainConfig {
    /// Full-batch epochs (the reference: 200).
    pub epochs: usize,
    /// Learning rate of the kernel hyperparameters (the reference: 0.05 in its paper-era
    /// configurations).
    pub lr: f64,
    /// Learning rate of the stem (the reference: a tenth of `lr`).
    pub stem_lr: f64,
}

/// Cosine annealing from `lr` to 10⁻⁴ over `epochs` (PyTorch's `CosineAnnealingLR`).
fn cosine(lr: f64, epoch: usize, epochs: usize) -> f64 {
    let floor = 1e-4f64.min(lr);
    floor + 0.5 * (lr - floor) * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos())
}

/// Climbs `L/n` of the rows `x` (raw inputs when there is a stem, features otherwise) over the
/// hyperparameters and the stem's weights; returns the hyperparameters and `L` at the end.
///
/// # Errors
/// As [`mll_gradients`].
pub(crate) fn pretrain(
    hyper: &Hyper,
    objective: Objective<'_>,
    stem: Option<&mut LinearStem>,
    x: &[f64],
    y: &[f64],
    config: &PretrainConfig,
) -> Result<(Hyper, f64)> {
    let task = Task {
        hyper: hyper.clone(),
        y,
        d: None,
    };
    let (mut h, l) = pretrain_tasks(vec![task], objective, stem, x, config, true)?;
    Ok((h.remove(0), l))
}

/// One GP of [`pretrain_tasks`]: its starting hyperparameters, targets and fixed per-row noise
/// factors.
pub(crate) struct Task<'a> {
    /// Starting hyperparameters.
    pub(crate) hyper: Hyper,
    /// Targets.
    pub(crate) y: &'a [f64],
    /// Per-row noise factors (`σ²·dᵢ`), all 1 when `None`.
    pub(crate) d: Option<&'a [f64]>,
}

/// [`pretrain`] for several GPs on the same features — one per class of a Dirichlet classifier,
/// each with its own hyperparameters — climbing `Σ_t L_t / n`; the stem takes the sum of their
/// gradients. With `learn_noise` false, `σ²` stays where it starts (the Dirichlet classifier's
/// noise is the fixed `d`). Returns each task's hyperparameters and `Σ_t L_t` at the end.
///
/// # Errors
/// As [`mll_gradients`].
pub(crate) fn pretrain_tasks(
    tasks: Vec<Task<'_>>,
    objective: Objective<'_>,
    mut stem: Option<&mut LinearStem>,
    x: &[f64],
    config: &PretrainConfig,
    learn_noise: bool,
) -> Result<(Vec<Hyper>, f64)> {
    let mut hypers: Vec<Hyper> = tasks.iter().map(|t| t.hyper.clone()).collect();
    let n = tasks.first().map_or(0, |t| t.y.len());
    if n == 0 || config.epochs == 0 {
        return Ok((hypers, f64::NAN));
    }
    let mut theta_opts = hypers
        .iter()
        .map(|h| ThetaAdam::new(to_theta(h)))
        .collect::<Result<Vec<_>>>()?;
    let mut stem_opt = match &stem {
        Some(s) => Some(ThetaAdam::unclamped(s.weight().to_vec())?),
        None => None,
    };
    let scale = 1.0 / n as f64;
    let mut last = f64::NAN;
    for epoch in 0..config.epochs {
        let z = match &stem {
            Some(s) => s.features_of(x),
            None => x.to_vec(),
        };
        let mut total = 0.0;
        let mut gz_sum = vec![0.0; z.len()];
        for ((task, h), opt) in tasks.iter().zip(hypers.iter_mut()).zip(&mut theta_opts) {
            let (l, mut gt, gz) = mll_gradients(h, objective, &z, task.y, task.d)?;
            total += l;
            for (a, b) in gz_sum.iter_mut().zip(&gz) {
                *a += b;
            }
            if !learn_noise {
                if let Some(g) = gt.last_mut() {
                    *g = 0.0;
                }
            }
            let theta = opt.ascend(&gt, cosine(config.lr, epoch, config.epochs), scale)?;
            *h = from_theta(h.family, &theta);
        }
        last = total;
        if let (Some(s), Some(opt)) = (stem.as_deref_mut(), stem_opt.as_mut()) {
            let mut gw = vec![0.0; s.weight().len()];
            s.backward(x, &gz_sum, &mut gw);
            let w = opt.ascend(&gw, cosine(config.stem_lr, epoch, config.epochs), scale)?;
            s.set_weight(&w);
        }
    }
    Ok((hypers, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::gp::Convention;

    fn data(n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
        let z: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.731).sin() * 0.9).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (z[i * k] * 3.0).sin() + 0.1 * (i as f64).cos())
            .collect();
        (z, y)
    }

    fn hyper(k: usize) -> Hyper {
        Hyper {
            family: Family::Rbf,
            outputscale: 1.3,
            lengthscale: (0..k).map(|d| 0.4 + 0.2 * d as f64).collect(),
            noise: 0.05,
        }
    }

    /// Central differences of L in θ and in every feature, for both objectives, with and without
    /// per-row noise factors.
    #[test]
    fn gradients_match_central_differences() {
        let spec = GridSpec {
            size: vec![10, 9],
            lo: vec![-1.1],
            hi: vec![1.1],
            convention: Convention::Extended,
            clamp: false,
        }
        .for_dim(2)
        .unwrap();
        let factors: Vec<f64> = (0..12).map(|i| 0.5 + 0.3 * (i % 4) as f64).collect();
        for (objective, d) in [
            (Objective::Exact, None),
            (Objective::Ski(&spec), None),
            (Objective::Exact, Some(&factors[..])),
            (Objective::Ski(&spec), Some(&factors[..])),
        ] {
            let (z, y) = data(12, 2);
            let h = hyper(2);
            let (_, gt, gz) = mll_gradients(&h, objective, &z, &y, d).unwrap();
            let eps = 1e-6;
            let theta = to_theta(&h);
            for i in 0..theta.len() {
                let mut t = theta.clone();
                t[i] += eps;
                let up = mll_gradients(&from_theta(Family::Rbf, &t), objective, &z, &y, d)
                    .unwrap()
                    .0;
                t[i] -= 2.0 * eps;
                let down = mll_gradients(&from_theta(Family::Rbf, &t), objective, &z, &y, d)
                    .unwrap()
                    .0;
                let fd = (up - down) / (2.0 * eps);
                assert!(
                    (fd - gt[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{objective:?} θ{i}: {} vs {fd}",
                    gt[i]
                );
            }
            for i in 0..z.len() {
                let mut zz = z.clone();
                zz[i] += eps;
                let up = mll_gradients(&h, objective, &zz, &y, d).unwrap().0;
                zz[i] -= 2.0 * eps;
                let down = mll_gradients(&h, objective, &zz, &y, d).unwrap().0;
                let fd = (up - down) / (2.0 * eps);
                assert!(
                    (fd - gz[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                    "{objective:?} z{i}: {} vs {fd}",
                    gz[i]
                );
            }
        }
    }
}
