//! Loss-surface simplexes (Benton, Maddox, Lotfi & Wilson, *Loss Surface Simplexes for Mode
//! Connecting Volumes and Fast Ensembling*, ICML 2021; reference code
//! g-benton/loss-surface-simplexes): SPRO grows a simplex of low-loss networks one vertex at a
//! time, ESPRO trains an ensemble of such simplexes, and a mode-connecting complex joins
//! independently trained networks through shared connector vertices.
//!
//! - [`volume`]: the Cayley–Menger squared volume and its gradient;
//! - [`net`]: the engine MLP or CNN as a simplex (every parameter a convex combination of its
//!   vertex copies);
//! - [`mod@train`]: SPRO, ESPRO and the complex driver, with resumable checkpoints;
//! - [`data`]: CSV tables (split as `keel bayes` splits them) and the authors' two spirals;
//! - [`surface`]: the loss over the plane through three vertices.
//!
//! **Prediction** (an assumption: the reference ships no ESPRO evaluation script; its
//! two-spirals notebook averages logits of sampled points): each simplex is evaluated at the
//! same `S` fixed interior points `α_s ~ Dirichlet(1)` drawn from the seed, and the class
//! probabilities — not logits — are averaged over simplexes × points:
//! `p(y|x) = (1/(K·S)) Σ_k Σ_s softmax(f(x; Σ_j α_sj w_kj))`.
//!
//! **Model file** (`keel simplex train --export`), safetensors, every tensor `F32`:
//! `vertices [K, n, P]` (simplex k, vertex j, the flat parameters: for an MLP layer by layer
//! `W [out, in]` row-major then `b [out]`, the layout of `keel bayes`'s `bma` files; for a CNN
//! the engine CNN's parameter order — each layer's weight `[out, in, k, k]` or `[out, in]`, its
//! bias, then its batch-norm γ and β), `points [S, n]`, `sizes [L+1]` (MLP widths; for a CNN
//! `[inputs, classes]`), `input.mean`, `input.std [in]`, and for a CNN with batch norm
//! `running [K, R]` (each batch-norm layer's running mean then variance, per simplex — an
//! addition the MLP layout does not need); metadata `keel.kind = simplex`, `keel.config` (model,
//! sizes, activation, components, vertices, points, classes, features; for a CNN `layers` and
//! `image_shape`) and `keel.simplex` (the training [`data::Spec`]).

pub mod data;
pub mod net;
pub mod surface;
pub mod train;
pub mod volume;

use std::collections::BTreeMap;
use std::path::Path;

pub use data::{Problem, Spec};
pub use net::{Arch, Net};
pub use train::{
    assemble, train, train_share, Driver, EpochStats, Optim, Part, Share, SimplexConfig,
    SimplexReport, Trained,
};

use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::export::{f32_bytes, safetensors_bytes};
use crate::nn::cnn::CnnState;
use crate::params::Params;

/// `keel.kind` of an exported simplex model.
pub const KIND: &str = "simplex";

/// An ensemble of simplexes ready to predict: `K` components of `n` vertices each, the `S`
/// interior points, the input standardisation and what it was trained on.
#[derive(Clone, Debug)]
pub struct SimplexModel {
    /// The network.
    pub net: Net,
    /// Per component, its vertices.
    pub components: Vec<Vec<Params>>,
    /// Per component, batch norm's running statistics (empty for an MLP).
    pub states: Vec<CnnState>,
    /// The interior points `α_s` (each sums to 1).
    pub points: Vec<Vec<f64>>,
    /// Input means.
    pub mean: Vec<f64>,
    /// Input scales.
    pub std: Vec<f64>,
    /// Class names.
    pub classes: Vec<String>,
    /// Feature names.
    pub features: Vec<String>,
    /// The training data and settings.
    pub spec: Spec,
}

const EVAL_BATCH: usize = 1024;

impl SimplexModel {
    /// Vertices per simplex.
    pub fn vertices(&self) -> usize {
        self.components.first().map_or(0, Vec::len)
    }

    /// Class probabilities `[rows, C]` of component `k` at the single point `alpha` on
    /// standardised rows `x` (evaluation mode).
    ///
    /// # Errors
    /// Engine errors; [`Error::InvalidInput`] for a point of the wrong dimension.
    pub fn point_probs(&self, k: usize, alpha: &[f64], x: &[f64], rows: usize) -> Result<Vec<f64>> {
        let refs: Vec<&Params> = self.components[k].iter().collect();
        let point = crate::no_grad(|| self.net.combine(&refs, alpha))?;
        let mut state = self.states[k].clone();
        let d = self.net.inputs();
        let mut out = Vec::with_capacity(rows * self.net.classes());
        for start in (0..rows).step_by(EVAL_BATCH) {
            let n = EVAL_BATCH.min(rows - start);
            let xt = self.net.input(&x[start * d..(start + n) * d], n)?;
            let p = crate::no_grad(|| -> Result<crate::Tensor> {
                Ok(self
                    .net
                    .forward(&point, &mut state, &xt, false, 0)?
                    .softmax(-1)?)
            })?;
            out.extend(p.to_vec_f64()?);
        }
        Ok(out)
    }

