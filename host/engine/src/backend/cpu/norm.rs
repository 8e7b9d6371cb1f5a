//! Batch normalisation in training mode over `[n, c, h, w]` images, forward and backward, as
//! two fused CPU kernels (Ioffe & Szegedy 2015, "Batch Normalization", Algorithm 1 and §3's
//! back-propagation formulas).
//!
//! Composed of the engine's elementwise ops, batch norm and its gradient take about twenty
//! passes over the activations (each broadcasting binary and each `sum_to` of its backward is
//! one); these kernels take three forward (mean, variance, then `y`) and two backward (the two
//! per-channel sums in one pass, then `dx`). They compute the same formulas; only the order of the
//! per-channel sums differs (rounding).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::float::Float;

/// Elements from which the kernels run on rayon.
const PAR_THRESHOLD: usize = 1 << 15;

/// `lanes[j] += f(a[i], b[i])[j]` over two equally long slices, element `i` into lane
/// `i mod 8` (the remainder into lane 0): independent lanes, so the loop vectorises without
/// reassociating any one sum.
#[inline(always)]
fn lane_sums<T: Float, const K: usize>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> [T; K],
    lanes: &mut [[T; 8]; K],
) {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for k in 0..8 {
            let v = f(xa[k], xb[k]);
            for j in 0..K {
                lanes[j][k] += v[j];
            }
        }
    }
    for (&va, &vb) in ra.iter().zip(rb) {
        let v = f(va, vb);
        for j in 0..K {
            lanes[j][0] += v[j];
        }
    }
}

/// Per-channel sums `Σ f_ch(a, b)[j]` (`j < K`) over the `n` planes of `plane` values of each
/// channel of `a` and `b` (both `[n, c, plane]`); `f(ch)` gives channel `ch`'s summands.
///
/// Tasks of whole images (about `PAR_THRESHOLD` values, a count that does not depend on the
/// threads) walk their images in memory order and keep eight lanes per channel and sum; the
/// tasks' sums are added in task order (the same result on any number of threads).
fn channel_sums<T: Float, const K: usize, G: Fn(T, T) -> [T; K]>(
    a: &[T],
    b: &[T],
    [n, c, plane]: [usize; 3],
    f: impl Fn(usize) -> G + Sync,
) -> [Vec<T>; K] {
    let per = (PAR_THRESHOLD / (c * plane).max(1)).clamp(1, n.max(1));
    let tasks = n.div_ceil(per).max(1);
    let task = |t: usize| -> Vec<[T; K]> {
        let fs: Vec<G> = (0..c).map(&f).collect();
        let mut lanes = vec![[[T::ZERO; 8]; K]; c];
        for i in t * per..((t + 1) * per).min(n) {
            for (ch, (fc, l)) in fs.iter().zip(&mut lanes).enumerate() {
                let at = (i * c + ch) * plane;
                lane_sums(&a[at..][..plane], &b[at..][..plane], fc, l);
            }
        }
        lanes
            .iter()
            .map(|l| {
                l.map(|v| {
                    let mut s = T::ZERO;
                    for k in 0..4 {
                        s += v[k] + v[k + 4];
                    }
                    s
                })
            })
            .collect()
    };
    let parts: Vec<Vec<[T; K]>> = if tasks > 1 {
        (0..tasks).into_par_iter().map(task).collect()
    } else {
        vec![task(0)]
    };
    std::array::from_fn(|j| {
        (0..c)
            .map(|ch| parts.iter().fold(T::ZERO, |s, p| s + p[ch][j]))
            .collect()
    })
}

