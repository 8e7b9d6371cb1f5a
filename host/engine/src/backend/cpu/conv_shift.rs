//! Stride-1 convolutions whose output rows are as wide as their input rows (`ow = w`: a
//! "same"-padded convolution, and its input gradient), computed from shifted copies of the input
//! planes — no patch matrix, no packing, the output written in its `[n, o, oh, ow]` planes.
//!
//! With stride 1 and `ow = w`, output pixel `q = oi·w + oj` of kernel tap `(ki, kj)` reads input
//! pixel `q + (ki·dh − ph)·w + (kj·dw − pw)`: a fixed offset, except that a column shift wraps
//! into the neighbouring row. So each image channel is copied `kw` times into per-thread
//! scratch, shifted by each column tap `kj·dw − pw` (zeros where the shift leaves the row) and
//! padded with `ph` zero rows above and below. Every tap of every channel is then one
//! contiguous run of a copy, and
//! `out[oc, q..q + L] = bias + Σ_(c, ki, kj) w[oc, c, ki, kj] · xs_(c, kj)[ki·dh·w + q..]`,
//! summed in the weight's `(c, ki, kj)` order. The copies hold `kw` times the image (a patch
//! matrix `kh·kw` times).
//!
//! The kernel keeps an `MR × NV` block of vectors in registers over the whole sum (`MR` output
//! channels times `NV` vectors of 64 bytes of pixels, `L` lanes each), broadcasting each weight
//! and reusing each loaded input vector for the `MR` channels: the register blocking of a GEMM
//! micro-kernel (Goto & van de Geijn, *Anatomy of High-Performance Matrix Multiplication*, ACM
//! TOMS 2008) over the implicit patch matrix, as in direct convolutions (Zhang, Franchetti &
//! Low, *High Performance Zero-Memory Overhead Direct Convolutions*, ICML 2018). The block is
//! written twice with intrinsics (fused multiply–adds; `f32` and `f64`): for AVX-512F
//! (`MR × NV` = 6 × 4 vectors in 24 of its 32 registers) and for AVX2 + FMA (6 channels times
//! one 64-byte vector as two 256-bit halves, 12 of its 16 registers, the block's vectors one
//! after the other). Every lane takes the same operations in the same order either way, so the
//! two return the same bits; [`isa`] picks one, and CPUs with neither ([`applies`]) take
//! `conv`'s patches-and-`gemm` path. Each output is summed in one fixed order, so the result
//! does not depend on the number of threads.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv::PatchGeom;
use super::float::Float;
use super::isa::{isa, Isa};

/// Whether [`conv2d`] computes the convolution `g`: stride 1, output rows as wide as the
/// input's, no empty axis, and a CPU with AVX2 + FMA or AVX-512F (as [`isa`] reports).
pub fn applies(g: &PatchGeom) -> bool {
    g.stride == [1, 1] && g.ow == g.w && g.n * g.c * g.oh * g.ow > 0 && vector_kernels()
}

/// Fused multiply–adds a task should hold at least (rayon's overhead per task is a few µs).
const TASK_FMAS: usize = 1 << 17;
/// Bytes of shifted copies a task keeps (its images' `c·kw` copies): within L2.
const SCRATCH_BYTES: usize = 256 << 10;

/// What every task of one [`conv2d`] shares.
struct Plan<'a, T> {
    x: &'a [T],
    g: &'a PatchGeom,
    /// Output channels.
    o: usize,
    /// The weights of each group's blocks of `mr` output channels, `[groups, blocks, rows, mr]`
    /// (zeros past the last channel).
    packed: Vec<T>,
    /// The bias per output channel (zeros without one).
    bias: Vec<T>,
    /// Images per task.
    nb: usize,
    /// Elements between two shifted copies (`(h + 2ph)·w` plus a vector of slack).
    stride: usize,
    /// Per patch row `(c, ki, kj)` of a group: where its run starts in the task's copies,
    /// relative to a pixel's offset, for a task of `nb` images.
    taps: Taps,
}

/// A 2-D convolution (stride 1, `ow = w`: see [`applies`]) of `x` (`[n, c, h, w]`) with
/// `weight` (`[o, c/groups, kh, kw]`) plus `bias` (`[o]`), written as `[n, o, oh, ow]`.
/// Tasks of a few images run in parallel.
///
/// # Panics
/// If `g` does not satisfy [`applies`] or the slices are not the geometry's.
pub fn conv2d<T: Kernel>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    assert!(applies(g), "conv_shift::conv2d on an unsupported geometry");
    let (lanes, mr) = (T::LANES, MR);
    let rows = g.rows();
    let (groups, cg, og) = (g.groups, g.c / g.groups, o / g.groups);
    assert_eq!(weight.len(), o * rows, "conv_shift::conv2d weight");
    let blocks = og.div_ceil(mr);
    let mut packed = vec![T::ZERO; groups * blocks * rows * mr];
    for grp in 0..groups {
        for oc in 0..og {
            let (blk, m) = (oc / mr, oc % mr);
            let src = &weight[(grp * og + oc) * rows..][..rows];
            let dst = &mut packed[(grp * blocks + blk) * rows * mr..][..rows * mr];
            for (r, &v) in src.iter().enumerate() {
                dst[r * mr + m] = v;
            }
        }
    }
    let l = g.oh * g.ow;
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let stride = (g.h + 2 * g.padding[0]) * g.w + lanes;
    let per_image = cg * kw * stride * std::mem::size_of::<T>();
    let nb = (NV * lanes)
        .div_ceil(l)
        .max(TASK_FMAS.div_ceil(l * rows * og.max(1)))
        .min((SCRATCH_BYTES / per_image).max(1))
        .clamp(1, g.n);
    let mut offs = Vec::with_capacity(rows);
    for c in 0..cg {
        for ki in 0..kh {
            for kj in 0..kw {
                offs.push((c * kw + kj) * nb * stride + ki * g.dilation[0] * g.w);
            }
        }
    }
    let plan = Plan {
        x,
        g,
        o,
        packed,
        bias: bias.map_or_else(|| vec![T::ZERO; o], <[T]>::to_vec),
        nb,
        stride,
        taps: Taps::new(offs),
    };
    let len = g.n * o * l;
    let mut out = T::take(len);
    // The tasks write every output straight into the buffer's spare capacity: no zero fill.
    let spare = &mut out.spare_capacity_mut()[..len];
    let run = |xs: &mut Vec<T>, (t, dst): (usize, &mut [MaybeUninit<T>])| task(&plan, t, dst, xs);
    if g.n > nb {
        spare
            .par_chunks_mut(nb * o * l)
            .enumerate()
            .for_each_init(Vec::new, run);
    } else {
        run(&mut Vec::new(), (0, spare));
    }
    // SAFETY: `take` returned a buffer with capacity ≥ len, and the tasks wrote each of its
    // first `len` elements: every image `b` of a task, channel `oc` (the blocks of `MR` cover
    // each group's `o/groups`) and pixel (the vectors cover `0 .. l`, the last `count` long).
    unsafe { out.set_len(len) };
    out
}

