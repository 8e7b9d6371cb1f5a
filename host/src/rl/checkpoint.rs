//! Checkpoints of a SAC-SVG(H) run, taken at episode boundaries: every network's parameters and
//! Adam state, the critic's target, the temperature, the replay with its statistics, both
//! generators (the agent's, and the environment's before the reset that starts the next
//! episode), the evaluations and episode returns so far. One safetensors file (`keel.kind =
//! rl-checkpoint`), written atomically; a resumed run continues with exactly the numbers an
//! uninterrupted one uses.

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::io::SafeTensors;
use keel_core::random::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::agent::Agent;
use super::replay::{Replay, Transition};
use super::train::{Diagnostics, Evaluation};
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::output::write_atomic;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// The training loop's own state at an episode boundary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Environment steps done.
    pub step: usize,
    /// The environment generator before the reset of the next episode.
    pub env_rng: [u64; 4],
    /// Evaluations so far.
    pub evaluations: Vec<Evaluation>,
    /// Finished training episodes: `(step, return)`.
    pub episodes: Vec<(usize, f64)>,
    /// The diagnostics gathered since the last evaluation.
    pub diagnostics: Diagnostics,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    fingerprint: String,
    agent_rng: [u64; 4],
    optimizer_steps: Vec<u64>,
    replay_count: u64,
    transitions: usize,
    state: LoopState,
}

type Named = (String, &'static str, Vec<usize>, Vec<u8>);

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn push(t: &mut Vec<Named>, name: String, v: &[f64]) {
    t.push((name, "F64", vec![v.len()], f64_bytes(v)));
}

/// The agent's parameter sets with their optimizers, by name.
fn sets(agent: &Agent) -> Vec<(&'static str, &Params, Option<&Optimizer>)> {
    vec![
        ("actor", &agent.actor.params, Some(&agent.actor.opt)),
        ("critic", &agent.critic.params, Some(&agent.critic.opt)),
        ("critic_target", &agent.critic_target, None),
        ("model", &agent.model.params, Some(&agent.model.opt)),
        ("reward", &agent.reward.params, Some(&agent.reward.opt)),
        ("done", &agent.done.params, Some(&agent.done.opt)),
        (
            "log_alpha",
            &agent.log_alpha.params,
            Some(&agent.log_alpha.opt),
        ),
    ]
}

/// Writes a checkpoint atomically.
///
/// # Errors
/// Device reads; I/O.
pub fn save(
    path: &Path,
    fingerprint: &str,
    agent: &Agent,
    replay: &Replay,
    state: &LoopState,
) -> Result<()> {
    let mut t: Vec<Named> = Vec::new();
    let mut optimizer_steps = Vec::new();
    for (name, params, opt) in sets(agent) {
        for (i, p) in params.values().iter().enumerate() {
            push(&mut t, format!("{name}.{i}"), &p.to_vec_f64()?);
        }
        if let Some(opt) = opt {
            let (step, m, v) = opt.state()?;
            optimizer_steps.push(step);
            for (i, (m, v)) in m.iter().zip(&v).enumerate() {
                if let (Some(m), Some(v)) = (m, v) {
                    push(&mut t, format!("{name}.m{i}"), m);
                    push(&mut t, format!("{name}.v{i}"), v);
                }
            }
        }
    }
    let items = &replay.items;
    let column =
        |f: &dyn Fn(&Transition) -> Vec<f64>| -> Vec<f64> { items.iter().flat_map(f).collect() };
    push(&mut t, "replay.obs".into(), &column(&|x| x.obs.clone()));
    push(
        &mut t,
        "replay.action".into(),
        &column(&|x| x.action.clone()),
    );
    push(&mut t, "replay.reward".into(), &column(&|x| vec![x.reward]));
    push(
        &mut t,
        "replay.next_obs".into(),
        &column(&|x| x.next_obs.clone()),
    );
    push(
        &mut t,
        "replay.flags".into(),
        &column(&|x| vec![f64::from(u8::from(x.terminal)), f64::from(u8::from(x.last))]),
    );
    push(&mut t, "replay.mean".into(), &replay.stats.mean);
    push(&mut t, "replay.m2".into(), &replay.stats.m2);
    let meta = Meta {
        fingerprint: fingerprint.into(),
        agent_rng: agent.rng.state(),
        optimizer_steps,
        replay_count: replay.stats.count,
        transitions: items.len(),
        state: state.clone(),
    };
    let json = serde_json::to_string(&meta)
        .map_err(|e| Error::invalid("checkpoint", "state", e.to_string()))?;
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "rl-checkpoint".to_string()),
        ("keel.rl".to_string(), json),
    ]);
    write_atomic(path, &crate::checksum::sealed_safetensors(&t, &meta))
}

