//! # keel-engine
//!
//! Keel's tensor engine: what the methods of the `keel` crate train with. It knows no method,
//! no command line and no file format but its own kernel cache.
//!
//! - [`tensor`]: dense `f32`/`f64` tensors of rank ≤ 4 with broadcasting arithmetic, unary
//!   math, reductions, softmax, batched matrix products, layout and indexing operations, losses;
//! - [`autodiff`]: reverse mode on recorded operations whose backward rules are themselves
//!   recorded (gradients of gradients, Hessian–vector products), and forward mode (JVPs);
//! - [`backend`]: the CPU backend (`gemm` matrix products, `rayon` threads) and the CUDA backend
//!   (`cudarc`: cuBLAS, cuRAND and Keel's NVRTC-compiled kernels in `cuda/`), behind one
//!   dispatch; with the `cuda` feature off a same-named stub answers every GPU request with
//!   [`Error::CudaNotCompiled`]. Every kernel has a CPU twin;
//! - [`optim`]: SGD, Adam and AdamW with one fused update per parameter, schedules, gradient
//!   clipping; [`params`]: named parameter sets; [`nn`] and [`init`]: dense layers, MLPs and
//!   their initialisations;
//! - [`cache`]: the compiled-kernel cache; [`memory`]: the guard that refuses a buffer larger
//!   than this machine's memory before allocating it.
//!
//! Every `unsafe` block of Keel lives here, in the CUDA launch code, each with a `// SAFETY:`
//! line naming the kernel signature it matches.
//!
//! ```
//! use keel_engine::optim::{Optimizer, OptimizerKind};
//! use keel_engine::params::Params;
//! use keel_engine::{backward, no_grad, DType, Tensor};
//!
//! # fn main() -> keel_engine::Result<()> {
//! // Minimise ‖w − 3‖² with Adam.
//! let mut params = Params::new();
//! let w = params.insert("w", Tensor::from_f64s(&[0.0, 1.0], &[2], DType::F64)?)?;
//! let mut opt = Optimizer::new(OptimizerKind::adamw(0.0), &params)?;
//! for _ in 0..500 {
//!     let vars = params.variables();
//!     let loss = vars.get(w).add_scalar(-3.0)?.square()?.sum_all()?;
//!     let grads = no_grad(|| backward(&loss, &[vars.get(w)]))?;
//!     no_grad(|| opt.step(&mut params, &grads, 0.05))?;
//! }
//! let w = params.get(w).to_vec_f64()?;
//! assert!(w.iter().all(|x| (x - 3.0).abs() < 1e-3), "{w:?}");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod autodiff;
pub mod backend;
pub mod cache;
pub mod error;
pub mod init;
pub mod memory;
pub mod nn;
pub mod optim;
pub mod params;
pub mod tensor;

pub use autodiff::{backward, grad, hvp, jvp, no_grad};
pub use backend::{DType, Device};
pub use error::{Error, Result};
pub use tensor::{Shape, Tensor};
