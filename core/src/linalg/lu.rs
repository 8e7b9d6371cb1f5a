//! LU factorisation with partial (row) pivoting, in place on a row-major square matrix.
//!
//! Used for the 2C×2C antisymmetric system `DΦᵀ J DΦ λ = DΦᵀ J ∇H` of the constrained
//! dynamics. That matrix has a zero leading C×C block, so a factorisation without pivoting would
//! divide by zero at the first step: row pivoting is required, not an optimisation.

use crate::error::{Error, Result};
use crate::real::Real;

/// Factors `a = P L U` in place (`L` unit lower, below the diagonal; `U` on and above it).
/// `perm[i]` receives the original row now in position `i`.
///
/// # Errors
/// [`Error::CountMismatch`] if `a` is not `n×n` (`expected` saturates at `usize::MAX` when
/// `n²` overflows) or `perm` shorter than `n`; [`Error::Singular`] if a pivot is zero,
/// non-finite, or below `n·ε·max|a|` (numerically singular).
pub fn lu_factor<T: Real>(a: &mut [T], n: usize, perm: &mut [usize]) -> Result<()> {
    super::check_square(a, n)?;
    if perm.len() < n {
        return Err(Error::CountMismatch {
            what: "permutation slots",
            expected: n,
            got: perm.len(),
        });
    }
    // A NaN entry leaves `scale` alone here and is caught by the pivot test below.
    let mut scale = T::ZERO;
    for &v in a.iter() {
        let v = v.abs();
        if v > scale {
            scale = v;
        }
    }
    let tiny = scale * T::EPSILON * T::from_usize(n);
    for (i, p) in perm.iter_mut().enumerate().take(n) {
        *p = i;
    }
    for k in 0..n {
        // Choose the pivot row.
        let mut piv = k;
        let mut best = a[k * n + k].abs();
        for r in k + 1..n {
            let v = a[r * n + k].abs();
            if v > best {
                best = v;
                piv = r;
            }
        }
        if !(best > tiny) || !best.is_finite() {
            return Err(Error::Singular { column: k });
        }
        if piv != k {
            for c in 0..n {
                a.swap(k * n + c, piv * n + c);
            }
            perm.swap(k, piv);
        }
        let inv = T::ONE / a[k * n + k];
        let (upper, lower) = a.split_at_mut((k + 1) * n);
        let pivot_row = &upper[k * n..(k + 1) * n];
        for row in lower.chunks_exact_mut(n) {
            let l = row[k] * inv;
            row[k] = l;
            if l != T::ZERO {
                for c in k + 1..n {
                    row[c] -= l * pivot_row[c];
                }
            }
        }
    }
    Ok(())
}

/// Solves `A x = b` given the factors from [`lu_factor`]; `b` is overwritten with `x`.
///
/// `scratch` must hold at least `n` values.
///
/// # Errors
/// [`Error::CountMismatch`] on inconsistent lengths; [`Error::IndexOutOfRange`] if an entry of
/// `perm` is not below `n` (a permutation [`lu_factor`] did not write).
pub fn lu_solve<T: Real>(
    lu: &[T],
    n: usize,
    perm: &[usize],
    b: &mut [T],
    scratch: &mut [T],
) -> Result<()> {
    super::check_square(lu, n)?;
    if perm.len() < n || b.len() < n || scratch.len() < n {
        return Err(Error::CountMismatch {
            what: "solve operands",
            expected: n,
            got: b.len(),
        });
    }
    // Apply the permutation.
    for i in 0..n {
        let p = perm[i];
        if p >= n {
            return Err(Error::IndexOutOfRange {
                what: "permutation entry",
                index: p,
                len: n,
            });
        }
        scratch[i] = b[p];
    }
    // Forward substitution with unit L.
    for i in 0..n {
        let row = &lu[i * n..i * n + i];
        let mut s = scratch[i];
        for (l, y) in row.iter().zip(&scratch[..i]) {
            s -= *l * *y;
        }
        scratch[i] = s;
    }
    // Back substitution with U.
    for i in (0..n).rev() {
        let row = &lu[i * n..(i + 1) * n];
        let mut s = scratch[i];
        for c in i + 1..n {
            s -= row[c] * b[c];
        }
        b[i] = s / row[i];
    }
    Ok(())
}

