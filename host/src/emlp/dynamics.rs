//! Learned dynamics of the double spring pendulum (the EMLP paper's §7.3; the reference's
//! `experiments/hnn.py`, `experiments/neuralode.py` and `experiments/trainer/hamiltonian_dynamics.py`):
//!
//! - **EMLPH**: an EMLP computing a scalar `H(z)` from `z = (x₁, x₂, p₁, p₂) ∈ 4V`; the dynamics
//!   are its symplectic gradient `ż = J∇H = (∂H/∂p, −∂H/∂q)`, `∇H` by reverse mode, recorded so
//!   that training differentiates it again;
//! - **EMLP-ODE**: an EMLP `4V → 4V` giving `ż` directly;
//! - **MLPH**, **MLP-ODE**: the same with the reference's MLP (swish, Xavier-normal weights, zero
//!   biases) in place of the EMLP.
//!
//! Training is the reference's: the loss is the mean squared error of the 5-sample rollout of a
//! chunk (`dt = 0.2`) against the data, differentiated through the integrator, Adam at a constant
//! 3e-3, batch 500, no standardisation (the reference's `stats = (0, 1, 0, 1)`). The reference
//! integrates with `jax.experimental.ode.odeint` (adaptive Dormand–Prince, `rtol = 1e-4`); Keel
//! takes one classic RK4 step per sample (`h = 0.2`): on the true field it stays within 9e-5
//! (relative, the worst of 200 chunks) of the data over a chunk, two orders below the models'
//! errors (test `one_rk4_step_per_sample_follows_the_true_dynamics_closely`).
//!
//! Evaluation is the reference's rollout error (`log_rollout_error`, and the paper's figure
//! notebook): from the first state of each test chunk, the learned dynamics and the true ones are
//! integrated for 30 s (150 samples) with Dormand–Prince (`rtol = 2e-6` as the figures'
//! `pred_and_gt`; the truth at `rtol = 1e-7`), `err(t) = RMS(ẑ − z)/(RMS(ẑ) + RMS(z))` at each
//! sample, clamped below at 1e-5, and the geometric mean taken over all samples and test chunks.

use std::sync::Arc;
use std::time::Instant;

use keel_core::metrics::{relative_energy_error, relative_error};
use keel_core::random::Xoshiro256PlusPlus;

use super::group::Group;
use super::model::Emlp;
use super::rep::Rep;
use super::solve::Solver;
use super::spring::{self, SpringPendulum, State, CHUNK, DT, SAMPLES, STATE};
use crate::autodiff::{grad, no_grad};
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::limits;
use crate::nn::Mlp;
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::Params;
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;

/// Which learned dynamics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicsKind {
    /// Hamiltonian EMLP: `ż = J∇H`, `H` an EMLP `4V → V⁰`.
    Emlph,
    /// EMLP vector field `4V → 4V`.
    EmlpOde,
    /// Hamiltonian MLP.
    Mlph,
    /// MLP vector field.
    MlpOde,
}

impl DynamicsKind {
    /// Every model.
    pub const ALL: [DynamicsKind; 4] = [
        DynamicsKind::Emlph,
        DynamicsKind::EmlpOde,
        DynamicsKind::Mlph,
        DynamicsKind::MlpOde,
    ];

    /// Parses `emlph`, `emlp-ode`, `mlph`, `mlp-ode`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the choices.
    pub fn parse(s: &str) -> Result<DynamicsKind> {
        DynamicsKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "model",
                    s,
                    "unknown model for the double spring pendulum (emlph, emlp-ode, mlph, mlp-ode)",
                )
            })
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DynamicsKind::Emlph => "emlph",
            DynamicsKind::EmlpOde => "emlp-ode",
            DynamicsKind::Mlph => "mlph",
            DynamicsKind::MlpOde => "mlp-ode",
        }
    }

    /// Whether the model is a Hamiltonian (a scalar whose symplectic gradient is the field).
    pub fn hamiltonian(self) -> bool {
        matches!(self, DynamicsKind::Emlph | DynamicsKind::Mlph)
    }

    /// Whether the model is equivariant (an EMLP).
    pub fn equivariant(self) -> bool {
        matches!(self, DynamicsKind::Emlph | DynamicsKind::EmlpOde)
    }
}

