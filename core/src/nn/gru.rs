//! A GRU cell (PyTorch's `nn.GRUCell`) over weights borrowed from a file.

use super::activation::sigmoid;
use super::dense::Dense;
use crate::io::SafeTensors;
use crate::{Error, Real, Result};

/// A GRU cell with PyTorch's gate order `r, z, n`:
/// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
///
/// Tensors `{prefix}weight_ih` `[3H, I]`, `{prefix}weight_hh` `[3H, H]`, `{prefix}bias_ih` and
/// `{prefix}bias_hh` `[3H]` (the gates stacked `[r; z; n]`, as `torch.nn.GRUCell` stores them),
/// read in place. A step keeps its `6H` gate pre-activations in the caller's scratch.
#[derive(Clone, Copy, Debug)]
pub struct GruCell<'a> {
    input: Dense<'a>,
    recurrent: Dense<'a>,
    hidden: usize,
}

impl<'a> GruCell<'a> {
    /// Reads the cell's four tensors named with `prefix`.
    ///
    /// # Errors
    /// [`Error::TensorNotFound`] for a missing tensor; [`Error::TensorShape`] unless the shapes
    /// are `[3H, I]`, `[3H, H]`, `[3H]`, `[3H]`; [`Error::UnsupportedDtype`].
    pub fn from_safetensors<const MAX: usize>(
        st: &SafeTensors<'a, MAX>,
        prefix: &str,
    ) -> Result<Self> {
        let get = |name| super::named_tensor(st, prefix, name);
        let input = Dense::new(&get("weight_ih")?, &get("bias_ih")?)?;
        let recurrent = Dense::new(&get("weight_hh")?, &get("bias_hh")?)?;
        let gates = recurrent.outputs();
        if gates % 3 != 0 || recurrent.inputs() * 3 != gates || input.outputs() != gates {
            return Err(Error::TensorShape {
                role: "weight_hh",
                layer: None,
            });
        }
        Ok(GruCell {
            input,
            recurrent,
            hidden: gates / 3,
        })
    }

    /// Input width `I`.
    pub fn inputs(&self) -> usize {
        self.input.inputs()
    }

    /// Hidden width `H`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Scratch scalars [`step`](GruCell::step) needs: `6H`.
    pub fn scratch_len(&self) -> usize {
        self.hidden.saturating_mul(6)
    }

    /// One step: `h ← h'(x, h)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == inputs()` and `h.len() == hidden()`;
    /// [`Error::ScratchTooSmall`].
    pub fn step<T: Real>(&self, x: &[T], h: &mut [T], scratch: &mut [T]) -> Result<()> {
        let n = 3 * self.hidden;
        let too_small = Error::ScratchTooSmall {
            needed: 2 * n,
            got: scratch.len(),
        };
        let (gi, rest) = scratch.split_at_mut_checked(n).ok_or(too_small)?;
        let gh = rest.get_mut(..n).ok_or(too_small)?;
        self.input.forward(x, gi)?;
        self.recurrent.forward(h, gh)?;
        let k = self.hidden;
        let (ir, rest) = gi.split_at(k);
        let (iz, inn) = rest.split_at(k);
        let (hr, rest) = gh.split_at(k);
        let (hz, hn) = rest.split_at(k);
        for (j, hj) in h.iter_mut().enumerate() {
            let r = sigmoid(ir[j] + hr[j]);
            let z = sigmoid(iz[j] + hz[j]);
            let cand = (inn[j] + r * hn[j]).libm_tanh();
            *hj = (T::ONE - z) * cand + z * *hj;
        }
        Ok(())
    }
}
