//! Model export: safetensors files with `__metadata__` naming the model kind and its config, in
//! the layout `keel-core` loads (`layer{i}.weight` as `[out, in]`, `layer{i}.bias`, optional
//! `input.mean`/`input.std` and `target.mean`/`target.std`). Written atomically.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::nn::Mlp;
use crate::output::write_atomic;
use crate::params::Params;

/// What the network's outputs mean (the `output` field of `keel.config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Class logits.
    Logits,
    /// Plain regression outputs.
    Regression,
    /// Means then raw scales (`σ = softplus(raw) + 1e-6`), `k` of each.
    Gaussian,
}

/// The JSON stored in `keel.config` for an MLP.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MlpConfig {
    /// `[in, h₁, …, out]`.
    pub sizes: Vec<usize>,
    /// Hidden activation name.
    pub activation: String,
    /// Output meaning.
    pub output: OutputKind,
    /// Whether `input.mean`/`input.std` are present.
    pub input_standardization: bool,
    /// Whether `target.mean`/`target.std` are present.
    pub target_standardization: bool,
    /// Class names in output order (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Feature names in input order.
    pub features: Vec<String>,
}

/// Standardisation statistics saved with a model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Standardization {
    /// Input means and standard deviations.
    pub input: Option<(Vec<f64>, Vec<f64>)>,
    /// Target means and standard deviations.
    pub target: Option<(Vec<f64>, Vec<f64>)>,
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect()
}

/// Serialises an MLP (weights as little-endian f32) with its config to safetensors bytes.
///
/// # Errors
/// [`Error::InvalidInput`] if the config and the parameters disagree.
pub fn mlp_bytes(
    mlp: &Mlp,
    params: &Params,
    config: &MlpConfig,
    stats: &Standardization,
) -> Result<Vec<u8>> {
    if config.sizes != mlp.sizes() {
        return Err(Error::invalid(
            "export",
            format!("{:?}", config.sizes),
            format!("config sizes differ from the model's {:?}", mlp.sizes()),
        ));
    }
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, l) in mlp.layers.iter().enumerate() {
        named.push((
            format!("layer{i}.weight"),
            vec![l.out, l.inp],
            f32_bytes(&params.get(l.weight).to_vec_f64()),
        ));
        named.push((
            format!("layer{i}.bias"),
            vec![l.out],
            f32_bytes(&params.get(l.bias).to_vec_f64()),
        ));
    }
    for (prefix, s) in [("input", &stats.input), ("target", &stats.target)] {
        if let Some((m, sd)) = s {
            named.push((format!("{prefix}.mean"), vec![m.len()], f32_bytes(m)));
            named.push((format!("{prefix}.std"), vec![sd.len()], f32_bytes(sd)));
        }
    }
    let views = named
        .iter()
        .map(|(n, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid("export", n, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let config_json = serde_json::to_string(config)
        .map_err(|e| Error::invalid("export", "config", e.to_string()))?;
    let meta = HashMap::from([
        ("keel.kind".to_string(), "mlp".to_string()),
        ("keel.config".to_string(), config_json),
    ]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::invalid("export", "safetensors", e.to_string()))
}

/// Writes an MLP to `path` atomically.
///
/// # Errors
/// As [`mlp_bytes`]; [`Error::Io`].
pub fn write_mlp(
    path: &Path,
    mlp: &Mlp,
    params: &Params,
    config: &MlpConfig,
    stats: &Standardization,
) -> Result<()> {
    write_atomic(path, &mlp_bytes(mlp, params, config, stats)?)
}
