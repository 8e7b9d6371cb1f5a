//! Bayesian networks — MLPs, and CNNs on image rows (the reference's models without batch
//! statistics, `bnn_hmc/utils/models.py`) — with the reference's tempered, sum-over-data log
//! posterior (`bnn_hmc/utils/losses.py`) on a flat parameter vector, and gradients from the
//! engine's reverse mode (on whichever device holds the data).
//!
//! - `categorical`: `log L_T = (1/T) Σᵢ log softmax(f_θ(xᵢ))_{yᵢ}`.
//! - `gaussian` (learned scale): outputs `(μ, s)`, `σ = softplus(s)`, and at temperature `T` the
//!   scale becomes `σ√T` — the reference's convention, in which the log-normaliser is not divided
//!   by `T`.
//!
//! The flat vector is the layers' weights and biases in order (`layer0.weight` `[h₁, in]`
//! row-major, `layer0.bias`, `layer1.weight`, …), the same order the exported sample files use;
//! a CNN's in the order [`crate::nn::cnn::Cnn::new`] creates them (a convolution's weight
//! `[out, in, k, k]`, its bias, then its filter response normalisation's γ, β, τ).

use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

use super::hmc::{BatchTarget, Target};
use super::prior::Prior;
use crate::autodiff;
use crate::backend::hmc::PriorArgs;
use crate::backend::{DType, Device};
use crate::data::{self, Dataset, Targets};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::nn::cnn::{parse_spec, Cnn, CnnState, Layer, LayerSpec, Mode, Norm};
use crate::nn::{Activation, Mlp};
use crate::params::Params;
use crate::tensor::Tensor;

/// How the network's outputs explain the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Likelihood {
    /// Softmax over `classes` outputs.
    Categorical {
        /// Number of classes (= outputs).
        classes: usize,
    },
    /// Two outputs `(μ, s)`: `N(μ, softplus(s)²)` on standardised targets.
    Gaussian,
}

impl Likelihood {
    /// The network's output width.
    pub fn outputs(self) -> usize {
        match self {
            Likelihood::Categorical { classes } => classes,
            Likelihood::Gaussian => 2,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Likelihood::Categorical { .. } => "categorical",
            Likelihood::Gaussian => "gaussian",
        }
    }
}

/// How a split standardises its inputs (always with the training rows' statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standardize {
    /// Every column by its own mean and standard deviation (tabular data; the reference's UCI
    /// sets).
    #[default]
    Columns,
    /// Every column by the one mean and standard deviation of all training inputs — for images,
    /// as the reference standardises CIFAR per channel: a pixel that is almost always dark (a
    /// digit's border, standard deviation 0.02 of 16) is not blown up by `1/σ` when a shift or
    /// a blur lights it.
    Global,
}

impl Standardize {
    /// Parses `columns` or `global`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `standardize`) for anything else.
    pub fn parse(text: &str) -> Result<Standardize> {
        match text {
            "columns" => Ok(Standardize::Columns),
            "global" => Ok(Standardize::Global),
            _ => Err(Error::invalid(
                "standardize",
                text,
                "expected columns or global",
            )),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Standardize::Columns => "columns",
            Standardize::Global => "global",
        }
    }
}

/// A train/test split of a dataset, standardised with the training rows' statistics (as
/// `bnn_hmc/utils/data_utils.py`: a seeded permutation, the first `1 − f` of it for training;
/// inputs and regression targets standardised with the training mean and standard deviation; a
/// column constant in the training rows is centred only, [`data::column_stats`]; with
/// [`Standardize::Global`] one mean and deviation for all input columns).
#[derive(Clone, Debug)]
pub struct Split {
    /// Features per row.
    pub d: usize,
    /// Standardised training inputs, row-major.
    pub x_train: Vec<f64>,
    /// Standardised test inputs, row-major.
    pub x_test: Vec<f64>,
    /// Training targets: labels or standardised values.
    pub y_train: Labels,
    /// Test targets in the same units as `y_train`.
    pub y_test: Labels,
    /// Input means.
    pub x_mean: Vec<f64>,
    /// Input scales.
    pub x_std: Vec<f64>,
    /// Regression target mean and scale (`y_scale` of `bnn_hmc/utils/metrics.py`); `(0, 1)`
    /// for classes.
    pub y_mean: f64,
    /// See `y_mean`.
    pub y_scale: f64,
}

/// Targets of one side of a split.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class indices.
    Classes(Vec<usize>),
    /// Standardised real values.
    Values(Vec<f64>),
}

