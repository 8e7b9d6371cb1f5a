//! Image geometry on the controller: the 3×3 matrix exponential and the affine bilinear warp
//! that Augerino's learned augmentations are made of (Benton, Finzi, Izmailov & Wilson,
//! *Learning Invariances in Neural Networks*, NeurIPS 2020, §4 and the reference repository's
//! `augerino/models/uniform_aug.py`).
//!
//! - [`expm3`]: `exp(A)` of a 3×3 matrix by scaling and squaring with a degree-18 Taylor
//!   polynomial — accurate to a few ulps of `f64` for the generator combinations Augerino draws
//!   (the reference integrates `dX/dt = AX` with an adaptive ODE solver at `rtol = 1e-4`);
//! - [`AUGERINO_GENERATORS`], [`augerino_generators`] and [`augerino_transform`]: the six
//!   affine generators with the reference's scalings and `T = exp(Σ εᵢGᵢ)`;
//! - [`warp_bilinear`]: PyTorch's `affine_grid(θ, align_corners=True)` followed by
//!   `grid_sample(mode='bilinear', padding_mode='zeros', align_corners=True)` on one CHW image,
//!   into a caller buffer.
//!
//! ```
//! use keel_core::vision::{augerino_transform, warp_bilinear};
//!
//! // A quarter turn (ε₂ = π/2 on the rotation generator) of a 1×3×3 image.
//! let t = augerino_transform(&[0.0, 0.0, core::f64::consts::FRAC_PI_2, 0.0, 0.0, 0.0])?;
//! let theta = [t[0], t[1]];
//! let image = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
//! let mut out = [0.0; 9];
//! warp_bilinear(&image, 1, 3, 3, &theta, &mut out, 3, 3)?;
//! let expected = [3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0];
//! assert!(out.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
//! # Ok::<(), keel_core::Error>(())
//! ```
//!
//! What this module is *not*: a differentiable resampler (gradients with respect to the image
//! and to θ live in the host's engine), or a general image library.

mod expm;
mod warp;

pub use expm::{augerino_generators, augerino_transform, expm3, AUGERINO_GENERATORS};
pub use warp::warp_bilinear;
