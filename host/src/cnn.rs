//! Convolutional networks on images, trained plainly, with a fixed augmentation, or with
//! Augerino's learned one ("Learning Invariances in Neural Networks", Benton, Finzi, Izmailov &
//! Wilson, NeurIPS 2020; reference `augerino/models/uniform_aug.py`, `augerino/losses.py`).
//!
//! Augerino makes a network `f` invariant to a learned range of affine transformations by
//! averaging over them: `h(x) = E_{g∼μ_θ} f(g·x)`. An image is warped by
//! `T = expm(Σᵢ εᵢGᵢ)` with the six generators of 2-D affine maps (x- and y-translation scaled by
//! 0.1, rotation, isotropic scale, stretch, shear; [`keel_core::vision::AUGERINO_GENERATORS`]) and
//! `εᵢ ∼ U[−θᵢ/2, θᵢ/2]`, `θ = softplus(w)` — drawn by reparameterisation, `ε = uθ − θ/2` with
//! `u ∼ U[0, 1]` per image and generator, so the loss is differentiable in `w` through the warp
//! (bilinear, PyTorch's `affine_grid` + `grid_sample` with `align_corners=True` and zero padding).
//! Training takes ONE sample per image and minimises `CE − λ‖θ‖₂` (the unsquared norm; with the
//! "safe" cut-off of the reference's image scripts the regulariser is off once any width reaches
//! 10); Adam updates the network and the widths jointly, weight decay on the network only. At
//! test time the prediction averages the log-softmax of `J` ("copies") warped versions.
//!
//! Images are warped in their stored range ([0, 1], background 0, so the zero padding is
//! background) and then standardised by the training set's pixel mean and standard deviation,
//! which the network applies as its first step (and the exported file records).

use std::time::Instant;

use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::vision::AUGERINO_GENERATORS as GENERATORS;
use serde::Serialize;

use crate::backend::{DType, Device};
use crate::data::{permutation, Targets};
use crate::error::{Error, Result};
use crate::images::{ImageSet, ImageShape};
use crate::metrics;
use crate::nn::cnn::{Cnn, CnnState, LayerSpec, Mode};
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::{ParamId, Params};
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;
use crate::{backward, no_grad};

/// Names of the six widths, in generator order.
pub const WIDTH_NAMES: [&str; 6] = ["tx", "ty", "rotation", "scale", "stretch", "shear"];

/// The reference's initial pre-softplus width for the generators it does not single out:
/// `softplus(−5) ≈ 0.0067`.
pub const W_INIT_SMALL: f64 = -5.0;

/// How training images are transformed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Augmentation {
    /// None: a plain CNN.
    None,
    /// Fixed ranges: `εᵢ ∼ U[−θᵢ/2, θᵢ/2]` with these θ, not learned (θ = (0, 0, 2π, 0, 0, 0) is
    /// full-circle rotation augmentation). Test images are not transformed.
    Fixed([f64; 6]),
    /// Augerino: learned widths.
    Learned {
        /// Initial pre-softplus widths `w` (θ = softplus(w)).
        init: [f64; 6],
        /// λ of `−λ‖θ‖₂`.
        reg: f64,
        /// Switch the regulariser off once any width reaches 10 (the reference's
        /// `safe_unif_aug_loss`).
        safe: bool,
    },
}

fn dims(shape: ImageShape) -> [usize; 3] {
    [shape.channels, shape.height, shape.width]
}

/// The network's output width for these targets: the classes, or 1.
fn outputs(set: &ImageSet) -> usize {
    match &set.targets {
        Targets::Classes { classes, .. } => classes.len(),
        Targets::Values(_) => 1,
    }
}

/// Refuses an empty set or non-finite pixels, naming the image.
fn check(set: &ImageSet, what: &str) -> Result<()> {
    if set.is_empty() {
        return Err(Error::invalid(what, 0, "no images"));
    }
    let per = set.shape.pixels();
    if let Some(i) = set.pixels.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            what,
            set.pixels[i],
            format!("image {} has a non-finite pixel", i / per),
        ));
    }
    Ok(())
}

