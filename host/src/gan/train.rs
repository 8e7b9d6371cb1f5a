//! The training loop of [`crate::gan`]: outer iterations of critic steps then generator steps,
//! on the CPU or the GPU, resumable, with the run's metrics at the end.
//!
//! As the reference (`cifar10/main.py`):
//! - every optimizer is Adam with β = (0, 0.9); the critic's learning rate is `lr`, the
//!   generator's and the classifier's `lr / generator_steps`; all decay linearly to 0 over the
//!   run's outer iterations (the reference's horizon is its epochs × batches);
//! - each critic step draws a real batch and a fresh `z`; with the CT term the critic drops units
//!   in every pass and the term compares two passes over the real batch;
//! - for `ppo`, `D₀ = D(G(z))` on the fake batch of the last critic step, then each of the
//!   generator steps is one classifier step (BCE on a new real batch and fresh fakes, gradient norm
//!   clipped) followed by one generator step on that same `z`. The reference evaluates `G(z)`
//!   twice in the generator step (for `D₁` and for the critic score); here one evaluation feeds
//!   both, which gives the same gradient and moves the batch-norm running statistics once;
//! - for `wgan-gp` and `reweight` the generator steps draw a fresh `z` each and maximise
//!   `mean f(G(z))`, at the same learning rate and count as `ppo`'s, so that the three methods
//!   differ only in their objectives (`generator_steps = 1` with `lr` gives the usual WGAN-GP
//!   schedule).
//!
//! Every random draw — real batches, `z`, the penalty's interpolation weights, dropout seeds — is
//! made on the host from one seeded generator and uploaded, so a run on the GPU sees the numbers
//! a run on the CPU sees, and a resumed run those of an uninterrupted one. The host reads back
//! only the logged losses.

use std::time::Instant;

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::checkpoint::{self, State};
use super::data::{prepare_images, GanData, PixelMap, Prepared, RealBatches};
use super::export::Generator;
use super::features::FeatureNet;
use super::loss::{
    bce_with_probs, clipped_surrogate, consistency_term, critic_loss, gradient_penalty,
    probability_ratio, ClipRule,
};
use super::metrics::{fid, inception_score};
use super::nets::{Arch, Net, Pass, Role, Running, Sample};
use super::ring::ring_quality;
use super::variance::rolling_variance;
use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::{ParamId, Params};
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;

/// The three methods compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// WGAN-GP.
    WganGp,
    /// WGAN-GP with the critic's batch-softmax re-weighting of fakes.
    Reweight,
    /// Re-weighting and the probability-ratio clipped generator objective.
    Ppo,
}

impl Method {
    /// `wgan-gp`, `reweight` or `ppo`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `method`) for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "wgan-gp" => Ok(Method::WganGp),
            "reweight" => Ok(Method::Reweight),
            "ppo" => Ok(Method::Ppo),
            _ => Err(Error::invalid(
                "method",
                s,
                "expected wgan-gp, reweight or ppo",
            )),
        }
    }

    /// The name [`Method::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Method::WganGp => "wgan-gp",
            Method::Reweight => "reweight",
            Method::Ppo => "ppo",
        }
    }

    fn reweights(self) -> bool {
        self != Method::WganGp
    }
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct GanConfig {
    /// The data.
    pub data: GanData,
    /// The method.
    pub method: Method,
    /// The networks.
    pub arch: Arch,
    /// Latent size (the reference's `nz` = 128).
    pub latent: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Outer iterations.
    pub iterations: usize,
    /// Critic steps per outer iteration (the reference's `Diters` = 5).
    pub critic_steps: usize,
    /// Generator steps per outer iteration (`PPO_iters` = 5).
    pub generator_steps: usize,
    /// The critic's learning rate (1e-4); the generator's and classifier's are this over
    /// `generator_steps`.
    pub lr: f64,
    /// ε of the clipped surrogate (0.4).
    pub clip_eps: f64,
    /// Which clipping rule.
    pub clip_rule: ClipRule,
    /// λ of the gradient penalty (5).
    pub lambda_gp: f64,
    /// Add CT-GAN's consistency term (and dropout in the critic).
    pub consistency: bool,
    /// λ₂ of the consistency term (2).
    pub lambda_ct: f64,
    /// The consistency term's margin M (0).
    pub ct_margin: f64,
    /// Gradient-norm clip of the classifier (0.5).
    pub classifier_clip: f64,
    /// Samples drawn for the final metrics (2,000).
    pub eval_samples: usize,
    /// Window of the losses' rolling variance, in outer iterations.
    pub loss_window: usize,
    /// Sample sets kept along the run for the plot (evenly spaced, the last at the end).
    pub snapshots: usize,
    /// Points of the surrogate curve over `t ∈ [0, curve_span]` (0: none; `ppo` only).
    pub curve_points: usize,
    /// How far past the update the curve goes, in update lengths (1 = θ_new).
    pub curve_span: f64,
    /// The outer iteration (1-based) whose first generator update the curve follows (`None`:
    /// the middle of the run, where the learning rate is half its start).
    pub curve_at: Option<usize>,
    /// Seed of everything.
    pub seed: u64,
    /// Element type of the networks.
    pub dtype: DType,
    /// Where the networks train.
    pub device: Device,
    /// Checkpointing, counted in outer iterations.
    pub checkpoint: crate::checkpoint::Options,
}

