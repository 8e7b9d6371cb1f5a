//! Patch extraction for 2-D convolutions and pooling (im2col) and its adjoint (col2im), and the
//! CPU convolution kernels built on the same patches. Pooling is a reduction over `im2col`'s
//! patch axis and a transposed convolution a matrix product followed by `col2im`; a CPU
//! convolution ([`conv2d`]) and its weight gradient ([`conv2d_weight_grad`]) build channels-last
//! patches for a tile of images at a time in per-thread scratch and multiply them with `gemm`
//! there. Stride-1 convolutions with output rows as wide as the input's (a "same" convolution
//! and its input gradient) take `conv_shift` instead on CPUs with AVX-512F: no patch matrix at
//! all. The CUDA kernels in `cuda/conv.cu` compute `im2col` and `col2im` element for element.

use rayon::prelude::*;

use super::float::Float;

/// How a patch matrix is stored (see [`PatchGeom`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PatchLayout {
    /// `[groups, (c / groups)·kh·kw, n·oh·ow]`: row `(cg, ki, kj)`, column `(b, oi, oj)` (the
    /// CUDA kernels' layout, and pooling's everywhere).
    #[default]
    Columns,
    /// `[groups, n·oh·ow, kh·kw·(c / groups)]`: one patch per row, its entries ordered
    /// `(ki, kj, cg)` — channels last, so each kernel tap is a contiguous run of channels. The
    /// CPU convolutions' layout (CPU only; their kernels build it a tile at a time, and the
    /// col2im input gradient of strided convolutions takes it whole): it is built with one copy
    /// per tap and pixel instead of one per entry, and `gemm` 0.19 multiplies a weight matrix by
    /// a patch matrix stored one patch per row 2–3× faster than by one stored
    /// `[rows, n·oh·ow]` when `n·oh·ow` is in the thousands.
    PatchesChannelsLast,
}

/// Geometry of the patches of a 2-D convolution over NCHW images.
///
/// The patch matrix ("columns") of group `g` holds, for patch row `(cg, ki, kj)` and column
/// `(b, oi, oj)`, the input pixel
/// `x[b, g·c/groups + cg, oi·sh − ph + ki·dh, oj·sw − pw + kj·dw]`, or the fill value where that
/// lies in the padding; [`PatchGeom::layout`] says how it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PatchGeom {
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Channel groups (divides `c`).
    pub groups: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding on each side (rows, columns).
    pub padding: [usize; 2],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// How the patch matrix is stored.
    pub layout: PatchLayout,
}

