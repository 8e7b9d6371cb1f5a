//! SPRO and its drivers (Benton, Maddox, Lotfi & Wilson, *Loss Surface Simplexes for Mode
//! Connecting Volumes and Fast Ensembling*, ICML 2021; g-benton/loss-surface-simplexes
//! `simplex/utils.py::train_epoch_volume`, `experiments/*/ensemble_trainer.py`,
//! `complex_iterative.py`).
//!
//! A vertex stage adds vertex `v` at the centroid of the complex's existing vertices, freezes
//! every earlier vertex, and trains `v` with a fresh optimizer (SGD with momentum 0.9 and weight
//! decay on the vertex's own parameters, cosine-annealed over the stage; or Adam, as the
//! two-spirals notebook) on
//!
//! ```text
//! loss = Σ_{s=1..n_sample} CE(f(x; Σ_j α_j^(s) w_j), y)  −  λ_v · log(V²(simplex 0) + 1e−4)
//! ```
//!
//! with one `α ~ Dirichlet(1)` per draw shared by the mini-batch, on a simplex of the complex
//! picked uniformly per draw. The sum over draws is the reference's (its `acc_loss.div(nsample)`
//! is never assigned); the mean is [`SimplexConfig::mean_over_samples`]. `V²` is the
//! Cayley–Menger squared volume in `f64` ([`super::volume`]) and
//! `λ_v = max(LMBD / log(V²_rand + 1e−4), 1e−8)` with `V²_rand` the squared volume of a freshly
//! initialised simplex of the same vertex count (`reg_pars`).
//!
//! Drivers: ESPRO — `K` independent simplexes, each a base network trained from scratch
//! (`base_epochs`, one sample, no volume term) and `n − 1` vertices added by SPRO; the
//! mode-connecting complex — `n_mode` base networks, each alone in its simplex, and `n − 1`
//! connectors each added to every simplex (simplex `i` = {mode i, c₁ … c_k}), the first trained
//! without the volume term (`train_epoch_multi_sample`), later ones with it.

use std::time::Instant;

use keel_core::random::{uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::data::Problem;
use super::net::{flatten, unflatten, Arch, Net};
use super::volume::{cayley_menger, volume_gradient};
use super::SimplexModel;
use crate::autodiff::{backward, no_grad};
use crate::backend::{DType, Device};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::nn::cnn::CnnState;
use crate::optim::{Optimizer, OptimizerKind, Schedule};
use crate::params::{ParamId, Params};
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;

/// How vertices are organised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// ESPRO: `components` independent simplexes.
    Espro {
        /// K.
        components: usize,
    },
    /// A mode-connecting complex: `modes` base networks joined by shared connectors.
    Complex {
        /// n_mode.
        modes: usize,
    },
}

/// The optimizer of every stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optim {
    /// SGD, momentum 0.9 (the ESPRO scripts).
    Sgd,
    /// Adam (the two-spirals notebook).
    Adam,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct SimplexConfig {
    /// The network.
    pub arch: Arch,
    /// ESPRO or a mode-connecting complex.
    pub driver: Driver,
    /// Vertices per simplex, the base included (n ≥ 1).
    pub vertices: usize,
    /// Epochs of each base network.
    pub base_epochs: usize,
    /// Epochs of each added vertex.
    pub vertex_epochs: usize,
    /// Dirichlet draws per mini-batch in vertex stages.
    pub n_sample: usize,
    /// Average the draws' losses instead of summing them (the reference sums).
    pub mean_over_samples: bool,
    /// `LMBD` of the volume coefficient; 0 turns the volume term off.
    pub lmbd: f64,
    /// Learning rate of base networks.
    pub lr: f64,
    /// Learning rate of added vertices.
    pub vertex_lr: f64,
    /// Weight decay (L2 on the trained vertex's parameters).
    pub weight_decay: f64,
    /// SGD (momentum 0.9) or Adam.
    pub optimizer: Optim,
    /// Cosine annealing over each stage (else a constant rate).
    pub cosine: bool,
    /// Mini-batch size (0: the whole training set).
    pub batch_size: usize,
    /// Interior points per simplex used for prediction (S).
    pub points: usize,
    /// Seed of initialisation, batch order, Dirichlet draws and the prediction points.
    pub seed: u64,
    /// Element type of training.
    pub dtype: DType,
    /// Where to train.
    pub device: Device,
    /// Checkpoints.
    pub checkpoint: checkpoint::Options,
}

impl SimplexConfig {
    /// Checks the settings, naming the one at fault.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn validate(&self) -> Result<()> {
        let k = match self.driver {
            Driver::Espro { components } => ("components", components),
            Driver::Complex { modes } => ("modes", modes),
        };
        if k.1 == 0 {
            return Err(Error::invalid(k.0, 0, "must be at least 1"));
        }
        if self.vertices == 0 {
            return Err(Error::invalid("vertices", 0, "must be at least 1"));
        }
        if self.vertices > 12 {
            return Err(Error::invalid(
                "vertices",
                self.vertices,
                "at most 12 (the volume's determinants grow factorially)",
            ));
        }
        if self.base_epochs == 0 {
            return Err(Error::invalid("base_epochs", 0, "must be at least 1"));
        }
        if self.vertices > 1 && self.vertex_epochs == 0 {
            return Err(Error::invalid("vertex_epochs", 0, "must be at least 1"));
        }
        if self.n_sample == 0 {
            return Err(Error::invalid("n_sample", 0, "must be at least 1"));
        }
        if self.points == 0 {
            return Err(Error::invalid("points", 0, "must be at least 1"));
        }
        for (name, v) in [("lr", self.lr), ("vertex_lr", self.vertex_lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(name, v, "must be positive and finite"));
            }
        }
        if !(self.lmbd >= 0.0 && self.lmbd.is_finite()) {
            return Err(Error::invalid("lmbd", self.lmbd, "must be ≥ 0 and finite"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::invalid(
                "weight_decay",
                self.weight_decay,
                "must be ≥ 0 and finite",
            ));
        }
        Ok(())
    }

    fn kind(&self) -> OptimizerKind {
        match self.optimizer {
            Optim::Sgd => OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: self.weight_decay,
            },
            Optim::Adam => OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: self.weight_decay,
            },
        }
    }

    /// Simplexes (components) in the exported model: K, or n_mode.
    pub fn simplexes(&self) -> usize {
        match self.driver {
            Driver::Espro { components } => components,
            Driver::Complex { modes } => modes,
        }
    }

    fn fingerprint(&self, problem: &Problem) -> String {
        format!(
            "simplex {:?} {:?} n={} base={} vertex={} ns={} mean={} lmbd={} lr={} vlr={} wd={} \
             {:?} cos={} bs={} S={} seed={} {:?} rows={}/{} d={} classes={}",
            self.arch,
            self.driver,
            self.vertices,
            self.base_epochs,
            self.vertex_epochs,
            self.n_sample,
            self.mean_over_samples,
            self.lmbd,
            self.lr,
            self.vertex_lr,
            self.weight_decay,
            self.optimizer,
            self.cosine,
            self.batch_size,
            self.points,
            self.seed,
            self.dtype,
            problem.n_train(),
            problem.y_test.len(),
            problem.d,
            problem.classes.len()
        )
    }
}

