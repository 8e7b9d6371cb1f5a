//! The three networks of a GAN run — generator `G`, critic `f` and auxiliary real/fake
//! classifier `D` — as plain layer sequences over the engine's ops.
//!
//! Two families:
//! - **MLP** (the 2-D experiments): `width × depth` ReLU layers for all three networks, the
//!   generator's output linear.
//! - **DCGAN** (images `c × h × w` with `h`, `w` divisible by 4; width `d`): the generator
//!   `z → Linear(4d·h/4·w/4) → [4d, h/4, w/4] → BN → ReLU → ConvT(4d→2d, 4, s2, p1) → BN → ReLU →
//!   ConvT(2d→c, 4, s2, p1) → tanh`; the critic `Conv(c→d, 4, s2, p1) → LeakyReLU(0.2) →
//!   Conv(d→2d, 4, s2, p1) → LeakyReLU(0.2) → flatten → Linear(→1)` without normalisation (the
//!   gradient penalty is per example); the classifier the critic's topology and a sigmoid. The
//!   same sizes are `benches/peers/gan_step.py`'s PyTorch peer.
//!
//! With the CT term on, the critic drops units (p = 0.2 after each hidden layer) in every pass,
//! as the reference's functional dropout is active in every call. Parameters are initialised
//! like PyTorch's layer defaults (U(±1/√fan_in), the transposed convolution's fan-in taken over
//! its weight's second axis as PyTorch does); batch norm starts at γ = 1, β = 0 with running
//! mean 0 and variance 1, and generates in training mode (batch statistics) while training and
//! with the running statistics when a saved generator samples.

use keel_core::random::Xoshiro256PlusPlus;

use crate::backend::DType;
use crate::error::{Error, Result};
use crate::images::ImageShape;
use crate::init::{self, Init};
use crate::nn::cnn::{BN_EPS, BN_MOMENTUM};
use crate::nn::Linear;
use crate::params::{ParamId, Params};
use crate::tensor::{Conv2dOpts, ConvTranspose2dOpts, Tensor};

/// The slope of the critic's leaky ReLU for negative inputs (DCGAN's).
pub const LEAKY_SLOPE: f64 = 0.2;
/// The critic's dropout probability when the CT term is on.
pub const CT_DROPOUT: f64 = 0.2;

/// What one example is: a vector (the ring) or an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    /// `d` numbers.
    Vector(usize),
    /// A `c × h × w` image.
    Image(ImageShape),
}

impl Sample {
    /// Numbers per example.
    pub fn numel(self) -> usize {
        match self {
            Sample::Vector(d) => d,
            Sample::Image(s) => s.pixels(),
        }
    }

    /// The tensor shape of a batch of `b` examples.
    pub fn batch_dims(self, b: usize) -> Vec<usize> {
        match self {
            Sample::Vector(d) => vec![b, d],
            Sample::Image(s) => vec![b, s.channels, s.height, s.width],
        }
    }
}

/// The networks' family and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Fully connected ReLU networks of `depth` hidden layers of `width` units.
    Mlp {
        /// Hidden width.
        width: usize,
        /// Hidden layers.
        depth: usize,
    },
    /// The DCGAN-style convolutional networks of the module docs with base width `width`.
    Dcgan {
        /// Base channel width `d`.
        width: usize,
    },
}