/// Pixels a [`conv2d_weight_grad`] task reaches at least (whole images): enough work per task
/// that rayon's overhead and the task's transposes and partial sum cost little.
const GRAD_PIXELS: usize = 1024;
/// Bytes of transposed output gradient one chunk of a task reads per block of vectors
/// ([`GRAD_VECTORS`] vectors a pixel): within L1 with the chunk's copies.
const GRAD_CHUNK_BYTES: usize = 16 << 10;
/// The widest block of output-channel vectors of [`Kernel::grad_rows`].
pub(super) const GRAD_VECTORS: usize = 4;

/// The weight gradient of [`conv2d`] (`ow = w`, stride 1: see [`applies`]):
/// `gw[oc, c, ki, kj] = Σ_(b, q) gy[b, oc, q] · xs_(c, kj)[b, ki·dh·w + q]` from the image `x`
/// (`[n, c, h, w]`) and the output gradient `gy` (`[n, o, oh, ow]`), as `[o, c/groups, kh, kw]`.
///
/// The same product as [`conv2d`]'s with the roles turned: a task of whole images (at least
/// `GRAD_PIXELS` pixels) builds its shifted copies and its output gradient transposed to
/// `[pixels, channels]`, and the kernel keeps a block of patch rows × vectors of output
/// channels in registers, broadcasting one copy value per row and pixel and loading each
/// vector of channels once for the block's rows — no horizontal sums. The pixels go in chunks
/// whose transposed gradient stays in L1, the block's sums parked in the task's `[rows,
/// channels]` accumulator between chunks. Each sum runs over the task's pixels in order and
/// the tasks' partial gradients are summed in task order (the same result on any number of
/// threads).
///
/// # Panics
/// If `g` does not satisfy [`applies`] or the slices are not the geometry's.
pub fn conv2d_weight_grad<T: Kernel>(x: &[T], gy: &[T], g: &PatchGeom, o: usize) -> Vec<T> {
    assert!(
        applies(g),
        "conv_shift::conv2d_weight_grad on an unsupported geometry"
    );
    let rows = g.rows();
    let l = g.oh * g.ow;
    assert_eq!(
        gy.len(),
        g.n * o * l,
        "conv_shift::conv2d_weight_grad output gradient"
    );
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let stride = (g.h + 2 * g.padding[0]) * g.w + T::LANES;
    let per_image = cg * kw * stride * std::mem::size_of::<T>();
    let nb = GRAD_PIXELS
        .div_ceil(l)
        .min((4 * SCRATCH_BYTES / per_image).max(1))
        .clamp(1, g.n);
    let tiles = g.n.div_ceil(nb);
    let offsets = |nb: usize| {
        let mut offs = Vec::with_capacity(rows);
        for c in 0..cg {
            for ki in 0..kh {
                for kj in 0..kw {
                    offs.push((c * kw + kj) * nb * stride + ki * g.dilation[0] * g.w);
                }
            }
        }
        offs
    };
    let (full, last) = (offsets(nb), offsets(g.n - (tiles - 1) * nb));
    let run = |s: &mut GradScratch<T>, (t, dst): (usize, &mut [T])| {
        let b0 = t * nb;
        let nb_here = nb.min(g.n - b0);
        let offs = if nb_here == nb { &full } else { &last };
        grad_task(x, gy, g, o, [b0, nb_here, stride], offs, dst, s);
    };
    let partial = super::conv::summed_tile_partials(tiles, o * rows, run);
    let mut out = T::take(o * rows);
    out.extend_from_slice(&partial[..o * rows]);
    T::give(partial);
    out
}

/// Per-thread scratch of [`conv2d_weight_grad`].
#[derive(Default)]
struct GradScratch<T> {
    /// The task's shifted copies.
    xs: Vec<T>,
    /// The task's output gradient of one group, `[pixels, ogp]` (`ogp`: `o/groups` rounded up
    /// to whole vectors; the lanes past `o/groups` stay zero).
    gyt: Vec<T>,
    /// The group's weight-gradient sums, `[rows, ogp]`.
    acc: Vec<T>,
}

/// A run of consecutive pixels of one image in a chunk of a [`conv2d_weight_grad`] task.
#[derive(Clone, Copy, Debug)]
pub struct PixelRun {
    /// Its first pixel in the task's copies (before a patch row's offset).
    pub(super) xs: usize,
    /// Elements between two consecutive pixels in the copies (1 here).
    pub(super) step: usize,
    /// Its first pixel's row of the transposed output gradient, times `ogp`.
    pub(super) gyt: usize,
    /// Its pixels.
    pub(super) len: usize,
}

/// One task of [`conv2d_weight_grad`]: the images `b0 .. b0 + nb` into `dst` (`[o, rows]`).
#[allow(clippy::too_many_arguments)]
fn grad_task<T: Kernel>(
    x: &[T],
    gy: &[T],
    g: &PatchGeom,
    o: usize,
    [b0, nb, stride]: [usize; 3],
    offs: &[usize],
    dst: &mut [T],
    s: &mut GradScratch<T>,
) {
    let (rows, l, lanes) = (g.rows(), g.oh * g.ow, T::LANES);
    let (cg, og) = (g.c / g.groups, o / g.groups);
    let nvec = og.div_ceil(lanes);
    let ogp = nvec * lanes;
    let pixels = nb * l;
    if s.gyt.len() != pixels * ogp {
        s.gyt.clear();
        s.gyt.resize(pixels * ogp, T::ZERO);
    }
    // The pixels in chunks of `chunk`, cut into runs at the images' ends.
    let chunk = (GRAD_CHUNK_BYTES / (GRAD_VECTORS * lanes * std::mem::size_of::<T>())).max(1);
    let mut runs = Vec::with_capacity(nb + pixels / chunk + 1);
    let mut ends = Vec::with_capacity(pixels / chunk + 1);
    let mut filled = 0;
    for b in 0..nb {
        let mut q = 0;
        while q < l {
            let len = (chunk - filled).min(l - q);
            runs.push(PixelRun {
                xs: b * stride + q,
                step: 1,
                gyt: (b * l + q) * ogp,
                len,
            });
            (filled, q) = (filled + len, q + len);
            if filled == chunk {
                ends.push(runs.len());
                filled = 0;
            }
        }
    }
    if filled > 0 {
        ends.push(runs.len());
    }
    for grp in 0..g.groups {
        shifted_copies(x, g, [b0, nb, grp * cg], stride, &mut s.xs);
        for b in 0..nb {
            transpose_planes(
                &gy[((b0 + b) * o + grp * og) * l..][..og * l],
                [og, l],
                // SAFETY: the transpose stores initialised values only.
                unsafe { uninit_view(&mut s.gyt[b * l * ogp..][..l * ogp]) },
                ogp,
            );
        }
        s.acc.clear();
        s.acc.resize(rows * ogp, T::ZERO);
        for v0 in (0..nvec).step_by(GRAD_VECTORS) {
            let mut start = 0;
            for &end in &ends {
                let acc = &mut s.acc;
                T::grad_rows(&s.xs, &s.gyt, ogp, &runs[start..end], offs, v0, acc, false);
                start = end;
            }
        }
        for oc in 0..og {
            let d = &mut dst[(grp * og + oc) * rows..][..rows];
            for (r, v) in d.iter_mut().enumerate() {
                *v = s.acc[r * ogp + oc];
            }
        }
    }
}

