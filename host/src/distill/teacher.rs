//! Teachers: anything Keel writes that predicts classes, as a set of member networks whose
//! softmax outputs are averaged — a `keel fit` model file (`keel.kind` `mlp` or `cnn`, one
//! member), a `keel bayes` sample set (every sample a member: the posterior predictive
//! distilled into one network), a simplex ensemble of `keel simplex train --export` (its
//! `K·S` networks with weights `Σ_j α_sj w_kj`, components × interior points). Several teacher
//! files form one teacher whose predictive is the mean of theirs.
//!
//! Members are frozen: they run in f64 on the CPU on raw input rows (each file applies its own
//! input standardisation), outside the student's gradient.

use std::path::{Path, PathBuf};

use keel_core::io::SafeTensors;

use super::loss::log_mean_softmax;
use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::data::{standardize, Dataset, Targets};
use crate::error::{Error, Result};
use crate::nn::{Activation, Linear, Mlp};
use crate::params::Params;
use crate::tensor::Tensor;

/// A dense network with its weights (layer by layer `W [out, in]` row-major, then `b [out]`).
#[derive(Clone, Debug)]
pub struct DenseWeights {
    /// Widths `[in, h₁, …, out]`.
    pub sizes: Vec<usize>,
    /// Hidden activation.
    pub activation: Activation,
    /// Flat parameters in layer order.
    pub flat: Vec<f64>,
    /// Input standardisation `(mean, std)` applied to raw rows.
    pub input: Option<(Vec<f64>, Vec<f64>)>,
}

impl DenseWeights {
    /// The engine network and its parameters (`layer{i}.weight`, `layer{i}.bias`) in `dtype`.
    ///
    /// # Errors
    /// A flat vector of the wrong length; engine errors.
    pub fn to_engine(&self, dtype: DType) -> Result<(Mlp, Params)> {
        let mut params = Params::new();
        let mut layers = Vec::new();
        let mut at = 0;
        for (i, w) in self.sizes.windows(2).enumerate() {
            let (inp, out) = (w[0], w[1]);
            let take = |at: &mut usize, k: usize| -> Result<Vec<f64>> {
                let v = self.flat.get(*at..*at + k).ok_or_else(|| {
                    Error::invalid(
                        "teacher",
                        self.flat.len(),
                        format!("too few parameters for widths {:?}", self.sizes),
                    )
                })?;
                *at += k;
                Ok(v.to_vec())
            };
            let wv = take(&mut at, out * inp)?;
            let bv = take(&mut at, out)?;
            let weight = params.insert(
                format!("layer{i}.weight"),
                Tensor::from_f64s(&wv, &[out, inp], dtype)?,
            )?;
            let bias = params.insert(
                format!("layer{i}.bias"),
                Tensor::from_f64s(&bv, &[out], dtype)?,
            )?;
            layers.push(Linear {
                weight,
                bias,
                inp,
                out,
            });
        }
        if at != self.flat.len() {
            return Err(Error::invalid(
                "teacher",
                self.flat.len(),
                format!("more parameters than widths {:?} take", self.sizes),
            ));
        }
        Ok((
            Mlp {
                layers,
                activation: self.activation,
            },
            params,
        ))
    }
}

enum Member {
    Dense {
        mlp: Mlp,
        params: Params,
    },
    /// A CNN file, run by `keel-core` (it applies its own pixel normalisation).
    Cnn,
}

/// The split a simplex ensemble trained on CSV rows was drawn with `(test fraction, seed)`, from
/// its `keel.simplex` training spec: `keel simplex train` splits as `keel bayes` does, so the
/// student's test rows are the teacher's (none for generated data).
fn simplex_split(st: &SafeTensors<'_, 64>) -> Option<(f64, u64)> {
    let spec: crate::simplex::data::Spec =
        serde_json::from_str(&metadata(st, "keel.simplex")?).ok()?;
    (spec.source == "csv").then_some((spec.test_fraction, spec.split_seed))
}

/// One teacher file.
pub struct TeacherFile {
    /// The file.
    pub path: PathBuf,
    /// `mlp`, `cnn`, `bayes-samples` (with the method) or `simplex`.
    pub kind: String,
    /// Class names in output order.
    pub classes: Vec<String>,
    /// Input column names, when the file records them.
    pub features: Option<Vec<String>>,
    /// Input width.
    pub inputs: usize,
    /// The train/test split a sample set was drawn with `(test fraction, seed)`.
    pub split: Option<(f64, u64)>,
    /// The single network, when the file holds exactly one dense network.
    pub single: Option<DenseWeights>,
    input: Option<(Vec<f64>, Vec<f64>)>,
    members: Vec<Member>,
    bytes: Vec<u8>,
}

