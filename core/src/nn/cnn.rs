//! A convolutional network evaluated in place from a safetensors file (`keel.kind = "cnn"`):
//! convolutions (batch normalisation folded in by the exporter), max and average pooling, a
//! global mean, flatten and a dense head, in `f32` on the controller or `f64` for checks.
//!
//! # The file
//! The host's exporter (`keel::export::cnn_bytes`) writes, beside the configuration
//! ([`CnnConfig`], metadata `keel.config`, with `keel.kind = "cnn"`):
//! - `layer{i}.weight`, `layer{i}.bias` for every `conv` (`[O, C/g, kh, kw]`, `[O]`) and `dense`
//!   (`[out, in]`, `[out]`) layer `i` (its index in the configuration's `layers`, counting every
//!   layer), `F32` little-endian (`F64` is read too), row-major as PyTorch stores them;
//! - `input.mean`, `input.std` (`[1]` each) when `input_normalization` is on: every pixel `x` is
//!   replaced by `(x − mean) / std` before the first layer;
//! - `augerino.widths` (`[6]`) when the configuration has `augerino`: the learned widths θ of
//!   the uniform distributions over the six affine generators, in the order translation x,
//!   translation y, rotation, scale, stretch, shear ([`super::augerino`]).
//!
//! Nothing else: batch normalisation is folded into the preceding convolution
//! (`w' = w·γ/√(σ² + ε)`, `b' = (b − μ)·γ/√(σ² + ε) + β` per output channel) when the host
//! exports, so the controller never sees it.
//!
//! # Evaluation
//! Activations are `[C, H, W]`, channel-major (NCHW without the batch), in two halves of the
//! caller's scratch that every layer reads from and writes to in turn; `flatten` only relabels
//! the shape. [`Cnn::scratch_len`] is twice the largest activation (the input included).
//!
//! The convolution is direct — no im2col copy, which would need `C·kh·kw` times the output in
//! RAM. For each output channel the plane is set to the bias; then for each kernel tap
//! `(ky, kx)` the output rows and columns where the tap falls inside the input are computed
//! once (no bounds test per pixel, no padding copy), and for each input channel of the group
//! one weight is decoded from flash and added, times the input, to every output pixel the tap
//! reaches: the innermost loop is a multiply-add over a row — `y[ox] += w·x[ix]` with `ix`
//! stepping by the stride — with the weight in a register. On a Cortex-M4F (no data cache;
//! flash wait states) each weight is read once per forward pass. Measured under QEMU
//! (`firmware/measure_cnn.sh`, instructions, not cycles): the 8×8 digits CNN of
//! `firmware/src/bin/cnn_bench.rs` (conv 3×3 1→8, max pool, conv 3×3 8→16, global mean,
//! dense 16→10: 23 k multiply-adds) takes 513 k instructions per forward pass — on images this
//! small the per-tap and per-row bookkeeping, not the multiply-adds, dominates (putting the tap
//! loops outside the channel loop took it from 714 k).
//! The activation runs over each finished plane.
//!
//! NaN or infinite weights or pixels propagate (max pooling propagates NaN as PyTorch does);
//! they are not reported.
//!
//! What this is *not*: a general graph runtime (no residual connections, no transposed
//! convolutions, no batch dimension), or training (the host does that).

mod config;

pub use config::{CnnConfig, CnnLayer, Conv2d, Pool2d};

use super::mlp::is_layer_tensor;
use super::weights::Floats;
use super::Output;
use crate::io::{JsonStr, SafeTensors, TensorView};
use crate::{Error, Real, Result};

/// One layer's weights and shapes, resolved when the file is loaded.
#[derive(Clone, Copy, Debug)]
struct Stage<'a> {
    weight: Floats<'a>,
    bias: Floats<'a>,
    input: [usize; 3],
    output: [usize; 3],
}

impl Stage<'_> {
    const EMPTY: Stage<'static> = Stage {
        weight: Floats::EMPTY,
        bias: Floats::EMPTY,
        input: [0; 3],
        output: [0; 3],
    };
}

