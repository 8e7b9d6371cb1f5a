//! The SAC-SVG(H) agent (the reference's `svg/agent.py`): its networks and optimizers, and one
//! environment step's updates in the reference's order — dynamics (`H > 1`), critic, actor and
//! temperature, reward model, done model, target soft update.

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use super::nets::{mlp, Actor, DoubleQ, Gru, WorldModel};
use super::replay::{Replay, Transition};
use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::nn::{widths, Linear, Mlp};
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::Params;
use crate::tensor::Tensor;

/// Settings (defaults: Keel's small-scale Pendulum settings — smaller networks, warm-up 2000,
/// constant target entropy −1 — and otherwise the reference's `config/train.yaml` values).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Model horizon `H` (0 = SAC).
    pub horizon: usize,
    /// Hidden width of every network (and the GRU).
    pub hidden: usize,
    /// Hidden layers of the actor and each Q.
    pub depth: usize,
    /// Hidden layers of the model's encoder.
    pub model_depth: usize,
    /// Discount `γ`.
    pub gamma: f64,
    /// Polyak rate `τ`.
    pub tau: f64,
    /// Single-step batch.
    pub batch: usize,
    /// Multi-step batch.
    pub seq_batch: usize,
    /// Steps of uniform random actions before learning.
    pub seed_steps: usize,
    /// Steps before the model-based actor loss (SAC's before).
    pub warmup: usize,
    /// Dynamics updates per environment step (`H > 1`).
    pub model_updates: usize,
    /// Learning rates: actor, critic, models (dynamics, reward, done), temperature.
    pub lr: [f64; 4],
    /// Initial temperature `α`.
    pub alpha_init: f64,
    /// Target entropy schedule `(H̄_init, H̄_final, decay)`.
    pub entropy: (f64, f64, f64),
    /// `[ℓ_min, ℓ_max]`.
    pub log_std_bounds: [f64; 2],
    /// The corrected survival weights `[1, q₀, q₀q₁, …]` instead of the reference's
    /// `[q₀, q₀², q₀²q₁, …]`.
    pub corrected_survival: bool,
    /// Element type of the networks.
    pub dtype: DType,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            horizon: 3,
            hidden: 128,
            depth: 2,
            model_depth: 1,
            gamma: 0.99,
            tau: 0.005,
            batch: 1024,
            seq_batch: 512,
            seed_steps: 1000,
            warmup: 2000,
            model_updates: 4,
            lr: [1e-4, 1e-4, 1e-3, 1e-4],
            alpha_init: 0.1,
            entropy: (-1.0, -1.0, 1.0),
            log_std_bounds: [-5.0, 2.0],
            corrected_survival: false,
            dtype: DType::F32,
        }
    }
}

impl Config {
    /// Checks the settings.
    ///
    /// # Errors
    /// Zero sizes, rates that are not positive, `γ` or `τ` outside (0, 1], seed steps beyond the
    /// warm-up.
    pub fn check(&self) -> Result<()> {
        for (flag, v) in [
            ("hidden", self.hidden),
            ("batch", self.batch),
            ("seq_batch", self.seq_batch),
        ] {
            if v == 0 {
                return Err(Error::invalid(flag, v, "must be positive"));
            }
        }
        for (flag, v) in [
            ("actor_lr", self.lr[0]),
            ("critic_lr", self.lr[1]),
            ("model_lr", self.lr[2]),
            ("alpha_lr", self.lr[3]),
            ("alpha_init", self.alpha_init),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::invalid(flag, v, "must be a positive number"));
            }
        }
        for (flag, v) in [("gamma", self.gamma), ("tau", self.tau)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(Error::invalid(flag, v, "must lie in (0, 1]"));
            }
        }
        if self.log_std_bounds[0] >= self.log_std_bounds[1] {
            return Err(Error::invalid(
                "log-std bounds",
                format!("{:?}", self.log_std_bounds),
                "the lower bound must be below the upper",
            ));
        }
        Ok(())
    }

    /// The target entropy at `step` of `total`: `(H̄_init − H̄_final)(1 − step/total)^decay +
    /// H̄_final`.
    pub fn target_entropy(&self, step: usize, total: usize) -> f64 {
        let (init, fin, decay) = self.entropy;
        let frac = 1.0 - (step as f64 / total.max(1) as f64).min(1.0);
        (init - fin) * frac.powf(decay) + fin
    }
}

