//! Dense tensors: `f32` or `f64`, row-major, rank 0 to 4, immutable values shared by `Arc`.
//!
//! Every operation returns a new tensor and, while gradients are being recorded, remembers how it
//! was made (see [`crate::autodiff`]); backward and forward-mode rules are written with these
//! same operations, so derivatives of derivatives work. Shape errors are checked at API entry and
//! name the operation and both shapes.

mod conv;
mod ops;
mod shape;
mod vision;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use conv::{Conv2dOpts, ConvTranspose2dOpts};
pub use shape::{Shape, MAX_RANK};

use crate::autodiff::{self, Op};
use crate::backend::cpu::CpuStorage;
use crate::backend::{DType, Device, Storage};
use crate::error::{Error, Result};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A tensor: shape, buffer, and (when recorded) the operation that produced it.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) storage: Arc<Storage>,
    pub(crate) shape: Shape,
    pub(crate) op: Option<Op>,
    /// Whether gradients flow through this tensor (a variable, or computed from one while
    /// recording).
    pub(crate) track: bool,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_vec_f64().unwrap_or_default();
        let shown: Vec<f64> = v.iter().take(8).copied().collect();
        write!(
            f,
            "Tensor({}, {}, {}, {:?}{})",
            self.shape(),
            self.dtype(),
            self.device(),
            shown,
            if v.len() > 8 { " …" } else { "" }
        )
    }
}

/// Element types a tensor can be built from.
pub trait Element: crate::backend::cpu::Float {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Wraps a buffer.
    fn storage(v: Vec<Self>) -> CpuStorage;
    /// The typed buffer of a storage of this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            CpuStorage::F64(_) => None,
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            CpuStorage::F32(_) => None,
        }
    }
}

