//! Storage operations of full-batch HMC over a flat parameter vector (`cuda/hmc.cu` and its CPU
//! twin [`cpu::hmc`](super::cpu::hmc)): the fused leapfrog update with the prior's gradient
//! folded in, in place; the kinetic energy `Σ p²` and the prior difference
//! `Σ log p(x) − log p(y)` as f64 partial sums of [`CHUNK`] elements.

use super::cpu::{hmc as twin, CpuStorage};
use super::Storage;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Elements per partial sum (the kernels' `chunk`).
pub const CHUNK: usize = 1024;

/// The host's pass over the kernels' partial sums: in order from +0 (`Iterator::sum` starts
/// from −0, which an empty or all-zero sum would keep).
pub fn add_partials(parts: &[f64]) -> f64 {
    parts.iter().fold(0.0, |total, s| total + s)
}

/// Which density a prior has (the kernels' `kind` code in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorKind {
    /// No prior term (0).
    None,
    /// `N(0, a²)` (1).
    Gaussian,
    /// `a N(0, b²) + (1 − a) N(0, c²)` (2).
    Mixture,
    /// Logistic with scale `a` (3).
    Logistic,
}

impl PriorKind {
    /// The kernels' code.
    pub fn code(self) -> u64 {
        match self {
            PriorKind::None => 0,
            PriorKind::Gaussian => 1,
            PriorKind::Mixture => 2,
            PriorKind::Logistic => 3,
        }
    }
}

/// A prior on every element, as the kernels take it (`bayes::prior::Prior::args`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriorArgs {
    /// The density.
    pub kind: PriorKind,
    /// Its parameters `[a, b, c]` (unused ones 0).
    pub params: [f64; 3],
}

impl PriorArgs {
    /// No prior term.
    pub const NONE: PriorArgs = PriorArgs {
        kind: PriorKind::None,
        params: [0.0; 3],
    };
}

/// One fused leapfrog update: `kicks` half kicks `p ← p + half·(g + ∇log p(θ)/temp)`, then, if
/// `drift`, `θ ← θ + eps·p`. A trajectory of `L` steps is `kicks = 1`, then `L − 1` times
/// `kicks = 2`, each with a drift and a gradient after it, and a closing `kicks = 1` without one
/// — velocity Verlet with the two half kicks between steps fused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeapfrogArgs {
    /// `ε/2`.
    pub half: f64,
    /// Half kicks (0, 1 or 2).
    pub kicks: u64,
    /// `ε`.
    pub eps: f64,
    /// Whether `θ` drifts.
    pub drift: bool,
    /// The prior whose gradient joins `g`.
    pub prior: PriorArgs,
    /// Temperature dividing the prior's gradient.
    pub temp: f64,
}

fn mismatch(op: &'static str, a: &Storage, b: &Storage) -> Error {
    if a.device() != b.device() {
        Error::DeviceMismatch {
            op,
            lhs: a.device(),
            rhs: b.device(),
        }
    } else if a.dtype() != b.dtype() {
        Error::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        }
    } else {
        Error::LengthMismatch {
            op,
            lhs: a.len(),
            rhs: b.len(),
        }
    }
}

impl Storage {
    /// The fused leapfrog update of `self` (θ) and `p` from the likelihood gradient `g`, in
    /// place.
    ///
    /// # Errors
    /// Buffers of different lengths, dtypes or devices; device errors.
    pub fn hmc_leapfrog(&mut self, p: &mut Storage, g: &Storage, h: &LeapfrogArgs) -> Result<()> {
        let n = self.len();
        if p.len() != n || g.len() != n {
            return Err(mismatch(
                "hmc_leapfrog",
                self,
                if p.len() != n { p } else { g },
            ));
        }
        match (self, p, g) {
            (
                Storage::Cpu(CpuStorage::F32(t)),
                Storage::Cpu(CpuStorage::F32(p)),
                Storage::Cpu(CpuStorage::F32(g)),
            ) => twin::leapfrog(t, p, g, h),
            (
                Storage::Cpu(CpuStorage::F64(t)),
                Storage::Cpu(CpuStorage::F64(p)),
                Storage::Cpu(CpuStorage::F64(g)),
            ) => twin::leapfrog(t, p, g, h),
            (Storage::Cuda(t), Storage::Cuda(p), Storage::Cuda(g)) => t.hmc_leapfrog(p, g, h)?,
            (t, p, g) => {
                let other = if p.device() != t.device() || p.dtype() != t.dtype() {
                    &*p
                } else {
                    g
                };
                return Err(mismatch("hmc_leapfrog", t, other));
            }
        }
        Ok(())
    }

