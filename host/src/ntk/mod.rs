//! Linearized networks — the finite neural tangent kernel (Maddox, Tang, Moreno, Wilson &
//! Damianou, "Fast Adaptation with Linearized Neural Networks", AISTATS 2021; reference code
//! `finite_ntk`): a trained network `f(x; θ̂)` becomes the Gaussian process of its
//! linearization `f(x; θ̂) + J(x)(θ − θ̂)` with the prior `θ − θ̂ ~ N(0, I)`, whose kernel is the
//! Jacobian kernel `J(x) J(x′)ᵀ`. Conditioning on a few points of a new task adapts the network
//! with error bars and without retraining.
//!
//! - [`jacobian`]: `J u`, `Jᵀ v`, `K v`, `JᵀJ u`, the Fisher-vector products and `diag K`, by
//!   forward and reverse mode through the network; no Jacobian is formed;
//! - [`krylov`]: preconditioned conjugate gradients and Lanczos on those products;
//! - [`posterior`]: the function-space and parameter-space posteriors;
//! - [`fit`]: the reference's SGD training routine;
//! - [`tasks`]: the sine / line transfer experiment; [`spatial`]: a drifting 2-D field;
//!   [`scaling`]: the cost of both spaces' solves as the number of points grows;
//!   [`classify`]: a CNN's linearization fitted to a shifted image domain (MAP, Laplace, VI).

pub mod classify;
pub mod fit;
pub mod jacobian;
pub mod krylov;
pub mod metrics;
pub mod posterior;
pub mod scaling;
pub mod spatial;
pub mod tasks;

pub use jacobian::{Jacobian, Network, Outputs};
pub use krylov::{CgReport, CgSettings, Lanczos};
pub use metrics::Metrics;
pub use posterior::{Mean, OnNoConvergence, Posterior, PosteriorSettings, Prediction, Space};
