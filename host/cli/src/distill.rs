//! `keel distill`: a student network trained to match a teacher (a `keel fit` model, a `keel
//! bayes` sample set, a simplex ensemble, or several), with its fidelity and generalisation.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use keel::distill::{distill, Augment, DistillConfig, Loss, StudentInit, StudentSpec};
use keel::error::{Error, Result};
use keel::output::{check_writable, Outputs};

use super::checkpoint::CheckpointArgs;
use super::values::DtypeArg;

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    /// Temperature forward cross-entropy × T² (the paper's default).
    FwdCe,
    /// KL(teacher ‖ student) at temperature T.
    Kl,
    /// KL both ways.
    SymKl,
    /// Squared difference of the tempered probabilities.
    Brier,
    /// Cross-entropy on the teacher's arg-max labels × T².
    HardCe,
    /// Reverse cross-entropy −T² Σ p_s log p_t.
    RevCe,
    /// β·hard-ce + (1 − β)·fwd-ce, β annealed from 1 to 0 over the epochs.
    Cvx,
}

#[derive(Clone, Copy, ValueEnum)]
enum InitArg {
    Random,
    Interpolate,
}

#[derive(Clone, Copy, ValueEnum)]
enum AugmentArg {
    None,
    Shift,
    Mixup,
}

#[derive(Args)]
pub struct DistillArgs {
    /// Teacher file (repeat for an ensemble of teachers): a `keel fit --export` model (mlp or
    /// cnn), a `keel bayes … --save-samples` sample set, or a `keel simplex train --export`
    /// ensemble of MLPs.
    #[arg(long, required = true)]
    teacher: Vec<PathBuf>,
    /// CSV file with a header row (the teacher's classes and input columns).
    #[arg(long)]
    data: PathBuf,
    /// Class column.
    #[arg(long)]
    target: String,
    /// The student MLP: mlp:W1,W2,… (ReLU hidden layers). Ignored with --layers.
    #[arg(long, default_value = "mlp:64")]
    student: String,
    /// A CNN student instead, with these layers (as keel fit --layers; needs --image-shape).
    #[arg(long)]
    layers: Option<String>,
    /// The shape of the images in the feature columns, CxHxW (1x8x8 for the digits): for a CNN
    /// student and --augment shift.
    #[arg(long)]
    image_shape: Option<String>,
    /// Distillation loss.
    #[arg(long, value_enum, default_value = "fwd-ce")]
    loss: LossArg,
    /// Temperature T of the real rows (synthetic rows use 1).
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    temperature: f64,
    /// Weight α of the true-label cross-entropy (real rows only); the soft loss gets 1 − α.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    alpha: f64,
    /// Epochs.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Base learning rate of SGD with Nesterov momentum 0.9 and weight decay 1e-4, annealed by a
    /// cosine to 1e-6.
    #[arg(long, default_value_t = 0.05, allow_hyphen_values = true)]
    lr: f64,
    /// Real rows per batch.
    #[arg(long, default_value_t = 128, value_parser = super::values::at_least_one)]
    batch_size: usize,
    /// Seed of the student's initialisation, batch order and augmentation (and of the split,
    /// unless --split-seed or a sample-set teacher gives it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Student initialisation: random, or interpolate (ρ·random + (1 − ρ)·teacher, lr × ρ;
    /// needs a teacher that is one MLP of the student's architecture).
    #[arg(long, value_enum, default_value = "random")]
    init: InitArg,
    /// ρ of --init interpolate, in [0, 1].
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    rho: f64,
    /// Augment the distillation stream: none, shift (±1 pixel, needs --image-shape), mixup.
    #[arg(long, value_enum, default_value = "none")]
    augment: AugmentArg,
    /// α of mixup's Beta(α, α).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    mixup_alpha: f64,
    /// Synthetic rows for the stream: a GAN generator (`keel gan train --export`, *.safetensors;
    /// fresh samples for every synthetic slot) or a CSV with the data's feature columns.
    #[arg(long)]
    synthetic: Option<PathBuf>,
    /// Share of each batch that is synthetic, in (0, 1).
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    synthetic_ratio: f64,
    /// A separate test CSV (same columns and classes): every --data row then trains.
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Fraction of rows held out for testing (default: a sample-set teacher's, else 0.2 as
    /// keel fit splits: with the same --seed a keel fit teacher's test rows are the student's).
    #[arg(long, allow_hyphen_values = true)]
    test_fraction: Option<f64>,
    /// Seed of the train/test split (default: a sample-set teacher's, else --seed).
    #[arg(long)]
    split_seed: Option<u64>,
    /// Student precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where the student trains: auto, cpu, cuda, cuda:N (the teacher runs on the CPU).
    #[arg(long, default_value = "auto")]
    device: String,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
    /// Export the student (the model file keel fit --export writes; keel-core loads it).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn student(spec: &str) -> Result<StudentSpec> {
    let bad = |why: &str| Error::invalid("--student", spec, why);
    let widths = spec
        .strip_prefix("mlp:")
        .ok_or_else(|| bad("expected mlp:W1,W2,… (or a CNN with --layers)"))?;
    let hidden = widths
        .split(',')
        .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("expected positive widths separated by commas (mlp:64,64)"))?;
    Ok(StudentSpec::Mlp {
        hidden,
        activation: keel::nn::Activation::Relu,
    })
}

