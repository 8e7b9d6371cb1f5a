//! Patch extraction for 2-D convolutions and pooling (im2col) and its adjoint (col2im), the two
//! primitives every image op of the engine is built from: a convolution is `im2col` followed by
//! one matrix product per group, a transposed convolution is a matrix product followed by
//! `col2im`, pooling is a reduction over `im2col`'s patch axis. The CUDA kernels in
//! `cuda/conv.cu` compute the same, element for element.

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
    /// CPU convolutions' layout (CPU only): it is built with one copy per tap and pixel instead
    /// of one per entry, and `gemm` 0.19 multiplies a weight matrix by a patch matrix stored
    /// one patch per row 2–3× faster than by one stored `[rows, n·oh·ow]` when `n·oh·ow` is in
    /// the thousands.
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
/// channels-last grid `[h + 2ph, w + 2pw, cg]` whose padding holds `fill`.
fn pad_channels_last<T: Float>(x: &[T], g: &PatchGeom, ch0: usize, fill: T, grid: &mut Vec<T>) {
    let cg = g.c / g.groups;
    let (hp, wp) = (g.h + 2 * g.padding[0], g.w + 2 * g.padding[1]);
    let plane = g.h * g.w;
    grid.clear();
    grid.resize(hp * wp * cg, fill);
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
    let (kh, kw) = (g.kernel[0], g.kernel[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let wp = g.w + 2 * g.padding[1];
    let l = g.oh * g.ow;
    let fill_image = |grid: &mut Vec<T>, (gb, dst): (usize, &mut [T])| {
        let (grp, b) = (gb / g.n, gb % g.n);
        pad_channels_last(
            &x[b * g.c * plane..][..g.c * plane],
            g,
            grp * cg,
            fill,
            grid,
        );
        for (p, patch) in dst.chunks_exact_mut(rows).enumerate() {
            let (oi, oj) = (p / g.ow, p % g.ow);
            for ki in 0..kh {
                let r = oi * g.stride[0] + ki * g.dilation[0];
                let at = (r * wp + oj * g.stride[1]) * cg;
                let taps = &mut patch[ki * kw * cg..][..kw * cg];
                if g.dilation[1] == 1 {
                    taps.copy_from_slice(&grid[at..][..kw * cg]);
                } else {
                    for (kj, tap) in taps.chunks_exact_mut(cg).enumerate() {
                        tap.copy_from_slice(&grid[at + kj * g.dilation[1] * cg..][..cg]);
                    }
                }
            }
        }
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
