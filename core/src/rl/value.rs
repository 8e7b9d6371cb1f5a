//! The short-horizon model-based value of a state, on the controller: the exported SAC-SVG(H)
//! agent's policy rolled `H` steps through its learned world model (MLP encoder → GRU cell →
//! linear decoder, residual), with the learned reward and done models along the way and the
//! critic at the end — the quantity the actor maximised in training (the reference's
//! `svg/agent.py`, `expand_Q`), for on-board monitoring (a value that falls tells that the
//! controller is heading somewhere the agent expects to do badly).
//!
//! With the observation `x₀` normalised by the run's statistics and `h₀ = 0`:
//! ```text
//! u_t = tanh(μ(x_t) + e^{ℓ(x_t)} ε_t)          (ε_t = 0: the deterministic policy)
//! q_t = 1 − σ(done(x_t, u_t)),   w = the survival weights of training ([q₀, q₀², q₀²q₁, …]
//!                                    as the reference, or [1, q₀, q₀q₁, …] corrected)
//! V̂_H(x₀) = Σ_{t<H−1} γᵗ w_t r̂(x_t, u_t) + γ^{H−1} w_{H−1} min(Q₁, Q₂)(x_{H−1}, u_{H−1})
//! x_{t+1} = x_t + dec(GRU(enc(x_t, u_t), h_t))
//! ```
//! and `V̂₀(x) = min(Q₁, Q₂)(x, u₀)` for a model-free (`H = 0`) agent. This is the SVG(H)
//! objective of training without its entropy term (`α = 0`); with the same noise the host
//! computes the same number.
//!
//! File (`keel.kind = "rl-value"`, written by `keel rl train --export-value`): the MLPs `actor.`,
//! `q1.`, `q2.`, `reward.`, `done.`, `enc.` (tensors `{prefix}layer{i}.weight|bias`, each
//! configuration in the metadata entry `keel.config.{name}`, no standardisation), the GRU cell
//! `gru.` ([`GruCell`]), the decoder `dec.weight` `[O, G]` and `dec.bias`, the observation
//! statistics `obs.mean` and `obs.std` `[O]`, and `value.horizon`, `value.gamma`,
//! `value.corrected_survival`, `value.log_std_bounds` (`[1]`, `[1]`, `[1]`, `[2]`).

use crate::error::{Error, Result};
use crate::io::SafeTensors;
use crate::nn::weights::Floats;
use crate::nn::{Dense, GruCell, Mlp};
use crate::real::Real;

/// The longest horizon a value file may ask for.
pub const MAX_HORIZON: usize = 64;

/// A loaded value model whose MLPs have at most `L` layers.
///
/// Size: six [`Mlp`]s and three dense layers of borrowed views (2,848 bytes for `L = 4` on a
/// 64-bit host, about half on a 32-bit controller);
/// [`value`](ValueModel::value) keeps everything else in the caller's scratch, and nothing
/// recurses.
#[derive(Clone, Copy, Debug)]
pub struct ValueModel<'a, const L: usize> {
    actor: Mlp<'a, L>,
    q1: Mlp<'a, L>,
    q2: Mlp<'a, L>,
    reward: Mlp<'a, L>,
    done: Mlp<'a, L>,
    encoder: Mlp<'a, L>,
    gru: GruCell<'a>,
    decoder: Dense<'a>,
    obs_mean: Floats<'a>,
    obs_std: Floats<'a>,
    observations: usize,
    actions: usize,
    horizon: usize,
    gamma: f64,
    corrected_survival: bool,
    log_std_bounds: [f64; 2],
}

const KIND: &str = "rl-value";

fn shape_error(role: &'static str) -> Error {
    Error::TensorShape { role, layer: None }
}

