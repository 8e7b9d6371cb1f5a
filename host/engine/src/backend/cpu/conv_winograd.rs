//! 3×3 "same" convolutions (stride 1, padding 1, no dilation, one group) by Winograd's minimal
//! filtering algorithm F(2×2, 3×3), as in Lavin & Gray, *Fast Algorithms for Convolutional
//! Neural Networks* (CVPR 2016): each 2×2 block of output pixels is
//! `Y = Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`, where `d_c` is the 4×4 input tile of channel `c`
//! around the block and `g_c` the 3×3 kernel — 16 products per channel and block where the
//! direct convolution takes 36, so 2.25 times fewer multiply–adds. The sum over channels is,
//! for each of the 16 positions `ξ` of the 4×4 transformed tile, a matrix product
//! `M_ξ[t, o] = Σ_c V_ξ[t, c] · U_ξ[c, o]` over the tiles `t`, computed by the register-blocked
//! kernel of [`conv_shift`]'s weight gradient (a block of rows × vectors of output channels,
//! one broadcast per row and channel; AVX-512F or AVX2 + FMA, the same bits), so this path runs
//! only on CPUs with one of those.
//!
//! The work is laid out channels last, so that every transform is a loop along the channels
//! (vector code): a task of a few images transposes each image to `[pixels, c]`, transforms its
//! input tiles into `V` (`[tiles, 16, c]`), multiplies each position `ξ` into `M`
//! (`[16, tiles, o]`, the kernel's rows the tiles, its vectors the output channels, as in the
//! weight gradient's kernel), transforms each tile back to its 2×2 pixels (`[pixels, o]`, with
//! the bias) and transposes them into the output planes. Tiles past the image's edge (odd
//! sizes) read zeros and write only their pixels inside it. Every output is computed within one
//! task in one fixed order, so the result does not depend on the number of threads. The
//! transforms' coefficients are 0, ±1 and ±½, so the rounding differs from the direct sum only
//! by a few units in the last place (tested against the definition).
//!
//! The weight gradient ([`conv2d_weight_grad`]) is the adjoint: the output gradient's blocks
//! transformed by `A ∂Y Aᵀ`, 16 products over the tiles (the same kernel, its rows the input
//! channels), then `Gᵀ ∂U G`. Which of this module's kernels and the direct ones runs is decided
//! by measurement ([`faster_forward`], [`faster_weight_grad`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv::PatchGeom;
use super::conv_shift::{self, transpose_planes, uninit_view, Kernel, PixelRun, GRAD_VECTORS};
use super::float::Float;
use super::isa::{isa, Isa};

/// Bytes of transformed input `V` a task keeps: within L2 with the task's products `M`.
const TASK_BYTES: usize = 128 << 10;
/// Tiles a task holds at least, whatever `TASK_BYTES` says: every task reads all 16 transformed
/// weight matrices (`16·c·o` values), which a task of few tiles amortises poorly (128 channels
/// in and out, 16 images of 8×8: 535–553 µs against 551–629 µs with one image per task).
const MIN_TASK_TILES: usize = 64;

/// Whether [`conv2d`] and [`conv2d_weight_grad`] compute the convolution `g`: a 3×3 kernel,
/// stride 1, padding 1, no dilation, one group, no empty axis, and a CPU with AVX2 + FMA or
/// AVX-512F.
pub fn supports(g: &PatchGeom) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.padding == [1, 1]
        && g.dilation == [1, 1]
        && g.groups == 1
        && g.oh == g.h
        && g.ow == g.w
        && g.n * g.c * g.h * g.w > 0
        && conv_shift::vector_kernels()
}

/// Whether [`conv2d`] is the faster kernel for `g` with `o` output channels on this CPU, by the
/// side-by-side bench `conv3x3_fwd/{winograd,direct,patches}` of `benches/benches/conv.rs`
/// (AMD EPYC Zen 5, two threads): with AVX-512F at least 32 channels in and out (1.32–1.98×
/// the direct kernel from 32 to 128 channels and 4×4 to 28×28 images; with 16 channels 0.81×,
/// too short an inner sum for the transforms to pay); with AVX2 (`KEEL_CPU_ISA=avx2`, `gemm`
/// without its AVX-512 kernels) at least 16 (1.40–1.97× the direct kernel from 16 channels,
/// whose products are half as fast there while the transforms cost the same); images of at
/// least 4×4 either way.
pub fn faster_forward(g: &PatchGeom, o: usize) -> bool {
    let least = if isa() == Isa::Avx512 { 32 } else { 16 };
    supports(g) && g.c.min(o) >= least && g.h.min(g.w) >= 4
}