/// A CNN read from a safetensors file written by the host's exporter (`keel.kind = "cnn"`),
/// with at most `L` layers, evaluated without allocating.
///
/// The weights stay in the file's bytes (flash, on the controller) and are decoded as they are
/// used, in the scalar type of the call. Every evaluation takes a caller-provided scratch slice
/// of [`scratch_len`](Cnn::scratch_len) scalars.
///
/// Size: 80 bytes per layer slot on a 64-bit host, 40 on a 32-bit controller (the configuration
/// and the resolved stage), plus ~100 bytes; nothing recurses and the forward pass keeps only
/// loop counters on the stack.
#[derive(Clone, Copy, Debug)]
pub struct Cnn<'a, const L: usize> {
    config: CnnConfig<L>,
    stages: [Stage<'a>; L],
    normalization: Option<(f64, f64)>,
    widths: Option<[f64; 6]>,
    /// The largest activation, the input included.
    width: usize,
}

fn layer_error(layer: usize, what: &'static str) -> Error {
    Error::InvalidLayer { layer, what }
}

/// What another `keel.kind` is, for the error that refuses it.
fn not_a_cnn(kind: JsonStr<'_>) -> Error {
    const KINDS: [(&str, &str); 12] = [
        (
            "mlp",
            "`keel.kind` is `mlp` (a multilayer perceptron), not `cnn`",
        ),
        (
            "emlp",
            "`keel.kind` is `emlp` (an equivariant MLP), not `cnn`",
        ),
        (
            "bma",
            "`keel.kind` is `bma` (a model average of MLPs), not `cnn`",
        ),
        (
            "chnn",
            "`keel.kind` is `chnn` (a learned Hamiltonian), not `cnn`",
        ),
        (
            "clnn",
            "`keel.kind` is `clnn` (a learned Lagrangian), not `cnn`",
        ),
        (
            "policy",
            "`keel.kind` is `policy` (an SAC policy), not `cnn`",
        ),
        (
            "rl-value",
            "`keel.kind` is `rl-value` (a value model), not `cnn`",
        ),
        (
            "samples",
            "`keel.kind` is `samples` (data, not a model), not `cnn`",
        ),
        (
            "bayes-samples",
            "`keel.kind` is `bayes-samples` (posterior samples), not `cnn`",
        ),
        (
            "bayes-hmc-checkpoint",
            "`keel.kind` is `bayes-hmc-checkpoint`, not `cnn`",
        ),
        ("rl-checkpoint", "`keel.kind` is `rl-checkpoint`, not `cnn`"),
        (
            "checkpoint",
            "`keel.kind` is `checkpoint` (a training checkpoint), not `cnn`",
        ),
    ];
    let what = KINDS.iter().find(|(name, _)| kind == *name).map_or(
        "`keel.kind` is not `cnn` (nor another kind Keel writes)",
        |k| k.1,
    );
    Error::InvalidConfig { what }
}

/// `C·H·W`, if it fits.
fn numel(shape: [usize; 3]) -> Option<usize> {
    shape[0].checked_mul(shape[1])?.checked_mul(shape[2])
}

/// How many windows of `k` taps spaced `d` apart fit, `s` apart, in `n` values padded by `p` on
/// each side: `⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1`.
fn window_count(n: usize, k: usize, s: usize, p: usize, d: usize, i: usize) -> Result<usize> {
    let overflow = layer_error(i, "sizes overflow");
    let padded = p
        .checked_mul(2)
        .and_then(|pp| n.checked_add(pp))
        .ok_or(overflow)?;
    // The forward pass computes positions up to `padded + s`: that must fit too.
    padded.checked_add(s).ok_or(overflow)?;
    let span = k
        .checked_sub(1)
        .and_then(|k1| k1.checked_mul(d))
        .and_then(|x| x.checked_add(1))
        .ok_or(overflow)?;
    if span > padded {
        return Err(layer_error(
            i,
            "the kernel (with its dilation) is larger than the padded input",
        ));
    }
    Ok((padded - span) / s + 1)
}