fn metadata(st: &SafeTensors<'_, 64>, key: &str) -> Option<String> {
    st.metadata(key).map(|v| v.chars().collect())
}

fn read_f64(st: &SafeTensors<'_, 64>, name: &str, path: &Path) -> Result<(Vec<f64>, Vec<usize>)> {
    let bad = Error::malformed(path);
    let t = st.tensor(name).map_err(&bad)?;
    let v = (0..t.len())
        .map(|i| t.get_f64(i))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(&bad)?;
    Ok((v, t.shape().to_vec()))
}

impl TeacherFile {
    /// Reads a teacher file; `data` (the CSV the student is distilled on) rebuilds a sample
    /// set's model and split.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a file that is not one of the kinds above (naming its kind);
    /// [`Error::InvalidInput`] for a simplex of CNNs (not supported yet) or data that do not
    /// fit a sample set.
    pub fn load(path: &Path, data: &Path) -> Result<TeacherFile> {
        let bytes = crate::output::read(path)?;
        let st = SafeTensors::<64>::parse(&bytes).map_err(Error::malformed(path))?;
        let kind = metadata(&st, "keel.kind").unwrap_or_default();
        let malformed = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        match kind.as_str() {
            "mlp" => {
                let cfg: serde_json::Value =
                    serde_json::from_str(&metadata(&st, "keel.config").unwrap_or_default())
                        .map_err(|e| malformed(format!("keel.config: {e}")))?;
                if cfg["output"] != "logits" {
                    return Err(malformed(format!(
                        "a teacher must output class logits; this model's output is {}",
                        cfg["output"]
                    )));
                }
                let loaded = crate::export::load_mlp(&bytes, path, DType::F64)?;
                let strings = |k: &str| -> Vec<String> {
                    cfg[k]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let mut flat = Vec::new();
                for l in &loaded.mlp.layers {
                    flat.extend(loaded.params.get(l.weight).to_vec_f64()?);
                    flat.extend(loaded.params.get(l.bias).to_vec_f64()?);
                }
                let sizes = loaded.mlp.sizes();
                let single = DenseWeights {
                    sizes: sizes.clone(),
                    activation: loaded.mlp.activation,
                    flat,
                    input: loaded.stats.input.clone(),
                };
                Ok(TeacherFile {
                    path: path.to_path_buf(),
                    kind: "mlp".into(),
                    classes: strings("classes"),
                    features: Some(strings("features")),
                    inputs: sizes[0],
                    split: None,
                    single: Some(single),
                    input: loaded.stats.input,
                    members: vec![Member::Dense {
                        mlp: loaded.mlp,
                        params: loaded.params,
                    }],
                    bytes: Vec::new(),
                })
            }
            "cnn" => {
                let cnn = keel_core::nn::Cnn::<'_, 32>::from_safetensors(&st)
                    .map_err(Error::malformed(path))?;
                if cnn.config().output() != keel_core::nn::Output::Logits {
                    return Err(malformed(
                        "a teacher must output class logits; this CNN is a regression model".into(),
                    ));
                }
                let cfg: serde_json::Value =
                    serde_json::from_str(&metadata(&st, "keel.config").unwrap_or_default())
                        .map_err(|e| malformed(format!("keel.config: {e}")))?;
                let classes = cfg["classes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let inputs = cnn.input_len();
                Ok(TeacherFile {
                    path: path.to_path_buf(),
                    kind: "cnn".into(),
                    classes,
                    features: None,
                    inputs,
                    split: None,
                    single: None,
                    input: None,
                    members: vec![Member::Cnn],
                    bytes: bytes.clone(),
                })
            }
            "bayes-samples" => {
                let set = crate::bayes::samples::SampleSet::from_bytes(&bytes, path)?;
                if set.spec.likelihood != "categorical" {
                    return Err(malformed(format!(
                        "a teacher must classify; these samples have a {} likelihood",
                        set.spec.likelihood
                    )));
                }
                if let Some(c) = &set.spec.cnn {
                    return Err(malformed(format!(
                        "a CNN sample set (cnn:{}) as a teacher: teachers from keel bayes are \
                         MLP sets; give a CNN teacher as a model file",
                        c.layers
                    )));
                }
                let (split, bnn) = crate::bayes::samples::rebuild(&set.spec, data, Device::Cpu)?;
                let sizes = bnn.sizes();
                let input = Some((split.x_mean.clone(), split.x_std.clone()));
                let dense: Vec<DenseWeights> = set
                    .samples
                    .iter()
                    .map(|s| DenseWeights {
                        sizes: sizes.clone(),
                        activation: Activation::Relu,
                        flat: s.clone(),
                        input: input.clone(),
                    })
                    .collect();
                let single = (dense.len() == 1).then(|| dense[0].clone());
                let members = dense
                    .iter()
                    .map(|d| {
                        let (mlp, params) = d.to_engine(DType::F64)?;
                        Ok(Member::Dense { mlp, params })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(TeacherFile {
                    path: path.to_path_buf(),
                    kind: format!("bayes-samples ({})", set.spec.method),
                    classes: set.spec.classes.clone(),
                    features: None,
                    inputs: sizes[0],
                    split: Some((set.spec.test_fraction, set.spec.split_seed)),
                    single,
                    input,
                    members,
                    bytes: Vec::new(),
                })
            }
            "simplex" => Self::simplex(&st, path),
            other => Err(malformed(format!(
                "keel.kind is {}; a teacher is a model file (mlp, cnn), a keel bayes sample set \
                 or a simplex ensemble",
                if other.is_empty() {
                    "missing".to_string()
                } else {
                    format!("'{other}'")
                }
            ))),
        }
    }

    /// A simplex ensemble: `vertices [K, n, P]`, `points [S, n]`, `sizes [L+1]`,
    /// `input.mean`/`input.std`, `keel.config` naming the model.
    fn simplex(st: &SafeTensors<'_, 64>, path: &Path) -> Result<TeacherFile> {
        let malformed = |reason: String| Error::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let cfg: serde_json::Value =
            serde_json::from_str(&metadata(st, "keel.config").unwrap_or_default())
                .map_err(|e| malformed(format!("keel.config: {e}")))?;
        match cfg["model"].as_str() {
            Some("mlp") => {}
            Some("cnn") => {
                return Err(Error::invalid(
                    "teacher",
                    path.display(),
                    "a simplex of CNNs is not supported as a teacher yet (simplexes of MLPs are)",
                ))
            }
            other => return Err(malformed(format!("keel.config model {other:?}"))),
        }
        if cfg["activation"].as_str().is_some_and(|a| a != "relu") {
            return Err(malformed(format!(
                "activation {}: simplex teachers are ReLU MLPs",
                cfg["activation"]
            )));
        }
        let (v, vs) = read_f64(st, "vertices", path)?;
        let (pts, ps) = read_f64(st, "points", path)?;
        let (sz, _) = read_f64(st, "sizes", path)?;
        let sizes: Vec<usize> = sz.iter().map(|&s| s.round() as usize).collect();
        let p: usize = sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        if vs.len() != 3 || ps.len() != 2 || vs[2] != p || ps[1] != vs[1] || sizes.len() < 2 {
            return Err(malformed(format!(
                "vertices {vs:?} and points {ps:?} do not fit widths {sizes:?} ({p} parameters)"
            )));
        }
        let (k, n, s) = (vs[0], vs[1], ps[0]);
        let mean = read_f64(st, "input.mean", path)?.0;
        let std = read_f64(st, "input.std", path)?.0;
        let input = Some((mean, std));
        let strings = |key: &str| -> Vec<String> {
            cfg[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut members = Vec::with_capacity(k * s);
        let mut dense = Vec::new();
        for c in 0..k {
            for a in pts.chunks_exact(n) {
                let mut flat = vec![0.0; p];
                for (j, &alpha) in a.iter().enumerate() {
                    let w = &v[(c * n + j) * p..][..p];
                    for (f, x) in flat.iter_mut().zip(w) {
                        *f += alpha * x;
                    }
                }
                let d = DenseWeights {
                    sizes: sizes.clone(),
                    activation: Activation::Relu,
                    flat,
                    input: input.clone(),
                };
                let (mlp, params) = d.to_engine(DType::F64)?;
                members.push(Member::Dense { mlp, params });
                dense.push(d);
            }
        }
        Ok(TeacherFile {
            path: path.to_path_buf(),
            kind: "simplex".into(),
            classes: strings("classes"),
            features: Some(strings("features")),
            inputs: sizes[0],
            split: simplex_split(st),
            single: (dense.len() == 1).then(|| dense[0].clone()),
            input,
            members,
            bytes: Vec::new(),
        })
    }

    /// Number of member networks.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Each member's logits `[rows, classes]` for raw input rows `x`.
    ///
    /// # Errors
    /// Engine and core errors.
    pub fn member_logits(&self, x: &[f64]) -> Result<Vec<Vec<f64>>> {
        let rows = x.len() / self.inputs.max(1);
        let xs = match &self.input {
            Some((m, s)) => standardize(x, m, s),
            None => x.to_vec(),
        };
        let mut out = Vec::with_capacity(self.members.len());
        for m in &self.members {
            out.push(match m {
                Member::Dense { mlp, params } => {
                    let t = Tensor::from_f64s(&xs, &[rows, self.inputs], DType::F64)?;
                    no_grad(|| mlp.forward(params, &t))?.to_vec_f64()?
                }
                Member::Cnn => {
                    let st = SafeTensors::<64>::parse(&self.bytes)
                        .map_err(Error::malformed(&self.path))?;
                    let cnn = keel_core::nn::Cnn::<'_, 32>::from_safetensors(&st)
                        .map_err(Error::malformed(&self.path))?;
                    let k = cnn.outputs();
                    let mut scratch = vec![0.0f64; cnn.scratch_len()];
                    let mut logits = vec![0.0f64; rows * k];
                    for (img, o) in xs.chunks_exact(self.inputs).zip(logits.chunks_exact_mut(k)) {
                        cnn.forward(img, o, &mut scratch)
                            .map_err(Error::malformed(&self.path))?;
                    }
                    logits
                }
            });
        }
        Ok(out)
    }
}

/// The teacher: one or more files.
pub struct Teacher {
    /// The files.
    pub files: Vec<TeacherFile>,
    /// Classes.
    pub classes: usize,
}

impl Teacher {
    /// Reads `paths` and checks each against the data's classes and input columns.
    ///
    /// # Errors
    /// As [`TeacherFile::load`]; [`Error::InvalidInput`] (setting `teacher`) naming the file's
    /// and the data's classes or columns when they differ.
    pub fn load(paths: &[PathBuf], data_path: &Path, data: &Dataset) -> Result<Teacher> {
        if paths.is_empty() {
            return Err(Error::invalid(
                "teacher",
                "(none)",
                "give at least one teacher file",
            ));
        }
        let classes = match &data.y {
            Targets::Classes { classes, .. } => classes.clone(),
            Targets::Values(_) => {
                return Err(Error::invalid(
                    "target",
                    "values",
                    "distillation needs a class column",
                ))
            }
        };
        let mut files = Vec::new();
        for p in paths {
            let f = TeacherFile::load(p, data_path)?;
            if !f.classes.is_empty() && f.classes != classes {
                return Err(Error::invalid(
                    "teacher",
                    p.display(),
                    format!(
                        "predicts classes {:?}; the data {} has classes {:?}",
                        f.classes,
                        data_path.display(),
                        classes
                    ),
                ));
            }
            let cols_differ = match &f.features {
                Some(names) if !names.is_empty() => *names != data.features,
                _ => f.inputs != data.cols(),
            };
            if cols_differ {
                return Err(Error::invalid(
                    "teacher",
                    p.display(),
                    format!(
                        "takes input columns {}; the data {} has {}",
                        describe(f.features.as_deref(), f.inputs),
                        data_path.display(),
                        describe(Some(&data.features), data.cols())
                    ),
                ));
            }
            files.push(f);
        }
        Ok(Teacher {
            files,
            classes: classes.len(),
        })
    }

    /// Total member networks.
    pub fn members(&self) -> usize {
        self.files.iter().map(TeacherFile::members).sum()
    }

    /// The reduced logits `z̄ = log mean softmax` `[rows, classes]` for raw rows `x`: each
    /// file's members reduced, then the files' predictives averaged.
    ///
    /// # Errors
    /// As [`TeacherFile::member_logits`].
    pub fn logits(&self, x: &[f64]) -> Result<Vec<f64>> {
        let per_file = self
            .files
            .iter()
            .map(|f| Ok(log_mean_softmax(&f.member_logits(x)?, self.classes)))
            .collect::<Result<Vec<_>>>()?;
        Ok(if per_file.len() == 1 {
            per_file.into_iter().next().unwrap_or_default()
        } else {
            log_mean_softmax(&per_file, self.classes)
        })
    }

    /// The single dense network of a one-network teacher (for interpolated initialisation).
    pub fn single(&self) -> Option<&DenseWeights> {
        match self.files.as_slice() {
            [f] => f.single.as_ref(),
            _ => None,
        }
    }
}

fn describe(names: Option<&[String]>, n: usize) -> String {
    match names {
        Some(v) if !v.is_empty() => {
            if v.len() > 6 {
                format!("{n} [{}, …, {}]", v[..3].join(", "), v[v.len() - 1])
            } else {
                format!("{n} [{}]", v.join(", "))
            }
        }
        _ => format!("{n} (unnamed)"),
    }
}