/// Whether [`conv2d_weight_grad`] is the faster kernel for `g` with `o` output channels on this
/// CPU — at least 16 channels in and out, images of at least 4×4 — by the side-by-side bench
/// `conv3x3_wgrad/{winograd,direct,patches}` (AMD EPYC Zen 5: with AVX-512F 1.14–1.72× the
/// direct kernel from 16 to 128 channels and 4×4 to 28×28 images; with AVX2 1.21–1.95×, and
/// 1.09× the patches at 128 channels, where they beat the direct kernel).
pub fn faster_weight_grad(g: &PatchGeom, o: usize) -> bool {
    supports(g) && g.c.min(o) >= 16 && g.h.min(g.w) >= 4
}

/// What every task of one [`conv2d`] shares.
struct Plan<'a, T> {
    x: &'a [T],
    g: &'a PatchGeom,
    /// Output channels.
    o: usize,
    /// `o` rounded up to whole vectors.
    ogp: usize,
    /// The transformed weights `U_ξ = (G g Gᵀ)_ξ`, `[16, c, ogp]` (zeros past `o`).
    packed: Vec<T>,
    /// The bias per output channel (zeros without one).
    bias: Vec<T>,
    /// Images per task.
    nb: usize,
}

/// Per-thread scratch of [`conv2d`].
#[derive(Default)]
struct Scratch<T> {
    /// One image channels last, `[pixels, c]` (and, for odd widths, its output `[pixels, o]`).
    xt: Vec<T>,
    /// The same with a ring of zeros, `[2th + 2, 2tw + 2, c]` (`th`, `tw`: the tiles per
    /// column and row).
    xp: Vec<T>,
    /// The transformed input tiles, `[tiles, 16, c]`.
    v: Vec<T>,
    /// The products, `[16, tiles, ogp]` (the 16 blocks skewed: see `skew`).
    m: Vec<T>,
    /// One image's output channels last, `[2th, 2tw, o]` (every tile's four pixels).
    yt: Vec<T>,
    /// The tiles' offsets in `v`.
    offs: Vec<usize>,
}

/// The convolution `g` (see [`supports`]) of `x` (`[n, c, h, w]`) with `weight` (`[o, c, 3, 3]`)
/// plus `bias` (`[o]`), written as `[n, o, h, w]`. Tasks of a few images run in parallel.
///
/// # Panics
/// If `g` does not satisfy [`supports`] or the slices are not the geometry's.
pub fn conv2d<T: Kernel>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    assert!(
        supports(g),
        "conv_winograd::conv2d on an unsupported geometry"
    );
    let c = g.c;
    assert_eq!(weight.len(), o * c * 9, "conv_winograd::conv2d weight");
    assert_eq!(x.len(), g.image_len(), "conv_winograd::conv2d image");
    let ogp = o.div_ceil(T::LANES) * T::LANES;
    // The weights transposed to `[c·9, o]`, then transformed along the output channels.
    let mut wt = vec![T::ZERO; c * 9 * o];
    // SAFETY: the transpose stores initialised values only.
    transpose_planes(weight, [o, c * 9], unsafe { uninit_view(&mut wt) }, o);
    let mut packed = vec![T::ZERO; 16 * c * ogp];
    weight_tiles(&wt, [c, o, ogp], &mut packed);
    let l = g.h * g.w;
    let tiles = g.h.div_ceil(2) * g.w.div_ceil(2);
    let per_image = 16 * c * tiles * std::mem::size_of::<T>();
    let nb = (TASK_BYTES / per_image)
        .max(MIN_TASK_TILES.div_ceil(tiles))
        .min(g.n.div_ceil(2 * rayon::current_num_threads()))
        .clamp(1, g.n);
    let plan = Plan {
        x,
        g,
        o,
        ogp,
        packed,
        bias: bias.map_or_else(|| vec![T::ZERO; o], <[T]>::to_vec),
        nb,
    };
    let len = g.n * o * l;
    let mut out = T::take(len);
    // The tasks write every output straight into the buffer's spare capacity: no zero fill.
    let spare = &mut out.spare_capacity_mut()[..len];
    let run = |s: &mut Scratch<T>, (t, dst): (usize, &mut [MaybeUninit<T>])| task(&plan, t, dst, s);
    if g.n > nb {
        spare
            .par_chunks_mut(nb * o * l)
            .enumerate()
            .for_each_init(Scratch::default, run);
    } else {
        run(&mut Scratch::default(), (0, spare));
    }
    // SAFETY: `take` returned a buffer with capacity ≥ len, and the tasks wrote each of its
    // first `len` elements: every image's `[o, h·w]` planes by the transpose of its whole
    // `[h·w, o]` output.
    unsafe { out.set_len(len) };
    out
}

