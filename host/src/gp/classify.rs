//! Online classification with one GP per class on Dirichlet-transformed targets (Milios et al.,
//! *Dirichlet-based Gaussian Processes for Large-scale Calibrated Classification*, NeurIPS 2018),
//! streamed as Stanton et al., *Kernel Interpolation for Scalable Online Gaussian Processes*
//! (AISTATS 2021) do in the reference code's `experiments/classification.py`,
//! `online_gp/models/online_ski_classifier.py` and `gp_dirichlet_classification.py`
//! (wjmaddox/online_gp), on any number of classes; and Keel's banana stream to run it on.
//!
//! The protocol is the regression stream's ([`online`](super::online)): rows in a seeded order,
//! a test share held out, inputs scaled to [−1, 1], a full-batch pretraining on the first 5 %
//! (200 cosine-annealed Adam epochs on `Σ_c log p(ỹ_c)` through the stem, with each class's own
//! kernel and the noise fixed at the transform's `σ̃²`), then for every point: predict it, take
//! the online steps, absorb it. The targets are centred on the midpoint of the two values `ỹ`
//! takes, so a region without data predicts a tie rather than "not this class".
//!
//! Models:
//! - `wiski`: one WISKI per class behind a shared stem. Before each point, the stem climbs the
//!   sum over classes of the partial likelihood ([`partial`](super::partial), with the point's
//!   fixed noise factor), each class's kernel takes one Adam step on its cached likelihood, and
//!   the point is absorbed in constant time.
//! - `exact`: one exact GP per class (`O(n²)` per point), kernels and stem as pretrained.
//! - `svgp`: the streaming sparse variational baseline (the reference's `svgp_bin`,
//!   `online_gp/models/online_svgp_classifier.py`, which is Bernoulli and binary): here a
//!   softmax likelihood on one latent GP per class, so that any number of classes runs, with
//!   `q(u_c)` on 256 inducing points moved by one Adam step per point on the new point's
//!   expected log-likelihood (the streaming KL terms have zero gradient at the step, see
//!   [`sparse`](super::sparse)), estimated with reparameterised draws. `q` starts at the
//!   collapsed (Titsias) posterior of each class's Dirichlet targets on the pretraining rows —
//!   the reference starts it by 200 epochs of the batch ELBO instead.
//!
//! Class probabilities are `E[softmax(f)]` over the independent per-class posteriors of `f`
//! (Milios et al.'s predictive), estimated with 256 fixed draws; the predicted label is the
//! class of the largest posterior mean, as the reference's `predict`.

use std::time::Instant;

use keel_core::gp::{Convention, ExactGp, Family, Grid};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::dim::row;
use super::fit::ThetaAdam;
use super::hyper::{GridSpec, Hyper};
use super::online::{at_stream_row, RowSplit};
use super::partial::partial_mll;
use super::posterior::TrainData;
use super::pretrain::{pretrain_tasks, Objective, PretrainConfig, Task};
use super::sparse::{Inducing, Osgpr, Osvgp};
use super::stem::LinearStem;
use super::store::{ExactStore, Feed, WiskiStore};
use super::stream::{Learner, Online};
use super::timing::UpdateTimes;
use super::weights::grid_3d;
use crate::error::{Error, Result};
use crate::metrics;

/// The Dirichlet-based classification transform (Milios et al. 2018) for one class indicator:
/// `α = α_ε + 1[y = c]`, `σ̃² = log(1/α + 1)`, `ỹ = log α − σ̃²/2`. Returns `(ỹ, σ̃²)`.
pub fn dirichlet_target(is_class: bool, alpha_eps: f64) -> (f64, f64) {
    let alpha = alpha_eps + if is_class { 1.0 } else { 0.0 };
    let var = (1.0 / alpha + 1.0).ln();
    (alpha.ln() - 0.5 * var, var)
}

/// A labelled 2-D stream: inputs, class labels (0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled2d {
    /// Inputs `[n, 2]`, row-major.
    pub x: Vec<f64>,
    /// Labels.
    pub label: Vec<usize>,
}

/// Keel's banana stream: two interleaved crescents (each a half circle of radius 1, the second
/// shifted by (1, −0.5) and flipped), Gaussian noise of sd `noise`, mapped affinely from
/// `[−1.25, 2.25] × [−0.85, 1.35]` onto `[−1, 1]²`, in random order. Seeded.
pub fn banana(n: usize, noise: f64, seed: u64) -> Labelled2d {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(2 * n);
    let mut label = Vec::with_capacity(n);
    for _ in 0..n {
        let c = usize::from(uniform::<f64, _>(&mut rng) < 0.5);
        let t = std::f64::consts::PI * uniform::<f64, _>(&mut rng);
        let (mut a, mut b) = if c == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        a += noise * standard_normal::<f64, _>(&mut rng);
        b += noise * standard_normal::<f64, _>(&mut rng);
        x.push((2.0 * (a + 1.25) / 3.5 - 1.0).clamp(-1.0, 1.0));
        x.push((2.0 * (b + 0.85) / 2.2 - 1.0).clamp(-1.0, 1.0));
        label.push(c);
    }
    Labelled2d { x, label }
}

