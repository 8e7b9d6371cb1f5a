//! GANs with probability-ratio clipping and sample re-weighting (Wu, Zhou, Wilson, Xing & Hu,
//! "Improving GAN Training with Probability Ratio Clipping and Sample Reweighting", NeurIPS 2020).

pub mod ring;
pub mod variance;
