//! The element types of the CPU backend, with a buffer pool per type so training loops reuse
//! memory instead of allocating every step.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Buffers kept per length in a thread's pool.
const POOL_PER_LEN: usize = 32;
/// Bytes a thread's pool may hold (per element type). Large on purpose: a training step's big
/// intermediates (an EMLP bilinear layer's gathered entries at ch 384, batch 500) are freed and
/// re-allocated every step, and handing them back to the kernel costs a page fault per 4 KiB on
/// the next allocation. Raising this from 64 Mi elements made `keel emlp train` (O5Synthetic,
/// ch 384) 3.4× faster per epoch (15 s → 4.5 s) with peak RSS 3.2 → 3.6 GB.
const POOL_MAX_BYTES: usize = 4 << 30;

struct Pool<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    elems: usize,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            free: HashMap::new(),
            elems: 0,
        }
    }
}

thread_local! {
    static POOL_F32: RefCell<Pool<f32>> = RefCell::new(Pool::default());
    static POOL_F64: RefCell<Pool<f64>> = RefCell::new(Pool::default());
}

/// `f32` or `f64` on the CPU.
pub trait Float:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The smallest positive normal value (below it, subnormals).
    const MIN_NORMAL: Self;
    /// Converts from `f64` (rounding).
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64`.
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// ln x.
    fn ln(self) -> Self;
    /// ln(1 + x).
    fn ln_1p(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// sin x.
    fn sin(self) -> Self;
    /// cos x.
    fn cos(self) -> Self;
    /// √x.
    fn sqrt(self) -> Self;
    /// xᶜ.
    fn powf(self, c: Self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// Whether NaN.
    fn is_nan(self) -> bool;
    /// Whether finite.
    fn is_finite(self) -> bool;
    /// An empty buffer with capacity for at least `len` elements, from the pool if possible.
    fn take(len: usize) -> Vec<Self>;
    /// Returns a buffer to the pool.
    fn give(v: Vec<Self>);
}

macro_rules! impl_float {
    ($t:ty, $pool:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const MIN_NORMAL: Self = <$t>::MIN_POSITIVE;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn powf(self, c: Self) -> Self {
                <$t>::powf(self, c)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn take(len: usize) -> Vec<Self> {
                let reused = $pool.with(|p| {
                    let mut p = p.borrow_mut();
                    let v = p.free.get_mut(&len).and_then(|list| list.pop());
                    if v.is_some() {
                        p.elems -= len;
                    }
                    v
                });
                match reused {
                    Some(mut v) => {
                        v.clear();
                        v
                    }
                    None => Vec::with_capacity(len),
                }
            }
            fn give(v: Vec<Self>) {
                let len = v.capacity();
                if len == 0 {
                    return;
                }
                let _ = $pool.try_with(|p| {
                    let mut p = p.borrow_mut();
                    if (p.elems + len) * std::mem::size_of::<Self>() > POOL_MAX_BYTES {
                        return;
                    }
                    let list = p.free.entry(len).or_default();
                    if list.len() < POOL_PER_LEN {
                        list.push(v);
                        p.elems += len;
                    }
                });
            }
        }
    };
}

impl_float!(f32, POOL_F32);
impl_float!(f64, POOL_F64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers_of_the_same_length() {
        let mut v = f32::take(1000);
        v.resize(1000, 1.0);
        let ptr = v.as_ptr();
        f32::give(v);
        let w = f32::take(1000);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.is_empty() && w.capacity() >= 1000);
    }
}
