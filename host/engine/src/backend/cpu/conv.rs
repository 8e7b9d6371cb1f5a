//! Patch extraction for 2-D convolutions and pooling (im2col) and its adjoint (col2im), the two
//! primitives every image op of the engine is built from: a convolution is `im2col` followed by
//! one matrix product per group, a transposed convolution is a matrix product followed by
//! `col2im`, pooling is a reduction over `im2col`'s patch axis. The CUDA kernels in
//! `cuda/conv.cu` compute the same, element for element.

use rayon::prelude::*;

use super::float::Float;

/// Geometry of the patches of a 2-D convolution over NCHW images.
///
/// The patch matrix ("columns") is `[groups, (c / groups)·kh·kw, n·oh·ow]`, row-major: row
/// `(cg, ki, kj)` of group `g`, column `(b, oi, oj)` holds the input pixel
/// `x[b, g·c/groups + cg, oi·sh − ph + ki·dh, oj·sw − pw + kj·dw]`, or the fill value where that
/// lies in the padding. With [`PatchGeom::transposed`] it is stored transposed,
/// `[groups, n·oh·ow, (c / groups)·kh·kw]` (each patch contiguous): the layout the CPU's
/// convolutions use, because `gemm` multiplies a weight matrix by a patch matrix stored this way
/// 2–3× faster than by one stored `[rows, n·oh·ow]` when `n·oh·ow` is in the thousands.
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
    /// The patch matrix is stored `[groups, n·oh·ow, rows]` instead of `[groups, rows,
    /// n·oh·ow]` (CPU only).
    pub transposed: bool,
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

    /// The shape of the patch matrix: `[groups, rows, cols]`, or `[groups, cols, rows]` when
    /// [`PatchGeom::transposed`].
    pub fn patch_dims(&self) -> [usize; 3] {
        if self.transposed {
            [self.groups, self.cols(), self.rows()]
        } else {
            [self.groups, self.rows(), self.cols()]
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
    if g.transposed {
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
/// `(ki, kj, oi, oj)` order (`(ki, kj, oi, oj)` too for a transposed patch matrix).
pub fn col2im<T: Float>(cols_buf: &[T], g: &PatchGeom) -> Vec<T> {
    if g.transposed {
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

/// [`im2col`] into the transposed layout `[groups, n·oh·ow, rows]`, one task per image and
/// group (each writes its own contiguous block). The loops run over the patch rows outside and
/// the output columns inside, so every inner loop moves a whole output row.
fn im2row<T: Float>(x: &[T], g: &PatchGeom, fill: T) -> Vec<T> {
    let rows = g.rows();
    let mut out = T::take(g.patch_len());
    out.resize(g.patch_len(), fill);
    if out.is_empty() {
        return out;
    }
    let (kh, kw, sw) = (g.kernel[0], g.kernel[1], g.stride[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let l = g.oh * g.ow;
    let spans: Vec<(usize, usize, usize)> = (0..kw)
        .map(|kj| {
            let (lo, hi) = g.valid_cols(kj);
            let col0 = if lo < hi {
                lo * sw + kj * g.dilation[1] - g.padding[1]
            } else {
                0
            };
            (lo, hi, col0)
        })
        .collect();
    let fill_image = |(gb, dst): (usize, &mut [T])| {
        let (grp, b) = (gb / g.n, gb % g.n);
        let image = &x[(b * g.c + grp * cg) * plane..][..cg * plane];
        for ch in 0..cg {
            let src = &image[ch * plane..][..plane];
            for ki in 0..kh {
                for (kj, &(lo, hi, col0)) in spans.iter().enumerate() {
                    let r = (ch * kh + ki) * kw + kj;
                    for oi in 0..g.oh {
                        let Some(ir) = g.src_row(oi, ki) else {
                            continue;
                        };
                        let row = &src[ir * g.w..][..g.w];
                        let block = &mut dst[oi * g.ow * rows..][..g.ow * rows];
                        for oj in lo..hi {
                            block[oj * rows + r] = row[col0 + (oj - lo) * sw];
                        }
                    }
                }
            }
        }
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(l * rows)
            .enumerate()
            .for_each(fill_image);
    } else {
        out.chunks_mut(l * rows).enumerate().for_each(fill_image);
    }
    out
}

/// [`col2im`] of the transposed layout, one task per image; loops as in [`im2row`].
fn row2im<T: Float>(cols_buf: &[T], g: &PatchGeom) -> Vec<T> {
    let (rows, cols) = (g.rows(), g.cols());
    let mut out = T::take(g.image_len());
    out.resize(g.image_len(), T::ZERO);
    if out.is_empty() {
        return out;
    }
    let (kh, kw, sw) = (g.kernel[0], g.kernel[1], g.stride[1]);
    let cg = g.c / g.groups;
    let plane = g.h * g.w;
    let l = g.oh * g.ow;
    let spans: Vec<(usize, usize, usize)> = (0..kw)
        .map(|kj| {
            let (lo, hi) = g.valid_cols(kj);
            let col0 = if lo < hi {
                lo * sw + kj * g.dilation[1] - g.padding[1]
            } else {
                0
            };
            (lo, hi, col0)
        })
        .collect();
    let fill_image = |(b, dst): (usize, &mut [T])| {
        for grp in 0..g.groups {
            let block = &cols_buf[(grp * cols + b * l) * rows..][..l * rows];
            let image = &mut dst[grp * cg * plane..][..cg * plane];
            for ch in 0..cg {
                let d = &mut image[ch * plane..][..plane];
                for ki in 0..kh {
                    for (kj, &(lo, hi, col0)) in spans.iter().enumerate() {
                        let r = (ch * kh + ki) * kw + kj;
                        for oi in 0..g.oh {
                            let Some(ir) = g.src_row(oi, ki) else {
                                continue;
                            };
                            let row = &mut d[ir * g.w..][..g.w];
                            let s = &block[oi * g.ow * rows..][..g.ow * rows];
                            for oj in lo..hi {
                                row[col0 + (oj - lo) * sw] += s[oj * rows + r];
                            }
                        }
                    }
                }
            }
        }
    };
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(g.c * plane)
            .enumerate()
            .for_each(fill_image);
    } else {
        out.chunks_mut(g.c * plane).enumerate().for_each(fill_image);
    }
    out
}