impl Labels {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Labels::Classes(v) => v.len(),
            Labels::Values(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Split {
    /// The split with only the training rows `start..end` (a rank's shard for data-parallel
    /// HMC, [`crate::distributed::shard`]); the test rows and the standardisation are kept.
    ///
    /// # Errors
    /// An empty or out-of-range row range.
    pub fn training_rows(&self, start: usize, end: usize) -> Result<Split> {
        let n = self.y_train.len();
        if start >= end || end > n {
            return Err(Error::invalid(
                "training rows",
                format!("{start}..{end}"),
                format!("not a non-empty range of the {n} training rows"),
            ));
        }
        let y_train = match &self.y_train {
            Labels::Classes(l) => Labels::Classes(l[start..end].to_vec()),
            Labels::Values(v) => Labels::Values(v[start..end].to_vec()),
        };
        Ok(Split {
            x_train: self.x_train[start * self.d..end * self.d].to_vec(),
            y_train,
            ..self.clone()
        })
    }

    /// Splits `data` with a permutation drawn from `seed`, `test_fraction` of the rows for
    /// testing.
    ///
    /// # Errors
    /// A fraction outside [0, 1); a split that leaves fewer than two training rows.
    pub fn new(data: &Dataset, test_fraction: f64, seed: u64) -> Result<Split> {
        Split::standardized(data, test_fraction, seed, Standardize::Columns)
    }

    /// [`Split::new`] with the inputs standardised by `how`.
    ///
    /// # Errors
    /// As [`Split::new`].
    pub fn standardized(
        data: &Dataset,
        test_fraction: f64,
        seed: u64,
        how: Standardize,
    ) -> Result<Split> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(Error::invalid(
                "test_fraction",
                test_fraction,
                "must lie in [0, 1)",
            ));
        }
        let n = data.rows();
        let n_test = (test_fraction * n as f64).round() as usize;
        if n - n_test < 2 {
            return Err(Error::invalid(
                "test_fraction",
                test_fraction,
                format!("leaves {} training rows of {n}", n - n_test),
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let perm = data::permutation(n, &mut rng);
        let (train_idx, test_idx) = perm.split_at(n - n_test);
        let train = data.subset(train_idx);
        let test = data.subset(test_idx);
        let d = data.cols();
        let (x_mean, x_std) = match how {
            Standardize::Columns => data::column_stats(&train.x, d),
            Standardize::Global => {
                let (m, s) = data::column_stats(&train.x, 1);
                (vec![m[0]; d], vec![s[0]; d])
            }
        };
        let (y_train, y_test, y_mean, y_scale) = match (&train.y, &test.y) {
            (Targets::Classes { labels: a, .. }, Targets::Classes { labels: b, .. }) => (
                Labels::Classes(a.clone()),
                Labels::Classes(b.clone()),
                0.0,
                1.0,
            ),
            (Targets::Values(a), Targets::Values(b)) => {
                let (m, s) = data::column_stats(a, 1);
                let (m, s) = (m[0], s[0]);
                let z = |v: &[f64]| v.iter().map(|y| (y - m) / s).collect();
                (Labels::Values(z(a)), Labels::Values(z(b)), m, s)
            }
            _ => unreachable!("subsets of one dataset share their target kind"),
        };
        Ok(Split {
            d,
            x_train: data::standardize(&train.x, &x_mean, &x_std),
            x_test: data::standardize(&test.x, &x_mean, &x_std),
            y_train,
            y_test,
            x_mean,
            x_std,
            y_mean,
            y_scale,
        })
    }
}

/// The network of a Bayesian model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arch {
    /// An MLP `[d, hidden…, outputs]` with ReLU between layers (the reference's MLPs).
    Mlp(Vec<usize>),
    /// A CNN on image rows of shape `image` (`[c, h, w]`, the row's values in CHW order) from an
    /// engine spec ([`crate::nn::cnn::parse_spec`]), then a dense layer to the outputs. Only
    /// layers that make the network a fixed function of its weights: convolutions without
    /// normalisation (`cNnobn`) or with filter response normalisation (`cNfrn`, the reference's
    /// ResNet-20-FRN layer), pooling, flatten and dense — no batch norm, no dropout.
    Cnn {
        /// The spec, as given.
        layers: String,
        /// `[c, h, w]`.
        image: [usize; 3],
    },
}

impl Arch {
    /// `mlp:W1,W2,…` or `cnn:SPEC`.
    pub fn name(&self) -> String {
        match self {
            Arch::Mlp(hidden) => format!(
                "mlp:{}",
                hidden
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Arch::Cnn { layers, .. } => format!("cnn:{layers}"),
        }
    }

    /// The CNN spec's layers, refusing what would make the posterior depend on the batch or on
    /// chance (batch norm, dropout).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `model` for a spec that does not parse or holds such a
    /// layer.
    pub fn cnn_layers(layers: &str) -> Result<Vec<LayerSpec>> {
        let spec = parse_spec(layers).map_err(|e| {
            Error::invalid(
                "model",
                format!("cnn:{layers}"),
                match e {
                    keel_engine::Error::InvalidArgument { reason, .. } => reason,
                    e => e.to_string(),
                },
            )
        })?;
        for l in &spec {
            let why = match l {
                LayerSpec::Conv {
                    norm: Norm::Batch, ..
                } => "batch normalisation makes each row's output depend on the batch (the reference's HMC models have none); use cNfrn (filter response normalisation) or cNnobn",
                LayerSpec::Dropout(_) => "dropout makes the likelihood random; a posterior over weights has none",
                _ => continue,
            };
            return Err(Error::invalid("model", format!("cnn:{layers}"), why));
        }
        Ok(spec)
    }
}

/// The built network.
#[derive(Clone, Debug)]
enum Net {
    Mlp(Mlp),
    Cnn(Cnn),
}

impl Net {
    /// The outputs for rows `x` `[n, d]` (or `[C, n, d]`-broadcast batches for an MLP).
    fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        match self {
            Net::Mlp(mlp) => Ok(mlp.forward(params, x)?),
            Net::Cnn(cnn) => {
                let n = x.dims()[0];
                let [c, h, w] = cnn.input;
                let images = x.reshape(&[n, c, h, w])?;
                Ok(cnn.forward(params, &mut CnnState::default(), &images, Mode::Eval)?)
            }
        }
    }
}

/// Values one row carries through a CNN (every layer's output), for the memory check.
fn cnn_activations(cnn: &Cnn) -> u128 {
    let [mut c, mut h, mut w] = cnn.input.map(|v| v as u128);
    let mut total = c * h * w;
    for layer in &cnn.layers {
        match layer {
            Layer::Conv(conv, _, _) => {
                let (k, s, p) = (conv.kernel as u128, conv.opts.stride, conv.opts.padding);
                c = conv.out as u128;
                h = (h + 2 * p[0] as u128).saturating_sub(k) / s[0] as u128 + 1;
                w = (w + 2 * p[1] as u128).saturating_sub(k) / s[1] as u128 + 1;
            }
            Layer::MaxPool(k) | Layer::AvgPool(k) => {
                h /= *k as u128;
                w /= *k as u128;
            }
            Layer::GlobalMean => (h, w) = (1, 1),
            Layer::Dense(lin, _) => (c, h, w) = (lin.out as u128, 1, 1),
            Layer::Frn(..) | Layer::Flatten | Layer::Dropout(_) => {}
        }
        // A normalised layer keeps a few intermediate values per output.
        let factor = if matches!(layer, Layer::Frn(..)) {
            4
        } else {
            1
        };
        total = total.saturating_add(factor * c * h * w);
    }
    total
}

/// A Bayesian network on its training data: an HMC [`Target`] and the gradients the
/// stochastic baselines use.
pub struct Bnn {
    net: Net,
    arch: Arch,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    dim: usize,
    /// Likelihood.
    pub likelihood: Likelihood,
    /// Prior on every parameter.
    pub prior: Prior,
    /// Posterior temperature `T`.
    pub temperature: f64,
    x: Tensor,
    labels: Vec<usize>,
    y: Option<Tensor>,
    n: usize,
    device: Device,
    dtype: DType,
}

impl Bnn {
    /// A network `[d, hidden…, outputs]` with ReLU between layers (the reference's MLPs) on the
    /// split's training rows, held on `device` in `dtype`.
    ///
    /// # Errors
    /// A likelihood that does not fit the targets (classes for regression values or the other
    /// way round), a zero width, a temperature that is not a positive number.
    pub fn new(
        split: &Split,
        hidden: &[usize],
        likelihood: Likelihood,
        prior: Prior,
        temperature: f64,
        device: Device,
        dtype: DType,
    ) -> Result<Bnn> {
        Bnn::with_arch(
            split,
            &Arch::Mlp(hidden.to_vec()),
            likelihood,
            prior,
            temperature,
            device,
            dtype,
        )
    }

    /// [`Bnn::new`] for any [`Arch`].
    ///
    /// # Errors
    /// As [`Bnn::new`]; a CNN whose image shape does not hold the split's columns, or whose
    /// spec does not parse, does not fit the image or has batch norm or dropout.
    pub fn with_arch(
        split: &Split,
        arch: &Arch,
        likelihood: Likelihood,
        prior: Prior,
        temperature: f64,
        device: Device,
        dtype: DType,
    ) -> Result<Bnn> {
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::invalid(
                "temperature",
                temperature,
                "must be a positive number",
            ));
        }
        let n = split.y_train.len();
        let (labels, y) = match (&split.y_train, likelihood) {
            (Labels::Classes(l), Likelihood::Categorical { classes }) => {
                if let Some(&bad) = l.iter().find(|&&c| c >= classes) {
                    return Err(Error::invalid(
                        "likelihood",
                        "categorical",
                        format!("label index {bad} but only {classes} classes"),
                    ));
                }
                (l.clone(), None)
            }
            (Labels::Values(v), Likelihood::Gaussian) => (
                Vec::new(),
                Some(Tensor::from_f64s(v, &[n], dtype)?.to_device(device)?),
            ),
            (Labels::Classes(_), Likelihood::Gaussian) => {
                return Err(Error::invalid(
                    "likelihood",
                    "gaussian",
                    "the target column holds class labels; use `likelihood` categorical",
                ))
            }
            (Labels::Values(_), Likelihood::Categorical { .. }) => {
                return Err(Error::invalid(
                    "likelihood",
                    "categorical",
                    "the target column holds real values; use `likelihood` gaussian",
                ))
            }
        };
        let mut template = Params::new();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        // A full-batch gradient holds every training row's activations.
        let (parameters, activations) = match arch {
            Arch::Mlp(hidden) => {
                let mut sizes = vec![split.d];
                sizes.extend_from_slice(hidden);
                sizes.push(likelihood.outputs());
                (
                    crate::limits::dense_parameters(&sizes),
                    sizes.iter().map(|&w| w as u128).sum(),
                )
            }
            Arch::Cnn { layers, image } => {
                if image.contains(&0) || image.iter().product::<usize>() != split.d {
                    return Err(Error::invalid(
                        "image shape",
                        format!("{}x{}x{}", image[0], image[1], image[2]),
                        format!("does not hold the data's {} feature columns", split.d),
                    ));
                }
                // Built here only to count; the real one below, after the memory check.
                let spec = Arch::cnn_layers(layers)?;
                let (cnn, _) = Cnn::new(
                    &mut Params::new(),
                    "",
                    *image,
                    &spec,
                    likelihood.outputs(),
                    DType::F32,
                    &mut rng,
                )
                .map_err(|e| Error::invalid("model", arch.name(), e.to_string()))?;
                (0, cnn_activations(&cnn))
            }
        };
        crate::limits::memory(
            "model",
            arch.name(),
            "the network's full-batch gradient",
            crate::limits::training_bytes(parameters, activations, n as u128, dtype.size() as u128),
        )?;
        let net = match arch {
            Arch::Mlp(hidden) => {
                let mut sizes = vec![split.d];
                sizes.extend_from_slice(hidden);
                sizes.push(likelihood.outputs());
                Net::Mlp(Mlp::new(
                    &mut template,
                    &sizes,
                    Activation::Relu,
                    Init::KaimingNormal,
                    dtype,
                    &mut rng,
                )?)
            }
            Arch::Cnn { layers, image } => Net::Cnn(
                Cnn::new(
                    &mut template,
                    "",
                    *image,
                    &Arch::cnn_layers(layers)?,
                    likelihood.outputs(),
                    dtype,
                    &mut rng,
                )?
                .0,
            ),
        };
        let names = template.names().to_vec();
        let shapes: Vec<Vec<usize>> = template
            .values()
            .iter()
            .map(|t| t.dims().to_vec())
            .collect();
        let dim = template.numel();
        let x = Tensor::from_f64s(&split.x_train, &[n, split.d], dtype)?.to_device(device)?;
        Ok(Bnn {
            net,
            arch: arch.clone(),
            names,
            shapes,
            dim,
            likelihood,
            prior,
            temperature,
            x,
            labels,
            y,
            n,
            device,
            dtype,
        })
    }

