//! Linearized classifiers: a CNN trained on one image domain adapts to a shifted domain from a
//! few labelled images by fitting its linearization (Maddox, Tang, Moreno, Wilson & Damianou,
//! "Fast Adaptation with Linearized Neural Networks", AISTATS 2021, the image experiments;
//! reference `experiments/cifar/train_linearized_classifier.py` and `losses.py`).
//!
//! The logits of the linearized network are `g(x; θ) = f(x; θ̂) + J(x)(θ − θ̂)` with the
//! reference's `--bias`, or `J(x) θ` without it (the reference's default), where `θ̂` are the
//! trained weights and `J(x)` the Jacobian of all the logits with respect to every parameter
//! (batch norm in evaluation mode). `g` is linear in `θ`, so fitting it is a convex problem in
//! `P` unknowns whose features are the Jacobian rows; every step costs one forward-mode and one
//! reverse-mode pass over the minibatch, and no Jacobian is formed. `θ` starts at `θ̂ + 10⁻⁶`
//! as in the reference. Inference, each as the reference does it unless said otherwise:
//!
//! - **MAP**: Adam with AMSGrad (batches of 128) on
//!   `N·mean CE + wd·‖θ‖₂` (the unsquared norm, wd = 10⁻⁴). The reference multiplies the
//!   minibatch's *summed* cross-entropy by `N`, a factor of the batch size larger; Adam is
//!   invariant to the overall scale, so only the penalty's relative weight differs, and it is
//!   negligible either way. The reference's lr 0.1 and 10 epochs are for CIFAR-10's 391
//!   minibatches per epoch (3,910 steps); a few hundred adaptation images make 2–4 minibatches,
//!   so Keel's defaults are lr 0.01 and 100 epochs (see benches/RESULTS.md for both).
//! - **Laplace**: the MAP, then a Gaussian whose precision is the generalized Gauss–Newton
//!   matrix plus the prior precision (1: the reference's jitter), approximated by 30 Lanczos
//!   steps of which the top half of the Ritz pairs are kept: samples `θ_MAP + Σⱼ zⱼ λⱼ^{-1/2} uⱼ`.
//!   The reference takes the finite-difference Fisher of the network at `θ̂` on each *test*
//!   batch and draws one sample per batch; Keel takes the exact GGN of the linearized model at
//!   the MAP on the adaptation images (for a linear model the GGN is the cross-entropy's
//!   Hessian, so this is the Laplace approximation proper) and averages the softmax over
//!   `samples` draws. Keeping only the top Ritz pairs leaves out the prior's variance in every
//!   other direction, as the reference does.
//! - **VI**: mean-field Gaussian `q = N(μ, softplus(ρ)²)`, `ρ` from −5, prior
//!   `N(0, (1/wd)²I)` on `θ`, one reparameterised draw per step, the objective
//!   `N·mean CE + KL(q‖p)` (the ELBO; the reference's weighs the KL `b` times less). The
//!   predictive averages the softmax over `samples` draws of `q`; the reference evaluates at
//!   the mean `μ` (reported here too, as `vi-mean`).
//! - **Last layer**: the reference's baseline, the output layer alone retrained on the
//!   adaptation images (the network is linear in it, so this is the linearized MAP restricted
//!   to the output layer's weights and bias, with `f(x; θ̂)` as the offset).
//!
//! The shifted domains are pixel permutations of the images, so nothing is interpolated:
//! `rotate90` (a quarter turn anticlockwise, e.g. a camera mounted on its side) and `mirror`
//! (left–right).

use std::time::Instant;

use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
use serde::Serialize;

use super::jacobian::{flatten, Jacobian, Network, Outputs};
use super::krylov::Lanczos;
use crate::cnn::{evaluate, train, Augmentation, ImageModel, ImageTrainConfig};
use crate::data::{permutation, Targets};
use crate::error::{Error, Result};
use crate::images::ImageSet;
use crate::metrics;
use crate::nn::cnn::{Layer, LayerSpec, Mode};
use crate::params::Params;
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;
use crate::{DType, Device};

/// The shift between the training domain and the target domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// No shift: the target images are drawn like the training images.
    None,
    /// A quarter turn anticlockwise (square images only).
    Rotate90,
    /// Left–right mirror.
    Mirror,
}

