//! nalgebra's equivalents of two kernels on the core's measured paths (feature `nalgebra`): the
//! 3-pendulum's constraint solve by nalgebra's fixed-size `LU` and a dense layer `y = W x + b`
//! by nalgebra's `gemv_tr` on a view of the weights. The paths themselves use Keel's routines
//! ([`lu_factor`](super::lu_factor)/[`lu_solve`](super::lu_solve), [`Dense`](crate::nn::Dense));
//! these stay for the comparison in the README's "Architecture notes", which measures both on
//! the host (`cargo bench -p keel-benches --bench linalg`) and on the Cortex-M4F
//! (`firmware/measure_linalg.sh`). Results agree with Keel's to rounding, not bitwise.

use nalgebra::{
    Const, DMatrixView, DVectorView, DVectorViewMut, DimMin, RealField, SMatrix, SVector,
};

use num_traits::Float;

use crate::error::{Error, Result};
use crate::real::Real;

/// Solves `a x = b` (`a` row-major `K×K`, as a slice of `K²` values, `b` becomes `x`) by nalgebra's fixed-size LU with
/// partial pivoting, refusing the same pivots Keel's [`lu_factor`](super::lu_factor) refuses.
///
/// # Errors
/// [`Error::CountMismatch`] unless `a` holds `K²` values; [`Error::Singular`] (the first offending column) if a pivot — a diagonal entry of `U` — is
/// not finite or not above `K·ε·max|a|`; nalgebra's own `solve_mut` only refuses exact zeros.
pub fn lu_solve_fixed<T: Real + RealField, const K: usize>(a: &[T], b: &mut [T; K]) -> Result<()>
where
    Const<K>: DimMin<Const<K>, Output = Const<K>>,
{
    if a.len() != K * K {
        return Err(Error::CountMismatch {
            what: "matrix entries",
            expected: K * K,
            got: a.len(),
        });
    }
    let mut scale = <T as Real>::ZERO;
    for v in a {
        let v = Float::abs(*v);
        if v > scale {
            scale = v;
        }
    }
    let tiny = scale * <T as Real>::EPSILON * <T as Real>::from_usize(K);
    let lu = SMatrix::<T, K, K>::from_fn(|i, j| a[i * K + j]).lu();
    let u = lu.u();
    for k in 0..K {
        let p = Float::abs(u[(k, k)]);
        if !(p > tiny) || !Float::is_finite(p) {
            return Err(Error::Singular { column: k });
        }
    }
    let mut x = SVector::<T, K>::from_column_slice(b);
    if !lu.solve_mut(&mut x) {
        return Err(Error::Singular { column: 0 });
    }
    b.copy_from_slice(x.as_slice());
    Ok(())
}

