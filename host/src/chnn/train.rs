//! Training and evaluation as in the reference's `pl_trainer.py` and `biases/datasets.py`: the mean
//! absolute error of a 5-sample rollout integrated with RK4 (3/8 rule) and differentiated
//! through the integrator, AdamW with a cosine schedule; evaluation by 100-step dopri5 rollouts
//! of the learned dynamics from test initial states.

use std::time::Instant;

use keel_core::integrate::dopri5_tableau as tb;
use keel_core::metrics::{relative_energy_error, relative_error, trapezoid_geometric_mean};
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

use super::coords::{self, Coords};
use super::data::Chunk;
use super::data::{generate, DataSet, SystemSpec, CHUNK};
use super::model::{on_nodes, Chnn, Constants, Delan, Hnn, ModelKind, Node};
use super::truth::{truth, Truth};
use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::limits;
use crate::optim::{Optimizer, OptimizerKind, Schedule};
use crate::params::Params;
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;

/// Seeds of the reference's data sets (pl_trainer: train 0, validation 1, test 2).
pub const TEST_SEED: u64 = 2;

/// A training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The system.
    pub system: SystemSpec,
    /// The model.
    pub model: ModelKind,
    /// Training trajectories (one chunk each).
    pub n_train: usize,
    /// Epochs.
    pub epochs: usize,
    /// Batch size (capped at `n_train`).
    pub batch: usize,
    /// Base learning rate (AdamW, cosine-annealed to 0 over the epochs).
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Hidden units per layer of the potential.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Seed of the initialisation and the batch order (the data sets have the reference's).
    pub seed: u64,
    /// Checkpoints (parameters, Adam moments, generator, batch order, loss history).
    pub checkpoint: crate::checkpoint::Options,
    /// Where the rollouts, their gradients and the optimiser run (the batches are copied there;
    /// the trained model comes back to the host).
    pub device: Device,
}

/// `keel.kind` of CHNN training checkpoints.
const CHECKPOINT_KIND: &str = "chnn-checkpoint";

impl TrainConfig {
    /// The configuration in words (a checkpoint records it; a resume must match it).
    fn fingerprint(&self) -> String {
        format!(
            "{} {:?} {} n_train={} epochs={} batch={} lr={:e} wd={:e} hidden={} layers={} seed={}",
            self.system.kind.name(),
            self.system.size,
            self.model.name(),
            self.n_train,
            self.epochs,
            self.batch,
            self.lr,
            self.weight_decay,
            self.hidden,
            self.layers,
            self.seed
        )
    }

    /// Checks sizes and rates.
    ///
    /// # Errors
    /// The first invalid setting, named by its flag.
    pub fn validate(&self) -> Result<()> {
        for (setting, v) in [
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("hidden", self.hidden),
            ("layers", self.layers),
        ] {
            limits::positive(setting, v)?;
        }
        // The potential's MLP, its gradient and Hessian terms over every time step of a batch.
        let widths: Vec<usize> = std::iter::once(12)
            .chain(std::iter::repeat_n(self.hidden, self.layers))
            .chain([1])
            .collect();
        let parameters = limits::dense_parameters(&widths);
        limits::memory(
            "hidden/layers",
            format!("{}/{}", self.hidden, self.layers),
            "the network",
            limits::training_bytes(
                parameters,
                (self.hidden as u128).saturating_mul(self.layers as u128),
                (self.batch.min(self.n_train) as u128).saturating_mul(CHUNK as u128 * 8),
                4,
            ),
        )?;
        limits::work(
            "n_train/epochs",
            format!("{}/{}", self.n_train, self.epochs),
            (self.epochs as u128)
                .saturating_mul(self.n_train as u128 * CHUNK as u128 * 8)
                .saturating_mul(parameters),
            "multiply-adds",
        )?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "must be a positive number"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::invalid(
                "weight_decay",
                self.weight_decay,
                "must be a non-negative number",
            ));
        }
        Ok(())
    }
}

/// A trained model.
pub struct Trained {
    /// The network.
    pub net: Net,
    /// Its parameters (f32, as trained).
    pub params: Params,
    /// Mean training loss of the last epoch.
    pub final_loss: f64,
    /// Mean training loss per epoch.
    pub history: Vec<f64>,
    /// Seconds of training (data generation excluded).
    pub train_seconds: f64,
    /// Where it trained (`net` and `params` are back on the host).
    pub device: Device,
}

