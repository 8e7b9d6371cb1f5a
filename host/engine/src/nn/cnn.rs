//! Convolutional networks: a stack of convolutions (with optional batch normalisation),
//! pooling, dropout and dense layers over NCHW images, described by a compact spec and
//! initialised like PyTorch's layers.
//!
//! Spec tokens, comma-separated (e.g. `c32,c32,m2,x0.3,c64,g` — the output layer is added by the
//! caller): `cN` a 3×3 convolution to N channels with padding 1, batch normalisation and ReLU
//! (`cNk5` a 5×5 one with padding 2, `cNs2` stride 2, `cNnobn` without batch norm, `cNfrn` with
//! filter response normalisation and swish instead — the BNN-HMC reference's ResNet-20-FRN
//! layer, no batch statistics, `cNk5frn` etc.); `mK` / `aK`
//! max / average pooling over K×K windows with stride K; `g` the global mean over height and
//! width; `f` flatten; `xP` dropout with probability P; `dN` a dense layer to N with ReLU. The
//! network flattens before the first dense layer by itself.

use keel_core::random::Xoshiro256PlusPlus;

use super::{Activation, Linear};
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::init::{self, Init};
use crate::params::{ParamId, Params};
use crate::tensor::{Conv2dOpts, Tensor};

/// Filter response normalisation's ε (the BNN-HMC reference's `FeatureResponseNorm`).
pub const FRN_EPS: f64 = 1e-6;

/// Batch normalisation's ε and running-statistics momentum (PyTorch's defaults).
pub const BN_EPS: f64 = 1e-5;
/// See [`BN_EPS`].
pub const BN_MOMENTUM: f64 = 0.1;

/// The normalisation after a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// None.
    None,
    /// Batch normalisation (batch statistics in training, running ones in evaluation).
    Batch,
    /// Filter response normalisation with its learned threshold
    /// ([`Tensor::filter_response_norm`]): per image, no state.
    Frn,
}

/// One layer of a [`Cnn`] spec.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// A convolution, then its normalisation, then the activation.
    Conv {
        /// Output channels.
        out: usize,
        /// Square kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding (`kernel / 2` keeps the size at stride 1).
        padding: usize,
        /// Normalisation after the convolution.
        norm: Norm,
        /// Activation.
        activation: Activation,
    },
    /// Max pooling over `k × k` windows with stride `k`.
    MaxPool(usize),
    /// Average pooling over `k × k` windows with stride `k`.
    AvgPool(usize),
    /// Mean over height and width.
    GlobalMean,
    /// `[n, c, h, w]` → `[n, c·h·w]`.
    Flatten,
    /// Dropout with this probability (training only).
    Dropout(f64),
    /// A dense layer and its activation.
    Dense {
        /// Output width.
        out: usize,
        /// Activation.
        activation: Activation,
    },
}

/// Parses a comma-separated spec (see the module docs).
///
/// # Errors
/// [`Error::InvalidArgument`] naming the token that does not parse.
pub fn parse_spec(spec: &str) -> Result<Vec<LayerSpec>> {
    let bad = |tok: &str, why: &str| {
        Error::invalid(
            "cnn layer",
            tok,
            format!("{why} (tokens: cN[k K][s S][nobn|frn], mK, aK, g, f, xP, dN)"),
        )
    };
    let num = |tok: &str, s: &str| -> Result<usize> {
        s.parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| bad(tok, "expected a positive whole number"))
    };
    let mut out = Vec::new();
    for tok in spec.split(',').map(str::trim) {
        let (head, rest) = tok.split_at(tok.chars().next().map_or(0, char::len_utf8));
        let layer = match head {
            "c" => {
                let (mut body, norm, activation) =
                    match (rest.strip_suffix("nobn"), rest.strip_suffix("frn")) {
                        (Some(b), _) => (b, Norm::None, Activation::Relu),
                        (_, Some(b)) => (b, Norm::Frn, Activation::Silu),
                        _ => (rest, Norm::Batch, Activation::Relu),
                    };
                let mut stride = 1;
                if let Some((b, s)) = body.split_once('s') {
                    stride = num(tok, s)?;
                    body = b;
                }
                let mut kernel = 3;
                if let Some((b, k)) = body.split_once('k') {
                    kernel = num(tok, k)?;
                    body = b;
                }
                LayerSpec::Conv {
                    out: num(tok, body)?,
                    kernel,
                    stride,
                    padding: kernel / 2,
                    norm,
                    activation,
                }
            }
            "m" => LayerSpec::MaxPool(num(tok, rest)?),
            "a" => LayerSpec::AvgPool(num(tok, rest)?),
            "g" if rest.is_empty() => LayerSpec::GlobalMean,
            "f" if rest.is_empty() => LayerSpec::Flatten,
            "x" => {
                let p: f64 = rest
                    .parse()
                    .map_err(|_| bad(tok, "expected a dropout probability"))?;
                if !(0.0..1.0).contains(&p) {
                    return Err(bad(tok, "the dropout probability must be in [0, 1)"));
                }
                LayerSpec::Dropout(p)
            }
            "d" => LayerSpec::Dense {
                out: num(tok, rest)?,
                activation: Activation::Relu,
            },
            _ => return Err(bad(tok, "unknown layer")),
        };
        out.push(layer);
    }
    Ok(out)
}

