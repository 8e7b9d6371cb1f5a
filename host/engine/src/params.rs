//! Named parameters: a model's tensors, in a fixed order, looked up by index in the training
//! loop and by name for export and checkpoints.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Index of a parameter in a [`Params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// An ordered set of named tensors. Names are shared between copies, so taking
/// [`Params::variables`] every training step copies only the tensor handles.
#[derive(Clone, Debug, Default)]
pub struct Params {
    names: Arc<Vec<String>>,
    values: Vec<Tensor>,
    index: Arc<HashMap<String, usize>>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the name is taken.
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor) -> Result<ParamId> {
        let name = name.into();
        if self.index.contains_key(&name) {
            return Err(Error::invalid(
                "parameter",
                &name,
                "duplicate parameter name",
            ));
        }
        let id = self.values.len();
        Arc::make_mut(&mut self.index).insert(name.clone(), id);
        Arc::make_mut(&mut self.names).push(name);
        self.values.push(value);
        Ok(ParamId(id))
    }

    /// The tensor of a parameter.
    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.values[id.0]
    }

    /// Looks a parameter up by name.
    pub fn by_name(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.values[i])
    }

    /// Replaces a parameter's value.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shape changes.
    pub fn set(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let old = &self.values[id.0];
        if old.shape() != value.shape() {
            return Err(Error::ShapeMismatch {
                op: "Params::set",
                lhs: old.shape(),
                rhs: value.shape(),
            });
        }
        self.values[id.0] = value;
        Ok(())
    }

    /// Names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Values in order.
    pub fn values(&self) -> &[Tensor] {
        &self.values
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.values.iter().map(|t| t.numel()).sum()
    }

    /// The parameters copied to `device`.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: crate::backend::Device) -> Result<Params> {
        let values = self
            .values
            .iter()
            .map(|t| t.detach().to_device(device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Params {
            names: self.names.clone(),
            values,
            index: self.index.clone(),
        })
    }

    /// The parameters converted to `dtype` (detached).
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: crate::backend::DType) -> Result<Params> {
        let values = self
            .values
            .iter()
            .map(|t| t.detach().to_dtype(dtype))
            .collect::<Result<Vec<_>>>()?;
        Ok(Params {
            names: self.names.clone(),
            values,
            index: self.index.clone(),
        })
    }

    /// The same parameters as fresh variables (leaves that gradients flow to), for one
    /// training step.
    pub fn variables(&self) -> Params {
        Params {
            names: self.names.clone(),
            values: self.values.iter().map(|t| t.variable()).collect(),
            index: self.index.clone(),
        }
    }
}