    /// The simplex-ensemble probabilities on standardised rows.
    ///
    /// # Errors
    /// As [`SimplexModel::point_probs`].
    pub fn predict_standardized(&self, x: &[f64], rows: usize) -> Result<Vec<f64>> {
        let mut acc = vec![0.0; rows * self.net.classes()];
        let m = (self.components.len() * self.points.len()) as f64;
        for k in 0..self.components.len() {
            for a in &self.points {
                let p = self.point_probs(k, a, x, rows)?;
                for (s, v) in acc.iter_mut().zip(p) {
                    *s += v / m;
                }
            }
        }
        Ok(acc)
    }

    /// The simplex-ensemble class probabilities `[rows, C]` of raw rows `x_raw` (`[rows, in]`),
    /// standardised with the training statistics; computed by the host engine in the model's
    /// element type (f64 for a loaded file).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `x_raw` that is not `rows × in` values; engine errors.
    pub fn predict_proba(&self, x_raw: &[f64], rows: usize) -> Result<Vec<f64>> {
        let d = self.net.inputs();
        if x_raw.len() != rows * d {
            return Err(Error::invalid(
                "inputs",
                x_raw.len(),
                format!("expected {rows} rows × {d} inputs"),
            ));
        }
        let x = crate::data::standardize(x_raw, &self.mean, &self.std);
        self.predict_standardized(&x, rows)
    }

    /// The model file's bytes (see the module documentation for the layout).
    ///
    /// # Errors
    /// Device reads.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let k = self.components.len();
        let n = self.vertices();
        let p = self.net.parameters();
        let mut flat = Vec::with_capacity(k * n * p);
        for c in &self.components {
            for v in c {
                flat.extend(net::flatten(v)?);
            }
        }
        let pts: Vec<f64> = self.points.iter().flatten().copied().collect();
        let sizes: Vec<usize> = match self.net.arch() {
            Arch::Mlp { .. } => self.net.sizes(),
            Arch::Cnn { .. } => vec![self.net.inputs(), self.net.classes()],
        };
        let sizes_f: Vec<f64> = sizes.iter().map(|&s| s as f64).collect();
        let d = self.net.inputs();
        let mut tensors = vec![
            ("vertices".to_string(), vec![k, n, p], f32_bytes(&flat)),
            (
                "points".to_string(),
                vec![self.points.len(), n],
                f32_bytes(&pts),
            ),
            ("sizes".to_string(), vec![sizes.len()], f32_bytes(&sizes_f)),
            ("input.mean".to_string(), vec![d], f32_bytes(&self.mean)),
            ("input.std".to_string(), vec![d], f32_bytes(&self.std)),
        ];
        let mut running = Vec::new();
        for s in &self.states {
            for (m, v) in &s.running {
                running.extend(m.to_vec_f64()?);
                running.extend(v.to_vec_f64()?);
            }
        }
        if !running.is_empty() {
            let r = running.len() / k;
            tensors.push(("running".to_string(), vec![k, r], f32_bytes(&running)));
        }
        let mut config = serde_json::json!({
            "model": self.net.arch().name(),
            "sizes": sizes,
            "activation": "relu",
            "components": k,
            "vertices": n,
            "points": self.points.len(),
            "classes": self.classes,
            "features": self.features,
        });
        if let Arch::Cnn { layers, image } = self.net.arch() {
            config["layers"] = serde_json::json!(layers);
            config["image_shape"] = serde_json::json!(image);
        }
        let meta = BTreeMap::from([
            ("keel.kind".to_string(), KIND.to_string()),
            ("keel.config".to_string(), config.to_string()),
            (
                "keel.simplex".to_string(),
                serde_json::to_string(&self.spec)
                    .map_err(|e| Error::invalid("export", "spec", e.to_string()))?,
            ),
        ]);
        Ok(safetensors_bytes(&tensors, &meta))
    }
}

/// Loads a model file written by `keel simplex train --export`, for prediction in `f64` on the
/// CPU.
///
/// # Errors
/// [`Error::Io`]; [`Error::Malformed`] for a file of another kind (naming it) or whose tensors
/// do not fit its configuration.
pub fn load(path: &Path) -> Result<SimplexModel> {
    let bytes = crate::output::read(path)?;
    from_bytes(&bytes, path)
}

