//! Image operations on NCHW tensors: convolutions, transposed convolutions, pooling, batch
//! normalisation, dropout and flattening.
//!
//! Two primitives do most of the work: [`Tensor::im2col`] (the patch matrix of an image) and its
//! adjoint [`Tensor::col2im`]. Each records the other as its derivative, both are linear, and
//! the image ops are written with them and the engine's other recorded operations — so
//! gradients of gradients work through every image op (a WGAN-GP gradient penalty
//! differentiates a critic's input gradient again). On a GPU a convolution is `im2col` then one
//! matrix product per group over all images at once, `[O/g, C/g·kh·kw] × [C/g·kh·kw, N·oh·ow]`
//! (cuBLAS). On the CPU it is one recorded op (`Op::Conv2d`) whose kernel builds the patches
//! channels last tile by tile and multiplies each tile with `gemm`, never forming the whole
//! patch matrix; its derivatives are again recorded ops — the input gradient a convolution of
//! the output gradient with the flipped weight (stride 1; `col2im` of the patch gradient
//! otherwise), the weight gradient a tiled `gyᵀ · patches` (`Op::Conv2dWeightGrad`, whose own
//! derivatives are convolutions); patches of at most 16 entries (a first layer's 1·3·3) are
//! multiplied per image on column patches instead, the output planes written in place. A
//! transposed convolution is the adjoint: a product then `col2im`; max and average pooling
//! reduce `im2col`'s patch axis with the channels as groups. On the CPU, batch normalisation in
//! training mode (`Op::BatchNorm`) and max pooling (`Op::MaxPool2d`) are each one recorded op
//! with fused kernels (`backend/cpu/norm.rs`, `backend/cpu/pool.rs`); their derivative rules
//! run those kernels when the gradient is not itself recorded, and otherwise the composition
//! above in recorded ops, so gradients of gradients still work.
//!
//! Conventions are PyTorch's (`torch.nn.functional`): weights `[O, C/g, kh, kw]` for
//! `conv2d` and `[C, O/g, kh, kw]` for `conv_transpose2d`, output sizes
//! `⌊(h + 2p − d(k − 1) − 1)/s⌋ + 1` and `(h − 1)s − 2p + d(k − 1) + output_padding + 1`,
//! `avg_pool2d` counting the padding (`count_include_pad=True`), batch normalisation normalising
//! by the biased batch variance and reporting the unbiased one for running statistics.
//! `fixtures/gen/conv_ops.py` checks these against PyTorch.

use super::{Shape, Tensor};
use crate::autodiff::Op;
use crate::backend::ops::{PatchGeom, PatchLayout};
use crate::error::{Error, Result};

/// Stride, padding, dilation and groups of [`Tensor::conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOpts {
    /// Step between output pixels (rows, columns).
    pub stride: [usize; 2],
    /// Zeros added on each side (rows, columns).
    pub padding: [usize; 2],
    /// Spacing of the kernel taps (rows, columns).
    pub dilation: [usize; 2],
    /// Channel groups (divides the input and output channels).
    pub groups: usize,
}

