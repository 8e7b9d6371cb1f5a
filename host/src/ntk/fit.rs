//! The training routine of the reference's experiments (`finite_ntk/utils` `train_fullds`):
//! SGD with momentum over shuffled minibatches, the learning rate ×0.1 every `step_every`
//! epochs, on the mean squared error or a heteroscedastic Gaussian likelihood — optionally
//! updating only some of the parameters (the last-layer baseline).

use keel_core::random::Xoshiro256PlusPlus;
use keel_engine::autodiff::{backward, no_grad};
use keel_engine::nn::Mlp;
use keel_engine::optim::{Optimizer, OptimizerKind, Schedule};
use keel_engine::params::{ParamId, Params};
use keel_engine::{DType, Tensor};

use crate::error::Result;
use crate::progress::{Observer, Tick};

/// The training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error of a one-output network.
    Mse,
    /// Mean Gaussian negative log-likelihood of a `[mean, raw scale]` head, with
    /// `σ = softplus(raw) + 1e-5` (the reference's malaria network).
    HeteroscedasticNll,
}

/// SGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Epochs.
    pub epochs: usize,
    /// Minibatches per epoch.
    pub minibatches: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Momentum (0: plain SGD).
    pub momentum: f64,
    /// Epochs between decays by 0.1.
    pub step_every: usize,
    /// The loss.
    pub loss: Loss,
}

/// `rows × d` values as an f64 tensor.
///
/// # Errors
/// Engine errors.
pub fn matrix(x: &[f64], d: usize) -> Result<Tensor> {
    Ok(Tensor::from_f64s(x, &[x.len() / d, d], DType::F64)?)
}

/// The loss of `out` against `y` (one target per row).
fn loss(out: &Tensor, y: &Tensor, kind: Loss) -> Result<Tensor> {
    Ok(match kind {
        Loss::Mse => out.mse(y)?,
        Loss::HeteroscedasticNll => {
            let mean = out.narrow(1, 0, 1)?;
            let sd = out.narrow(1, 1, 1)?.softplus()?.add_scalar(1e-5)?;
            mean.gaussian_nll(&sd.square()?, y)?
        }
    })
}

/// Trains the parameters of `net` listed in `trainable` (indices into `params`) on the rows of
/// `x` (`d` columns) and targets `y`; returns the final loss on all rows.
///
/// # Errors
/// [`crate::error::Error::Failed`] if the loss becomes non-finite; engine errors.
#[allow(clippy::too_many_arguments)]
pub fn train(
    net: &Mlp,
    params: &mut Params,
    trainable: &[usize],
    x: &[f64],
    d: usize,
    y: &[f64],
    sgd: &Sgd,
    rng: &mut Xoshiro256PlusPlus,
    progress: &mut Observer,
    stage: &'static str,
) -> Result<f64> {
    let mut sub = Params::new();
    for &i in trainable {
        sub.insert(params.names()[i].clone(), params.values()[i].clone())?;
    }
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: sgd.momentum,
            nesterov: false,
            weight_decay: 0.0,
        },
        &sub,
    )?;
    let schedule = Schedule::Step {
        step_size: sgd.step_every,
        gamma: 0.1,
    };
    let n = y.len();
    let mut order: Vec<usize> = (0..n).collect();
    let per = n.div_ceil(sgd.minibatches.clamp(1, n.max(1)));
    let report_every = (sgd.epochs / 100).max(1);
    for epoch in 0..sgd.epochs {
        crate::data::shuffle(&mut order, rng);
        let lr = schedule.lr(sgd.lr, epoch);
        for batch in order.chunks(per) {
            let xb: Vec<f64> = batch
                .iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                .collect();
            let yb: Vec<f64> = batch.iter().map(|&i| y[i]).collect();
            let vars = sub.variables();
            let mut full = params.clone();
            for (k, &i) in trainable.iter().enumerate() {
                full.set(ParamId(i), vars.values()[k].clone())?;
            }
            let l = loss(
                &net.forward(&full, &matrix(&xb, d)?)?,
                &matrix(&yb, 1)?,
                sgd.loss,
            )?;
            let value = l.item()?;
            if !value.is_finite() {
                return Err(crate::train::diverged(value, epoch, sgd.lr, ""));
            }
            let refs: Vec<&Tensor> = vars.values().iter().collect();
            let grads = no_grad(|| backward(&l, &refs))?;
            no_grad(|| opt.step(&mut sub, &grads, lr))?;
        }
        if (epoch + 1) % report_every == 0 || epoch + 1 == sgd.epochs {
            progress(&Tick {
                done: epoch + 1,
                total: sgd.epochs,
                values: &[(stage, 0.0)],
            });
        }
    }
    for (k, &i) in trainable.iter().enumerate() {
        params.set(ParamId(i), sub.values()[k].clone())?;
    }
    let xt = matrix(x, d)?;
    let yt = matrix(y, 1)?;
    let out = no_grad(|| net.forward(params, &xt))?;
    no_grad(|| loss(&out, &yt, sgd.loss))?
        .item()
        .map_err(Into::into)
}

/// The network's first output on the rows of `x` (`d` columns).
///
/// # Errors
/// Engine errors.
pub fn first_output(net: &Mlp, params: &Params, x: &[f64], d: usize) -> Result<Vec<f64>> {
    let xt = matrix(x, d)?;
    let out = no_grad(|| net.forward(params, &xt))?;
    Ok(out.narrow(1, 0, 1)?.to_vec_f64()?)
}