impl PatchGeom {
    /// Rows of one group's patch matrix: `(c / groups)·kh·kw`.
    pub fn rows(&self) -> usize {
        self.c / self.groups * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the patch matrix: `n·oh·ow`.
    pub fn cols(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// The shape of the patch matrix: `[groups, rows, cols]`, or `[groups, cols, rows]` for
    /// [`PatchLayout::PatchesChannelsLast`].
    pub fn patch_dims(&self) -> [usize; 3] {
        match self.layout {
            PatchLayout::Columns => [self.groups, self.rows(), self.cols()],
            PatchLayout::PatchesChannelsLast => [self.groups, self.cols(), self.rows()],
        }
    }

    /// Elements of the patch matrix.
    pub fn patch_len(&self) -> usize {
        self.groups * self.rows() * self.cols()
    }

    /// Elements of the image.
    pub fn image_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Input row of output row `oi` at kernel row `ki`, or `None` in the padding.
    #[inline]
    fn src_row(&self, oi: usize, ki: usize) -> Option<usize> {
        (oi * self.stride[0] + ki * self.dilation[0])
            .checked_sub(self.padding[0])
            .filter(|&r| r < self.h)
    }

    /// The range of output columns `oj` whose input column `oj·sw − pw + kj·dw` lies in the
    /// image, and the input column of the first.
    #[inline]
    fn valid_cols(&self, kj: usize) -> (usize, usize) {
        let off = kj * self.dilation[1];
        let sw = self.stride[1];
        // First oj with oj·sw + off ≥ pw.
        let lo = self.padding[1].saturating_sub(off).div_ceil(sw);
        // Last oj with oj·sw + off − pw ≤ w − 1, i.e. oj·sw ≤ w − 1 + pw − off.
        let hi = match (self.w + self.padding[1]).checked_sub(off + 1) {
            Some(lim) => (lim / sw + 1).min(self.ow),
            None => 0,
        };
        (lo, hi)
    }
}

/// Minimum patch-matrix rows per thread task (rows are independent).
const ROWS_PER_TASK: usize = 4;

/// The patch matrix of `x` (`[n, c, h, w]`), padding read as `fill`.
pub fn im2col<T: Float>(x: &[T], g: &PatchGeom, fill: T) -> Vec<T> {
    if g.layout == PatchLayout::PatchesChannelsLast {
        return im2row(x, g, fill);
    }
    let (rows, cols) = (g.rows(), g.cols());
    let mut out = T::take(g.patch_len());
    out.resize(g.patch_len(), fill);
    if out.is_empty() {
        return out;
    }
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let l = g.oh * g.ow;
    let fill_row = |(r, dst): (usize, &mut [T])| {
        // r = group·rows + (ch·kh + ki)·kw + kj
        let (grp, rr) = (r / rows, r % rows);
        let (ch, kk) = (grp * cg + rr / (kh * kw), rr % (kh * kw));
        let (ki, kj) = (kk / kw, kk % kw);
        let (lo, hi) = g.valid_cols(kj);
        if lo >= hi {
            return;
        }
        let col0 = lo * g.stride[1] + kj * g.dilation[1] - g.padding[1];
        for b in 0..g.n {
            let src = &x[(b * g.c + ch) * plane..][..plane];
            for oi in 0..g.oh {
                let Some(ir) = g.src_row(oi, ki) else {
                    continue;
                };
                let row = &src[ir * g.w..][..g.w];
                let d = &mut dst[b * l + oi * g.ow..][..g.ow];
                if g.stride[1] == 1 {
                    d[lo..hi].copy_from_slice(&row[col0..col0 + (hi - lo)]);
                } else {
                    for (k, v) in d[lo..hi].iter_mut().enumerate() {
                        *v = row[col0 + k * g.stride[1]];
                    }
                }
            }
        }
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(cols)
            .with_min_len(ROWS_PER_TASK)
            .enumerate()
            .for_each(fill_row);
    } else {
        out.chunks_mut(cols).enumerate().for_each(fill_row);
    }
    out
}

/// The adjoint of [`im2col`]: sums every patch entry back into its pixel of an `[n, c, h, w]`
/// image (entries in the padding are dropped). Each pixel's terms are added in ascending
/// `(ki, kj, oi, oj)` order, in either layout.
pub fn col2im<T: Float>(cols_buf: &[T], g: &PatchGeom) -> Vec<T> {
    if g.layout == PatchLayout::PatchesChannelsLast {
        return row2im(cols_buf, g);
    }
    let (rows, cols) = (g.rows(), g.cols());
    let mut out = T::take(g.image_len());
    out.resize(g.image_len(), T::ZERO);
    if out.is_empty() {
        return out;
    }
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let l = g.oh * g.ow;
    let fill_plane = |(p, dst): (usize, &mut [T])| {
        let (b, ch) = (p / g.c, p % g.c);
        let (grp, c_in) = (ch / cg, ch % cg);
        for ki in 0..kh {
            for kj in 0..kw {
                let r = grp * rows + (c_in * kh + ki) * kw + kj;
                let src = &cols_buf[r * cols + b * l..][..l];
                let (lo, hi) = g.valid_cols(kj);
                if lo >= hi {
                    continue;
                }
                let col0 = lo * g.stride[1] + kj * g.dilation[1] - g.padding[1];
                for oi in 0..g.oh {
                    let Some(ir) = g.src_row(oi, ki) else {
                        continue;
                    };
                    let d = &mut dst[ir * g.w..][..g.w];
                    let s = &src[oi * g.ow..][..g.ow];
                    for (k, &v) in s[lo..hi].iter().enumerate() {
                        d[col0 + k * g.stride[1]] += v;
                    }
                }
            }
        }
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(plane).enumerate().for_each(fill_plane);
    } else {
        out.chunks_mut(plane).enumerate().for_each(fill_plane);
    }
    out
}

/// An image's channels `ch0 .. ch0 + cg` (of `x`, `[c, h, w]`) copied into a zero-padded
/// channels-last grid `[h + 2ph, w + 2pw, cg]` whose padding holds `fill`. The grid is filled
/// only when it changes size: every call overwrites the whole interior and never the border, so
/// a grid reused with one geometry and one `fill` (as every caller's scratch is) keeps it.
fn pad_channels_last<T: Float>(x: &[T], g: &PatchGeom, ch0: usize, fill: T, grid: &mut Vec<T>) {
    let cg = g.c / g.groups;
    let (hp, wp) = (g.h + 2 * g.padding[0], g.w + 2 * g.padding[1]);
    let plane = g.h * g.w;
    if grid.len() != hp * wp * cg {
        grid.clear();
        grid.resize(hp * wp * cg, fill);
    }
    for ch in 0..cg {
        let src = &x[(ch0 + ch) * plane..][..plane];
        for i in 0..g.h {
            let row = &src[i * g.w..][..g.w];
            let base = ((i + g.padding[0]) * wp + g.padding[1]) * cg + ch;
            for (j, &v) in row.iter().enumerate() {
                grid[base + j * cg] = v;
            }
        }
    }
}

/// The patches of one image's group `grp` (`x_img` is the image, `[c, h, w]`) in
/// [`PatchLayout::PatchesChannelsLast`] order, `[oh·ow, rows]`, into `dst`, through `grid` (the
/// padded channels-last copy of the image's group, reused between calls).
fn image_patches<T: Float>(
    x_img: &[T],
    g: &PatchGeom,
    grp: usize,
    fill: T,
    grid: &mut Vec<T>,
    dst: &mut [T],
) {
    let rows = g.rows();
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let wp = g.w + 2 * g.padding[1];
    pad_channels_last(x_img, g, grp * cg, fill, grid);
    for (p, patch) in dst.chunks_exact_mut(rows).enumerate() {
        let (oi, oj) = (p / g.ow, p % g.ow);
        for ki in 0..kh {
            let r = oi * g.stride[0] + ki * g.dilation[0];
            let at = (r * wp + oj * g.stride[1]) * cg;
            let taps = &mut patch[ki * kw * cg..][..kw * cg];
            if g.dilation[1] == 1 {
                copy_run(taps, &grid[at..]);
            } else {
                for (kj, tap) in taps.chunks_exact_mut(cg).enumerate() {
                    copy_run(tap, &grid[at + kj * g.dilation[1] * cg..]);
                }
            }
        }
    }
}

/// `dst` from the start of `src`. Runs of a few values (a first layer's `kw·c`, 3 for a 3×3
/// kernel on one channel) are copied with constant lengths, inline: a `memcpy` call costs more
/// than such a copy, and with one per patch row it took a third of a 1→32 convolution.
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match dst.len() {
                $($n => dst[..$n].copy_from_slice(&src[..$n]),)*
                len => dst.copy_from_slice(&src[..len]),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8)
}

/// [`im2col`] into [`PatchLayout::PatchesChannelsLast`], one task per group and image (each
/// writes its own contiguous block of `oh·ow` patches). The image is first copied into a padded
/// channels-last grid, so every patch is `kh` copies of `kw·cg` contiguous values (`kh·kw`
/// copies of `cg` when the columns are dilated).
fn im2row<T: Float>(x: &[T], g: &PatchGeom, fill: T) -> Vec<T> {
    let rows = g.rows();
    let mut out = T::take(g.patch_len());
    out.resize(g.patch_len(), fill);
    if out.is_empty() {
        return out;
    }
    let plane = g.h * g.w;
    let l = g.oh * g.ow;
    let fill_image = |grid: &mut Vec<T>, (gb, dst): (usize, &mut [T])| {
        let (grp, b) = (gb / g.n, gb % g.n);
        image_patches(
            &x[b * g.c * plane..][..g.c * plane],
            g,
            grp,
            fill,
            grid,
            dst,
        );
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(l * rows)
            .enumerate()
            .for_each_init(Vec::new, fill_image);
    } else {
        let mut grid = Vec::new();
        out.chunks_mut(l * rows)
            .enumerate()
            .for_each(|job| fill_image(&mut grid, job));
    }
    out
}

/// Output pixels a [`conv2d`] tile reaches at least (whole images): enough rows for `gemm`'s
/// micro-kernel to run long, few enough that the tile's patches (`TILE_PIXELS·rows` values)
/// stay in a 512 KiB L2 cache at a few hundred patch entries.
const TILE_PIXELS: usize = 256;

/// Per-thread scratch of [`conv2d`]: the padded image grid, a tile's patches and its product.
#[derive(Default)]
struct ConvScratch<T> {
    grid: Vec<T>,
    patches: Vec<T>,
    product: Vec<T>,
}

/// A 2-D convolution of `x` (`[n, c, h, w]`, the geometry's) with `weight`
/// (`[o, c/groups, kh, kw]`) plus `bias` (`[o]`), written as `[n, o, oh, ow]`.
///
/// The patch matrix is never formed whole: the images are cut into tiles of
/// ⌈`TILE_PIXELS`/(oh·ow)⌉, and for each tile and group the patches are built channels last
/// (as [`PatchLayout::PatchesChannelsLast`]) into per-thread scratch, multiplied by the
/// permuted weight with `gemm` on the tile's thread (`[pixels, rows] · [rows, o/groups]`), and
/// the product transposed into the output's channel planes with the bias added. Tiles run in
/// parallel. Each output is `bias + Σ` over the patch in `gemm`'s order. Geometries
/// where [`conv_winograd::faster_forward`](super::conv_winograd::faster_forward) (3×3 "same",
/// at least 32 channels in and out with AVX-512F, 16 with AVX2, images of 4×4 or more) run
/// [`conv_winograd::conv2d`](super::conv_winograd::conv2d) instead, and the other geometries
/// [`conv_shift::applies`](super::conv_shift::applies) to (stride 1, `ow = w`, AVX2 or AVX-512F)
/// [`conv_shift::conv2d`](super::conv_shift::conv2d).
pub fn conv2d<T: super::conv_shift::Kernel>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    if super::conv_winograd::faster_forward(g, o) {
        return super::conv_winograd::conv2d(x, weight, bias, g, o);
    }
    if super::conv_shift::applies(g) {
        return super::conv_shift::conv2d(x, weight, bias, g, o);
    }
    conv2d_patches(x, weight, bias, g, o)
}

