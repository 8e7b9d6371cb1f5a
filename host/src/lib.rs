//! # keel
//!
//! Keel's methods on the workstation: one module per paper, trained with the tensor engine
//! [`keel_engine`] (re-exported here: [`Tensor`], [`grad`], [`optim`] …), exported to files the
//! controller core `keel-core` loads, and checked against it. The `keel` command is a thin
//! layer over this library (the `keel-cli` crate, `host/cli/`): the library takes typed
//! configurations, reports progress through callbacks ([`progress`]) and names its settings in
//! errors as its configurations do; it never parses flags, prints or draws.
//!
//! Methods:
//! - [`simulate`]: every system of the CHNN paper (Finzi, Wang & Wilson, NeurIPS 2020) with the
//!   core's integrators, in f32 or f64;
//! - [`chnn`]: learned constrained dynamics (CHNN, CLNN) and their baselines (Neural ODE, HNN):
//!   data, models, training, rollout evaluation, export;
//! - [`emlp`]: equivariant MLPs (Finzi, Welling & Wilson, ICML 2021): groups, representations,
//!   the equivariant-basis solver, layers, data sets, training;
//! - [`gp`]: Gaussian processes — exact, dense SKI and WISKI (Stanton et al., AISTATS 2021)
//!   posteriors, hyperparameter fitting, online streams, classification, Bayesian optimisation;
//! - [`bayes`]: Bayesian neural networks by full-batch HMC (Izmailov et al., ICML 2021) and the
//!   approximations it is compared with (SGD, deep ensembles, SGLD/SGHMC, mean-field VI),
//!   sample sets, their comparison and model average;
//! - [`rl`]: SAC-SVG(H) (Amos et al., L4DC 2021) on the core's environments;
//! - [`fit`]: supervised MLP training on a CSV table;
//! - [`distill`]: knowledge distillation and its fidelity (Stanton et al., NeurIPS 2021);
//! - [`gan`]: GANs with probability-ratio clipping and sample re-weighting (Wu et al., NeurIPS
//!   2020);
//! - [`ntk`]: linearized networks, the finite neural tangent kernel (Maddox et al., AISTATS
//!   2021): fast adaptation with error bars by GP posteriors on matrix-vector products.
//!
//! Shared pieces:
//! - [`data`]: CSV tables, splits and standardisation; [`images`]: image sets — IDX (MNIST),
//!   CIFAR-10 binary batches, CSV rows of pixels, the generated Augerino sets; [`metrics`]:
//!   accuracy, NLL, calibration; [`export`]: MLP model files the core loads; [`checkpoint`]:
//!   resumable training state, checksummed with its configuration;
//! - [`train`]: the step every training loop takes (loss → finite check → gradient → step);
//! - [`error`]: the error type and what it means for an exit status; [`limits`]: sizes refused
//!   before allocating or running; [`progress`]: what long computations report;
//! - [`output`]: atomic writes, all of a command's outputs or none; [`plot`]: PNG plots with a
//!   vendored font;
//! - [`firmware`]: `keel firmware check` — reruns on the host what the Cortex-M4F firmware ran
//!   under QEMU (the chain pendulum, the digits MLP, the EMLP, the WISKI stream, the CHNN model,
//!   the HMC model average, the closed-loop SAC-SVG policy and its value monitor) and compares.
//!
//! ```
//! use keel::optim::{Optimizer, OptimizerKind};
//! use keel::params::Params;
//! use keel::{grad, no_grad, DType, Tensor};
//!
//! # fn main() -> keel::Result<()> {
//! // Least squares `‖Xw − y‖²` for y = 2x: Adam on `w`, with the gradient from reverse mode.
//! let x = Tensor::from_f64s(&[1.0, 2.0, 3.0], &[3, 1], DType::F64)?;
//! let y = Tensor::from_f64s(&[2.0, 4.0, 6.0], &[3, 1], DType::F64)?;
//! let mut params = Params::new();
//! let w = params.insert("w", Tensor::from_f64s(&[0.0], &[1, 1], DType::F64)?)?;
//! let mut opt = Optimizer::new(OptimizerKind::adamw(0.0), &params)?;
//! for _ in 0..300 {
//!     let v = params.get(w).variable();
//!     let loss = x.matmul(&v)?.sub(&y)?.square()?.sum_all()?;
//!     let g = grad(&[&loss], &[None], &[&v], false)?;
//!     let g = g.into_iter().flatten().collect::<Vec<_>>();
//!     no_grad(|| opt.step(&mut params, &g, 0.05))?;
//! }
//! assert!((params.get(w).to_vec_f64()?[0] - 2.0).abs() < 1e-3);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bayes;
pub mod checkpoint;
pub mod checksum;
pub mod chnn;
pub mod cnn;
pub mod data;
pub mod distill;
pub mod distributed;
pub mod emlp;
pub mod error;
pub mod export;
pub mod firmware;
pub mod firmware_ntk;
pub mod firmware_wiski;
pub mod fit;
pub mod gan;
pub mod gp;
pub mod images;
pub mod limits;
pub mod metrics;
pub mod ntk;
pub mod output;
pub mod plot;
pub mod progress;
pub mod rl;
pub mod simplex;
pub mod simulate;
pub mod train;

pub use keel_engine::{autodiff, backend, init, nn, optim, params, tensor};

pub use autodiff::{backward, grad, hvp, jvp, no_grad};
pub use backend::{DType, Device};
pub use error::{Error, Result};
pub use tensor::{Shape, Tensor};
