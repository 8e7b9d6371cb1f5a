//! Prequential streams — predict each point, then absorb it — through an online GP, and the
//! online hyperparameter learning of Stanton et al., *Kernel Interpolation for Scalable Online
//! Gaussian Processes* (AISTATS 2021): a full-batch fit on the first points, then one Adam step
//! on the likelihood before each new point is absorbed (the reference code's
//! `experiments/regression.py` and `OnlineSKIRegression.update` in
//! `online_gp/models/online_ski_regression.py`, wjmaddox/online_gp).

use std::time::Instant;

use keel_core::gp::{ExactGp, Family, Kernel, Wiski};
use serde::Serialize;

use super::dim::row;
use super::fit::{adam, ThetaAdam};
use super::hyper::{from_theta, to_theta, GridSpec, Hyper};
use super::mll::ski_mll_grad_d;
use super::posterior::TrainData;
use super::store::{ExactStore, Feed, WiskiStore};
use super::timing::median;
use crate::error::{Error, Result};

/// Which online GP a stream runs through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamMethod {
    /// WISKI (constant-time updates).
    Wiski,
    /// The exact GP (`O(n²)` per update, capacity = stream length).
    Exact,
}

impl StreamMethod {
    /// `wiski` or `exact`.
    pub fn name(self) -> &'static str {
        match self {
            StreamMethod::Wiski => "wiski",
            StreamMethod::Exact => "exact",
        }
    }

    /// Parses [`StreamMethod::name`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `--method`.
    pub fn parse(s: &str) -> Result<StreamMethod> {
        match s {
            "wiski" => Ok(StreamMethod::Wiski),
            "exact" => Ok(StreamMethod::Exact),
            m => Err(Error::invalid("method", m, "use wiski or exact")),
        }
    }
}

/// The posterior on a line of inputs after some number of points (1-D streams).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// Points absorbed.
    pub seen: usize,
    /// Predictive mean on the line.
    pub mean: Vec<f64>,
    /// Predictive standard deviation of f on the line.
    pub std_f: Vec<f64>,
}

/// Results of a prequential (predict, then learn) pass over a stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// Points streamed.
    pub n: usize,
    /// Input dimension.
    pub dim: usize,
    /// Grid nodes (WISKI).
    pub grid_nodes: Option<usize>,
    /// Root mean squared error of each point's prediction made before it was absorbed.
    pub prequential_rmse: f64,
    /// Mean negative log predictive density of each point before it was absorbed.
    pub prequential_nll: f64,
    /// log p(y) of the whole stream at the end.
    pub log_marginal_likelihood: f64,
    /// Median update time (µs).
    pub update_us_median: f64,
    /// Median update time over the first 10 % of the stream (µs).
    pub update_us_median_first_tenth: f64,
    /// Median update time over the last 10 % of the stream (µs).
    pub update_us_median_last_tenth: f64,
    /// Slowest update (µs).
    pub update_us_max: f64,
    /// Median prediction time (µs).
    pub predict_us_median: f64,
    /// Bytes of model state (independent of n for WISKI).
    pub state_bytes: usize,
    /// Whole pass, seconds.
    pub seconds: f64,
    /// Hyperparameters learned online (with `--learn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedHyper>,
    /// Posterior snapshots on a line (1-D only, when asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Snapshot>,
}

/// One online GP, whichever kind.
pub(crate) trait Online<const D: usize> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>>;
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()>;
    fn lml(&self) -> f64;
}

impl<const D: usize> Online<D> for Wiski<'_, f64, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        Wiski::predict(self, x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        self.observe_with_noise(x, y, d)
    }
    fn lml(&self) -> f64 {
        self.log_marginal_likelihood()
    }
}

impl<const D: usize> Online<D> for ExactGp<'_, f64, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        ExactGp::predict(self, x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        self.push_with_noise(*x, y, d).map_err(|r| r.error)
    }
    fn lml(&self) -> f64 {
        self.log_marginal_likelihood()
    }
}

