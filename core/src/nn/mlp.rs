//! A multilayer perceptron evaluated in place from a safetensors file.

mod parameters;

use super::activation::{sigmoid, softplus};
use super::config::{MlpConfig, Output};
use super::dense::Dense;
use super::weights::Floats;
use crate::io::{JsonStr, SafeTensors, TensorView};
use crate::{Error, Real, Result};

/// The floor added to Gaussian scales: `σ = softplus(raw) + SIGMA_FLOOR`.
pub const SIGMA_FLOOR: f64 = 1e-6;

/// An affine standardisation `(x − mean) / std` (inputs) or `z · std + mean` (targets).
#[derive(Clone, Copy, Debug)]
struct Standardization<'a> {
    mean: Floats<'a>,
    std: Floats<'a>,
}

impl<'a> Standardization<'a> {
    /// `{prefix}{mean_name}`/`{prefix}{std_name}` tensors of shape `[n]`; every std finite and
    /// positive, every mean finite.
    fn load<const MAX: usize>(
        st: &SafeTensors<'a, MAX>,
        prefix: &str,
        mean_name: &'static str,
        std_name: &'static str,
        n: usize,
    ) -> Result<Self> {
        let vector = |name: &'static str| -> Result<Floats<'a>> {
            let view = super::named_tensor(st, prefix, name)?;
            if view.shape() != [n] {
                return Err(Error::TensorShape {
                    role: name,
                    layer: None,
                });
            }
            Floats::new(&view)
        };
        let mean = vector(mean_name)?;
        let std = vector(std_name)?;
        if !mean.iter::<f64>().all(f64::is_finite) {
            return Err(Error::InvalidConfig {
                what: "standardisation means must be finite",
            });
        }
        if !std.iter::<f64>().all(|s| s.is_finite() && s > 0.0) {
            return Err(Error::InvalidConfig {
                what: "standardisation deviations must be finite and positive",
            });
        }
        Ok(Standardization { mean, std })
    }
}

/// A multilayer perceptron read from a safetensors file written by the host's exporter
/// (`keel.kind = "mlp"`), with at most `L` layers, evaluated without allocating.
///
/// The weights stay in the file's bytes (flash, on the controller) and are decoded as they are
/// used, in the scalar type of the call: `f32` on the controller, `f64` for checks. Every
/// evaluation takes a caller-provided scratch slice: [`forward_scratch_len`](Mlp::forward_scratch_len)
/// scalars for [`forward`](Mlp::forward) and [`predict_class`](Mlp::predict_class),
/// [`scratch_len`](Mlp::scratch_len) (enough for everything) for
/// [`input_gradient`](Mlp::input_gradient).
///
/// The network: `h₀ = (x − input.mean)/input.std` (if input standardisation is on),
/// `hᵢ₊₁ = act(Wᵢ hᵢ + bᵢ)` with no activation after the last layer, then the head of
/// [`Output`]: logits as they are; regression outputs `o·target.std + target.mean` (if target
/// standardisation is on); for a Gaussian the means likewise and
/// `σ = (softplus(raw) + 1e-6)·target.std`.
///
/// Size: 64 bytes per layer slot on a 64-bit host, 32 on a 32-bit controller, plus the
/// configuration and standardisations (`Mlp<'_, 8>`: 712 / 356 bytes); evaluation keeps only a
/// few scalars on the stack (intermediate vectors live in the caller's scratch), and nothing
/// recurses. Loading ([`from_safetensors`](Mlp::from_safetensors)) parses the configuration
/// with a few small buffers (under 100 bytes).
#[derive(Clone, Copy, Debug)]
pub struct Mlp<'a, const L: usize> {
    config: MlpConfig<L>,
    layers: [Dense<'a>; L],
    input: Option<Standardization<'a>>,
    target: Option<Standardization<'a>>,
    /// The largest of all sizes.
    width: usize,
    /// The sum of the layers' output widths.
    stored: usize,
}

