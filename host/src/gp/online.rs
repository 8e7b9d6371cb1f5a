//! Online regression on real rows, as the WISKI paper runs it (Stanton et al., *Kernel
//! Interpolation for Scalable Online Gaussian Processes*, AISTATS 2021; the reference code's
//! `experiments/regression.py`, wjmaddox/online_gp): the rows in a seeded order, 10 % held out
//! as the test set, inputs min–max scaled to [−1, 1] and targets standardised (by the stream's
//! rows), a full-batch pretraining on the first 5 % of the stream, then one point at a time:
//! predict it, take the model's online steps, absorb it. Test RMSE and NLL are measured along
//! the way.
//!
//! Models: WISKI (with the paper's online steps — the stem on the partial likelihood
//! ([`partial`](super::partial)), the kernel on the cached likelihood — before each point is
//! absorbed in constant time), the exact GP, O-SGPR and O-SVGP ([`sparse`](super::sparse)). With
//! `stem`, inputs of any width pass through a learned [`LinearStem`] to 1–3 features; WISKI
//! trains it along the stream, the others keep the pretrained one (the reference also steps it
//! for them; see `sparse`'s notes).

use std::time::Instant;

use keel_core::gp::{Convention, Family, Grid};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::dim::row;
use super::fit::ThetaAdam;
use super::hyper::{GridSpec, Hyper};
use super::partial::partial_mll;
use super::posterior::TrainData;
use super::pretrain::{pretrain, Objective, PretrainConfig};
use super::sparse::{Inducing, Osgpr, Osvgp};
use super::stem::LinearStem;
use super::store::{ExactStore, Feed, WiskiStore};
use super::stream::{Learner, Online};
use super::timing::UpdateTimes;
use super::weights::grid_3d;
use crate::data::permutation;
use crate::error::{Error, Result};
use crate::export::wiski::WiskiExport;

/// Which online GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlineMethod {
    /// WISKI.
    Wiski,
    /// The exact GP (`O(n²)` per update).
    Exact,
    /// Online sparse GP regression (collapsed streaming bound).
    Osgpr,
    /// Online sparse variational GP (uncollapsed streaming ELBO).
    Osvgp,
}

impl OnlineMethod {
    /// `wiski`, `exact`, `osgpr` or `osvgp`.
    pub fn name(self) -> &'static str {
        match self {
            OnlineMethod::Wiski => "wiski",
            OnlineMethod::Exact => "exact",
            OnlineMethod::Osgpr => "osgpr",
            OnlineMethod::Osvgp => "osvgp",
        }
    }
}

/// Largest stream the exact GP takes (its state is `n²` values).
pub const MAX_EXACT_ROWS: usize = 20_000;

/// Settings of an online regression run (defaults: the reference's, see [`Default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineConfig {
    /// The model.
    pub method: OnlineMethod,
    /// Features of the learned stem (1 to 3), or none (the inputs as they are).
    pub stem: Option<usize>,
    /// Seed of the row order, the stem's initialisation and the inducing points.
    pub seed: u64,
    /// Share of the stream used for pretraining (0.05), at most `pretrain_max` rows.
    pub pretrain_fraction: f64,
    /// Cap on pretraining rows (the dense likelihood costs `O(n³)` per epoch).
    pub pretrain_max: usize,
    /// Pretraining schedule.
    pub pretrain: PretrainConfig,
    /// Online learning rate of WISKI's kernel hyperparameters (0.005).
    pub lr: f64,
    /// Online learning rate of WISKI's stem (0.0005).
    pub stem_lr: f64,
    /// Grid nodes per feature dimension (16), over ±`grid_bound` (1.1).
    pub grid_size: usize,
    /// Half-width of the grid.
    pub grid_bound: f64,
    /// Inducing points of O-SGPR and O-SVGP (256).
    pub inducing: usize,
    /// O-SVGP's learning rate on `q(u)` (0.001).
    pub svgp_lr: f64,
    /// Test evaluations along the stream (10).
    pub evaluations: usize,
    /// Starting hyperparameters (RBF; targets are standardised).
    pub hyper: Hyper,
    /// Return WISKI's final state for the controller (needs a stem).
    pub export: bool,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            method: OnlineMethod::Wiski,
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
            grid_size: 16,
            grid_bound: 1.1,
            inducing: 256,
            svgp_lr: 0.001,
            evaluations: 10,
            hyper: Hyper {
                family: Family::Rbf,
                outputscale: 1.0,
                lengthscale: vec![0.5],
                noise: 0.1,
            },
            export: false,
        }
    }
}