/// A learned model of the dynamics.
#[derive(Clone, Debug)]
pub enum Net {
    /// CHNN on the Cartesian state `(x, p)`.
    Chnn(Chnn),
    /// CLNN on the Cartesian state `(x, v)` (the CHNN's parameters, Lagrangian dynamics).
    Clnn(Chnn),
    /// Neural ODE on generalised coordinates `(q, q̇)`.
    Node(Node),
    /// HNN on generalised coordinates and their momenta `(q, p)`.
    Hnn(Hnn),
    /// DeLaN on generalised coordinates `(q, q̇)`.
    Delan(Delan),
}

/// `M⁻¹` of a model where it is a constant matrix (CHNN, CLNN).
type MassInverse = Option<Tensor>;

impl Net {
    /// Builds the model `kind` for `graph` (the baselines read lengths and fixed points of their
    /// `z0`, a velocity-form Cartesian state of the system).
    ///
    /// # Errors
    /// Invalid sizes; a graph without generalised coordinates for a baseline.
    pub fn new(
        kind: ModelKind,
        params: &mut Params,
        graph: &super::model::Graph,
        z0: &[f64],
        hidden: usize,
        layers: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Net> {
        let f = DType::F32;
        let coords = || Coords::of(graph, z0).map_err(|why| coords::unsupported(kind.name(), &why));
        Ok(match kind {
            ModelKind::Chnn => Net::Chnn(Chnn::new(params, graph, hidden, layers, f, rng)?),
            ModelKind::Clnn => Net::Clnn(Chnn::new(params, graph, hidden, layers, f, rng)?),
            ModelKind::Node => Net::Node(Node::new(params, coords()?, hidden, layers, f, rng)?),
            ModelKind::Hnn => Net::Hnn(Hnn::new(params, coords()?, hidden, layers, f, rng)?),
            ModelKind::Delan => Net::Delan(Delan::new(params, coords()?, hidden, layers, f, rng)?),
        })
    }

    /// Which model.
    pub fn kind(&self) -> ModelKind {
        match self {
            Net::Chnn(_) => ModelKind::Chnn,
            Net::Clnn(_) => ModelKind::Clnn,
            Net::Node(_) => ModelKind::Node,
            Net::Hnn(_) => ModelKind::Hnn,
            Net::Delan(_) => ModelKind::Delan,
        }
    }

    /// The generalised coordinates of a baseline.
    fn coords(&self) -> Option<&Coords> {
        match self {
            Net::Node(m) => Some(&m.coords),
            Net::Hnn(m) => Some(&m.coords),
            Net::Delan(m) => Some(m.coords()),
            Net::Chnn(_) | Net::Clnn(_) => None,
        }
    }

    /// The Cartesian model's parameters.
    fn constrained(&self) -> Option<&Chnn> {
        match self {
            Net::Chnn(m) | Net::Clnn(m) => Some(m),
            Net::Node(_) | Net::Hnn(_) | Net::Delan(_) => None,
        }
    }

    /// The model's own coordinates of a chunk's samples (`[first half, second half]` per
    /// sample): Cartesian `(x, v)` for CHNN/CLNN, unwrapped `(q, q̇)` for the baselines.
    fn states(&self, c: &Chunk) -> Vec<Vec<f64>> {
        match self.coords() {
            None => c.z.clone(),
            Some(coords) => coords.unwrapped(&c.z),
        }
    }

    /// Half the state width (`n·d` or the degrees of freedom).
    fn half(&self) -> usize {
        match self {
            Net::Chnn(m) | Net::Clnn(m) => m.graph.n * m.graph.d,
            Net::Node(m) => m.coords.dof(),
            Net::Hnn(m) => m.coords.dof(),
            Net::Delan(m) => m.coords().dof(),
        }
    }

    /// The same model with its constant tensors in `dtype`.
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Net> {
        self.map(&move |t| Ok(t.to_dtype(dtype)?))
    }

    /// The same model with its constant tensors on `device` (the parameters move separately,
    /// [`Params::to_device`]).
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: Device) -> Result<Net> {
        self.map(&move |t| Ok(t.to_device(device)?))
    }

    /// The same model with `f` applied to each constant tensor (the Neural ODE has none).
    fn map(&self, f: &Constants) -> Result<Net> {
        Ok(match self {
            Net::Chnn(m) => Net::Chnn(m.map(f)?),
            Net::Clnn(m) => Net::Clnn(m.map(f)?),
            Net::Node(m) => Net::Node(m.clone()),
            Net::Hnn(m) => Net::Hnn(m.map(f)?),
            Net::Delan(m) => Net::Delan(m.map(f)?),
        })
    }

    /// `M⁻¹` where it is constant.
    fn mass_inverse(&self, params: &Params) -> Result<MassInverse> {
        self.constrained()
            .map(|m| m.masses.inverse(params))
            .transpose()
    }

