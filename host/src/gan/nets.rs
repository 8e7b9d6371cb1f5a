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
//! - **ResNet** (`resnet[:G]`, the reference's CIFAR-10 configuration, for users with the data
//!   and a GPU): see [`Arch::Resnet`] and the function that builds it.
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
    /// The reference's CIFAR-10 ResNets (module docs): generator width `width`, critic and
    /// classifier width `⌊1.3·width⌋`.
    Resnet {
        /// The generator's channels (the reference's `G_SIZE`, 256).
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
        if s == "resnet" {
            return Ok(Arch::Resnet { width: 256 });
        }
        if let Some(w) = s.strip_prefix("resnet:") {
            return Ok(Arch::Resnet { width: num(w)? });
        }
        if let Some(w) = s.strip_prefix("dcgan:") {
            return Ok(Arch::Dcgan { width: num(w)? });
        }
        Err(bad(
            "expected mlp:WIDTH[xDEPTH], dcgan[:WIDTH] or resnet[:WIDTH]",
        ))
    }

    /// The form [`Arch::parse`] reads.
    pub fn spec(self) -> String {
        match self {
            Arch::Mlp { width, depth } => format!("mlp:{width}x{depth}"),
            Arch::Dcgan { width } => format!("dcgan:{width}"),
            Arch::Resnet { width } => format!("resnet:{width}"),
        }
    }

    /// Checks that the family fits the data.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `model`) for a DCGAN on vectors or on images whose
    /// sides are not multiples of 4.
    pub fn check(self, sample: Sample) -> Result<()> {
        match (self, sample) {
            (Arch::Dcgan { .. } | Arch::Resnet { .. }, Sample::Vector(d)) => Err(Error::invalid(
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
            (Arch::Resnet { .. }, Sample::Image(s)) if s.height % 8 != 0 || s.width % 8 != 0 => {
                Err(Error::invalid(
                    "model",
                    self.spec(),
                    format!(
                        "the ResNets need image sides divisible by 8 (these are {}×{})",
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
    /// Dropout with this probability when the pass asks for it.
    Dropout(f64),
    Reshape(Vec<usize>),
    Flatten,
    /// Nearest-neighbour upsampling ×2 of this many channels.
    Upsample(usize),
    /// Average pooling over `k × k` windows with stride `k`.
    AvgPool(usize),
    /// The mean over height and width: `[n, c, h, w]` → `[n, c]`.
    GlobalMean,
    /// `main(x) + bypass(x)` (an empty bypass is the identity).
    Residual {
        main: Vec<Layer>,
        bypass: Vec<Layer>,
    },
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
    /// Layers pushed so far, in residual blocks too: the index in parameter names.
    count: usize,
}

impl Builder<'_> {
    fn name(&self, what: &str) -> String {
        format!("{}layer{}.{what}", self.prefix, self.count)
    }

    fn dense(&mut self, inp: usize, out: usize) -> Result<()> {
        let name = format!("{}layer{}", self.prefix, self.count);
        let l = Linear::new(
            self.params,
            &name,
            inp,
            out,
            Init::PyTorchDefault,
            self.dtype,
            self.rng,
        )?;
        self.push(Layer::Dense(l));
        Ok(())
    }

    /// The DCGAN convolution: 4×4, stride 2, padding 1.
    fn conv(&mut self, inp: usize, out: usize) -> Result<()> {
        self.conv_k(inp, out, 4, 2, 1)
    }

    fn conv_k(
        &mut self,
        inp: usize,
        out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<()> {
        let fan_in = inp * k * k;
        let w = init::weight(Init::PyTorchDefault, out, fan_in, self.dtype, self.rng)?
            .reshape(&[out, inp, k, k])?;
        let b = init::bias(out, fan_in, self.dtype, self.rng)?;
        let weight = self.params.insert(self.name("weight"), w)?;
        let bias = self.params.insert(self.name("bias"), b)?;
        let opts = Conv2dOpts {
            stride: [stride; 2],
            padding: [pad; 2],
            ..Conv2dOpts::default()
        };
        self.push(Layer::Conv { weight, bias, opts });
        Ok(())
    }

    /// The layers `f` pushes, taken out as a block's branch.
    fn branch(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<Vec<Layer>> {
        let outer = std::mem::take(&mut self.layers);
        let r = f(self);
        let inner = std::mem::replace(&mut self.layers, outer);
        r.map(|()| inner)
    }

    fn residual(&mut self, main: Vec<Layer>, bypass: Vec<Layer>) {
        self.push(Layer::Residual { main, bypass });
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
        self.push(Layer::ConvT { weight, bias, opts });
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
        self.push(Layer::BatchNorm { gamma, beta, stat });
        Ok(())
    }

    fn push(&mut self, l: Layer) {
        self.layers.push(l);
        self.count += 1;
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
            count: 0,
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
                        b.push(Layer::Dropout(CT_DROPOUT));
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
                            b.push(Layer::Dropout(CT_DROPOUT));
                        }
                        b.conv(d, 2 * d)?;
                        b.push(Layer::LeakyRelu);
                        if drop {
                            b.push(Layer::Dropout(CT_DROPOUT));
                        }
                        b.push(Layer::Flatten);
                        b.dense(2 * d * h0 * w0, 1)?;
                        if role == Role::Classifier {
                            b.push(Layer::Sigmoid);
                        }
                    }
                }
            }
            Arch::Resnet { width } => {
                let Sample::Image(s) = sample else {
                    unreachable!("Arch::check refuses a ResNet on vectors")
                };
                resnet(&mut b, role, width, s, latent, drop)?;
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
            h = apply(l, params, running, h, pass, &mut drops)?;
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

/// One layer on `h` (residual blocks recursively, one level deep as built here).
fn apply(
    l: &Layer,
    params: &Params,
    running: &mut Running,
    h: Tensor,
    pass: Pass,
    drops: &mut u64,
) -> Result<Tensor> {
    Ok(match l {
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
        Layer::Dropout(p) => match pass {
            Pass::Dropout(seed) => {
                *drops += 1;
                h.dropout(
                    *p,
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(*drops),
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
        Layer::Upsample(c) => {
            // Nearest ×2 as a depthwise transposed convolution with a 2×2 kernel of ones.
            let ones = Tensor::ones(&[*c, 1, 2, 2], h.dtype())?.to_device(h.device())?;
            let opts = ConvTranspose2dOpts {
                stride: [2, 2],
                groups: *c,
                ..ConvTranspose2dOpts::default()
            };
            h.conv_transpose2d(&ones, None, opts)?
        }
        Layer::AvgPool(k) => h.avg_pool2d([*k; 2], [*k; 2], [0, 0])?,
        Layer::GlobalMean => h.global_mean_pool()?,
        Layer::Residual { main, bypass } => {
            let mut m = h.clone();
            for l in main {
                m = apply(l, params, running, m, pass, drops)?;
            }
            let mut y = h;
            for l in bypass {
                y = apply(l, params, running, y, pass, drops)?;
            }
            m.add(&y)?
        }
    })
}

/// The reference's CIFAR-10 networks (`cifar10/main.py`) for `s` images (sides divisible by 8):
/// - generator: `z → Linear(4·4·G) → [G, h/8, w/8]`, three up-blocks `BN → ReLU → Upsample×2 →
///   conv3×3 → BN → ReLU → conv3×3` with an upsampling bypass, then `BN → ReLU → conv3×3 → c →
///   tanh`;
/// - critic (width `⌊1.3·G⌋`): a first down-block `conv3×3 → ReLU → conv3×3 → AvgPool2` with
///   bypass `AvgPool2 → conv1×1`, a down-block `ReLU → conv → ReLU → conv → AvgPool2` with bypass
///   `conv1×1 → AvgPool2`, two plain blocks with identity bypass, dropout 0.2 / 0.5 / 0.5 after
///   blocks 2–4 (with the CT term), `ReLU → global average → Linear → 1`;
/// - classifier: the critic with batch norm before each ReLU of the later blocks, no dropout, a
///   sigmoid.
///
/// Initialisation is PyTorch's layer default here, not the reference's Kaiming/Xavier.
fn resnet(
    b: &mut Builder<'_>,
    role: Role,
    g: usize,
    s: ImageShape,
    latent: usize,
    drop: bool,
) -> Result<()> {
    let (h0, w0) = (s.height / 8, s.width / 8);
    match role {
        Role::Generator => {
            b.dense(latent, g * h0 * w0)?;
            b.push(Layer::Reshape(vec![g, h0, w0]));
            for _ in 0..3 {
                let main = b.branch(|b| {
                    b.batch_norm(g)?;
                    b.push(Layer::Relu);
                    b.push(Layer::Upsample(g));
                    b.conv_k(g, g, 3, 1, 1)?;
                    b.batch_norm(g)?;
                    b.push(Layer::Relu);
                    b.conv_k(g, g, 3, 1, 1)
                })?;
                b.residual(main, vec![Layer::Upsample(g)]);
            }
            b.batch_norm(g)?;
            b.push(Layer::Relu);
            b.conv_k(g, s.channels, 3, 1, 1)?;
            b.push(Layer::Tanh);
        }
        Role::Critic | Role::Classifier => {
            let d = g * 13 / 10;
            let bn = role == Role::Classifier;
            let c = s.channels;
            let main = b.branch(|b| {
                b.conv_k(c, d, 3, 1, 1)?;
                b.push(Layer::Relu);
                b.conv_k(d, d, 3, 1, 1)?;
                b.push(Layer::AvgPool(2));
                Ok(())
            })?;
            let bypass = b.branch(|b| {
                b.push(Layer::AvgPool(2));
                b.conv_k(c, d, 1, 1, 0)
            })?;
            b.residual(main, bypass);
            for (down, p) in [(true, 0.2), (false, 0.5), (false, 0.5)] {
                let main = b.branch(|b| {
                    if bn {
                        b.batch_norm(d)?;
                    }
                    b.push(Layer::Relu);
                    b.conv_k(d, d, 3, 1, 1)?;
                    if bn {
                        b.batch_norm(d)?;
                    }
                    b.push(Layer::Relu);
                    b.conv_k(d, d, 3, 1, 1)?;
                    if down {
                        b.push(Layer::AvgPool(2));
                    }
                    Ok(())
                })?;
                let bypass = if down {
                    b.branch(|b| {
                        b.conv_k(d, d, 1, 1, 0)?;
                        b.push(Layer::AvgPool(2));
                        Ok(())
                    })?
                } else {
                    Vec::new()
                };
                b.residual(main, bypass);
                if drop {
                    b.push(Layer::Dropout(p));
                }
            }
            b.push(Layer::Relu);
            b.push(Layer::GlobalMean);
            b.dense(d, 1)?;
            if role == Role::Classifier {
                b.push(Layer::Sigmoid);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_repeats_each_pixel_in_a_two_by_two_block() {
        let x = Tensor::from_f64s(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            &[1, 2, 2, 2],
            DType::F64,
        )
        .unwrap();
        let y = apply(
            &Layer::Upsample(2),
            &Params::new(),
            &mut Vec::new(),
            x,
            Pass::Probe,
            &mut 0,
        )
        .unwrap();
        assert_eq!(y.dims(), &[1, 2, 4, 4]);
        let v = y.to_vec_f64().unwrap();
        let want: Vec<f64> = (0..2)
            .flat_map(|c| {
                (0..4).flat_map(move |i| {
                    (0..4).map(move |j| (c * 4 + (i / 2) * 2 + j / 2 + 1) as f64)
                })
            })
            .collect();
        assert_eq!(v, want);
    }

    #[test]
    fn the_resnets_map_images_to_images_and_scores() {
        let s = ImageShape::new(3, 16, 8).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut p = Params::new();
        let (g, mut gr) = Net::new(
            &mut p,
            "g.",
            Role::Generator,
            Arch::Resnet { width: 4 },
            Sample::Image(s),
            6,
            false,
            DType::F64,
            &mut rng,
        )
        .unwrap();
        let z = Tensor::ones(&[5, 6], DType::F64).unwrap();
        let x = g.forward(&p, &mut gr, &z, Pass::Train).unwrap();
        assert_eq!(x.dims(), &[5, 3, 16, 8]);
        assert_eq!(gr.len(), 7, "two batch norms per up-block and the last one");
        for role in [Role::Critic, Role::Classifier] {
            let mut q = Params::new();
            let (c, mut cr) = Net::new(
                &mut q,
                "c.",
                role,
                Arch::Resnet { width: 4 },
                Sample::Image(s),
                6,
                true,
                DType::F64,
                &mut rng,
            )
            .unwrap();
            let (y, h) = c
                .forward_with_features(&q, &mut cr, &x, Pass::Dropout(3))
                .unwrap();
            assert_eq!(y.dims(), &[5, 1]);
            assert_eq!(h.dims(), &[5, 5], "⌊1.3 × 4⌋ pooled features");
            assert_eq!(cr.len(), if role == Role::Classifier { 6 } else { 0 });
        }
        assert!(Arch::Resnet { width: 4 }
            .check(Sample::Image(ImageShape::new(1, 12, 8).unwrap()))
            .is_err());
    }
}