/// Rows split, scaled and ordered for a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct OnlineData {
    /// Input columns.
    pub dims: usize,
    /// Stream inputs in [−1, 1] (`[n, dims]`), in stream order.
    pub stream_x: Vec<f64>,
    /// Standardised stream targets.
    pub stream_y: Vec<f64>,
    /// Test inputs, scaled like the stream's (they may leave [−1, 1] a little).
    pub test_x: Vec<f64>,
    /// Test targets, standardised like the stream's.
    pub test_y: Vec<f64>,
    /// The targets' scale (RMSE in the data's units is `test_rmse × y_std`).
    pub y_std: f64,
    /// The targets' mean.
    pub y_mean: f64,
    /// Per input column, `(α, β)` of the scaling `x ↦ αx + β` onto [−1, 1] (`(0, 0)` for a
    /// constant column).
    pub x_scale: Vec<(f64, f64)>,
    /// The data rows (0-based) of the test set, in its order.
    pub test_rows: Vec<usize>,
}

impl OnlineData {
    /// Splits `x` (`[n, dims]`) and `y` in a seeded order: the first `test_fraction` of the
    /// permuted rows are the test set, the rest the stream.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for mismatched sizes, fewer than 20 rows, a test fraction outside
    /// (0, 0.5], or a constant target.
    pub fn split(x: &[f64], y: &[f64], dims: usize, test_fraction: f64, seed: u64) -> Result<Self> {
        let rows = RowSplit::new(x, y.len(), dims, test_fraction, seed)?;
        let stream = &rows.stream;
        let mean = stream.iter().map(|&i| y[i]).sum::<f64>() / stream.len() as f64;
        let var = stream.iter().map(|&i| (y[i] - mean).powi(2)).sum::<f64>() / stream.len() as f64;
        if !(var > 0.0) {
            return Err(Error::invalid(
                "target",
                "constant",
                "the stream's targets do not vary",
            ));
        }
        let sd = var.sqrt();
        let standard = |idx: &[usize]| idx.iter().map(|&i| (y[i] - mean) / sd).collect();
        Ok(OnlineData {
            dims,
            stream_y: standard(&rows.stream),
            test_y: standard(&rows.test),
            stream_x: rows.stream_x,
            test_x: rows.test_x,
            y_std: sd,
            y_mean: mean,
            x_scale: rows.x_scale,
            test_rows: rows.test,
        })
    }
}

/// Rows in a seeded order, split into a test set (the first `test_fraction` of the permuted
/// rows) and a stream, with the inputs min–max scaled onto [−1, 1] by the stream's range.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RowSplit {
    /// Row indices of the stream, in stream order.
    pub(crate) stream: Vec<usize>,
    /// Row indices of the test set.
    pub(crate) test: Vec<usize>,
    /// Scaled stream inputs (`[stream, dims]`).
    pub(crate) stream_x: Vec<f64>,
    /// Test inputs scaled like the stream's (they may leave [−1, 1] a little).
    pub(crate) test_x: Vec<f64>,
    /// Per column, `(α, β)` of `x ↦ αx + β` (`(0, 0)` for a constant column).
    pub(crate) x_scale: Vec<(f64, f64)>,
}