/// `dst[q·ds + c] = src[c·l + q]` for the `c < rows` planes of `src`, `l` values each: the
/// whole `LANES × LANES` tiles by [`Kernel::transpose`], the rest one value at a time. `dst`
/// may be uninitialised (an output buffer's spare capacity): it is only written.
pub(super) fn transpose_planes<T: Kernel>(
    src: &[T],
    [rows, l]: [usize; 2],
    dst: &mut [MaybeUninit<T>],
    ds: usize,
) {
    let lanes = T::LANES;
    for c0 in (0..rows).step_by(lanes) {
        for q0 in (0..l).step_by(lanes) {
            if c0 + lanes <= rows && q0 + lanes <= l {
                T::transpose(&src[c0 * l + q0..], l, &mut dst[q0 * ds + c0..], ds);
            } else {
                for c in c0..rows.min(c0 + lanes) {
                    for q in q0..l.min(q0 + lanes) {
                        dst[q * ds + c].write(src[c * l + q]);
                    }
                }
            }
        }
    }
}

/// `v` as the destination of [`transpose_planes`] or [`Kernel::transpose`], which only write.
///
/// # Safety
/// Nothing may store an uninitialised value (`MaybeUninit::uninit()`) through the view: `v`
/// must stay initialised.
pub(super) unsafe fn uninit_view<T: Copy>(v: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout; the caller keeps `v` initialised.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// Output channels per register block.
const MR: usize = 6;
/// Vectors (64 bytes of pixels each) per register block: `MR·NV` = 24 accumulators of
/// AVX-512's 32 registers.
const NV: usize = 4;

/// Whether this module's kernels run here: [`isa`] reports AVX2 + FMA or AVX-512F.
pub(super) fn vector_kernels() -> bool {
    isa() >= Isa::Avx2
}

/// The kernels' instructions: AVX-512F or AVX2 + FMA, as [`isa`] reports.
///
/// # Panics
/// If [`isa`] reports neither ([`vector_kernels`] is false).
fn level() -> Isa {
    let isa = isa();
    assert!(isa >= Isa::Avx2, "conv_shift needs AVX2 + FMA or AVX-512F");
    isa
}

/// The shifted copies of `nb` images' channels `ch0 .. ch0 + cg` (images `b0 ..` of `x`) into
/// `xs`, `[cg, kw, nb, stride]`: copy `(c, kj)` of image `b` holds `ph` zero rows, the image's
/// rows shifted by `s = kj·dw − pw` columns (zeros where that leaves the row), `ph` zero rows and
/// zero slack. The shift is one copy of the whole plane moved by `s` elements, then zeros over
/// the `|s|` columns that wrapped into the neighbouring row. The zero rows and slack are written
/// only when `xs` changes size: every call overwrites each plane's interior and nothing else.
fn shifted_copies<T: Float>(
    x: &[T],
    g: &PatchGeom,
    [b0, nb, ch0]: [usize; 3],
    stride: usize,
    xs: &mut Vec<T>,
) {
    let (cg, kw, w) = (g.c / g.groups, g.kernel[1], g.w);
    let plane = g.h * w;
    let top = g.padding[0] * w;
    let len = cg * kw * nb * stride;
    if xs.len() != len {
        xs.clear();
        xs.resize(len, T::ZERO);
    }
    for (i, copy) in xs.chunks_exact_mut(stride).enumerate() {
        let (b, ckj) = (i % nb, i / nb);
        let (c, kj) = (ckj / kw, ckj % kw);
        let src = &x[((b0 + b) * g.c + ch0 + c) * plane..][..plane];
        let dst = &mut copy[top..top + plane];
        let s = (kj * g.dilation[1]) as isize - g.padding[1] as isize;
        let k = s.unsigned_abs().min(w);
        if s >= 0 {
            // dst[q] = src[q + k]; columns w − k .. w wrapped.
            dst[..plane - k].copy_from_slice(&src[k..]);
            for row in dst.chunks_exact_mut(w) {
                zero_short(&mut row[w - k..]);
            }
        } else {
            // dst[q] = src[q − k]; columns 0 .. k wrapped.
            dst[k..].copy_from_slice(&src[..plane - k]);
            for row in dst.chunks_exact_mut(w) {
                zero_short(&mut row[..k]);
            }
        }
    }
}

/// Zeros `v`, inline for the one or two values of a 3×3 or 5×5 kernel's wrapped columns (a
/// `memset` call per row costs more than the row's copy).
#[inline(always)]
fn zero_short<T: Float>(v: &mut [T]) {
    match v.len() {
        0 => {}
        1 => v[0] = T::ZERO,
        2 => v.copy_from_slice(&[T::ZERO; 2]),
        _ => v.fill(T::ZERO),
    }
}

/// One task: the images `t·nb ..` into `dst` (their `[nb, o, l]` outputs).
fn task<T: Kernel>(p: &Plan<T>, t: usize, dst: &mut [MaybeUninit<T>], xs: &mut Vec<T>) {
    let g = p.g;
    let (o, l, rows) = (p.o, g.oh * g.ow, g.rows());
    let (cg, og) = (g.c / g.groups, p.o / g.groups);
    let nb = dst.len() / (o * l);
    let b0 = t * p.nb;
    let blocks = og.div_ceil(MR);
    // The task's vectors of `T::LANES` pixels, `per` to an image (the last one partial).
    let per = l.div_ceil(T::LANES);
    let nvec = nb * per;
    // With fewer images than `p.nb` (the last task) the copies are `nb` apart, not `p.nb`.
    let rescaled: Taps;
    let taps = if nb == p.nb {
        &p.taps
    } else {
        let span = p.nb * p.stride;
        rescaled = Taps::new(
            p.taps
                .offs
                .iter()
                .map(|&off| off / span * nb * p.stride + off % span)
                .collect(),
        );
        &rescaled
    };
    for grp in 0..g.groups {
        shifted_copies(p.x, g, [b0, nb, grp * cg], p.stride, xs);
        for blk in 0..blocks {
            let w = &p.packed[(grp * blocks + blk) * rows * MR..][..rows * MR];
            let oc0 = grp * og + blk * MR;
            let m_here = MR.min(og - blk * MR);
            let bias: [T; MR] = std::array::from_fn(|m| p.bias[oc0 + m.min(m_here - 1)]);
            for v0 in (0..nvec).step_by(NV) {
                let n_here = NV.min(nvec - v0);
                // Missing vectors of the last block repeat its last one (computed, not stored).
                let vecs: [(usize, usize); NV] = std::array::from_fn(|v| {
                    let i = v0 + v.min(n_here - 1);
                    (i / per, i % per * T::LANES)
                });
                let job = Block {
                    base: vecs.map(|(b, q0)| b * p.stride + q0),
                    out: vecs.map(|(b, q0)| (b * o + oc0) * l + q0),
                    count: vecs.map(|(_, q0)| T::LANES.min(l - q0)),
                    vectors: n_here,
                    channels: m_here,
                    plane: l,
                };
                T::block(xs, taps, w, bias, &job, dst);
            }
        }
    }
}

/// The offsets of a group's patch rows in a task's copies, with their largest.
pub struct Taps {
    offs: Vec<usize>,
    reach: usize,
}

impl Taps {
    fn new(offs: Vec<usize>) -> Taps {
        let reach = offs.iter().max().copied().unwrap_or(0);
        Taps { offs, reach }
    }
}

/// Where one register block reads and writes.
pub struct Block {
    /// Each vector's first element in the copies (before a patch row's offset).
    base: [usize; NV],
    /// Each vector's first output, of the block's first channel.
    out: [usize; NV],
    /// Each vector's pixels (`LANES` but at the end of an image).
    count: [usize; NV],
    /// Vectors to write (the rest repeat the last).
    vectors: usize,
    /// Channels to write (the rest are padding).
    channels: usize,
    /// Elements between two channels' outputs.
    plane: usize,
}

/// The register-blocked kernel of [`conv2d`], per element type.
pub trait Kernel: Float {
    /// Lanes of a 64-byte vector.
    const LANES: usize;
    /// `dst[out[v] + m·plane ..][..count[v]] = bias[m] + Σ_r w[r·MR + m] · xs[base[v] + offs[r]
    /// ..][..count[v]]` (`offs` the taps' offsets) for the block's channels `m` and vectors `v`,
    /// each sum in `r` order with fused multiply–adds.
    ///
    /// # Panics
    /// If a run reaches past `xs` or `dst`, `w` is not `offs.len()·MR` long, or [`isa`]
    /// reports neither AVX2 + FMA nor AVX-512F.
    fn block(
        xs: &[Self],
        taps: &Taps,
        w: &[Self],
        bias: [Self; MR],
        job: &Block,
        dst: &mut [MaybeUninit<Self>],
    );

    /// `acc[r·ogp + v·LANES ..][..LANES] += Σ_(run, i) xs[run.xs + i·run.step + offs[r]] ·
    /// gyt[run.gyt + i·ogp + v·LANES ..][..LANES]` for every patch row `r` and the vectors `v`
    /// of channels `v0 .. v0 + GRAD_VECTORS` (those below `ogp`), each sum in the runs' and
    /// pixels' order with fused multiply–adds, the rows in register blocks. With `from_zero`
    /// the sums start from +0 instead of `acc`'s values, which are then only written.
    ///
    /// # Panics
    /// If a run reaches past `xs` or `gyt`, `acc` is not `offs.len()·ogp` long, `ogp` is not a
    /// whole number of vectors or `v0` not below them, or [`isa`] reports neither AVX2 + FMA
    /// nor AVX-512F.
    #[allow(clippy::too_many_arguments)]
    fn grad_rows(
        xs: &[Self],
        gyt: &[Self],
        ogp: usize,
        runs: &[PixelRun],
        offs: &[usize],
        v0: usize,
        acc: &mut [Self],
        from_zero: bool,
    );

    /// `dst[j·ds + i] = src[i·ss + j]` for `i, j < LANES`: one tile transposed in registers
    /// (`dst` may be uninitialised: it is only written).
    ///
    /// # Panics
    /// If a row reaches past `src` or `dst`, or [`isa`] reports neither AVX2 + FMA nor
    /// AVX-512F.
    fn transpose(src: &[Self], ss: usize, dst: &mut [MaybeUninit<Self>], ds: usize);
}

/// Checks that a block's loads stay in `xs` (`xs_len`) and its stores in `dst` (`dst_len`).
fn check_block(job: &Block, reach: usize, lanes: usize, xs_len: usize, dst_len: usize) {
    assert!(
        job.vectors <= NV && job.channels <= MR,
        "conv_shift block size"
    );
    for v in 0..NV {
        assert!(
            job.base[v] + reach + lanes <= xs_len && job.count[v] <= lanes,
            "conv_shift block reaches past its copies"
        );
    }
    for v in 0..job.vectors {
        assert!(
            job.channels == 0
                || job.out[v] + (job.channels - 1) * job.plane + job.count[v] <= dst_len,
            "conv_shift block reaches past its output"
        );
    }
}

macro_rules! vector_kernels {
    ($t:ty, $lanes:literal, $avx:ident, $grad:ident, $set1:ident, $loadu:ident, $fmadd:ident,
     $storeu:ident, $mask_storeu:ident, $mask:ty, $transpose:ident,
     $avx2:ident, $grad2:ident, $set1_2:ident, $loadu_2:ident, $fmadd_2:ident, $storeu_2:ident,
     $transpose2:ident) => {
        impl Kernel for $t {
            const LANES: usize = $lanes;
            fn block(
                xs: &[$t],
                taps: &Taps,
                w: &[$t],
                bias: [$t; MR],
                job: &Block,
                dst: &mut [MaybeUninit<$t>],
            ) {
                let isa = level();
                assert_eq!(w.len(), taps.offs.len() * MR, "conv_shift block weights");
                check_block(job, taps.reach, $lanes, xs.len(), dst.len());
                // SAFETY: `$avx` requires AVX-512F, `$avx2` AVX2 and FMA, as `level` reports
                // the CPU to have; their loads stay in `xs` (checked above: every
                // `base[v] + offs[r] + LANES ≤ xs.len()`) and `w` (`MR` values per entry of
                // `offs`), their stores in `dst` (checked above for the block's channels and
                // vectors, `count[v]` values each).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match isa {
                        Isa::Avx512 => $avx(xs, &taps.offs, w, bias, job, dst),
                        _ => $avx2(xs, &taps.offs, w, bias, job, dst),
                    }
                }
            }

            #[allow(clippy::too_many_arguments)]
            fn grad_rows(
                xs: &[$t],
                gyt: &[$t],
                ogp: usize,
                runs: &[PixelRun],
                offs: &[usize],
                v0: usize,
                acc: &mut [$t],
                from_zero: bool,
            ) {
                let isa = level();
                let nvec = ogp / $lanes;
                assert!(
                    ogp % $lanes == 0 && v0 < nvec && acc.len() == offs.len() * ogp,
                    "conv_shift gradient accumulator"
                );
                let reach = offs.iter().max().copied().unwrap_or(0);
                for run in runs {
                    assert!(
                        (run.len == 0 || run.xs + (run.len - 1) * run.step + reach < xs.len())
                            && (run.len == 0 || run.gyt + run.len * ogp <= gyt.len()),
                        "conv_shift gradient run reaches past its operands"
                    );
                }
                // SAFETY: `$grad` requires AVX-512F, `$grad2` AVX2 and FMA, as `level` reports
                // the CPU to have. Each reads `xs` at
                // `run.xs + i·run.step + offs[r]` (`i < run.len`: below `xs.len()`, checked
                // above),
                // `gyt` at `run.gyt + i·ogp + v·LANES` for `v < nvec` (a vector ends at most
                // at `run.gyt + (run.len − 1)·ogp + ogp ≤ gyt.len()`, checked above), and
                // `acc` at `r·ogp + v·LANES` for `r < offs.len()`, `v < nvec` (its length,
                // checked above).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let vh = (nvec - v0).min(GRAD_VECTORS);
                    if isa == Isa::Avx512 {
                        let k = [$grad::<24, 1>, $grad::<12, 2>, $grad::<8, 3>, $grad::<6, 4>];
                        k[vh - 1](xs, gyt, ogp, runs, offs, v0 * $lanes, acc, from_zero)
                    } else {
                        for v in v0..v0 + vh {
                            $grad2::<6>(xs, gyt, ogp, runs, offs, v * $lanes, acc, from_zero)
                        }
                    }
                }
            }

            fn transpose(src: &[$t], ss: usize, dst: &mut [MaybeUninit<$t>], ds: usize) {
                let isa = level();
                assert!(
                    src.len() >= ($lanes - 1) * ss + $lanes
                        && dst.len() >= ($lanes - 1) * ds + $lanes,
                    "conv_shift transpose tile reaches past its slices"
                );
                // SAFETY: `$transpose` requires AVX-512F, `$transpose2` AVX2, as `level`
                // reports the CPU to have; each reads the `LANES` rows `src[i·ss ..][..LANES]`
                // and writes `dst[j·ds ..][..LANES]`, in the slices as checked above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let (s, d) = (src.as_ptr(), dst.as_mut_ptr().cast());
                    match isa {
                        Isa::Avx512 => $transpose(s, ss, d, ds),
                        _ => $transpose2(s, ss, d, ds),
                    }
                }
            }
        }

        /// [`Kernel::grad_rows`] for `V` vectors of channels (at `gyt`'s and `acc`'s column
        /// `c0`), `R` patch rows at a time: `R·V` = 24 accumulators of AVX-512's 32 registers,
        /// `V` loaded vectors and one broadcast per row and pixel. The last block's missing
        /// rows repeat its last row (computed, not stored).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $grad<const R: usize, const V: usize>(
            xs: &[$t],
            gyt: &[$t],
            ogp: usize,
            runs: &[PixelRun],
            offs: &[usize],
            c0: usize,
            acc: &mut [$t],
            from_zero: bool,
        ) {
            use std::arch::x86_64::*;
            let (px, pg, pa) = (xs.as_ptr(), gyt.as_ptr(), acc.as_mut_ptr());
            let rows = offs.len();
            for r0 in (0..rows).step_by(R) {
                let here = R.min(rows - r0);
                let row = |j: usize| r0 + j.min(here - 1);
                let roff: [usize; R] = std::array::from_fn(|j| offs[row(j)]);
                let mut a = [[$set1(0.0); V]; R];
                for j in (0..R).filter(|_| !from_zero) {
                    for v in 0..V {
                        // SAFETY: `row(j) < rows`, `c0 + v·LANES < ogp` (the caller's).
                        a[j][v] = unsafe { $loadu(pa.add(row(j) * ogp + c0 + v * $lanes)) };
                    }
                }
                for run in runs {
                    // SAFETY: the run's pixels are in `xs` and `gyt` (the caller's).
                    let (mut x, mut gp) = unsafe { (px.add(run.xs), pg.add(run.gyt + c0)) };
                    for _ in 0..run.len {
                        let mut gv = [$set1(0.0); V];
                        for v in 0..V {
                            // SAFETY: as above.
                            gv[v] = unsafe { $loadu(gp.add(v * $lanes)) };
                        }
                        for j in 0..R {
                            // SAFETY: as above.
                            let xb = $set1(unsafe { *x.add(roff[j]) });
                            for v in 0..V {
                                a[j][v] = $fmadd(xb, gv[v], a[j][v]);
                            }
                        }
                        // The next pixel (past the run's last one, never read, at the end:
                        // hence the wrapping step for `x`).
                        x = x.wrapping_add(run.step);
                        // SAFETY: one past the run's last pixel's vectors at most.
                        gp = unsafe { gp.add(ogp) };
                    }
                }
                for j in 0..here {
                    for v in 0..V {
                        // SAFETY: as the loads above.
                        unsafe { $storeu(pa.add((r0 + j) * ogp + c0 + v * $lanes), a[j][v]) };
                    }
                }
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx(
            xs: &[$t],
            offs: &[usize],
            w: &[$t],
            bias: [$t; MR],
            job: &Block,
            dst: &mut [MaybeUninit<$t>],
        ) {
            use std::arch::x86_64::*;
            let mut a = [[$set1(0.0); NV]; MR];
            for m in 0..MR {
                for v in 0..NV {
                    a[m][v] = $set1(bias[m]);
                }
            }
            let (px, pw) = (xs.as_ptr(), w.as_ptr());
            let base = job.base;
            for (r, &off) in offs.iter().enumerate() {
                let mut x = [$set1(0.0); NV];
                for v in 0..NV {
                    // SAFETY: in `xs`, as the caller checked.
                    x[v] = unsafe { $loadu(px.add(base[v] + off)) };
                }
                for m in 0..MR {
                    // SAFETY: `r·MR + m < w.len()`, as the caller checked.
                    let wm = $set1(unsafe { *pw.add(r * MR + m) });
                    for v in 0..NV {
                        a[m][v] = $fmadd(wm, x[v], a[m][v]);
                    }
                }
            }
            let pd = dst.as_mut_ptr().cast::<$t>();
            for v in 0..job.vectors {
                for m in 0..job.channels {
                    // SAFETY: `out[v] + m·plane + count[v] ≤ dst.len()`, as the caller checked;
                    // a partial vector writes only its first `count[v]` lanes.
                    unsafe {
                        let at = pd.add(job.out[v] + m * job.plane);
                        if job.count[v] == $lanes {
                            $storeu(at, a[m][v]);
                        } else {
                            let keep = ((1u32 << job.count[v]) - 1) as $mask;
                            $mask_storeu(at, keep, a[m][v]);
                        }
                    }
                }
            }
        }

        /// [`Kernel::block`] with AVX2: `MR` channels times one 64-byte vector of pixels (two
        /// 256-bit halves) at a time — 12 accumulators of AVX2's 16 registers — the block's
        /// vectors one after the other. Each lane's sum takes the same operations in the same
        /// order as `$avx`'s, so the two return the same bits.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2(
            xs: &[$t],
            offs: &[usize],
            w: &[$t],
            bias: [$t; MR],
            job: &Block,
            dst: &mut [MaybeUninit<$t>],
        ) {
            use std::arch::x86_64::*;
            const H: usize = $lanes / 2;
            let (px, pw) = (xs.as_ptr(), w.as_ptr());
            let pd = dst.as_mut_ptr().cast::<$t>();
            for v in 0..job.vectors {
                let mut a: [[_; 2]; MR] = std::array::from_fn(|m| [$set1_2(bias[m]); 2]);
                let base = job.base[v];
                for (r, &off) in offs.iter().enumerate() {
                    // SAFETY: in `xs`, as the caller checked.
                    let x = unsafe {
                        [
                            $loadu_2(px.add(base + off)),
                            $loadu_2(px.add(base + off + H)),
                        ]
                    };
                    for m in 0..MR {
                        // SAFETY: `r·MR + m < w.len()`, as the caller checked.
                        let wm = $set1_2(unsafe { *pw.add(r * MR + m) });
                        a[m][0] = $fmadd_2(wm, x[0], a[m][0]);
                        a[m][1] = $fmadd_2(wm, x[1], a[m][1]);
                    }
                }
                for (m, am) in a.iter().enumerate().take(job.channels) {
                    // SAFETY: `out[v] + m·plane + count[v] ≤ dst.len()`, as the caller
                    // checked; a partial vector writes only its first `count[v]` lanes.
                    unsafe {
                        let at = pd.add(job.out[v] + m * job.plane);
                        if job.count[v] == $lanes {
                            $storeu_2(at, am[0]);
                            $storeu_2(at.add(H), am[1]);
                        } else {
                            let mut whole = [0.0 as $t; $lanes];
                            $storeu_2(whole.as_mut_ptr(), am[0]);
                            $storeu_2(whole.as_mut_ptr().add(H), am[1]);
                            std::ptr::copy_nonoverlapping(whole.as_ptr(), at, job.count[v]);
                        }
                    }
                }
            }
        }

        /// [`Kernel::grad_rows`] with AVX2 for one 64-byte vector of channels (at `gyt`'s and
        /// `acc`'s column `c0`, two 256-bit halves), `R` patch rows at a time: `2R`
        /// accumulators, two loads and one broadcast per row and pixel. The same operations per
        /// lane, in the same order, as `$grad`'s.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $grad2<const R: usize>(
            xs: &[$t],
            gyt: &[$t],
            ogp: usize,
            runs: &[PixelRun],
            offs: &[usize],
            c0: usize,
            acc: &mut [$t],
            from_zero: bool,
        ) {
            use std::arch::x86_64::*;
            const H: usize = $lanes / 2;
            let (px, pg, pa) = (xs.as_ptr(), gyt.as_ptr(), acc.as_mut_ptr());
            let rows = offs.len();
            for r0 in (0..rows).step_by(R) {
                let here = R.min(rows - r0);
                let row = |j: usize| r0 + j.min(here - 1);
                let roff: [usize; R] = std::array::from_fn(|j| offs[row(j)]);
                let mut a = [[$set1_2(0.0); 2]; R];
                for j in (0..R).filter(|_| !from_zero) {
                    for (h, ah) in a[j].iter_mut().enumerate() {
                        // SAFETY: `row(j) < rows`, `c0 + LANES ≤ ogp` (the caller's).
                        *ah = unsafe { $loadu_2(pa.add(row(j) * ogp + c0 + h * H)) };
                    }
                }
                for run in runs {
                    // SAFETY: the run's pixels are in `xs` and `gyt` (the caller's).
                    let (mut x, mut gp) = unsafe { (px.add(run.xs), pg.add(run.gyt + c0)) };
                    for _ in 0..run.len {
                        // SAFETY: as above.
                        let gv = unsafe { [$loadu_2(gp), $loadu_2(gp.add(H))] };
                        for j in 0..R {
                            // SAFETY: as above.
                            let xb = $set1_2(unsafe { *x.add(roff[j]) });
                            a[j][0] = $fmadd_2(xb, gv[0], a[j][0]);
                            a[j][1] = $fmadd_2(xb, gv[1], a[j][1]);
                        }
                        // The next pixel (as in `$grad`).
                        x = x.wrapping_add(run.step);
                        // SAFETY: one past the run's last pixel's vectors at most.
                        gp = unsafe { gp.add(ogp) };
                    }
                }
                for j in 0..here {
                    for (h, ah) in a[j].iter().enumerate() {
                        // SAFETY: as the loads above.
                        unsafe { $storeu_2(pa.add((r0 + j) * ogp + c0 + h * H), *ah) };
                    }
                }
            }
        }
    };
}