/// The paper's online hyperparameter learning: a full-batch fit on the first points, then one
/// Adam step on `log p(y)/n` (from the cached statistics) before each new point is absorbed.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineLearning {
    /// Points used for pretraining (the paper: the first 5 %).
    pub pretrain: usize,
    /// Adam steps of pretraining.
    pub pretrain_steps: usize,
    /// Pretraining learning rate.
    pub pretrain_lr: f64,
    /// Online learning rate (one step per point).
    pub lr: f64,
}

/// Hyperparameters at the end of an online-learning stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LearnedHyper {
    /// Outputscale.
    pub outputscale: f64,
    /// Lengthscales.
    pub lengthscale: Vec<f64>,
    /// Noise variance.
    pub noise: f64,
    /// Points in the pretraining batch (not scored).
    pub pretrain_points: usize,
}

/// Where 1-D snapshots are taken and drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotPlan {
    /// After how many points.
    pub at: Vec<usize>,
    /// The inputs to predict at.
    pub line: Vec<f64>,
}

/// Streams `data` through an online GP: for each point, predict it, then absorb it.
///
/// # Errors
/// As [`wiski`](super::wiski) / [`exact`](super::exact), naming the stream row that failed;
/// [`Error::InvalidInput`] for a learning rate of `learning` that is not positive and finite.
pub fn stream(
    method: StreamMethod,
    hyper: &Hyper,
    grid: &GridSpec,
    data: &TrainData,
    plan: &SnapshotPlan,
    learning: Option<&OnlineLearning>,
    mut progress: impl FnMut(usize),
) -> Result<StreamReport> {
    let hyper = hyper.for_dim(data.dim)?;
    if let Some(l) = learning {
        for (setting, lr) in [("learn_lr", l.lr), ("pretrain_lr", l.pretrain_lr)] {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(Error::invalid(setting, lr, "must be positive"));
            }
        }
    }
    if learning.is_some() && method == StreamMethod::Exact {
        return Err(Error::invalid(
            "learn",
            "exact",
            "online hyperparameter learning runs with `method` wiski (each exact step would cost O(n³))",
        ));
    }
    match method {
        StreamMethod::Wiski => {
            let grid = grid.for_dim(data.dim)?;
            by_dim!(
                data.dim,
                3,
                stream_wiski_d(&hyper, &grid, data, plan, learning, &mut progress)
            )
        }
        StreamMethod::Exact => by_dim!(
            data.dim,
            8,
            stream_exact_d(&hyper, data, plan, &mut progress)
        ),
    }
}

fn stream_wiski_d<const D: usize>(
    hyper: &Hyper,
    grid: &GridSpec,
    data: &TrainData,
    plan: &SnapshotPlan,
    learning: Option<&OnlineLearning>,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let m = grid.nodes();
    let mut store = WiskiStore::new(m);
    let mut report = match learning {
        None => {
            let (mut gp, _) = store.model::<D>(grid, hyper)?;
            run_stream::<D>(&mut gp, data, plan, 0, progress)?
        }
        Some(l) => {
            // Pretraining: the first points into the statistics, a full-batch fit, one
            // refactorisation; then predict → one Adam step on L/n from the caches → absorb.
            let n0 = l.pretrain.min(data.len());
            let (mut gp, scratch) =
                store.fed::<D>(grid, hyper, data, n0, Feed::Statistics, "stream")?;
            let mut h = hyper.clone();
            if n0 > 0 {
                h = adam(&h, l.pretrain_steps, l.pretrain_lr, n0, |h| {
                    ski_mll_grad_d(&mut gp, h, scratch)
                })?
                .0;
            }
            gp.set_hyperparameters(h.kernel::<D>()?, h.noise, scratch)
                .map_err(Error::core("WISKI refactorisation"))?;
            let mut learner = Learner::new(gp, scratch, &h, l.lr)?;
            let mut r = run_stream::<D>(&mut learner, data, plan, n0, progress)?;
            let h = from_theta(learner.family, &learner.theta);
            r.learned = Some(LearnedHyper {
                outputscale: h.outputscale,
                lengthscale: h.lengthscale,
                noise: h.noise,
                pretrain_points: n0,
            });
            r
        }
    };
    report.method = StreamMethod::Wiski.name();
    report.grid_nodes = Some(m);
    report.state_bytes = (2 * m * m + 4 * m) * 8;
    Ok(report)
}

