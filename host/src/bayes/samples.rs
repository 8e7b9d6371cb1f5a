//! Sets of posterior samples (HMC states, SG-MCMC samples, ensemble members, draws from a
//! variational posterior) saved with what is needed to rebuild their model and data split, and
//! the predictive evaluation every method shares (as the reference's `bnn_hmc/run_hmc.py` and
//! `utils/ensemble_utils.py` do it): the BMA of class probabilities, or the moment-matched
//! Gaussian of a regression ensemble.
//!
//! File layout (safetensors): `samples` `F64 [S, P]` (one parameter vector per row, the order of
//! [`Bnn`]), `chain` `U32 [S]` (which chain or member drew it), metadata `keel.kind =
//! bayes-samples` and `keel.bayes` (the [`Spec`] as JSON).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mlp::{Arch, Bnn, Likelihood, Split, Standardize};
use super::prior::Prior;
use crate::backend::{DType, Device};
use crate::data::{self, Dataset};
use crate::error::{Error, Result};
use crate::export::safetensors_bytes_typed;
use crate::metrics;
use crate::output::write_atomic;

/// What a sample set was drawn from: the model, the prior, the data and its split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// `hmc`, `sgd`, `ensemble`, `sgld`, `sghmc`, `vi`.
    pub method: String,
    /// Hidden widths (an MLP's; empty for a CNN).
    pub hidden: Vec<usize>,
    /// A CNN's layers and image shape (`None`: the model is the MLP of `hidden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnn: Option<CnnSpec>,
    /// `categorical` or `gaussian`.
    pub likelihood: String,
    /// Class names (classification).
    pub classes: Vec<String>,
    /// Prior name.
    pub prior: String,
    /// Prior standard deviation.
    pub prior_std: f64,
    /// Mixture weight and ratio (used by the mixture prior).
    pub mixture_weight: f64,
    /// See `mixture_weight`.
    pub mixture_ratio: f64,
    /// Posterior temperature.
    pub temperature: f64,
    /// The data file's name (informational).
    pub data: String,
    /// Target column.
    pub target: String,
    /// Rows in the data file.
    pub rows: usize,
    /// Test fraction of the split.
    pub test_fraction: f64,
    /// Seed of the split's permutation.
    pub split_seed: u64,
    /// How the inputs were standardised (sets written before this field: per column).
    #[serde(default)]
    pub standardize: Standardize,
    /// The method's own settings (informational).
    pub settings: serde_json::Value,
}

/// A CNN sample set's network: [`Arch::Cnn`] as the file records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnSpec {
    /// The engine spec ([`crate::nn::cnn::parse_spec`]).
    pub layers: String,
    /// `[c, h, w]` of an image row.
    pub image: [usize; 3],
}

impl Spec {
    /// The network it names.
    pub fn arch(&self) -> Arch {
        match &self.cnn {
            Some(c) => Arch::Cnn {
                layers: c.layers.clone(),
                image: c.image,
            },
            None => Arch::Mlp(self.hidden.clone()),
        }
    }

    /// The prior it names.
    ///
    /// # Errors
    /// As [`Prior::new`].
    pub fn prior(&self) -> Result<Prior> {
        Prior::new(
            &self.prior,
            self.prior_std,
            self.mixture_weight,
            self.mixture_ratio,
        )
    }

    /// Whether two sets are predictions of the same model on the same test rows; else the first
    /// difference.
    pub fn same_problem(&self, other: &Spec) -> std::result::Result<(), String> {
        let pairs = [
            ("model", self.arch().name(), other.arch().name()),
            (
                "hidden widths",
                format!("{:?}", self.hidden),
                format!("{:?}", other.hidden),
            ),
            (
                "image shape",
                format!("{:?}", self.cnn.as_ref().map(|c| c.image)),
                format!("{:?}", other.cnn.as_ref().map(|c| c.image)),
            ),
            (
                "likelihood",
                self.likelihood.clone(),
                other.likelihood.clone(),
            ),
            ("target", self.target.clone(), other.target.clone()),
            ("data rows", self.rows.to_string(), other.rows.to_string()),
            (
                "test fraction",
                self.test_fraction.to_string(),
                other.test_fraction.to_string(),
            ),
            (
                "split seed",
                self.split_seed.to_string(),
                other.split_seed.to_string(),
            ),
            (
                "standardisation",
                self.standardize.name().to_string(),
                other.standardize.name().to_string(),
            ),
        ];
        for (what, a, b) in pairs {
            if a != b {
                return Err(format!("{what} {a} vs {b}"));
            }
        }
        Ok(())
    }
}

