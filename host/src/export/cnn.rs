//! Convolutional networks exported for the controller (`keel.kind = "cnn"`), in the layout
//! `keel_core::nn::Cnn` reads (its module doc is the format's reference):
//!
//! - metadata `keel.config`: [`CnnConfig`] as JSON — `input` `[C, H, W]`, `input_normalization`,
//!   `output` (`logits`/`regression`), `layers` (objects with a `type`: `conv`, `maxpool`,
//!   `avgpool`, `global_mean`, `flatten`, `dense`), optional `augerino` `{"copies": J}` and
//!   `classes`;
//! - `layer{i}.weight` / `layer{i}.bias` (little-endian `F32`) for each `conv` (`[O, C/g, kh,
//!   kw]`) and `dense` (`[out, in]`) layer, `i` counting every layer;
//! - `input.mean`, `input.std` (`[1]`) with normalisation; `augerino.widths` (`[6]`, θ after the
//!   softplus) with Augerino.
//!
//! Batch normalisation does not exist in the file: fold it into the convolution before it with
//! [`fold_batch_norm`]. [`cnn_bytes`] checks the configuration and every tensor against the
//! shapes flowing through the network (errors name the layer), then reads the bytes back
//! through the core's loader — the code the controller runs — before returning them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{f32_bytes, safetensors_bytes, NamedTensor, OutputKind};
use crate::error::{Error, Result};
use crate::output::write_atomic;

/// The most layers a file may have (the capacity the export check loads with).
pub const MAX_LAYERS: usize = 64;

/// One layer of an exported CNN, as `keel.config` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CnnLayer {
    /// PyTorch's `Conv2d` (zero padding) then `activation`, batch norm folded in.
    Conv {
        /// Output channels.
        out: usize,
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[ph, pw]`.
        padding: [usize; 2],
        /// `[dh, dw]`.
        dilation: [usize; 2],
        /// Channel groups.
        groups: usize,
        /// Activation name (`relu`, `tanh`, `sigmoid`, `silu`, `softplus`, `identity`).
        activation: String,
    },
    /// `MaxPool2d` (`ceil_mode = False`, dilation 1).
    #[serde(rename = "maxpool")]
    MaxPool {
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[ph, pw]`, at most half the kernel.
        padding: [usize; 2],
    },
    /// `AvgPool2d` (`ceil_mode = False`, `count_include_pad = True`).
    #[serde(rename = "avgpool")]
    AvgPool {
        /// `[kh, kw]`.
        kernel: [usize; 2],
        /// `[sh, sw]`.
        stride: [usize; 2],
        /// `[ph, pw]`, at most half the kernel.
        padding: [usize; 2],
    },
    /// Each channel's mean: `[C, H, W] → [C, 1, 1]`.
    GlobalMean,
    /// `[C, H, W] → [C·H·W, 1, 1]`, channel-major.
    Flatten,
    /// `Linear` on a flat input, then `activation`.
    Dense {
        /// Output width.
        out: usize,
        /// Activation name.
        activation: String,
    },
}

impl CnnLayer {
    /// The configuration's `type` name.
    pub fn name(&self) -> &'static str {
        match self {
            CnnLayer::Conv { .. } => "conv",
            CnnLayer::MaxPool { .. } => "maxpool",
            CnnLayer::AvgPool { .. } => "avgpool",
            CnnLayer::GlobalMean => "global_mean",
            CnnLayer::Flatten => "flatten",
            CnnLayer::Dense { .. } => "dense",
        }
    }
}

/// A parametric layer's weight shape and bias length.
pub type WeightShape = (Vec<usize>, usize);

/// Augerino's part of an export.
#[derive(Clone, Debug, PartialEq)]
pub struct AugerinoExport {
    /// The learned widths θ = softplus(w): translation x, translation y, rotation, scale,
    /// stretch, shear.
    pub widths: [f64; 6],
    /// The default number of transforms `J` averaged at test time.
    pub copies: usize,
}

/// Everything about an exported CNN but its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct CnnConfig {
    /// `[C, H, W]`.
    pub input: [usize; 3],
    /// The layers in order.
    pub layers: Vec<CnnLayer>,
    /// `Logits` or `Regression`.
    pub output: OutputKind,
    /// `(mean, std)`: every pixel becomes `(x − mean)/std` first.
    pub normalization: Option<(f64, f64)>,
    /// The Augerino widths and copies, for an Augerino model.
    pub augerino: Option<AugerinoExport>,
    /// Class names in output order (recorded for tools; the core ignores them).
    pub classes: Option<Vec<String>>,
}