    /// `Σ x²` in f64 (partial sums of [`CHUNK`] elements, added in order).
    ///
    /// # Errors
    /// Device errors.
    pub fn sum_squares(&self) -> Result<f64> {
        match self {
            Storage::Cpu(CpuStorage::F32(x)) => Ok(twin::sum_squares(x)),
            Storage::Cpu(CpuStorage::F64(x)) => Ok(twin::sum_squares(x)),
            Storage::Cuda(x) => Ok(add_partials(&x.hmc_sum_squares()?)),
        }
    }

    /// `Σ [log p(self) − log p(old)]` (untempered) in f64, as [`Storage::sum_squares`].
    ///
    /// # Errors
    /// Buffers of different lengths, dtypes or devices; device errors.
    pub fn prior_difference(&self, old: &Storage, prior: &PriorArgs) -> Result<f64> {
        match (self, old) {
            (Storage::Cpu(CpuStorage::F32(x)), Storage::Cpu(CpuStorage::F32(y)))
                if x.len() == y.len() =>
            {
                Ok(twin::prior_difference_sum(prior, x, y))
            }
            (Storage::Cpu(CpuStorage::F64(x)), Storage::Cpu(CpuStorage::F64(y)))
                if x.len() == y.len() =>
            {
                Ok(twin::prior_difference_sum(prior, x, y))
            }
            (Storage::Cuda(x), Storage::Cuda(y)) if x.len() == y.len() => {
                Ok(add_partials(&x.hmc_prior_difference(y, prior)?))
            }
            (x, y) => Err(mismatch("prior difference", x, y)),
        }
    }
}

/// One fused leapfrog update ([`LeapfrogArgs`]) of the flat tensors `theta` and `p` from the
/// likelihood gradient `g`, all on one device with one element type. The update runs in place:
/// each buffer is moved out of its tensor without a copy when the tensor is its only holder
/// (else copied first), and returned as a new leaf tensor of the same shape.
///
/// # Errors
/// Tensors of different lengths, element types or devices; device errors.
pub fn leapfrog_update(
    theta: Tensor,
    p: Tensor,
    g: &Tensor,
    h: &LeapfrogArgs,
) -> Result<(Tensor, Tensor)> {
    let (theta_shape, p_shape) = (theta.shape(), p.shape());
    let mut t = theta.into_storage()?;
    let mut m = p.into_storage()?;
    t.hmc_leapfrog(&mut m, g.storage(), h)?;
    Ok((
        Tensor::from_storage(t, theta_shape),
        Tensor::from_storage(m, p_shape),
    ))
}

/// `Σ x²` of a tensor in f64, reduced on its device ([`Storage::sum_squares`]).
///
/// # Errors
/// Device errors.
pub fn sum_squares(x: &Tensor) -> Result<f64> {
    x.storage().sum_squares()
}

/// `Σ [log p(new) − log p(old)]` (untempered) over two tensors of equal length, reduced on
/// their device ([`Storage::prior_difference`]).
///
/// # Errors
/// Tensors of different lengths, element types or devices; device errors.
pub fn prior_difference(new: &Tensor, old: &Tensor, prior: &PriorArgs) -> Result<f64> {
    new.storage().prior_difference(old.storage(), prior)
}