vector_kernels!(
    f32,
    16,
    block_f32_avx512,
    grad_f32_avx512,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps,
    _mm512_mask_storeu_ps,
    u16,
    transpose_f32_avx512,
    block_f32_avx2,
    grad_f32_avx2,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps,
    transpose_f32_avx2
);
vector_kernels!(
    f64,
    8,
    block_f64_avx512,
    grad_f64_avx512,
    _mm512_set1_pd,
    _mm512_loadu_pd,
    _mm512_fmadd_pd,
    _mm512_storeu_pd,
    _mm512_mask_storeu_pd,
    u8,
    transpose_f64_avx512,
    block_f64_avx2,
    grad_f64_avx2,
    _mm256_set1_pd,
    _mm256_loadu_pd,
    _mm256_fmadd_pd,
    _mm256_storeu_pd,
    transpose_f64_avx2
);

/// The `16 × 16` transpose of [`Kernel::transpose`] for `f32`: pairs of rows interleaved by
/// 32-bit then 64-bit unpacks (each 128-bit lane then holds four rows of one column), then
/// 128-bit lanes gathered across registers by two rounds of `shuffle_f32x4`.
///
/// # Safety
/// The CPU runs AVX-512F; `src + i·ss` and `dst + j·ds` are valid for 16 values for every
/// `i, j < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_f32_avx512(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the rows are valid (the caller's).
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * ss)) });
    // t[2a] = rows 2a, 2a+1 of columns 4L, 4L+1 in lane L; t[2a + 1] of columns 4L+2, 4L+3.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4a + k] = rows 4a .. 4a+4 of column 4L + k in lane L.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (a, k) = (i / 4, i % 4);
        let (p, q) = (
            _mm512_castps_pd(t[4 * a + k / 2]),
            _mm512_castps_pd(t[4 * a + 2 + k / 2]),
        );
        _mm512_castpd_ps(if k % 2 == 0 {
            _mm512_unpacklo_pd(p, q)
        } else {
            _mm512_unpackhi_pd(p, q)
        })
    });
    // v[k] / v[4 + k]: lanes 0, 2 / 1, 3 of u[k] and u[4 + k]; v[8 + k] / v[12 + k] the same
    // of u[8 + k] and u[12 + k].
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (h, odd, k) = (i / 8, i / 4 % 2, i % 4);
        let (p, q) = (u[8 * h + k], u[8 * h + 4 + k]);
        if odd == 0 {
            _mm512_shuffle_f32x4::<0x88>(p, q)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(p, q)
        }
    });
    // Column 4L + k: lane L of u[k], u[4 + k], u[8 + k], u[12 + k].
    for j in 0..16 {
        let (k, lane) = (j % 4, j / 4);
        let (p, q) = (v[k + 4 * (lane % 2)], v[8 + k + 4 * (lane % 2)]);
        let col = if lane < 2 {
            _mm512_shuffle_f32x4::<0x88>(p, q)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(p, q)
        };
        // SAFETY: the rows are valid (the caller's).
        unsafe { _mm512_storeu_ps(dst.add(j * ds), col) };
    }
}

