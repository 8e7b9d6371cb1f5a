//! A spatial transfer in the shape of the linearized-network paper's malaria experiment
//! (Maddox et al., AISTATS 2021, §5; reference `experiments/malaria/run_ntk.py`), on generated
//! data: a network trained on one "year" of a smooth 2-D field adapts to the next year — whose
//! field has drifted — from a few points, by its linearization's GP posterior.
//!
//! The network and its training are the reference's: an MLP 2→500→500→2 (tanh) whose outputs
//! are a mean and a raw scale (`σ = softplus(raw) + 1e-5`), trained on 2,000 points of year 1 by
//! the heteroscedastic Gaussian likelihood with plain SGD (lr 1e-3, 500 epochs of 10
//! minibatches, ×0.1 every 100 epochs); the GP sees the mean output only (`used_dims = 0`) and,
//! as in the reference, is not optimised: zero mean and GPyTorch's default noise
//! `softplus(0) + 1e-4 ≈ 0.6932`. The baseline retrains the last layer on the adaptation points
//! (100 epochs, the same routine). Unlike the reference, the test points are disjoint from the
//! adaptation points by construction.
//!
//! The field, on `[0, 1]²`: year 1 is `Σₖ aₖ exp(−‖x − cₖ‖² / (2·0.15²)) + 0.3 sin(2π x₀) cos(π x₁)`
//! over the five bumps of [`BUMPS`]; year 2 moves every centre by `(0.10, −0.06)`, scales the
//! amplitudes by 1.25 and adds a sixth bump at (0.2, 0.75) of height 0.8. Observations add
//! Gaussian noise of standard deviation `0.05 + 0.15·x₀` (heteroscedastic, as the reference's
//! prevalence data).

use std::time::Instant;

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_engine::nn::{Activation, Mlp};
use keel_engine::params::Params;
use keel_engine::DType;

use super::fit::{first_output, matrix, train, Loss, Sgd};
use super::jacobian::Outputs;
use super::krylov::CgSettings;
use super::metrics::Metrics;
use super::posterior::{Mean, OnNoConvergence, Posterior, PosteriorSettings, Space};
use crate::error::{Error, Result};
use crate::progress::{Observer, Tick};

/// Year 1's bumps: centre x₀, centre x₁, height.
pub const BUMPS: [(f64, f64, f64); 5] = [
    (0.25, 0.30, 1.0),
    (0.70, 0.25, -0.8),
    (0.55, 0.65, 1.2),
    (0.15, 0.80, -0.6),
    (0.85, 0.75, 0.7),
];

/// The noise-free field of `year` (1 or 2) at `(x₀, x₁)`.
pub fn field(year: u8, x0: f64, x1: f64) -> f64 {
    let (shift, scale) = if year == 1 {
        ((0.0, 0.0), 1.0)
    } else {
        ((0.10, -0.06), 1.25)
    };
    let bump = |c0: f64, c1: f64, a: f64| {
        let d2 = (x0 - c0).powi(2) + (x1 - c1).powi(2);
        a * (-d2 / (2.0 * 0.15 * 0.15)).exp()
    };
    let mut v: f64 = BUMPS
        .iter()
        .map(|&(c0, c1, a)| bump(c0 + shift.0, c1 + shift.1, scale * a))
        .sum();
    if year == 2 {
        v += bump(0.2, 0.75, 0.8);
    }
    v + 0.3 * (std::f64::consts::TAU * x0).sin() * (std::f64::consts::PI * x1).cos()
}

/// The observation noise's standard deviation at `x₀`.
pub fn noise_sd(x0: f64) -> f64 {
    0.05 + 0.15 * x0
}

/// `n` noisy observations of `year` at uniform points of the unit square: `(x` flat `[n, 2]`, `y)`.
pub fn sample(year: u8, n: usize, rng: &mut Xoshiro256PlusPlus) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, b) = (uniform::<f64, _>(rng), uniform::<f64, _>(rng));
        x.extend([a, b]);
        y.push(field(year, a, b) + noise_sd(a) * standard_normal::<f64, _>(rng));
    }
    (x, y)
}