/// WISKI with one hyperparameter step before each point is absorbed (the paper's online loop).
pub(crate) struct Learner<'a, const D: usize> {
    pub(crate) gp: Wiski<'a, f64, D>,
    scratch: &'a mut [f64],
    pub(crate) theta: Vec<f64>,
    pub(crate) family: Family,
    adam: ThetaAdam,
    lr: f64,
    /// Whether `σ²` moves (the Dirichlet classifier's noise is fixed).
    learn_noise: bool,
    /// A step before every `every`-th point (1: every point; 0: none).
    every: usize,
}

impl<'a, const D: usize> Learner<'a, D> {
    /// `gp` (holding the hyperparameters `h`) with online steps of learning rate `lr`.
    pub(crate) fn new(
        gp: Wiski<'a, f64, D>,
        scratch: &'a mut [f64],
        h: &Hyper,
        lr: f64,
    ) -> Result<Self> {
        Ok(Learner {
            gp,
            scratch,
            theta: to_theta(h),
            family: h.family,
            adam: ThetaAdam::new(to_theta(h))?,
            lr,
            learn_noise: true,
            every: 1,
        })
    }

    /// Keeps `σ²` fixed, and takes the hyperparameter step only before every `every`-th point
    /// (never with 0).
    pub(crate) fn with_schedule(mut self, learn_noise: bool, every: usize) -> Self {
        self.learn_noise = learn_noise;
        self.every = every;
        self
    }

    /// The hyperparameters now.
    pub(crate) fn hyper(&self) -> Hyper {
        from_theta(self.family, &self.theta)
    }
}

impl<const D: usize> Online<D> for Learner<'_, D> {
    fn predict(&mut self, x: &[f64; D]) -> keel_core::Result<keel_core::gp::Prediction<f64>> {
        self.gp.predict(x)
    }
    fn absorb(&mut self, x: &[f64; D], y: f64, d: f64) -> keel_core::Result<()> {
        let n = self.gp.len() as usize;
        if n > 0 && self.every > 0 && n.is_multiple_of(self.every) {
            // The core's error where there is one; the online GP's trait speaks only core errors.
            let to_core = |e: Error| match e {
                Error::Core { source, .. } => source,
                _ => keel_core::Error::InvalidConfig {
                    what: "hyperparameter step",
                },
            };
            let h = from_theta(self.family, &self.theta);
            let (_, mut g) = ski_mll_grad_d(&mut self.gp, &h, self.scratch).map_err(to_core)?;
            if !self.learn_noise {
                if let Some(gn) = g.last_mut() {
                    *gn = 0.0;
                }
            }
            self.theta = self
                .adam
                .ascend(&g, self.lr, 1.0 / n as f64)
                .map_err(to_core)?;
            let h = from_theta(self.family, &self.theta);
            let mut l = [0.0; D];
            l.copy_from_slice(&h.lengthscale);
            let kernel = Kernel::new(h.family, h.outputscale, l)?;
            self.gp.set_hyperparameters(kernel, h.noise, self.scratch)?;
        }
        self.gp.observe_with_noise(x, y, d)
    }
    fn lml(&self) -> f64 {
        self.gp.log_marginal_likelihood()
    }
}

fn stream_exact_d<const D: usize>(
    hyper: &Hyper,
    data: &TrainData,
    plan: &SnapshotPlan,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let n = data.len();
    let mut store = ExactStore::new(n, D);
    let mut gp = ExactGp::new(hyper.kernel::<D>()?, hyper.noise, store.buffers())
        .map_err(Error::core("exact GP"))?;
    let mut report = run_stream::<D>(&mut gp, data, plan, 0, progress)?;
    report.method = StreamMethod::Exact.name();
    report.state_bytes = (n * n + n * (D + 5)) * 8;
    Ok(report)
}

