//! `keel fit`: an MLP trained on a CSV table, exported for the core.

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
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// Target column.
    #[arg(long)]
    target: String,
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
    let (device, notice) = args
        .device
        .parse::<keel::backend::DeviceRequest>()?
        .resolve()?;
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
        target: args.target.clone(),
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