/// The shape a layer makes of `[c, h, w]`.
fn output_shape(layer: &CnnLayer, [c, h, w]: [usize; 3], i: usize) -> Result<[usize; 3]> {
    Ok(match *layer {
        CnnLayer::Conv(cv) => {
            if c % cv.groups != 0 {
                return Err(layer_error(
                    i,
                    "input channels are not a multiple of `groups`",
                ));
            }
            [
                cv.out_channels,
                window_count(
                    h,
                    cv.kernel[0],
                    cv.stride[0],
                    cv.padding[0],
                    cv.dilation[0],
                    i,
                )?,
                window_count(
                    w,
                    cv.kernel[1],
                    cv.stride[1],
                    cv.padding[1],
                    cv.dilation[1],
                    i,
                )?,
            ]
        }
        CnnLayer::MaxPool(p) | CnnLayer::AvgPool(p) => [
            c,
            window_count(h, p.kernel[0], p.stride[0], p.padding[0], 1, i)?,
            window_count(w, p.kernel[1], p.stride[1], p.padding[1], 1, i)?,
        ],
        CnnLayer::GlobalMean => [c, 1, 1],
        CnnLayer::Flatten => [
            numel([c, h, w]).ok_or(layer_error(i, "sizes overflow"))?,
            1,
            1,
        ],
        CnnLayer::Dense { outputs, .. } => {
            if h != 1 || w != 1 {
                return Err(layer_error(
                    i,
                    "`dense` needs a flat input (`flatten` or `global_mean` before it)",
                ));
            }
            [outputs, 1, 1]
        }
    })
}

/// A `[1]` float tensor's value.
fn scalar<const MAX: usize>(st: &SafeTensors<'_, MAX>, name: &'static str) -> Result<f64> {
    let view = super::named_tensor(st, "", name)?;
    if view.shape() != [1] {
        return Err(Error::TensorShape {
            role: name,
            layer: None,
        });
    }
    Floats::new(&view)?
        .iter::<f64>()
        .next()
        .ok_or(Error::TensorShape {
            role: name,
            layer: None,
        })
}

