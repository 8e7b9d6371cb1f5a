//! Cholesky factorisation and triangular solves, in place on row-major square matrices, and a
//! cyclic Jacobi eigensolver for small symmetric matrices.
//!
//! These serve the Gaussian processes: the exact GP's kernel matrix (`K + σ²D = L Lᵀ`), the
//! WISKI refactorisation (`I + S₀ᵀ A S₀ = R Rᵀ`, well conditioned by construction) and the
//! square root of the grid kernel `K_UU` (whose eigenvalues decay to rounding level, so a
//! Cholesky factor does not exist in floating point but a clamped eigen-root does).

use crate::error::{Error, Result};
use crate::real::Real;

use super::{check_square, dot_lanes};

fn check_system<T>(l: &[T], n: usize, b: &[T]) -> Result<()> {
    check_square(l, n)?;
    if b.len() != n {
        return Err(Error::CountMismatch {
            what: "right-hand side entries",
            expected: n,
            got: b.len(),
        });
    }
    Ok(())
}

/// Factors the symmetric positive-definite `a = L Lᵀ` in place: `L` on and below the diagonal,
/// the strict upper triangle set to zero. Only the lower triangle of `a` is read.
///
/// # Errors
/// [`Error::CountMismatch`] if `a` is not `n×n`; [`Error::NotPositiveDefinite`] with the
/// failing pivot (its index and the value that should have been positive) if a pivot is not
/// positive and finite.
pub fn cholesky_in_place<T: Real>(a: &mut [T], n: usize) -> Result<()> {
    check_square(a, n)?;
    cholesky_body(a, n)
}

/// [`cholesky_in_place`] on a `C×C` array, for the small fixed-size systems of a hot path (the
/// constraint Gram matrix of the dynamics): the same code, compiled for the constant size (no
/// index checks left, loops unrolled) instead of called with a run-time `n`.
///
/// # Errors
/// As [`cholesky_in_place`] (never [`Error::CountMismatch`]).
#[inline]
pub(crate) fn cholesky_fixed<T: Real, const C: usize>(a: &mut [[T; C]; C]) -> Result<()> {
    cholesky_body(a.as_flattened_mut(), C)
}

/// [`cholesky_in_place`] with its inner products summed by [`dot_lanes`] (8 interleaved lanes, a
/// loop the compiler vectorises): for the large, well-conditioned factorisations of a hot path
/// (WISKI's refactorisation, `m×m` with m in the hundreds), where the sequential sums of
/// [`cholesky_in_place`] cannot use SIMD. The same arithmetic up to the order of the sums.
///
/// # Errors
/// As [`cholesky_in_place`].
pub fn cholesky_lanes_in_place<T: Real>(a: &mut [T], n: usize) -> Result<()> {
    check_square(a, n)?;
    cholesky_with(a, n, |acc, x, y| acc - dot_lanes(x, y))
}

/// The factorisation behind [`cholesky_in_place`] and [`cholesky_fixed`] (`a` holds `n×n`):
/// the inner products subtracted one term at a time.
#[inline(always)]
fn cholesky_body<T: Real>(a: &mut [T], n: usize) -> Result<()> {
    cholesky_with(a, n, |mut acc, x, y| {
        for (p, q) in x.iter().zip(y) {
            acc -= *p * *q;
        }
        acc
    })
}

/// The Cholesky–Crout loop over `a` (`n×n`, checked by the caller), with `sub_dot(acc, x, y)`
/// returning `acc − x·y`: the one place the two summation orders differ.
#[inline(always)]
fn cholesky_with<T: Real>(
    a: &mut [T],
    n: usize,
    sub_dot: impl Fn(T, &[T], &[T]) -> T,
) -> Result<()> {
    for j in 0..n {
        let row = j * n;
        let d = sub_dot(a[row + j], &a[row..row + j], &a[row..row + j]);
        if !(d > T::ZERO) || !d.is_finite() {
            return Err(Error::NotPositiveDefinite {
                pivot: j,
                value: d.as_f64(),
            });
        }
        let d = d.sqrt();
        a[row + j] = d;
        for i in j + 1..n {
            let s = sub_dot(a[i * n + j], &a[i * n..i * n + j], &a[row..row + j]);
            a[i * n + j] = s / d;
        }
        a[row + j + 1..row + n].fill(T::ZERO);
    }
    Ok(())
}

/// Solves `L x = b` in place (`b` becomes `x`) for the lower-triangular `L` (row-major `n×n`),
/// skipping the leading zeros of `b` (a sparse right-hand side costs only its tail).
///
/// # Errors
/// [`Error::CountMismatch`] on wrong lengths; [`Error::Singular`] on a zero diagonal.
pub fn solve_lower_in_place<T: Real>(l: &[T], n: usize, b: &mut [T]) -> Result<()> {
    check_system(l, n, b)?;
    solve_lower_body(l, n, b)
}

