//! Max pooling over `[n, c, h, w]` images, forward and backward, as two CPU kernels that walk
//! each window in place: no patch matrix, no tie mask in memory. They compute what the
//! composition `im2col` (padding −∞) → maximum over the window → its derivative rule → `col2im`
//! computes: the window maximum, and each window's gradient shared equally between the
//! positions that attain the maximum (padding included in the count, as the composition's
//! `−∞` fill). Only where windows overlap do the sums into a pixel run in another order
//! (window by window instead of tap by tap: rounding).

use rayon::prelude::*;

use super::conv::PatchGeom;
use super::float::Float;

/// Elements from which the kernels run on rayon.
const PAR_THRESHOLD: usize = 1 << 15;

/// Calls `f(ki, kj, Some(pixel index in the plane))` for each tap of window `(oi, oj)`, or
/// `None` for a tap in the padding.
#[inline(always)]
fn window(g: &PatchGeom, oi: usize, oj: usize, mut f: impl FnMut(Option<usize>)) {
    for ki in 0..g.kernel[0] {
        let r = (oi * g.stride[0] + ki)
            .checked_sub(g.padding[0])
            .filter(|&r| r < g.h);
        for kj in 0..g.kernel[1] {
            let col = (oj * g.stride[1] + kj)
                .checked_sub(g.padding[1])
                .filter(|&q| q < g.w);
            f(r.zip(col).map(|(r, q)| r * g.w + q));
        }
    }
}

/// Whether the windows tile the image without overlap or padding (stride = kernel, padding 0),
/// the common `k × k` pooling with stride `k`: taps are then plain offsets.
fn is_tiling(g: &PatchGeom) -> bool {
    g.stride == g.kernel && g.padding == [0, 0]
}

/// The window maxima of `x` (`[n, c, h, w]`, the geometry's), `[n, c, oh, ow]`.
pub fn max_pool2d<T: Float>(x: &[T], g: &PatchGeom) -> Vec<T> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let mut out = T::take(g.n * g.c * l);
    out.resize(g.n * g.c * l, T::ZERO);
    if out.is_empty() {
        return out;
    }
    let fill = T::from_f64(f64::NEG_INFINITY);
    let tiled = is_tiling(g);
    let (kh, kw, w) = (g.kernel[0], g.kernel[1], g.w);
    let run = |(p, dst): (usize, &mut [T])| {
        let src = &x[p * plane..][..plane];
        if tiled && kh == 2 && kw == 2 {
            for (oi, drow) in dst.chunks_exact_mut(g.ow).enumerate() {
                let (r0, r1) = (&src[2 * oi * w..][..w], &src[(2 * oi + 1) * w..][..w]);
                for (oj, d) in drow.iter_mut().enumerate() {
                    let (a, b, c, e) = (r0[2 * oj], r0[2 * oj + 1], r1[2 * oj], r1[2 * oj + 1]);
                    // The first of the taps in `(ki, kj)` order that no later one exceeds.
                    let mut m = fill;
                    for v in [a, b, c, e] {
                        if v > m {
                            m = v;
                        }
                    }
                    *d = m;
                }
            }
            return;
        }
        if tiled {
            for (k, d) in dst.iter_mut().enumerate() {
                let at = (k / g.ow) * kh * w + (k % g.ow) * kw;
                let mut m = fill;
                for ki in 0..kh {
                    for &v in &src[at + ki * w..][..kw] {
                        if v > m {
                            m = v;
                        }
                    }
                }
                *d = m;
            }
            return;
        }
        for (k, d) in dst.iter_mut().enumerate() {
            let mut m = fill;
            window(g, k / g.ow, k % g.ow, |at| {
                let v = at.map_or(fill, |i| src[i]);
                if v > m {
                    m = v;
                }
            });
            *d = m;
        }
    };
    if x.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(l).enumerate().for_each(run);
    } else {
        out.chunks_mut(l).enumerate().for_each(run);
    }
    out
}

/// The gradient of [`max_pool2d`] from its input `x`, output `y` and output gradient `gy`: each
/// window's `gy` divided by the number of its taps equal to its maximum, added to each such
/// tap's pixel.
pub fn max_pool2d_backward<T: Float>(x: &[T], y: &[T], gy: &[T], g: &PatchGeom) -> Vec<T> {
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    let mut dx = T::take(x.len());
    dx.resize(x.len(), T::ZERO);
    if dx.is_empty() {
        return dx;
    }
    let fill = T::from_f64(f64::NEG_INFINITY);
    let tiled = is_tiling(g);
    let (kh, kw, w) = (g.kernel[0], g.kernel[1], g.w);
    // The tie counts as `T`, 0 ..= kh·kw.
    let counts: Vec<T> = (0..=kh * kw).map(|c| T::from_f64(c as f64)).collect();
    let run = |(p, dst): (usize, &mut [T])| {
        let src = &x[p * plane..][..plane];
        let (ys, gs) = (&y[p * l..][..l], &gy[p * l..][..l]);
        if tiled && kh == 2 && kw == 2 {
            for oi in 0..g.oh {
                let (at0, at1) = (2 * oi * w, (2 * oi + 1) * w);
                for oj in 0..g.ow {
                    let k = oi * g.ow + oj;
                    let m = ys[k];
                    let taps = [
                        at0 + 2 * oj,
                        at0 + 2 * oj + 1,
                        at1 + 2 * oj,
                        at1 + 2 * oj + 1,
                    ];
                    let hit = taps.map(|i| src[i] == m);
                    let count = hit.iter().filter(|&&h| h).count();
                    let share = gs[k] / counts[count];
                    for (i, h) in taps.into_iter().zip(hit) {
                        dst[i] = if h { share } else { T::ZERO };
                    }
                }
            }
            return;
        }
        if tiled {
            // Windows do not overlap: each tap's pixel is written once.
            for k in 0..l {
                let at = (k / g.ow) * kh * w + (k % g.ow) * kw;
                let m = ys[k];
                let mut count = 0usize;
                for ki in 0..kh {
                    count += src[at + ki * w..][..kw].iter().filter(|&&v| v == m).count();
                }
                let share = gs[k] / counts[count];
                for ki in 0..kh {
                    let row = at + ki * w;
                    for (d, &v) in dst[row..][..kw].iter_mut().zip(&src[row..][..kw]) {
                        *d = if v == m { share } else { T::ZERO };
                    }
                }
            }
            return;
        }
        for k in 0..l {
            let (oi, oj, m) = (k / g.ow, k % g.ow, ys[k]);
            let mut count = 0usize;
            window(g, oi, oj, |at| {
                if at.map_or(fill, |i| src[i]) == m {
                    count += 1;
                }
            });
            let share = gs[k] / counts[count];
            window(g, oi, oj, |at| {
                if let Some(i) = at.filter(|&i| src[i] == m) {
                    dst[i] += share;
                }
            });
        }
    };
    if x.len() >= PAR_THRESHOLD {
        dx.par_chunks_mut(plane).enumerate().for_each(run);
    } else {
        dx.chunks_mut(plane).enumerate().for_each(run);
    }
    dx
}
