//! Batch normalisation in training mode over `[n, c, h, w]` images, forward and backward, as
//! two fused CPU kernels (Ioffe & Szegedy 2015, "Batch Normalization", Algorithm 1 and §3's
//! back-propagation formulas).
//!
//! Composed of the engine's elementwise ops, batch norm and its gradient take about twenty
//! passes over the activations (each broadcasting binary and each `sum_to` of its backward is
//! one); these kernels take two forward (statistics, then `y`) and two backward (the two
//! per-channel sums, then `dx`). They compute the same formulas; only the order of the
//! per-channel sums differs (rounding).

use rayon::prelude::*;

use super::float::Float;

/// Elements from which the kernels run on rayon.
const PAR_THRESHOLD: usize = 1 << 15;

/// `Σ f(a[i], b[i])` over two equally long slices, in eight interleaved partial sums
/// (independent lanes, so the loop vectorises without reassociating any one sum).
#[inline(always)]
fn lane_sum<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut lanes = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += f(xa[k], xb[k]);
        }
    }
    for (&va, &vb) in ra.iter().zip(rb) {
        lanes[0] += f(va, vb);
    }
    let mut s = T::ZERO;
    for k in 0..4 {
        s += lanes[k] + lanes[k + 4];
    }
    s
}

/// Per-channel sums `Σ f_ch(a, b)` over the `n` planes of `plane` values of each channel of
/// `a` and `b` (both `[n, c, plane]`); `f(ch)` gives channel `ch`'s summand.
fn channel_sums<T: Float, G: Fn(T, T) -> T>(
    a: &[T],
    b: &[T],
    [n, c, plane]: [usize; 3],
    f: impl Fn(usize) -> G + Sync,
) -> Vec<T> {
    let sum = |ch: usize| {
        let fc = f(ch);
        let mut acc = T::ZERO;
        for i in 0..n {
            let at = (i * c + ch) * plane;
            acc += lane_sum(&a[at..][..plane], &b[at..][..plane], &fc);
        }
        acc
    };
    if a.len() >= PAR_THRESHOLD {
        (0..c).into_par_iter().map(sum).collect()
    } else {
        (0..c).map(sum).collect()
    }
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
    let count = T::from_f64((n * plane) as f64);
    let mean: Vec<T> = channel_sums(x, x, [n, c, plane], |_| |v, _| v)
        .into_iter()
        .map(|s| s / count)
        .collect();
    let var: Vec<T> = channel_sums(x, x, [n, c, plane], |ch| {
        let m = mean[ch];
        move |v: T, _| (v - m) * (v - m)
    })
    .into_iter()
    .map(|s| s / count)
    .collect();
    let std: Vec<T> = var.iter().map(|&v| (v + eps).sqrt()).collect();
    let mut y = T::take(x.len());
    let image = |(b, dst): (usize, &mut [T])| {
        for ch in 0..c {
            let (m, k, bt) = (mean[ch], gamma[ch] / std[ch], beta[ch]);
            let src = &x[(b * c + ch) * plane..][..plane];
            for (d, &v) in dst[ch * plane..][..plane].iter_mut().zip(src) {
                *d = (v - m) * k + bt;
            }
        }
    };
    y.resize(x.len(), T::ZERO);
    if x.len() >= PAR_THRESHOLD {
        y.par_chunks_mut(c * plane).enumerate().for_each(image);
    } else {
        y.chunks_mut(c * plane).enumerate().for_each(image);
    }
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
    let count = T::from_f64((n * plane) as f64);
    let std: Vec<T> = var.iter().map(|&v| (v + eps).sqrt()).collect();
    let dbeta = channel_sums(gy, gy, [n, c, plane], |_| |g, _| g);
    let inv: Vec<T> = std.iter().map(|&s| T::ONE / s).collect();
    let dgamma = channel_sums(x, gy, [n, c, plane], |ch| {
        let (m, k) = (mean[ch], inv[ch]);
        move |v: T, g: T| g * ((v - m) * k)
    });
    let mut dx = T::take(x.len());
    let image = |(b, dst): (usize, &mut [T])| {
        for ch in 0..c {
            let (m, s) = (mean[ch], std[ch]);
            // x̂·dγ/N = (x − μ)·(dγ/(N·s)).
            let (mb, mg) = (dbeta[ch] / count, dgamma[ch] / count / s);
            let scale = gamma[ch] / s;
            let at = (b * c + ch) * plane;
            let (xs, gs) = (&x[at..][..plane], &gy[at..][..plane]);
            for ((d, &v), &g) in dst[ch * plane..][..plane].iter_mut().zip(xs).zip(gs) {
                *d = scale * (g - mb - (v - m) * mg);
            }
        }
    };
    dx.resize(x.len(), T::ZERO);
    if x.len() >= PAR_THRESHOLD {
        dx.par_chunks_mut(c * plane).enumerate().for_each(image);
    } else {
        dx.chunks_mut(c * plane).enumerate().for_each(image);
    }
    (dx, dgamma, dbeta)
}