impl RowSplit {
    /// # Errors
    /// [`Error::InvalidInput`] for mismatched sizes, fewer than 20 rows or a test fraction
    /// outside (0, 0.5].
    pub(crate) fn new(
        x: &[f64],
        n: usize,
        dims: usize,
        test_fraction: f64,
        seed: u64,
    ) -> Result<RowSplit> {
        if dims == 0 || x.len() != n * dims {
            return Err(Error::invalid(
                "data",
                format!("{} values for {n} rows", x.len()),
                "need rows × input columns",
            ));
        }
        if n < 20 {
            return Err(Error::invalid(
                "data",
                format!("{n} rows"),
                "an online run needs at least 20 rows",
            ));
        }
        if !(test_fraction > 0.0 && test_fraction <= 0.5) {
            return Err(Error::invalid(
                "test_fraction",
                test_fraction,
                "use a share in (0, 0.5]",
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let order = permutation(n, &mut rng);
        let n_test = ((n as f64 * test_fraction).round() as usize).max(1);
        let (test, stream) = order.split_at(n_test);
        let (mut lo, mut hi) = (vec![f64::INFINITY; dims], vec![f64::NEG_INFINITY; dims]);
        for &i in stream {
            for d in 0..dims {
                lo[d] = lo[d].min(x[i * dims + d]);
                hi[d] = hi[d].max(x[i * dims + d]);
            }
        }
        let x_scale: Vec<(f64, f64)> = lo
            .iter()
            .zip(&hi)
            .map(|(l, h)| {
                let span = h - l;
                if span > 0.0 {
                    (2.0 / span, -2.0 * l / span - 1.0)
                } else {
                    (0.0, 0.0)
                }
            })
            .collect();
        let scale = |idx: &[usize]| -> Vec<f64> {
            let mut xs = Vec::with_capacity(idx.len() * dims);
            for &i in idx {
                for d in 0..dims {
                    let span = hi[d] - lo[d];
                    // A constant column maps to 0.
                    xs.push(if span > 0.0 {
                        2.0 * (x[i * dims + d] - lo[d]) / span - 1.0
                    } else {
                        0.0
                    });
                }
            }
            xs
        };
        Ok(RowSplit {
            stream_x: scale(stream),
            test_x: scale(test),
            stream: stream.to_vec(),
            test: test.to_vec(),
            x_scale,
        })
    }
}

/// A generated stream whose target depends on a 2-D projection of many inputs:
/// `x ~ U(−1, 1)^dims`, `y = sin(3 u₁ᵀx) + ½ cos(4 u₂ᵀx) + 0.1 ε` with unit directions
/// `u₁, u₂` drawn from the seed — what a learned 2-D stem can find and a fixed grid on the raw
/// inputs cannot hold. Returns `(x, y)`.
pub fn projection_stream(n: usize, dims: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x005E_ED0F_57E4);
    let mut direction = || {
        let u: Vec<f64> = (0..dims)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        u.into_iter().map(|v| v / norm).collect::<Vec<f64>>()
    };
    let (u1, u2) = (direction(), direction());
    let mut x = Vec::with_capacity(n * dims);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let xi: Vec<f64> = (0..dims)
            .map(|_| 2.0 * uniform::<f64, _>(&mut rng) - 1.0)
            .collect();
        let p1: f64 = xi.iter().zip(&u1).map(|(a, b)| a * b).sum();
        let p2: f64 = xi.iter().zip(&u2).map(|(a, b)| a * b).sum();
        // u ᵀx has variance 1/3: √3 uᵀx has unit variance.
        let (p1, p2) = (3f64.sqrt() * p1, 3f64.sqrt() * p2);
        y.push((1.5 * p1).sin() + 0.5 * p2 + 0.1 * standard_normal::<f64, _>(&mut rng));
        x.extend(xi);
    }
    (x, y)
}

/// Test metrics after some points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnlinePoint {
    /// Stream points absorbed (pretraining rows included).
    pub seen: usize,
    /// Test RMSE (standardised units).
    pub test_rmse: f64,
    /// Mean test negative log predictive density (standardised units).
    pub test_nll: f64,
}

