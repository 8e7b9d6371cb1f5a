//! # keel
//!
//! Keel's host side: the std library behind the `keel` command. It simulates the constrained
//! systems of `keel-core` on the workstation, writes reports (JSON on stdout, CSV, PNG plots),
//! and checks that the controller build of the core gives the same numbers as the host.
//!
//! Modules:
//! - [`simulate`]: `keel simulate` — every CHNN paper system, any integrator, f32 or f64;
//! - [`plot`]: PNG plots with a vendored font;
//! - [`firmware`]: `keel firmware check` — compares the Cortex-M4F firmware's printed state
//!   with a host run of the same steps;
//! - [`output`]: atomic file writes.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bayes;
pub mod checkpoint;
pub mod chnn;
pub mod data;
pub mod emlp;
pub mod error;
pub mod export;
pub mod firmware;
pub mod fit;
pub mod gp;
pub mod limits;
pub mod metrics;
pub mod output;
pub mod plot;
pub mod progress;
pub mod rl;
pub mod simulate;

pub use keel_engine::{autodiff, backend, init, nn, optim, params, tensor};

pub use autodiff::{backward, grad, hvp, jvp, no_grad};
pub use backend::{DType, Device};
pub use error::{Error, Result};
pub use tensor::{Shape, Tensor};