/// A convolution's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: ParamId,
    /// `[out]`.
    pub bias: ParamId,
    /// Input channels.
    pub inp: usize,
    /// Output channels.
    pub out: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Options.
    pub opts: Conv2dOpts,
}

/// Batch normalisation's affine parameters (in [`Params`]) and the index of its running
/// statistics in a [`CnnState`].
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm {
    /// γ `[c]`.
    pub gamma: ParamId,
    /// β `[c]`.
    pub beta: ParamId,
    /// Index into [`CnnState::running`].
    pub state: usize,
}

/// Filter response normalisation's parameters, each `[c]` (in [`Params`]).
#[derive(Clone, Copy, Debug)]
pub struct Frn {
    /// γ (starts at 1).
    pub gamma: ParamId,
    /// β (starts at 0).
    pub beta: ParamId,
    /// The threshold τ (starts at 0).
    pub tau: ParamId,
}

/// A built layer.
#[derive(Clone, Debug)]
pub enum Layer {
    /// Convolution, optional batch norm, activation.
    Conv(Conv2d, Option<BatchNorm>, Activation),
    /// Filter response normalisation of the convolution before it (built with the identity as
    /// its activation), then the activation.
    Frn(Frn, Activation),
    /// Max pooling (window = stride).
    MaxPool(usize),
    /// Average pooling (window = stride).
    AvgPool(usize),
    /// Global mean pooling.
    GlobalMean,
    /// Flatten.
    Flatten,
    /// Dropout.
    Dropout(f64),
    /// Dense and activation.
    Dense(Linear, Activation),
}

/// Batch normalisation's running mean and variance per layer — model state that is not
/// trained by gradients, saved and exported with the parameters.
#[derive(Clone, Debug, Default)]
pub struct CnnState {
    /// `(mean [c], var [c])` per batch-norm layer.
    pub running: Vec<(Tensor, Tensor)>,
}

impl CnnState {
    /// The statistics on `device`.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: crate::backend::Device) -> Result<CnnState> {
        Ok(CnnState {
            running: self
                .running
                .iter()
                .map(|(m, v)| Ok((m.to_device(device)?, v.to_device(device)?)))
                .collect::<Result<_>>()?,
        })
    }
}

/// Training or evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-statistics updates), dropout drawn from this seed.
    Train {
        /// Seed of this forward pass's dropout masks.
        seed: u64,
    },
    /// Running statistics, no dropout.
    Eval,
}

/// A convolutional network.
#[derive(Clone, Debug)]
pub struct Cnn {
    /// `[channels, height, width]` of an input image.
    pub input: [usize; 3],
    /// The layers in order.
    pub layers: Vec<Layer>,
    /// The spec it was built from (with the output layer).
    pub spec: Vec<LayerSpec>,
}