/// Which online classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifyMethod {
    /// One WISKI per class (Dirichlet targets).
    Wiski,
    /// One exact GP per class (Dirichlet targets).
    Exact,
    /// Streaming sparse variational GPs with a softmax likelihood.
    Svgp,
}

impl ClassifyMethod {
    /// `wiski`, `exact` or `svgp`.
    pub fn name(self) -> &'static str {
        match self {
            ClassifyMethod::Wiski => "wiski",
            ClassifyMethod::Exact => "exact",
            ClassifyMethod::Svgp => "svgp",
        }
    }
}

/// Most classes a run takes.
pub const MAX_CLASSES: usize = 100;

/// Most bytes the per-class models may hold together (refused before allocating).
pub const MAX_STATE_BYTES: usize = 4 << 30;

/// Settings of an online classification run (defaults: the reference's `wiski_gpd` and
/// `svgp_bin` configurations, see [`Default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifyConfig {
    /// The model.
    pub method: ClassifyMethod,
    /// Features of the learned stem (1 to 3), or none (the inputs as they are).
    pub stem: Option<usize>,
    /// Seed of the stem's initialisation, the inducing points and the Monte Carlo draws.
    pub seed: u64,
    /// Share of the stream used for pretraining (0.05), at most `pretrain_max` rows.
    pub pretrain_fraction: f64,
    /// Cap on pretraining rows (the dense likelihoods cost `O(n³)` per epoch and class).
    pub pretrain_max: usize,
    /// Pretraining schedule (200 epochs, kernel 0.05, stem 0.005).
    pub pretrain: PretrainConfig,
    /// Online learning rate of WISKI's kernels (0.005).
    pub lr: f64,
    /// Online learning rate of WISKI's stem (0.0005).
    pub stem_lr: f64,
    /// WISKI's kernel step before every this many points (1, the reference; 0 never). The
    /// step costs `O(m³)` per class.
    pub kernel_every: usize,
    /// Grid nodes per feature dimension (16), over ±`grid_bound` (1).
    pub grid_size: usize,
    /// Half-width of the grid.
    pub grid_bound: f64,
    /// Inducing points of the SVGP (256).
    pub inducing: usize,
    /// The SVGP's learning rate on `q(u)` (0.005).
    pub svgp_lr: f64,
    /// Reparameterised draws per SVGP step (16).
    pub svgp_draws: usize,
    /// α_ε of the Dirichlet transform (0.01).
    pub alpha_eps: f64,
    /// Test evaluations along the stream (10).
    pub evaluations: usize,
    /// Starting hyperparameters of every class (RBF; the noise factor is fixed at 1).
    pub hyper: Hyper,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            method: ClassifyMethod::Wiski,
            stem: None,
            seed: 0,
            pretrain_fraction: 0.05,
            pretrain_max: 500,
            pretrain: PretrainConfig {
                epochs: 200,
                lr: 0.05,
                stem_lr: 0.005,
            },
            lr: 0.005,
            stem_lr: 0.0005,
            kernel_every: 1,
            grid_size: 16,
            grid_bound: 1.0,
            inducing: 256,
            svgp_lr: 0.005,
            svgp_draws: 16,
            alpha_eps: 0.01,
            evaluations: 10,
            hyper: Hyper {
                family: Family::Rbf,
                outputscale: 1.0,
                lengthscale: vec![0.5],
                noise: 1.0,
            },
        }
    }
}

/// Labelled rows split, scaled and ordered for a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// Input columns.
    pub dims: usize,
    /// Classes (labels are `0..classes`).
    pub classes: usize,
    /// Stream inputs in [−1, 1] (`[n, dims]`), in stream order.
    pub stream_x: Vec<f64>,
    /// Stream labels.
    pub stream_label: Vec<usize>,
    /// Test inputs, scaled like the stream's.
    pub test_x: Vec<f64>,
    /// Test labels.
    pub test_label: Vec<usize>,
}

impl ClassData {
    /// Splits `x` (`[n, dims]`) and `labels` in a seeded order: the first `test_fraction` of
    /// the permuted rows are the test set, the rest the stream; inputs scaled onto [−1, 1] by
    /// the stream's range.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for mismatched sizes, fewer than 20 rows, a test fraction outside
    /// (0, 0.5], fewer than 2 or more than [`MAX_CLASSES`] classes, or a label out of range.
    pub fn split(
        x: &[f64],
        labels: &[usize],
        classes: usize,
        dims: usize,
        test_fraction: f64,
        seed: u64,
    ) -> Result<ClassData> {
        check_classes(labels, classes)?;
        let rows = RowSplit::new(x, labels.len(), dims, test_fraction, seed)?;
        Ok(ClassData {
            dims,
            classes,
            stream_label: rows.stream.iter().map(|&i| labels[i]).collect(),
            test_label: rows.test.iter().map(|&i| labels[i]).collect(),
            stream_x: rows.stream_x,
            test_x: rows.test_x,
        })
    }

