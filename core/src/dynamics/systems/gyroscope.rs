//! `Gyroscope`: a heavy top — one 3-D rigid body pinned at a point (CHNN `Gyroscope(mass=0.1)`).

use rand_core::Rng;

use crate::dynamics::rotation::rigid_body_nodes;
use crate::dynamics::{Gravity, Mechanics, MechanicsBuilder, Phase};
use crate::error::{Error, Result};
use crate::random::{standard_normal, uniform};
use crate::real::Real;

/// The gyroscope's mechanics: 4 nodes in 3-D, 6 internal + 3 joint constraints, gravity.
pub type GyroscopeMechanics<T> = Mechanics<T, 4, 3, 9, Gravity<T, 4>>;

/// Second moments `λ = 100·diag(Cov)` of the reference's `gyro.obj` mesh
/// (`biases/systems/gyroscope.py`).
pub const GYRO_MOMENTS: [f64; 3] = [0.241378, 0.241378, 0.0369415];
/// Height of the `gyro.obj` centre of mass above its lowest point (the pivot).
pub const GYRO_COM_HEIGHT: f64 = 0.221729;

/// A rigid body of mass `m` with second moments `λ` (inertia about the centre of mass
/// `J = m·diag(λ₂+λ₃, λ₁+λ₃, λ₁+λ₂)`) whose body point `(0, 0, −h)` is pinned at the origin.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gyroscope<T> {
    mass: T,
    moments: [T; 3],
    com_height: T,
    mechanics: GyroscopeMechanics<T>,
}

impl<T: Real> Gyroscope<T> {
    /// Name used on the command line and in files.
    pub const NAME: &'static str = "gyroscope";
    /// The paper's sampling interval (s).
    pub const DT: f64 = 0.02;
    /// The paper's trajectory length (s).
    pub const T_END: f64 = 2.0;

    /// A top with mass, second moments `λ` and pivot distance `h` below the centre of mass along
    /// the body's third axis.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for non-positive mass or moments, non-finite `h`, negative
    /// gravity.
    pub fn new(mass: T, moments: [T; 3], com_height: T, gravity: T) -> Result<Self> {
        if !com_height.is_finite() {
            return Err(Error::InvalidParameter {
                name: "com_height",
                value: com_height.as_f64(),
            });
        }
        if !(gravity >= T::ZERO) || !gravity.is_finite() {
            return Err(Error::InvalidParameter {
                name: "gravity",
                value: gravity.as_f64(),
            });
        }
        let mut b = MechanicsBuilder::<T, 4, 3, 9>::new();
        let inertia = [mass * moments[0], mass * moments[1], mass * moments[2]];
        let body = b.body(mass, &inertia)?;
        b.pin(body, &[T::ZERO, T::ZERO, -com_height], [T::ZERO; 3])?;
        let weights = b.mass().gravity_weights();
        let mechanics = b.build(Gravity {
            g: gravity,
            weights,
        })?;
        Ok(Self {
            mass,
            moments,
            com_height,
            mechanics,
        })
    }

    /// The paper's gyroscope: m = 0.1, the `gyro.obj` moments and pivot, g = 9.81.
    ///
    /// # Errors
    /// Never.
    pub fn paper() -> Result<Self> {
        Self::new(
            T::from_f64(0.1),
            GYRO_MOMENTS.map(T::from_f64),
            T::from_f64(GYRO_COM_HEIGHT),
            T::from_f64(9.81),
        )
    }

    /// Mass.
    pub fn mass(&self) -> T {
        self.mass
    }

    /// Second moments `λ`.
    pub fn moments(&self) -> [T; 3] {
        self.moments
    }

    /// Distance from the pivot to the centre of mass.
    pub fn com_height(&self) -> T {
        self.com_height
    }

    /// The constrained mechanics.
    pub fn mechanics(&self) -> &GyroscopeMechanics<T> {
        &self.mechanics
    }

    /// The velocity-form state for ZXZ Euler angles and rates, placed so the pivot point is at the
    /// origin and at rest (the reference's `body2globalCoords`).
    pub fn velocity_state_from_euler(&self, euler: [T; 3], rates: [T; 3]) -> Phase<T, 4, 3> {
        let (mut x, mut v) = rigid_body_nodes([T::ZERO; 3], [T::ZERO; 3], euler, rates);
        // Pivot = x₀ + R c with c = (0, 0, −h), i.e. barycentric weights (1 + h, 0, 0, −h):
        // x₀ − h(x₃ − x₀).
        let h = self.com_height;
        let mut ap = [T::ZERO; 3];
        let mut av = [T::ZERO; 3];
        for d in 0..3 {
            ap[d] = x[0][d] - h * (x[3][d] - x[0][d]);
            av[d] = v[0][d] - h * (v[3][d] - v[0][d]);
        }
        for k in 0..4 {
            for d in 0..3 {
                x[k][d] -= ap[d];
                v[k][d] -= av[d];
            }
        }
        Phase::new(x, v)
    }

    /// The reference's initial-condition distribution: Euler angles `U(−1.5, 1.5)`, rates
    /// `U(−1.5, 1.5)` with `φ̇ ×3`, `θ̇ ×0.2`, and spin `ψ̇ = ±1.5(7 + N(0, 1))`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Phase<T, 4, 3> {
        let mut u = || (uniform::<T, R>(rng) - T::HALF) * T::from_f64(3.0);
        let euler = [u(), u(), u()];
        let mut rates = [u(), u(), u()];
        rates[0] *= T::from_f64(3.0);
        rates[1] *= T::from_f64(0.2);
        let sign = if rng.next_u32() & 1 == 1 {
            T::ONE
        } else {
            -T::ONE
        };
        rates[2] = sign * (standard_normal::<T, R>(rng) + T::from_f64(7.0)) * T::from_f64(1.5);
        self.mechanics
            .from_velocity_form(&self.velocity_state_from_euler(euler, rates))
    }
}