/// The result of an online regression run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnlineReport {
    /// `wiski`, `exact`, `osgpr` or `osvgp`.
    pub method: &'static str,
    /// Stream rows (pretraining included).
    pub n: usize,
    /// Input columns.
    pub dims: usize,
    /// Stem features, if any.
    pub stem: Option<usize>,
    /// The run's seed.
    pub seed: u64,
    /// Test rows.
    pub test_rows: usize,
    /// Rows of the pretraining batch.
    pub pretrain_rows: usize,
    /// Test RMSE at the end (standardised targets).
    pub test_rmse: f64,
    /// Test NLL at the end (standardised targets).
    pub test_nll: f64,
    /// Test RMSE in the target's own units.
    pub test_rmse_units: f64,
    /// RMSE of each streamed point's prediction before it was absorbed.
    pub prequential_rmse: f64,
    /// Mean NLL of the same predictions.
    pub prequential_nll: f64,
    /// Test metrics along the stream.
    pub rmse_over_time: Vec<OnlinePoint>,
    /// Mean wall time of one online step (the online steps and the update; not the
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
    /// Kernel hyperparameters at the end.
    pub outputscale: f64,
    /// …
    pub lengthscale: Vec<f64>,
    /// …
    pub noise: f64,
}

/// A GP on features, whichever kind.
trait FeatureGp {
    /// Mean, variance of f, variance of y.
    fn predict(&mut self, z: &[f64]) -> Result<(f64, f64, f64)>;
    /// `∂(partial likelihood)/∂z` where the model trains the stem online.
    fn stem_gradient(&mut self, _z: &[f64], _y: f64) -> Result<Option<Vec<f64>>> {
        Ok(None)
    }
    /// The model's online steps, then absorbs `(z, y)`.
    fn update(&mut self, z: &[f64], y: f64) -> Result<()>;
    /// Hyperparameters now.
    fn hyper(&self) -> Hyper;
}

struct WiskiModel<'a, const D: usize> {
    learner: Learner<'a, D>,
    grid3: Grid<f64, 3>,
    clamp: bool,
}

impl<const D: usize> FeatureGp for WiskiModel<'_, D> {
    fn predict(&mut self, z: &[f64]) -> Result<(f64, f64, f64)> {
        let p = self
            .learner
            .gp
            .predict(&row::<D>(z, 0))
            .map_err(Error::core("WISKI prediction"))?;
        Ok((p.mean, p.var_f, p.var_y))
    }
    fn stem_gradient(&mut self, z: &[f64], y: f64) -> Result<Option<Vec<f64>>> {
        let (_, g) = partial_mll(
            &self.learner.gp,
            &self.grid3,
            self.clamp,
            &row::<D>(z, 0),
            y,
            1.0,
        )?;
        Ok(Some(g.to_vec()))
    }
    fn update(&mut self, z: &[f64], y: f64) -> Result<()> {
        self.learner
            .absorb(&row::<D>(z, 0), y, 1.0)
            .map_err(Error::core("WISKI update"))
    }
    fn hyper(&self) -> Hyper {
        self.learner.hyper()
    }
}

struct ExactModel<'a, const D: usize> {
    gp: keel_core::gp::ExactGp<'a, f64, D>,
    hyper: Hyper,
}

impl<const D: usize> FeatureGp for ExactModel<'_, D> {
    fn predict(&mut self, z: &[f64]) -> Result<(f64, f64, f64)> {
        let p = self
            .gp
            .predict(&row::<D>(z, 0))
            .map_err(Error::core("exact GP prediction"))?;
        Ok((p.mean, p.var_f, p.var_y))
    }
    fn update(&mut self, z: &[f64], y: f64) -> Result<()> {
        self.gp
            .push_with_noise(row::<D>(z, 0), y, 1.0)
            .map_err(|r| Error::core("exact GP update")(r.error))
    }
    fn hyper(&self) -> Hyper {
        self.hyper.clone()
    }
}