impl<'a, const L: usize> Cnn<'a, L> {
    /// Builds the model described by a file's metadata from its tensors (borrowed, not copied),
    /// checking every layer against the shape that reaches it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `keel.kind` is not `"cnn"` (the message says what kind the
    /// file is, for the kinds Keel writes), `keel.config` is missing or invalid
    /// ([`CnnConfig::parse`]), the normalisation's `std` is not finite and positive (or its mean
    /// not finite), an Augerino width is negative or not finite, `augerino.widths` is present
    /// without `augerino` in the configuration, or the file has `layer{i}` tensors past the
    /// last layer; [`Error::InvalidLayer`] (naming the layer) if a layer does not fit its input
    /// — a kernel larger than the padded input, input channels not a multiple of `groups`, a
    /// `dense` on an unflattened input, sizes that overflow — or a layer without weights has
    /// weight tensors; [`Error::CapacityExceeded`] for more than `L` layers;
    /// [`Error::TensorNotFound`], [`Error::TensorShape`] (with the layer) or
    /// [`Error::UnsupportedDtype`] for a missing, misshapen or non-float tensor.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        match st.metadata("keel.kind") {
            None => {
                return Err(Error::InvalidConfig {
                    what: "no `keel.kind` metadata: not a Keel model",
                })
            }
            Some(k) if k == "cnn" => {}
            Some(k) => return Err(not_a_cnn(k)),
        }
        let config = st.metadata("keel.config").ok_or(Error::InvalidConfig {
            what: "no `keel.config` metadata",
        })?;
        let config = CnnConfig::<L>::parse(config)?;

        let mut stages = [Stage::EMPTY; L];
        let mut shape = config.input();
        let mut width = numel(shape).ok_or(Error::InvalidConfig {
            what: "the input's size overflows",
        })?;
        for (i, (layer, slot)) in config.layers().iter().zip(stages.iter_mut()).enumerate() {
            let output = output_shape(layer, shape, i)?;
            width = width.max(numel(output).ok_or(layer_error(i, "sizes overflow"))?);
            let find = |role: &'static str| st.find(|name| is_layer_tensor(name, "", i, role));
            let (weight, bias) = match *layer {
                CnnLayer::Conv(cv) => {
                    let per_group = shape[0] / cv.groups;
                    let [kh, kw] = cv.kernel;
                    let (w, b) = weight_and_bias(find("weight"), find("bias"), i)?;
                    check_shapes(&w, &b, &[cv.out_channels, per_group, kh, kw], i)?
                }
                CnnLayer::Dense { outputs, .. } => {
                    let (w, b) = weight_and_bias(find("weight"), find("bias"), i)?;
                    check_shapes(&w, &b, &[outputs, shape[0]], i)?
                }
                _ => {
                    if find("weight").is_some() || find("bias").is_some() {
                        return Err(layer_error(
                            i,
                            "a layer without weights has `weight` or `bias` tensors",
                        ));
                    }
                    (Floats::EMPTY, Floats::EMPTY)
                }
            };
            *slot = Stage {
                weight,
                bias,
                input: shape,
                output,
            };
            shape = output;
        }
        width.checked_mul(2).ok_or(Error::InvalidConfig {
            what: "the scratch the model needs overflows",
        })?;
        let depth = config.layers().len();
        if st
            .find(|name| {
                is_layer_tensor(name, "", depth, "weight")
                    || is_layer_tensor(name, "", depth, "bias")
            })
            .is_some()
        {
            return Err(Error::InvalidConfig {
                what: "the file has more layers than `layers` describes",
            });
        }

        let normalization = if config.input_normalization() {
            let mean = scalar(st, "input.mean")?;
            let std = scalar(st, "input.std")?;
            if !mean.is_finite() {
                return Err(Error::InvalidConfig {
                    what: "`input.mean` must be finite",
                });
            }
            if !(std.is_finite() && std > 0.0) {
                return Err(Error::InvalidConfig {
                    what: "`input.std` must be finite and positive",
                });
            }
            Some((mean, std))
        } else {
            None
        };

        let widths = match config.augerino_copies() {
            Some(_) => {
                let view = super::named_tensor(st, "", "augerino.widths")?;
                if view.shape() != [6] {
                    return Err(Error::TensorShape {
                        role: "augerino.widths",
                        layer: None,
                    });
                }
                let mut widths = [0.0f64; 6];
                for (w, v) in widths.iter_mut().zip(Floats::new(&view)?.iter::<f64>()) {
                    *w = v;
                }
                if !widths.iter().all(|w| w.is_finite() && *w >= 0.0) {
                    return Err(Error::InvalidConfig {
                        what: "Augerino widths must be finite and non-negative",
                    });
                }
                Some(widths)
            }
            None => {
                if super::named_tensor(st, "", "augerino.widths").is_ok() {
                    return Err(Error::InvalidConfig {
                        what: "`augerino.widths` present but the configuration has no `augerino`",
                    });
                }
                None
            }
        };

        Ok(Cnn {
            config,
            stages,
            normalization,
            widths,
            width,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CnnConfig<L> {
        &self.config
    }

    /// The input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.config.input()
    }

    /// Length of [`forward`](Cnn::forward)'s image: `C·H·W`.
    pub fn input_len(&self) -> usize {
        numel(self.config.input()).unwrap_or(0)
    }

    /// The shape each layer produces, first to last (`[C, H, W]`; flat layers `[n, 1, 1]`).
    pub fn layer_shapes(&self) -> impl Iterator<Item = [usize; 3]> + '_ {
        self.stages().iter().map(|s| s.output)
    }

    /// Width of [`forward`](Cnn::forward)'s output: the last layer's `C·H·W`.
    pub fn outputs(&self) -> usize {
        self.stages()
            .last()
            .and_then(|s| numel(s.output))
            .unwrap_or(0)
    }

    /// The input normalisation `(mean, std)`, if the file has one.
    pub fn normalization(&self) -> Option<(f64, f64)> {
        self.normalization
    }

    /// Augerino's learned widths θ (translation x, translation y, rotation, scale, stretch,
    /// shear), if the file holds an Augerino model.
    pub fn augerino_widths(&self) -> Option<[f64; 6]> {
        self.widths
    }

    /// Scratch scalars [`forward`](Cnn::forward) and [`predict_class`](Cnn::predict_class)
    /// need: twice the largest activation (the input included).
    pub fn scratch_len(&self) -> usize {
        self.width.saturating_mul(2)
    }

    fn stages(&self) -> &[Stage<'a>] {
        self.stages.get(..self.config.layers().len()).unwrap_or(&[])
    }

    /// Evaluates the network on one image (`[C, H, W]`, channel-major): `out` receives the last
    /// layer's output (logits, or the regression outputs).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `image.len() == input_len()` and
    /// `out.len() == outputs()`; [`Error::ScratchTooSmall`] if `scratch.len() < scratch_len()`.
    pub fn forward<T: Real>(&self, image: &[T], out: &mut [T], scratch: &mut [T]) -> Result<()> {
        if out.len() != self.outputs() {
            return Err(Error::ShapeMismatch {
                what: "output",
                expected: self.outputs(),
                got: out.len(),
            });
        }
        let y = self.run(image, scratch)?;
        for (o, &v) in out.iter_mut().zip(y) {
            *o = v;
        }
        Ok(())
    }

    /// The class with the largest logit (the first one on ties).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless the output is [`Output::Logits`]; as
    /// [`forward`](Cnn::forward) for the shapes; [`Error::NonFinite`] (with `t = 0`) if a logit
    /// is NaN.
    pub fn predict_class<T: Real>(&self, image: &[T], scratch: &mut [T]) -> Result<usize> {
        if self.config.output() != Output::Logits {
            return Err(Error::InvalidConfig {
                what: "`predict_class` needs a `logits` output",
            });
        }
        argmax(self.run(image, scratch)?)
    }

    /// Runs every layer; returns the last layer's output, inside `scratch`.
    pub(crate) fn run<'s, T: Real>(&self, image: &[T], scratch: &'s mut [T]) -> Result<&'s [T]> {
        let n_in = self.input_len();
        if image.len() != n_in {
            return Err(Error::ShapeMismatch {
                what: "image",
                expected: n_in,
                got: image.len(),
            });
        }
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len(),
            got: scratch.len(),
        };
        let (mut a, rest) = scratch.split_at_mut_checked(self.width).ok_or(too_small)?;
        let mut b = rest.get_mut(..self.width).ok_or(too_small)?;
        let x0 = a.get_mut(..n_in).ok_or(too_small)?;
        match self.normalization {
            Some((mean, std)) => {
                let (mean, std) = (T::from_f64(mean), T::from_f64(std));
                for (d, &x) in x0.iter_mut().zip(image) {
                    *d = (x - mean) / std;
                }
            }
            None => x0.copy_from_slice(image),
        }
        for (layer, stage) in self.config.layers().iter().zip(self.stages()) {
            let x = a.get(..numel(stage.input).unwrap_or(0)).ok_or(too_small)?;
            let y = b
                .get_mut(..numel(stage.output).unwrap_or(0))
                .ok_or(too_small)?;
            match *layer {
                CnnLayer::Flatten => continue,
                CnnLayer::Conv(cv) => conv2d(&cv, stage, x, y),
                CnnLayer::MaxPool(p) => pool2d::<T, true>(&p, stage, x, y),
                CnnLayer::AvgPool(p) => pool2d::<T, false>(&p, stage, x, y),
                CnnLayer::GlobalMean => global_mean(stage, x, y),
                CnnLayer::Dense { activation, .. } => {
                    for ((yj, row), bj) in y
                        .iter_mut()
                        .zip(stage.weight.rows(x.len()))
                        .zip(stage.bias.iter::<T>())
                    {
                        *yj = activation.apply(row.dot(x) + bj);
                    }
                }
            }
            core::mem::swap(&mut a, &mut b);
        }
        let a: &'s [T] = a;
        a.get(..self.outputs()).ok_or(too_small)
    }
}