/// The `8 × 8` transpose of [`Kernel::transpose`] for `f64`: pairs of rows interleaved by
/// unpacks (each 128-bit lane then holds two rows of one column), then 128-bit lanes gathered
/// across registers by two rounds of `shuffle_f64x2`.
///
/// # Safety
/// The CPU runs AVX-512F; `src + i·ss` and `dst + j·ds` are valid for 8 values for every
/// `i, j < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_f64_avx512(src: *const f64, ss: usize, dst: *mut f64, ds: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the rows are valid (the caller's).
    let r: [__m512d; 8] = std::array::from_fn(|i| unsafe { _mm512_loadu_pd(src.add(i * ss)) });
    // t[2a + k] = rows 2a, 2a+1 of column 2L + k in lane L.
    let t: [__m512d; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        }
    });
    // u[k] / u[2 + k]: lanes 0, 2 / 1, 3 of t[k] and t[2 + k]; u[4 + k] / u[6 + k] the same of
    // t[4 + k] and t[6 + k].
    let u: [__m512d; 8] = std::array::from_fn(|i| {
        let (h, odd, k) = (i / 4, i / 2 % 2, i % 2);
        let (p, q) = (t[4 * h + k], t[4 * h + 2 + k]);
        if odd == 0 {
            _mm512_shuffle_f64x2::<0x88>(p, q)
        } else {
            _mm512_shuffle_f64x2::<0xdd>(p, q)
        }
    });
    // Column 2L + k: lane L of t[k], t[2 + k], t[4 + k], t[6 + k].
    for j in 0..8 {
        let (k, lane) = (j % 2, j / 2);
        let (p, q) = (u[k + 2 * (lane % 2)], u[4 + k + 2 * (lane % 2)]);
        let col = if lane < 2 {
            _mm512_shuffle_f64x2::<0x88>(p, q)
        } else {
            _mm512_shuffle_f64x2::<0xdd>(p, q)
        };
        // SAFETY: the rows are valid (the caller's).
        unsafe { _mm512_storeu_pd(dst.add(j * ds), col) };
    }
}