impl GanConfig {
    /// The paper's defaults for `data` and `method`: MLPs of 3 × 128 for the ring, the DCGAN
    /// networks for images, batches of 256, 5 + 5 steps, Adam 1e-4, ε = 0.4, λ = 5.
    pub fn new(data: GanData, method: Method) -> Self {
        let arch = match data.sample() {
            Sample::Vector(_) => Arch::Mlp {
                width: 128,
                depth: 3,
            },
            Sample::Image(_) => Arch::Dcgan { width: 32 },
        };
        GanConfig {
            data,
            method,
            arch,
            latent: 128,
            batch: 256,
            iterations: 5000,
            critic_steps: 5,
            generator_steps: 5,
            lr: 1e-4,
            clip_eps: 0.4,
            clip_rule: ClipRule::Code,
            lambda_gp: 5.0,
            consistency: false,
            lambda_ct: 2.0,
            ct_margin: 0.0,
            classifier_clip: 0.5,
            eval_samples: 2000,
            loss_window: 100,
            snapshots: 4,
            curve_points: 41,
            curve_span: 4.0,
            curve_at: None,
            seed: 0,
            dtype: DType::F32,
            device: Device::Cpu,
            checkpoint: crate::checkpoint::Options::default(),
        }
    }

    /// Checks every setting before anything is allocated.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("latent", self.latent),
            ("batch", self.batch),
            ("iterations", self.iterations),
            ("critic_steps", self.critic_steps),
            ("generator_steps", self.generator_steps),
            ("eval_samples", self.eval_samples),
            ("loss_window", self.loss_window),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1"));
            }
        }
        let limits = [
            ("latent", self.latent, 65_536),
            ("batch", self.batch, 1 << 20),
            ("iterations", self.iterations, 100_000_000),
            ("critic_steps", self.critic_steps, 1000),
            ("generator_steps", self.generator_steps, 1000),
            ("eval_samples", self.eval_samples, 1 << 22),
            ("snapshots", self.snapshots, 64),
            ("curve_points", self.curve_points, 10_000),
        ];
        for (name, v, max) in limits {
            if v > max {
                return Err(Error::invalid(name, v, format!("at most {max}")));
            }
        }
        if self.eval_samples < 2 {
            return Err(Error::invalid(
                "eval_samples",
                self.eval_samples,
                "the metrics need at least 2 samples",
            ));
        }
        if !(self.curve_span > 0.0 && self.curve_span <= 1e6) {
            return Err(Error::invalid(
                "curve_span",
                self.curve_span,
                "must lie in (0, 1e6]",
            ));
        }
        if let Some(at) = self.curve_at {
            if at == 0 || at > self.iterations {
                return Err(Error::invalid(
                    "curve_at",
                    at,
                    format!("must be an outer iteration from 1 to {}", self.iterations),
                ));
            }
        }
        if !(self.clip_eps > 0.0 && self.clip_eps < 1.0) {
            return Err(Error::invalid(
                "clip_eps",
                self.clip_eps,
                "ε must lie in (0, 1)",
            ));
        }
        let finite_pos = [("lr", self.lr), ("classifier_clip", self.classifier_clip)];
        for (name, v) in finite_pos {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(name, v, "must be a positive number"));
            }
        }
        let finite_nonneg = [
            ("lambda_gp", self.lambda_gp),
            ("lambda_ct", self.lambda_ct),
            ("ct_margin", self.ct_margin),
        ];
        for (name, v) in finite_nonneg {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::invalid(name, v, "must be a number ≥ 0"));
            }
        }
        self.arch.check(self.data.sample())
    }

    /// The configuration in words, for checkpoints (a resume must match it).
    pub fn fingerprint(&self) -> String {
        format!(
            "gan data={} method={} model={} latent={} batch={} iterations={} steps={}+{} lr={} \
             eps={} rule={} gp={} ct={}/{}/{} clip={} seed={} dtype={:?}",
            self.data.name(),
            self.method.name(),
            self.arch.spec(),
            self.latent,
            self.batch,
            self.iterations,
            self.critic_steps,
            self.generator_steps,
            self.lr,
            self.clip_eps,
            self.clip_rule.name(),
            self.lambda_gp,
            self.consistency,
            self.lambda_ct,
            self.ct_margin,
            self.classifier_clip,
            self.seed,
            self.dtype,
        )
    }
}

