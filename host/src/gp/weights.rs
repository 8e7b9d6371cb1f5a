//! The interpolation weights of one point and their gradient with respect to the point — what a
//! learned feature map needs to move its features through SKI's `W` (Stanton et al., *Kernel
//! Interpolation for Scalable Online Gaussian Processes*, AISTATS 2021: the stem's
//! partial-likelihood step in `online_gp/mlls/streaming_partial_mll.py`, wjmaddox/online_gp,
//! which differentiates gpytorch's cubic interpolation).
//!
//! The weights are the core's ([`keel_core::gp::Grid::weights`]: Keys' cubic convolution with the
//! grid's boundary rule), recomputed here per dimension so that their derivatives can be formed
//! in the same order; a test holds the two equal bit for bit.

use keel_core::gp::{keys, Convention, Grid, MAX_NONZEROS};

use super::hyper::GridSpec;
use crate::error::{Error, Result};

/// `d keys(s) / ds`.
pub(crate) fn keys_derivative(s: f64) -> f64 {
    let (a, sign) = (s.abs(), s.signum());
    if a < 1.0 {
        sign * (4.5 * a * a - 5.0 * a)
    } else if a < 2.0 {
        sign * (-1.5 * a * a + 5.0 * a - 4.0)
    } else {
        0.0
    }
}

/// Indices, weights and `∂weight/∂x` of one coordinate on dimension `k`.
fn weights_1d(
    grid: &Grid<f64, 3>,
    clamp: bool,
    k: usize,
    x: f64,
) -> Result<([usize; 4], [f64; 4], [f64; 4])> {
    let g = grid.size()[k];
    let h = grid.step(k);
    let origin = grid.coordinate(k, 0);
    let last = (g - 1) as f64;
    let t = (x - origin) / h;
    if t.is_nan() || (!clamp && (t < -1e-6 || t > last + 1e-6)) {
        return Err(Error::Core {
            context: "interpolation gradient".into(),
            source: keel_core::Error::OutOfGrid {
                dim: k,
                value: x,
                lo: origin,
                hi: grid.coordinate(k, g - 1),
            },
        });
    }
    let outside = !(0.0..=last).contains(&t);
    let t = t.clamp(0.0, last);
    let i0 = (t as usize).min(g - 2);
    let r = t - i0 as f64;
    let w = [keys(r + 1.0), keys(r), keys(r - 1.0), keys(r - 2.0)];
    let dw = if outside {
        // Clamped onto the grid's edge: constant in x.
        [0.0; 4]
    } else {
        [
            keys_derivative(r + 1.0) / h,
            keys_derivative(r) / h,
            keys_derivative(r - 1.0) / h,
            keys_derivative(r - 2.0) / h,
        ]
    };
    Ok(match grid.convention() {
        Convention::Endpoints if i0 == 0 => {
            let fold = |v: [f64; 4]| [v[1] + 3.0 * v[0], v[2] - 3.0 * v[0], v[3] + v[0], 0.0];
            ([0, 1, 2, 3], fold(w), fold(dw))
        }
        Convention::Endpoints if i0 == g - 2 => {
            let fold = |v: [f64; 4]| [0.0, v[0] + v[3], v[1] - 3.0 * v[3], v[2] + 3.0 * v[3]];
            ([g - 4, g - 3, g - 2, g - 1], fold(w), fold(dw))
        }
        Convention::Extended if i0 == 0 || i0 == g - 2 => {
            // Snapped to the nearest end node: constant in x, so no gradient.
            let first = if i0 == 0 { 0 } else { g - 4 };
            let mut best = 0;
            let mut dist = f64::MAX;
            for j in 0..4 {
                let d = (t - (first + j) as f64).abs();
                if d < dist {
                    dist = d;
                    best = j;
                }
            }
            let mut w = [0.0; 4];
            w[best] = 1.0;
            ([first, first + 1, first + 2, first + 3], w, [0.0; 4])
        }
        _ => ([i0 - 1, i0, i0 + 1, i0 + 2], w, dw),
    })
}

/// The `4^D` (index, weight) pairs of `x` in the core's order, and `∂weight/∂x_k` for each
/// (row-major `[4^D, D]`). The grid is given as a 3-D one whose first `D` dimensions are used.
pub(crate) struct WeightGrad {
    pub(crate) nnz: usize,
    pub(crate) index: [usize; MAX_NONZEROS],
    pub(crate) weight: [f64; MAX_NONZEROS],
    pub(crate) grad: [[f64; 3]; MAX_NONZEROS],
}