/// [`conv2d`] by patches and `gemm` whatever the geometry and CPU (what CPUs without AVX2 run;
/// public for the benches that compare the kernels).
pub fn conv2d_patches<T: Float>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    let rows = g.rows();
    if rows <= SMALL_ROWS {
        return conv2d_columns(x, weight, bias, g, o);
    }
    let l = g.oh * g.ow;
    let len = g.n * o * l;
    let mut out = T::take(len);
    out.resize(len, T::ZERO);
    if len == 0 {
        return out;
    }
    let (groups, cg) = (g.groups, g.c / g.groups);
    let og = o / groups;
    let taps = g.kernel[0] * g.kernel[1];
    // [o, cg, kh·kw] → [o, kh·kw·cg]: each output channel's weights in the patches' order.
    let mut wp = vec![T::ZERO; o * rows];
    for oc in 0..o {
        for c in 0..cg {
            for t in 0..taps {
                wp[oc * rows + t * cg + c] = weight[(oc * cg + c) * taps + t];
            }
        }
    }
    let image = g.c * g.h * g.w;
    let tile = TILE_PIXELS.div_ceil(l).clamp(1, g.n);
    let run = |s: &mut ConvScratch<T>, (ti, dst): (usize, &mut [T])| {
        let b0 = ti * tile;
        let nb = dst.len() / (o * l);
        let q = nb * l;
        s.patches.resize(q * rows, T::ZERO);
        s.product.resize(q * og, T::ZERO);
        for grp in 0..groups {
            for bi in 0..nb {
                image_patches(
                    &x[(b0 + bi) * image..][..image],
                    g,
                    grp,
                    T::ZERO,
                    &mut s.grid,
                    &mut s.patches[bi * l * rows..][..l * rows],
                );
            }
            // product [q, og] = patches [q, rows] · wp_grpᵀ (wp_grp is [og, rows]).
            super::gemm::gemm_into(
                &mut s.product[..q * og],
                [og, 1],
                &s.patches[..q * rows],
                [rows, 1],
                &wp[grp * og * rows..][..og * rows],
                [1, rows],
                [q, og, rows],
            );
            for bi in 0..nb {
                for oc in 0..og {
                    let bv = bias.map_or(T::ZERO, |b| b[grp * og + oc]);
                    let plane = &mut dst[(bi * o + grp * og + oc) * l..][..l];
                    let src = &s.product[bi * l * og + oc..];
                    for (p, v) in plane.iter_mut().enumerate() {
                        *v = src[p * og] + bv;
                    }
                }
            }
        }
    };
    let chunk = tile * o * l;
    if g.n > tile {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(ConvScratch::default, run);
    } else {
        let mut s = ConvScratch::default();
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|job| run(&mut s, job));
    }
    out
}