/// The group a `--group` names, acting on the pendulum's 3-vectors: a group on ℝ³ as it is, a
/// group on ℝ² embedded to act on the first two coordinates (rotations and reflections about
/// the z axis, the reference's `O2eR3`, `SO2eR3`, `DkeR3`).
///
/// # Errors
/// [`Error::InvalidInput`] (setting `group`) for a group on any other dimension.
pub fn spring_group(g: &Arc<Group>) -> Result<Arc<Group>> {
    match g.d {
        3 => Ok(g.clone()),
        2 => {
            let name = match g.name.as_str() {
                "O(2)" => "O2eR3()".to_string(),
                "SO(2)" => "SO2eR3()".to_string(),
                n => match n.strip_prefix("D(").and_then(|r| r.strip_suffix(')')) {
                    Some(k) => format!("DkeR3({k})"),
                    None => format!("{n}eR3"),
                },
            };
            Ok(Group::embed(g, 3, name).shared())
        }
        d => Err(Error::invalid(
            "group",
            &g.name,
            format!(
                "acts on ℝ^{d}; the double spring pendulum's positions and momenta are vectors \
                 in ℝ³: give a group on ℝ² (it acts about the z axis, e.g. O(2), SO(2), D(6)) \
                 or on ℝ³"
            ),
        )),
    }
}

enum Body {
    Emlp(Box<Emlp>),
    Mlp(Mlp),
}

/// A learned vector field on the pendulum's states `[B, 12]`.
pub struct DynamicsNet {
    /// Which model.
    pub kind: DynamicsKind,
    body: Body,
}

impl DynamicsNet {
    /// A freshly initialised model (`group` used by the EMLPs only; already acting on ℝ³, see
    /// [`spring_group`]).
    ///
    /// # Errors
    /// Basis solving; invalid widths.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: DynamicsKind,
        params: &mut Params,
        group: &Arc<Group>,
        ch: usize,
        layers: usize,
        solver: &Solver,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<DynamicsNet> {
        let out = if kind.hamiltonian() { 1 } else { STATE };
        let body = if kind.equivariant() {
            let rep_in = Rep::Sum(vec![Rep::v(group); 4]);
            let rep_out = if kind.hamiltonian() {
                Rep::t(group, 0, 0)
            } else {
                rep_in.clone()
            };
            Body::Emlp(Box::new(Emlp::new(
                params, group, &rep_in, &rep_out, ch, layers, solver, dtype, rng,
            )?))
        } else {
            let sizes = crate::nn::widths(STATE, ch, layers, out);
            Body::Mlp(super::train::baseline_mlp(params, &sizes, dtype, rng)?)
        };
        Ok(DynamicsNet { kind, body })
    }

    /// The EMLP, for the equivariant models.
    pub fn emlp(&self) -> Option<&Emlp> {
        match &self.body {
            Body::Emlp(e) => Some(e),
            Body::Mlp(_) => None,
        }
    }

    /// The MLP, for the baselines.
    pub fn mlp(&self) -> Option<&Mlp> {
        match &self.body {
            Body::Emlp(_) => None,
            Body::Mlp(m) => Some(m),
        }
    }

    /// The network's own output on `z [B, 12]`: `H [B, 1]` or `ż [B, 12]`.
    ///
    /// # Errors
    /// Shape errors.
    pub fn output(&self, params: &Params, z: &Tensor) -> Result<Tensor> {
        match &self.body {
            Body::Emlp(e) => e.forward(params, z),
            Body::Mlp(m) => Ok(m.forward(params, z)?),
        }
    }

