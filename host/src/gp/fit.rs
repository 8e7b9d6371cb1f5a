//! Fitting the hyperparameters: Adam ascent on the log marginal likelihood over
//! `θ = log(s, ℓ, σ²)`, the best `θ` seen kept — the batch fit that
//! Stanton et al., *Kernel Interpolation for Scalable Online Gaussian Processes* (AISTATS 2021),
//! run before streaming (the reference code's `OnlineSKIRegression.fit` in
//! `online_gp/models/online_ski_regression.py`, wjmaddox/online_gp).

use std::time::Instant;

use serde::Serialize;

use super::hyper::{from_theta, to_theta, GridSpec, Hyper};
use super::mll::{exact_mll_grad, ski_mll_grad_d};
use super::posterior::TrainData;
use super::store::{Feed, WiskiStore};
use crate::error::{Error, Result};

/// What `--fit` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitReport {
    /// Log marginal likelihood at the starting hyperparameters.
    pub log_marginal_likelihood_start: f64,
    /// … and at the fitted ones.
    pub log_marginal_likelihood_end: f64,
    /// Adam steps taken.
    pub iterations: usize,
    /// Fitted outputscale.
    pub outputscale: f64,
    /// Fitted lengthscales.
    pub lengthscale: Vec<f64>,
    /// Fitted noise variance.
    pub noise: f64,
    /// Seconds.
    pub seconds: f64,
}

/// Maximises the log marginal likelihood over `θ = log(s, ℓ, σ²)` with Adam (`lr` per step,
/// `iterations` steps, gradient of `L/n`): the exact GP's dense likelihood, or SKI's from the
/// cached statistics (`ski = true`; the training data are absorbed once, each step costs
/// `O(m³)`). The best hyperparameters seen are returned.
///
/// # Errors
/// As [`exact_mll_grad`](super::exact_mll_grad) / [`wiski`](super::wiski); [`Error::InvalidInput`] for `lr ≤ 0`.
pub fn fit(
    hyper: &Hyper,
    grid: Option<&GridSpec>,
    train: &TrainData,
    iterations: usize,
    lr: f64,
) -> Result<(Hyper, FitReport)> {
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(Error::invalid("fit_lr", lr, "must be positive"));
    }
    let hyper = hyper.for_dim(train.dim)?;
    let start = Instant::now();
    let (best, l0, l1) = match grid {
        None => adam(&hyper, iterations, lr, train.len(), |h| {
            exact_mll_grad(h, train)
        })?,
        Some(g) => {
            let g = g.for_dim(train.dim)?;
            by_dim!(train.dim, 3, fit_ski_d(&hyper, &g, train, iterations, lr))?
        }
    };
    let report = FitReport {
        log_marginal_likelihood_start: l0,
        log_marginal_likelihood_end: l1,
        iterations,
        outputscale: best.outputscale,
        lengthscale: best.lengthscale.clone(),
        noise: best.noise,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((best, report))
}

fn fit_ski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    train: &TrainData,
    iterations: usize,
    lr: f64,
) -> Result<(Hyper, f64, f64)> {
    let mut store = WiskiStore::new(grid.nodes());
    let (mut gp, scratch) = store.fed::<D>(
        grid,
        hyper,
        train,
        train.len(),
        Feed::Statistics,
        "training",
    )?;
    adam(hyper, iterations, lr, train.len(), |h| {
        ski_mll_grad_d(&mut gp, h, scratch)
    })
}

/// Adam's moment estimates for gradient *ascent* on log-hyperparameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdamState {
    m1: Vec<f64>,
    m2: Vec<f64>,
    t: i32,
}

impl AdamState {
    /// One step: `θ ← θ + lr·m̂/(√v̂ + ε)` on the gradient `g·scale`, log-parameters kept within
    /// e^±12.
    pub(crate) fn step(&mut self, theta: &mut [f64], g: &[f64], lr: f64, scale: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        if self.m1.len() != theta.len() {
            self.m1 = vec![0.0; theta.len()];
            self.m2 = vec![0.0; theta.len()];
            self.t = 0;
        }
        self.t += 1;
        for i in 0..theta.len() {
            let gi = g[i] * scale;
            self.m1[i] = b1 * self.m1[i] + (1.0 - b1) * gi;
            self.m2[i] = b2 * self.m2[i] + (1.0 - b2) * gi * gi;
            let mh = self.m1[i] / (1.0 - b1.powi(self.t));
            let vh = self.m2[i] / (1.0 - b2.powi(self.t));
            theta[i] = (theta[i] + lr * mh / (vh.sqrt() + eps)).clamp(-12.0, 12.0);
        }
    }
}

/// Adam ascent on `L(θ)/n`; returns the best hyperparameters seen, and L at the start and there.
pub(crate) fn adam(
    hyper: &Hyper,
    iterations: usize,
    lr: f64,
    n: usize,
    mut eval: impl FnMut(&Hyper) -> Result<(f64, Vec<f64>)>,
) -> Result<(Hyper, f64, f64)> {
    let mut theta = to_theta(hyper);
    let mut state = AdamState::default();
    let scale = 1.0 / n.max(1) as f64;
    let (l0, mut g) = eval(hyper)?;
    let (mut best, mut best_l) = (hyper.clone(), l0);
    for _ in 0..iterations {
        state.step(&mut theta, &g, lr, scale);
        let h = from_theta(hyper.family, &theta);
        let (l, gn) = eval(&h)?;
        if l.is_finite() && l > best_l {
            best = h;
            best_l = l;
        }
        g = gn;
    }
    Ok((best, l0, best_l))
}
