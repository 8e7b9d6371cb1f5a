//! A trained SAC-SVG(H) policy on the controller: the actor's trunk as an exported MLP
//! (`keel.kind = "policy"`, the training run's observation normalisation as its input
//! standardisation) and the actuator limits, evaluated without allocation.
//!
//! The trunk gives `(μ, ℓ̃)`; the deterministic action is `tanh μ` (in `[−1, 1]`, what an
//! [`Env`](super::Env) takes), a sampled one `tanh(μ + e^ℓ ε)` with
//! `ℓ = ℓ_min + ½(ℓ_max − ℓ_min)(tanh ℓ̃ + 1)` and `ε ~ N(0, 1)` from the caller's generator.
//!
//! File layout: the MLP's tensors (`layer{i}.weight`, `layer{i}.bias`, `input.mean`,
//! `input.std`), `policy.action_low` and `policy.action_high` `[A]` (the actuator limits the
//! normalised actions map to), `policy.log_std_bounds` `[2]`.

use rand_core::Rng;

use crate::error::{Error, Result};
use crate::io::SafeTensors;
use crate::nn::Mlp;
use crate::random::standard_normal;
use crate::real::Real;

/// Most actions a policy may have.
pub const MAX_ACTIONS: usize = 8;

/// A loaded policy with up to `L` layers.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a, const L: usize> {
    trunk: Mlp<'a, L>,
    actions: usize,
    low: [f64; MAX_ACTIONS],
    high: [f64; MAX_ACTIONS],
    log_std_bounds: [f64; 2],
}

impl<'a, const L: usize> Policy<'a, L> {
    /// Reads a policy file (borrowing its weights).
    ///
    /// # Errors
    /// As [`Mlp::from_safetensors_of_kind`] with kind `"policy"`; [`Error::TensorNotFound`] or
    /// [`Error::TensorShape`] for missing or misshapen `policy.*` tensors; an odd trunk output
    /// or more than [`MAX_ACTIONS`] actions ([`Error::InvalidConfig`]).
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        let trunk = Mlp::from_safetensors_of_kind(st, "policy")?;
        let out = trunk.outputs();
        if out % 2 != 0 || out == 0 || out / 2 > MAX_ACTIONS {
            return Err(Error::InvalidConfig {
                what: "a policy's trunk gives 2·A outputs (means, then log-std parameters), A ≤ 8",
            });
        }
        let actions = out / 2;
        let read = |name: &'static str, n: usize, to: &mut [f64]| -> Result<()> {
            let t = st.tensor(name).map_err(|_| Error::TensorNotFound {
                role: name,
                layer: None,
            })?;
            if t.len() != n {
                return Err(Error::TensorShape {
                    role: name,
                    layer: None,
                });
            }
            for (i, v) in to.iter_mut().enumerate().take(n) {
                *v = t.get_f64(i)?;
            }
            Ok(())
        };
        let (mut low, mut high, mut bounds) = ([0.0; MAX_ACTIONS], [0.0; MAX_ACTIONS], [0.0; 2]);
        read("policy.action_low", actions, &mut low)?;
        read("policy.action_high", actions, &mut high)?;
        read("policy.log_std_bounds", 2, &mut bounds)?;
        let ordered = (0..actions).all(|i| low[i] < high[i]) && bounds[0] < bounds[1];
        if !ordered
            || low
                .iter()
                .chain(&high)
                .chain(&bounds)
                .any(|v| !v.is_finite())
        {
            return Err(Error::InvalidConfig {
                what: "policy limits must be finite with low < high",
            });
        }
        Ok(Policy {
            trunk,
            actions,
            low,
            high,
            log_std_bounds: bounds,
        })
    }

    /// Observations taken.
    pub fn observations(&self) -> usize {
        self.trunk.inputs()
    }

    /// Actions given.
    pub fn actions(&self) -> usize {
        self.actions
    }

    /// The actuator limits `(low, high)` of action `i`.
    pub fn limits(&self, i: usize) -> Option<(f64, f64)> {
        (i < self.actions).then(|| (self.low[i], self.high[i]))
    }

    /// Scratch scalars [`act`](Policy::act) and [`sample`](Policy::sample) need.
    pub fn scratch_len(&self) -> usize {
        self.trunk
            .forward_scratch_len()
            .saturating_add(2 * self.actions)
    }

    fn trunk<'s, T: Real>(&self, obs: &[T], scratch: &'s mut [T]) -> Result<&'s [T]> {
        let need = self.scratch_len();
        if scratch.len() < need {
            return Err(Error::ScratchTooSmall {
                needed: need,
                got: scratch.len(),
            });
        }
        let (head, rest) = scratch.split_at_mut(2 * self.actions);
        self.trunk.forward(obs, head, rest)?;
        Ok(head)
    }

    fn check_action<T>(&self, action: &[T]) -> Result<()> {
        if action.len() != self.actions {
            return Err(Error::ShapeMismatch {
                what: "action",
                expected: self.actions,
                got: action.len(),
            });
        }
        Ok(())
    }

    /// The deterministic action `tanh μ(obs)` in `[−1, 1]`.
    ///
    /// # Errors
    /// Wrong lengths; [`Error::ScratchTooSmall`]; [`Error::NonFinite`] for a NaN action.
    pub fn act<T: Real>(&self, obs: &[T], action: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.check_action(action)?;
        let head = self.trunk(obs, scratch)?;
        for (i, a) in action.iter_mut().enumerate() {
            *a = head[i].libm_tanh();
        }
        finite(action)
    }

    /// A sampled action `tanh(μ + e^ℓ ε)`, `ε` drawn from `rng`.
    ///
    /// # Errors
    /// As [`act`](Policy::act).
    pub fn sample<T: Real, R: Rng + ?Sized>(
        &self,
        obs: &[T],
        rng: &mut R,
        action: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_action(action)?;
        let [lo, hi] = self.log_std_bounds.map(T::from_f64);
        let a = self.actions;
        let head = self.trunk(obs, scratch)?;
        for (i, out) in action.iter_mut().enumerate() {
            let log_std = lo + T::HALF * (hi - lo) * (head[a + i].libm_tanh() + T::ONE);
            let eps: T = standard_normal(rng);
            *out = (head[i] + log_std.libm_exp() * eps).libm_tanh();
        }
        finite(action)
    }

    /// The actuator command of a normalised action (the environments' rescaling).
    ///
    /// # Errors
    /// Wrong lengths; a NaN action.
    pub fn to_actuator<T: Real>(&self, action: &[T], command: &mut [T]) -> Result<()> {
        self.check_action(action)?;
        self.check_action(command)?;
        for i in 0..self.actions {
            command[i] = super::rescale(
                action[i],
                T::from_f64(self.low[i]),
                T::from_f64(self.high[i]),
            )?;
        }
        Ok(())
    }
}

fn finite<T: Real>(v: &[T]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(Error::NonFinite { index, t: 0.0 }),
        None => Ok(()),
    }
}