impl<'a, const L: usize> ValueModel<'a, L> {
    /// Reads a value file (borrowing its weights).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another `keel.kind`, a missing or invalid configuration,
    /// sizes that do not chain (`[O + A]` into the Q, reward, done and encoder networks, the
    /// encoder's width into the GRU, the GRU's into the decoder, the decoder back to `O`), a
    /// horizon above [`MAX_HORIZON`], `γ` outside (0, 1], unordered log-std bounds, or
    /// observation statistics that are not finite with positive deviations; the loaders'
    /// errors for missing or misshapen tensors.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        let part = |prefix, key| Mlp::from_safetensors_part(st, KIND, prefix, key);
        let actor = part("actor.", "keel.config.actor")?;
        let q1 = part("q1.", "keel.config.q1")?;
        let q2 = part("q2.", "keel.config.q2")?;
        let reward = part("reward.", "keel.config.reward")?;
        let done = part("done.", "keel.config.done")?;
        let encoder = part("enc.", "keel.config.enc")?;
        let gru = GruCell::from_safetensors(st, "gru.")?;
        let get = |name| crate::nn::named_tensor(st, "", name);
        let decoder = Dense::new(&get("dec.weight")?, &get("dec.bias")?)?;
        let o = actor.inputs();
        let a = actor.outputs() / 2;
        if a == 0 || actor.outputs() % 2 != 0 {
            return Err(Error::InvalidConfig {
                what: "the actor gives 2·A outputs (means, then log-std parameters)",
            });
        }
        let chained = [q1, q2, reward, done, encoder]
            .iter()
            .all(|m| m.inputs() == o + a)
            && [q1, q2, reward, done].iter().all(|m| m.outputs() == 1)
            && encoder.outputs() == gru.inputs()
            && decoder.inputs() == gru.hidden()
            && decoder.outputs() == o;
        if !chained {
            return Err(Error::InvalidConfig {
                what: "a value file's networks do not chain (observations + actions into the \
                       critic, reward, done and encoder; encoder → GRU → decoder → observations)",
            });
        }
        let vector = |name: &'static str, n: usize| -> Result<Floats<'a>> {
            let view = get(name)?;
            if view.shape() != [n] {
                return Err(shape_error(name));
            }
            Floats::new(&view)
        };
        let obs_mean = vector("obs.mean", o)?;
        let obs_std = vector("obs.std", o)?;
        let finite = obs_mean.iter::<f64>().all(f64::is_finite)
            && obs_std.iter::<f64>().all(|s| s.is_finite() && s > 0.0);
        if !finite {
            return Err(Error::InvalidConfig {
                what: "observation statistics must be finite with positive deviations",
            });
        }
        let scalar = |name: &'static str| -> Result<f64> { get_scalar(&vector(name, 1)?) };
        let horizon = scalar("value.horizon")?;
        let gamma = scalar("value.gamma")?;
        let corrected = scalar("value.corrected_survival")?;
        let mut bounds = vector("value.log_std_bounds", 2)?.iter::<f64>();
        let log_std_bounds = [
            bounds.next().unwrap_or(f64::NAN),
            bounds.next().unwrap_or(f64::NAN),
        ];
        if !(horizon >= 0.0 && horizon <= MAX_HORIZON as f64 && horizon as usize as f64 == horizon)
        {
            return Err(Error::InvalidConfig {
                what: "`value.horizon` must be a whole number in [0, 64]",
            });
        }
        if !(gamma > 0.0 && gamma <= 1.0) {
            return Err(Error::InvalidConfig {
                what: "`value.gamma` must lie in (0, 1]",
            });
        }
        if !(corrected == 0.0 || corrected == 1.0) {
            return Err(Error::InvalidConfig {
                what: "`value.corrected_survival` must be 0 or 1",
            });
        }
        if !(log_std_bounds[0] < log_std_bounds[1]) || log_std_bounds.iter().any(|b| !b.is_finite())
        {
            return Err(Error::InvalidConfig {
                what: "`value.log_std_bounds` must be finite and ordered",
            });
        }
        Ok(ValueModel {
            actor,
            q1,
            q2,
            reward,
            done,
            encoder,
            gru,
            decoder,
            obs_mean,
            obs_std,
            observations: o,
            actions: a,
            horizon: horizon as usize,
            gamma,
            corrected_survival: corrected == 1.0,
            log_std_bounds,
        })
    }

    /// Observations taken (raw, as the environment gives them).
    pub fn observations(&self) -> usize {
        self.observations
    }

    /// Actions of the policy.
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// The model horizon `H` of training.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The discount `γ` of training.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// Policy noise scalars [`value_with_noise`](ValueModel::value_with_noise) takes:
    /// `max(H, 1) · A`, step-major.
    pub fn noise_len(&self) -> usize {
        self.horizon.max(1) * self.actions
    }

    fn mlp_scratch(&self) -> usize {
        [
            self.actor,
            self.q1,
            self.q2,
            self.reward,
            self.done,
            self.encoder,
        ]
        .iter()
        .map(Mlp::forward_scratch_len)
        .max()
        .unwrap_or(0)
    }

    /// Scratch scalars [`value`](ValueModel::value) needs.
    pub fn scratch_len(&self) -> usize {
        let (o, a, g) = (self.observations, self.actions, self.gru.hidden());
        // [x, u], h, the actor's (μ, ℓ̃), encoder output, decoder output, GRU gates, one MLP.
        (o + a)
            + g
            + 2 * a
            + self.encoder.outputs()
            + o
            + self.gru.scratch_len()
            + self.mlp_scratch()
    }

    /// `V̂_H(obs)` under the deterministic policy `tanh μ`.
    ///
    /// # Errors
    /// As [`value_with_noise`](ValueModel::value_with_noise).
    pub fn value<T: Real>(&self, obs: &[T], scratch: &mut [T]) -> Result<T> {
        self.estimate(obs, None, scratch)
    }

    /// `V̂_H(obs)` under policy samples with noise `ε` ([`noise_len`](ValueModel::noise_len)
    /// standard-normal scalars from the caller's generator, step-major): one sample of the
    /// stochastic policy's model-based value.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for wrong lengths; [`Error::ScratchTooSmall`];
    /// [`Error::NonFinite`] when the rolled state (`index` its component, `t` the step) or the
    /// value (`t` = the number of steps) is not finite.
    pub fn value_with_noise<T: Real>(
        &self,
        obs: &[T],
        noise: &[T],
        scratch: &mut [T],
    ) -> Result<T> {
        if noise.len() != self.noise_len() {
            return Err(Error::ShapeMismatch {
                what: "policy noise",
                expected: self.noise_len(),
                got: noise.len(),
            });
        }
        self.estimate(obs, Some(noise), scratch)
    }

    fn estimate<T: Real>(&self, obs: &[T], noise: Option<&[T]>, scratch: &mut [T]) -> Result<T> {
        let (o, a, g) = (self.observations, self.actions, self.gru.hidden());
        if obs.len() != o {
            return Err(Error::ShapeMismatch {
                what: "observation",
                expected: o,
                got: obs.len(),
            });
        }
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len(),
            got: scratch.len(),
        };
        let mut rest = scratch;
        let xu = carve(&mut rest, o + a, too_small)?;
        let h = carve(&mut rest, g, too_small)?;
        let head = carve(&mut rest, 2 * a, too_small)?;
        let enc = carve(&mut rest, self.encoder.outputs(), too_small)?;
        let dx = carve(&mut rest, o, too_small)?;
        let gates = carve(&mut rest, self.gru.scratch_len(), too_small)?;
        let work = carve(&mut rest, self.mlp_scratch(), too_small)?;

        // x₀ = (obs − mean)/std into the first O slots of xu; h₀ = 0.
        for (((x, &v), m), s) in xu
            .iter_mut()
            .zip(obs)
            .zip(self.obs_mean.iter::<T>())
            .zip(self.obs_std.iter::<T>())
        {
            *x = (v - m) / s;
        }
        h.fill(T::ZERO);
        let [lo, hi] = self.log_std_bounds.map(T::from_f64);
        let gamma = T::from_f64(self.gamma);
        let steps = self.horizon.max(1);
        let mut total = T::ZERO;
        let mut discount = T::ONE;
        let mut weight: Option<T> = None;
        let mut out = [T::ZERO];
        for t in 0..steps {
            // u_t from the policy at x_t.
            let (x, u) = xu.split_at_mut(o);
            self.actor.forward(x, head, work)?;
            for i in 0..a {
                let mut pre = head[i];
                if let Some(eps) = noise {
                    let log_std = lo + T::HALF * (hi - lo) * (head[a + i].libm_tanh() + T::ONE);
                    pre += log_std.libm_exp() * eps[t * a + i];
                }
                u[i] = pre.libm_tanh();
            }
            let min_q = |out: &mut [T; 1], work: &mut [T]| -> Result<T> {
                self.q1.forward(xu, out, work)?;
                let first = out[0];
                self.q2.forward(xu, out, work)?;
                Ok(if first > out[0] { out[0] } else { first })
            };
            if self.horizon == 0 {
                total = min_q(&mut out, work)?;
                break;
            }
            self.done.forward(xu, &mut out, work)?;
            let q = T::ONE - crate::nn::activation::sigmoid(out[0]);
            let w = match weight {
                Some(w) => w,
                None if self.corrected_survival => T::ONE,
                None => q,
            };
            let value = if t + 1 < steps {
                self.reward.forward(xu, &mut out, work)?;
                out[0]
            } else {
                min_q(&mut out, work)?
            };
            total += discount * w * value;
            weight = Some(w * q);
            discount *= gamma;
            if t + 1 < steps {
                // x_{t+1} = x_t + dec(GRU(enc(x_t, u_t), h_t)).
                self.encoder.forward(xu, enc, work)?;
                self.gru.step(enc, h, gates)?;
                self.decoder.forward(h, dx)?;
                for (x, d) in xu.iter_mut().zip(dx.iter()) {
                    *x += *d;
                }
                if let Some(index) = xu.iter().take(o).position(|v| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        index,
                        t: (t + 1) as f64,
                    });
                }
            }
        }
        if total.is_finite() {
            Ok(total)
        } else {
            Err(Error::NonFinite {
                index: 0,
                t: steps as f64,
            })
        }
    }
}

/// The first `n` scalars of `rest`, which keeps the others.
fn carve<'s, T>(rest: &mut &'s mut [T], n: usize, too_small: Error) -> Result<&'s mut [T]> {
    let (head, tail) = core::mem::take(rest)
        .split_at_mut_checked(n)
        .ok_or(too_small)?;
    *rest = tail;
    Ok(head)
}

fn get_scalar(v: &Floats<'_>) -> Result<f64> {
    v.iter::<f64>().next().ok_or(Error::InvalidConfig {
        what: "an empty scalar tensor",
    })
}
