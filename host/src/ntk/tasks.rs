//! The transfer experiment of the linearized-network paper (Maddox et al., AISTATS 2021;
//! reference `experiments/simple_reg/ntk_transfer_regression.py`): an MLP 1→40→40→1 (tanh) is
//! trained on one task, then adapted to new tasks from a few points each by its linearization's
//! GP posterior — no retraining — and compared with no adaptation and with retraining the last
//! layer.
//!
//! Tasks, as in Bayesian MAML (Yoon et al. 2018) and the reference: sine waves
//! `y = A sin(w x + b) + 0.01·A·ε` with `A ~ U[0.1, 5]`, `b ~ U[0, 2π]`, `w ~ U[0.5, 2]`, or lines
//! `y = A x + b + 0.3·ε` with `A, b ~ U[−3, 3]`; `x ~ U(−5, 5)`, `ε ~ N(0, 1)`. Training: SGD
//! (lr 1e-3, momentum 0.9) on the mean squared error for 2,500 epochs of 3 minibatches, the rate
//! ×0.1 every 500 epochs. Noise `σ² = max(1e-3, training MSE)`.

use std::time::Instant;

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_engine::nn::{Activation, Mlp};
use keel_engine::params::Params;
use keel_engine::{DType, Tensor};

use super::jacobian::Outputs;
use super::krylov::CgSettings;
use super::metrics::Metrics;
use super::posterior::{Mean, OnNoConvergence, Posterior, PosteriorSettings, Space};
use crate::error::{Error, Result};
use crate::progress::{Observer, Tick};

use super::fit::{first_output, train, Loss, Sgd};

/// The task family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// `A sin(w x + b)`.
    Sine,
    /// `A x + b`.
    Linear,
}

impl TaskKind {
    /// Parses `sine` or `linear`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `task`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "sine" => Ok(TaskKind::Sine),
            "linear" => Ok(TaskKind::Linear),
            _ => Err(Error::invalid("task", s, "expected sine or linear")),
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sine => "sine",
            TaskKind::Linear => "linear",
        }
    }
}

/// One task: its parameters (for lines `frequency` is unused).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Task {
    /// The family.
    pub kind: TaskKind,
    /// `A`.
    pub amplitude: f64,
    /// `b`.
    pub phase: f64,
    /// `w` (sine only).
    pub frequency: f64,
}

fn between(rng: &mut Xoshiro256PlusPlus, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform::<f64, _>(rng)
}

impl Task {
    /// Draws a task.
    pub fn draw(kind: TaskKind, rng: &mut Xoshiro256PlusPlus) -> Task {
        match kind {
            TaskKind::Sine => Task {
                kind,
                amplitude: between(rng, 0.1, 5.0),
                phase: between(rng, 0.0, std::f64::consts::TAU),
                frequency: between(rng, 0.5, 2.0),
            },
            TaskKind::Linear => Task {
                kind,
                amplitude: between(rng, -3.0, 3.0),
                phase: between(rng, -3.0, 3.0),
                frequency: 0.0,
            },
        }
    }

    /// The noise-free value at `x`.
    pub fn value(&self, x: f64) -> f64 {
        match self.kind {
            TaskKind::Sine => self.amplitude * (self.frequency * x + self.phase).sin(),
            TaskKind::Linear => self.amplitude * x + self.phase,
        }
    }

    /// The noise standard deviation: `0.01·A` (sine) or 0.3 (lines).
    pub fn noise_sd(&self) -> f64 {
        match self.kind {
            TaskKind::Sine => 0.01 * self.amplitude,
            TaskKind::Linear => 0.3,
        }
    }

    /// `n` noisy observations at `x ~ U(−5, 5)`.
    pub fn sample(&self, n: usize, rng: &mut Xoshiro256PlusPlus) -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = (0..n).map(|_| between(rng, -5.0, 5.0)).collect();
        let y = x
            .iter()
            .map(|&x| self.value(x) + self.noise_sd() * standard_normal::<f64, _>(rng))
            .collect();
        (x, y)
    }
}

