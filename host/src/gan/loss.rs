//! The losses of "Improving GAN Training with Probability Ratio Clipping and Sample
//! Reweighting" (Wu, Zhou, Wilson, Xing & Hu, NeurIPS 2020), written as its reference code runs
//! them (Holmeswww/PPOGAN, `cifar10/main.py`), on engine tensors of either precision on any
//! device, recorded for autodiff.
//!
//! **Critic** `f_φ` (a WGAN-GP critic; the CIFAR configuration adds CT-GAN's consistency term):
//!
//! ```text
//! w_i = softmax_i(f(G(z_i)))                        over the batch, no gradient
//! L_f = −mean_i f(x_i) + Σ_i w_i f(G(z_i))          (the code: mean(B·softmax(f)·f))
//!     + λ_GP · mean_i (‖∇_x̂ f(x̂_i)‖₂ − 1)²          x̂_i = a_i x_i + (1 − a_i) G(z_i)
//!     + mean_i max(0, λ₂(f¹_i − f²_i)² + 0.1·λ₂·mean_k (h¹_ik − h²_ik)² − M)
//! ```
//!
//! [`critic_loss`] is the first line with or without the re-weighting
//! ([`batch_softmax_weights`]: the weights are constants, so `∂L/∂f(G(z_i)) = w_i` exactly);
//! [`gradient_penalty`] the second line by double backward, before `λ_GP` (5 in the reference);
//! [`consistency_term`] the third (`λ₂ = 2`, `M = 0` in the reference).
//!
//! **Generator**, with an auxiliary sigmoid classifier `D` trained by [`bce_with_probs`] to tell
//! real (1) from fake (0): `D0 = D(G_old(z))` is frozen for the inner loop and
//!
//! ```text
//! P0  = (1 − D0) / max(D0, 1e−7)
//! r   = (1 − D1) / max(D1·P0, 1e−7)   ≈ p_θ(x) / p_θold(x)      D1 = D(G(z)), same z
//! s1  = r·A,  s2 = clip(r, 1 − ε, 1 + ε)·A                       A = f(G(z)), not detached
//! obj = min(s1, s2) if A > 0 else max(s1, s2)                    (the code; PPO: min always)
//! ```
//!
//! ([`probability_ratio`], [`clipped_surrogate`], [`ClipRule`]); the generator maximises
//! `mean(obj)`, so its loss is `−mean(obj)`. The code's rule differs from PPO's for `A ≤ 0`: it
//! takes `A·min(r, clip r)`, whose gradient through `r` vanishes above `1 + ε` and stays active
//! below `1 − ε`; PPO's `A·max(r, clip r)` does the reverse. Both agree for `A > 0`.
//!
//! Sub-gradients are PyTorch's, so the reference's gradients are reproduced also at the kinks:
//! a clamp passes the gradient on its closed interval (`x ≥ lo`, `x ≤ hi`), an element-wise
//! minimum or maximum of two equal values gives each half, `where(A > 0, …)` sends `A = 0` to
//! the `max` branch. Two places differ, both where the reference's own choice is a tie of
//! measure zero or a saturated sigmoid: [`consistency_term`]'s `max(0, ·)` gives no gradient at
//! exactly `M` (the code's `torch.max` gives half), and [`bce_with_probs`] differentiates its
//! clamped logarithm where PyTorch's `BCELoss` backward uses `(p − y)/max(p(1 − p), 1e−12)`
//! (the two agree wherever `p(1 − p) ≥ 1e−12`).
//!
//! Critic scores are `[B]` or `[B, 1]` (a linear layer's output); values are never read back
//! to the host, so these functions check shapes, not values: a non-finite score gives a
//! non-finite loss, for the training loop's finite check to catch.

use crate::autodiff::{grad, no_grad};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The reference's floor on a classifier output in a denominator (`torch.clamp(·, min=1e-7)`).
pub const RATIO_FLOOR: f64 = 1e-7;

/// PyTorch `BCELoss`'s floor on a logarithm.
pub const LOG_FLOOR: f64 = -100.0;

/// The batch size of a critic-score tensor: `[B]` or `[B, 1]` with `B ≥ 1`.
fn score_batch(name: &'static str, t: &Tensor) -> Result<usize> {
    match t.dims() {
        [b] | [b, 1] if *b > 0 => Ok(*b),
        _ => Err(Error::invalid(
            name,
            format!("a tensor of shape {}", t.shape()),
            "scores are [B] or [B, 1] with B ≥ 1",
        )),
    }
}