/// A network with its parameters and optimizer.
pub struct Trained<N> {
    /// The network.
    pub net: N,
    /// Its parameters.
    pub params: Params,
    /// Adam on them.
    pub opt: Optimizer,
}

impl<N> Trained<N> {
    fn new(net: N, params: Params) -> Result<Self> {
        let opt = Optimizer::new(OptimizerKind::adam(), &params)?;
        Ok(Trained { net, params, opt })
    }

    /// One Adam step on `loss(params as variables)`, the gradient norm clipped when asked;
    /// returns the loss.
    fn step(
        &mut self,
        lr: f64,
        clip: Option<f64>,
        loss: impl FnOnce(&N, &Params) -> Result<Tensor>,
    ) -> Result<f64> {
        let vars = self.params.variables();
        let l = loss(&self.net, &vars)?;
        let value = crate::train::step(&l, &vars, &mut self.params, &mut self.opt, lr, clip)?;
        if !value.is_finite() {
            return Err(Error::Failed {
                what: format!("a loss became non-finite ({value}): the run diverged"),
                hint: None,
            });
        }
        Ok(value)
    }
}

/// Losses of one update (absent where that part did not run).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    /// Critic.
    pub critic: f64,
    /// Actor.
    pub actor: f64,
    /// Temperature `α` after the step.
    pub alpha: f64,
    /// Multi-step dynamics MSE (normalised units), last of the repeats.
    pub model: Option<f64>,
    /// The same windows' mean squared per-step change `(x_{t+1} − x_t)²`: the MSE of predicting
    /// no change one step ahead, the scale `model` should fall well below.
    pub model_baseline: Option<f64>,
    /// Mean critic target `y` of the batch.
    pub target_q: f64,
    /// Mean `−log π(u₀|x₀)` of the actor's rollout (the policy's entropy estimate).
    pub entropy: f64,
    /// Mean survival weight of the rollout's last step (model-based actor steps only).
    pub survival: Option<f64>,
    /// Reward MSE.
    pub reward: f64,
    /// Done BCE.
    pub done: f64,
}

/// What the actor's objective rolls through (read only).
pub struct Parts<'a> {
    /// The critic (its current parameters, not the target).
    pub critic: &'a Trained<DoubleQ>,
    /// The world model.
    pub model: &'a Trained<WorldModel>,
    /// The reward model.
    pub reward: &'a Trained<Mlp>,
    /// The done model.
    pub done: &'a Trained<Mlp>,
    /// Settings.
    pub cfg: &'a Config,
}

/// What the actor's objective gives.
pub struct Rollout {
    /// The loss (the graph to the actor's parameters).
    pub loss: Tensor,
    /// `log π(u₀|x₀)` `[B]`, detached.
    pub log_prob: Tensor,
    /// The last step's survival weights `[B]`, detached (absent at `horizon = 0`).
    pub survival: Option<Tensor>,
}

