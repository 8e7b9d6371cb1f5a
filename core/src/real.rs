//! The scalar trait: [`Real`], Keel's extension of [`num_traits::Float`] for `f32` (on the
//! controller) and `f64` (reference runs on the host).
//!
//! `Real: Float`, so a user's generic code and other crates' numeric types compose with the
//! core's: anything bounded by `Real` has every `Float` method (`x.sin()`, `x.sqrt()`, `x.max(y)`,
//! …). What `Real` adds is what the core needs beyond `Float`:
//!
//! - exact conversions and constants (`from_f64`, `as_f64`, `Real::PI`, …);
//! - **the transcendental functions the core computes with**, always [`libm`]'s, on every target:
//!   [`Real::libm_sin`], [`Real::libm_exp`], …. `num_traits::Float::sin` on the host calls the
//!   platform's C library (glibc's `sinf` is not bit-for-bit musl's, which `libm` ports), while on
//!   the controller it calls `libm`; the core's claim that the firmware and the host's rerun of
//!   the same code give the *same bits* (`keel firmware check`) needs one implementation
//!   everywhere, so the core never calls `Float`'s `sin`, `cos`, `atan2`, `exp`, `ln`, `ln_1p`,
//!   `tanh` or `powf` (clippy's `disallowed-methods` in `core/clippy.toml` enforces it). The exact
//!   operations — `sqrt` (correctly rounded by IEEE 754 in both), `abs`, `max`, `min`,
//!   `is_finite`, `is_nan` — are `Float`'s.
//!
//! The names differ from `Float`'s on purpose: a method of the same name in both traits would
//! make `x.sin()` ambiguous in every generic function bounded by `Real`.

use core::fmt::{Debug, Display};
use core::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use num_traits::Float;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A real floating-point scalar: [`Float`] plus the core's conversions, constants and
/// platform-independent transcendental functions. Implemented for `f32` and `f64` only.
pub trait Real:
    sealed::Sealed
    + Float
    + Default
    + Debug
    + Display
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
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
    /// Converts to `f64` (exact for both implementations; unlike
    /// `num_traits::ToPrimitive::to_f64` it cannot fail).
    fn as_f64(self) -> f64;
    /// Converts from `f32` (exact for both implementations).
    fn from_f32(x: f32) -> Self;
    /// Converts a count.
    fn from_usize(n: usize) -> Self;
    /// Sine (`libm`'s, the same bits on every target).
    fn libm_sin(self) -> Self;
    /// Cosine (`libm`'s).
    fn libm_cos(self) -> Self;
    /// `atan2(self, x)` (`libm`'s).
    fn libm_atan2(self, x: Self) -> Self;
    /// Exponential (`libm`'s).
    fn libm_exp(self) -> Self;
    /// Natural logarithm (`libm`'s).
    fn libm_ln(self) -> Self;
    /// `ln(1 + self)`, accurate near 0 (`libm`'s).
    fn libm_ln_1p(self) -> Self;
    /// Hyperbolic tangent (`libm`'s).
    fn libm_tanh(self) -> Self;
    /// `self` raised to a real power (`libm`'s).
    fn libm_powf(self, e: Self) -> Self;
    /// `self` modulo `m` with the sign of `m`, exactly as Python's float `%` (an exact `fmod`,
    /// then `m` added when the signs differ; a zero remainder takes `m`'s sign).
    #[inline]
    fn rem_floor(self, m: Self) -> Self {
        // fmod is exact, and so is the round trip through f64 for f32 operands.
        let (x, y) = (self.as_f64(), m.as_f64());
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
}

macro_rules! impl_real {
    ($t:ty, $bits:expr, $sin:path, $cos:path, $atan2:path, $exp:path, $ln:path, $pow:path, $ln1p:path, $tanh:path) => {
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
            fn as_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            #[inline]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline]
            fn libm_sin(self) -> Self {
                $sin(self)
            }
            #[inline]
            fn libm_cos(self) -> Self {
                $cos(self)
            }
            #[inline]
            fn libm_atan2(self, x: Self) -> Self {
                $atan2(self, x)
            }
            #[inline]
            fn libm_exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn libm_ln(self) -> Self {
                $ln(self)
            }
            #[inline]
            fn libm_ln_1p(self) -> Self {
                $ln1p(self)
            }
            #[inline]
            fn libm_tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn libm_powf(self, e: Self) -> Self {
                $pow(self, e)
            }
        }
    };
}

impl_real!(
    f32,
    32,
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
    use num_traits::Float;

    #[test]
    fn float_max_min_ignore_nan_as_the_core_relies_on() {
        assert_eq!(Float::max(f64::NAN, 1.0), 1.0);
        assert_eq!(Float::max(1.0, f64::NAN), 1.0);
        assert_eq!(Float::min(2.0f32, -1.0), -1.0);
        assert_eq!(Float::min(f32::NAN, -1.0), -1.0);
    }

    #[test]
    fn libm_matches_expected_values() {
        assert!((Float::sqrt(2.0f64) - core::f64::consts::SQRT_2).abs() < 1e-16);
        assert!((1.0f32.libm_sin() - 0.841_470_96).abs() < 1e-7);
    }

    /// A generic function written against `num_traits::Float` alone accepts the core's scalars.
    #[test]
    fn real_composes_with_num_traits_generic_code() {
        fn hypot<F: Float>(a: F, b: F) -> F {
            (a * a + b * b).sqrt()
        }
        fn through_real<T: Real>(a: T, b: T) -> f64 {
            hypot(a, b).as_f64()
        }
        assert_eq!(through_real(3.0f32, 4.0), 5.0);
        assert_eq!(through_real(5.0f64, 12.0), 13.0);
    }
}