impl Default for Conv2dOpts {
    fn default() -> Self {
        Conv2dOpts {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Options of [`Tensor::conv_transpose2d`], with PyTorch's meaning: `padding` removes
/// `dilation·(k − 1) − padding` … as the adjoint of a convolution with the same options would,
/// `output_padding` adds rows and columns on the far side to pick one of the output sizes a
/// strided convolution maps to the same input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dOpts {
    /// Stride of the convolution this is the adjoint of.
    pub stride: [usize; 2],
    /// Padding of that convolution.
    pub padding: [usize; 2],
    /// Extra output rows and columns (each `<` the stride or the dilation).
    pub output_padding: [usize; 2],
    /// Dilation of that convolution.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dOpts {
    fn default() -> Self {
        ConvTranspose2dOpts {
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Error {
    Error::invalid(name, value, reason)
}

/// The four dimensions of an NCHW tensor.
fn nchw(x: &Tensor, op: &'static str) -> Result<[usize; 4]> {
    match *x.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(invalid(
            "image",
            x.shape(),
            format!("{op} takes [batch, channels, height, width]"),
        )),
    }
}

/// The patch geometry of a convolution or pooling over `[n, c, h, w]`, checked.
#[allow(clippy::too_many_arguments)]
fn geometry(
    op: &'static str,
    [n, c, h, w]: [usize; 4],
    groups: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Result<PatchGeom> {
    let pair = |v: [usize; 2]| format!("{}x{}", v[0], v[1]);
    if kernel.contains(&0) {
        return Err(invalid(
            "kernel size",
            pair(kernel),
            format!("{op}: must be ≥ 1"),
        ));
    }
    if stride.contains(&0) {
        return Err(invalid(
            "stride",
            pair(stride),
            format!("{op}: must be ≥ 1"),
        ));
    }
    if dilation.contains(&0) {
        return Err(invalid(
            "dilation",
            pair(dilation),
            format!("{op}: must be ≥ 1"),
        ));
    }
    if groups == 0 || c % groups != 0 {
        return Err(invalid(
            "groups",
            groups,
            format!("{op}: must divide the {c} input channels"),
        ));
    }
    let mut out = [0usize; 2];
    for (a, size) in [h, w].into_iter().enumerate() {
        let span = dilation[a] * (kernel[a] - 1) + 1;
        let padded = size + 2 * padding[a];
        if span > padded {
            return Err(invalid(
                "kernel size",
                pair(kernel),
                format!(
                    "{op}: the kernel spans {span} {} but the padded input has {padded}",
                    ["rows", "columns"][a]
                ),
            ));
        }
        out[a] = (padded - span) / stride[a] + 1;
    }
    let g = PatchGeom {
        n,
        c,
        h,
        w,
        groups,
        kernel,
        stride,
        padding,
        dilation,
        oh: out[0],
        ow: out[1],
        layout: PatchLayout::Columns,
    };
    Ok(g)
}

impl Tensor {
    /// The patch matrix `[groups, (c/groups)·kh·kw, n·oh·ow]` of this `[n, c, h, w]` image
    /// (`[groups, n·oh·ow, kh·kw·(c/groups)]` for [`PatchLayout::PatchesChannelsLast`]; see
    /// [`PatchGeom`]), padding read as `fill` (0 for convolutions, −∞ for max pooling).
    /// Linear in the image; its derivative is [`Tensor::col2im`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the image is not the geometry's; [`Error::TooLarge`] for a
    /// patch matrix that would not fit in memory.
    pub fn im2col(&self, g: &PatchGeom, fill: f64) -> Result<Tensor> {
        let expect = Shape::new(&[g.n, g.c, g.h, g.w])?;
        if self.shape() != expect {
            return Err(Error::ShapeMismatch {
                op: "im2col",
                lhs: self.shape(),
                rhs: expect,
            });
        }
        let out = Shape::new(&g.patch_dims())?;
        crate::memory::check(
            || format!("the patch matrix {out} of a convolution"),
            g.patch_len() as u128,
            self.dtype(),
        )?;
        let s = self.storage().im2col(g, fill)?;
        Ok(Tensor::make(s, out, Some(Op::Im2col(self.clone(), *g))))
    }

    /// The adjoint of [`Tensor::im2col`]: a patch matrix `[groups, (c/groups)·kh·kw, n·oh·ow]`
    /// summed back into its `[n, c, h, w]` image.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if this is not the geometry's patch matrix.
    pub fn col2im(&self, g: &PatchGeom) -> Result<Tensor> {
        let expect = Shape::new(&g.patch_dims())?;
        if self.shape() != expect {
            return Err(Error::ShapeMismatch {
                op: "col2im",
                lhs: self.shape(),
                rhs: expect,
            });
        }
        let out = Shape::new(&[g.n, g.c, g.h, g.w])?;
        let s = self.storage().col2im(g)?;
        Ok(Tensor::make(s, out, Some(Op::Col2im(self.clone(), *g))))
    }

    /// `[g, o, n·l]` (one product per group) → `[n, g·o, oh, ow]`.
    fn groups_to_nchw(&self, n: usize, oh: usize, ow: usize) -> Result<Tensor> {
        let [g, o, _] = *self.dims() else {
            unreachable!("a [groups, rows, cols] product");
        };
        self.reshape(&[g, o, n, oh * ow])?
            .permute(&[2, 0, 1, 3])?
            .reshape(&[n, g * o, oh, ow])
    }

    /// Adds a per-channel bias `[c]` to an NCHW tensor.
    fn add_channel_bias(&self, bias: Option<&Tensor>, op: &'static str) -> Result<Tensor> {
        let Some(b) = bias else {
            return Ok(self.clone());
        };
        let c = self.dims()[1];
        if b.dims() != [c] {
            return Err(Error::ShapeMismatch {
                op,
                lhs: b.shape(),
                rhs: Shape::new(&[c])?,
            });
        }
        self.add(&b.reshape(&[1, c, 1, 1])?)
    }

    /// 2-D convolution (cross-correlation, as in PyTorch) of this `[n, c, h, w]` image with
    /// `weight` `[o, c/groups, kh, kw]`, plus `bias` `[o]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero sizes, groups that do not divide the channels, or a
    /// kernel larger than the padded input; [`Error::ShapeMismatch`] for a weight or bias of the
    /// wrong shape.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, o: Conv2dOpts) -> Result<Tensor> {
        let x = nchw(self, "conv2d")?;
        let &[oc, cg, kh, kw] = weight.dims() else {
            return Err(invalid(
                "weight",
                weight.shape(),
                "conv2d takes [out channels, in channels / groups, kh, kw]",
            ));
        };
        let g = geometry(
            "conv2d",
            x,
            o.groups,
            [kh, kw],
            o.stride,
            o.padding,
            o.dilation,
        )?;
        if cg * o.groups != x[1] || oc % o.groups != 0 {
            return Err(Error::ShapeMismatch {
                op: "conv2d",
                lhs: self.shape(),
                rhs: weight.shape(),
            });
        }
        // On the CPU one recorded op (`conv2d_geom`) whose kernel builds channels-last patches
        // tile by tile and never forms the whole patch matrix; its input gradient is again a
        // convolution (`conv2d_input_grad`). The CUDA kernels take the column layout.
        if self.device() == crate::backend::Device::Cpu {
            if let Some(b) = bias.filter(|b| b.dims() != [oc]) {
                return Err(Error::ShapeMismatch {
                    op: "conv2d",
                    lhs: b.shape(),
                    rhs: Shape::new(&[oc])?,
                });
            }
            let g = PatchGeom {
                layout: PatchLayout::PatchesChannelsLast,
                ..g
            };
            return self.conv2d_geom(weight, bias, &g);
        }
        let wm = weight.reshape(&[o.groups, oc / o.groups, g.rows()])?;
        wm.matmul(&self.im2col(&g, 0.0)?)?
            .groups_to_nchw(g.n, g.oh, g.ow)?
            .add_channel_bias(bias, "conv2d")
    }

    /// The CPU convolution of this image with `weight` `[o, c/groups, kh, kw]` plus `bias`, as one
    /// recorded [`Op::Conv2d`] over the checked geometry `g` (channels-last patches).
    pub(crate) fn conv2d_geom(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        g: &PatchGeom,
    ) -> Result<Tensor> {
        let o = weight.dims()[0];
        let s = self
            .storage()
            .conv2d(weight.storage(), bias.map(|b| b.storage()), g, o)?;
        let out = Shape::new(&[g.n, o, g.oh, g.ow])?;
        let op = Op::Conv2d(self.clone(), weight.clone(), bias.cloned(), *g);
        Ok(Tensor::make(s, out, Some(op)))
    }

    /// An output (or output gradient) `[n, o, oh, ow]` of the convolution `g` as the rows of its
    /// channels-last patch matrix: `[groups, n·oh·ow, o/groups]`.
    fn conv_output_rows(&self, g: &PatchGeom) -> Result<Tensor> {
        let o = self.dims()[1];
        self.reshape(&[g.n, g.groups, o / g.groups, g.oh * g.ow])?
            .permute(&[1, 0, 3, 2])?
            .reshape(&[g.groups, g.cols(), o / g.groups])
    }

    /// The input gradient of the CPU convolution `g` with `weight`, from this output gradient,
    /// recorded. With stride 1 (and padding at most the kernel's span less one) it is itself a
    /// convolution: of this gradient with the weight flipped in both spatial axes and its
    /// channel axes swapped per group, padding `d·(k − 1) − p` — one [`Op::Conv2d`], whose
    /// product has the inner dimension `kh·kw·o/groups` and which writes no patch gradient.
    /// Otherwise the patch gradient `rows · weightᵀ` summed back by [`Tensor::col2im`].
    pub(crate) fn conv2d_input_grad(&self, weight: &Tensor, g: &PatchGeom) -> Result<Tensor> {
        let &[o, cg, kh, kw] = weight.dims() else {
            unreachable!("a checked conv2d weight");
        };
        let og = o / g.groups;
        let as_conv =
            (0..2).all(|a| g.stride[a] == 1 && g.padding[a] <= g.dilation[a] * (g.kernel[a] - 1));
        if as_conv {
            // w[grp·og + j, c, ki, kj] → w'[grp·cg + c, j, kh − 1 − ki, kw − 1 − kj]: flipping
            // both axes reverses the flattened taps.
            let taps: Vec<usize> = (0..kh * kw).rev().collect();
            let flipped = weight
                .reshape(&[g.groups, og, cg, kh * kw])?
                .permute(&[0, 2, 1, 3])?
                .reshape(&[g.groups * cg, og, kh * kw])?
                .index_select(2, &taps)?
                .reshape(&[g.groups * cg, og, kh, kw])?;
            let span = |a: usize| g.dilation[a] * (g.kernel[a] - 1);
            let back = PatchGeom {
                c: o,
                h: g.oh,
                w: g.ow,
                stride: [1, 1],
                padding: [span(0) - g.padding[0], span(1) - g.padding[1]],
                oh: g.h,
                ow: g.w,
                ..*g
            };
            return self.conv2d_geom(&flipped, None, &back);
        }
        let wm = weight
            .reshape(&[g.groups, og, cg, kh * kw])?
            .permute(&[0, 3, 2, 1])?
            .reshape(&[g.groups, g.rows(), og])?;
        self.conv_output_rows(g)?
            .matmul_t(&wm, false, true)?
            .col2im(g)
    }

    /// The weight gradient `[o, c/groups, kh, kw]` of the CPU convolution `g` of this image,
    /// from the output gradient `gy`, as one recorded [`Op::Conv2dWeightGrad`] (the tiled
    /// `gyᵀ · patches` of the backend: no whole patch matrix).
    pub(crate) fn conv2d_weight_grad(&self, gy: &Tensor, g: &PatchGeom) -> Result<Tensor> {
        let o = gy.dims()[1];
        let s = self.storage().conv2d_weight_grad(gy.storage(), g, o)?;
        let out = Shape::new(&[o, g.c / g.groups, g.kernel[0], g.kernel[1]])?;
        let op = Op::Conv2dWeightGrad(self.clone(), gy.clone(), *g);
        Ok(Tensor::make(s, out, Some(op)))
    }

    /// Transposed 2-D convolution of this `[n, c, h, w]` image with `weight`
    /// `[c, o/groups, kh, kw]`, plus `bias` `[o]`: the adjoint of [`Tensor::conv2d`] with the
    /// same stride, padding, dilation and groups (what PyTorch's `conv_transpose2d` computes).
    ///
    /// # Errors
    /// As [`Tensor::conv2d`]; [`Error::InvalidArgument`] for an output padding not smaller than
    /// the stride or the dilation, or an output that would be empty.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        o: ConvTranspose2dOpts,
    ) -> Result<Tensor> {
        let [n, c, h, w] = nchw(self, "conv_transpose2d")?;
        let &[wc, og, kh, kw] = weight.dims() else {
            return Err(invalid(
                "weight",
                weight.shape(),
                "conv_transpose2d takes [in channels, out channels / groups, kh, kw]",
            ));
        };
        if o.groups == 0 || c % o.groups != 0 || wc != c {
            return Err(Error::ShapeMismatch {
                op: "conv_transpose2d",
                lhs: self.shape(),
                rhs: weight.shape(),
            });
        }
        let mut out = [0usize; 2];
        for a in 0..2 {
            if o.stride[a] == 0 || o.dilation[a] == 0 {
                return Err(invalid(
                    "stride",
                    format!("{:?} (dilation {:?})", o.stride, o.dilation),
                    "conv_transpose2d: stride and dilation must be ≥ 1",
                ));
            }
            if o.output_padding[a] >= o.stride[a].max(o.dilation[a]) {
                return Err(invalid(
                    "output padding",
                    format!("{:?}", o.output_padding),
                    "conv_transpose2d: must be smaller than the stride or the dilation",
                ));
            }
            let size = [h, w][a];
            let k = [kh, kw][a];
            let full = (size.max(1) - 1) * o.stride[a]
                + o.dilation[a] * (k.max(1) - 1)
                + o.output_padding[a]
                + 1;
            out[a] = full
                .checked_sub(2 * o.padding[a])
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    invalid(
                        "padding",
                        format!("{:?}", o.padding),
                        format!("conv_transpose2d: leaves no output of the {h}x{w} input"),
                    )
                })?;
        }
        let oc = og * o.groups;
        // The convolution this is the adjoint of maps [n, oc, out] to [n, c, h, w].
        let g = geometry(
            "conv_transpose2d",
            [n, oc, out[0], out[1]],
            o.groups,
            [kh, kw],
            o.stride,
            o.padding,
            o.dilation,
        )?;
        if (g.oh, g.ow) != (h, w) {
            return Err(invalid(
                "output padding",
                format!("{:?}", o.output_padding),
                format!(
                    "conv_transpose2d: an output of {}x{} does not map back to {h}x{w}",
                    out[0], out[1]
                ),
            ));
        }
        let cg = c / o.groups;
        let xm = self
            .reshape(&[n, o.groups, cg, h * w])?
            .permute(&[1, 2, 0, 3])?
            .reshape(&[o.groups, cg, n * h * w])?;
        let wm = weight.reshape(&[o.groups, cg, g.rows()])?;
        wm.matmul_t(&xm, true, false)?
            .col2im(&g)?
            .add_channel_bias(bias, "conv_transpose2d")
    }

    /// Pooling windows as a `[c, kh·kw, n·oh·ow]` patch matrix (channels as groups).
    fn pool_patches(
        &self,
        op: &'static str,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        fill: f64,
    ) -> Result<(Tensor, PatchGeom)> {
        let g = self.pool_geometry(op, kernel, stride, padding)?;
        Ok((self.im2col(&g, fill)?, g))
    }

    /// The checked geometry of a pooling of this image: one group per channel, column layout.
    fn pool_geometry(
        &self,
        op: &'static str,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<PatchGeom> {
        let x = nchw(self, op)?;
        for a in 0..2 {
            if 2 * padding[a] > kernel[a] {
                return Err(invalid(
                    "padding",
                    format!("{:?}", padding),
                    format!("{op}: at most half the kernel size {:?}", kernel),
                ));
            }
        }
        geometry(op, x, x[1], kernel, stride, padding, [1, 1])
    }

    /// `[c, 1, n·oh·ow]` → `[n, c, oh, ow]`.
    fn pooled_to_nchw(&self, g: &PatchGeom) -> Result<Tensor> {
        self.reshape(&[g.c, g.n, g.oh, g.ow])?
            .permute(&[1, 0, 2, 3])
    }

    /// Max pooling of this `[n, c, h, w]` image (PyTorch's `max_pool2d`, dilation 1, floor
    /// mode). Where a window has tied maxima, the gradient is shared between them.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for zero sizes, padding over half the kernel, or a kernel
    /// larger than the padded input.
    pub fn max_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Tensor> {
        if self.device() == crate::backend::Device::Cpu {
            // One recorded op whose kernels walk the windows in place (`cpu::pool`).
            let g = self.pool_geometry("max_pool2d", kernel, stride, padding)?;
            let s = self.storage().max_pool2d(&g)?;
            let out = Shape::new(&[g.n, g.c, g.oh, g.ow])?;
            return Ok(Tensor::make(s, out, Some(Op::MaxPool2d(self.clone(), g))));
        }
        let (p, g) = self.pool_patches("max_pool2d", kernel, stride, padding, f64::NEG_INFINITY)?;
        p.max(1, true)?.pooled_to_nchw(&g)
    }

    /// The window maxima's tie mask `[c, kh·kw, n·oh·ow]` of this image's max pooling `g`, given
    /// its output `y`, and each window's tie count `[c, 1, n·oh·ow]` — recorded ops, for the
    /// derivative rules of [`Op::MaxPool2d`] when they are themselves recorded (or in forward
    /// mode): the rules of the composition `im2col` → `max` → `pooled_to_nchw`.
    pub(crate) fn max_pool2d_ties(&self, y: &Tensor, g: &PatchGeom) -> Result<(Tensor, Tensor)> {
        let p = self.im2col(g, f64::NEG_INFINITY)?;
        let m = y
            .permute(&[1, 0, 2, 3])?
            .reshape(&[g.c, 1, g.cols()])?
            .broadcast_to(p.dims())?;
        let mask = p.eq(&m)?;
        let count = mask.sum_keepdim(1)?;
        Ok((mask, count))
    }

    /// The input gradient of [`Op::MaxPool2d`] (`self` its input, `y` its output) from the
    /// output gradient `gy`: the CPU kernel unrecorded, else the composition's rule.
    pub(crate) fn max_pool2d_vjp(&self, y: &Tensor, gy: &Tensor, g: &PatchGeom) -> Result<Tensor> {
        if !crate::autodiff::is_recording() {
            let s = self
                .storage()
                .max_pool2d_backward(y.storage(), gy.storage(), g)?;
            return Ok(Tensor::from_storage(s, self.shape()));
        }
        let (mask, count) = self.max_pool2d_ties(y, g)?;
        gy.permute(&[1, 0, 2, 3])?
            .reshape(&[g.c, 1, g.cols()])?
            .div(&count)?
            .broadcast_to(mask.dims())?
            .mul(&mask)?
            .col2im(g)
    }

    /// Average pooling of this `[n, c, h, w]` image (PyTorch's `avg_pool2d` with
    /// `count_include_pad=True`: padded zeros count in every window's mean).
    ///
    /// # Errors
    /// As [`Tensor::max_pool2d`].
    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Tensor> {
        let (p, g) = self.pool_patches("avg_pool2d", kernel, stride, padding, 0.0)?;
        p.mean(&[1], true)?.pooled_to_nchw(&g)
    }

    /// The mean over height and width: `[n, c, h, w]` → `[n, c]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if this is not an NCHW tensor.
    pub fn global_mean_pool(&self) -> Result<Tensor> {
        nchw(self, "global_mean_pool")?;
        self.mean(&[2, 3], false)
    }

    /// `[n, …]` → `[n, product of the rest]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a rank-0 tensor.
    pub fn flatten(&self) -> Result<Tensor> {
        let Some((&n, rest)) = self.dims().split_first() else {
            return Err(invalid(
                "tensor",
                self.shape(),
                "flatten needs a batch axis",
            ));
        };
        self.reshape(&[n, rest.iter().product()])
    }

    /// Checks the per-channel parameters of a batch norm.
    fn bn_params(&self, op: &'static str, params: &[&Tensor]) -> Result<usize> {
        let [_, c, _, _] = nchw(self, op)?;
        for p in params {
            if p.dims() != [c] {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: p.shape(),
                    rhs: Shape::new(&[c])?,
                });
            }
        }
        Ok(c)
    }

    /// Filter response normalisation with its thresholded linear unit (Singh & Krishnan, CVPR
    /// 2020; the layer of the BNN-HMC reference's ResNet-20-FRN, `bnn_hmc/utils/models.py`):
    /// `ν² = mean_{h,w}(x²)`, `y = max(γ·x/√(ν² + ε) + β, τ)` per image and channel of this
    /// `[n, c, h, w]` tensor, with `γ`, `β`, `τ` of shape `[c]`. No batch statistics: each image
    /// is normalised by itself, so the network stays a deterministic function of its weights
    /// (what HMC needs). A composition of recorded ops, so gradients of gradients work.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for parameters that are not `[c]`; [`Error::InvalidArgument`]
    /// for a tensor that is not NCHW.
    pub fn filter_response_norm(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        tau: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let c = self.bn_params("filter_response_norm", &[gamma, beta, tau])?;
        let [n, _, h, w] = nchw(self, "filter_response_norm")?;
        // Rows of one image's channel, so that the broadcasts run along whole rows.
        let rows = self.reshape(&[n * c, h * w])?;
        let inv = rows
            .square()?
            .mean(&[1], true)?
            .add_scalar(eps)?
            .powf(-0.5)?;
        let per_channel = |p: &Tensor| p.reshape(&[c, 1]);
        let tau = per_channel(tau)?;
        // max(y, τ) = τ + relu(y − τ), with y − τ = γ·x̂ + (β − τ): the threshold's gradient
        // goes to y where y > τ and to τ elsewhere (`maximum` records none).
        rows.mul(&inv)?
            .reshape(&[n, c, h * w])?
            .mul(&per_channel(gamma)?)?
            .add(&per_channel(beta)?.sub(&tau)?)?
            .relu()?
            .add(&tau)?
            .reshape(&[n, c, h, w])
    }

    /// Batch normalisation in training mode: `y = γ·(x − μ_B)/√(σ²_B + ε) + β` over the batch
    /// and spatial axes of this `[n, c, h, w]` tensor, with the biased batch variance `σ²_B`.
    /// Returns `y`, the batch mean `[c]` and the *unbiased* batch variance `[c]` (detached) for
    /// the caller's running statistics (PyTorch: `r ← (1 − m)·r + m·stat`, m = 0.1).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for parameters that are not `[c]`; [`Error::InvalidArgument`]
    /// for a batch of one value per channel (no variance).
    pub fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = self.bn_params("batch_norm", &[gamma, beta])?;
        let count = self.numel() / c.max(1);
        if count < 2 {
            return Err(invalid(
                "batch",
                self.shape(),
                "batch norm in training mode needs more than one value per channel",
            ));
        }
        // On the CPU one recorded op whose kernels take two passes forward and two backward
        // (`cpu::norm`); elsewhere the composition below.
        if self.device() == crate::backend::Device::Cpu {
            let [n, _, h, w] = nchw(self, "batch_norm")?;
            let (y, mean, var) = self.storage().batch_norm_train(
                gamma.storage(),
                beta.storage(),
                [n, c, h * w],
                eps,
            )?;
            let cs = Shape::new(&[c])?;
            let (mean, var) = (
                Tensor::from_storage(mean, cs),
                Tensor::from_storage(var, cs),
            );
            let unbiased = var.mul_scalar(count as f64 / (count - 1) as f64)?;
            let op = Op::BatchNorm(
                self.clone(),
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var,
                eps,
            );
            return Ok((Tensor::make(y, self.shape(), Some(op)), mean, unbiased));
        }
        let mean = self.mean(&[0, 2, 3], true)?;
        let centred = self.sub(&mean)?;
        let var = centred.square()?.mean(&[0, 2, 3], true)?;
        let y = centred
            .div(&var.add_scalar(eps)?.sqrt()?)?
            .mul(&gamma.reshape(&[1, c, 1, 1])?)?
            .add(&beta.reshape(&[1, c, 1, 1])?)?;
        let unbiased = var.mul_scalar(count as f64 / (count - 1) as f64)?;
        Ok((
            y,
            mean.detach().reshape(&[c])?,
            unbiased.detach().reshape(&[c])?,
        ))
    }

    /// `(x̂, 1/√(σ² + ε))` of this `[n, c, h, w]` batch, `x̂ = (x − μ)/√(σ² + ε)` with the batch
    /// mean and biased variance, composed of recorded ops: the derivative rules of the fused
    /// [`Op::BatchNorm`] when they are themselves recorded (or in forward mode).
    pub(crate) fn batch_norm_parts(&self, eps: f64) -> Result<(Tensor, Tensor)> {
        let centred = self.sub(&self.mean(&[0, 2, 3], true)?)?;
        let inv = centred
            .square()?
            .mean(&[0, 2, 3], true)?
            .add_scalar(eps)?
            .powf(-0.5)?;
        Ok((centred.mul(&inv)?, inv))
    }

    /// The vector–Jacobian product of [`Op::BatchNorm`] (`self` the image `x`) from the output
    /// gradient `gy`: `(dx, dγ, dβ)`, `dx = γ/s·(gy − mean(gy) − x̂·mean(gy·x̂))`. Unrecorded,
    /// the fused CPU kernel; recorded (higher derivatives), the same formula in recorded ops.
    pub(crate) fn batch_norm_vjp(
        &self,
        gy: &Tensor,
        [gamma, mean, var]: [&Tensor; 3],
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let [n, c, h, w] = nchw(self, "batch_norm")?;
        if !crate::autodiff::is_recording() {
            let (dx, dg, db) = self.storage().batch_norm_backward(
                gy.storage(),
                [gamma.storage(), mean.storage(), var.storage()],
                [n, c, h * w],
                eps,
            )?;
            let cs = Shape::new(&[c])?;
            return Ok((
                Tensor::from_storage(dx, self.shape()),
                Tensor::from_storage(dg, cs),
                Tensor::from_storage(db, cs),
            ));
        }
        let (xhat, inv) = self.batch_norm_parts(eps)?;
        let gx = gy.mul(&xhat)?;
        let dgamma = gx.sum(&[0, 2, 3], false)?;
        let dbeta = gy.sum(&[0, 2, 3], false)?;
        let dx = gy
            .sub(&gy.mean(&[0, 2, 3], true)?)?
            .sub(&xhat.mul(&gx.mean(&[0, 2, 3], true)?)?)?
            .mul(&inv.mul(&gamma.reshape(&[1, c, 1, 1])?)?)?;
        Ok((dx, dgamma, dbeta))
    }

    /// Batch normalisation in evaluation mode with running statistics `[c]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for parameters that are not `[c]`.
    pub fn batch_norm_eval(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        let c = self.bn_params("batch_norm", &[gamma, beta, running_mean, running_var])?;
        let r = |t: &Tensor| t.reshape(&[1, c, 1, 1]);
        self.sub(&r(running_mean)?)?
            .div(&r(running_var)?.add_scalar(eps)?.sqrt()?)?
            .mul(&r(gamma)?)?
            .add(&r(beta)?)
    }

    /// Inverted dropout: each entry is zeroed with probability `p` and the rest scaled by
    /// `1/(1 − p)`, by a mask drawn from `seed` (the same seed gives the same mask on every
    /// device). Evaluation mode is simply not calling this.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `p` outside `[0, 1)`.
    pub fn dropout(&self, p: f64, seed: u64) -> Result<Tensor> {
        use keel_core::random::{uniform, Xoshiro256PlusPlus};
        if !(0.0..1.0).contains(&p) {
            return Err(invalid(
                "dropout",
                p,
                "the drop probability must be in [0, 1)",
            ));
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f64> = (0..self.numel())
            .map(|_| {
                if uniform::<f64, _>(&mut rng) < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_f64s(&mask, self.dims(), self.dtype())?.to_device(self.device())?;
        self.mul(&mask)
    }
}