/// One epoch of one stage.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EpochStats {
    /// Epoch of the whole run (1-based).
    pub epoch: usize,
    /// Complex (ESPRO component) trained.
    pub component: usize,
    /// Vertex trained (index in its complex).
    pub vertex: usize,
    /// Mean cross-entropy per draw over the epoch's batches.
    pub loss: f64,
    /// `V²` of simplex 0 after the epoch (vertex stages; NaN for base networks).
    pub volume: f64,
    /// Learning rate used.
    pub lr: f64,
}

impl EpochStats {
    /// The six numbers a checkpoint and a [`Part`] keep: epoch, component, vertex, loss,
    /// volume, learning rate.
    fn row(&self) -> [f64; 6] {
        [
            self.epoch as f64,
            self.component as f64,
            self.vertex as f64,
            self.loss,
            self.volume,
            self.lr,
        ]
    }
}

/// What a run measured (the `--json` output of `keel simplex train`).
#[derive(Clone, Debug, Serialize)]
pub struct SimplexReport {
    /// `espro` or `complex`.
    pub driver: &'static str,
    /// Simplexes in the model (K; n_mode for a complex).
    pub components: usize,
    /// Vertices per simplex.
    pub vertices: usize,
    /// Interior points per simplex in prediction (S).
    pub points: usize,
    /// Scalars per vertex.
    pub parameters: usize,
    /// Test accuracy of the simplex ensemble.
    pub test_accuracy: f64,
    /// Test NLL of the simplex ensemble.
    pub test_nll: f64,
    /// ECE, 10 equal-width bins (as `keel bayes`).
    pub ece: f64,
    /// Per complex, `V²` of simplex 0 after each vertex stage (vertex counts 2 … n).
    pub volume: Vec<Vec<f64>>,
    /// `λ_v` for vertex counts 2 … n (0 when the term is off).
    pub lambda: Vec<f64>,
    /// Per simplex, each vertex's own mean training cross-entropy.
    pub vertex_train_loss: Vec<Vec<f64>>,
    /// Per simplex, each vertex's own test NLL.
    pub vertex_test_nll: Vec<Vec<f64>>,
    /// Per simplex, each vertex's own test accuracy.
    pub vertex_test_accuracy: Vec<Vec<f64>>,
    /// The deep ensemble of the simplexes' base networks (vertex 0 of each, the networks ESPRO
    /// starts from, trained identically): test accuracy, NLL and ECE — the equal-components
    /// baseline within the same run.
    pub base_ensemble: [f64; 3],
    /// Mean training cross-entropy at the S interior points, over simplexes and points.
    pub interior_train_loss: f64,
    /// The largest of those.
    pub interior_train_loss_max: f64,
    /// Training forward passes counted in examples (rows × draws, summed over steps).
    pub forward_passes: u64,
    /// `forward_passes` over the training rows: epochs of a plain network of equal cost.
    pub epoch_equivalents: f64,
    /// Network evaluations per test prediction (simplexes × S).
    pub prediction_passes: usize,
    /// Epochs run (all stages).
    pub epochs: usize,
    /// Rows used for training and testing.
    pub rows: [usize; 2],
    /// Wall-clock training time in this process.
    pub train_seconds: f64,
    /// Whether the run stopped early (checkpoint `stop_after`).
    pub stopped: bool,
    /// The learning curves.
    pub history: Vec<EpochStats>,
}

/// A trained simplex complex.
pub struct Trained {
    /// The model (vertices, prediction points, standardisation).
    pub model: SimplexModel,
    /// The report.
    pub report: SimplexReport,
}

/// One complex: vertices, its simplexes (vertex indices), its batch-norm running statistics.
#[derive(Clone, Debug)]
struct Complex {
    vertices: Vec<Params>,
    state: CnnState,
}

#[derive(Clone, Copy, Debug)]
struct Stage {
    complex: usize,
    vertex: usize,
    epochs: usize,
    base: bool,
    volume: bool,
    /// Connectors (or added vertices) including this one; 0 for a base.
    added: usize,
    /// Epochs of the whole run before this stage.
    first_epoch: usize,
}