impl Parts<'_> {
    /// The actor loss, `log π(u₀|x₀)` and the last survival weights for start states `x` `[B, O]` and the noise
    /// of each step: SAC's `mean(α log π − min Q)` at `horizon = 0`; else SVG(H),
    /// `−mean_b Σ_t γᵗ [w_t R_t − α log π(u_t|x_t)] / H` with `R_t = r̂(x_t, u_t)` for `t < H − 1`
    /// and `min Q(x_{H−1}, u_{H−1})` last, states rolled by the model, `w_t` the survival weights.
    ///
    /// # Errors
    /// Engine errors; fewer noise tensors than steps.
    pub fn actor_loss(
        &self,
        actor: &Actor,
        p: &Params,
        x: &Tensor,
        noises: &[Tensor],
        alpha: f64,
        horizon: usize,
    ) -> Result<Rollout> {
        let (critic, model, reward, done, cfg) =
            (self.critic, self.model, self.reward, self.done, self.cfg);
        let b = x.dims()[0];
        if noises.len() < horizon.max(1) {
            return Err(Error::invalid(
                "actor loss",
                noises.len(),
                format!("needs {} noise tensors", horizon.max(1)),
            ));
        }
        if horizon == 0 {
            let s = actor.sample(p, x, &noises[0])?;
            let q = critic.net.min(&critic.params, x, &s.action)?;
            let loss = s.log_prob.mul_scalar(alpha)?.sub(&q)?.mean_all()?;
            return Ok(Rollout {
                loss,
                log_prob: s.log_prob.detach(),
                survival: None,
            });
        }
        let mut xt = x.clone();
        let mut h = model.net.initial(b, cfg.dtype, x.device())?;
        let mut survival: Option<Tensor> = None;
        let mut objective: Option<Tensor> = None;
        let mut first = None;
        let mut last_weight = None;
        for (t, eps) in noises.iter().enumerate().take(horizon) {
            let s = actor.sample(p, &xt, eps)?;
            if t == 0 {
                first = Some(s.log_prob.detach());
            }
            let xu = Tensor::concat(&[xt.clone(), s.action.clone()], 1)?;
            let q_t = done
                .net
                .forward(&done.params, &xu)?
                .reshape(&[b])?
                .sigmoid()?
                .neg()?
                .add_scalar(1.0)?;
            // Survival weight of step t.
            let nd = match (&survival, cfg.corrected_survival) {
                (None, true) => Tensor::ones_like(&q_t)?,
                (None, false) => q_t.clone(),
                (Some(w), _) => w.clone(),
            };
            let value = if t + 1 < horizon {
                reward.net.forward(&reward.params, &xu)?.reshape(&[b])?
            } else {
                critic.net.min(&critic.params, &xt, &s.action)?
            };
            if t + 1 == horizon {
                last_weight = Some(nd.detach());
            }
            let term = nd
                .mul(&value)?
                .sub(&s.log_prob.mul_scalar(alpha)?)?
                .mul_scalar(cfg.gamma.powi(t as i32))?;
            objective = Some(match objective {
                Some(j) => j.add(&term)?,
                None => term,
            });
            // Next step's weight: the reference multiplies by q₀ at t = 0 again (accum_prod),
            // the corrected form by q_t.
            survival = Some(nd.mul(&q_t)?);
            if t + 1 < horizon {
                let (next, hn) = model.net.step(&model.params, &xt, &s.action, &h)?;
                xt = next;
                h = hn;
            }
        }
        let loss = objective
            .ok_or_else(|| Error::invalid("horizon", 0, "no actor step"))?
            .mean_all()?
            .mul_scalar(-1.0 / horizon as f64)?;
        let first = first.ok_or_else(|| Error::invalid("horizon", 0, "no actor step"))?;
        Ok(Rollout {
            loss,
            log_prob: first,
            survival: last_weight,
        })
    }
}

/// The agent.
pub struct Agent {
    /// Settings.
    pub cfg: Config,
    /// Observation and action sizes.
    pub dims: (usize, usize),
    /// The policy.
    pub actor: Trained<Actor>,
    /// The double-Q critic.
    pub critic: Trained<DoubleQ>,
    /// The critic's Polyak-averaged target.
    pub critic_target: Params,
    /// The world model.
    pub model: Trained<WorldModel>,
    /// The reward model `[obs, act] → r`.
    pub reward: Trained<Mlp>,
    /// The done model `[obs, act] → logit`.
    pub done: Trained<Mlp>,
    /// `log α`.
    pub log_alpha: Trained<()>,
    /// The generator of the policy noise and the replay draws.
    pub rng: Xoshiro256PlusPlus,
    /// Where the networks, their optimizers and every update live (observations and batches
    /// are copied there; actions come back).
    pub device: Device,
}

impl Agent {
    /// Fresh networks for `obs` observations and `act` actions, from `seed`, on the host.
    ///
    /// # Errors
    /// Invalid settings.
    pub fn new(cfg: Config, obs: usize, act: usize, seed: u64) -> Result<Agent> {
        Agent::new_on(cfg, obs, act, seed, Device::Cpu)
    }

