//! `ChainPendulum`: `L` point masses in a chain hanging from the origin in the plane (CHNN
//! `ChainPendulum(links=L)`): one tether at the pivot and `L − 1` rods.

use rand_core::Rng;

use super::resample;
use crate::dynamics::{Gravity, Mechanics, MechanicsBuilder, Phase, ProjectParams};
use crate::error::{Error, Result};
use crate::random::standard_normal;
use crate::real::Real;

/// The chain pendulum's mechanics: `L` nodes in 2-D, `L` constraints, gravity.
pub type ChainPendulumMechanics<T, const L: usize> = Mechanics<T, L, 2, L, Gravity<T, L>>;

/// The first 20 draws of `0.6 + 0.8·U[0,1)` from numpy's legacy generator with seed 0: the CHNN
/// reference draws `L` masses and then `L` lengths from this stream and assigns each list in
/// reverse (`list.pop()`), giving every paper pendulum its parameters.
const NUMPY_SEED0_DRAWS: [f64; 20] = [
    1.0390508031418597,
    1.1721514930979355,
    1.0822107008573152,
    1.0359065463975174,
    0.9389238394711238,
    1.1167152904533248,
    0.950069769010154,
    1.3134184006256637,
    1.3709302084008235,
    0.9067532150606221,
    1.2333800304661318,
    1.0231159358023236,
    1.0544356488751458,
    1.340477310634129,
    0.6568288465583095,
    0.6697034397612326,
    0.6161747179522605,
    1.2660958764383503,
    1.2225254007598805,
    1.2960097185974555,
];

/// A planar chain of `L` point masses; angles are measured from the downward vertical, the pivot
/// is at the origin, y points up and gravity acts along −y.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainPendulum<T, const L: usize> {
    masses: [T; L],
    lengths: [T; L],
    gravity: T,
    mechanics: ChainPendulumMechanics<T, L>,
}

impl<T: Real, const L: usize> ChainPendulum<T, L> {
    /// Name used on the command line and in files.
    pub const NAME: &'static str = "chain-pendulum";
    /// The paper's sampling interval (s).
    pub const DT: f64 = 0.03;
    /// The paper's trajectory length (s).
    pub const T_END: f64 = 3.0;

    /// A chain with the given bob masses, lengths (pivot→bob 0, bob 0→bob 1, …) and gravity.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a non-positive or non-finite mass, length or gravity
    /// (gravity may be 0).
    pub fn new(masses: [T; L], lengths: [T; L], gravity: T) -> Result<Self> {
        if L == 0 {
            return Err(Error::InvalidParameter {
                name: "links",
                value: 0.0,
            });
        }
        if !(gravity >= T::ZERO) || !gravity.is_finite() {
            return Err(Error::InvalidParameter {
                name: "gravity",
                value: gravity.as_f64(),
            });
        }
        let mut b = MechanicsBuilder::<T, L, 2, L>::new();
        for m in masses {
            b.point_mass(m)?;
        }
        b.tether(0, [T::ZERO; 2], lengths[0])?;
        for i in 1..L {
            b.distance(i - 1, i, lengths[i])?;
        }
        let weights = b.mass().gravity_weights();
        let mechanics = b.build(Gravity {
            g: gravity,
            weights,
        })?;
        Ok(Self {
            masses,
            lengths,
            gravity,
            mechanics,
        })
    }

    /// The reference code's default masses (see the module constants; defined for `L ≤ 10`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `L > 10`.
    pub fn paper_masses() -> Result<[T; L]> {
        Self::paper_draws(0)
    }

    /// The reference code's default lengths (defined for `L ≤ 10`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `L > 10`.
    pub fn paper_lengths() -> Result<[T; L]> {
        Self::paper_draws(L)
    }

    fn paper_draws(offset: usize) -> Result<[T; L]> {
        if 2 * L > NUMPY_SEED0_DRAWS.len() {
            return Err(Error::InvalidParameter {
                name: "links",
                value: L as f64,
            });
        }
        let mut out = [T::ZERO; L];
        for (i, o) in out.iter_mut().enumerate() {
            *o = T::from_f64(NUMPY_SEED0_DRAWS[offset + L - 1 - i]);
        }
        Ok(out)
    }