/// Whether `name` is `{prefix}layer{index}.{suffix}`, compared unescaped.
pub(super) fn is_layer_tensor(name: JsonStr<'_>, prefix: &str, index: usize, suffix: &str) -> bool {
    let mut buf = [0u8; 20];
    let expected = prefix
        .as_bytes()
        .iter()
        .chain(b"layer")
        .chain(super::digits(index, &mut buf))
        .chain(b".")
        .chain(suffix.as_bytes())
        .copied();
    name.bytes().eq(expected)
}

impl<'a, const L: usize> Mlp<'a, L> {
    /// Builds the model described by a file's metadata from its tensors (borrowed, not copied).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `keel.kind` is not `"mlp"`, `keel.config` is missing or
    /// invalid ([`MlpConfig::parse`]), a standardisation deviation is not positive, or the file
    /// has `layer{i}` tensors beyond the configured layers; [`Error::CapacityExceeded`] for more
    /// than `L` layers; [`Error::TensorNotFound`], [`Error::TensorShape`] or
    /// [`Error::UnsupportedDtype`] for a missing, misshapen or non-float tensor.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        Self::from_safetensors_of_kind(st, "mlp")
    }

    /// As [`from_safetensors`](Mlp::from_safetensors) for a file whose `keel.kind` is `kind`:
    /// a model that embeds an MLP in this layout (e.g. a learned potential, `chnn`).
    ///
    /// # Errors
    /// As [`from_safetensors`](Mlp::from_safetensors), with `kind` in place of `mlp`.
    pub fn from_safetensors_of_kind<const MAX: usize>(
        st: &SafeTensors<'a, MAX>,
        kind: &str,
    ) -> Result<Self> {
        Self::from_safetensors_part(st, kind, "", "keel.config")
    }

    /// One of several MLPs in a file whose `keel.kind` is `kind`: its configuration in the
    /// metadata entry `config_key`, its tensors named with `prefix` (`{prefix}layer{i}.weight`,
    /// `{prefix}input.mean`, …).
    ///
    /// # Errors
    /// As [`from_safetensors`](Mlp::from_safetensors), with `kind` in place of `mlp`.
    pub fn from_safetensors_part<const MAX: usize>(
        st: &SafeTensors<'a, MAX>,
        kind: &str,
        prefix: &str,
        config_key: &str,
    ) -> Result<Self> {
        match st.metadata("keel.kind") {
            None => {
                return Err(Error::InvalidConfig {
                    what: "no `keel.kind` metadata",
                })
            }
            Some(k) if k != kind => {
                return Err(Error::InvalidConfig {
                    what: "`keel.kind` is not the model kind expected",
                })
            }
            Some(_) => {}
        }
        let config = st.metadata(config_key).ok_or(Error::InvalidConfig {
            what: if config_key == "keel.config" {
                "no `keel.config` metadata"
            } else {
                "no `keel.config.<part>` metadata for a part of the file"
            },
        })?;
        let config = MlpConfig::<L>::parse(config)?;

        let mut layers = [Dense::EMPTY; L];
        let mut inputs = config.inputs();
        let mut width = inputs;
        let mut stored = 0usize;
        for (i, (&outputs, slot)) in config
            .layer_outputs()
            .iter()
            .zip(layers.iter_mut())
            .enumerate()
        {
            let find = |role: &'static str| -> Result<TensorView<'a>> {
                st.find(|name| is_layer_tensor(name, prefix, i, role))
                    .ok_or(Error::TensorNotFound {
                        role,
                        layer: Some(i),
                    })
            };
            let weight = find("weight")?;
            let bias = find("bias")?;
            let tag = |e: Error| match e {
                Error::TensorShape { role, .. } => Error::TensorShape {
                    role,
                    layer: Some(i),
                },
                other => other,
            };
            let dense = Dense::new(&weight, &bias).map_err(tag)?;
            if dense.inputs() != inputs {
                return Err(tag(Error::TensorShape {
                    role: "weight",
                    layer: None,
                }));
            }
            if dense.outputs() != outputs {
                return Err(tag(Error::TensorShape {
                    role: "weight",
                    layer: None,
                }));
            }
            *slot = dense;
            inputs = outputs;
            width = width.max(outputs);
            stored = stored.saturating_add(outputs);
        }
        let depth = config.layer_outputs().len();
        if st
            .find(|name| {
                is_layer_tensor(name, prefix, depth, "weight")
                    || is_layer_tensor(name, prefix, depth, "bias")
            })
            .is_some()
        {
            return Err(Error::InvalidConfig {
                what: "the file has more layers than `sizes` describes",
            });
        }
        let input = if config.input_standardization() {
            Some(Standardization::load(
                st,
                prefix,
                "input.mean",
                "input.std",
                config.inputs(),
            )?)
        } else {
            None
        };
        let target = if config.target_standardization() {
            Some(Standardization::load(
                st,
                prefix,
                "target.mean",
                "target.std",
                head_width(&config),
            )?)
        } else {
            None
        };
        Ok(Mlp {
            config,
            layers,
            input,
            target,
            width,
            stored,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MlpConfig<L> {
        &self.config
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Dense<'a>] {
        self.layers
            .get(..self.config.layer_outputs().len())
            .unwrap_or(&[])
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.config.inputs()
    }

    /// Width of [`forward`](Mlp::forward)'s output: the last layer's width (for a Gaussian,
    /// `k` means followed by `k` scales).
    pub fn outputs(&self) -> usize {
        self.config.layer_outputs().last().copied().unwrap_or(0)
    }

    /// Scratch scalars [`forward`](Mlp::forward) and [`predict_class`](Mlp::predict_class)
    /// need: twice the widest size.
    pub fn forward_scratch_len(&self) -> usize {
        self.width.saturating_mul(2)
    }

    /// Scratch scalars enough for every method, [`input_gradient`](Mlp::input_gradient)
    /// included: the sum of the layer widths (kept for the backward pass) plus twice the widest
    /// size.
    pub fn scratch_len(&self) -> usize {
        self.stored.saturating_add(self.forward_scratch_len())
    }

    /// Evaluates the network: `out` receives the un-standardised head (logits; regression
    /// outputs; or `k` means followed by `k` scales σ).
    ///
    /// NaN or infinite weights or inputs propagate into `out`; they are not reported.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()` and `out.len() == outputs()`;
    /// [`Error::ScratchTooSmall`] if `scratch.len() < forward_scratch_len()`.
    pub fn forward<T: Real>(&self, x: &[T], out: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.check_len("output", out.len())?;
        let raw = self.hidden_pass(x, scratch)?;
        self.head(raw, out)
    }

    /// The class with the largest logit (the first one on ties).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless the output is [`Output::Logits`]; as
    /// [`forward`](Mlp::forward) for the shapes; [`Error::NonFinite`] (with `t = 0`) if a logit
    /// is NaN.
    pub fn predict_class<T: Real>(&self, x: &[T], scratch: &mut [T]) -> Result<usize> {
        if self.config.output() != Output::Logits {
            return Err(Error::InvalidConfig {
                what: "`predict_class` needs a `logits` output",
            });
        }
        let logits = self.hidden_pass(x, scratch)?;
        let mut best: Option<(usize, T)> = None;
        for (index, &v) in logits.iter().enumerate() {
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

    /// The vector-Jacobian product `grad = cotangentᵀ · ∂out/∂x` of [`forward`](Mlp::forward)'s
    /// output with respect to the input `x` — the input standardisation's `1/std`, the target
    /// standardisation and, for Gaussian scales, the softplus included.
    ///
    /// For `relu`, the derivative at exactly 0 is taken as 0.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == grad.len() == inputs()` and
    /// `cotangent.len() == outputs()`; [`Error::ScratchTooSmall`] if
    /// `scratch.len() < scratch_len()`.
    pub fn input_gradient<T: Real>(
        &self,
        x: &[T],
        cotangent: &[T],
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_len("cotangent", cotangent.len())?;
        if grad.len() != self.inputs() {
            return Err(Error::ShapeMismatch {
                what: "gradient",
                expected: self.inputs(),
                got: grad.len(),
            });
        }
        let needed = self.scratch_len();
        let got = scratch.len();
        let too_small = Error::ScratchTooSmall { needed, got };
        let (stored, rest) = scratch.split_at_mut_checked(self.stored).ok_or(too_small)?;
        let (a, rest) = rest.split_at_mut_checked(self.width).ok_or(too_small)?;
        let b = rest.get_mut(..self.width).ok_or(too_small)?;

        // Forward, keeping every layer's pre-activation in `stored`.
        self.standardize_input(x, a)?;
        let activation = self.config.activation();
        let layers = self.layers();
        let mut offset = 0;
        for (i, layer) in layers.iter().enumerate() {
            let z = slice_mut(stored, offset, layer.outputs())?;
            layer.forward(slice(a, layer.inputs())?, z)?;
            offset += layer.outputs();
            if i + 1 < layers.len() {
                for (ak, &zk) in a.iter_mut().zip(z.iter()) {
                    *ak = activation.apply(zk);
                }
            }
        }

        // Backward: the head's Jacobian first, then the layers in reverse.
        let raw = stored
            .get(..offset)
            .and_then(|s| s.get(offset.checked_sub(self.outputs())?..))
            .ok_or(too_small)?;
        self.head_vjp(raw, cotangent, slice_mut(b, 0, self.outputs())?)?;
        let mut end = offset;
        for (i, layer) in layers.iter().enumerate().rev() {
            end -= layer.outputs();
            let da = slice_mut(a, 0, layer.inputs())?;
            layer.backward(slice(b, layer.outputs())?, da)?;
            if i > 0 {
                let z_prev = stored
                    .get(..end)
                    .and_then(|s| s.get(end.checked_sub(layer.inputs())?..))
                    .ok_or(too_small)?;
                for ((gk, &dk), &zk) in b.iter_mut().zip(da.iter()).zip(z_prev) {
                    *gk = dk * activation.derivative(zk);
                }
            }
        }
        let da = slice(a, self.inputs())?;
        match &self.input {
            Some(s) => {
                for ((gk, &dk), sk) in grad.iter_mut().zip(da).zip(s.std.iter::<T>()) {
                    *gk = dk / sk;
                }
            }
            None => copy(grad, da),
        }
        Ok(())
    }

    fn check_len(&self, what: &'static str, got: usize) -> Result<()> {
        if got == self.outputs() {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what,
                expected: self.outputs(),
                got,
            })
        }
    }

    /// `dst[..inputs] = (x − mean)/std` or `x`.
    fn standardize_input<T: Real>(&self, x: &[T], dst: &mut [T]) -> Result<()> {
        if x.len() != self.inputs() {
            return Err(Error::ShapeMismatch {
                what: "input",
                expected: self.inputs(),
                got: x.len(),
            });
        }
        let dst = slice_mut(dst, 0, x.len())?;
        match &self.input {
            Some(s) => {
                for (((d, &xk), m), sd) in dst
                    .iter_mut()
                    .zip(x)
                    .zip(s.mean.iter::<T>())
                    .zip(s.std.iter::<T>())
                {
                    *d = (xk - m) / sd;
                }
            }
            None => copy(dst, x),
        }
        Ok(())
    }

    /// Runs every layer; returns the last layer's raw output, inside `scratch`.
    fn hidden_pass<'s, T: Real>(&self, x: &[T], scratch: &'s mut [T]) -> Result<&'s [T]> {
        let too_small = Error::ScratchTooSmall {
            needed: self.forward_scratch_len(),
            got: scratch.len(),
        };
        let (mut a, rest) = scratch.split_at_mut_checked(self.width).ok_or(too_small)?;
        let mut b = rest.get_mut(..self.width).ok_or(too_small)?;
        self.standardize_input(x, a)?;
        let activation = self.config.activation();
        let layers = self.layers();
        for (i, layer) in layers.iter().enumerate() {
            let y = slice_mut(b, 0, layer.outputs())?;
            layer.forward(slice(a, layer.inputs())?, y)?;
            if i + 1 < layers.len() {
                for v in y.iter_mut() {
                    *v = activation.apply(*v);
                }
            }
            core::mem::swap(&mut a, &mut b);
        }
        let a: &'s [T] = a;
        slice(a, self.outputs())
    }

    /// `out` = the head applied to the last layer's raw output.
    fn head<T: Real>(&self, raw: &[T], out: &mut [T]) -> Result<()> {
        let floor = T::from_f64(SIGMA_FLOOR);
        let k = head_width(&self.config);
        let mismatch = Error::ShapeMismatch {
            what: "output",
            expected: self.outputs(),
            got: out.len(),
        };
        let (means, scales) = out.split_at_mut_checked(k).ok_or(mismatch)?;
        let (raw_means, raw_scales) = raw.split_at_checked(k).unwrap_or((raw, &[]));
        copy(means, slice(raw_means, means.len())?);
        for (s, &r) in scales.iter_mut().zip(raw_scales) {
            *s = softplus(r) + floor;
        }
        if let Some(t) = &self.target {
            for ((m, tm), ts) in means.iter_mut().zip(t.mean.iter::<T>()).zip(t.std.iter()) {
                *m = *m * ts + tm;
            }
            for (s, ts) in scales.iter_mut().zip(t.std.iter::<T>()) {
                *s *= ts;
            }
        }
        Ok(())
    }

    /// `g = cotangentᵀ · ∂head/∂raw` (the head is elementwise, so this is a product).
    fn head_vjp<T: Real>(&self, raw: &[T], cotangent: &[T], g: &mut [T]) -> Result<()> {
        let k = head_width(&self.config);
        copy(g, slice(cotangent, g.len())?);
        let mismatch = Error::ShapeMismatch {
            what: "cotangent",
            expected: self.outputs(),
            got: g.len(),
        };
        let (g_means, g_scales) = g.split_at_mut_checked(k).ok_or(mismatch)?;
        for (gs, &r) in g_scales.iter_mut().zip(raw.get(k..).unwrap_or(&[])) {
            *gs *= sigmoid(r);
        }
        if let Some(t) = &self.target {
            for (gm, ts) in g_means.iter_mut().zip(t.std.iter::<T>()) {
                *gm *= ts;
            }
            for (gs, ts) in g_scales.iter_mut().zip(t.std.iter::<T>()) {
                *gs *= ts;
            }
        }
        Ok(())
    }
}

