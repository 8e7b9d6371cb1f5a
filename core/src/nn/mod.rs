//! Neural networks evaluated in place from exported weights: dense layers and MLPs (forward, and
//! the gradient with respect to the input that learned potentials and policies need).
//!
//! A model is a safetensors file read with [`io::SafeTensors`](crate::io::SafeTensors); its
//! metadata names the kind (`keel.kind = "mlp"`) and the configuration ([`MlpConfig`],
//! `keel.config`). [`Mlp::from_safetensors`] checks every tensor against the configuration and
//! keeps borrowed views: nothing is copied, so a model `include_bytes!`-ed into flash runs from
//! flash. Evaluation is generic over the scalar (`f32` on the controller, `f64` for reference
//! checks), takes caller-provided scratch, and never allocates.
//!
//! ```
//! # fn file() -> Vec<u8> {
//! #     let config = r#"{\"sizes\":[2,3,1],\"activation\":\"tanh\",\"output\":\"regression\",\"input_standardization\":false,\"target_standardization\":false}"#;
//! #     let header = format!(
//! #         r#"{{"__metadata__":{{"keel.kind":"mlp","keel.config":"{config}"}},"layer0.weight":{{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]}},"layer0.bias":{{"dtype":"F32","shape":[3],"data_offsets":[24,36]}},"layer1.weight":{{"dtype":"F32","shape":[1,3],"data_offsets":[36,48]}},"layer1.bias":{{"dtype":"F32","shape":[1],"data_offsets":[48,52]}}}}"#
//! #     );
//! #     let mut f = (header.len() as u64).to_le_bytes().to_vec();
//! #     f.extend_from_slice(header.as_bytes());
//! #     for v in [0.5f32, -1.0, 0.25, 0.75, 1.0, 0.0, 0.1, 0.2, 0.3, 1.0, -1.0, 0.5, 0.05] {
//! #         f.extend_from_slice(&v.to_le_bytes());
//! #     }
//! #     f
//! # }
//! use keel_core::io::SafeTensors;
//! use keel_core::nn::Mlp;
//!
//! let bytes = file(); // a 2 → 3 → 1 tanh regressor written by the host
//! let st = SafeTensors::<'_, 8>::parse(&bytes)?;
//! let mlp = Mlp::<'_, 4>::from_safetensors(&st)?;
//! let mut scratch = [0.0f32; 16];
//! assert!(scratch.len() >= mlp.scratch_len());
//!
//! let x = [0.3f32, -0.4];
//! let mut y = [0.0f32; 1];
//! mlp.forward(&x, &mut y, &mut scratch)?;
//! let mut grad = [0.0f32; 2];
//! mlp.input_gradient(&x, &[1.0], &mut grad, &mut scratch)?; // ∂y/∂x
//! # Ok::<(), keel_core::Error>(())
//! ```
//!
//! [`Emlp`] evaluates an equivariant MLP exported by the host (`keel.kind = "emlp"`): dense
//! effective weights, the cheap bilinear layer as index maps, gated nonlinearities — also in
//! place and without allocating.
//!
//! [`Bma`] averages the class probabilities of `S` ReLU MLPs stored as one sample matrix
//! (`keel.kind = "bma"`, written by `keel bayes export` from HMC, SG-MCMC or ensemble runs):
//! `p(y | x) = (1/S) Σ_s softmax(f_{θ_s}(x))`, read in place, with two activation buffers of
//! scratch.
//!
//! [`Simplex`] averages the class probabilities of an ensemble of simplexes of ReLU MLPs
//! (`keel.kind = "simplex"`, written by `keel simplex train --export`) over a fixed set of
//! interior points or points drawn from Dirichlet(1) with a caller's RNG, combining the vertex
//! weights on the fly in flash.
//!
//! [`GruCell`] is PyTorch's GRU cell (gate order `r, z, n`) over borrowed weights, the recurrent
//! core of the SAC-SVG(H) world model that [`crate::rl::ValueModel`] rolls on the controller;
//! several MLPs can share one file ([`Mlp::from_safetensors_part`]: tensor-name prefix and a
//! configuration entry each).
//!
//! [`Cnn`] evaluates a convolutional network (`keel.kind = "cnn"`): direct convolutions over
//! the weights in flash (stride, padding, dilation, groups; batch norm folded in by the
//! exporter), max and average pooling, global mean, flatten and a dense head, with two
//! activation buffers of caller scratch. [`Augerino`] averages such a CNN's log-softmax over `J`
//! affine warps of the image drawn from the learned widths in the file and a caller's RNG.
//!
//! [`NtkAdaptation`] adapts a regression MLP to a few new points on the controller by its
//! linearisation (Maddox et al., *Fast Adaptation with Linearized Neural Networks*, AISTATS
//! 2021): the finite neural-tangent kernel GP, with each point's Jacobian row from a reverse
//! pass through the MLP with respect to its parameters ([`Mlp::parameter_vjp_factors`],
//! [`Mlp::parameter_vjp`]) and the forward pass along a parameter direction
//! ([`Mlp::parameter_jvp`]).
//!
//! What this is *not*: training (the host does that, with its own autodiff), or a general graph
//! runtime — layers are dense, activations elementwise.

pub(crate) mod activation;
mod augerino;
mod bma;
mod cnn;
mod config;
mod dense;
mod emlp;
mod gru;
mod mlp;
mod ntk;
mod simplex;
pub(crate) mod weights;

pub use activation::Activation;
pub use augerino::Augerino;
pub use bma::Bma;
pub use cnn::{Cnn, CnnConfig, CnnLayer, Conv2d, Pool2d};
pub use config::{MlpConfig, Output};
pub use dense::Dense;
pub use emlp::Emlp;
pub use gru::GruCell;
pub use mlp::{Mlp, SIGMA_FLOOR};
pub use ntk::{NtkAdaptation, NtkBuffers, NtkMemory, PriorMean};
pub use simplex::{dirichlet_ones, Simplex, MAX_VERTICES as SIMPLEX_MAX_VERTICES};

/// The tensor `{prefix}{name}` (names compared unescaped).
///
/// # Errors
/// [`Error::TensorNotFound`](crate::Error::TensorNotFound) with role `name`.
pub(crate) fn named_tensor<'a, const MAX: usize>(
    st: &crate::io::SafeTensors<'a, MAX>,
    prefix: &str,
    name: &'static str,
) -> crate::Result<crate::io::TensorView<'a>> {
    st.find(|t| t.bytes().eq(prefix.bytes().chain(name.bytes())))
        .ok_or(crate::Error::TensorNotFound {
            role: name,
            layer: None,
        })
}

/// The decimal digits of `v`, written into the end of `buf` (for matching tensor names such as
/// `layer12.weight` without allocating).
pub(crate) fn digits(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut k = buf.len();
    loop {
        k -= 1;
        if let Some(d) = buf.get_mut(k) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || k == 0 {
            break;
        }
    }
    buf.get(k..).unwrap_or(&[])
}