/// Elements between the 16 positions' blocks of `len` elements: `len` and one cache line more,
/// so that a transform writing (or reading) all 16 at once does not send them to the same L1
/// set, as blocks a power of two of kilobytes apart do (with 32 tiles of 64 channels, 8 KiB:
/// the weight gradient's output transform took a quarter of its time).
fn skew<T: Kernel>(len: usize) -> usize {
    len + T::LANES
}

/// `G g Gᵀ` of one 3×3 kernel `g` (row-major), as 16 values `ξ = 4i + j`, with
/// `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
#[inline(always)]
fn weight_tile<T: Float>(g: &[T]) -> [T; 16] {
    let half = T::from_f64(0.5);
    let expand = |a: T, b: T, c: T| [a, (a + b + c) * half, (a - b + c) * half, c];
    // Columns first: the rows of G g.
    let cols: [[T; 4]; 3] = std::array::from_fn(|j| expand(g[j], g[3 + j], g[6 + j]));
    let mut u = [T::ZERO; 16];
    for i in 0..4 {
        let row = expand(cols[0][i], cols[1][i], cols[2][i]);
        u[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    u
}

super::simd::multiversion! {
    /// The transformed weights `packed` (`[16, c, ogp]`, `size = [c, o, ogp]`) of the weights
    /// `wt` transposed to `[c·9, o]`: `packed[(ξ·c + ch)·ogp + oc] = (G g Gᵀ)_ξ` of the kernel
    /// `g` of `(oc, ch)`; the lanes past `o` are left alone.
    ///
    /// # Panics
    /// If `wt` or `packed` is shorter than that, or `o > ogp`.
    fn weight_tiles<T: Float>(wt: &[T], size: [usize; 3], packed: &mut [T]) {
        let [c, o, ogp] = size;
        assert!(
            o <= ogp && wt.len() >= c * 9 * o && packed.len() >= 16 * c * ogp,
            "conv_winograd weight tiles"
        );
        for ch in 0..c {
            for oc in 0..o {
                // SAFETY: `(ch·9 + k)·o + oc < c·9·o ≤ wt.len()` (checked above).
                let g: [T; 9] =
                    std::array::from_fn(|k| unsafe { *wt.get_unchecked((ch * 9 + k) * o + oc) });
                for (xi, &v) in weight_tile(&g).iter().enumerate() {
                    // SAFETY: `(ξ·c + ch)·ogp + oc < 16·c·ogp ≤ packed.len()` (checked above).
                    unsafe { *packed.get_unchecked_mut((xi * c + ch) * ogp + oc) = v };
                }
            }
        }
    }
}

/// `Bᵀ d B` of one 4×4 input tile `d` (`4i + j`), with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
#[inline(always)]
fn input_tile<T: Float>(d: [T; 16]) -> [T; 16] {
    let along = |[d0, d1, d2, d3]: [T; 4]| [d0 - d2, d1 + d2, d2 - d1, d1 - d3];
    // Bᵀ along the rows (per column j), then B along the columns.
    let cols: [[T; 4]; 4] = std::array::from_fn(|j| along([d[j], d[4 + j], d[8 + j], d[12 + j]]));
    let mut v = [T::ZERO; 16];
    for i in 0..4 {
        let row = along([cols[0][i], cols[1][i], cols[2][i], cols[3][i]]);
        v[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    v
}

/// `Aᵀ m A` of one transformed 4×4 block `m` (`ξ = 4i + j`): its 2×2 output pixels, with
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
#[inline(always)]
fn output_tile<T: Float>(m: [T; 16]) -> [T; 4] {
    let along = |[m0, m1, m2, m3]: [T; 4]| [m0 + m1 + m2, m1 - m2 - m3];
    let cols: [[T; 2]; 4] = std::array::from_fn(|j| along([m[j], m[4 + j], m[8 + j], m[12 + j]]));
    let [y00, y01] = along([cols[0][0], cols[1][0], cols[2][0], cols[3][0]]);
    let [y10, y11] = along([cols[0][1], cols[1][1], cols[2][1], cols[3][1]]);
    [y00, y01, y10, y11]
}

super::simd::multiversion! {
    /// The transformed tiles of one image `xp` channels last with a ring of zeros
    /// (`[2th + 2, 2tw + 2, c]`, `tiles = [th, tw]`): tile `(ti, tj)` reads its rows
    /// `2ti .. 2ti + 4` and columns `2tj .. 2tj + 4`, and its position `ξ` goes to
    /// `v[ξ·strides[0] + t·strides[1] ..][..c]` (`t = ti·tw + tj`).
    ///
    /// # Panics
    /// If `xp` or `v` is shorter than that.
    fn input_tiles<T: Float>(
        xp: &[T],
        tiles: [usize; 2],
        c: usize,
        strides: [usize; 2],
        v: &mut [T],
    ) {
        let [th, tw] = tiles;
        let [ks, ts] = strides;
        let pw = 2 * tw + 2;
        let count = th * tw;
        assert!(
            xp.len() >= (2 * th + 2) * pw * c
                && (count == 0 || v.len() >= 15 * ks + (count - 1) * ts + c),
            "conv_winograd input tiles"
        );
        let off: [usize; 16] = std::array::from_fn(|k| (k / 4 * pw + k % 4) * c);
        let put: [usize; 16] = std::array::from_fn(|k| k * ks);
        for t in 0..count {
            let base = (2 * (t / tw) * pw + 2 * (t % tw)) * c;
            let at = t * ts;
            for ch in 0..c {
                // SAFETY: `base + off[k] + ch ≤ ((2ti + 3)·pw + 2tj + 3)·c + c − 1`, below
                // `(2th + 2)·pw·c ≤ xp.len()` (checked above) as `ti < th`, `tj < tw`.
                let d = std::array::from_fn(|k| unsafe { *xp.get_unchecked(base + off[k] + ch) });
                let tile = input_tile(d);
                for (k, &value) in tile.iter().enumerate() {
                    // SAFETY: `at + put[k] + ch ≤ (count − 1)·ts + 15·ks + c − 1 < v.len()`
                    // (checked above).
                    unsafe { *v.get_unchecked_mut(at + put[k] + ch) = value };
                }
            }
        }
    }
}

super::simd::multiversion! {
    /// The output `yt` (`[2th, 2tw, o]`, `tiles = [th, tw]`, every pixel of every tile, those
    /// outside the image included) of one image's tiles `first ..` of the products `m`
    /// (`[16, stride / ogp, ogp]`), plus `bias` (`[o]`).
    ///
    /// # Panics
    /// If `m` or `yt` is shorter than that.
    fn output_tiles<T: Float>(
        m: &[T],
        stride: usize,
        first: usize,
        ogp: usize,
        bias: &[T],
        tiles: [usize; 2],
        yt: &mut [T],
    ) {
        let [th, tw] = tiles;
        let (o, pw) = (bias.len(), 2 * tw);
        assert!(
            o <= ogp
                && m.len() >= 15 * stride + (first + th * tw) * ogp
                && yt.len() >= 2 * th * pw * o,
            "conv_winograd output tiles"
        );
        let off: [usize; 16] = std::array::from_fn(|k| k * stride);
        let put: [usize; 4] = [0, o, pw * o, (pw + 1) * o];
        for t in 0..th * tw {
            let base = (first + t) * ogp;
            let at = (2 * (t / tw) * pw + 2 * (t % tw)) * o;
            for oc in 0..o {
                // SAFETY: `base + off[k] + oc < (first + t + 1)·ogp + 15·stride ≤ m.len()`
                // (checked above; `oc < o ≤ ogp`).
                let mm = std::array::from_fn(|k| unsafe { *m.get_unchecked(base + off[k] + oc) });
                let y = output_tile(mm);
                let b = bias[oc];
                for (k, &v) in y.iter().enumerate() {
                    // SAFETY: `at + put[k] + oc ≤ ((2ti + 1)·pw + 2tj + 1)·o + o − 1`, below
                    // `2th·pw·o ≤ yt.len()` (checked above).
                    unsafe { *yt.get_unchecked_mut(at + put[k] + oc) = v + b };
                }
            }
        }
    }
}

/// One image `img` (`[c, h, w]`) channels last into `xt` (`[h·w, c]`), then into the interior
/// of `xp` (`[.., pw, c]`, a ring of zeros one pixel wide around it that this leaves alone).
fn padded_channels_last<T: Kernel>(
    img: &[T],
    [c, h, w]: [usize; 3],
    pw: usize,
    xt: &mut [T],
    xp: &mut [T],
) {
    // SAFETY: the transpose stores initialised values only.
    transpose_planes(img, [c, h * w], unsafe { uninit_view(xt) }, c);
    for (r, row) in xt.chunks_exact(w * c).take(h).enumerate() {
        xp[((r + 1) * pw + 1) * c..][..w * c].copy_from_slice(row);
    }
}

/// `Gᵀ u G` of the gradient `u` of one transformed kernel (`ξ = 4i + j`): the gradient of the
/// 3×3 kernel (row-major) of [`weight_tile`].
fn weight_grad_tile<T: Float>(u: [T; 16]) -> [T; 9] {
    let half = T::from_f64(0.5);
    let along = |[u0, u1, u2, u3]: [T; 4]| {
        let (p, q) = ((u1 + u2) * half, (u1 - u2) * half);
        [u0 + p, q, p + u3]
    };
    let cols: [[T; 3]; 4] = std::array::from_fn(|j| along([u[j], u[4 + j], u[8 + j], u[12 + j]]));
    let mut g = [T::ZERO; 9];
    for a in 0..3 {
        let row = along([cols[0][a], cols[1][a], cols[2][a], cols[3][a]]);
        g[3 * a..3 * a + 3].copy_from_slice(&row);
    }
    g
}

/// `A y Aᵀ` of the gradient `y` of one tile's 2×2 output pixels (`[y00, y01, y10, y11]`): the
/// gradient of its transformed block `m` of [`output_tile`], with
/// `A = [[1, 0], [1, 1], [1, −1], [0, −1]]`.
#[inline(always)]
fn output_grad_tile<T: Float>(y: [T; 4]) -> [T; 16] {
    let along = |[y0, y1]: [T; 2]| [y0, y0 + y1, y0 - y1, T::ZERO - y1];
    let cols = [along([y[0], y[2]]), along([y[1], y[3]])];
    let mut z = [T::ZERO; 16];
    for i in 0..4 {
        let row = along([cols[0][i], cols[1][i]]);
        z[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    z
}

super::simd::multiversion! {
    /// The gradients `z` of one image's transformed blocks, `z[ξ·stride + (first + t)·ogp ..]`
    /// (`o` values and zeros up to `ogp`), from its output gradient `yp` channels last with
    /// zeros past the image (`[2th, 2tw, o]`, `tiles = [th, tw]`).
    ///
    /// # Panics
    /// If `yp` or `z` is shorter than that.
    fn output_grad_tiles<T: Float>(
        yp: &[T],
        tiles: [usize; 2],
        o: usize,
        ogp: usize,
        stride: usize,
        first: usize,
        z: &mut [T],
    ) {
        let [th, tw] = tiles;
        let pw = 2 * tw;
        let count = th * tw;
        assert!(
            o <= ogp
                && yp.len() >= 2 * th * pw * o
                && (count == 0 || z.len() >= 15 * stride + (first + count) * ogp),
            "conv_winograd output gradient tiles"
        );
        let take: [usize; 4] = [0, o, pw * o, (pw + 1) * o];
        let put: [usize; 16] = std::array::from_fn(|k| k * stride);
        for t in 0..count {
            let base = (2 * (t / tw) * pw + 2 * (t % tw)) * o;
            let at = (first + t) * ogp;
            for oc in 0..o {
                // SAFETY: `base + take[k] + oc ≤ ((2ti + 1)·pw + 2tj + 1)·o + o − 1`, below
                // `2th·pw·o ≤ yp.len()` (checked above).
                let y = std::array::from_fn(|k| unsafe { *yp.get_unchecked(base + take[k] + oc) });
                let tile = output_grad_tile(y);
                for (k, &v) in tile.iter().enumerate() {
                    // SAFETY: `at + put[k] + oc < (first + count)·ogp + 15·stride ≤ z.len()`
                    // (checked above; `oc < ogp`).
                    unsafe { *z.get_unchecked_mut(at + put[k] + oc) = v };
                }
            }
            if o < ogp {
                for &p in &put {
                    z[at + p + o..at + p + ogp].fill(T::ZERO);
                }
            }
        }
    }
}

/// Tiles of one weight-gradient task (at least; whole images): enough work that the partial
/// gradient's sum costs little. Fixed, so that the partials, and the result, do not depend on
/// the number of threads.
const GRAD_TASK_TILES: usize = 256;
/// Tiles a weight-gradient task transforms at a time (at least one image): their transformed
/// inputs and blocks' gradients stay in L2 while the kernel sweeps them.
const GRAD_CHUNK_TILES: usize = 32;

/// Per-thread scratch of [`conv2d_weight_grad`].
#[derive(Default)]
struct GradScratch<T> {
    /// One image channels last, `[pixels, c]`, and its output gradient, `[pixels, o]`.
    xt: Vec<T>,
    /// The image with a ring of zeros, `[2th + 2, 2tw + 2, c]`.
    xp: Vec<T>,
    /// The output gradient with zeros past the image, `[2th, 2tw, o]`.
    yp: Vec<T>,
    /// A chunk's transformed input tiles, `[16, tiles, c]` (skewed).
    v: Vec<T>,
    /// A chunk's gradients of the transformed blocks, `[16, tiles, ogp]` (skewed).
    z: Vec<T>,
    /// The input channels' offsets in a tile's row of `v`.
    offs: Vec<usize>,
}

/// The weight gradient of [`conv2d`] (see [`supports`]): `[o, c, 3, 3]` from the image `x`
/// (`[n, c, h, w]`) and the output gradient `gy` (`[n, o, h, w]`), as `Gᵀ (∂L/∂U) G` with
/// `∂L/∂U_ξ[c, o] = Σ_t V_ξ[t, c] · Z_ξ[t, o]`, `Z_t = A (∂L/∂Y_t) Aᵀ` the gradient of tile `t`'s
/// transformed block (zero past the image's edge): 16 products over the tiles, by the weight
/// gradient's kernel of [`conv_shift`] (rows the input channels, vectors the
/// output channels). Tasks of whole images (at least `GRAD_TASK_TILES` tiles) run in parallel
/// and their partial gradients are summed in task order (the same result on any number of
/// threads).
///
/// # Panics
/// If `g` does not satisfy [`supports`] or the slices are not the geometry's.
pub fn conv2d_weight_grad<T: Kernel>(x: &[T], gy: &[T], g: &PatchGeom, o: usize) -> Vec<T> {
    assert!(
        supports(g),
        "conv_winograd::conv2d_weight_grad on an unsupported geometry"
    );
    let (c, l) = (g.c, g.h * g.w);
    assert_eq!(x.len(), g.image_len(), "conv_winograd weight grad image");
    assert_eq!(
        gy.len(),
        g.n * o * l,
        "conv_winograd weight grad output gradient"
    );
    let ogp = o.div_ceil(T::LANES) * T::LANES;
    let per = g.h.div_ceil(2) * g.w.div_ceil(2);
    let nb = GRAD_TASK_TILES.div_ceil(per).clamp(1, g.n);
    let tasks = g.n.div_ceil(nb);
    let len = 16 * c * ogp;
    let run = |s: &mut GradScratch<T>, (t, acc): (usize, &mut [T])| {
        let b0 = t * nb;
        grad_task(x, gy, g, [o, ogp], [b0, nb.min(g.n - b0)], acc, s);
    };
    let partial = super::conv::summed_tile_partials(tasks, len, run);
    let du = &partial[..len];
    let mut out = T::take(o * c * 9);
    out.resize(o * c * 9, T::ZERO);
    for oc in 0..o {
        for ch in 0..c {
            let u = std::array::from_fn(|k| du[(k * c + ch) * ogp + oc]);
            out[(oc * c + ch) * 9..][..9].copy_from_slice(&weight_grad_tile(u));
        }
    }
    T::give(partial);
    out
}

/// One task of [`conv2d_weight_grad`]: the images `b0 .. b0 + nb` into `acc` (`[16, c, ogp]`,
/// zeros on entry), a chunk of images at a time.
fn grad_task<T: Kernel>(
    x: &[T],
    gy: &[T],
    g: &PatchGeom,
    [o, ogp]: [usize; 2],
    [b0, nb]: [usize; 2],
    acc: &mut [T],
    s: &mut GradScratch<T>,
) {
    let (c, h, w) = (g.c, g.h, g.w);
    let l = h * w;
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let per = th * tw;
    let pw = 2 * tw + 2;
    let chunk = GRAD_CHUNK_TILES.div_ceil(per).min(nb);
    s.xt.resize(l * c.max(o), T::ZERO);
    s.xp.clear();
    s.xp.resize((2 * th + 2) * pw * c, T::ZERO);
    s.yp.clear();
    s.yp.resize(4 * per * o, T::ZERO);
    let nvec = ogp / T::LANES;
    for c0 in (0..nb).step_by(chunk) {
        let images = chunk.min(nb - c0);
        let tiles = images * per;
        // The 16 positions' rows `vs` and `zs` apart (see `skew`).
        let (vs, zs) = (skew::<T>(tiles * c), skew::<T>(tiles * ogp));
        s.v.resize(16 * vs, T::ZERO);
        s.z.resize(16 * zs, T::ZERO);
        for i in 0..images {
            let b = b0 + c0 + i;
            let image = &x[b * c * l..][..c * l];
            padded_channels_last(image, [c, h, w], pw, &mut s.xt, &mut s.xp);
            input_tiles(&s.xp, [th, tw], c, [vs, c], &mut s.v[i * per * c..]);
            // SAFETY: the transpose stores initialised values only.
            let gt = unsafe { uninit_view(&mut s.xt) };
            transpose_planes(&gy[b * o * l..][..o * l], [o, l], gt, o);
            for (r, row) in s.xt.chunks_exact(w * o).take(h).enumerate() {
                s.yp[r * 2 * tw * o..][..w * o].copy_from_slice(row);
            }
            output_grad_tiles(&s.yp, [th, tw], o, ogp, zs, i * per, &mut s.z);
        }
        // The kernel's rows are the input channels (offsets 0 .. c in a tile's row of `v`),
        // its pixels the chunk's tiles (`c` apart).
        s.offs.clear();
        s.offs.extend(0..c);
        for (xi, acc) in acc.chunks_exact_mut(c * ogp).enumerate() {
            let run = [PixelRun {
                xs: xi * vs,
                step: c,
                gyt: xi * zs,
                len: tiles,
            }];
            for v0 in (0..nvec).step_by(GRAD_VECTORS) {
                T::grad_rows(&s.v, &s.z, ogp, &run, &s.offs, v0, acc, false);
            }
        }
    }
}

/// One task: the images `t·nb ..` into `dst` (their `[nb, o, h, w]` outputs).
fn task<T: Kernel>(p: &Plan<T>, t: usize, dst: &mut [MaybeUninit<T>], s: &mut Scratch<T>) {
    let g = p.g;
    let (c, o, ogp, h, w) = (g.c, p.o, p.ogp, g.h, g.w);
    let l = h * w;
    let nb = dst.len() / (o * l);
    let b0 = t * p.nb;
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let per = th * tw;
    let tiles = nb * per;
    let pw = 2 * tw + 2;
    s.xt.resize(l * c, T::ZERO);
    // The ring of zeros is never written over: every call puts the image at the same place.
    s.xp.clear();
    s.xp.resize((2 * th + 2) * pw * c, T::ZERO);
    s.v.resize(tiles * 16 * c, T::ZERO);
    for b in 0..nb {
        let image = &p.x[(b0 + b) * c * l..][..c * l];
        padded_channels_last(image, [c, h, w], pw, &mut s.xt, &mut s.xp);
        input_tiles(
            &s.xp,
            [th, tw],
            c,
            [c, 16 * c],
            &mut s.v[b * per * 16 * c..][..per * 16 * c],
        );
    }
    // M_ξ[t, oc] = Σ_c V[t, ξ, c] · U_ξ[c, oc]: the kernel's rows are the tiles (at
    // `offs[t] + ξ·c` in `v`), its inner sum one run of the `c` channels.
    s.offs.clear();
    s.offs.extend((0..tiles).map(|t| t * 16 * c));
    // Written in full by the kernel (every tile's row, every vector of channels); the 16
    // products `ms` apart, a cache line more than they hold (see `skew`).
    let ms = skew::<T>(tiles * ogp);
    s.m.resize(16 * ms, T::ZERO);
    let nvec = ogp / T::LANES;
    for (xi, m) in s.m.chunks_exact_mut(ms).enumerate() {
        let acc = &mut m[..tiles * ogp];
        let run = [PixelRun {
            xs: xi * c,
            step: 1,
            gyt: 0,
            len: c,
        }];
        let u = &p.packed[xi * c * ogp..][..c * ogp];
        for v0 in (0..nvec).step_by(GRAD_VECTORS) {
            T::grad_rows(&s.v, u, ogp, &run, &s.offs, v0, acc, true);
        }
    }
    s.yt.resize(4 * per * o, T::ZERO);
    if 2 * tw != w {
        s.xt.resize(l * o, T::ZERO);
    }
    for b in 0..nb {
        output_tiles(&s.m, ms, b * per, ogp, &p.bias, [th, tw], &mut s.yt);
        // The image's pixels: the first `l` of `yt` when its rows are the image's (even
        // width); otherwise each row's first `w` pixels gathered first.
        let pixels = if 2 * tw == w {
            &s.yt[..l * o]
        } else {
            for r in 0..h {
                s.xt[r * w * o..][..w * o].copy_from_slice(&s.yt[r * 2 * tw * o..][..w * o]);
            }
            &s.xt[..l * o]
        };
        transpose_planes(pixels, [l, o], &mut dst[b * o * l..][..o * l], l);
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv_shift::tests::{assert_close, geom, naive, wave};
    use super::*;

    /// Checks [`conv2d`] and [`conv2d_weight_grad`] against the definition in `f64` (1e-12
    /// relative to the largest value) and `f32` (1e-5 for the convolution; the weight gradient
    /// within twice the direct kernel's error), at the level [`isa`] reports
    /// (`host/engine/tests/isa.rs` checks that AVX2's kernels give AVX-512F's bits).
    fn check(g: PatchGeom, o: usize) {
        if !conv_shift::vector_kernels() {
            eprintln!("conv_winograd tests skipped: neither AVX2 + FMA nor AVX-512F on this CPU");
            return;
        }
        assert!(supports(&g), "{g:?}");
        let x = wave(g.image_len(), 0.37);
        let w = wave(o * g.rows(), 0.91);
        let b = wave(o, 1.3);
        let gy = wave(g.n * o * g.oh * g.ow, 0.11);
        let [y, gw] = naive(&x, &w, &b, &gy, &g);
        let close = |got: &[f64], want: &[f64], tol: f64, what: &str| {
            assert_close(got, want, tol, &format!("{what} ({:?}, {g:?})", isa()));
        };
        close(&conv2d(&x, &w, Some(&b), &g, o), &y, 1e-12, "f64 conv2d");
        close(
            &conv2d_weight_grad(&x, &gy, &g, o),
            &gw,
            1e-12,
            "f64 weight grad",
        );
        let f = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let up = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
        close(
            &up(conv2d(&f(&x), &f(&w), Some(&f(&b)), &g, o)),
            &y,
            1e-5,
            "f32 conv2d",
        );
        // In f32 a weight gradient's error grows with its sum's length (n·h·w terms): it must
        // be no worse than the direct kernel's on the same data (1.3e-5 of the largest value
        // for either at n·h·w = 2080).
        let err = |got: Vec<f32>| {
            let scale = gw.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let e = got.iter().zip(&gw).map(|(&a, e)| (f64::from(a) - e).abs());
            e.fold(0.0, f64::max) / scale
        };
        let (wino, direct) = (
            err(conv2d_weight_grad(&f(&x), &f(&gy), &g, o)),
            err(conv_shift::conv2d_weight_grad(&f(&x), &f(&gy), &g, o)),
        );
        assert!(
            wino <= 2.0 * direct + 1e-6 && wino < 1e-4,
            "f32 weight grad error {wino:e} (direct {direct:e}, {g:?})"
        );
        let zero = vec![0.0; o];
        let [y0, _] = naive(&x, &w, &zero, &gy, &g);
        close(
            &conv2d(&x, &w, None, &g, o),
            &y0,
            1e-12,
            "f64 conv2d without bias",
        );
    }

    #[test]
    fn winograd_matches_the_definition_on_odd_sizes() {
        // Even and odd sides (edge blocks half outside), 1×1 and 1×n images, channel blocks
        // with padding (17 = 2·6 + 5), tiles that are not whole vectors, several tasks.
        check(geom([3, 16, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 16);
        check(geom([5, 17, 7, 5], 1, [3, 3], [1, 1], [1, 1]), 19);
        check(geom([40, 16, 1, 1], 1, [3, 3], [1, 1], [1, 1]), 17);
        check(geom([2, 20, 1, 9], 1, [3, 3], [1, 1], [1, 1]), 16);
        check(geom([2, 16, 28, 28], 1, [3, 3], [1, 1], [1, 1]), 33);
        check(geom([130, 32, 4, 4], 1, [3, 3], [1, 1], [1, 1]), 64);
        // Several weight-gradient tasks with a short last one and chunks of 3 images (12
        // tiles each) with a short last one.
        check(geom([41, 16, 5, 6], 1, [3, 3], [1, 1], [1, 1]), 20);
        // Few channels (correct, if not faster), and 128 of each with tasks of whole images
        // held to 64 tiles.
        check(geom([3, 3, 5, 7], 1, [3, 3], [1, 1], [1, 1]), 5);
        check(geom([9, 128, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 128);
    }

    #[test]
    fn the_weight_transform_is_lavin_and_grays() {
        // G g Gᵀ by the matrices themselves.
        let g: Vec<f64> = (0..9).map(|k| (k as f64 * 0.7 - 2.0).powi(3)).collect();
        let gm = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let u = weight_tile(&g);
        for i in 0..4 {
            for j in 0..4 {
                let mut want = 0.0;
                for a in 0..3 {
                    for b in 0..3 {
                        want += gm[i][a] * g[3 * a + b] * gm[j][b];
                    }
                }
                assert!((u[4 * i + j] - want).abs() < 1e-12, "({i}, {j})");
            }
        }
    }
}
