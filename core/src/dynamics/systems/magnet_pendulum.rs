//! `MagnetPendulum`: a magnetised spherical pendulum above `K` fixed magnets (CHNN
//! `MagnetPendulum(mass=3, l=1, q=0.3, magnets=2)`).

use rand_core::Rng;

use crate::dynamics::rotation::sphere_point;
use crate::dynamics::{DipoleSign, Gravity, MagnetDipoles, Mechanics, MechanicsBuilder, Phase};
use crate::error::{Error, Result};
use crate::random::standard_normal;
use crate::real::Real;

/// The magnet pendulum's mechanics: one node in 3-D, one tether, gravity plus dipoles.
pub type MagnetPendulumMechanics<T, const K: usize> =
    Mechanics<T, 1, 3, 1, (Gravity<T, 1>, MagnetDipoles<T, K>)>;

/// A bob of mass `m` on a rod of length `l` from the origin; magnet `k` sits at
/// `(0.1 cos α_k, 0.1 sin α_k, −1.05 l)`, `α_k = 2πk/K`, with dipole `q ẑ`; the bob's dipole is
/// `q r₀/|r₀|²`. See [`MagnetDipoles`] and [`DipoleSign`] for the energy and its sign.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MagnetPendulum<T, const K: usize> {
    mass: T,
    length: T,
    q: T,
    mechanics: MagnetPendulumMechanics<T, K>,
}

impl<T: Real, const K: usize> MagnetPendulum<T, K> {
    /// Name used on the command line and in files.
    pub const NAME: &'static str = "magnet-pendulum";
    /// The paper's sampling interval (s).
    pub const DT: f64 = 0.05;
    /// The paper's trajectory length (s).
    pub const T_END: f64 = 5.0;

    /// A magnet pendulum with mass, rod length, dipole strength `q`, gravity and energy sign.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive mass or length, non-finite `q` or negative
    /// gravity.
    pub fn new(mass: T, length: T, q: T, gravity: T, sign: DipoleSign) -> Result<Self> {
        if !q.is_finite() {
            return Err(Error::InvalidParameter {
                name: "q",
                value: q.as_f64(),
            });
        }
        if !(gravity >= T::ZERO) || !gravity.is_finite() {
            return Err(Error::InvalidParameter {
                name: "gravity",
                value: gravity.as_f64(),
            });
        }
        let mut b = MechanicsBuilder::<T, 1, 3, 1>::new();
        b.point_mass(mass)?;
        b.tether(0, [T::ZERO; 3], length)?;
        let mut positions = [[T::ZERO; 3]; K];
        let mut dipoles = [[T::ZERO; 3]; K];
        for k in 0..K {
            let a = T::TWO * T::PI * T::from_usize(k) / T::from_usize(K);
            let r = T::from_f64(0.1);
            positions[k] = [
                r * a.libm_cos(),
                r * a.libm_sin(),
                -T::from_f64(1.05) * length,
            ];
            dipoles[k] = [T::ZERO, T::ZERO, q];
        }
        let weights = b.mass().gravity_weights();
        let magnets = MagnetDipoles {
            node: 0,
            q,
            positions,
            dipoles,
            sign,
        };
        let mechanics = b.build((
            Gravity {
                g: gravity,
                weights,
            },
            magnets,
        ))?;
        Ok(Self {
            mass,
            length,
            q,
            mechanics,
        })
    }

    /// The paper's system (m = 3, l = 1, q = 0.3, g = 9.81) with the chosen energy sign; pass
    /// [`DipoleSign::Reference`] to reproduce the reference code's data.
    ///
    /// # Errors
    /// Never.
    pub fn paper(sign: DipoleSign) -> Result<Self> {
        Self::new(
            T::from_f64(3.0),
            T::ONE,
            T::from_f64(0.3),
            T::from_f64(9.81),
            sign,
        )
    }

    /// Bob mass.
    pub fn mass(&self) -> T {
        self.mass
    }

    /// Rod length.
    pub fn length(&self) -> T {
        self.length
    }

    /// Dipole strength.
    pub fn q(&self) -> T {
        self.q
    }

    /// The constrained mechanics.
    pub fn mechanics(&self) -> &MagnetPendulumMechanics<T, K> {
        &self.mechanics
    }

    /// The velocity-form state for spherical angles `(φ, θ)` and their rates (reference
    /// convention, see [`sphere_point`]).
    pub fn velocity_state_from_spherical(&self, angles: [T; 2], rates: [T; 2]) -> Phase<T, 1, 3> {
        let (p, dp) = sphere_point(angles[0], angles[1], rates[0], rates[1]);
        let l = self.length;
        Phase::new(
            [[l * p[0], l * p[1], l * p[2]]],
            [[l * dp[0], l * dp[1], l * dp[2]]],
        )
    }

    /// The reference's initial-condition distribution: `φ = π + 0.3N`, `φ̇ = 0.05N`,
    /// `θ = π/2 + 0.2N`, `θ̇ = 0.4N` (exactly on the sphere, no projection needed).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Phase<T, 1, 3> {
        let mut n = || standard_normal::<T, R>(rng);
        let phi = T::PI + T::from_f64(0.3) * n();
        let dphi = T::from_f64(0.05) * n();
        let theta = T::HALF * T::PI + T::from_f64(0.2) * n();
        let dtheta = T::from_f64(0.4) * n();
        self.mechanics
            .from_velocity_form(&self.velocity_state_from_spherical([phi, theta], [dphi, dtheta]))
    }
}
