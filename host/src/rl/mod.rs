//! Model-based stochastic value gradients, SAC-SVG(H) (Amos, Stanton, Yarats & Wilson, On the
//! Model-Based Stochastic Value Gradient for Continuous Reinforcement Learning, L4DC 2021;
//! reference code facebookresearch/svg), on the core's environments ([`keel_core::rl`]): the
//! tanh-Gaussian actor, double-Q critic with a Polyak target, learned temperature with the
//! target-entropy schedule, the recurrent residual world model trained on multi-step windows,
//! learned reward and done models, the SVG(H) actor objective through model rollouts (SAC at
//! `H = 0` and during warm-up), replay with Welford normalisation, and the reference's per-step
//! update order.

pub mod agent;
pub mod checkpoint;
pub mod env;
pub mod export;
pub mod nets;
pub mod replay;
pub mod train;
