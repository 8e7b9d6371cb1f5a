//! `keel bayes …`: Bayesian neural networks by full-batch HMC and the paper's baselines (SGD,
//! deep ensembles, SGLD, SGHMC, mean-field VI), and the comparison of their predictive
//! distributions to HMC's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use keel::backend::DType;
use keel::bayes::augment::ShiftAugment;
use keel::bayes::checkpoint;
use keel::bayes::ess::{effective_sample_size, moments};
use keel::bayes::hmc::{
    advance_batched, sample, Adaptation, BatchTarget, Chain, ChainState, Ensembling, HmcConfig,
};
use keel::bayes::linear::LinearGaussian;
use keel::bayes::mlp::{Arch, Bnn, Labels, Likelihood, Split, Standardize};
use keel::bayes::prior::Prior;
use keel::bayes::samples::{
    closeness, function_space_rhat, predictions, predictive, rebuild, test_metrics, CnnSpec,
    SampleSet, Spec,
};
use keel::bayes::stochastic::{self, Batching, Schedule, SgmcmcConfig};
use keel::data::{self, Targets};
use keel::distributed::{self, Sharded};
use keel::error::{Error, Result};
use keel::images::corrupt::{self, Corruption};
use keel::images::ImageShape;
use keel::limits;
use serde_json::{json, Value};

use super::progress::{self, counted_bar, epoch_bar};
use super::ranks;
use super::values::name;

#[derive(Subcommand)]
pub enum BayesCommand {
    /// Full-batch HMC as the reference runs it (fresh momentum, L = ceil(τ/ε) leapfrog steps,
    /// Metropolis–Hastings, burn-in without it). `--model linear` prints the posterior moments
    /// beside the exact ones; `--model mlp:…` evaluates the BMA on the test split.
    Hmc(HmcArgs),
    /// One SGD run (momentum 0.9, cosine schedule, the prior as weight decay).
    Sgd(SgdArgs),
    /// A deep ensemble: independently seeded SGD runs, probabilities averaged.
    Ensemble(SgdArgs),
    /// Stochastic-gradient Langevin dynamics (SGHMC with momentum 0).
    Sgld(SgmcmcArgs),
    /// Stochastic-gradient HMC (momentum 0.9 unless --momentum says otherwise).
    Sghmc(SgmcmcArgs),
    /// Mean-field variational inference (reparameterised, mean initialised by SGD).
    Vi(ViArgs),
    /// Metrics of several sample sets on their test split, with agreement and total variation
    /// to a reference (HMC).
    Compare(CompareArgs),
    /// Export a model average for `keel-core` (`keel_core::nn::Bma`): `--count` samples of a
    /// classification set, spread evenly over it, as f32 with the input standardisation.
    Export(ExportArgs),
    /// Accuracy, NLL and ECE of classification sample sets on their test images corrupted by
    /// noise, blur, shifts or rotations at severities 1–5 (and clean, severity 0).
    Shift(ShiftArgs),
}