/// The paper's Figure 1 along one generator update: the objectives at
/// `θ(t) = θ_old + t·(θ_new − θ_old)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curve {
    /// The outer iteration (1-based) whose first generator step was taken.
    pub iteration: usize,
    /// The interpolation parameter (0 = before, 1 = after the update).
    pub t: Vec<f64>,
    /// The clipped surrogate `mean(obj)` on the step's `z`, with the step's classifier and `D₀`.
    pub surrogate: Vec<f64>,
    /// The plain generator objective `mean f(G(z))`.
    pub plain: Vec<f64>,
}

/// What `keel gan train --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct GanReport {
    /// Data set.
    pub dataset: String,
    /// Method.
    pub method: Method,
    /// Networks.
    pub model: String,
    /// Outer iterations.
    pub iterations: usize,
    /// Critic and generator steps per outer iteration.
    pub critic_steps: usize,
    /// See `critic_steps`.
    pub generator_steps: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Latent size.
    pub latent: usize,
    /// Clipping rule (`ppo`).
    pub clip_rule: &'static str,
    /// ε.
    pub clip_eps: f64,
    /// Whether the CT term was on.
    pub consistency: bool,
    /// Seed.
    pub seed: u64,
    /// Ring: modes with at least 20 of 2,000 samples (scaled) within 3σ of their centre.
    pub modes_covered: Option<usize>,
    /// Ring: the share of samples within 3σ of some centre.
    pub high_quality_fraction: Option<f64>,
    /// Ring: high-quality samples per mode.
    pub per_mode: Option<Vec<usize>>,
    /// Images: FID between generated and held-out images on the feature network's features.
    pub fid: Option<f64>,
    /// Images: the same distance between training and held-out images (the floor).
    pub fid_real: Option<f64>,
    /// Images: IS of the generated images under the feature network (mean over 10 splits).
    pub inception_score: Option<f64>,
    /// Images: the feature network's accuracy on the held-out images.
    pub feature_accuracy: Option<f64>,
    /// Mean over the run of the critic loss's rolling variance (window `loss_window`).
    pub critic_loss_var: f64,
    /// The same for the generator loss.
    pub generator_loss_var: f64,
    /// Window of the rolling variances, in outer iterations.
    pub loss_window: usize,
    /// The critic's adversarial loss (without penalty) at the last critic step.
    pub final_critic_loss: f64,
    /// The generator's loss at the last generator step.
    pub final_generator_loss: f64,
    /// The Figure-1 curve along one generator update (`ppo`).
    pub surrogate_curve: Option<Curve>,
    /// Seconds of training (this process's part of a resumed run).
    pub train_seconds: f64,
    /// Outer iterations done before this process (resumed), else 0.
    pub resumed_at: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct GanRun {
    /// The report.
    pub report: GanReport,
    /// Critic and generator loss per outer iteration.
    pub critic_losses: Vec<f64>,
    /// See `critic_losses`.
    pub generator_losses: Vec<f64>,
    /// Samples at iterations along the run (row-major, data units).
    pub snapshots: Vec<(usize, Vec<f64>)>,
    /// The final samples in the generator's `[−1, 1]` (for images the first 64).
    pub samples: Vec<f64>,
    /// The trained generator.
    pub generator: Generator,
    /// Whether the run stopped early at `checkpoint.stop_after`.
    pub stopped_early: bool,
}

