//! Tensor operations. Primitive operations compute with a backend kernel and record an
//! [`Op`]; composite operations (softmax, cross-entropy, …) are written with primitives so their
//! derivatives come for free.

use std::sync::Arc;

use super::{Shape, Tensor};
use crate::autodiff::Op;
use crate::backend::ops::{BinaryOp, MatmulDims, UnaryOp};
use crate::backend::{DType, Storage};
use crate::error::{Error, Result};

impl Tensor {
    // ---------------------------------------------------------------- elementwise, unary

    pub(crate) fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let s = self.storage().unary(op)?;
        let record = !matches!(op, UnaryOp::Step | UnaryOp::Sign);
        Ok(Tensor::make(
            s,
            self.shape(),
            record.then(|| Op::Unary(self.clone(), op)),
        ))
    }

    /// −x.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// eˣ.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// ln x.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// ln(1 + x).
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log1p)
    }
    /// tanh x.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// ln(1 + eˣ), numerically stable.
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Softplus)
    }
    /// max(x, 0).
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// sin x.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    /// cos x.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    /// √x.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// x².
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    /// |x|.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// 1 where x > 0, else 0 (no gradient).
    pub fn step(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Step)
    }
    /// sign(x) (no gradient).
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }

    /// swish / SiLU: x·sigmoid(x).
    ///
    /// # Errors
    /// Never for a valid tensor (kept fallible like every binary op).
    pub fn silu(&self) -> Result<Tensor> {
        self.mul(&self.sigmoid()?)
    }

    /// `a·x + b`.
    pub fn affine(&self, a: f64, b: f64) -> Result<Tensor> {
        let s = self.storage().affine(a, b)?;
        Ok(Tensor::make(
            s,
            self.shape(),
            Some(Op::Affine(self.clone(), a)),
        ))
    }

    /// `x + c`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(1.0, c)
    }

    /// `c·x`.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.affine(c, 0.0)
    }

    /// `xᶜ` for a constant exponent.
    pub fn powf(&self, c: f64) -> Result<Tensor> {
        let s = self.storage().powf(c)?;
        Ok(Tensor::make(
            s,
            self.shape(),
            Some(Op::Powf(self.clone(), c)),
        ))
    }

    /// `xʸ = exp(y ln x)` elementwise with broadcasting (x > 0).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes do not broadcast.
    pub fn pow(&self, y: &Tensor) -> Result<Tensor> {
        y.mul(&self.log()?)?.exp()
    }

    // ---------------------------------------------------------------- elementwise, binary

    pub(crate) fn binary(&self, rhs: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        let (sa, sb) = (self.shape(), rhs.shape());
        let out = sa.broadcast(&sb, name)?;
        let s = self
            .storage()
            .binary(op, &sa, rhs.storage(), &sb, &out, name)?;
        let record = matches!(
            op,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::AddRelu
                | BinaryOp::MulStep
        );
        Ok(Tensor::make(
            s,
            out,
            record.then(|| Op::Binary(self.clone(), rhs.clone(), op)),
        ))
    }

    /// `a + b` with broadcasting.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes do not broadcast; [`Error::DTypeMismatch`].
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add, "add")
    }
    /// `a − b` with broadcasting.
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub, "sub")
    }
    /// `a · b` elementwise with broadcasting.
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul, "mul")
    }
    /// `a / b` elementwise with broadcasting.
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div, "div")
    }
    /// `relu(a + b)` with broadcasting, in one pass: exactly `a.add(b)?.relu()` (a dense
    /// layer's bias and activation; its gradient passes where the output is positive).
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn add_relu(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::AddRelu, "add_relu")
    }
    /// `a · step(b)` with broadcasting (`step(b)` = 1 where `b > 0`, else 0), in one pass:
    /// exactly `a.mul(&b.step()?)` — the ReLU's vector–Jacobian product. Its gradient reaches `a`
    /// only (`step` is flat almost everywhere).
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn mul_step(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::MulStep, "mul_step")
    }
    /// `max(a, b)` elementwise (no gradient).
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Max, "maximum")
    }
    /// 1 where `a > b`, else 0 (no gradient).
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Gt, "gt")
    }
    /// 1 where `a == b`, else 0 (no gradient).
    ///
    /// # Errors
    /// As [`Tensor::add`].
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Eq, "eq")
    }

    /// `mask ? a : b` elementwise, all three broadcast together (`mask` nonzero = true; no
    /// gradient flows to the mask).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the shapes do not broadcast; [`Error::DTypeMismatch`].
    pub fn where_(mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (sm, sa, sb) = (mask.shape(), a.shape(), b.shape());
        let out = sm.broadcast(&sa, "where")?.broadcast(&sb, "where")?;
        let s = Storage::where_(
            mask.storage(),
            &sm,
            a.storage(),
            &sa,
            b.storage(),
            &sb,
            &out,
        )?;
        Ok(Tensor::make(
            s,
            out,
            Some(Op::Where(mask.detach(), a.clone(), b.clone())),
        ))
    }

    // ---------------------------------------------------------------- products

    /// Matrix product `self · rhs` over the last two axes, batched over leading axes (equal
    /// batch shapes, or one operand of rank 2 shared across the batch).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming both shapes.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul_t(rhs, false, false)
    }

    /// `op(self) · op(rhs)` with `op` = transpose of the last two axes where flagged; the
    /// transposes are strides, never copies.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming both shapes.
    pub fn matmul_t(&self, rhs: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
        let (sa, sb) = (self.shape(), rhs.shape());
        let mismatch = || Error::ShapeMismatch {
            op: "matmul",
            lhs: sa,
            rhs: sb,
        };
        if sa.rank() < 2 || sb.rank() < 2 {
            return Err(mismatch());
        }
        let (ra, ca) = (sa.dim(sa.rank() - 2), sa.dim(sa.rank() - 1));
        let (rb, cb) = (sb.dim(sb.rank() - 2), sb.dim(sb.rank() - 1));
        let (m, ka) = if ta { (ca, ra) } else { (ra, ca) };
        let (kb, n) = if tb { (cb, rb) } else { (rb, cb) };
        if ka != kb {
            return Err(mismatch());
        }
        let batch_a = &sa.dims()[..sa.rank() - 2];
        let batch_b = &sb.dims()[..sb.rank() - 2];
        let (batch_dims, a_stride, b_stride) = if batch_a == batch_b {
            (batch_a, m * ka, ka * n)
        } else if batch_b.is_empty() {
            (batch_a, m * ka, 0)
        } else if batch_a.is_empty() {
            (batch_b, 0, ka * n)
        } else {
            return Err(mismatch());
        };
        let batch: usize = batch_dims.iter().product();
        let mut out_dims = batch_dims.to_vec();
        out_dims.extend([m, n]);
        let out = Shape::new(&out_dims)?;
        let d = MatmulDims {
            m,
            n,
            k: ka,
            ta,
            tb,
        };
        let s = self
            .storage()
            .matmul(rhs.storage(), a_stride, b_stride, batch, d)?;
        Ok(Tensor::make(
            s,
            out,
            Some(Op::Matmul(self.clone(), rhs.clone(), ta, tb)),
        ))
    }

    // ---------------------------------------------------------------- reductions

    /// Sum over one axis, keeping it with size 1.
    pub(crate) fn sum_keepdim(&self, axis: usize) -> Result<Tensor> {
        let (o, d, i) = self.shape().split_at_axis(axis);
        let s = self.storage().sum_axis(o, d, i)?;
        Ok(Tensor::make(
            s,
            self.shape().with_dim(axis, 1),
            Some(Op::Sum(self.clone(), axis)),
        ))
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` keeps them with size 1.
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut resolved = Vec::with_capacity(axes.len());
        for a in axes {
            resolved.push(self.shape().axis("sum", *a)?);
        }
        let mut t = self.clone();
        for &a in &resolved {
            if t.dims()[a] != 1 || self.dims()[a] == 1 {
                t = t.sum_keepdim(a)?;
            }
        }
        if keepdim {
            return Ok(t);
        }
        let dims: Vec<usize> = t
            .dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !resolved.contains(i))
            .map(|(_, d)| *d)
            .collect();
        t.reshape(&dims)
    }

    /// Sum of all elements (rank 0).
    ///
    /// # Errors
    /// Device errors.
    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    /// Mean over `axes`.
    ///
    /// # Errors
    /// [`Error::Axis`] for an axis out of range.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let mut n = 1usize;
        for a in axes {
            n *= self.dims()[self.shape().axis("mean", *a)?];
        }
        self.sum(axes, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Mean of all elements (rank 0).
    ///
    /// # Errors
    /// Device errors.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.mul_scalar(1.0 / self.numel().max(1) as f64)
    }

    /// Maximum over one axis; the gradient is shared equally between tied maxima.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn max(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let a = self.shape().axis("max", axis)?;
        let (o, d, i) = self.shape().split_at_axis(a);
        if d == 0 {
            return Err(Error::ShapeMismatch {
                op: "max (empty axis)",
                lhs: self.shape(),
                rhs: Shape::scalar(),
            });
        }
        let s = self.storage().max_axis(o, d, i)?;
        let t = Tensor::make(
            s,
            self.shape().with_dim(a, 1),
            Some(Op::Max(self.clone(), a)),
        );
        if keepdim {
            Ok(t)
        } else {
            t.squeeze(a as isize)
        }
    }

    /// Index of the maximum along `axis` (first on ties), flattened in row-major order of the
    /// remaining axes.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn argmax(&self, axis: isize) -> Result<Vec<usize>> {
        let a = self.shape().axis("argmax", axis)?;
        let (o, d, i) = self.shape().split_at_axis(a);
        self.storage().argmax_axis(o, d, i)
    }

    /// `log Σ exp(x)` along `axis`, stabilised by the (detached) maximum.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        let m = self.max(axis, true)?.detach();
        let s = self.sub(&m)?.exp()?.sum(&[axis], true)?.log()?.add(&m)?;
        if keepdim {
            Ok(s)
        } else {
            s.squeeze(axis)
        }
    }

    /// Softmax along `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.log_softmax(axis)?.exp()
    }

    /// Log-softmax along `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.sub(&self.logsumexp(axis, true)?)
    }

    // ---------------------------------------------------------------- shape ops

    /// Same data, new dimensions (same element count).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the counts differ.
    pub fn reshape(&self, dims: &[usize]) -> Result<Tensor> {
        let shape = Shape::new(dims)?;
        if shape.numel() != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape(),
                rhs: shape,
            });
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        // Shares the buffer; only the shape and the recorded op differ.
        Ok(self.view(shape, Op::Reshape(self.clone())))
    }

    /// Inserts an axis of size 1 at `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`] / [`Error::Rank`].
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let r = self.rank() as isize;
        let a = if axis < 0 { axis + r + 1 } else { axis };
        if a < 0 || a > r {
            return Err(Error::Axis {
                op: "unsqueeze",
                axis,
                shape: self.shape(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims.insert(a as usize, 1);
        self.reshape(&dims)
    }

    /// Removes the size-1 axis `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`] if out of range or not of size 1.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            return Err(Error::Axis {
                op: "squeeze (size ≠ 1)",
                axis,
                shape: self.shape(),
            });
        }
        let mut dims = self.dims().to_vec();
        dims.remove(a);
        self.reshape(&dims)
    }

    /// Broadcasts to `dims` (numpy rules).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if not broadcastable to exactly `dims`.
    pub fn broadcast_to(&self, dims: &[usize]) -> Result<Tensor> {
        let target = Shape::new(dims)?;
        if self.shape().broadcast(&target, "broadcast_to")? != target {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                lhs: self.shape(),
                rhs: target,
            });
        }
        if target == self.shape() {
            return Ok(self.clone());
        }
        let s = self.shape();
        let st = self.storage().broadcast_to(&s, &target)?;
        Ok(Tensor::make(
            st,
            target,
            Some(Op::BroadcastTo(self.clone())),
        ))
    }

    /// Sums over the axes along which `dims` was broadcast to `self`'s shape: the adjoint of
    /// [`Tensor::broadcast_to`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `dims` does not broadcast to this shape.
    pub fn sum_to(&self, dims: &[usize]) -> Result<Tensor> {
        let target = Shape::new(dims)?;
        if target == self.shape() {
            return Ok(self.clone());
        }
        if target.broadcast(&self.shape(), "sum_to")? != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "sum_to",
                lhs: self.shape(),
                rhs: target,
            });
        }
        let lead = self.rank() - target.rank();
        let mut axes: Vec<isize> = (0..lead as isize).collect();
        for i in 0..target.rank() {
            if target.dim(i) == 1 && self.dims()[lead + i] != 1 {
                axes.push((lead + i) as isize);
            }
        }
        self.sum(&axes, true)?.reshape(dims)
    }

    /// Permutes axes: output axis `i` is input axis `perm[i]`.
    ///
    /// # Errors
    /// [`Error::Axis`] if `perm` is not a permutation of the axes.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = [false; super::MAX_RANK];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::Axis {
                op: "permute",
                axis: perm.len() as isize,
                shape: self.shape(),
            });
        }
        if perm.iter().enumerate().all(|(i, p)| i == *p) {
            return Ok(self.clone());
        }
        let s = self.shape();
        let (st, shape) = self.storage().permute(&s, perm)?;
        let mut p = [0usize; super::MAX_RANK];
        p[..r].copy_from_slice(perm);
        Ok(Tensor::make(st, shape, Some(Op::Permute(self.clone(), p))))
    }

    /// Swaps two axes.
    ///
    /// # Errors
    /// [`Error::Axis`].
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two axes (copies; prefer [`Tensor::matmul_t`] in products).
    ///
    /// # Errors
    /// [`Error::Axis`] below rank 2.
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    /// `len` entries from `start` along `axis`.
    ///
    /// # Errors
    /// [`Error::Axis`] if out of range.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis("narrow", axis)?;
        let (o, d, i) = self.shape().split_at_axis(a);
        if start + len > d {
            return Err(Error::Axis {
                op: "narrow (range past the end)",
                axis,
                shape: self.shape(),
            });
        }
        let st = self.storage().narrow(o, d, i, start, len)?;
        Ok(Tensor::make(
            st,
            self.shape().with_dim(a, len),
            Some(Op::Narrow(self.clone(), a, start)),
        ))
    }

    /// Places `self` at `start` along `axis` inside zeros of size `full` (the adjoint of
    /// [`Tensor::narrow`]).
    ///
    /// # Errors
    /// [`Error::Axis`] if it does not fit.
    pub fn pad_axis(&self, axis: isize, start: usize, full: usize) -> Result<Tensor> {
        let a = self.shape().axis("pad", axis)?;
        let (o, d, i) = self.shape().split_at_axis(a);
        if start + d > full {
            return Err(Error::Axis {
                op: "pad (does not fit)",
                axis,
                shape: self.shape(),
            });
        }
        let st = self.storage().pad(o, d, i, start, full)?;
        Ok(Tensor::make(
            st,
            self.shape().with_dim(a, full),
            Some(Op::Pad(self.clone(), a, start)),
        ))
    }

    /// Concatenates along `axis` (all other dimensions equal).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the first mismatching pair; [`Error::DTypeMismatch`].
    pub fn concat(parts: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = parts.first().ok_or(Error::Empty { op: "concat" })?;
        let a = first.shape().axis("concat", axis)?;
        let (o, _, i) = first.shape().split_at_axis(a);
        let mut total = 0;
        for p in parts {
            if p.rank() != first.rank()
                || (0..first.rank()).any(|k| k != a && p.dims()[k] != first.dims()[k])
            {
                return Err(Error::ShapeMismatch {
                    op: "concat",
                    lhs: first.shape(),
                    rhs: p.shape(),
                });
            }
            if p.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "concat",
                    lhs: first.dtype(),
                    rhs: p.dtype(),
                });
            }
            total += p.dims()[a];
        }
        let pieces: Vec<(&Storage, usize)> =
            parts.iter().map(|p| (p.storage(), p.dims()[a])).collect();
        let st = Storage::concat(&pieces, o, i)?;
        Ok(Tensor::make(
            st,
            first.shape().with_dim(a, total),
            Some(Op::Concat(parts.to_vec(), a)),
        ))
    }

    /// Stacks equal-shaped tensors along a new axis.
    ///
    /// # Errors
    /// As [`Tensor::concat`].
    pub fn stack(parts: &[Tensor], axis: isize) -> Result<Tensor> {
        let expanded = parts
            .iter()
            .map(|p| p.unsqueeze(axis))
            .collect::<Result<Vec<_>>>()?;
        let r = parts.first().ok_or(Error::Empty { op: "stack" })?.rank() as isize + 1;
        let a = if axis < 0 { axis + r } else { axis };
        Tensor::concat(&expanded, a)
    }

    /// Selects entries `idx` along `axis`.
    ///
    /// # Errors
    /// [`Error::Index`] for an index out of range.
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Tensor> {
        let a = self.shape().axis("index_select", axis)?;
        let (o, d, i) = self.shape().split_at_axis(a);
        if let Some(&bad) = idx.iter().find(|&&k| k >= d) {
            return Err(Error::Index {
                op: "index_select",
                index: bad,
                len: d,
            });
        }
        let st = self.storage().index_select(o, d, i, idx)?;
        let idx: Arc<[usize]> = idx.into();
        Ok(Tensor::make(
            st,
            self.shape().with_dim(a, idx.len()),
            Some(Op::IndexSelect(self.clone(), a, idx)),
        ))
    }

    /// Adds the slices of `self` along `axis` into zeros of size `dim` at positions `idx`
    /// (repeated indices accumulate): the adjoint of [`Tensor::index_select`].
    ///
    /// # Errors
    /// [`Error::Index`]; [`Error::ShapeMismatch`] if `idx.len()` is not the axis size.
    pub fn index_add(&self, axis: isize, idx: &[usize], dim: usize) -> Result<Tensor> {
        let a = self.shape().axis("index_add", axis)?;
        let (o, n, i) = self.shape().split_at_axis(a);
        if n != idx.len() {
            return Err(Error::ShapeMismatch {
                op: "index_add",
                lhs: self.shape(),
                rhs: Shape::new(&[idx.len()])?,
            });
        }
        if let Some(&bad) = idx.iter().find(|&&k| k >= dim) {
            return Err(Error::Index {
                op: "index_add",
                index: bad,
                len: dim,
            });
        }
        let st = self.storage().index_add(o, dim, i, idx)?;
        let idx: Arc<[usize]> = idx.into();
        Ok(Tensor::make(
            st,
            self.shape().with_dim(a, dim),
            Some(Op::IndexAdd(self.clone(), a, idx)),
        ))
    }

    /// `out[r] = self[r, idx[r]]` for a `[rows, cols]` tensor (one entry per row).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless rank 2 with one index per row; [`Error::Index`].
    pub fn gather_rows(&self, idx: &[usize]) -> Result<Tensor> {
        if self.rank() != 2 || self.dims()[0] != idx.len() {
            return Err(Error::ShapeMismatch {
                op: "gather_rows",
                lhs: self.shape(),
                rhs: Shape::new(&[idx.len()])?,
            });
        }
        let cols = self.dims()[1];
        if let Some(&bad) = idx.iter().find(|&&k| k >= cols) {
            return Err(Error::Index {
                op: "gather_rows",
                index: bad,
                len: cols,
            });
        }
        let flat: Vec<usize> = idx.iter().enumerate().map(|(r, c)| r * cols + c).collect();
        self.reshape(&[self.numel()])?.index_select(0, &flat)
    }

    /// Converts the element type.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let st = self.storage().cast(dtype)?;
        Ok(Tensor::make(st, self.shape(), Some(Op::Cast(self.clone()))))
    }

    /// The same values on `device` (a copy unless already there); gradients flow back to the
    /// original device.
    ///
    /// # Errors
    /// Device errors ([`Error::NoGpu`], [`Error::Cuda`]).
    pub fn to_device(&self, device: crate::backend::Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let st = self.storage().to_device(device)?;
        Ok(Tensor::make(
            st,
            self.shape(),
            Some(Op::ToDevice(self.clone())),
        ))
    }

    // ---------------------------------------------------------------- losses

    /// Mean cross-entropy of `[batch, classes]` logits against integer labels.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::Index`] for inconsistent labels.
    pub fn cross_entropy(&self, labels: &[usize]) -> Result<Tensor> {
        self.log_softmax(-1)?.gather_rows(labels)?.mean_all()?.neg()
    }

    /// Mean Gaussian negative log-likelihood `½[ln(2π σ²) + (y − μ)²/σ²]` of targets `y` under
    /// means `self` and variances `var` (same shapes).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`].
    pub fn gaussian_nll(&self, var: &Tensor, target: &Tensor) -> Result<Tensor> {
        let sq = target.sub(self)?.square()?.div(var)?;
        var.log()?
            .add(&sq)?
            .add_scalar((2.0 * std::f64::consts::PI).ln())?
            .mean_all()?
            .mul_scalar(0.5)
    }

    /// Mean squared error against `target`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`].
    pub fn mse(&self, target: &Tensor) -> Result<Tensor> {
        self.sub(target)?.square()?.mean_all()
    }
}