impl FeatureGp for Osgpr {
    fn predict(&mut self, z: &[f64]) -> Result<(f64, f64, f64)> {
        Osgpr::predict(self, z)
    }
    fn update(&mut self, z: &[f64], y: f64) -> Result<()> {
        Osgpr::update(self, z, y)
    }
    fn hyper(&self) -> Hyper {
        Osgpr::hyper(self).clone()
    }
}

impl FeatureGp for Osvgp {
    fn predict(&mut self, z: &[f64]) -> Result<(f64, f64, f64)> {
        Osvgp::predict(self, z)
    }
    fn update(&mut self, z: &[f64], y: f64) -> Result<()> {
        Osvgp::update(self, z, y)
    }
    fn hyper(&self) -> Hyper {
        Osvgp::hyper(self).clone()
    }
}

/// The features of rows: the stem's, or the inputs themselves.
struct Features {
    stem: Option<LinearStem>,
    adam: Option<ThetaAdam>,
    dims: usize,
}

impl Features {
    fn of(&self, x: &[f64]) -> Vec<f64> {
        match &self.stem {
            Some(s) => s.features_of(x),
            None => x.to_vec(),
        }
    }
    fn width(&self) -> usize {
        self.stem.as_ref().map_or(self.dims, |s| s.features())
    }
}