#[derive(Args)]
pub struct ShiftArgs {
    /// Sample sets written by --save-samples, comma-separated (classification, on image rows).
    #[arg(long, value_delimiter = ',', required = true)]
    samples: Vec<PathBuf>,
    /// The data file the sets were drawn on.
    #[arg(long)]
    data: PathBuf,
    /// noise, blur, shift or rotate (the table in the README's bayes section).
    #[arg(long)]
    corruption: String,
    /// Severities, comma-separated, each 1 to 5; the clean test images (severity 0) are always
    /// evaluated too.
    #[arg(long, default_value = "1,2,3,4,5")]
    severity: String,
    /// Seed of the corruptions' draws (the same images for every set and severity).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The images' shape CxHxW; default a single-channel square of the data's columns (1x8x8
    /// for the digits).
    #[arg(long)]
    image_shape: Option<String>,
    /// The pixel range [0, R] the noise is scaled to and clipped at; default the data file's
    /// largest value (16 for the digits).
    #[arg(long)]
    pixel_range: Option<f64>,
    /// Draw accuracy and ECE against severity, one line per set, to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A sample set written by --save-samples.
    #[arg(long)]
    samples: PathBuf,
    /// The data file the set was drawn on (for the input standardisation).
    #[arg(long)]
    data: PathBuf,
    /// Samples to keep.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    count: usize,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LikelihoodArg {
    Categorical,
    Gaussian,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PriorArg {
    Gaussian,
    Mixture,
    Logistic,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AugmentArg {
    /// No augmentation.
    None,
    /// Random ±1-pixel shifts (all nine offsets, zero fill).
    Shift1,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
    Cyclical,
}

/// What is modelled: the data, the network, likelihood, prior, temperature and the split.
#[derive(Args)]
pub struct ProblemArgs {
    /// CSV with a header row; the target is the last column unless --target names it.
    #[arg(long)]
    data: PathBuf,
    /// Target column.
    #[arg(long)]
    target: Option<String>,
    /// `linear` (y = Xw, `hmc` only), `mlp:W1,W2,…` (ReLU hidden layers of those widths) or
    /// `cnn:LAYERS` on image rows (shape from --image-shape, default a single-channel square):
    /// the engine's layer tokens (`keel fit --layers`) without batch norm or dropout — `cNfrn`
    /// a 3×3 convolution with filter response normalisation and swish (the reference's
    /// ResNet-20-FRN layer), `cNnobn` a plain one with ReLU, `mK`/`aK` pooling, `g`, `dN`; e.g.
    /// `cnn:c8frn,m2,c16frn,m2`. Default: linear for hmc, mlp:50 otherwise.
    #[arg(long)]
    model: Option<String>,
    /// `categorical` (classes) or `gaussian` (known noise for linear models, a learned softplus
    /// scale for MLPs). Default: gaussian for linear, categorical for MLPs.
    #[arg(long, value_enum)]
    likelihood: Option<LikelihoodArg>,
    /// Prior on every weight: gaussian, mixture (two zero-mean Gaussians) or logistic, all with
    /// standard deviation --prior-std.
    #[arg(long, value_enum, default_value = "gaussian")]
    prior: PriorArg,
    /// Standard deviation of the prior (σ² = 1/λ, the reference's weight decay λ).
    #[arg(long, default_value_t = 1.0)]
    prior_std: f64,
    /// Mixture prior: weight of the wide component.
    #[arg(long, default_value_t = 0.5)]
    mixture_weight: f64,
    /// Mixture prior: the wide component's std over the narrow one's.
    #[arg(long, default_value_t = 4.0)]
    mixture_ratio: f64,
    /// Posterior temperature T.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Data augmentation of image rows: `shift1`, random ±1-pixel shifts — drawn afresh for
    /// every example of every step by the mini-batch methods; for `hmc` the training set
    /// expanded with all nine shifted copies of each image (a fixed target, so the MH test stays
    /// exact).
    #[arg(long, value_enum, default_value = "none")]
    augment: AugmentArg,
    /// The images' shape CxHxW for --augment and --model cnn:…; default a single-channel square
    /// of the data's columns (1x8x8 for the digits).
    #[arg(long)]
    image_shape: Option<String>,
    /// Fraction of the rows held out for testing (MLPs).
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Seed of the train/test permutation.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Input standardisation with the training rows' statistics: `columns` (each column its
    /// own mean and deviation) or `global` (one for all columns: images, whose rarely lit
    /// border pixels per-column scaling would magnify).
    #[arg(long, default_value = "columns")]
    standardize: String,
    /// auto, cpu, cuda or cuda:N (MLPs); under MPI, cuda:local is the GPU of the rank's place on
    /// its node (one process per GPU).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Seed (chains and members use seed, seed + 1, …).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the samples (or members, or draws) here for `keel bayes compare`.
    #[arg(long)]
    save_samples: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct HmcArgs {
    #[command(flatten)]
    problem: ProblemArgs,
    /// Linear model: add an intercept column of ones.
    #[arg(long)]
    bias: bool,
    /// Linear model: noise standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 1.0)]
    noise_std: f64,
    /// Leapfrog step size ε.
    #[arg(long)]
    step_size: f64,
    /// Trajectory length τ, or `auto` = (π/2)·σ_prior·√T (half a period of the prior's
    /// dynamics, the rule behind the reference's settings).
    #[arg(long, default_value = "auto")]
    trajectory_length: String,
    /// Refuse trajectories longer than this many leapfrog steps.
    #[arg(long, default_value_t = 100_000, value_parser = super::values::at_least_one)]
    max_leapfrog_steps: usize,
    /// Iterations per chain after burn-in.
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    samples: usize,
    /// Burn-in iterations per chain (no MH test, nothing recorded).
    #[arg(long, default_value_t = 100)]
    burn_in: usize,
    /// Independent chains (seeds seed, seed + 1, …), pooled.
    #[arg(long, default_value_t = 1, value_parser = super::values::at_least_one)]
    chains: usize,
    /// Record the current state every iteration (textbook MCMC) instead of only accepted
    /// proposals (the reference).
    #[arg(long)]
    textbook: bool,
    /// No Metropolis–Hastings test (every proposal kept).
    #[arg(long)]
    no_mh: bool,
    /// Adapt ε during burn-in: ε ← ε·exp(speed·(a − target)) (the reference's rule; off by
    /// default as in its runs).
    #[arg(long)]
    adapt_speed: Option<f64>,
    /// Target acceptance probability of the adaptation.
    #[arg(long, default_value_t = 0.8)]
    target_accept: f64,
    /// MLPs: write a checkpoint here every --checkpoint-every iterations (atomically).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Iterations between checkpoints (the end of every chain is always written).
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    checkpoint_every: usize,
    /// Continue from --checkpoint if it exists (same settings and data required); the resumed
    /// run draws the same numbers as an uninterrupted one.
    #[arg(long)]
    resume: bool,
    /// Stop after this many iterations of this invocation (checkpointing first); continue with
    /// --resume.
    #[arg(long, value_parser = super::values::at_least_one)]
    stop_after: Option<usize>,
    /// Under MPI (`mpirun -np N`, a build with the `mpi` feature): `rows` — each rank holds a
    /// shard of the training rows and every rank runs all the chains, the likelihood and its
    /// gradient summed over the ranks at every leapfrog step; `chains` — each rank runs whole
    /// chains (chain c on rank c mod N) on all the rows, gathered on rank 0. Ignored in one
    /// process.
    #[arg(long, value_enum, default_value = "rows")]
    distribute: Distribute,
}

/// How `keel bayes hmc` shares its work between MPI ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribute {
    /// A shard of the training rows per rank (data-parallel, as the reference's runs).
    Rows,
    /// Whole chains per rank.
    Chains,
}

#[derive(Args)]
pub struct SgdArgs {
    #[command(flatten)]
    problem: ProblemArgs,
    /// Initial learning rate η₀ (on the sum-over-data gradient).
    #[arg(long)]
    lr: f64,
    /// Epochs per run.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 80, value_parser = super::values::at_least_one)]
    batch_size: usize,
    /// Ensemble members (`ensemble`; `sgd` is one).
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    members: usize,
}

#[derive(Args)]
pub struct SgmcmcArgs {
    #[command(flatten)]
    problem: ProblemArgs,
    /// Step size η.
    #[arg(long)]
    lr: f64,
    /// Momentum decay β (default 0 for sgld, 0.9 for sghmc).
    #[arg(long)]
    momentum: Option<f64>,
    /// Epochs per chain.
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Burn-in epochs.
    #[arg(long, default_value_t = 100)]
    burn_in: usize,
    /// A sample every this many epochs after burn-in.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    sample_every: usize,
    /// Step-size schedule: constant, cosine (cosine burn-in to --final-lr) or cyclical.
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    /// Final step size of the cosine burn-in schedule.
    #[arg(long)]
    final_lr: Option<f64>,
    /// Cycle length of the cyclical schedule, in epochs.
    #[arg(long, default_value_t = 50, value_parser = super::values::at_least_one)]
    cycle_epochs: usize,
    /// RMSprop preconditioner.
    #[arg(long)]
    preconditioned: bool,
    /// Independent chains.
    #[arg(long, default_value_t = 1, value_parser = super::values::at_least_one)]
    chains: usize,
    /// Batch size.
    #[arg(long, default_value_t = 80, value_parser = super::values::at_least_one)]
    batch_size: usize,
}

#[derive(Args)]
pub struct ViArgs {
    #[command(flatten)]
    problem: ProblemArgs,
    /// Adam learning rate (cosine schedule).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// VI epochs.
    #[arg(long, default_value_t = 300, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Initial σ of every weight.
    #[arg(long, default_value_t = 1e-2)]
    init_std: f64,
    /// SGD epochs for the initial mean.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    sgd_epochs: usize,
    /// SGD learning rate for the initial mean.
    #[arg(long)]
    sgd_lr: f64,
    /// Weight draws for prediction (the paper: 50).
    #[arg(long, default_value_t = 50, value_parser = super::values::at_least_one)]
    draws: usize,
    /// Batch size.
    #[arg(long, default_value_t = 80, value_parser = super::values::at_least_one)]
    batch_size: usize,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The reference sample set (HMC).
    #[arg(long)]
    reference: PathBuf,
    /// Other sample sets, comma-separated.
    #[arg(long, value_delimiter = ',')]
    others: Vec<PathBuf>,
    /// The data file the sets were drawn on.
    #[arg(long)]
    data: PathBuf,
    /// Draw every set's reliability diagram (10 equal-width confidence bins) to this PNG
    /// (classification).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: &BayesCommand) -> Result<()> {
    match cmd {
        BayesCommand::Hmc(a) => hmc_cmd(a),
        BayesCommand::Sgd(a) => sgd_cmd(a, "sgd"),
        BayesCommand::Ensemble(a) => sgd_cmd(a, "ensemble"),
        BayesCommand::Sgld(a) => sgmcmc_cmd(a, "sgld"),
        BayesCommand::Sghmc(a) => sgmcmc_cmd(a, "sghmc"),
        BayesCommand::Vi(a) => vi_cmd(a),
        BayesCommand::Compare(a) => compare_cmd(a),
        BayesCommand::Export(a) => export_cmd(a),
        BayesCommand::Shift(a) => shift_cmd(a),
    }
}

/// The header's last column (the default target).
fn last_column(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let header = text.lines().next().unwrap_or("");
    header
        .rsplit(',')
        .next()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Malformed {
            path: path.to_path_buf(),
            reason: "no header row".into(),
        })
}

fn positive_counts(pairs: &[(&str, usize)]) -> Result<()> {
    for (flag, v) in pairs {
        if *v == 0 {
            return Err(Error::invalid(*flag, v, "must be at least 1"));
        }
    }
    Ok(())
}

/// An MLP problem ready to sample: the split, the model, and the spec its sample sets carry.
struct Problem {
    split: Split,
    bnn: Bnn,
    spec: Spec,
    /// The per-step augmentation of the mini-batch methods (`hmc`'s is in its expanded rows).
    augment: Option<ShiftAugment>,
    /// Rows in the likelihood (all ranks together): the training rows, nine times them for
    /// `hmc --augment shift1`.
    likelihood_rows: usize,
}

/// The image shape of `d`-column rows: `given` (`--image-shape`), or a single-channel square.
///
/// # Errors
/// A shape that does not parse or does not have `d` pixels (naming `--image-shape`); columns
/// that are not a square without one (naming `flag`, the option that needs images).
fn image_shape(given: Option<&str>, d: usize, flag: &str, value: &str) -> Result<ImageShape> {
    match given {
        Some(text) => {
            let shape = ImageShape::parse(text)
                .map_err(|e| super::exit::renamed(e, &["image_shape"], "--image-shape"))?;
            if shape.pixels() != d {
                return Err(Error::invalid(
                    "--image-shape",
                    text,
                    format!(
                        "{} pixels per image, but the data have {d} feature columns",
                        shape.pixels()
                    ),
                ));
            }
            Ok(shape)
        }
        None => {
            let side = (d as f64).sqrt().round() as usize;
            if side * side != d || d == 0 {
                return Err(Error::invalid(
                    flag,
                    value,
                    format!("needs image rows, but the data's {d} feature columns are not a square image; give --image-shape CxHxW"),
                ));
            }
            ImageShape::new(1, side, side)
        }
    }
}

/// The network `--model` names, its CNN layers checked; `d` the data's feature columns (a
/// CNN's image).
fn parse_arch(model: &str, image: Option<&str>, d: usize) -> Result<Arch> {
    match model.strip_prefix("cnn:") {
        Some(layers) => {
            Arch::cnn_layers(layers).map_err(|e| super::exit::renamed(e, &["model"], "--model"))?;
            let shape = image_shape(image, d, "--model", model)?;
            Ok(Arch::Cnn {
                layers: layers.to_string(),
                image: [shape.channels, shape.height, shape.width],
            })
        }
        None => Ok(Arch::Mlp(parse_hidden(model)?)),
    }
}

fn parse_hidden(model: &str) -> Result<Vec<usize>> {
    let widths = model.strip_prefix("mlp:").ok_or_else(|| {
        Error::invalid(
            "--model",
            model,
            "unknown model; expected linear, mlp:W1,W2,… or cnn:LAYERS",
        )
    })?;
    let hidden = widths
        .split(',')
        .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::invalid(
                "--model",
                model,
                "expected mlp: and positive widths separated by commas (mlp:100,100)",
            )
        })?;
    Ok(hidden)
}