impl Tensor {
    /// Wraps a finished buffer, recording `op` if gradients are being recorded and an input is
    /// tracked.
    pub(crate) fn make(storage: Storage, shape: Shape, op: Option<Op>) -> Tensor {
        let track = op
            .as_ref()
            .is_some_and(|o| autodiff::is_recording() && o.inputs().iter().any(|t| t.0.track));
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage: Arc::new(storage),
            shape,
            op: if track { op } else { None },
            track,
        }))
    }

    /// A leaf tensor from a finished buffer.
    pub(crate) fn from_storage(storage: Storage, shape: Shape) -> Tensor {
        Tensor::make(storage, shape, None)
    }

    /// The buffer, moved out without a copy when this tensor is its only holder (else copied).
    ///
    /// # Errors
    /// Device errors of the copy.
    pub(crate) fn into_storage(self) -> Result<Storage> {
        let storage = match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.storage,
            Err(shared) => shared.storage.clone(),
        };
        match Arc::try_unwrap(storage) {
            Ok(s) => Ok(s),
            Err(shared) => shared.to_device(shared.device()),
        }
    }

    /// A tensor sharing `self`'s buffer with another shape (same element count).
    pub(crate) fn view(&self, shape: Shape, op: Op) -> Tensor {
        let track = self.0.track && autodiff::is_recording();
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage: self.0.storage.clone(),
            shape,
            op: if track { Some(op) } else { None },
            track,
        }))
    }

    /// A tensor from a buffer and dimensions.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the buffer length is not the product of `dims`;
    /// [`Error::Rank`] above rank 4.
    pub fn from_vec<T: Element>(data: Vec<T>, dims: &[usize]) -> Result<Tensor> {
        let shape = Shape::new(dims)?;
        if shape.numel() != data.len() {
            return Err(Error::ShapeMismatch {
                op: "from_vec",
                lhs: shape,
                rhs: Shape::new(&[data.len()])?,
            });
        }
        Ok(Tensor::make(Storage::Cpu(T::storage(data)), shape, None))
    }

    /// A tensor of `dtype` from `f64` values.
    ///
    /// # Errors
    /// As [`Tensor::from_vec`].
    pub fn from_f64s(data: &[f64], dims: &[usize], dtype: DType) -> Result<Tensor> {
        match dtype {
            DType::F32 => Tensor::from_vec(data.iter().map(|v| *v as f32).collect(), dims),
            DType::F64 => Tensor::from_vec(data.to_vec(), dims),
        }
    }

    /// A rank-0 tensor on the CPU.
    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(vec![v as f32]),
            DType::F64 => CpuStorage::F64(vec![v]),
        };
        Tensor::make(Storage::Cpu(storage), Shape::scalar(), None)
    }

    /// A tensor on the CPU filled with `v`.
    ///
    /// # Errors
    /// [`Error::Rank`] above rank 4.
    pub fn full(v: f64, dims: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full_on(v, dims, dtype, Device::Cpu)
    }

    /// A tensor on `device` filled with `v`.
    ///
    /// # Errors
    /// [`Error::Rank`] above rank 4; device errors.
    pub fn full_on(v: f64, dims: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        let shape = Shape::new(dims)?;
        crate::memory::check(|| format!("a tensor {shape}"), shape.numel() as u128, dtype)?;
        Ok(Tensor::make(
            Storage::full(v, shape.numel(), dtype, device)?,
            shape,
            None,
        ))
    }

    /// Standard normal draws on `device` from `seed`: xoshiro256++ with Box–Muller on the CPU,
    /// cuRAND on a GPU (the two streams differ).
    ///
    /// # Errors
    /// [`Error::Rank`]; device errors.
    pub fn randn(dims: &[usize], dtype: DType, device: Device, seed: u64) -> Result<Tensor> {
        let shape = Shape::new(dims)?;
        let n = shape.numel();
        crate::memory::check(|| format!("a tensor {shape}"), n as u128, dtype)?;
        let storage = match device {
            Device::Cpu => {
                let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(seed);
                let v: Vec<f64> = (0..n)
                    .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
                    .collect();
                return Tensor::from_f64s(&v, dims, dtype);
            }
            Device::Cuda(o) => {
                Storage::Cuda(crate::backend::cuda::CudaStorage::randn(o, n, dtype, seed)?)
            }
        };
        Ok(Tensor::make(storage, shape, None))
    }

    /// Zeros.
    ///
    /// # Errors
    /// [`Error::Rank`] above rank 4.
    pub fn zeros(dims: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(0.0, dims, dtype)
    }

    /// Ones.
    ///
    /// # Errors
    /// [`Error::Rank`] above rank 4.
    pub fn ones(dims: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(1.0, dims, dtype)
    }

    /// Zeros with the shape, type and device of `self`.
    ///
    /// # Errors
    /// Device errors.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::full_on(0.0, self.dims(), self.dtype(), self.device())
    }

    /// Ones with the shape, type and device of `self`.
    ///
    /// # Errors
    /// Device errors.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::full_on(1.0, self.dims(), self.dtype(), self.device())
    }

    /// Unique id (for gradient maps).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Shape.
    pub fn shape(&self) -> Shape {
        self.0.shape
    }

    /// Dimensions.
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }

    /// Device.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    /// Whether gradients flow through this tensor.
    pub fn is_tracked(&self) -> bool {
        self.0.track
    }

    /// The buffer.
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }

    /// The same values as a new leaf that gradients do not flow through (shares the buffer).
    pub fn detach(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage: self.0.storage.clone(),
            shape: self.0.shape,
            op: None,
            track: false,
        }))
    }

    /// The same values as a new leaf that gradients flow to (a variable / parameter).
    pub fn variable(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage: self.0.storage.clone(),
            shape: self.0.shape,
            op: None,
            track: true,
        }))
    }

    /// The values as `f64` (copied from the device if needed).
    ///
    /// # Errors
    /// Device errors.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        let host;
        let c = match self.storage().as_cpu() {
            Some(c) => c,
            None => {
                host = self.storage().to_cpu()?;
                &host
            }
        };
        Ok(match c {
            CpuStorage::F32(v) => v.iter().map(|x| *x as f64).collect(),
            CpuStorage::F64(v) => v.clone(),
        })
    }

    /// The values as `f32` (copied from the device if needed).
    ///
    /// # Errors
    /// Device errors.
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        Ok(match self.storage().as_cpu() {
            Some(CpuStorage::F32(v)) => v.clone(),
            _ => self.to_vec_f64()?.iter().map(|x| *x as f32).collect(),
        })
    }

    /// The typed buffer, if `T` is this tensor's element type and it lives on the CPU.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        self.storage().as_cpu().and_then(T::slice)
    }

    /// The single value of a one-element tensor.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the tensor has more than one element.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "item",
                lhs: self.shape(),
                rhs: Shape::scalar(),
            });
        }
        Ok(self.to_vec_f64()?[0])
    }
}