/// The prequential pass over `data[skip..]` (the first `skip` rows are already in the model).
fn run_stream<const D: usize>(
    gp: &mut dyn Online<D>,
    data: &TrainData,
    plan: &SnapshotPlan,
    skip: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<StreamReport> {
    let n = data.len();
    let scored = n - skip.min(n);
    let start = Instant::now();
    let (mut se, mut nll) = (0.0, 0.0);
    let mut update_us = Vec::with_capacity(n);
    let mut predict_us = Vec::with_capacity(n);
    let mut snapshots = Vec::new();
    let row_err = |i: usize| {
        move |source| Error::Core {
            context: format!("stream row {}", i + 1),
            source,
        }
    };
    let snapshot = |gp: &mut dyn Online<D>, seen: usize| -> Result<Snapshot> {
        let mut s = Snapshot {
            seen,
            mean: vec![],
            std_f: vec![],
        };
        for &x in &plan.line {
            let mut p = [0.0; D];
            p[0] = x;
            let pr = gp.predict(&p).map_err(Error::core("snapshot"))?;
            s.mean.push(pr.mean);
            s.std_f.push(pr.var_f.sqrt());
        }
        Ok(s)
    };
    for i in skip.min(n)..n {
        if D == 1 && plan.at.contains(&i) {
            snapshots.push(snapshot(gp, i)?);
        }
        let x = row::<D>(&data.x, i);
        let t = Instant::now();
        let p = gp.predict(&x).map_err(row_err(i))?;
        predict_us.push(t.elapsed().as_secs_f64() * 1e6);
        let e = data.y[i] - p.mean;
        let var = p.var_f + (p.var_y - p.var_f) * data.d[i];
        se += e * e;
        nll += 0.5 * ((2.0 * std::f64::consts::PI * var).ln() + e * e / var);
        let t = Instant::now();
        gp.absorb(&x, data.y[i], data.d[i]).map_err(row_err(i))?;
        update_us.push(t.elapsed().as_secs_f64() * 1e6);
        if i % 256 == 255 {
            progress(i + 1);
        }
    }
    if D == 1 && plan.at.contains(&n) {
        snapshots.push(snapshot(gp, n)?);
    }
    progress(n);
    let tenth = (scored / 10).max(1);
    let first = median(&mut update_us[..tenth.min(scored)].to_vec());
    let last = median(&mut update_us[scored.saturating_sub(tenth)..].to_vec());
    let max = update_us.iter().copied().fold(0.0, f64::max);
    Ok(StreamReport {
        method: "",
        n,
        dim: D,
        grid_nodes: None,
        prequential_rmse: (se / scored.max(1) as f64).sqrt(),
        prequential_nll: nll / scored.max(1) as f64,
        log_marginal_likelihood: gp.lml(),
        update_us_median: median(&mut update_us),
        update_us_median_first_tenth: first,
        update_us_median_last_tenth: last,
        update_us_max: max,
        predict_us_median: median(&mut predict_us),
        state_bytes: 0,
        seconds: start.elapsed().as_secs_f64(),
        learned: None,
        snapshots,
    })
}

/// A seeded 1-D stream: `x ~ U(−3, 3)`, `y = sin(3x) + 0.3x + 0.2·N(0, 1)`.
pub fn synthetic_stream(n: usize, seed: u64) -> TrainData {
    use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let xi = -3.0 + 6.0 * uniform::<f64, _>(&mut rng);
        x.push(xi);
        y.push((3.0 * xi).sin() + 0.3 * xi + 0.2 * standard_normal::<f64, _>(&mut rng));
    }
    TrainData {
        dim: 1,
        x,
        y,
        d: vec![1.0; n],
    }
}