/// The product of the training rows and the model's parameters: the work of one gradient.
fn rows_times_parameters(p: &Problem) -> u128 {
    // HMC's augmented rows are the likelihood's, not the split's.
    (p.likelihood_rows as u128).saturating_mul(p.bnn.dim() as u128)
}

/// The fingerprint of a problem's data and settings (`extra`: the command's own), which every
/// MPI rank must share ([`ranks::start`]).
fn fingerprint(p: &Problem, extra: &Value) -> u64 {
    let mut bytes = serde_json::to_vec(&p.spec).unwrap_or_default();
    bytes.extend(extra.to_string().into_bytes());
    let values = p.split.x_train.iter().chain(&p.split.x_test);
    bytes.extend(values.flat_map(|x| x.to_le_bytes()));
    for labels in [&p.split.y_train, &p.split.y_test] {
        match labels {
            Labels::Classes(l) => bytes.extend(l.iter().flat_map(|&c| (c as u64).to_le_bytes())),
            Labels::Values(v) => bytes.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        }
    }
    distributed::fingerprint(&bytes)
}

/// Refuses a run that would keep `kept` parameter vectors when they could not fit in memory.
fn keeps(p: &Problem, flag: &str, value: String, kept: u128) -> Result<()> {
    limits::memory(
        flag,
        value,
        "keeping the samples",
        kept.saturating_mul(p.bnn.dim() as u128).saturating_mul(8),
    )
}

/// Reads and splits the data, runs `validate` on the number of training rows (so bad settings
/// are refused before the device notice and before any work), then builds the model.
fn problem(
    a: &ProblemArgs,
    method: &str,
    settings: Value,
    validate: impl FnOnce(usize) -> Result<()>,
) -> Result<Problem> {
    problem_on(a, method, settings, validate, false)
}

/// [`problem`], with the model on this MPI rank's shard of the training rows when `shard`
/// (the split keeps them all).
fn problem_on(
    a: &ProblemArgs,
    method: &str,
    settings: Value,
    validate: impl FnOnce(usize) -> Result<()>,
    shard: bool,
) -> Result<Problem> {
    let model = a.model.as_deref().unwrap_or("mlp:50");
    // The network's text is checked before the data are read (a CNN's image, after).
    match model.strip_prefix("cnn:") {
        Some(layers) => {
            Arch::cnn_layers(layers).map_err(|e| super::exit::renamed(e, &["model"], "--model"))?;
        }
        None => {
            parse_hidden(model)?;
        }
    }
    let classify = a.likelihood != Some(LikelihoodArg::Gaussian);
    let prior = Prior::new(
        &name(&a.prior),
        a.prior_std,
        a.mixture_weight,
        a.mixture_ratio,
    )?;
    let target = match &a.target {
        Some(t) => t.clone(),
        None => last_column(&a.data)?,
    };
    let data = data::read_csv(&a.data, &target, classify)?;
    let (likelihood, classes) = match &data.y {
        Targets::Classes { classes, .. } => (
            Likelihood::Categorical {
                classes: classes.len(),
            },
            classes.clone(),
        ),
        Targets::Values(_) => (Likelihood::Gaussian, Vec::new()),
    };
    if classes.len() > 100 || classes.len() * 4 > data.rows() {
        return Err(Error::invalid(
            "--likelihood",
            "categorical",
            format!(
                "column '{target}' has {} distinct values in {} rows: a regression target? use --likelihood gaussian",
                classes.len(),
                data.rows()
            ),
        ));
    }
    let standardize = Standardize::parse(&a.standardize)
        .map_err(|e| super::exit::renamed(e, &["standardize"], "--standardize"))?;
    let split = Split::standardized(&data, a.test_fraction, a.split_seed, standardize)?;
    if split.y_test.is_empty() {
        return Err(Error::invalid(
            "--test-fraction",
            a.test_fraction,
            format!(
                "leaves no test rows of the {} rows: the test metrics would be empty; raise it or give more rows",
                data.rows()
            ),
        ));
    }
    let arch = parse_arch(model, a.image_shape.as_deref(), split.d)?;
    stochastic::positive("--temperature", a.temperature)?;
    validate(split.y_train.len())?;
    let mut settings = settings;
    // HMC samples the rows expanded with their shifted copies; the others shift per step.
    let (expanded, augment) = match a.augment {
        AugmentArg::None => (None, None),
        AugmentArg::Shift1 => {
            let shape = image_shape(a.image_shape.as_deref(), split.d, "--augment", "shift1")?;
            if let Value::Object(m) = &mut settings {
                m.insert("augment".into(), json!("shift1"));
                m.insert("image_shape".into(), json!(shape.to_string()));
            }
            if method == "hmc" {
                (Some(keel::bayes::augment::expanded(&split, shape)?), None)
            } else {
                (None, Some(ShiftAugment::new(&split, shape)?))
            }
        }
    };
    let train = expanded.as_ref().unwrap_or(&split);
    let likelihood_rows = train.y_train.len();
    let w = ranks::world();
    let local = if shard && w.size() > 1 {
        let (start, end) = distributed::shard(train.y_train.len(), w.rank(), w.size())
            .map_err(|e| super::exit::renamed(e, &["ranks"], "mpirun -np"))?;
        Some(train.training_rows(start, end)?)
    } else {
        None
    };
    let request = ranks::device(&a.device)?;
    let (device, notice) = request.resolve()?;
    if let (Some(n), true) = (notice, ranks::prints()) {
        eprintln!("{n}");
    }
    let bnn = Bnn::with_arch(
        local.as_ref().unwrap_or(train),
        &arch,
        likelihood,
        prior,
        a.temperature,
        device,
        DType::F64,
    )?;
    let spec = Spec {
        method: method.into(),
        hidden: match &arch {
            Arch::Mlp(hidden) => hidden.clone(),
            Arch::Cnn { .. } => Vec::new(),
        },
        cnn: match &arch {
            Arch::Cnn { layers, image } => Some(CnnSpec {
                layers: layers.clone(),
                image: *image,
            }),
            Arch::Mlp(_) => None,
        },
        likelihood: likelihood.name().into(),
        classes,
        prior: prior.name().into(),
        prior_std: a.prior_std,
        mixture_weight: a.mixture_weight,
        mixture_ratio: a.mixture_ratio,
        temperature: a.temperature,
        data: a
            .data
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        target,
        rows: data.rows(),
        test_fraction: a.test_fraction,
        split_seed: a.split_seed,
        standardize,
        settings,
    };
    Ok(Problem {
        split,
        bnn,
        spec,
        augment,
        likelihood_rows,
    })
}