/// The index of the largest value (the first on ties).
///
/// # Errors
/// [`Error::NonFinite`] (with `t = 0`) at the first NaN.
pub(crate) fn argmax<T: Real>(values: &[T]) -> Result<usize> {
    let mut best: Option<(usize, T)> = None;
    for (index, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return Err(Error::NonFinite { index, t: 0.0 });
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((index, v)),
        }
    }
    Ok(best.map_or(0, |(i, _)| i))
}

/// A parametric layer's two tensors, or which is missing.
fn weight_and_bias<'a>(
    weight: Option<TensorView<'a>>,
    bias: Option<TensorView<'a>>,
    i: usize,
) -> Result<(TensorView<'a>, TensorView<'a>)> {
    let missing = |role| Error::TensorNotFound {
        role,
        layer: Some(i),
    };
    Ok((
        weight.ok_or(missing("weight"))?,
        bias.ok_or(missing("bias"))?,
    ))
}

/// The weight's shape is `expected`, the bias's `[expected[0]]`; both float.
fn check_shapes<'a>(
    weight: &TensorView<'a>,
    bias: &TensorView<'a>,
    expected: &[usize],
    i: usize,
) -> Result<(Floats<'a>, Floats<'a>)> {
    let wrong = |role| Error::TensorShape {
        role,
        layer: Some(i),
    };
    if weight.shape() != expected {
        return Err(wrong("weight"));
    }
    if bias.shape() != expected.get(..1).unwrap_or(&[]) {
        return Err(wrong("bias"));
    }
    Ok((Floats::new(weight)?, Floats::new(bias)?))
}

