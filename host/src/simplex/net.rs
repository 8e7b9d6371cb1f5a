//! The network a simplex is made of — the engine MLP or the engine CNN — and the simplex's
//! forward pass: every parameter is the convex combination `Σ_j α_j W_j` of its vertex copies
//! (g-benton/loss-surface-simplexes `simplex/models/simplex_models.py`, `SimplexNet`), computed
//! on the tape so gradients reach the vertex variables. Batch norm interpolates its affine
//! weights and shares the running statistics (one set per simplex), as the reference.

use keel_core::random::Xoshiro256PlusPlus;

use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::nn::cnn::{Cnn, CnnState, LayerSpec, Mode};
use crate::nn::{Activation, Mlp};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// Which network.
#[derive(Clone, Debug, PartialEq)]
pub enum Arch {
    /// ReLU MLP with these hidden widths.
    Mlp {
        /// Hidden widths.
        hidden: Vec<usize>,
    },
    /// The engine CNN of `layers` (`keel fit --layers` syntax) on rows reshaped to `image`.
    Cnn {
        /// The spec string.
        layers: String,
        /// `[channels, height, width]`; their product is the number of input columns.
        image: [usize; 3],
    },
}

impl Arch {
    /// `"mlp"` or `"cnn"`.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Mlp { .. } => "mlp",
            Arch::Cnn { .. } => "cnn",
        }
    }
}

#[derive(Clone, Debug)]
enum Model {
    Mlp(Mlp),
    Cnn(Cnn),
}

/// One network: its structure and a template parameter set (names and shapes in the engine's
/// order — for an MLP `layer0.weight [out, in]`, `layer0.bias`, `layer1.weight`, …; for a CNN
/// each layer's weight, bias and batch-norm γ, β in layer order, as `Cnn::new` inserts them).
#[derive(Clone, Debug)]
pub struct Net {
    model: Model,
    arch: Arch,
    template: Params,
    state: CnnState,
    inputs: usize,
    classes: usize,
    dtype: DType,
    device: Device,
}

impl Net {
    /// The network of `arch` from `inputs` columns to `classes` logits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a zero width, a CNN spec that does not parse or fit its
    /// image, or an image shape whose size is not `inputs`.
    pub fn new(
        arch: &Arch,
        inputs: usize,
        classes: usize,
        dtype: DType,
        device: Device,
    ) -> Result<Net> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let (model, template, state) = build(arch, inputs, classes, dtype, &mut rng)?;
        let template = template.to_device(device)?;
        let state = state.to_device(device)?;
        Ok(Net {
            model,
            arch: arch.clone(),
            template,
            state,
            inputs,
            classes,
            dtype,
            device,
        })
    }

    /// A freshly initialised vertex (PyTorch's default `U(±1/√fan_in)`, as the reference's
    /// simplex layers) drawn from `rng`, on the network's device.
    ///
    /// # Errors
    /// Engine errors.
    pub fn init(&self, rng: &mut Xoshiro256PlusPlus) -> Result<Params> {
        let (_, p, _) = build(&self.arch, self.inputs, self.classes, self.dtype, rng)?;
        Ok(p.to_device(self.device)?)
    }

    /// Fresh batch-norm running statistics (empty for an MLP).
    pub fn fresh_state(&self) -> CnnState {
        self.state.clone()
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Input columns.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Scalars per vertex.
    pub fn parameters(&self) -> usize {
        self.template.numel()
    }

    /// The template (names and shapes).
    pub fn template(&self) -> &Params {
        &self.template
    }

    /// The MLP's widths `[in, h…, classes]` (empty for a CNN).
    pub fn sizes(&self) -> Vec<usize> {
        match &self.model {
            Model::Mlp(m) => m.sizes(),
            Model::Cnn(_) => Vec::new(),
        }
    }

    /// Rows `[n, inputs]` as the network's input tensor (`[n, c, h, w]` for a CNN).
    ///
    /// # Errors
    /// Engine errors.
    pub fn input(&self, x: &[f64], rows: usize) -> Result<Tensor> {
        let dims = match &self.arch {
            Arch::Mlp { .. } => vec![rows, self.inputs],
            Arch::Cnn { image, .. } => vec![rows, image[0], image[1], image[2]],
        };
        Ok(Tensor::from_f64s(x, &dims, self.dtype)?.to_device(self.device)?)
    }

    /// Logits `[n, classes]` with parameters `params` (any tensors of the template's shapes,
    /// e.g. a simplex's combination); `train` selects batch statistics (updating `state`)
    /// and dropout drawn from `seed`.
    ///
    /// # Errors
    /// Engine errors.
    pub fn forward(
        &self,
        params: &Params,
        state: &mut CnnState,
        x: &Tensor,
        train: bool,
        seed: u64,
    ) -> Result<Tensor> {
        match &self.model {
            Model::Mlp(m) => Ok(m.forward(params, x)?),
            Model::Cnn(c) => {
                let mode = if train {
                    Mode::Train { seed }
                } else {
                    Mode::Eval
                };
                Ok(c.forward(params, state, x, mode)?)
            }
        }
    }

    /// The point `Σ_j α_j w_j` of the simplex of `vertices` (same layout): tensors on the tape,
    /// so gradients reach every vertex that is a variable. Vertices with `α_j = 0` are skipped.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for weights and vertices of different counts; engine errors.
    pub fn combine(&self, vertices: &[&Params], alpha: &[f64]) -> Result<Params> {
        if vertices.len() != alpha.len() || vertices.is_empty() {
            return Err(Error::invalid(
                "simplex point: weights and vertices",
                alpha.len(),
                format!("expected {}", vertices.len()),
            ));
        }
        let mut out = self.template.clone();
        for i in 0..self.template.len() {
            let mut acc: Option<Tensor> = None;
            for (v, &a) in vertices.iter().zip(alpha) {
                if a == 0.0 {
                    continue;
                }
                let term = v.get(ParamId(i)).mul_scalar(a)?;
                acc = Some(match acc {
                    None => term,
                    Some(s) => s.add(&term)?,
                });
            }
            let t = match acc {
                Some(t) => t,
                None => vertices[0].get(ParamId(i)).mul_scalar(0.0)?,
            };
            out.set(ParamId(i), t)?;
        }
        Ok(out)
    }
}

