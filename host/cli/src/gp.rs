//! `keel gp …`: Gaussian-process regression, batch and streaming.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keel::data::read_numeric_csv;
use keel::error::{Error, Result};
use keel::gp::{
    exact, fit, ski_dense, stream, synthetic_stream, timed, wiski, GridSpec, Hyper, OnlineLearning,
    SnapshotPlan, StreamMethod, StreamReport, TrainData,
};
use keel::output::check_plot;
use keel::simulate::parse_list;
use keel_core::gp::{Convention, Family};
use serde_json::json;

use super::values::name;

#[derive(Subcommand)]
pub enum GpCommand {
    /// Posterior mean and variances at test inputs, and the log marginal likelihood, by the
    /// exact GP, dense SKI, or WISKI (training rows streamed through the core's update).
    Regress(RegressArgs),
    /// The online loop: predict each point, then absorb it; prequential RMSE/NLL and the time
    /// per update (constant for WISKI, growing with n for the exact GP).
    Stream(StreamArgs),
    /// Online regression on a data file's rows (or a generated high-dimensional stream), as
    /// the WISKI paper runs it: seeded order, 10 % held out, pretraining on the first 5 %, then
    /// predict → online steps → absorb, with test RMSE/NLL along the way. WISKI, the exact GP,
    /// O-SGPR or O-SVGP; --stem K learns a map of the inputs to K features.
    Online(OnlineArgs),
    /// Online binary classification with Dirichlet-transformed GPs (one per class) on Keel's
    /// 2-D banana stream: online and test accuracy.
    Classify(ClassifyArgs),
    /// Bayesian optimisation of a standard test function with an online GP surrogate; with
    /// --method both, WISKI and the exact GP side by side (time per step and best value).
    Bo(BoArgs),
    /// Active learning on a generated 2-D field (the WISKI paper's qNIPV experiment): label
    /// q pool points per step that most reduce the mean posterior variance; test RMSE, mean
    /// variance and time per step, WISKI and/or the exact GP.
    Active(ActiveArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FunctionArg {
    Ackley,
    Levy,
    Rastrigin,
    Rosenbrock,
    StyblinskiTang,
    Griewank,
    DixonPrice,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AcquisitionArg {
    Ucb,
    Ei,
    Nei,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BoMethodArg {
    Wiski,
    Exact,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StreamMethodArg {
    Wiski,
    Exact,
}

impl From<StreamMethodArg> for StreamMethod {
    fn from(m: StreamMethodArg) -> Self {
        match m {
            StreamMethodArg::Wiski => StreamMethod::Wiski,
            StreamMethodArg::Exact => StreamMethod::Exact,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum RegressMethodArg {
    Exact,
    Ski,
    Wiski,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KernelArg {
    Rbf,
    Matern12,
    Matern32,
    Matern52,
}

impl From<KernelArg> for Family {
    fn from(k: KernelArg) -> Self {
        match k {
            KernelArg::Rbf => Family::Rbf,
            KernelArg::Matern12 => Family::Matern12,
            KernelArg::Matern32 => Family::Matern32,
            KernelArg::Matern52 => Family::Matern52,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConventionArg {
    Endpoints,
    Extended,
}

#[derive(Args)]
pub struct BoArgs {
    /// Test function.
    #[arg(long, value_enum, default_value = "ackley")]
    function: FunctionArg,
    /// Input dimension (WISKI: 1 to 3).
    #[arg(long, default_value_t = 3, value_parser = super::values::at_least_one)]
    dim: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 300, value_parser = super::values::at_least_one)]
    steps: usize,
    /// Points per step.
    #[arg(long, default_value_t = 3, value_parser = super::values::at_least_one)]
    batch: usize,
    /// Random initial points.
    #[arg(long, default_value_t = 10)]
    init: usize,
    /// Acquisition function.
    #[arg(long, value_enum, default_value = "ucb")]
    acquisition: AcquisitionArg,
    /// β of UCB.
    #[arg(long, default_value_t = 2.0)]
    beta: f64,
    /// Surrogate: wiski, exact, or both (same seed, one after the other).
    #[arg(long, value_enum, default_value = "wiski")]
    method: BoMethodArg,
    /// Observation noise sd added to the function.
    #[arg(long, default_value_t = 0.0)]
    noise_sd: f64,
    /// Kernel (inputs scaled to the unit cube, targets standardised).
    #[arg(long, value_enum, default_value = "matern52")]
    kernel: KernelArg,
    /// Outputscale.
    #[arg(long, default_value_t = 1.0)]
    outputscale: f64,
    /// Lengthscale in unit-cube units (one, or one per dimension).
    #[arg(long, default_value = "0.15")]
    lengthscale: String,
    /// Noise variance of the surrogate (standardised units).
    #[arg(long, default_value_t = 1e-3)]
    noise: f64,
    /// WISKI grid nodes per dimension (default: 64 in 1-D, 30 in 2-D, 10 in 3-D).
    #[arg(long)]
    grid_size: Option<usize>,
    /// Refit the hyperparameters every N steps by maximising the likelihood (0: never).
    #[arg(long, default_value_t = 0)]
    refit_every: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// PNG with time per step and best value against evaluations.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON (with the per-step history).
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum ClassifyMethodArg {
    Wiski,
    Exact,
    Svgp,
}

#[derive(Args)]
pub struct ActiveArgs {
    /// Steps (the paper: 500).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Points labelled per step.
    #[arg(long, default_value_t = 6)]
    q: usize,
    /// Initial random labelled points.
    #[arg(long, default_value_t = 10)]
    init: usize,
    /// Pool size (unlabelled points with known noise variances).
    #[arg(long, default_value_t = 10_000)]
    pool: usize,
    /// Integration and test points: a random subset of the pool.
    #[arg(long, default_value_t = 1_000)]
    integration: usize,
    /// Unlabelled pool points considered per step (a fresh random subset each step).
    #[arg(long, default_value_t = 300)]
    candidates: usize,
    /// Surrogate: wiski, exact, or both (same seed, one after the other).
    #[arg(long, value_enum, default_value = "wiski")]
    method: BoMethodArg,
    /// Kernel (the reference: Matérn-1/2).
    #[arg(long, value_enum, default_value = "matern12")]
    kernel: KernelArg,
    /// Outputscale.
    #[arg(long, default_value_t = 0.5)]
    outputscale: f64,
    /// Lengthscale on [0, 1]² (one, or one per dimension).
    #[arg(long, default_value = "0.2")]
    lengthscale: String,
    /// WISKI grid nodes per dimension over [0, 1]².
    #[arg(long, default_value_t = 30)]
    grid_size: usize,
    /// Seed (pool, initial points, candidate subsets).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// PNG with test RMSE and mean variance against steps.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON (with the per-step series).
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ClassifyArgs {
    /// CSV with a header row: the --target column (class labels) and numeric input columns.
    /// Without it, Keel's 2-D banana stream (--n, --n-test, --spread).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Label column of --data.
    #[arg(long, default_value = "label")]
    target: String,
    /// The online classifier: one WISKI or exact GP per class on Dirichlet targets, or
    /// streaming sparse variational GPs with a softmax likelihood.
    #[arg(long, value_enum, default_value = "wiski")]
    method: ClassifyMethodArg,
    /// Learn a linear stem to this many features (1–3): needed where the inputs have more
    /// columns than the grid (3) or the exact and sparse GPs (8) take.
    #[arg(long)]
    stem: Option<usize>,
    /// Banana points streamed (without --data).
    #[arg(long, default_value_t = 2000, conflicts_with = "data")]
    n: usize,
    /// Banana test points (without --data).
    #[arg(long, default_value_t = 1000, conflicts_with = "data")]
    n_test: usize,
    /// Noise sd of the banana's crescents (before mapping onto [−1, 1]²).
    #[arg(long, default_value_t = 0.15, conflicts_with = "data")]
    spread: f64,
    /// Seed of the row order, the stem, the inducing points and the draws (the banana's
    /// test set uses seed + 1).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of --data's rows held out for testing.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Share of the stream used for pretraining (at most --pretrain-max rows).
    #[arg(long, default_value_t = 0.05)]
    pretrain_fraction: f64,
    /// Most pretraining rows (the dense likelihoods cost O(n³) per epoch and class).
    #[arg(long, default_value_t = 500)]
    pretrain_max: usize,
    /// Full-batch pretraining epochs (0: keep the starting kernel).
    #[arg(long, default_value_t = 200)]
    pretrain_epochs: usize,
    /// Pretraining learning rate of the kernels (the stem's is a tenth).
    #[arg(long, default_value_t = 0.05)]
    pretrain_lr: f64,
    /// Starting outputscale of every class's RBF kernel.
    #[arg(long, default_value_t = 1.0)]
    outputscale: f64,
    /// Starting lengthscale (one, or one per feature).
    #[arg(long, default_value = "0.5")]
    lengthscale: String,
    /// Online learning rate of WISKI's kernels (the stem's is a tenth).
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// WISKI's kernel step before every this many points (0: never). The step costs O(m³)
    /// per class; the reference takes it before every point.
    #[arg(long, default_value_t = 1)]
    kernel_every: usize,
    /// Grid nodes per feature dimension (WISKI), over [−1, 1].
    #[arg(long, default_value_t = 16)]
    grid_size: usize,
    /// Inducing points (svgp).
    #[arg(long, default_value_t = 256)]
    inducing: usize,
    /// The SVGP's Adam learning rate on q(u).
    #[arg(long, default_value_t = 5e-3)]
    svgp_lr: f64,
    /// α_ε of the Dirichlet transform.
    #[arg(long, default_value_t = 0.01)]
    alpha_eps: f64,
    /// Test evaluations along the stream.
    #[arg(long, default_value_t = 10)]
    evaluations: usize,
    /// Draw test accuracy, NLL and ECE against the points seen to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Kernel.
    #[arg(long, value_enum, default_value = "rbf")]
    kernel: KernelArg,
    /// Outputscale (prior variance of f).
    #[arg(long, default_value_t = 1.0)]
    outputscale: f64,
    /// Lengthscale: one value, or one per input column (comma-separated).
    #[arg(long, default_value = "1.0", allow_hyphen_values = true)]
    lengthscale: String,
    /// Noise variance σ².
    #[arg(long, default_value_t = 0.01)]
    noise: f64,
    /// Grid nodes per dimension (one value or one per column; default 64 in 1-D, 16 in 2-D,
    /// 8 in 3-D).
    #[arg(long)]
    grid_size: Option<String>,
    /// Grid bounds `lo,hi` (one pair, or one per column: `lo1,hi1,lo2,hi2`); default: the
    /// range of the data.
    #[arg(long, allow_hyphen_values = true)]
    grid_bounds: Option<String>,
    /// `endpoints` (u_j = lo + j(hi−lo)/(m−1)) or `extended` (the reference's grid, which
    /// reaches one cell beyond the bounds).
    #[arg(long, value_enum, default_value = "endpoints")]
    grid_convention: ConventionArg,
    /// Clamp inputs outside the grid onto its edge instead of failing.
    #[arg(long)]
    clamp: bool,
}

#[derive(Args)]
pub struct RegressArgs {
    /// Training CSV: header row, input columns, then the target in the last column.
    #[arg(long)]
    train: PathBuf,
    /// Test CSV: header row and the same input columns.
    #[arg(long)]
    test: PathBuf,
    /// exact, ski (dense reference) or wiski (streamed through the constant-time update).
    #[arg(long, value_enum, default_value = "wiski")]
    method: RegressMethodArg,
    #[command(flatten)]
    model: ModelArgs,
    /// Learn the outputscale, lengthscales and noise first by maximising the log marginal
    /// likelihood (exact: from the Cholesky; ski/wiski: from the cached statistics), starting
    /// from the values given.
    #[arg(long)]
    fit: bool,
    /// Adam steps for --fit.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    fit_iters: usize,
    /// Adam learning rate for --fit (on log-hyperparameters).
    #[arg(long, default_value_t = 0.05)]
    fit_lr: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnlineMethodArg {
    Wiski,
    Exact,
    Osgpr,
    Osvgp,
}

#[derive(Args)]
pub struct OnlineArgs {
    /// CSV with a header row: the --target column and numeric input columns.
    #[arg(long, conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Target column of --data.
    #[arg(long, default_value = "target")]
    target: String,
    /// Instead of --data: N rows of a generated stream whose target depends on a 2-D
    /// projection of --dims inputs (y = sin(3u₁ᵀx) + ½cos(4u₂ᵀx) + 0.1ε, x ~ U(−1, 1)^dims).
    #[arg(long)]
    synthetic: Option<usize>,
    /// Input columns of --synthetic.
    #[arg(long, default_value_t = 10)]
    dims: usize,
    /// The online GP.
    #[arg(long, value_enum, default_value = "wiski")]
    method: OnlineMethodArg,
    /// Learn a linear stem to this many features (1–3): needed where the inputs have more
    /// columns than the grid (3) or the exact GP (8) takes.
    #[arg(long)]
    stem: Option<usize>,
    /// Seed of the row order, the stem and the inducing points (and of --synthetic's rows).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of the rows held out for testing.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Share of the stream used for pretraining (at most --pretrain-max rows).
    #[arg(long, default_value_t = 0.05)]
    pretrain_fraction: f64,
    /// Most pretraining rows (the dense likelihood costs O(n³) per epoch).
    #[arg(long, default_value_t = 500)]
    pretrain_max: usize,
    /// Full-batch pretraining epochs.
    #[arg(long, default_value_t = 200)]
    pretrain_epochs: usize,
    /// Pretraining learning rate of the kernel (the stem's is a tenth).
    #[arg(long, default_value_t = 0.05)]
    pretrain_lr: f64,
    /// Online learning rate of WISKI's kernel (the stem's is a tenth).
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Grid nodes per feature dimension (WISKI), over ±1.1.
    #[arg(long, default_value_t = 16)]
    grid_size: usize,
    /// Inducing points (O-SGPR, O-SVGP).
    #[arg(long, default_value_t = 256)]
    inducing: usize,
    /// O-SVGP's Adam learning rate on q(u).
    #[arg(long, default_value_t = 1e-3)]
    svgp_lr: f64,
    /// Test evaluations along the stream.
    #[arg(long, default_value_t = 10)]
    evaluations: usize,
    /// Draw test RMSE and NLL against the points seen to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write the final WISKI model with its stem for the controller (`keel_core::gp::WiskiFile`;
    /// --method wiski with --stem).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct StreamArgs {
    /// Stream CSV: header row, input columns, then the target in the last column.
    #[arg(long, conflicts_with = "synthetic")]
    data: Option<PathBuf>,
    /// Instead of --data: N points of the seeded 1-D stream y = sin(3x) + 0.3x + 0.2ε,
    /// x ~ U(−3, 3).
    #[arg(long, value_parser = super::values::at_least_one)]
    synthetic: Option<usize>,
    /// Seed for --synthetic.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GP.
    #[arg(long, value_enum, default_value = "wiski")]
    method: StreamMethodArg,
    #[command(flatten)]
    model: ModelArgs,
    /// Learn the hyperparameters online, as the paper does: a full-batch fit on the first
    /// --pretrain-fraction of the stream, then one Adam step on log p(y)/n (from the cached
    /// statistics) before each point is absorbed (wiski only).
    #[arg(long)]
    learn: bool,
    /// Online learning rate (the paper's configs: 5e-3).
    #[arg(long, default_value_t = 5e-3)]
    learn_lr: f64,
    /// Fraction of the stream used for pretraining with --learn.
    #[arg(long, default_value_t = 0.05)]
    pretrain_fraction: f64,
    /// Adam steps of pretraining.
    #[arg(long, default_value_t = 200)]
    pretrain_steps: usize,
    /// Pretraining learning rate.
    #[arg(long, default_value_t = 0.05)]
    pretrain_lr: f64,
    /// Draw the posterior at several points of the stream (1-D streams) to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(cmd: &GpCommand) -> Result<()> {
    match cmd {
        GpCommand::Regress(a) => regress(a),
        GpCommand::Stream(a) => run_stream(a),
        GpCommand::Online(a) => run_online(a),
        GpCommand::Classify(a) => run_classify(a),
        GpCommand::Bo(a) => run_bo(a),
        GpCommand::Active(a) => run_active(a),
    }
}

fn run_active(a: &ActiveArgs) -> Result<()> {
    use keel::gp::active::{active, ActiveConfig};
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let methods: Vec<StreamMethod> = match a.method {
        BoMethodArg::Wiski => vec![StreamMethod::Wiski],
        BoMethodArg::Exact => vec![StreamMethod::Exact],
        BoMethodArg::Both => vec![StreamMethod::Wiski, StreamMethod::Exact],
    };
    let cfg = ActiveConfig {
        pool: a.pool,
        integration: a.integration,
        candidates: a.candidates,
        init: a.init,
        batch: a.q,
        steps: a.steps,
        family: a.kernel.into(),
        outputscale: a.outputscale,
        lengthscale: parse_list("--lengthscale", &a.lengthscale)?,
        grid_size: a.grid_size,
        seed: a.seed,
    };
    let mut reports = Vec::new();
    for m in methods {
        let bar = progress_bar(
            a.quiet,
            a.steps,
            format!("gp active {}", m.name()),
            "{prefix} [{bar:30}] {pos}/{len} steps (eta {eta})",
        );
        let r = active(m, &cfg, |k| bar.set_position(k as u64))?;
        bar.finish_and_clear();
        reports.push(r);
    }
    if let Some(p) = &a.plot {
        let series = |f: &dyn Fn(&keel::gp::active::ActiveReport) -> &[f64], what: &str| {
            reports
                .iter()
                .map(|r| {
                    (
                        format!("{} ({what})", r.method),
                        f(r).iter()
                            .enumerate()
                            .map(|(k, v)| ((k + 1) as f64, *v))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let rmse = series(&|r| &r.rmse_over_steps, "test RMSE");
        let var = series(&|r| &r.mean_variance_over_steps, "mean variance");
        keel::plot::plot_log_panels(
            p,
            [
                ("qNIPV active learning: test RMSE", "step", "RMSE", &rmse),
                ("mean posterior variance", "step", "variance", &var),
            ],
        )?;
    }
    if a.json {
        let v = serde_json::to_value(&reports).map_err(|e| Error::invalid("json", e, ""))?;
        super::report::json(&if reports.len() == 1 { v[0].clone() } else { v })?;
    } else {
        for r in &reports {
            println!(
                "{}: {} steps of q = {}: test RMSE {:.4} → {:.4}, mean variance {:.4} → {:.4}; \
                 seconds per step {:.4} (first tenth {:.4}, last tenth {:.4}); {:.1} s in all",
                r.method,
                r.steps,
                r.q,
                r.initial_rmse,
                r.rmse_over_steps.last().copied().unwrap_or(f64::NAN),
                r.initial_mean_variance,
                r.mean_variance_over_steps
                    .last()
                    .copied()
                    .unwrap_or(f64::NAN),
                r.seconds_per_step,
                r.step_seconds_first_tenth,
                r.step_seconds_last_tenth,
                r.seconds
            );
        }
    }
    Ok(())
}

fn run_bo(a: &BoArgs) -> Result<()> {
    use keel::gp::bo::{optimise, Acquisition, BoConfig, TestFunction};
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let function = match a.function {
        FunctionArg::Ackley => TestFunction::Ackley,
        FunctionArg::Levy => TestFunction::Levy,
        FunctionArg::Rastrigin => TestFunction::Rastrigin,
        FunctionArg::Rosenbrock => TestFunction::Rosenbrock,
        FunctionArg::StyblinskiTang => TestFunction::StyblinskiTang,
        FunctionArg::Griewank => TestFunction::Griewank,
        FunctionArg::DixonPrice => TestFunction::DixonPrice,
    };
    let acquisition = match a.acquisition {
        AcquisitionArg::Ucb => Acquisition::Ucb { beta: a.beta },
        AcquisitionArg::Ei => Acquisition::Ei,
        AcquisitionArg::Nei => Acquisition::Nei,
    };
    let methods: Vec<StreamMethod> = match a.method {
        BoMethodArg::Wiski => vec![StreamMethod::Wiski],
        BoMethodArg::Exact => vec![StreamMethod::Exact],
        BoMethodArg::Both => vec![StreamMethod::Wiski, StreamMethod::Exact],
    };
    let family = a.kernel.into();
    let evaluations = a.init + a.steps * a.batch;
    if methods.contains(&StreamMethod::Exact) && evaluations > 20_000 {
        return Err(Error::invalid(
            "--steps",
            a.steps,
            format!("{evaluations} evaluations: too many for the exact GP's factor; use wiski"),
        ));
    }
    let cfg = BoConfig {
        function,
        dim: a.dim,
        steps: a.steps,
        batch: a.batch,
        init: a.init,
        acquisition,
        noise_sd: a.noise_sd,
        hyper: Hyper {
            family,
            outputscale: a.outputscale,
            lengthscale: parse_list("--lengthscale", &a.lengthscale)?,
            noise: a.noise,
        },
        grid_size: a.grid_size.unwrap_or(match a.dim {
            1 => 64,
            2 => 30,
            _ => 10,
        }),
        refit_every: a.refit_every,
        seed: a.seed,
    };
    let mut reports = Vec::new();
    for m in methods {
        let bar = progress_bar(
            a.quiet,
            a.steps,
            format!("gp bo {}", m.name()),
            "{prefix} [{bar:30}] {pos}/{len} steps (eta {eta})",
        );
        let r = optimise(m, &cfg, |k| bar.set_position(k as u64))?;
        bar.finish_and_clear();
        reports.push(r);
    }
    if let Some(p) = &a.plot {
        keel::plot::plot_bo(p, &reports)?;
    }
    if a.json {
        let v = serde_json::to_value(&reports).map_err(|e| Error::invalid("json", e, ""))?;
        super::report::json(&if reports.len() == 1 { v[0].clone() } else { v })?;
    } else {
        for r in &reports {
            println!(
                "{} surrogate, {}, {} in {}-D: best {:.6} (minimum {}) after {} evaluations at \
                 {:?}; seconds per step: first tenth {:.4}, last tenth {:.4}; {:.1} s in all",
                r.method,
                r.acquisition,
                r.function,
                r.dim,
                r.best_latent,
                r.minimum,
                r.evaluations,
                r.best_x
                    .iter()
                    .map(|v| (v * 1e4).round() / 1e4)
                    .collect::<Vec<_>>(),
                r.step_seconds_first_tenth,
                r.step_seconds_last_tenth,
                r.seconds
            );
        }
    }
    Ok(())
}

fn run_classify(a: &ClassifyArgs) -> Result<()> {
    use keel::gp::{
        banana, classify, ClassData, ClassifyConfig, ClassifyMethod, PretrainConfig, MAX_CLASSES,
    };
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    check_stream_flags(a.stem, a.pretrain_fraction, a.grid_size, a.inducing)?;
    for (flag, v) in [
        ("--lr", a.lr),
        ("--pretrain-lr", a.pretrain_lr),
        ("--svgp-lr", a.svgp_lr),
        ("--alpha-eps", a.alpha_eps),
        ("--outputscale", a.outputscale),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(Error::invalid(flag, v, "must be positive"));
        }
    }
    let (data, source) = match &a.data {
        Some(p) => {
            let d = keel::data::read_csv(p, &a.target, true)?;
            let (labels, classes) = match d.y {
                keel::data::Targets::Classes { labels, classes } => (labels, classes),
                keel::data::Targets::Values(_) => {
                    return Err(Error::invalid("--target", &a.target, "needs class labels"))
                }
            };
            if !(2..=MAX_CLASSES).contains(&classes.len()) {
                return Err(Error::invalid(
                    "--target",
                    &a.target,
                    format!(
                        "has {} classes; classification needs 2 to {MAX_CLASSES}",
                        classes.len()
                    ),
                ));
            }
            let dims = d.features.len();
            (
                ClassData::split(&d.x, &labels, classes.len(), dims, a.test_fraction, a.seed)?,
                p.display().to_string(),
            )
        }
        None => {
            for (flag, n) in [("--n", a.n), ("--n-test", a.n_test)] {
                if !(1..=MAX_SYNTHETIC_ROWS).contains(&n) {
                    return Err(Error::invalid(
                        flag,
                        n,
                        format!("use 1 to {MAX_SYNTHETIC_ROWS} points"),
                    ));
                }
            }
            if !(a.spread >= 0.0 && a.spread.is_finite()) {
                return Err(Error::invalid(
                    "--spread",
                    a.spread,
                    "must be a finite sd ≥ 0",
                ));
            }
            let train = banana(a.n, a.spread, a.seed);
            let test = banana(a.n_test, a.spread, a.seed.wrapping_add(1));
            (
                ClassData::from_banana(train, test)?,
                format!("the banana stream ({} points)", a.n),
            )
        }
    };
    let defaults = ClassifyConfig::default();
    let config = ClassifyConfig {
        method: match a.method {
            ClassifyMethodArg::Wiski => ClassifyMethod::Wiski,
            ClassifyMethodArg::Exact => ClassifyMethod::Exact,
            ClassifyMethodArg::Svgp => ClassifyMethod::Svgp,
        },
        stem: a.stem,
        seed: a.seed,
        pretrain_fraction: a.pretrain_fraction,
        pretrain_max: a.pretrain_max,
        pretrain: PretrainConfig {
            epochs: a.pretrain_epochs,
            lr: a.pretrain_lr,
            stem_lr: a.pretrain_lr / 10.0,
        },
        lr: a.lr,
        stem_lr: a.lr / 10.0,
        kernel_every: a.kernel_every,
        grid_size: a.grid_size,
        inducing: a.inducing,
        svgp_lr: a.svgp_lr,
        alpha_eps: a.alpha_eps,
        evaluations: a.evaluations,
        hyper: Hyper {
            outputscale: a.outputscale,
            lengthscale: parse_list("--lengthscale", &a.lengthscale)?,
            ..defaults.hyper.clone()
        },
        ..defaults
    };
    let bar = progress_bar(
        a.quiet,
        data.stream_label.len(),
        format!("gp classify {}", config.method.name()),
        "{prefix} [{bar:30}] {pos}/{len} points ({per_sec}, eta {eta})",
    );
    let r = classify(&config, &data, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    if let Some(p) = &a.plot {
        let series = |f: fn(&keel::gp::ClassPoint) -> f64| -> Vec<(f64, f64)> {
            r.accuracy_over_time
                .iter()
                .map(|q| (q.seen as f64, f(q)))
                .collect()
        };
        let label = r.method.to_string();
        keel::plot::plot_line_panels(
            p,
            &[
                (
                    "test accuracy along the stream",
                    "points seen",
                    "accuracy",
                    &[(label.clone(), series(|q| q.test_accuracy))],
                ),
                (
                    "test NLL along the stream",
                    "points seen",
                    "NLL",
                    &[(label.clone(), series(|q| q.test_nll))],
                ),
                (
                    "test ECE along the stream",
                    "points seen",
                    "ECE",
                    &[(label, series(|q| q.ece))],
                ),
            ],
        )?;
    }
    if a.json {
        return super::report::json(&r);
    }
    println!(
        "{} on {source}: {} stream rows ({} pretraining), {} test rows, {} inputs, {} classes{}",
        r.method,
        r.n,
        r.pretrain_rows,
        r.test_rows,
        r.dims,
        r.classes,
        r.stem
            .map(|k| format!(" → stem of {k} features"))
            .unwrap_or_default()
    );
    println!(
        "test accuracy {:.4}, NLL {:.4}, ECE {:.4}; online accuracy {:.4}",
        r.test_accuracy, r.test_nll, r.ece, r.online_accuracy
    );
    println!(
        "online step: mean {:.1} µs, median {:.1} µs (first tenth {:.1}, last tenth {:.1}); pretraining {:.2} s; {:.2} s in all",
        r.seconds_per_update * 1e6,
        r.update_us_median,
        r.update_us_first_tenth,
        r.update_us_last_tenth,
        r.pretrain_seconds,
        r.seconds
    );
    Ok(())
}

/// The flags `gp online` and `gp classify` share: a stem of 1–3 features, a pretraining share in
/// [0, 1), 4–64 grid nodes per dimension, 1–4096 inducing points.
fn check_stream_flags(
    stem: Option<usize>,
    pretrain_fraction: f64,
    grid_size: usize,
    inducing: usize,
) -> Result<()> {
    if let Some(k) = stem {
        if !(1..=3).contains(&k) {
            return Err(Error::invalid(
                "--stem",
                k,
                "the stem feeds a grid of 1 to 3 dimensions",
            ));
        }
    }
    if !(0.0..1.0).contains(&pretrain_fraction) {
        return Err(Error::invalid(
            "--pretrain-fraction",
            pretrain_fraction,
            "must be in [0, 1)",
        ));
    }
    if !(4..=64).contains(&grid_size) {
        return Err(Error::invalid(
            "--grid-size",
            grid_size,
            "use 4 to 64 nodes per dimension",
        ));
    }
    if inducing == 0 || inducing > 4096 {
        return Err(Error::invalid(
            "--inducing",
            inducing,
            "use 1 to 4096 inducing points",
        ));
    }
    Ok(())
}

fn parse_sizes(flag: &str, s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| Error::invalid(flag, s, format!("'{}' is not a count", p.trim())))
        })
        .collect()
}

/// A progress bar over `len` items (hidden with `quiet`).
fn progress_bar(quiet: bool, len: usize, prefix: String, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(prefix);
    b
}

fn model(a: &ModelArgs, dim: usize, data: &[&[f64]]) -> Result<(Hyper, GridSpec)> {
    let family = a.kernel.into();
    let hyper = Hyper {
        family,
        outputscale: a.outputscale,
        lengthscale: parse_list("--lengthscale", &a.lengthscale)?,
        noise: a.noise,
    };
    let hyper = hyper.for_dim(dim)?;
    let convention = match a.grid_convention {
        ConventionArg::Endpoints => Convention::Endpoints,
        ConventionArg::Extended => Convention::Extended,
    };
    let size = match &a.grid_size {
        Some(s) => parse_sizes("--grid-size", s)?,
        None => vec![match dim {
            1 => 64,
            2 => 16,
            _ => 8,
        }],
    };
    let (lo, hi) = match &a.grid_bounds {
        Some(s) => {
            let v: Vec<f64> = parse_list("--grid-bounds", s)?;
            if !v.len().is_multiple_of(2) {
                return Err(Error::invalid(
                    "--grid-bounds",
                    s,
                    "give lo,hi pairs (one pair, or one per input column)",
                ));
            }
            (
                v.iter().step_by(2).copied().collect(),
                v.iter().skip(1).step_by(2).copied().collect(),
            )
        }
        None => {
            let mut lo = vec![f64::INFINITY; dim];
            let mut hi = vec![f64::NEG_INFINITY; dim];
            for x in data {
                for (i, v) in x.iter().enumerate() {
                    lo[i % dim] = lo[i % dim].min(*v);
                    hi[i % dim] = hi[i % dim].max(*v);
                }
            }
            for k in 0..dim {
                if lo[k] >= hi[k] {
                    // A constant column: any small interval around it.
                    lo[k] -= 0.5;
                    hi[k] += 0.5;
                }
            }
            (lo, hi)
        }
    };
    Ok((
        hyper,
        GridSpec {
            size,
            lo,
            hi,
            convention,
            clamp: a.clamp,
        },
    ))
}

fn read_train(flag: &str, path: &Path) -> Result<TrainData> {
    let t = read_numeric_csv(path)?;
    let cols = t.names.len();
    if cols < 2 {
        return Err(Error::invalid(
            flag,
            path.display(),
            "need at least one input column and the target (last column)",
        ));
    }
    let dim = cols - 1;
    let rows = t.rows();
    let mut x = Vec::with_capacity(rows * dim);
    let mut y = Vec::with_capacity(rows);
    for r in t.values.chunks_exact(cols) {
        x.extend_from_slice(&r[..dim]);
        y.push(r[dim]);
    }
    Ok(TrainData {
        dim,
        x,
        y,
        d: vec![1.0; rows],
    })
}

fn regress(a: &RegressArgs) -> Result<()> {
    let train = read_train("--train", &a.train)?;
    let test = read_numeric_csv(&a.test)?;
    if test.names.len() != train.dim {
        return Err(Error::invalid(
            "--test",
            a.test.display(),
            format!(
                "{} columns, but the training data has {} input columns",
                test.names.len(),
                train.dim
            ),
        ));
    }
    let (mut hyper, grid) = model(&a.model, train.dim, &[&train.x, &test.values])?;
    let fitted = if a.fit {
        let g = (a.method != RegressMethodArg::Exact).then_some(&grid);
        let (best, report) = fit(&hyper, g, &train, a.fit_iters, a.fit_lr)?;
        hyper = best;
        Some(report)
    } else {
        None
    };
    let (post, seconds) = match a.method {
        RegressMethodArg::Exact => timed(|| exact(&hyper, &train, &test.values)),
        RegressMethodArg::Ski => timed(|| ski_dense(&hyper, &grid, &train, &test.values)),
        RegressMethodArg::Wiski => timed(|| wiski(&hyper, &grid, &train, &test.values)),
    };
    let post = post?;
    if a.json {
        let mut v = serde_json::to_value(&post).map_err(|e| Error::invalid("json", e, ""))?;
        v["method"] = json!(name(&a.method));
        v["n_train"] = json!(train.len());
        v["seconds"] = json!(seconds);
        if let Some(f) = &fitted {
            v["fit"] = serde_json::to_value(f).map_err(|e| Error::invalid("json", e, ""))?;
        }
        if a.method != RegressMethodArg::Exact {
            let g = grid.for_dim(train.dim)?;
            v["grid"] = json!({"size": g.size, "lo": g.lo, "hi": g.hi});
        }
        super::report::json(&v)?;
    } else {
        if let Some(f) = &fitted {
            println!(
                "fit ({} Adam steps, {:.2} s): log p(y) {:.4} → {:.4}; outputscale {:.5}, lengthscale {:?}, noise {:.5}",
                f.iterations,
                f.seconds,
                f.log_marginal_likelihood_start,
                f.log_marginal_likelihood_end,
                f.outputscale,
                f.lengthscale,
                f.noise
            );
        }
        println!(
            "{} GP, {} training rows, log marginal likelihood {:.6} ({:.3} s)",
            name(&a.method),
            train.len(),
            post.log_marginal_likelihood,
            seconds
        );
        println!(
            "{:>6}  {:>14}  {:>12}  {:>12}",
            "row", "mean", "sd(f)", "sd(y)"
        );
        for i in 0..post.mean.len() {
            println!(
                "{:>6}  {:>14.6}  {:>12.6}  {:>12.6}",
                i + 1,
                post.mean[i],
                post.var_f[i].sqrt(),
                post.var_y[i].sqrt()
            );
        }
    }
    Ok(())
}

fn run_stream(a: &StreamArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let data = match (&a.data, a.synthetic) {
        (Some(p), None) => read_train("--data", p)?,
        (None, Some(n)) if n > 0 => synthetic_stream(n, a.seed),
        (None, Some(n)) => return Err(Error::invalid("--synthetic", n, "need at least one point")),
        _ => {
            return Err(Error::invalid(
                "--data",
                "(none)",
                "give --data FILE.csv or --synthetic N",
            ))
        }
    };
    let method = a.method.into();
    if method == StreamMethod::Exact && data.len() > 20_000 {
        return Err(Error::invalid(
            "--method",
            "exact",
            format!(
                "{} points: the exact GP's factor would need {:.1} GB; use wiski",
                data.len(),
                (data.len() * data.len() * 8) as f64 / 1e9
            ),
        ));
    }
    let (hyper, grid) = model(&a.model, data.dim, &[&data.x])?;
    let plan = if a.plot.is_some() && data.dim == 1 {
        let g = grid.for_dim(1)?;
        let n = data.len();
        let at: Vec<usize> = [n / 100, n / 10, n / 2, n]
            .into_iter()
            .filter(|&k| k > 0)
            .collect();
        let line = (0..=300)
            .map(|i| g.lo[0] + (g.hi[0] - g.lo[0]) * i as f64 / 300.0)
            .collect();
        SnapshotPlan { at, line }
    } else {
        SnapshotPlan::default()
    };
    let bar = progress_bar(
        a.quiet,
        data.len(),
        format!("gp stream {}", name(&a.method)),
        "{prefix} [{bar:30}] {pos}/{len} points ({per_sec}, eta {eta})",
    );
    let learning = if a.learn {
        if !(0.0..1.0).contains(&a.pretrain_fraction) {
            return Err(Error::invalid(
                "--pretrain-fraction",
                a.pretrain_fraction,
                "must be in [0, 1)",
            ));
        }
        for (flag, v) in [("--learn-lr", a.learn_lr), ("--pretrain-lr", a.pretrain_lr)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(flag, v, "must be positive"));
            }
        }
        Some(OnlineLearning {
            pretrain: (a.pretrain_fraction * data.len() as f64).round() as usize,
            pretrain_steps: a.pretrain_steps,
            pretrain_lr: a.pretrain_lr,
            lr: a.learn_lr,
        })
    } else {
        None
    };
    let report = stream(
        method,
        &hyper,
        &grid,
        &data,
        &plan,
        learning.as_ref(),
        |k| bar.set_position(k as u64),
    )?;
    bar.finish_and_clear();
    if let Some(p) = &a.plot {
        if data.dim == 1 {
            keel::plot::plot_gp_stream(p, &data, &plan.line, &report)?;
        } else {
            eprintln!(
                "note: --plot draws 1-D streams only; this stream has {} inputs",
                data.dim
            );
        }
    }
    print_stream(a.json, &report)
}

/// Largest generated stream.
const MAX_SYNTHETIC_ROWS: usize = 10_000_000;

fn run_online(a: &OnlineArgs) -> Result<()> {
    use keel::gp::{
        online, projection_stream, OnlineConfig, OnlineData, OnlineMethod, PretrainConfig,
    };
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    if let Some(p) = &a.export {
        keel::output::check_writable("--export", p)?;
        if a.method != OnlineMethodArg::Wiski || a.stem.is_none() {
            return Err(Error::invalid(
                "--export",
                p.display(),
                "the controller runs WISKI behind a stem: use --method wiski with --stem K",
            ));
        }
    }
    check_stream_flags(a.stem, a.pretrain_fraction, a.grid_size, a.inducing)?;
    for (flag, v) in [
        ("--lr", a.lr),
        ("--pretrain-lr", a.pretrain_lr),
        ("--svgp-lr", a.svgp_lr),
    ] {
        if !(v > 0.0 && v.is_finite()) {
            return Err(Error::invalid(flag, v, "must be positive"));
        }
    }
    let method = match a.method {
        OnlineMethodArg::Wiski => OnlineMethod::Wiski,
        OnlineMethodArg::Exact => OnlineMethod::Exact,
        OnlineMethodArg::Osgpr => OnlineMethod::Osgpr,
        OnlineMethodArg::Osvgp => OnlineMethod::Osvgp,
    };
    let (x, y, dims, source) = match (&a.data, a.synthetic) {
        (Some(p), None) => {
            let d = keel::data::read_csv(p, &a.target, false)?;
            let y = match d.y {
                keel::data::Targets::Values(v) => v,
                keel::data::Targets::Classes { .. } => {
                    return Err(Error::invalid(
                        "--target",
                        &a.target,
                        "needs numeric targets",
                    ))
                }
            };
            let dims = d.features.len();
            (d.x, y, dims, p.display().to_string())
        }
        (None, Some(n)) => {
            if !(20..=MAX_SYNTHETIC_ROWS).contains(&n) {
                return Err(Error::invalid(
                    "--synthetic",
                    n,
                    format!("use 20 to {MAX_SYNTHETIC_ROWS} rows"),
                ));
            }
            if !(1..=1000).contains(&a.dims) {
                return Err(Error::invalid(
                    "--dims",
                    a.dims,
                    "use 1 to 1000 input columns",
                ));
            }
            let (x, y) = projection_stream(n, a.dims, a.seed);
            (
                x,
                y,
                a.dims,
                format!("projection stream ({n} rows, {} inputs)", a.dims),
            )
        }
        _ => {
            return Err(Error::invalid(
                "--data",
                "(none)",
                "give --data FILE.csv --target COL or --synthetic N",
            ))
        }
    };
    let data = OnlineData::split(&x, &y, dims, a.test_fraction, a.seed)?;
    let defaults = OnlineConfig::default();
    let config = OnlineConfig {
        method,
        stem: a.stem,
        seed: a.seed,
        pretrain_fraction: a.pretrain_fraction,
        pretrain_max: a.pretrain_max,
        pretrain: PretrainConfig {
            epochs: a.pretrain_epochs,
            lr: a.pretrain_lr,
            stem_lr: a.pretrain_lr / 10.0,
        },
        lr: a.lr,
        stem_lr: a.lr / 10.0,
        grid_size: a.grid_size,
        inducing: a.inducing,
        svgp_lr: a.svgp_lr,
        evaluations: a.evaluations,
        export: a.export.is_some(),
        ..defaults
    };
    let bar = progress_bar(
        a.quiet,
        data.stream_y.len(),
        format!("gp online {}", name(&a.method)),
        "{prefix} [{bar:30}] {pos}/{len} points ({per_sec}, eta {eta})",
    );
    let (r, export) = online(&config, &data, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let file = export
        .as_ref()
        .map(keel::export::wiski::wiski_bytes)
        .transpose()?;
    if let Some(p) = &a.plot {
        let rmse: Vec<(f64, f64)> = r
            .rmse_over_time
            .iter()
            .map(|q| (q.seen as f64, q.test_rmse))
            .collect();
        let nll: Vec<(f64, f64)> = r
            .rmse_over_time
            .iter()
            .map(|q| (q.seen as f64, q.test_nll))
            .collect();
        let label = r.method.to_string();
        keel::plot::plot_line_panels(
            p,
            &[
                (
                    "test RMSE along the stream",
                    "points seen",
                    "RMSE (standardised)",
                    &[(label.clone(), rmse)],
                ),
                (
                    "test NLL along the stream",
                    "points seen",
                    "NLL (standardised)",
                    &[(label, nll)],
                ),
            ],
        )?;
    }
    if let (Some(p), Some(bytes)) = (&a.export, &file) {
        keel::output::write_atomic(p, bytes)?;
    }
    if a.json {
        return super::report::json(&r);
    }
    println!(
        "{} on {source}: {} stream rows ({} pretraining), {} test rows, {} inputs{}",
        r.method,
        r.n,
        r.pretrain_rows,
        r.test_rows,
        r.dims,
        r.stem
            .map(|k| format!(" → stem of {k} features"))
            .unwrap_or_default()
    );
    println!(
        "test RMSE {:.4} ({:.4} in the target's units), test NLL {:.4}; prequential RMSE {:.4}, NLL {:.4}",
        r.test_rmse, r.test_rmse_units, r.test_nll, r.prequential_rmse, r.prequential_nll
    );
    println!(
        "online step: mean {:.1} µs, median {:.1} µs (first tenth {:.1}, last tenth {:.1}); pretraining {:.2} s; {:.2} s in all",
        r.seconds_per_update * 1e6,
        r.update_us_median,
        r.update_us_first_tenth,
        r.update_us_last_tenth,
        r.pretrain_seconds,
        r.seconds
    );
    Ok(())
}

fn print_stream(json_out: bool, r: &StreamReport) -> Result<()> {
    if json_out {
        let mut v = serde_json::to_value(r).map_err(|e| Error::invalid("json", e, ""))?;
        if let Some(o) = v.as_object_mut() {
            o.remove("snapshots");
        }
        return super::report::json(&v);
    }
    println!(
        "{} GP over {} points ({}-D{}): prequential RMSE {:.4}, NLL {:.4}, log p(y) {:.3}",
        r.method,
        r.n,
        r.dim,
        r.grid_nodes
            .map(|m| format!(", {m} grid nodes"))
            .unwrap_or_default(),
        r.prequential_rmse,
        r.prequential_nll,
        r.log_marginal_likelihood
    );
    println!(
        "update: median {:.2} µs (first tenth {:.2} µs, last tenth {:.2} µs, slowest {:.1} µs); \
         predict: median {:.2} µs; state {} bytes; {:.2} s in all",
        r.update_us_median,
        r.update_us_median_first_tenth,
        r.update_us_median_last_tenth,
        r.update_us_max,
        r.predict_us_median,
        r.state_bytes,
        r.seconds
    );
    if let Some(l) = &r.learned {
        println!(
            "learned online (after pretraining on {} points): outputscale {:.5}, lengthscale {:?}, noise {:.5}",
            l.pretrain_points, l.outputscale, l.lengthscale, l.noise
        );
    }
    Ok(())
}