impl Shift {
    /// Parses `none`, `rotate90` or `mirror`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `shift`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Shift::None),
            "rotate90" => Ok(Shift::Rotate90),
            "mirror" => Ok(Shift::Mirror),
            _ => Err(Error::invalid(
                "shift",
                s,
                "expected none, rotate90 or mirror",
            )),
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Shift::None => "none",
            Shift::Rotate90 => "rotate90",
            Shift::Mirror => "mirror",
        }
    }

    /// The images of `set` moved into the shifted domain.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a quarter turn of images that are not square.
    pub fn apply(self, set: &ImageSet) -> Result<ImageSet> {
        let (c, h, w) = (set.shape.channels, set.shape.height, set.shape.width);
        if self == Shift::Rotate90 && h != w {
            return Err(Error::invalid(
                "shift",
                format!("rotate90 of {}", set.shape),
                "a quarter turn needs square images",
            ));
        }
        // Output pixel (i, j) reads input pixel `from(i, j)`.
        let from = |i: usize, j: usize| -> (usize, usize) {
            match self {
                Shift::None => (i, j),
                Shift::Rotate90 => (j, w - 1 - i),
                Shift::Mirror => (i, w - 1 - j),
            }
        };
        let mut pixels = Vec::with_capacity(set.pixels.len());
        for img in set.pixels.chunks_exact(c * h * w) {
            for plane in img.chunks_exact(h * w) {
                for i in 0..h {
                    for j in 0..w {
                        let (a, b) = from(i, j);
                        pixels.push(plane[a * w + b]);
                    }
                }
            }
        }
        ImageSet::new(set.shape, pixels, set.targets.clone())
    }
}

/// A trained CNN as the linearization sees it: inputs are flat rows `[n, c·h·w]` (raw pixels,
/// standardised inside as in training), batch norm in evaluation mode, outputs the logits.
pub struct CnnNetwork<'m> {
    model: &'m ImageModel,
}

impl<'m> CnnNetwork<'m> {
    /// Wraps a trained model.
    pub fn new(model: &'m ImageModel) -> Self {
        CnnNetwork { model }
    }
}

impl Network for CnnNetwork<'_> {
    fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let [c, h, w] = self.model.cnn.input;
        let n = x.dims().first().copied().unwrap_or(0);
        let images = x.reshape(&[n, c, h, w])?;
        let mut state = self.model.state.clone();
        self.model.net(params, &mut state, &images, Mode::Eval)
    }
}

/// How the linearized model is fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The output layer alone, retrained (the reference's baseline).
    LastLayer,
    /// The maximum a posteriori weights.
    Map,
    /// The MAP with a low-rank Laplace approximation around it.
    Laplace,
    /// Mean-field variational inference.
    Vi,
}

impl Method {
    /// Parses `last-layer`, `map`, `laplace` or `vi`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `inference`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "last-layer" => Ok(Method::LastLayer),
            "map" => Ok(Method::Map),
            "laplace" => Ok(Method::Laplace),
            "vi" => Ok(Method::Vi),
            _ => Err(Error::invalid(
                "inference",
                s,
                "expected last-layer, map, laplace or vi",
            )),
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::LastLayer => "last-layer",
            Method::Map => "map",
            Method::Laplace => "laplace",
            Method::Vi => "vi",
        }
    }
}

/// Settings of the linearized fit (defaults: the reference's, except the learning rate and
/// the epochs, scaled to a few hundred adaptation images; see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearizedSettings {
    /// Passes over the adaptation images.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam's (AMSGrad's) learning rate.
    pub lr: f64,
    /// `wd` of the MAP penalty `wd·‖θ‖` and of the VI prior's scale `1/wd`.
    pub weight_decay: f64,
    /// Offset the linear model by the network, `f(x; θ̂) + J(x)(θ − θ̂)`; otherwise `J(x)θ`.
    pub bias: bool,
    /// Draws averaged by the Laplace and VI predictives.
    pub samples: usize,
    /// Lanczos steps of the Laplace approximation (the top half of the Ritz pairs are kept).
    pub lanczos_steps: usize,
    /// The Laplace approximation's prior precision.
    pub prior_precision: f64,
    /// Seed of the batch order, the draws and the Lanczos start.
    pub seed: u64,
}

impl Default for LinearizedSettings {
    fn default() -> Self {
        LinearizedSettings {
            epochs: 100,
            batch_size: 128,
            lr: 0.01,
            weight_decay: 1e-4,
            bias: false,
            samples: 30,
            lanczos_steps: 30,
            prior_precision: 1.0,
            seed: 0,
        }
    }
}

