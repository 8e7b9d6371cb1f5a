//! The core's environments behind one object-safe interface for training (observation and
//! action sizes known at run time), and the command-line names.

use keel_core::random::Xoshiro256PlusPlus;
use keel_core::rl::{Acrobot, CartPoleSwingUp, Env, Pendulum};

use crate::error::{Error, Result};

/// One step's outcome, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Observation after the step.
    pub observation: Vec<f64>,
    /// Reward.
    pub reward: f64,
    /// A true terminal state.
    pub terminated: bool,
    /// The time limit.
    pub truncated: bool,
}

/// An environment of run-time size.
pub trait Task: Send {
    /// Name on the command line.
    fn name(&self) -> &'static str;
    /// Observation size.
    fn observations(&self) -> usize;
    /// Action size.
    fn actions(&self) -> usize;
    /// Actuator limits `(low, high)` of each action (after rescaling from `[−1, 1]`).
    fn limits(&self) -> Vec<(f64, f64)>;
    /// Steps per episode.
    fn max_steps(&self) -> usize;
    /// Starts an episode.
    ///
    /// # Errors
    /// As the core environment.
    fn reset(&mut self, rng: &mut Xoshiro256PlusPlus) -> Result<Vec<f64>>;
    /// One step with a normalised action.
    ///
    /// # Errors
    /// A wrong action size; a NaN action; a state that blew up.
    fn step(&mut self, action: &[f64]) -> Result<Outcome>;
}

struct Wrapped<E, const O: usize, const A: usize> {
    env: E,
    limits: [(f64, f64); A],
}

impl<E: Env<f64, O, A> + Send, const O: usize, const A: usize> Task for Wrapped<E, O, A> {
    fn name(&self) -> &'static str {
        E::NAME
    }
    fn observations(&self) -> usize {
        O
    }
    fn actions(&self) -> usize {
        A
    }
    fn limits(&self) -> Vec<(f64, f64)> {
        self.limits.to_vec()
    }
    fn max_steps(&self) -> usize {
        self.env.max_steps()
    }
    fn reset(&mut self, rng: &mut Xoshiro256PlusPlus) -> Result<Vec<f64>> {
        Ok(self
            .env
            .reset(rng)
            .map_err(Error::core("environment reset"))?
            .to_vec())
    }
    fn step(&mut self, action: &[f64]) -> Result<Outcome> {
        let a: [f64; A] = action.try_into().map_err(|_| {
            Error::invalid(
                "action",
                action.len(),
                format!("{} takes {A} action(s)", E::NAME),
            )
        })?;
        let s = self.env.step(&a).map_err(Error::core("environment step"))?;
        Ok(Outcome {
            observation: s.observation.to_vec(),
            reward: s.reward,
            terminated: s.terminated,
            truncated: s.truncated,
        })
    }
}

/// The environments by name.
pub const NAMES: [&str; 3] = ["pendulum", "cartpole", "acrobot"];

/// The environment called `name`.
///
/// # Errors
/// An unknown name (listing the known ones).
pub fn make(name: &str) -> Result<Box<dyn Task>> {
    Ok(match name {
        "pendulum" => Box::new(Wrapped {
            env: Pendulum::<f64>::new(),
            limits: [(-Pendulum::<f64>::MAX_TORQUE, Pendulum::<f64>::MAX_TORQUE)],
        }),
        "cartpole" => Box::new(Wrapped {
            env: CartPoleSwingUp::<f64>::new(),
            limits: [(
                -CartPoleSwingUp::<f64>::MAX_FORCE,
                CartPoleSwingUp::<f64>::MAX_FORCE,
            )],
        }),
        "acrobot" => Box::new(Wrapped {
            env: Acrobot::<f64>::new().map_err(Error::core("acrobot"))?,
            limits: [(-Acrobot::<f64>::MAX_TORQUE, Acrobot::<f64>::MAX_TORQUE)],
        }),
        _ => {
            return Err(Error::invalid(
                "env",
                name,
                format!("unknown environment; expected one of {}", NAMES.join(", ")),
            ))
        }
    })
}
