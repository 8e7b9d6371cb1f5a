//! Knowledge distillation and its fidelity, after Stanton, Izmailov, Kirichenko, Alemi &
//! Wilson, "Does Knowledge Distillation Really Work?" (NeurIPS 2021; reference code
//! samuelstanton/gnosis, `gnosis/distillation/classification.py`,
//! `gnosis/boilerplate/distillation_epoch.py`, `eval_epoch.py`).
//!
//! A student network is trained to match a frozen teacher — any classifier Keel writes
//! ([`teacher`]): a `keel fit` model, a `keel bayes` sample set (the posterior predictive
//! distilled into one network), a simplex ensemble, or several of them — on a distillation
//! stream ([`stream`]): the training rows, optionally shifted by a pixel or mixed up, plus
//! synthetic rows at a ratio; the teacher is evaluated on exactly the inputs the student sees,
//! every batch. The losses are the reference's ([`loss`]), the default being temperature
//! forward cross-entropy with the `T²` factor, `α = 0` (no true labels), `T = 4`.
//!
//! The student is optimised as the paper's image experiments: SGD with Nesterov momentum 0.9,
//! weight decay 1e-4, the learning rate annealed by a cosine to 1e-6 over the epochs, batches of
//! 128. The paper's optimisation experiment initialises the student between a random network
//! and the teacher, `θ = ρ·θ_random + (1 − ρ)·θ_teacher`, with the learning rate scaled to
//! `max(lr·ρ, 1e-6)` (`teacher.ckpt_init.type = final`, `loc_param = ρ`): at `ρ = 0` the student
//! starts as the teacher (and takes the teacher's input standardisation).
//!
//! Fidelity is top-1 agreement (a fraction, not the reference's percentage) and
//! `KL(teacher ‖ student)` at `T = 1`, the per-example mean (the reference averages per-batch
//! means), on the test rows and on the distillation stream; generalisation is the student's
//! test accuracy, NLL (the standard one: the reference's `test_nll` indexes a `B × B` matrix)
//! and 10-bin ECE (the reference's bins `(k/10 − 0.1, k/10]`), beside the teacher's own. The
//! stream figures are those of the final student on one fresh pass over the stream (its own
//! augmentation draws), not the running average of the last epoch.
//!
//! Not here: the reference's CKA between teacher and student representations, batch-norm
//! re-estimation after interpolation (interpolation needs a dense teacher, which has none),
//! random-label corruption of hard labels.

pub mod loss;
pub mod stream;
pub mod teacher;

use std::path::PathBuf;
use std::time::Instant;

use keel_core::random::Xoshiro256PlusPlus;
use serde::Serialize;

pub use loss::{log_mean_softmax, objective, soft_loss, Loss, LossInputs};
pub use stream::Augment;
pub use teacher::{DenseWeights, Teacher, TeacherFile};

use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::data::{column_stats, permutation, read_csv, standardize, Dataset, Targets};
use crate::error::{Error, Result};
use crate::export::{MlpConfig, OutputKind, Standardization};
use crate::images::ImageShape;
use crate::init::Init;
use crate::metrics;
use crate::nn::cnn::{Cnn, CnnState, LayerSpec, Mode};
use crate::nn::{Activation, Mlp};
use crate::optim::{Optimizer, OptimizerKind, Schedule};
use crate::params::{ParamId, Params};
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;

/// The smallest learning rate of the cosine schedule (the reference's `eta_min`).
pub const ETA_MIN: f64 = 1e-6;

/// The student's architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum StudentSpec {
    /// An MLP with these hidden widths.
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
        /// Hidden activation.
        activation: Activation,
    },
    /// A CNN on images of the configuration's `image_shape` (the output layer is added).
    Cnn {
        /// Hidden layers.
        layers: Vec<LayerSpec>,
    },
}

/// How the student starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StudentInit {
    /// A seeded random initialisation (PyTorch's default).
    Random,
    /// `ρ·random + (1 − ρ)·teacher`, the learning rate scaled to `max(lr·ρ, 1e-6)`.
    Interpolate {
        /// `ρ ∈ [0, 1]`.
        rho: f64,
    },
}