/// Samples with their origin.
#[derive(Clone, Debug)]
pub struct SampleSet {
    /// Where they came from.
    pub spec: Spec,
    /// Parameter vectors.
    pub samples: Vec<Vec<f64>>,
    /// Chain (or member) of each.
    pub chain: Vec<usize>,
}

impl SampleSet {
    /// Writes the set atomically.
    ///
    /// # Errors
    /// An empty set; [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let p = self.samples.first().map_or(0, Vec::len);
        if p == 0 {
            return Err(Error::invalid(
                "save_samples",
                path.display(),
                "no samples to save",
            ));
        }
        let flat: Vec<u8> = self
            .samples
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let chain: Vec<u8> = self
            .chain
            .iter()
            .flat_map(|&c| (c as u32).to_le_bytes())
            .collect();
        let spec = serde_json::to_string(&self.spec)
            .map_err(|e| Error::invalid("save_samples", "spec", e.to_string()))?;
        let meta = BTreeMap::from([
            ("keel.kind".to_string(), "bayes-samples".to_string()),
            ("keel.bayes".to_string(), spec),
        ]);
        let bytes = safetensors_bytes_typed(
            &[
                ("samples".into(), "F64", vec![self.samples.len(), p], flat),
                ("chain".into(), "U32", vec![self.chain.len()], chain),
            ],
            &meta,
        );
        write_atomic(path, &bytes)
    }

    /// Reads a set written by [`SampleSet::save`].
    ///
    /// # Errors
    /// [`Error::Io`]; as [`SampleSet::from_bytes`].
    pub fn load(path: &Path) -> Result<SampleSet> {
        Self::from_bytes(&crate::output::read(path)?, path)
    }

    /// Reads a set from the bytes of a file written by [`SampleSet::save`] (`path` names it in
    /// errors), checking it against its own description: the configuration (`keel.bayes`) must
    /// be one the methods write, its network must have as many parameters as each sample, and
    /// the number of samples and their chains must be what its method's settings make.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a file that is not a sample set (naming what it is), or whose
    /// configuration and tensors disagree (naming the first disagreement).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<SampleSet> {
        use keel_core::io::{Dtype, SafeTensors};
        let bad = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let st = SafeTensors::<8>::parse(bytes).map_err(|e| bad(e.to_string()))?;
        let kind = st.metadata("keel.kind").and_then(|k| k.as_str());
        if kind != Some("bayes-samples") {
            return Err(bad(format!(
                "not a sample set (keel.kind {})",
                kind.map_or("missing".to_string(), |k| format!("'{k}'"))
            )));
        }
        let spec_json: String = st
            .metadata("keel.bayes")
            .ok_or_else(|| bad("no keel.bayes metadata".into()))?
            .chars()
            .collect();
        let spec: Spec =
            serde_json::from_str(&spec_json).map_err(|e| bad(format!("keel.bayes: {e}")))?;
        spec.check().map_err(|e| bad(format!("keel.bayes: {e}")))?;
        if let Some((name, _)) = st
            .tensors()
            .find(|(name, _)| *name != "samples" && *name != "chain")
        {
            return Err(bad(format!(
                "unexpected tensor `{name}` (a sample set holds `samples` and `chain`)"
            )));
        }
        let s = st
            .tensor("samples")
            .map_err(|e| bad(format!("samples: {e}")))?;
        let c = st.tensor("chain").map_err(|e| bad(format!("chain: {e}")))?;
        if s.dtype() != Dtype::F64 || c.dtype() != Dtype::U32 {
            return Err(bad(format!(
                "samples is {} and chain {}, expected F64 and U32",
                s.dtype().name(),
                c.dtype().name()
            )));
        }
        if s.rank() != 2 || c.rank() != 1 || c.shape()[0] != s.shape()[0] {
            return Err(bad(format!(
                "samples {:?} and chain {:?} do not fit together",
                s.shape(),
                c.shape()
            )));
        }
        let (count, p) = (s.shape()[0], s.shape()[1]);
        if count == 0 || p == 0 {
            return Err(bad(format!("samples {:?} holds no samples", s.shape())));
        }
        spec.check_parameters(p)
            .map_err(|e| bad(format!("samples {:?}: {e}", s.shape())))?;
        let chain: Vec<usize> = c
            .data()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        spec.check_chains(&chain)
            .map_err(|e| bad(format!("chain: {e}")))?;
        let flat = (0..s.len())
            .map(|i| s.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        Ok(SampleSet {
            spec,
            samples: flat.chunks(p).map(<[f64]>::to_vec).collect(),
            chain,
        })
    }
}