    /// `ż = f(z)` for `z [B, 12]`. For the Hamiltonian models `∇H` is taken by reverse mode;
    /// with `create_graph` it is recorded, so a loss on the field differentiates through it
    /// (training), otherwise it is a constant (evaluation: call this outside `no_grad`, with
    /// `params` that are not variables).
    ///
    /// # Errors
    /// Shape errors.
    pub fn field(&self, params: &Params, z: &Tensor, create_graph: bool) -> Result<Tensor> {
        if !self.kind.hamiltonian() {
            return self.output(params, z);
        }
        let zt = if z.is_tracked() {
            z.clone()
        } else {
            z.variable()
        };
        let h = self.output(params, &zt)?.sum_all()?;
        let half = STATE / 2;
        let g = match grad(&[&h], &[None], &[&zt], create_graph)?.pop().flatten() {
            Some(g) => g,
            // H ignores its input: the field is zero.
            None => return Ok(z.zeros_like()?),
        };
        Ok(Tensor::concat(
            &[g.narrow(1, half, half)?, g.narrow(1, 0, half)?.neg()?],
            1,
        )?)
    }

    /// The network with its constant tensors in `dtype` (parameters convert separately).
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<DynamicsNet> {
        let body = match &self.body {
            Body::Emlp(e) => Body::Emlp(Box::new(e.to_dtype(dtype)?)),
            Body::Mlp(m) => Body::Mlp(m.clone()),
        };
        Ok(DynamicsNet {
            kind: self.kind,
            body,
        })
    }

    /// The network with its constant tensors on `device`.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: Device) -> Result<DynamicsNet> {
        let body = match &self.body {
            Body::Emlp(e) => Body::Emlp(Box::new(e.to_device(device)?)),
            Body::Mlp(m) => Body::Mlp(m.clone()),
        };
        Ok(DynamicsNet {
            kind: self.kind,
            body,
        })
    }
}

/// One classic RK4 step of `f` from `z` with step `h`.
///
/// # Errors
/// The field's.
pub fn rk4_step(f: &impl Fn(&Tensor) -> Result<Tensor>, z: &Tensor, h: f64) -> Result<Tensor> {
    let k1 = f(z)?;
    let k2 = f(&z.add(&k1.mul_scalar(h / 2.0)?)?)?;
    let k3 = f(&z.add(&k2.mul_scalar(h / 2.0)?)?)?;
    let k4 = f(&z.add(&k3.mul_scalar(h)?)?)?;
    let sum = k1.add(&k2.add(&k3)?.mul_scalar(2.0)?)?.add(&k4)?;
    Ok(z.add(&sum.mul_scalar(h / 6.0)?)?)
}

/// The model's rollout of each chunk from its first state: `[B, CHUNK, 12]`, the first state
/// included (as the reference's `odeint` output).
///
/// # Errors
/// The field's.
pub fn rollout_chunks(
    net: &DynamicsNet,
    params: &Params,
    z0: &Tensor,
    create_graph: bool,
) -> Result<Tensor> {
    let b = z0.dims()[0];
    let f = |z: &Tensor| net.field(params, z, create_graph);
    let mut z = z0.clone();
    let mut out = Vec::with_capacity(CHUNK);
    out.push(z.reshape(&[b, 1, STATE])?);
    for _ in 1..CHUNK {
        z = rk4_step(&f, &z, DT)?;
        out.push(z.reshape(&[b, 1, STATE])?);
    }
    Ok(Tensor::concat(&out, 1)?)
}

/// First states `[B, 12]` and whole chunks `[B, CHUNK, 12]` of `chunks[idx]`.
fn batch(
    chunks: &[spring::Chunk],
    idx: &[usize],
    dtype: DType,
    dev: Device,
) -> Result<(Tensor, Tensor)> {
    let b = idx.len();
    let mut z0 = Vec::with_capacity(b * STATE);
    let mut all = Vec::with_capacity(b * CHUNK * STATE);
    for &i in idx {
        z0.extend(&chunks[i].z[0]);
        for z in &chunks[i].z {
            all.extend(z);
        }
    }
    Ok((
        Tensor::from_f64s(&z0, &[b, STATE], dtype)?.to_device(dev)?,
        Tensor::from_f64s(&all, &[b, CHUNK, STATE], dtype)?.to_device(dev)?,
    ))
}