    /// Number of training rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// An MLP's widths `[in, h₁, …, out]`; a CNN's `[in, out]` (its layers are
    /// [`Bnn::arch`]'s).
    pub fn sizes(&self) -> Vec<usize> {
        match &self.net {
            Net::Mlp(mlp) => mlp.sizes(),
            Net::Cnn(cnn) => vec![cnn.input.iter().product(), self.likelihood.outputs()],
        }
    }

    /// The network.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Number of parameters.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The device holding the data.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The element type the network computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A fresh initialisation from `seed`, the reference's: weights from a normal truncated at
    /// ±2 standard deviations, scaled to variance `1/fan_in` for dense layers (Haiku's default
    /// for `Linear`) and `2/fan_in` for convolutions (the `he_normal` of its ResNets), biases
    /// zero; filter response normalisation at γ = 1, β = τ = 0.
    pub fn init(&self, seed: u64) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        // Standard deviation of N(0, 1) truncated to [−2, 2].
        const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;
        let mut theta = Vec::with_capacity(self.dim);
        for (name, shape) in self.names.iter().zip(&self.shapes) {
            if shape.len() >= 2 {
                let fan_in: usize = shape[1..].iter().product();
                let gain = if shape.len() == 4 { 2.0 } else { 1.0 };
                let scale = (gain / fan_in as f64).sqrt() / TRUNCATED_STD;
                for _ in 0..shape.iter().product::<usize>() {
                    let z = loop {
                        let z: f64 = standard_normal(&mut rng);
                        if z.abs() <= 2.0 {
                            break z;
                        }
                    };
                    theta.push(scale * z);
                }
            } else {
                let v = if name.ends_with(".frn.gamma") {
                    1.0
                } else {
                    0.0
                };
                theta.extend(std::iter::repeat_n(v, shape.iter().product()));
            }
        }
        theta
    }

    /// A flat parameter vector `[dim]` on the model's device.
    ///
    /// # Errors
    /// A vector of the wrong length; engine errors.
    pub fn flat(&self, theta: &[f64]) -> Result<Tensor> {
        if theta.len() != self.dim {
            return Err(Error::invalid(
                "parameters",
                theta.len(),
                format!("the model {:?} has {} parameters", self.sizes(), self.dim),
            ));
        }
        Ok(Tensor::from_f64s(theta, &[self.dim], self.dtype)?.to_device(self.device)?)
    }

    /// The layers' parameters as views of a flat vector (gradients flow back to it).
    fn params(&self, theta: &Tensor) -> Result<Params> {
        let mut params = Params::new();
        let mut at = 0;
        for (name, shape) in self.names.iter().zip(&self.shapes) {
            let k: usize = shape.iter().product();
            params.insert(name.clone(), theta.narrow(0, at, k)?.reshape(shape)?)?;
            at += k;
        }
        Ok(params)
    }

    /// The parameters of `C` networks from the rows of `thetas` `[C, dim]`: weights
    /// `[C, out, in]` and biases `[C, 1, out]`, so that the MLP's layers run as batched products
    /// (the inputs broadcast against every network's first weights).
    fn batched_params(&self, thetas: &Tensor) -> Result<Params> {
        let c = thetas.dims()[0];
        let mut params = Params::new();
        let mut at = 0;
        for (name, shape) in self.names.iter().zip(&self.shapes) {
            let k: usize = shape.iter().product();
            let dims: Vec<usize> = match shape.as_slice() {
                [out] => vec![c, 1, *out],
                rest => std::iter::once(c).chain(rest.iter().copied()).collect(),
            };
            params.insert(name.clone(), thetas.narrow(1, at, k)?.reshape(&dims)?)?;
            at += k;
        }
        Ok(params)
    }

    /// `log L_T` for each network of [`Bnn::batched_params`], as a tensor `[C]`: over all
    /// training rows (`rows` `None`), or over network `c`'s own `B` rows
    /// `rows[c·B .. (c+1)·B]` (`rows` holds `C·B` indices).
    fn batched_log_likelihoods(
        &self,
        params: &Params,
        c: usize,
        rows: Option<&[usize]>,
    ) -> Result<Tensor> {
        let Net::Mlp(mlp) = &self.net else {
            return Err(Error::invalid(
                "model",
                self.arch.name(),
                "batched parameters are an MLP's",
            ));
        };
        let (x, n) = match rows {
            None => (self.x.clone(), self.n),
            Some(r) => {
                let b = r.len() / c.max(1);
                if b == 0 || b * c != r.len() {
                    return Err(Error::invalid(
                        "rows",
                        r.len(),
                        format!("not the same positive number of rows for each of {c} networks"),
                    ));
                }
                let d = self.x.dims()[1];
                (self.x.index_select(0, r)?.reshape(&[c, b, d])?, b)
            }
        };
        let out = mlp.forward(params, &x)?; // [C, n, outputs]
        match self.likelihood {
            Likelihood::Categorical { classes } => {
                let labels: Vec<usize> = match rows {
                    None => (0..c).flat_map(|_| self.labels.iter().copied()).collect(),
                    Some(r) => r.iter().map(|&i| self.labels[i]).collect(),
                };
                Ok(out
                    .log_softmax(-1)?
                    .reshape(&[c * n, classes])?
                    .gather_rows(&labels)?
                    .reshape(&[c, n])?
                    .sum(&[1], false)?
                    .mul_scalar(1.0 / self.temperature)?)
            }
            Likelihood::Gaussian => {
                let y = self
                    .y
                    .as_ref()
                    .ok_or_else(|| Error::invalid("model", "gaussian", "no targets"))?;
                let y = match rows {
                    None => y.clone(),
                    Some(r) => y.index_select(0, r)?.reshape(&[c, n])?,
                };
                let mu = out.narrow(2, 0, 1)?.reshape(&[c, n])?;
                let sigma = out
                    .narrow(2, 1, 1)?
                    .reshape(&[c, n])?
                    .softplus()?
                    .mul_scalar(self.temperature.sqrt())?;
                let z = y.sub(&mu)?.div(&sigma)?;
                Ok(z.square()?
                    .mul_scalar(-0.5)?
                    .sub(&sigma.log()?)?
                    .sum(&[1], false)?
                    .add_scalar(-0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln())?)
            }
        }
    }

    /// Mini-batch likelihoods and gradients of `C` MLPs at once, each on its own rows: for the
    /// rows `θ_c` of `thetas` `[C, dim]` (the model's element type, on its device) and
    /// `rows[c·B .. (c+1)·B]`, `log L_T(rows_c; θ_c)` (`C` values) and
    /// `scale · ∇ log L_T(rows_c; θ_c)` (`[C, dim]`, left on the device) — each row equal, up to
    /// the summation order of the batched products, to [`Bnn::likelihood_gradient`] of that
    /// network on its rows alone. The inputs of all networks are gathered into one `[C, B, d]`
    /// tensor, so every layer is one batched product.
    ///
    /// # Errors
    /// A CNN (its convolutions take one weight set); shapes that do not fit; engine errors.
    pub fn member_likelihood_gradients(
        &self,
        thetas: &Tensor,
        rows: &[usize],
        scale: f64,
    ) -> Result<(Vec<f64>, Tensor)> {
        let c = self.stacked("members", thetas)?;
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n) {
            return Err(Error::invalid(
                "rows",
                bad,
                format!("beyond the {} training rows", self.n),
            ));
        }
        let thetas = thetas.variable();
        let ll = self.batched_log_likelihoods(&self.batched_params(&thetas)?, c, Some(rows))?;
        values_and_gradients(&ll, &thetas, scale)
    }

    /// The number of stacked parameter vectors in `thetas`, which must be `[C, dim]` with
    /// `C ≥ 1` (`what` names the rows: chains, members).
    fn stacked(&self, what: &str, thetas: &Tensor) -> Result<usize> {
        let c = thetas.dims().first().copied().unwrap_or(0);
        if thetas.dims() != [c, self.dim] || c == 0 {
            return Err(Error::invalid(
                "parameters",
                format!("{:?}", thetas.dims()),
                format!(
                    "expected [{what}, {}] for the model {:?}",
                    self.dim,
                    self.sizes()
                ),
            ));
        }
        Ok(c)
    }

    /// `log L_T` summed over `rows` (all training rows when `None`) as a tensor; `inputs`, when
    /// given, replace the rows' stored inputs (an augmented batch, [`super::augment`]).
    fn log_likelihood_tensor(
        &self,
        params: &Params,
        rows: Option<&[usize]>,
        inputs: Option<&[f64]>,
    ) -> Result<Tensor> {
        let x = match (rows, inputs) {
            (Some(r), Some(x)) => {
                if x.len() != r.len() * self.x.dims()[1] {
                    return Err(Error::invalid(
                        "inputs",
                        x.len(),
                        format!("not {} rows of {} inputs", r.len(), self.x.dims()[1]),
                    ));
                }
                self.inputs(x, self.x.dims()[1])?
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "inputs",
                    "replacement inputs",
                    "given without the rows they stand for",
                ))
            }
            (Some(r), None) => self.x.index_select(0, r)?,
            (None, None) => self.x.clone(),
        };
        let out = self.net.forward(params, &x)?;
        let m = out.dims()[0];
        match self.likelihood {
            Likelihood::Categorical { .. } => {
                let picked: Vec<usize>;
                let labels: &[usize] = match rows {
                    Some(r) => {
                        picked = r.iter().map(|&i| self.labels[i]).collect();
                        &picked
                    }
                    None => &self.labels,
                };
                Ok(out
                    .log_softmax(-1)?
                    .gather_rows(labels)?
                    .sum_all()?
                    .mul_scalar(1.0 / self.temperature)?)
            }
            Likelihood::Gaussian => {
                let y = self
                    .y
                    .as_ref()
                    .ok_or_else(|| Error::invalid("model", "gaussian", "no targets"))?;
                let y = match rows {
                    Some(r) => y.index_select(0, r)?,
                    None => y.clone(),
                };
                let mu = out.narrow(1, 0, 1)?.reshape(&[m])?;
                let sigma = out
                    .narrow(1, 1, 1)?
                    .reshape(&[m])?
                    .softplus()?
                    .mul_scalar(self.temperature.sqrt())?;
                let z = y.sub(&mu)?.div(&sigma)?;
                Ok(z.square()?
                    .mul_scalar(-0.5)?
                    .sub(&sigma.log()?)?
                    .sum_all()?
                    .add_scalar(-0.5 * m as f64 * (2.0 * std::f64::consts::PI).ln())?)
            }
        }
    }

    /// `(log L_T(rows), scale · ∇ log L_T(rows))` — the likelihood alone, no prior. The
    /// stochastic methods pass `scale = n / batch` (the reference's unbiased full-data gradient).
    ///
    /// # Errors
    /// A parameter vector of the wrong length; engine errors.
    pub fn likelihood_gradient(
        &self,
        theta: &[f64],
        rows: Option<&[usize]>,
        scale: f64,
    ) -> Result<(f64, Vec<f64>)> {
        self.likelihood_gradient_with(theta, rows, None, scale)
    }

    /// [`Bnn::likelihood_gradient`] with `inputs` (standardised, `[rows, d]` row-major) in place
    /// of the rows' stored inputs when given: the labels are the rows', the inputs an augmented
    /// copy of theirs ([`super::augment::ShiftAugment::batch`]).
    ///
    /// # Errors
    /// As [`Bnn::likelihood_gradient`]; inputs that are not one row per row index, or inputs
    /// without rows.
    pub fn likelihood_gradient_with(
        &self,
        theta: &[f64],
        rows: Option<&[usize]>,
        inputs: Option<&[f64]>,
        scale: f64,
    ) -> Result<(f64, Vec<f64>)> {
        let (ll, g) = self.gradient_on_device(&self.flat(theta)?, rows, inputs, scale)?;
        Ok((ll, g.to_vec_f64()?))
    }

    /// [`Bnn::likelihood_gradient`] of a flat vector on the model's device, the gradient left
    /// there.
    ///
    /// # Errors
    /// A vector of the wrong length or place; engine errors.
    pub fn likelihood_gradient_on_device(
        &self,
        theta: &Tensor,
        rows: Option<&[usize]>,
        scale: f64,
    ) -> Result<(f64, Tensor)> {
        if theta.dims() != [self.dim] {
            return Err(Error::invalid(
                "parameters",
                format!("{:?}", theta.dims()),
                format!("the model {:?} has {} parameters", self.sizes(), self.dim),
            ));
        }
        self.gradient_on_device(theta, rows, None, scale)
    }

    /// `(log L_T(rows), scale · ∇ log L_T(rows))` at `theta` (the right length, on the model's
    /// device), `inputs` replacing the rows' stored inputs when given.
    fn gradient_on_device(
        &self,
        theta: &Tensor,
        rows: Option<&[usize]>,
        inputs: Option<&[f64]>,
        scale: f64,
    ) -> Result<(f64, Tensor)> {
        let theta = theta.variable();
        let ll = self.log_likelihood_tensor(&self.params(&theta)?, rows, inputs)?;
        let value = ll.item()?;
        let grads = autodiff::backward(&ll.mul_scalar(scale)?, &[&theta])?;
        let g = grads.into_iter().next().ok_or_else(|| {
            Error::invalid("parameters", "gradient", "the engine returned no gradient")
        })?;
        Ok((value, g))
    }

    /// `scale · log L_T(rows) + log p_T(θ)`'s gradient, and `log L_T(rows)`.
    ///
    /// # Errors
    /// As [`Bnn::likelihood_gradient`].
    pub fn posterior_gradient(
        &self,
        theta: &[f64],
        rows: Option<&[usize]>,
        scale: f64,
    ) -> Result<(f64, Vec<f64>)> {
        self.posterior_gradient_with(theta, rows, None, scale)
    }

    /// [`Bnn::posterior_gradient`] with replacement `inputs`, as
    /// [`Bnn::likelihood_gradient_with`].
    ///
    /// # Errors
    /// As [`Bnn::likelihood_gradient_with`].
    pub fn posterior_gradient_with(
        &self,
        theta: &[f64],
        rows: Option<&[usize]>,
        inputs: Option<&[f64]>,
        scale: f64,
    ) -> Result<(f64, Vec<f64>)> {
        let (ll, mut g) = self.likelihood_gradient_with(theta, rows, inputs, scale)?;
        self.prior.add_gradient(theta, self.temperature, &mut g);
        Ok((ll, g))
    }

    /// The network's predictive distribution on standardised inputs `x` (`[rows, d]`):
    /// class probabilities `[rows, C]`, or `(μ, σ)` pairs `[rows, 2]` with `σ = softplus(s)`.
    ///
    /// # Errors
    /// As [`Bnn::likelihood_gradient`].
    pub fn predict(&self, theta: &[f64], x: &Tensor) -> Result<Vec<f64>> {
        autodiff::no_grad(|| {
            let params = self.params(&self.flat(theta)?)?;
            let out = self.net.forward(&params, x)?;
            match self.likelihood {
                Likelihood::Categorical { .. } => Ok(out.softmax(-1)?.to_vec_f64()?),
                Likelihood::Gaussian => {
                    let mu = out.narrow(1, 0, 1)?.to_vec_f64()?;
                    let sd = out.narrow(1, 1, 1)?.softplus()?.to_vec_f64()?;
                    Ok(mu.into_iter().zip(sd).flat_map(|(m, s)| [m, s]).collect())
                }
            }
        })
    }

    /// Inputs `[rows, d]` as a tensor on the model's device.
    ///
    /// # Errors
    /// Engine errors.
    pub fn inputs(&self, x: &[f64], d: usize) -> Result<Tensor> {
        Ok(Tensor::from_f64s(x, &[x.len() / d.max(1), d], self.dtype)?.to_device(self.device)?)
    }
}

