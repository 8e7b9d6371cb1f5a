//! Reinforcement-learning environments on the core's physics — the same step in training on the
//! host and in a control loop on the controller (SAC-SVG(H): Amos, Stanton, Yarats & Wilson, On
//! the Model-Based Stochastic Value Gradient for Continuous Reinforcement Learning, L4DC 2021;
//! reference code facebookresearch/svg).
//!
//! An [`Env`] takes **normalised actions** in `[−1, 1]^A` (clamped there; a NaN is refused) and
//! rescales them linearly to its actuator limits, as the reference's `RescaleAction` wrapper
//! does. Episodes end in one of two ways that a learner must tell apart: `terminated` (a true
//! terminal state: the value after it is zero) or `truncated` (the time limit: the state is not
//! terminal and its value is bootstrapped). Observation normalisation is [`Welford`]: running
//! mean and population standard deviation, the latter clamped as the reference clamps it.
//!
//! - [`Pendulum`]: gymnasium's `Pendulum-v1`, step for step (cross-checked against the package
//!   by `fixtures/gen/pendulum_gym.py`).
//! - [`CartPoleSwingUp`]: the cart-pole of Barto, Sutton & Anderson with a continuous force, the
//!   pole starting down.
//! - [`Acrobot`]: the two-link chain pendulum of [`crate::dynamics::systems::ChainPendulum`] with
//!   a torque at the elbow, integrated in Cartesian coordinates with its constraints.
//!
//! A trained agent runs here too: [`Policy`] (the exported actor: the deterministic action
//! `tanh μ` or a sample from the caller's generator, rescaled to the actuators) and
//! [`ValueModel`] (the short-horizon model-based value of a state: the policy rolled `H` steps
//! through the learned GRU world model, reward and done models, ending in the critic — for
//! on-board monitoring).
//!
//! No allocation, no recursion; every step is `O(1)` with a stack of a few hundred scalars (the
//! acrobot's constrained vector field is the largest).

mod acrobot;
mod cartpole;
mod pendulum;
mod policy;
mod value;
mod welford;

use rand_core::Rng;

pub use acrobot::Acrobot;
pub use cartpole::CartPoleSwingUp;
pub use pendulum::Pendulum;
pub use policy::{Policy, MAX_ACTIONS};
pub use value::{ValueModel, MAX_HORIZON};
pub use welford::{clamped_std, welford_update, Welford, MAX_STD, MIN_STD};

use crate::error::{Error, Result};
use crate::real::Real;

/// What one step returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step<T, const O: usize> {
    /// The observation after the step.
    pub observation: [T; O],
    /// The reward for the step.
    pub reward: T,
    /// A true terminal state was reached (no bootstrapping past it).
    pub terminated: bool,
    /// The time limit was reached (not terminal: bootstrap).
    pub truncated: bool,
}

/// An episodic control task with `O` observations and `A` normalised actions.
pub trait Env<T: Real, const O: usize, const A: usize> {
    /// Name on the command line and in files.
    const NAME: &'static str;

    /// Steps per episode before truncation.
    fn max_steps(&self) -> usize;

    /// Starts an episode from the task's initial-state distribution.
    ///
    /// # Errors
    /// A state the physics cannot represent (not for the tasks here).
    fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Result<[T; O]>;

    /// The current observation.
    fn observation(&self) -> [T; O];

    /// Applies `action` (normalised, clamped to `[−1, 1]`) for one control interval.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a NaN action; [`Error::NonFinite`] if the state blows up.
    fn step(&mut self, action: &[T; A]) -> Result<Step<T, O>>;
}

/// Maps a normalised action in `[−1, 1]` (clamped) linearly to `[low, high]`.
///
/// # Errors
/// [`Error::InvalidParameter`] for a NaN.
pub fn rescale<T: Real>(a: T, low: T, high: T) -> Result<T> {
    if a.is_nan() {
        return Err(Error::InvalidParameter {
            name: "action",
            value: f64::NAN,
        });
    }
    let a = a.max(-T::ONE).min(T::ONE);
    // gymnasium's RescaleAction inverts the affine map a = g·u + c, g = 2/(high − low),
    // c = −g·low − 1 (for symmetric limits ±m: u = a·m exactly).
    let g = T::TWO / (high - low);
    let c = g * -low - T::ONE;
    Ok((a - c) / g)
}

/// An episode's bookkeeping: steps taken against the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clock {
    pub(crate) steps: usize,
    pub(crate) limit: usize,
}

impl Clock {
    /// Counts a step; whether the limit is reached.
    pub(crate) fn tick(&mut self) -> bool {
        self.steps += 1;
        self.steps >= self.limit
    }
}

/// Checks that a state stayed finite.
pub(crate) fn check_finite<T: Real>(state: &[T]) -> Result<()> {
    match state.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite { index, t: f64::NAN }),
        None => Ok(()),
    }
}
