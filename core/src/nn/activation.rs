//! Elementwise activations and their derivatives.

use crate::Real;

/// The nonlinearity applied after every layer but the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `max(x, 0)`; the derivative at 0 is taken as 0.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^(−x))`, evaluated without overflow for either sign.
    Sigmoid,
    /// `x · sigmoid(x)` (also called swish).
    Silu,
    /// `ln(1 + e^x)`, evaluated as `ln1p(e^(−|x|)) + max(x, 0)`.
    Softplus,
    /// `x`.
    Identity,
}

const ALL: [Activation; 6] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Silu,
    Activation::Softplus,
    Activation::Identity,
];

impl Activation {
    /// The configuration name (`"relu"`, `"tanh"`, `"sigmoid"`, `"silu"`, `"softplus"`,
    /// `"identity"`).
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }

    /// The activation a configuration name denotes.
    pub fn from_name(name: &str) -> Option<Activation> {
        ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The activation at `x`. NaN propagates.
    #[inline]
    pub fn apply<T: Real>(self, x: T) -> T {
        match self {
            Activation::Relu => {
                if x < T::ZERO {
                    T::ZERO
                } else {
                    x
                }
            }
            Activation::Tanh => x.libm_tanh(),
            Activation::Sigmoid => sigmoid(x),
            Activation::Silu => x * sigmoid(x),
            Activation::Softplus => softplus(x),
            Activation::Identity => x,
        }
    }

    /// The derivative at `x` given `y = apply(x)`, computed from `y` where that is cheaper
    /// (`tanh′ = 1 − y²`, `sigmoid′ = y(1 − y)`: no second exponential), else as
    /// [`derivative`](Activation::derivative). Equal to `derivative(x)` up to rounding.
    #[inline]
    pub fn derivative_given<T: Real>(self, x: T, y: T) -> T {
        match self {
            Activation::Tanh => T::ONE - y * y,
            Activation::Sigmoid => y * (T::ONE - y),
            _ => self.derivative(x),
        }
    }

    /// The derivative at `x` (`relu'(0) = 0`).
    #[inline]
    pub fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Activation::Relu => {
                if x > T::ZERO {
                    T::ONE
                } else if x.is_nan() {
                    x
                } else {
                    T::ZERO
                }
            }
            Activation::Tanh => {
                let t = x.libm_tanh();
                T::ONE - t * t
            }
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (T::ONE - s)
            }
            Activation::Silu => {
                let s = sigmoid(x);
                s * (T::ONE + x * (T::ONE - s))
            }
            Activation::Softplus => sigmoid(x),
            Activation::Identity => T::ONE,
        }
    }
}

/// The logistic function, without overflow for large `|x|`.
#[inline]
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).libm_exp())
    } else {
        let e = x.libm_exp();
        e / (T::ONE + e)
    }
}

/// `ln(1 + e^x)` as `ln1p(e^(−|x|)) + max(x, 0)`: no overflow, full precision for `x ≪ 0`.
#[inline]
pub(crate) fn softplus<T: Real>(x: T) -> T {
    let positive = if x > T::ZERO { x } else { T::ZERO };
    (-x.abs()).libm_exp().libm_ln_1p() + positive
}

#[cfg(test)]
mod tests {
    use super::{softplus, Activation};
    use crate::real::Real;

    #[test]
    fn softplus_is_stable_at_extremes() {
        assert_eq!(softplus(1000.0f64), 1000.0);
        assert!((softplus(-800.0f64)) >= 0.0);
        assert!((softplus(-30.0f64) - (-30.0f64).libm_exp()).abs() < 1e-25);
        assert!((softplus(0.0f32) - core::f32::consts::LN_2).abs() < 1e-7);
    }

    #[test]
    fn relu_derivative_at_zero_is_zero() {
        assert_eq!(Activation::Relu.derivative(0.0f64), 0.0);
        assert_eq!(Activation::Relu.derivative(1e-300f64), 1.0);
        assert!(Activation::Relu.apply(f64::NAN).is_nan());
    }

    #[test]
    fn derivatives_match_differences() {
        for a in super::ALL {
            for &x in &[-3.0f64, -0.7, 0.4, 2.5] {
                let h = 1e-6;
                let fd = (a.apply(x + h) - a.apply(x - h)) / (2.0 * h);
                assert!((fd - a.derivative(x)).abs() < 1e-8, "{a:?} at {x}");
                let given = a.derivative_given(x, a.apply(x));
                assert!((given - a.derivative(x)).abs() < 1e-15, "{a:?} at {x}");
            }
        }
    }
}
