//! The training loop (the reference's `train.py`): seed steps of uniform actions, then the policy's
//! samples; one update per environment step from the first learning step on; deterministic
//! evaluation episodes at intervals; the learning curve; checkpoints at episode boundaries.

use keel_core::random::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::agent::{remember, Agent, Config, Losses};
use super::checkpoint::{self, LoopState};
use super::env::{self, Task};
use super::replay::Replay;
use crate::backend::Device;
use crate::checkpoint::Options;
use crate::error::{Error, Result};
use crate::limits;

/// What a run is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Environment name.
    pub env: String,
    /// Environment steps.
    pub steps: usize,
    /// Seed of everything.
    pub seed: u64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
}

/// One evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Environment steps done.
    pub step: usize,
    /// Mean return of the deterministic policy.
    pub mean: f64,
    /// Standard deviation of the returns.
    pub std: f64,
    /// Means of the updates since the previous evaluation.
    pub diagnostics: Diagnostics,
}

/// A mean that may have no terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.sum += v;
            self.count += 1;
        }
    }

    /// The mean, absent without terms.
    pub fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// The updates' losses and statistics averaged over an evaluation interval: what to look at
/// when a run learns and then degrades.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Temperature `α`.
    pub alpha: Mean,
    /// Policy entropy estimate `−log π(u₀|x₀)`.
    pub entropy: Mean,
    /// Critic loss.
    pub critic: Mean,
    /// Critic target `y`.
    pub target_q: Mean,
    /// Multi-step dynamics MSE (normalised observations).
    pub model: Mean,
    /// Mean squared per-step change of the same windows (the MSE of predicting no change one
    /// step ahead).
    pub model_baseline: Mean,
    /// Reward-model MSE.
    pub reward: Mean,
    /// Mean survival weight of the model rollout's last step.
    pub survival: Mean,
}

impl Diagnostics {
    fn add(&mut self, l: &Losses) {
        self.alpha.add(Some(l.alpha));
        self.entropy.add(Some(l.entropy));
        self.critic.add(Some(l.critic));
        self.target_q.add(Some(l.target_q));
        self.model.add(l.model);
        self.model_baseline.add(l.model_baseline);
        self.reward.add(Some(l.reward));
        self.survival.add(l.survival);
    }

    /// Named means, the absent ones left out.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        [
            ("alpha", self.alpha),
            ("entropy", self.entropy),
            ("critic_loss", self.critic),
            ("target_q", self.target_q),
            ("model_mse", self.model),
            ("model_no_change_mse", self.model_baseline),
            ("reward_mse", self.reward),
            ("survival", self.survival),
        ]
        .into_iter()
        .filter_map(|(n, m)| m.get().map(|v| (n, v)))
        .collect()
    }
}

/// Where a run is, reported after every environment step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Return of the last finished training episode.
    pub last_return: Option<f64>,
    /// The update's losses (absent before learning starts).
    pub losses: Option<Losses>,
}

/// What a run produced.
pub struct Trained {
    /// The agent.
    pub agent: Agent,
    /// The replay (its statistics normalise the policy's inputs).
    pub replay: Replay,
    /// Evaluations in order.
    pub evaluations: Vec<Evaluation>,
    /// Training episode returns with the step each ended at.
    pub episodes: Vec<(usize, f64)>,
    /// Mean wall-clock seconds of one environment step's updates (this invocation's, read back
    /// to the host), `None` if none ran.
    pub update_seconds: Option<f64>,
}

fn normalized(replay: &Replay, obs: &[f64]) -> Vec<f64> {
    let std = replay.stats.std();
    let mut out = Vec::with_capacity(obs.len());
    replay.stats.normalize_into(obs, &std, &mut out);
    out
}

/// The seed of every evaluation's initial states in a run seeded `seed` (the same episodes at
/// each evaluation, so the curve shows the policy changing, not the starts). `keel rl eval
/// --seed` with this number runs these episodes with the exported policy and the core's code.
pub fn eval_seed(seed: u64) -> u64 {
    seed.wrapping_add(1_000_003)
}