/// [`solve_lower_in_place`] for a `C×C` factor from [`cholesky_fixed`].
///
/// # Errors
/// As [`solve_lower_in_place`] (never [`Error::CountMismatch`]).
#[inline]
pub(crate) fn solve_lower_fixed<T: Real, const C: usize>(
    l: &[[T; C]; C],
    b: &mut [T; C],
) -> Result<()> {
    solve_lower_body(l.as_flattened(), C, b)
}

#[inline(always)]
fn solve_lower_body<T: Real>(l: &[T], n: usize, b: &mut [T]) -> Result<()> {
    let first = b.iter().position(|v| *v != T::ZERO).unwrap_or(n);
    for i in first..n {
        let mut s = b[i];
        for k in first..i {
            s -= l[i * n + k] * b[k];
        }
        let d = l[i * n + i];
        if d == T::ZERO {
            return Err(Error::Singular { column: i });
        }
        b[i] = s / d;
    }
    Ok(())
}

/// Solves `Lᵀ x = b` in place for the lower-triangular `L` (row-major `n×n`).
///
/// # Errors
/// As [`solve_lower_in_place`].
pub fn solve_lower_transpose_in_place<T: Real>(l: &[T], n: usize, b: &mut [T]) -> Result<()> {
    check_system(l, n, b)?;
    solve_lower_transpose_body(l, n, b)
}

/// [`solve_lower_transpose_in_place`] for a `C×C` factor from [`cholesky_fixed`].
///
/// # Errors
/// As [`solve_lower_transpose_in_place`] (never [`Error::CountMismatch`]).
#[inline]
pub(crate) fn solve_lower_transpose_fixed<T: Real, const C: usize>(
    l: &[[T; C]; C],
    b: &mut [T; C],
) -> Result<()> {
    solve_lower_transpose_body(l.as_flattened(), C, b)
}

#[inline(always)]
fn solve_lower_transpose_body<T: Real>(l: &[T], n: usize, b: &mut [T]) -> Result<()> {
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        let d = l[i * n + i];
        if d == T::ZERO {
            return Err(Error::Singular { column: i });
        }
        b[i] = s / d;
    }
    Ok(())
}