/// A buffer of `len` values written by `image(b, dst)` for each image `b` (`dst` its `image_len`
/// values; in parallel from `PAR_THRESHOLD` values), with no zero fill first.
///
/// # Safety
/// `image` writes every value of its `dst`; `len` is a multiple of `image_len` (else the last
/// chunk is short and `image`'s slicing panics before anything is read).
unsafe fn per_image<T: Float>(
    len: usize,
    image_len: usize,
    image: impl Fn((usize, &mut [MaybeUninit<T>])) + Sync + Send,
) -> Vec<T> {
    let mut out = T::take(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    if len >= PAR_THRESHOLD {
        spare.par_chunks_mut(image_len).enumerate().for_each(image);
    } else {
        spare.chunks_mut(image_len).enumerate().for_each(image);
    }
    // SAFETY: `take` returned a buffer with capacity ≥ len, and `image` wrote each of the first
    // len values (the caller's contract: every chunk whole).
    unsafe { out.set_len(len) };
    out
}

/// The forward pass: `y = (x − μ)·(γ/s) + β` per channel with the batch mean `μ` and
/// `s = √(σ² + ε)` (`σ²` the biased batch variance, from the centred values). Returns `y`, `μ`
/// and `σ²` (`[c]` each); `x` is `[n, c, plane]`.
pub fn batch_norm_train<T: Float>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    [n, c, plane]: [usize; 3],
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    assert_eq!(x.len(), n * c * plane, "batch_norm_train input");
    let count = T::from_f64((n * plane) as f64);
    let [mean] = channel_sums(x, x, [n, c, plane], |_| |v, _| [v]);
    let mean: Vec<T> = mean.into_iter().map(|s| s / count).collect();
    let [var] = channel_sums(x, x, [n, c, plane], |ch| {
        let m = mean[ch];
        move |v: T, _| [(v - m) * (v - m)]
    });
    let var: Vec<T> = var.into_iter().map(|s| s / count).collect();
    let std: Vec<T> = var.iter().map(|&v| (v + eps).sqrt()).collect();
    let image = |(b, dst): (usize, &mut [MaybeUninit<T>])| {
        for ch in 0..c {
            let (m, k, bt) = (mean[ch], gamma[ch] / std[ch], beta[ch]);
            let src = &x[(b * c + ch) * plane..][..plane];
            for (d, &v) in dst[ch * plane..][..plane].iter_mut().zip(src) {
                d.write((v - m) * k + bt);
            }
        }
    };
    // SAFETY: `image` writes all `c` planes of `plane` values of its image.
    let y = unsafe { per_image(x.len(), c * plane, image) };
    (y, mean, var)
}

/// The backward pass of [`batch_norm_train`] from the output gradient `gy`, given `μ`, `σ²` and
/// `ε` (`s = √(σ² + ε)`):
/// with `x̂ = (x − μ)/s` and `N = n·plane`, `dβ = Σ gy`, `dγ = Σ gy·x̂` and
/// `dx = γ/s·(gy − dβ/N − x̂·dγ/N)`. Returns `(dx, dγ, dβ)`.
pub fn batch_norm_backward<T: Float>(
    x: &[T],
    gy: &[T],
    gamma: &[T],
    mean: &[T],
    var: &[T],
    [n, c, plane]: [usize; 3],
    eps: T,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    assert!(
        x.len() == n * c * plane && gy.len() == x.len(),
        "batch_norm_backward operands"
    );
    let count = T::from_f64((n * plane) as f64);
    let std: Vec<T> = var.iter().map(|&v| (v + eps).sqrt()).collect();
    let inv: Vec<T> = std.iter().map(|&s| T::ONE / s).collect();
    // dβ and dγ in one pass.
    let [dbeta, dgamma] = channel_sums(x, gy, [n, c, plane], |ch| {
        let (m, k) = (mean[ch], inv[ch]);
        move |v: T, g: T| [g, g * ((v - m) * k)]
    });
    let image = |(b, dst): (usize, &mut [MaybeUninit<T>])| {
        for ch in 0..c {
            let (m, s) = (mean[ch], std[ch]);
            // x̂·dγ/N = (x − μ)·(dγ/(N·s)).
            let (mb, mg) = (dbeta[ch] / count, dgamma[ch] / count / s);
            let scale = gamma[ch] / s;
            let at = (b * c + ch) * plane;
            let (xs, gs) = (&x[at..][..plane], &gy[at..][..plane]);
            for ((d, &v), &g) in dst[ch * plane..][..plane].iter_mut().zip(xs).zip(gs) {
                d.write(scale * (g - mb - (v - m) * mg));
            }
        }
    };
    // SAFETY: `image` writes all `c` planes of `plane` values of its image.
    let dx = unsafe { per_image(x.len(), c * plane, image) };
    (dx, dgamma, dbeta)
}