    /// A banana stream and test set as they are (already in [−1, 1]², two classes).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty stream or test set.
    pub fn from_banana(stream: Labelled2d, test: Labelled2d) -> Result<ClassData> {
        if stream.label.len() < 2 || test.label.is_empty() {
            return Err(Error::invalid(
                "n",
                stream.label.len(),
                "need at least 2 stream points and 1 test point",
            ));
        }
        Ok(ClassData {
            dims: 2,
            classes: 2,
            stream_x: stream.x,
            stream_label: stream.label,
            test_x: test.x,
            test_label: test.label,
        })
    }
}

fn check_classes(labels: &[usize], classes: usize) -> Result<()> {
    if !(2..=MAX_CLASSES).contains(&classes) {
        return Err(Error::invalid(
            "target",
            format!("{classes} classes"),
            format!("classification needs 2 to {MAX_CLASSES} classes"),
        ));
    }
    if let Some(l) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::invalid(
            "target",
            l,
            format!("a label must be below the {classes} classes"),
        ));
    }
    Ok(())
}

/// Test metrics after some points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassPoint {
    /// Stream points absorbed (pretraining rows included).
    pub seen: usize,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Mean negative log probability of the test labels.
    pub test_nll: f64,
    /// Expected calibration error (10 equal-width bins).
    pub ece: f64,
}

/// The result of an online classification run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassifyReport {
    /// `wiski`, `exact` or `svgp`.
    pub method: &'static str,
    /// Stream rows (pretraining included).
    pub n: usize,
    /// Input columns.
    pub dims: usize,
    /// Classes.
    pub classes: usize,
    /// Stem features, if any.
    pub stem: Option<usize>,
    /// The run's seed.
    pub seed: u64,
    /// Test rows.
    pub test_rows: usize,
    /// Rows of the pretraining batch.
    pub pretrain_rows: usize,
    /// Test accuracy at the end.
    pub test_accuracy: f64,
    /// Test NLL at the end.
    pub test_nll: f64,
    /// Test ECE at the end.
    pub ece: f64,
    /// Share of the streamed points (after pretraining) classified correctly before they were
    /// absorbed.
    pub online_accuracy: f64,
    /// Test metrics along the stream.
    pub accuracy_over_time: Vec<ClassPoint>,
    /// Mean wall time of one online step (the steps and the update of every class; not the
    /// prediction), seconds.
    pub seconds_per_update: f64,
    /// Median of the same, µs.
    pub update_us_median: f64,
    /// Median over the first and the last tenth of the stream, µs.
    pub update_us_first_tenth: f64,
    /// …
    pub update_us_last_tenth: f64,
    /// Pretraining wall time, seconds.
    pub pretrain_seconds: f64,
    /// Whole run, seconds.
    pub seconds: f64,
    /// Each class's outputscale at the end.
    pub outputscale: Vec<f64>,
    /// Each class's lengthscales at the end.
    pub lengthscale: Vec<Vec<f64>>,
}

/// The Dirichlet targets of every class: `(ỹ − centre, σ̃²)` for the class and the others.
#[derive(Clone, Copy, Debug)]
struct Targets {
    on: (f64, f64),
    off: (f64, f64),
}

impl Targets {
    fn new(alpha_eps: f64) -> Targets {
        let (on, off) = (
            dirichlet_target(true, alpha_eps),
            dirichlet_target(false, alpha_eps),
        );
        let centre = 0.5 * (on.0 + off.0);
        Targets {
            on: (on.0 - centre, on.1),
            off: (off.0 - centre, off.1),
        }
    }

    /// `(target, noise factor)` of class `c` for a point labelled `label`.
    fn of(self, c: usize, label: usize) -> (f64, f64) {
        if c == label {
            self.on
        } else {
            self.off
        }
    }
}

/// One GP per class, whichever kind.
trait ClassGps {
    /// Per class, the posterior mean and variance of `f` at features `z`.
    fn moments(&mut self, z: &[f64], out: &mut [(f64, f64)]) -> Result<()>;
    /// `∂(Σ_c partial likelihood)/∂z` where the model trains the stem online.
    fn stem_gradient(&mut self, _z: &[f64], _label: usize) -> Result<Option<Vec<f64>>> {
        Ok(None)
    }
    /// The online steps, then absorbs the point.
    fn update(&mut self, z: &[f64], label: usize) -> Result<()>;
    /// Each class's hyperparameters now.
    fn hypers(&self) -> Vec<Hyper>;
}

struct WiskiClasses<'a, const D: usize> {
    learners: Vec<Learner<'a, D>>,
    targets: Targets,
    grid3: Grid<f64, 3>,
    clamp: bool,
}