/// The three networks and their parameters.
pub(crate) struct Networks {
    pub g: Net,
    pub g_params: Params,
    pub g_running: Running,
    pub critic: Net,
    pub c_params: Params,
    pub classifier: Net,
    pub d_params: Params,
}

impl Networks {
    fn new(cfg: &GanConfig, rng: &mut Xoshiro256PlusPlus) -> Result<Self> {
        let sample = cfg.data.sample();
        let build = |role, prefix: &str, rng: &mut Xoshiro256PlusPlus| -> Result<_> {
            let mut p = Params::new();
            let (net, running) = Net::new(
                &mut p,
                prefix,
                role,
                cfg.arch,
                sample,
                cfg.latent,
                cfg.consistency,
                cfg.dtype,
                rng,
            )?;
            Ok((
                net,
                p.to_device(cfg.device)?,
                to_device(running, cfg.device)?,
            ))
        };
        let (g, g_params, g_running) = build(Role::Generator, "generator.", rng)?;
        let (critic, c_params, _) = build(Role::Critic, "critic.", rng)?;
        let (classifier, d_params, _) = build(Role::Classifier, "classifier.", rng)?;
        Ok(Networks {
            g,
            g_params,
            g_running,
            critic,
            c_params,
            classifier,
            d_params,
        })
    }
}

fn to_device(running: Running, device: Device) -> Result<Running> {
    running
        .into_iter()
        .map(|(m, v)| Ok((m.to_device(device)?, v.to_device(device)?)))
        .collect()
}

/// Adam with β = (0, 0.9), as every optimizer of the reference.
fn adam(params: &Params) -> Result<Optimizer> {
    Ok(Optimizer::new(
        OptimizerKind::Adam {
            beta1: 0.0,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        params,
    )?)
}

/// A copy that owns its buffers (an optimizer step may update parameters in place).
fn deep_copy(p: &Params) -> Result<Params> {
    let mut out = p.clone();
    no_grad(|| -> Result<()> {
        for i in 0..p.len() {
            out.set(ParamId(i), p.get(ParamId(i)).mul_scalar(1.0)?)?;
        }
        Ok(())
    })?;
    Ok(out)
}

struct Draws<'a> {
    cfg: &'a GanConfig,
    rng: Xoshiro256PlusPlus,
}

impl Draws<'_> {
    fn upload(&self, v: &[f64], dims: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_f64s(v, dims, self.cfg.dtype)?.to_device(self.cfg.device)?)
    }

    fn z(&mut self, b: usize) -> Result<Tensor> {
        let v: Vec<f64> = (0..b * self.cfg.latent)
            .map(|_| standard_normal::<f64, _>(&mut self.rng))
            .collect();
        self.upload(&v, &[b, self.cfg.latent])
    }

    fn uniforms(&mut self, b: usize) -> Result<Tensor> {
        let v: Vec<f64> = (0..b).map(|_| uniform::<f64, _>(&mut self.rng)).collect();
        self.upload(&v, &[b])
    }

    fn seed(&mut self) -> u64 {
        uniform::<f64, _>(&mut self.rng).to_bits()
    }
}

fn not_finite(what: &str, value: f64, iteration: usize, cfg: &GanConfig) -> Error {
    Error::invalid(
        "lr",
        cfg.lr,
        format!(
            "the {what} loss became {value} in outer iteration {iteration}; lower the learning \
             rate (the last checkpoint, if any, is kept)"
        ),
    )
}