/// The experiment's configuration ([`SpatialConfig::reference`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SpatialConfig {
    /// Where the posterior is computed.
    pub space: Space,
    /// The prior mean (zero, as the reference).
    pub mean: Mean,
    /// Year-1 training points.
    pub n_train: usize,
    /// Year-2 adaptation points per repeat.
    pub n_adapt: usize,
    /// Repeats (new adaptation and test draws).
    pub tasks: usize,
    /// Year-2 test points per repeat, disjoint from the adaptation points.
    pub n_test: usize,
    /// Hidden width (two tanh layers).
    pub hidden: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Epochs of the last-layer baseline.
    pub last_layer_epochs: usize,
    /// SGD learning rate (no momentum).
    pub lr: f64,
    /// GP noise variance.
    pub noise: f64,
    /// CG tolerance and cap.
    pub cg: CgSettings,
    /// Lanczos steps.
    pub lanczos_rank: usize,
    /// Points per side of the plotting grid (0: none).
    pub grid: usize,
    /// Seed.
    pub seed: u64,
}

impl SpatialConfig {
    /// The reference's settings in `space`.
    pub fn reference(space: Space) -> Self {
        SpatialConfig {
            space,
            mean: Mean::Zero,
            n_train: 2000,
            n_adapt: 10,
            tasks: 5,
            n_test: 5000,
            hidden: 500,
            epochs: 500,
            last_layer_epochs: 100,
            lr: 1e-3,
            // GPyTorch's default: softplus(0) + 1e-4 = ln 2 + 1e-4.
            noise: std::f64::consts::LN_2 + 1e-4,
            cg: CgSettings {
                tol: 1e-8,
                max_iter: 1000,
            },
            lanczos_rank: 64,
            grid: 0,
            seed: 10,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn check(&self) -> Result<()> {
        for (name, v, max) in [
            ("n_train", self.n_train, 1 << 20),
            ("n_adapt", self.n_adapt, 1 << 16),
            ("tasks", self.tasks, 10_000),
            ("n_test", self.n_test, 1 << 20),
            ("hidden", self.hidden, 4096),
            ("epochs", self.epochs, 1 << 24),
        ] {
            if v == 0 || v > max {
                return Err(Error::invalid(name, v, format!("must be in 1..={max}")));
            }
        }
        if self.grid > 400 {
            return Err(Error::invalid(
                "grid",
                self.grid,
                "at most 400 points per side",
            ));
        }
        if !(self.lr > 0.0) || !self.lr.is_finite() {
            return Err(Error::invalid("lr", self.lr, "must be positive and finite"));
        }
        if !(self.noise > 0.0) || !self.noise.is_finite() {
            return Err(Error::invalid(
                "noise",
                self.noise,
                "must be positive and finite",
            ));
        }
        self.cg.check()
    }
}

/// One repeat's results.
#[derive(Clone, Debug, PartialEq)]
pub struct SpatialRepeat {
    /// The adaptation's test errors, calibration and cost.
    pub metrics: Metrics,
    /// The adaptation points (flat `[n, 2]`).
    pub adapt_x: Vec<f64>,
}

/// Fields on the plotting grid (rows along x₁, columns along x₀).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SpatialGrid {
    /// Grid coordinates on each axis.
    pub axis: Vec<f64>,
    /// Year 1, year 2, the network, the first repeat's adapted mean.
    pub fields: [Vec<Vec<f64>>; 4],
}

/// The experiment's results.
#[derive(Clone, Debug)]
pub struct SpatialReport {
    /// The configuration.
    pub config: SpatialConfig,
    /// The training loss (heteroscedastic NLL) at the end.
    pub train_nll: f64,
    /// Parameters.
    pub params: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Per repeat.
    pub tasks: Vec<SpatialRepeat>,
    /// The plotting grid (empty without one).
    pub grid: SpatialGrid,
}

/// Trains on year 1 and adapts to year 2, `tasks` times. Progress: training epochs, then one
/// tick per repeat.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad configuration; [`Error::Failed`] if training diverges or CG
/// does not converge; solver and engine errors.
pub fn run(cfg: &SpatialConfig, progress: &mut Observer) -> Result<SpatialReport> {
    cfg.check()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let (xt, yt) = sample(1, cfg.n_train, &mut rng);
    let mut params = Params::new();
    let net = Mlp::new(
        &mut params,
        &[2, cfg.hidden, cfg.hidden, 2],
        Activation::Tanh,
        keel_engine::init::Init::PyTorchDefault,
        DType::F64,
        &mut rng,
    )?;
    let sgd = Sgd {
        epochs: cfg.epochs,
        minibatches: 10,
        lr: cfg.lr,
        momentum: 0.0,
        step_every: 100,
        loss: Loss::HeteroscedasticNll,
    };
    let all: Vec<usize> = (0..params.len()).collect();
    let start = Instant::now();
    let train_nll = train(
        &net,
        &mut params,
        &all,
        &xt,
        2,
        &yt,
        &sgd,
        &mut rng,
        progress,
        "train",
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let settings = PosteriorSettings {
        noise: cfg.noise,
        mean: cfg.mean,
        space: cfg.space,
        cg: cfg.cg,
        lanczos_rank: cfg.lanczos_rank,
        precondition: true,
        on_no_convergence: OnNoConvergence::Fail,
    };
    let last: Vec<usize> = (params.len() - 2..params.len()).collect();
    let mut tasks = Vec::with_capacity(cfg.tasks);
    let mut grid = SpatialGrid::default();
    for t in 0..cfg.tasks {
        // One draw of n_adapt + n_test year-2 points, split: the two sets are disjoint.
        let (x, y) = sample(2, cfg.n_adapt + cfg.n_test, &mut rng);
        let (xa, xs) = x.split_at(2 * cfg.n_adapt);
        let (ya, ys) = y.split_at(cfg.n_adapt);
        let t0 = Instant::now();
        let xa_t = matrix(xa, 2)?;
        let xs_t = matrix(xs, 2)?;
        let post = Posterior::fit(&net, &params, &xa_t, ya, Outputs::One(0), settings)?;
        let pred = post.predict(&xs_t)?;
        let seconds = t0.elapsed().as_secs_f64();
        let unadapted = first_output(&net, &params, xs, 2)?;
        let mut retrained = params.clone();
        let head = Sgd {
            epochs: cfg.last_layer_epochs,
            minibatches: 10.min(cfg.n_adapt),
            ..sgd
        };
        train(
            &net,
            &mut retrained,
            &last,
            xa,
            2,
            ya,
            &head,
            &mut rng,
            &mut |_| {},
            "last layer",
        )?;
        let last_layer = first_output(&net, &retrained, xs, 2)?;
        if t == 0 && cfg.grid > 1 {
            let g = cfg.grid;
            let axis: Vec<f64> = (0..g).map(|i| i as f64 / (g - 1) as f64).collect();
            let pts: Vec<f64> = axis
                .iter()
                .flat_map(|&b| axis.iter().flat_map(move |&a| [a, b]))
                .collect();
            let rows =
                |v: Vec<f64>| -> Vec<Vec<f64>> { v.chunks(g).map(<[f64]>::to_vec).collect() };
            let truth = |year| {
                pts.chunks(2)
                    .map(|p| field(year, p[0], p[1]))
                    .collect::<Vec<_>>()
            };
            let adapted = post.predict(&matrix(&pts, 2)?)?.mean;
            grid = SpatialGrid {
                fields: [
                    rows(truth(1)),
                    rows(truth(2)),
                    rows(first_output(&net, &params, &pts, 2)?),
                    rows(adapted),
                ],
                axis,
            };
        }
        tasks.push(SpatialRepeat {
            metrics: Metrics::measure(&post, &pred, seconds, ys, &unadapted, &last_layer),
            adapt_x: xa.to_vec(),
        });
        progress(&Tick {
            done: t + 1,
            total: cfg.tasks,
            values: &[("task", (t + 1) as f64)],
        });
    }
    Ok(SpatialReport {
        config: cfg.clone(),
        train_nll,
        params: super::jacobian::param_count(&params),
        train_seconds,
        tasks,
        grid,
    })
}