/// Runs `keel distill`.
pub fn run(a: &DistillArgs) -> Result<()> {
    if let Some(p) = &a.export {
        check_writable("--export", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let image_shape = a
        .image_shape
        .as_deref()
        .map(|s| {
            keel::images::ImageShape::parse(s)
                .map_err(|e| Error::invalid("--image-shape", s, e.to_string()))
        })
        .transpose()?;
    let student = match &a.layers {
        Some(layers) => {
            let Some(shape) = image_shape else {
                return Err(Error::invalid(
                    "--image-shape",
                    "(not given)",
                    "a CNN student (--layers) needs the images' CxHxW",
                ));
            };
            // The output width is checked again against the data's classes.
            let spec =
                super::values::cnn_layers(layers, [shape.channels, shape.height, shape.width], 2)?;
            if a.export.is_some() {
                keel::cnn::exportable("--layers", &spec)?;
            }
            StudentSpec::Cnn { layers: spec }
        }
        None => student(&a.student)?,
    };
    let cfg = DistillConfig {
        teachers: a.teacher.clone(),
        data: a.data.clone(),
        target: a.target.clone(),
        image_shape,
        student,
        loss: match a.loss {
            LossArg::FwdCe => Loss::FwdCe,
            LossArg::Kl => Loss::Kl,
            LossArg::SymKl => Loss::SymKl,
            LossArg::Brier => Loss::Brier,
            LossArg::HardCe => Loss::HardCe,
            LossArg::RevCe => Loss::RevCe,
            LossArg::Cvx => Loss::Cvx,
        },
        temperature: a.temperature,
        alpha: a.alpha,
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        seed: a.seed,
        init: match a.init {
            InitArg::Random => StudentInit::Random,
            InitArg::Interpolate => StudentInit::Interpolate { rho: a.rho },
        },
        augment: match a.augment {
            AugmentArg::None => Augment::None,
            AugmentArg::Shift => Augment::Shift,
            AugmentArg::Mixup => Augment::Mixup {
                alpha: a.mixup_alpha,
            },
        },
        synthetic: a.synthetic.clone().map(|p| (p, a.synthetic_ratio)),
        test_data: a.test_data.clone(),
        test_fraction: a.test_fraction,
        split_seed: a.split_seed,
        dtype: a.dtype.into(),
        device,
        checkpoint,
    };
    if matches!(a.init, InitArg::Random) && a.rho != 1.0 {
        return Err(Error::invalid(
            "--rho",
            a.rho,
            "applies to --init interpolate",
        ));
    }
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(!a.json, cfg.epochs, "keel distill".into());
    let out = distill(&cfg, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if let Some(p) = &a.export {
        outputs.bytes(p, &out.student.export_bytes()?)?;
    }
    outputs.commit()?;
    let r = &out.report;
    if a.json {
        return super::report::json(r);
    }
    println!(
        "distilled {} ({} member network{}) into {} parameters: {} epochs, loss {} T {} α {}, init {}{}, augment {}, {:.2} s; rows train/test {}/{}",
        r.teacher.kinds.join(" + "),
        r.teacher.members,
        if r.teacher.members == 1 { "" } else { "s" },
        r.parameters,
        r.epochs,
        r.loss,
        r.temperature,
        r.alpha,
        r.init,
        r.rho.map_or(String::new(), |p| format!(" ρ {p}")),
        r.augment,
        r.train_seconds,
        r.rows[0],
        r.rows[1]
    );
    println!(
        "  fidelity: test agreement {:.4} KL {:.4}; stream agreement {:.4} KL {:.4}",
        r.test_agreement, r.test_kl, r.stream_agreement, r.stream_kl
    );
    println!(
        "  student: test accuracy {:.4} NLL {:.4} ECE (10 bins) {:.4}",
        r.test_accuracy, r.test_nll, r.ece
    );
    println!(
        "  teacher: test accuracy {:.4} NLL {:.4} ECE (10 bins) {:.4}",
        r.teacher.test_accuracy, r.teacher.test_nll, r.teacher.ece
    );
    if let Some(p) = &a.export {
        println!("  model: {}", p.display());
    }
    Ok(())
}