/// Trains a GAN as `cfg` says, reporting each outer iteration to `observer`.
///
/// # Errors
/// [`Error::InvalidInput`] for settings that do not fit the data, a checkpoint of another run,
/// or a loss that becomes non-finite (naming the iteration; the last checkpoint stays);
/// device errors.
pub fn train(cfg: &GanConfig, observer: &mut Observer) -> Result<GanRun> {
    cfg.validate()?;
    let sample = cfg.data.sample();
    let prepared = match &cfg.data {
        GanData::Images { set, .. } => Some(prepare_images(set, cfg.seed)?),
        GanData::Ring(_) => None,
    };
    if let Some(p) = &prepared {
        if cfg.batch > p.n_train() {
            return Err(Error::invalid(
                "batch",
                cfg.batch,
                format!("larger than the {} training images", p.n_train()),
            ));
        }
    }
    let map = prepared.as_ref().map_or(PixelMap::IDENTITY, |p| p.map);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut nets = Networks::new(cfg, &mut rng)?;
    let mut opt_c = adam(&nets.c_params)?;
    let mut opt_g = adam(&nets.g_params)?;
    let mut opt_d = adam(&nets.d_params)?;
    let mut batches = RealBatches::new(prepared.as_ref().map_or(0, Prepared::n_train), &mut rng);
    let mut draws = Draws { cfg, rng };
    let mut critic_losses = Vec::with_capacity(cfg.iterations);
    let mut generator_losses = Vec::with_capacity(cfg.iterations);
    let mut snapshots: Vec<(usize, Vec<f64>)> = Vec::new();
    let fingerprint = cfg.fingerprint();
    let mut start = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        checkpoint::load(
            path,
            &fingerprint,
            &mut State {
                nets: &mut nets,
                opts: [&mut opt_g, &mut opt_c, &mut opt_d],
                rng: &mut draws.rng,
                batches: &mut batches,
                critic_losses: &mut critic_losses,
                generator_losses: &mut generator_losses,
                snapshots: &mut snapshots,
                iteration: &mut start,
            },
        )?;
    }
    let snapshot_at: Vec<usize> = (1..=cfg.snapshots)
        .map(|j| (cfg.iterations * j).div_ceil(cfg.snapshots).max(1))
        .collect();
    let t0 = Instant::now();
    let b = cfg.batch;
    let real_dims = sample.batch_dims(b);
    let mut curve = None;
    let curve_at = cfg.curve_at.unwrap_or(cfg.iterations.div_ceil(2));
    let mut stopped_early = false;
    let critic_pass = |seed: u64| {
        if cfg.consistency {
            Pass::Dropout(seed)
        } else {
            Pass::Probe
        }
    };
    for k in start..cfg.iterations {
        let decay = (1.0 - k as f64 / cfg.iterations as f64).max(0.0);
        let lr_c = cfg.lr * decay;
        let lr_g = cfg.lr / cfg.generator_steps as f64 * decay;
        let mut last: Option<(Tensor, Tensor)> = None;
        let mut critic_value = 0.0;
        for _ in 0..cfg.critic_steps {
            let real = batches.next(&cfg.data, prepared.as_ref(), b, &mut draws.rng)?;
            let x_r = draws.upload(&real, &real_dims)?;
            let z = draws.z(b)?;
            let a = draws.uniforms(b)?;
            let seeds = [draws.seed(), draws.seed(), draws.seed(), draws.seed()];
            let fake = no_grad(|| {
                nets.g
                    .forward(&nets.g_params, &mut nets.g_running, &z, Pass::Train)
            })?;
            let vars = nets.c_params.variables();
            let (f_r, h_r) = nets.critic.forward_with_features(
                &vars,
                &mut Vec::new(),
                &x_r,
                critic_pass(seeds[0]),
            )?;
            let f_r = super::nets::squeeze_scores(f_r)?;
            let f_f = nets
                .critic
                .forward(&vars, &mut Vec::new(), &fake, critic_pass(seeds[1]))?;
            let adversarial = critic_loss(&f_r, &f_f, cfg.method.reweights())?;
            let critic = |x: &Tensor| {
                nets.critic
                    .forward(&vars, &mut Vec::new(), x, critic_pass(seeds[2]))
            };
            let gp = gradient_penalty(&critic, &x_r, &fake, &a)?;
            let mut loss = adversarial.add(&gp.mul_scalar(cfg.lambda_gp)?)?;
            if cfg.consistency {
                let (f2, h2) = nets.critic.forward_with_features(
                    &vars,
                    &mut Vec::new(),
                    &x_r,
                    critic_pass(seeds[3]),
                )?;
                let f2 = super::nets::squeeze_scores(f2)?;
                loss = loss.add(&consistency_term(
                    &f_r,
                    &f2,
                    &h_r,
                    &h2,
                    cfg.lambda_ct,
                    cfg.ct_margin,
                )?)?;
            }
            critic_value = adversarial.item()?;
            let total =
                crate::train::step(&loss, &vars, &mut nets.c_params, &mut opt_c, lr_c, None)?;
            if !critic_value.is_finite() || !total.is_finite() {
                return Err(not_finite("critic", total, k + 1, cfg));
            }
            last = Some((z, fake));
        }
        let Some((z_last, fake_last)) = last else {
            unreachable!("critic_steps ≥ 1 is validated")
        };
        let mut generator_value = 0.0;
        match cfg.method {
            Method::Ppo => {
                let d0 = no_grad(|| {
                    nets.classifier.forward(
                        &nets.d_params,
                        &mut Vec::new(),
                        &fake_last,
                        Pass::Probe,
                    )
                })?;
                for j in 0..cfg.generator_steps {
                    // (1) The classifier: real batch → 1, fresh fakes → 0.
                    let real = batches.next(&cfg.data, prepared.as_ref(), b, &mut draws.rng)?;
                    let x_r = draws.upload(&real, &real_dims)?;
                    let z_new = draws.z(b)?;
                    let fake = no_grad(|| {
                        nets.g
                            .forward(&nets.g_params, &mut nets.g_running, &z_new, Pass::Train)
                    })?;
                    let vars = nets.d_params.variables();
                    let p_real =
                        nets.classifier
                            .forward(&vars, &mut Vec::new(), &x_r, Pass::Probe)?;
                    let p_fake =
                        nets.classifier
                            .forward(&vars, &mut Vec::new(), &fake, Pass::Probe)?;
                    let l_d = bce_with_probs(&p_real, 1.0)?.add(&bce_with_probs(&p_fake, 0.0)?)?;
                    let v = crate::train::step(
                        &l_d,
                        &vars,
                        &mut nets.d_params,
                        &mut opt_d,
                        lr_g,
                        Some(cfg.classifier_clip),
                    )?;
                    if !v.is_finite() {
                        return Err(not_finite("classifier", v, k + 1, cfg));
                    }
                    // (2) The generator on the critic steps' last z.
                    let seed = draws.seed();
                    let before = (k + 1 == curve_at && j == 0 && cfg.curve_points > 0)
                        .then(|| deep_copy(&nets.g_params))
                        .transpose()?;
                    let vars = nets.g_params.variables();
                    let x = nets
                        .g
                        .forward(&vars, &mut nets.g_running, &z_last, Pass::Train)?;
                    let d1 = nets.classifier.forward(
                        &nets.d_params,
                        &mut Vec::new(),
                        &x,
                        Pass::Probe,
                    )?;
                    let r = probability_ratio(&d0, &d1)?;
                    let adv = nets.critic.forward(
                        &nets.c_params,
                        &mut Vec::new(),
                        &x,
                        critic_pass(seed),
                    )?;
                    let obj = clipped_surrogate(&r, &adv, cfg.clip_eps, cfg.clip_rule)?;
                    let l_g = obj.mean_all()?.neg()?;
                    generator_value = crate::train::step(
                        &l_g,
                        &vars,
                        &mut nets.g_params,
                        &mut opt_g,
                        lr_g,
                        None,
                    )?;
                    if !generator_value.is_finite() {
                        return Err(not_finite("generator", generator_value, k + 1, cfg));
                    }
                    if let Some(old) = before {
                        curve = Some(surrogate_curve(
                            cfg,
                            &nets,
                            &old,
                            &z_last,
                            &d0,
                            seed,
                            k + 1,
                        )?);
                    }
                }
            }
            Method::WganGp | Method::Reweight => {
                for _ in 0..cfg.generator_steps {
                    let z = draws.z(b)?;
                    let seed = draws.seed();
                    let vars = nets.g_params.variables();
                    let x = nets
                        .g
                        .forward(&vars, &mut nets.g_running, &z, Pass::Train)?;
                    let adv = nets.critic.forward(
                        &nets.c_params,
                        &mut Vec::new(),
                        &x,
                        critic_pass(seed),
                    )?;
                    let l_g = adv.mean_all()?.neg()?;
                    generator_value = crate::train::step(
                        &l_g,
                        &vars,
                        &mut nets.g_params,
                        &mut opt_g,
                        lr_g,
                        None,
                    )?;
                    if !generator_value.is_finite() {
                        return Err(not_finite("generator", generator_value, k + 1, cfg));
                    }
                }
            }
        }
        critic_losses.push(critic_value);
        generator_losses.push(generator_value);
        let done = k + 1;
        if snapshot_at.contains(&done) {
            let rows = generate(cfg, &mut nets, cfg.eval_samples.min(2000), done)?;
            snapshots.push((done, rows.iter().map(|&v| map.to_data(v)).collect()));
        }
        observer(&Tick {
            done,
            total: cfg.iterations,
            values: &[("critic", critic_value), ("generator", generator_value)],
        });
        if cfg.checkpoint.due(done, cfg.iterations) {
            if let Some(path) = &cfg.checkpoint.path {
                checkpoint::save(
                    path,
                    &fingerprint,
                    &checkpoint::SavedState {
                        nets: &nets,
                        opts: [&opt_g, &opt_c, &opt_d],
                        rng: &draws.rng,
                        batches: &batches,
                        critic_losses: &critic_losses,
                        generator_losses: &generator_losses,
                        snapshots: &snapshots,
                        iteration: done,
                    },
                )?;
            }
        }
        if cfg.checkpoint.stops_at(done) && done < cfg.iterations {
            stopped_early = true;
            break;
        }
    }
    let train_seconds = t0.elapsed().as_secs_f64();
    let generator = Generator {
        net: nets.g.clone(),
        params: nets.g_params.to_device(Device::Cpu)?,
        running: to_device(nets.g_running.clone(), Device::Cpu)?,
        arch: cfg.arch,
        sample,
        latent: cfg.latent,
        map,
        method: cfg.method.name().into(),
        dataset: cfg.data.name(),
    };
    // The metrics, from samples of the final generator (running batch-norm statistics).
    let mut eval_rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x6576_616c);
    let unit = generator.sample_unit(cfg.eval_samples, &mut eval_rng)?;
    let mut report = GanReport {
        dataset: cfg.data.name(),
        method: cfg.method,
        model: cfg.arch.spec(),
        iterations: cfg.iterations,
        critic_steps: cfg.critic_steps,
        generator_steps: cfg.generator_steps,
        batch: cfg.batch,
        latent: cfg.latent,
        clip_rule: cfg.clip_rule.name(),
        clip_eps: cfg.clip_eps,
        consistency: cfg.consistency,
        seed: cfg.seed,
        modes_covered: None,
        high_quality_fraction: None,
        per_mode: None,
        fid: None,
        fid_real: None,
        inception_score: None,
        feature_accuracy: None,
        critic_loss_var: mean_rolling_variance(&critic_losses, cfg.loss_window),
        generator_loss_var: mean_rolling_variance(&generator_losses, cfg.loss_window),
        loss_window: cfg.loss_window,
        final_critic_loss: critic_losses.last().copied().unwrap_or(f64::NAN),
        final_generator_loss: generator_losses.last().copied().unwrap_or(f64::NAN),
        surrogate_curve: curve,
        train_seconds,
        resumed_at: start,
        device: cfg.device.to_string(),
    };
    match (&cfg.data, &prepared) {
        (GanData::Ring(ring), _) => {
            let q = ring_quality(ring, &unit)?;
            report.modes_covered = Some(q.modes_covered);
            report.high_quality_fraction = Some(q.high_quality_fraction);
            report.per_mode = Some(q.per_mode);
        }
        (GanData::Images { .. }, Some(p)) => image_metrics(cfg, p, &unit, &mut report)?,
        (GanData::Images { .. }, None) => {}
    }
    let samples: Vec<f64> = match sample {
        Sample::Vector(_) => unit.clone(),
        Sample::Image(s) => unit.iter().take(64 * s.pixels()).copied().collect(),
    };
    Ok(GanRun {
        report,
        critic_losses,
        generator_losses,
        snapshots,
        samples,
        generator,
        stopped_early,
    })
}