/// Runs the stream; `progress(done, total)` is called every 64 points and at the end. With
/// `config.export`, WISKI's final state comes back too.
///
/// # Errors
/// [`Error::InvalidInput`] for settings that do not fit the data (a grid on more than 3 raw
/// columns without a stem, an exact GP on more than 8 columns or [`MAX_EXACT_ROWS`] rows, a
/// learning rate that is not positive); [`Error::Core`] if a model fails on the data.
pub fn online(
    config: &OnlineConfig,
    data: &OnlineData,
    mut progress: impl FnMut(usize, usize),
) -> Result<(OnlineReport, Option<WiskiExport>)> {
    let start = Instant::now();
    if config.export && (config.method != OnlineMethod::Wiski || config.stem.is_none()) {
        return Err(Error::invalid(
            "export",
            config.method.name(),
            "the controller runs WISKI behind a stem: export with method wiski and a stem",
        ));
    }
    let n = data.stream_y.len();
    for (name, v) in [
        ("lr", config.lr),
        ("stem_lr", config.stem_lr),
        ("pretrain_lr", config.pretrain.lr),
        ("svgp_lr", config.svgp_lr),
        ("grid_bound", config.grid_bound),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(Error::invalid(name, v, "must be positive and finite"));
        }
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed.wrapping_add(1));
    let stem = match config.stem {
        Some(k) => Some(LinearStem::new(data.dims, k, &mut rng)?),
        None => None,
    };
    let width = stem.as_ref().map_or(data.dims, |s| s.features());
    match config.method {
        OnlineMethod::Wiski if width > 3 => {
            return Err(Error::invalid(
                "stem",
                format!("{} input columns", data.dims),
                "WISKI interpolates on a grid of 1 to 3 dimensions: add --stem 2 (a learned map to 2 features)",
            ))
        }
        OnlineMethod::Exact if width > 8 => {
            return Err(Error::invalid(
                "stem",
                format!("{} input columns", data.dims),
                "the exact GP takes 1 to 8 input dimensions: add --stem 2",
            ))
        }
        OnlineMethod::Exact if n > MAX_EXACT_ROWS => {
            return Err(Error::invalid(
                "method",
                format!("exact on {n} rows"),
                format!("the exact GP keeps an n×n factor; use at most {MAX_EXACT_ROWS} rows or another method"),
            ))
        }
        _ => {}
    }
    if config.inducing == 0 && matches!(config.method, OnlineMethod::Osgpr | OnlineMethod::Osvgp) {
        return Err(Error::invalid(
            "inducing",
            0,
            "need at least one inducing point",
        ));
    }
    let hyper = config.hyper.for_dim(width)?;
    let grid = GridSpec {
        size: vec![config.grid_size],
        lo: vec![-config.grid_bound],
        hi: vec![config.grid_bound],
        convention: Convention::Extended,
        clamp: true,
    }
    .for_dim(width.min(3))?;
    let n0 = ((n as f64 * config.pretrain_fraction).round() as usize)
        .min(config.pretrain_max)
        .min(n);
    let mut features = Features {
        stem,
        adam: None,
        dims: data.dims,
    };
    // Pretraining: the stem's statistics from the batch, then the full-batch fit.
    let t0 = Instant::now();
    let x0 = &data.stream_x[..n0 * data.dims];
    let y0 = &data.stream_y[..n0];
    if let Some(s) = features.stem.as_mut() {
        for r in x0.chunks_exact(data.dims) {
            s.observe(r);
        }
    }
    let objective = match config.method {
        OnlineMethod::Wiski => Objective::Ski(&grid),
        _ => Objective::Exact,
    };
    let hyper = if n0 >= 2 {
        pretrain(
            &hyper,
            objective,
            features.stem.as_mut(),
            x0,
            y0,
            &config.pretrain,
        )?
        .0
    } else {
        hyper
    };
    let pretrain_seconds = t0.elapsed().as_secs_f64();
    if config.method == OnlineMethod::Wiski {
        if let Some(s) = &features.stem {
            features.adam = Some(ThetaAdam::unclamped(s.weight().to_vec())?);
        }
    }
    let z0 = features.of(x0);
    let run = Run {
        config,
        data,
        n0,
        y0,
        z0: &z0,
        hyper: &hyper,
        grid: &grid,
        start,
        pretrain_seconds,
    };
    let mut export = None;
    let mut report = match config.method {
        OnlineMethod::Wiski => {
            let (r, e) = by_dim!(width, 3, run_wiski(&run, &mut features, &mut progress))?;
            export = e;
            r
        }
        OnlineMethod::Exact => by_dim!(width, 8, run_exact(&run, &mut features, &mut progress))?,
        OnlineMethod::Osgpr | OnlineMethod::Osvgp => {
            let inducing = Inducing::uniform(config.inducing, width, &hyper, &mut rng)?;
            let mut sgpr = Osgpr::new(inducing);
            for (z, &y) in z0.chunks_exact(width).zip(y0) {
                sgpr.update(z, y)?;
            }
            if config.method == OnlineMethod::Osgpr {
                run.stream(&mut sgpr, &mut features, &mut progress)?
            } else {
                let mut svgp = Osvgp::from_collapsed(&sgpr, config.svgp_lr)?;
                run.stream(&mut svgp, &mut features, &mut progress)?
            }
        }
    };
    report.seconds = start.elapsed().as_secs_f64();
    Ok((report, export))
}

/// What every model's stream shares.
struct Run<'a> {
    config: &'a OnlineConfig,
    data: &'a OnlineData,
    n0: usize,
    y0: &'a [f64],
    z0: &'a [f64],
    hyper: &'a Hyper,
    grid: &'a GridSpec,
    start: Instant,
    pretrain_seconds: f64,
}