impl<const D: usize> ClassGps for WiskiClasses<'_, D> {
    fn moments(&mut self, z: &[f64], out: &mut [(f64, f64)]) -> Result<()> {
        let x = row::<D>(z, 0);
        for (o, l) in out.iter_mut().zip(&mut self.learners) {
            let p = l.gp.predict(&x).map_err(Error::core("WISKI prediction"))?;
            *o = (p.mean, p.var_f);
        }
        Ok(())
    }
    fn stem_gradient(&mut self, z: &[f64], label: usize) -> Result<Option<Vec<f64>>> {
        let x = row::<D>(z, 0);
        let mut g = vec![0.0; D];
        for (c, l) in self.learners.iter().enumerate() {
            let (y, d) = self.targets.of(c, label);
            let (_, gc) = partial_mll(&l.gp, &self.grid3, self.clamp, &x, y, d)?;
            for (a, b) in g.iter_mut().zip(&gc) {
                *a += b;
            }
        }
        Ok(Some(g))
    }
    fn update(&mut self, z: &[f64], label: usize) -> Result<()> {
        let x = row::<D>(z, 0);
        for (c, l) in self.learners.iter_mut().enumerate() {
            let (y, d) = self.targets.of(c, label);
            l.absorb(&x, y, d).map_err(Error::core("WISKI update"))?;
        }
        Ok(())
    }
    fn hypers(&self) -> Vec<Hyper> {
        self.learners.iter().map(Learner::hyper).collect()
    }
}

struct ExactClasses<'a, const D: usize> {
    gps: Vec<ExactGp<'a, f64, D>>,
    hypers: Vec<Hyper>,
    targets: Targets,
}

impl<const D: usize> ClassGps for ExactClasses<'_, D> {
    fn moments(&mut self, z: &[f64], out: &mut [(f64, f64)]) -> Result<()> {
        let x = row::<D>(z, 0);
        for (o, gp) in out.iter_mut().zip(&mut self.gps) {
            let p = gp.predict(&x).map_err(Error::core("exact GP prediction"))?;
            *o = (p.mean, p.var_f);
        }
        Ok(())
    }
    fn update(&mut self, z: &[f64], label: usize) -> Result<()> {
        let x = row::<D>(z, 0);
        for (c, gp) in self.gps.iter_mut().enumerate() {
            let (y, d) = self.targets.of(c, label);
            gp.push_with_noise(x, y, d)
                .map_err(|r| Error::core("exact GP update")(r.error))?;
        }
        Ok(())
    }
    fn hypers(&self) -> Vec<Hyper> {
        self.hypers.clone()
    }
}

/// Streaming SVGPs, one latent function per class, under a softmax likelihood.
struct SvgpClasses {
    models: Vec<Osvgp>,
    draws: usize,
    rng: Xoshiro256PlusPlus,
}

impl ClassGps for SvgpClasses {
    fn moments(&mut self, z: &[f64], out: &mut [(f64, f64)]) -> Result<()> {
        for (o, m) in out.iter_mut().zip(&self.models) {
            let q = m.marginal(z)?;
            *o = (q.mean, q.var);
        }
        Ok(())
    }
    /// One Adam step of every class's `q(u)` up `E_q[log softmax(f)_label]`, by the
    /// reparameterisation `f_c = μ_c + s_c ε_c`: `∂/∂μ_c = E[1[c = label] − p_c]`,
    /// `∂/∂s_c = E[(1[c = label] − p_c) ε_c]`, `∂/∂var_c = (∂/∂s_c) / 2s_c`.
    fn update(&mut self, z: &[f64], label: usize) -> Result<()> {
        let marginals = self
            .models
            .iter()
            .map(|m| m.marginal(z))
            .collect::<Result<Vec<_>>>()?;
        let c_count = marginals.len();
        let sd: Vec<f64> = marginals.iter().map(|q| q.var.sqrt()).collect();
        let (mut g_mean, mut g_sd) = (vec![0.0; c_count], vec![0.0; c_count]);
        let (mut eps, mut f, mut p) = (vec![0.0; c_count], vec![0.0; c_count], vec![0.0; c_count]);
        for _ in 0..self.draws {
            for c in 0..c_count {
                eps[c] = standard_normal::<f64, _>(&mut self.rng);
                f[c] = marginals[c].mean + sd[c] * eps[c];
            }
            softmax(&f, &mut p);
            for c in 0..c_count {
                let r = f64::from(u8::from(c == label)) - p[c];
                g_mean[c] += r;
                g_sd[c] += r * eps[c];
            }
        }
        let k = self.draws as f64;
        for (c, m) in self.models.iter_mut().enumerate() {
            let g_var = if sd[c] > 0.0 {
                g_sd[c] / k / (2.0 * sd[c])
            } else {
                0.0
            };
            m.step(&marginals[c], g_mean[c] / k, g_var)?;
        }
        Ok(())
    }
    fn hypers(&self) -> Vec<Hyper> {
        self.models.iter().map(|m| m.hyper().clone()).collect()
    }
}