/// `x` clamped from below at `lo`, with PyTorch's gradient: 1 where `x ≥ lo`, else 0.
fn clamp_min(x: &Tensor, lo: f64) -> Result<Tensor> {
    let lo = Tensor::full_on(lo, x.dims(), x.dtype(), x.device())?;
    Ok(Tensor::where_(&lo.gt(x)?, &lo, x)?)
}

/// `x` clamped to `[lo, hi]`, with PyTorch's gradient: 1 where `lo ≤ x ≤ hi`, else 0.
fn clamp(x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
    let hi = Tensor::full_on(hi, x.dims(), x.dtype(), x.device())?;
    let below = clamp_min(x, lo)?;
    Ok(Tensor::where_(&x.gt(&hi)?, &hi, &below)?)
}

/// Element-wise minimum (`max = false`) or maximum of two same-shaped tensors with PyTorch's
/// gradient: all of it to the smaller (larger) one, half to each where they are equal.
fn min_max(x: &Tensor, y: &Tensor, max: bool) -> Result<Tensor> {
    let take_x = if max { x.gt(y)? } else { y.gt(x)? };
    let picked = Tensor::where_(&take_x, x, y)?;
    let tie = x.add(y)?.mul_scalar(0.5)?;
    Ok(Tensor::where_(&x.eq(y)?, &tie, &picked)?)
}

/// The re-weighting `w = softmax(f_fake)` over the batch of the critic's scores on fakes
/// (`[B]` or `[B, 1]`, the same shape back), detached: no gradient flows through the weights.
/// They sum to 1; the reference multiplies them by `B` and averages, the same thing.
///
/// # Errors
/// [`Error::InvalidInput`] for a shape other than `[B]` or `[B, 1]`; engine errors.
pub fn batch_softmax_weights(f_fake: &Tensor) -> Result<Tensor> {
    score_batch("f_fake", f_fake)?;
    Ok(f_fake.detach().softmax(0)?)
}

/// The critic's Wasserstein loss (to minimise): `−mean(f_real) + Σ_i w_i f_fake,i` with the
/// batch-softmax weights `w` ([`batch_softmax_weights`]) when `reweight`, else
/// `−mean(f_real) + mean(f_fake)`. A rank-0 tensor. `∂L/∂f_fake,i = w_i` (or `1/B`) and
/// `∂L/∂f_real,i = −1/B_real`: the weights pass no gradient. The two batches may differ in size.
///
/// # Errors
/// [`Error::InvalidInput`] for score shapes other than `[B]` / `[B, 1]`; engine errors (a
/// precision or device mismatch).
pub fn critic_loss(f_real: &Tensor, f_fake: &Tensor, reweight: bool) -> Result<Tensor> {
    score_batch("f_real", f_real)?;
    score_batch("f_fake", f_fake)?;
    let fake = if reweight {
        batch_softmax_weights(f_fake)?.mul(f_fake)?.sum_all()?
    } else {
        f_fake.mean_all()?
    };
    Ok(fake.sub(&f_real.mean_all()?)?)
}

