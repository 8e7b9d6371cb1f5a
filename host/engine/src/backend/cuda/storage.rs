//! Device buffers and the launches of Keel's kernels on them.

use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{
    CudaFunction, CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

use super::device::{device, GpuDevice};
use crate::backend::cpu::{CpuStorage, Float};
use crate::backend::launch::launch_dims;
use crate::backend::ops::{BinaryOp, MatmulDims, PatchGeom, PatchLayout, UnaryOp};
use crate::backend::{AdamHyper, DType, SgdHyper};
use crate::error::{Error, Result};
use crate::tensor::{Shape, MAX_RANK};

/// A device buffer of one element type.
enum GpuData {
    F32(CudaSlice<f32>),
    F64(CudaSlice<f64>),
}

/// GPU memory holding one tensor's elements, with the device it lives on.
pub struct CudaStorage {
    data: GpuData,
    dev: Arc<GpuDevice>,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage(cuda:{}, {}, {} elements)",
            self.dev.ordinal,
            self.dtype(),
            self.len()
        )
    }
}

fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Log1p => "log1p",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Softplus => "softplus",
        UnaryOp::Relu => "relu",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Square => "square",
        UnaryOp::Abs => "abs",
        UnaryOp::Step => "step",
        UnaryOp::Sign => "sign",
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Max => "max",
        BinaryOp::Gt => "gt",
        BinaryOp::Eq => "eq",
        BinaryOp::AddRelu => "addrelu",
        BinaryOp::MulStep => "mulstep",
    }
}

fn cfg(n: usize) -> LaunchConfig {
    let (grid, block) = launch_dims(n);
    LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn err(op: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    let op = op.into();
    move |e| Error::Cuda {
        op,
        detail: e.to_string(),
    }
}

/// `f` (an allocation), tried once more after the memory pool handed what it keeps back to the
/// driver if the device was full.
fn retried<R>(
    dev: &GpuDevice,
    f: impl Fn() -> std::result::Result<R, cudarc::driver::DriverError>,
) -> std::result::Result<R, cudarc::driver::DriverError> {
    match f() {
        Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
            dev.release_pool();
            f()
        }
        r => r,
    }
}

/// The error of an allocation or copy of `bytes` on `dev` (`op` says what it was for): out of
/// memory says how much was asked and how much the device has free, with what to change;
/// anything else is [`Error::Cuda`].
fn mem_err(
    dev: &GpuDevice,
    bytes: usize,
    op: impl Into<String>,
) -> impl FnOnce(cudarc::driver::DriverError) -> Error + '_ {
    let op = op.into();
    move |e| {
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            let (free, total) = dev.mem_info().unwrap_or((0, 0));
            Error::DeviceOutOfMemory {
                ordinal: dev.ordinal,
                what: op,
                asked: bytes as u128,
                free: free as u128,
                total: total as u128,
            }
        } else {
            err(op)(e)
        }
    }
}

/// Element types with kernels.
trait Elem: Float + DeviceRepr + ValidAsZeroBits {}
impl Elem for f32 {}
impl Elem for f64 {}

/// Runs `$body` with `$x` bound to the typed slice of `$s` and `$T` to its type, wrapping a
/// resulting slice back into `GpuData`.
macro_rules! with_data {
    ($s:expr, |$x:ident : $T:ident| $body:expr) => {
        match $s {
            GpuData::F32($x) => {
                #[allow(dead_code)]
                type $T = f32;
                GpuData::F32($body)
            }
            GpuData::F64($x) => {
                #[allow(dead_code)]
                type $T = f64;
                GpuData::F64($body)
            }
        }
    };
}