/// The weight gradient of [`conv2d`]: `Σ gy[b, oc, p] · patch(b, p)` per output channel, from
/// the image `x` (`[n, c, h, w]`) and the output gradient `gy` (`[n, o, oh, ow]`), written as
/// `[o, c/groups, kh, kw]`.
///
/// Tiled as [`conv2d`]: for each tile of images and each group, the patches and the transposed
/// output gradient go to per-thread scratch and `gemm` writes the tile's partial gradient
/// `gyᵀ · patches` (`[o/groups, rows]`, inner dimension the tile's pixels); the partials are
/// then summed in tile order (the same result on any number of threads) and permuted from the
/// patches' `(ki, kj, c)` order to the weight's. Geometries where
/// [`conv_winograd::faster_weight_grad`](super::conv_winograd::faster_weight_grad) (3×3
/// "same", at least 16 channels in and out, images of 4×4 or more, AVX2 or AVX-512F) run
/// [`conv_winograd::conv2d_weight_grad`](super::conv_winograd::conv2d_weight_grad) instead,
/// and the other geometries [`conv_shift::applies`](super::conv_shift::applies) to
/// [`conv_shift::conv2d_weight_grad`](super::conv_shift::conv2d_weight_grad).
pub fn conv2d_weight_grad<T: super::conv_shift::Kernel>(
    x: &[T],
    gy: &[T],
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    if super::conv_winograd::faster_weight_grad(g, o) {
        return super::conv_winograd::conv2d_weight_grad(x, gy, g, o);
    }
    if super::conv_shift::applies(g) {
        return super::conv_shift::conv2d_weight_grad(x, gy, g, o);
    }
    conv2d_weight_grad_patches(x, gy, g, o)
}

