//! Writes a trained actor as a `keel_core::rl::Policy` file: the trunk in the core's MLP layout
//! (`keel.kind = "policy"`), the run's observation statistics as the input standardisation (the
//! clamped standard deviation the agent divided by), the actuator limits and log-std bounds.

use std::collections::BTreeMap;
use std::path::Path;

use super::agent::Agent;
use super::replay::Replay;
use crate::error::{Error, Result};
use crate::export::{f32_bytes, layer_tensors, safetensors_bytes, MlpConfig, OutputKind};
use crate::output::write_atomic;

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