impl CudaStorage {
    fn wrap(&self, data: GpuData) -> CudaStorage {
        CudaStorage {
            data,
            dev: self.dev.clone(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            GpuData::F32(s) => s.len(),
            GpuData::F64(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            GpuData::F32(_) => DType::F32,
            GpuData::F64(_) => DType::F64,
        }
    }

    /// The GPU's ordinal.
    pub fn ordinal(&self) -> usize {
        self.dev.ordinal
    }

    fn kernel(&self, family: &'static str, op: &str) -> Result<cudarc::driver::CudaFunction> {
        self.dev
            .function(family, &format!("{op}_{}", self.dtype().name()))
    }

    /// `n` copies of `v` on GPU `ordinal`.
    ///
    /// # Errors
    /// [`Error::NoGpu`]; [`Error::Cuda`] (e.g. out of memory, with the size).
    pub fn full(ordinal: usize, v: f64, n: usize, dtype: DType) -> Result<CudaStorage> {
        let dev = device(ordinal)?;
        let what = || format!("allocating {n} {dtype} on cuda:{ordinal}");
        let data = match dtype {
            DType::F32 => GpuData::F32(
                retried(&dev, || dev.stream.alloc_zeros::<f32>(n)).map_err(mem_err(
                    &dev,
                    n * 4,
                    what(),
                ))?,
            ),
            DType::F64 => GpuData::F64(
                retried(&dev, || dev.stream.alloc_zeros::<f64>(n)).map_err(mem_err(
                    &dev,
                    n * 8,
                    what(),
                ))?,
            ),
        };
        let mut s = CudaStorage { data, dev };
        if v != 0.0 && n > 0 {
            let f = s.kernel("layout", "fill")?;
            let n64 = n as u64;
            match &mut s.data {
                GpuData::F32(y) => {
                    let vv = v as f32;
                    let mut b = s.dev.stream.launch_builder(&f);
                    b.arg(y).arg(&n64).arg(&vv);
                    // SAFETY: fill_f32(float* y, unsigned long long n, float v); y holds n floats.
                    unsafe { b.launch(cfg(n)) }.map_err(err(format!("fill_f32 of {n}")))?;
                }
                GpuData::F64(y) => {
                    let mut b = s.dev.stream.launch_builder(&f);
                    b.arg(y).arg(&n64).arg(&v);
                    // SAFETY: fill_f64(double* y, unsigned long long n, double v); y holds n doubles.
                    unsafe { b.launch(cfg(n)) }.map_err(err(format!("fill_f64 of {n}")))?;
                }
            }
        }
        Ok(s)
    }

    /// Copies a host buffer to GPU `ordinal`.
    ///
    /// # Errors
    /// As [`CudaStorage::full`].
    pub fn from_cpu(ordinal: usize, c: &CpuStorage) -> Result<CudaStorage> {
        let dev = device(ordinal)?;
        let what = || format!("copying {} elements to cuda:{ordinal}", c.len());
        let data = match c {
            CpuStorage::F32(v) => GpuData::F32(
                retried(&dev, || dev.stream.clone_htod(v.as_slice())).map_err(mem_err(
                    &dev,
                    v.len() * 4,
                    what(),
                ))?,
            ),
            CpuStorage::F64(v) => GpuData::F64(
                retried(&dev, || dev.stream.clone_htod(v.as_slice())).map_err(mem_err(
                    &dev,
                    v.len() * 8,
                    what(),
                ))?,
            ),
        };
        Ok(CudaStorage { data, dev })
    }

    /// Standard normal draws from cuRAND (Philox-free default generator) seeded with `seed`.
    /// The stream of numbers differs from the CPU backend's generator for the same seed.
    ///
    /// # Errors
    /// As [`CudaStorage::full`].
    pub fn randn(ordinal: usize, n: usize, dtype: DType, seed: u64) -> Result<CudaStorage> {
        let dev = device(ordinal)?;
        let rng =
            cudarc::curand::CudaRng::new(seed, dev.stream.clone()).map_err(|e| Error::Cuda {
                op: "cuRAND generator".into(),
                detail: e.to_string(),
            })?;
        // cuRAND's normal generators produce pairs: draw an even count, keep the first n.
        let even = n + (n & 1);
        let what = || format!("cuRAND normal fill of {n}");
        let mut s = CudaStorage::full(ordinal, 0.0, even, dtype)?;
        match &mut s.data {
            GpuData::F32(y) => {
                rng.fill_with_normal(y, 0.0f32, 1.0f32)
                    .map_err(|e| Error::Cuda {
                        op: what(),
                        detail: e.to_string(),
                    })?
            }
            GpuData::F64(y) => {
                rng.fill_with_normal(y, 0.0f64, 1.0f64)
                    .map_err(|e| Error::Cuda {
                        op: what(),
                        detail: e.to_string(),
                    })?
            }
        }
        if even == n {
            return Ok(s);
        }
        let mut out = CudaStorage::full(ordinal, 0.0, n, dtype)?;
        out.copy_block_from(&s, 1, n, 1, n, 0)?; // copies the first n of the n + 1
        Ok(out)
    }

    /// A host copy.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn to_cpu(&self) -> Result<CpuStorage> {
        let what = || {
            format!(
                "copying {} elements from cuda:{}",
                self.len(),
                self.dev.ordinal
            )
        };
        Ok(match &self.data {
            GpuData::F32(s) => CpuStorage::F32(self.dev.stream.clone_dtoh(s).map_err(err(what()))?),
            GpuData::F64(s) => CpuStorage::F64(self.dev.stream.clone_dtoh(s).map_err(err(what()))?),
        })
    }

    /// A device-side copy.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn try_clone(&self) -> Result<CudaStorage> {
        let what = || {
            format!(
                "copying {} elements on cuda:{}",
                self.len(),
                self.dev.ordinal
            )
        };
        let bytes = self.len() * self.dtype().size();
        Ok(self.wrap(match &self.data {
            GpuData::F32(s) => GpuData::F32(
                retried(&self.dev, || s.try_clone()).map_err(mem_err(&self.dev, bytes, what()))?,
            ),
            GpuData::F64(s) => GpuData::F64(
                retried(&self.dev, || s.try_clone()).map_err(mem_err(&self.dev, bytes, what()))?,
            ),
        }))
    }

    /// The element-wise sum over `comm`'s ranks (NCCL's all-reduce on the engine's stream), into
    /// a new buffer that the all-reduce writes in full.
    pub(super) fn all_reduce_sum(&self, comm: &cudarc::nccl::Comm) -> Result<CudaStorage> {
        let n = self.len();
        let fail = |e: cudarc::nccl::result::NcclError| Error::Cuda {
            op: format!("ncclAllReduce of {n} elements on cuda:{}", self.dev.ordinal),
            detail: format!("{e:?}"),
        };
        let sum = cudarc::nccl::ReduceOp::Sum;
        let data = match &self.data {
            GpuData::F32(x) => {
                let mut out = self.alloc_output::<f32>(n, "ncclAllReduce")?;
                comm.all_reduce(x, &mut out, &sum).map_err(fail)?;
                GpuData::F32(out)
            }
            GpuData::F64(x) => {
                let mut out = self.alloc_output::<f64>(n, "ncclAllReduce")?;
                comm.all_reduce(x, &mut out, &sum).map_err(fail)?;
                GpuData::F64(out)
            }
        };
        Ok(self.wrap(data))
    }