/// Images `idx` as an `[n, c, h, w]` tensor.
fn batch(set: &ImageSet, idx: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
    let per = set.shape.pixels();
    let mut v = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        v.extend_from_slice(&set.pixels[i * per..][..per]);
    }
    let [c, h, w] = dims(set.shape);
    Ok(Tensor::from_f64s(&v, &[idx.len(), c, h, w], dtype)?.to_device(device)?)
}

/// Everything a training run needs.
#[derive(Clone, Debug)]
pub struct ImageTrainConfig {
    /// The network's hidden layers (the output layer is added).
    pub spec: Vec<LayerSpec>,
    /// Augmentation.
    pub augmentation: Augmentation,
    /// Epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 weight decay on the network's parameters (never on the widths).
    pub weight_decay: f64,
    /// Transformed copies averaged at test time (learned augmentation only).
    pub copies: usize,
    /// Seed of initialisation, batch order, augmentation draws and dropout.
    pub seed: u64,
    /// Element type.
    pub dtype: DType,
    /// Where to train.
    pub device: Device,
    /// Checkpoints: where, how often, resume, stop early.
    pub checkpoint: crate::checkpoint::Options,
}

/// One epoch of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ImageEpoch {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss (without the width regulariser).
    pub train_loss: f64,
    /// The widths θ after the epoch (Augerino), in [`WIDTH_NAMES`] order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub widths: Option<[f64; 6]>,
}

/// A trained image model.
pub struct ImageModel {
    /// The network.
    pub cnn: Cnn,
    /// Its parameters.
    pub params: Params,
    /// Batch norm's running statistics.
    pub state: CnnState,
    /// Augerino's pre-softplus widths `w` (in `params`, `augerino.width`), when learned.
    pub widths: Option<ParamId>,
    /// The augmentation trained with.
    pub augmentation: Augmentation,
    /// Pixel mean and standard deviation of the training set (applied inside the network).
    pub normalize: (f64, f64),
    /// Learning curves.
    pub history: Vec<ImageEpoch>,
    /// Training wall-clock seconds.
    pub train_seconds: f64,
    /// Output width (classes, or 1).
    pub outputs: usize,
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `[6, 9]`: the generators as rows.
fn generator_matrix(dtype: DType, device: Device) -> Result<Tensor> {
    let mut g = Vec::with_capacity(54);
    for m in GENERATORS.iter() {
        for row in m {
            g.extend(row.iter().copied());
        }
    }
    Ok(Tensor::from_f64s(&g, &[6, 9], dtype)?.to_device(device)?)
}

/// Warps images `x` `[b, c, h, w]` by `expm(Σ εᵢGᵢ)` with `ε = u·θ − θ/2`, for widths `theta`
/// (`[1, 6]` or `[b, 6]`) and uniform draws `u` `[b, 6]`: Augerino's reparameterised
/// augmentation, differentiable in the images and in θ.
///
/// # Errors
/// Engine errors for shapes that do not fit.
pub fn warp_batch(x: &Tensor, theta: &Tensor, u: &Tensor) -> Result<Tensor> {
    warp(x, theta, u, &generator_matrix(x.dtype(), x.device())?)
}

fn warp(x: &Tensor, theta: &Tensor, u: &Tensor, gens: &Tensor) -> Result<Tensor> {
    let &[b, _, h, w] = x.dims() else {
        return Err(Error::invalid("images", x.shape(), "expected [n, c, h, w]"));
    };
    let eps = u.mul(theta)?.sub(&theta.mul_scalar(0.5)?)?;
    let t = eps.matmul(gens)?.reshape(&[b, 3, 3])?.matrix_exp()?;
    let grid = Tensor::affine_grid(&t.narrow(1, 0, 2)?, b, h, w)?;
    Ok(x.grid_sample(&grid)?)
}

fn draw_u(rng: &mut Xoshiro256PlusPlus, b: usize, dtype: DType, device: Device) -> Result<Tensor> {
    let u: Vec<f64> = (0..b * 6).map(|_| uniform::<f64, _>(rng)).collect();
    Ok(Tensor::from_f64s(&u, &[b, 6], dtype)?.to_device(device)?)
}

impl ImageModel {
    /// The widths θ (softplus of the learned `w`, or the fixed ones; zeros without augmentation).
    ///
    /// # Errors
    /// Device reads.
    pub fn widths(&self) -> Result<[f64; 6]> {
        Ok(match (self.augmentation, self.widths) {
            (Augmentation::Learned { .. }, Some(id)) => {
                let w = self.params.get(id).to_vec_f64()?;
                std::array::from_fn(|i| softplus(w[i]))
            }
            (Augmentation::Fixed(t), _) => t,
            _ => [0.0; 6],
        })
    }