impl LinearizedSettings {
    /// Refuses settings no fit can use.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("adapt_epochs", self.epochs),
            ("adapt_batch_size", self.batch_size),
            ("samples", self.samples),
            ("lanczos_steps", self.lanczos_steps),
        ] {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1"));
            }
        }
        for (name, v) in [
            ("adapt_lr", self.lr),
            ("weight_decay", self.weight_decay),
            ("prior_precision", self.prior_precision),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(name, v, "must be positive and finite"));
            }
        }
        Ok(())
    }
}

/// A fitted linearized model.
#[derive(Clone, Debug)]
pub struct LinearizedFit {
    /// The method.
    pub method: Method,
    /// The trained weights `θ̂` the network is linearized at (flat).
    pub theta_hat: Vec<f64>,
    /// The MAP, or the variational mean (flat).
    pub mean: Vec<f64>,
    /// The variational standard deviations (VI).
    pub std: Option<Vec<f64>>,
    /// Laplace: the kept directions `uⱼ` with their posterior standard deviations `λⱼ^{-1/2}`.
    pub directions: Vec<(f64, Vec<f64>)>,
    /// The offset `f(x; θ̂)` is used.
    pub bias: bool,
    /// The mean training objective per adaptation image, per epoch.
    pub losses: Vec<f64>,
}

/// AMSGrad (Reddi, Kale & Kumar, ICLR 2018) as PyTorch's `Adam(amsgrad=True)`, on a flat
/// vector; β = (0.9, 0.999), ε = 10⁻⁸.
#[derive(Clone, Debug)]
pub struct AmsGrad {
    m: Vec<f64>,
    v: Vec<f64>,
    v_max: Vec<f64>,
    t: i32,
}

impl AmsGrad {
    /// The state for `n` parameters.
    pub fn new(n: usize) -> Self {
        AmsGrad {
            m: vec![0.0; n],
            v: vec![0.0; n],
            v_max: vec![0.0; n],
            t: 0,
        }
    }

    /// One step of `p` along the gradient `g` at the learning rate `lr`.
    pub fn step(&mut self, p: &mut [f64], g: &[f64], lr: f64) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.t += 1;
        let step = lr / (1.0 - B1.powi(self.t));
        let c2 = (1.0 - B2.powi(self.t)).sqrt();
        for i in 0..p.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g[i] * g[i];
            self.v_max[i] = self.v_max[i].max(self.v[i]);
            p[i] -= step * self.m[i] / (self.v_max[i].sqrt() / c2 + 1e-8);
        }
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Row-wise softmax of `k`-wide logits, in place.
fn softmax_rows(z: &mut [f64], k: usize) {
    for row in z.chunks_exact_mut(k) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        for v in row.iter_mut() {
            *v /= s;
        }
    }
}

/// Refuses a non-finite pixel, naming the image.
fn finite_pixels(x: &[f64], d: usize, what: &str) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::invalid(
            what,
            x[i],
            format!("image {} has a non-finite pixel", i / d),
        )),
        None => Ok(()),
    }
}

/// Rows `idx` of the flat `[n, d]` images as a tensor.
fn rows(x: &[f64], d: usize, idx: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        v.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    Ok(Tensor::from_f64s(&v, &[idx.len(), d], dtype)?.to_device(device)?)
}

/// The flat range of the network's output layer (weight and bias) in the parameter vector.
fn last_layer_range(model: &ImageModel) -> Result<std::ops::Range<usize>> {
    let Some(Layer::Dense(lin, _)) = model.cnn.layers.last() else {
        return Err(Error::invalid(
            "network",
            "no dense output layer",
            "the last-layer baseline needs one",
        ));
    };
    let mut at = 0;
    let (mut lo, mut hi, mut count) = (usize::MAX, 0, 0);
    for (i, t) in model.params.values().iter().enumerate() {
        let n = t.numel();
        if i == lin.weight.0 || i == lin.bias.0 {
            lo = lo.min(at);
            hi = hi.max(at + n);
            count += n;
        }
        at += n;
    }
    // The weight and the bias are inserted one after the other, so they are contiguous.
    if count == 0 || hi - lo != count {
        return Err(Error::invalid(
            "network",
            "output layer",
            "its weight and bias are not one contiguous block of the parameters",
        ));
    }
    Ok(lo..hi)
}