    /// The field in the integrated coordinates (`(x, p)`, `(x, v)`, `(q, q̇)` or `(q, p)`).
    fn field(
        &self,
        params: &Params,
        minv: &MassInverse,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        match (self, minv) {
            (Net::Chnn(net), Some(minv)) => net.vector_field(params, a, b, minv),
            (Net::Clnn(net), Some(minv)) => Ok((b.clone(), net.acceleration(params, a, b, minv)?)),
            (Net::Node(net), _) => net.vector_field(params, a, b),
            (Net::Hnn(net), _) => net.vector_field(params, a, b),
            (Net::Delan(net), _) => net.vector_field(params, a, b),
            (Net::Chnn(_) | Net::Clnn(_), None) => Err(Error::Solver {
                reason: "constrained model without M⁻¹".into(),
            }),
        }
    }

    /// Integrated coordinates from velocity-form model coordinates (momenta where needed).
    fn to_integrated(&self, params: &Params, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Net::Chnn(net) => on_nodes(&net.masses.forward(params)?, b, net.graph.n, net.graph.d),
            Net::Hnn(net) => net.momentum(params, a, b),
            Net::Clnn(_) | Net::Node(_) | Net::Delan(_) => Ok(b.clone()),
        }
    }

    /// Velocity-form model coordinates from integrated ones.
    fn to_velocity(
        &self,
        params: &Params,
        minv: &MassInverse,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<Tensor> {
        match (self, minv) {
            (Net::Chnn(net), Some(minv)) => on_nodes(minv, b, net.graph.n, net.graph.d),
            (Net::Hnn(net), _) => net.velocity(params, a, b),
            _ => Ok(b.clone()),
        }
    }

    /// The rollout of a chunk from `(a0, b0)` (`[B, half]` each, velocity form) in the
    /// model's coordinates: `[B, CHUNK, 2·half]`.
    fn rollout_chunk(&self, params: &Params, a0: &Tensor, b0: &Tensor, dt: f64) -> Result<Tensor> {
        let bsz = a0.dims()[0];
        let h = self.half();
        let minv = self.mass_inverse(params)?;
        let f = |a: &Tensor, b: &Tensor| self.field(params, &minv, a, b);
        let (mut a, mut b) = (a0.clone(), self.to_integrated(params, a0, b0)?);
        let mut out = Vec::with_capacity(CHUNK);
        for k in 0..CHUNK {
            if k > 0 {
                (a, b) = rk4_38(&f, &a, &b, dt)?;
            }
            let v = self.to_velocity(params, &minv, &a, &b)?;
            out.push(Tensor::concat(&[a.clone(), v], 1)?.reshape(&[bsz, 1, 2 * h])?);
        }
        Ok(Tensor::concat(&out, 1)?)
    }

    /// The flat batch state the evaluation integrates, from velocity-form Cartesian states.
    fn start(&self, params: &Params, z0: &[Vec<f64>]) -> Result<Vec<f64>> {
        let b = z0.len();
        let h = self.half();
        let rows: Vec<Vec<f64>> = match self.coords() {
            None => z0.to_vec(),
            Some(coords) => z0.iter().map(|z| coords.to_generalized(z)).collect(),
        };
        let a: Vec<f64> = rows.iter().flat_map(|r| r[..h].iter().copied()).collect();
        let v: Vec<f64> = rows.iter().flat_map(|r| r[h..].iter().copied()).collect();
        let at = Tensor::from_f64s(&a, &[b, h], DType::F64)?;
        let vt = Tensor::from_f64s(&v, &[b, h], DType::F64)?;
        let second = no_grad(|| self.to_integrated(params, &at, &vt))?;
        Ok(a.into_iter().chain(second.to_vec_f64()?).collect())
    }

    /// The field on a flat batch state (f64, no gradients).
    fn flat_field(
        &self,
        params: &Params,
        minv: &MassInverse,
        y: &[f64],
        b: usize,
    ) -> Result<Vec<f64>> {
        let h = self.half();
        no_grad(|| {
            let a = Tensor::from_f64s(&y[..b * h], &[b, h], DType::F64)?;
            let c = Tensor::from_f64s(&y[b * h..], &[b, h], DType::F64)?;
            let (da, dc) = self.field(params, minv, &a, &c)?;
            let mut out = da.to_vec_f64()?;
            out.extend(dc.to_vec_f64()?);
            Ok(out)
        })
    }

    /// Velocity-form Cartesian states of a flat batch state.
    fn cartesian(
        &self,
        params: &Params,
        minv: &MassInverse,
        y: &[f64],
        b: usize,
    ) -> Result<Vec<Vec<f64>>> {
        let h = self.half();
        let a = Tensor::from_f64s(&y[..b * h], &[b, h], DType::F64)?;
        let c = Tensor::from_f64s(&y[b * h..], &[b, h], DType::F64)?;
        let v = no_grad(|| self.to_velocity(params, minv, &a, &c))?.to_vec_f64()?;
        Ok((0..b)
            .map(|i| {
                let s: Vec<f64> = y[i * h..(i + 1) * h]
                    .iter()
                    .chain(&v[i * h..(i + 1) * h])
                    .copied()
                    .collect();
                match self.coords() {
                    None => s,
                    Some(coords) => coords.to_cartesian(&s),
                }
            })
            .collect())
    }
}