/// Everything `keel distill` needs.
#[derive(Clone, Debug)]
pub struct DistillConfig {
    /// Teacher files (their predictives averaged).
    pub teachers: Vec<PathBuf>,
    /// CSV file.
    pub data: PathBuf,
    /// Class column.
    pub target: String,
    /// The shape of the images in the feature columns (CNN students and shifts).
    pub image_shape: Option<ImageShape>,
    /// The student.
    pub student: StudentSpec,
    /// Soft loss.
    pub loss: Loss,
    /// Temperature of the real rows (synthetic rows use 1).
    pub temperature: f64,
    /// Weight of the true-label cross-entropy on real rows.
    pub alpha: f64,
    /// Epochs.
    pub epochs: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Real rows per batch.
    pub batch_size: usize,
    /// Seed of initialisation, batch order and augmentation draws.
    pub seed: u64,
    /// Initialisation.
    pub init: StudentInit,
    /// Augmentation of the real rows.
    pub augment: Augment,
    /// Synthetic rows (a CSV with the feature columns) and their share of each batch.
    pub synthetic: Option<(PathBuf, f64)>,
    /// A separate test file (same columns and classes): then every row of `data` trains and
    /// no split is drawn.
    pub test_data: Option<PathBuf>,
    /// Test fraction of the split (`None`: a sample-set teacher's, else 0.2).
    pub test_fraction: Option<f64>,
    /// Seed of the split (`None`: a sample-set teacher's, else `seed`).
    pub split_seed: Option<u64>,
    /// Element type of the student.
    pub dtype: DType,
    /// Where the student trains.
    pub device: Device,
    /// Checkpoints.
    pub checkpoint: crate::checkpoint::Options,
}

/// One epoch.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DistillEpoch {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean objective over the batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Agreement on the epoch's stream batches (the student as it was at each batch).
    pub stream_agreement: f64,
    /// KL(teacher ‖ student) at T = 1 on the epoch's stream batches.
    pub stream_kl: f64,
}

/// The teacher's own test metrics.
#[derive(Clone, Debug, Serialize)]
pub struct TeacherReport {
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Test NLL.
    pub test_nll: f64,
    /// 10-bin ECE.
    pub ece: f64,
    /// Member networks.
    pub members: usize,
    /// Each file's kind.
    pub kinds: Vec<String>,
}

/// The result (the `--json` output).
#[derive(Clone, Debug, Serialize)]
pub struct DistillReport {
    /// Top-1 agreement with the teacher on the test rows.
    pub test_agreement: f64,
    /// KL(teacher ‖ student) at T = 1 on the test rows, per-example mean.
    pub test_kl: f64,
    /// Agreement on one pass over the distillation stream.
    pub stream_agreement: f64,
    /// KL on that pass.
    pub stream_kl: f64,
    /// Student test accuracy.
    pub test_accuracy: f64,
    /// Student test NLL.
    pub test_nll: f64,
    /// Student 10-bin ECE.
    pub ece: f64,
    /// The teacher.
    pub teacher: TeacherReport,
    /// Loss name.
    pub loss: &'static str,
    /// Temperature.
    pub temperature: f64,
    /// α.
    pub alpha: f64,
    /// `random` or `interpolate`.
    pub init: &'static str,
    /// ρ (interpolation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rho: Option<f64>,
    /// The base learning rate used (after ρ scaling).
    pub lr: f64,
    /// `none`, `shift` or `mixup`.
    pub augment: &'static str,
    /// Epochs run.
    pub epochs: usize,
    /// Training and test rows.
    pub rows: [usize; 2],
    /// Synthetic rows per batch of real rows.
    pub synthetic_per_batch: usize,
    /// Student parameters.
    pub parameters: usize,
    /// Wall-clock training seconds.
    pub train_seconds: f64,
    /// Learning curves.
    pub history: Vec<DistillEpoch>,
}

enum Net {
    Mlp(Mlp),
    Cnn { cnn: Cnn, state: CnnState },
}

/// A trained student with what exporting it needs.
pub struct Student {
    net: Net,
    /// Parameters.
    pub params: Params,
    /// MLP: per-column standardisation; CNN: one pixel mean and standard deviation.
    input: (Vec<f64>, Vec<f64>),
    shape: Option<ImageShape>,
    classes: Vec<String>,
    features: Vec<String>,
}

impl Student {
    fn prepare(&self, x: &[f64]) -> Vec<f64> {
        match &self.net {
            Net::Mlp(_) => standardize(x, &self.input.0, &self.input.1),
            Net::Cnn { .. } => {
                let (m, s) = (self.input.0[0], self.input.1[0]);
                x.iter().map(|v| (v - m) / s).collect()
            }
        }
    }

    fn forward(&mut self, params: &Params, x: &[f64], mode: Mode) -> Result<Tensor> {
        let xs = self.prepare(x);
        let (dt, dev) = params
            .values()
            .first()
            .map_or((DType::F32, Device::Cpu), |p| (p.dtype(), p.device()));
        match &mut self.net {
            Net::Mlp(mlp) => {
                let cols = mlp.layers[0].inp;
                let t = Tensor::from_f64s(&xs, &[xs.len() / cols, cols], dt)?.to_device(dev)?;
                Ok(mlp.forward(params, &t)?)
            }
            Net::Cnn { cnn, state } => {
                let [c, h, w] = cnn.input;
                let t = Tensor::from_f64s(&xs, &[xs.len() / (c * h * w), c, h, w], dt)?
                    .to_device(dev)?;
                Ok(cnn.forward(params, state, &t, mode)?)
            }
        }
    }

