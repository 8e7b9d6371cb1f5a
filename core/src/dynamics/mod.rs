//! Constrained mechanical systems in Cartesian coordinates (CHNN: Finzi, Wang & Wilson,
//! Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints, NeurIPS
//! 2020; reference code mfinzi/constrained-hamiltonian-neural-networks).
//!
//! A system is a graph of nodes — point masses, and extended rigid bodies represented by their
//! centre of mass plus unit axis points — with holonomic constraints between them
//! ([`Constraint`]), a [`MassMatrix`] and a [`Potential`]. [`Mechanics`] evaluates the projected
//! Hamiltonian vector field `ż = P(z)J∇H(z)` (and its Lagrangian twin), energies and constraint
//! violations, and projects states onto the constraint manifold. [`systems`] builds every system
//! of the paper with its default parameters and initial-condition sampler.
//!
//! [`HamiltonianEmlp`] is the unconstrained learned case: `ż = J∇H(z)` with `H` an exported
//! equivariant MLP (the EMLP paper's `EMLPH`, e.g. the double spring pendulum).

mod constraint;
mod hamiltonian_emlp;
pub mod learned;
mod mass;
mod mechanics;
mod phase;
mod potential;
pub mod rotation;
pub mod systems;

pub use constraint::{Constraint, Linear, MAX_LINEAR_TERMS};
pub use hamiltonian_emlp::HamiltonianEmlp;
pub use mass::MassMatrix;
#[cfg(feature = "nalgebra")]
pub use mechanics::NalgebraLu;
pub use mechanics::{Driven, Lagrangian, Mechanics, MechanicsBuilder, ProjectParams, Violation};
pub use phase::Phase;
pub use potential::{DipoleSign, Gravity, MagnetDipoles, Potential, Spring, Springs};