    fn theta_tensor(&self, vars: &Params) -> Result<Option<Tensor>> {
        Ok(match (self.augmentation, self.widths) {
            (Augmentation::Learned { .. }, Some(id)) => {
                Some(vars.get(id).softplus()?.reshape(&[1, 6])?)
            }
            (Augmentation::Fixed(t), _) => {
                Some(Tensor::from_f64s(&t, &[1, 6], self.dtype())?.to_device(self.device())?)
            }
            _ => None,
        })
    }

    pub(crate) fn dtype(&self) -> DType {
        self.params
            .values()
            .first()
            .map_or(DType::F32, Tensor::dtype)
    }

    pub(crate) fn device(&self) -> Device {
        self.params
            .values()
            .first()
            .map_or(Device::Cpu, Tensor::device)
    }

    /// The network on already-warped raw images: standardise, then the CNN.
    pub(crate) fn net(
        &self,
        params: &Params,
        state: &mut CnnState,
        x: &Tensor,
        mode: Mode,
    ) -> Result<Tensor> {
        let (m, s) = self.normalize;
        let z = x.affine(1.0 / s, -m / s)?;
        Ok(self.cnn.forward(params, state, &z, mode)?)
    }

    /// Test-time prediction for images `x` `[n, c, h, w]` (raw pixels): Augerino averages the
    /// log-softmax (classification) or the output (regression) of `copies` transformed copies
    /// drawn from `rng`; the plain and fixed-augmentation models predict on the image as is.
    /// Classification returns log-probabilities `[n, classes]`; regression `[n, 1]`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn predict(
        &self,
        x: &Tensor,
        copies: usize,
        classify: bool,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Tensor> {
        no_grad(|| {
            let mut state = self.state.clone();
            let head = |y: Tensor| if classify { y.log_softmax(-1) } else { Ok(y) };
            let theta = match self.augmentation {
                Augmentation::Learned { .. } => self.theta_tensor(&self.params)?,
                _ => None,
            };
            let Some(theta) = theta else {
                return head(self.net(&self.params, &mut state, x, Mode::Eval)?)
                    .map_err(Into::into);
            };
            let gens = generator_matrix(x.dtype(), x.device())?;
            let mut acc: Option<Tensor> = None;
            for _ in 0..copies.max(1) {
                let u = draw_u(rng, x.dims()[0], x.dtype(), x.device())?;
                let y = head(self.net(
                    &self.params,
                    &mut state,
                    &warp(x, &theta, &u, &gens)?,
                    Mode::Eval,
                )?)?;
                acc = Some(match acc {
                    None => y,
                    Some(a) => a.add(&y)?,
                });
            }
            let Some(sum) = acc else {
                unreachable!("at least one copy");
            };
            Ok(sum.mul_scalar(1.0 / copies.max(1) as f64)?)
        })
    }
}

/// Test metrics of a trained model.
#[derive(Clone, Debug, Serialize)]
pub struct ImageMetrics {
    /// Accuracy (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Negative log-likelihood (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_nll: Option<f64>,
    /// Expected calibration error, 15 bins (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Mean squared error (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_mse: Option<f64>,
}

/// Evaluates `model` on `test` in batches.
///
/// # Errors
/// Engine errors; [`Error::InvalidInput`] for images of another shape.
pub fn evaluate(
    model: &ImageModel,
    test: &ImageSet,
    copies: usize,
    seed: u64,
) -> Result<ImageMetrics> {
    check(test, "test images")?;
    if dims(test.shape) != model.cnn.input {
        return Err(Error::invalid(
            "test images",
            format!("{:?}", test.shape),
            format!("the model takes {:?}", model.cnn.input),
        ));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let classify = matches!(test.targets, Targets::Classes { .. });
    let mut out = Vec::with_capacity(test.len() * model.outputs);
    let all: Vec<usize> = (0..test.len()).collect();
    for idx in all.chunks(256) {
        let x = batch(test, idx, model.dtype(), model.device())?;
        out.extend(
            model
                .predict(&x, copies, classify, &mut rng)?
                .to_vec_f64()?,
        );
    }
    Ok(match &test.targets {
        Targets::Classes { labels, classes } => {
            let probs: Vec<f64> = out.iter().map(|v| v.exp()).collect();
            let k = classes.len();
            ImageMetrics {
                test_accuracy: Some(metrics::accuracy(&probs, k, labels)),
                test_nll: Some(metrics::nll(&probs, k, labels)),
                ece: Some(metrics::ece(&probs, k, labels, 15)),
                test_mse: None,
            }
        }
        Targets::Values(v) => ImageMetrics {
            test_accuracy: None,
            test_nll: None,
            ece: None,
            test_mse: Some(
                out.iter().zip(v).map(|(p, t)| (p - t).powi(2)).sum::<f64>()
                    / v.len().max(1) as f64,
            ),
        },
    })
}

/// Trains a network on `train` per `cfg`, reporting each epoch to `progress`.
///
/// # Errors
/// [`Error::InvalidInput`] for bad settings or images (before any training); a failed run
/// ([`Error::Failed`]) when the loss diverges; engine errors.
pub fn train(
    cfg: &ImageTrainConfig,
    data: &ImageSet,
    progress: &mut Observer,
) -> Result<ImageModel> {
    check(data, "training images")?;
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(Error::invalid(
            "epochs",
            format!("{} epochs of batches of {}", cfg.epochs, cfg.batch_size),
            "both must be at least 1",
        ));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite()) {
        return Err(Error::invalid("lr", cfg.lr, "must be positive and finite"));
    }
    if let Augmentation::Learned { reg, init, .. } = cfg.augmentation {
        if !(reg >= 0.0 && reg.is_finite()) || init.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "reg",
                reg,
                "the width regulariser and initial widths must be finite (λ ≥ 0)",
            ));
        }
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let n = data.len();
    let mean = data.pixels.iter().sum::<f64>() / data.pixels.len() as f64;
    let var =
        data.pixels.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / data.pixels.len() as f64;
    let std = var.sqrt().max(1e-6);
    let outputs = outputs(data);
    let mut params = Params::new();
    let (cnn, state) = Cnn::new(
        &mut params,
        "",
        dims(data.shape),
        &cfg.spec,
        outputs,
        cfg.dtype,
        &mut rng,
    )?;
    // The widths join the network's parameters: one Adam over both, the network's L2 weight
    // decay added to its own gradients only (Adam's `weight_decay` is exactly `g + λ·p`).
    let widths = match cfg.augmentation {
        Augmentation::Learned { init, .. } => {
            Some(params.insert("augerino.width", Tensor::from_f64s(&init, &[6], cfg.dtype)?)?)
        }
        _ => None,
    };
    let mut model = ImageModel {
        cnn,
        params: params.to_device(cfg.device)?,
        state: state.to_device(cfg.device)?,
        widths,
        augmentation: cfg.augmentation,
        normalize: (mean, std),
        history: Vec::with_capacity(cfg.epochs),
        train_seconds: 0.0,
        outputs,
    };
    let mut opt = Optimizer::new(OptimizerKind::adam(), &model.params)?;
    let gens = generator_matrix(cfg.dtype, cfg.device)?;
    let fingerprint = format!(
        "cnn {:?} aug {:?} n {n} {:?} epochs {} batch {} lr {} wd {} seed {} {:?}",
        cfg.spec,
        cfg.augmentation,
        data.shape,
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.weight_decay,
        cfg.seed,
        cfg.dtype
    );
    let batches_per_epoch = n.div_ceil(cfg.batch_size) as u64;
    let seed0 = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut first = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let r = crate::checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut model.params,
            &mut opt,
            &mut rng,
            &mut [],
            &mut [],
        )?;
        restore(&mut model, &r, path)?;
        first = r.epoch;
    }
    let start = Instant::now();
    for epoch in first..cfg.epochs {
        let order = permutation(n, &mut rng);
        let (mut total, mut batches) = (0.0, 0usize);
        let mut step_seed = seed0.wrapping_add(epoch as u64 * batches_per_epoch);
        for idx in order.chunks(cfg.batch_size) {
            let vars = model.params.variables();
            let x = batch(data, idx, cfg.dtype, cfg.device)?;
            let x = match model.theta_tensor(&vars)? {
                Some(theta) => {
                    let u = draw_u(&mut rng, idx.len(), cfg.dtype, cfg.device)?;
                    warp(&x, &theta, &u, &gens)?
                }
                None => x,
            };
            step_seed = step_seed.wrapping_add(1);
            let mut state = std::mem::take(&mut model.state);
            let out = model.net(&vars, &mut state, &x, Mode::Train { seed: step_seed });
            model.state = state;
            let out = out?;
            let base = match &data.targets {
                Targets::Classes { labels, .. } => {
                    let lb: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
                    out.cross_entropy(&lb)?
                }
                Targets::Values(v) => {
                    let t: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
                    out.mse(
                        &Tensor::from_f64s(&t, &[idx.len(), 1], cfg.dtype)?
                            .to_device(cfg.device)?,
                    )?
                }
            };
            let value = base.item()?;
            if !value.is_finite() {
                return Err(crate::train::diverged(value, epoch, cfg.lr, ""));
            }
            let loss = match (cfg.augmentation, widths) {
                (Augmentation::Learned { reg, safe, .. }, Some(id)) => {
                    let theta = vars.get(id).softplus()?;
                    let on = !safe || theta.to_vec_f64()?.iter().all(|&t| t < 10.0);
                    if on && reg > 0.0 {
                        base.sub(&theta.square()?.sum_all()?.sqrt()?.mul_scalar(reg)?)?
                    } else {
                        base
                    }
                }
                _ => base,
            };
            let refs: Vec<&Tensor> = vars.values().iter().collect();
            let mut grads = no_grad(|| backward(&loss, &refs))?;
            if cfg.weight_decay > 0.0 {
                for (i, g) in grads.iter_mut().enumerate() {
                    if Some(ParamId(i)) != widths {
                        let p = model.params.get(ParamId(i));
                        *g = no_grad(|| g.add(&p.mul_scalar(cfg.weight_decay)?))?;
                    }
                }
            }
            no_grad(|| opt.step(&mut model.params, &grads, cfg.lr))?;
            total += value;
            batches += 1;
        }
        let train_loss = total / batches.max(1) as f64;
        let widths_now = match cfg.augmentation {
            Augmentation::Learned { .. } => Some(model.widths()?),
            _ => None,
        };
        model.history.push(ImageEpoch {
            epoch: epoch + 1,
            train_loss,
            widths: widths_now,
        });
        if let (Some(path), true) = (
            &cfg.checkpoint.path,
            cfg.checkpoint.due(epoch + 1, cfg.epochs),
        ) {
            save(&model, &opt, &rng, &fingerprint, epoch + 1, path)?;
        }
        let rot = widths_now.map_or(f64::NAN, |w| w[2]);
        let values = [("loss", train_loss), ("rotation", rot)];
        progress(&Tick {
            done: epoch + 1,
            total: cfg.epochs,
            values: &values[..if widths_now.is_some() { 2 } else { 1 }],
        });
        if cfg.checkpoint.stops_at(epoch + 1) {
            break;
        }
    }
    model.train_seconds = start.elapsed().as_secs_f64();
    Ok(model)
}