impl BatchTarget for Bnn {
    fn likelihoods_and_gradients(&self, thetas: &Tensor) -> Result<(Vec<f64>, Tensor)> {
        let c = self.stacked("chains", thetas)?;
        let thetas = thetas.variable();
        let ll = match self.net {
            Net::Mlp(_) => self.batched_log_likelihoods(&self.batched_params(&thetas)?, c, None)?,
            // A CNN's chains one after the other (the convolutions take one weight set), their
            // likelihoods stacked so that one backward pass reaches every row of `thetas`.
            Net::Cnn(_) => {
                let each = (0..c)
                    .map(|i| {
                        let theta = thetas.narrow(0, i, 1)?.reshape(&[self.dim])?;
                        self.log_likelihood_tensor(&self.params(&theta)?, None, None)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Tensor::stack(&each, 0)?
            }
        };
        values_and_gradients(&ll, &thetas, 1.0)
    }
}

/// The values of the independent log-likelihoods `ll` `[C]` of the stacked networks `thetas`
/// `[C, dim]` (a variable), and `scale ·` their gradients `[C, dim]`: the networks share no
/// parameter, so the gradient of the sum is each network's own gradient in its row.
fn values_and_gradients(ll: &Tensor, thetas: &Tensor, scale: f64) -> Result<(Vec<f64>, Tensor)> {
    let values = ll.to_vec_f64()?;
    let grads = autodiff::backward(&ll.sum_all()?.mul_scalar(scale)?, &[thetas])?;
    let g = grads.into_iter().next().ok_or_else(|| {
        Error::invalid("parameters", "gradient", "the engine returned no gradient")
    })?;
    Ok((values, g))
}

impl Target for Bnn {
    fn dim(&self) -> usize {
        self.dim
    }

    fn placement(&self) -> (Device, DType) {
        (self.device, self.dtype)
    }

    fn likelihood_and_gradient(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
        self.likelihood_gradient_on_device(theta, None, 1.0)
    }

    fn prior(&self) -> (PriorArgs, f64) {
        (self.prior.args(), self.temperature)
    }
}