    /// Logits `[rows, classes]` for raw rows (evaluation mode).
    ///
    /// # Errors
    /// Engine errors.
    pub fn logits(&mut self, x: &[f64]) -> Result<Vec<f64>> {
        let params = self.params.clone();
        let mut out = Vec::new();
        let cols = self.features.len().max(1);
        for chunk in x.chunks(512 * cols) {
            out.extend(no_grad(|| self.forward(&params, chunk, Mode::Eval))?.to_vec_f64()?);
        }
        Ok(out)
    }

    /// The student as the model file `keel fit --export` writes (`keel.kind` `mlp` or `cnn`).
    ///
    /// # Errors
    /// Device reads; export checks.
    pub fn export_bytes(&self) -> Result<Vec<u8>> {
        match &self.net {
            Net::Mlp(mlp) => {
                let config = MlpConfig {
                    sizes: mlp.sizes(),
                    activation: mlp.activation.name().to_string(),
                    output: OutputKind::Logits,
                    input_standardization: true,
                    target_standardization: false,
                    classes: Some(self.classes.clone()),
                    features: self.features.clone(),
                };
                let stats = Standardization {
                    input: Some(self.input.clone()),
                    target: None,
                };
                crate::export::mlp_bytes(mlp, &self.params, &config, &stats)
            }
            Net::Cnn { cnn, state } => {
                let shape = self.shape.ok_or_else(|| {
                    Error::invalid("image_shape", "(none)", "a CNN student needs one")
                })?;
                let model = crate::cnn::ImageModel {
                    cnn: cnn.clone(),
                    params: self.params.clone(),
                    state: state.clone(),
                    widths: None,
                    augmentation: crate::cnn::Augmentation::None,
                    normalize: (self.input.0[0], self.input.1[0]),
                    history: Vec::new(),
                    train_seconds: 0.0,
                    outputs: self.classes.len(),
                };
                let set = crate::images::ImageSet {
                    shape,
                    pixels: Vec::new(),
                    targets: Targets::Classes {
                        labels: Vec::new(),
                        classes: self.classes.clone(),
                    },
                };
                crate::cnn::export_bytes(&model, &set, 1)
            }
        }
    }
}

/// A distilled student and its report.
pub struct Distilled {
    /// The student.
    pub student: Student,
    /// The report.
    pub report: DistillReport,
}

impl DistillConfig {
    fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::invalid(
                "temperature",
                self.temperature,
                "must be positive and finite",
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::invalid("alpha", self.alpha, "must lie in [0, 1]"));
        }
        if let StudentInit::Interpolate { rho } = self.init {
            if !(0.0..=1.0).contains(&rho) {
                return Err(Error::invalid("rho", rho, "must lie in [0, 1]"));
            }
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "must be positive and finite"));
        }
        if let Augment::Mixup { alpha } = self.augment {
            if !(alpha > 0.0 && alpha.is_finite()) {
                return Err(Error::invalid(
                    "mixup_alpha",
                    alpha,
                    "must be positive and finite",
                ));
            }
        }
        if self.augment == Augment::Shift && self.image_shape.is_none() {
            return Err(Error::invalid(
                "augment",
                "shift",
                "pixel shifts need the image shape (image_shape)",
            ));
        }
        if let Some((_, r)) = &self.synthetic {
            if !(*r > 0.0 && *r < 1.0) {
                return Err(Error::invalid("synthetic_ratio", r, "must lie in (0, 1)"));
            }
        }
        if let StudentSpec::Mlp { hidden, .. } = &self.student {
            if hidden.contains(&0) {
                return Err(Error::invalid(
                    "student",
                    format!("{hidden:?}"),
                    "hidden widths must be positive",
                ));
            }
        }
        if matches!(self.student, StudentSpec::Cnn { .. }) && self.image_shape.is_none() {
            return Err(Error::invalid(
                "image_shape",
                "(none)",
                "a CNN student needs the image shape",
            ));
        }
        Ok(())
    }

    fn fingerprint(&self) -> String {
        let mut c = self.clone();
        c.checkpoint = Default::default();
        format!("distill {c:?}")
    }
}

/// The most numbers (rows × features) a generator given as `synthetic` draws for one run (256
/// MB in `f64`); beyond them the drawn rows come round again.
pub const MAX_GENERATED_VALUES: usize = 1 << 25;