impl Arch {
    /// `mlp:W[xD]` (default 3 layers) or `dcgan[:D]` (default width 32).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `model`) for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid("model", s, why);
        let num = |t: &str| {
            t.parse::<usize>()
                .ok()
                .filter(|&v| (1..=65_536).contains(&v))
                .ok_or_else(|| bad("sizes are whole numbers from 1 to 65536"))
        };
        if let Some(rest) = s.strip_prefix("mlp:") {
            let (w, d) = rest.split_once('x').unwrap_or((rest, "3"));
            return Ok(Arch::Mlp {
                width: num(w)?,
                depth: num(d)?,
            });
        }
        if s == "dcgan" {
            return Ok(Arch::Dcgan { width: 32 });
        }
        if let Some(w) = s.strip_prefix("dcgan:") {
            return Ok(Arch::Dcgan { width: num(w)? });
        }
        Err(bad("expected mlp:WIDTH[xDEPTH] or dcgan[:WIDTH]"))
    }

    /// The form [`Arch::parse`] reads.
    pub fn spec(self) -> String {
        match self {
            Arch::Mlp { width, depth } => format!("mlp:{width}x{depth}"),
            Arch::Dcgan { width } => format!("dcgan:{width}"),
        }
    }

    /// Checks that the family fits the data.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `model`) for a DCGAN on vectors or on images whose
    /// sides are not multiples of 4.
    pub fn check(self, sample: Sample) -> Result<()> {
        match (self, sample) {
            (Arch::Dcgan { .. }, Sample::Vector(d)) => Err(Error::invalid(
                "model",
                self.spec(),
                format!("a convolutional GAN needs images; this data is {d} numbers per row"),
            )),
            (Arch::Dcgan { .. }, Sample::Image(s)) if s.height % 4 != 0 || s.width % 4 != 0 => {
                Err(Error::invalid(
                    "model",
                    self.spec(),
                    format!(
                        "the DCGAN networks need image sides divisible by 4 (these are {}×{})",
                        s.height, s.width
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One layer of a [`Net`].
#[derive(Clone, Debug)]
enum Layer {
    Dense(Linear),
    Conv {
        weight: ParamId,
        bias: ParamId,
        opts: Conv2dOpts,
    },
    ConvT {
        weight: ParamId,
        bias: ParamId,
        opts: ConvTranspose2dOpts,
    },
    /// Batch norm with its index into the running statistics.
    BatchNorm {
        gamma: ParamId,
        beta: ParamId,
        stat: usize,
    },
    Relu,
    LeakyRelu,
    Tanh,
    Sigmoid,
    /// Dropout at [`CT_DROPOUT`] when the pass asks for it.
    Dropout,
    Reshape(Vec<usize>),
    Flatten,
}

/// Running statistics `(mean, var)` of a network's batch norms.
pub type Running = Vec<(Tensor, Tensor)>;

/// How a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Batch statistics (updating the running ones), dropout off.
    Train,
    /// Batch statistics without touching the running ones (the gradient penalty's and the
    /// surrogate curve's extra passes), dropout off.
    Probe,
    /// Batch statistics, dropout on with this seed.
    Dropout(u64),
    /// Running statistics, dropout off.
    Eval,
}

/// A network: layers over parameters named `{prefix}…`.
#[derive(Clone, Debug)]
pub struct Net {
    layers: Vec<Layer>,
}

struct Builder<'a> {
    params: &'a mut Params,
    prefix: &'a str,
    dtype: DType,
    rng: &'a mut Xoshiro256PlusPlus,
    layers: Vec<Layer>,
    running: Running,
}

impl Builder<'_> {
    fn name(&self, what: &str) -> String {
        format!("{}layer{}.{what}", self.prefix, self.layers.len())
    }

    fn dense(&mut self, inp: usize, out: usize) -> Result<()> {
        let name = format!("{}layer{}", self.prefix, self.layers.len());
        let l = Linear::new(
            self.params,
            &name,
            inp,
            out,
            Init::PyTorchDefault,
            self.dtype,
            self.rng,
        )?;
        self.layers.push(Layer::Dense(l));
        Ok(())
    }

    fn conv(&mut self, inp: usize, out: usize) -> Result<()> {
        let fan_in = inp * 16;
        let w = init::weight(Init::PyTorchDefault, out, fan_in, self.dtype, self.rng)?
            .reshape(&[out, inp, 4, 4])?;
        let b = init::bias(out, fan_in, self.dtype, self.rng)?;
        let weight = self.params.insert(self.name("weight"), w)?;
        let bias = self.params.insert(self.name("bias"), b)?;
        let opts = Conv2dOpts {
            stride: [2, 2],
            padding: [1, 1],
            ..Conv2dOpts::default()
        };
        self.layers.push(Layer::Conv { weight, bias, opts });
        Ok(())
    }

    fn conv_t(&mut self, inp: usize, out: usize) -> Result<()> {
        // PyTorch's fan-in of a transposed convolution's weight [in, out, k, k] is out·k·k.
        let fan_in = out * 16;
        let w = init::weight(Init::PyTorchDefault, inp, fan_in, self.dtype, self.rng)?
            .reshape(&[inp, out, 4, 4])?;
        let b = init::bias(out, fan_in, self.dtype, self.rng)?;
        let weight = self.params.insert(self.name("weight"), w)?;
        let bias = self.params.insert(self.name("bias"), b)?;
        let opts = ConvTranspose2dOpts {
            stride: [2, 2],
            padding: [1, 1],
            ..ConvTranspose2dOpts::default()
        };
        self.layers.push(Layer::ConvT { weight, bias, opts });
        Ok(())
    }

    fn batch_norm(&mut self, c: usize) -> Result<()> {
        let gamma = self
            .params
            .insert(self.name("gamma"), Tensor::ones(&[c], self.dtype)?)?;
        let beta = self
            .params
            .insert(self.name("beta"), Tensor::zeros(&[c], self.dtype)?)?;
        let stat = self.running.len();
        self.running.push((
            Tensor::zeros(&[c], self.dtype)?,
            Tensor::ones(&[c], self.dtype)?,
        ));
        self.layers.push(Layer::BatchNorm { gamma, beta, stat });
        Ok(())
    }

    fn push(&mut self, l: Layer) {
        self.layers.push(l);
    }

    fn finish(self) -> (Net, Running) {
        (
            Net {
                layers: self.layers,
            },
            self.running,
        )
    }
}

/// Which of the three networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `G`: latent → sample.
    Generator,
    /// `f`: sample → score (and its penultimate features).
    Critic,
    /// `D`: sample → probability of "real".
    Classifier,
}

impl Net {
    /// Builds the `role` network of `arch` for `sample`s and a latent of `latent` numbers,
    /// inserting its parameters into `params` under `prefix`; `dropout` adds the CT term's
    /// dropout layers (critic only). Returns the network and its running statistics.
    ///
    /// # Errors
    /// As [`Arch::check`]; zero sizes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        prefix: &str,
        role: Role,
        arch: Arch,
        sample: Sample,
        latent: usize,
        dropout: bool,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<(Net, Running)> {
        arch.check(sample)?;
        if latent == 0 || sample.numel() == 0 {
            return Err(Error::invalid("latent", latent, "sizes must be positive"));
        }
        let mut b = Builder {
            params,
            prefix,
            dtype,
            rng,
            layers: Vec::new(),
            running: Vec::new(),
        };
        let drop = dropout && role == Role::Critic;
        match arch {
            Arch::Mlp { width, depth } => {
                let inp = if role == Role::Generator {
                    latent
                } else {
                    sample.numel()
                };
                if let (Sample::Image(_), Role::Critic | Role::Classifier) = (sample, role) {
                    b.push(Layer::Flatten);
                }
                let mut w = inp;
                for _ in 0..depth {
                    b.dense(w, width)?;
                    b.push(Layer::Relu);
                    if drop {
                        b.push(Layer::Dropout);
                    }
                    w = width;
                }
                match role {
                    Role::Generator => {
                        b.dense(w, sample.numel())?;
                        if let Sample::Image(s) = sample {
                            b.push(Layer::Tanh);
                            b.push(Layer::Reshape(vec![s.channels, s.height, s.width]));
                        }
                    }
                    Role::Critic => b.dense(w, 1)?,
                    Role::Classifier => {
                        b.dense(w, 1)?;
                        b.push(Layer::Sigmoid);
                    }
                }
            }
            Arch::Dcgan { width: d } => {
                let Sample::Image(s) = sample else {
                    unreachable!("Arch::check refuses a DCGAN on vectors")
                };
                let (h0, w0) = (s.height / 4, s.width / 4);
                match role {
                    Role::Generator => {
                        b.dense(latent, 4 * d * h0 * w0)?;
                        b.push(Layer::Reshape(vec![4 * d, h0, w0]));
                        b.batch_norm(4 * d)?;
                        b.push(Layer::Relu);
                        b.conv_t(4 * d, 2 * d)?;
                        b.batch_norm(2 * d)?;
                        b.push(Layer::Relu);
                        b.conv_t(2 * d, s.channels)?;
                        b.push(Layer::Tanh);
                    }
                    Role::Critic | Role::Classifier => {
                        b.conv(s.channels, d)?;
                        b.push(Layer::LeakyRelu);
                        if drop {
                            b.push(Layer::Dropout);
                        }
                        b.conv(d, 2 * d)?;
                        b.push(Layer::LeakyRelu);
                        if drop {
                            b.push(Layer::Dropout);
                        }
                        b.push(Layer::Flatten);
                        b.dense(2 * d * h0 * w0, 1)?;
                        if role == Role::Classifier {
                            b.push(Layer::Sigmoid);
                        }
                    }
                }
            }
        }
        Ok(b.finish())
    }

    /// The output and the input of the last dense layer (the critic's features `h`).
    ///
    /// # Errors
    /// Shape errors for an input of the wrong size.
    pub fn forward_with_features(
        &self,
        params: &Params,
        running: &mut Running,
        x: &Tensor,
        pass: Pass,
    ) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        let mut features = x.clone();
        let last_dense = self
            .layers
            .iter()
            .rposition(|l| matches!(l, Layer::Dense(_)));
        let mut drops = 0u64;
        for (i, l) in self.layers.iter().enumerate() {
            if Some(i) == last_dense {
                features = h.clone();
            }
            h = match l {
                Layer::Dense(lin) => lin.forward(params, &h)?,
                Layer::Conv { weight, bias, opts } => {
                    h.conv2d(params.get(*weight), Some(params.get(*bias)), *opts)?
                }
                Layer::ConvT { weight, bias, opts } => {
                    h.conv_transpose2d(params.get(*weight), Some(params.get(*bias)), *opts)?
                }
                Layer::BatchNorm { gamma, beta, stat } => {
                    let (g, b) = (params.get(*gamma), params.get(*beta));
                    if pass == Pass::Eval {
                        let (m, v) = &running[*stat];
                        h.batch_norm_eval(g, b, m, v, BN_EPS)?
                    } else {
                        let (y, mean, var) = h.batch_norm_train(g, b, BN_EPS)?;
                        if pass == Pass::Train {
                            let (m, v) = &mut running[*stat];
                            crate::autodiff::no_grad(|| -> Result<()> {
                                *m = m
                                    .mul_scalar(1.0 - BN_MOMENTUM)?
                                    .add(&mean.mul_scalar(BN_MOMENTUM)?)?;
                                *v = v
                                    .mul_scalar(1.0 - BN_MOMENTUM)?
                                    .add(&var.mul_scalar(BN_MOMENTUM)?)?;
                                Ok(())
                            })?;
                        }
                        y
                    }
                }
                Layer::Relu => h.relu()?,
                // relu(x) − s·relu(−x): twice differentiable through the engine's masks (its
                // elementwise maximum passes no gradient).
                Layer::LeakyRelu => h.relu()?.sub(&h.neg()?.relu()?.mul_scalar(LEAKY_SLOPE)?)?,
                Layer::Tanh => h.tanh()?,
                Layer::Sigmoid => h.sigmoid()?,
                Layer::Dropout => match pass {
                    Pass::Dropout(seed) => {
                        drops += 1;
                        h.dropout(
                            CT_DROPOUT,
                            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(drops),
                        )?
                    }
                    _ => h,
                },
                Layer::Reshape(dims) => {
                    let mut full = vec![h.dims()[0]];
                    full.extend_from_slice(dims);
                    h.reshape(&full)?
                }
                Layer::Flatten => h.flatten()?,
            };
        }
        Ok((h, features))
    }

    /// The output alone; `[b, 1]` outputs (critic, classifier) come back as `[b]`.
    ///
    /// # Errors
    /// As [`Net::forward_with_features`].
    pub fn forward(
        &self,
        params: &Params,
        running: &mut Running,
        x: &Tensor,
        pass: Pass,
    ) -> Result<Tensor> {
        let (y, _) = self.forward_with_features(params, running, x, pass)?;
        squeeze_scores(y)
    }
}

/// `[b, 1]` → `[b]`; anything else unchanged.
///
/// # Errors
/// Never for a well-formed tensor.
pub fn squeeze_scores(y: Tensor) -> Result<Tensor> {
    match *y.dims() {
        [b, 1] => Ok(y.reshape(&[b])?),
        _ => Ok(y),
    }
}