/// [`conv2d_weight_grad`] by patches and `gemm` whatever the geometry and CPU (what CPUs
/// without AVX2 run; public for the benches that compare the kernels).
pub fn conv2d_weight_grad_patches<T: Float>(x: &[T], gy: &[T], g: &PatchGeom, o: usize) -> Vec<T> {
    let rows = g.rows();
    if rows <= SMALL_ROWS {
        return conv2d_weight_grad_columns(x, gy, g, o);
    }
    let l = g.oh * g.ow;
    let (groups, cg) = (g.groups, g.c / g.groups);
    let og = o / groups;
    let taps = g.kernel[0] * g.kernel[1];
    let mut out = T::take(o * rows);
    out.resize(o * rows, T::ZERO);
    if out.is_empty() || g.n * l == 0 {
        return out;
    }
    let image = g.c * g.h * g.w;
    let tile = TILE_PIXELS.div_ceil(l).clamp(1, g.n);
    let tiles = g.n.div_ceil(tile);
    // Partial gradients [tiles, o, rows], rows in the patches' (ki, kj, c) order.
    let run = |s: &mut ConvScratch<T>, (ti, dst): (usize, &mut [T])| {
        let b0 = ti * tile;
        let nb = tile.min(g.n - b0);
        let q = nb * l;
        s.patches.resize(q * rows, T::ZERO);
        s.product.resize(q * og, T::ZERO);
        for grp in 0..groups {
            for bi in 0..nb {
                image_patches(
                    &x[(b0 + bi) * image..][..image],
                    g,
                    grp,
                    T::ZERO,
                    &mut s.grid,
                    &mut s.patches[bi * l * rows..][..l * rows],
                );
                // gyᵀ of this image and group: [l, og].
                for oc in 0..og {
                    let plane = &gy[((b0 + bi) * o + grp * og + oc) * l..][..l];
                    let col = &mut s.product[bi * l * og + oc..];
                    for (p, &v) in plane.iter().enumerate() {
                        col[p * og] = v;
                    }
                }
            }
            // dst_grp [og, rows] = (gyᵀ [q, og])ᵀ · patches [q, rows].
            super::gemm::gemm_into(
                &mut dst[grp * og * rows..][..og * rows],
                [rows, 1],
                &s.product[..q * og],
                [1, og],
                &s.patches[..q * rows],
                [rows, 1],
                [og, rows, q],
            );
        }
    };
    let partial = summed_tile_partials(tiles, o * rows, run);
    let sum = &partial[..o * rows];
    for oc in 0..o {
        for c in 0..cg {
            for t in 0..taps {
                out[(oc * cg + c) * taps + t] = sum[oc * rows + t * cg + c];
            }
        }
    }
    T::give(partial);
    out
}