    /// [`Agent::new`] on `device`: the same initial values (drawn on the host), then the
    /// parameters and the optimizers' state live there.
    ///
    /// # Errors
    /// Invalid settings; device errors.
    pub fn new_on(cfg: Config, obs: usize, act: usize, seed: u64, device: Device) -> Result<Agent> {
        cfg.check()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let (h, dt) = (cfg.hidden, cfg.dtype);
        let mut p = Params::new();
        let trunk = mlp(
            &mut p,
            "actor.",
            &widths(obs, h, cfg.depth, 2 * act),
            dt,
            &mut rng,
        )?;
        let actor = Trained::new(
            Actor {
                trunk,
                actions: act,
                log_std_bounds: cfg.log_std_bounds,
            },
            p.to_device(device)?,
        )?;
        let mut p = Params::new();
        let q1 = mlp(
            &mut p,
            "q1.",
            &widths(obs + act, h, cfg.depth, 1),
            dt,
            &mut rng,
        )?;
        let q2 = mlp(
            &mut p,
            "q2.",
            &widths(obs + act, h, cfg.depth, 1),
            dt,
            &mut rng,
        )?;
        let p = p.to_device(device)?;
        let critic_target = p.clone();
        let critic = Trained::new(DoubleQ { q1, q2 }, p)?;
        let mut p = Params::new();
        let sizes = widths(obs + act, h, cfg.model_depth, h);
        let encoder = mlp(&mut p, "enc.", &sizes, dt, &mut rng)?;
        let gru = Gru::new(&mut p, "gru", h, h, dt, &mut rng)?;
        let decoder = Linear::new(
            &mut p,
            "dec",
            h,
            obs,
            Init::Orthogonal { gain: 1.0 },
            dt,
            &mut rng,
        )?;
        p.set(decoder.bias, Tensor::zeros(&[obs], dt)?)?;
        let model = Trained::new(
            WorldModel {
                encoder,
                gru,
                decoder,
            },
            p.to_device(device)?,
        )?;
        let mut p = Params::new();
        let r = mlp(&mut p, "reward.", &widths(obs + act, h, 2, 1), dt, &mut rng)?;
        let reward = Trained::new(r, p.to_device(device)?)?;
        let mut p = Params::new();
        let d = mlp(&mut p, "done.", &widths(obs + act, h, 2, 1), dt, &mut rng)?;
        let done = Trained::new(d, p.to_device(device)?)?;
        let mut p = Params::new();
        p.insert(
            "log_alpha",
            Tensor::from_f64s(&[cfg.alpha_init.ln()], &[1], dt)?,
        )?;
        let log_alpha = Trained::new((), p.to_device(device)?)?;
        Ok(Agent {
            cfg,
            dims: (obs, act),
            actor,
            critic,
            critic_target,
            model,
            reward,
            done,
            log_alpha,
            rng,
            device,
        })
    }