/// Fits the linearized model of `model` on the adaptation images `x` (flat `[n, c·h·w]`,
/// raw pixels) with class `labels`, reporting each epoch (and, for Laplace, the approximation
/// as one more unit) to `progress`.
///
/// # Errors
/// [`Error::InvalidInput`] for bad settings, labels outside the network's outputs, or an
/// image count that does not match; [`Error::Failed`] when the objective stops being finite
/// (lower `adapt_lr`); engine errors.
pub fn fit(
    model: &ImageModel,
    x: &[f64],
    labels: &[usize],
    method: Method,
    s: &LinearizedSettings,
    progress: &mut Observer,
) -> Result<LinearizedFit> {
    s.check()?;
    let k = model.outputs;
    let d = model.cnn.input.iter().product::<usize>();
    let n = labels.len();
    if n == 0 || x.len() != n * d {
        return Err(Error::invalid(
            "adaptation images",
            format!("{} values for {n} labels", x.len()),
            format!("expected {d} pixels per image and at least one image"),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= k) {
        return Err(Error::invalid(
            "labels",
            l,
            format!("the network has {k} outputs"),
        ));
    }
    finite_pixels(x, d, "adaptation images")?;
    let net = CnnNetwork::new(model);
    let (dtype, device) = (model.dtype(), model.device());
    let theta_hat = flatten(model.params.values())?;
    let p = theta_hat.len();
    // The last layer is the network itself with a new head: always offset by f(x; θ̂).
    let bias = s.bias || method == Method::LastLayer;
    let mask = match method {
        Method::LastLayer => Some(last_layer_range(model)?),
        _ => None,
    };
    // The reference starts a hair away from θ̂; the last layer starts at the network itself,
    // and only its output layer moves.
    let mut mean: Vec<f64> = theta_hat.iter().map(|t| t + 1e-6).collect();
    if let Some(r) = &mask {
        mean[..r.start].copy_from_slice(&theta_hat[..r.start]);
        mean[r.end..].copy_from_slice(&theta_hat[r.end..]);
    }
    let mut rho = (method == Method::Vi).then(|| vec![-5.0; p]);
    let mut opt_mean = AmsGrad::new(p);
    let mut opt_rho = AmsGrad::new(if rho.is_some() { p } else { 0 });
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(s.seed);
    let b = s.batch_size.min(n);
    let total = s.epochs + usize::from(method == Method::Laplace);
    let mut losses = Vec::with_capacity(s.epochs);
    for epoch in 0..s.epochs {
        let order = permutation(n, &mut rng);
        let mut epoch_loss = 0.0;
        for idx in order.chunks(b) {
            let xb = rows(x, d, idx, dtype, device)?;
            let jac = Jacobian::new(&net, &model.params, &xb, Outputs::All)?;
            // The weights this step evaluates: the mean, or one draw of q.
            let eps: Option<Vec<f64>> = rho.as_ref().map(|_| {
                (0..p)
                    .map(|_| standard_normal::<f64, _>(&mut rng))
                    .collect()
            });
            let vi = rho.as_deref().zip(eps.as_deref());
            let step = minibatch_objective(
                &jac,
                &batch_labels(labels, idx),
                // The minibatch's sum, scaled to estimate the whole set's.
                n as f64 / idx.len() as f64,
                &theta_hat,
                &mean,
                vi,
                bias,
                s.weight_decay,
            )?;
            let objective = step.value;
            let mut g = step.grad_mean;
            if !objective.is_finite()
                || g.iter()
                    .chain(step.grad_rho.iter().flatten())
                    .any(|v| !v.is_finite())
            {
                return Err(Error::failed(
                    format!(
                        "the linearized {} objective became {objective} in epoch {}",
                        method.name(),
                        epoch + 1
                    ),
                    "lower `adapt_lr`",
                ));
            }
            if let (Some(rho), Some(g_rho)) = (&mut rho, &step.grad_rho) {
                opt_rho.step(rho, g_rho, s.lr);
            }
            if let Some(r) = &mask {
                g[..r.start].iter_mut().for_each(|v| *v = 0.0);
                g[r.end..].iter_mut().for_each(|v| *v = 0.0);
            }
            opt_mean.step(&mut mean, &g, s.lr);
            epoch_loss += objective * idx.len() as f64 / n as f64;
        }
        losses.push(epoch_loss / n as f64);
        progress(&Tick {
            done: epoch + 1,
            total,
            values: &[("loss", epoch_loss / n as f64)],
        });
    }
    let directions = if method == Method::Laplace {
        let d = laplace(&net, model, x, d, &mean, &theta_hat, bias, s)?;
        progress(&Tick {
            done: total,
            total,
            values: &[("kept", d.len() as f64)],
        });
        d
    } else {
        Vec::new()
    };
    Ok(LinearizedFit {
        method,
        theta_hat,
        std: rho.map(|r| r.into_iter().map(softplus).collect()),
        mean,
        directions,
        bias,
        losses,
    })
}

fn batch_labels(labels: &[usize], idx: &[usize]) -> Vec<usize> {
    idx.iter().map(|&i| labels[i]).collect()
}

/// A minibatch's objective and its gradients.
#[derive(Clone, Debug)]
pub struct MinibatchObjective {
    /// MAP: `s·Σ_b CE + wd·‖θ‖`; VI: `s·Σ_b CE(θ = μ + σ⊙ε) + KL(q‖p)`.
    pub value: f64,
    /// The gradient with respect to `θ` (MAP) or `μ` (VI).
    pub grad_mean: Vec<f64>,
    /// VI: the gradient with respect to `ρ` (`σ = softplus(ρ)`).
    pub grad_rho: Option<Vec<f64>>,
}

/// The objective of one minibatch — the images of `jac` with `labels` — whose summed
/// cross-entropy is scaled by `scale` (`N / b`, so that it estimates the whole set's), at the
/// weights `mean` (MAP), or, with `vi = Some((ρ, ε))`, at the draw `μ + softplus(ρ)⊙ε` plus the
/// KL divergence from the prior `N(0, (1/wd)²I)`; the logits are `[f(x; θ̂)] + J(x)(θ − θ̂)`
/// with `bias`, else `J(x)θ`. The MAP's penalty is `wd·‖θ‖₂`.
///
/// # Errors
/// [`Error::InvalidInput`] for lengths that do not match; engine errors.
#[allow(clippy::too_many_arguments)]
pub fn minibatch_objective<N: Network>(
    jac: &Jacobian<N>,
    labels: &[usize],
    scale: f64,
    theta_hat: &[f64],
    mean: &[f64],
    vi: Option<(&[f64], &[f64])>,
    bias: bool,
    weight_decay: f64,
) -> Result<MinibatchObjective> {
    let (p, k) = (theta_hat.len(), jac.outputs_per_row());
    let lengths_ok = mean.len() == p
        && labels.len() == jac.rows()
        && labels.iter().all(|&l| l < k)
        && vi.is_none_or(|(r, e)| r.len() == p && e.len() == p);
    if !lengths_ok {
        return Err(Error::invalid(
            "minibatch",
            format!("{} labels, {} weights", labels.len(), mean.len()),
            format!("expected {} labels below {k} and {p} weights", jac.rows()),
        ));
    }
    let mut theta = mean.to_vec();
    if let Some((rho, eps)) = vi {
        for i in 0..p {
            theta[i] += softplus(rho[i]) * eps[i];
        }
    }
    let mut z = logits(jac, &theta, theta_hat, bias)?;
    softmax_rows(&mut z, k);
    let mut ce = 0.0;
    for (row, &l) in z.chunks_exact_mut(k).zip(labels) {
        ce -= row[l].max(f64::MIN_POSITIVE).ln();
        row[l] -= 1.0;
        for v in row.iter_mut() {
            *v *= scale;
        }
    }
    let mut g = jac.vjp(&z)?;
    let mut value = scale * ce;
    let grad_rho = match vi {
        Some((rho, eps)) => {
            let prior_var = (1.0 / weight_decay).powi(2);
            let mut g_rho = vec![0.0; p];
            for i in 0..p {
                let sd = softplus(rho[i]);
                value += 0.5 * (prior_var.ln() - 2.0 * sd.ln())
                    + (sd * sd + mean[i] * mean[i]) / (2.0 * prior_var)
                    - 0.5;
                g_rho[i] = (g[i] * eps[i] - 1.0 / sd + sd / prior_var) * sigmoid(rho[i]);
                g[i] += mean[i] / prior_var;
            }
            Some(g_rho)
        }
        None => {
            let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
            value += weight_decay * norm;
            if norm > 0.0 {
                for (gi, mi) in g.iter_mut().zip(mean) {
                    *gi += weight_decay * mi / norm;
                }
            }
            None
        }
    };
    Ok(MinibatchObjective {
        value,
        grad_mean: g,
        grad_rho,
    })
}

/// The logits of the linearized model at the weights `theta` on the images of `jac`.
fn logits<N: Network>(
    jac: &Jacobian<N>,
    theta: &[f64],
    theta_hat: &[f64],
    bias: bool,
) -> Result<Vec<f64>> {
    if !bias {
        return jac.jvp(theta);
    }
    let dir: Vec<f64> = theta.iter().zip(theta_hat).map(|(a, b)| a - b).collect();
    let mut z = jac.jvp(&dir)?;
    for (zi, fi) in z.iter_mut().zip(jac.values()?) {
        *zi += fi;
    }
    Ok(z)
}

/// The Laplace approximation's kept directions: Lanczos on `GGN + τI` at the MAP over all
/// adaptation images, the top half of the Ritz pairs.
#[allow(clippy::too_many_arguments)]
fn laplace(
    net: &CnnNetwork,
    model: &ImageModel,
    x: &[f64],
    d: usize,
    map: &[f64],
    theta_hat: &[f64],
    bias: bool,
    s: &LinearizedSettings,
) -> Result<Vec<(f64, Vec<f64>)>> {
    let k = model.outputs;
    let n = x.len() / d;
    let all: Vec<usize> = (0..n).collect();
    let xt = rows(x, d, &all, model.dtype(), model.device())?;
    let jac = Jacobian::new(net, &model.params, &xt, Outputs::All)?;
    let mut probs = logits(&jac, map, theta_hat, bias)?;
    softmax_rows(&mut probs, k);
    let tau = s.prior_precision;
    let apply = |u: &[f64]| -> Result<Vec<f64>> {
        // Σᵢ Jᵢᵀ (diag pᵢ − pᵢpᵢᵀ) Jᵢ u + τu.
        let mut ju = jac.jvp(u)?;
        for (row, p) in ju.chunks_exact_mut(k).zip(probs.chunks_exact(k)) {
            let dotp: f64 = row.iter().zip(p).map(|(a, b)| a * b).sum();
            for (r, pi) in row.iter_mut().zip(p) {
                *r = pi * (*r - dotp);
            }
        }
        let mut out = jac.vjp(&ju)?;
        for (o, ui) in out.iter_mut().zip(u) {
            *o += tau * ui;
        }
        Ok(out)
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(s.seed ^ 0x004c_4150_4c41_4345);
    let start: Vec<f64> = (0..map.len())
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let lz = Lanczos::run(apply, &start, s.lanczos_steps)?;
    let (lam, v) = lz.eigen()?;
    let m = lz.rank();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| lam[b].total_cmp(&lam[a]));
    let keep = (m / 2).max(1);
    let mut out = Vec::with_capacity(keep);
    for &j in &order[..keep] {
        if !(lam[j] > 0.0) {
            return Err(Error::Solver {
                reason: format!(
                    "Laplace: the Ritz value {:e} is not positive; the precision is not positive definite",
                    lam[j]
                ),
            });
        }
        let mut u = vec![0.0; map.len()];
        for (i, qi) in lz.q.iter().enumerate() {
            let c = v[i * m + j];
            for (a, b) in u.iter_mut().zip(qi) {
                *a += c * b;
            }
        }
        out.push((lam[j].powf(-0.5), u));
    }
    Ok(out)
}

/// Class probabilities `[n, k]` (flat) of the fitted linearized model on images `x` (flat
/// `[n, c·h·w]`, raw pixels): the MAP's softmax, or the softmax averaged over the Laplace or
/// VI posterior's draws; `at_mean` evaluates VI at its mean instead (the reference's choice).
///
/// # Errors
/// [`Error::InvalidInput`] for a wrong image length; engine errors.
pub fn predict(
    model: &ImageModel,
    fit: &LinearizedFit,
    x: &[f64],
    samples: usize,
    at_mean: bool,
    seed: u64,
) -> Result<Vec<f64>> {
    let k = model.outputs;
    let d = model.cnn.input.iter().product::<usize>();
    if x.is_empty() || !x.len().is_multiple_of(d) {
        return Err(Error::invalid(
            "test images",
            x.len(),
            format!("expected a positive multiple of {d} pixels"),
        ));
    }
    finite_pixels(x, d, "test images")?;
    let n = x.len() / d;
    let net = CnnNetwork::new(model);
    let all: Vec<usize> = (0..n).collect();
    let xt = rows(x, d, &all, model.dtype(), model.device())?;
    let jac = Jacobian::new(&net, &model.params, &xt, Outputs::All)?;
    let base = logits(&jac, &fit.mean, &fit.theta_hat, fit.bias)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut draw =
        |extra: &dyn Fn(&mut Xoshiro256PlusPlus) -> Result<Vec<f64>>| -> Result<Vec<f64>> {
            let mut acc = vec![0.0; n * k];
            for _ in 0..samples.max(1) {
                let mut z = extra(&mut rng)?;
                for (zi, bi) in z.iter_mut().zip(&base) {
                    *zi += bi;
                }
                softmax_rows(&mut z, k);
                for (a, zi) in acc.iter_mut().zip(&z) {
                    *a += zi / samples.max(1) as f64;
                }
            }
            Ok(acc)
        };
    match (&fit.std, fit.directions.is_empty()) {
        (Some(std), _) if !at_mean => draw(&|rng| {
            let u: Vec<f64> = std
                .iter()
                .map(|sd| sd * standard_normal::<f64, _>(rng))
                .collect();
            jac.jvp(&u)
        }),
        (_, false) => {
            let features: Vec<(f64, Vec<f64>)> = fit
                .directions
                .iter()
                .map(|(sd, u)| Ok((*sd, jac.jvp(u)?)))
                .collect::<Result<_>>()?;
            draw(&|rng| {
                let mut z = vec![0.0; n * k];
                for (sd, ju) in &features {
                    let c = sd * standard_normal::<f64, _>(rng);
                    for (zi, j) in z.iter_mut().zip(ju) {
                        *zi += c * j;
                    }
                }
                Ok(z)
            })
        }
        _ => {
            let mut z = base.clone();
            softmax_rows(&mut z, k);
            Ok(z)
        }
    }
}

/// Test metrics of one method.
#[derive(Clone, Debug, Serialize)]
pub struct MethodReport {
    /// `unadapted`, `last-layer`, `map`, `laplace`, `vi` or `vi-mean`.
    pub method: String,
    /// Accuracy on the target domain's test images.
    pub test_accuracy: f64,
    /// Mean negative log-likelihood there.
    pub test_nll: f64,
    /// Expected calibration error (15 equal-width bins).
    pub ece: f64,
    /// Wall-clock seconds of the fit and the prediction.
    pub seconds: f64,
    /// The mean training objective per adaptation image, per epoch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<f64>,
    /// Laplace: the Ritz pairs kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ritz_kept: Option<usize>,
    /// The reliability diagram (mean confidence, accuracy, count per non-empty bin).
    #[serde(skip)]
    pub reliability: Vec<(f64, f64, usize)>,
}

impl MethodReport {
    fn new(method: &str, probs: &[f64], k: usize, labels: &[usize], seconds: f64) -> Self {
        MethodReport {
            method: method.to_string(),
            test_accuracy: metrics::accuracy(probs, k, labels),
            test_nll: metrics::nll(probs, k, labels),
            ece: metrics::ece(probs, k, labels, 15),
            seconds,
            losses: Vec::new(),
            ritz_kept: None,
            reliability: metrics::reliability(probs, k, labels, 15),
        }
    }
}

/// The experiment.
#[derive(Clone, Debug)]
pub struct ClassifyConfig {
    /// The CNN's hidden layers (the output layer is added).
    pub spec: Vec<LayerSpec>,
    /// Epochs of training on the source domain.
    pub epochs: usize,
    /// Adam's learning rate for that training.
    pub lr: f64,
    /// Its minibatch size.
    pub batch_size: usize,
    /// The target domain.
    pub shift: Shift,
    /// Labelled target images the linearized model is fitted to.
    pub n_adapt: usize,
    /// The fits to compare.
    pub methods: Vec<Method>,
    /// Their settings.
    pub linearized: LinearizedSettings,
    /// Seed of the split, the network and the fits.
    pub seed: u64,
}

/// What the experiment measured.
#[derive(Clone, Debug, Serialize)]
pub struct ClassifyReport {
    /// The shift.
    pub shift: &'static str,
    /// Source-domain training images.
    pub n_train: usize,
    /// Target-domain adaptation images.
    pub n_adapt: usize,
    /// Target-domain test images (disjoint from the adaptation images).
    pub n_test: usize,
    /// The network's parameter count `P`.
    pub params: usize,
    /// Accuracy on held-out source-domain images.
    pub source_test_accuracy: f64,
    /// Seconds of source-domain training.
    pub train_seconds: f64,
    /// `unadapted` first, then each method.
    pub methods: Vec<MethodReport>,
}

/// Splits `set` (seeded): half the images are the source domain (80 % training, 20 % test),
/// half, shifted, the target domain (`n_adapt` adaptation images, the rest test). Returns
/// (source train, source test, target adapt, target test).
///
/// # Errors
/// [`Error::InvalidInput`] naming `n_adapt` when the target half cannot hold it and a test
/// image, or for a set too small to split.
pub fn split(
    set: &ImageSet,
    shift: Shift,
    n_adapt: usize,
    seed: u64,
) -> Result<(ImageSet, ImageSet, ImageSet, ImageSet)> {
    if !matches!(set.targets, Targets::Classes { .. }) {
        return Err(Error::invalid(
            "data",
            "real-valued targets",
            "the linearized classifier needs class labels",
        ));
    }
    let n = set.len();
    if n < 10 {
        return Err(Error::invalid("data", n, "need at least 10 images"));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let order = permutation(n, &mut rng);
    let (source, target) = order.split_at(n / 2);
    if n_adapt == 0 || n_adapt >= target.len() {
        return Err(Error::invalid(
            "n_adapt",
            n_adapt,
            format!(
                "the target half has {} images; at least one must stay for the test",
                target.len()
            ),
        ));
    }
    let n_src_test = (source.len() / 5).max(1);
    let (src_test, src_train) = source.split_at(n_src_test);
    let target = shift.apply(&set.subset(target))?;
    let adapt: Vec<usize> = (0..n_adapt).collect();
    let test: Vec<usize> = (n_adapt..target.len()).collect();
    Ok((
        set.subset(src_train),
        set.subset(src_test),
        target.subset(&adapt),
        target.subset(&test),
    ))
}

/// Trains a CNN on the source half of `set` and adapts it to the shifted target half with each
/// of `cfg.methods`, reporting progress (the training epochs, then one unit per method).
///
/// # Errors
/// As [`split`], [`train`] and [`fit`].
pub fn classify(
    cfg: &ClassifyConfig,
    set: &ImageSet,
    progress: &mut Observer,
) -> Result<ClassifyReport> {
    cfg.linearized.check()?;
    let (src_train, src_test, adapt, test) = split(set, cfg.shift, cfg.n_adapt, cfg.seed)?;
    let t0 = Instant::now();
    let model = train(
        &ImageTrainConfig {
            spec: cfg.spec.clone(),
            augmentation: Augmentation::None,
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            weight_decay: 0.0,
            copies: 1,
            seed: cfg.seed,
            dtype: DType::F64,
            device: Device::Cpu,
            checkpoint: Default::default(),
        },
        &src_train,
        progress,
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let source_test_accuracy = evaluate(&model, &src_test, 1, cfg.seed)?
        .test_accuracy
        .unwrap_or(f64::NAN);
    let (Some(adapt_labels), Some(test_labels)) = (adapt.labels(), test.labels()) else {
        unreachable!("split keeps class labels");
    };
    let k = model.outputs;
    let mut methods = Vec::new();
    let t = Instant::now();
    let unadapted = predict_network(&model, &test.pixels)?;
    methods.push(MethodReport::new(
        "unadapted",
        &unadapted,
        k,
        test_labels,
        t.elapsed().as_secs_f64(),
    ));
    let s = LinearizedSettings {
        seed: cfg.seed,
        ..cfg.linearized.clone()
    };
    for (i, &method) in cfg.methods.iter().enumerate() {
        let t = Instant::now();
        let fitted = fit(&model, &adapt.pixels, adapt_labels, method, &s, &mut |_| {})?;
        let probs = predict(
            &model,
            &fitted,
            &test.pixels,
            s.samples,
            false,
            cfg.seed ^ 1,
        )?;
        let mut r = MethodReport::new(
            method.name(),
            &probs,
            k,
            test_labels,
            t.elapsed().as_secs_f64(),
        );
        r.losses = fitted.losses.clone();
        if method == Method::Laplace {
            r.ritz_kept = Some(fitted.directions.len());
        }
        methods.push(r);
        if method == Method::Vi {
            let t = Instant::now();
            let probs = predict(&model, &fitted, &test.pixels, 1, true, 0)?;
            methods.push(MethodReport::new(
                "vi-mean",
                &probs,
                k,
                test_labels,
                t.elapsed().as_secs_f64(),
            ));
        }
        progress(&Tick {
            done: i + 1,
            total: cfg.methods.len(),
            values: &[("method", (i + 1) as f64)],
        });
    }
    Ok(ClassifyReport {
        shift: cfg.shift.name(),
        n_train: src_train.len(),
        n_adapt: adapt.len(),
        n_test: test.len(),
        params: flatten(model.params.values())?.len(),
        source_test_accuracy,
        train_seconds,
        methods,
    })
}

/// The network's own class probabilities on flat images.
fn predict_network(model: &ImageModel, x: &[f64]) -> Result<Vec<f64>> {
    let d = model.cnn.input.iter().product::<usize>();
    let n = x.len() / d;
    let all: Vec<usize> = (0..n).collect();
    let xt = rows(x, d, &all, model.dtype(), model.device())?;
    let net = CnnNetwork::new(model);
    let jac = Jacobian::new(&net, &model.params, &xt, Outputs::All)?;
    let mut z = jac.values()?;
    softmax_rows(&mut z, model.outputs);
    Ok(z)
}