/// One optimisation step on `chunks[idx]` (f32 parameters on `device`): the rollout MSE, its gradient through RK4 (and,
/// for the Hamiltonian models, through `∇H`), Adam at `lr`. Returns the loss; a non-finite
/// loss is returned without updating anything.
///
/// # Errors
/// Evaluation errors of the model.
pub fn step(
    net: &DynamicsNet,
    params: &mut Params,
    opt: &mut Optimizer,
    chunks: &[spring::Chunk],
    idx: &[usize],
    lr: f64,
    device: Device,
) -> Result<f64> {
    let (z0, target) = batch(chunks, idx, DType::F32, device)?;
    let vars = params.variables();
    let pred = rollout_chunks(net, &vars, &z0, true)?;
    let loss = pred.sub(&target)?.square()?.mean_all()?;
    crate::train::step(&loss, &vars, params, opt, lr, None)
}

/// The rollout MSE of `chunks[idx]` (f32 parameters on `device`; no parameter gradients).
fn chunk_mse(
    net: &DynamicsNet,
    params: &Params,
    chunks: &[spring::Chunk],
    idx: &[usize],
    device: Device,
) -> Result<f64> {
    let mut total = 0.0;
    for part in idx.chunks(500) {
        let (z0, target) = batch(chunks, part, DType::F32, device)?;
        let pred = if net.kind.hamiltonian() {
            rollout_chunks(net, params, &z0, false)?
        } else {
            no_grad(|| rollout_chunks(net, params, &z0, false))?
        };
        total += no_grad(|| pred.detach().sub(&target)?.square()?.sum_all()?.item())?;
    }
    Ok(total / (idx.len() * CHUNK * STATE) as f64)
}

/// `keel.kind` of the training checkpoints.
const CHECKPOINT_KIND: &str = "emlp-dynamics-checkpoint";

/// A training run on the double spring pendulum.
#[derive(Clone, Debug)]
pub struct DynamicsConfig {
    /// Model.
    pub model: DynamicsKind,
    /// Symmetry group on ℝ³ (EMLPs only; see [`spring_group`]).
    pub group: Arc<Group>,
    /// Training chunks (one per trajectory; the reference's 500).
    pub n_train: usize,
    /// Validation chunks (best epoch kept; the reference's 10 % of 5000).
    pub n_val: usize,
    /// Test chunks, each the start of a 30 s rollout.
    pub n_test: usize,
    /// Epochs (the reference's 2000).
    pub epochs: usize,
    /// Hidden channels (the reference's 128 for the dynamics).
    pub ch: usize,
    /// Hidden layers (3).
    pub layers: usize,
    /// Adam's constant learning rate (3e-3).
    pub lr: f64,
    /// Batch (500).
    pub batch: usize,
    /// Seed for the data, the initialisation and the batches.
    pub seed: u64,
    /// Checkpoints.
    pub checkpoint: crate::checkpoint::Options,
    /// Where the network trains.
    pub device: Device,
}

impl DynamicsConfig {
    /// The reference's configuration for `model` (3 × 128 channels, 2000 epochs, 500/500/500
    /// chunks, Adam 3e-3, batch 500) with seed 0 on the CPU.
    pub fn paper(model: DynamicsKind, group: Arc<Group>) -> DynamicsConfig {
        DynamicsConfig {
            model,
            group,
            n_train: 500,
            n_val: 500,
            n_test: 500,
            epochs: 2000,
            ch: 128,
            layers: 3,
            lr: 3e-3,
            batch: 500,
            seed: 0,
            checkpoint: Default::default(),
            device: Device::Cpu,
        }
    }