/// The methods that write sample sets.
const METHODS: [&str; 6] = ["hmc", "sgd", "ensemble", "sgld", "sghmc", "vi"];

impl Spec {
    /// Whether the configuration is one the methods write: a known method, likelihood and
    /// prior, positive widths, classes for a classifier (none for a regression), a positive
    /// temperature and a test fraction in `[0, 1)`.
    ///
    /// # Errors
    /// The first problem, in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !METHODS.contains(&self.method.as_str()) {
            return Err(format!(
                "unknown method '{}' (expected one of {})",
                self.method,
                METHODS.join(", ")
            ));
        }
        let classes = self.classes.len();
        match self.likelihood.as_str() {
            "categorical" if classes < 2 => {
                return Err(format!("a categorical likelihood with {classes} classes"))
            }
            "gaussian" if classes > 0 => {
                return Err(format!("a gaussian likelihood with {classes} classes"))
            }
            "categorical" | "gaussian" => {}
            other => return Err(format!("unknown likelihood '{other}'")),
        }
        if self.hidden.contains(&0) {
            return Err(format!("hidden widths {:?} include 0", self.hidden));
        }
        if let Some(c) = &self.cnn {
            if !self.hidden.is_empty() {
                return Err(format!(
                    "both hidden widths {:?} and a CNN ({})",
                    self.hidden, c.layers
                ));
            }
            if c.image.contains(&0) {
                return Err(format!("image shape {:?} has a zero side", c.image));
            }
            Arch::cnn_layers(&c.layers).map_err(|e| e.to_string())?;
        }
        self.prior().map_err(|e| e.to_string())?;
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature {} is not positive", self.temperature));
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return Err(format!(
                "test fraction {} is outside [0, 1)",
                self.test_fraction
            ));
        }
        Ok(())
    }

    /// The network's outputs: the classes, or `(μ, s)`.
    fn outputs(&self) -> usize {
        if self.likelihood == "categorical" {
            self.classes.len()
        } else {
            2
        }
    }

    /// Whether `p` parameters make a network `[d, hidden…, outputs]` for some input width
    /// `d ≥ 1` (the data's, which the set does not record): `p = d·w₁ + rest`.
    ///
    /// # Errors
    /// The widths and counts that disagree, in words.
    pub fn check_parameters(&self, p: usize) -> std::result::Result<(), String> {
        if let Some(c) = &self.cnn {
            // The network of a CNN set is known exactly: build it and count.
            let spec = Arch::cnn_layers(&c.layers).map_err(|e| e.to_string())?;
            let mut params = crate::params::Params::new();
            let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(0);
            crate::nn::cnn::Cnn::new(
                &mut params,
                "",
                c.image,
                &spec,
                self.outputs(),
                crate::DType::F32,
                &mut rng,
            )
            .map_err(|e| format!("the CNN {} does not build: {e}", c.layers))?;
            if params.numel() != p {
                return Err(format!(
                    "{p} parameters per sample, but the CNN {} on {:?} images with {} outputs has {}",
                    c.layers,
                    c.image,
                    self.outputs(),
                    params.numel()
                ));
            }
            return Ok(());
        }
        let sizes: Vec<usize> = self
            .hidden
            .iter()
            .copied()
            .chain([self.outputs()])
            .collect();
        let first = sizes[0] as u128;
        // Everything but the first layer's weights: its bias, then each later layer.
        let rest = sizes.windows(2).fold(first, |acc, w| {
            acc.saturating_add((w[0] as u128) * (w[1] as u128) + w[1] as u128)
        });
        let p = p as u128;
        if p <= rest || !(p - rest).is_multiple_of(first) {
            return Err(format!(
                "{p} parameters per sample do not make a network with hidden widths {:?} and \
                 {} outputs ({rest} parameters past the first layer's weights, then a multiple \
                 of {first})",
                self.hidden,
                self.outputs()
            ));
        }
        Ok(())
    }

    /// Whether `chain` (one entry per sample) is what the method's settings make: one sample
    /// per member, in order (`sgd`, `ensemble`); `draws` samples of chain 0 (`vi`); chains in
    /// order, each below `chains` (`hmc`, `sgld`, `sghmc`), and for `hmc` at most `samples`
    /// per chain.
    ///
    /// # Errors
    /// The disagreement, in words.
    pub fn check_chains(&self, chain: &[usize]) -> std::result::Result<(), String> {
        let setting = |key: &str| -> std::result::Result<usize, String> {
            self.settings
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| format!("the {} settings record no count `{key}`", self.method))
        };
        let n = chain.len();
        match self.method.as_str() {
            "sgd" | "ensemble" => {
                let members = setting("members")?;
                if n != members || chain.iter().enumerate().any(|(i, &c)| c != i) {
                    return Err(format!(
                        "{n} samples for {members} members (one each, numbered in order)"
                    ));
                }
            }
            "vi" => {
                let draws = setting("draws")?;
                if n != draws || chain.iter().any(|&c| c != 0) {
                    return Err(format!("{n} samples for {draws} draws (all of chain 0)"));
                }
            }
            _ => {
                let chains = setting("chains")?;
                if let Some(&c) = chain.iter().find(|&&c| c >= chains) {
                    return Err(format!("chain {c} of a run with {chains} chains"));
                }
                if chain.windows(2).any(|w| w[1] < w[0]) {
                    return Err("chains are not in order".into());
                }
                if self.method == "hmc" {
                    let per_chain = setting("samples")?;
                    if let Some(run) = chain.chunk_by(|a, b| a == b).find(|r| r.len() > per_chain) {
                        return Err(format!(
                            "{} samples in chain {}; the run drew {per_chain} per chain",
                            run.len(),
                            run[0]
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads the data a spec names and rebuilds its split and model.
///
/// # Errors
/// The data file's errors; a file with a different number of rows or other classes than the
/// spec records.
pub fn rebuild(spec: &Spec, data_path: &Path, device: Device) -> Result<(Split, Bnn)> {
    let likelihood = likelihood_of(spec)?;
    let classify = matches!(likelihood, Likelihood::Categorical { .. });
    let data = data::read_csv(data_path, &spec.target, classify).map_err(|e| match e {
        Error::InvalidInput { .. } => Error::invalid(
            "data",
            data_path.display(),
            format!(
                "does not fit the samples (drawn on {}, target '{}'): {e}",
                spec.data, spec.target
            ),
        ),
        e => e,
    })?;
    check_data(spec, &data, data_path)?;
    let split = Split::standardized(&data, spec.test_fraction, spec.split_seed, spec.standardize)?;
    let bnn = Bnn::with_arch(
        &split,
        &spec.arch(),
        likelihood,
        spec.prior()?,
        spec.temperature,
        device,
        DType::F64,
    )?;
    Ok((split, bnn))
}

fn likelihood_of(spec: &Spec) -> Result<Likelihood> {
    match spec.likelihood.as_str() {
        "categorical" => Ok(Likelihood::Categorical {
            classes: spec.classes.len(),
        }),
        "gaussian" => Ok(Likelihood::Gaussian),
        other => Err(Error::invalid("likelihood", other, "unknown")),
    }
}

fn check_data(spec: &Spec, data: &Dataset, path: &Path) -> Result<()> {
    let classes = match &data.y {
        data::Targets::Classes { classes, .. } => classes.clone(),
        data::Targets::Values(_) => Vec::new(),
    };
    if data.rows() != spec.rows || classes != spec.classes {
        return Err(Error::invalid(
            "data",
            path.display(),
            format!(
                "has {} rows and classes {:?}; the samples were drawn on {} rows with classes {:?} ({})",
                data.rows(),
                classes,
                spec.rows,
                spec.classes,
                spec.data
            ),
        ));
    }
    Ok(())
}

/// The predictive distribution of a set on test rows.
#[derive(Clone, Debug)]
pub enum Predictive {
    /// BMA class probabilities `[rows, C]`.
    Classes {
        /// Probabilities.
        probs: Vec<f64>,
        /// `C`.
        classes: usize,
    },
    /// The moment-matched Gaussian, in standardised units.
    Gaussian {
        /// Means.
        mean: Vec<f64>,
        /// Standard deviations.
        std: Vec<f64>,
    },
}

/// Per-sample predictions on the split's test rows.
///
/// # Errors
/// A sample of the wrong length; engine errors.
pub fn predictions(bnn: &Bnn, split: &Split, samples: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    let x = bnn.inputs(&split.x_test, split.d)?;
    samples.iter().map(|s| bnn.predict(s, &x)).collect()
}

/// The BMA (probabilities averaged) or the moment-matched Gaussian of per-sample predictions.
pub fn predictive(likelihood: Likelihood, preds: &[Vec<f64>]) -> Predictive {
    match likelihood {
        Likelihood::Categorical { classes } => {
            let len = preds.first().map_or(0, Vec::len);
            let mut probs = vec![0.0; len];
            for p in preds {
                for (a, b) in probs.iter_mut().zip(p) {
                    *a += b / preds.len() as f64;
                }
            }
            Predictive::Classes { probs, classes }
        }
        Likelihood::Gaussian => {
            let means: Vec<Vec<f64>> = preds
                .iter()
                .map(|p| p.iter().step_by(2).copied().collect())
                .collect();
            let stds: Vec<Vec<f64>> = preds
                .iter()
                .map(|p| p.iter().skip(1).step_by(2).copied().collect())
                .collect();
            let (mean, std) = metrics::moment_matched(&means, &stds);
            Predictive::Gaussian { mean, std }
        }
    }
}

/// Test metrics of a predictive distribution (as in `bnn_hmc/utils/metrics.py`): accuracy, NLL,
/// ECE (equal-width 10 bins and `bnn_hmc`'s equal-mass 20 bins), or RMSE and NLL in the target's
/// units.
pub fn test_metrics(pred: &Predictive, split: &Split) -> serde_json::Value {
    match (pred, &split.y_test) {
        (Predictive::Classes { probs, classes }, super::mlp::Labels::Classes(y)) => {
            serde_json::json!({
                "accuracy": metrics::accuracy(probs, *classes, y),
                "nll": metrics::nll(probs, *classes, y),
                "ece": metrics::ece(probs, *classes, y, 10),
                "ece_equal_mass": metrics::ece_equal_mass(probs, *classes, y, 20),
            })
        }
        (Predictive::Gaussian { mean, std }, super::mlp::Labels::Values(y)) => {
            serde_json::json!({
                "rmse": metrics::rmse(mean, y) * split.y_scale,
                "nll": metrics::gaussian_nll(mean, std, y) + split.y_scale.ln(),
            })
        }
        _ => serde_json::json!({}),
    }
}

/// Closeness of `p` to the reference `q`: top-1 agreement and total variation for classes;
/// total variation between the moment-matched Gaussians (by quadrature, per test point,
/// averaged) and the RMS gap between their means (target units) for regression.
pub fn closeness(p: &Predictive, q: &Predictive, y_scale: f64) -> serde_json::Value {
    match (p, q) {
        (Predictive::Classes { probs: a, classes }, Predictive::Classes { probs: b, .. }) => {
            serde_json::json!({
                "agreement": metrics::agreement(a, b, *classes),
                "total_variation": metrics::total_variation(a, b, *classes),
            })
        }
        (
            Predictive::Gaussian { mean: m1, std: s1 },
            Predictive::Gaussian { mean: m2, std: s2 },
        ) => {
            let n = m1.len().max(1) as f64;
            let tv: f64 = (0..m1.len())
                .map(|i| gaussian_tv(m1[i], s1[i], m2[i], s2[i]))
                .sum::<f64>()
                / n;
            serde_json::json!({
                "total_variation": tv,
                "mean_gap": metrics::rmse(m1, m2) * y_scale,
            })
        }
        _ => serde_json::json!({}),
    }
}

/// `½∫|N(x; μ₁, σ₁²) − N(x; μ₂, σ₂²)| dx` by the midpoint rule over ±10 of the wider scale.
pub fn gaussian_tv(m1: f64, s1: f64, m2: f64, s2: f64) -> f64 {
    let pdf = |x: f64, m: f64, s: f64| {
        (-0.5 * ((x - m) / s).powi(2)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
    };
    let w = s1.max(s2);
    let (lo, hi) = (m1.min(m2) - 10.0 * w, m1.max(m2) + 10.0 * w);
    let k = 20_000;
    let h = (hi - lo) / k as f64;
    0.5 * (0..k)
        .map(|i| {
            let x = lo + (i as f64 + 0.5) * h;
            (pdf(x, m1, s1) - pdf(x, m2, s2)).abs()
        })
        .sum::<f64>()
        * h
}

/// Function-space Gelman–Rubin R̂ (the paper applies R̂ to predictions; here the plain, non-split
/// statistic): for every test point and output (each class probability, or the predictive mean), R̂
/// of the per-sample predictions across chains, each chain truncated to the shortest; `(mean, max)`
/// over the finite values, `None` with fewer than two chains of two samples.
pub fn function_space_rhat(
    preds: &[Vec<f64>],
    chain: &[usize],
    likelihood: Likelihood,
) -> Option<(f64, f64)> {
    let chains = chain.iter().copied().max()? + 1;
    // A chain without samples makes the shortest length 0 (no R̂); found before allocating a
    // list per chain index, which a file's chain numbers could make astronomically long.
    if chain
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        != chains
    {
        return None;
    }
    let by_chain: Vec<Vec<&Vec<f64>>> = (0..chains)
        .map(|c| {
            preds
                .iter()
                .zip(chain)
                .filter(|(_, &k)| k == c)
                .map(|(p, _)| p)
                .collect()
        })
        .collect();
    let n = by_chain.iter().map(Vec::len).min()?;
    if chains < 2 || n < 2 {
        return None;
    }
    let len = preds.first()?.len();
    // Every class probability, or every predictive mean (the even entries of `(μ, σ)` pairs).
    let step = match likelihood {
        Likelihood::Categorical { .. } => 1,
        Likelihood::Gaussian => 2,
    };
    let (mut sum, mut max, mut count) = (0.0, 0.0f64, 0usize);
    for j in (0..len).step_by(step) {
        let series: Vec<Vec<f64>> = by_chain
            .iter()
            .map(|c| c[..n].iter().map(|p| p[j]).collect())
            .collect();
        if let Some(r) = metrics::gelman_rubin(&series).filter(|r| r.is_finite()) {
            sum += r;
            max = max.max(r);
            count += 1;
        }
    }
    (count > 0).then(|| (sum / count as f64, max))
}

/// `count` samples spread evenly over a set (all of them if it has fewer), for an exported
/// model average.
pub fn spread(samples: &[Vec<f64>], count: usize) -> Vec<&Vec<f64>> {
    let n = samples.len();
    let k = count.min(n).max(1);
    (0..k).map(|i| &samples[i * n / k]).collect()
}

/// Whether [`bma_bytes`] can write a set of this spec: an MLP's (the core's model average holds
/// MLPs).
///
/// # Errors
/// [`Error::InvalidInput`] naming `--samples` for a CNN set.
pub fn exportable(spec: &Spec) -> Result<()> {
    match &spec.cnn {
        Some(c) => Err(Error::invalid(
            "--samples",
            format!("cnn:{}", c.layers),
            "the core's model-average file holds MLPs; a CNN set is evaluated on the host (keel bayes compare, shift)",
        )),
        None => Ok(()),
    }
}

/// The `bma` file `keel-core` reads ([`keel_core::nn::Bma`]): `count` samples of `set` spread
/// evenly over it as `f32`, the widths, and the input standardisation of `split`.
///
/// # Errors
/// A regression set (the core averages class probabilities); an empty set.
pub fn bma_bytes(set: &SampleSet, split: &Split, sizes: &[usize], count: usize) -> Result<Vec<u8>> {
    if set.spec.likelihood != "categorical" {
        return Err(Error::invalid(
            "samples",
            &set.spec.method,
            "the core's model average is over class probabilities; this set is a regression",
        ));
    }
    exportable(&set.spec)?;
    if set.samples.is_empty() || count == 0 {
        return Err(Error::invalid("count", count, "no samples to export"));
    }
    let chosen = spread(&set.samples, count);
    let p = chosen[0].len();
    let needed = parameter_count(sizes);
    if needed != Some(p) {
        return Err(Error::invalid(
            "--samples",
            &set.spec.method,
            format!(
                "its samples hold {p} parameters; the network {sizes:?} of these data has {}",
                needed.map_or("too many".to_string(), |n| n.to_string())
            ),
        ));
    }
    let flat: Vec<f64> = chosen.iter().flat_map(|s| s.iter().copied()).collect();
    let sizes_f: Vec<f64> = sizes.iter().map(|&s| s as f64).collect();
    let f32b = crate::export::f32_bytes;
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "bma".to_string()),
        (
            "keel.bayes".to_string(),
            serde_json::to_string(&set.spec)
                .map_err(|e| Error::invalid("export", "spec", e.to_string()))?,
        ),
    ]);
    Ok(crate::export::safetensors_bytes(
        &[
            ("samples".into(), vec![chosen.len(), p], f32b(&flat)),
            ("sizes".into(), vec![sizes.len()], f32b(&sizes_f)),
            ("input.mean".into(), vec![split.d], f32b(&split.x_mean)),
            ("input.std".into(), vec![split.d], f32b(&split.x_std)),
        ],
        &meta,
    ))
}

/// Parameters of a network with layer widths `sizes` (`Σ in·out + out`); `None` on overflow.
fn parameter_count(sizes: &[usize]) -> Option<usize> {
    sizes.windows(2).try_fold(0usize, |acc, w| {
        w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(acc)
    })
}

/// The model average of a `bma` file on raw inputs `x` (`[rows, in]`) computed by the host
/// engine in `f64` — independently of the core's reader and loop, for checking them.
///
/// # Errors
/// [`Error::Malformed`] for a file that is not a `bma` file, holds a non-finite weight, mean or
/// scale, or whose average is not finite on `x`; engine errors.
pub fn bma_engine(bytes: &[u8], what: &Path, x: &[f64]) -> Result<Vec<f64>> {
    use crate::tensor::Tensor;
    let bad = |reason: String| Error::Malformed {
        path: what.to_path_buf(),
        reason,
    };
    let st = keel_core::io::SafeTensors::<8>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if st.metadata("keel.kind").and_then(|k| k.as_str()) != Some("bma") {
        return Err(bad("not a `bma` file".into()));
    }
    let read = |name: &str| -> Result<(Vec<f64>, Vec<usize>)> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        let v = (0..t.len())
            .map(|i| t.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        Ok((v, t.shape().to_vec()))
    };
    let (samples, shape) = read("samples")?;
    let (widths, _) = read("sizes")?;
    // Widths are small whole numbers (an f32 holds them exactly up to 2^24).
    let sizes: Vec<usize> = widths
        .iter()
        .map(|&w| ((1.0..=16_777_216.0).contains(&w) && w.fract() == 0.0).then_some(w as usize))
        .collect::<Option<_>>()
        .filter(|s: &Vec<usize>| s.len() >= 2)
        .ok_or_else(|| {
            bad(format!(
                "sizes {widths:?} are not two or more positive widths"
            ))
        })?;
    let p = parameter_count(&sizes);
    if shape.len() != 2 || shape[0] == 0 || Some(shape[1]) != p {
        return Err(bad(format!(
            "samples {shape:?} do not hold the {} parameters of a network {sizes:?}",
            p.map_or("(too many)".to_string(), |p| p.to_string())
        )));
    }
    let (mean, _) = read("input.mean")?;
    let (std, _) = read("input.std")?;
    let d = sizes[0];
    if mean.len() != d || std.len() != d {
        return Err(bad(format!(
            "input.mean and input.std hold {} and {} values for {d} inputs",
            mean.len(),
            std.len()
        )));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::invalid(
            "inputs",
            x.len(),
            format!("not rows of the model's {d} inputs"),
        ));
    }
    // As the core's reader (`keel_core::nn::Bma`): finite means, positive finite scales. The
    // weights too: a NaN among them makes NaN probabilities, which the firmware comparison's
    // largest-difference fold would pass over.
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "samples hold a non-finite weight (sample {}, parameter {})",
            i / shape[1],
            i % shape[1]
        )));
    }
    if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(bad(
            "input.mean must be finite and input.std positive and finite".into(),
        ));
    }
    let rows = x.len() / d;
    let xs = Tensor::from_f64s(&data::standardize(x, &mean, &std), &[rows, d], DType::F64)?;
    let classes = *sizes.last().unwrap_or(&0);
    let mut probs = vec![0.0; rows * classes];
    crate::autodiff::no_grad(|| -> Result<()> {
        for s in samples.chunks(shape[1]) {
            let mut h = xs.clone();
            let mut at = 0;
            for (l, w) in sizes.windows(2).enumerate() {
                let (inp, out) = (w[0], w[1]);
                let wt = Tensor::from_f64s(&s[at..at + out * inp], &[out, inp], DType::F64)?;
                let b = Tensor::from_f64s(
                    &s[at + out * inp..at + out * inp + out],
                    &[out],
                    DType::F64,
                )?;
                at += out * inp + out;
                h = h.matmul_t(&wt, false, true)?.add(&b)?;
                if l + 2 < sizes.len() {
                    h = h.relu()?;
                }
            }
            for (p, q) in probs.iter_mut().zip(h.softmax(-1)?.to_vec_f64()?) {
                *p += q / shape[0] as f64;
            }
        }
        Ok(())
    })?;
    if let Some(i) = probs.iter().position(|p| !p.is_finite()) {
        return Err(bad(format!(
            "the model average of input row {} is not finite (weights too large for f64)",
            i / classes
        )));
    }
    Ok(probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_tv_matches_closed_forms() {
        // Equal scales: TV = 2Φ(|Δμ|/2σ) − 1.
        let tv = gaussian_tv(0.0, 1.0, 1.0, 1.0);
        assert!((tv - 0.382_924_922_548_026).abs() < 1e-6, "{tv}");
        assert!(gaussian_tv(0.3, 0.7, 0.3, 0.7) < 1e-12);
        assert!(gaussian_tv(0.0, 1.0, 100.0, 1.0) > 1.0 - 1e-9);
    }
}
