//! Acrobot: the two-link chain pendulum of [`ChainPendulum`] (unit masses and lengths, g = 9.8;
//! absolute link angles from the downward vertical) with a torque `τ` of at most 2 N·m at the
//! elbow, integrated in Cartesian coordinates with its constraints (RK4, 4 steps of 12.5 ms per
//! 50 ms control interval, then a projection back onto the constraints). Keel's definition:
//!
//! - the elbow torque enters as node forces of the same virtual work `τ·δ(φ₂ − φ₁)`:
//!   `F₂ = (τ/l₂) e₂`, `F₁ = −(τ/l₁) e₁ − F₂` with `eᵢ = (cos φᵢ, sin φᵢ)` (the radial parts are
//!   taken by the constraints), evaluated at every stage of the integrator so they turn with the
//!   links;
//! - observation `(cos φ₁, sin φ₁, cos φ₂, sin φ₂, φ̇₁, φ̇₂)`; reset near hanging down, angles and
//!   rates `~ U[−0.1, 0.1]`;
//! - reward: the tip's height over the total length, `y_tip/(l₁ + l₂)` in `[−1, 1]`, less
//!   `0.01·a²`; 200 steps (10 s) per episode, never terminal.

use rand_core::Rng;

use super::{check_finite, rescale, Clock, Env, Step};
use crate::dynamics::systems::ChainPendulum;
use crate::dynamics::{Phase, ProjectParams};
use crate::error::Result;
use crate::integrate::{Rk4, StateVector, VectorField};
use crate::random::uniform;
use crate::real::Real;

/// The chain under a constant elbow torque: the node forces follow the links within a step.
struct ElbowTorque<'a, T> {
    chain: &'a ChainPendulum<T, 2>,
    tau: T,
}

impl<T: Real> VectorField<T> for ElbowTorque<'_, T> {
    type State = Phase<T, 2, 2>;
    fn rate(&self, _t: T, z: &Phase<T, 2, 2>, dz: &mut Phase<T, 2, 2>) -> Result<()> {
        let force = Acrobot::elbow_forces(z, self.tau);
        self.chain.mechanics().hamiltonian_rate(z, Some(&force), dz)
    }
}

/// The acrobot swing-up task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Acrobot<T> {
    chain: ChainPendulum<T, 2>,
    z: Phase<T, 2, 2>,
    clock: Clock,
}

impl<T: Real> Acrobot<T> {
    /// Largest elbow torque (N·m).
    pub const MAX_TORQUE: f64 = 2.0;
    /// Control interval (s).
    pub const DT: f64 = 0.05;
    /// RK4 steps per control interval.
    pub const SUBSTEPS: usize = 4;

    /// Hanging at rest, before any reset.
    ///
    /// # Errors
    /// Never for these parameters (the chain's own checks).
    pub fn new() -> Result<Self> {
        let chain = ChainPendulum::new([T::ONE; 2], [T::ONE; 2], T::from_f64(9.8))?;
        let z = chain.state_from_angles(&[T::ZERO; 2], &[T::ZERO; 2]);
        Ok(Acrobot {
            chain,
            z,
            clock: Clock {
                steps: 0,
                limit: 200,
            },
        })
    }

    /// The underlying chain.
    pub fn chain(&self) -> &ChainPendulum<T, 2> {
        &self.chain
    }

    /// The Cartesian Hamiltonian-form state.
    pub fn phase(&self) -> &Phase<T, 2, 2> {
        &self.z
    }

    /// Absolute angles and angular velocities.
    pub fn angles(&self) -> ([T; 2], [T; 2]) {
        self.chain.angles(&self.z)
    }

    /// Starts an episode at absolute angles and rates.
    pub fn set_angles(&mut self, angles: [T; 2], rates: [T; 2]) {
        self.z = self.chain.state_from_angles(&angles, &rates);
        self.clock.steps = 0;
    }

    /// The node forces of an elbow torque `tau` in the configuration `z`.
    pub fn elbow_forces(z: &Phase<T, 2, 2>, tau: T) -> [[T; 2]; 2] {
        let x = z.x();
        // eᵢ = (cos φᵢ, sin φᵢ) = the link's unit vector (sin φᵢ, −cos φᵢ) turned by +90°; the
        // links' current lengths stand in for lᵢ (equal on the constraint manifold).
        let perp = |d: [T; 2]| {
            let l = (d[0] * d[0] + d[1] * d[1]).sqrt();
            ([-d[1] / l, d[0] / l], l)
        };
        let (e1, l1) = perp(x[0]);
        let (e2, l2) = perp([x[1][0] - x[0][0], x[1][1] - x[0][1]]);
        let f2 = [tau / l2 * e2[0], tau / l2 * e2[1]];
        let f1 = [-tau / l1 * e1[0] - f2[0], -tau / l1 * e1[1] - f2[1]];
        [f1, f2]
    }

    /// One control interval with the elbow torque `tau` in N·m (clipped to ±2).
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] for a NaN torque; integration or projection failures.
    pub fn step_torque(&mut self, tau: T) -> Result<[T; 6]> {
        if tau.is_nan() {
            return Err(crate::Error::InvalidParameter {
                name: "torque",
                value: f64::NAN,
            });
        }
        let m = T::from_f64(Self::MAX_TORQUE);
        let tau = tau.max(-m).min(m);
        let field = ElbowTorque {
            chain: &self.chain,
            tau,
        };
        let rk4 = Rk4::new(T::from_f64(Self::DT) / T::from_usize(Self::SUBSTEPS))?;
        for _ in 0..Self::SUBSTEPS {
            rk4.step(&field, T::ZERO, &mut self.z)?;
        }
        self.chain
            .mechanics()
            .project_hamiltonian(&mut self.z, ProjectParams::default())?;
        check_finite(self.z.as_slice())?;
        Ok(self.observation())
    }

    /// The tip's height over the total length.
    pub fn height(&self) -> T {
        let [l1, l2] = *self.chain.lengths();
        self.z.x()[1][1] / (l1 + l2)
    }
}

impl<T: Real> Env<T, 6, 1> for Acrobot<T> {
    const NAME: &'static str = "acrobot";

    fn max_steps(&self) -> usize {
        self.clock.limit
    }

    fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Result<[T; 6]> {
        let k = T::from_f64(0.1);
        let mut u = || k * (T::TWO * uniform::<T, R>(rng) - T::ONE);
        let angles = [u(), u()];
        let rates = [u(), u()];
        self.set_angles(angles, rates);
        Ok(self.observation())
    }

    fn observation(&self) -> [T; 6] {
        let (phi, omega) = self.angles();
        [
            phi[0].libm_cos(),
            phi[0].libm_sin(),
            phi[1].libm_cos(),
            phi[1].libm_sin(),
            omega[0],
            omega[1],
        ]
    }

    fn step(&mut self, action: &[T; 1]) -> Result<Step<T, 6>> {
        let m = T::from_f64(Self::MAX_TORQUE);
        let tau = rescale(action[0], -m, m)?;
        let a = action[0].max(-T::ONE).min(T::ONE);
        let observation = self.step_torque(tau)?;
        let truncated = self.clock.tick();
        Ok(Step {
            observation,
            reward: self.height() - T::from_f64(0.01) * a * a,
            terminated: false,
            truncated,
        })
    }
}
