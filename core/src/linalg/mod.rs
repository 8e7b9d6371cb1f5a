//! Small dense linear algebra on slices, for the fixed-size systems the core solves.
//!
//! The matrices here are tiny (2C×2C with C ≤ ~20), stored row-major in caller-provided arrays,
//! so nothing allocates and the firmware links one copy of each routine per scalar type.

mod cholesky;
mod lu;
#[cfg(feature = "nalgebra")]
pub mod nalgebra;

pub(crate) use cholesky::{cholesky_fixed, solve_lower_fixed, solve_lower_transpose_fixed};
pub use cholesky::{
    cholesky_in_place, cholesky_lanes_in_place, solve_lower_in_place,
    solve_lower_transpose_in_place, symmetric_eigen,
};
pub use lu::{lu_factor, lu_solve, lu_solve_in_place};

use crate::error::{Error, Result};
use crate::real::Real;

/// Checks that `a` holds an `n×n` matrix. `n²` is not formed unchecked: a large `n` (a caller's
/// value) must not overflow, which would panic in debug builds and, wrapped, pass the check.
///
/// # Errors
/// [`Error::CountMismatch`] (`expected` saturated at `usize::MAX` when `n²` overflows).
pub(crate) fn check_square<T>(a: &[T], n: usize) -> Result<()> {
    let expected = n.saturating_mul(n);
    if a.len() != expected {
        return Err(Error::CountMismatch {
            what: "matrix entries",
            expected,
            got: a.len(),
        });
    }
    Ok(())
}

/// Dot product of two equal-length slices.
#[inline]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (x, y) in a.iter().zip(b) {
        s += *x * *y;
    }
    s
}

/// Dot product summed in 8 interleaved lanes (then the lanes in order): the same result on
/// every target for the same inputs, and a loop the compiler turns into SIMD, which a strictly
/// sequential sum cannot be. For long vectors on the hot path (the GP updates).
#[inline]
pub fn dot_lanes<T: Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let split = n - n % 8;
    let mut acc = [T::ZERO; 8];
    for (ca, cb) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (x, y) in a[split..n].iter().zip(&b[split..n]) {
        s += *x * *y;
    }
    s
}
