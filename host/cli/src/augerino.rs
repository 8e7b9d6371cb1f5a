//! `keel augerino …`: learned invariances (Augerino) on the paper's generated image sets, beside
//! a plain CNN and a CNN trained with full-circle rotation augmentation.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use keel::cnn::{
    evaluate, train, Augmentation, ImageModel, ImageTrainConfig, WIDTH_NAMES, W_INIT_SMALL,
};
use keel::error::{Error, Result};
use keel::images::datasets::{self, MarioIggy, RotatedDigits, RotationRegression};
use keel::images::{ImageSet, ImageShape};
use keel::output::{check_plot, check_writable, Outputs};

use super::values::DtypeArg;

#[derive(Subcommand)]
pub enum AugerinoCommand {
    /// Train a CNN with learned augmentation widths (or a baseline) on a generated image set and
    /// report its test accuracy (or MSE) and the widths it learned.
    Train(TrainArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    /// The 8×8 digits, each rotated once by U(−π, π) (upsampled first).
    RotatedDigits,
    /// Two sprites × {upright, upside down} (the paper's Mario-and-Iggy construction).
    MarioIggy,
    /// Sprites rotated by U(−π/2, π/2) with the angle as the target (not invariant).
    RotationRegression,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    /// A CNN with learned augmentation widths.
    Augerino,
    /// The same CNN without augmentation.
    Cnn,
    /// The same CNN trained with fixed full-circle rotation augmentation.
    CnnRotate,
}

super::values::display_as_typed!(DatasetArg, ModelArg);

#[derive(Args)]
pub struct TrainArgs {
    /// The data set (generated, seeded).
    #[arg(long, value_enum)]
    dataset: DatasetArg,
    /// augerino, cnn or cnn-rotate.
    #[arg(long, value_enum, default_value = "augerino")]
    model: ModelArg,
    /// Epochs.
    #[arg(long, default_value_t = 20, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Transformed copies averaged at test time (Augerino).
    #[arg(long, default_value_t = 4, value_parser = super::values::at_least_one)]
    ncopies: usize,
    /// λ of the width regulariser −λ‖θ‖₂ (default: the reference's for the data set — 0.1
    /// rotated digits, 0.05 Mario and Iggy, 0.01 rotation regression).
    #[arg(long, allow_hyphen_values = true)]
    reg: Option<f64>,
    /// Initial pre-softplus rotation width w (θ = softplus(w); default: the reference's — 1
    /// rotated digits, −1 Mario and Iggy, 0 rotation regression). The other widths start at −5.
    #[arg(long, allow_hyphen_values = true)]
    rotation_init: Option<f64>,
    /// The CNN's layers (see `keel fit --help`; the output layer is added).
    #[arg(long, default_value = "c32,c32,m2,c64,m2,c64,g")]
    layers: String,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// L2 weight decay on the network (never on the widths).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Minibatch size (default: 128 as the reference's sprite and face runs; 32 on the
    /// rotated digits, whose 1,347 training images would otherwise give 11 steps an epoch).
    #[arg(long, value_parser = super::values::at_least_one)]
    batch_size: Option<usize>,
    /// Training images (default: the data set's — all digits not held out; 10,000 sprites).
    #[arg(long, value_parser = super::values::at_least_one)]
    n_train: Option<usize>,
    /// Test images (default: the data set's).
    #[arg(long, value_parser = super::values::at_least_one)]
    n_test: Option<usize>,
    /// The digits the digit sets are made from (a CSV of 8×8 images with a `label` column).
    #[arg(long, default_value = "fixtures/data/digits.csv")]
    digits: PathBuf,
    /// Seed of the data, initialisation, batches and augmentation draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where to train: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Plot the widths over training and a grid of transformed samples (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Export the trained network (with its widths) for keel-core (`keel.kind = "cnn"`).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    checkpoint: super::checkpoint::CheckpointArgs,
}

pub fn run(cmd: &AugerinoCommand) -> Result<()> {
    match cmd {
        AugerinoCommand::Train(a) => train_cmd(a),
    }
}

/// The reference's λ and initial rotation width per data set (experiments/rotmnist,
/// experiments/mario-iggy, experiments/olivetti).
fn defaults(d: DatasetArg) -> (f64, f64) {
    match d {
        DatasetArg::RotatedDigits => (0.1, 1.0),
        DatasetArg::MarioIggy => (0.05, -1.0),
        DatasetArg::RotationRegression => (0.01, 0.0),
    }
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    if let Some(p) = &a.export {
        check_writable("--export", p)?;
    }
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    // Every set is 28×28 grey (8×8 sources upsampled ×2 onto a canvas that rotation never clips).
    let spec = super::values::cnn_layers(&a.layers, [1, 28, 28], 4)?;
    if a.export.is_some() {
        keel::cnn::exportable("--layers", &spec)?;
    }
    let (reg_default, rot_default) = defaults(a.dataset);
    let reg = a.reg.unwrap_or(reg_default);
    if !(reg >= 0.0 && reg.is_finite()) {
        return Err(Error::invalid("--reg", reg, "must be ≥ 0 and finite"));
    }
    let rot = a.rotation_init.unwrap_or(rot_default);
    if !rot.is_finite() {
        return Err(Error::invalid("--rotation-init", rot, "must be finite"));
    }
    for (flag, v) in [("--lr", a.lr), ("--weight-decay", a.weight_decay)] {
        if !(v >= 0.0 && v.is_finite()) || (flag == "--lr" && v == 0.0) {
            return Err(Error::invalid(flag, v, "must be positive and finite"));
        }
    }
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let (train_set, test_set) = generate(a)?;
    let augmentation = match a.model {
        ModelArg::Cnn => Augmentation::None,
        ModelArg::CnnRotate => {
            Augmentation::Fixed([0.0, 0.0, 2.0 * std::f64::consts::PI, 0.0, 0.0, 0.0])
        }
        ModelArg::Augerino => {
            let mut init = [W_INIT_SMALL; 6];
            init[2] = rot;
            Augmentation::Learned {
                init,
                reg,
                safe: true,
            }
        }
    };
    let cfg = ImageTrainConfig {
        spec,
        augmentation,
        epochs: a.epochs,
        batch_size: a.batch_size.unwrap_or(match a.dataset {
            DatasetArg::RotatedDigits => 32,
            _ => 128,
        }),
        lr: a.lr,
        weight_decay: a.weight_decay,
        copies: a.ncopies,
        seed: a.seed,
        dtype: match a.dtype {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        },
        device,
        checkpoint,
    };
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(!a.json, cfg.epochs, format!("{} {}", a.model, a.dataset));
    let model = train(&cfg, &train_set, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    if model.history.len() < a.epochs {
        let done = model.history.len();
        if !a.json {
            println!("stopped after epoch {done} of {} (--stop-after; continue with --resume); the numbers below are this model's so far", a.epochs);
        }
    }
    let metrics = evaluate(&model, &test_set, a.ncopies, a.seed ^ 0x7E57)?;
    let widths = model.widths()?;
    let mut outputs = Outputs::new();
    if let Some(p) = &a.export {
        outputs.bytes(p, &keel::cnn::export_bytes(&model, &train_set, a.ncopies)?)?;
    }
    if let Some(p) = &a.plot {
        outputs.with(p, |tmp| plot(tmp, &model, &train_set, a))?;
    }
    outputs.commit()?;
    let named: serde_json::Map<String, serde_json::Value> = WIDTH_NAMES
        .iter()
        .zip(widths)
        .map(|(n, w)| (n.to_string(), w.into()))
        .collect();
    if a.json {
        let mut v = serde_json::json!({
            "dataset": a.dataset.to_string(), "model": a.model.to_string(),
            "widths": named, "train_seconds": model.train_seconds, "epochs": a.epochs,
            "n_train": train_set.len(), "n_test": test_set.len(), "ncopies": a.ncopies,
            "reg": reg, "seed": a.seed, "parameters": model.params.numel(),
            "epochs_run": model.history.len(),
            "history": model.history,
        });
        if let (Some(o), serde_json::Value::Object(m)) = (
            v.as_object_mut(),
            serde_json::to_value(&metrics).unwrap_or_default(),
        ) {
            o.extend(m);
        }
        return super::report::json(&v);
    }
    println!(
        "{} on {} ({} train / {} test images, {} parameters, {:.1} s)",
        a.model,
        a.dataset,
        train_set.len(),
        test_set.len(),
        model.params.numel(),
        model.train_seconds
    );
    if let Some(acc) = metrics.test_accuracy {
        println!(
            "  test accuracy {acc:.4}  NLL {:.4}  ECE {:.4}",
            metrics.test_nll.unwrap_or(f64::NAN),
            metrics.ece.unwrap_or(f64::NAN)
        );
    }
    if let Some(mse) = metrics.test_mse {
        println!("  test MSE {mse:.4}");
    }
    println!(
        "  widths θ: {}",
        WIDTH_NAMES
            .iter()
            .zip(widths)
            .map(|(n, w)| format!("{n} {w:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (what, p) in [("model", &a.export), ("plot", &a.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}

/// The data set's train and test images (`--n-train`/`--n-test` keep the first ones of a set
/// made from the digits, and size the sprite sets).
fn generate(a: &TrainArgs) -> Result<(ImageSet, ImageSet)> {
    let digits = || {
        keel::images::csv::read_csv_images(&a.digits, "label", true, ImageShape::new(1, 8, 8)?)
            .map_err(|e| Error::invalid("--digits", a.digits.display(), e.to_string()))
    };
    let split = match a.dataset {
        DatasetArg::RotatedDigits => datasets::rotated_digits(
            &digits()?,
            &RotatedDigits {
                seed: a.seed,
                ..RotatedDigits::default()
            },
        )?,
        DatasetArg::MarioIggy => {
            let d = MarioIggy::default();
            datasets::mario_iggy(&MarioIggy {
                seed: d.seed.wrapping_add(a.seed),
                train: a.n_train.unwrap_or(d.train),
                test: a.n_test.unwrap_or(d.test),
                ..d
            })?
        }
        DatasetArg::RotationRegression => datasets::rotation_regression(
            &digits()?,
            &RotationRegression {
                seed: a.seed,
                ..RotationRegression::default()
            },
        )?,
    };
    let keep = |set: ImageSet, n: Option<usize>| match n {
        Some(n) if n < set.len() => set.subset(&(0..n).collect::<Vec<_>>()),
        _ => set,
    };
    Ok((
        keep(split.train.images, a.n_train),
        keep(split.test.images, a.n_test),
    ))
}

/// Widths over the epochs and 24 transformed training images.
fn plot(path: &std::path::Path, model: &ImageModel, set: &ImageSet, a: &TrainArgs) -> Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = WIDTH_NAMES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            (
                name.to_string(),
                model
                    .history
                    .iter()
                    .filter_map(|e| e.widths.map(|w| (e.epoch as f64, w[k])))
                    .collect(),
            )
        })
        .filter(|(_, pts): &(String, Vec<(f64, f64)>)| !pts.is_empty())
        .collect();
    let series = if series.is_empty() {
        // Baselines: their fixed widths, flat.
        let w = model.widths()?;
        WIDTH_NAMES
            .iter()
            .enumerate()
            .map(|(k, n)| (n.to_string(), vec![(1.0, w[k]), (a.epochs as f64, w[k])]))
            .collect()
    } else {
        series
    };
    let samples = keel::cnn::transformed_samples(model, set, 24, a.seed)?;
    let (h, w) = (set.shape.height, set.shape.width);
    keel::plot::plot_widths_and_samples(
        path,
        &series,
        &samples,
        [h, w],
        6,
        &format!("{} on {}: widths", a.model, a.dataset),
    )
}
