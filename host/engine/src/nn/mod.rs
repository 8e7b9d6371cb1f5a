//! Layers built on the tensor engine: dense layers and multilayer perceptrons whose parameters
//! live in a [`Params`] (so the optimizer, export and checkpoints see them by name); and
//! convolutional networks ([`cnn`]).

pub mod cnn;

use keel_core::random::Xoshiro256PlusPlus;

use crate::backend::DType;
use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// Elementwise nonlinearities (the names match the exported `keel.config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// tanh
    Tanh,
    /// logistic sigmoid
    Sigmoid,
    /// x·sigmoid(x) (swish)
    Silu,
    /// ln(1 + eˣ)
    Softplus,
    /// no nonlinearity
    Identity,
}

impl Activation {
    /// The name used on the command line and in exported files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }

    /// Parses a name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the choices.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "silu" | "swish" => Activation::Silu,
            "softplus" => Activation::Softplus,
            "identity" | "linear" => Activation::Identity,
            _ => {
                return Err(Error::invalid(
                    "activation",
                    s,
                    "expected relu, tanh, sigmoid, silu, softplus or identity",
                ))
            }
        })
    }

    /// Applies the nonlinearity.
    ///
    /// # Errors
    /// Never for valid tensors.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Silu => x.silu(),
            Activation::Softplus => x.softplus(),
            Activation::Identity => Ok(x.clone()),
        }
    }
}

/// A dense layer `y = x Wᵀ + b` with `W: [out, in]`.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// Weight parameter.
    pub weight: ParamId,
    /// Bias parameter.
    pub bias: ParamId,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
}

impl Linear {
    /// Creates `layer{index}.weight` / `layer{index}.bias` in `params`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero width or a duplicate name.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        inp: usize,
        out: usize,
        init: Init,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Self> {
        let w = init::weight(init, out, inp, dtype, rng)?;
        let b = init::bias(out, inp, dtype, rng)?;
        Ok(Linear {
            weight: params.insert(format!("{name}.weight"), w)?,
            bias: params.insert(format!("{name}.bias"), b)?,
            inp,
            out,
        })
    }

    /// `x Wᵀ + b` for `x: [batch, in]` (or any leading batch shape).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the layer's and the input's shapes.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        x.matmul_t(params.get(self.weight), false, true)?
            .add(params.get(self.bias))
    }

    /// `act(x Wᵀ + b)`; a ReLU joins the bias in one pass ([`Tensor::add_relu`], the same
    /// values as adding, then applying it).
    ///
    /// # Errors
    /// As [`Linear::forward`].
    pub fn forward_with(&self, params: &Params, x: &Tensor, act: Activation) -> Result<Tensor> {
        let z = x.matmul_t(params.get(self.weight), false, true)?;
        match act {
            Activation::Relu => z.add_relu(params.get(self.bias)),
            act => act.apply(&z.add(params.get(self.bias))?),
        }
    }
}

/// The widths `[inp, hidden × layers, out]` of an MLP with `layers` hidden layers of one width.
pub fn widths(inp: usize, hidden: usize, layers: usize, out: usize) -> Vec<usize> {
    let mut sizes = vec![inp];
    sizes.extend(std::iter::repeat_n(hidden, layers));
    sizes.push(out);
    sizes
}

/// A multilayer perceptron: dense layers with an activation between them (not after the last).
#[derive(Clone, Debug)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<Linear>,
    /// Hidden nonlinearity.
    pub activation: Activation,
}

impl Mlp {
    /// Layers of widths `sizes = [in, h₁, …, out]` named `layer0`, `layer1`, ….
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for fewer than two sizes or a zero width.
    pub fn new(
        params: &mut Params,
        sizes: &[usize],
        activation: Activation,
        init: Init,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Self> {
        Mlp::named(params, "", sizes, activation, init, dtype, rng)
    }

    /// As [`Mlp::new`], with the layers named `{prefix}layer0`, … (several networks in one
    /// parameter set).
    ///
    /// # Errors
    /// As [`Mlp::new`]; a duplicate name.
    pub fn named(
        params: &mut Params,
        prefix: &str,
        sizes: &[usize],
        activation: Activation,
        init: Init,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::invalid(
                "layer widths",
                format!("{sizes:?}"),
                "need an input and an output width",
            ));
        }
        if let Some(z) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::invalid(
                "layer widths",
                format!("{sizes:?}"),
                format!("width {z} is zero"),
            ));
        }
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let name = format!("{prefix}layer{i}");
                Linear::new(params, &name, w[0], w[1], init, dtype, rng)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp { layers, activation })
    }

    /// The widths `[in, h₁, …, out]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.layers[0].inp];
        s.extend(self.layers.iter().map(|l| l.out));
        s
    }

    /// Forward pass.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x`'s last axis is not the input width.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = if i + 1 < self.layers.len() {
                l.forward_with(params, &h, self.activation)?
            } else {
                l.forward(params, &h)?
            };
        }
        Ok(h)
    }
}