/// WGAN-GP's gradient penalty `mean_i (‖∇_x̂ f(x̂)_i‖₂ − 1)²` at `x̂ = a·real + (1 − a)·fake`
/// (`a` `[B]`, broadcast over the other axes of `real`/`fake`: `[B, D]` or `[B, C, H, W]`), before
/// the caller's `λ_GP`. A rank-0 tensor.
///
/// `x̂` is a new variable built from the values of `real`, `fake` and `a` (no gradient flows
/// back to them, as in the reference, which interpolates `.data`); `critic` maps it to `B`
/// scores (`[B]` or `[B, 1]`). The input gradient is taken with `create_graph`, so the result
/// differentiates again with respect to whatever the critic's parameters are (double
/// backward). Where a sample's input gradient is exactly zero the norm's gradient is taken as
/// zero (PyTorch's `norm` sub-gradient), not `0/0`. A critic that ignores its input has
/// penalty 1.
///
/// # Errors
/// [`Error::InvalidInput`] if `real` and `fake` differ in shape or are not batches of rank ≥ 2,
/// if `a` is not `[B]`, if the critic's output is not `B` scores, or if it was not recorded
/// (called inside [`no_grad`]); the critic's own errors; engine errors.
pub fn gradient_penalty(
    critic: &dyn Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    a: &Tensor,
) -> Result<Tensor> {
    let dims = real.dims();
    if fake.dims() != dims || dims.len() < 2 || dims[0] == 0 {
        return Err(Error::invalid(
            "fake",
            format!("a tensor of shape {}", fake.shape()),
            format!(
                "real and fake must be the same batch [B, …] of rank ≥ 2 (real is {})",
                real.shape()
            ),
        ));
    }
    let b = dims[0];
    if a.dims() != [b] {
        return Err(Error::invalid(
            "a",
            format!("a tensor of shape {}", a.shape()),
            format!("one interpolation weight per sample: [{b}]"),
        ));
    }
    let mut a_dims = vec![1; dims.len()];
    a_dims[0] = b;
    let x_hat = no_grad(|| -> Result<Tensor> {
        let a = a.reshape(&a_dims)?;
        Ok(a.mul(real)?.add(&a.affine(-1.0, 1.0)?.mul(fake)?)?)
    })?
    .variable();
    let out = critic(&x_hat)?;
    if out.numel() != b || score_batch("critic output", &out).is_err() {
        return Err(Error::invalid(
            "critic output",
            format!("a tensor of shape {}", out.shape()),
            format!("one score per sample: [{b}] or [{b}, 1]"),
        ));
    }
    if !out.is_tracked() {
        return Err(Error::invalid(
            "critic output",
            "not recorded",
            "the gradient penalty differentiates the critic: call it with recording on, not \
             inside `no_grad`",
        ));
    }
    let Some(g) = grad(&[&out], &[None], &[&x_hat], true)?.pop().flatten() else {
        // The critic ignores its input: every gradient norm is 0.
        return Ok(Tensor::full_on(1.0, &[], real.dtype(), real.device())?);
    };
    let sq = g.reshape(&[b, g.numel() / b])?.square()?.sum(&[1], false)?;
    // √ with a zero sub-gradient at 0: where the squared norm is 0, take √1 (a constant) times 0.
    let pos = sq.step()?;
    let safe = Tensor::where_(&pos, &sq, &sq.ones_like()?)?;
    let norm = safe.sqrt()?.mul(&pos)?;
    Ok(norm.add_scalar(-1.0)?.square()?.mean_all()?)
}

/// CT-GAN's consistency term on two stochastic (dropout) passes of the critic over the same
/// real batch: scores `f1`, `f2` (`[B]` or `[B, 1]`) and features `h1`, `h2` (`[B, …]`, averaged
/// over all axes but the first):
/// `mean_i max(0, λ₂(f¹_i − f²_i)² + 0.1·λ₂·mean_k (h¹_ik − h²_ik)² − M)`. A rank-0 tensor.
///
/// The reference adds a `[B, 1]` score term to a `[B]` feature term, which broadcasts to a
/// `[B, B]` matrix before the `max` and the mean; at its `M = 0` every entry is non-negative and
/// the mean of that matrix equals this per-sample form (value and gradient); for `M > 0` the
/// two differ, and this is the per-sample form of the CT-GAN paper.
///
/// # Errors
/// [`Error::InvalidInput`] for mismatched shapes, a negative or non-finite `lambda2`, a
/// non-finite `m`; engine errors.
pub fn consistency_term(
    f1: &Tensor,
    f2: &Tensor,
    h1: &Tensor,
    h2: &Tensor,
    lambda2: f64,
    m: f64,
) -> Result<Tensor> {
    let b = score_batch("f1", f1)?;
    if score_batch("f2", f2)? != b {
        return Err(Error::invalid(
            "f2",
            format!("a tensor of shape {}", f2.shape()),
            format!("the two passes score the same batch (f1 is {})", f1.shape()),
        ));
    }
    let hd = h1.dims();
    if h2.dims() != hd || hd.len() < 2 || hd[0] != b {
        return Err(Error::invalid(
            "h2",
            format!("a tensor of shape {}", h2.shape()),
            format!(
                "both passes' features are [{b}, …] of rank ≥ 2, the same shape (h1 is {})",
                h1.shape()
            ),
        ));
    }
    if !(lambda2 >= 0.0 && lambda2.is_finite()) {
        return Err(Error::invalid(
            "lambda2",
            lambda2,
            "must be non-negative and finite",
        ));
    }
    if !m.is_finite() {
        return Err(Error::invalid("m", m, "must be finite"));
    }
    let k = h1.numel() / b;
    let df = f1
        .reshape(&[b])?
        .sub(&f2.reshape(&[b])?)?
        .square()?
        .mul_scalar(lambda2)?;
    let dh = h1
        .sub(h2)?
        .square()?
        .reshape(&[b, k])?
        .mean(&[1], false)?
        .mul_scalar(0.1 * lambda2)?;
    Ok(df.add(&dh)?.add_scalar(-m)?.relu()?.mean_all()?)
}