/// The synthetic rows: `rows` samples of a GAN generator (`keel gan train --export`, a
/// `.safetensors` file; drawn from `seed`), or a CSV's rows, whose columns must be the features
/// (a target column, if present, is dropped).
fn read_synthetic(
    path: &std::path::Path,
    data: &Dataset,
    target: &str,
    rows: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let g = crate::gan::export::load(path)?;
        if g.sample.numel() != data.features.len() {
            return Err(Error::invalid(
                "synthetic",
                path.display(),
                format!(
                    "generates {} numbers per sample where the data has {} feature columns",
                    g.sample.numel(),
                    data.features.len()
                ),
            ));
        }
        let rows = rows
            .min(MAX_GENERATED_VALUES / g.sample.numel().max(1))
            .max(1);
        return g.sample(rows, seed ^ 0x7379_6e74_6865_7469);
    }
    let t = crate::data::read_numeric_csv(path)?;
    let keep: Vec<usize> = (0..t.names.len())
        .filter(|&i| t.names[i] != target)
        .collect();
    let names: Vec<&String> = keep.iter().map(|&i| &t.names[i]).collect();
    if names.len() != data.features.len() || names.iter().zip(&data.features).any(|(a, b)| *a != b)
    {
        return Err(Error::invalid(
            "synthetic",
            path.display(),
            format!(
                "has columns {} where the data has the {} feature columns",
                names.len(),
                data.features.len()
            ),
        ));
    }
    if t.rows() == 0 {
        return Err(Error::invalid("synthetic", path.display(), "has no rows"));
    }
    let mut x = Vec::with_capacity(t.rows() * keep.len());
    for r in t.values.chunks_exact(t.names.len()) {
        x.extend(keep.iter().map(|&i| r[i]));
    }
    Ok(x)
}

/// Per-channel pixel mean and standard deviation, repeated for every pixel of the channel: an
/// MLP student on images is standardised as a CNN is (per-pixel statistics would turn a shifted
/// stroke into a huge input wherever the training images are almost always blank).
fn channel_stats(x: &[f64], shape: ImageShape) -> (Vec<f64>, Vec<f64>) {
    let per = shape.height * shape.width;
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    for c in 0..shape.channels {
        let px: Vec<f64> = x
            .chunks_exact(shape.pixels())
            .flat_map(|img| img[c * per..(c + 1) * per].iter().copied())
            .collect();
        let m = px.iter().sum::<f64>() / px.len().max(1) as f64;
        let v = px.iter().map(|p| (p - m).powi(2)).sum::<f64>() / px.len().max(1) as f64;
        mean.extend(std::iter::repeat_n(m, per));
        std.extend(std::iter::repeat_n(v.sqrt().max(1e-6), per));
    }
    (mean, std)
}

fn gather(x: &[f64], cols: usize, idx: &[usize]) -> Vec<f64> {
    let mut v = Vec::with_capacity(idx.len() * cols);
    for &i in idx {
        v.extend_from_slice(&x[i * cols..(i + 1) * cols]);
    }
    v
}

fn softmax_rows(logits: &[f64], classes: usize) -> Vec<f64> {
    logits
        .chunks_exact(classes)
        .flat_map(|z| loss::log_softmax_row(z).into_iter().map(f64::exp))
        .collect()
}

fn log_softmax_rows(logits: &[f64], classes: usize) -> Vec<f64> {
    logits
        .chunks_exact(classes)
        .flat_map(loss::log_softmax_row)
        .collect()
}

/// The fidelity of `student` logits to `teacher` reduced logits: (agreement, KL at T = 1).
pub fn fidelity(teacher: &[f64], student: &[f64], classes: usize) -> (f64, f64) {
    (
        metrics::agreement(teacher, student, classes),
        metrics::predictive_kl(
            &log_softmax_rows(teacher, classes),
            &log_softmax_rows(student, classes),
            classes,
        ),
    )
}

const CHECKPOINT_KIND: &str = "distill-checkpoint";

/// The student's optimizer: SGD, Nesterov momentum 0.9, weight decay 1e-4 (the reference's
/// image set-up).
const SGD: OptimizerKind = OptimizerKind::Sgd {
    momentum: 0.9,
    nesterov: true,
    weight_decay: 1e-4,
};

/// The state one stream pass draws from.
struct StreamSource<'a> {
    x: &'a [f64],
    labels: &'a [usize],
    cols: usize,
    synthetic: Option<(&'a [f64], usize)>,
    augment: Augment,
    shape: Option<[usize; 3]>,
    temperature: f64,
}

/// One batch of the stream: raw rows (real first), true labels of the real rows, temperatures.
struct StreamBatch {
    x: Vec<f64>,
    labels: Vec<usize>,
    temps: Vec<f64>,
    real: usize,
}