    fn alloc<T: Elem>(&self, n: usize, op: &str) -> Result<CudaSlice<T>> {
        retried(&self.dev, || self.dev.stream.alloc_zeros::<T>(n)).map_err(mem_err(
            &self.dev,
            n * std::mem::size_of::<T>(),
            format!("{op}: allocating {n} elements on cuda:{}", self.dev.ordinal),
        ))
    }

    /// `n` elements left as the allocator hands them over, for an output that the launch after
    /// it writes in full: every kernel it is used for is a grid-stride loop that stores each of
    /// its `n` outputs (the emulation tests, `host/engine/tests/cuda_emu.rs`, fill outputs with a
    /// sentinel before each launch and find none left), so a zero fill would only double the
    /// writes of a memory-bound op.
    fn alloc_output<T: Elem>(&self, n: usize, op: &str) -> Result<CudaSlice<T>> {
        // SAFETY: the buffer's contents are undefined until written, and the caller launches a
        // kernel that writes all `n` elements before anything reads them (see above).
        retried(&self.dev, || unsafe { self.dev.stream.alloc::<T>(n) }).map_err(mem_err(
            &self.dev,
            n * std::mem::size_of::<T>(),
            format!("{op}: allocating {n} elements on cuda:{}", self.dev.ordinal),
        ))
    }

    fn upload_u64(&self, v: &[u64], op: &str) -> Result<CudaSlice<u64>> {
        self.dev
            .stream
            .clone_htod(v)
            .map_err(err(format!("{op}: uploading launch info")))
    }

    /// A kernel `family/op_dtype(const T* x, T* y, u64 n, extra…)` over every element.
    fn map_kernel<T: Elem>(
        &self,
        x: &CudaSlice<T>,
        family: &'static str,
        op: &str,
        extra: &[T],
    ) -> Result<CudaSlice<T>> {
        let n = x.len();
        let f = self.kernel(family, op)?;
        let mut y = self.alloc_output::<T>(n, op)?;
        let n64 = n as u64;
        let mut b = self.dev.stream.launch_builder(&f);
        b.arg(x).arg(&mut y).arg(&n64);
        for e in extra {
            b.arg(e);
        }
        // SAFETY: `{op}_{dtype}(const T* x, T* y, unsigned long long n, T extra…)` in
        // cuda/{family}.cu; x and y hold n elements; `extra` are the kernel's scalar parameters.
        unsafe { b.launch(cfg(n)) }.map_err(err(format!("{op} on {n} elements")))?;
        Ok(y)
    }