/// The mean of the rolling variance over the run (NaN for a run shorter than the window).
fn mean_rolling_variance(values: &[f64], window: usize) -> f64 {
    let v = rolling_variance(values, window.min(values.len()).max(1));
    let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// `n` samples in `[−1, 1]` from the generator in training mode without moving its running
/// statistics (the snapshots along the run), from a generator of their own so that taking them
/// changes nothing in the run.
fn generate(cfg: &GanConfig, nets: &mut Networks, n: usize, iteration: usize) -> Result<Vec<f64>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ (iteration as u64).rotate_left(32));
    let mut out = Vec::with_capacity(n * cfg.data.sample().numel());
    let mut left = n;
    while left > 0 {
        let m = left.min(500);
        let z: Vec<f64> = (0..m * cfg.latent)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let z = Tensor::from_f64s(&z, &[m, cfg.latent], cfg.dtype)?.to_device(cfg.device)?;
        let x = no_grad(|| {
            nets.g
                .forward(&nets.g_params, &mut nets.g_running, &z, Pass::Probe)
        })?;
        out.extend(x.to_vec_f64()?);
        left -= m;
    }
    Ok(out)
}

/// FID (generated vs held-out, and training vs held-out as the floor) and IS on the feature
/// network's features.
fn image_metrics(
    cfg: &GanConfig,
    p: &Prepared,
    unit: &[f64],
    report: &mut GanReport,
) -> Result<()> {
    let (Some(train_labels), Some(test_labels)) = (&p.train_labels, &p.test_labels) else {
        return Ok(());
    };
    if p.classes < 2 {
        return Ok(());
    }
    let inputs = p.sample.numel();
    let net = FeatureNet::train(
        &p.train,
        train_labels,
        &p.test,
        test_labels,
        inputs,
        p.classes,
        cfg.seed,
    )?;
    let n_test = test_labels.len();
    let test_f = net.features(&p.test)?;
    let gen_rows = unit.len() / inputs;
    let gen_f = net.features(unit)?;
    report.fid = Some(fid(&gen_f, &test_f, super::features::FEATURES)?);
    let train_n = n_test.min(p.n_train());
    let train_f = net.features(&p.train[..train_n * inputs])?;
    report.fid_real = Some(fid(&train_f, &test_f, super::features::FEATURES)?);
    let splits = 10.min(gen_rows);
    let (is, _) = inception_score(&net.logits(unit)?, p.classes, splits)?;
    report.inception_score = Some(is);
    report.feature_accuracy = Some(net.test_accuracy);
    Ok(())
}

