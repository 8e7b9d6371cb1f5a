//! Writes a trained actor as a `keel_core::rl::Policy` file: the trunk in the core's MLP layout
//! (`keel.kind = "policy"`), the run's observation statistics as the input standardisation (the
//! clamped standard deviation the agent divided by), the actuator limits and log-std bounds.
//! And the whole agent as a `keel_core::rl::ValueModel` file (`keel.kind = "rl-value"`): actor,
//! critic, reward, done and world model, for the model-based value estimate on the controller.

use std::collections::BTreeMap;
use std::path::Path;

use super::agent::Agent;
use super::replay::Replay;
use crate::error::{Error, Result};
use crate::export::{
    f32_bytes, layer_tensors, prefixed_layer_tensors, safetensors_bytes, MlpConfig, NamedTensor,
    OutputKind,
};
use crate::nn::Mlp;
use crate::output::write_atomic;
use crate::params::{ParamId, Params};

/// The policy file's bytes.
///
/// # Errors
/// Engine errors reading the weights.
pub fn policy_bytes(
    agent: &Agent,
    replay: &Replay,
    env: &str,
    limits: &[(f64, f64)],
) -> Result<Vec<u8>> {
    let trunk = &agent.actor.net.trunk;
    let mut named = layer_tensors(trunk, &agent.actor.params)?;
    let o = agent.dims.0;
    named.push(("input.mean".into(), vec![o], f32_bytes(&replay.stats.mean)));
    named.push(("input.std".into(), vec![o], f32_bytes(&replay.stats.std())));
    let a = limits.len();
    let low: Vec<f64> = limits.iter().map(|l| l.0).collect();
    let high: Vec<f64> = limits.iter().map(|l| l.1).collect();
    named.push(("policy.action_low".into(), vec![a], f32_bytes(&low)));
    named.push(("policy.action_high".into(), vec![a], f32_bytes(&high)));
    named.push((
        "policy.log_std_bounds".into(),
        vec![2],
        f32_bytes(&agent.cfg.log_std_bounds),
    ));
    let config = MlpConfig {
        sizes: trunk.sizes(),
        activation: "relu".into(),
        output: OutputKind::Regression,
        input_standardization: true,
        target_standardization: false,
        classes: None,
        features: (0..o).map(|i| format!("obs{i}")).collect(),
    };
    let config = serde_json::to_string(&config)
        .map_err(|e| Error::invalid("export", "config", e.to_string()))?;
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "policy".to_string()),
        ("keel.config".to_string(), config),
        ("keel.env".to_string(), env.to_string()),
        ("keel.horizon".to_string(), agent.cfg.horizon.to_string()),
    ]);
    Ok(safetensors_bytes(&named, &meta))
}

/// Writes the policy file atomically.
///
/// # Errors
/// As [`policy_bytes`]; [`Error::Io`].
pub fn write_policy(
    path: &Path,
    agent: &Agent,
    replay: &Replay,
    env: &str,
    limits: &[(f64, f64)],
) -> Result<()> {
    write_atomic(path, &policy_bytes(agent, replay, env, limits)?)
}

/// The configuration JSON of an exported MLP without standardisation.
fn plain_config(net: &Mlp) -> Result<String> {
    let config = MlpConfig {
        sizes: net.sizes(),
        activation: "relu".into(),
        output: OutputKind::Regression,
        input_standardization: false,
        target_standardization: false,
        classes: None,
        features: Vec::new(),
    };
    serde_json::to_string(&config).map_err(|e| Error::invalid("export", "config", e.to_string()))
}

/// The value file's bytes (layout: `keel_core::rl::ValueModel`).
///
/// # Errors
/// Engine errors reading the weights.
pub fn value_bytes(agent: &Agent, replay: &Replay, env: &str) -> Result<Vec<u8>> {
    let model = &agent.model.net;
    let nets: [(&str, &Mlp, &Params); 6] = [
        ("actor", &agent.actor.net.trunk, &agent.actor.params),
        ("q1", &agent.critic.net.q1, &agent.critic.params),
        ("q2", &agent.critic.net.q2, &agent.critic.params),
        ("reward", &agent.reward.net, &agent.reward.params),
        ("done", &agent.done.net, &agent.done.params),
        ("enc", &model.encoder, &agent.model.params),
    ];
    let mut named: Vec<NamedTensor> = Vec::new();
    let mut meta = BTreeMap::from([
        ("keel.kind".to_string(), "rl-value".to_string()),
        ("keel.env".to_string(), env.to_string()),
    ]);
    for (name, net, params) in nets {
        named.extend(prefixed_layer_tensors(&format!("{name}."), net, params)?);
        meta.insert(format!("keel.config.{name}"), plain_config(net)?);
    }
    let p = &agent.model.params;
    let tensor = |id: ParamId| -> Result<(Vec<usize>, Vec<u8>)> {
        let t = p.get(id);
        Ok((t.dims().to_vec(), f32_bytes(&t.to_vec_f64()?)))
    };
    let gru = &model.gru;
    for (name, id) in [
        ("gru.weight_ih", gru.weight_ih),
        ("gru.weight_hh", gru.weight_hh),
        ("gru.bias_ih", gru.bias_ih),
        ("gru.bias_hh", gru.bias_hh),
        ("dec.weight", model.decoder.weight),
        ("dec.bias", model.decoder.bias),
    ] {
        let (dims, bytes) = tensor(id)?;
        named.push((name.into(), dims, bytes));
    }
    let o = agent.dims.0;
    named.push(("obs.mean".into(), vec![o], f32_bytes(&replay.stats.mean)));
    named.push(("obs.std".into(), vec![o], f32_bytes(&replay.stats.std())));
    let cfg = &agent.cfg;
    let corrected = if cfg.corrected_survival { 1.0 } else { 0.0 };
    for (name, v) in [
        ("value.horizon", vec![cfg.horizon as f64]),
        ("value.gamma", vec![cfg.gamma]),
        ("value.corrected_survival", vec![corrected]),
        ("value.log_std_bounds", cfg.log_std_bounds.to_vec()),
    ] {
        named.push((name.into(), vec![v.len()], f32_bytes(&v)));
    }
    Ok(safetensors_bytes(&named, &meta))
}

/// Writes the value file atomically.
///
/// # Errors
/// As [`value_bytes`]; [`Error::Io`].
pub fn write_value(path: &Path, agent: &Agent, replay: &Replay, env: &str) -> Result<()> {
    write_atomic(path, &value_bytes(agent, replay, env)?)
}