/// Runs `run(scratch, (tile, partial))` for each of `tiles` tiles, each on a zeroed partial of
/// `len` values (in parallel when there are several, one scratch per thread), and returns the
/// partials summed in tile order into the first `len` values — the same result on any number of
/// threads. The caller hands the buffer back with `T::give`.
pub(super) fn summed_tile_partials<T: Float, S: Default>(
    tiles: usize,
    len: usize,
    run: impl Fn(&mut S, (usize, &mut [T])) + Sync + Send,
) -> Vec<T> {
    let mut partial = T::take(tiles * len);
    partial.resize(tiles * len, T::ZERO);
    if tiles > 1 {
        partial
            .par_chunks_mut(len)
            .enumerate()
            .for_each_init(S::default, run);
    } else {
        run(&mut S::default(), (0, &mut partial[..]));
    }
    let (sum, rest) = partial.split_at_mut(len);
    for part in rest.chunks_exact(len) {
        for (a, &v) in sum.iter_mut().zip(part) {
            *a += v;
        }
    }
    partial
}

/// Patch rows (`(c/groups)·kh·kw`) up to which [`conv2d`] and [`conv2d_weight_grad`] work on
/// one image's column patches instead (a first layer's 1·3·3 = 9: too short an inner dimension
/// for `gemm`'s blocking to pay, and the output planes are then written in place).
const SMALL_ROWS: usize = 16;

/// One image's group `grp` (`x_img` is the image, `[c, h, w]`) as its patch matrix in the
/// [`PatchLayout::Columns`] order, `[rows, oh·ow]`, into `cols` (padding 0).
fn image_columns<T: Float>(x_img: &[T], g: &PatchGeom, grp: usize, cols: &mut Vec<T>) {
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let (plane, l) = (g.h * g.w, g.oh * g.ow);
    cols.clear();
    cols.resize(g.rows() * l, T::ZERO);
    for (r, dst) in cols.chunks_exact_mut(l).enumerate() {
        let (ch, ki, kj) = (grp * cg + r / (kh * kw), r % (kh * kw) / kw, r % kw);
        let (lo, hi) = g.valid_cols(kj);
        if lo >= hi {
            continue;
        }
        let col0 = lo * g.stride[1] + kj * g.dilation[1] - g.padding[1];
        let src = &x_img[ch * plane..][..plane];
        for oi in 0..g.oh {
            let Some(ir) = g.src_row(oi, ki) else {
                continue;
            };
            let row = &src[ir * g.w..][..g.w];
            let d = &mut dst[oi * g.ow..][..g.ow];
            if g.stride[1] == 1 {
                copy_run(&mut d[lo..hi], &row[col0..]);
            } else {
                for (k, v) in d[lo..hi].iter_mut().enumerate() {
                    *v = row[col0 + k * g.stride[1]];
                }
            }
        }
    }
}

