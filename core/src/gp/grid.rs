//! Regular interpolation grids and Keys cubic-convolution weights (the sparse rows of `W`).

use crate::error::{Error, Result};
use crate::real::Real;

/// Most non-zero interpolation weights of one point: `4^D` with `D ≤ 3`.
pub const MAX_NONZEROS: usize = 64;

/// Where the grid points sit relative to the bounds the user gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// `u_j = lo + j(hi − lo)/(G − 1)`: the end points are grid points. Cells at the ends use
    /// Keys' boundary condition (the missing outer node is extrapolated as
    /// `f₋₁ = 3f₀ − 3f₁ + f₂`), which keeps the interpolant cubic-accurate up to the bounds.
    Endpoints,
    /// The reference's (gpytorch `create_grid(extend=True)`) grid:
    /// `linspace(lo − δ, hi + δ, G)`, `δ = (hi − lo)/(G − 2)`, and its boundary rule: a point
    /// whose stencil would leave the grid gets weight 1 on the nearest of the four end nodes.
    Extended,
}

impl Convention {
    /// `endpoints` or `extended` (also `reference`).
    pub fn from_name(s: &str) -> Option<Convention> {
        match s {
            "endpoints" => Some(Convention::Endpoints),
            "extended" | "reference" => Some(Convention::Extended),
            _ => None,
        }
    }
}

/// A regular `G₁ × … × G_D` grid (`D ≤ 3`) with its interpolation rule. The flattened index of
/// node `(i₁, …, i_D)` is `Σ_k i_k Π_{j>k} G_j` (first dimension slowest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid<T: Real, const D: usize> {
    origin: [T; D],
    step: [T; D],
    size: [usize; D],
    convention: Convention,
    clamp: bool,
}

impl<T: Real, const D: usize> Grid<T, D> {
    /// A grid over `[lo_k, hi_k]` with `size_k` nodes per dimension.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `D` outside 1..=3, a dimension with fewer than 4 nodes
    /// (`grid size`), a node count `Π size_k` that overflows `usize` (`grid nodes`, the
    /// offending dimension's size as the value), or bounds that are not finite with `lo < hi`
    /// (`grid bounds`).
    pub fn new(lo: [T; D], hi: [T; D], size: [usize; D], convention: Convention) -> Result<Self> {
        if D == 0 || D > 3 {
            return Err(Error::InvalidParameter {
                name: "grid dimension (1 to 3)",
                value: D as f64,
            });
        }
        let mut origin = [T::ZERO; D];
        let mut step = [T::ZERO; D];
        let mut nodes = 1usize;
        for k in 0..D {
            if size[k] < 4 {
                return Err(Error::InvalidParameter {
                    name: "grid size (at least 4 points per dimension)",
                    value: size[k] as f64,
                });
            }
            // `len()` and the flattened node indices stay below Π size_k: it must fit.
            nodes = nodes.checked_mul(size[k]).ok_or(Error::InvalidParameter {
                name: "grid nodes (the product of the sizes overflows usize)",
                value: size[k] as f64,
            })?;
            if !(lo[k].is_finite() && hi[k].is_finite() && lo[k] < hi[k]) {
                return Err(Error::InvalidParameter {
                    name: "grid bounds (finite, lo < hi)",
                    value: (hi[k] - lo[k]).as_f64(),
                });
            }
            let g = T::from_usize(size[k]);
            match convention {
                Convention::Endpoints => {
                    origin[k] = lo[k];
                    step[k] = (hi[k] - lo[k]) / (g - T::ONE);
                }
                Convention::Extended => {
                    let delta = (hi[k] - lo[k]) / (g - T::TWO);
                    origin[k] = lo[k] - delta;
                    step[k] = (hi[k] - lo[k] + T::TWO * delta) / (g - T::ONE);
                }
            }
        }
        Ok(Grid {
            origin,
            step,
            size,
            convention,
            clamp: false,
        })
    }

    /// Clamp points outside the grid onto its edge instead of reporting
    /// [`Error::OutOfGrid`].
    pub fn clamping(mut self, clamp: bool) -> Self {
        self.clamp = clamp;
        self
    }

    /// Nodes per dimension.
    pub fn size(&self) -> &[usize; D] {
        &self.size
    }

    /// Total number of nodes `m = Π G_k` (checked to fit in `usize` by [`Grid::new`]).
    pub fn len(&self) -> usize {
        self.size.iter().fold(1, |m, &g| m.saturating_mul(g))
    }

    /// Never true (a grid has at least 4 nodes per dimension); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The convention.
    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// Node spacing in dimension `k`.
    ///
    /// # Panics
    /// If `k ≥ D` (a dimension, not data: callers loop over `0..D`).
    pub fn step(&self, k: usize) -> T {
        debug_assert!(k < D, "grid dimension {k} of {D}");
        self.step[k]
    }