/// The JSON written under `keel.config` (the floats go to tensors).
#[derive(Serialize)]
struct ConfigJson<'a> {
    input: [usize; 3],
    input_normalization: bool,
    output: OutputKind,
    layers: &'a [CnnLayer],
    #[serde(skip_serializing_if = "Option::is_none")]
    augerino: Option<AugerinoJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    classes: Option<&'a [String]>,
}

#[derive(Serialize)]
struct AugerinoJson {
    copies: usize,
}

/// Windows of `k` taps `d` apart, `s` apart, over `n` values padded by `p` on each side.
fn windows(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let padded = n.checked_add(p.checked_mul(2)?)?;
    let span = k.checked_sub(1)?.checked_mul(d)?.checked_add(1)?;
    (span <= padded && s >= 1).then(|| (padded - span) / s + 1)
}

impl CnnConfig {
    fn layer_error(&self, i: usize, reason: impl Into<String>) -> Error {
        let name = self.layers.get(i).map_or("?", CnnLayer::name);
        Error::invalid("cnn export", format!("layer {i} ({name})"), reason)
    }

    /// The shape after each layer (`[C, H, W]`; flat layers `[n, 1, 1]`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first layer that is invalid or does not fit its
    /// input (a kernel larger than the padded input, channels not divisible by the groups, a
    /// zero size, pool padding over half the window, `dense` on an unflattened input, an
    /// unknown activation), or a zero input size.
    pub fn shapes(&self) -> Result<Vec<[usize; 3]>> {
        if self.input.contains(&0) {
            return Err(Error::invalid(
                "cnn export",
                format!("input {:?}", self.input),
                "every input size must be positive",
            ));
        }
        if self.layers.is_empty() {
            return Err(Error::invalid(
                "cnn export",
                "layers",
                "a CNN needs a layer",
            ));
        }
        let mut shape = self.input;
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let err = |reason: String| self.layer_error(i, reason);
            let [c, h, w] = shape;
            let positive = |what: &str, v: [usize; 2]| {
                if v.contains(&0) {
                    Err(err(format!("`{what}` {v:?} must be positive")))
                } else {
                    Ok(())
                }
            };
            let activation_ok = |a: &str| {
                keel_core::nn::Activation::from_name(a)
                    .map(|_| ())
                    .ok_or_else(|| err(format!("unknown activation `{a}`")))
            };
            shape = match layer {
                CnnLayer::Conv {
                    out: o,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    activation,
                } => {
                    positive("kernel", *kernel)?;
                    positive("stride", *stride)?;
                    positive("dilation", *dilation)?;
                    activation_ok(activation)?;
                    if *o == 0 || *groups == 0 {
                        return Err(err(format!(
                            "`out` {o} and `groups` {groups} must be positive"
                        )));
                    }
                    if c % groups != 0 || o % groups != 0 {
                        return Err(err(format!(
                            "{c} input and {o} output channels must both be multiples of {groups} groups"
                        )));
                    }
                    let too_big = || {
                        err(format!(
                            "the kernel {kernel:?} (dilation {dilation:?}) is larger than the \
                             input {h}×{w} padded by {padding:?}"
                        ))
                    };
                    [
                        *o,
                        windows(h, kernel[0], stride[0], padding[0], dilation[0])
                            .ok_or_else(too_big)?,
                        windows(w, kernel[1], stride[1], padding[1], dilation[1])
                            .ok_or_else(too_big)?,
                    ]
                }
                CnnLayer::MaxPool {
                    kernel,
                    stride,
                    padding,
                }
                | CnnLayer::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    positive("kernel", *kernel)?;
                    positive("stride", *stride)?;
                    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
                        return Err(err(format!(
                            "padding {padding:?} is more than half the window {kernel:?}"
                        )));
                    }
                    let too_big = || {
                        err(format!(
                            "the window {kernel:?} is larger than the input {h}×{w} padded by {padding:?}"
                        ))
                    };
                    [
                        c,
                        windows(h, kernel[0], stride[0], padding[0], 1).ok_or_else(too_big)?,
                        windows(w, kernel[1], stride[1], padding[1], 1).ok_or_else(too_big)?,
                    ]
                }
                CnnLayer::GlobalMean => [c, 1, 1],
                CnnLayer::Flatten => [
                    c.checked_mul(h)
                        .and_then(|ch| ch.checked_mul(w))
                        .ok_or_else(|| err("sizes overflow".into()))?,
                    1,
                    1,
                ],
                CnnLayer::Dense { out: o, activation } => {
                    activation_ok(activation)?;
                    if h != 1 || w != 1 {
                        return Err(err(format!(
                            "`dense` needs a flat input, got [{c}, {h}, {w}]: put `flatten` or \
                             `global_mean` before it"
                        )));
                    }
                    if *o == 0 {
                        return Err(err("`out` must be positive".into()));
                    }
                    [*o, 1, 1]
                }
            };
            out.push(shape);
        }
        Ok(out)
    }

    /// The `(weight shape, bias length)` each layer's tensors must have (`None` for layers
    /// without weights), in layer order.
    ///
    /// # Errors
    /// As [`shapes`](CnnConfig::shapes).
    pub fn weight_shapes(&self) -> Result<Vec<Option<WeightShape>>> {
        let shapes = self.shapes()?;
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let c = if i == 0 {
                    self.input[0]
                } else {
                    shapes[i - 1][0]
                };
                match layer {
                    CnnLayer::Conv {
                        out,
                        kernel,
                        groups,
                        ..
                    } => Some((vec![*out, c / groups, kernel[0], kernel[1]], *out)),
                    CnnLayer::Dense { out, .. } => Some((vec![*out, c], *out)),
                    _ => None,
                }
            })
            .collect())
    }
}