impl StreamSource<'_> {
    fn batch(
        &self,
        idx: &[usize],
        syn_order: &[usize],
        syn_at: &mut usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<StreamBatch> {
        let mut x = gather(self.x, self.cols, idx);
        match self.augment {
            Augment::None => {}
            Augment::Shift => {
                let shape = self
                    .shape
                    .ok_or_else(|| Error::invalid("augment", "shift", "needs the image shape"))?;
                stream::shift(&mut x, shape, rng)?;
            }
            Augment::Mixup { alpha } => {
                stream::mixup(&mut x, self.cols, alpha, rng);
            }
        }
        let real = idx.len();
        let mut temps = vec![self.temperature; real];
        if let Some((sx, per)) = self.synthetic {
            let n_syn = sx.len() / self.cols;
            for _ in 0..per {
                let i = syn_order[*syn_at % n_syn];
                *syn_at += 1;
                x.extend_from_slice(&sx[i * self.cols..(i + 1) * self.cols]);
            }
            temps.resize(real + per, 1.0);
        }
        Ok(StreamBatch {
            x,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            temps,
            real,
        })
    }
}

/// The train/test split: with a sample-set teacher, `keel bayes`'s (`bayes::mlp::Split`: the
/// first `n − n_test` of a seeded permutation train) with its fraction and seed unless `cfg`
/// gives them; otherwise `keel fit`'s (the first `n_test` of the permutation test), so that a
/// `keel fit` teacher's test rows are the student's when seed and fraction match.
fn split(cfg: &DistillConfig, teacher: &Teacher, data: &Dataset) -> Result<(Dataset, Dataset)> {
    let teacher_split = teacher.files.iter().find_map(|f| f.split);
    let test_fraction = cfg
        .test_fraction
        .or(teacher_split.map(|s| s.0))
        .unwrap_or(0.2);
    let split_seed = cfg
        .split_seed
        .or(teacher_split.map(|s| s.1))
        .unwrap_or(cfg.seed);
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(
            "test_fraction",
            test_fraction,
            "must lie in (0, 1)",
        ));
    }
    let n = data.rows();
    let n_test = (test_fraction * n as f64).round() as usize;
    if n_test == 0 || n_test >= n {
        return Err(Error::invalid(
            "test_fraction",
            test_fraction,
            format!(
                "leaves {} training and {n_test} test rows of {n}",
                n - n_test.min(n)
            ),
        ));
    }
    let order = permutation(n, &mut Xoshiro256PlusPlus::seed_from_u64(split_seed));
    let (train_idx, test_idx) = if teacher_split.is_some() {
        let (a, b) = order.split_at(n - n_test);
        (a, b)
    } else {
        let (b, a) = order.split_at(n_test);
        (a, b)
    };
    Ok((data.subset(train_idx), data.subset(test_idx)))
}

