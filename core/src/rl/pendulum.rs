//! gymnasium's `Pendulum-v1`, step for step: semi-implicit Euler of `θ̈ = 3g/(2l)·sin θ +
//! 3/(ml²)·u` with `g = 10`, `m = l = 1`, `dt = 0.05`, the speed clipped to ±8 and the torque to
//! ±2; reward `−(θ̂² + 0.1·θ̇² + 0.001·u²)` with `θ̂` the angle wrapped to `[−π, π)`; observation
//! `(cos θ, sin θ, θ̇)`; `θ ~ U[−π, π]`, `θ̇ ~ U[−1, 1]` at reset; 200 steps per episode, never
//! terminal. `θ = 0` is upright.

use rand_core::Rng;

use super::{check_finite, rescale, Clock, Env, Step};
use crate::error::Result;
use crate::random::uniform;
use crate::real::Real;

/// The swing-up pendulum. State `(θ, θ̇)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pendulum<T> {
    state: [T; 2],
    clock: Clock,
}

impl<T: Real> Default for Pendulum<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> Pendulum<T> {
    /// Largest torque (N·m).
    pub const MAX_TORQUE: f64 = 2.0;
    /// Largest angular speed (rad/s).
    pub const MAX_SPEED: f64 = 8.0;
    /// Control interval (s).
    pub const DT: f64 = 0.05;
    /// Gravity.
    pub const G: f64 = 10.0;

    /// At rest, hanging down, before any reset.
    pub fn new() -> Self {
        Pendulum {
            state: [T::PI, T::ZERO],
            clock: Clock {
                steps: 0,
                limit: 200,
            },
        }
    }

    /// `(θ, θ̇)`.
    pub fn state(&self) -> [T; 2] {
        self.state
    }

    /// Starts an episode at `(θ, θ̇)`.
    pub fn set_state(&mut self, state: [T; 2]) {
        self.state = state;
        self.clock.steps = 0;
    }

    /// One step with the torque `u` in N·m (clipped to ±2), gymnasium's `step(u)`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] for a NaN torque; [`crate::Error::NonFinite`] for a
    /// state that is not finite.
    pub fn step_torque(&mut self, u: T) -> Result<Step<T, 3>> {
        if u.is_nan() {
            return Err(crate::Error::InvalidParameter {
                name: "torque",
                value: f64::NAN,
            });
        }
        let f = T::from_f64;
        let [th, thdot] = self.state;
        let max_torque = f(Self::MAX_TORQUE);
        let u = u.max(-max_torque).min(max_torque);
        let wrapped = (th + T::PI).rem_floor(T::TWO * T::PI) - T::PI;
        let cost = wrapped * wrapped + f(0.1) * thdot * thdot + f(0.001) * (u * u);
        let (g, m, l, dt) = (f(Self::G), T::ONE, T::ONE, f(Self::DT));
        let max_speed = f(Self::MAX_SPEED);
        let newthdot =
            thdot + (f(3.0) * g / (f(2.0) * l) * th.libm_sin() + f(3.0) / (m * (l * l)) * u) * dt;
        let newthdot = newthdot.max(-max_speed).min(max_speed);
        let newth = th + newthdot * dt;
        self.state = [newth, newthdot];
        check_finite(&self.state)?;
        let truncated = self.clock.tick();
        Ok(Step {
            observation: self.observation(),
            reward: -cost,
            terminated: false,
            truncated,
        })
    }
}

impl<T: Real> Env<T, 3, 1> for Pendulum<T> {
    const NAME: &'static str = "pendulum";

    fn max_steps(&self) -> usize {
        self.clock.limit
    }

    fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Result<[T; 3]> {
        let th = T::PI * (T::TWO * uniform::<T, R>(rng) - T::ONE);
        let thdot = T::TWO * uniform::<T, R>(rng) - T::ONE;
        self.set_state([th, thdot]);
        Ok(self.observation())
    }

    fn observation(&self) -> [T; 3] {
        let [th, thdot] = self.state;
        [th.libm_cos(), th.libm_sin(), thdot]
    }

    fn step(&mut self, action: &[T; 1]) -> Result<Step<T, 3>> {
        let m = T::from_f64(Self::MAX_TORQUE);
        self.step_torque(rescale(action[0], -m, m)?)
    }
}