    /// Checks the sizes, rates and the group before anything is generated.
    ///
    /// # Errors
    /// The first invalid setting, named by its flag.
    pub fn validate(&self) -> Result<()> {
        for (setting, v) in [
            ("n_train", self.n_train),
            ("n_val", self.n_val),
            ("n_test", self.n_test),
            ("epochs", self.epochs),
            ("ch", self.ch),
            ("layers", self.layers),
            ("batch", self.batch),
        ] {
            limits::positive(setting, v)?;
        }
        let total = self.n_train as u128 + self.n_val as u128 + self.n_test as u128;
        if total > spring::MAX_TRAJECTORIES as u128 {
            return Err(Error::invalid(
                "n_train/n_val/n_test",
                format!("{}/{}/{}", self.n_train, self.n_val, self.n_test),
                format!(
                    "{total} trajectories asked for; at most {} are generated",
                    spring::MAX_TRAJECTORIES
                ),
            ));
        }
        limits::memory(
            "ch/layers",
            format!("{}/{}", self.ch, self.layers),
            "the layers' parameters",
            (self.ch as u128)
                .saturating_mul(self.ch as u128)
                .saturating_mul(self.layers as u128)
                .saturating_mul(4 * 4),
        )?;
        // Each epoch integrates every chunk: 4 RK4 steps of 4 field evaluations, each a
        // forward and a backward pass, differentiated again.
        limits::work(
            "n_train/epochs",
            format!("{}/{}", self.n_train, self.epochs),
            (self.epochs as u128)
                .saturating_mul(self.n_train as u128)
                .saturating_mul((self.ch as u128).saturating_mul(self.ch as u128))
                .saturating_mul(self.layers as u128 * 16 * 6),
            "multiply-adds",
        )?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "must be a positive number"));
        }
        if self.model.equivariant() && self.group.d != 3 {
            return Err(Error::invalid(
                "group",
                &self.group.name,
                "must act on ℝ³ (see `spring_group`)",
            ));
        }
        Ok(())
    }
}

/// A trained model and its test numbers.
pub struct DynamicsTrained {
    /// The network.
    pub net: DynamicsNet,
    /// Parameters at the best validation epoch (f32, on the host).
    pub params: Params,
    /// Test rollout error: geometric mean over the test chunks' 30 s rollouts.
    pub rollout_error: f64,
    /// Mean relative error of the true energy along the predicted rollouts.
    pub energy_error: f64,
    /// Mean relative error at each of the 150 samples, over the test rollouts.
    pub error_curve: Vec<f64>,
    /// Test rollout MSE of the 5-sample chunks (the training loss on the test chunks).
    pub test_mse: f64,
    /// Best validation chunk MSE.
    pub val_mse: f64,
    /// Its epoch (1-based).
    pub best_epoch: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Epochs done (fewer than `epochs` when stopped by `--stop-after`).
    pub epochs_run: usize,
    /// Training loss of the last epoch.
    pub train_loss: f64,
    /// Seconds of training (bases included; evaluation excluded).
    pub train_seconds: f64,
    /// Seconds of evaluation.
    pub eval_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// Hidden representation (EMLPs), in the reference's notation.
    pub hidden: Option<String>,
    /// Test rollouts that diverged before 30 s (scored 1 from there on; see [`evaluate`]).
    pub diverged: usize,
    /// The first test rollout: the truth…
    pub first_truth: Vec<State>,
    /// …and the model's (shorter if it diverged).
    pub first_rollout: Vec<State>,
}

