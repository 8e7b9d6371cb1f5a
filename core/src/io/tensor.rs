//! A borrowed view of one tensor in a safetensors file.

use super::dtype::Dtype;
use super::MAX_RANK;
use crate::{Error, Real, Result};

/// One tensor of a [`SafeTensors`](super::SafeTensors) file: dtype, shape and the bytes of its
/// elements, borrowed from the file (row-major, little-endian, no alignment requirement).
///
/// Elements are decoded on every read, so a model stored in flash is evaluated in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorView<'a> {
    dtype: Dtype,
    shape: [usize; MAX_RANK],
    rank: usize,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// An empty placeholder (capacity slots that hold no tensor).
    pub(crate) const EMPTY: TensorView<'static> = TensorView {
        dtype: Dtype::U8,
        shape: [0; MAX_RANK],
        rank: 1,
        data: &[],
    };

    /// A view whose data length the caller checked against the shape and dtype.
    pub(crate) fn new(dtype: Dtype, shape: [usize; MAX_RANK], rank: usize, data: &'a [u8]) -> Self {
        TensorView {
            dtype,
            shape,
            rank: rank.min(MAX_RANK),
            data,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The shape (`rank()` entries; empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        self.shape.get(..self.rank).unwrap_or(&[])
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The raw little-endian bytes of all elements, borrowed from the file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The raw bytes of element `index` (row-major), of any dtype.
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`] if `index >= len()`.
    pub fn element_bytes(&self, index: usize) -> Result<&'a [u8]> {
        let size = self.dtype.size();
        index
            .checked_mul(size)
            .and_then(|start| self.data.get(start..start.checked_add(size)?))
            .ok_or(Error::IndexOutOfRange {
                what: "tensor element",
                index,
                len: self.len(),
            })
    }

    /// Element `index` as `f64`: exact for `F32` and `F64` tensors.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] for other dtypes, [`Error::IndexOutOfRange`] if
    /// `index >= len()`.
    pub fn get_f64(&self, index: usize) -> Result<f64> {
        match self.dtype {
            Dtype::F32 => self.element_bytes(index).map(|b| f64::from(read_f32(b))),
            Dtype::F64 => self.element_bytes(index).map(read_f64),
            dtype => Err(Error::UnsupportedDtype { dtype }),
        }
    }

    /// Element `index` as `f32`: exact for `F32` tensors, rounded to nearest for `F64`.
    ///
    /// # Errors
    /// As [`get_f64`](TensorView::get_f64).
    pub fn get_f32(&self, index: usize) -> Result<f32> {
        match self.dtype {
            Dtype::F32 => self.element_bytes(index).map(read_f32),
            Dtype::F64 => self.element_bytes(index).map(|b| read_f64(b) as f32),
            dtype => Err(Error::UnsupportedDtype { dtype }),
        }
    }

    /// Element `index` in the scalar type `T` (rounded to nearest where `T` is narrower).
    ///
    /// # Errors
    /// As [`get_f64`](TensorView::get_f64).
    pub fn get<T: Real>(&self, index: usize) -> Result<T> {
        match self.dtype {
            Dtype::F32 => self.element_bytes(index).map(|b| from_f32(read_f32(b))),
            Dtype::F64 => self.element_bytes(index).map(|b| T::from_f64(read_f64(b))),
            dtype => Err(Error::UnsupportedDtype { dtype }),
        }
    }
}

/// Decodes a little-endian `f32` from the first 4 bytes (0 if fewer: callers pass exact chunks).
#[inline]
pub(crate) fn read_f32(b: &[u8]) -> f32 {
    match *b {
        [b0, b1, b2, b3, ..] => f32::from_le_bytes([b0, b1, b2, b3]),
        _ => 0.0,
    }
}

/// Decodes a little-endian `f64` from the first 8 bytes (0 if fewer: callers pass exact chunks).
#[inline]
pub(crate) fn read_f64(b: &[u8]) -> f64 {
    match *b {
        [b0, b1, b2, b3, b4, b5, b6, b7, ..] => {
            f64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
        }
        _ => 0.0,
    }
}

/// Converts an `f32` into `T` without a detour through `f64` when `T` is `f32` (a software
/// conversion on single-precision FPUs such as the Cortex-M4F).
#[inline]
pub(crate) fn from_f32<T: Real>(v: f32) -> T {
    T::from_f32(v)
}