/// [`conv2d`] for short patches (at most [`SMALL_ROWS`] rows), one task per image: each output
/// plane is the bias plus the weighted column-patch rows, `Σ_r w[oc, r]·cols[r]` in `r` order,
/// accumulated in place. The weight is used in its own `[o, c/groups, kh, kw]` order.
fn conv2d_columns<T: Float>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &PatchGeom,
    o: usize,
) -> Vec<T> {
    let (rows, l) = (g.rows(), g.oh * g.ow);
    let len = g.n * o * l;
    let mut out = T::take(len);
    out.resize(len, T::ZERO);
    if len == 0 {
        return out;
    }
    let og = o / g.groups;
    let image = g.c * g.h * g.w;
    let run = |cols: &mut Vec<T>, (b, dst): (usize, &mut [T])| {
        for grp in 0..g.groups {
            image_columns(&x[b * image..][..image], g, grp, cols);
            let chans = grp * og..(grp + 1) * og;
            column_planes(
                &mut dst[chans.start * l..chans.end * l],
                &weight[chans.start * rows..chans.end * rows],
                bias.map(|b| &b[chans]),
                cols,
                [rows, l],
            );
        }
    };
    if len >= 1 << 15 {
        out.par_chunks_mut(o * l)
            .enumerate()
            .for_each_init(Vec::new, run);
    } else {
        let mut cols = Vec::new();
        out.chunks_mut(o * l)
            .enumerate()
            .for_each(|job| run(&mut cols, job));
    }
    out
}

super::simd::multiversion! {
    /// `planes [og, l]` = bias + `weight [og, rows]` · `cols [rows, l]`, each output the bias
    /// plus `Σ_r w[oc, r]·cols[r, p]` in `r` order, 32 pixels at a time in registers.
    fn column_planes<T: Float>(
        planes: &mut [T],
        weight: &[T],
        bias: Option<&[T]>,
        cols: &[T],
        dims: [usize; 2],
    ) {
        const LANES: usize = 32;
        let [rows, l] = dims;
        for (oc, plane) in planes.chunks_exact_mut(l).enumerate() {
            let b = bias.map_or(T::ZERO, |b| b[oc]);
            let w = &weight[oc * rows..][..rows];
            let mut p0 = 0;
            while p0 + LANES <= l {
                let mut acc = [b; LANES];
                for (r, &wr) in w.iter().enumerate() {
                    let col = &cols[r * l + p0..][..LANES];
                    for k in 0..LANES {
                        acc[k] += wr * col[k];
                    }
                }
                plane[p0..p0 + LANES].copy_from_slice(&acc);
                p0 += LANES;
            }
            for p in p0..l {
                let mut acc = b;
                for (r, &wr) in w.iter().enumerate() {
                    acc += wr * cols[r * l + p];
                }
                plane[p] = acc;
            }
        }
    }
}

super::simd::multiversion! {
    /// `gw [og, rows]` += `gy [og, l]` · `cols [rows, l]`ᵀ, each entry one [`dot`].
    fn column_weight_grad<T: Float>(gw: &mut [T], gy: &[T], cols: &[T], dims: [usize; 2]) {
        let [rows, l] = dims;
        for (d, gp) in gw.chunks_exact_mut(rows).zip(gy.chunks_exact(l)) {
            for (v, col) in d.iter_mut().zip(cols.chunks_exact(l)) {
                *v += dot(gp, col);
            }
        }
    }
}

