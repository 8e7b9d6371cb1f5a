//! `keel fit`: supervised training of an MLP on a CSV table — classification with
//! cross-entropy, regression with MSE or a Gaussian likelihood with a learned variance head —
//! with a seeded split, input (and target) standardisation from training statistics, early
//! stopping on a validation split, and export to the file `keel-core` loads.

use std::path::PathBuf;
use std::time::Instant;

use keel_core::random::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::autodiff::no_grad;
use crate::backend::DType;
use crate::data::{column_stats, permutation, read_csv, standardize, Dataset, Targets};
use crate::error::{Error, Result};
use crate::export::{MlpConfig, OutputKind, Standardization};
use crate::init::Init;
use crate::limits;
use crate::metrics;
use crate::nn::{Activation, Mlp};
use crate::optim::{Optimizer, OptimizerKind, Schedule};
use crate::params::Params;
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;
use crate::train;

/// Classification or regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Cross-entropy over classes.
    Classify,
    /// Real-valued target.
    Regress,
}

/// Regression loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegressionLoss {
    /// Mean squared error.
    Mse,
    /// Gaussian negative log-likelihood with a learned per-input standard deviation.
    Gaussian,
}

/// Everything `keel fit` needs.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// CSV file.
    pub data: PathBuf,
    /// Target column.
    pub target: String,
    /// Task.
    pub task: Task,
    /// Regression loss.
    pub loss: RegressionLoss,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Maximum epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule over epochs.
    pub schedule: Schedule,
    /// Gradient-norm clipping.
    pub clip: Option<f64>,
    /// Seed for the split, initialisation and batch order.
    pub seed: u64,
    /// Fraction of rows held out for testing.
    pub test_fraction: f64,
    /// Fraction of the remaining rows used for validation (early stopping).
    pub val_fraction: f64,
    /// Epochs without validation improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// Element type of training.
    pub dtype: DType,
    /// Where to train.
    pub device: crate::backend::Device,
}

/// One epoch of the learning curves.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EpochStats {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
}

/// The result of `keel fit` (the `--json` output).
#[derive(Clone, Debug, Serialize)]
pub struct FitReport {
    /// Task.
    pub task: Task,
    /// Epochs run.
    pub epochs: usize,
    /// Epochs asked for (`epochs` is fewer when early stopping ended the run).
    pub max_epochs: usize,
    /// Epoch whose parameters were kept (best validation loss).
    pub best_epoch: usize,
    /// Wall-clock training time.
    pub train_seconds: f64,
    /// Test accuracy (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Test negative log-likelihood (classification; Gaussian regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_nll: Option<f64>,
    /// Test RMSE in target units (regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_rmse: Option<f64>,
    /// Expected calibration error, 15 bins (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Rows used for training, validation and testing.
    pub rows: [usize; 3],
    /// Trainable scalars.
    pub parameters: usize,
    /// Learning curves.
    #[serde(skip)]
    pub history: Vec<EpochStats>,
}

/// A trained model with everything needed to export or evaluate it.
pub struct Fitted {
    /// The network.
    pub mlp: Mlp,
    /// Its parameters.
    pub params: Params,
    /// Its exported config.
    pub config: MlpConfig,
    /// Standardisation statistics.
    pub stats: Standardization,
    /// The report.
    pub report: FitReport,
    /// Test rows (raw features) and their row indices in the file order, for checks.
    pub test: Dataset,
}