/// Model-coordinate chunks as tensors on `device`: the first state's halves `[B, half]` and the
/// whole chunk `[B, CHUNK, 2·half]`.
fn batch(
    rows: &[Vec<Vec<f64>>],
    idx: &[usize],
    half: usize,
    device: Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let b = idx.len();
    let mut a0 = Vec::with_capacity(b * half);
    let mut b0 = Vec::with_capacity(b * half);
    let mut all = Vec::with_capacity(b * CHUNK * 2 * half);
    for &i in idx {
        let c = &rows[i];
        a0.extend(&c[0][..half]);
        b0.extend(&c[0][half..]);
        for z in c {
            all.extend(z);
        }
    }
    let tensor = |v: &[f64], dims: &[usize]| -> Result<Tensor> {
        Ok(Tensor::from_f64s(v, dims, DType::F32)?.to_device(device)?)
    };
    Ok((
        tensor(&a0, &[b, half])?,
        tensor(&b0, &[b, half])?,
        tensor(&all, &[b, CHUNK, 2 * half])?,
    ))
}

/// The chunks in the model's own coordinates (what [`step`] takes).
pub fn model_rows(net: &Net, chunks: &[Chunk]) -> Vec<Vec<Vec<f64>>> {
    chunks.iter().map(|c| net.states(c)).collect()
}

/// One optimisation step on the chunks `rows[idx]`: the mean absolute error of the 5-sample
/// rollout (RK4 3/8 rule, step `dt`), its gradient through the integrator, and the optimiser's
/// update at learning rate `lr`. Returns the loss; a non-finite loss is returned without
/// updating anything. The batch goes to the parameters' device (`net`'s constants must be there
/// too: [`Net::to_device`]).
///
/// # Errors
/// Evaluation errors of the model.
pub fn step(
    net: &Net,
    params: &mut Params,
    opt: &mut Optimizer,
    rows: &[Vec<Vec<f64>>],
    idx: &[usize],
    dt: f64,
    lr: f64,
) -> Result<f64> {
    let device = params.values().first().map_or(Device::Cpu, Tensor::device);
    let (a0, b0, target) = batch(rows, idx, net.half(), device)?;
    let vars = params.variables();
    let pred = net.rollout_chunk(&vars, &a0, &b0, dt)?;
    let loss = pred.sub(&target)?.abs()?.mean_all()?;
    crate::train::step(&loss, &vars, params, opt, lr, None)
}

/// One RK4 step, 3/8 rule (torchdiffeq's `rk4`): stages at `t, t + h/3, t + 2h/3, t + h`,
/// weights `(1, 3, 3, 1)/8`.
fn rk4_38(
    f: &impl Fn(&Tensor, &Tensor) -> Result<(Tensor, Tensor)>,
    x: &Tensor,
    p: &Tensor,
    h: f64,
) -> Result<(Tensor, Tensor)> {
    let (k1x, k1p) = f(x, p)?;
    let (k2x, k2p) = f(
        &x.add(&k1x.mul_scalar(h / 3.0)?)?,
        &p.add(&k1p.mul_scalar(h / 3.0)?)?,
    )?;
    let (k3x, k3p) = f(
        &x.add(&k2x.sub(&k1x.mul_scalar(1.0 / 3.0)?)?.mul_scalar(h)?)?,
        &p.add(&k2p.sub(&k1p.mul_scalar(1.0 / 3.0)?)?.mul_scalar(h)?)?,
    )?;
    let (k4x, k4p) = f(
        &x.add(&k1x.sub(&k2x)?.add(&k3x)?.mul_scalar(h)?)?,
        &p.add(&k1p.sub(&k2p)?.add(&k3p)?.mul_scalar(h)?)?,
    )?;
    let comb = |a: &Tensor, b: &Tensor, c: &Tensor, d: &Tensor| -> Result<Tensor> {
        Ok(a.add(&b.add(c)?.mul_scalar(3.0)?)?
            .add(d)?
            .mul_scalar(h / 8.0)?)
    };
    Ok((
        x.add(&comb(&k1x, &k2x, &k3x, &k4x)?)?,
        p.add(&comb(&k1p, &k2p, &k3p, &k4p)?)?,
    ))
}