/// Mean and standard deviation of `episodes` deterministic episodes from `seed`.
///
/// # Errors
/// Environment or engine errors.
pub fn evaluate(
    agent: &Agent,
    replay: &Replay,
    task: &mut dyn Task,
    episodes: usize,
    seed: u64,
) -> Result<(f64, f64)> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut returns = Vec::with_capacity(episodes);
    for _ in 0..episodes {
        let mut obs = task.reset(&mut rng)?;
        let mut total = 0.0;
        loop {
            let a = agent.act_deterministic(&normalized(replay, &obs))?;
            let s = task.step(&a)?;
            total += s.reward;
            obs = s.observation;
            if s.terminated || s.truncated {
                break;
            }
        }
        returns.push(total);
    }
    let n = returns.len().max(1) as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    Ok((mean, var.sqrt()))
}

/// A run's fingerprint with its length (`Run::steps`) left out.
fn without_length(fp: &str) -> String {
    const FIELD: &str = ", steps: ";
    match fp.find(FIELD) {
        Some(i) => {
            let rest = &fp[i + FIELD.len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            format!("{}{FIELD}_{}", &fp[..i], &rest[digits..])
        }
        None => fp.to_string(),
    }
}

/// How a call to [`train`] ended.
pub enum Outcome {
    /// All steps done.
    Finished(Box<Trained>),
    /// Stopped at an episode boundary after `--stop-after` (checkpoint written).
    Stopped {
        /// Steps done so far.
        step: usize,
    },
}

/// Refuses sizes whose memory or work could never be met: the replay buffer of every step, the
/// networks and their batches, the updates and the evaluations.
fn check_sizes(cfg: &Config, run: &Run, obs: usize, act: usize, episode: usize) -> Result<()> {
    let h = cfg.hidden as u128;
    let width = h.saturating_add(obs as u128 + act as u128);
    // Actor, two critics and their targets, world model, reward and done models: about ten
    // networks of two hidden layers.
    let parameters = width.saturating_mul(h).saturating_mul(30);
    let rows = (cfg.batch as u128).max(cfg.seq_batch as u128 * (cfg.horizon as u128 + 1));
    limits::memory(
        "hidden/batch",
        format!("{}/{}", cfg.hidden, cfg.batch),
        "the networks and their batches",
        limits::training_bytes(parameters, h.saturating_mul(30), rows, 4),
    )?;
    limits::memory(
        "steps",
        run.steps,
        "the replay buffer",
        (run.steps as u128).saturating_mul((2 * obs + act + 3) as u128 * 8),
    )?;
    limits::work(
        "steps",
        run.steps,
        (run.steps as u128)
            .saturating_mul(rows)
            .saturating_mul(parameters),
        "multiply-adds",
    )?;
    let evaluations = (run.steps / run.eval_every.max(1)) as u128 + 1;
    limits::work(
        "eval_episodes",
        run.eval_episodes,
        evaluations
            .saturating_mul(run.eval_episodes as u128)
            .saturating_mul(episode as u128)
            .saturating_mul(width.saturating_mul(h) * 3),
        "multiply-adds",
    )
}

/// Trains an agent, checkpointing at episode boundaries as `ckpt` asks (`every` and
/// `stop_after` count environment steps; a checkpoint waits for the episode to end) and
/// resuming from it when asked. The networks, their optimizers and every update run on
/// `device`; the environments, the replay and the acting loop run on the host (each action
/// copies one observation there and the action back).
///
/// # Errors
/// Unknown environment, invalid settings; device errors; a diverged run (naming the step; the last
/// checkpoint is kept); a checkpoint from other settings.
pub fn train(
    cfg: Config,
    run: &Run,
    ckpt: &Options,
    device: Device,
    mut report: impl FnMut(&Progress),
) -> Result<Outcome> {
    let mut task = env::make(&run.env)?;
    let mut eval_task = env::make(&run.env)?;
    if run.steps == 0 {
        return Err(Error::invalid("steps", 0, "must be positive"));
    }
    // A model rollout of H steps trains on windows of H + 1 states inside one episode.
    if cfg.horizon >= task.max_steps() {
        return Err(Error::invalid(
            "horizon",
            cfg.horizon,
            format!(
                "{} episodes last at most {} steps, so the horizon must be below that",
                run.env,
                task.max_steps()
            ),
        ));
    }
    check_sizes(
        &cfg,
        run,
        task.observations(),
        task.actions(),
        task.max_steps(),
    )?;
    let fingerprint = format!("{cfg:?} {run:?}");
    // A run may continue past the length it was started with (a finished run extended) when
    // nothing depends on that length: a constant target entropy (the replay holds every step
    // either way).
    let extendable = cfg.entropy.0 == cfg.entropy.1;
    let accepts = |fp: &str| {
        fp == fingerprint || (extendable && without_length(fp) == without_length(&fingerprint))
    };
    let (o, a) = (task.observations(), task.actions());
    // The device is not part of the fingerprint: a run may resume on another device.
    let mut agent = Agent::new_on(cfg, o, a, run.seed, device)?;
    let mut replay = Replay::new(o, run.steps);
    let mut env_rng = Xoshiro256PlusPlus::seed_from_u64(run.seed ^ 0x5EED_E4F1);
    let (mut first, mut evaluations, mut episodes) = (0, Vec::new(), Vec::new());
    let mut diagnostics = Diagnostics::default();
    if let Some(path) = ckpt.resume_from() {
        let state = checkpoint::load(path, accepts, &mut agent, &mut replay)?;
        if state.step > run.steps {
            return Err(Error::invalid(
                "steps",
                run.steps,
                format!("the checkpoint is already at step {}", state.step),
            ));
        }
        env_rng = Xoshiro256PlusPlus::from_state(state.env_rng).ok_or_else(|| {
            Error::invalid(
                "resume",
                path.display(),
                "environment generator state is zero",
            )
        })?;
        first = state.step;
        evaluations = state.evaluations;
        episodes = state.episodes;
        diagnostics = state.diagnostics;
    }
    let mut env_rng_at_reset = env_rng.state();
    let mut obs = task.reset(&mut env_rng)?;
    let (mut episode_return, mut last_return) = (0.0, episodes.last().map(|e| e.1));
    let learn_from = agent.cfg.seed_steps.saturating_sub(1);
    let mut since_checkpoint = 0usize;
    let (mut update_time, mut updates) = (std::time::Duration::ZERO, 0u32);
    for step in first..run.steps {
        let explore = step < agent.cfg.seed_steps;
        let action = agent.act(&normalized(&replay, &obs), explore)?;
        let s = task.step(&action)?;
        remember(
            &mut replay,
            &obs,
            &action,
            s.reward,
            &s.observation,
            s.terminated,
            s.truncated,
        );
        episode_return += s.reward;
        obs = s.observation;
        let boundary = s.terminated || s.truncated;
        if boundary {
            episodes.push((step + 1, episode_return));
            last_return = Some(episode_return);
            episode_return = 0.0;
            env_rng_at_reset = env_rng.state();
            obs = task.reset(&mut env_rng)?;
        }
        let losses = if step >= learn_from {
            let t0 = std::time::Instant::now();
            let l = agent.update(&replay, step, run.steps);
            update_time += t0.elapsed();
            updates += 1;
            Some(l.map_err(|e| Error::Failed {
                what: format!(
                    "training stopped at step {step}: {e}{}",
                    if ckpt.path.is_some() {
                        " (the last checkpoint is kept)"
                    } else {
                        ""
                    }
                ),
                hint: None,
            })?)
        } else {
            None
        };
        if let Some(l) = &losses {
            diagnostics.add(l);
        }
        let done = step + 1;
        if (run.eval_every > 0 && done % run.eval_every == 0) || done == run.steps {
            let (mean, std) = evaluate(
                &agent,
                &replay,
                eval_task.as_mut(),
                run.eval_episodes,
                eval_seed(run.seed),
            )?;
            evaluations.push(Evaluation {
                step: done,
                mean,
                std,
                diagnostics: std::mem::take(&mut diagnostics),
            });
        }
        report(&Progress {
            step: done,
            last_return,
            losses,
        });
        since_checkpoint += 1;
        let stop = boundary && ckpt.stops_at(done - first);
        if let Some(path) = &ckpt.path {
            if boundary && (stop || since_checkpoint >= ckpt.every.max(1) || done == run.steps) {
                let state = LoopState {
                    step: done,
                    env_rng: env_rng_at_reset,
                    evaluations: evaluations.clone(),
                    episodes: episodes.clone(),
                    diagnostics,
                };
                checkpoint::save(path, &fingerprint, &agent, &replay, &state)?;
                since_checkpoint = 0;
            }
        }
        if stop && done < run.steps {
            return Ok(Outcome::Stopped { step: done });
        }
    }
    Ok(Outcome::Finished(Box::new(Trained {
        agent,
        replay,
        evaluations,
        episodes,
        update_seconds: (updates > 0).then(|| update_time.as_secs_f64() / f64::from(updates)),
    })))
}
