//! Generative adversarial networks trained with sample re-weighting and probability-ratio
//! clipping, after Wu, Zhou, Wilson, Xing & Hu, "Improving GAN Training with Probability Ratio
//! Clipping and Sample Reweighting" (NeurIPS 2020; reference code `cifar10/main.py`).
//!
//! Three methods share one loop of outer iterations, each `critic_steps` critic updates then
//! `generator_steps` generator updates ([`train()`]):
//! - `wgan-gp`: the WGAN-GP critic `−mean f(x) + mean f(G(z)) + λ·GP` and the generator
//!   maximising `mean f(G(z))`;
//! - `reweight`: the fake term weighted by the stop-gradient batch softmax of the critic's fake
//!   scores ([`loss::critic_loss`]): realistic fakes count more;
//! - `ppo`: re-weighting, plus an auxiliary real/fake classifier `D` trained with BCE inside the
//!   generator loop and the generator maximising the clipped surrogate of the density ratio
//!   `r = [(1 − D₁)/D₁]·[D₀/(1 − D₀)]` times the critic score ([`loss::clipped_surrogate`]), `D₀`
//!   frozen per outer iteration on the last critic step's `z`.
//!
//! The networks are in [`nets`], the data in [`data`] and [`ring`], the image metrics' feature
//! network in [`features`], checkpoints in [`checkpoint`], the saved generator in [`export`];
//! the reference is Holmeswww/PPOGAN.

pub mod checkpoint;
pub mod data;
pub mod export;
pub mod features;
pub mod loss;
pub mod metrics;
pub mod nets;
pub mod ring;
pub mod train;
pub mod variance;

pub use data::{GanData, PixelMap};
pub use export::Generator;
pub use loss::ClipRule;
pub use nets::{Arch, Sample};
pub use ring::Ring;
pub use train::{train, Curve, GanConfig, GanReport, GanRun, Method};