/// [`conv2d_weight_grad`] for short patches (at most [`SMALL_ROWS`] rows): per image and
/// group, `gw[oc, r] += ⟨gy[b, oc], cols[r]⟩` over the image's column patches. Images are
/// taken in tiles as there, each tile's partial written on its thread and the partials summed
/// in tile order (the same result on any number of threads).
fn conv2d_weight_grad_columns<T: Float>(x: &[T], gy: &[T], g: &PatchGeom, o: usize) -> Vec<T> {
    let (rows, l) = (g.rows(), g.oh * g.ow);
    let og = o / g.groups;
    let mut out = T::take(o * rows);
    out.resize(o * rows, T::ZERO);
    if out.is_empty() || g.n * l == 0 {
        return out;
    }
    let image = g.c * g.h * g.w;
    let tile = TILE_PIXELS.div_ceil(l).clamp(1, g.n);
    let tiles = g.n.div_ceil(tile);
    let run = |cols: &mut Vec<T>, (ti, dst): (usize, &mut [T])| {
        for b in ti * tile..(g.n).min((ti + 1) * tile) {
            for grp in 0..g.groups {
                image_columns(&x[b * image..][..image], g, grp, cols);
                let chans = grp * og..(grp + 1) * og;
                column_weight_grad(
                    &mut dst[chans.start * rows..chans.end * rows],
                    &gy[(b * o + chans.start) * l..(b * o + chans.end) * l],
                    cols,
                    [rows, l],
                );
            }
        }
    };
    let partial = summed_tile_partials(tiles, o * rows, run);
    out.copy_from_slice(&partial[..o * rows]);
    T::give(partial);
    out
}

/// `⟨a, b⟩` in eight interleaved partial sums (independent lanes: the loop vectorises).
#[inline(always)]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += xa[k] * xb[k];
        }
    }
    for (&va, &vb) in ra.iter().zip(rb) {
        lanes[0] += va * vb;
    }
    let mut s = T::ZERO;
    for k in 0..4 {
        s += lanes[k] + lanes[k + 4];
    }
    s
}

/// [`col2im`] of [`PatchLayout::PatchesChannelsLast`], one task per image: each group's patches
/// are summed into a padded channels-last grid in ascending `(ki, kj, oi, oj)` order (whole
/// channel runs at a time), whose interior is then copied out.
fn row2im<T: Float>(cols_buf: &[T], g: &PatchGeom) -> Vec<T> {
    let (rows, cols) = (g.rows(), g.cols());
    let mut out = T::take(g.image_len());
    out.resize(g.image_len(), T::ZERO);
    if out.is_empty() {
        return out;
    }
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let (hp, wp) = (g.h + 2 * g.padding[0], g.w + 2 * g.padding[1]);
    let l = g.oh * g.ow;
    let fill_image = |grid: &mut Vec<T>, (b, dst): (usize, &mut [T])| {
        for grp in 0..g.groups {
            let block = &cols_buf[(grp * cols + b * l) * rows..][..l * rows];
            grid.clear();
            grid.resize(hp * wp * cg, T::ZERO);
            for ki in 0..kh {
                for kj in 0..kw {
                    let tap = (ki * kw + kj) * cg;
                    for oi in 0..g.oh {
                        let r = oi * g.stride[0] + ki * g.dilation[0];
                        for oj in 0..g.ow {
                            let at = (r * wp + oj * g.stride[1] + kj * g.dilation[1]) * cg;
                            let src = &block[(oi * g.ow + oj) * rows + tap..][..cg];
                            for (a, &v) in grid[at..][..cg].iter_mut().zip(src) {
                                *a += v;
                            }
                        }
                    }
                }
            }
            let image = &mut dst[grp * cg * plane..][..cg * plane];
            for (ch, d) in image.chunks_exact_mut(plane).enumerate() {
                for i in 0..g.h {
                    let base = ((i + g.padding[0]) * wp + g.padding[1]) * cg + ch;
                    for (j, v) in d[i * g.w..][..g.w].iter_mut().enumerate() {
                        *v = grid[base + j * cg];
                    }
                }
            }
        }
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(g.c * plane)
            .enumerate()
            .for_each_init(Vec::new, fill_image);
    } else {
        let mut grid = Vec::new();
        out.chunks_mut(g.c * plane)
            .enumerate()
            .for_each(|job| fill_image(&mut grid, job));
    }
    out
}