impl Cnn {
    /// Builds the network of `spec` followed by a dense output layer of width `outputs` (no
    /// activation), for `input` images, inserting parameters into `params` under `prefix` and
    /// running statistics into the returned state. Weights and biases are drawn like
    /// PyTorch's defaults (U(±1/√fan_in)); batch norm starts at γ = 1, β = 0, mean 0, var 1.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a spec that does not fit the image (a pooling window or
    /// kernel larger than what reaches it, an empty spec output).
    pub fn new(
        params: &mut Params,
        prefix: &str,
        input: [usize; 3],
        spec: &[LayerSpec],
        outputs: usize,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<(Cnn, CnnState)> {
        if input.contains(&0) || outputs == 0 {
            return Err(Error::invalid(
                "image shape",
                format!("{input:?} → {outputs}"),
                "sizes must be positive",
            ));
        }
        let mut spec = spec.to_vec();
        spec.push(LayerSpec::Dense {
            out: outputs,
            activation: Activation::Identity,
        });
        let mut state = CnnState::default();
        let mut layers = Vec::with_capacity(spec.len());
        // The shape reaching each layer: [c, h, w] or, once flat, [features, 1, 1] with `flat`.
        let [mut c, mut h, mut w] = input;
        let mut flat = false;
        for (i, l) in spec.iter().enumerate() {
            let name = format!("{prefix}layer{i}");
            let need_image = |what: &str| {
                if flat {
                    Err(Error::invalid(
                        "cnn layer",
                        format!("{l:?}"),
                        format!("a {what} after the network was flattened"),
                    ))
                } else {
                    Ok(())
                }
            };
            let layer = match *l {
                LayerSpec::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                    norm,
                    activation,
                } => {
                    need_image("convolution")?;
                    let fan_in = c * kernel * kernel;
                    let wt = init::weight(Init::PyTorchDefault, out, fan_in, dtype, rng)?
                        .reshape(&[out, c, kernel, kernel])?;
                    let b = init::bias(out, fan_in, dtype, rng)?;
                    let opts = Conv2dOpts {
                        stride: [stride; 2],
                        padding: [padding; 2],
                        ..Conv2dOpts::default()
                    };
                    let (span, padded) = (kernel, h.min(w) + 2 * padding);
                    if span > padded {
                        return Err(Error::invalid(
                            "cnn layer",
                            format!("{l:?}"),
                            format!("a {kernel}×{kernel} kernel on a {h}×{w} image"),
                        ));
                    }
                    let conv = Conv2d {
                        weight: params.insert(format!("{name}.weight"), wt)?,
                        bias: params.insert(format!("{name}.bias"), b)?,
                        inp: c,
                        out,
                        kernel,
                        opts,
                    };
                    let bn = if norm == Norm::Batch {
                        let gamma = params.insert(
                            format!("{name}.bn.weight"),
                            Tensor::full(1.0, &[out], dtype)?,
                        )?;
                        let beta = params
                            .insert(format!("{name}.bn.bias"), Tensor::zeros(&[out], dtype)?)?;
                        state.running.push((
                            Tensor::zeros(&[out], dtype)?,
                            Tensor::full(1.0, &[out], dtype)?,
                        ));
                        Some(BatchNorm {
                            gamma,
                            beta,
                            state: state.running.len() - 1,
                        })
                    } else {
                        None
                    };
                    h = (h + 2 * padding - kernel) / stride + 1;
                    w = (w + 2 * padding - kernel) / stride + 1;
                    c = out;
                    if norm == Norm::Frn {
                        let mut frn_param = |role: &str, v: f64| {
                            params.insert(
                                format!("{name}.frn.{role}"),
                                Tensor::full(v, &[out], dtype)?,
                            )
                        };
                        let frn = Frn {
                            gamma: frn_param("gamma", 1.0)?,
                            beta: frn_param("beta", 0.0)?,
                            tau: frn_param("tau", 0.0)?,
                        };
                        layers.push(Layer::Conv(conv, None, Activation::Identity));
                        Layer::Frn(frn, activation)
                    } else {
                        Layer::Conv(conv, bn, activation)
                    }
                }
                LayerSpec::MaxPool(k) | LayerSpec::AvgPool(k) => {
                    need_image("pooling")?;
                    if k > h || k > w {
                        return Err(Error::invalid(
                            "cnn layer",
                            format!("{l:?}"),
                            format!("a {k}×{k} pooling window on a {h}×{w} image"),
                        ));
                    }
                    h = (h - k) / k + 1;
                    w = (w - k) / k + 1;
                    if matches!(l, LayerSpec::MaxPool(_)) {
                        Layer::MaxPool(k)
                    } else {
                        Layer::AvgPool(k)
                    }
                }
                LayerSpec::GlobalMean => {
                    need_image("global mean")?;
                    (h, w, flat) = (1, 1, true);
                    Layer::GlobalMean
                }
                LayerSpec::Flatten => {
                    if !flat {
                        (c, h, w, flat) = (c * h * w, 1, 1, true);
                    }
                    Layer::Flatten
                }
                LayerSpec::Dropout(p) => Layer::Dropout(p),
                LayerSpec::Dense { out, activation } => {
                    if !flat {
                        layers.push(Layer::Flatten);
                        (c, h, w, flat) = (c * h * w, 1, 1, true);
                    }
                    let lin = Linear::new(params, &name, c, out, Init::PyTorchDefault, dtype, rng)?;
                    c = out;
                    Layer::Dense(lin, activation)
                }
            };
            layers.push(layer);
        }
        debug_assert!(flat && h == 1 && w == 1 && c == outputs);
        Ok((
            Cnn {
                input,
                layers,
                spec,
            },
            state,
        ))
    }