/// Evaluates, saves and prints a finished run.
fn report(
    a: &ProblemArgs,
    p: &Problem,
    samples: Vec<Vec<f64>>,
    chain: Vec<usize>,
    seconds: f64,
    extra: Value,
) -> Result<()> {
    if samples.is_empty() {
        return Err(Error::invalid(
            "samples",
            0,
            "the run recorded no samples (for HMC: nothing was accepted; lower the step size)",
        ));
    }
    let preds = predictions(&p.bnn, &p.split, &samples)?;
    let pred = predictive(p.bnn.likelihood, &preds);
    let test = test_metrics(&pred, &p.split);
    let rhat = function_space_rhat(&preds, &chain, p.bnn.likelihood);
    let set = SampleSet {
        spec: p.spec.clone(),
        samples,
        chain,
    };
    if let Some(path) = &a.save_samples {
        set.save(path)?;
    }
    let mut v = json!({
        "method": p.spec.method, "parameters": set.samples[0].len(),
        "model": match p.bnn.arch() {
            Arch::Mlp(_) => json!(p.bnn.sizes()),
            arch => json!(arch.name()),
        },
        "n_samples": set.samples.len(), "train_rows": p.split.y_train.len(),
        "likelihood_rows": p.likelihood_rows,
        "test_rows": p.split.y_test.len(), "prior": p.spec.prior, "prior_std": p.spec.prior_std,
        "temperature": p.spec.temperature, "device": p.bnn.device().to_string(),
        "standardize": p.spec.standardize.name(),
        "augment": p.spec.settings.get("augment").cloned().unwrap_or_else(|| json!("none")),
        "train_seconds": seconds, "test": test,
        "rhat_function_mean": rhat.map(|r| r.0), "rhat_function_max": rhat.map(|r| r.1),
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    if a.json {
        super::report::json(&v)?;
    } else {
        println!(
            "{} on {} ({} parameters, {} prior σ = {}, T = {}): {} samples in {:.1} s",
            p.spec.method,
            p.spec.data,
            set.samples[0].len(),
            p.spec.prior,
            p.spec.prior_std,
            p.spec.temperature,
            set.samples.len(),
            seconds
        );
        if let Value::Object(m) = &v["test"] {
            let line: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{k} {:.4}", x.as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("test: {}", line.join(", "));
        }
        if let Some((mean, max)) = rhat {
            println!("function-space R̂ across chains: mean {mean:.3}, max {max:.3}");
        }
        if let Some(path) = &a.save_samples {
            println!("samples written to {}", path.display());
        }
    }
    Ok(())
}

fn trajectory_length(a: &HmcArgs) -> Result<f64> {
    match a.trajectory_length.as_str() {
        "auto" => {
            Ok(std::f64::consts::FRAC_PI_2 * a.problem.prior_std * a.problem.temperature.sqrt())
        }
        s => s
            .parse()
            .map_err(|_| Error::invalid("--trajectory-length", s, "expected a number or auto")),
    }
}

fn hmc_config(a: &HmcArgs, chain: usize) -> Result<HmcConfig> {
    Ok(HmcConfig {
        step_size: a.step_size,
        trajectory_length: trajectory_length(a)?,
        max_leapfrog_steps: a.max_leapfrog_steps,
        iterations: a.samples,
        burn_in: a.burn_in,
        mh: !a.no_mh,
        ensembling: if a.textbook {
            Ensembling::Textbook
        } else {
            Ensembling::AcceptedOnly
        },
        seed: a.problem.seed.wrapping_add(chain as u64),
        adapt: a.adapt_speed.map(|speed| Adaptation {
            speed,
            target: a.target_accept,
        }),
    })
}

fn hmc_cmd(a: &HmcArgs) -> Result<()> {
    positive_counts(&[("--chains", a.chains), ("--samples", a.samples)])?;
    match a.problem.model.as_deref().unwrap_or("linear") {
        "linear" => {
            ranks::alone("keel bayes hmc --model linear")?;
            hmc_linear(a)
        }
        _ => hmc_mlp(a),
    }
}

fn hmc_mlp(a: &HmcArgs) -> Result<()> {
    let cfg0 = hmc_config(a, 0)?;
    cfg0.leapfrog_steps()?;
    if let Some(adapt) = cfg0.adapt {
        adapt.check()?;
    }
    let settings = json!({
        "step_size": a.step_size, "trajectory_length": cfg0.trajectory_length,
        "samples": a.samples, "burn_in": a.burn_in, "chains": a.chains,
        "textbook": a.textbook, "no_mh": a.no_mh, "seed": a.problem.seed,
        "adapt_speed": a.adapt_speed, "target_accept": a.target_accept,
    });
    super::checkpoint::check(a.checkpoint.as_deref(), a.resume, a.stop_after)?;
    let w = ranks::world();
    let by_chains = w.size() > 1 && a.distribute == Distribute::Chains;
    if by_chains {
        if a.chains < w.size() {
            return Err(Error::invalid(
                "--chains",
                a.chains,
                format!(
                    "--distribute chains needs at least one chain per MPI rank ({} ranks); use --distribute rows",
                    w.size()
                ),
            ));
        }
        if a.checkpoint.is_some() {
            return Err(Error::invalid(
                "--checkpoint",
                a.checkpoint.as_deref().map_or(String::new(), |c| c.display().to_string()),
                "checkpoints are written with --distribute rows only (every rank then holds every chain)",
            ));
        }
    }
    let p = problem_on(&a.problem, "hmc", settings.clone(), |_| Ok(()), !by_chains)?;
    let kept = (a.chains as u128).saturating_mul(a.samples as u128);
    keeps(
        &p,
        "--chains/--samples",
        format!("{}/{}", a.chains, a.samples),
        kept,
    )?;
    limits::work(
        "--chains/--samples/--burn-in",
        format!("{}/{}/{}", a.chains, a.samples, a.burn_in),
        (a.chains as u128)
            .saturating_mul(a.samples as u128 + a.burn_in as u128)
            .saturating_mul(cfg0.leapfrog_steps()? as u128)
            .saturating_mul(rows_times_parameters(&p)),
        "row-parameter products",
    )?;
    ranks::start(fingerprint(&p, &settings))?;
    // Over ranks holding shards of the rows, the likelihood and gradient are summed at every
    // evaluation and the chains' draws are rank 0's; alone, the model is the target.
    let sharded = Sharded {
        local: &p.bnn,
        comm: w,
    };
    let target: &dyn BatchTarget = if w.size() > 1 && !by_chains {
        &sharded
    } else {
        &p.bnn
    };
    // The chains this process runs: all of them, or its share (chain c on rank c mod N).
    let mine: Vec<usize> = if by_chains {
        distributed::round_robin(a.chains, w.rank(), w.size()).collect()
    } else {
        (0..a.chains).collect()
    };
    let fingerprint = serde_json::to_string(&p.spec).unwrap_or_default();
    let start = Instant::now();
    let (mut finished, mut running) =
        match a.checkpoint.as_deref().filter(|c| a.resume && c.exists()) {
            Some(path) => checkpoint::load(path, &fingerprint, target, &|c| hmc_config(a, c))?,
            None => (Vec::new(), Vec::new()),
        };
    // The chains run in lockstep, their likelihoods and gradients evaluated together.
    for &c in &mine[(finished.len() + running.len()).min(mine.len())..] {
        running.push(ChainState::start(
            target,
            p.bnn.init(a.problem.seed.wrapping_add(c as u64)),
            &hmc_config(a, c)?,
        )?);
    }
    let cfgs = mine[finished.len().min(mine.len())..]
        .iter()
        .map(|&c| hmc_config(a, c))
        .collect::<Result<Vec<_>>>()?;
    let bar = counted_bar(
        !a.problem.quiet && !a.problem.json,
        a.burn_in + a.samples,
        format!("HMC, {} chains", a.chains),
        "iterations",
    );
    let lowest = |running: &[ChainState]| running.iter().map(|c| c.iteration).min().unwrap_or(0);
    bar.set_position(lowest(&running) as u64);
    let mut this_run = 0usize;
    loop {
        let (mut live, live_cfgs): (Vec<&mut ChainState>, Vec<&HmcConfig>) = running
            .iter_mut()
            .zip(&cfgs)
            .filter(|(c, cfg)| !c.is_done(cfg))
            .unzip();
        if live.is_empty() {
            break;
        }
        let prs = advance_batched(target, &mut live, &live_cfgs)?;
        this_run += 1;
        if this_run == 1 {
            ranks::fail_point("after its first iteration")?;
        }
        let mean = |f: fn(&keel::bayes::hmc::Progress) -> f64| {
            prs.iter().map(f).sum::<f64>() / prs.len() as f64
        };
        bar.set_message(if prs.iter().any(|p| p.burning) {
            format!("burn-in, mean ε {:.2e}", mean(|p| p.step_size))
        } else {
            format!("acceptance {:.2}", mean(|p| p.acceptance_rate))
        });
        bar.set_position(lowest(&running) as u64);
        let stop = a.stop_after.is_some_and(|n| this_run >= n);
        let done = running.iter().zip(&cfgs).all(|(c, cfg)| c.is_done(cfg));
        // Every rank holds the same chains (rows) or checkpoints are refused (chains): rank 0
        // writes.
        if let (Some(path), true) = (&a.checkpoint, ranks::prints()) {
            if stop || done || lowest(&running).is_multiple_of(a.checkpoint_every.max(1)) {
                let progress = checkpoint::Progress {
                    finished: &finished,
                    running: &running,
                };
                checkpoint::save(path, &fingerprint, &progress)?;
            }
        }
        if stop && !done {
            bar.finish_and_clear();
            let path = a.checkpoint.as_deref().map(Path::display);
            if ranks::prints() && a.problem.json {
                super::report::json(
                    &json!({"partial": true, "stopped_after": this_run, "iteration": lowest(&running), "checkpoint": path.map(|d| d.to_string())}),
                )?;
            } else if let (Some(d), true) = (path, ranks::prints()) {
                println!("stopped after {this_run} iterations of the {} chains; continue with --resume --checkpoint {d}", a.chains);
            }
            return Ok(());
        }
    }
    bar.finish_and_clear();
    finished.extend(running.into_iter().zip(&cfgs).map(|(c, cfg)| c.finish(cfg)));
    if by_chains {
        // Rank 0 puts every rank's chains back in chain order: each a run of its summary and
        // its samples.
        let runs = finished.into_iter().map(chain_run).collect();
        let Some(runs) = gather_runs(runs, a.chains)? else {
            return Ok(());
        };
        finished = runs.into_iter().map(run_chain).collect::<Result<_>>()?;
    }
    if !ranks::prints() {
        return Ok(());
    }
    let (mut samples, mut chain_of) = (Vec::new(), Vec::new());
    let (mut rates, mut nan, mut steps, mut eps) = (Vec::new(), 0, 0, Vec::new());
    for (c, chain) in finished.into_iter().enumerate() {
        rates.push(chain.acceptance_rate);
        nan += chain.nan_energies;
        steps = chain.leapfrog_steps;
        eps.push(chain.step_size);
        chain_of.extend(std::iter::repeat_n(c, chain.samples.len()));
        samples.extend(chain.samples);
    }
    let extra = json!({
        "acceptance_rate": rates.iter().sum::<f64>() / rates.len() as f64,
        "acceptance_rate_per_chain": rates, "chains": a.chains, "leapfrog_steps": steps,
        "step_size": eps, "trajectory_length": cfg0.trajectory_length, "nan_energies": nan,
        "gradient_evaluations": (a.burn_in + a.samples) * steps * a.chains, "partial": false,
        "ranks": w.size(), "distribute": match (w.size(), a.distribute) {
            (1, _) => "none",
            (_, Distribute::Rows) => "rows",
            (_, Distribute::Chains) => "chains",
        },
    });
    if !a.problem.json {
        println!(
            "HMC: acceptance {:.3} per chain {:?}, L = {steps}, {nan} non-finite energies",
            rates.iter().sum::<f64>() / rates.len() as f64,
            rates
                .iter()
                .map(|r| (r * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
    }
    report(
        &a.problem,
        &p,
        samples,
        chain_of,
        start.elapsed().as_secs_f64(),
        extra,
    )
}

/// Every rank's runs (rank r holding runs `r, r + N, …` of `items`, each a list of parameter
/// vectors) on rank 0, in run order; `None` on the other ranks. Alone, the runs as they are.
fn gather_runs(runs: Vec<Vec<Vec<f64>>>, items: usize) -> Result<Option<Vec<Vec<Vec<f64>>>>> {
    let w = ranks::world();
    if w.size() == 1 {
        return Ok(Some(runs));
    }
    let mut lists = Vec::new();
    for r in runs {
        lists.push(vec![r.len() as f64]);
        lists.extend(r);
    }
    let Some(all) = w.gather(&distributed::encode(&lists))? else {
        return Ok(None);
    };
    let bad = || Error::invalid("ranks", "gathered runs", "a rank sent a malformed run");
    let mut per_rank = Vec::with_capacity(all.len());
    for bytes in &all {
        let mut lists = distributed::decode(bytes)?.into_iter();
        let mut rank_runs = Vec::new();
        while let Some(head) = lists.next() {
            let &[count] = head.as_slice() else {
                return Err(bad());
            };
            let run: Vec<Vec<f64>> = lists.by_ref().take(count as usize).collect();
            if run.len() as f64 != count {
                return Err(bad());
            }
            rank_runs.push(run);
        }
        per_rank.push(rank_runs);
    }
    Ok(Some(distributed::interleave(per_rank, items)?))
}

/// A finished chain as a run for [`gather_runs`]: its summary `[acceptance rate, non-finite
/// energies, L, ε]`, then its samples.
fn chain_run(c: Chain) -> Vec<Vec<f64>> {
    let summary = vec![
        c.acceptance_rate,
        c.nan_energies as f64,
        c.leapfrog_steps as f64,
        c.step_size,
    ];
    std::iter::once(summary).chain(c.samples).collect()
}

/// [`chain_run`]'s chain back.
fn run_chain(run: Vec<Vec<f64>>) -> Result<Chain> {
    let mut run = run.into_iter();
    let Some(&[acceptance_rate, nan, steps, step_size]) = run.next().as_deref() else {
        return Err(Error::invalid(
            "ranks",
            "gathered chains",
            "a rank sent a malformed chain",
        ));
    };
    Ok(Chain {
        samples: run.collect(),
        acceptance_rate,
        nan_energies: nan as usize,
        leapfrog_steps: steps as usize,
        step_size,
    })
}

fn sgd_cmd(a: &SgdArgs, method: &str) -> Result<()> {
    let members = if method == "sgd" { 1 } else { a.members };
    positive_counts(&[("--members", members)])?;
    let settings = json!({
        "lr": a.lr, "epochs": a.epochs, "batch_size": a.batch_size, "members": members,
        "seed": a.problem.seed,
    });
    let settings_of_members = settings.clone();
    let batching = |seed| Batching {
        batch_size: a.batch_size,
        epochs: a.epochs,
        seed,
        augment: None,
    };
    let p = problem(&a.problem, method, settings, |rows| {
        stochastic::positive("--lr", a.lr)?;
        batching(0).check(rows)
    })?;
    keeps(&p, "--members", members.to_string(), members as u128)?;
    limits::work(
        "--members/--epochs",
        format!("{members}/{}", a.epochs),
        (members as u128)
            .saturating_mul(a.epochs as u128)
            .saturating_mul(rows_times_parameters(&p)),
        "row-parameter products",
    )?;
    ranks::start(fingerprint(&p, &settings_of_members))?;
    let w = ranks::world();
    let start = Instant::now();
    // Under MPI, member m trains on rank m mod N; rank 0 gathers them in member order. A rank's
    // members train together (in lockstep, batched, where the model allows).
    let mine: Vec<usize> = distributed::round_robin(members, w.rank(), w.size()).collect();
    let seeds: Vec<u64> = mine
        .iter()
        .map(|&m| a.problem.seed.wrapping_add(m as u64))
        .collect();
    let inits: Vec<Vec<f64>> = seeds.iter().map(|&s| p.bnn.init(s)).collect();
    let batchings: Vec<Batching> = seeds
        .iter()
        .map(|&s| Batching {
            augment: p.augment.clone(),
            ..batching(s)
        })
        .collect();
    let label = match mine.as_slice() {
        [m] => format!("{method} {}/{members}", m + 1),
        _ => format!("{method}, {} members", mine.len()),
    };
    let bar = epoch_bar(!a.problem.quiet && !a.problem.json, a.epochs, label);
    let samples = stochastic::sgd_members(&p.bnn, inits, a.lr, &batchings, &mut |t| {
        progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    ranks::fail_point("after its members")?;
    // Each member is a run of one parameter vector.
    let Some(runs) = gather_runs(samples.into_iter().map(|s| vec![s]).collect(), members)? else {
        return Ok(());
    };
    let samples: Vec<Vec<f64>> = runs.into_iter().flatten().collect();
    report(
        &a.problem,
        &p,
        samples,
        (0..members).collect(),
        start.elapsed().as_secs_f64(),
        json!({ "members": members }),
    )
}

fn sgmcmc_cmd(a: &SgmcmcArgs, method: &str) -> Result<()> {
    positive_counts(&[("--chains", a.chains)])?;
    let momentum = a
        .momentum
        .unwrap_or(if method == "sgld" { 0.0 } else { 0.9 });
    let schedule = match a.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Cosine => Schedule::CosineBurnIn {
            final_lr: a
                .final_lr
                .ok_or_else(|| Error::invalid("--schedule", "cosine", "needs --final-lr"))?,
        },
        ScheduleArg::Cyclical => Schedule::Cyclical {
            cycle_epochs: a.cycle_epochs,
        },
    };
    let cfg = SgmcmcConfig {
        lr: a.lr,
        momentum,
        burn_in_epochs: a.burn_in,
        ensemble_freq: a.sample_every,
        schedule,
        preconditioned: a.preconditioned,
    };
    let settings = json!({
        "lr": a.lr, "momentum": momentum, "epochs": a.epochs, "burn_in": a.burn_in,
        "sample_every": a.sample_every, "schedule": name(&a.schedule), "final_lr": a.final_lr,
        "cycle_epochs": a.cycle_epochs, "preconditioned": a.preconditioned,
        "chains": a.chains, "batch_size": a.batch_size, "seed": a.problem.seed,
    });
    let batching = |seed| Batching {
        batch_size: a.batch_size,
        epochs: a.epochs,
        seed,
        augment: None,
    };
    let settings_of_chains = settings.clone();
    let p = problem(&a.problem, method, settings, |rows| {
        cfg.check(a.epochs)?;
        batching(0).check(rows)
    })?;
    let per_chain = a.epochs.saturating_sub(a.burn_in) / a.sample_every.max(1) + 1;
    keeps(
        &p,
        "--chains",
        a.chains.to_string(),
        (a.chains as u128).saturating_mul(per_chain as u128),
    )?;
    limits::work(
        "--chains/--epochs",
        format!("{}/{}", a.chains, a.epochs),
        (a.chains as u128)
            .saturating_mul(a.epochs as u128)
            .saturating_mul(rows_times_parameters(&p)),
        "row-parameter products",
    )?;
    ranks::start(fingerprint(&p, &settings_of_chains))?;
    let w = ranks::world();
    let start = Instant::now();
    // Under MPI, chain c runs on rank c mod N; rank 0 gathers them in chain order.
    let mut runs = Vec::new();
    for c in distributed::round_robin(a.chains, w.rank(), w.size()) {
        let seed = a.problem.seed.wrapping_add(c as u64);
        let b = Batching {
            augment: p.augment.clone(),
            ..batching(seed)
        };
        let bar = epoch_bar(
            !a.problem.quiet && !a.problem.json,
            a.epochs,
            format!("{method} chain {}/{}", c + 1, a.chains),
        );
        let s = stochastic::sgmcmc(&p.bnn, p.bnn.init(seed), &cfg, &b, &mut |t| {
            progress::show(&bar, t)
        })?;
        bar.finish_and_clear();
        runs.push(s);
        ranks::fail_point("after its first chain")?;
    }
    let Some(runs) = gather_runs(runs, a.chains)? else {
        return Ok(());
    };
    let (mut samples, mut chain_of) = (Vec::new(), Vec::new());
    for (c, s) in runs.into_iter().enumerate() {
        chain_of.extend(std::iter::repeat_n(c, s.len()));
        samples.extend(s);
    }
    report(
        &a.problem,
        &p,
        samples,
        chain_of,
        start.elapsed().as_secs_f64(),
        json!({ "chains": a.chains, "momentum": momentum }),
    )
}

fn vi_cmd(a: &ViArgs) -> Result<()> {
    positive_counts(&[("--draws", a.draws), ("--sgd-epochs", a.sgd_epochs)])?;
    let settings = json!({
        "lr": a.lr, "epochs": a.epochs, "init_std": a.init_std, "sgd_epochs": a.sgd_epochs,
        "sgd_lr": a.sgd_lr, "draws": a.draws, "batch_size": a.batch_size, "seed": a.problem.seed,
    });
    let seed = a.problem.seed;
    let b = Batching {
        batch_size: a.batch_size,
        epochs: a.sgd_epochs,
        seed,
        augment: None,
    };
    let prior = Prior::new(
        &name(&a.problem.prior),
        a.problem.prior_std,
        a.problem.mixture_weight,
        a.problem.mixture_ratio,
    )?;
    let p = problem(&a.problem, "vi", settings, |rows| {
        stochastic::check_vi(&prior, a.lr, a.init_std)?;
        stochastic::positive("--sgd-lr", a.sgd_lr)?;
        positive_counts(&[("--epochs", a.epochs)])?;
        b.check(rows)
    })?;
    keeps(&p, "--draws", a.draws.to_string(), a.draws as u128)?;
    let b = Batching {
        augment: p.augment.clone(),
        ..b
    };
    limits::work(
        "--epochs/--sgd-epochs",
        format!("{}/{}", a.epochs, a.sgd_epochs),
        (a.epochs as u128 + a.sgd_epochs as u128).saturating_mul(rows_times_parameters(&p)),
        "row-parameter products",
    )?;
    let start = Instant::now();
    let show = !a.problem.quiet && !a.problem.json;
    let bar = epoch_bar(show, a.sgd_epochs, "vi: SGD for the mean".into());
    let mean = stochastic::sgd(&p.bnn, p.bnn.init(seed), a.sgd_lr, &b, &mut |t| {
        progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let b = Batching {
        epochs: a.epochs,
        seed: seed.wrapping_add(1),
        ..b
    };
    let bar = epoch_bar(show, a.epochs, "vi".into());
    let q = stochastic::mfvi(&p.bnn, mean, a.lr, a.init_std, &b, &mut |t| {
        progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let mean_std = q.std.iter().sum::<f64>() / q.std.len() as f64;
    let draws = q.draws(a.draws, seed.wrapping_add(2));
    report(
        &a.problem,
        &p,
        draws,
        vec![0; a.draws],
        start.elapsed().as_secs_f64(),
        json!({ "posterior_std_mean": mean_std }),
    )
}

fn compare_cmd(a: &CompareArgs) -> Result<()> {
    let reference = SampleSet::load(&a.reference)?;
    let others = a
        .others
        .iter()
        .map(|p| SampleSet::load(p))
        .collect::<Result<Vec<_>>>()?;
    for (o, path) in others.iter().zip(&a.others) {
        reference.spec.same_problem(&o.spec).map_err(|why| {
            Error::invalid(
                "--others",
                path.display(),
                format!("drawn on another problem than the reference: {why}"),
            )
        })?;
    }
    if let Some(path) = &a.plot {
        if reference.spec.classes.is_empty() {
            return Err(Error::invalid(
                "--plot",
                path.display(),
                "a reliability diagram needs classes; these sets are regressions",
            ));
        }
        keel::output::check_plot("--plot", path)?;
    }
    let (split, bnn) = rebuild(&reference.spec, &a.data, keel::backend::Device::Cpu)?;
    let eval = |set: &SampleSet| -> Result<(Value, keel::bayes::samples::Predictive, Value)> {
        let preds = predictions(&bnn, &split, &set.samples)?;
        let pred = predictive(bnn.likelihood, &preds);
        let rhat = function_space_rhat(&preds, &set.chain, bnn.likelihood);
        Ok((test_metrics(&pred, &split), pred, json!(rhat.map(|r| r.0))))
    };
    let (ref_test, ref_pred, ref_rhat) = eval(&reference)?;
    let mut diagram: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut draw = |name: &str, pred: &keel::bayes::samples::Predictive| {
        if let (
            keel::bayes::samples::Predictive::Classes { probs, classes },
            keel::bayes::mlp::Labels::Classes(y),
        ) = (pred, &split.y_test)
        {
            let bins = keel::metrics::reliability(probs, *classes, y, 10);
            diagram.push((name.to_string(), bins.iter().map(|b| (b.0, b.1)).collect()));
        }
    };
    draw(&reference.spec.method, &ref_pred);
    let mut rows = vec![json!({
        "file": a.reference.display().to_string(), "method": reference.spec.method,
        "prior": reference.spec.prior, "n_samples": reference.samples.len(),
        "test": ref_test, "rhat_function_mean": ref_rhat, "to_reference": closeness(&ref_pred, &ref_pred, split.y_scale),
    })];
    for (o, path) in others.iter().zip(&a.others) {
        let (test, pred, rhat) = eval(o)?;
        let name = path.file_stem().map_or_else(
            || o.spec.method.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
        draw(&name, &pred);
        rows.push(json!({
            "file": path.display().to_string(), "method": o.spec.method, "prior": o.spec.prior,
            "n_samples": o.samples.len(), "test": test, "rhat_function_mean": rhat,
            "to_reference": closeness(&pred, &ref_pred, split.y_scale),
        }));
    }
    if let Some(path) = &a.plot {
        keel::plot::plot_reliability(path, &diagram, "Reliability on the test rows")?;
    }
    if a.json {
        super::report::json(
            &json!({ "reference": a.reference.display().to_string(), "rows": rows }),
        )?;
        return Ok(());
    }
    let classify = !reference.spec.classes.is_empty();
    let keys: &[&str] = if classify {
        &["accuracy", "nll", "ece", "ece_equal_mass"]
    } else {
        &["rmse", "nll"]
    };
    let close: &[&str] = if classify {
        &["agreement", "total_variation"]
    } else {
        &["total_variation", "mean_gap"]
    };
    // A Markdown table whose columns are as wide as their widest cell: text left, numbers right.
    let mut table: Vec<Vec<String>> = vec![["file", "method", "samples"]
        .iter()
        .chain(keys)
        .chain(close)
        .map(|h| h.to_string())
        .collect()];
    for r in &rows {
        let mut cells = vec![
            r["file"].as_str().unwrap_or("").to_string(),
            r["method"].as_str().unwrap_or("").to_string(),
            r["n_samples"].to_string(),
        ];
        let number = |v: &Value| format!("{:.4}", v.as_f64().unwrap_or(f64::NAN));
        cells.extend(keys.iter().map(|k| number(&r["test"][k])));
        cells.extend(close.iter().map(|k| number(&r["to_reference"][k])));
        table.push(cells);
    }
    let width = |c: usize| {
        table
            .iter()
            .map(|r| r[c].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..table[0].len()).map(width).collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, &w))| match c {
                0 | 1 => format!("{s:<w$}"),
                _ => format!("{s:>w$}"),
            })
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&table[0]);
    line(&widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>());
    for row in &table[1..] {
        line(row);
    }
    Ok(())
}

/// `--severity`'s list: whole numbers 1 to 5, at least one.
fn severities(text: &str) -> Result<Vec<usize>> {
    let bad = |why: &str| Error::invalid("--severity", text, why.to_string());
    if text.trim().is_empty() {
        return Err(bad("give one or more severities 1 to 5, comma-separated"));
    }
    let mut out = Vec::new();
    for part in text.split(',') {
        let s: usize = part
            .trim()
            .parse()
            .map_err(|_| bad("expected whole numbers 1 to 5, comma-separated"))?;
        corrupt::check_severity(s).map_err(|_| {
            bad("every severity must be 1 to 5 (the clean images, 0, are always evaluated)")
        })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One sample set ready for the shift study: its file, set, test split (standardised), model,
/// raw test pixels, image shape and pixel range.
struct ShiftSet {
    path: PathBuf,
    set: SampleSet,
    split: Split,
    bnn: Bnn,
    raw_test: Vec<f64>,
    shape: ImageShape,
    range: f64,
}

/// Loads and checks one set for `keel bayes shift`: a classifier on image rows.
fn shift_set(a: &ShiftArgs, path: &Path) -> Result<ShiftSet> {
    let set = SampleSet::load(path)?;
    if set.spec.likelihood != "categorical" {
        return Err(Error::invalid(
            "--samples",
            path.display(),
            "a regression set; the shift study measures classifiers (accuracy, NLL, ECE)",
        ));
    }
    let (split, bnn) = rebuild(&set.spec, &a.data, keel::backend::Device::Cpu)?;
    let shape = image_shape(
        a.image_shape.as_deref(),
        split.d,
        "--samples",
        &path.display().to_string(),
    )?;
    // The test rows back in the data file's units: the corruptions act on raw pixels, before
    // the split's standardisation.
    let d = split.d;
    let raw_test: Vec<f64> = split
        .x_test
        .iter()
        .enumerate()
        .map(|(i, v)| v * split.x_std[i % d] + split.x_mean[i % d])
        .collect();
    let range = match a.pixel_range {
        Some(r) => r,
        None => {
            let data = keel::data::read_csv(&a.data, &set.spec.target, true)?;
            data.x.iter().copied().fold(0.0, f64::max)
        }
    };
    if !(range > 0.0 && range.is_finite()) {
        return Err(Error::invalid(
            "--pixel-range",
            range,
            "must be a positive number (the data's pixels are not positive: give --pixel-range)",
        ));
    }
    Ok(ShiftSet {
        path: path.to_path_buf(),
        set,
        split,
        bnn,
        raw_test,
        shape,
        range,
    })
}

fn shift_cmd(a: &ShiftArgs) -> Result<()> {
    let corruption = Corruption::parse(&a.corruption)
        .map_err(|e| super::exit::renamed(e, &["corruption"], "--corruption"))?;
    let severities = severities(&a.severity)?;
    if let Some(path) = &a.plot {
        keel::output::check_plot("--plot", path)?;
    }
    // Every set is read and checked before any is evaluated.
    let sets = a
        .samples
        .iter()
        .map(|p| shift_set(a, p))
        .collect::<Result<Vec<_>>>()?;
    let mut results = Vec::new();
    let mut accuracy: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut ece: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for s in &sets {
        let name = s.path.file_stem().map_or_else(
            || s.set.spec.method.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
        let (mut acc_line, mut ece_line) = (Vec::new(), Vec::new());
        for &severity in std::iter::once(&0).chain(&severities) {
            let pixels = if severity == 0 {
                s.raw_test.clone()
            } else {
                corrupt::corrupt(&s.raw_test, s.shape, corruption, severity, s.range, a.seed)?
            };
            let split = Split {
                x_test: keel::data::standardize(&pixels, &s.split.x_mean, &s.split.x_std),
                ..s.split.clone()
            };
            let preds = predictions(&s.bnn, &split, &s.set.samples)?;
            let test = test_metrics(&predictive(s.bnn.likelihood, &preds), &split);
            let metric = |k: &str| test[k].as_f64().unwrap_or(f64::NAN);
            acc_line.push((severity as f64, metric("accuracy")));
            ece_line.push((severity as f64, metric("ece")));
            results.push(json!({
                "file": s.path.display().to_string(), "method": s.set.spec.method,
                "temperature": s.set.spec.temperature, "standardize": s.set.spec.standardize.name(),
                "augment": s.set.spec.settings.get("augment").cloned().unwrap_or_else(|| json!("none")),
                "n_samples": s.set.samples.len(), "severity": severity,
                "parameter": if severity == 0 { 0.0 } else { corruption.parameter(severity)? },
                "accuracy": test["accuracy"], "nll": test["nll"], "ece": test["ece"],
                "ece_equal_mass": test["ece_equal_mass"],
            }));
        }
        accuracy.push((name.clone(), acc_line));
        ece.push((name, ece_line));
    }
    if let Some(path) = &a.plot {
        let title_acc = format!("accuracy under {corruption}");
        let title_ece = format!("ECE under {corruption}");
        keel::plot::plot_line_panels(
            path,
            &[
                (&title_acc, "severity", "test accuracy", &accuracy),
                (&title_ece, "severity", "ECE (10 bins)", &ece),
            ],
        )?;
    }
    let ranges: Vec<f64> = sets.iter().map(|s| s.range).collect();
    if a.json {
        return super::report::json(&json!({
            "corruption": corruption.name(), "parameter": corruption.parameter_name(),
            "seed": a.seed, "pixel_range": ranges.first(), "severities": severities,
            "results": results,
        }));
    }
    println!(
        "{corruption} ({}), seed {}, pixel range [0, {}]",
        corruption.parameter_name(),
        a.seed,
        ranges.first().copied().unwrap_or(f64::NAN)
    );
    println!("| file | method | severity | parameter | accuracy | nll | ece |");
    println!("|---|---|---|---|---|---|---|");
    for r in &results {
        let number = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} |",
            r["file"].as_str().unwrap_or(""),
            r["method"].as_str().unwrap_or(""),
            r["severity"],
            number("parameter"),
            number("accuracy"),
            number("nll"),
            number("ece")
        );
    }
    Ok(())
}

fn export_cmd(a: &ExportArgs) -> Result<()> {
    positive_counts(&[("--count", a.count)])?;
    keel::output::check_writable("--out", &a.out)?;
    let set = SampleSet::load(&a.samples)?;
    keel::bayes::samples::exportable(&set.spec)?;
    if a.count > set.samples.len() {
        eprintln!(
            "keel: --count {} is more than the {} samples in {}; exporting all of them",
            a.count,
            set.samples.len(),
            a.samples.display()
        );
    }
    let (split, bnn) = rebuild(&set.spec, &a.data, keel::backend::Device::Cpu)?;
    let bytes = keel::bayes::samples::bma_bytes(&set, &split, &bnn.sizes(), a.count)?;
    keel::output::write_atomic(&a.out, &bytes)?;
    println!(
        "{} of {} {} samples ({} parameters each) written to {} ({} bytes)",
        a.count.min(set.samples.len()),
        set.samples.len(),
        set.spec.method,
        set.samples[0].len(),
        a.out.display(),
        bytes.len()
    );
    Ok(())
}

fn hmc_linear(a: &HmcArgs) -> Result<()> {
    let pa = &a.problem;
    if pa.likelihood == Some(LikelihoodArg::Categorical) {
        return Err(Error::invalid(
            "--likelihood",
            "categorical",
            "--model linear takes the known-noise gaussian likelihood",
        ));
    }
    if pa.prior != PriorArg::Gaussian {
        return Err(Error::invalid(
            "--prior",
            name(&pa.prior),
            "--model linear takes the gaussian prior (its posterior is known exactly)",
        ));
    }
    if pa.augment != AugmentArg::None {
        return Err(Error::invalid(
            "--augment",
            name(&pa.augment),
            "--model linear has no image rows to shift; augmentation is for --model mlp:…",
        ));
    }
    if pa.standardize != "columns" {
        return Err(Error::invalid(
            "--standardize",
            &pa.standardize,
            "--model linear uses the data as they are (no standardisation)",
        ));
    }
    let trajectory_length = trajectory_length(a)?;
    let target = match &pa.target {
        Some(t) => t.clone(),
        None => last_column(&pa.data)?,
    };
    let data = data::read_csv(&pa.data, &target, false)?;
    let Targets::Values(y) = data.y else {
        unreachable!("read without classes")
    };
    let mut features = data.features.clone();
    let x: Vec<f64> = if a.bias {
        features.push("bias".into());
        data.x
            .chunks(data.features.len())
            .flat_map(|r| r.iter().copied().chain([1.0]))
            .collect()
    } else {
        data.x
    };
    let d = features.len();
    let model = LinearGaussian::new(x, y, d, a.noise_std, pa.prior_std, pa.temperature)?;
    let mut samples = Vec::new();
    // ESS per chain (chains record different numbers of states), summed over chains.
    let mut ess = vec![0.0; d];
    let (mut accepted, mut nan, mut steps) = (0.0, 0, 0);
    for c in 0..a.chains {
        let cfg = hmc_config(a, c)?;
        let chain = sample(&model, vec![0.0; d], &cfg)?;
        accepted += chain.acceptance_rate / a.chains as f64;
        nan += chain.nan_energies;
        steps = chain.leapfrog_steps;
        for (i, e) in ess.iter_mut().enumerate() {
            let xs: Vec<f64> = chain.samples.iter().map(|s| s[i]).collect();
            *e += effective_sample_size(&xs);
        }
        samples.extend(chain.samples);
    }
    let n = samples.len();
    if n < 2 {
        return Err(Error::invalid(
            "--step-size",
            a.step_size,
            format!(
                "only {n} samples were recorded (acceptance {accepted:.3}); lower the step size"
            ),
        ));
    }
    let (mean, cov) = moments(&samples);
    let ess_min = ess.iter().copied().fold(f64::INFINITY, f64::min);
    let (exact_mean, exact_cov) = model.posterior()?;
    if pa.json {
        let v = json!({
            "acceptance_rate": accepted, "n_samples": n, "features": features,
            "posterior_mean": mean, "posterior_cov": cov, "ess": ess, "ess_min": ess_min,
            "leapfrog_steps": steps, "trajectory_length": trajectory_length,
            "nan_energies": nan, "chains": a.chains,
            "exact_posterior_mean": exact_mean,
            "exact_posterior_cov": exact_cov.chunks(d).map(|r| r.to_vec()).collect::<Vec<_>>(),
        });
        super::report::json(&v)?;
    } else {
        println!(
            "HMC, {} chain(s): {n} samples, acceptance {accepted:.3}, L = {steps} leapfrog steps (τ = {trajectory_length:.4}), min ESS {ess_min:.0}{}",
            a.chains,
            if nan > 0 { format!(", {nan} non-finite energies (rejected)") } else { String::new() }
        );
        println!(
            "{:>12} {:>12} {:>12} {:>12} {:>8}",
            "weight", "HMC mean", "exact mean", "HMC sd", "ESS"
        );
        for i in 0..d {
            println!(
                "{:>12} {:>12.5} {:>12.5} {:>12.5} {:>8.0}",
                features[i],
                mean[i],
                exact_mean[i],
                cov[i][i].sqrt(),
                ess[i]
            );
        }
    }
    Ok(())
}
