//! Bayesian deep learning (Izmailov, Vikram, Hoffman & Wilson, "What Are Bayesian Neural Network
//! Posteriors Really Like?", ICML 2021; reference code google-research/google-research,
//! `bnn_hmc/`): full-batch HMC as the reference runs it, the exact posteriors it is checked
//! against, Bayesian MLPs with the three priors the paper compares, and the baselines.
//!
//! - [`hmc`]: the sampler on any differentiable log-density; [`ess`]: effective sample size;
//!   [`checkpoint`]: resumable multi-chain runs.
//! - [`linear`]: Bayesian linear regression with its analytic posterior.
//! - [`prior`]: Gaussian, mixture-of-Gaussians and logistic priors of equal variance.
//! - [`mlp`]: the tempered log posterior of an MLP (categorical or learned-scale Gaussian).
//! - [`stochastic`]: SGD and deep ensembles, SGLD/SGHMC, mean-field VI.
//! - [`samples`]: saved sample sets and the shared predictive evaluation.
//! - [`augment`]: ±1-pixel shift augmentation, per step or as extra data (the cold-posterior
//!   study); the corruptions of the distribution-shift study are [`crate::images::corrupt`].

pub mod augment;
pub mod checkpoint;
pub mod ess;
pub mod hmc;
pub mod linear;
pub mod mlp;
pub mod prior;
pub mod samples;
pub mod stochastic;