/// The density-ratio estimate `r = (1 − D1)/max(D1·P0, 1e−7)` with
/// `P0 = (1 − D0)/max(D0, 1e−7)`, from the auxiliary classifier's sigmoid outputs on the same
/// latents: `d0` under the generator before the inner loop (treated as a constant: detached)
/// and `d1` under the current one. Same shape as the inputs; the gradient flows through `d1`,
/// including PyTorch's clamp gradient (none where `D1·P0 < 1e−7`).
///
/// # Errors
/// [`Error::InvalidInput`] if `d0` and `d1` differ in shape or are empty; engine errors.
pub fn probability_ratio(d0: &Tensor, d1: &Tensor) -> Result<Tensor> {
    if d0.dims() != d1.dims() || d1.numel() == 0 {
        return Err(Error::invalid(
            "d1",
            format!("a tensor of shape {}", d1.shape()),
            format!(
                "the classifier's outputs on the same latents, the same non-empty shape as d0 ({})",
                d0.shape()
            ),
        ));
    }
    let d0 = d0.detach();
    let p0 = d0.affine(-1.0, 1.0)?.div(&clamp_min(&d0, RATIO_FLOOR)?)?;
    Ok(d1
        .affine(-1.0, 1.0)?
        .div(&clamp_min(&d1.mul(&p0)?, RATIO_FLOOR)?)?)
}

/// How [`clipped_surrogate`] combines the unclipped and clipped terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClipRule {
    /// The reference code's rule: `min(s1, s2)` where `A > 0`, else `max(s1, s2)`.
    #[default]
    Code,
    /// PPO's rule: `min(s1, s2)` for every sign of `A`.
    Ppo,
}

impl ClipRule {
    /// Parses `code` or `ppo`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the choices.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "code" => Ok(ClipRule::Code),
            "ppo" => Ok(ClipRule::Ppo),
            _ => Err(Error::invalid("clip_rule", s, "expected code or ppo")),
        }
    }

    /// The name [`ClipRule::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            ClipRule::Code => "code",
            ClipRule::Ppo => "ppo",
        }
    }
}

/// The per-sample clipped surrogate (same shape as `r`): with `s1 = r·A` and
/// `s2 = clip(r, 1 − ε, 1 + ε)·A`, `min(s1, s2)` where `A > 0` and `max(s1, s2)` elsewhere
/// ([`ClipRule::Code`]), or `min(s1, s2)` everywhere ([`ClipRule::Ppo`]). Gradients flow through
/// both `r` and `A` with PyTorch's sub-gradients (see the module docs). The generator maximises
/// the mean: its loss is `−mean`.
///
/// # Errors
/// [`Error::InvalidInput`] for `eps` outside (0, 1) or `r` and `a` of different (or empty)
/// shapes; engine errors.
pub fn clipped_surrogate(r: &Tensor, a: &Tensor, eps: f64, rule: ClipRule) -> Result<Tensor> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(Error::invalid(
            "eps",
            eps,
            "the clip range must lie in (0, 1)",
        ));
    }
    if r.dims() != a.dims() || r.numel() == 0 {
        return Err(Error::invalid(
            "a",
            format!("a tensor of shape {}", a.shape()),
            format!(
                "one critic score per ratio, the same non-empty shape as r ({})",
                r.shape()
            ),
        ));
    }
    let s1 = r.mul(a)?;
    let s2 = clamp(r, 1.0 - eps, 1.0 + eps)?.mul(a)?;
    let lower = min_max(&s1, &s2, false)?;
    Ok(match rule {
        ClipRule::Ppo => lower,
        ClipRule::Code => {
            let upper = min_max(&s1, &s2, true)?;
            Tensor::where_(&a.gt(&a.zeros_like()?)?, &lower, &upper)?
        }
    })
}

