//! The scalar trait: one small sealed trait for `f32` (on the controller) and `f64` (reference
//! runs on the host).
//!
//! Transcendental functions go through [`libm`] so the core has no `std` dependency and the
//! firmware and the host run the same code.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point scalar: implemented for `f32` and `f64` only.
pub trait Real:
    sealed::Sealed
    + Copy
    + Default
    + Debug
    + Display
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// 2.
    const TWO: Self;
    /// 1/2.
    const HALF: Self;
    /// π.
    const PI: Self;
    /// Machine epsilon (the gap between 1 and the next representable number).
    const EPSILON: Self;
    /// The smallest positive normal number.
    const MIN_POSITIVE: Self;
    /// The largest finite number.
    const MAX: Self;
    /// Number of bits in the representation (32 or 64).
    const BITS: u32;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact for both implementations).
    fn to_f64(self) -> f64;
    /// Converts from `f32` (exact for both implementations).
    fn from_f32(x: f32) -> Self;
    /// Converts a count.
    fn from_usize(n: usize) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// `atan2(self, x)`.
    fn atan2(self, x: Self) -> Self;
    /// Exponential.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + self)`, accurate near 0.
    fn ln_1p(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// `self` raised to a real power.
    fn powf(self, e: Self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// `self` modulo `m` with the sign of `m`, exactly as Python's float `%` (an exact `fmod`,
    /// then `m` added when the signs differ; a zero remainder takes `m`'s sign).
    #[inline]
    fn rem_floor(self, m: Self) -> Self {
        // fmod is exact, and so is the round trip through f64 for f32 operands.
        let (x, y) = (self.to_f64(), m.to_f64());
        let r = libm::fmod(x, y);
        let r = if r == 0.0 {
            libm::copysign(0.0, y)
        } else if (y < 0.0) != (r < 0.0) {
            r + y
        } else {
            r
        };
        Self::from_f64(r)
    }
    /// The larger of two values (NaN-ignoring, as IEEE `maxNum`).
    #[inline]
    fn max(self, other: Self) -> Self {
        if self >= other || other.is_nan() {
            self
        } else {
            other
        }
    }
    /// The smaller of two values (NaN-ignoring, as IEEE `minNum`).
    #[inline]
    fn min(self, other: Self) -> Self {
        if self <= other || other.is_nan() {
            self
        } else {
            other
        }
    }
}

macro_rules! impl_real {
    ($t:ty, $bits:expr, $sqrt:path, $sin:path, $cos:path, $atan2:path, $exp:path, $ln:path, $pow:path, $ln1p:path, $tanh:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const TWO: Self = 2.0;
            const HALF: Self = 0.5;
            const PI: Self = core::f64::consts::PI as $t;
            const EPSILON: Self = <$t>::EPSILON;
            const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
            const MAX: Self = <$t>::MAX;
            const BITS: u32 = $bits;

            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            #[inline]
            fn ln_1p(self) -> Self {
                $ln1p(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline]
            fn sqrt(self) -> Self {
                $sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn sin(self) -> Self {
                $sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                $cos(self)
            }
            #[inline]
            fn atan2(self, x: Self) -> Self {
                $atan2(self, x)
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $ln(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                $pow(self, e)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}

impl_real!(
    f32,
    32,
    libm::sqrtf,
    libm::sinf,
    libm::cosf,
    libm::atan2f,
    libm::expf,
    libm::logf,
    libm::powf,
    libm::log1pf,
    libm::tanhf
);
impl_real!(
    f64,
    64,
    libm::sqrt,
    libm::sin,
    libm::cos,
    libm::atan2,
    libm::exp,
    libm::log,
    libm::pow,
    libm::log1p,
    libm::tanh
);

#[cfg(test)]
mod tests {
    use super::Real;

    #[test]
    fn max_min_ignore_nan() {
        assert_eq!(<f64 as Real>::max(f64::NAN, 1.0), 1.0);
        assert_eq!(<f64 as Real>::max(1.0, f64::NAN), 1.0);
        assert_eq!(<f32 as Real>::min(2.0, -1.0), -1.0);
    }

    #[test]
    fn libm_matches_expected_values() {
        assert!((Real::sqrt(2.0f64) - core::f64::consts::SQRT_2).abs() < 1e-16);
        assert!((Real::sin(1.0f32) - 0.841_470_96).abs() < 1e-7);
    }
}