/// The replay's tensors.
const REPLAY: [&str; 7] = [
    "replay.obs",
    "replay.action",
    "replay.reward",
    "replay.next_obs",
    "replay.flags",
    "replay.mean",
    "replay.m2",
];

/// Restores a checkpoint for a run with `fingerprint` into a freshly built `agent` and an empty
/// `replay`; returns the loop's state.
///
/// # Errors
/// [`Error::Io`]; as [`load_bytes`].
pub fn load(
    path: &Path,
    fingerprint: impl Fn(&str) -> bool,
    agent: &mut Agent,
    replay: &mut Replay,
) -> Result<LoopState> {
    load_bytes(
        &crate::output::read(path)?,
        path,
        fingerprint,
        agent,
        replay,
    )
}

/// As [`load`], from the file's bytes (`path` names it in errors).
///
/// # Errors
/// [`Error::Malformed`] for a damaged file (its checksum differs from its contents), one that
/// is not an RL checkpoint, or one whose tensors do not fit the agent; [`Error::InvalidInput`]
/// (`--resume`) for one from other settings.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    fingerprint: impl Fn(&str) -> bool,
    agent: &mut Agent,
    replay: &mut Replay,
) -> Result<LoopState> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let st = SafeTensors::<'_, 256>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if st.metadata("keel.kind").and_then(|k| k.as_str()) != Some("rl-checkpoint") {
        return Err(bad("not an rl checkpoint".into()));
    }
    crate::checksum::verify(&st).map_err(bad)?;
    let text: String = st
        .metadata("keel.rl")
        .ok_or_else(|| bad("no keel.rl metadata".into()))?
        .chars()
        .collect();
    let meta: Meta = serde_json::from_str(&text).map_err(|e| bad(format!("keel.rl: {e}")))?;
    if !fingerprint(&meta.fingerprint) {
        return Err(Error::invalid(
            "resume",
            path.display(),
            "the checkpoint was written by a run with other settings",
        ));
    }
    // Exactly the tensors this writer writes for this agent.
    let expected: Vec<(String, usize)> = sets(agent)
        .into_iter()
        .flat_map(|(name, params, opt)| {
            params.values().iter().enumerate().flat_map(move |(i, p)| {
                let moments = opt.map(|_| {
                    [
                        (format!("{name}.m{i}"), p.numel()),
                        (format!("{name}.v{i}"), p.numel()),
                    ]
                });
                std::iter::once((format!("{name}.{i}"), p.numel()))
                    .chain(moments.into_iter().flatten())
            })
        })
        .collect();
    for (name, view) in st.tensors() {
        let name: String = name.chars().collect();
        let size = expected.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
        if size.is_none() && !REPLAY.contains(&name.as_str()) {
            return Err(bad(format!(
                "unexpected tensor `{name}` for this agent (actor, critic, critic_target, model, \
                 reward, done and log_alpha parameters and moments, and the replay)"
            )));
        }
        if view.dtype() != keel_core::io::Dtype::F64
            || view.rank() != 1
            || size.is_some_and(|s| view.len() != s)
        {
            return Err(bad(format!(
                "`{name}` is {} {:?}; the writer stores F64 vectors{}",
                view.dtype().name(),
                view.shape(),
                size.map_or(String::new(), |s| format!(" (this one of {s})"))
            )));
        }
    }
    let read = |name: &str| -> Result<Vec<f64>> {
        let v = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        (0..v.len())
            .map(|i| v.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{name}: {e}")))
    };
    let restore = |name: &str, params: &mut Params| -> Result<()> {
        for i in 0..params.len() {
            let like = params.get(ParamId(i));
            let (dims, dtype, device) = (like.dims().to_vec(), like.dtype(), like.device());
            let data = read(&format!("{name}.{i}"))?;
            let t = Tensor::from_f64s(&data, &dims, dtype)
                .map_err(|e| bad(format!("{name}.{i}: {e}")))?
                .to_device(device)?;
            params.set(ParamId(i), t)?;
        }
        Ok(())
    };
    let moments = |name: &str, params: &Params, opt: &mut Optimizer, step: u64| -> Result<()> {
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for i in 0..params.len() {
            let mi = format!("{name}.m{i}");
            if st.tensor(&mi).is_ok() {
                m.push(Some(read(&mi)?));
                v.push(Some(read(&format!("{name}.v{i}"))?));
            } else {
                m.push(None);
                v.push(None);
            }
        }
        Ok(opt.restore(params, step, m, v)?)
    };
    let steps = &meta.optimizer_steps;
    if steps.len() != 6 {
        return Err(bad("optimizer steps missing".into()));
    }
    restore("actor", &mut agent.actor.params)?;
    moments("actor", &agent.actor.params, &mut agent.actor.opt, steps[0])?;
    restore("critic", &mut agent.critic.params)?;
    moments(
        "critic",
        &agent.critic.params,
        &mut agent.critic.opt,
        steps[1],
    )?;
    restore("critic_target", &mut agent.critic_target)?;
    restore("model", &mut agent.model.params)?;
    moments("model", &agent.model.params, &mut agent.model.opt, steps[2])?;
    restore("reward", &mut agent.reward.params)?;
    moments(
        "reward",
        &agent.reward.params,
        &mut agent.reward.opt,
        steps[3],
    )?;
    restore("done", &mut agent.done.params)?;
    moments("done", &agent.done.params, &mut agent.done.opt, steps[4])?;
    restore("log_alpha", &mut agent.log_alpha.params)?;
    moments(
        "log_alpha",
        &agent.log_alpha.params,
        &mut agent.log_alpha.opt,
        steps[5],
    )?;
    agent.rng = Xoshiro256PlusPlus::from_state(meta.agent_rng)
        .ok_or_else(|| bad("generator state is zero".into()))?;
    let (o, a, n) = (agent.dims.0, agent.dims.1, meta.transitions);
    let (obs, action, reward, next_obs, flags) = (
        read("replay.obs")?,
        read("replay.action")?,
        read("replay.reward")?,
        read("replay.next_obs")?,
        read("replay.flags")?,
    );
    let holds = |column: &[f64], width: usize| n.checked_mul(width) == Some(column.len());
    if !holds(&obs, o)
        || !holds(&next_obs, o)
        || !holds(&action, a)
        || !holds(&reward, 1)
        || !holds(&flags, 2)
    {
        return Err(bad(
            "replay columns do not match the environment's sizes".into()
        ));
    }
    replay.items = (0..n)
        .map(|k| Transition {
            obs: obs[k * o..(k + 1) * o].to_vec(),
            action: action[k * a..(k + 1) * a].to_vec(),
            reward: reward[k],
            next_obs: next_obs[k * o..(k + 1) * o].to_vec(),
            terminal: flags[2 * k] != 0.0,
            last: flags[2 * k + 1] != 0.0,
        })
        .collect();
    replay.stats.count = meta.replay_count;
    replay.stats.mean = read("replay.mean")?;
    replay.stats.m2 = read("replay.m2")?;
    if replay.stats.mean.len() != o || replay.stats.m2.len() != o {
        return Err(bad(
            "replay statistics do not match the observation size".into()
        ));
    }
    Ok(meta.state)
}
