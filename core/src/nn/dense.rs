//! A dense layer `y = W·x + b` over weights borrowed from a file.

use super::weights::Floats;
use crate::io::TensorView;
use crate::{Error, Real, Result};

/// A fully connected layer whose row-major weight `[outputs, inputs]` and bias `[outputs]` are
/// read in place from a file's bytes (`F32` or `F64`, independently).
#[derive(Clone, Copy, Debug)]
pub struct Dense<'a> {
    weight: Floats<'a>,
    bias: Floats<'a>,
    inputs: usize,
    outputs: usize,
}

impl<'a> Dense<'a> {
    /// Placeholder for unused capacity slots.
    pub(crate) const EMPTY: Dense<'static> = Dense {
        weight: Floats::EMPTY,
        bias: Floats::EMPTY,
        inputs: 0,
        outputs: 0,
    };

    /// A layer from its weight and bias tensors.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] unless both are `F32`/`F64`; [`Error::TensorShape`] (role
    /// `weight` or `bias`, no layer) unless the weight is `[outputs, inputs]` with both ≥ 1 and
    /// the bias is `[outputs]`.
    pub fn new(weight: &TensorView<'a>, bias: &TensorView<'a>) -> Result<Self> {
        let (outputs, inputs) = match *weight.shape() {
            [o, i] if o >= 1 && i >= 1 => (o, i),
            _ => {
                return Err(Error::TensorShape {
                    role: "weight",
                    layer: None,
                })
            }
        };
        if bias.shape() != [outputs] {
            return Err(Error::TensorShape {
                role: "bias",
                layer: None,
            });
        }
        Ok(Dense {
            weight: Floats::new(weight)?,
            bias: Floats::new(bias)?,
            inputs,
            outputs,
        })
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `y = W·x + b`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()` and `y.len() == outputs()`.
    pub fn forward<T: Real>(&self, x: &[T], y: &mut [T]) -> Result<()> {
        self.check(x.len(), y.len())?;
        for ((yj, row), bj) in y
            .iter_mut()
            .zip(self.weight.rows(self.inputs))
            .zip(self.bias.iter::<T>())
        {
            *yj = row.dot(x) + bj;
        }
        Ok(())
    }

    /// `y = W·x` (no bias): the layer's derivative along an input direction.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()` and `y.len() == outputs()`.
    pub fn weight_product<T: Real>(&self, x: &[T], y: &mut [T]) -> Result<()> {
        self.check(x.len(), y.len())?;
        for (yj, row) in y.iter_mut().zip(self.weight.rows(self.inputs)) {
            *yj = row.dot(x);
        }
        Ok(())
    }

    /// `dx = Wᵀ·dy`: the vector-Jacobian product of [`forward`](Dense::forward) with respect
    /// to its input.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `dy.len() == outputs()` and `dx.len() == inputs()`.
    pub fn backward<T: Real>(&self, dy: &[T], dx: &mut [T]) -> Result<()> {
        self.check(dx.len(), dy.len())?;
        dx.fill(T::ZERO);
        for (row, &d) in self.weight.rows(self.inputs).zip(dy) {
            row.axpy(d, dx);
        }
        Ok(())
    }

    fn check(&self, inputs: usize, outputs: usize) -> Result<()> {
        if inputs != self.inputs {
            return Err(Error::ShapeMismatch {
                what: "dense layer input",
                expected: self.inputs,
                got: inputs,
            });
        }
        if outputs != self.outputs {
            return Err(Error::ShapeMismatch {
                what: "dense layer output",
                expected: self.outputs,
                got: outputs,
            });
        }
        Ok(())
    }
}