    /// The temperature `α`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn alpha(&self) -> Result<f64> {
        Ok(self.log_alpha.params.values()[0].item()?.exp())
    }

    /// Host values as a tensor on the agent's device.
    fn tensor(&self, v: &[f64], dims: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_f64s(v, dims, self.cfg.dtype)?.to_device(self.device)?)
    }

    fn noise(&mut self, rows: usize) -> Result<Tensor> {
        let a = self.dims.1;
        let v: Vec<f64> = (0..rows * a)
            .map(|_| standard_normal::<f64, _>(&mut self.rng))
            .collect();
        self.tensor(&v, &[rows, a])
    }

    /// An action for a normalised observation: uniform in `[−1, 1]` while `explore`, else a
    /// sample from the policy.
    ///
    /// # Errors
    /// Engine errors.
    pub fn act(&mut self, obs: &[f64], explore: bool) -> Result<Vec<f64>> {
        if explore {
            return Ok((0..self.dims.1)
                .map(|_| 2.0 * uniform::<f64, _>(&mut self.rng) - 1.0)
                .collect());
        }
        let x = self.tensor(obs, &[1, obs.len()])?;
        let eps = self.noise(1)?;
        no_grad(|| {
            let s = self.actor.net.sample(&self.actor.params, &x, &eps)?;
            Ok(s.action.to_vec_f64()?)
        })
    }

    /// The deterministic action `tanh μ` for a normalised observation.
    ///
    /// # Errors
    /// Engine errors.
    pub fn act_deterministic(&self, obs: &[f64]) -> Result<Vec<f64>> {
        let x = self.tensor(obs, &[1, obs.len()])?;
        no_grad(|| {
            Ok(self
                .actor
                .net
                .mean_action(&self.actor.params, &x)?
                .to_vec_f64()?)
        })
    }

    /// One environment step's updates, in the reference's order, at training step `step` of
    /// `total`.
    ///
    /// # Errors
    /// A non-finite loss; engine errors.
    pub fn update(&mut self, replay: &Replay, step: usize, total: usize) -> Result<Losses> {
        let cfg = self.cfg.clone();
        let (o, a) = self.dims;
        let mut losses = Losses::default();
        // (a) Dynamics, multi-step, only for H > 1.
        if cfg.horizon > 1 {
            let starts = replay.window_starts(cfg.horizon);
            for _ in 0..cfg.model_updates {
                let w =
                    replay.sample_windows(&starts, cfg.seq_batch, cfg.horizon, &mut self.rng)?;
                let b = cfg.seq_batch;
                let xs: Vec<Tensor> = w
                    .obs
                    .iter()
                    .map(|v| self.tensor(v, &[b, o]))
                    .collect::<Result<_>>()?;
                let us: Vec<Tensor> = w
                    .action
                    .iter()
                    .map(|v| self.tensor(v, &[b, a]))
                    .collect::<Result<_>>()?;
                losses.model_baseline = Some(mean_square_change(&w.obs));
                let h0 = self.model.net.initial(b, cfg.dtype, self.device)?;
                let l = self.model.step(cfg.lr[2], Some(1.0), |m, p| {
                    let (mut x, mut h) = (xs[0].clone(), h0.clone());
                    let mut total: Option<Tensor> = None;
                    for t in 0..us.len() {
                        // The fed-back prediction is detached; the recurrent state is not.
                        let (next, hn) = m.step(p, &x.detach(), &us[t], &h)?;
                        let err = next.sub(&xs[t + 1])?.square()?.mean_all()?;
                        total = Some(match total {
                            Some(s) => s.add(&err)?,
                            None => err,
                        });
                        x = next;
                        h = hn;
                    }
                    let n = us.len() as f64;
                    Ok(total
                        .ok_or_else(|| Error::invalid("horizon", 1, "no model step"))?
                        .mul_scalar(1.0 / n)?)
                })?;
                losses.model = Some(l);
            }
        }
        // (b) One single-step batch.
        let batch = replay.sample(cfg.batch, &mut self.rng)?;
        let b = cfg.batch;
        let x = self.tensor(&batch.obs, &[b, o])?;
        let u = self.tensor(&batch.action, &[b, a])?;
        let r = self.tensor(&batch.reward, &[b])?;
        let x2 = self.tensor(&batch.next_obs, &[b, o])?;
        let not_done = self.tensor(
            &batch.terminal.iter().map(|d| 1.0 - d).collect::<Vec<_>>(),
            &[b],
        )?;
        let alpha = self.alpha()?;
        // (c) Critic.
        let eps = self.noise(b)?;
        let target = no_grad(|| -> Result<Tensor> {
            let s = self.actor.net.sample(&self.actor.params, &x2, &eps)?;
            let q = self
                .critic
                .net
                .min(&self.critic_target, &x2, &s.action)?
                .sub(&s.log_prob.mul_scalar(alpha)?)?;
            Ok(r.add(&q.mul(&not_done)?.mul_scalar(cfg.gamma)?)?)
        })?;
        losses.target_q = target.mean_all()?.item()?;
        losses.critic = self.critic.step(cfg.lr[1], None, |c, p| {
            let (q1, q2) = c.forward(p, &x, &u)?;
            Ok(q1.mse(&target)?.add(&q2.mse(&target)?)?)
        })?;
        // (d) Actor, then the temperature on the same rollout's log π(u₀|x₀).
        let model_based = cfg.horizon > 0 && step >= cfg.warmup;
        let horizon = if model_based { cfg.horizon } else { 0 };
        let noises: Vec<Tensor> = (0..horizon.max(1))
            .map(|_| self.noise(b))
            .collect::<Result<_>>()?;
        let mut first_log_prob: Option<Tensor> = None;
        let mut survival: Option<Tensor> = None;
        {
            let (critic, model, reward, done) =
                (&self.critic, &self.model, &self.reward, &self.done);
            let parts = Parts {
                critic,
                model,
                reward,
                done,
                cfg: &cfg,
            };
            losses.actor = self.actor.step(cfg.lr[0], None, |actor, p| {
                let r = parts.actor_loss(actor, p, &x, &noises, alpha, horizon)?;
                first_log_prob = Some(r.log_prob);
                survival = r.survival;
                Ok(r.loss)
            })?;
        }
        let target_entropy = cfg.target_entropy(step, total);
        let log_prob = first_log_prob.ok_or_else(|| Error::invalid("actor", "rollout", "empty"))?;
        losses.entropy = -log_prob.mean_all()?.item()?;
        losses.survival = survival
            .map(|w| w.mean_all().and_then(|m| m.item()))
            .transpose()?;
        self.log_alpha.step(cfg.lr[3], None, |_, p| {
            // loss_α = mean(α·(−log π − H̄)): the gradient w.r.t. log α multiplies α.
            Ok(p.values()[0]
                .exp()?
                .mul(&log_prob.neg()?.add_scalar(-target_entropy)?)?
                .mean_all()?)
        })?;
        losses.alpha = self.alpha()?;
        // (e) Reward model.
        let xu = Tensor::concat(&[x.clone(), u.clone()], 1)?;
        losses.reward = self.reward.step(cfg.lr[2], None, |m, p| {
            Ok(m.forward(p, &xu)?.reshape(&[b])?.mse(&r)?)
        })?;
        // (f) Done model: BCE with pos_weight = (B − n_done)/n_done (1 without a done).
        let n_done: f64 = batch.terminal.iter().sum();
        let pos_weight = if n_done > 0.0 {
            (b as f64 - n_done) / n_done
        } else {
            1.0
        };
        let y = self.tensor(&batch.terminal, &[b])?;
        let one_minus_y = not_done.clone();
        losses.done = self.done.step(cfg.lr[2], None, |m, p| {
            let logit = m.forward(p, &xu)?.reshape(&[b])?;
            // pw·y·softplus(−l) + (1 − y)·softplus(l)
            Ok(y.mul(&logit.neg()?.softplus()?)?
                .mul_scalar(pos_weight)?
                .add(&one_minus_y.mul(&logit.softplus()?)?)?
                .mean_all()?)
        })?;
        // (g) Target soft update.
        no_grad(|| -> Result<()> {
            for (i, (q, qt)) in self
                .critic
                .params
                .values()
                .iter()
                .zip(self.critic_target.values().to_vec())
                .enumerate()
            {
                let blended = q.mul_scalar(cfg.tau)?.add(&qt.mul_scalar(1.0 - cfg.tau)?)?;
                self.critic_target.set(crate::params::ParamId(i), blended)?;
            }
            Ok(())
        })?;
        Ok(losses)
    }
}

/// Mean over steps, rows and components of `(x_{t+1} − x_t)²` for a window's observations
/// (`obs[t]` row-major `[B, O]`).
fn mean_square_change(obs: &[Vec<f64>]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for pair in obs.windows(2) {
        for (a, b) in pair[0].iter().zip(&pair[1]) {
            sum += (b - a) * (b - a);
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// Stores a step into the replay (observation statistics included).
pub fn remember(
    replay: &mut Replay,
    obs: &[f64],
    action: &[f64],
    reward: f64,
    next_obs: &[f64],
    terminated: bool,
    truncated: bool,
) {
    replay.push(Transition {
        obs: obs.to_vec(),
        action: action.to_vec(),
        reward,
        next_obs: next_obs.to_vec(),
        terminal: terminated,
        last: terminated || truncated,
    });
}
