//! Distillation losses, as `gnosis/distillation/classification.py` (Stanton et al., "Does
//! Knowledge Distillation Really Work?", NeurIPS 2021) defines them, with per-example
//! temperatures (real rows at the run's `T`, synthetic rows at 1, as the reference's
//! `synth_temp`).
//!
//! The teacher's logits are first reduced over its members by `z̄ = log mean_m softmax(z^(m))`
//! ([`log_mean_softmax`], the reference's `reduce_ensemble_logits`), then every row `i` is
//! tempered by its own `T_i`: `p_t = softmax(z̄/T)`, `log p_s = log_softmax(z_s/T)`. With `B`
//! rows in the batch, the first `R` of them real:
//!
//! | loss | value |
//! | --- | --- |
//! | [`Loss::FwdCe`] (default) | `−(1/B) Σ_i T_i² Σ_j p_t,ij log p_s,ij` (`ts_fwd_cross_ent`) |
//! | [`Loss::Kl`] | `(1/B) Σ_i KL(p_t,i ‖ p_s,i)`, no `T²` (`ts_kl`) |
//! | [`Loss::SymKl`] | `(1/B) Σ_i KL(p_t,i ‖ p_s,i) + KL(p_s,i ‖ p_t,i)` (`sym_kl`) |
//! | [`Loss::Brier`] | `(1/(B·C)) Σ_ij (p_s,ij − p_t,ij)²` (`brier`, averaged over rows and classes) |
//! | [`Loss::HardCe`] | `−(1/R) Σ_{i<R} T_i² log p_s,i,argmax z̄_i` (`ts_hard_cross_ent`, real rows only) |
//! | [`Loss::RevCe`] | `−(1/B) Σ_i T_i² Σ_j p_s,ij log p_t,ij` (`ts_rev_cross_ent`) |
//! | [`Loss::Cvx`] | `β·HardCe + (1 − β)·FwdCe`, β annealed linearly from 1 to 0 over the epochs (`ts_cvx_cross_ent`) |
//!
//! The student's objective mixes in the true labels of the real rows:
//! `L = α·CE(z_s[:R], y) + (1 − α)·L_soft` ([`objective`]; the reference's
//! `ClassifierStudentLoss`). At `T = 1` forward cross-entropy and KL differ by the teacher's
//! entropy, so their gradients agree (the reference's `tests/test_kd_loss.py`).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Which soft loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Temperature forward cross-entropy with the `T²` factor (the reference's default).
    FwdCe,
    /// `KL(teacher ‖ student)` at temperature `T`, no `T²`.
    Kl,
    /// `KL(teacher ‖ student) + KL(student ‖ teacher)`.
    SymKl,
    /// Squared difference of the tempered probabilities, averaged over rows and classes.
    Brier,
    /// Cross-entropy on the teacher's arg-max labels, `× T²`, real rows only.
    HardCe,
    /// Reverse cross-entropy `−T² Σ p_s log p_t`.
    RevCe,
    /// `β·HardCe + (1 − β)·FwdCe` with β annealed from 1 to 0.
    Cvx,
}

impl Loss {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Loss::FwdCe => "fwd-ce",
            Loss::Kl => "kl",
            Loss::SymKl => "sym-kl",
            Loss::Brier => "brier",
            Loss::HardCe => "hard-ce",
            Loss::RevCe => "rev-ce",
            Loss::Cvx => "cvx",
        }
    }

    /// β of [`Loss::Cvx`] at epoch `epoch` (0-based) of `epochs`: `1 − epoch/(epochs − 1)`,
    /// from 1 at the first epoch to 0 at the last (1 for a one-epoch run).
    pub fn cvx_beta(epoch: usize, epochs: usize) -> f64 {
        if epochs <= 1 {
            1.0
        } else {
            1.0 - epoch.min(epochs - 1) as f64 / (epochs - 1) as f64
        }
    }
}

/// `z̄ = log mean_m softmax(z^(m))` row by row, for `members` logit sets of `[rows, classes]`
/// each (row-major): the reference's `reduce_ensemble_logits`,
/// `logsumexp_m log_softmax(z^(m)) − log M`. One member gives its log-softmax.
///
/// # Panics
/// If `members` is empty or their lengths differ.
pub fn log_mean_softmax(members: &[Vec<f64>], classes: usize) -> Vec<f64> {
    assert!(!members.is_empty(), "at least one member");
    let len = members[0].len();
    assert!(members.iter().all(|m| m.len() == len), "members' lengths");
    let log_m = (members.len() as f64).ln();
    let logp: Vec<Vec<f64>> = members
        .iter()
        .map(|z| z.chunks_exact(classes).flat_map(log_softmax_row).collect())
        .collect();
    (0..len)
        .map(|k| {
            let mx = logp.iter().map(|l| l[k]).fold(f64::NEG_INFINITY, f64::max);
            if mx == f64::NEG_INFINITY {
                return mx;
            }
            mx + logp.iter().map(|l| (l[k] - mx).exp()).sum::<f64>().ln() - log_m
        })
        .collect()
}

/// `log_softmax` of one row.
pub(crate) fn log_softmax_row(z: &[f64]) -> Vec<f64> {
    let mx = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = mx + z.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
    z.iter().map(|v| v - lse).collect()
}