/// The `16 × 16` transpose of [`Kernel::transpose`] for `f32` with AVX2: four `8 × 8` tiles,
/// tile `(a, b)` of `src` transposed into tile `(b, a)` of `dst`.
///
/// # Safety
/// The CPU runs AVX2; `src + i·ss` and `dst + j·ds` are valid for 16 values for every
/// `i, j < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_f32_avx2(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    for (a, b) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
        // SAFETY: the tiles lie in the rows the caller vouches for.
        unsafe { transpose8_f32_avx2(src.add(a * ss + b), ss, dst.add(b * ds + a), ds) };
    }
}

/// `dst[j·ds + i] = src[i·ss + j]` for `i, j < 8`: pairs of rows interleaved by 32-bit unpacks,
/// then 64-bit shuffles (each 128-bit lane then holds four rows of one column), then the lanes
/// gathered across registers by `permute2f128`.
///
/// # Safety
/// The CPU runs AVX2; `src + i·ss` and `dst + j·ds` are valid for 8 values for every `i, j < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose8_f32_avx2(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the rows are valid (the caller's).
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ss)) });
    // t[2a] = rows 2a, 2a+1 of columns 0, 1 (lane 0) and 4, 5 (lane 1); t[2a + 1] of 2, 3 / 6, 7.
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (p, q) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(p, q)
        } else {
            _mm256_unpackhi_ps(p, q)
        }
    });
    // u[4h + k] = rows 4h .. 4h+4 of column k (lane 0) and k + 4 (lane 1).
    let u: [__m256; 8] = std::array::from_fn(|i| {
        let (h, k) = (i / 4, i % 4);
        let (p, q) = (t[4 * h + k / 2], t[4 * h + 2 + k / 2]);
        if k % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(p, q)
        } else {
            _mm256_shuffle_ps::<0xee>(p, q)
        }
    });
    for j in 0..8 {
        let (p, q) = (u[j % 4], u[4 + j % 4]);
        let col = if j < 4 {
            _mm256_permute2f128_ps::<0x20>(p, q)
        } else {
            _mm256_permute2f128_ps::<0x31>(p, q)
        };
        // SAFETY: the rows are valid (the caller's).
        unsafe { _mm256_storeu_ps(dst.add(j * ds), col) };
    }
}