/// Trains per `cfg` on `data` (the training set).
///
/// # Errors
/// Invalid settings; `n_train` beyond the data; divergence (the epoch is named).
pub fn train(cfg: &TrainConfig, data: &DataSet, progress: &mut Observer) -> Result<Trained> {
    cfg.validate()?;
    if cfg.n_train == 0 || cfg.n_train > data.chunks.len() {
        return Err(Error::invalid(
            "n_train",
            cfg.n_train,
            format!(
                "between 1 and the {} trajectories generated",
                data.chunks.len()
            ),
        ));
    }
    let sys = truth(cfg.system)?;
    let graph = sys.graph();
    let dt = data.chunks[0].t[1] - data.chunks[0].t[0];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut params = Params::new();
    let net = Net::new(
        cfg.model,
        &mut params,
        &graph,
        &data.chunks[0].z[0],
        cfg.hidden,
        cfg.layers,
        &mut rng,
    )?;
    let rows = model_rows(&net, &data.chunks[..cfg.n_train]);
    let host_net = net;
    let net = host_net.to_device(cfg.device)?;
    let mut params = params.to_device(cfg.device)?;
    let mut opt = Optimizer::new(OptimizerKind::adamw(cfg.weight_decay), &params)?;
    let schedule = Schedule::Cosine {
        total: cfg.epochs,
        min_lr: 0.0,
    };
    let bs = cfg.batch.min(cfg.n_train);
    let mut order: Vec<usize> = (0..cfg.n_train).collect();
    let t0 = Instant::now();
    let mut history = Vec::with_capacity(cfg.epochs);
    let fingerprint = cfg.fingerprint();
    let mut start = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let r = crate::checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut params,
            &mut opt,
            &mut rng,
            &mut order,
            &mut [],
        )?;
        history = r.series.get("loss").cloned().unwrap_or_default();
        if history.len() != r.epoch {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                reason: format!("{} losses recorded for {} epochs", history.len(), r.epoch),
            });
        }
        start = r.epoch;
    }
    progress(&Tick {
        done: start,
        total: cfg.epochs,
        values: &[],
    });
    for epoch in start..cfg.epochs {
        crate::data::shuffle(&mut order, &mut rng);
        let lr = schedule.lr(cfg.lr, epoch);
        let (mut total, mut count) = (0.0, 0usize);
        for idx in order.chunks(bs) {
            let l = step(&net, &mut params, &mut opt, &rows, idx, dt, lr)?;
            if !l.is_finite() {
                let kept = match &cfg.checkpoint.path {
                    Some(p) if p.exists() => {
                        format!("; the last good checkpoint {} is kept", p.display())
                    }
                    _ => String::new(),
                };
                return Err(crate::train::diverged(l, epoch, cfg.lr, &kept));
            }
            total += l * idx.len() as f64;
            count += idx.len();
        }
        let mean = total / count.max(1) as f64;
        history.push(mean);
        progress(&Tick {
            done: epoch + 1,
            total: cfg.epochs,
            values: &[("loss", mean)],
        });
        let stop = cfg.checkpoint.stops_at(epoch + 1);
        let due = cfg.checkpoint.due(epoch + 1, cfg.epochs);
        if let (Some(path), true) = (&cfg.checkpoint.path, due) {
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
                    extra_params: &[],
                    series: &[("loss", &history)],
                    meta: std::collections::BTreeMap::new(),
                },
            )?;
        }
        if stop {
            break;
        }
    }
    Ok(Trained {
        net: host_net,
        params: params.to_device(Device::Cpu)?,
        final_loss: history.last().copied().unwrap_or(f64::NAN),
        history,
        train_seconds: t0.elapsed().as_secs_f64(),
        device: cfg.device,
    })
}

/// The evaluation numbers of the reference (`notebooks/plot-relative-errors-v2.ipynb`,
/// `plot-energy-conservation-v2.ipynb`).
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean over test trajectories of the trapezoid geometric mean of the per-step relative
    /// error of the model's rollout.
    pub rollout_gm_error: f64,
    /// The same for ground truth started from a 1e-4 perturbation of the initial state
    /// (projected onto the constraints): how much of the error chaos alone explains.
    pub chaos_floor: f64,
    /// Mean over trajectories and steps of the relative energy error under the true
    /// Hamiltonian.
    pub energy_error: f64,
    /// Per-step relative error, averaged over trajectories (for plots).
    pub error_curve: Vec<f64>,
    /// The first test trajectory's true velocity-form Cartesian states, per step.
    pub first_truth: Vec<Vec<f64>>,
    /// The model's rollout of it.
    pub first_rollout: Vec<Vec<f64>>,
}