/// Eigen-decomposition of the symmetric `a` (row-major `n×n`) by cyclic Jacobi rotations:
/// on return the diagonal of `a` holds the eigenvalues and column `j` of `v` the eigenvector of
/// `a[j][j]` (`a = V Λ Vᵀ`, `V` orthogonal). Jacobi is slow (`O(n³)` per sweep, 6–10 sweeps)
/// but small, allocation-free and accurate to rounding in every eigenvalue, including the tiny
/// ones of a smooth kernel matrix.
///
/// # Errors
/// [`Error::CountMismatch`] on wrong lengths; [`Error::NonFinite`] if `a` holds NaN or ±∞;
/// [`Error::TooManySteps`] if 50 sweeps do not converge (not seen for finite input).
pub fn symmetric_eigen<T: Real>(a: &mut [T], n: usize, v: &mut [T]) -> Result<()> {
    check_square(a, n)?;
    check_square(v, n)?;
    if let Some(index) = a.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite { index, t: 0.0 });
    }
    for i in 0..n {
        for j in 0..n {
            v[i * n + j] = if i == j { T::ONE } else { T::ZERO };
        }
    }
    const MAX_SWEEPS: usize = 50;
    // Off-diagonal entries below ε‖A‖_F/n are rounding noise: set them to zero instead of
    // rotating (the eigenvalues then carry an absolute error of order ε‖A‖, as any backward-
    // stable method's do). Converged when a whole sweep needs no rotation.
    let norm = a.iter().fold(T::ZERO, |acc, x| acc + *x * *x).sqrt();
    let tiny = T::EPSILON * norm / T::from_usize(n.max(1));
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= tiny {
                    a[p * n + q] = T::ZERO;
                    a[q * n + p] = T::ZERO;
                    continue;
                }
                rotated = true;
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                // Rotation angle: tan 2θ = 2 a_pq / (a_qq − a_pp), with the smaller root
                // t = tan θ for stability.
                let theta = (aqq - app) / (T::TWO * apq);
                let t = {
                    let sign = if theta < T::ZERO { -T::ONE } else { T::ONE };
                    sign / (theta.abs() + (theta * theta + T::ONE).sqrt())
                };
                let c = T::ONE / (t * t + T::ONE).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
                a[p * n + q] = T::ZERO;
                a[q * n + p] = T::ZERO;
            }
        }
        if !rotated {
            return Ok(());
        }
    }
    Err(Error::TooManySteps {
        t: 0.0,
        max_steps: MAX_SWEEPS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_n_is_a_count_mismatch_not_an_overflow() {
        let n = 1usize << (usize::BITS / 2);
        let expected = Err(Error::CountMismatch {
            what: "matrix entries",
            expected: usize::MAX,
            got: 0,
        });
        assert_eq!(cholesky_in_place::<f64>(&mut [], n), expected);
        assert_eq!(solve_lower_in_place::<f64>(&[], n, &mut []), expected);
        assert_eq!(
            solve_lower_transpose_in_place::<f64>(&[], n, &mut []),
            expected
        );
        assert_eq!(symmetric_eigen::<f64>(&mut [], n, &mut []), expected);
    }

    /// The lane-summed factorisation equals the sequential one to rounding on a 37×37 SPD
    /// matrix (a length that leaves a tail after the 8 lanes), and refuses the same matrices.
    #[test]
    fn lane_cholesky_agrees_with_the_sequential_one() {
        const N: usize = 37;
        let n = N;
        let mut a = [0.0f64; N * N];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (-((i as f64 - j as f64) / 6.0).powi(2)).exp();
            }
            a[i * n + i] += 0.1;
        }
        let (mut l1, mut l2) = (a, a);
        cholesky_in_place(&mut l1, n).unwrap();
        cholesky_lanes_in_place(&mut l2, n).unwrap();
        for (x, y) in l1.iter().zip(&l2) {
            assert!((x - y).abs() < 1e-12 * (1.0 + x.abs()), "{x} {y}");
        }
        let mut bad = a;
        bad[5 * n + 5] = -1.0;
        let mut bad2 = bad;
        let pivot = |r: Result<()>| match r {
            Err(Error::NotPositiveDefinite { pivot, .. }) => Some(pivot),
            _ => None,
        };
        let (p1, p2) = (
            pivot(cholesky_lanes_in_place(&mut bad, n)),
            pivot(cholesky_in_place(&mut bad2, n)),
        );
        assert!(p1.is_some() && p1 == p2, "{p1:?} {p2:?}");
        assert!(cholesky_lanes_in_place::<f64>(&mut [0.0; 3], 2).is_err());
    }

    #[test]
    fn cholesky_reconstructs_and_solves() {
        let a0 = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let mut l = a0;
        cholesky_in_place(&mut l, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a0[i * 3 + j]).abs() < 1e-14);
            }
        }
        // Solve A x = b through L and Lᵀ.
        let b = [1.0, -2.0, 0.5];
        let mut x = b;
        solve_lower_in_place(&l, 3, &mut x).unwrap();
        solve_lower_transpose_in_place(&l, 3, &mut x).unwrap();
        for i in 0..3 {
            let r: f64 = (0..3).map(|k| a0[i * 3 + k] * x[k]).sum();
            assert!((r - b[i]).abs() < 1e-14);
        }
    }

    #[test]
    fn cholesky_reports_the_failing_pivot() {
        let mut a = [1.0, 2.0, 2.0, 1.0];
        match cholesky_in_place(&mut a, 2) {
            Err(Error::NotPositiveDefinite { pivot, value }) => {
                assert_eq!(pivot, 1);
                assert!((value + 3.0).abs() < 1e-14);
            }
            other => panic!("{other:?}"),
        }
        let mut nan = [f64::NAN];
        assert!(cholesky_in_place(&mut nan, 1).is_err());
    }

    #[test]
    fn jacobi_diagonalises() {
        let a0 = [
            2.0, -1.0, 0.0, 0.3, -1.0, 2.0, -1.0, 0.0, 0.0, -1.0, 2.0, 0.7, 0.3, 0.0, 0.7, 1.0,
        ];
        let mut a = a0;
        let mut v = [0.0; 16];
        symmetric_eigen(&mut a, 4, &mut v).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let r: f64 = (0..4)
                    .map(|k| v[i * 4 + k] * a[k * 4 + k] * v[j * 4 + k])
                    .sum();
                assert!((r - a0[i * 4 + j]).abs() < 1e-13, "{i} {j}");
                let o: f64 = (0..4).map(|k| v[k * 4 + i] * v[k * 4 + j]).sum();
                assert!((o - if i == j { 1.0 } else { 0.0 }).abs() < 1e-13);
            }
        }
        let mut bad = [f64::NAN, 0.0, 0.0, 1.0];
        assert!(symmetric_eigen(&mut bad, 2, &mut v[..4]).is_err());
    }
}