/// `y = W x + b` with `W` row-major `[outputs, inputs]` (nalgebra's column-major view of it is
/// `Wᵀ`, so this is `gemv_tr`), as [`Dense::forward`](crate::nn::Dense::forward) computes on
/// weights typed and aligned in memory (nalgebra cannot view a file's raw bytes).
///
/// # Errors
/// [`Error::ShapeMismatch`] unless `w` holds `outputs × inputs` values and `bias`, `x`, `y`
/// have `outputs`, `inputs`, `outputs`.
pub fn dense_forward<T: Real + RealField>(w: &[T], bias: &[T], x: &[T], y: &mut [T]) -> Result<()> {
    let (inputs, outputs) = (x.len(), y.len());
    let check = |what, expected: usize, got: usize| {
        if expected == got {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what,
                expected,
                got,
            })
        }
    };
    check("dense weight", inputs * outputs, w.len())?;
    check("dense bias", outputs, bias.len())?;
    let wt = DMatrixView::from_slice(w, inputs, outputs);
    let mut yv = DVectorViewMut::from_slice(y, outputs);
    yv.copy_from_slice(bias);
    yv.gemv_tr(
        <T as Real>::ONE,
        &wt,
        &DVectorView::from_slice(x, inputs),
        <T as Real>::ONE,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{lu_factor, lu_solve};

    /// The constraint system's shape `[[0, S], [−S, A]]` (S symmetric positive definite, A
    /// antisymmetric) at C = 3, as `Mechanics::hamiltonian_rate` assembles it.
    fn saddle(seed: u64) -> [[f64; 6]; 6] {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let g: [[f64; 3]; 3] = core::array::from_fn(|_| core::array::from_fn(|_| next()));
        let mut k = [[0.0; 6]; 6];
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|c| g[i][c] * g[j][c]).sum::<f64>() + (i == j) as u8 as f64;
                k[i][3 + j] = s;
                k[3 + i][j] = -s;
                if j > i {
                    let a = next();
                    k[3 + i][3 + j] = a;
                    k[3 + j][3 + i] = -a;
                }
            }
        }
        k
    }

    #[test]
    fn fixed_lu_agrees_with_keel_on_saddle_systems() {
        for seed in 0..50 {
            let a = saddle(seed);
            let b0: [f64; 6] =
                core::array::from_fn(|i| (i as f64 - 2.5) * 0.7 + seed as f64 * 0.01);
            let mut x = b0;
            lu_solve_fixed(a.as_flattened(), &mut x).unwrap();
            let mut lu = a;
            let mut perm = [0usize; 6];
            let mut scratch = [0.0; 6];
            let mut y = b0;
            lu_factor(lu.as_flattened_mut(), 6, &mut perm).unwrap();
            lu_solve(lu.as_flattened(), 6, &perm, &mut y, &mut scratch).unwrap();
            for i in 0..6 {
                let r: f64 = (0..6).map(|j| a[i][j] * x[j]).sum();
                assert!((r - b0[i]).abs() < 1e-12, "seed {seed} residual {i}");
                assert!(
                    (x[i] - y[i]).abs() <= 1e-12 * (1.0 + y[i].abs()),
                    "seed {seed} x{i}"
                );
            }
        }
    }

    #[test]
    fn fixed_lu_refuses_what_keel_refuses() {
        // Rank 1, and a NaN: Keel's lu_factor refuses both.
        let a = [[1.0f64, 2.0], [2.0, 4.0]];
        assert_eq!(
            lu_solve_fixed(a.as_flattened(), &mut [1.0, 1.0]),
            Err(Error::Singular { column: 1 })
        );
        let nan = [[f64::NAN, 0.0], [0.0, 1.0]];
        assert!(lu_solve_fixed(nan.as_flattened(), &mut [1.0, 1.0]).is_err());
        // Numerically singular in f32: a pivot of rounding size.
        let a = [[1.0f32, 1.0], [1.0, 1.0 + 1e-8]];
        assert_eq!(
            lu_solve_fixed(a.as_flattened(), &mut [1.0, 1.0]),
            Err(Error::Singular { column: 1 })
        );
    }

    #[test]
    fn dense_forward_is_w_x_plus_b_and_checks_shapes() {
        let w = [1.0f32, 2.0, 3.0, -1.0, 0.5, 4.0]; // 2 × 3, row-major
        let mut y = [0.0f32; 2];
        dense_forward(&w, &[0.25, -1.0], &[1.0, -2.0, 0.5], &mut y).unwrap();
        assert_eq!(y, [1.0 - 4.0 + 1.5 + 0.25, -1.0 - 1.0 + 2.0 - 1.0]);
        assert!(matches!(
            dense_forward(&w[..5], &[0.0; 2], &[0.0; 3], &mut y),
            Err(Error::ShapeMismatch {
                what: "dense weight",
                ..
            })
        ));
        assert!(matches!(
            dense_forward(&w, &[0.0; 1], &[0.0; 3], &mut y),
            Err(Error::ShapeMismatch {
                what: "dense bias",
                ..
            })
        ));
    }
}