/// `keel.kind` of a CNN training checkpoint.
const CHECKPOINT_KIND: &str = "cnn-checkpoint";

/// Writes a checkpoint after `epoch` epochs: parameters, Adam's moments, the generator, batch
/// norm's running statistics and the learning curves.
fn save(
    model: &ImageModel,
    opt: &Optimizer,
    rng: &Xoshiro256PlusPlus,
    fingerprint: &str,
    epoch: usize,
    path: &std::path::Path,
) -> Result<()> {
    let mut running = Vec::new();
    for (m, v) in &model.state.running {
        running.extend(m.to_vec_f64()?);
        running.extend(v.to_vec_f64()?);
    }
    let loss: Vec<f64> = model.history.iter().map(|e| e.train_loss).collect();
    let widths: Vec<f64> = model
        .history
        .iter()
        .filter_map(|e| e.widths)
        .flatten()
        .collect();
    crate::checkpoint::save(
        path,
        &crate::checkpoint::Snapshot {
            kind: CHECKPOINT_KIND,
            fingerprint,
            epoch,
            params: &model.params,
            opt,
            rng,
            order: &[],
            extra_params: &[],
            series: &[
                ("running", &running),
                ("train_loss", &loss),
                ("widths", &widths),
            ],
            meta: std::collections::BTreeMap::new(),
        },
    )
}