/// The `8 × 8` transpose of [`Kernel::transpose`] for `f64` with AVX2: four `4 × 4` tiles,
/// tile `(a, b)` of `src` transposed into tile `(b, a)` of `dst`, each by 64-bit unpacks of
/// pairs of rows and `permute2f128`.
///
/// # Safety
/// The CPU runs AVX2; `src + i·ss` and `dst + j·ds` are valid for 8 values for every
/// `i, j < 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_f64_avx2(src: *const f64, ss: usize, dst: *mut f64, ds: usize) {
    use std::arch::x86_64::*;
    for (a, b) in [(0, 0), (0, 4), (4, 0), (4, 4)] {
        // SAFETY: the tiles lie in the rows the caller vouches for.
        let r: [__m256d; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_pd(src.add((a + i) * ss + b)) });
        // t[0] = rows 0, 1 of columns 0 (lane 0) and 2 (lane 1); t[1] of 1 / 3; t[2], t[3] the
        // same of rows 2, 3.
        let t = [
            _mm256_unpacklo_pd(r[0], r[1]),
            _mm256_unpackhi_pd(r[0], r[1]),
            _mm256_unpacklo_pd(r[2], r[3]),
            _mm256_unpackhi_pd(r[2], r[3]),
        ];
        let cols = [
            _mm256_permute2f128_pd::<0x20>(t[0], t[2]),
            _mm256_permute2f128_pd::<0x20>(t[1], t[3]),
            _mm256_permute2f128_pd::<0x31>(t[0], t[2]),
            _mm256_permute2f128_pd::<0x31>(t[1], t[3]),
        ];
        for (j, col) in cols.into_iter().enumerate() {
            // SAFETY: the rows are valid (the caller's).
            unsafe { _mm256_storeu_pd(dst.add((b + j) * ds + a), col) };
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::conv::PatchLayout;
    use super::*;

    /// The geometry of a stride-1 convolution of `[n, c, h, w]`.
    pub(in super::super) fn geom(
        [n, c, h, w]: [usize; 4],
        groups: usize,
        kernel: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> PatchGeom {
        let out = |a: usize| [h, w][a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1);
        PatchGeom {
            n,
            c,
            h,
            w,
            groups,
            kernel,
            stride: [1, 1],
            padding,
            dilation,
            oh: out(0),
            ow: out(1),
            layout: PatchLayout::PatchesChannelsLast,
        }
    }

    /// The input pixel of output `(oi, oj)` at tap `(ki, kj)`, or `None` in the padding.
    fn source(g: &PatchGeom, [oi, oj, ki, kj]: [usize; 4]) -> Option<usize> {
        let r = (oi + ki * g.dilation[0]).checked_sub(g.padding[0])?;
        let s = (oj + kj * g.dilation[1]).checked_sub(g.padding[1])?;
        (r < g.h && s < g.w).then_some(r * g.w + s)
    }

    /// The convolution and its weight gradient by the definition, in `f64`.
    pub(in super::super) fn naive(
        x: &[f64],
        w: &[f64],
        b: &[f64],
        gy: &[f64],
        g: &PatchGeom,
    ) -> [Vec<f64>; 2] {
        let o = b.len();
        let (cg, og) = (g.c / g.groups, o / g.groups);
        let [kh, kw] = g.kernel;
        let (plane, l) = (g.h * g.w, g.oh * g.ow);
        let mut y = vec![0.0; g.n * o * l];
        let mut gw = vec![0.0; w.len()];
        for bi in 0..g.n {
            for oc in 0..o {
                for oi in 0..g.oh {
                    for oj in 0..g.ow {
                        let q = (bi * o + oc) * l + oi * g.ow + oj;
                        y[q] = b[oc];
                        for c in 0..cg {
                            let ch = oc / og * cg + c;
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    if let Some(p) = source(g, [oi, oj, ki, kj]) {
                                        let wi = ((oc * cg + c) * kh + ki) * kw + kj;
                                        let xv = x[(bi * g.c + ch) * plane + p];
                                        y[q] += w[wi] * xv;
                                        gw[wi] += gy[q] * xv;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        [y, gw]
    }

    /// Asserts `|got − want| ≤ tol · max(1, max |want|)` element by element.
    #[track_caller]
    pub(in super::super) fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (a, e)) in got.iter().zip(want).enumerate() {
            assert!((a - e).abs() <= tol * scale, "{what}[{i}]: {a} vs {e}");
        }
    }

    pub(in super::super) fn wave(len: usize, f: f64) -> Vec<f64> {
        (0..len).map(|k| (f * k as f64 + 0.3).sin()).collect()
    }

    /// Checks both kernels against [`naive`] in `f64` (to 1e-12 relative) and `f32` (1e-5), at
    /// the level [`isa`] reports (`host/engine/tests/isa.rs` checks that AVX2's kernels give
    /// AVX-512F's bits).
    fn check(g: PatchGeom, o: usize) {
        if !vector_kernels() {
            eprintln!("conv_shift tests skipped: neither AVX2 + FMA nor AVX-512F on this CPU");
            return;
        }
        assert!(applies(&g), "{g:?}");
        let rows = g.rows();
        let x = wave(g.image_len(), 0.37);
        let w = wave(o * rows, 0.91);
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
        let (xf, wf, bf, gyf) = (f(&x), f(&w), f(&b), f(&gy));
        close(
            &up(conv2d(&xf, &wf, Some(&bf), &g, o)),
            &y,
            1e-5,
            "f32 conv2d",
        );
        close(
            &up(conv2d_weight_grad(&xf, &gyf, &g, o)),
            &gw,
            1e-5,
            "f32 weight grad",
        );
        // Without a bias: the sums alone.
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
    fn tiles_transpose() {
        if !vector_kernels() {
            return;
        }
        fn run<T: Kernel + From<u16>>() {
            let (n, ss, ds) = (T::LANES, T::LANES + 3, T::LANES + 5);
            let src: Vec<T> = (0..n * ss).map(|k| T::from(k as u16)).collect();
            let mut dst = vec![T::ZERO; n * ds];
            // SAFETY: the transpose stores initialised values only.
            T::transpose(&src, ss, unsafe { uninit_view(&mut dst) }, ds);
            for i in 0..n {
                for j in 0..n {
                    assert!(dst[j * ds + i] == src[i * ss + j], "({i}, {j})");
                }
                assert!(dst[i * ds + n..][..ds - n].iter().all(|&v| v == T::ZERO));
            }
        }
        run::<f32>();
        run::<f64>();
    }

    #[test]
    fn same_convolutions_match_the_definition_on_odd_sizes() {
        // Partial vectors (7·6 = 42 pixels), a last task with fewer images, channel blocks
        // with padding (7 of 6 + 1), and a batch larger than one task.
        check(geom([3, 5, 7, 6], 1, [3, 3], [1, 1], [1, 1]), 7);
        check(geom([37, 5, 7, 6], 1, [3, 3], [1, 1], [1, 1]), 13);
        // A first layer (one channel), 1×1 and 5×3 kernels, dilation, rows without padding.
        check(geom([9, 1, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 32);
        check(geom([4, 6, 5, 5], 1, [1, 1], [0, 0], [1, 1]), 9);
        check(geom([2, 3, 9, 7], 1, [5, 3], [2, 1], [1, 1]), 4);
        check(geom([2, 3, 9, 7], 1, [3, 3], [2, 2], [2, 2]), 5);
        check(geom([3, 4, 6, 5], 1, [3, 3], [0, 1], [1, 1]), 6);
        // Groups, and images one vector wide (4×4).
        check(geom([5, 6, 6, 3], 3, [3, 3], [1, 1], [1, 1]), 9);
        check(geom([11, 8, 4, 4], 2, [3, 3], [1, 1], [1, 1]), 10);
        // Weight-gradient channel blocks: 64 (whole vectors of either type), 33 and 40 (a
        // padded last vector, 3 + 1 and 4 + 1 vectors of f64), 1; 28×28 images split into
        // several chunks, and 2×2 images several to a chunk.
        check(geom([3, 4, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 64);
        check(geom([2, 3, 28, 28], 1, [3, 3], [1, 1], [1, 1]), 40);
        check(geom([70, 3, 2, 2], 1, [3, 3], [1, 1], [1, 1]), 33);
        check(geom([5, 2, 5, 9], 1, [3, 3], [1, 1], [1, 1]), 1);
    }
}