/// As [`load`], from the file's bytes (`path` names it in errors).
///
/// # Errors
/// As [`load`].
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<SimplexModel> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let st = keel_core::io::SafeTensors::<16>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let text = |k: &str| -> Option<String> { st.metadata(k).map(|v| v.chars().collect()) };
    match text("keel.kind") {
        Some(k) if k == KIND => {}
        Some(k) => {
            return Err(bad(format!(
                "a `{k}` file, not a simplex model (write one with `keel simplex train --export`)"
            )))
        }
        None => return Err(bad("no `keel.kind`: not a keel simplex model".into())),
    }
    let config: serde_json::Value = text("keel.config")
        .and_then(|c| serde_json::from_str(&c).ok())
        .ok_or_else(|| bad("no readable `keel.config`".into()))?;
    let spec: Spec = text("keel.simplex")
        .and_then(|c| serde_json::from_str(&c).ok())
        .ok_or_else(|| bad("no readable `keel.simplex`".into()))?;
    let read = |name: &str| -> Result<(Vec<f64>, Vec<usize>)> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        let v = (0..t.len())
            .map(|i| t.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        Ok((v, t.shape().to_vec()))
    };
    let strings = |k: &str| -> Vec<String> {
        config[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let classes = strings("classes");
    let features = strings("features");
    let (sizes, _) = read("sizes")?;
    let sizes: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
    let (inputs, outputs) = match (sizes.first(), sizes.last()) {
        (Some(&a), Some(&b)) if sizes.len() >= 2 && a > 0 && b > 0 => (a, b),
        _ => return Err(bad(format!("sizes {sizes:?} are not two or more widths"))),
    };
    let arch = match config["model"].as_str() {
        Some("mlp") => Arch::Mlp {
            hidden: sizes[1..sizes.len() - 1].to_vec(),
        },
        Some("cnn") => {
            let layers = config["layers"].as_str().unwrap_or_default().to_string();
            let image: [usize; 3] = serde_json::from_value(config["image_shape"].clone())
                .map_err(|_| bad("`image_shape` is not [c, h, w]".into()))?;
            Arch::Cnn { layers, image }
        }
        other => return Err(bad(format!("model {other:?} is neither mlp nor cnn"))),
    };
    let net = Net::new(&arch, inputs, outputs, DType::F64, Device::Cpu)
        .map_err(|e| bad(e.to_string()))?;
    let (verts, shape) = read("vertices")?;
    let p = net.parameters();
    if shape.len() != 3 || shape[2] != p || shape[0] == 0 || shape[1] == 0 {
        return Err(bad(format!(
            "vertices {shape:?} are not [K, n, {p}] for this network"
        )));
    }
    let (k, n) = (shape[0], shape[1]);
    let (pts, pshape) = read("points")?;
    if pshape.len() != 2 || pshape[1] != n || pshape[0] == 0 {
        return Err(bad(format!("points {pshape:?} are not [S, {n}]")));
    }
    let points: Vec<Vec<f64>> = pts.chunks_exact(n).map(<[f64]>::to_vec).collect();
    let (mean, _) = read("input.mean")?;
    let (std, _) = read("input.std")?;
    if mean.len() != inputs || std.len() != inputs {
        return Err(bad(format!(
            "input.mean and input.std hold {} and {} values for {inputs} inputs",
            mean.len(),
            std.len()
        )));
    }
    let mut components = Vec::with_capacity(k);
    for c in verts.chunks_exact(n * p) {
        components.push(
            c.chunks_exact(p)
                .map(|v| net::unflatten(net.template(), v))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    let fresh = net.fresh_state();
    let mut states = vec![fresh.clone(); k];
    if !fresh.running.is_empty() {
        let (running, rshape) = read("running")?;
        let r: usize = fresh
            .running
            .iter()
            .map(|(m, v)| m.numel() + v.numel())
            .sum();
        if rshape != [k, r] {
            return Err(bad(format!("running {rshape:?} is not [{k}, {r}]")));
        }
        for (s, chunk) in states.iter_mut().zip(running.chunks_exact(r)) {
            let mut at = 0;
            for (m, v) in &mut s.running {
                for t in [m, v] {
                    let len = t.numel();
                    *t = crate::Tensor::from_f64s(&chunk[at..at + len], t.dims(), DType::F64)?;
                    at += len;
                }
            }
        }
    }
    Ok(SimplexModel {
        net,
        components,
        states,
        points,
        mean,
        std,
        classes,
        features,
        spec,
    })
}
