//! The 3×3 matrix exponential and Augerino's affine generators.

use crate::{Error, Real, Result};

/// Taylor degree: with `‖A/2ˢ‖∞ ≤ 1/2` the remainder is below `0.5¹⁹/19! ≈ 1.6e-23` relative to
/// `‖exp(A/2ˢ)‖`, far under `f64`'s epsilon.
const TAYLOR_DEGREE: usize = 18;

/// Most squarings: inputs with `‖A‖∞ > 2⁶³` are refused (their exponential, or the rounding
/// of a rotation by more than 10¹⁸ radians, means nothing in floating point).
const MAX_SQUARINGS: u32 = 64;

/// Augerino's six affine generators in homogeneous coordinates (rows, columns), with the
/// reference's scalings (`augerino/models/uniform_aug.py`, `trans_scale = 0.1`):
///
/// | i | generator | meaning |
/// |---|-----------|---------|
/// | 0 | `0.1·E₀₂` | x-translation |
/// | 1 | `0.1·E₁₂` | y-translation |
/// | 2 | `E₁₀ − E₀₁` | rotation |
/// | 3 | `E₀₀ + E₁₁` | isotropic scale |
/// | 4 | `E₀₀ − E₁₁` | stretch |
/// | 5 | `E₀₁ + E₁₀` | shear |
///
/// `Eᵢⱼ` has a single one in row `i`, column `j`. The translations are in the warp's normalised
/// coordinates ([−1, 1] across the image).
pub const AUGERINO_GENERATORS: [[[f64; 3]; 3]; 6] = [
    [[0.0, 0.0, 0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.1], [0.0, 0.0, 0.0]],
    [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 0.0]],
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
];

/// [`AUGERINO_GENERATORS`] in the scalar type `T` (`0.1` rounded once to `T`).
pub fn augerino_generators<T: Real>() -> [[[T; 3]; 3]; 6] {
    AUGERINO_GENERATORS.map(|g| g.map(|row| row.map(T::from_f64)))
}

/// Augerino's transform `T = exp(Σᵢ εᵢ Gᵢ)` for the six coefficients `ε` (see
/// [`AUGERINO_GENERATORS`]). The warp takes its first two rows.
///
/// # Errors
/// As [`expm3`]: a non-finite coefficient, or coefficients so large that the exponential
/// overflows.
pub fn augerino_transform<T: Real>(eps: &[T; 6]) -> Result<[[T; 3]; 3]> {
    let generators = augerino_generators::<T>();
    let mut a = [[T::zero(); 3]; 3];
    for (e, g) in eps.iter().zip(&generators) {
        for (arow, grow) in a.iter_mut().zip(g) {
            for (x, &gij) in arow.iter_mut().zip(grow) {
                *x += *e * gij;
            }
        }
    }
    expm3(&a)
}

fn matmul<T: Real>(a: &[[T; 3]; 3], b: &[[T; 3]; 3]) -> [[T; 3]; 3] {
    let mut c = [[T::zero(); 3]; 3];
    for (crow, arow) in c.iter_mut().zip(a) {
        for (j, x) in crow.iter_mut().enumerate() {
            *x = arow[0] * b[0][j] + arow[1] * b[1][j] + arow[2] * b[2][j];
        }
    }
    c
}

/// The matrix exponential `exp(A) = Σₖ Aᵏ/k!` of a 3×3 matrix.
///
/// Scaling and squaring: `s` is the smallest integer with `‖A/2ˢ‖∞ ≤ 1/2` (the maximum absolute
/// row sum), `exp(A/2ˢ)` is a degree-18 Taylor polynomial evaluated by Horner's rule
/// (truncation below `1.6e-23` relative), and the result is squared `s` times. The scaling by
/// `2⁻ˢ` is exact. Rounding grows roughly like `2ˢ·ε·‖A‖`, as for every scaling-and-squaring
/// method; for Augerino's transforms (`‖A‖∞` of a few units, `s ≤ 4`) the result agrees with
/// scipy's `expm` to about `1e-15` relative in `f64`. No recursion; at most 64 squarings.
///
/// # Errors
/// [`Error::InvalidParameter`] (`name = "expm3: matrix entry"`) for a NaN or infinite entry;
/// (`"expm3: norm"`) for `‖A‖∞ > 2⁶³`; (`"expm3: result overflows (norm)"`) when the exponential
/// itself is not finite in `T` (e.g. `exp(800)` in `f64`), carrying `‖A‖∞`.
pub fn expm3<T: Real>(a: &[[T; 3]; 3]) -> Result<[[T; 3]; 3]> {
    let mut norm = T::zero();
    for row in a {
        let mut sum = T::zero();
        for &x in row {
            if !x.is_finite() {
                return Err(Error::InvalidParameter {
                    name: "expm3: matrix entry",
                    value: x.as_f64(),
                });
            }
            sum += x.abs();
        }
        norm = norm.max(sum);
    }
    let half = T::from_f64(0.5);
    let mut scaled_norm = norm;
    let mut s = 0u32;
    let mut scale = T::one();
    while scaled_norm > half {
        if s == MAX_SQUARINGS {
            return Err(Error::InvalidParameter {
                name: "expm3: norm",
                value: norm.as_f64(),
            });
        }
        scaled_norm *= half;
        scale *= half;
        s += 1;
    }
    let b = a.map(|row| row.map(|x| x * scale));

    // Horner: exp(B) ≈ I + B(I + B/2(I + B/3(… (I + B/18)))).
    let identity = {
        let mut i = [[T::zero(); 3]; 3];
        for (k, row) in i.iter_mut().enumerate() {
            row[k] = T::one();
        }
        i
    };
    let mut p = identity;
    for k in (1..=TAYLOR_DEGREE).rev() {
        let inv_k = T::one() / T::from_usize(k);
        let mut bp = matmul(&b, &p);
        for (bprow, irow) in bp.iter_mut().zip(&identity) {
            for (x, &i) in bprow.iter_mut().zip(irow) {
                *x = i + *x * inv_k;
            }
        }
        p = bp;
    }
    for _ in 0..s {
        p = matmul(&p, &p);
    }
    if p.iter().flatten().any(|x| !x.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "expm3: result overflows (norm)",
            value: norm.as_f64(),
        });
    }
    Ok(p)
}
