//! `keel fit`: an MLP trained on a CSV table, or a CNN on images, exported for the core.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use keel::error::{Error, Result};
use keel::output::{check_plot, check_writable, Outputs};

use super::values::DtypeArg;

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Classify,
    Regress,
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Mse,
    Gaussian,
}

#[derive(Clone, Copy, ValueEnum)]
enum ActivationArg {
    Relu,
    Tanh,
    Sigmoid,
    Silu,
    Softplus,
    Identity,
}

impl From<ActivationArg> for keel::nn::Activation {
    fn from(a: ActivationArg) -> Self {
        use keel::nn::Activation;
        match a {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sigmoid => Activation::Sigmoid,
            ActivationArg::Silu => Activation::Silu,
            ActivationArg::Softplus => Activation::Softplus,
            ActivationArg::Identity => Activation::Identity,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

#[derive(Args)]
pub struct FitArgs {
    /// CSV file with a header row; with --layers also an IDX image file (MNIST's
    /// `*-images-idx3-ubyte`, with --labels) or a CIFAR-10 binary batch (`*.bin`).
    #[arg(long)]
    data: PathBuf,
    /// Target column (CSV).
    #[arg(long)]
    target: Option<String>,
    /// Train a convolutional network with these layers instead of an MLP, e.g.
    /// `c32,c32,m2,c64,g`: cN a 3×3 convolution to N channels with batch norm and ReLU (cNk5
    /// 5×5, cNs2 stride 2, cNnobn no batch norm, cNfrn filter response normalisation and swish
    /// instead — not exportable), mK / aK max / average pooling K×K, g global
    /// mean, f flatten, xP dropout P, dN dense N with ReLU; the output layer is added. Adam with
    /// --lr and --weight-decay, every epoch run (no early stopping).
    #[arg(long)]
    layers: Option<String>,
    /// The shape of the images in a CSV's feature columns, CxHxW (e.g. 1x8x8 for the digits).
    #[arg(long)]
    image_shape: Option<String>,
    /// IDX label file (`*-labels-idx1-ubyte`) for IDX images.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// classify (cross-entropy) or regress.
    #[arg(long, value_enum)]
    task: TaskArg,
    /// Regression loss: mse, or gaussian (NLL with a learned variance head).
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossArg,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128,128")]
    hidden: String,
    /// Hidden activation.
    #[arg(long, value_enum, default_value = "relu")]
    activation: ActivationArg,
    /// Maximum epochs (early stopping, on by default, may end the run sooner: --patience).
    #[arg(long, default_value_t = 30, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 64, value_parser = super::values::at_least_one)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    /// Weight decay (L2 for adam/sgd, decoupled for adamw).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    weight_decay: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Learning-rate schedule over epochs.
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_hyphen_values = true)]
    clip: Option<f64>,
    /// Seed for the split, initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of rows held out for testing.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    test_fraction: f64,
    /// Fraction of the remaining rows held out for validation and early stopping.
    #[arg(long, default_value_t = 0.1, allow_hyphen_values = true)]
    val_fraction: f64,
    /// Early stopping (on by default): stop after this many epochs without validation
    /// improvement and keep the best epoch's parameters (0: run every epoch).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Training precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where to train: auto (a GPU if usable, else the CPU with a notice), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Export the trained model (safetensors, loadable by keel-core).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Plot the learning curves.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `keel fit`.
pub fn run(args: &FitArgs) -> Result<()> {
    use keel::fit::{fit, FitConfig, RegressionLoss, Task};
    use keel::optim::{OptimizerKind, Schedule};
    if let Some(p) = &args.export {
        check_writable("--export", p)?;
    }
    if let Some(p) = &args.plot {
        check_plot("--plot", p)?;
    }
    let (device, notice) = crate::ranks::device(&args.device)?.resolve()?;
    if let Some(layers) = &args.layers {
        return run_cnn(args, layers, device, notice);
    }
    for (flag, set) in [
        ("--image-shape", args.image_shape.is_some()),
        ("--labels", args.labels.is_some()),
    ] {
        if set {
            return Err(Error::invalid(
                flag,
                "set",
                "applies to image data: give --layers for a CNN",
            ));
        }
    }
    let Some(target) = args.target.clone() else {
        return Err(Error::invalid(
            "--target",
            "(not given)",
            "a CSV table needs its target column",
        ));
    };
    let hidden = args
        .hidden
        .split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                Error::invalid(
                    "--hidden",
                    &args.hidden,
                    format!("'{s}' is not a whole number"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if !(args.weight_decay >= 0.0 && args.weight_decay.is_finite()) {
        return Err(Error::invalid(
            "--weight-decay",
            args.weight_decay,
            "must be ≥ 0 and finite",
        ));
    }
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: args.weight_decay,
        },
        OptimizerArg::Adamw => OptimizerKind::adamw(args.weight_decay),
        OptimizerArg::Sgd => OptimizerKind::Sgd {
            momentum: args.momentum,
            nesterov: false,
            weight_decay: args.weight_decay,
        },
    };
    let schedule = match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Cosine => Schedule::Cosine {
            total: args.epochs,
            min_lr: 0.0,
        },
        ScheduleArg::Step => Schedule::Step {
            step_size: (args.epochs / 3).max(1),
            gamma: 0.1,
        },
    };
    let cfg = FitConfig {
        data: args.data.clone(),
        target,
        task: match args.task {
            TaskArg::Classify => Task::Classify,
            TaskArg::Regress => Task::Regress,
        },
        loss: match args.loss {
            LossArg::Mse => RegressionLoss::Mse,
            LossArg::Gaussian => RegressionLoss::Gaussian,
        },
        hidden,
        activation: args.activation.into(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        optimizer,
        schedule,
        clip: args.clip,
        seed: args.seed,
        test_fraction: args.test_fraction,
        val_fraction: args.val_fraction,
        patience: args.patience,
        dtype: match args.dtype {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        },
        device,
    };
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(!args.json, cfg.epochs, "keel fit".into());
    let fitted = fit(&cfg, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if let Some(p) = &args.export {
        outputs.bytes(
            p,
            &keel::export::mlp_bytes(&fitted.mlp, &fitted.params, &fitted.config, &fitted.stats)?,
        )?;
    }
    if let Some(p) = &args.plot {
        outputs.with(p, |tmp| {
            keel::plot::plot_learning_curves(
                tmp,
                &fitted.report.history,
                &format!("keel fit {}", args.data.display()),
            )
        })?;
    }
    outputs.commit()?;
    let r = &fitted.report;
    if args.json {
        return super::report::json(r);
    }
    println!(
        "{} on {}: {} of {} epochs{} (best {}), {:.2} s; {} parameters; rows train/val/test {}/{}/{}",
        if cfg.task == Task::Classify {
            "classification"
        } else {
            "regression"
        },
        args.data.display(),
        r.epochs,
        r.max_epochs,
        if r.epochs < r.max_epochs {
            format!(
                ", early stopping after {} without improvement (--patience)",
                args.patience
            )
        } else {
            String::new()
        },
        r.best_epoch,
        r.train_seconds,
        r.parameters,
        r.rows[0],
        r.rows[1],
        r.rows[2]
    );
    if let Some(a) = r.test_accuracy {
        println!("  test accuracy {a:.4}");
    }
    if let Some(v) = r.test_rmse {
        println!("  test RMSE {v:.4}");
    }
    if let Some(v) = r.test_nll {
        println!("  test NLL {v:.4}");
    }
    if let Some(v) = r.ece {
        println!("  test ECE (15 bins) {v:.4}");
    }
    for (what, p) in [("model", &args.export), ("plot", &args.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}

/// Reads the images `--data` names (see [`super::values::read_images`]).
fn read_images(args: &FitArgs, classify: bool) -> Result<keel::images::ImageSet> {
    super::values::read_images(
        &args.data,
        args.labels.as_deref(),
        args.image_shape.as_deref(),
        args.target.as_deref(),
        classify,
    )
}

/// `keel fit --layers …`: a CNN on images.
fn run_cnn(
    args: &FitArgs,
    layers: &str,
    device: keel::Device,
    notice: Option<String>,
) -> Result<()> {
    use keel::cnn::{evaluate, export_bytes, train, Augmentation, ImageTrainConfig};
    use keel_core::random::Xoshiro256PlusPlus;
    keel::nn::cnn::parse_spec(layers)
        .map_err(|e| Error::invalid("--layers", layers, e.to_string()))?;
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        return Err(Error::invalid(
            "--test-fraction",
            args.test_fraction,
            "must be in (0, 1)",
        ));
    }
    if !(args.weight_decay >= 0.0 && args.weight_decay.is_finite()) {
        return Err(Error::invalid(
            "--weight-decay",
            args.weight_decay,
            "must be ≥ 0 and finite",
        ));
    }
    let classify = matches!(args.task, TaskArg::Classify);
    let set = read_images(args, classify)?;
    let shape = [set.shape.channels, set.shape.height, set.shape.width];
    let spec = super::values::cnn_layers(layers, shape, set.classes())?;
    if args.export.is_some() {
        keel::cnn::exportable("--layers", &spec)?;
    }
    let n = set.len();
    let n_test = ((n as f64) * args.test_fraction).round() as usize;
    if n_test == 0 || n_test >= n {
        return Err(Error::invalid(
            "--test-fraction",
            args.test_fraction,
            format!(
                "leaves {} training and {n_test} test images of {n}",
                n - n_test.min(n)
            ),
        ));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(args.seed);
    let order = keel::data::permutation(n, &mut rng);
    let (test_idx, train_idx) = order.split_at(n_test);
    let (train_set, test_set) = (set.subset(train_idx), set.subset(test_idx));
    let cfg = ImageTrainConfig {
        spec,
        augmentation: Augmentation::None,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        weight_decay: args.weight_decay,
        copies: 1,
        seed: args.seed,
        dtype: match args.dtype {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        },
        device,
        checkpoint: Default::default(),
    };
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(!args.json, cfg.epochs, "keel fit (CNN)".into());
    let model = train(&cfg, &train_set, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    let metrics = evaluate(&model, &test_set, 1, args.seed)?;
    let mut outputs = Outputs::new();
    if let Some(p) = &args.export {
        outputs.bytes(p, &export_bytes(&model, &train_set, 1)?)?;
    }
    if let Some(p) = &args.plot {
        let loss: Vec<(f64, f64)> = model
            .history
            .iter()
            .map(|e| (e.epoch as f64, e.train_loss))
            .collect();
        let series = vec![("train loss".to_string(), loss)];
        outputs.with(p, |tmp| {
            keel::plot::plot_line_panels(
                tmp,
                &[(
                    &format!("keel fit (CNN) {}", args.data.display()),
                    "epoch",
                    "loss",
                    &series,
                )],
            )
        })?;
    }
    outputs.commit()?;
    let mut v = serde_json::json!({
        "task": if classify { "classify" } else { "regress" }, "model": "cnn", "layers": layers,
        "image_shape": set.shape.to_string(), "epochs": args.epochs,
        "train_seconds": model.train_seconds, "rows": [train_set.len(), 0, test_set.len()],
        "parameters": model.params.numel(),
    });
    if let (Some(o), Ok(serde_json::Value::Object(m))) =
        (v.as_object_mut(), serde_json::to_value(&metrics))
    {
        o.extend(m);
    }
    if args.json {
        return super::report::json(&v);
    }
    println!(
        "CNN ({layers}) on {} ({} images {}): {} epochs, {:.2} s; {} parameters; train/test {}/{}",
        args.data.display(),
        n,
        set.shape,
        args.epochs,
        model.train_seconds,
        model.params.numel(),
        train_set.len(),
        test_set.len()
    );
    if let Some(a) = metrics.test_accuracy {
        println!(
            "  test accuracy {a:.4}  NLL {:.4}  ECE (15 bins) {:.4}",
            metrics.test_nll.unwrap_or(f64::NAN),
            metrics.ece.unwrap_or(f64::NAN)
        );
    }
    if let Some(m) = metrics.test_mse {
        println!("  test MSE {m:.4}");
    }
    for (what, p) in [("model", &args.export), ("plot", &args.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}