/// Puts a checkpoint's running statistics and learning curves back into `model`.
fn restore(
    model: &mut ImageModel,
    r: &crate::checkpoint::Restored,
    path: &std::path::Path,
) -> Result<()> {
    let bad = |what: &str| Error::Malformed {
        path: path.to_path_buf(),
        reason: format!("{what} do not fit this network"),
    };
    let series = |k: &str| r.series.get(k).ok_or_else(|| bad(k));
    let running = series("running")?;
    let expect: usize = model.state.running.iter().map(|(m, _)| 2 * m.numel()).sum();
    if running.len() != expect {
        return Err(bad("batch-norm running statistics"));
    }
    let mut at = 0;
    for (m, v) in &mut model.state.running {
        let c = m.numel();
        let (dt, dev) = (m.dtype(), m.device());
        *m = Tensor::from_f64s(&running[at..at + c], &[c], dt)?.to_device(dev)?;
        *v = Tensor::from_f64s(&running[at + c..at + 2 * c], &[c], dt)?.to_device(dev)?;
        at += 2 * c;
    }
    let loss = series("train_loss")?;
    let widths = series("widths")?;
    let learned = model.widths.is_some();
    if loss.len() != r.epoch || widths.len() != if learned { 6 * r.epoch } else { 0 } {
        return Err(bad("learning curves"));
    }
    model.history = loss
        .iter()
        .enumerate()
        .map(|(e, &l)| ImageEpoch {
            epoch: e + 1,
            train_loss: l,
            widths: learned.then(|| std::array::from_fn(|k| widths[6 * e + k])),
        })
        .collect();
    Ok(())
}