    /// The network's output `[n, outputs]` for images `[n, c, h, w]`. In training mode batch
    /// norm uses the batch's statistics and updates `state`'s running ones (momentum 0.1,
    /// unbiased variance, as PyTorch); in evaluation mode it uses the running ones.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for images of another shape; engine errors.
    pub fn forward(
        &self,
        params: &Params,
        state: &mut CnnState,
        x: &Tensor,
        mode: Mode,
    ) -> Result<Tensor> {
        let [c, h, w] = self.input;
        let n = x.dims().first().copied().unwrap_or(0);
        if x.dims() != [n, c, h, w] {
            return Err(Error::invalid(
                "images",
                x.shape(),
                format!("the network takes [batch, {c}, {h}, {w}]"),
            ));
        }
        let mut y = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            y = match layer {
                Layer::Conv(conv, bn, act) => {
                    let z = y.conv2d(
                        params.get(conv.weight),
                        Some(params.get(conv.bias)),
                        conv.opts,
                    )?;
                    let z = match (bn, mode) {
                        (None, _) => z,
                        (Some(b), Mode::Train { .. }) => {
                            let (z, mean, var) = z.batch_norm_train(
                                params.get(b.gamma),
                                params.get(b.beta),
                                BN_EPS,
                            )?;
                            let (rm, rv) = &mut state.running[b.state];
                            let blend = |r: &Tensor, s: &Tensor| -> Result<Tensor> {
                                r.mul_scalar(1.0 - BN_MOMENTUM)?
                                    .add(&s.mul_scalar(BN_MOMENTUM)?)
                                    .map(|t| t.detach())
                            };
                            *rm = blend(rm, &mean)?;
                            *rv = blend(rv, &var)?;
                            z
                        }
                        (Some(b), Mode::Eval) => {
                            let (rm, rv) = &state.running[b.state];
                            z.batch_norm_eval(
                                params.get(b.gamma),
                                params.get(b.beta),
                                rm,
                                rv,
                                BN_EPS,
                            )?
                        }
                    };
                    act.apply(&z)?
                }
                Layer::Frn(f, act) => act.apply(&y.filter_response_norm(
                    params.get(f.gamma),
                    params.get(f.beta),
                    params.get(f.tau),
                    FRN_EPS,
                )?)?,
                Layer::MaxPool(k) => y.max_pool2d([*k; 2], [*k; 2], [0, 0])?,
                Layer::AvgPool(k) => y.avg_pool2d([*k; 2], [*k; 2], [0, 0])?,
                Layer::GlobalMean => y.global_mean_pool()?,
                Layer::Flatten => {
                    if y.rank() > 2 {
                        y.flatten()?
                    } else {
                        y
                    }
                }
                Layer::Dropout(p) => match mode {
                    Mode::Train { seed } => {
                        y.dropout(*p, seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9)))?
                    }
                    Mode::Eval => y,
                },
                Layer::Dense(lin, act) => lin.forward_with(params, &y, *act)?,
            };
        }
        Ok(y)
    }
}
