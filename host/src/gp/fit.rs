//! Fitting the hyperparameters: Adam ascent on the log marginal likelihood over
//! `θ = log(s, ℓ, σ²)` with the engine's optimizer, the best `θ` seen kept — the batch fit that
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
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

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

/// Adam *ascent* on `θ = log(s, ℓ, σ²)` with the engine's optimizer: `θ` is one `f64` tensor in
/// a [`Params`], each step descends on `−g·scale`, and the log-parameters are kept within e^±12.
///
/// The rule is [`OptimizerKind::AdamAlgorithm1`] (Adam as Kingma & Ba write it, β = (0.9,
/// 0.999), ε = 1e-8): the arithmetic gp's fits have always used. The PyTorch-style
/// [`OptimizerKind::Adam`] folds the bias corrections differently and moves fitted values by
/// about 1e-12 relative.
pub(crate) struct ThetaAdam {
    params: Params,
    opt: Optimizer,
    clamp: bool,
}

impl ThetaAdam {
    /// A fresh optimizer starting at `theta`.
    pub(crate) fn new(theta: Vec<f64>) -> Result<ThetaAdam> {
        let n = theta.len();
        let mut params = Params::new();
        params.insert("theta", Tensor::from_vec(theta, &[n])?)?;
        let opt = Optimizer::new(OptimizerKind::adam_algorithm1(), &params)?;
        Ok(ThetaAdam {
            params,
            opt,
            clamp: true,
        })
    }

    /// The same ascent on parameters that are not logarithms (no e^±12 clamp): a stem's
    /// weights, a variational distribution.
    pub(crate) fn unclamped(start: Vec<f64>) -> Result<ThetaAdam> {
        Ok(ThetaAdam {
            clamp: false,
            ..ThetaAdam::new(start)?
        })
    }

    /// One step up the gradient `g·scale` with learning rate `lr`; returns the new `θ`.
    pub(crate) fn ascend(&mut self, g: &[f64], lr: f64, scale: f64) -> Result<Vec<f64>> {
        let n = g.len();
        let descent: Vec<f64> = g.iter().map(|gi| -(gi * scale)).collect();
        self.opt
            .step(&mut self.params, &[Tensor::from_vec(descent, &[n])?], lr)?;
        let theta: Vec<f64> = self.params.get(ParamId(0)).to_vec_f64()?;
        if !self.clamp {
            return Ok(theta);
        }
        let theta: Vec<f64> = theta.into_iter().map(|t| t.clamp(-12.0, 12.0)).collect();
        self.params
            .set(ParamId(0), Tensor::from_vec(theta.clone(), &[n])?)?;
        Ok(theta)
    }
}

/// Adam ascent ([`ThetaAdam`]) on `L(θ)/n`; returns the best hyperparameters seen, and L at the
/// start and there.
pub(crate) fn adam(
    hyper: &Hyper,
    iterations: usize,
    lr: f64,
    n: usize,
    mut eval: impl FnMut(&Hyper) -> Result<(f64, Vec<f64>)>,
) -> Result<(Hyper, f64, f64)> {
    let mut opt = ThetaAdam::new(to_theta(hyper))?;
    let scale = 1.0 / n.max(1) as f64;
    let (l0, mut g) = eval(hyper)?;
    let (mut best, mut best_l) = (hyper.clone(), l0);
    for _ in 0..iterations {
        let theta = opt.ascend(&g, lr, scale)?;
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

#[cfg(test)]
mod tests {
    use super::ThetaAdam;

    /// The Adam ascent gp carried privately before it used the engine's optimizer, verbatim.
    fn former_adam_step(
        state: &mut (Vec<f64>, Vec<f64>, i32),
        theta: &mut [f64],
        g: &[f64],
        lr: f64,
        scale: f64,
    ) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (m1, m2, t) = state;
        *t += 1;
        for i in 0..theta.len() {
            let gi = g[i] * scale;
            m1[i] = b1 * m1[i] + (1.0 - b1) * gi;
            m2[i] = b2 * m2[i] + (1.0 - b2) * gi * gi;
            let mh = m1[i] / (1.0 - b1.powi(*t));
            let vh = m2[i] / (1.0 - b2.powi(*t));
            theta[i] = (theta[i] + lr * mh / (vh.sqrt() + eps)).clamp(-12.0, 12.0);
        }
    }

    #[test]
    fn theta_adam_takes_the_former_private_steps_bit_for_bit() {
        // Gradients that change sign, one that drives θ into the e^±12 clamp, and the 1/n scale.
        for (lr, scale) in [(0.05, 1.0 / 500.0), (0.005, 1.0 / 20_000.0), (2.0, 1.0)] {
            let start = vec![0.3f64.ln(), 0.7f64.ln(), -1.2, 0.04f64.ln()];
            let mut theta = start.clone();
            let mut state = (vec![0.0; 4], vec![0.0; 4], 0);
            let mut adam = ThetaAdam::new(start).unwrap();
            for t in 0..400 {
                let g: Vec<f64> = (0..4)
                    .map(|i| {
                        if i == 2 {
                            50.0
                        } else {
                            (0.37 * t as f64 + i as f64).sin() * 40.0 - theta[i]
                        }
                    })
                    .collect();
                former_adam_step(&mut state, &mut theta, &g, lr, scale);
                assert_eq!(
                    adam.ascend(&g, lr, scale).unwrap(),
                    theta,
                    "lr {lr}, step {t}"
                );
            }
            if lr == 2.0 {
                assert_eq!(theta[2], 12.0, "the clamp was exercised");
            }
        }
    }
}