/// The experiment's configuration (defaults: [`AdaptConfig::reference`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptConfig {
    /// The task family.
    pub task: TaskKind,
    /// Where the posterior is computed.
    pub space: Space,
    /// The prior mean (zero as the reference's script, or the network).
    pub mean: Mean,
    /// Points of task 0 the network is trained on.
    pub n_train: usize,
    /// Points of each new task the posterior is conditioned on.
    pub n_adapt: usize,
    /// New tasks.
    pub tasks: usize,
    /// Held-out test points per task (drawn apart from the adaptation points).
    pub n_test: usize,
    /// Hidden width (two tanh layers).
    pub hidden: usize,
    /// Training epochs (task 0, and the last-layer baseline).
    pub epochs: usize,
    /// Minibatches per epoch.
    pub minibatches: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Epochs between learning-rate decays (×0.1).
    pub step_every: usize,
    /// CG tolerance and cap.
    pub cg: CgSettings,
    /// Lanczos steps for the variances.
    pub lanczos_rank: usize,
    /// Points of the plotting grid on [−5, 5].
    pub grid: usize,
    /// The noise variance σ² (`None`: the reference's `max(1e-3, training MSE)`).
    pub noise: Option<f64>,
    /// The seed of everything.
    pub seed: u64,
}

impl AdaptConfig {
    /// The reference script's settings for `task` in `space`.
    pub fn reference(task: TaskKind, space: Space) -> Self {
        AdaptConfig {
            task,
            space,
            mean: Mean::Zero,
            n_train: 10,
            n_adapt: 10,
            tasks: 5,
            n_test: 1000,
            hidden: 40,
            epochs: 2500,
            minibatches: 3,
            lr: 1e-3,
            momentum: 0.9,
            step_every: 500,
            cg: CgSettings {
                tol: 1e-8,
                max_iter: 1000,
            },
            lanczos_rank: 64,
            grid: 200,
            noise: None,
            seed: 10,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn check(&self) -> Result<()> {
        let positive = [
            ("n_train", self.n_train),
            ("n_adapt", self.n_adapt),
            ("tasks", self.tasks),
            ("n_test", self.n_test),
            ("hidden", self.hidden),
            ("minibatches", self.minibatches),
            ("step_every", self.step_every),
            ("lanczos_rank", self.lanczos_rank),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1"));
            }
        }
        let limits = [
            ("n_train", self.n_train, 1 << 20),
            ("n_adapt", self.n_adapt, 1 << 16),
            ("tasks", self.tasks, 10_000),
            ("n_test", self.n_test, 1 << 20),
            ("hidden", self.hidden, 4096),
            ("grid", self.grid, 100_000),
        ];
        for (name, v, max) in limits {
            if v > max {
                return Err(Error::invalid(name, v, format!("at most {max}")));
            }
        }
        if self.minibatches > self.n_train {
            return Err(Error::invalid(
                "minibatches",
                self.minibatches,
                format!("more minibatches than the {} training points", self.n_train),
            ));
        }
        if !(self.lr > 0.0) || !self.lr.is_finite() {
            return Err(Error::invalid("lr", self.lr, "must be positive and finite"));
        }
        if let Some(s2) = self.noise {
            if !(s2 > 0.0) || !s2.is_finite() {
                return Err(Error::invalid("noise", s2, "must be positive and finite"));
            }
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid(
                "momentum",
                self.momentum,
                "must be in [0, 1)",
            ));
        }
        self.cg.check()
    }
}

/// One new task's results.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskReport {
    /// The task.
    pub task: Task,
    /// The adaptation's test errors, calibration and cost.
    pub metrics: Metrics,
    /// The adaptation points.
    pub adapt: (Vec<f64>, Vec<f64>),
    /// The plotting grid and, on it, the truth, the adapted mean and latent standard deviation,
    /// the unadapted network and the last-layer baseline.
    pub grid: GridCurves,
}

/// Curves on the plotting grid.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GridCurves {
    /// The grid.
    pub x: Vec<f64>,
    /// The task's noise-free function.
    pub truth: Vec<f64>,
    /// The adapted mean.
    pub mean: Vec<f64>,
    /// The adapted latent standard deviation.
    pub sd: Vec<f64>,
    /// The network as trained on task 0.
    pub network: Vec<f64>,
    /// The network with its last layer retrained.
    pub last_layer: Vec<f64>,
}

/// The experiment's results.
#[derive(Clone, Debug)]
pub struct AdaptReport {
    /// The configuration.
    pub config: AdaptConfig,
    /// Task 0.
    pub train_task: Task,
    /// The network's training MSE on task 0 at the end.
    pub train_mse: f64,
    /// The noise variance used: the configuration's, or `max(1e-3, train_mse)`.
    pub noise: f64,
    /// Parameters of the network.
    pub params: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Per new task.
    pub tasks: Vec<TaskReport>,
    /// The network trained on task 0.
    pub net: Mlp,
    /// Its parameters.
    pub trained: Params,
}

