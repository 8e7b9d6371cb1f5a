//! The CPU twin of `cuda/hmc.cu`: the fused leapfrog update and the partial sums of the
//! Metropolis–Hastings test, in the kernels' arithmetic and order (the CUDA emulation tests
//! compare them bit for bit).

use super::Float;
use crate::backend::hmc::{add_partials, LeapfrogArgs, PriorArgs, PriorKind, CHUNK};

/// ½ log 2π.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

fn mixture_terms<T: Float>(w: T, wide: T, narrow: T, t: T) -> (T, T) {
    let half = T::from_f64(0.5);
    let (zw, zn) = (t / wide, t / narrow);
    (
        w.ln() - half * (zw * zw) - wide.ln(),
        (T::ONE - w).ln() - half * (zn * zn) - narrow.ln(),
    )
}

/// `d log p / dθ` at `t` (untempered).
pub fn prior_gradient<T: Float>(prior: &PriorArgs, t: T) -> T {
    let [a, b, c] = prior.params.map(T::from_f64);
    match prior.kind {
        PriorKind::None => T::ZERO,
        PriorKind::Gaussian => -t / (a * a),
        PriorKind::Mixture => {
            let (la, lb) = mixture_terms(a, b, c, t);
            let r = T::ONE / (T::ONE + (lb - la).exp());
            -t * (r / (b * b) + (T::ONE - r) / (c * c))
        }
        PriorKind::Logistic => -(T::from_f64(0.5) * t / a).tanh() / a,
    }
}

/// `log p(t)` (untempered; 0 for no prior).
pub fn prior_log_density<T: Float>(prior: &PriorArgs, t: T) -> T {
    let [a, b, c] = prior.params.map(T::from_f64);
    let half_ln_2pi = T::from_f64(HALF_LN_2PI);
    match prior.kind {
        PriorKind::None => T::ZERO,
        PriorKind::Gaussian => {
            let z = t / a;
            -T::from_f64(0.5) * (z * z) - a.ln() - half_ln_2pi
        }
        PriorKind::Mixture => {
            let (la, lb) = mixture_terms(a, b, c, t);
            let m = if la > lb { la } else { lb };
            m + ((la - m).exp() + (lb - m).exp()).ln() - half_ln_2pi
        }
        PriorKind::Logistic => {
            // −|z| − 2 log(1 + e^{−|z|}) − log b, symmetric and overflow-free.
            let z = (t / a).abs();
            -z - T::from_f64(2.0) * (-z).exp().ln_1p() - a.ln()
        }
    }
}

/// `log p(x) − log p(y)`; for the Gaussian `−(x − y)(x + y)/(2σ²)`, the reference's form.
pub fn prior_difference<T: Float>(prior: &PriorArgs, x: T, y: T) -> T {
    if prior.kind == PriorKind::Gaussian {
        let a = T::from_f64(prior.params[0]);
        return -((x - y) * (x + y)) / (T::from_f64(2.0) * a * a);
    }
    prior_log_density(prior, x) - prior_log_density(prior, y)
}

super::simd::multiversion! {
    /// `hmc_leapfrog`: with `G = g + ∇log p(θ)/temp`, `kicks` half kicks `p ← p + half·G`, then
    /// (if `drift`) `θ ← θ + eps·p`.
    ///
    /// The prior's kind, its parameters, the kick count and the drift are chosen once per call,
    /// not per element, so that each of their loops vectorises (as wide as the CPU allows); every
    /// element takes the arithmetic of [`prior_gradient`] in its order (the CUDA emulation tests
    /// compare the two bit for bit).
    pub fn leapfrog<T: Float>(theta: &mut [T], p: &mut [T], g: &[T], h: &LeapfrogArgs) {
        match h.prior.kind {
            PriorKind::None => kick_drift(theta, p, g, h, |_| T::ZERO),
            PriorKind::Gaussian => {
                let a = T::from_f64(h.prior.params[0]);
                let var = a * a;
                kick_drift(theta, p, g, h, |t| -t / var);
            }
            PriorKind::Mixture | PriorKind::Logistic => {
                kick_drift(theta, p, g, h, |t| prior_gradient(&h.prior, t));
            }
        }
    }
}

/// [`leapfrog`]'s loop for one prior gradient `grad`, the kick count and the drift hoisted out.
#[inline(always)]
fn kick_drift<T: Float>(
    theta: &mut [T],
    p: &mut [T],
    g: &[T],
    h: &LeapfrogArgs,
    grad: impl Fn(T) -> T,
) {
    let (half, eps, temp) = (T::from_f64(h.half), T::from_f64(h.eps), T::from_f64(h.temp));
    let step = |t: &mut T, pi: &mut T, gi: T, kicks: u64, drift: bool| {
        let gi = gi + grad(*t) / temp;
        let mut v = *pi;
        for _ in 0..kicks {
            v += half * gi;
        }
        *pi = v;
        if drift {
            *t += eps * v;
        }
    };
    let each = theta.iter_mut().zip(p.iter_mut()).zip(g);
    match (h.kicks, h.drift) {
        (1, true) => each.for_each(|((t, pi), &gi)| step(t, pi, gi, 1, true)),
        (2, true) => each.for_each(|((t, pi), &gi)| step(t, pi, gi, 2, true)),
        (1, false) => each.for_each(|((t, pi), &gi)| step(t, pi, gi, 1, false)),
        (kicks, drift) => each.for_each(|((t, pi), &gi)| step(t, pi, gi, kicks, drift)),
    }
}

/// Adds `f(i)` for `i` in `0..n` in chunks of [`CHUNK`] (each from +0, in f64), then the chunks in
/// order — the kernels' partial sums and the host's final pass.
fn chunked_sum(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let parts: Vec<f64> = (0..n)
        .step_by(CHUNK)
        .map(|start| (start..(start + CHUNK).min(n)).fold(0.0, |s, i| s + f(i)))
        .collect();
    add_partials(&parts)
}

/// `Σ x²` in f64, in [`CHUNK`]s.
pub fn sum_squares<T: Float>(x: &[T]) -> f64 {
    chunked_sum(x.len(), |i| {
        let v = x[i].to_f64();
        v * v
    })
}

/// `Σ [log p(x) − log p(y)]` (untempered) in f64, in [`CHUNK`]s. `x` and `y` have equal lengths.
pub fn prior_difference_sum<T: Float>(prior: &PriorArgs, x: &[T], y: &[T]) -> f64 {
    chunked_sum(x.len(), |i| prior_difference(prior, x[i], y[i]).to_f64())
}
