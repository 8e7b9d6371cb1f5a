//! Bayesian deep learning (Izmailov, Vikram, Hoffman & Wilson, "What Are Bayesian Neural Network
//! Posteriors Really Like?", ICML 2021; digest DIGEST-host.md §1): full-batch HMC as the
//! reference runs it, and the exact posteriors it is checked against.
//!
//! Built so far: the sampler on any differentiable log-density ([`hmc`]), the effective sample
//! size ([`ess`]), and Bayesian linear regression with its analytic posterior ([`linear`]).

pub mod ess;
pub mod hmc;
pub mod linear;