/// Distils per `cfg`, reporting each epoch to `progress`.
///
/// # Errors
/// [`Error::InvalidInput`] for bad settings, a teacher that does not fit the data (naming
/// both), a model file of the wrong kind ([`Error::Malformed`]) — all before training; a failed
/// run when the loss diverges; engine errors.
pub fn distill(cfg: &DistillConfig, progress: &mut Observer) -> Result<Distilled> {
    cfg.validate()?;
    let data = read_csv(&cfg.data, &cfg.target, true)?;
    let Targets::Classes { classes, .. } = &data.y else {
        return Err(Error::invalid("target", &cfg.target, "must hold classes"));
    };
    let teacher = Teacher::load(&cfg.teachers, &cfg.data, &data)?;
    let k = classes.len();
    let cols = data.cols();
    if let Some(s) = cfg.image_shape {
        if s.pixels() != cols {
            return Err(Error::invalid(
                "image_shape",
                s,
                format!(
                    "has {} pixels; the data has {cols} feature columns",
                    s.pixels()
                ),
            ));
        }
    }
    let (train, test) = match &cfg.test_data {
        Some(p) => {
            let t = read_csv(p, &cfg.target, true)?;
            let t_classes = match &t.y {
                Targets::Classes { classes, .. } => classes.clone(),
                Targets::Values(_) => Vec::new(),
            };
            if t.features != data.features || t_classes != *classes {
                return Err(Error::invalid(
                    "test_data",
                    p.display(),
                    format!(
                        "has {} columns and classes {:?}; {} has {} and {:?}",
                        t.cols(),
                        t_classes,
                        cfg.data.display(),
                        cols,
                        classes
                    ),
                ));
            }
            (data.clone(), t)
        }
        None => split(cfg, &teacher, &data)?,
    };
    let (
        Targets::Classes {
            labels: y_train, ..
        },
        Targets::Classes { labels: y_test, .. },
    ) = (&train.y, &test.y)
    else {
        unreachable!("subsets of a class table hold classes");
    };
    let synthetic = match &cfg.synthetic {
        Some((p, r)) => {
            // A generator draws one fresh row for every synthetic slot of the run (up to
            // MAX_GENERATED_VALUES; beyond that rows come round again, as a CSV's do every epoch).
            let n = train.rows();
            let slots = stream::synthetic_rows(cfg.batch_size.min(n), *r)
                .saturating_mul(n.div_ceil(cfg.batch_size.max(1)))
                .saturating_mul(cfg.epochs)
                .max(1);
            Some((read_synthetic(p, &data, &cfg.target, slots, cfg.seed)?, *r))
        }
        None => None,
    };

    // The student.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let mut params = Params::new();
    let (net, input) = match &cfg.student {
        StudentSpec::Mlp { hidden, activation } => {
            let mut sizes = vec![cols];
            sizes.extend(hidden);
            sizes.push(k);
            let mlp = Mlp::new(
                &mut params,
                &sizes,
                *activation,
                Init::PyTorchDefault,
                cfg.dtype,
                &mut rng,
            )?;
            let stats = match (cfg.init, teacher.single()) {
                (StudentInit::Interpolate { .. }, Some(t)) if t.input.is_some() => {
                    t.input.clone().unwrap_or_default()
                }
                _ => match cfg.image_shape {
                    Some(shape) => channel_stats(&train.x, shape),
                    None => column_stats(&train.x, cols),
                },
            };
            (Net::Mlp(mlp), stats)
        }
        StudentSpec::Cnn { layers } => {
            let s = cfg.image_shape.ok_or_else(|| {
                Error::invalid("image_shape", "(none)", "a CNN student needs one")
            })?;
            let (cnn, state) = Cnn::new(
                &mut params,
                "",
                [s.channels, s.height, s.width],
                layers,
                k,
                cfg.dtype,
                &mut rng,
            )?;
            let m = train.x.iter().sum::<f64>() / train.x.len() as f64;
            let v = train.x.iter().map(|p| (p - m).powi(2)).sum::<f64>() / train.x.len() as f64;
            (Net::Cnn { cnn, state }, (vec![m], vec![v.sqrt().max(1e-6)]))
        }
    };
    let mut lr = cfg.lr;
    if let StudentInit::Interpolate { rho } = cfg.init {
        let (Net::Mlp(mlp), Some(t)) = (&net, teacher.single()) else {
            return Err(Error::invalid(
                "init",
                "interpolate",
                format!(
                    "needs a teacher that is one MLP of the student's architecture; the teacher \
                     has {} member network(s) in {} file(s){}",
                    teacher.members(),
                    teacher.files.len(),
                    if matches!(net, Net::Cnn { .. }) {
                        " and the student is a CNN"
                    } else {
                        ""
                    }
                ),
            ));
        };
        if t.sizes != mlp.sizes() || t.activation != mlp.activation {
            return Err(Error::invalid(
                "init",
                "interpolate",
                format!(
                    "the teacher is an MLP {:?} ({}); the student is {:?} ({})",
                    t.sizes,
                    t.activation.name(),
                    mlp.sizes(),
                    mlp.activation.name()
                ),
            ));
        }
        let mut at = 0;
        for i in 0..params.len() {
            let p = params.get(ParamId(i));
            let r = p.to_vec_f64()?;
            let tv = &t.flat[at..at + r.len()];
            at += r.len();
            let mixed: Vec<f64> = r
                .iter()
                .zip(tv)
                .map(|(a, b)| rho * a + (1.0 - rho) * b)
                .collect();
            let shape = p.dims().to_vec();
            params.set(ParamId(i), Tensor::from_f64s(&mixed, &shape, cfg.dtype)?)?;
        }
        lr = (cfg.lr * rho).max(ETA_MIN);
    }
    let mut student = Student {
        net,
        params: params.to_device(cfg.device)?,
        input,
        shape: cfg.image_shape,
        classes: classes.clone(),
        features: data.features.clone(),
    };
    if let Net::Cnn { state, .. } = &mut student.net {
        *state = state.to_device(cfg.device)?;
    }
    let mut opt = Optimizer::new(SGD, &student.params)?;
    let schedule = Schedule::Cosine {
        total: cfg.epochs,
        min_lr: ETA_MIN,
    };
    let n_train = train.rows();
    let per_batch = synthetic.as_ref().map_or(0, |(_, r)| {
        stream::synthetic_rows(cfg.batch_size.min(n_train), *r)
    });
    let source = StreamSource {
        x: &train.x,
        labels: y_train,
        cols,
        synthetic: synthetic.as_ref().map(|(x, _)| (x.as_slice(), per_batch)),
        augment: cfg.augment,
        shape: cfg.image_shape.map(|s| [s.channels, s.height, s.width]),
        temperature: cfg.temperature,
    };
    let n_syn = synthetic.as_ref().map_or(0, |(x, _)| x.len() / cols);

    let fingerprint = cfg.fingerprint();
    let mut history: Vec<DistillEpoch> = Vec::with_capacity(cfg.epochs);
    let mut first = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let r = crate::checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut student.params,
            &mut opt,
            &mut rng,
            &mut [],
            &mut [],
        )?;
        restore(&mut student, &mut opt, &mut history, &r, path)?;
        first = r.epoch;
    }
    let batches_per_epoch = n_train.div_ceil(cfg.batch_size) as u64;
    let start = Instant::now();
    for epoch in first..cfg.epochs {
        let lr_now = schedule.lr(lr, epoch);
        let beta = Loss::cvx_beta(epoch, cfg.epochs);
        let perm = permutation(n_train, &mut rng);
        let syn_order = permutation(n_syn, &mut rng);
        let mut syn_at = 0;
        let (mut total, mut batches) = (0.0, 0usize);
        let (mut agree, mut kl, mut rows) = (0.0, 0.0, 0usize);
        for (b, idx) in perm.chunks(cfg.batch_size).enumerate() {
            let sb = source.batch(idx, &syn_order, &mut syn_at, &mut rng)?;
            let tz = teacher.logits(&sb.x)?;
            let vars = student.params.variables();
            let seed = cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch as u64 * batches_per_epoch + b as u64);
            let out = student.forward(&vars, &sb.x, Mode::Train { seed })?;
            let rows_b = sb.temps.len();
            let t_tensor =
                Tensor::from_f64s(&tz, &[rows_b, k], cfg.dtype)?.to_device(cfg.device)?;
            let l = objective(
                cfg.loss,
                &LossInputs {
                    student: &out,
                    teacher: &t_tensor,
                    temperatures: &sb.temps,
                    real: sb.real,
                },
                &sb.labels,
                cfg.alpha,
                beta,
            )?;
            let (a, d) = fidelity(&tz, &out.to_vec_f64()?, k);
            agree += a * rows_b as f64;
            kl += d * rows_b as f64;
            rows += rows_b;
            let value = crate::train::step(&l, &vars, &mut student.params, &mut opt, lr_now, None)?;
            if !value.is_finite() {
                return Err(crate::train::diverged(value, epoch, lr, ""));
            }
            total += value;
            batches += 1;
        }
        let e = DistillEpoch {
            epoch: epoch + 1,
            loss: total / batches.max(1) as f64,
            lr: lr_now,
            stream_agreement: agree / rows.max(1) as f64,
            stream_kl: kl / rows.max(1) as f64,
        };
        history.push(e);
        if let (Some(path), true) = (
            &cfg.checkpoint.path,
            cfg.checkpoint.due(epoch + 1, cfg.epochs),
        ) {
            save(
                &student,
                &opt,
                &rng,
                &fingerprint,
                epoch + 1,
                &history,
                path,
            )?;
        }
        progress(&Tick {
            done: epoch + 1,
            total: cfg.epochs,
            values: &[("loss", e.loss), ("agree", e.stream_agreement)],
        });
        if cfg.checkpoint.stops_at(epoch + 1) {
            break;
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();

    // One fresh pass over the stream with the final student, its own draws.
    let mut eval_rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ 0x5EED_D157_11A7_0001);
    let perm = permutation(n_train, &mut eval_rng);
    let syn_order = permutation(n_syn, &mut eval_rng);
    let mut syn_at = 0;
    let (mut agree, mut kl, mut rows) = (0.0, 0.0, 0usize);
    for idx in perm.chunks(cfg.batch_size) {
        let sb = source.batch(idx, &syn_order, &mut syn_at, &mut eval_rng)?;
        let tz = teacher.logits(&sb.x)?;
        let sz = student.logits(&sb.x)?;
        let (a, d) = fidelity(&tz, &sz, k);
        agree += a * sb.temps.len() as f64;
        kl += d * sb.temps.len() as f64;
        rows += sb.temps.len();
    }
    let (stream_agreement, stream_kl) = (agree / rows.max(1) as f64, kl / rows.max(1) as f64);

    let tz = teacher.logits(&test.x)?;
    let sz = student.logits(&test.x)?;
    let (test_agreement, test_kl) = fidelity(&tz, &sz, k);
    let (tp, sp) = (softmax_rows(&tz, k), softmax_rows(&sz, k));
    let report = DistillReport {
        test_agreement,
        test_kl,
        stream_agreement,
        stream_kl,
        test_accuracy: metrics::accuracy(&sp, k, y_test),
        test_nll: metrics::nll(&sp, k, y_test),
        ece: metrics::ece(&sp, k, y_test, 10),
        teacher: TeacherReport {
            test_accuracy: metrics::accuracy(&tp, k, y_test),
            test_nll: metrics::nll(&tp, k, y_test),
            ece: metrics::ece(&tp, k, y_test, 10),
            members: teacher.members(),
            kinds: teacher.files.iter().map(|f| f.kind.clone()).collect(),
        },
        loss: cfg.loss.name(),
        temperature: cfg.temperature,
        alpha: cfg.alpha,
        init: match cfg.init {
            StudentInit::Random => "random",
            StudentInit::Interpolate { .. } => "interpolate",
        },
        rho: match cfg.init {
            StudentInit::Interpolate { rho } => Some(rho),
            StudentInit::Random => None,
        },
        lr,
        augment: match cfg.augment {
            Augment::None => "none",
            Augment::Shift => "shift",
            Augment::Mixup { .. } => "mixup",
        },
        epochs: history.len(),
        rows: [n_train, test.rows()],
        synthetic_per_batch: per_batch,
        parameters: student.params.numel(),
        train_seconds,
        history,
    };
    Ok(Distilled { student, report })
}