/// Up to `count` training images transformed as in training (by the learned or fixed widths;
/// as they are without augmentation), channels averaged to one grey `[h, w]` image each.
///
/// # Errors
/// Engine errors.
pub fn transformed_samples(
    model: &ImageModel,
    set: &ImageSet,
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let n = count.min(set.len());
    let idx: Vec<usize> = (0..n).collect();
    let x = batch(set, &idx, DType::F64, Device::Cpu)?;
    let w = model.widths()?;
    let x = if w.iter().any(|&v| v != 0.0) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let theta = Tensor::from_f64s(&w, &[1, 6], DType::F64)?;
        no_grad(|| warp_batch(&x, &theta, &draw_u(&mut rng, n, DType::F64, Device::Cpu)?))?
    } else {
        x
    };
    let [c, h, wd] = dims(set.shape);
    let v = x.to_vec_f64()?;
    Ok((0..n)
        .map(|k| {
            (0..h * wd)
                .map(|p| (0..c).map(|ch| v[(k * c + ch) * h * wd + p]).sum::<f64>() / c as f64)
                .collect()
        })
        .collect())
}

/// Refuses, before training, a network [`export_bytes`] could not write: filter response
/// normalisation (`cNfrn`) has no layer in the core's CNN format. `flag` names the layers' flag.
///
/// # Errors
/// [`Error::InvalidInput`] naming `flag`.
pub fn exportable(flag: &str, spec: &[LayerSpec]) -> Result<()> {
    use crate::nn::cnn::Norm;
    if spec.iter().any(|l| {
        matches!(
            l,
            LayerSpec::Conv {
                norm: Norm::Frn,
                ..
            }
        )
    }) {
        return Err(Error::invalid(flag, "frn", FRN_NOT_EXPORTED));
    }
    Ok(())
}