    /// The paper's system: default masses and lengths, g = 9.81.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `L > 10`.
    pub fn paper() -> Result<Self> {
        Self::new(
            Self::paper_masses()?,
            Self::paper_lengths()?,
            T::from_f64(9.81),
        )
    }

    /// Bob masses.
    pub fn masses(&self) -> &[T; L] {
        &self.masses
    }

    /// Link lengths.
    pub fn lengths(&self) -> &[T; L] {
        &self.lengths
    }

    /// Gravitational acceleration.
    pub fn gravity(&self) -> T {
        self.gravity
    }

    /// The constrained mechanics.
    pub fn mechanics(&self) -> &ChainPendulumMechanics<T, L> {
        &self.mechanics
    }

    /// The velocity-form state `(x, v)` for absolute link angles `θ` (from the downward
    /// vertical) and angular velocities `ω`: `x_i = x_{i−1} + l_i(sin θ_i, −cos θ_i)`.
    pub fn velocity_state_from_angles(&self, angles: &[T; L], rates: &[T; L]) -> Phase<T, L, 2> {
        let mut z = Phase::zeros();
        let (x, v) = z.split_mut();
        let (mut px, mut pv) = ([T::ZERO; 2], [T::ZERO; 2]);
        for i in 0..L {
            let (s, c) = (angles[i].libm_sin(), angles[i].libm_cos());
            let l = self.lengths[i];
            px = [px[0] + l * s, px[1] - l * c];
            pv = [pv[0] + l * c * rates[i], pv[1] + l * s * rates[i]];
            x[i] = px;
            v[i] = pv;
        }
        z
    }

    /// The Hamiltonian-form state `(x, p)` for link angles and angular velocities.
    pub fn state_from_angles(&self, angles: &[T; L], rates: &[T; L]) -> Phase<T, L, 2> {
        self.mechanics
            .from_velocity_form(&self.velocity_state_from_angles(angles, rates))
    }

    /// Absolute link angles and angular velocities of a Hamiltonian-form state.
    pub fn angles(&self, z: &Phase<T, L, 2>) -> ([T; L], [T; L]) {
        let v = self.mechanics.velocity(z.p());
        let x = z.x();
        let mut theta = [T::ZERO; L];
        let mut omega = [T::ZERO; L];
        let (mut px, mut pv) = ([T::ZERO; 2], [T::ZERO; 2]);
        for i in 0..L {
            let d = [x[i][0] - px[0], x[i][1] - px[1]];
            let dv = [v[i][0] - pv[0], v[i][1] - pv[1]];
            theta[i] = d[0].libm_atan2(-d[1]);
            omega[i] = (d[0] * dv[1] - d[1] * dv[0]) / (d[0] * d[0] + d[1] * d[1]);
            px = x[i];
            pv = v[i];
        }
        (theta, omega)
    }

    /// The reference's initial-condition distribution: `θ, ω ~ N(0, 1)`, positions perturbed by
    /// `0.2·N(0, 1)`, velocities replaced by `3(0.5v + 0.4·N(0, 1))`, then projected onto the
    /// constraints (resampling when the projection fails).
    ///
    /// # Errors
    /// [`Error::SamplingFailed`] if no draw projects in 100 attempts.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Phase<T, L, 2>> {
        resample(|| {
            let mut angles = [T::ZERO; L];
            let mut rates = [T::ZERO; L];
            for i in 0..L {
                angles[i] = standard_normal(rng);
                rates[i] = standard_normal(rng);
            }
            let mut z = self.velocity_state_from_angles(&angles, &rates);
            let (x, v) = z.split_mut();
            let (k02, k04, three) = (T::from_f64(0.2), T::from_f64(0.4), T::from_f64(3.0));
            for i in 0..L {
                for d in 0..2 {
                    x[i][d] += k02 * standard_normal::<T, R>(rng);
                    v[i][d] = three * (T::HALF * v[i][d] + k04 * standard_normal::<T, R>(rng));
                }
            }
            self.mechanics.project(&mut z, ProjectParams::default())?;
            Ok(self.mechanics.from_velocity_form(&z))
        })
    }
}
