//! Saved learned-dynamics models (`keel chnn train --export`, `keel chnn eval`).
//!
//! One safetensors file per model: every parameter under its name (f32), `keel.kind` = the
//! model (`chnn`, `clnn`, `node`, `hnn`) and `keel.chnn` = the run ([`Info`], JSON). CHNN and
//! CLNN files are also what `keel-core` loads (`keel_core::dynamics::learned`): the potential
//! in the MLP layout (`layer{i}.*` and `keel.config`), `mass.theta`, and the constraint graph
//! as float tables — `graph.bodies` `[bodies, 2]` (first node, nodes), `graph.tethers`
//! `[k, 1 + d]` (node, anchor), `graph.distances` `[k, 2]`, `graph.linear` `[k, 1 + n]` (axis,
//! weight per node); lengths and offsets are never stored (the model never knew them).

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::random::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::data::{generate, SystemSpec};
use super::model::{Graph, Link, ModelKind};
use super::train::Net;
use super::truth::truth;
use crate::error::{Error, Result};
use crate::export::{f32_bytes, safetensors_bytes, MlpConfig, OutputKind};
use crate::output::write_atomic;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// The run a saved model came from (`keel.chnn`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// `chnn`, `clnn`, `node` or `hnn`.
    pub model: String,
    /// The system's flag value (`chain-pendulum`, …).
    pub system: String,
    /// `--links`, where the system has a size.
    pub links: Option<usize>,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Training trajectories.
    pub n_train: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Seed.
    pub seed: u64,
    /// The data's time step.
    pub dt: f64,
}

impl Info {
    /// The system.
    ///
    /// # Errors
    /// An unknown system name.
    pub fn spec(&self) -> Result<SystemSpec> {
        Ok(SystemSpec {
            kind: self.system.parse()?,
            size: self.links,
        })
    }
}

/// A model read back.
pub struct Saved {
    /// The network.
    pub net: Net,
    /// Its parameters (f32).
    pub params: Params,
    /// Where it came from.
    pub info: Info,
}

/// The graph as the float tables `keel-core` reads.
fn graph_tables(g: &Graph) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |name: &str, width: usize, rows: Vec<Vec<f64>>| {
        if !rows.is_empty() {
            let flat: Vec<f64> = rows.concat();
            out.push((name.to_string(), vec![rows.len(), width], f32_bytes(&flat)));
        }
    };
    push(
        "graph.bodies",
        2,
        g.bodies
            .iter()
            .map(|&(s, c)| vec![s as f64, c as f64])
            .collect(),
    );
    let mut tethers = Vec::new();
    let mut distances = Vec::new();
    let mut linear = Vec::new();
    for link in &g.links {
        match link {
            Link::Tether { node, anchor } => tethers.push(
                std::iter::once(*node as f64)
                    .chain(anchor.iter().copied())
                    .collect(),
            ),
            Link::Distance { a, b } => distances.push(vec![*a as f64, *b as f64]),
            Link::Linear { axis, terms } => {
                let mut row = vec![0.0; 1 + g.n];
                row[0] = *axis as f64;
                for &(node, w) in terms {
                    row[1 + node] += w;
                }
                linear.push(row);
            }
        }
    }
    push("graph.tethers", 1 + g.d, tethers);
    push("graph.distances", 2, distances);
    push("graph.linear", 1 + g.n, linear);
    out
}

/// The bytes of a saved model.
///
/// # Errors
/// Tensor conversion errors.
pub fn to_bytes(net: &Net, params: &Params, info: &Info) -> Result<Vec<u8>> {
    let mut named = Vec::new();
    for (name, value) in params.names().iter().zip(params.values()) {
        named.push((
            name.clone(),
            value.dims().to_vec(),
            f32_bytes(&value.to_vec_f64()?),
        ));
    }
    let mut meta = BTreeMap::from([
        ("keel.kind".to_string(), net.kind().name().to_string()),
        (
            "keel.chnn".to_string(),
            serde_json::to_string(info)
                .map_err(|e| Error::invalid("export", "info", e.to_string()))?,
        ),
    ]);
    if let Net::Chnn(m) | Net::Clnn(m) = net {
        named.extend(graph_tables(&m.graph));
        let sizes = m.potential.sizes();
        let config = MlpConfig {
            features: (0..sizes[0])
                .map(|i| format!("x{}_{}", i / m.graph.d, i % m.graph.d))
                .collect(),
            sizes,
            activation: "tanh".into(),
            output: OutputKind::Regression,
            input_standardization: false,
            target_standardization: false,
            classes: None,
        };
        meta.insert(
            "keel.config".into(),
            serde_json::to_string(&config)
                .map_err(|e| Error::invalid("export", "config", e.to_string()))?,
        );
    }
    Ok(safetensors_bytes(&named, &meta))
}