/// Weights and their gradients of the point `x` (`x.len()` = D ≤ 3) on `grid`'s first D
/// dimensions.
///
/// # Errors
/// [`Error::Core`] (`OutOfGrid`) for a coordinate off the grid that does not clamp.
pub(crate) fn weight_gradient(grid: &Grid<f64, 3>, clamp: bool, x: &[f64]) -> Result<WeightGrad> {
    let d = x.len();
    let mut one = [([0usize; 4], [0.0; 4], [0.0; 4]); 3];
    for k in 0..d {
        one[k] = weights_1d(grid, clamp, k, x[k])?;
    }
    let nnz = 1 << (2 * d);
    let mut out = WeightGrad {
        nnz,
        index: [0; MAX_NONZEROS],
        weight: [0.0; MAX_NONZEROS],
        grad: [[0.0; 3]; MAX_NONZEROS],
    };
    for e in 0..nnz {
        let mut flat = 0usize;
        let mut w = 1.0;
        let mut digits = [0usize; 3];
        for k in 0..d {
            let digit = (e >> (2 * (d - 1 - k))) & 3;
            digits[k] = digit;
            flat = flat * grid.size()[k] + one[k].0[digit];
            w *= one[k].1[digit];
        }
        out.index[e] = flat;
        out.weight[e] = w;
        for k in 0..d {
            let mut g = one[k].2[digits[k]];
            for (j, o) in one.iter().enumerate().take(d) {
                if j != k {
                    g *= o.1[digits[j]];
                }
            }
            out.grad[e][k] = g;
        }
    }
    Ok(out)
}

/// The first `spec.size.len()` dimensions of `spec` as a 3-D grid (trailing dimensions of 4
/// unused nodes), for [`weight_gradient`].
///
/// # Errors
/// As [`GridSpec::for_dim`].
pub(crate) fn grid_3d(spec: &GridSpec) -> Result<Grid<f64, 3>> {
    let d = spec.size.len();
    let (mut lo, mut hi, mut size) = ([-1.0; 3], [1.0; 3], [4usize; 3]);
    lo[..d].copy_from_slice(&spec.lo);
    hi[..d].copy_from_slice(&spec.hi);
    size[..d].copy_from_slice(&spec.size);
    Grid::new(lo, hi, size, spec.convention).map_err(Error::core("grid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(convention: Convention, size: Vec<usize>) -> GridSpec {
        GridSpec {
            size,
            lo: vec![-1.1],
            hi: vec![1.1],
            convention,
            clamp: false,
        }
    }

    /// Same weights as the core's, bit for bit, and derivatives that match central differences
    /// (interior cells, the end cells of both conventions).
    #[test]
    fn weights_equal_the_core_and_gradients_match_differences() {
        for convention in [Convention::Extended, Convention::Endpoints] {
            let s = spec(convention, vec![9, 7]).for_dim(2).unwrap();
            let g3 = grid_3d(&s).unwrap();
            let core = s.grid::<2>().unwrap();
            for p in [[0.13, -0.41], [-1.05, 0.9], [1.08, -1.09], [0.07, 0.55]] {
                let wg = weight_gradient(&g3, false, &p).unwrap();
                let mut idx = [0usize; MAX_NONZEROS];
                let mut w = [0.0; MAX_NONZEROS];
                let nnz = core.weights(&p, &mut idx, &mut w).unwrap();
                assert_eq!(nnz, wg.nnz);
                assert_eq!(&idx[..nnz], &wg.index[..nnz], "{convention:?} {p:?}");
                assert_eq!(&w[..nnz], &wg.weight[..nnz], "{convention:?} {p:?}");
                for k in 0..2 {
                    let h = 1e-6;
                    let (mut up, mut down) = (p, p);
                    up[k] += h;
                    down[k] -= h;
                    let wu = weight_gradient(&g3, false, &up).unwrap();
                    let wd = weight_gradient(&g3, false, &down).unwrap();
                    for e in 0..nnz {
                        assert_eq!(wu.index[e], wg.index[e]);
                        assert_eq!(wd.index[e], wg.index[e], "a difference across a cell edge");
                        let fd = (wu.weight[e] - wd.weight[e]) / (2.0 * h);
                        assert!(
                            (fd - wg.grad[e][k]).abs() < 1e-7,
                            "{convention:?} {p:?} e{e} k{k}: {} vs {fd}",
                            wg.grad[e][k]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn off_grid_points_are_refused_unless_clamped() {
        let s = spec(Convention::Extended, vec![8]).for_dim(1).unwrap();
        let g3 = grid_3d(&s).unwrap();
        assert!(weight_gradient(&g3, false, &[2.0]).is_err());
        let clamped = weight_gradient(&g3, true, &[2.0]).unwrap();
        assert!(clamped.grad[..4].iter().all(|g| g[0] == 0.0));
        assert!((clamped.weight[..4].iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
