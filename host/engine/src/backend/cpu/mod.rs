//! The CPU backend: contiguous `Vec` buffers (pooled), generic kernels, `gemm` for products.

pub mod conv;
pub mod conv_shift;
pub mod conv_winograd;
pub mod exp;
pub mod float;
pub mod gemm;
pub mod hmc;
pub mod isa;
pub mod kernels;
pub mod norm;
pub mod pool;
pub(crate) mod simd;

pub use float::Float;

/// A CPU buffer of one element type. Dropping it returns the buffer to the thread's pool.
#[derive(Debug)]
pub enum CpuStorage {
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        match self {
            CpuStorage::F32(v) => f32::give(std::mem::take(v)),
            CpuStorage::F64(v) => f64::give(std::mem::take(v)),
        }
    }
}

impl CpuStorage {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy in a pooled buffer.
    pub fn clone_pooled(&self) -> CpuStorage {
        match self {
            CpuStorage::F32(v) => {
                let mut b = f32::take(v.len());
                b.extend_from_slice(v);
                CpuStorage::F32(b)
            }
            CpuStorage::F64(v) => {
                let mut b = f64::take(v.len());
                b.extend_from_slice(v);
                CpuStorage::F64(b)
            }
        }
    }
}

/// Calls `$body` with `$v` bound to the typed slice of a [`CpuStorage`] and `$T` to its element
/// type, wrapping the resulting `Vec` back into the same variant.
#[macro_export]
#[doc(hidden)]
macro_rules! cpu_map {
    ($s:expr, |$v:ident : $T:ident| $body:expr) => {
        match $s {
            $crate::backend::cpu::CpuStorage::F32($v) => {
                #[allow(dead_code)]
                type $T = f32;
                $crate::backend::cpu::CpuStorage::F32($body)
            }
            $crate::backend::cpu::CpuStorage::F64($v) => {
                #[allow(dead_code)]
                type $T = f64;
                $crate::backend::cpu::CpuStorage::F64($body)
            }
        }
    };
}