const FRN_NOT_EXPORTED: &str = "filter response normalisation has no layer in the core's CNN format (it normalises each image by itself, so it does not fold into the convolution); export a network with batch norm (cN) or none (cNnobn)";

/// The trained network as a `keel.kind = "cnn"` safetensors file for `keel_core::nn::Cnn`
/// ([`crate::export::cnn::cnn_bytes`], which checks the result with the core's loader): batch
/// normalisation folded into each convolution with the running statistics
/// ([`crate::export::cnn::fold_batch_norm`]), dropout left out (the identity at test time), the
/// training set's pixel mean and standard deviation as the input normalisation, and Augerino's
/// widths θ with `copies` for test-time averaging when learned. `set` gives the class names.
///
/// # Errors
/// Device reads; [`Error::InvalidInput`] for a network the core cannot evaluate.
pub fn export_bytes(model: &ImageModel, set: &ImageSet, copies: usize) -> Result<Vec<u8>> {
    use crate::export::cnn::{cnn_bytes, fold_batch_norm, AugerinoExport, CnnConfig, CnnLayer};
    use crate::export::OutputKind;
    use crate::nn::cnn::{Layer, BN_EPS};
    let mut layers = Vec::new();
    let mut weights = Vec::new();
    let read = |id: ParamId| model.params.get(id).to_vec_f64();
    for layer in &model.cnn.layers {
        let i = layers.len();
        let mut push = |role: &str, shape: Vec<usize>, v: Vec<f64>| {
            weights.push((format!("layer{i}.{role}"), shape, v));
        };
        match layer {
            Layer::Conv(conv, bn, act) => {
                let (mut w, mut b) = (read(conv.weight)?, read(conv.bias)?);
                if let Some(bn) = bn {
                    let (rm, rv) = &model.state.running[bn.state];
                    (w, b) = fold_batch_norm(
                        &w,
                        Some(&b),
                        &read(bn.gamma)?,
                        &read(bn.beta)?,
                        &rm.to_vec_f64()?,
                        &rv.to_vec_f64()?,
                        BN_EPS,
                    )?;
                }
                let k = conv.kernel;
                layers.push(CnnLayer::Conv {
                    out: conv.out,
                    kernel: [k, k],
                    stride: conv.opts.stride,
                    padding: conv.opts.padding,
                    dilation: conv.opts.dilation,
                    groups: conv.opts.groups,
                    activation: act.name().to_string(),
                });
                push(
                    "weight",
                    vec![conv.out, conv.inp / conv.opts.groups, k, k],
                    w,
                );
                push("bias", vec![conv.out], b);
            }
            Layer::MaxPool(k) => layers.push(CnnLayer::MaxPool {
                kernel: [*k; 2],
                stride: [*k; 2],
                padding: [0, 0],
            }),
            Layer::AvgPool(k) => layers.push(CnnLayer::AvgPool {
                kernel: [*k; 2],
                stride: [*k; 2],
                padding: [0, 0],
            }),
            Layer::GlobalMean => layers.push(CnnLayer::GlobalMean),
            Layer::Flatten => layers.push(CnnLayer::Flatten),
            Layer::Dropout(_) => {}
            Layer::Frn(..) => return Err(Error::invalid("--layers", "frn", FRN_NOT_EXPORTED)),
            Layer::Dense(lin, act) => {
                layers.push(CnnLayer::Dense {
                    out: lin.out,
                    activation: act.name().to_string(),
                });
                push("weight", vec![lin.out, lin.inp], read(lin.weight)?);
                push("bias", vec![lin.out], read(lin.bias)?);
            }
        }
    }
    let (classes, output) = match &set.targets {
        Targets::Classes { classes, .. } => (Some(classes.clone()), OutputKind::Logits),
        Targets::Values(_) => (None, OutputKind::Regression),
    };
    let augerino = match model.augmentation {
        Augmentation::Learned { .. } => Some(AugerinoExport {
            widths: model.widths()?,
            copies: copies.max(1),
        }),
        _ => None,
    };
    let config = CnnConfig {
        input: model.cnn.input,
        layers,
        output,
        normalization: Some(model.normalize),
        augerino,
        classes,
    };
    cnn_bytes(&config, &weights)
}