/// The parameters as one flat vector in the template's order.
///
/// # Errors
/// Device reads.
pub fn flatten(p: &Params) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(p.numel());
    for t in p.values() {
        v.extend(t.to_vec_f64()?);
    }
    Ok(v)
}

/// A parameter set of `template`'s layout holding the flat vector `flat`.
///
/// # Errors
/// [`Error::InvalidInput`] for a vector of another length; engine errors.
pub fn unflatten(template: &Params, flat: &[f64]) -> Result<Params> {
    if flat.len() != template.numel() {
        return Err(Error::invalid(
            "parameter vector and network",
            flat.len(),
            format!("expected {}", template.numel()),
        ));
    }
    let mut out = template.clone();
    let mut at = 0;
    for i in 0..template.len() {
        let t = template.get(ParamId(i));
        let n = t.numel();
        let v = Tensor::from_f64s(&flat[at..at + n], t.dims(), t.dtype())?.to_device(t.device())?;
        out.set(ParamId(i), v)?;
        at += n;
    }
    Ok(out)
}

fn build(
    arch: &Arch,
    inputs: usize,
    classes: usize,
    dtype: DType,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<(Model, Params, CnnState)> {
    let mut params = Params::new();
    match arch {
        Arch::Mlp { hidden } => {
            let mut sizes = vec![inputs];
            sizes.extend(hidden);
            sizes.push(classes);
            let m = Mlp::new(
                &mut params,
                &sizes,
                Activation::Relu,
                Init::PyTorchDefault,
                dtype,
                rng,
            )?;
            Ok((Model::Mlp(m), params, CnnState::default()))
        }
        Arch::Cnn { layers, image } => {
            if image.iter().product::<usize>() != inputs {
                return Err(Error::invalid(
                    "image_shape",
                    format!("{}x{}x{}", image[0], image[1], image[2]),
                    format!(
                        "holds {} values; the data have {inputs} columns",
                        image.iter().product::<usize>()
                    ),
                ));
            }
            let spec: Vec<LayerSpec> = crate::nn::cnn::parse_spec(layers)
                .map_err(|e| Error::invalid("layers", layers, e.to_string()))?;
            let (c, s) = Cnn::new(&mut params, "", *image, &spec, classes, dtype, rng)
                .map_err(|e| Error::invalid("layers", layers, e.to_string()))?;
            Ok((Model::Cnn(c), params, s))
        }
    }
}