/// Most Dormand–Prince steps (accepted or rejected) of one evaluation rollout. Models trained
/// by `keel chnn train` take 100 to 750 steps over the 100-sample test horizon (chain
/// pendulums of 2 and 6 links, coupled pendulum, magnet pendulum, gyroscope, rotor; a potential
/// weight scaled by 10³); one with a weight of 10⁶ takes about 50,000 and one of 10¹² does not
/// finish in hours. Each step costs a few milliseconds on the CPU engine, so the bound also
/// bounds the time an evaluation may take (about a minute for 100 test trajectories).
pub const MAX_ROLLOUT_STEPS: usize = 20_000;

/// Integrates `f` from `y0` (one flat batch state) with Dormand–Prince 5(4), one shared step
/// size for the whole batch (as torchdiffeq does), landing on every output time; error norm
/// RMS of `err / (atol + rtol·max(|y|, |y_new|))`. At most `max_steps` steps, accepted or
/// rejected.
pub(crate) fn dopri5_batch(
    f: &impl Fn(&[f64]) -> Result<Vec<f64>>,
    y0: &[f64],
    times: &[f64],
    rtol: f64,
    atol: f64,
    max_steps: usize,
) -> Result<Vec<Vec<f64>>> {
    let axpy = |y: &[f64], terms: &[(f64, &Vec<f64>)], h: f64| -> Vec<f64> {
        let mut out = y.to_vec();
        for (c, k) in terms {
            out.iter_mut()
                .zip(k.iter())
                .for_each(|(o, k)| *o += h * c * k);
        }
        out
    };
    let mut y = y0.to_vec();
    let mut t = times.first().copied().unwrap_or(0.0);
    let mut out = vec![y.clone()];
    let mut k1 = f(&y)?;
    let mut h = times.get(1).map_or(0.01, |t1| (t1 - t) * 0.25).max(1e-6);
    let mut steps = 0usize;
    for &t_out in &times[1..] {
        while t < t_out - 1e-12 * t_out.abs().max(1.0) {
            steps += 1;
            if steps > max_steps {
                return Err(Error::Solver {
                    reason: format!(
                        "dopri5: the learned dynamics need more than {max_steps} steps to reach \
                         t = {t_out} (reached t = {t:.3e}); too stiff to integrate, e.g. an \
                         absurd weight in the model"
                    ),
                });
            }
            let hh = h.min(t_out - t);
            let k2 = f(&axpy(&y, &[(tb::A21, &k1)], hh))?;
            let k3 = f(&axpy(&y, &[(tb::A31, &k1), (tb::A32, &k2)], hh))?;
            let k4 = f(&axpy(
                &y,
                &[(tb::A41, &k1), (tb::A42, &k2), (tb::A43, &k3)],
                hh,
            ))?;
            let k5 = f(&axpy(
                &y,
                &[
                    (tb::A51, &k1),
                    (tb::A52, &k2),
                    (tb::A53, &k3),
                    (tb::A54, &k4),
                ],
                hh,
            ))?;
            let k6 = f(&axpy(
                &y,
                &[
                    (tb::A61, &k1),
                    (tb::A62, &k2),
                    (tb::A63, &k3),
                    (tb::A64, &k4),
                    (tb::A65, &k5),
                ],
                hh,
            ))?;
            let y_new = axpy(
                &y,
                &[
                    (tb::A71, &k1),
                    (tb::A73, &k3),
                    (tb::A74, &k4),
                    (tb::A75, &k5),
                    (tb::A76, &k6),
                ],
                hh,
            );
            let k7 = f(&y_new)?;
            let err = axpy(
                &vec![0.0; y.len()],
                &[
                    (tb::E1, &k1),
                    (tb::E3, &k3),
                    (tb::E4, &k4),
                    (tb::E5, &k5),
                    (tb::E6, &k6),
                    (tb::E7, &k7),
                ],
                hh,
            );
            let norm = (err
                .iter()
                .zip(&y)
                .zip(&y_new)
                .map(|((e, a), b)| {
                    let s = atol + rtol * a.abs().max(b.abs());
                    (e / s).powi(2)
                })
                .sum::<f64>()
                / y.len().max(1) as f64)
                .sqrt();
            if !norm.is_finite() {
                return Err(Error::Solver {
                    reason: "dopri5: the learned dynamics produced a non-finite state".into(),
                });
            }
            if norm <= 1.0 {
                t += hh;
                y = y_new;
                k1 = k7;
            }
            let factor = if norm == 0.0 {
                5.0
            } else {
                (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0)
            };
            h = hh * factor;
        }
        out.push(y.clone());
    }
    Ok(out)
}