    /// Coordinate of node `j` in dimension `k` (`j` may lie past the grid: the line goes on).
    ///
    /// # Panics
    /// If `k ≥ D` (a dimension, not data: callers loop over `0..D`).
    pub fn coordinate(&self, k: usize, j: usize) -> T {
        debug_assert!(k < D, "grid dimension {k} of {D}");
        self.origin[k] + T::from_usize(j) * self.step[k]
    }

    /// Number of non-zero weights per point, `4^D`.
    pub fn nonzeros(&self) -> usize {
        1 << (2 * D)
    }

    /// The interpolation weights of `x`: writes `4^D` (flattened node index, weight) pairs into
    /// `index` and `weight` and returns how many. Indices within a point are distinct; weights
    /// sum to 1.
    ///
    /// # Errors
    /// [`Error::OutOfGrid`] if a coordinate is outside `[u₀, u_{G−1}]` (beyond a 10⁻⁶-step
    /// tolerance) and the grid does not clamp, or is NaN (never clamped);
    /// [`Error::ScratchTooSmall`] if the output slices hold fewer than `4^D` entries.
    pub fn weights(&self, x: &[T; D], index: &mut [usize], weight: &mut [T]) -> Result<usize> {
        let nnz = self.nonzeros();
        if index.len() < nnz || weight.len() < nnz {
            return Err(Error::ScratchTooSmall {
                needed: nnz,
                got: index.len().min(weight.len()),
            });
        }
        let mut idx1 = [[0usize; 4]; 3];
        let mut w1 = [[T::ZERO; 4]; 3];
        for k in 0..D {
            let (i, w) = self.weights_1d(k, x[k])?;
            idx1[k] = i;
            w1[k] = w;
        }
        for (e, (ie, we)) in index
            .iter_mut()
            .zip(weight.iter_mut())
            .take(nnz)
            .enumerate()
        {
            let mut flat = 0usize;
            let mut w = T::ONE;
            for k in 0..D {
                let digit = (e >> (2 * (D - 1 - k))) & 3;
                flat = flat * self.size[k] + idx1[k][digit];
                w *= w1[k][digit];
            }
            *ie = flat;
            *we = w;
        }
        Ok(nnz)
    }

    fn weights_1d(&self, k: usize, x: T) -> Result<([usize; 4], [T; 4])> {
        let g = self.size[k];
        let last = T::from_usize(g - 1);
        let mut t = (x - self.origin[k]) / self.step[k];
        let tol = T::from_f64(1e-6);
        if t.is_nan() || (!self.clamp && (t < -tol || t > last + tol)) {
            return Err(Error::OutOfGrid {
                dim: k,
                value: x.as_f64(),
                lo: self.origin[k].as_f64(),
                hi: self.coordinate(k, g - 1).as_f64(),
            });
        }
        t = t.max(T::ZERO).min(last);
        // i0 = min(floor(t), G − 2): the last node belongs to the last cell (t ≥ 0 here, so the
        // truncating cast is a floor).
        let i0 = (t.as_f64() as usize).min(g - 2);
        let r = t - T::from_usize(i0);
        let mut w = [
            keys(r + T::ONE),
            keys(r),
            keys(r - T::ONE),
            keys(r - T::TWO),
        ];
        match self.convention {
            Convention::Endpoints => {
                if i0 == 0 {
                    // Nodes −1, 0, 1, 2 → 0, 1, 2 (+ node 3 with weight 0).
                    let c = w[0];
                    let out = [
                        w[1] + T::from_f64(3.0) * c,
                        w[2] - T::from_f64(3.0) * c,
                        w[3] + c,
                    ];
                    Ok(([0, 1, 2, 3], [out[0], out[1], out[2], T::ZERO]))
                } else if i0 == g - 2 {
                    // Nodes G−3, G−2, G−1, G → G−3, G−2, G−1 (+ node G−4 with weight 0).
                    let c = w[3];
                    let out = [
                        w[0] + c,
                        w[1] - T::from_f64(3.0) * c,
                        w[2] + T::from_f64(3.0) * c,
                    ];
                    Ok((
                        [g - 4, g - 3, g - 2, g - 1],
                        [T::ZERO, out[0], out[1], out[2]],
                    ))
                } else {
                    Ok(([i0 - 1, i0, i0 + 1, i0 + 2], w))
                }
            }
            Convention::Extended => {
                if i0 == 0 || i0 == g - 2 {
                    let first = if i0 == 0 { 0 } else { g - 4 };
                    let mut best = 0;
                    let mut dist = T::MAX;
                    for j in 0..4 {
                        let d = (t - T::from_usize(first + j)).abs();
                        if d < dist {
                            dist = d;
                            best = j;
                        }
                    }
                    w = [T::ZERO; 4];
                    w[best] = T::ONE;
                    Ok(([first, first + 1, first + 2, first + 3], w))
                } else {
                    Ok(([i0 - 1, i0, i0 + 1, i0 + 2], w))
                }
            }
        }
    }
}