/// `p = softmax(f)`.
fn softmax(f: &[f64], p: &mut [f64]) {
    let top = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for (pi, fi) in p.iter_mut().zip(f) {
        *pi = (fi - top).exp();
        total += *pi;
    }
    for pi in p.iter_mut() {
        *pi /= total;
    }
}

/// Draws behind the class probabilities (the same for every evaluation).
const PROBABILITY_DRAWS: usize = 256;

/// `E[softmax(f)]` with `f_c ~ N(mean_c, var_c)` independently, over the fixed draws `eps`
/// (`[draws, classes]`), into `out`.
fn class_probabilities(moments: &[(f64, f64)], eps: &[f64], out: &mut [f64]) {
    let c_count = moments.len();
    let (mut f, mut p) = (vec![0.0; c_count], vec![0.0; c_count]);
    out.fill(0.0);
    let draws = eps.len() / c_count;
    for e in eps.chunks_exact(c_count) {
        for c in 0..c_count {
            f[c] = moments[c].0 + moments[c].1.max(0.0).sqrt() * e[c];
        }
        softmax(&f, &mut p);
        for (o, pi) in out.iter_mut().zip(&p) {
            *o += pi;
        }
    }
    for o in out.iter_mut() {
        *o /= draws as f64;
    }
}

/// The index of the largest posterior mean.
fn argmax_mean(moments: &[(f64, f64)]) -> usize {
    moments
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (c, m)| {
            if m.0 > best.1 {
                (c, m.0)
            } else {
                best
            }
        })
        .0
}

/// Bytes the per-class models of `method` would hold.
fn state_bytes(config: &ClassifyConfig, width: usize, n: usize, classes: usize) -> f64 {
    let per_class = match config.method {
        ClassifyMethod::Wiski => {
            let m = (config.grid_size as f64).powi(width.min(3) as i32);
            3.0 * m * m
        }
        ClassifyMethod::Exact => (n as f64) * (n as f64 + width as f64 + 4.0),
        ClassifyMethod::Svgp => 4.0 * (config.inducing as f64).powi(2),
    };
    per_class * classes as f64 * 8.0
}