fn run_wiski<const D: usize>(
    run: &Run<'_>,
    features: &mut Features,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(OnlineReport, Option<WiskiExport>)> {
    let mut store = WiskiStore::new(run.grid.nodes());
    let pre = TrainData {
        dim: D,
        x: run.z0.to_vec(),
        y: run.y0.to_vec(),
        d: vec![1.0; run.y0.len()],
    };
    let (gp, scratch) = store.fed::<D>(
        run.grid,
        run.hyper,
        &pre,
        pre.len(),
        Feed::Statistics,
        "pretraining",
    )?;
    let learner = Learner::new(gp, scratch, run.hyper, run.config.lr)?;
    let mut model = WiskiModel {
        learner,
        grid3: grid_3d(run.grid)?,
        clamp: run.grid.clamp,
    };
    let report = run.stream(&mut model, features, progress)?;
    let export = match (&features.stem, run.config.export) {
        (Some(stem), true) => {
            let (a_mat, b, c_yy, log_det_d, n) = model.learner.gp.statistics();
            Some(WiskiExport {
                grid: run.grid.clone(),
                hyper: model.learner.hyper(),
                precision: a_mat.to_vec(),
                b: b.to_vec(),
                scalars: (c_yy, log_det_d, n),
                stem: fold_scaling(stem, &run.data.x_scale),
                target: (run.data.y_mean, run.data.y_std),
            })
        }
        _ => None,
    };
    Ok((report, export))
}

/// The frozen stem on raw rows: `tanh(A(αx + β) + c) = tanh(A diag(α) x + (c + Aβ))`.
fn fold_scaling(stem: &LinearStem, scale: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>) {
    let f = stem.frozen();
    let p = scale.len();
    let mut w = f.a.clone();
    let mut c = f.c.clone();
    for (j, cj) in c.iter_mut().enumerate() {
        for (i, &(alpha, beta)) in scale.iter().enumerate() {
            *cj += f.a[j * p + i] * beta;
            w[j * p + i] = f.a[j * p + i] * alpha;
        }
    }
    (w, c)
}

fn run_exact<const D: usize>(
    run: &Run<'_>,
    features: &mut Features,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<OnlineReport> {
    let n = run.data.stream_y.len();
    let mut store = ExactStore::new(n, D);
    let gp =
        keel_core::gp::ExactGp::new(run.hyper.kernel::<D>()?, run.hyper.noise, store.buffers())
            .map_err(Error::core("exact GP"))?;
    let mut model = ExactModel {
        gp,
        hyper: run.hyper.clone(),
    };
    for (z, &y) in run.z0.chunks_exact(D).zip(run.y0) {
        model.update(z, y)?;
    }
    run.stream(&mut model, features, progress)
}

impl Run<'_> {
    fn evaluate(
        &self,
        model: &mut dyn FeatureGp,
        features: &Features,
        seen: usize,
    ) -> Result<OnlinePoint> {
        let z = features.of(&self.data.test_x);
        let k = features.width();
        let (mut se, mut nll) = (0.0, 0.0);
        for (zi, &y) in z.chunks_exact(k).zip(&self.data.test_y) {
            let (mean, _, var_y) = model.predict(zi)?;
            let e = y - mean;
            se += e * e;
            nll += 0.5 * ((2.0 * std::f64::consts::PI * var_y).ln() + e * e / var_y);
        }
        let m = self.data.test_y.len() as f64;
        Ok(OnlinePoint {
            seen,
            test_rmse: (se / m).sqrt(),
            test_nll: nll / m,
        })
    }

    fn stream(
        &self,
        model: &mut dyn FeatureGp,
        features: &mut Features,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<OnlineReport> {
        let (data, n0) = (self.data, self.n0);
        let n = data.stream_y.len();
        let p = data.dims;
        let evaluations = self.config.evaluations.max(1);
        let every = ((n - n0) / evaluations).max(1);
        let mut curve = vec![self.evaluate(model, features, n0)?];
        let (mut se, mut nll) = (0.0, 0.0);
        let mut update_s = Vec::with_capacity(n - n0);
        for i in n0..n {
            let x = &data.stream_x[i * p..(i + 1) * p];
            let y = data.stream_y[i];
            let z = features.of(x);
            let (mean, _, var_y) = model.predict(&z)?;
            let e = y - mean;
            se += e * e;
            nll += 0.5 * ((2.0 * std::f64::consts::PI * var_y).ln() + e * e / var_y);
            let t = Instant::now();
            let z = match (features.stem.as_mut(), features.adam.as_mut()) {
                // The stem's step on the partial likelihood (scaled by 1/(n+1)).
                (Some(stem), Some(adam)) => {
                    let gz = model.stem_gradient(&z, y)?;
                    let scale = 1.0 / (i + 1) as f64;
                    stem.online_step(adam, x, gz.as_deref(), self.config.stem_lr, scale)?
                }
                _ => z,
            };
            model.update(&z, y).map_err(|e| at_stream_row(e, i))?;
            update_s.push(t.elapsed().as_secs_f64());
            let done = i + 1 - n0;
            if done % every == 0 || i + 1 == n {
                curve.push(self.evaluate(model, features, i + 1)?);
            }
            if done % 64 == 0 {
                progress(i + 1, n);
            }
        }
        progress(n, n);
        let scored = (n - n0).max(1) as f64;
        let times = UpdateTimes::of(&update_s);
        let last = curve.last().cloned().unwrap_or(OnlinePoint {
            seen: n,
            test_rmse: f64::NAN,
            test_nll: f64::NAN,
        });
        let h = model.hyper();
        Ok(OnlineReport {
            method: self.config.method.name(),
            n,
            dims: p,
            stem: features.stem.as_ref().map(|s| s.features()),
            seed: self.config.seed,
            test_rows: data.test_y.len(),
            pretrain_rows: n0,
            test_rmse: last.test_rmse,
            test_nll: last.test_nll,
            test_rmse_units: last.test_rmse * data.y_std,
            prequential_rmse: (se / scored).sqrt(),
            prequential_nll: nll / scored,
            rmse_over_time: curve,
            seconds_per_update: times.mean_seconds,
            update_us_median: times.median_us,
            update_us_first_tenth: times.first_tenth_us,
            update_us_last_tenth: times.last_tenth_us,
            pretrain_seconds: self.pretrain_seconds,
            seconds: self.start.elapsed().as_secs_f64(),
            outputscale: h.outputscale,
            lengthscale: h.lengthscale,
            noise: h.noise,
        })
    }
}

/// `e` with "stream row {i + 1}" added to a core error's context.
pub(crate) fn at_stream_row(e: Error, i: usize) -> Error {
    match e {
        Error::Core { context, source } => Error::Core {
            context: format!("{context}, stream row {}", i + 1),
            source,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On `y = p + noise` with `p` one direction of 10 inputs, pretraining a 1-feature stem on
    /// the exact likelihood turns the stem towards that direction.
    #[test]
    fn pretraining_turns_the_stem_towards_the_signal() {
        let dims = 10;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let u: Vec<f64> = (0..dims)
            .map(|i| if i < 3 { 1.0 / 3f64.sqrt() } else { 0.0 })
            .collect();
        let n = 150;
        let x: Vec<f64> = (0..n * dims)
            .map(|_| 2.0 * uniform::<f64, _>(&mut rng) - 1.0)
            .collect();
        let y: Vec<f64> = x
            .chunks_exact(dims)
            .map(|r| {
                3f64.sqrt() * r.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()
                    + 0.05 * standard_normal::<f64, _>(&mut rng)
            })
            .collect();
        let mut stem = LinearStem::new(dims, 1, &mut rng).unwrap();
        for r in x.chunks_exact(dims) {
            stem.observe(r);
        }
        let cos = |s: &LinearStem| {
            let w = s.weight();
            let dot: f64 = w.iter().zip(&u).map(|(a, b)| a * b).sum();
            dot.abs() / w.iter().map(|v| v * v).sum::<f64>().sqrt()
        };
        let before = cos(&stem);
        let h = Hyper {
            family: Family::Rbf,
            outputscale: 1.0,
            lengthscale: vec![0.5],
            noise: 0.1,
        };
        let cfg = PretrainConfig {
            epochs: 200,
            lr: 0.05,
            stem_lr: 0.005,
        };
        let (h, l) = pretrain(&h, Objective::Exact, Some(&mut stem), &x, &y, &cfg).unwrap();
        let after = cos(&stem);
        eprintln!("cos before {before}, after {after}, L {l}, {h:?}");
        assert!(after > 0.95, "cos before {before}, after {after}");
    }
}