/// `max(ln x, −100)` element-wise, differentiable where `ln x ≥ −100` (gradient `1/x`), with
/// gradient 0 beyond (no `0·∞`); `ln1p` gives `ln(1 − p)` as `ln1p(−p)` (accurate for small
/// `p`). A NaN (or negative) input stays NaN.
fn floored_log(x: &Tensor, one_minus: bool) -> Result<Tensor> {
    let log = |t: &Tensor| -> Result<Tensor> {
        Ok(if one_minus {
            t.neg()?.log1p()?
        } else {
            t.log()?
        })
    };
    let floor = Tensor::full_on(LOG_FLOOR, x.dims(), x.dtype(), x.device())?;
    let tiny = floor.gt(&log(&x.detach())?)?;
    // Where the floor applies, take the log of a harmless constant so no ∞ meets a 0 gradient.
    let harmless = if one_minus { 0.0 } else { 1.0 };
    let safe = Tensor::where_(
        &tiny,
        &Tensor::full_on(harmless, x.dims(), x.dtype(), x.device())?,
        x,
    )?;
    Ok(Tensor::where_(&tiny, &floor, &log(&safe)?)?)
}

/// Mean binary cross-entropy of probabilities `p` (sigmoid outputs, any non-empty shape) against
/// the constant label `target` (0 for fakes, 1 for reals; any value in [0, 1] is taken):
/// `−mean(y·max(ln p, −100) + (1 − y)·max(ln(1 − p), −100))`, PyTorch `BCELoss`'s value
/// (its log floor makes `p = 0` or `1` finite). A rank-0 tensor. The gradient is that of this
/// expression; PyTorch's backward differs only where `p(1 − p) < 1e−12` (module docs).
///
/// # Errors
/// [`Error::InvalidInput`] for `target` outside [0, 1] or an empty `p`; engine errors.
pub fn bce_with_probs(p: &Tensor, target: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&target) {
        return Err(Error::invalid(
            "target",
            target,
            "a label must lie in [0, 1]",
        ));
    }
    if p.numel() == 0 {
        return Err(Error::invalid(
            "p",
            format!("a tensor of shape {}", p.shape()),
            "no probabilities",
        ));
    }
    let sum = if target == 1.0 {
        floored_log(p, false)?
    } else if target == 0.0 {
        floored_log(p, true)?
    } else {
        floored_log(p, false)?
            .mul_scalar(target)?
            .add(&floored_log(p, true)?.mul_scalar(1.0 - target)?)?
    };
    Ok(sum.mean_all()?.neg()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DType;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_f64s(v, &[v.len()], DType::F64).unwrap()
    }

    #[test]
    fn clamp_passes_the_gradient_on_the_closed_interval() {
        let x = t(&[0.5, 0.6, 1.0, 1.4, 1.5]).variable();
        let y = clamp(&x, 0.6, 1.4).unwrap();
        assert_eq!(y.to_vec_f64().unwrap(), [0.6, 0.6, 1.0, 1.4, 1.4]);
        let g = grad(&[&y.sum_all().unwrap()], &[None], &[&x], false).unwrap();
        let g = g[0].as_ref().unwrap().to_vec_f64().unwrap();
        assert_eq!(g, [0.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn ties_share_the_gradient_in_halves() {
        let x = t(&[1.0, 2.0, 3.0]).variable();
        let y = t(&[2.0, 2.0, 2.0]).variable();
        for max in [false, true] {
            let m = min_max(&x, &y, max).unwrap();
            let want = if max {
                [2.0, 2.0, 3.0]
            } else {
                [1.0, 2.0, 2.0]
            };
            assert_eq!(m.to_vec_f64().unwrap(), want);
            let g = grad(&[&m.sum_all().unwrap()], &[None], &[&x, &y], false).unwrap();
            let gx = g[0].as_ref().unwrap().to_vec_f64().unwrap();
            let gy = g[1].as_ref().unwrap().to_vec_f64().unwrap();
            let wx = if max {
                [0.0, 0.5, 1.0]
            } else {
                [1.0, 0.5, 0.0]
            };
            assert_eq!(gx, wx);
            assert_eq!(gy, wx.map(|v| 1.0 - v));
        }
    }

    #[test]
    fn the_floored_log_keeps_nan_and_gives_no_nan_gradient_at_zero() {
        let x = t(&[0.0, 1e-50, 0.25, f64::NAN]).variable();
        let y = floored_log(&x, false).unwrap();
        let v = y.to_vec_f64().unwrap();
        assert_eq!(&v[..2], &[-100.0, -100.0]);
        assert_eq!(v[2], 0.25f64.ln());
        assert!(v[3].is_nan());
        let g = grad(
            &[&y.narrow(0, 0, 3).unwrap().sum_all().unwrap()],
            &[None],
            &[&x],
            false,
        )
        .unwrap();
        let g = g[0].as_ref().unwrap().to_vec_f64().unwrap();
        assert_eq!(&g[..3], &[0.0, 0.0, 4.0]);
    }
}