/// Output positions `o` in `0..n_out` whose input position `o·s + off − p` lies in `0..n_in`,
/// as a half-open range `lo..hi` (empty as `lo == hi`). `off = tap·dilation`.
#[inline]
fn inside(n_out: usize, s: usize, off: usize, p: usize, n_in: usize) -> (usize, usize) {
    // o·s + off ≥ p
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    // o·s + off < n_in + p
    let end = n_in + p;
    let hi = if off >= end {
        0
    } else {
        (end - off).div_ceil(s)
    };
    let lo = lo.min(n_out);
    (lo, hi.min(n_out).max(lo))
}

/// The direct convolution, in the weights' storage order (see the module doc).
fn conv2d<T: Real>(cv: &Conv2d, stage: &Stage<'_>, x: &[T], y: &mut [T]) {
    let [c_in, h, w] = stage.input;
    let [c_out, oh, ow] = stage.output;
    let per_group = c_in / cv.groups;
    let outs_per_group = c_out / cv.groups;
    let [kh, kw] = cv.kernel;
    let [sh, sw] = cv.stride;
    let [ph, pw] = cv.padding;
    let [dh, dw] = cv.dilation;
    let plane_in = h * w;
    let group_in = per_group * plane_in;
    let taps = kh * kw;
    for ((oc, plane), bias) in y
        .chunks_exact_mut((oh * ow).max(1))
        .enumerate()
        .zip(stage.bias.iter::<T>())
    {
        plane.fill(bias);
        let g = oc / outs_per_group;
        let xg = x.get(g * group_in..).unwrap_or(&[]);
        for ky in 0..kh {
            let (y_lo, y_hi) = inside(oh, sh, ky * dh, ph, h);
            if y_lo == y_hi {
                continue;
            }
            // Row of the first output row's tap (≥ 0 by `inside`).
            let iy0 = y_lo * sh + ky * dh - ph;
            for kx in 0..kw {
                let (x_lo, x_hi) = inside(ow, sw, kx * dw, pw, w);
                if x_lo == x_hi {
                    continue;
                }
                // Column of the first output pixel's tap (≥ 0 by `inside`).
                let ix0 = x_lo * sw + kx * dw - pw;
                // Weight `[oc, ci, ky, kx]`: `first + ci·taps`.
                let first = (oc * per_group * kh + ky) * kw + kx;
                for (ci, xc) in xg.chunks_exact(plane_in.max(1)).take(per_group).enumerate() {
                    let wv: T = stage.weight.get(first + ci * taps);
                    let rows_in = xc.chunks_exact(w.max(1)).skip(iy0).step_by(sh);
                    let rows_out = plane.chunks_exact_mut(ow.max(1)).skip(y_lo);
                    for (xrow, yrow) in rows_in.zip(rows_out).take(y_hi - y_lo) {
                        let (Some(xs), Some(ys)) = (xrow.get(ix0..), yrow.get_mut(x_lo..x_hi))
                        else {
                            continue;
                        };
                        if sw == 1 {
                            for (yv, &xv) in ys.iter_mut().zip(xs) {
                                *yv += wv * xv;
                            }
                        } else {
                            for (yv, &xv) in ys.iter_mut().zip(xs.iter().step_by(sw)) {
                                *yv += wv * xv;
                            }
                        }
                    }
                }
            }
        }
        if cv.activation != super::Activation::Identity {
            for v in plane.iter_mut() {
                *v = cv.activation.apply(*v);
            }
        }
    }
}

