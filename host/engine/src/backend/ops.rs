//! The operations every backend implements, dispatched on [`Storage`]. Tensor code calls these
//! and never matches on a backend itself.

use super::cpu::{conv, gemm, kernels, norm, pool, CpuStorage, Float};
use super::cuda;
use super::{DType, Device, Storage};
use crate::cpu_map;
use crate::error::{Error, Result};
use crate::tensor::Shape;

pub use super::cpu::conv::{PatchGeom, PatchLayout};
pub use super::cpu::gemm::MatmulDims;
pub use super::cpu::kernels::{BinaryOp, UnaryOp};

macro_rules! cpu_zip {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident : $T:ident| $body:expr) => {
        match ($a, $b) {
            (CpuStorage::F32($x), CpuStorage::F32($y)) => {
                #[allow(dead_code)]
                type $T = f32;
                Ok(CpuStorage::F32($body))
            }
            (CpuStorage::F64($x), CpuStorage::F64($y)) => {
                #[allow(dead_code)]
                type $T = f64;
                Ok(CpuStorage::F64($body))
            }
            (x, y) => Err(Error::DTypeMismatch {
                op: $op,
                lhs: cpu_dtype(x),
                rhs: cpu_dtype(y),
            }),
        }
    };
}

fn cpu_dtype(s: &CpuStorage) -> DType {
    match s {
        CpuStorage::F32(_) => DType::F32,
        CpuStorage::F64(_) => DType::F64,
    }
}

fn device_mismatch(op: &'static str, a: &Storage, b: &Storage) -> Error {
    Error::DeviceMismatch {
        op,
        lhs: a.device(),
        rhs: b.device(),
    }
}