/// Values that must be finite and within `f32` (the file's precision).
fn check_values(what: &str, v: &[f64]) -> Result<()> {
    if let Some((k, x)) = v
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_finite() || (**x as f32).is_infinite())
    {
        return Err(Error::invalid(
            "cnn export",
            what,
            format!("value {k} is {x}, not a finite f32"),
        ));
    }
    Ok(())
}

/// Serialises a CNN — its configuration and its weights, `(name, shape, values)` with names
/// `layer{i}.weight` / `layer{i}.bias` — to safetensors bytes (`F32`).
///
/// # Errors
/// [`Error::InvalidInput`] for an invalid configuration ([`CnnConfig::shapes`]; a `gaussian`
/// output; a normalisation `std` that is not finite and positive; Augerino widths that are
/// negative or not finite, or zero copies), a missing tensor, a tensor whose shape or length is
/// not what its layer needs (both shapes named), a tensor no layer uses (batch-norm statistics
/// left unfolded, weights on a pooling layer), a value that is not a finite `f32`, or more than
/// [`MAX_LAYERS`] layers; [`Error::Malformed`] if the core's loader refuses the result (a bug).
pub fn cnn_bytes(
    config: &CnnConfig,
    weights: &[(String, Vec<usize>, Vec<f64>)],
) -> Result<Vec<u8>> {
    if config.layers.len() > MAX_LAYERS {
        return Err(Error::invalid(
            "cnn export",
            config.layers.len(),
            format!("at most {MAX_LAYERS} layers"),
        ));
    }
    if config.output == OutputKind::Gaussian {
        return Err(Error::invalid(
            "cnn export",
            "output",
            "a CNN's output is `logits` or `regression`",
        ));
    }
    let expected = config.weight_shapes()?;
    let mut by_name: BTreeMap<&str, (&Vec<usize>, &Vec<f64>)> = BTreeMap::new();
    for (name, shape, values) in weights {
        if by_name.insert(name, (shape, values)).is_some() {
            return Err(Error::invalid(
                "cnn export",
                name,
                "the tensor is given twice",
            ));
        }
    }
    let mut named: Vec<NamedTensor> = Vec::new();
    for (i, e) in expected.iter().enumerate() {
        let Some((weight_shape, bias_len)) = e else {
            continue;
        };
        for (role, want) in [("weight", weight_shape.clone()), ("bias", vec![*bias_len])] {
            let name = format!("layer{i}.{role}");
            let (shape, values) = by_name
                .remove(name.as_str())
                .ok_or_else(|| config.layer_error(i, format!("no `{name}` tensor")))?;
            if *shape != want {
                return Err(config.layer_error(
                    i,
                    format!("`{name}` has shape {shape:?}, the layer needs {want:?}"),
                ));
            }
            if values.len() != want.iter().product::<usize>() {
                return Err(config.layer_error(
                    i,
                    format!("`{name}` has {} values for shape {want:?}", values.len()),
                ));
            }
            check_values(&name, values)?;
            named.push((name, want, f32_bytes(values)));
        }
    }
    if let Some(name) = by_name.keys().next() {
        return Err(Error::invalid(
            "cnn export",
            name,
            "no layer uses this tensor (fold batch norm into the convolution first, with \
             `fold_batch_norm`; pooling and flatten layers have no weights)",
        ));
    }
    if let Some((mean, std)) = config.normalization {
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(Error::invalid(
                "cnn export",
                format!("normalization ({mean}, {std})"),
                "the mean must be finite and the std finite and positive",
            ));
        }
        named.push(("input.mean".into(), vec![1], f32_bytes(&[mean])));
        named.push(("input.std".into(), vec![1], f32_bytes(&[std])));
    }
    if let Some(a) = &config.augerino {
        if a.copies == 0 || !a.widths.iter().all(|w| w.is_finite() && *w >= 0.0) {
            return Err(Error::invalid(
                "cnn export",
                format!("augerino widths {:?}, copies {}", a.widths, a.copies),
                "widths must be finite and non-negative, copies at least 1",
            ));
        }
        named.push(("augerino.widths".into(), vec![6], f32_bytes(&a.widths)));
    }
    let json = ConfigJson {
        input: config.input,
        input_normalization: config.normalization.is_some(),
        output: config.output,
        layers: &config.layers,
        augerino: config
            .augerino
            .as_ref()
            .map(|a| AugerinoJson { copies: a.copies }),
        classes: config.classes.as_deref(),
    };
    let json = serde_json::to_string(&json)
        .map_err(|e| Error::invalid("cnn export", "config", e.to_string()))?;
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "cnn".to_string()),
        ("keel.config".to_string(), json),
    ]);
    let bytes = safetensors_bytes(&named, &meta);
    // The controller's loader is the judge of the format.
    let bad = Error::malformed(Path::new("<cnn export>"));
    let st =
        keel_core::io::SafeTensors::<'_, { 2 * MAX_LAYERS + 8 }>::parse(&bytes).map_err(&bad)?;
    keel_core::nn::Cnn::<'_, MAX_LAYERS>::from_safetensors(&st).map_err(&bad)?;
    Ok(bytes)
}

