//! Float vectors read in place from file bytes (`F32` or `F64`, little-endian).

use crate::io::{from_f32, read_f32, read_f64, Dtype, TensorView};
use crate::{Error, Real, Result};

/// A run of `F32` or `F64` values borrowed from a file, decoded as it is read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Floats<'a> {
    bytes: &'a [u8],
    wide: bool,
}

impl<'a> Floats<'a> {
    /// No elements.
    pub(crate) const EMPTY: Floats<'static> = Floats {
        bytes: &[],
        wide: false,
    };

    /// The elements of a float tensor.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] unless the view is `F32` or `F64`.
    pub(crate) fn new(view: &TensorView<'a>) -> Result<Self> {
        match view.dtype() {
            Dtype::F32 => Ok(Floats {
                bytes: view.data(),
                wide: false,
            }),
            Dtype::F64 => Ok(Floats {
                bytes: view.data(),
                wide: true,
            }),
            dtype => Err(Error::UnsupportedDtype { dtype }),
        }
    }

    /// Bytes per element.
    #[inline]
    pub(crate) fn element_size(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }

    /// The little-endian bytes, [`element_size`](Floats::element_size) per element: for loops
    /// that match the dtype once, outside, and decode each element with `read_f32`/`read_f64`.
    #[inline]
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The elements in order.
    #[inline]
    pub(crate) fn iter<T: Real>(&self) -> impl Iterator<Item = T> + 'a {
        let wide = self.wide;
        self.bytes.chunks_exact(self.element_size()).map(move |c| {
            if wide {
                T::from_f64(read_f64(c))
            } else {
                from_f32(read_f32(c))
            }
        })
    }

    /// Consecutive rows of `n` elements (`n ≥ 1`; with `n = 0` there are none).
    #[inline]
    pub(crate) fn rows(&self, n: usize) -> impl Iterator<Item = Floats<'a>> + 'a {
        let wide = self.wide;
        let row_bytes = n.saturating_mul(self.element_size());
        // An empty range of chunks when the row length is zero: no division by zero.
        let bytes = if row_bytes == 0 { &[][..] } else { self.bytes };
        bytes
            .chunks_exact(row_bytes.max(1))
            .map(move |bytes| Floats { bytes, wide })
    }

    /// `len` elements from element `start` (fewer, or none, past the end: callers check lengths
    /// when the view is built).
    #[inline]
    pub(crate) fn slice(&self, start: usize, len: usize) -> Floats<'a> {
        let size = self.element_size();
        let from = start.saturating_mul(size).min(self.bytes.len());
        let to = start
            .saturating_add(len)
            .saturating_mul(size)
            .min(self.bytes.len());
        Floats {
            // cannot fail: from ≤ to ≤ bytes.len() (both clamped, saturating ops are monotone).
            bytes: &self.bytes[from..to],
            wide: self.wide,
        }
    }

    /// Element `k` (zero past the end: callers check lengths when the view is built).
    #[inline]
    pub(crate) fn get<T: Real>(&self, k: usize) -> T {
        let size = self.element_size();
        // Checked: a huge `k` is past the end, not an overflow.
        let bytes = k
            .checked_mul(size)
            .and_then(|start| self.bytes.get(start..start.checked_add(size)?));
        match bytes {
            Some(c) if self.wide => T::from_f64(read_f64(c)),
            Some(c) => from_f32::<T>(read_f32(c)),
            None => T::ZERO,
        }
    }

    /// `Σ self[k] · x[k]`.
    #[inline]
    pub(crate) fn dot<T: Real>(&self, x: &[T]) -> T {
        let mut acc = T::ZERO;
        if self.wide {
            for (c, &xk) in self.bytes.chunks_exact(8).zip(x) {
                acc += T::from_f64(read_f64(c)) * xk;
            }
        } else {
            for (c, &xk) in self.bytes.chunks_exact(4).zip(x) {
                acc += from_f32::<T>(read_f32(c)) * xk;
            }
        }
        acc
    }

    /// `y[k] += a · self[k]`.
    #[inline]
    pub(crate) fn axpy<T: Real>(&self, a: T, y: &mut [T]) {
        if self.wide {
            for (c, yk) in self.bytes.chunks_exact(8).zip(y) {
                *yk += a * T::from_f64(read_f64(c));
            }
        } else {
            for (c, yk) in self.bytes.chunks_exact(4).zip(y) {
                *yk += a * from_f32::<T>(read_f32(c));
            }
        }
    }
}