impl FitConfig {
    fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) {
            return Err(Error::invalid(
                "hidden",
                format!("{:?}", self.hidden),
                "hidden sizes must be positive",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        if !(self.lr > 0.0) || !self.lr.is_finite() {
            return Err(Error::invalid("lr", self.lr, "must be positive and finite"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(Error::invalid(
                "test_fraction",
                self.test_fraction,
                "must be in (0, 1)",
            ));
        }
        if !(self.val_fraction >= 0.0 && self.val_fraction < 1.0) {
            return Err(Error::invalid(
                "val_fraction",
                self.val_fraction,
                "must be in [0, 1)",
            ));
        }
        if let Some(c) = self.clip {
            if !(c > 0.0) {
                return Err(Error::invalid("clip", c, "must be positive"));
            }
        }
        Ok(())
    }
}

fn batch_tensor(
    x: &[f64],
    cols: usize,
    idx: &[usize],
    dtype: DType,
    device: crate::backend::Device,
) -> Result<Tensor> {
    let mut v = Vec::with_capacity(idx.len() * cols);
    for &i in idx {
        v.extend_from_slice(&x[i * cols..(i + 1) * cols]);
    }
    Ok(Tensor::from_f64s(&v, &[idx.len(), cols], dtype)?.to_device(device)?)
}

/// The prepared data of one split: standardised inputs and training-space targets.
struct Split {
    x: Vec<f64>,
    labels: Vec<usize>,
    y: Vec<f64>,
    rows: usize,
}

fn prepare(d: &Dataset, stats: &Standardization) -> Split {
    let x = match &stats.input {
        Some((m, s)) => standardize(&d.x, m, s),
        None => d.x.clone(),
    };
    let (labels, y) = match &d.y {
        Targets::Classes { labels, .. } => (labels.clone(), vec![]),
        Targets::Values(v) => (
            vec![],
            match &stats.target {
                Some((m, s)) => v.iter().map(|y| (y - m[0]) / s[0]).collect(),
                None => v.clone(),
            },
        ),
    };
    Split {
        x,
        labels,
        y,
        rows: d.rows(),
    }
}

/// Loss of a batch (training space) and, for evaluation, the network outputs.
fn batch_loss(
    cfg: &FitConfig,
    mlp: &Mlp,
    params: &Params,
    split: &Split,
    idx: &[usize],
    cols: usize,
) -> Result<(Tensor, Tensor)> {
    let xb = batch_tensor(&split.x, cols, idx, cfg.dtype, cfg.device)?;
    let out = mlp.forward(params, &xb)?;
    let loss = match cfg.task {
        Task::Classify => {
            let lb: Vec<usize> = idx.iter().map(|&i| split.labels[i]).collect();
            out.cross_entropy(&lb)?
        }
        Task::Regress => {
            let yb = Tensor::from_f64s(
                &idx.iter().map(|&i| split.y[i]).collect::<Vec<_>>(),
                &[idx.len(), 1],
                cfg.dtype,
            )?
            .to_device(cfg.device)?;
            match cfg.loss {
                RegressionLoss::Mse => out.mse(&yb)?,
                RegressionLoss::Gaussian => {
                    let mean = out.narrow(1, 0, 1)?;
                    let sigma = out.narrow(1, 1, 1)?.softplus()?.add_scalar(1e-6)?;
                    mean.gaussian_nll(&sigma.square()?, &yb)?
                }
            }
        }
    };
    Ok((loss, out))
}

/// Trains per `cfg`.
///
/// # Errors
/// Data errors ([`Error::Malformed`], [`Error::InvalidInput`]) before any training; engine
/// errors otherwise.
pub fn fit(cfg: &FitConfig, progress: &mut Observer) -> Result<Fitted> {
    cfg.validate()?;
    let data = read_csv(&cfg.data, &cfg.target, cfg.task == Task::Classify)?;
    let n = data.rows();
    let cols = data.cols();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let order = permutation(n, &mut rng);
    let n_test = ((n as f64) * cfg.test_fraction).round() as usize;
    let n_val = (((n - n_test) as f64) * cfg.val_fraction).round() as usize;
    let n_train = n - n_test - n_val;
    if n_test == 0 || n_train == 0 {
        return Err(Error::invalid(
            "test_fraction",
            cfg.test_fraction,
            format!("leaves {n_train} training and {n_test} test rows of {n}"),
        ));
    }
    let (test_idx, rest) = order.split_at(n_test);
    let (val_idx, train_idx) = rest.split_at(n_val);
    let (train, val, test) = (
        data.subset(train_idx),
        data.subset(val_idx),
        data.subset(test_idx),
    );

    let (mean, std) = column_stats(&train.x, cols);
    let mut stats = Standardization {
        input: Some((mean, std)),
        target: None,
    };
    let (out_dim, output, classes) = match &data.y {
        Targets::Classes { classes, .. } => {
            (classes.len(), OutputKind::Logits, Some(classes.clone()))
        }
        Targets::Values(_) => {
            if let Targets::Values(v) = &train.y {
                let (m, s) = column_stats(v, 1);
                stats.target = Some((m, s));
            }
            match cfg.loss {
                RegressionLoss::Mse => (1, OutputKind::Regression, None),
                RegressionLoss::Gaussian => (2, OutputKind::Gaussian, None),
            }
        }
    };
    let (tr, va, te) = (
        prepare(&train, &stats),
        prepare(&val, &stats),
        prepare(&test, &stats),
    );

    let mut sizes = vec![cols];
    sizes.extend(&cfg.hidden);
    sizes.push(out_dim);
    let hidden = || {
        cfg.hidden
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let parameters = limits::dense_parameters(&sizes);
    limits::memory(
        "hidden",
        hidden(),
        "training the network",
        limits::training_bytes(
            parameters,
            sizes.iter().map(|&w| w as u128).sum(),
            cfg.batch_size.min(n_train) as u128,
            cfg.dtype.size() as u128,
        ),
    )?;
    limits::work(
        "epochs",
        cfg.epochs,
        (cfg.epochs as u128)
            .saturating_mul(n_train as u128)
            .saturating_mul(parameters.saturating_mul(3)),
        "multiply-adds",
    )?;
    let mut params = Params::new();
    let mlp = Mlp::new(
        &mut params,
        &sizes,
        cfg.activation,
        Init::PyTorchDefault,
        cfg.dtype,
        &mut rng,
    )?;
    // Initialised on the CPU from the seeded generator (the same numbers on every device),
    // then moved.
    let mut params = params.to_device(cfg.device)?;
    let mut opt = Optimizer::new(cfg.optimizer, &params)?;

    let start = Instant::now();
    let mut history = Vec::new();
    let mut best = (f64::INFINITY, 0usize, params.clone());
    let mut since_best = 0;
    let all_val: Vec<usize> = (0..va.rows).collect();
    for epoch in 0..cfg.epochs {
        let lr = cfg.schedule.lr(cfg.lr, epoch);
        let perm = permutation(tr.rows, &mut rng);
        let mut total = 0.0;
        let mut batches = 0;
        for idx in perm.chunks(cfg.batch_size) {
            let vars = params.variables();
            let (loss, _) = batch_loss(cfg, &mlp, &vars, &tr, idx, cols)?;
            let l = train::step(&loss, &vars, &mut params, &mut opt, lr, cfg.clip)?;
            if !l.is_finite() {
                return Err(train::diverged(l, epoch, cfg.lr, ""));
            }
            total += l;
            batches += 1;
        }
        let train_loss = total / batches.max(1) as f64;
        let (val_loss, val_accuracy) = if va.rows > 0 {
            no_grad(|| -> Result<(f64, Option<f64>)> {
                let (loss, out) = batch_loss(cfg, &mlp, &params, &va, &all_val, cols)?;
                let acc = if cfg.task == Task::Classify {
                    let probs = out.softmax(-1)?.to_vec_f64()?;
                    Some(metrics::accuracy(&probs, out_dim, &va.labels))
                } else {
                    None
                };
                Ok((loss.item()?, acc))
            })?
        } else {
            (train_loss, None)
        };
        history.push(EpochStats {
            epoch: epoch + 1,
            train_loss,
            val_loss,
            val_accuracy,
            lr,
        });
        let values = [
            ("loss", train_loss),
            ("val", val_loss),
            ("acc", val_accuracy.unwrap_or(f64::NAN)),
        ];
        progress(&Tick {
            done: epoch + 1,
            total: cfg.epochs,
            values: &values[..if val_accuracy.is_some() { 3 } else { 2 }],
        });
        if val_loss < best.0 {
            best = (val_loss, epoch + 1, params.clone());
            since_best = 0;
        } else {
            since_best += 1;
            if cfg.patience > 0 && since_best >= cfg.patience {
                break;
            }
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let (_, best_epoch, best_params) = best;
    let params = best_params;

    // Test metrics in the original units.
    let all_test: Vec<usize> = (0..te.rows).collect();
    let out = no_grad(|| batch_loss(cfg, &mlp, &params, &te, &all_test, cols).map(|(_, o)| o))?;
    let mut report = FitReport {
        task: cfg.task,
        epochs: history.len(),
        max_epochs: cfg.epochs,
        best_epoch,
        train_seconds,
        test_accuracy: None,
        test_nll: None,
        test_rmse: None,
        ece: None,
        rows: [n_train, n_val, n_test],
        parameters: params.numel(),
        history,
    };
    match cfg.task {
        Task::Classify => {
            let probs = out.softmax(-1)?.to_vec_f64()?;
            report.test_accuracy = Some(metrics::accuracy(&probs, out_dim, &te.labels));
            report.test_nll = Some(metrics::nll(&probs, out_dim, &te.labels));
            report.ece = Some(metrics::ece(&probs, out_dim, &te.labels, 15));
        }
        Task::Regress => {
            let (tm, ts) = stats
                .target
                .as_ref()
                .map(|(m, s)| (m[0], s[0]))
                .unwrap_or((0.0, 1.0));
            let o = out.to_vec_f64()?;
            let truth: Vec<f64> = te.y.iter().map(|y| y * ts + tm).collect();
            let k = out.dims()[1];
            let mean: Vec<f64> = o.chunks(k).map(|r| r[0] * ts + tm).collect();
            report.test_rmse = Some(metrics::rmse(&mean, &truth));
            if cfg.loss == RegressionLoss::Gaussian {
                let sd: Vec<f64> = o.chunks(k).map(|r| (softplus(r[1]) + 1e-6) * ts).collect();
                report.test_nll = Some(metrics::gaussian_nll(&mean, &sd, &truth));
            }
        }
    }
    let config = MlpConfig {
        sizes: mlp.sizes(),
        activation: cfg.activation.name().to_string(),
        output,
        input_standardization: true,
        target_standardization: stats.target.is_some(),
        classes,
        features: data.features.clone(),
    };
    Ok(Fitted {
        mlp,
        params,
        config,
        stats,
        report,
        test,
    })
}

impl Fitted {
    /// Network outputs (logits, or standardised regression heads) for raw feature rows
    /// `[rows, features]`, standardised with the training statistics, in `dtype`.
    ///
    /// # Errors
    /// An engine shape error ([`keel_engine::Error::ShapeMismatch`]) if the row length is not the
    /// feature count.
    pub fn predict(&self, x: &[f64], dtype: DType) -> Result<Tensor> {
        let cols = self.config.sizes[0];
        let xs = match &self.stats.input {
            Some((m, s)) => standardize(x, m, s),
            None => x.to_vec(),
        };
        let device = self
            .params
            .values()
            .first()
            .map_or(crate::backend::Device::Cpu, |p| p.device());
        let t = Tensor::from_f64s(&xs, &[x.len() / cols.max(1), cols], dtype)?.to_device(device)?;
        Ok(no_grad(|| self.mlp.forward(&self.params, &t))?)
    }
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}