/// Train per `cfg`, then evaluate on the test chunks.
///
/// # Errors
/// Invalid settings; divergence (the epoch is named); integration errors.
pub fn train(
    cfg: &DynamicsConfig,
    solver: &Solver,
    progress: &mut Observer,
) -> Result<DynamicsTrained> {
    cfg.validate()?;
    let t0 = Instant::now();
    let n = cfg.n_train + cfg.n_val + cfg.n_test;
    let data = spring::generate(n, cfg.seed)?;
    let chunks = &data.chunks;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0xD5B1_1E00);
    let mut params = Params::new();
    let net = DynamicsNet::new(
        cfg.model,
        &mut params,
        &cfg.group,
        cfg.ch,
        cfg.layers,
        solver,
        DType::F32,
        &mut rng,
    )?;
    let hidden = net.emlp().map(|e| super::model::describe(&e.hidden[0]));
    let parameters = params.numel();
    let dev = cfg.device;
    let net_dev = if dev == Device::Cpu {
        None
    } else {
        Some(net.to_device(dev)?)
    };
    let on_dev = net_dev.as_ref().unwrap_or(&net);
    let mut params = params.to_device(dev)?;
    let mut opt = Optimizer::new(OptimizerKind::adam(), &params)?;
    let batch = cfg.batch.min(cfg.n_train);
    let val_idx: Vec<usize> = (cfg.n_train..cfg.n_train + cfg.n_val).collect();
    let eval_every = (cfg.epochs / 50).max(1);
    let mut order: Vec<usize> = (0..cfg.n_train).collect();
    let mut best = (f64::INFINITY, 0usize, params.clone());
    let fingerprint = format!(
        "double-spring-pendulum {} {} n={}/{}/{} ch={} layers={} lr={:e} batch={} seed={} epochs={}",
        cfg.model.name(),
        cfg.group.name,
        cfg.n_train,
        cfg.n_val,
        cfg.n_test,
        cfg.ch,
        cfg.layers,
        cfg.lr,
        batch,
        cfg.seed,
        cfg.epochs
    );
    let mut start = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let mut best_params = best.2.clone();
        let r = crate::checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut params,
            &mut opt,
            &mut rng,
            &mut order,
            &mut [("best", &mut best_params)],
        )?;
        let (best_val, best_epoch) = r.best(path)?;
        best = (best_val, best_epoch, best_params);
        start = r.epoch;
    }
    progress(&Tick {
        done: start,
        total: cfg.epochs,
        values: &[],
    });
    let (mut epochs_run, mut train_loss, mut last_val) = (start, f64::NAN, None);
    for epoch in start..cfg.epochs {
        crate::data::shuffle(&mut order, &mut rng);
        let (mut sum, mut rows) = (0.0, 0usize);
        for idx in order.chunks(batch) {
            let l = step(on_dev, &mut params, &mut opt, chunks, idx, cfg.lr, dev)?;
            if !l.is_finite() {
                return Err(crate::train::diverged(l, epoch, cfg.lr, ""));
            }
            sum += l * idx.len() as f64;
            rows += idx.len();
        }
        train_loss = sum / rows as f64;
        epochs_run = epoch + 1;
        let stop = cfg.checkpoint.stops_at(epoch + 1);
        if (epoch + 1) % eval_every == 0 || epoch + 1 == cfg.epochs || stop {
            let v = chunk_mse(on_dev, &params, chunks, &val_idx, dev)?;
            if v < best.0 {
                best = (v, epoch + 1, params.clone());
            }
            last_val = Some(v);
        }
        if let (Some(path), true) = (
            &cfg.checkpoint.path,
            cfg.checkpoint.due(epoch + 1, cfg.epochs),
        ) {
            crate::checkpoint::save(
                path,
                &crate::checkpoint::Snapshot {
                    kind: CHECKPOINT_KIND,
                    fingerprint: &fingerprint,
                    epoch: epoch + 1,
                    params: &params,
                    opt: &opt,
                    rng: &rng,
                    order: &order,
                    extra_params: &[("best", &best.2)],
                    series: &[],
                    meta: crate::checkpoint::best_meta(best.0, best.1),
                },
            )?;
        }
        let shown = [("loss", train_loss), ("val", last_val.unwrap_or(f64::NAN))];
        progress(&Tick {
            done: epoch + 1,
            total: cfg.epochs,
            values: &shown,
        });
        if stop {
            break;
        }
    }
    let train_seconds = t0.elapsed().as_secs_f64();
    let (val_mse, best_epoch, best_params) = best;
    let best_params = best_params.to_device(Device::Cpu)?;
    let t1 = Instant::now();
    let test_idx: Vec<usize> = (cfg.n_train + cfg.n_val..n).collect();
    let test_mse = chunk_mse(&net, &best_params, chunks, &test_idx, Device::Cpu)?;
    let test_starts: Vec<State> = test_idx.iter().map(|&i| chunks[i].z[0]).collect();
    let mut ev = evaluate(&net, &best_params, &test_starts)?;
    let times: Vec<f64> = (0..SAMPLES).map(|k| k as f64 * DT).collect();
    let first_truth = SpringPendulum::PAPER.rollout(&test_starts[0], &times, 1e-7)?;
    Ok(DynamicsTrained {
        diverged: ev.diverged,
        first_truth,
        first_rollout: ev.predicted.swap_remove(0),
        net,
        params: best_params,
        rollout_error: ev.rollout_error,
        energy_error: ev.energy_error,
        error_curve: ev.error_curve,
        test_mse,
        val_mse,
        best_epoch,
        epochs: cfg.epochs,
        epochs_run,
        train_loss,
        train_seconds,
        eval_seconds: t1.elapsed().as_secs_f64(),
        parameters,
        hidden,
    })
}