/// The objectives along `θ_old → θ_new → beyond` for the update just taken.
#[allow(clippy::too_many_arguments)]
fn surrogate_curve(
    cfg: &GanConfig,
    nets: &Networks,
    old: &Params,
    z: &Tensor,
    d0: &Tensor,
    seed: u64,
    iteration: usize,
) -> Result<Curve> {
    let new = &nets.g_params;
    let n = cfg.curve_points.max(2);
    let mut c = Curve {
        iteration,
        t: Vec::with_capacity(n),
        surrogate: Vec::with_capacity(n),
        plain: Vec::with_capacity(n),
    };
    let pass = if cfg.consistency {
        Pass::Dropout(seed)
    } else {
        Pass::Probe
    };
    no_grad(|| -> Result<()> {
        for i in 0..n {
            let t = cfg.curve_span * i as f64 / (n - 1) as f64;
            let mut theta = new.clone();
            for p in 0..new.len() {
                let (o, w) = (old.get(ParamId(p)), new.get(ParamId(p)));
                theta.set(ParamId(p), o.add(&w.sub(o)?.mul_scalar(t)?)?)?;
            }
            let mut running = nets.g_running.clone();
            let x = nets.g.forward(&theta, &mut running, z, Pass::Probe)?;
            let d1 = nets
                .classifier
                .forward(&nets.d_params, &mut Vec::new(), &x, Pass::Probe)?;
            let r = probability_ratio(d0, &d1)?;
            let adv = nets
                .critic
                .forward(&nets.c_params, &mut Vec::new(), &x, pass)?;
            let obj = clipped_surrogate(&r, &adv, cfg.clip_eps, cfg.clip_rule)?;
            c.t.push(t);
            c.surrogate.push(obj.mean_all()?.item()?);
            c.plain.push(adv.mean_all()?.item()?);
        }
        Ok(())
    })?;
    Ok(c)
}
