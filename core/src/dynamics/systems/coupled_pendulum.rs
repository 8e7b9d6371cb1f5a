//! `CoupledPendulum`: `B` spherical pendulums hanging from pivots spaced 1 m apart along x,
//! neighbours joined by springs (CHNN `CoupledPendulum(bobs=B, m=1, l=1, k=10)`).

use rand_core::Rng;

use super::resample;
use crate::dynamics::rotation::sphere_point;
use crate::dynamics::{
    Gravity, Mechanics, MechanicsBuilder, Phase, ProjectParams, Spring, Springs,
};
use crate::error::{Error, Result};
use crate::random::standard_normal;
use crate::real::Real;

/// The coupled pendulums' mechanics: `B` nodes in 3-D, `B` tethers, gravity plus springs.
pub type CoupledPendulumMechanics<T, const B: usize> =
    Mechanics<T, B, 3, B, (Gravity<T, B>, Springs<T, B>)>;

/// `B` bobs tethered to pivots `(i, 0, 0)`, springs of stiffness `k` and rest length 1 (the
/// pivot spacing) between neighbours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoupledPendulum<T, const B: usize> {
    masses: [T; B],
    lengths: [T; B],
    k: T,
    gravity: T,
    mechanics: CoupledPendulumMechanics<T, B>,
}

impl<T: Real, const B: usize> CoupledPendulum<T, B> {
    /// Name used on the command line and in files.
    pub const NAME: &'static str = "coupled-pendulum";
    /// The paper's sampling interval (s).
    pub const DT: f64 = 0.05;
    /// The paper's trajectory length (s).
    pub const T_END: f64 = 5.0;

    /// Pivot of bob `i`.
    pub fn pivot(i: usize) -> [T; 3] {
        [T::from_usize(i), T::ZERO, T::ZERO]
    }

    /// Bobs with the given masses and rod lengths, spring stiffness `k` and gravity.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for non-positive masses or lengths, negative `k` or gravity.
    pub fn new(masses: [T; B], lengths: [T; B], k: T, gravity: T) -> Result<Self> {
        if B == 0 {
            return Err(Error::InvalidParameter {
                name: "bobs",
                value: 0.0,
            });
        }
        if !(k >= T::ZERO) || !k.is_finite() {
            return Err(Error::InvalidParameter {
                name: "k",
                value: k.as_f64(),
            });
        }
        if !(gravity >= T::ZERO) || !gravity.is_finite() {
            return Err(Error::InvalidParameter {
                name: "gravity",
                value: gravity.as_f64(),
            });
        }
        let mut b = MechanicsBuilder::<T, B, 3, B>::new();
        for (i, m) in masses.iter().enumerate() {
            let node = b.point_mass(*m)?;
            b.tether(node, Self::pivot(i), lengths[i])?;
        }
        let mut springs = Springs::new();
        for i in 1..B {
            // Capacity B ≥ B − 1 springs: this cannot overflow.
            let _ = springs.push(Spring {
                a: i - 1,
                b: i,
                k,
                rest: T::ONE,
            });
        }
        let weights = b.mass().gravity_weights();
        let mechanics = b.build((
            Gravity {
                g: gravity,
                weights,
            },
            springs,
        ))?;
        Ok(Self {
            masses,
            lengths,
            k,
            gravity,
            mechanics,
        })
    }

    /// The paper's system: unit masses and lengths, k = 10 and — as in the reference code —
    /// g = 10 (not 9.81).
    ///
    /// # Errors
    /// Never for `B ≥ 1`.
    pub fn paper() -> Result<Self> {
        Self::new(
            [T::ONE; B],
            [T::ONE; B],
            T::from_f64(10.0),
            T::from_f64(10.0),
        )
    }

    /// Bob masses.
    pub fn masses(&self) -> &[T; B] {
        &self.masses
    }

    /// Rod lengths.
    pub fn lengths(&self) -> &[T; B] {
        &self.lengths
    }

    /// Spring stiffness.
    pub fn stiffness(&self) -> T {
        self.k
    }

    /// Gravitational acceleration.
    pub fn gravity(&self) -> T {
        self.gravity
    }

    /// The constrained mechanics.
    pub fn mechanics(&self) -> &CoupledPendulumMechanics<T, B> {
        &self.mechanics
    }

    /// The velocity-form state for per-bob spherical angles `(φ, θ)` and rates in the
    /// reference's convention (see [`sphere_point`]; `(π, π/2)` hangs straight down).
    pub fn velocity_state_from_spherical(
        &self,
        angles: &[[T; 2]; B],
        rates: &[[T; 2]; B],
    ) -> Phase<T, B, 3> {
        let mut z = Phase::zeros();
        let (x, v) = z.split_mut();
        for i in 0..B {
            let (p, dp) = sphere_point(angles[i][0], angles[i][1], rates[i][0], rates[i][1]);
            let pivot = Self::pivot(i);
            for d in 0..3 {
                x[i][d] = pivot[d] + self.lengths[i] * p[d];
                v[i][d] = self.lengths[i] * dp[d];
            }
        }
        z
    }

    /// The reference's initial-condition distribution: angles and rates `0.3·N(0, 1)` around
    /// `(φ, θ) = (π, π/2)`, then projected.
    ///
    /// # Errors
    /// [`Error::SamplingFailed`] if no draw projects in 100 attempts.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Phase<T, B, 3>> {
        resample(|| {
            let s = T::from_f64(0.3);
            let mut angles = [[T::ZERO; 2]; B];
            let mut rates = [[T::ZERO; 2]; B];
            for i in 0..B {
                angles[i] = [
                    T::PI + s * standard_normal::<T, R>(rng),
                    T::HALF * T::PI + s * standard_normal::<T, R>(rng),
                ];
                rates[i] = [
                    s * standard_normal::<T, R>(rng),
                    s * standard_normal::<T, R>(rng),
                ];
            }
            let mut z = self.velocity_state_from_spherical(&angles, &rates);
            self.mechanics.project(&mut z, ProjectParams::default())?;
            Ok(self.mechanics.from_velocity_form(&z))
        })
    }
}