/// Rollout errors of a model against the truth.
pub struct RolloutEvaluation {
    /// Geometric mean of the clamped relative errors over every sample of every rollout.
    pub rollout_error: f64,
    /// Mean relative error of the true energy along the predictions.
    pub energy_error: f64,
    /// Mean relative error at each sample.
    pub error_curve: Vec<f64>,
    /// The predictions, `[rollout][sample]`; a diverged rollout stops at its last finite sample.
    pub predicted: Vec<Vec<State>>,
    /// Rollouts whose learned dynamics left the finite numbers (or stiffened past
    /// [`INTERVAL_STEPS`]) before 30 s.
    pub diverged: usize,
}

/// Errors below this are counted as this (the paper's figure notebook).
pub const ERROR_FLOOR: f64 = 1e-5;

/// Most Dormand–Prince steps between two samples (0.2 s) of one evaluation rollout; a rollout
/// that needs more has diverged.
pub const INTERVAL_STEPS: usize = 2_000;

/// The learned dynamics (`params` on the host, any dtype) and the true ones rolled out for 30 s
/// (150 samples, `dt = 0.2`) from each of `starts`, compared as the reference does (module
/// docs).
///
/// A learned field need not stay bounded: a non-Hamiltonian one can blow up within the horizon.
/// Such a rollout is dropped from the batch at the sample where it fails and scored from there
/// on with the metrics' upper bound, 1 (the relative error `‖ẑ − z‖/(‖ẑ‖ + ‖z‖)` and the
/// relative energy error both tend to 1 as `ẑ` grows without bound); [`RolloutEvaluation`]
/// counts them.
///
/// # Errors
/// Errors of the model other than divergence; integration errors of the truth.
pub fn evaluate(net: &DynamicsNet, params: &Params, starts: &[State]) -> Result<RolloutEvaluation> {
    let sys = SpringPendulum::PAPER;
    let times: Vec<f64> = (0..SAMPLES).map(|k| k as f64 * DT).collect();
    let b = starts.len();
    let p64 = params.to_dtype(DType::F64)?;
    let net64 = net.to_dtype(DType::F64)?;
    let field = |y: &[f64]| -> Result<Vec<f64>> {
        let rows = y.len() / STATE;
        let z = Tensor::from_f64s(y, &[rows, STATE], DType::F64)?;
        let dz = if net64.kind.hamiltonian() {
            net64.field(&p64, &z, false)?
        } else {
            no_grad(|| net64.field(&p64, &z, false))?
        };
        Ok(dz.to_vec_f64()?)
    };
    let predicted = rollouts(&field, starts, &times)?;
    let (mut log_sum, mut energy) = (0.0, 0.0);
    let mut curve = vec![0.0; SAMPLES];
    let mut diverged = 0;
    for (z0, pred) in starts.iter().zip(&predicted) {
        let truth = sys.rollout(z0, &times, 1e-7)?;
        diverged += usize::from(pred.len() < SAMPLES);
        for (k, t) in truth.iter().enumerate() {
            let (e, de) = match pred.get(k) {
                Some(p) => (
                    relative_error(p, t),
                    relative_energy_error(sys.energy(p), sys.energy(t)),
                ),
                None => (1.0, 1.0),
            };
            curve[k] += e / b as f64;
            log_sum += e.max(ERROR_FLOOR).ln();
            energy += de;
        }
    }
    let count = (b * SAMPLES) as f64;
    Ok(RolloutEvaluation {
        rollout_error: (log_sum / count).exp(),
        energy_error: energy / count,
        error_curve: curve,
        predicted,
        diverged,
    })
}

