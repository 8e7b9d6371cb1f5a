//! Small dense linear algebra on slices, for the fixed-size systems the core solves.
//!
//! The matrices here are tiny (2C×2C with C ≤ ~20), stored row-major in caller-provided arrays,
//! so nothing allocates and the firmware links one copy of each routine per scalar type.

mod cholesky;
mod lu;

pub use cholesky::{
    cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place, symmetric_eigen,
};
pub use lu::{lu_factor, lu_solve, lu_solve_in_place};

use crate::real::Real;

/// Dot product of two equal-length slices.
#[inline]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (x, y) in a.iter().zip(b) {
        s += *x * *y;
    }
    s
}