/// Input positions `start..end` covered by window `o` (`o·s − p` to `o·s − p + k`, clipped).
#[inline]
fn window(o: usize, s: usize, k: usize, p: usize, n: usize) -> (usize, usize) {
    let start = (o * s).max(p) - p;
    let end = (o * s + k).min(n + p).saturating_sub(p);
    (start, end.max(start))
}

/// Max (`MAX = true`) or average (counting the padding) pooling of every channel.
fn pool2d<T: Real, const MAX: bool>(pool: &Pool2d, stage: &Stage<'_>, x: &[T], y: &mut [T]) {
    let [_, h, w] = stage.input;
    let [_, oh, ow] = stage.output;
    let [kh, kw] = pool.kernel;
    let [sh, sw] = pool.stride;
    let [ph, pw] = pool.padding;
    let count = T::from_usize(kh * kw);
    for (xc, yc) in x
        .chunks_exact((h * w).max(1))
        .zip(y.chunks_exact_mut((oh * ow).max(1)))
    {
        for (oy, yrow) in yc.chunks_exact_mut(ow.max(1)).enumerate() {
            let (r0, r1) = window(oy, sh, kh, ph, h);
            for (ox, out) in yrow.iter_mut().enumerate() {
                let (c0, c1) = window(ox, sw, kw, pw, w);
                let mut acc = if MAX { T::neg_infinity() } else { T::ZERO };
                for iy in r0..r1 {
                    for &v in xc.get(iy * w + c0..iy * w + c1).unwrap_or(&[]) {
                        if MAX {
                            if v > acc || v.is_nan() {
                                acc = v;
                            }
                        } else {
                            acc += v;
                        }
                    }
                }
                *out = if MAX { acc } else { acc / count };
            }
        }
    }
}

/// Each channel's mean.
fn global_mean<T: Real>(stage: &Stage<'_>, x: &[T], y: &mut [T]) {
    let [_, h, w] = stage.input;
    let n = T::from_usize(h * w);
    for (xc, yc) in x.chunks_exact((h * w).max(1)).zip(y.iter_mut()) {
        let mut acc = T::ZERO;
        for &v in xc {
            acc += v;
        }
        *yc = acc / n;
    }
}

#[cfg(test)]
mod tests {
    use super::{inside, window};

    /// `inside` against a scan of every output position.
    #[test]
    fn inside_matches_a_scan() {
        for n_in in 1..7 {
            for s in 1..4 {
                for p in 0..4 {
                    for off in 0..9 {
                        let n_out = (n_in + 2 * p) / s + 2;
                        let (lo, hi) = inside(n_out, s, off, p, n_in);
                        assert!(lo <= hi && hi <= n_out);
                        for o in 0..n_out {
                            let pos = (o * s + off) as isize - p as isize;
                            let valid = pos >= 0 && pos < n_in as isize;
                            assert_eq!((lo..hi).contains(&o), valid, "{n_in} {s} {p} {off} {o}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn window_clips_to_the_input() {
        // kernel 3, padding 1, stride 2 over 5 values: windows [-1, 2), [1, 4), [3, 6) clipped.
        assert_eq!(window(0, 2, 3, 1, 5), (0, 2));
        assert_eq!(window(1, 2, 3, 1, 5), (1, 4));
        assert_eq!(window(2, 2, 3, 1, 5), (3, 5));
    }
}