/// Factors `a` and solves `a x = b` in one call (`a` is destroyed, `b` becomes `x`).
///
/// `perm` and `scratch` must hold at least `n` entries each.
///
/// # Errors
/// As [`lu_factor`] and [`lu_solve`].
pub fn lu_solve_in_place<T: Real>(
    a: &mut [T],
    n: usize,
    b: &mut [T],
    perm: &mut [usize],
    scratch: &mut [T],
) -> Result<()> {
    lu_factor(a, n, perm)?;
    lu_solve(a, n, perm, b, scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_antisymmetric_system_with_zero_leading_block() {
        // [[0, s], [-s, a]] with s = 2, a = 0 on a 2×2: needs a row swap.
        let mut a = [0.0f64, 2.0, -2.0, 0.0];
        let mut b = [4.0, 6.0];
        let mut perm = [0usize; 2];
        let mut scratch = [0.0; 2];
        lu_solve_in_place(&mut a, 2, &mut b, &mut perm, &mut scratch).unwrap();
        // 2 x1 = 4, -2 x0 = 6
        assert!((b[0] + 3.0).abs() < 1e-15 && (b[1] - 2.0).abs() < 1e-15);
    }

    #[test]
    fn singular_matrix_is_an_error() {
        let mut a = [1.0f64, 2.0, 2.0, 4.0];
        let mut perm = [0usize; 2];
        assert_eq!(
            lu_factor(&mut a, 2, &mut perm),
            Err(Error::Singular { column: 1 })
        );
        let mut a = [f64::NAN, 0.0, 0.0, 1.0];
        assert!(lu_factor(&mut a, 2, &mut perm).is_err());
    }

    #[test]
    fn huge_n_is_a_count_mismatch_not_an_overflow() {
        // n² overflows usize (it wrapped to 0 and passed the check, or panicked in debug).
        let n = 1usize << (usize::BITS / 2);
        let expected = Err(Error::CountMismatch {
            what: "matrix entries",
            expected: usize::MAX,
            got: 0,
        });
        assert_eq!(lu_factor::<f64>(&mut [], n, &mut []), expected);
        assert_eq!(lu_solve::<f64>(&[], n, &[], &mut [], &mut []), expected);
    }

    #[test]
    fn foreign_permutation_entry_is_an_error() {
        let lu = [1.0f64, 0.0, 0.0, 1.0];
        let mut b = [1.0, 2.0, 3.0];
        let mut scratch = [0.0; 2];
        // b is longer than n: entry 2 would read b[2] (no panic before either, but a wrong
        // answer); entry 7 panicked.
        for p in [2, 7] {
            assert_eq!(
                lu_solve(&lu, 2, &[0, p], &mut b, &mut scratch),
                Err(Error::IndexOutOfRange {
                    what: "permutation entry",
                    index: p,
                    len: 2,
                })
            );
        }
    }

    #[test]
    fn random_systems_match_residual() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for n in 1..9 {
            let mut a = [0.0f64; 64];
            let mut x = [0.0f64; 8];
            for v in a.iter_mut().take(n * n) {
                *v = next();
            }
            for v in x.iter_mut().take(n) {
                *v = next();
            }
            let mut b = [0.0f64; 8];
            for i in 0..n {
                b[i] = (0..n).map(|j| a[i * n + j] * x[j]).sum();
            }
            let mut lu = a;
            let mut perm = [0usize; 8];
            let mut scratch = [0.0; 8];
            lu_solve_in_place(&mut lu[..n * n], n, &mut b[..n], &mut perm, &mut scratch).unwrap();
            for i in 0..n {
                assert!(
                    (b[i] - x[i]).abs() < 1e-10,
                    "n={n} i={i}: {} vs {}",
                    b[i],
                    x[i]
                );
            }
        }
    }
}