impl Storage {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
            Storage::Cuda(g) => g.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer of `n` copies of `v` on `device`.
    ///
    /// # Errors
    /// Device errors (out of memory, no such GPU).
    pub fn full(v: f64, n: usize, dtype: DType, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(match dtype {
                DType::F32 => {
                    let mut b = f32::take(n);
                    b.resize(n, v as f32);
                    CpuStorage::F32(b)
                }
                DType::F64 => {
                    let mut b = f64::take(n);
                    b.resize(n, v);
                    CpuStorage::F64(b)
                }
            })),
            Device::Cuda(ordinal) => Ok(Storage::Cuda(cuda::CudaStorage::full(
                ordinal, v, n, dtype,
            )?)),
        }
    }

    /// Copies a host buffer to `device`.
    ///
    /// # Errors
    /// Device errors.
    pub fn from_cpu(c: CpuStorage, device: Device) -> Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(c)),
            Device::Cuda(ordinal) => Ok(Storage::Cuda(cuda::CudaStorage::from_cpu(ordinal, &c)?)),
        }
    }

    /// A host copy of the buffer.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        match self {
            Storage::Cpu(c) => Ok(c.clone_pooled()),
            Storage::Cuda(g) => g.to_cpu(),
        }
    }

    /// The buffer on `device` (a copy unless it is already there).
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: Device) -> Result<Storage> {
        match (self, device) {
            (Storage::Cpu(c), Device::Cpu) => Ok(Storage::Cpu(c.clone_pooled())),
            (s, Device::Cpu) => Ok(Storage::Cpu(s.to_cpu()?)),
            (Storage::Cuda(g), Device::Cuda(o)) if g.ordinal() == o => {
                Ok(Storage::Cuda(g.try_clone()?))
            }
            (s, d) => Storage::from_cpu(s.to_cpu()?, d),
        }
    }

    /// `op(x)` elementwise.
    ///
    /// # Errors
    /// Device errors.
    pub fn unary(&self, op: UnaryOp) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::unary::<T>(op, v))),
            Storage::Cuda(g) => Storage::Cuda(g.unary(op)?),
        })
    }

    /// `a·x + b`.
    ///
    /// # Errors
    /// Device errors.
    pub fn affine(&self, a: f64, b: f64) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => {
                Storage::Cpu(cpu_map!(c, |v: T| kernels::affine::<T>(v, a as T, b as T)))
            }
            Storage::Cuda(g) => Storage::Cuda(g.affine(a, b)?),
        })
    }

    /// `xᶜ`.
    ///
    /// # Errors
    /// Device errors.
    pub fn powf(&self, c: f64) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(s) => Storage::Cpu(cpu_map!(s, |v: T| kernels::powf::<T>(v, c as T))),
            Storage::Cuda(g) => Storage::Cuda(g.powf(c)?),
        })
    }

    /// `op(a, b)` with broadcasting to `out`.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`], [`Error::DeviceMismatch`], device errors.
    pub fn binary(
        &self,
        op: BinaryOp,
        sa: &Shape,
        rhs: &Storage,
        sb: &Shape,
        out: &Shape,
        name: &'static str,
    ) -> Result<Storage> {
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => {
                Ok(Storage::Cpu(cpu_zip!(name, a, b, |x, y: T| {
                    kernels::binary::<T>(op, x, sa, y, sb, out)
                })?))
            }
            (Storage::Cuda(a), Storage::Cuda(b)) => {
                Ok(Storage::Cuda(a.binary(op, sa, b, sb, out, name)?))
            }
            _ => Err(device_mismatch(name, self, rhs)),
        }
    }

    /// `mask ? a : b` with broadcasting.
    ///
    /// # Errors
    /// As [`Storage::binary`].
    #[allow(clippy::too_many_arguments)]
    pub fn where_(
        mask: &Storage,
        sm: &Shape,
        a: &Storage,
        sa: &Shape,
        b: &Storage,
        sb: &Shape,
        out: &Shape,
    ) -> Result<Storage> {
        match (mask, a, b) {
            (Storage::Cpu(m), Storage::Cpu(x), Storage::Cpu(y)) => {
                Ok(Storage::Cpu(match (m, x, y) {
                    (CpuStorage::F32(m), CpuStorage::F32(x), CpuStorage::F32(y)) => {
                        CpuStorage::F32(kernels::where_(m, sm, x, sa, y, sb, out))
                    }
                    (CpuStorage::F64(m), CpuStorage::F64(x), CpuStorage::F64(y)) => {
                        CpuStorage::F64(kernels::where_(m, sm, x, sa, y, sb, out))
                    }
                    _ => {
                        return Err(Error::DTypeMismatch {
                            op: "where",
                            lhs: a.dtype(),
                            rhs: b.dtype(),
                        })
                    }
                }))
            }
            (Storage::Cuda(m), Storage::Cuda(x), Storage::Cuda(y)) => Ok(Storage::Cuda(
                cuda::CudaStorage::where_(m, sm, x, sa, y, sb, out)?,
            )),
            _ => Err(device_mismatch("where", a, b)),
        }
    }

    /// `batch` matrix products (see [`gemm::matmul`]).
    ///
    /// # Errors
    /// As [`Storage::binary`].
    pub fn matmul(
        &self,
        rhs: &Storage,
        a_stride: usize,
        b_stride: usize,
        batch: usize,
        d: MatmulDims,
    ) -> Result<Storage> {
        match (self, rhs) {
            (Storage::Cpu(a), Storage::Cpu(b)) => {
                Ok(Storage::Cpu(cpu_zip!("matmul", a, b, |x, y: T| {
                    gemm::matmul::<T>(x, a_stride, y, b_stride, batch, d)
                })?))
            }
            (Storage::Cuda(a), Storage::Cuda(b)) => {
                Ok(Storage::Cuda(a.matmul(b, a_stride, b_stride, batch, d)?))
            }
            _ => Err(device_mismatch("matmul", self, rhs)),
        }
    }

    /// Sum over the middle axis of `[outer, dim, inner]`.
    ///
    /// # Errors
    /// Device errors.
    pub fn sum_axis(&self, o: usize, d: usize, i: usize) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::sum_axis::<T>(v, o, d, i))),
            Storage::Cuda(g) => Storage::Cuda(g.reduce_axis("sum_axis", o, d, i)?),
        })
    }

    /// Maximum over the middle axis of `[outer, dim, inner]`.
    ///
    /// # Errors
    /// Device errors.
    pub fn max_axis(&self, o: usize, d: usize, i: usize) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::max_axis::<T>(v, o, d, i))),
            Storage::Cuda(g) => Storage::Cuda(g.reduce_axis("max_axis", o, d, i)?),
        })
    }

    /// Index of the maximum over the middle axis (computed on the host).
    ///
    /// # Errors
    /// Device errors.
    pub fn argmax_axis(&self, o: usize, d: usize, i: usize) -> Result<Vec<usize>> {
        let host;
        let c = match self {
            Storage::Cpu(c) => c,
            Storage::Cuda(g) => {
                host = g.to_cpu()?;
                &host
            }
        };
        Ok(match c {
            CpuStorage::F32(v) => kernels::argmax_axis(v, o, d, i),
            CpuStorage::F64(v) => kernels::argmax_axis(v, o, d, i),
        })
    }

    /// Broadcasts a buffer of shape `s` to `target`.
    ///
    /// # Errors
    /// Device errors.
    pub fn broadcast_to(&self, s: &Shape, target: &Shape) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => {
                Storage::Cpu(cpu_map!(c, |v: T| kernels::broadcast_to::<T>(v, s, target)))
            }
            Storage::Cuda(g) => {
                let strides = s.broadcast_strides(target);
                Storage::Cuda(g.strided_copy(target, 0, &strides)?)
            }
        })
    }

    /// Permutes axes; returns the buffer and its shape.
    ///
    /// # Errors
    /// Device errors.
    pub fn permute(&self, s: &Shape, perm: &[usize]) -> Result<(Storage, Shape)> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => {
                let (b, sh) = kernels::permute(v, s, perm);
                Ok((Storage::Cpu(CpuStorage::F32(b)), sh))
            }
            Storage::Cpu(CpuStorage::F64(v)) => {
                let (b, sh) = kernels::permute(v, s, perm);
                Ok((Storage::Cpu(CpuStorage::F64(b)), sh))
            }
            Storage::Cuda(g) => {
                let in_strides = s.strides();
                let mut dims = [1usize; crate::tensor::MAX_RANK];
                let mut strides = [0usize; crate::tensor::MAX_RANK];
                for (k, &p) in perm.iter().enumerate() {
                    dims[k] = s.dim(p);
                    strides[k] = in_strides[p];
                }
                let out = Shape::new(&dims[..perm.len()])?;
                Ok((Storage::Cuda(g.strided_copy(&out, 0, &strides)?), out))
            }
        }
    }

    /// `len` entries from `start` along the middle axis of `[outer, dim, inner]`.
    ///
    /// # Errors
    /// Device errors.
    pub fn narrow(
        &self,
        o: usize,
        d: usize,
        i: usize,
        start: usize,
        len: usize,
    ) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::narrow::<T>(
                v, o, d, i, start, len
            ))),
            Storage::Cuda(g) => {
                let out = Shape::new(&[o, len, i])?;
                Storage::Cuda(g.strided_copy(&out, start * i, &[d * i, i, 1, 0])?)
            }
        })
    }

    /// Places `[outer, len, inner]` at `start` inside zeros `[outer, full, inner]`.
    ///
    /// # Errors
    /// Device errors.
    pub fn pad(
        &self,
        o: usize,
        len: usize,
        i: usize,
        start: usize,
        full: usize,
    ) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::pad::<T>(
                v, o, len, i, start, full
            ))),
            Storage::Cuda(g) => {
                let mut out = cuda::CudaStorage::full(g.ordinal(), 0.0, o * full * i, g.dtype())?;
                out.copy_block_from(g, o, len, i, full, start)?;
                Storage::Cuda(out)
            }
        })
    }

    /// Concatenates `[outer, dᵢ, inner]` pieces along the middle axis.
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`]; device errors.
    pub fn concat(parts: &[(&Storage, usize)], o: usize, i: usize) -> Result<Storage> {
        let Some((first, _)) = parts.first() else {
            return Err(Error::Empty { op: "concat" });
        };
        match first {
            Storage::Cpu(c) => {
                let out = match c {
                    CpuStorage::F32(_) => {
                        let pieces = parts
                            .iter()
                            .map(|(s, d)| match s {
                                Storage::Cpu(CpuStorage::F32(v)) => Ok((v.as_slice(), *d)),
                                other => Err(device_mismatch("concat", first, other)),
                            })
                            .collect::<Result<Vec<_>>>()?;
                        CpuStorage::F32(kernels::concat(&pieces, o, i))
                    }
                    CpuStorage::F64(_) => {
                        let pieces = parts
                            .iter()
                            .map(|(s, d)| match s {
                                Storage::Cpu(CpuStorage::F64(v)) => Ok((v.as_slice(), *d)),
                                other => Err(device_mismatch("concat", first, other)),
                            })
                            .collect::<Result<Vec<_>>>()?;
                        CpuStorage::F64(kernels::concat(&pieces, o, i))
                    }
                };
                Ok(Storage::Cpu(out))
            }
            Storage::Cuda(g) => {
                let total: usize = parts.iter().map(|p| p.1).sum();
                let mut out = cuda::CudaStorage::full(g.ordinal(), 0.0, o * total * i, g.dtype())?;
                let mut offset = 0;
                for (s, d) in parts {
                    match s {
                        Storage::Cuda(p) => out.copy_block_from(p, o, *d, i, total, offset)?,
                        other => return Err(device_mismatch("concat", first, other)),
                    }
                    offset += d;
                }
                Ok(Storage::Cuda(out))
            }
        }
    }

    /// Gathers `idx` along the middle axis.
    ///
    /// # Errors
    /// Device errors.
    pub fn index_select(&self, o: usize, d: usize, i: usize, idx: &[usize]) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::index_select::<T>(
                v, o, d, i, idx
            ))),
            Storage::Cuda(g) => Storage::Cuda(g.index_op("index_select", o, d, i, idx)?),
        })
    }

    /// Scatter-adds into zeros `[outer, dim, inner]` at `idx`.
    ///
    /// # Errors
    /// Device errors.
    pub fn index_add(&self, o: usize, dim: usize, i: usize, idx: &[usize]) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| kernels::index_add::<T>(
                v, o, dim, i, idx
            ))),
            Storage::Cuda(g) => Storage::Cuda(g.index_op("index_add", o, dim, i, idx)?),
        })
    }

    /// The patch matrix of an `[n, c, h, w]` image (see [`PatchGeom`]); padding reads `fill`.
    ///
    /// # Errors
    /// Device errors.
    pub fn im2col(&self, g: &PatchGeom, fill: f64) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| conv::im2col::<T>(v, g, fill as T))),
            Storage::Cuda(s) => Storage::Cuda(s.im2col(g, fill)?),
        })
    }

    /// The convolution of this `[n, c, h, w]` image with `weight` `[o, c/groups, kh, kw]` plus
    /// `bias` `[o]`, as `[n, o, oh, ow]` (CPU only: the CUDA convolutions are `im2col` and a
    /// product).
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] for an operand off the CPU, [`Error::DTypeMismatch`] for mixed
    /// element types.
    pub fn conv2d(
        &self,
        weight: &Storage,
        bias: Option<&Storage>,
        g: &PatchGeom,
        o: usize,
    ) -> Result<Storage> {
        use CpuStorage::{F32, F64};
        let (Storage::Cpu(x), Storage::Cpu(w)) = (self, weight) else {
            return Err(device_mismatch("conv2d", self, weight));
        };
        let b = match bias {
            None => None,
            Some(Storage::Cpu(b)) => Some(b),
            Some(other) => return Err(device_mismatch("conv2d", self, other)),
        };
        let mismatch = |a: &CpuStorage, b: &CpuStorage| Error::DTypeMismatch {
            op: "conv2d",
            lhs: cpu_dtype(a),
            rhs: cpu_dtype(b),
        };
        Ok(Storage::Cpu(match (x, w, b) {
            (F32(x), F32(w), None) => F32(conv::conv2d(x, w, None, g, o)),
            (F32(x), F32(w), Some(F32(b))) => F32(conv::conv2d(x, w, Some(b), g, o)),
            (F64(x), F64(w), None) => F64(conv::conv2d(x, w, None, g, o)),
            (F64(x), F64(w), Some(F64(b))) => F64(conv::conv2d(x, w, Some(b), g, o)),
            (x, w, _) if cpu_dtype(x) != cpu_dtype(w) => return Err(mismatch(x, w)),
            (x, _, b) => return Err(mismatch(x, b.unwrap_or(x))),
        }))
    }

    /// The weight gradient `[o, c/groups, kh, kw]` of [`Storage::conv2d`] of this image, from
    /// the output gradient `gy` `[n, o, oh, ow]` (CPU only).
    ///
    /// # Errors
    /// As [`Storage::conv2d`].
    pub fn conv2d_weight_grad(&self, gy: &Storage, g: &PatchGeom, o: usize) -> Result<Storage> {
        let (Storage::Cpu(x), Storage::Cpu(gy_c)) = (self, gy) else {
            return Err(device_mismatch("conv2d_weight_grad", self, gy));
        };
        let op = "conv2d_weight_grad";
        Ok(Storage::Cpu(cpu_zip!(op, x, gy_c, |a, b: T| {
            conv::conv2d_weight_grad::<T>(a, b, g, o)
        })?))
    }

    /// Max pooling of this CPU `[n, c, h, w]` image over the windows of `g` (`cpu::pool`).
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] off the CPU.
    pub fn max_pool2d(&self, g: &PatchGeom) -> Result<Storage> {
        match self {
            Storage::Cpu(c) => Ok(Storage::Cpu(cpu_map!(c, |v: T| pool::max_pool2d::<T>(
                v, g
            )))),
            other => Err(device_mismatch("max_pool2d", other, other)),
        }
    }

    /// The input gradient of [`Storage::max_pool2d`] (this is its input) from its output `y`
    /// and the output gradient `gy`.
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] off the CPU; [`Error::DTypeMismatch`] for mixed dtypes.
    pub fn max_pool2d_backward(&self, y: &Storage, gy: &Storage, g: &PatchGeom) -> Result<Storage> {
        use CpuStorage::{F32, F64};
        let op = "max_pool2d backward";
        let (Storage::Cpu(x), Storage::Cpu(yc), Storage::Cpu(gc)) = (self, y, gy) else {
            return Err(device_mismatch(op, self, gy));
        };
        Ok(Storage::Cpu(match (x, yc, gc) {
            (F32(x), F32(y), F32(gy)) => F32(pool::max_pool2d_backward(x, y, gy, g)),
            (F64(x), F64(y), F64(gy)) => F64(pool::max_pool2d_backward(x, y, gy, g)),
            (x, _, gy) => {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: cpu_dtype(x),
                    rhs: cpu_dtype(gy),
                })
            }
        }))
    }

    /// Batch normalisation in training mode of this CPU `[n, c, plane]` buffer (the fused kernel
    /// of `cpu::norm`): `(y, batch mean, biased batch variance)`.
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] off the CPU; [`Error::DTypeMismatch`] for mixed dtypes.
    pub fn batch_norm_train(
        &self,
        gamma: &Storage,
        beta: &Storage,
        dims: [usize; 3],
        eps: f64,
    ) -> Result<(Storage, Storage, Storage)> {
        use CpuStorage::{F32, F64};
        let op = "batch_norm";
        let (Storage::Cpu(x), Storage::Cpu(g), Storage::Cpu(b)) = (self, gamma, beta) else {
            return Err(device_mismatch(op, self, gamma));
        };
        let wrap = |(y, m, s): (CpuStorage, CpuStorage, CpuStorage)| {
            (Storage::Cpu(y), Storage::Cpu(m), Storage::Cpu(s))
        };
        Ok(wrap(match (x, g, b) {
            (F32(x), F32(g), F32(b)) => {
                let (y, m, s) = norm::batch_norm_train(x, g, b, dims, eps as f32);
                (F32(y), F32(m), F32(s))
            }
            (F64(x), F64(g), F64(b)) => {
                let (y, m, s) = norm::batch_norm_train(x, g, b, dims, eps);
                (F64(y), F64(m), F64(s))
            }
            (x, g, _) => {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: cpu_dtype(x),
                    rhs: cpu_dtype(g),
                })
            }
        }))
    }

    /// The backward pass of [`Storage::batch_norm_train`] (this is the CPU input `x`) from the
    /// output gradient `gy`: `(dx, dγ, dβ)`.
    ///
    /// # Errors
    /// [`Error::DeviceMismatch`] off the CPU; [`Error::DTypeMismatch`] for mixed dtypes.
    pub fn batch_norm_backward(
        &self,
        gy: &Storage,
        [gamma, mean, var]: [&Storage; 3],
        dims: [usize; 3],
        eps: f64,
    ) -> Result<(Storage, Storage, Storage)> {
        use CpuStorage::{F32, F64};
        let op = "batch_norm backward";
        let (Storage::Cpu(x), Storage::Cpu(gy), Storage::Cpu(g), Storage::Cpu(m), Storage::Cpu(s)) =
            (self, gy, gamma, mean, var)
        else {
            return Err(device_mismatch(op, self, gy));
        };
        let wrap = |(a, b, c): (CpuStorage, CpuStorage, CpuStorage)| {
            (Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c))
        };
        Ok(wrap(match (x, gy, g, m, s) {
            (F32(x), F32(gy), F32(g), F32(m), F32(s)) => {
                let (dx, dg, db) = norm::batch_norm_backward(x, gy, g, m, s, dims, eps as f32);
                (F32(dx), F32(dg), F32(db))
            }
            (F64(x), F64(gy), F64(g), F64(m), F64(s)) => {
                let (dx, dg, db) = norm::batch_norm_backward(x, gy, g, m, s, dims, eps);
                (F64(dx), F64(dg), F64(db))
            }
            (x, gy, ..) => {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: cpu_dtype(x),
                    rhs: cpu_dtype(gy),
                })
            }
        }))
    }

    /// The adjoint of [`Storage::im2col`]: patch entries summed back into an `[n, c, h, w]` image.
    ///
    /// # Errors
    /// Device errors.
    pub fn col2im(&self, g: &PatchGeom) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(cpu_map!(c, |v: T| conv::col2im::<T>(v, g))),
            Storage::Cuda(s) => Storage::Cuda(s.col2im(g)?),
        })
    }

    /// Converts the element type.
    ///
    /// # Errors
    /// Device errors.
    pub fn cast(&self, dtype: DType) -> Result<Storage> {
        Ok(match self {
            Storage::Cpu(c) => Storage::Cpu(match (c, dtype) {
                (CpuStorage::F32(v), DType::F64) => CpuStorage::F64(kernels::cast(v)),
                (CpuStorage::F64(v), DType::F32) => CpuStorage::F32(kernels::cast(v)),
                (c, _) => c.clone_pooled(),
            }),
            Storage::Cuda(g) => Storage::Cuda(g.cast(dtype)?),
        })
    }
}
