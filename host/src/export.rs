//! Model export: safetensors files with `__metadata__` naming the model kind and its config, in
//! the layout `keel-core` loads (`layer{i}.weight` as `[out, in]`, `layer{i}.bias`, optional
//! `input.mean`/`input.std` and `target.mean`/`target.std`). Written atomically.
//!
//! Convolutional networks (`keel.kind = "cnn"`) are in [`cnn`].

pub mod cnn;
pub mod wiski;

pub use cnn::{cnn_bytes, fold_batch_norm, write_cnn, AugerinoExport, CnnConfig, CnnLayer};

use std::collections::BTreeMap;
use std::path::Path;

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

/// Little-endian `f32` bytes of `v` (rounded to nearest).
pub(crate) fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect()
}

/// Named tensors to serialise: name, shape, little-endian f32 bytes.
pub(crate) type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// An MLP's `layer{i}.weight` `[out, in]` and `layer{i}.bias` `[out]` as little-endian f32, the
/// layout `keel_core::nn::Mlp` reads.
///
/// # Errors
/// Device reads of the parameters.
pub(crate) fn layer_tensors(mlp: &Mlp, params: &Params) -> Result<Vec<NamedTensor>> {
    prefixed_layer_tensors("", mlp, params)
}

/// As [`layer_tensors`], each name led by `prefix` (several MLPs in one file).
///
/// # Errors
/// Engine errors reading the weights.
pub(crate) fn prefixed_layer_tensors(
    prefix: &str,
    mlp: &Mlp,
    params: &Params,
) -> Result<Vec<NamedTensor>> {
    let mut named = Vec::with_capacity(2 * mlp.layers.len());
    for (i, l) in mlp.layers.iter().enumerate() {
        named.push((
            format!("{prefix}layer{i}.weight"),
            vec![l.out, l.inp],
            f32_bytes(&params.get(l.weight).to_vec_f64()?),
        ));
        named.push((
            format!("{prefix}layer{i}.bias"),
            vec![l.out],
            f32_bytes(&params.get(l.bias).to_vec_f64()?),
        ));
    }
    Ok(named)
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
    let mut named = layer_tensors(mlp, params)?;
    for (prefix, s) in [("input", &stats.input), ("target", &stats.target)] {
        if let Some((m, sd)) = s {
            named.push((format!("{prefix}.mean"), vec![m.len()], f32_bytes(m)));
            named.push((format!("{prefix}.std"), vec![sd.len()], f32_bytes(sd)));
        }
    }
    let config_json = serde_json::to_string(config)
        .map_err(|e| Error::invalid("export", "config", e.to_string()))?;
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "mlp".to_string()),
        ("keel.config".to_string(), config_json),
    ]);
    Ok(safetensors_bytes(&named, &meta))
}

/// Serialises tensors (name, shape, little-endian f32 bytes) and string metadata in the
/// safetensors format: an 8-byte little-endian header length, a JSON header (keys sorted, so the
/// same model always gives the same bytes) padded with spaces to a multiple of 8, then the data
/// in header order.
pub fn safetensors_bytes(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let typed: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, b)| (n.clone(), "F32", s.clone(), b.clone()))
        .collect();
    safetensors_bytes_typed(&typed, metadata)
}

/// As [`safetensors_bytes`], with each tensor's dtype (`"F32"`, `"U32"`, …) given.
pub fn safetensors_bytes_typed(
    tensors: &[(String, &'static str, Vec<usize>, Vec<u8>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut sorted: Vec<&(String, &'static str, Vec<usize>, Vec<u8>)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).unwrap_or_default(),
        );
    }
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in &sorted {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for (_, _, _, bytes) in sorted {
        out.extend_from_slice(bytes);
    }
    out
}

/// A model read back from an exported file into the host engine.
pub struct LoadedMlp {
    /// The network.
    pub mlp: Mlp,
    /// Its parameters (f32 as stored, widened to `dtype`).
    pub params: Params,
    /// Standardisation statistics.
    pub stats: Standardization,
}

/// Reads an MLP exported by [`write_mlp`] (or any file in that layout) into the host engine,
/// through `keel-core`'s validating reader — the same code the controller runs.
///
/// # Errors
/// [`Error::Malformed`] naming `what` and the core's reason.
pub fn load_mlp(
    bytes: &[u8],
    what: &std::path::Path,
    dtype: crate::backend::DType,
) -> Result<LoadedMlp> {
    use keel_core::io::SafeTensors;
    let bad = Error::malformed(what);
    let st = SafeTensors::<64>::parse(bytes).map_err(&bad)?;
    let core = keel_core::nn::Mlp::<16>::from_safetensors(&st).map_err(&bad)?;
    let cfg = core.config();
    let read = |name: &str| -> Result<(Vec<f64>, Vec<usize>)> {
        let t = st.tensor(name).map_err(&bad)?;
        let v = (0..t.len())
            .map(|i| t.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(&bad)?;
        Ok((v, t.shape().to_vec()))
    };
    let mut params = Params::new();
    let mut layers = Vec::new();
    for (i, d) in core.layers().iter().enumerate() {
        let (w, ws) = read(&format!("layer{i}.weight"))?;
        let (b, bs) = read(&format!("layer{i}.bias"))?;
        let weight = params.insert(
            format!("layer{i}.weight"),
            crate::tensor::Tensor::from_f64s(&w, &ws, dtype)?,
        )?;
        let bias = params.insert(
            format!("layer{i}.bias"),
            crate::tensor::Tensor::from_f64s(&b, &bs, dtype)?,
        )?;
        layers.push(crate::nn::Linear {
            weight,
            bias,
            inp: d.inputs(),
            out: d.outputs(),
        });
    }
    let activation = crate::nn::Activation::parse(cfg.activation().name())?;
    let pair = |prefix: &str, on: bool| -> Result<Option<(Vec<f64>, Vec<f64>)>> {
        if !on {
            return Ok(None);
        }
        Ok(Some((
            read(&format!("{prefix}.mean"))?.0,
            read(&format!("{prefix}.std"))?.0,
        )))
    };
    let stats = Standardization {
        input: pair("input", cfg.input_standardization())?,
        target: pair("target", cfg.target_standardization())?,
    };
    Ok(LoadedMlp {
        mlp: Mlp { layers, activation },
        params,
        stats,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_safetensors_implementation_reads_our_files() {
        let tensors = vec![
            (
                "b".to_string(),
                vec![2, 3],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            ("a".to_string(), vec![1], f32_bytes(&[-0.5])),
        ];
        let meta = BTreeMap::from([
            ("keel.kind".to_string(), "mlp".to_string()),
            ("x".to_string(), "{\"q\": 1}".to_string()),
        ]);
        let bytes = safetensors_bytes(&tensors, &meta);
        assert_eq!(bytes, safetensors_bytes(&tensors, &meta), "deterministic");
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            m.metadata().as_ref().unwrap().get("x").unwrap(),
            "{\"q\": 1}"
        );
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let b = st.tensor("b").unwrap();
        assert_eq!(b.shape(), &[2, 3]);
        assert_eq!(b.data(), &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])[..]);
        assert_eq!(st.tensor("a").unwrap().data(), &f32_bytes(&[-0.5])[..]);
    }
}
