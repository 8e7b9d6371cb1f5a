//! GANs with probability-ratio clipping and sample re-weighting (Wu, Zhou, Wilson, Xing & Hu,
//! "Improving GAN Training with Probability Ratio Clipping and Sample Reweighting", NeurIPS
//! 2020; reference code Holmeswww/PPOGAN, `cifar10/main.py`): the losses ([`loss`]) and the
//! sample-quality metrics ([`metrics`]).

pub mod loss;
pub mod metrics;