/// Evaluates `net` on `n_test` test trajectories (seed [`TEST_SEED`]): 100-sample dopri5
/// rollouts (rtol 1e-7, f64) of the learned dynamics from each trajectory's initial state.
///
/// # Errors
/// Data generation and integration errors, among them [`Error::Solver`] for dynamics that
/// need more than [`MAX_ROLLOUT_STEPS`] steps.
pub fn evaluate(
    net: &Net,
    params: &Params,
    system: SystemSpec,
    test: &DataSet,
) -> Result<Evaluation> {
    evaluate_within(net, params, system, test, MAX_ROLLOUT_STEPS)
}

/// As [`evaluate`], with the rollout bounded by `max_steps` Dormand–Prince steps.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_within(
    net: &Net,
    params: &Params,
    system: SystemSpec,
    test: &DataSet,
    max_steps: usize,
) -> Result<Evaluation> {
    let sys = truth(system)?;
    let nd = {
        let g = sys.graph();
        g.n * g.d
    };
    let b = test.trajectories.len();
    let times = test.trajectories[0].t.clone();
    let steps = times.len();
    // The learned field in f64 on the whole test batch.
    let p64 = params.to_dtype(DType::F64)?;
    let net64 = net.to_dtype(DType::F64)?;
    let minv = net64.mass_inverse(&p64)?;
    let z0: Vec<Vec<f64>> = test
        .trajectories
        .iter()
        .map(|tr| tr.x[0].iter().chain(&tr.v[0]).copied().collect())
        .collect();
    let y0 = net64.start(&p64, &z0)?;
    let field = |y: &[f64]| net64.flat_field(&p64, &minv, y, b);
    let ys = dopri5_batch(&field, &y0, &times, 1e-7, 1e-9, max_steps)?;
    // Velocity-form Cartesian state of every prediction: pred[trajectory][step].
    let mut pred = vec![Vec::with_capacity(steps); b];
    for y in &ys {
        for (i, z) in net64.cartesian(&p64, &minv, y, b)?.into_iter().enumerate() {
            pred[i].push(z);
        }
    }
    let dt = times[1] - times[0];
    let t_total = dt * steps as f64;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x0C4A_0500);
    let (mut gm, mut floor, mut energy) = (0.0, 0.0, 0.0);
    let mut curve = vec![0.0; steps];
    for (tr, pr) in test.trajectories.iter().zip(&pred) {
        let truth_z: Vec<Vec<f64>> = (0..steps)
            .map(|k| tr.x[k].iter().chain(&tr.v[k]).copied().collect())
            .collect();
        let errs: Vec<f64> = (0..steps)
            .map(|k| relative_error(&pr[k], &truth_z[k]))
            .collect();
        curve
            .iter_mut()
            .zip(&errs)
            .for_each(|(c, e)| *c += e / b as f64);
        gm += trapezoid_geometric_mean(&errs, dt, t_total).unwrap_or(f64::NAN);
        energy += (0..steps)
            .map(|k| relative_energy_error(sys.energy(&pr[k][..nd], &pr[k][nd..]), tr.energy[k]))
            .sum::<f64>()
            / steps as f64;
        floor += chaos(sys.as_ref(), &truth_z, &times, dt, t_total, nd, &mut rng)?;
    }
    let bf = b as f64;
    let first_truth = (0..steps)
        .map(|k| {
            let tr = &test.trajectories[0];
            tr.x[k].iter().chain(&tr.v[k]).copied().collect()
        })
        .collect();
    Ok(Evaluation {
        rollout_gm_error: gm / bf,
        chaos_floor: floor / bf,
        energy_error: energy / bf,
        error_curve: curve,
        first_truth,
        first_rollout: pred.swap_remove(0),
    })
}