/// One batch's inputs to a loss: the student's logits (tracked), the teacher's reduced logits
/// `z̄` (constants), each row's temperature, and how many leading rows are real.
pub struct LossInputs<'a> {
    /// Student logits `[B, C]`.
    pub student: &'a Tensor,
    /// Teacher's reduced logits `z̄` `[B, C]` (not differentiated).
    pub teacher: &'a Tensor,
    /// `T_i` per row (`B` of them).
    pub temperatures: &'a [f64],
    /// The first `real` rows are real data (labels, hard-label terms); the rest synthetic.
    pub real: usize,
}

impl LossInputs<'_> {
    fn check(&self) -> Result<(usize, usize)> {
        let d = self.student.dims();
        if d.len() != 2 || self.teacher.dims() != d || self.temperatures.len() != d[0] {
            return Err(Error::invalid(
                "distillation batch",
                format!("student {:?}", d),
                format!(
                    "teacher {:?} and {} temperatures must match",
                    self.teacher.dims(),
                    self.temperatures.len()
                ),
            ));
        }
        if self.real > d[0] {
            return Err(Error::invalid(
                "distillation batch",
                self.real,
                format!("more real rows than the batch's {}", d[0]),
            ));
        }
        if let Some(t) = self
            .temperatures
            .iter()
            .find(|t| !(**t > 0.0 && t.is_finite()))
        {
            return Err(Error::invalid(
                "temperature",
                t,
                "must be positive and finite",
            ));
        }
        Ok((d[0], d[1]))
    }
}

/// The soft loss `loss` of a batch; `beta` is [`Loss::Cvx`]'s weight (ignored by the others).
///
/// # Errors
/// [`Error::InvalidInput`] for shapes that do not match or a non-positive temperature; engine
/// errors.
pub fn soft_loss(loss: Loss, b: &LossInputs<'_>, beta: f64) -> Result<Tensor> {
    let (rows, classes) = b.check()?;
    let (dt, dev) = (b.student.dtype(), b.student.device());
    let col = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_f64s(&v, &[rows, 1], dt)?.to_device(dev)?)
    };
    let inv_t = col(b.temperatures.iter().map(|t| 1.0 / t).collect())?;
    let t_sq = col(b.temperatures.iter().map(|t| t * t).collect())?;
    let teacher = b.teacher.detach();
    let logp_s = b.student.mul(&inv_t)?.log_softmax(-1)?;
    let logp_t = teacher.mul(&inv_t)?.log_softmax(-1)?;
    let p_t = logp_t.exp()?;
    let inv_b = 1.0 / rows as f64;
    let fwd = || -> Result<Tensor> {
        Ok(p_t
            .mul(&logp_s)?
            .mul(&t_sq)?
            .sum_all()?
            .mul_scalar(-inv_b)?)
    };
    let hard = || -> Result<Tensor> {
        if b.real == 0 {
            return Ok(b.student.sum_all()?.mul_scalar(0.0)?);
        }
        let labels = teacher.narrow(0, 0, b.real)?.argmax(-1)?;
        Ok(logp_s
            .narrow(0, 0, b.real)?
            .gather_rows(&labels)?
            .reshape(&[b.real, 1])?
            .mul(&t_sq.narrow(0, 0, b.real)?)?
            .sum_all()?
            .mul_scalar(-1.0 / b.real as f64)?)
    };
    let kl_ts = || -> Result<Tensor> {
        Ok(p_t
            .mul(&logp_t.sub(&logp_s)?)?
            .sum_all()?
            .mul_scalar(inv_b)?)
    };
    Ok(match loss {
        Loss::FwdCe => fwd()?,
        Loss::Kl => kl_ts()?,
        Loss::SymKl => {
            let p_s = logp_s.exp()?;
            kl_ts()?.add(
                &p_s.mul(&logp_s.sub(&logp_t)?)?
                    .sum_all()?
                    .mul_scalar(inv_b)?,
            )?
        }
        Loss::Brier => logp_s
            .exp()?
            .sub(&p_t)?
            .square()?
            .sum_all()?
            .mul_scalar(inv_b / classes as f64)?,
        Loss::HardCe => hard()?,
        Loss::RevCe => logp_s
            .exp()?
            .mul(&logp_t)?
            .mul(&t_sq)?
            .sum_all()?
            .mul_scalar(-inv_b)?,
        Loss::Cvx => hard()?
            .mul_scalar(beta)?
            .add(&fwd()?.mul_scalar(1.0 - beta)?)?,
    })
}

/// The student's objective `α·CE(z_s[:R], y) + (1 − α)·L_soft`: `labels` are the true classes
/// of the `real` leading rows (the cross-entropy term is left out when `α = 0` or there are no
/// real rows).
///
/// # Errors
/// As [`soft_loss`]; [`Error::InvalidInput`] for `α` outside [0, 1] or a label count other than
/// `real`.
pub fn objective(
    loss: Loss,
    b: &LossInputs<'_>,
    labels: &[usize],
    alpha: f64,
    beta: f64,
) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::invalid("alpha", alpha, "must lie in [0, 1]"));
    }
    if labels.len() != b.real {
        return Err(Error::invalid(
            "labels",
            labels.len(),
            format!("one per real row ({})", b.real),
        ));
    }
    let soft = soft_loss(loss, b, beta)?;
    if alpha == 0.0 || b.real == 0 {
        return Ok(soft);
    }
    let hard = b.student.narrow(0, 0, b.real)?.cross_entropy(labels)?;
    Ok(hard
        .mul_scalar(alpha)?
        .add(&soft.mul_scalar(1.0 - alpha)?)?)
}