    /// `op(x)`.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn unary(&self, op: UnaryOp) -> Result<CudaStorage> {
        let name = format!("unary_{}", unary_name(op));
        Ok(
            self.wrap(with_data!(&self.data, |x: T| self.map_kernel::<T>(
                x,
                "unary",
                &name,
                &[]
            )?)),
        )
    }

    /// `a·x + b`.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn affine(&self, a: f64, b: f64) -> Result<CudaStorage> {
        Ok(
            self.wrap(with_data!(&self.data, |x: T| self.map_kernel::<T>(
                x,
                "unary",
                "affine",
                &[T::from_f64(a), T::from_f64(b)]
            )?)),
        )
    }

    /// `xᶜ`.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn powf(&self, c: f64) -> Result<CudaStorage> {
        Ok(
            self.wrap(with_data!(&self.data, |x: T| self.map_kernel::<T>(
                x,
                "unary",
                "powf",
                &[T::from_f64(c)]
            )?)),
        )
    }

    /// `op(a, b)` with broadcasting.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn binary(
        &self,
        op: BinaryOp,
        sa: &Shape,
        rhs: &CudaStorage,
        sb: &Shape,
        out: &Shape,
        name: &'static str,
    ) -> Result<CudaStorage> {
        let n = out.numel();
        let mut info = vec![out.rank() as u64];
        info.extend((0..MAX_RANK).map(|k| out.dims().get(k).copied().unwrap_or(1) as u64));
        info.extend(sa.broadcast_strides(out).iter().map(|&s| s as u64));
        info.extend(sb.broadcast_strides(out).iter().map(|&s| s as u64));
        let info = self.upload_u64(&info, name)?;
        let f = self.kernel("binary", &format!("binary_{}", binary_name(op)))?;
        let n64 = n as u64;
        let data = match (&self.data, &rhs.data) {
            (GpuData::F32(a), GpuData::F32(b)) => {
                let mut y = self.alloc_output::<f32>(n, name)?;
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(a).arg(b).arg(&mut y).arg(&n64).arg(&info);
                // SAFETY: binary_{op}_f32(const float* a, const float* b, float* y,
                // unsigned long long n, const unsigned long long* info[13]); strides in `info`
                // stay inside a and b because both broadcast to `out` (checked by the caller).
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("{name} {sa} with {sb}")))?;
                GpuData::F32(y)
            }
            (GpuData::F64(a), GpuData::F64(b)) => {
                let mut y = self.alloc_output::<f64>(n, name)?;
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(a).arg(b).arg(&mut y).arg(&n64).arg(&info);
                // SAFETY: binary_{op}_f64, as for f32 with doubles.
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("{name} {sa} with {sb}")))?;
                GpuData::F64(y)
            }
            _ => {
                return Err(Error::DTypeMismatch {
                    op: name,
                    lhs: self.dtype(),
                    rhs: rhs.dtype(),
                })
            }
        };
        Ok(self.wrap(data))
    }

    /// `mask ? a : b` with broadcasting.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn where_(
        m: &CudaStorage,
        sm: &Shape,
        a: &CudaStorage,
        sa: &Shape,
        b: &CudaStorage,
        sb: &Shape,
        out: &Shape,
    ) -> Result<CudaStorage> {
        let n = out.numel();
        let mut info = vec![out.rank() as u64];
        info.extend((0..MAX_RANK).map(|k| out.dims().get(k).copied().unwrap_or(1) as u64));
        for s in [sm, sa, sb] {
            info.extend(s.broadcast_strides(out).iter().map(|&v| v as u64));
        }
        let info = a.upload_u64(&info, "where")?;
        let f = a.kernel("binary", "where")?;
        let n64 = n as u64;
        let data = match (&m.data, &a.data, &b.data) {
            (GpuData::F32(mm), GpuData::F32(x), GpuData::F32(y)) => {
                let mut o = a.alloc_output::<f32>(n, "where")?;
                let mut l = a.dev.stream.launch_builder(&f);
                l.arg(mm).arg(x).arg(y).arg(&mut o).arg(&n64).arg(&info);
                // SAFETY: where_f32(const float* m, const float* a, const float* b, float* y,
                // unsigned long long n, const unsigned long long* info[17]).
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("where {sm}, {sa}, {sb}")))?;
                GpuData::F32(o)
            }
            (GpuData::F64(mm), GpuData::F64(x), GpuData::F64(y)) => {
                let mut o = a.alloc_output::<f64>(n, "where")?;
                let mut l = a.dev.stream.launch_builder(&f);
                l.arg(mm).arg(x).arg(y).arg(&mut o).arg(&n64).arg(&info);
                // SAFETY: where_f64, as for f32 with doubles.
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("where {sm}, {sa}, {sb}")))?;
                GpuData::F64(o)
            }
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "where",
                    lhs: a.dtype(),
                    rhs: b.dtype(),
                })
            }
        };
        Ok(a.wrap(data))
    }

    /// `batch` products `op(A)·op(B)` (row-major) through cuBLAS strided-batched GEMM: computed
    /// as the column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so no operand is copied or transposed.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn matmul(
        &self,
        rhs: &CudaStorage,
        a_stride: usize,
        b_stride: usize,
        batch: usize,
        d: MatmulDims,
    ) -> Result<CudaStorage> {
        let MatmulDims { m, n, k, ta, tb } = d;
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let what = format!("cuBLAS gemm {batch}×({m}×{k})·({k}×{n})");
        macro_rules! gemm {
            ($a:expr, $b:expr, $T:ty) => {{
                // cuBLAS with β = 0 writes all of C without reading it; with k = 0 the product
                // is the zero matrix, which the zero fill provides.
                let mut c = if k > 0 {
                    self.alloc_output::<$T>(batch * m * n, "matmul")?
                } else {
                    self.alloc::<$T>(batch * m * n, "matmul")?
                };
                if batch > 0 && m > 0 && n > 0 {
                    let cfg = StridedBatchedConfig {
                        gemm: GemmConfig {
                            transa: op(tb),
                            transb: op(ta),
                            m: n as i32,
                            n: m as i32,
                            k: k as i32,
                            alpha: 1.0 as $T,
                            lda: (if tb { k } else { n }).max(1) as i32,
                            ldb: (if ta { m } else { k }).max(1) as i32,
                            beta: 0.0 as $T,
                            ldc: n.max(1) as i32,
                        },
                        batch_size: batch as i32,
                        stride_a: b_stride as i64,
                        stride_b: a_stride as i64,
                        stride_c: (m * n) as i64,
                    };
                    // SAFETY: cublas{S,D}gemmStridedBatched with the leading dimensions and
                    // strides above: B holds (batch−1)·b_stride + k·n elements and A
                    // (batch−1)·a_stride + m·k (checked by the tensor layer), C batch·m·n.
                    unsafe { self.dev.blas.gemm_strided_batched(cfg, $b, $a, &mut c) }.map_err(
                        |e| Error::Cuda {
                            op: what.clone(),
                            detail: e.to_string(),
                        },
                    )?;
                }
                c
            }};
        }
        let data = match (&self.data, &rhs.data) {
            (GpuData::F32(a), GpuData::F32(b)) => GpuData::F32(gemm!(a, b, f32)),
            (GpuData::F64(a), GpuData::F64(b)) => GpuData::F64(gemm!(a, b, f64)),
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "matmul",
                    lhs: self.dtype(),
                    rhs: rhs.dtype(),
                })
            }
        };
        Ok(self.wrap(data))
    }

    /// `sum_axis` or `max_axis` over the middle axis of `[outer, dim, inner]`: long contiguous
    /// rows (`inner = 1`) by a block per row segment ([`launch::row_chunk`]), the others by a
    /// thread per output, in two launches where the outputs are too few to fill the GPU
    /// ([`launch::column_parts`]). Sums come out in another order than the CPU's in those two
    /// cases (the maxima are exact).
    ///
    /// [`launch::row_chunk`]: crate::backend::launch::row_chunk
    /// [`launch::column_parts`]: crate::backend::launch::column_parts
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn reduce_axis(
        &self,
        name: &'static str,
        o: usize,
        d: usize,
        i: usize,
    ) -> Result<CudaStorage> {
        if i == 1 {
            if let Some(chunk) = crate::backend::launch::row_chunk(o, d) {
                let rows = if name == "max_axis" {
                    "max_rows"
                } else {
                    "sum_rows"
                };
                return self.reduce_rows(rows, o, d, chunk);
            }
        }
        let p = crate::backend::launch::column_parts(o, d, i);
        if p > 1 {
            return self
                .reduce_columns(name, o * p, d / p, i)?
                .reduce_columns(name, o, p, i);
        }
        self.reduce_columns(name, o, d, i)
    }

    /// `sum_axis` or `max_axis` with a thread per output of `[outer, dim, inner]` (one launch).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    fn reduce_columns(
        &self,
        name: &'static str,
        o: usize,
        d: usize,
        i: usize,
    ) -> Result<CudaStorage> {
        let f = self.kernel("reduce", name)?;
        let n_out = o * i;
        let (o64, d64, i64_) = (o as u64, d as u64, i as u64);
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            let mut y = self.alloc_output::<T>(n_out, name)?;
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(x).arg(&mut y).arg(&o64).arg(&d64).arg(&i64_);
            // SAFETY: {sum,max}_axis_{dtype}(const T* x, T* y, unsigned long long outer,
            // unsigned long long dim, unsigned long long inner); x holds outer·dim·inner
            // elements, y outer·inner.
            unsafe { l.launch(cfg(n_out)) }.map_err(err(format!("{name} over [{o}, {d}, {i}]")))?;
            y
        })))
    }

    /// `sum_rows` or `max_rows` over the contiguous rows of `[rows, dim]`: one block per
    /// segment of `chunk` elements, then (rows cut into several segments) once more over the
    /// `[rows, parts]` partial results, one block per row (see `launch::row_chunk`).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    fn reduce_rows(
        &self,
        name: &'static str,
        rows: usize,
        dim: usize,
        chunk: usize,
    ) -> Result<CudaStorage> {
        let f = self.kernel("reduce", name)?;
        let parts = dim.div_ceil(chunk);
        let what =
            |dim: usize, chunk: usize| format!("{name} over [{rows}, {dim}] in chunks of {chunk}");
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            let mut y = self.alloc_output::<T>(rows * parts, name)?;
            self.launch_rows(&f, x, &mut y, [rows, dim, chunk])
                .map_err(err(what(dim, chunk)))?;
            if parts > 1 {
                let mut z = self.alloc_output::<T>(rows, name)?;
                self.launch_rows(&f, &y, &mut z, [rows, parts, parts])
                    .map_err(err(what(parts, parts)))?;
                z
            } else {
                y
            }
        })))
    }

    /// One `{sum,max}_rows` launch of `f` (see [`CudaStorage::reduce_rows`]).
    fn launch_rows<T: DeviceRepr>(
        &self,
        f: &CudaFunction,
        x: &CudaSlice<T>,
        y: &mut CudaSlice<T>,
        [rows, dim, chunk]: [usize; 3],
    ) -> std::result::Result<(), cudarc::driver::DriverError> {
        let (grid, block) = crate::backend::launch::row_dims(rows * dim.div_ceil(chunk));
        let config = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        let (r64, d64, c64) = (rows as u64, dim as u64, chunk as u64);
        let mut l = self.dev.stream.launch_builder(f);
        l.arg(x).arg(y).arg(&r64).arg(&d64).arg(&c64);
        // SAFETY: {sum,max}_rows_{dtype}(const T* x, T* y, unsigned long long rows,
        // unsigned long long dim, unsigned long long chunk); x holds rows·dim elements, y
        // rows·⌈dim/chunk⌉; blocks of ROW_BLOCK = 256 threads (whole warps), chunk ≥ 1.
        unsafe { l.launch(config) }.map(|_| ())
    }

    /// `y[j] = x[offset + Σ idx_k·strides_k]` for the row-major multi-index of `j` in `out`.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn strided_copy(
        &self,
        out: &Shape,
        offset: usize,
        strides: &[usize],
    ) -> Result<CudaStorage> {
        let n = out.numel();
        let mut info = vec![out.rank() as u64, offset as u64];
        info.extend((0..MAX_RANK).map(|k| out.dims().get(k).copied().unwrap_or(1) as u64));
        info.extend((0..MAX_RANK).map(|k| strides.get(k).copied().unwrap_or(0) as u64));
        let info = self.upload_u64(&info, "strided_copy")?;
        let f = self.kernel("layout", "strided_copy")?;
        let n64 = n as u64;
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            let mut y = self.alloc_output::<T>(n, "strided_copy")?;
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(x).arg(&mut y).arg(&n64).arg(&info);
            // SAFETY: strided_copy_{dtype}(const T* x, T* y, unsigned long long n,
            // const unsigned long long* info[10]); every offset computed from `info` lies in x
            // (the tensor layer derives the strides from x's own shape).
            unsafe { l.launch(cfg(n)) }.map_err(err(format!("strided copy to {out}")))?;
            y
        })))
    }

    /// Writes `src` (`[outer, d_src, inner]`) into `self` (`[outer, d_dst, inner]`) at `offset`
    /// along the middle axis.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn copy_block_from(
        &mut self,
        src: &CudaStorage,
        o: usize,
        d_src: usize,
        i: usize,
        d_dst: usize,
        offset: usize,
    ) -> Result<()> {
        let n = o * d_src * i;
        let f = self.kernel("layout", "copy_block")?;
        let args = [
            o as u64,
            d_src as u64,
            i as u64,
            d_dst as u64,
            offset as u64,
        ];
        let what = format!("copy_block [{o}, {d_src}, {i}] into [{o}, {d_dst}, {i}] at {offset}");
        match (&src.data, &mut self.data) {
            (GpuData::F32(x), GpuData::F32(y)) => {
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(x).arg(y);
                for a in &args {
                    l.arg(a);
                }
                // SAFETY: copy_block_f32(const float* x, float* y, outer, d_src, inner, d_dst,
                // offset); offset + d_src ≤ d_dst (checked by the tensor layer).
                unsafe { l.launch(cfg(n)) }.map_err(err(what))?;
            }
            (GpuData::F64(x), GpuData::F64(y)) => {
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(x).arg(y);
                for a in &args {
                    l.arg(a);
                }
                // SAFETY: copy_block_f64, as for f32 with doubles.
                unsafe { l.launch(cfg(n)) }.map_err(err(what))?;
            }
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "copy_block",
                    lhs: self.dtype(),
                    rhs: src.dtype(),
                })
            }
        }
        Ok(())
    }

    /// `index_select` (gather) or `index_add` (scatter-add into zeros) along the middle axis.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn index_op(
        &self,
        name: &'static str,
        o: usize,
        d: usize,
        i: usize,
        idx: &[usize],
    ) -> Result<CudaStorage> {
        let idx64: Vec<u64> = idx.iter().map(|&v| v as u64).collect();
        let idx_dev = self.upload_u64(&idx64, name)?;
        let f = self.kernel("index", name)?;
        let (n_out, work) = if name == "index_add" {
            (o * d * i, o * idx.len() * i)
        } else {
            (o * idx.len() * i, o * idx.len() * i)
        };
        let args = [o as u64, d as u64, i as u64, idx.len() as u64];
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            // index_add accumulates into zeros; index_select writes every output.
            let mut y = if name == "index_add" {
                self.alloc::<T>(n_out, name)?
            } else {
                self.alloc_output::<T>(n_out, name)?
            };
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(x).arg(&idx_dev).arg(&mut y);
            for a in &args {
                l.arg(a);
            }
            // SAFETY: {index_select,index_add}_{dtype}(const T* x, const unsigned long long* idx,
            // T* y, outer, dim, inner, n_idx); every index < dim (checked by the tensor layer);
            // for index_add, y was zeroed first, as it requires.
            unsafe { l.launch(cfg(work)) }.map_err(err(format!(
                "{name} of {} indices over [{o}, {d}, {i}]",
                idx.len()
            )))?;
            y
        })))
    }

    fn conv_geom(&self, g: &PatchGeom, op: &str) -> Result<CudaSlice<u64>> {
        if g.layout != PatchLayout::Columns {
            return Err(Error::invalid(
                "patch matrix",
                format!("{:?}", g.layout),
                format!("{op}: the CUDA kernels take the [groups, rows, cols] layout"),
            ));
        }
        let v = [
            g.n,
            g.c,
            g.h,
            g.w,
            g.groups,
            g.kernel[0],
            g.kernel[1],
            g.stride[0],
            g.stride[1],
            g.padding[0],
            g.padding[1],
            g.dilation[0],
            g.dilation[1],
            g.oh,
            g.ow,
            0,
        ];
        self.upload_u64(&v.map(|x| x as u64), op)
    }

    /// The patch matrix of an `[n, c, h, w]` image (`cuda/conv.cu`; CPU twin
    /// `backend::cpu::conv::im2col`).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn im2col(&self, g: &PatchGeom, fill: f64) -> Result<CudaStorage> {
        let geom = self.conv_geom(g, "im2col")?;
        let f = self.kernel("conv", "im2col")?;
        let n = g.patch_len();
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            let mut y = self.alloc_output::<T>(n, "im2col")?;
            let fill = fill as T;
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(x).arg(&mut y).arg(&geom).arg(&fill);
            // SAFETY: im2col_{dtype}(const T* x, T* y, const unsigned long long* geom[16], T fill);
            // x holds n·c·h·w elements and y the patch matrix's groups·rows·cols (both from the
            // geometry the tensor layer validated).
            unsafe { l.launch(cfg(n)) }.map_err(err(format!("im2col {g:?}")))?;
            y
        })))
    }

    /// The adjoint of [`CudaStorage::im2col`] (`cuda/conv.cu`; CPU twin
    /// `backend::cpu::conv::col2im`).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn col2im(&self, g: &PatchGeom) -> Result<CudaStorage> {
        let geom = self.conv_geom(g, "col2im")?;
        let f = self.kernel("conv", "col2im")?;
        let n = g.image_len();
        Ok(self.wrap(with_data!(&self.data, |x: T| {
            let mut y = self.alloc_output::<T>(n, "col2im")?;
            let mut l = self.dev.stream.launch_builder(&f);
            l.arg(x).arg(&mut y).arg(&geom);
            // SAFETY: col2im_{dtype}(const T* cols, T* y, const unsigned long long* geom[16]);
            // x holds the patch matrix and y n·c·h·w elements, by the validated geometry.
            unsafe { l.launch(cfg(n)) }.map_err(err(format!("col2im {g:?}")))?;
            y
        })))
    }

    /// Element-type conversion.
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn cast(&self, dtype: DType) -> Result<CudaStorage> {
        if dtype == self.dtype() {
            return self.try_clone();
        }
        let n = self.len();
        let n64 = n as u64;
        let data = match &self.data {
            GpuData::F32(x) => {
                let f = self.dev.function("cast", "cast_f32_f64")?;
                let mut y = self.alloc_output::<f64>(n, "cast")?;
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(x).arg(&mut y).arg(&n64);
                // SAFETY: cast_f32_f64(const float* x, double* y, unsigned long long n).
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("cast of {n} to f64")))?;
                GpuData::F64(y)
            }
            GpuData::F64(x) => {
                let f = self.dev.function("cast", "cast_f64_f32")?;
                let mut y = self.alloc_output::<f32>(n, "cast")?;
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg(x).arg(&mut y).arg(&n64);
                // SAFETY: cast_f64_f32(const double* x, float* y, unsigned long long n).
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("cast of {n} to f32")))?;
                GpuData::F32(y)
            }
        };
        Ok(self.wrap(data))
    }

    /// One fused Adam/AdamW step: returns the updated parameters (a new buffer) and updates the
    /// moments `m`, `v` in place.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn adam(
        &self,
        g: &CudaStorage,
        m: &mut CudaStorage,
        v: &mut CudaStorage,
        h: &AdamHyper,
    ) -> Result<CudaStorage> {
        let mut p = self.try_clone()?;
        let n = p.len();
        let f = self.kernel("optim", "adam")?;
        let n64 = n as u64;
        macro_rules! launch {
            ($p:expr, $g:expr, $m:expr, $v:expr, $T:ty) => {{
                let s = [
                    h.b1,
                    h.b2,
                    h.step_size,
                    h.inv_sqrt_bc2,
                    h.eps,
                    h.wd,
                    h.decay,
                ]
                .map(|x| x as $T);
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg($p).arg($g).arg($m).arg($v).arg(&n64);
                for x in &s {
                    l.arg(x);
                }
                // SAFETY: adam_{dtype}(T* p, const T* g, T* m, T* v, unsigned long long n, T b1,
                // T b2, T step_size, T inv_sqrt_bc2, T eps, T wd, T decay); all four hold n.
                unsafe { l.launch(cfg(n)) }.map_err(err(format!("adam on {n} parameters")))?;
            }};
        }
        match (&mut p.data, &g.data, &mut m.data, &mut v.data) {
            (GpuData::F32(pp), GpuData::F32(gg), GpuData::F32(mm), GpuData::F32(vv)) => {
                launch!(pp, gg, mm, vv, f32)
            }
            (GpuData::F64(pp), GpuData::F64(gg), GpuData::F64(mm), GpuData::F64(vv)) => {
                launch!(pp, gg, mm, vv, f64)
            }
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "adam",
                    lhs: self.dtype(),
                    rhs: g.dtype(),
                })
            }
        }
        Ok(p)
    }

    /// One fused SGD step (with a momentum buffer when given): returns the updated parameters.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn sgd(
        &self,
        g: &CudaStorage,
        buf: Option<&mut CudaStorage>,
        h: &SgdHyper,
    ) -> Result<CudaStorage> {
        let mut p = self.try_clone()?;
        let n = p.len();
        let n64 = n as u64;
        match buf {
            Some(b) => {
                let f = self.kernel("optim", "sgd_momentum")?;
                macro_rules! launch {
                    ($p:expr, $g:expr, $b:expr, $T:ty) => {{
                        let s = [h.lr, h.wd, h.keep, h.nest, h.plain, h.base].map(|x| x as $T);
                        let mut l = self.dev.stream.launch_builder(&f);
                        l.arg($p).arg($g).arg($b).arg(&n64);
                        for x in &s {
                            l.arg(x);
                        }
                        // SAFETY: sgd_momentum_{dtype}(T* p, const T* g, T* buf, unsigned long long
                        // n, T lr, T wd, T keep, T nest, T plain, T base); all three hold n.
                        unsafe { l.launch(cfg(n)) }
                            .map_err(err(format!("sgd on {n} parameters")))?;
                    }};
                }
                match (&mut p.data, &g.data, &mut b.data) {
                    (GpuData::F32(pp), GpuData::F32(gg), GpuData::F32(bb)) => {
                        launch!(pp, gg, bb, f32)
                    }
                    (GpuData::F64(pp), GpuData::F64(gg), GpuData::F64(bb)) => {
                        launch!(pp, gg, bb, f64)
                    }
                    _ => {
                        return Err(Error::DTypeMismatch {
                            op: "sgd",
                            lhs: self.dtype(),
                            rhs: g.dtype(),
                        })
                    }
                }
            }
            None => {
                let f = self.kernel("optim", "sgd")?;
                macro_rules! launch {
                    ($p:expr, $g:expr, $T:ty) => {{
                        let (lr, wd) = (h.lr as $T, h.wd as $T);
                        let mut l = self.dev.stream.launch_builder(&f);
                        l.arg($p).arg($g).arg(&n64).arg(&lr).arg(&wd);
                        // SAFETY: sgd_{dtype}(T* p, const T* g, unsigned long long n, T lr, T wd).
                        unsafe { l.launch(cfg(n)) }
                            .map_err(err(format!("sgd on {n} parameters")))?;
                    }};
                }
                match (&mut p.data, &g.data) {
                    (GpuData::F32(pp), GpuData::F32(gg)) => launch!(pp, gg, f32),
                    (GpuData::F64(pp), GpuData::F64(gg)) => launch!(pp, gg, f64),
                    _ => {
                        return Err(Error::DTypeMismatch {
                            op: "sgd",
                            lhs: self.dtype(),
                            rhs: g.dtype(),
                        })
                    }
                }
            }
        }
        Ok(p)
    }
}

