//! # keel-core
//!
//! Keel's numerical core for the controller: `#![no_std]`, no heap, generic over `f32`
//! (firmware) and `f64` (reference runs), fixed sizes through const generics. What runs here is
//! what the host trains and validates.
//!
//! It holds what the host's methods export, and the physics they learn:
//!
//! - [`dynamics`]: mechanical systems in Cartesian coordinates with explicit constraints (Finzi,
//!   Wang & Wilson, *Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit
//!   Constraints*, NeurIPS 2020) — the
//!   projected Hamiltonian vector field `ż = P(z)J∇H`, its Lagrangian twin, energies, constraint
//!   monitors, Newton–Raphson projection, and every system of the paper
//!   ([`dynamics::systems`]);
//! - [`integrate`]: [`Rk4`](integrate::Rk4) (classic and 3/8 rule),
//!   [`Dopri5`](integrate::Dopri5) (adaptive, dense output) and
//!   [`Leapfrog`](integrate::Leapfrog) (symplectic; RATTLE for constrained systems), each
//!   stepping without allocation;
//! - [`metrics`]: the paper's relative error, trapezoid geometric mean and energy error;
//! - [`io`]: a validating, zero-copy safetensors reader (no heap, never panics on a corrupt
//!   file) for the weights the host exports;
//! - [`nn`]: dense layers and MLPs evaluated in place from those weights (forward, class
//!   prediction, gradient with respect to the input, and with respect to the parameters),
//!   equivariant MLPs, the Bayesian model average of a set of exported posterior samples or
//!   ensemble members ([`nn::Bma`]), and on-board adaptation of a network to a few new points by
//!   its linearisation, the finite neural-tangent-kernel GP ([`nn::NtkAdaptation`]; Maddox et
//!   al., *Fast Adaptation with Linearized Neural Networks*, AISTATS 2021);
//! - [`gp`]: Gaussian-process regression — kernels, an exact online GP of fixed capacity and
//!   WISKI, the structured-kernel-interpolation GP with a constant-time update per observation;
//! - [`rl`]: control environments (Pendulum-v1, cart-pole swing-up, acrobot), observation
//!   normalisation, the exported SAC policy's actions and the short-horizon model-based value
//!   estimate of SAC-SVG(H) (Amos et al., L4DC 2021);
//! - [`linalg`]: the small dense linear algebra the others use — pivoted LU, Cholesky with rank-1
//!   updates, triangular solves, a symmetric eigensolver — on slices, without allocation;
//! - [`random`]: a seeded generator and the distributions the samplers use.
//! - [`vision`]: the 3×3 matrix exponential and the affine bilinear warp (PyTorch's
//!   `affine_grid` + `grid_sample` conventions) of Augerino's learned augmentations (Benton et
//!   al., *Learning Invariances in Neural Networks*, NeurIPS 2020).
//!
//! ```
//! use keel_core::dynamics::systems::ChainPendulum;
//! use keel_core::integrate::Rk4;
//!
//! // The paper's 3-pendulum, released from rest at 0.3, −0.2 and 1.1 rad.
//! let pendulum = ChainPendulum::<f32, 3>::paper()?;
//! let mut z = pendulum.state_from_angles(&[0.3, -0.2, 1.1], &[0.0; 3]);
//! let e0 = pendulum.mechanics().energy(&z);
//! let rk4 = Rk4::new(0.01)?;
//! let mut t = 0.0;
//! for _ in 0..100 {
//!     rk4.step(pendulum.mechanics(), t, &mut z)?;
//!     t += 0.01;
//! }
//! let drift = (pendulum.mechanics().energy(&z) - e0).abs() / e0.abs();
//! assert!(drift < 1e-3);
//! # Ok::<(), keel_core::Error>(())
//! ```
//!
//! What this crate is *not*: a general ODE library (the integrators serve fixed-size states),
//! or a place for training — gradients of learned models live in the host crate `keel`.
//!
//! Stack use: the largest frame is the vector field of a system with `C` constraints, about
//! `(3·C·N·D + 4C² + 8·N·D)` scalars (≈ 2.6 kB in `f32` for the gyroscope, 9 constraints),
//! plus, for a learned model, the stack scratch of `S` scalars its type names
//! ([`dynamics::learned`], [`dynamics::HamiltonianEmlp`]: `S ≥` the network's gradient scratch,
//! checked when the field is built); nothing recurses.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dynamics;
mod error;
pub mod gp;
pub mod integrate;
pub mod io;
pub mod linalg;
pub mod metrics;
pub mod nn;
pub mod random;
mod real;
pub mod rl;
pub mod vision;

pub use error::{Error, Result};
/// The `num-traits` this core builds on (`Real: num_traits::Float`), re-exported so firmware uses
/// the same version.
pub use num_traits;
pub use real::Real;