/// Width of the head's mean part (`k`): the last size, halved for a Gaussian.
fn head_width<const L: usize>(config: &MlpConfig<L>) -> usize {
    let last = config.layer_outputs().last().copied().unwrap_or(0);
    match config.output() {
        Output::Gaussian => last / 2,
        Output::Logits | Output::Regression => last,
    }
}

/// `dst[k] = src[k]` over the common length.
fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

fn slice<T>(s: &[T], n: usize) -> Result<&[T]> {
    s.get(..n).ok_or(Error::ScratchTooSmall {
        needed: n,
        got: s.len(),
    })
}

fn slice_mut<T>(s: &mut [T], start: usize, n: usize) -> Result<&mut [T]> {
    let got = s.len();
    start
        .checked_add(n)
        .and_then(|end| s.get_mut(start..end))
        .ok_or(Error::ScratchTooSmall { needed: n, got })
}

#[cfg(test)]
mod tests {
    use super::is_layer_tensor;
    use crate::io::JsonStr;

    #[test]
    fn layer_names_match_exactly() {
        let n = JsonStr::from_validated;
        assert!(is_layer_tensor(n("layer0.weight"), "", 0, "weight"));
        assert!(is_layer_tensor(n("layer12.bias"), "", 12, "bias"));
        assert!(is_layer_tensor(n("layer\\u0031.bias"), "", 1, "bias"));
        assert!(!is_layer_tensor(n("layer1.bias"), "", 12, "bias"));
        assert!(is_layer_tensor(n("q1.layer1.bias"), "q1.", 1, "bias"));
        assert!(!is_layer_tensor(n("layer1.bias"), "q1.", 1, "bias"));
        assert!(!is_layer_tensor(n("q2.layer1.bias"), "q1.", 1, "bias"));
        assert!(!is_layer_tensor(n("layer01.bias"), "", 1, "bias"));
        assert!(!is_layer_tensor(n("layer1.weights"), "", 1, "weight"));
        assert!(is_layer_tensor(
            n("layer18446744073709551615.weight"),
            "",
            usize::MAX,
            "weight"
        ));
    }
}
