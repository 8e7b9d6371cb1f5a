//! Time integrators: fixed-step [`Rk4`] (classic and 3/8 rule), adaptive [`Dopri5`] with dense
//! output, and the symplectic [`Leapfrog`] (RATTLE for constrained systems).
//!
//! Each is a separate type with its own contract — a fixed-step integrator has no tolerance to
//! ignore, an adaptive one has no step size to set — and each advances one step at a time
//! without allocating, so a control loop can call it. A non-finite state is an
//! [`Error::NonFinite`], never a silent NaN.

mod dopri5;
mod leapfrog;
mod rk4;

pub use dopri5::tableau as dopri5_tableau;
pub use dopri5::{Dopri5, Dopri5Params, Dopri5Solver, Dopri5Stats};
pub use leapfrog::{Leapfrog, RattleParams};
pub use rk4::{Rk4, Rk4Variant};

use crate::error::{Error, Result};
use crate::real::Real;

/// A fixed-size state that integrators can treat as a flat vector.
pub trait StateVector<T: Real>: Copy {
    /// The components in a fixed order.
    fn as_slice(&self) -> &[T];
    /// The components, mutably.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// The zero state.
    fn zeroed() -> Self;
}

impl<T: Real, const K: usize> StateVector<T> for [T; K] {
    #[inline]
    fn as_slice(&self) -> &[T] {
        self
    }
    #[inline]
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
    #[inline]
    fn zeroed() -> Self {
        [T::ZERO; K]
    }
}

/// An ODE `ż = f(t, z)`.
pub trait VectorField<T: Real> {
    /// The state type.
    type State: StateVector<T>;

    /// Writes `f(t, z)` into `dz`.
    ///
    /// # Errors
    /// Whatever the field cannot evaluate (e.g. a singular constraint system).
    fn rate(&self, t: T, z: &Self::State, dz: &mut Self::State) -> Result<()>;
}

impl<T: Real, F: VectorField<T> + ?Sized> VectorField<T> for &F {
    type State = F::State;
    #[inline]
    fn rate(&self, t: T, z: &Self::State, dz: &mut Self::State) -> Result<()> {
        (**self).rate(t, z, dz)
    }
}

/// `Err(NonFinite)` naming the first NaN/∞ component of `z`.
#[inline]
pub(crate) fn check_finite<T: Real>(z: &[T], t: T) -> Result<()> {
    match z.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            index,
            t: t.as_f64(),
        }),
    }
}

/// `out = z + h·Σ cᵢ kᵢ` over the stages given.
///
/// # Panics
/// If `z` or a stage is shorter than `out` (checked in debug builds); every caller passes
/// `as_slice()`s of one state type, whose lengths are equal.
#[inline]
pub(crate) fn combine<T: Real>(out: &mut [T], z: &[T], h: T, terms: &[(T, &[T])]) {
    debug_assert!(z.len() >= out.len() && terms.iter().all(|(_, k)| k.len() >= out.len()));
    for (i, o) in out.iter_mut().enumerate() {
        let mut s = T::ZERO;
        for (c, k) in terms {
            // cannot fail: k.len() == out.len() (one state type, see above).
            s += *c * k[i];
        }
        // cannot fail: z.len() == out.len().
        *o = z[i] + h * s;
    }
}