fn stages(cfg: &SimplexConfig) -> Vec<Stage> {
    let n = cfg.vertices;
    let vol = cfg.lmbd > 0.0;
    let mut out = Vec::new();
    match cfg.driver {
        Driver::Espro { components } => {
            for c in 0..components {
                out.push(Stage {
                    complex: c,
                    vertex: 0,
                    epochs: cfg.base_epochs,
                    base: true,
                    volume: false,
                    added: 0,
                    first_epoch: 0,
                });
                for v in 1..n {
                    out.push(Stage {
                        complex: c,
                        vertex: v,
                        epochs: cfg.vertex_epochs,
                        base: false,
                        volume: vol,
                        added: v,
                        first_epoch: 0,
                    });
                }
            }
        }
        Driver::Complex { modes } => {
            for m in 0..modes {
                out.push(Stage {
                    complex: 0,
                    vertex: m,
                    epochs: cfg.base_epochs,
                    base: true,
                    volume: false,
                    added: 0,
                    first_epoch: 0,
                });
            }
            for k in 1..n {
                out.push(Stage {
                    complex: 0,
                    vertex: modes + k - 1,
                    epochs: cfg.vertex_epochs,
                    base: false,
                    volume: vol && k > 1,
                    added: k,
                    first_epoch: 0,
                });
            }
        }
    }
    let mut before = 0;
    for s in &mut out {
        s.first_epoch = before;
        before += s.epochs;
    }
    out
}

/// The simplexes of a complex once `added` vertices (connectors) are in.
fn simplexes(cfg: &SimplexConfig, added: usize) -> Vec<Vec<usize>> {
    match cfg.driver {
        Driver::Espro { .. } => vec![(0..=added).collect()],
        Driver::Complex { modes } => (0..modes)
            .map(|m| std::iter::once(m).chain(modes..modes + added).collect())
            .collect(),
    }
}

fn complexes(cfg: &SimplexConfig) -> usize {
    match cfg.driver {
        Driver::Espro { components } => components,
        Driver::Complex { .. } => 1,
    }
}

fn vertices_per_complex(cfg: &SimplexConfig) -> usize {
    match cfg.driver {
        Driver::Espro { .. } => cfg.vertices,
        Driver::Complex { modes } => modes + cfg.vertices - 1,
    }
}

/// One draw from Dirichlet(1, …, 1) of dimension `n`: `E_j = −ln U_j`, normalised (the
/// reference's `vertex_weights`).
pub fn dirichlet(n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    let e: Vec<f64> = (0..n)
        .map(|_| -(1.0 - uniform::<f64, _>(rng)).ln())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// A 64-bit word from `rng` (seeds of dropout masks).
fn word(rng: &mut Xoshiro256PlusPlus) -> u64 {
    (uniform::<f64, _>(rng) * (1u64 << 53) as f64) as u64
}

/// `λ_v` for vertex counts 2 … n: `max(LMBD / log(V²_rand + 1e−4), 1e−8)`, `V²_rand` from a
/// freshly initialised simplex of that many vertices drawn from `seed` (`reg_pars`).
///
/// # Errors
/// Engine errors.
pub fn lambdas(net: &Net, n: usize, lmbd: f64, seed: u64) -> Result<Vec<f64>> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed_1a3b_da00_0001);
    (2..=n)
        .map(|m| {
            let vs = (0..m)
                .map(|_| flatten(&net.init(&mut rng)?))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&[f64]> = vs.iter().map(Vec::as_slice).collect();
            let v2 = cayley_menger(&refs);
            Ok((lmbd / (v2 + 1e-4).ln()).max(1e-8))
        })
        .collect()
}

/// The SPRO objective of one mini-batch at fixed Dirichlet draws `alphas` (one per sample,
/// each over `simplex`), and its gradient with respect to vertex `trained` of `vertices`
/// (the only one that moves; the others are constants on the tape): the cross-entropy summed
/// (or averaged, `mean`) over the draws, minus `lambda · log(V² + 1e−4)` of `volume_of` (the
/// vertex indices of simplex 0) when `lambda > 0`. Returns `(cross-entropy part, volume part,
/// gradient)`.
///
/// # Errors
/// Engine errors; [`Error::InvalidInput`] for a draw of the wrong dimension.
#[allow(clippy::too_many_arguments)]
pub fn spro_loss(
    net: &Net,
    vertices: &[Params],
    trained: usize,
    simplex_of_draw: &[&[usize]],
    alphas: &[Vec<f64>],
    mean: bool,
    lambda: f64,
    volume_of: &[usize],
    state: &mut CnnState,
    x: &Tensor,
    labels: &[usize],
    seeds: &[u64],
) -> Result<(f64, f64, Vec<Tensor>)> {
    let vars = vertices[trained].variables();
    let mut total: Option<Tensor> = None;
    for ((simplex, alpha), &seed) in simplex_of_draw.iter().zip(alphas).zip(seeds) {
        let refs: Vec<&Params> = simplex
            .iter()
            .map(|&j| if j == trained { &vars } else { &vertices[j] })
            .collect();
        let point = net.combine(&refs, alpha)?;
        let ce = net
            .forward(&point, state, x, true, seed)?
            .cross_entropy(labels)?;
        total = Some(match total {
            None => ce,
            Some(t) => t.add(&ce)?,
        });
    }
    let mut total = total.ok_or(Error::invalid(
        "SPRO loss: draws",
        0,
        format!("expected {}", 1),
    ))?;
    if mean {
        total = total.mul_scalar(1.0 / alphas.len() as f64)?;
    }
    let ce = total.item()?;
    if !ce.is_finite() {
        return Ok((ce, 0.0, Vec::new()));
    }
    let refs: Vec<&Tensor> = vars.values().iter().collect();
    let mut grads = no_grad(|| backward(&total, &refs))?;
    let mut vol_loss = 0.0;
    if lambda > 0.0 {
        if let Some(t) = volume_of.iter().position(|&j| j == trained) {
            let flats = volume_of
                .iter()
                .map(|&j| flatten(&vertices[j]))
                .collect::<Result<Vec<_>>>()?;
            let fr: Vec<&[f64]> = flats.iter().map(Vec::as_slice).collect();
            let v2 = cayley_menger(&fr);
            vol_loss = -lambda * (v2 + 1e-4).ln();
            let scale = -lambda / (v2 + 1e-4);
            let g: Vec<f64> = volume_gradient(&fr, t)
                .into_iter()
                .map(|x| x * scale)
                .collect();
            let g = unflatten(&vertices[trained], &g)?;
            no_grad(|| -> Result<()> {
                for (i, gi) in grads.iter_mut().enumerate() {
                    *gi = gi.add(g.get(ParamId(i)))?;
                }
                Ok(())
            })?;
        }
    }
    Ok((ce, vol_loss, grads))
}

