//! Cart-pole swing-up: the cart-pole of Barto, Sutton & Anderson (1983) — gymnasium's
//! `CartPole` equations, cart 1 kg, pole 0.1 kg of half-length 0.5 m, g = 9.8 — driven by a
//! continuous force of at most 10 N, integrated with RK4 (4 steps of 12.5 ms per 50 ms control
//! interval), the pole starting down. Keel's definition (the reference has no cart-pole):
//!
//! - state `(x, ẋ, θ, θ̇)`, `θ = 0` upright; reset `x, ẋ, θ̇ ~ N(0, 0.05²)`, `θ = π + N(0, 0.05²)`;
//! - observation `(x, ẋ, cos θ, sin θ, θ̇)`;
//! - reward `(1 + cos θ)/2 − 0.01·a²` with `a` the normalised action — 1 per step upright, 0 down;
//! - **terminal** when the cart leaves the track `|x| > 2.4 m` (no further reward); 200 steps
//!   (10 s) per episode otherwise.

use rand_core::Rng;

use super::{check_finite, rescale, Clock, Env, Step};
use crate::error::Result;
use crate::integrate::{Rk4, VectorField};
use crate::random::standard_normal;
use crate::real::Real;

/// The cart-pole swing-up task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CartPoleSwingUp<T> {
    state: [T; 4],
    clock: Clock,
}

/// The cart-pole's vector field under a constant force.
struct Dynamics<T> {
    force: T,
}

impl<T: Real> VectorField<T> for Dynamics<T> {
    type State = [T; 4];
    fn rate(&self, _t: T, z: &[T; 4], dz: &mut [T; 4]) -> Result<()> {
        let f = T::from_f64;
        let (mc, mp, l, g) = (
            f(CartPoleSwingUp::<f64>::CART_MASS),
            f(CartPoleSwingUp::<f64>::POLE_MASS),
            f(CartPoleSwingUp::<f64>::HALF_LENGTH),
            f(CartPoleSwingUp::<f64>::G),
        );
        let total = mc + mp;
        let [_, xdot, th, thdot] = *z;
        let (s, c) = (th.libm_sin(), th.libm_cos());
        let temp = (self.force + mp * l * thdot * thdot * s) / total;
        let thacc = (g * s - c * temp) / (l * (f(4.0 / 3.0) - mp * c * c / total));
        let xacc = temp - mp * l * thacc * c / total;
        *dz = [xdot, xacc, thdot, thacc];
        Ok(())
    }
}

impl<T: Real> Default for CartPoleSwingUp<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> CartPoleSwingUp<T> {
    /// Cart mass (kg).
    pub const CART_MASS: f64 = 1.0;
    /// Pole mass (kg).
    pub const POLE_MASS: f64 = 0.1;
    /// Half the pole's length (m).
    pub const HALF_LENGTH: f64 = 0.5;
    /// Gravity (m/s²).
    pub const G: f64 = 9.8;
    /// Largest force (N).
    pub const MAX_FORCE: f64 = 10.0;
    /// Half the track (m).
    pub const TRACK: f64 = 2.4;
    /// Control interval (s).
    pub const DT: f64 = 0.05;
    /// RK4 steps per control interval.
    pub const SUBSTEPS: usize = 4;

    /// At rest with the pole down, before any reset.
    pub fn new() -> Self {
        CartPoleSwingUp {
            state: [T::ZERO, T::ZERO, T::PI, T::ZERO],
            clock: Clock {
                steps: 0,
                limit: 200,
            },
        }
    }

    /// `(x, ẋ, θ, θ̇)`.
    pub fn state(&self) -> [T; 4] {
        self.state
    }

    /// Starts an episode at `(x, ẋ, θ, θ̇)`.
    pub fn set_state(&mut self, state: [T; 4]) {
        self.state = state;
        self.clock.steps = 0;
    }
}

impl<T: Real> Env<T, 5, 1> for CartPoleSwingUp<T> {
    const NAME: &'static str = "cartpole";

    fn max_steps(&self) -> usize {
        self.clock.limit
    }

    fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Result<[T; 5]> {
        let k = T::from_f64(0.05);
        let mut z = [T::ZERO; 4];
        for v in &mut z {
            *v = k * standard_normal::<T, R>(rng);
        }
        z[2] += T::PI;
        self.set_state(z);
        Ok(self.observation())
    }

    fn observation(&self) -> [T; 5] {
        let [x, xdot, th, thdot] = self.state;
        [x, xdot, th.libm_cos(), th.libm_sin(), thdot]
    }

    fn step(&mut self, action: &[T; 1]) -> Result<Step<T, 5>> {
        let f = T::from_f64;
        let force = rescale(action[0], -f(Self::MAX_FORCE), f(Self::MAX_FORCE))?;
        let a = action[0].max(-T::ONE).min(T::ONE);
        let rk4 = Rk4::new(f(Self::DT) / T::from_usize(Self::SUBSTEPS))?;
        let field = Dynamics { force };
        for _ in 0..Self::SUBSTEPS {
            rk4.step(&field, T::ZERO, &mut self.state)?;
        }
        check_finite(&self.state)?;
        let truncated = self.clock.tick();
        let terminated = self.state[0].abs() > f(Self::TRACK);
        Ok(Step {
            observation: self.observation(),
            reward: T::HALF * (T::ONE + self.state[2].libm_cos()) - f(0.01) * a * a,
            terminated,
            truncated: truncated && !terminated,
        })
    }
}