fn column(x: &[f64]) -> Result<Tensor> {
    super::fit::matrix(x, 1)
}

fn network_values(net: &Mlp, params: &Params, x: &[f64]) -> Result<Vec<f64>> {
    first_output(net, params, x, 1)
}

impl AdaptConfig {
    fn sgd(&self, minibatches: usize) -> Sgd {
        Sgd {
            epochs: self.epochs,
            minibatches,
            lr: self.lr,
            momentum: self.momentum,
            step_every: self.step_every,
            loss: Loss::Mse,
        }
    }
}

/// Trains on task 0 and adapts to `tasks` new tasks. Progress: the training epochs, then one
/// tick per task.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad configuration; [`Error::Failed`] if training diverges or a
/// CG solve does not converge; solver and engine errors.
pub fn adapt(cfg: &AdaptConfig, progress: &mut Observer) -> Result<AdaptReport> {
    cfg.check()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let train_task = Task::draw(cfg.task, &mut rng);
    let (xt, yt) = train_task.sample(cfg.n_train, &mut rng);
    let mut params = Params::new();
    let net = Mlp::new(
        &mut params,
        &[1, cfg.hidden, cfg.hidden, 1],
        Activation::Tanh,
        keel_engine::init::Init::PyTorchDefault,
        DType::F64,
        &mut rng,
    )?;
    let start = Instant::now();
    let all: Vec<usize> = (0..params.len()).collect();
    let train_mse = train(
        &net,
        &mut params,
        &all,
        &xt,
        1,
        &yt,
        &cfg.sgd(cfg.minibatches),
        &mut rng,
        progress,
        "train",
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let noise = cfg.noise.unwrap_or(train_mse.max(1e-3));
    let settings = PosteriorSettings {
        noise,
        mean: cfg.mean,
        space: cfg.space,
        cg: cfg.cg,
        lanczos_rank: cfg.lanczos_rank,
        precondition: true,
        on_no_convergence: OnNoConvergence::Fail,
    };
    let grid_x: Vec<f64> = (0..cfg.grid)
        .map(|i| -5.0 + 10.0 * i as f64 / (cfg.grid.max(2) - 1) as f64)
        .collect();
    let network_grid = if cfg.grid > 0 {
        network_values(&net, &params, &grid_x)?
    } else {
        Vec::new()
    };
    let last = params.len() - 2..params.len();
    let mut tasks = Vec::with_capacity(cfg.tasks);
    for t in 0..cfg.tasks {
        let task = Task::draw(cfg.task, &mut rng);
        let (xa, ya) = task.sample(cfg.n_adapt, &mut rng);
        let (xs, ys) = task.sample(cfg.n_test, &mut rng);
        let t0 = Instant::now();
        let xa_t = column(&xa)?;
        let xs_t = column(&xs)?;
        let post = Posterior::fit(&net, &params, &xa_t, &ya, Outputs::All, settings)?;
        let pred = post.predict(&xs_t)?;
        let seconds = t0.elapsed().as_secs_f64();
        let unadapted = network_values(&net, &params, &xs)?;
        let mut retrained = params.clone();
        let trainable: Vec<usize> = last.clone().collect();
        train(
            &net,
            &mut retrained,
            &trainable,
            &xa,
            1,
            &ya,
            &cfg.sgd(cfg.minibatches.min(cfg.n_adapt)),
            &mut rng,
            &mut |_| {},
            "last layer",
        )?;
        let last_layer = network_values(&net, &retrained, &xs)?;
        let grid = if cfg.grid > 0 {
            let gp = post.predict(&column(&grid_x)?)?;
            GridCurves {
                x: grid_x.clone(),
                truth: grid_x.iter().map(|&x| task.value(x)).collect(),
                mean: gp.mean,
                sd: gp.variance.iter().map(|v| v.sqrt()).collect(),
                network: network_grid.clone(),
                last_layer: network_values(&net, &retrained, &grid_x)?,
            }
        } else {
            GridCurves::default()
        };
        tasks.push(TaskReport {
            task,
            metrics: Metrics::measure(&post, &pred, seconds, &ys, &unadapted, &last_layer),
            adapt: (xa, ya),
            grid,
        });
        progress(&Tick {
            done: t + 1,
            total: cfg.tasks,
            values: &[("task", (t + 1) as f64)],
        });
    }
    Ok(AdaptReport {
        config: cfg.clone(),
        train_task,
        train_mse,
        noise,
        params: super::jacobian::param_count(&params),
        train_seconds,
        tasks,
        net,
        trained: params,
    })
}