/// The geometric-mean error of ground truth from `z0 + 1e-4·N(0, 1)` (projected) against the
/// unperturbed ground truth.
fn chaos(
    sys: &dyn Truth,
    truth_z: &[Vec<f64>],
    times: &[f64],
    dt: f64,
    t_total: f64,
    nd: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<f64> {
    let mut z: Vec<f64> = truth_z[0]
        .iter()
        .map(|v| v + 1e-4 * standard_normal::<f64, _>(rng))
        .collect();
    let (x, v) = z.split_at_mut(nd);
    sys.project(x, v)?;
    let pert = sys.rollout(x, v, times, 1e-7)?;
    let errs: Vec<f64> = pert
        .iter()
        .zip(truth_z)
        .map(|(a, b)| relative_error(a, b))
        .collect();
    Ok(trapezoid_geometric_mean(&errs, dt, t_total).unwrap_or(f64::NAN))
}

/// Rolls the learned dynamics out from velocity-form Cartesian states `z0` with `steps` classic
/// RK4 steps of `dt` in f64 on the engine (the host's side of the host–core comparison):
/// velocity-form Cartesian states, `[trajectory][step]`, the initial state first.
///
/// # Errors
/// Evaluation errors of the model.
pub fn rk4_rollout(
    net: &Net,
    params: &Params,
    z0: &[Vec<f64>],
    dt: f64,
    steps: usize,
) -> Result<Vec<Vec<Vec<f64>>>> {
    let b = z0.len();
    let p64 = params.to_dtype(DType::F64)?;
    let net = net.to_dtype(DType::F64)?;
    let minv = net.mass_inverse(&p64)?;
    let f = |y: &[f64]| net.flat_field(&p64, &minv, y, b);
    let axpy = |y: &[f64], k: &[f64], h: f64| -> Vec<f64> {
        y.iter().zip(k).map(|(a, k)| a + h * k).collect()
    };
    let mut y = net.start(&p64, z0)?;
    let mut out = vec![Vec::with_capacity(steps + 1); b];
    for step in 0..=steps {
        if step > 0 {
            let k1 = f(&y)?;
            let k2 = f(&axpy(&y, &k1, dt / 2.0))?;
            let k3 = f(&axpy(&y, &k2, dt / 2.0))?;
            let k4 = f(&axpy(&y, &k3, dt))?;
            for (i, v) in y.iter_mut().enumerate() {
                *v += dt / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
            }
        }
        for (o, z) in out.iter_mut().zip(net.cartesian(&p64, &minv, &y, b)?) {
            o.push(z);
        }
    }
    Ok(out)
}

/// Test set for `system` with the reference's seed.
///
/// # Errors
/// As [`generate`].
pub fn test_set(system: SystemSpec, n_test: usize) -> Result<DataSet> {
    let max = super::data::MAX_TRAJECTORIES;
    if n_test == 0 || n_test > max {
        return Err(Error::invalid(
            "n_test",
            n_test,
            format!("between 1 and {max} trajectories"),
        ));
    }
    generate(system, n_test, TEST_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The test horizon: 100 samples 0.03 s apart.
    fn times() -> Vec<f64> {
        (0..100).map(|k| k as f64 * 0.03).collect()
    }

    /// `y' = −y` lands on `e^{−t}` within the tolerance, far inside the bound.
    #[test]
    fn a_smooth_rollout_lands_on_the_solution() {
        let t = times();
        let ys = dopri5_batch(
            &|y: &[f64]| Ok(y.iter().map(|v| -v).collect()),
            &[1.0, 2.0],
            &t,
            1e-7,
            1e-9,
            MAX_ROLLOUT_STEPS,
        )
        .unwrap();
        for (y, t) in ys.iter().zip(&t) {
            for (v, y0) in y.iter().zip([1.0, 2.0]) {
                let exact = y0 * (-t).exp();
                assert!((v - exact).abs() <= 1e-6 * exact, "t = {t}: {v} vs {exact}");
            }
        }
    }

    /// `y' = −10¹²·y` (explicit Dormand–Prince is stable only for `h` below about 3·10⁻¹²) stops
    /// at the step bound with an error that says so, after at most 6 field evaluations per step
    /// and one to start. Before the bound it went on for 10⁶ steps (6·10⁶ evaluations), hours
    /// for a learned field.
    #[test]
    fn a_stiff_rollout_stops_at_the_step_bound() {
        let calls = Cell::new(0usize);
        let f = |y: &[f64]| {
            calls.set(calls.get() + 1);
            Ok(y.iter().map(|v| -1e12 * v).collect())
        };
        let e =
            dopri5_batch(&f, &[1.0, -0.5], &times(), 1e-7, 1e-9, MAX_ROLLOUT_STEPS).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("more than {MAX_ROLLOUT_STEPS} steps")),
            "{e}"
        );
        assert!(
            calls.get() <= 1 + 6 * MAX_ROLLOUT_STEPS,
            "{} field evaluations",
            calls.get()
        );
    }
}