fn save(
    student: &Student,
    opt: &Optimizer,
    rng: &Xoshiro256PlusPlus,
    fingerprint: &str,
    epoch: usize,
    history: &[DistillEpoch],
    path: &std::path::Path,
) -> Result<()> {
    let mut running = Vec::new();
    if let Net::Cnn { state, .. } = &student.net {
        for (m, v) in &state.running {
            running.extend(m.to_vec_f64()?);
            running.extend(v.to_vec_f64()?);
        }
    }
    let curves: Vec<f64> = history
        .iter()
        .flat_map(|e| [e.loss, e.lr, e.stream_agreement, e.stream_kl])
        .collect();
    // SGD keeps momentum buffers only; the shared checkpoint's moment slots hold Adam's pairs,
    // so the buffers travel as a series (with the step count) beside a moment-free optimizer.
    let (steps, m, _) = opt.state()?;
    let mut momentum = Vec::new();
    for (i, b) in m.iter().enumerate() {
        match b {
            Some(b) => momentum.extend_from_slice(b),
            None => momentum.extend(std::iter::repeat_n(
                0.0,
                student.params.get(ParamId(i)).numel(),
            )),
        }
    }
    let bare = Optimizer::new(SGD, &student.params)?;
    crate::checkpoint::save(
        path,
        &crate::checkpoint::Snapshot {
            kind: CHECKPOINT_KIND,
            fingerprint,
            epoch,
            params: &student.params,
            opt: &bare,
            rng,
            order: &[],
            extra_params: &[],
            series: &[
                ("running", &running),
                ("history", &curves),
                ("momentum", &momentum),
                ("steps", &[steps as f64]),
            ],
            meta: std::collections::BTreeMap::new(),
        },
    )
}