fn rows_tensor(net: &Net, x: &[f64], d: usize, idx: &[usize]) -> Result<Tensor> {
    let mut v = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        v.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    net.input(&v, idx.len())
}

/// Trains per `cfg` on `problem`, reporting each epoch to `progress`.
///
/// # Errors
/// [`Error::InvalidInput`] for bad settings or a checkpoint of another run; a run whose loss
/// became non-finite ([`crate::train::diverged`]); engine and I/O errors.
pub fn train(
    cfg: &SimplexConfig,
    problem: &Problem,
    spec: &super::data::Spec,
    progress: &mut Observer,
) -> Result<Trained> {
    let part = train_share(cfg, problem, Share::ALL, progress)?;
    assemble(cfg, problem, spec, vec![part])
}

/// Trains the ESPRO components that `share` names and returns them for [`assemble`]. The
/// stages of every other component are not trained, but their random draws (batch orders,
/// Dirichlet weights) are taken from the run's stream as one process takes them, and every base
/// network comes from the same up-front draw — so the processes of a split run together train
/// exactly the networks one process trains alone, and a seed gives the same model however the
/// run is split.
///
/// # Errors
/// Invalid settings; a `share` that splits a mode-connecting complex (its connectors join every
/// base network) or is not a member of its group; training failures.
pub fn train_share(
    cfg: &SimplexConfig,
    problem: &Problem,
    share: Share,
    progress: &mut Observer,
) -> Result<Part> {
    cfg.validate()?;
    share.check(cfg)?;
    let net = network(cfg, problem)?;
    let n_train = problem.n_train();
    let plan = stages(cfg);
    let all_epochs: usize = plan.iter().map(|s| s.epochs).sum();
    // This process's epochs: those of its components' stages.
    let total: usize = plan
        .iter()
        .filter(|s| share.holds(s.complex))
        .map(|s| s.epochs)
        .sum();
    let lambda = volume_coefficients(&net, cfg)?;
    // Base networks drawn up front (so a checkpoint holds them); other vertices are set to
    // their centroid when their stage starts.
    let mut init_rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x1417_0000_0000_beef);
    let mut cx: Vec<Complex> = (0..complexes(cfg))
        .map(|_| {
            Ok(Complex {
                vertices: (0..vertices_per_complex(cfg))
                    .map(|_| net.init(&mut init_rng))
                    .collect::<Result<Vec<_>>>()?,
                state: net.fresh_state(),
            })
        })
        .collect::<Result<_>>()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut history: Vec<EpochStats> = Vec::new();
    let mut forward_passes: u64 = 0;
    let mut volume: Vec<Vec<f64>> = vec![Vec::new(); cx.len()];
    let mut fingerprint = cfg.fingerprint(problem);
    if share != Share::ALL {
        fingerprint.push_str(&format!(" share={}/{}", share.index, share.count));
    }
    let mut opt = Optimizer::new(cfg.kind(), net.template())?;
    let mut done = 0usize;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let mut trainable = net.template().clone();
        let r = checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut trainable,
            &mut opt,
            &mut rng,
            &mut order,
            &mut [],
        )?;
        done = r.epoch;
        let series = |name: &str| -> Result<Vec<f64>> {
            r.series.get(name).cloned().ok_or_else(|| Error::Malformed {
                path: path.to_path_buf(),
                reason: format!("no series `{name}`"),
            })
        };
        let all = series("vertices")?;
        let p = net.parameters();
        let mut at = 0;
        for c in &mut cx {
            for v in &mut c.vertices {
                let chunk = all.get(at..at + p).ok_or_else(|| Error::Malformed {
                    path: path.to_path_buf(),
                    reason: "`vertices` is short".into(),
                })?;
                *v = unflatten(v, chunk)?;
                at += p;
            }
        }
        let st = &series("running")?;
        let mut at = 0;
        for c in &mut cx {
            restore_state(&mut c.state, st, &mut at)?;
        }
        let h = series("history")?;
        history = h
            .chunks_exact(6)
            .map(|r| EpochStats {
                epoch: r[0] as usize,
                component: r[1] as usize,
                vertex: r[2] as usize,
                loss: r[3],
                volume: r[4],
                lr: r[5],
            })
            .collect();
        let vols = series("volume")?;
        for r in vols.chunks_exact(2) {
            if let Some(v) = volume.get_mut(r[0] as usize) {
                v.push(r[1]);
            }
        }
        let has = series("opt_has")?;
        let n_par = net.template().len();
        if has.len() != 2 * n_par {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                reason: "`opt_has` does not fit the network".into(),
            });
        }
        let mut ms = Vec::with_capacity(n_par);
        let mut vs = Vec::with_capacity(n_par);
        for i in 0..n_par {
            ms.push(if has[2 * i] == 1.0 {
                Some(series(&format!("opt_m.{i}"))?)
            } else {
                None
            });
            vs.push(if has[2 * i + 1] == 1.0 {
                Some(series(&format!("opt_v.{i}"))?)
            } else {
                None
            });
        }
        let step = series("opt_step")?.first().copied().unwrap_or(0.0) as u64;
        opt.restore(net.template(), step, ms, vs)?;
        forward_passes = series("forward_passes")?.first().copied().unwrap_or(0.0) as u64;
        // The trained vertex of the interrupted stage holds the checkpoint's parameters.
        if let Some((s, local)) = locate(&plan, after_own(&plan, share, done)) {
            if local > 0 && share.holds(s.complex) {
                cx[s.complex].vertices[s.vertex] = trainable;
            }
        }
    }
    let start = Instant::now();
    let mut stopped = false;
    // `epoch` counts this process's epochs; `global` walks the whole plan, and the stages of
    // components other processes train only take their random draws (the batch orders and
    // Dirichlet weights are one stream in the run's order), so every component sees the
    // numbers it sees in one process.
    let mut epoch = done;
    let mut global = after_own(&plan, share, done);
    let bs = if cfg.batch_size == 0 {
        n_train
    } else {
        cfg.batch_size.min(n_train)
    };
    while global < all_epochs && epoch < total {
        let (s, local) = locate(&plan, global).expect("epoch within the plan");
        global += 1;
        let c = s.complex;
        let members = if s.base {
            vec![vec![s.vertex]]
        } else {
            simplexes(cfg, s.added)
        };
        let draws = if s.base { 1 } else { cfg.n_sample };
        order.copy_from_slice(&crate::data::permutation(n_train, &mut rng));
        let batch_draws: Vec<BatchDraws> = order
            .chunks(bs)
            .map(|_| draw_batch(&mut rng, &members, draws))
            .collect();
        if !share.holds(c) {
            continue;
        }
        if local == 0 {
            opt = Optimizer::new(cfg.kind(), net.template())?;
            if !s.base {
                // The centroid of the complex's vertices so far (`add_vert`).
                let existing: Vec<usize> = match cfg.driver {
                    Driver::Espro { .. } => (0..s.vertex).collect(),
                    Driver::Complex { modes } => (0..modes + s.added - 1).collect(),
                };
                let flats = existing
                    .iter()
                    .map(|&j| flatten(&cx[c].vertices[j]))
                    .collect::<Result<Vec<_>>>()?;
                let mut centre = vec![0.0; net.parameters()];
                for f in &flats {
                    for (a, b) in centre.iter_mut().zip(f) {
                        *a += b / flats.len() as f64;
                    }
                }
                cx[c].vertices[s.vertex] = unflatten(net.template(), &centre)?;
            }
        }
        let base_lr = if s.base { cfg.lr } else { cfg.vertex_lr };
        let lr = if cfg.cosine {
            Schedule::Cosine {
                total: s.epochs,
                min_lr: 0.0,
            }
            .lr(base_lr, local)
        } else {
            base_lr
        };
        let lam = if s.volume { lambda[s.added - 1] } else { 0.0 };
        let (mut sum, mut batches) = (0.0, 0usize);
        for (idx, d) in order.chunks(bs).zip(batch_draws) {
            let x = rows_tensor(&net, &problem.x_train, problem.d, idx)?;
            let labels: Vec<usize> = idx.iter().map(|&i| problem.y_train[i]).collect();
            let chosen: Vec<&[usize]> = d.simplex.iter().map(|&k| &members[k][..]).collect();
            let (alphas, seeds) = (d.alphas, d.seeds);
            let Complex { vertices, state } = &mut cx[c];
            let (ce, _vol, grads) = spro_loss(
                &net,
                vertices,
                s.vertex,
                &chosen,
                &alphas,
                cfg.mean_over_samples,
                lam,
                &members[0],
                state,
                &x,
                &labels,
                &seeds,
            )?;
            if !ce.is_finite() {
                return Err(crate::train::diverged(
                    ce,
                    s.first_epoch + local,
                    base_lr,
                    "",
                ));
            }
            let per_draw = if cfg.mean_over_samples {
                ce
            } else {
                ce / draws as f64
            };
            sum += per_draw;
            batches += 1;
            forward_passes += (idx.len() * draws) as u64;
            no_grad(|| opt.step(&mut cx[c].vertices[s.vertex], &grads, lr))?;
        }
        let v2 = if s.base {
            f64::NAN
        } else {
            simplex_volume(&cx[c].vertices, &members[0])?
        };
        if !s.base && local + 1 == s.epochs {
            volume[c].push(v2);
        }
        history.push(EpochStats {
            epoch: s.first_epoch + local + 1,
            component: c,
            vertex: s.vertex,
            loss: sum / batches.max(1) as f64,
            volume: v2,
            lr,
        });
        epoch += 1;
        if let (Some(path), true) = (&cfg.checkpoint.path, cfg.checkpoint.due(epoch, total)) {
            save(
                path,
                &fingerprint,
                epoch,
                &cx,
                &cx[c].vertices[s.vertex],
                &opt,
                cfg.kind(),
                &rng,
                &order,
                &history,
                &volume,
                forward_passes,
            )?;
        }
        let loss = history.last().map_or(f64::NAN, |h| h.loss);
        let values = [("loss", loss), ("V²", v2)];
        progress(&Tick {
            done: epoch,
            total,
            values: &values[..if s.base { 1 } else { 2 }],
        });
        if cfg.checkpoint.stops_at(epoch) && epoch < total {
            stopped = true;
            break;
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let components = (0..cx.len())
        .filter(|&c| share.holds(c))
        .map(|c| {
            Ok(ComponentRun {
                index: c,
                vertices: cx[c].vertices.iter().map(flatten).collect::<Result<_>>()?,
                running: running_values(&cx[c].state)?,
                volume: std::mem::take(&mut volume[c]),
                history: history
                    .iter()
                    .filter(|h| h.component == c)
                    .copied()
                    .collect(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Part {
        components,
        forward_passes,
        stopped,
        train_seconds,
    })
}

/// The network of `cfg`'s run on `problem`'s rows and classes.
fn network(cfg: &SimplexConfig, problem: &Problem) -> Result<Net> {
    Net::new(
        &cfg.arch,
        problem.d,
        problem.classes.len(),
        cfg.dtype,
        cfg.device,
    )
}

/// `λ_v` for vertex counts 2 … n ([`lambdas`]; simplex 0 of either driver holds `vertices`
/// vertices once complete), or zeros when the volume term is off.
fn volume_coefficients(net: &Net, cfg: &SimplexConfig) -> Result<Vec<f64>> {
    if cfg.lmbd > 0.0 {
        lambdas(net, cfg.vertices, cfg.lmbd, cfg.seed)
    } else {
        Ok(vec![0.0; cfg.vertices.saturating_sub(1)])
    }
}

/// The random choices of one mini-batch: per draw, the simplex (of `members`), its Dirichlet
/// weights and the seed of its dropout masks.
struct BatchDraws {
    simplex: Vec<usize>,
    alphas: Vec<Vec<f64>>,
    seeds: Vec<u64>,
}

/// Draws one mini-batch's [`BatchDraws`] from `rng`.
fn draw_batch(rng: &mut Xoshiro256PlusPlus, members: &[Vec<usize>], draws: usize) -> BatchDraws {
    let mut d = BatchDraws {
        simplex: Vec::with_capacity(draws),
        alphas: Vec::with_capacity(draws),
        seeds: Vec::with_capacity(draws),
    };
    for _ in 0..draws {
        let k = if members.len() == 1 {
            0
        } else {
            ((uniform::<f64, _>(rng) * members.len() as f64) as usize).min(members.len() - 1)
        };
        d.simplex.push(k);
        d.alphas.push(dirichlet(members[k].len(), rng));
        d.seeds.push(word(rng));
    }
    d
}

/// The global epoch that follows the `own`-th epoch of `share`'s stages (0 for none).
fn after_own(plan: &[Stage], share: Share, own: usize) -> usize {
    let mut left = own;
    for s in plan {
        if left == 0 {
            break;
        }
        if share.holds(s.complex) {
            if left <= s.epochs {
                return s.first_epoch + left;
            }
            left -= s.epochs;
        }
    }
    0
}

/// Which ESPRO components a process trains: those `c` with `c mod count = index` (rank `index`
/// of `count` MPI ranks; one process trains them all, [`Share::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// This process's place in its group.
    pub index: usize,
    /// Processes in the group.
    pub count: usize,
}

impl Share {
    /// One process training every component.
    pub const ALL: Share = Share { index: 0, count: 1 };

    fn holds(self, component: usize) -> bool {
        component % self.count.max(1) == self.index
    }

    /// Checks that this share can train `cfg`'s run.
    ///
    /// # Errors
    /// A share outside its group; a mode-connecting complex split over several processes
    /// (naming `modes`).
    pub fn check(self, cfg: &SimplexConfig) -> Result<()> {
        if self.count == 0 || self.index >= self.count {
            return Err(Error::invalid(
                "share",
                format!("{}/{}", self.index, self.count),
                "not a member of its group",
            ));
        }
        if let (Driver::Complex { modes }, true) = (cfg.driver, self.count > 1) {
            return Err(Error::invalid(
                "modes",
                modes,
                "a mode-connecting complex trains as one process (its connectors join every base network); ESPRO's independent components split over processes",
            ));
        }
        Ok(())
    }
}

/// One trained component (complex) of a [`Part`].
#[derive(Clone, Debug)]
struct ComponentRun {
    index: usize,
    /// Flat parameters of each vertex.
    vertices: Vec<Vec<f64>>,
    /// Batch-norm running statistics ([`running_values`]).
    running: Vec<f64>,
    /// `V²` after each vertex stage.
    volume: Vec<f64>,
    history: Vec<EpochStats>,
}

/// The components one process trained ([`train_share`]); [`assemble`] puts the parts of a run
/// together. [`Part::encode`] and [`Part::decode`] carry one between processes as lists of
/// numbers (exactly: every value is an `f64` or an integer below 2⁵³).
#[derive(Clone, Debug)]
pub struct Part {
    components: Vec<ComponentRun>,
    forward_passes: u64,
    stopped: bool,
    train_seconds: f64,
}

impl Part {
    /// The part as lists of numbers: a header `[components, forward passes, stopped, seconds]`,
    /// then per component `[index, vertices, history entries]`, each vertex, the running
    /// statistics, the volumes and the history (six numbers per epoch).
    pub fn encode(&self) -> Vec<Vec<f64>> {
        let mut out = vec![vec![
            self.components.len() as f64,
            self.forward_passes as f64,
            f64::from(u8::from(self.stopped)),
            self.train_seconds,
        ]];
        for c in &self.components {
            out.push(vec![
                c.index as f64,
                c.vertices.len() as f64,
                c.history.len() as f64,
            ]);
            out.extend(c.vertices.iter().cloned());
            out.push(c.running.clone());
            out.push(c.volume.clone());
            out.push(c.history.iter().flat_map(EpochStats::row).collect());
        }
        out
    }

    /// [`Part::encode`]'s lists back.
    ///
    /// # Errors
    /// Lists that are not such an encoding.
    pub fn decode(lists: Vec<Vec<f64>>) -> Result<Part> {
        let bad = |why: &str| Error::invalid("part", "simplex components", why.to_string());
        let count = |x: f64| -> Result<usize> {
            (x >= 0.0 && x.fract() == 0.0 && x < 9.007_199_254_740_992e15)
                .then_some(x as usize)
                .ok_or_else(|| bad("a count is not a whole number"))
        };
        let mut lists = lists.into_iter();
        let header = lists.next().unwrap_or_default();
        let &[n, passes, stopped, seconds] = header.as_slice() else {
            return Err(bad("no header"));
        };
        let mut components = Vec::new();
        for _ in 0..count(n)? {
            let head = lists.next().unwrap_or_default();
            let &[index, vertices, entries] = head.as_slice() else {
                return Err(bad("a component has no header"));
            };
            let vertices: Vec<Vec<f64>> = lists.by_ref().take(count(vertices)?).collect();
            let (Some(running), Some(volume), Some(hist)) =
                (lists.next(), lists.next(), lists.next())
            else {
                return Err(bad("a component is cut short"));
            };
            if hist.len() != 6 * count(entries)? {
                return Err(bad("the history's length"));
            }
            let history = hist
                .chunks_exact(6)
                .map(|r| {
                    Ok(EpochStats {
                        epoch: count(r[0])?,
                        component: count(r[1])?,
                        vertex: count(r[2])?,
                        loss: r[3],
                        volume: r[4],
                        lr: r[5],
                    })
                })
                .collect::<Result<_>>()?;
            components.push(ComponentRun {
                index: count(index)?,
                vertices,
                running,
                volume,
                history,
            });
        }
        if lists.next().is_some() {
            return Err(bad("lists left over"));
        }
        Ok(Part {
            components,
            forward_passes: count(passes)? as u64,
            stopped: stopped != 0.0,
            train_seconds: seconds,
        })
    }
}

/// The model and report of a run from its [`Part`]s (one part of one process, or one per
/// process of a split run, in any order): every component exactly once, each of the network's
/// size. Training time is the longest part's.
///
/// # Errors
/// A component missing, given twice or of another size; evaluation failures.
pub fn assemble(
    cfg: &SimplexConfig,
    problem: &Problem,
    spec: &super::data::Spec,
    parts: Vec<Part>,
) -> Result<Trained> {
    let net = network(cfg, problem)?;
    let k = complexes(cfg);
    let bad = |why: String| Error::invalid("part", "simplex components", why);
    let mut slots: Vec<Option<ComponentRun>> = vec![None; k];
    let (mut forward_passes, mut stopped, mut train_seconds) = (0u64, false, 0.0f64);
    for p in parts {
        forward_passes = forward_passes.saturating_add(p.forward_passes);
        stopped |= p.stopped;
        train_seconds = train_seconds.max(p.train_seconds);
        for c in p.components {
            let i = c.index;
            match slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(c),
                Some(Some(_)) => return Err(bad(format!("component {i} given twice"))),
                None => return Err(bad(format!("component {i} of {k}"))),
            }
        }
    }
    let (mut cx, mut volume, mut history) =
        (Vec::with_capacity(k), Vec::with_capacity(k), Vec::new());
    for (i, slot) in slots.into_iter().enumerate() {
        let c = slot.ok_or_else(|| bad(format!("component {i} is missing")))?;
        if c.vertices.len() != vertices_per_complex(cfg) {
            return Err(bad(format!(
                "component {i} has {} vertices",
                c.vertices.len()
            )));
        }
        let vertices = c
            .vertices
            .iter()
            .map(|v| unflatten(net.template(), v))
            .collect::<Result<Vec<_>>>()?;
        let mut state = net.fresh_state();
        let mut at = 0;
        restore_state(&mut state, &c.running, &mut at)?;
        if at != c.running.len() {
            return Err(bad(format!("component {i}'s running statistics")));
        }
        cx.push(Complex { vertices, state });
        volume.push(c.volume);
        history.extend(c.history);
    }
    history.sort_by_key(|h| h.epoch);
    let lambda = volume_coefficients(&net, cfg)?;
    let total = stages(cfg).iter().map(|s| s.epochs).sum();
    finish(
        cfg,
        net,
        cx,
        problem,
        spec,
        lambda,
        volume,
        history,
        forward_passes,
        total,
        stopped,
        train_seconds,
    )
}

fn simplex_volume(vertices: &[Params], members: &[usize]) -> Result<f64> {
    let flats = members
        .iter()
        .map(|&j| flatten(&vertices[j]))
        .collect::<Result<Vec<_>>>()?;
    let fr: Vec<&[f64]> = flats.iter().map(Vec::as_slice).collect();
    Ok(cayley_menger(&fr))
}

/// The stage of global epoch `e` and the epoch within it.
fn locate(plan: &[Stage], mut e: usize) -> Option<(Stage, usize)> {
    for s in plan {
        if e < s.epochs {
            return Some((*s, e));
        }
        e -= s.epochs;
    }
    None
}

const CHECKPOINT_KIND: &str = "simplex-checkpoint";

fn running_values(state: &CnnState) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    for (m, s) in &state.running {
        v.extend(m.to_vec_f64()?);
        v.extend(s.to_vec_f64()?);
    }
    Ok(v)
}

fn restore_state(state: &mut CnnState, values: &[f64], at: &mut usize) -> Result<()> {
    for (m, s) in &mut state.running {
        for t in [m, s] {
            let n = t.numel();
            let chunk = values.get(*at..*at + n).ok_or(Error::invalid(
                "checkpoint: running statistics",
                values.len(),
                format!("expected {}", *at + n),
            ))?;
            *t = Tensor::from_f64s(chunk, t.dims(), t.dtype())?.to_device(t.device())?;
            *at += n;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn save(
    path: &std::path::Path,
    fingerprint: &str,
    epoch: usize,
    cx: &[Complex],
    trainable: &Params,
    opt: &Optimizer,
    opt_kind: OptimizerKind,
    rng: &Xoshiro256PlusPlus,
    order: &[usize],
    history: &[EpochStats],
    volume: &[Vec<f64>],
    forward_passes: u64,
) -> Result<()> {
    let mut all = Vec::new();
    let mut running = Vec::new();
    for c in cx {
        for v in &c.vertices {
            all.extend(flatten(v)?);
        }
        running.extend(running_values(&c.state)?);
    }
    let hist: Vec<f64> = history.iter().flat_map(EpochStats::row).collect();
    let vols: Vec<f64> = volume
        .iter()
        .enumerate()
        .flat_map(|(c, v)| v.iter().flat_map(move |&x| [c as f64, x]))
        .collect();
    let fp = [forward_passes as f64];
    // The optimizer's state goes into series: the shared checkpoint's moment slots are Adam's
    // (both moments or neither), and SGD with momentum keeps one.
    let (step, m, v) = opt.state()?;
    let mut named: Vec<(String, Vec<f64>)> = vec![("opt_step".into(), vec![step as f64])];
    let mut has = Vec::new();
    for (i, (mi, vi)) in m.into_iter().zip(v).enumerate() {
        has.extend([
            f64::from(u8::from(mi.is_some())),
            f64::from(u8::from(vi.is_some())),
        ]);
        if let Some(mi) = mi {
            named.push((format!("opt_m.{i}"), mi));
        }
        if let Some(vi) = vi {
            named.push((format!("opt_v.{i}"), vi));
        }
    }
    named.push(("opt_has".into(), has));
    let mut series: Vec<(&str, &[f64])> = vec![
        ("vertices", &all),
        ("running", &running),
        ("history", &hist),
        ("volume", &vols),
        ("forward_passes", &fp),
    ];
    series.extend(named.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    let blank = Optimizer::new(opt_kind, trainable)?;
    checkpoint::save(
        path,
        &checkpoint::Snapshot {
            kind: CHECKPOINT_KIND,
            fingerprint,
            epoch,
            params: trainable,
            opt: &blank,
            rng,
            order,
            extra_params: &[],
            series: &series,
            meta: Default::default(),
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    cfg: &SimplexConfig,
    net: Net,
    cx: Vec<Complex>,
    problem: &Problem,
    spec: &super::data::Spec,
    lambda: Vec<f64>,
    volume: Vec<Vec<f64>>,
    history: Vec<EpochStats>,
    forward_passes: u64,
    epochs: usize,
    stopped: bool,
    train_seconds: f64,
) -> Result<Trained> {
    // The components of the model: every simplex of every complex, with its complex's
    // running statistics.
    let full = simplexes(cfg, cfg.vertices - 1);
    let mut components = Vec::new();
    let mut states = Vec::new();
    for c in &cx {
        for s in &full {
            components.push(s.iter().map(|&j| c.vertices[j].clone()).collect::<Vec<_>>());
            states.push(c.state.clone());
        }
    }
    let mut prng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x9017_7500_0000_0003);
    let points: Vec<Vec<f64>> = (0..cfg.points)
        .map(|_| dirichlet(cfg.vertices, &mut prng))
        .collect();
    let mut spec = spec.clone();
    spec.settings = serde_json::json!({
        "model": cfg.arch.name(), "driver": cfg.driver, "vertices": cfg.vertices,
        "base_epochs": cfg.base_epochs, "vertex_epochs": cfg.vertex_epochs,
        "n_sample": cfg.n_sample, "mean_over_samples": cfg.mean_over_samples, "lmbd": cfg.lmbd,
        "lr": cfg.lr, "vertex_lr": cfg.vertex_lr, "weight_decay": cfg.weight_decay,
        "optimizer": cfg.optimizer, "cosine": cfg.cosine, "batch_size": cfg.batch_size,
        "seed": cfg.seed,
    });
    let model = SimplexModel {
        net,
        components,
        states,
        points,
        mean: problem.mean.clone(),
        std: problem.std.clone(),
        classes: problem.classes.clone(),
        features: problem.features.clone(),
        spec,
    };
    let classes = problem.classes.len();
    let probs = model.predict_standardized(&problem.x_test, problem.y_test.len())?;
    let y = &problem.y_test;
    let mut vertex_train_loss = Vec::new();
    let mut vertex_test_nll = Vec::new();
    let mut vertex_test_accuracy = Vec::new();
    for k in 0..model.components.len() {
        let (mut tl, mut tn, mut ta) = (Vec::new(), Vec::new(), Vec::new());
        for j in 0..cfg.vertices {
            let mut alpha = vec![0.0; cfg.vertices];
            alpha[j] = 1.0;
            let ptr = model.point_probs(k, &alpha, &problem.x_train, problem.n_train())?;
            tl.push(crate::metrics::nll(&ptr, classes, &problem.y_train));
            let pte = model.point_probs(k, &alpha, &problem.x_test, y.len())?;
            tn.push(crate::metrics::nll(&pte, classes, y));
            ta.push(crate::metrics::accuracy(&pte, classes, y));
        }
        vertex_train_loss.push(tl);
        vertex_test_nll.push(tn);
        vertex_test_accuracy.push(ta);
    }
    let mut base = vec![0.0; y.len() * classes];
    for k in 0..model.components.len() {
        let mut alpha = vec![0.0; cfg.vertices];
        alpha[0] = 1.0;
        let p = model.point_probs(k, &alpha, &problem.x_test, y.len())?;
        for (b, v) in base.iter_mut().zip(p) {
            *b += v / model.components.len() as f64;
        }
    }
    let base_ensemble = [
        crate::metrics::accuracy(&base, classes, y),
        crate::metrics::nll(&base, classes, y),
        crate::metrics::ece(&base, classes, y, 10),
    ];
    let mut interior = Vec::new();
    for k in 0..model.components.len() {
        for a in &model.points {
            let p = model.point_probs(k, a, &problem.x_train, problem.n_train())?;
            interior.push(crate::metrics::nll(&p, classes, &problem.y_train));
        }
    }
    let report = SimplexReport {
        driver: match cfg.driver {
            Driver::Espro { .. } => "espro",
            Driver::Complex { .. } => "complex",
        },
        components: model.components.len(),
        vertices: cfg.vertices,
        points: cfg.points,
        parameters: model.net.parameters(),
        test_accuracy: crate::metrics::accuracy(&probs, classes, y),
        test_nll: crate::metrics::nll(&probs, classes, y),
        ece: crate::metrics::ece(&probs, classes, y, 10),
        volume,
        lambda,
        vertex_train_loss,
        vertex_test_nll,
        vertex_test_accuracy,
        base_ensemble,
        interior_train_loss: interior.iter().sum::<f64>() / interior.len().max(1) as f64,
        interior_train_loss_max: interior.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        forward_passes,
        epoch_equivalents: forward_passes as f64 / problem.n_train().max(1) as f64,
        prediction_passes: model.components.len() * cfg.points,
        epochs,
        rows: [problem.n_train(), problem.y_test.len()],
        train_seconds,
        stopped,
        history,
    };
    Ok(Trained { model, report })
}
