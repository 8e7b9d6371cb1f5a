//! A learned Hamiltonian on the controller: an exported EMLP with one output `H(z)` whose
//! symplectic gradient is the dynamics, `ż = J∇H(z)` — the reference's `EMLPH` (Finzi, Welling
//! & Wilson, *A Practical Method for Constructing Equivariant Multilayer Perceptrons for
//! Arbitrary Matrix Groups*, ICML 2021, §7; `emlp/nn/objax.py`, trained by
//! `experiments/trainer/hamiltonian_dynamics.py`, e.g. on the double spring pendulum with
//! `z = (x₁, x₂, p₁, p₂) ∈ R¹²`).
//!
//! With `z = (q, p)`, `q` the first `N/2` components and `p` the last `N/2`,
//! `q̇ = ∂H/∂p` and `ṗ = −∂H/∂q`. `∇H` is [`Emlp::gradient`] (reverse mode, exact), computed in
//! a stack buffer of `S` scalars per call: `S ≥` [`Emlp::gradient_scratch_len`] is checked at
//! construction, so [`VectorField::rate`] cannot fail on sizes. The frame of `rate` holds those
//! `S` scalars plus `N` for the gradient; the integrator's stages come on top (RK4: five
//! states, Dopri5: nine).
//!
//! What this is *not*: a constrained system (no projection onto a manifold — use
//! [`super::learned`] for CHNN models) or a symplectic integrator (integrate with
//! [`crate::integrate::Rk4`] or [`crate::integrate::Dopri5`]; [`crate::integrate::Leapfrog`]
//! needs a separable `H`).

use crate::integrate::VectorField;
use crate::nn::Emlp;
use crate::{Error, Real, Result};

/// The Hamiltonian vector field `ż = J∇H(z)` of an exported EMLP `H` on states `[T; N]`
/// (`N` even), with a stack scratch of `S` scalars; borrows the model (`B` blocks of at most
/// `P` bilinear parts, as [`Emlp`]).
#[derive(Clone, Copy, Debug)]
pub struct HamiltonianEmlp<'m, 'a, const B: usize, const P: usize, const N: usize, const S: usize> {
    emlp: &'m Emlp<'a, B, P>,
}

impl<'m, 'a, const B: usize, const P: usize, const N: usize, const S: usize>
    HamiltonianEmlp<'m, 'a, B, P, N, S>
{
    /// Wraps a loaded EMLP after checking its shape.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `N` is odd; [`Error::ShapeMismatch`] unless the model maps
    /// `N` inputs (`what = "Hamiltonian inputs (state size N)"`) to one output
    /// (`"Hamiltonian outputs"`); [`Error::ScratchTooSmall`] if `S` is below
    /// [`Emlp::gradient_scratch_len`].
    pub fn new(emlp: &'m Emlp<'a, B, P>) -> Result<Self> {
        if !N.is_multiple_of(2) {
            return Err(Error::InvalidConfig {
                what: "a Hamiltonian state (q, p) has an even size N",
            });
        }
        if emlp.inputs() != N {
            return Err(Error::ShapeMismatch {
                what: "Hamiltonian inputs (state size N)",
                expected: N,
                got: emlp.inputs(),
            });
        }
        if emlp.outputs() != 1 {
            return Err(Error::ShapeMismatch {
                what: "Hamiltonian outputs",
                expected: 1,
                got: emlp.outputs(),
            });
        }
        if emlp.gradient_scratch_len() > S {
            return Err(Error::ScratchTooSmall {
                needed: emlp.gradient_scratch_len(),
                got: S,
            });
        }
        Ok(Self { emlp })
    }

    /// The network.
    pub fn emlp(&self) -> &'m Emlp<'a, B, P> {
        self.emlp
    }

    /// `H(z)`.
    ///
    /// # Errors
    /// None after [`new`](HamiltonianEmlp::new)'s checks; the model's errors are passed on.
    pub fn energy<T: Real>(&self, z: &[T; N]) -> Result<T> {
        let mut scratch = [T::ZERO; S];
        let mut out = [T::ZERO];
        self.emlp.forward(z, &mut out, &mut scratch)?;
        Ok(out[0])
    }

    /// `H(z)` and `grad = ∇H(z)`.
    ///
    /// # Errors
    /// None after [`new`](HamiltonianEmlp::new)'s checks; the model's errors are passed on.
    pub fn gradient<T: Real>(&self, z: &[T; N], grad: &mut [T; N]) -> Result<T> {
        let mut scratch = [T::ZERO; S];
        self.emlp.gradient(z, grad, &mut scratch)
    }
}

impl<T: Real, const B: usize, const P: usize, const N: usize, const S: usize> VectorField<T>
    for HamiltonianEmlp<'_, '_, B, P, N, S>
{
    type State = [T; N];

    /// `dz = J∇H(z)`: `dz[..N/2] = ∂H/∂p`, `dz[N/2..] = −∂H/∂q`; autonomous (`t` unused).
    fn rate(&self, _t: T, z: &[T; N], dz: &mut [T; N]) -> Result<()> {
        let mut grad = [T::ZERO; N];
        self.gradient(z, &mut grad)?;
        let (dq, dp) = dz.split_at_mut(N / 2);
        let (gq, gp) = grad.split_at(N / 2);
        dq.copy_from_slice(gp);
        for (d, &g) in dp.iter_mut().zip(gq) {
            *d = -g;
        }
        Ok(())
    }
}