fn restore(
    student: &mut Student,
    opt: &mut Optimizer,
    history: &mut Vec<DistillEpoch>,
    r: &crate::checkpoint::Restored,
    path: &std::path::Path,
) -> Result<()> {
    let bad = |what: &str| Error::Malformed {
        path: path.to_path_buf(),
        reason: format!("{what} do not fit this run"),
    };
    let running = r
        .series
        .get("running")
        .ok_or_else(|| bad("running statistics"))?;
    if let Net::Cnn { state, .. } = &mut student.net {
        let expect: usize = state.running.iter().map(|(m, _)| 2 * m.numel()).sum();
        if running.len() != expect {
            return Err(bad("batch-norm running statistics"));
        }
        let mut at = 0;
        for (m, v) in &mut state.running {
            let c = m.numel();
            let (dt, dev) = (m.dtype(), m.device());
            *m = Tensor::from_f64s(&running[at..at + c], &[c], dt)?.to_device(dev)?;
            *v = Tensor::from_f64s(&running[at + c..at + 2 * c], &[c], dt)?.to_device(dev)?;
            at += 2 * c;
        }
    } else if !running.is_empty() {
        return Err(bad("running statistics"));
    }
    let momentum = r
        .series
        .get("momentum")
        .ok_or_else(|| bad("momentum buffers"))?;
    let steps = r
        .series
        .get("steps")
        .and_then(|s| s.first())
        .ok_or_else(|| bad("step counts"))?;
    if momentum.len() != student.params.numel() {
        return Err(bad("momentum buffers"));
    }
    let mut at = 0;
    let mut m = Vec::with_capacity(student.params.len());
    for i in 0..student.params.len() {
        let k = student.params.get(ParamId(i)).numel();
        m.push(Some(momentum[at..at + k].to_vec()));
        at += k;
    }
    let none = vec![None; student.params.len()];
    opt.restore(&student.params, *steps as u64, m, none)?;
    let curves = r
        .series
        .get("history")
        .ok_or_else(|| bad("learning curves"))?;
    if curves.len() != 4 * r.epoch {
        return Err(bad("learning curves"));
    }
    *history = curves
        .chunks_exact(4)
        .enumerate()
        .map(|(e, c)| DistillEpoch {
            epoch: e + 1,
            loss: c[0],
            lr: c[1],
            stream_agreement: c[2],
            stream_kl: c[3],
        })
        .collect();
    Ok(())
}