/// Keys' cubic convolution kernel with `a = −1/2`.
#[inline]
pub fn keys<T: Real>(s: T) -> T {
    let s = s.abs();
    let s2 = s * s;
    let s3 = s2 * s;
    if s < T::ONE {
        T::from_f64(1.5) * s3 - T::from_f64(2.5) * s2 + T::ONE
    } else if s < T::TWO {
        T::from_f64(-0.5) * s3 + T::from_f64(2.5) * s2 - T::from_f64(4.0) * s + T::TWO
    } else {
        T::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpolate(grid: &Grid<f64, 1>, f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let mut i = [0; 4];
        let mut w = [0.0; 4];
        grid.weights(&[x], &mut i, &mut w).unwrap();
        i.iter()
            .zip(&w)
            .map(|(&j, &wj)| wj * f(grid.coordinate(0, j)))
            .sum()
    }

    #[test]
    fn endpoint_grid_reproduces_quadratics_everywhere() {
        let grid = Grid::new([-1.0], [2.0], [10], Convention::Endpoints).unwrap();
        let f = |x: f64| 0.3 - 1.2 * x + 0.7 * x * x;
        for k in 0..=300 {
            let x = -1.0 + 3.0 * k as f64 / 300.0;
            let v = interpolate(&grid, f, x);
            assert!((v - f(x)).abs() < 1e-12, "x = {x}: {v} vs {}", f(x));
        }
        assert_eq!(grid.coordinate(0, 9), 2.0);
    }

    #[test]
    fn weights_sum_to_one_in_3d_with_distinct_indices() {
        let grid = Grid::new(
            [-1.0, 0.0, 2.0],
            [1.0, 1.0, 3.0],
            [5, 4, 6],
            Convention::Endpoints,
        )
        .unwrap();
        let mut i = [0; 64];
        let mut w = [0.0; 64];
        let n = grid.weights(&[0.9, 0.01, 2.5], &mut i, &mut w).unwrap();
        assert_eq!(n, 64);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        let mut s = i;
        s.sort_unstable();
        assert!(s.windows(2).all(|p| p[0] < p[1]) && s[63] < 120);
    }

    #[test]
    fn extended_grid_matches_the_reference_layout_and_snaps() {
        let grid = Grid::<f64, 1>::new([-1.0], [1.0], [6], Convention::Extended).unwrap();
        // δ = 2/4 = 0.5: nodes −1.5, −0.9, −0.3, 0.3, 0.9, 1.5.
        assert!((grid.coordinate(0, 0) + 1.5).abs() < 1e-15);
        assert!((grid.coordinate(0, 5) - 1.5).abs() < 1e-15);
        let mut i = [0; 4];
        let mut w = [0.0f64; 4];
        grid.weights(&[-1.0], &mut i, &mut w).unwrap();
        assert_eq!((i, w), ([0, 1, 2, 3], [0.0, 1.0, 0.0, 0.0]));
        grid.weights(&[0.0], &mut i, &mut w).unwrap();
        assert_eq!(i, [1, 2, 3, 4]);
        assert!((w[1] - 0.5625).abs() < 1e-12 && (w[0] + 0.0625).abs() < 1e-12);
    }

    #[test]
    fn outside_is_an_error_unless_clamped() {
        let grid = Grid::new([0.0], [1.0], [8], Convention::Endpoints).unwrap();
        let mut i = [0; 4];
        let mut w = [0.0; 4];
        assert!(matches!(
            grid.weights(&[1.2], &mut i, &mut w),
            Err(Error::OutOfGrid { dim: 0, .. })
        ));
        assert!(grid.weights(&[f64::NAN], &mut i, &mut w).is_err());
        let clamped = grid.clamping(true);
        clamped.weights(&[1.2], &mut i, &mut w).unwrap();
        let mut j = [0; 4];
        let mut v = [0.0; 4];
        clamped.weights(&[1.0], &mut j, &mut v).unwrap();
        assert_eq!((i, w), (j, v));
        assert!(Grid::<f64, 1>::new([0.0], [1.0], [3], Convention::Endpoints).is_err());
        // Π size_k overflowing usize is refused (`len()` overflowed: a panic in debug builds).
        let big = 1usize << (usize::BITS / 2);
        assert_eq!(
            Grid::<f64, 2>::new([0.0; 2], [1.0; 2], [big, big], Convention::Endpoints),
            Err(Error::InvalidParameter {
                name: "grid nodes (the product of the sizes overflows usize)",
                value: big as f64,
            })
        );
        assert!(Grid::<f64, 1>::new([1.0], [1.0], [8], Convention::Endpoints).is_err());
    }
}
