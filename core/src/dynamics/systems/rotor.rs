//! `Rotor`: a free rigid body in 3-D (CHNN `Rotor`, moments from the `rotor.obj` mesh).

use rand_core::Rng;

use crate::dynamics::rotation::rigid_body_nodes;
use crate::dynamics::{Mechanics, MechanicsBuilder, Phase};
use crate::error::Result;
use crate::random::standard_normal;
use crate::real::Real;

/// The rotor's mechanics: 4 nodes in 3-D, 6 internal constraints, no potential.
pub type RotorMechanics<T> = Mechanics<T, 4, 3, 6, ()>;

/// `diag(Cov)` of the reference's `rotor.obj` mesh, used as the second moments `λ` (the
/// reference does not diagonalise: the covariance has a 4.12e-4 off-diagonal term, so its
/// principal values differ slightly: 2.98513e-3, 2.11063e-2, 9.90656e-2).
pub const ROTOR_MOMENTS: [f64; 3] = [2.98513e-3, 9.90634e-2, 2.11085e-2];

/// A free rigid body of mass `m` with second moments `λ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotor<T> {
    mass: T,
    moments: [T; 3],
    mechanics: RotorMechanics<T>,
}

impl<T: Real> Rotor<T> {
    /// Name used on the command line and in files.
    pub const NAME: &'static str = "rotor";
    /// The paper's sampling interval (s).
    pub const DT: f64 = 0.05;
    /// The paper's trajectory length (s).
    pub const T_END: f64 = 5.0;

    /// A free body with mass and second moments `λ`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidParameter`] for non-positive mass or moments.
    pub fn new(mass: T, moments: [T; 3]) -> Result<Self> {
        let mut b = MechanicsBuilder::<T, 4, 3, 6>::new();
        b.body(
            mass,
            &[mass * moments[0], mass * moments[1], mass * moments[2]],
        )?;
        let mechanics = b.build(())?;
        Ok(Self {
            mass,
            moments,
            mechanics,
        })
    }

    /// The paper's rotor: m = 0.1 and the `rotor.obj` moments.
    ///
    /// # Errors
    /// Never.
    pub fn paper() -> Result<Self> {
        Self::new(T::from_f64(0.1), ROTOR_MOMENTS.map(T::from_f64))
    }

    /// Mass.
    pub fn mass(&self) -> T {
        self.mass
    }

    /// Second moments `λ`.
    pub fn moments(&self) -> [T; 3] {
        self.moments
    }

    /// The constrained mechanics.
    pub fn mechanics(&self) -> &RotorMechanics<T> {
        &self.mechanics
    }

    /// The velocity-form state for a centre-of-mass position and velocity and ZXZ Euler angles
    /// and rates.
    pub fn velocity_state_from_com_euler(
        &self,
        com: [T; 3],
        com_velocity: [T; 3],
        euler: [T; 3],
        rates: [T; 3],
    ) -> Phase<T, 4, 3> {
        let (x, v) = rigid_body_nodes(com, com_velocity, euler, rates);
        Phase::new(x, v)
    }

    /// The reference's initial-condition distribution: centre of mass, Euler angles and all rates
    /// `clamp(2·N(0, 1), −3, 3)`, with the centre-of-mass position and velocity scaled by 0.1.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Phase<T, 4, 3> {
        let three = T::from_f64(3.0);
        let mut draw = || {
            (T::TWO * standard_normal::<T, R>(rng))
                .max(-three)
                .min(three)
        };
        let tenth = T::from_f64(0.1);
        let com = [draw() * tenth, draw() * tenth, draw() * tenth];
        let euler = [draw(), draw(), draw()];
        let com_velocity = [draw() * tenth, draw() * tenth, draw() * tenth];
        let rates = [draw(), draw(), draw()];
        self.mechanics
            .from_velocity_form(&self.velocity_state_from_com_euler(
                com,
                com_velocity,
                euler,
                rates,
            ))
    }
}