/// Writes a CNN to `path` atomically.
///
/// # Errors
/// As [`cnn_bytes`]; [`Error::Write`].
pub fn write_cnn(
    path: &Path,
    config: &CnnConfig,
    weights: &[(String, Vec<usize>, Vec<f64>)],
) -> Result<()> {
    write_atomic(path, &cnn_bytes(config, weights)?)
}

/// Folds an eval-mode batch normalisation that follows a convolution (or dense layer) into its
/// weight and bias: with `s = γ/√(σ² + ε)` per output channel,
/// `w' = s·w` (each output channel's block of `weight.len()/γ.len()` values) and
/// `b' = s·(b − μ) + β` (`b = 0` when the layer had no bias), so `layer'(x) = BN(layer(x))`
/// exactly in real arithmetic.
///
/// # Errors
/// [`Error::InvalidInput`] if `beta`, `running_mean`, `running_var` (and `bias`) do not have
/// `gamma.len()` values, `weight.len()` is not a positive multiple of it, or some
/// `running_var + eps` is not positive and finite.
pub fn fold_batch_norm(
    weight: &[f64],
    bias: Option<&[f64]>,
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    eps: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let o = gamma.len();
    for (what, len) in [
        ("beta", beta.len()),
        ("running_mean", running_mean.len()),
        ("running_var", running_var.len()),
        ("bias", bias.map_or(o, <[f64]>::len)),
    ] {
        if len != o {
            return Err(Error::invalid(
                "fold_batch_norm",
                what,
                format!("{len} values for {o} channels"),
            ));
        }
    }
    if o == 0 || weight.is_empty() || !weight.len().is_multiple_of(o) {
        return Err(Error::invalid(
            "fold_batch_norm",
            "weight",
            format!(
                "{} values are not a positive multiple of {o} channels",
                weight.len()
            ),
        ));
    }
    let per = weight.len() / o;
    let mut w = Vec::with_capacity(weight.len());
    let mut b = Vec::with_capacity(o);
    for k in 0..o {
        let var = running_var[k] + eps;
        if !(var.is_finite() && var > 0.0) {
            return Err(Error::invalid(
                "fold_batch_norm",
                format!("running_var[{k}] + eps = {var}"),
                "must be positive and finite",
            ));
        }
        let s = gamma[k] / var.sqrt();
        w.extend(weight[k * per..(k + 1) * per].iter().map(|x| x * s));
        let bk = bias.map_or(0.0, |b| b[k]);
        b.push(s * (bk - running_mean[k]) + beta[k]);
    }
    Ok((w, b))
}