/// Runs the stream; `progress(done, total)` is called every 16 points and at the end.
///
/// # Errors
/// [`Error::InvalidInput`] for settings that do not fit the data (a grid on more than 3 raw
/// columns without a stem, an exact GP on more than 8, models that would hold more than
/// [`MAX_STATE_BYTES`], a learning rate that is not positive, a kernel other than RBF with
/// pretraining); [`Error::Core`] if a model fails on the data.
pub fn classify(
    config: &ClassifyConfig,
    data: &ClassData,
    mut progress: impl FnMut(usize, usize),
) -> Result<ClassifyReport> {
    let start = Instant::now();
    check_classes(&data.stream_label, data.classes)?;
    check_classes(&data.test_label, data.classes)?;
    let n = data.stream_label.len();
    if data.stream_x.len() != n * data.dims
        || data.test_x.len() != data.test_label.len() * data.dims
    {
        return Err(Error::invalid(
            "data",
            format!("{} values for {n} rows", data.stream_x.len()),
            "need rows × input columns",
        ));
    }
    for (name, v) in [
        ("lr", config.lr),
        ("stem_lr", config.stem_lr),
        ("pretrain_lr", config.pretrain.lr),
        ("svgp_lr", config.svgp_lr),
        ("grid_bound", config.grid_bound),
        ("alpha_eps", config.alpha_eps),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(Error::invalid(name, v, "must be positive and finite"));
        }
    }
    if config.svgp_draws == 0 {
        return Err(Error::invalid("svgp_draws", 0, "need at least one draw"));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed.wrapping_add(1));
    let mut stem = match config.stem {
        Some(k) => Some(LinearStem::new(data.dims, k, &mut rng)?),
        None => None,
    };
    let width = stem.as_ref().map_or(data.dims, |s| s.features());
    match config.method {
        ClassifyMethod::Wiski if width > 3 => {
            return Err(Error::invalid(
                "stem",
                format!("{} input columns", data.dims),
                "WISKI interpolates on a grid of 1 to 3 dimensions: add --stem 2 (a learned map to 2 features)",
            ))
        }
        ClassifyMethod::Exact | ClassifyMethod::Svgp if width > 8 => {
            return Err(Error::invalid(
                "stem",
                format!("{} input columns", data.dims),
                "the exact and sparse GPs here take 1 to 8 input dimensions: add --stem 2",
            ))
        }
        ClassifyMethod::Svgp if config.inducing == 0 => {
            return Err(Error::invalid(
                "inducing",
                0,
                "need at least one inducing point",
            ))
        }
        _ => {}
    }
    let bytes = state_bytes(config, width, n, data.classes);
    if bytes > MAX_STATE_BYTES as f64 {
        return Err(Error::invalid(
            "data",
            format!(
                "{} {} models for {n} rows",
                data.classes,
                config.method.name()
            ),
            format!(
                "they would hold {:.1} GB (at most {:.1}): use fewer rows, a smaller grid or wiski",
                bytes / 1e9,
                MAX_STATE_BYTES as f64 / 1e9
            ),
        ));
    }
    let hyper = Hyper {
        noise: 1.0,
        ..config.hyper.for_dim(width)?
    };
    let grid = GridSpec {
        size: vec![config.grid_size],
        lo: vec![-config.grid_bound],
        hi: vec![config.grid_bound],
        convention: Convention::Extended,
        clamp: true,
    }
    .for_dim(width.min(3))?;
    let targets = Targets::new(config.alpha_eps);
    let n0 = ((n as f64 * config.pretrain_fraction).round() as usize)
        .min(config.pretrain_max)
        .min(n);
    // Pretraining: the stem's statistics from the batch, then the full-batch fit of every
    // class's kernel and the stem on the sum of the classes' likelihoods.
    let t0 = Instant::now();
    let x0 = &data.stream_x[..n0 * data.dims];
    if let Some(s) = stem.as_mut() {
        for r in x0.chunks_exact(data.dims) {
            s.observe(r);
        }
    }
    let class_targets: Vec<(Vec<f64>, Vec<f64>)> = (0..data.classes)
        .map(|c| {
            data.stream_label[..n0]
                .iter()
                .map(|&l| targets.of(c, l))
                .unzip()
        })
        .collect();
    let objective = match config.method {
        ClassifyMethod::Wiski => Objective::Ski(&grid),
        _ => Objective::Exact,
    };
    let hypers = if n0 >= 2 && config.pretrain.epochs > 0 {
        let tasks = class_targets
            .iter()
            .map(|(y, d)| Task {
                hyper: hyper.clone(),
                y,
                d: Some(d),
            })
            .collect();
        pretrain_tasks(tasks, objective, stem.as_mut(), x0, &config.pretrain, false)?.0
    } else {
        vec![hyper.clone(); data.classes]
    };
    let pretrain_seconds = t0.elapsed().as_secs_f64();
    let stem_adam = match (&stem, config.method) {
        (Some(s), ClassifyMethod::Wiski) => Some(ThetaAdam::unclamped(s.weight().to_vec())?),
        _ => None,
    };
    let z0 = match &stem {
        Some(s) => s.features_of(x0),
        None => x0.to_vec(),
    };
    let mut run = Run {
        config,
        data,
        n0,
        stem,
        stem_adam,
        width,
        start,
        pretrain_seconds,
    };
    let pre = |c: usize| TrainData {
        dim: width,
        x: z0.clone(),
        y: class_targets[c].0.clone(),
        d: class_targets[c].1.clone(),
    };
    let mut report = match config.method {
        ClassifyMethod::Wiski => {
            let mut stores: Vec<WiskiStore> = (0..data.classes)
                .map(|_| WiskiStore::new(grid.nodes()))
                .collect();
            by_dim!(
                width,
                3,
                run_wiski(
                    &mut run,
                    &mut stores,
                    &grid,
                    &hypers,
                    &pre,
                    targets,
                    &mut progress
                )
            )?
        }
        ClassifyMethod::Exact => {
            let mut stores: Vec<ExactStore> = (0..data.classes)
                .map(|_| ExactStore::new(n, width))
                .collect();
            by_dim!(
                width,
                8,
                run_exact(&mut run, &mut stores, &hypers, &pre, targets, &mut progress)
            )?
        }
        ClassifyMethod::Svgp => {
            let z = (0..config.inducing * width)
                .map(|_| 2.0 * uniform::<f64, _>(&mut rng) - 1.0)
                .collect::<Vec<f64>>();
            let models = hypers
                .iter()
                .enumerate()
                .map(|(c, h)| {
                    let mut sgpr = Osgpr::new(Inducing::new(z.clone(), width, h)?);
                    let p = pre(c);
                    for ((zi, &y), &d) in p.x.chunks_exact(width).zip(&p.y).zip(&p.d) {
                        sgpr.update_with_noise(zi, y, d)?;
                    }
                    Osvgp::from_collapsed(&sgpr, config.svgp_lr)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut gps = SvgpClasses {
                models,
                draws: config.svgp_draws,
                rng: Xoshiro256PlusPlus::seed_from_u64(config.seed.wrapping_add(2)),
            };
            run.stream(&mut gps, &mut progress)?
        }
    };
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn run_wiski<const D: usize>(
    run: &mut Run<'_>,
    stores: &mut [WiskiStore],
    grid: &GridSpec,
    hypers: &[Hyper],
    pre: &dyn Fn(usize) -> TrainData,
    targets: Targets,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifyReport> {
    let mut learners = Vec::with_capacity(hypers.len());
    for (c, (store, h)) in stores.iter_mut().zip(hypers).enumerate() {
        let p = pre(c);
        let (gp, scratch) =
            store.fed::<D>(grid, h, &p, p.len(), Feed::Statistics, "pretraining")?;
        learners.push(
            Learner::new(gp, scratch, h, run.config.lr)?
                .with_schedule(false, run.config.kernel_every),
        );
    }
    let mut gps = WiskiClasses {
        learners,
        targets,
        grid3: grid_3d(grid)?,
        clamp: grid.clamp,
    };
    run.stream(&mut gps, progress)
}

fn run_exact<const D: usize>(
    run: &mut Run<'_>,
    stores: &mut [ExactStore],
    hypers: &[Hyper],
    pre: &dyn Fn(usize) -> TrainData,
    targets: Targets,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ClassifyReport> {
    let mut gps = Vec::with_capacity(hypers.len());
    for (c, (store, h)) in stores.iter_mut().zip(hypers).enumerate() {
        let mut gp = ExactGp::new(h.kernel::<D>()?, h.noise, store.buffers())
            .map_err(Error::core("exact GP"))?;
        let p = pre(c);
        for ((z, &y), &d) in p.x.chunks_exact(D).zip(&p.y).zip(&p.d) {
            gp.push_with_noise(row::<D>(z, 0), y, d)
                .map_err(|r| Error::core("exact GP pretraining rows")(r.error))?;
        }
        gps.push(gp);
    }
    let mut gps = ExactClasses {
        gps,
        hypers: hypers.to_vec(),
        targets,
    };
    run.stream(&mut gps, progress)
}

/// What every model's stream shares.
struct Run<'a> {
    config: &'a ClassifyConfig,
    data: &'a ClassData,
    n0: usize,
    stem: Option<LinearStem>,
    stem_adam: Option<ThetaAdam>,
    width: usize,
    start: Instant,
    pretrain_seconds: f64,
}

impl Run<'_> {
    fn features(&self, x: &[f64]) -> Vec<f64> {
        match &self.stem {
            Some(s) => s.features_of(x),
            None => x.to_vec(),
        }
    }

    fn evaluate(&self, gps: &mut dyn ClassGps, eps: &[f64], seen: usize) -> Result<ClassPoint> {
        let c_count = self.data.classes;
        let z = self.features(&self.data.test_x);
        let rows = self.data.test_label.len();
        let mut probs = vec![0.0; rows * c_count];
        let mut moments = vec![(0.0, 0.0); c_count];
        let mut correct = 0usize;
        for ((zi, p), &label) in z
            .chunks_exact(self.width)
            .zip(probs.chunks_exact_mut(c_count))
            .zip(&self.data.test_label)
        {
            gps.moments(zi, &mut moments)?;
            correct += usize::from(argmax_mean(&moments) == label);
            class_probabilities(&moments, eps, p);
        }
        Ok(ClassPoint {
            seen,
            test_accuracy: correct as f64 / rows.max(1) as f64,
            test_nll: metrics::nll(&probs, c_count, &self.data.test_label),
            ece: metrics::ece(&probs, c_count, &self.data.test_label, 10),
        })
    }

    fn stream(
        &mut self,
        gps: &mut dyn ClassGps,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ClassifyReport> {
        let (data, n0) = (self.data, self.n0);
        let n = data.stream_label.len();
        let p = data.dims;
        let c_count = data.classes;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.config.seed.wrapping_add(3));
        let eps: Vec<f64> = (0..PROBABILITY_DRAWS * c_count)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let evaluations = self.config.evaluations.max(1);
        let every = ((n - n0) / evaluations).max(1);
        let mut curve = vec![self.evaluate(gps, &eps, n0)?];
        let mut moments = vec![(0.0, 0.0); c_count];
        let mut correct = 0usize;
        let mut update_s = Vec::with_capacity(n - n0);
        for i in n0..n {
            let x = &data.stream_x[i * p..(i + 1) * p];
            let label = data.stream_label[i];
            let z = self.features(x);
            gps.moments(&z, &mut moments)?;
            correct += usize::from(argmax_mean(&moments) == label);
            let t = Instant::now();
            let z = match (self.stem.as_mut(), self.stem_adam.as_mut()) {
                // The stem's step on the classes' partial likelihoods (scaled by 1/(n+1)).
                (Some(stem), Some(adam)) => {
                    let gz = gps.stem_gradient(&z, label)?;
                    let scale = 1.0 / (i + 1) as f64;
                    stem.online_step(adam, x, gz.as_deref(), self.config.stem_lr, scale)?
                }
                _ => z,
            };
            gps.update(&z, label).map_err(|e| at_stream_row(e, i))?;
            update_s.push(t.elapsed().as_secs_f64());
            let done = i + 1 - n0;
            if done % every == 0 || i + 1 == n {
                curve.push(self.evaluate(gps, &eps, i + 1)?);
            }
            if done % 16 == 0 {
                progress(i + 1, n);
            }
        }
        progress(n, n);
        let times = UpdateTimes::of(&update_s);
        let last = curve.last().cloned().unwrap_or(ClassPoint {
            seen: n,
            test_accuracy: f64::NAN,
            test_nll: f64::NAN,
            ece: f64::NAN,
        });
        let hypers = gps.hypers();
        Ok(ClassifyReport {
            method: self.config.method.name(),
            n,
            dims: p,
            classes: c_count,
            stem: self.stem.as_ref().map(|s| s.features()),
            seed: self.config.seed,
            test_rows: data.test_label.len(),
            pretrain_rows: n0,
            test_accuracy: last.test_accuracy,
            test_nll: last.test_nll,
            ece: last.ece,
            online_accuracy: correct as f64 / (n - n0).max(1) as f64,
            accuracy_over_time: curve,
            seconds_per_update: times.mean_seconds,
            update_us_median: times.median_us,
            update_us_first_tenth: times.first_tenth_us,
            update_us_last_tenth: times.last_tenth_us,
            pretrain_seconds: self.pretrain_seconds,
            seconds: self.start.elapsed().as_secs_f64(),
            outputscale: hypers.iter().map(|h| h.outputscale).collect(),
            lengthscale: hypers.iter().map(|h| h.lengthscale.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_probabilities_sum_to_one_and_follow_the_means() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let eps: Vec<f64> = (0..3 * 512)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let mut p = [0.0; 3];
        class_probabilities(&[(1.0, 0.2), (0.0, 0.5), (-1.0, 0.1)], &eps, &mut p);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[0] > p[1] && p[1] > p[2], "{p:?}");
        // With no variance the probabilities are the softmax of the means.
        class_probabilities(&[(1.0, 0.0), (0.0, 0.0), (-1.0, 0.0)], &eps, &mut p);
        let e = [1f64.exp(), 1.0, (-1f64).exp()];
        let s: f64 = e.iter().sum();
        for c in 0..3 {
            assert!((p[c] - e[c] / s).abs() < 1e-12);
        }
    }

    /// The SVGP step's reparameterised gradient of `E[log softmax(f)_y]` in each class's mean
    /// and variance against a finite difference of the same expectation by Gauss–Hermite-free
    /// brute force: many common draws, two classes.
    #[test]
    fn softmax_expected_log_likelihood_gradient() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let draws = 200_000;
        let eps: Vec<f64> = (0..2 * draws)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let ell = |m: [f64; 2], v: [f64; 2]| -> f64 {
            let mut p = [0.0; 2];
            eps.chunks_exact(2)
                .map(|e| {
                    let f = [m[0] + v[0].sqrt() * e[0], m[1] + v[1].sqrt() * e[1]];
                    softmax(&f, &mut p);
                    p[0].ln()
                })
                .sum::<f64>()
                / draws as f64
        };
        let (m, v): ([f64; 2], [f64; 2]) = ([0.3, -0.2], [0.4, 0.9]);
        // The step's estimator on the same draws.
        let (mut gm, mut gs) = ([0.0; 2], [0.0; 2]);
        let mut p = [0.0; 2];
        for e in eps.chunks_exact(2) {
            let f = [m[0] + v[0].sqrt() * e[0], m[1] + v[1].sqrt() * e[1]];
            softmax(&f, &mut p);
            for c in 0..2 {
                let r = f64::from(u8::from(c == 0)) - p[c];
                gm[c] += r / draws as f64;
                gs[c] += r * e[c] / draws as f64;
            }
        }
        let h = 1e-5;
        for c in 0..2 {
            let (mut up, mut down) = (m, m);
            up[c] += h;
            down[c] -= h;
            let fd = (ell(up, v) - ell(down, v)) / (2.0 * h);
            assert!((fd - gm[c]).abs() < 1e-6, "mean {c}: {fd} vs {}", gm[c]);
            let (mut up, mut down) = (v, v);
            up[c] += h;
            down[c] -= h;
            let fd = (ell(m, up) - ell(m, down)) / (2.0 * h);
            let g_var = gs[c] / (2.0 * v[c].sqrt());
            assert!((fd - g_var).abs() < 1e-6, "var {c}: {fd} vs {g_var}");
        }
    }

    /// Two well-separated blobs in 5-D through a 2-feature stem: every method learns them.
    #[test]
    fn every_method_separates_blobs_through_a_stem() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let (n, dims) = (400, 5);
        let mut x = Vec::with_capacity(n * dims);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % 3;
            for d in 0..dims {
                let centre = if d == c { 2.0 } else { 0.0 };
                x.push(centre + 0.5 * standard_normal::<f64, _>(&mut rng));
            }
            labels.push(c);
        }
        let data = ClassData::split(&x, &labels, 3, dims, 0.2, 0).unwrap();
        for method in [
            ClassifyMethod::Wiski,
            ClassifyMethod::Exact,
            ClassifyMethod::Svgp,
        ] {
            let config = ClassifyConfig {
                method,
                stem: Some(2),
                pretrain_fraction: 0.2,
                grid_size: 10,
                inducing: 32,
                kernel_every: 4,
                ..ClassifyConfig::default()
            };
            let r = classify(&config, &data, |_, _| {}).unwrap();
            assert!(
                r.test_accuracy > 0.9 && r.test_nll < 0.6 && r.ece < 0.25,
                "{method:?}: {r:?}"
            );
        }
    }
}