/// HMC kernels (`cuda/hmc.cu`; CPU twin `backend::cpu::hmc`).
impl CudaStorage {
    /// The fused leapfrog update of `self` (θ) and `p` from `g`, in place. The caller checks
    /// that all three hold the same number of elements.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn hmc_leapfrog(
        &mut self,
        p: &mut CudaStorage,
        g: &CudaStorage,
        h: &crate::backend::hmc::LeapfrogArgs,
    ) -> Result<()> {
        let n = self.len();
        let f = self.kernel("hmc", "hmc_leapfrog")?;
        let (n64, kicks, drift, kind) =
            (n as u64, h.kicks, u64::from(h.drift), h.prior.kind.code());
        macro_rules! launch {
            ($t:expr, $p:expr, $g:expr, $T:ty) => {{
                let (half, eps, temp) = (h.half as $T, h.eps as $T, h.temp as $T);
                let [a, b, c] = h.prior.params.map(|x| x as $T);
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg($t)
                    .arg($p)
                    .arg($g)
                    .arg(&n64)
                    .arg(&half)
                    .arg(&kicks)
                    .arg(&eps);
                l.arg(&drift).arg(&kind).arg(&a).arg(&b).arg(&c).arg(&temp);
                // SAFETY: hmc_leapfrog_{dtype}(T* theta, T* p, const T* g, unsigned long long n,
                // T half, unsigned long long kicks, T eps, unsigned long long drift,
                // unsigned long long kind, T a, T b, T c, T temp); all three hold n elements.
                unsafe { l.launch(cfg(n)) }
                    .map_err(err(format!("leapfrog update of {n} parameters")))?;
            }};
        }
        let dtype = self.dtype();
        match (&mut self.data, &mut p.data, &g.data) {
            (GpuData::F32(t), GpuData::F32(pp), GpuData::F32(gg)) => launch!(t, pp, gg, f32),
            (GpuData::F64(t), GpuData::F64(pp), GpuData::F64(gg)) => launch!(t, pp, gg, f64),
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "hmc_leapfrog",
                    lhs: dtype,
                    rhs: g.dtype(),
                })
            }
        }
        Ok(())
    }

    fn partials(&self, op: &str, out: &CudaSlice<f64>) -> Result<Vec<f64>> {
        self.dev
            .stream
            .clone_dtoh(out)
            .map_err(err(format!("{op}: copying partial sums")))
    }

    /// The partial sums of `x²` (in f64, [`CHUNK`](crate::backend::hmc::CHUNK) elements each).
    ///
    /// # Errors
    /// [`Error::Cuda`].
    pub fn hmc_sum_squares(&self) -> Result<Vec<f64>> {
        let (n, chunk) = (self.len(), crate::backend::hmc::CHUNK);
        let parts = n.div_ceil(chunk);
        let mut out = self.alloc::<f64>(parts.max(1), "sum of squares")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let f = self.kernel("hmc", "hmc_sum_squares")?;
        let (n64, c64) = (n as u64, chunk as u64);
        let mut l = self.dev.stream.launch_builder(&f);
        match &self.data {
            GpuData::F32(x) => l.arg(x),
            GpuData::F64(x) => l.arg(x),
        };
        l.arg(&mut out).arg(&n64).arg(&c64);
        // SAFETY: hmc_sum_squares_{dtype}(const T* x, double* out, unsigned long long n,
        // unsigned long long chunk); x holds n elements, out ⌈n/chunk⌉.
        unsafe { l.launch(cfg(parts)) }.map_err(err(format!("sum of {n} squares")))?;
        self.partials("sum of squares", &out)
    }

    /// The partial sums of `log p(self) − log p(old)` (untempered, in f64). The caller checks
    /// the lengths.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`]; [`Error::Cuda`].
    pub fn hmc_prior_difference(
        &self,
        old: &CudaStorage,
        prior: &crate::backend::hmc::PriorArgs,
    ) -> Result<Vec<f64>> {
        let (n, chunk) = (self.len(), crate::backend::hmc::CHUNK);
        let parts = n.div_ceil(chunk);
        let mut out = self.alloc::<f64>(parts.max(1), "prior difference")?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let f = self.kernel("hmc", "hmc_prior_difference")?;
        let (n64, c64, kind) = (n as u64, chunk as u64, prior.kind.code());
        macro_rules! launch {
            ($x:expr, $y:expr, $T:ty) => {{
                let [a, b, c] = prior.params.map(|v| v as $T);
                let mut l = self.dev.stream.launch_builder(&f);
                l.arg($x)
                    .arg($y)
                    .arg(&mut out)
                    .arg(&n64)
                    .arg(&c64)
                    .arg(&kind);
                l.arg(&a).arg(&b).arg(&c);
                // SAFETY: hmc_prior_difference_{dtype}(const T* x, const T* y, double* out,
                // unsigned long long n, unsigned long long chunk, unsigned long long kind, T a,
                // T b, T c); x and y hold n elements, out ⌈n/chunk⌉.
                unsafe { l.launch(cfg(parts)) }
                    .map_err(err(format!("prior difference over {n} parameters")))?;
            }};
        }
        match (&self.data, &old.data) {
            (GpuData::F32(x), GpuData::F32(y)) => launch!(x, y, f32),
            (GpuData::F64(x), GpuData::F64(y)) => launch!(x, y, f64),
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "prior difference",
                    lhs: self.dtype(),
                    rhs: old.dtype(),
                })
            }
        }
        self.partials("prior difference", &out)
    }
}