/// Integrates `field` (on flat batches of states) from each start, sample to sample, over
/// `times`, all live rollouts as one batch; when an interval fails, the batch is halved until
/// the failing rollouts are found alone, and those end there.
fn rollouts(
    field: &impl Fn(&[f64]) -> Result<Vec<f64>>,
    starts: &[State],
    times: &[f64],
) -> Result<Vec<Vec<State>>> {
    let mut out: Vec<Vec<State>> = starts.iter().map(|z| vec![*z]).collect();
    let mut live: Vec<usize> = (0..starts.len()).collect();
    for w in times.windows(2) {
        let mut done = Vec::with_capacity(live.len());
        let mut groups = vec![live];
        while let Some(g) = groups.pop() {
            let y0: Vec<f64> = g.iter().flat_map(|&i| out[i][out[i].len() - 1]).collect();
            match crate::chnn::train::dopri5_batch(field, &y0, w, 2e-6, 1e-8, INTERVAL_STEPS) {
                Ok(ys) => {
                    let end = ys.last().map_or(&y0, |y| y);
                    for (&i, z) in g.iter().zip(end.chunks_exact(STATE)) {
                        let mut s = [0.0; STATE];
                        s.copy_from_slice(z);
                        out[i].push(s);
                    }
                    done.extend(g);
                }
                Err(Error::Solver { .. }) if g.len() > 1 => {
                    let (a, b) = g.split_at(g.len() / 2);
                    groups.push(b.to_vec());
                    groups.push(a.to_vec());
                }
                // This rollout has diverged: it ends at its last sample.
                Err(Error::Solver { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        done.sort_unstable();
        live = done;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integrator the models train through, on the true field: one RK4 step per 0.2 s
    /// sample against the data (dopri5, rtol 1e-7) over every training chunk of a set.
    #[test]
    fn one_rk4_step_per_sample_follows_the_true_dynamics_closely() {
        use keel_core::integrate::Rk4;
        let data = spring::generate(200, 5).unwrap();
        let rk4 = Rk4::new(DT).unwrap();
        let mut worst: f64 = 0.0;
        for c in &data.chunks {
            let mut z = c.z[0];
            for (k, want) in c.z.iter().enumerate().skip(1) {
                rk4.step(&SpringPendulum::PAPER, (k - 1) as f64 * DT, &mut z)
                    .unwrap();
                worst = worst.max(relative_error(&z, want));
            }
        }
        println!("worst relative error of the RK4 chunk rollouts: {worst:e}");
        // Measured 8.9e-5.
        assert!(worst < 2e-4, "{worst:e}");
    }

    /// `ż₀ = z₀²` blows up at `t = 1/z₀(0)` for a positive start: that rollout ends there, the
    /// others in the same batch go on and stay exact.
    #[test]
    fn a_rollout_that_blows_up_ends_alone() {
        let field = |y: &[f64]| -> Result<Vec<f64>> {
            Ok(y.chunks_exact(STATE)
                .flat_map(|z| {
                    let mut d = [0.0; STATE];
                    d[0] = z[0] * z[0];
                    d
                })
                .collect())
        };
        let start = |a: f64| {
            let mut z = [0.0; STATE];
            z[0] = a;
            z[3] = 1.0;
            z
        };
        let starts = [start(-0.1), start(0.5), start(0.0), start(-2.0)];
        let times: Vec<f64> = (0..SAMPLES).map(|k| k as f64 * DT).collect();
        let out = rollouts(&field, &starts, &times).unwrap();
        // 0.5 blows up at t = 2: samples up to t = 2 (11 of them, the last huge) at most.
        assert!(out[1].len() <= 11 && out[1].len() >= 5, "{}", out[1].len());
        for i in [0, 2, 3] {
            assert_eq!(out[i].len(), SAMPLES);
            let a = starts[i][0];
            for (k, z) in out[i].iter().enumerate() {
                let t = k as f64 * DT;
                let want = a / (1.0 - a * t);
                assert!(
                    (z[0] - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "{i} at {t}: {}",
                    z[0]
                );
                assert_eq!(z[3], 1.0);
            }
        }
    }
}