/// Writes a model atomically.
///
/// # Errors
/// As [`to_bytes`]; I/O errors.
pub fn save(path: &Path, net: &Net, params: &Params, info: &Info) -> Result<()> {
    write_atomic(path, &to_bytes(net, params, info)?)
}

/// Reads a model written by [`save`]: rebuilds the network of its `keel.chnn` description and
/// fills every parameter from the file (shapes checked; nothing missing, nothing extra).
///
/// # Errors
/// [`Error::Malformed`] for a file that is not a saved learned-dynamics model (another
/// `keel.kind`, say an MLP or an EMLP, is named), a missing or misshapen parameter, or an
/// unknown tensor.
pub fn load(path: &Path) -> Result<Saved> {
    from_bytes(&crate::output::read(path)?, path)
}

/// As [`load`], from the file's bytes (`path` names it in errors).
///
/// # Errors
/// As [`load`], less the I/O errors; also a `keel.chnn` description whose network would need
/// more parameters than the file holds (refused before anything is allocated).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Saved> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let st = keel_core::io::SafeTensors::<64>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let meta = |key: &str| -> Option<String> { st.metadata(key).map(|v| v.chars().collect()) };
    let kind =
        meta("keel.kind").ok_or_else(|| bad("no `keel.kind` metadata: not a Keel model".into()))?;
    let model = ModelKind::ALL
        .into_iter()
        .find(|m| m.name() == kind)
        .ok_or_else(|| {
            bad(format!(
                "keel.kind is {kind}, not a learned-dynamics model (chnn, clnn, node, hnn, delan)"
            ))
        })?;
    let info: Info = meta("keel.chnn")
        .ok_or_else(|| bad("no `keel.chnn` metadata".into()))
        .and_then(|s| serde_json::from_str(&s).map_err(|e| bad(format!("`keel.chnn`: {e}"))))?;
    if info.model != model.name() {
        return Err(bad(format!(
            "`keel.kind` {} disagrees with `keel.chnn` {}",
            model.name(),
            info.model
        )));
    }
    // Every model has `layers` hidden layers of `hidden` units: at least `layers·hidden` biases
    // and `(layers − 1)·hidden²` weights between them, each an f32 in the file.
    let (h, l) = (info.hidden as u128, info.layers as u128);
    let floats = (st.data_section().len() / 4) as u128;
    if h.saturating_mul(l) > floats
        || h.saturating_mul(h).saturating_mul(l.saturating_sub(1)) > floats
    {
        return Err(bad(format!(
            "`keel.chnn` describes {} × {} hidden units; the file holds only {floats} numbers",
            info.layers, info.hidden
        )));
    }
    let system = info.spec().map_err(|e| bad(format!("`keel.chnn`: {e}")))?;
    let graph = truth(system)
        .map_err(|e| bad(format!("`keel.chnn`: {e}")))?
        .graph();
    // The baselines read lengths and fixed points off a state, as in training: the first
    // training chunk's (trajectory 0 of seed 0 does not depend on how many were generated).
    let z0 = generate(system, 1, 0)?.chunks[0].z[0].clone();
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let net = Net::new(
        model,
        &mut params,
        &graph,
        &z0,
        info.hidden,
        info.layers,
        &mut rng,
    )
    .map_err(|e| bad(format!("`keel.chnn`: {e}")))?;
    let names: Vec<String> = params.names().to_vec();
    for (i, name) in names.iter().enumerate() {
        let t = st
            .tensor(name)
            .map_err(|_| bad(format!("parameter `{name}` is missing")))?;
        let v = (0..t.len())
            .map(|k| t.get_f64(k))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("`{name}`: {e}")))?;
        let value = Tensor::from_f64s(&v, t.shape(), crate::backend::DType::F32)?;
        params
            .set(ParamId(i), value)
            .map_err(|_| bad(format!("`{name}` has shape {:?}", t.shape())))?;
    }
    for (name, _) in st.tensors() {
        let name = name.as_str().unwrap_or_default();
        if !name.starts_with("graph.") && !names.iter().any(|n| n == name) {
            return Err(bad(format!(
                "unexpected tensor `{name}` for a {} with {} × {} hidden units",
                model.name(),
                info.layers,
                info.hidden
            )));
        }
    }
    Ok(Saved { net, params, info })
}
