//! Optimizers (SGD with momentum/Nesterov, Adam, AdamW), learning-rate schedules and gradient
//! clipping. Each update is one fused pass per parameter over its buffers (the GPU backend's
//! fused kernels mirror these loops), following PyTorch's definitions.

use crate::backend::cpu::kernels::push_all;
use crate::backend::cpu::{CpuStorage, Float};
use crate::backend::{AdamHyper, DType, Device, SgdHyper, Storage};
use crate::error::{Error, Result};
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// SGD: `b ← μb + (g + λp)`, `p ← p − lr·(Nesterov ? g + λp + μb : b)`.
    Sgd {
        /// Momentum μ (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay λ (added to the gradient).
        weight_decay: f64,
    },
    /// Adam (Kingma & Ba 2015) with bias correction; L2 weight decay added to the gradient.
    Adam {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
        /// L2 weight decay.
        weight_decay: f64,
    },
    /// Adam as Kingma & Ba (ICLR 2015) write it in Algorithm 1: the bias-corrected moments
    /// `m̂ = m/(1 − β₁ᵗ)` and `v̂ = v/(1 − β₂ᵗ)` formed explicitly, then
    /// `p ← p − lr·m̂/(√v̂ + ε)`; no weight decay. Equal to [`OptimizerKind::Adam`] in exact
    /// arithmetic — that one folds the corrections into the step size and the denominator, as
    /// PyTorch does, so that one fused pass serves CPU and GPU — but rounded differently, so
    /// the two part in the last bits. CPU parameters only (a step on a GPU parameter is
    /// refused): meant for a few scalars, such as Keel's GP hyperparameters. Like every
    /// variant here, it stores its moments with subnormals flushed to zero.
    AdamAlgorithm1 {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
    /// AdamW (Loshchilov & Hutter 2019): decoupled weight decay `p ← p − lr·λ·p`.
    AdamW {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
        /// Decoupled weight decay λ.
        weight_decay: f64,
    },
}

impl OptimizerKind {
    /// Adam with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8, no decay).
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// [`OptimizerKind::AdamAlgorithm1`] with β = (0.9, 0.999), ε = 1e-8.
    pub fn adam_algorithm1() -> Self {
        OptimizerKind::AdamAlgorithm1 {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// AdamW with PyTorch's defaults and the given decay (PyTorch's default is 1e-2).
    pub fn adamw(weight_decay: f64) -> Self {
        OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, v: f64| Err(Error::invalid(name, v, "out of range"));
        let finite_non_negative = |v: f64| v >= 0.0 && v.is_finite();
        match *self {
            OptimizerKind::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad("momentum", momentum);
                }
                if !finite_non_negative(weight_decay) {
                    return bad("weight decay", weight_decay);
                }
            }
            OptimizerKind::AdamAlgorithm1 { beta1, beta2, eps } => {
                return OptimizerKind::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay: 0.0,
                }
                .validate();
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimizerKind::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1) {
                    return bad("beta1", beta1);
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("beta2", beta2);
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return bad("eps", eps);
                }
                if !finite_non_negative(weight_decay) {
                    return bad("weight decay", weight_decay);
                }
            }
        }
        Ok(())
    }
}

/// An optimizer bound to a parameter set. Its moment buffers live on each parameter's device.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    step: u64,
    /// First moments (Adam) or momentum buffers (SGD), created on first use.
    m: Vec<Option<Storage>>,
    /// Second moments (Adam).
    v: Vec<Option<Storage>>,
}

impl Optimizer {
    /// A fresh optimizer for `params`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for out-of-range hyperparameters or mixed element types.
    pub fn new(kind: OptimizerKind, params: &Params) -> Result<Self> {
        kind.validate()?;
        if let Some(first) = params.values().first() {
            if params.values().iter().any(|t| t.dtype() != first.dtype()) {
                return Err(Error::invalid(
                    "parameters",
                    "mixed",
                    "all parameters must share one element type",
                ));
            }
        }
        let n = params.len();
        Ok(Optimizer {
            kind,
            step: 0,
            m: (0..n).map(|_| None).collect(),
            v: (0..n).map(|_| None).collect(),
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The optimizer's state on the host, for a checkpoint: steps taken and, per parameter, its
    /// first and second moment buffers (`None` until first used).
    ///
    /// # Errors
    /// Device errors copying the buffers.
    #[allow(clippy::type_complexity)]
    pub fn state(&self) -> Result<(u64, Vec<Option<Vec<f64>>>, Vec<Option<Vec<f64>>>)> {
        let host = |slots: &[Option<Storage>]| -> Result<Vec<Option<Vec<f64>>>> {
            slots
                .iter()
                .map(|s| {
                    s.as_ref()
                        .map(|st| {
                            Ok(match &st.to_cpu()? {
                                CpuStorage::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
                                CpuStorage::F64(v) => v.clone(),
                            })
                        })
                        .transpose()
                })
                .collect()
        };
        Ok((self.step, host(&self.m)?, host(&self.v)?))
    }

    /// Restores a [`state`](Optimizer::state) for `params` (buffers take each parameter's element
    /// type and device).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the buffers do not match the parameters in number or size.
    pub fn restore(
        &mut self,
        params: &Params,
        step: u64,
        m: Vec<Option<Vec<f64>>>,
        v: Vec<Option<Vec<f64>>>,
    ) -> Result<()> {
        let n = params.len();
        if m.len() != n || v.len() != n {
            return Err(Error::LengthMismatch {
                op: "optimizer state: moment buffers and parameters",
                lhs: m.len().max(v.len()),
                rhs: n,
            });
        }
        let load = |slots: Vec<Option<Vec<f64>>>| -> Result<Vec<Option<Storage>>> {
            slots
                .into_iter()
                .zip(params.values())
                .map(|(s, p)| {
                    s.map(|data| {
                        if data.len() != p.numel() {
                            return Err(Error::LengthMismatch {
                                op: "optimizer state: a moment buffer and its parameter",
                                lhs: data.len(),
                                rhs: p.numel(),
                            });
                        }
                        let cpu = match p.dtype() {
                            DType::F32 => CpuStorage::F32(data.iter().map(|&x| x as f32).collect()),
                            DType::F64 => CpuStorage::F64(data),
                        };
                        Storage::from_cpu(cpu, p.device())
                    })
                    .transpose()
                })
                .collect()
        };
        self.m = load(m)?;
        self.v = load(v)?;
        self.step = step;
        Ok(())
    }

    /// Applies one update with learning rate `lr` and gradients aligned with `params`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a gradient's shape differs from its parameter's;
    /// [`Error::InvalidArgument`] for a negative or non-finite `lr`; [`Error::LengthMismatch`]
    /// for a gradient count other than the parameter count; device errors.
    pub fn step(&mut self, params: &mut Params, grads: &[Tensor], lr: f64) -> Result<()> {
        if !(lr >= 0.0) || !lr.is_finite() {
            return Err(Error::invalid(
                "learning rate",
                lr,
                "must be ≥ 0 and finite",
            ));
        }
        if grads.len() != params.len() {
            return Err(Error::LengthMismatch {
                op: "optimizer step: gradients and parameters",
                lhs: grads.len(),
                rhs: params.len(),
            });
        }
        if let OptimizerKind::AdamAlgorithm1 { .. } = self.kind {
            if let Some(p) = params.values().iter().find(|p| p.device() != Device::Cpu) {
                return Err(Error::invalid(
                    "parameter device",
                    p.device(),
                    "Adam as in Kingma & Ba's Algorithm 1 steps CPU parameters only",
                ));
            }
        }
        self.step += 1;
        let t = self.step;
        let needs_m = !matches!(self.kind, OptimizerKind::Sgd { momentum, .. } if momentum == 0.0);
        let needs_v = matches!(
            self.kind,
            OptimizerKind::Adam { .. }
                | OptimizerKind::AdamW { .. }
                | OptimizerKind::AdamAlgorithm1 { .. }
        );
        for i in 0..params.len() {
            let p = params.get(ParamId(i)).clone();
            let g = grads[i].to_dtype(p.dtype())?.to_device(p.device())?;
            if g.shape() != p.shape() {
                return Err(Error::ShapeMismatch {
                    op: "optimizer step",
                    lhs: p.shape(),
                    rhs: g.shape(),
                });
            }
            let zeros = || Storage::full(0.0, p.numel(), p.dtype(), p.device());
            if needs_m && self.m[i].is_none() {
                self.m[i] = Some(zeros()?);
            }
            if needs_v && self.v[i].is_none() {
                self.v[i] = Some(zeros()?);
            }
            let new = match (p.storage(), g.storage()) {
                (Storage::Cpu(CpuStorage::F32(pv)), Storage::Cpu(CpuStorage::F32(gv))) => {
                    Storage::Cpu(CpuStorage::F32(update(
                        self.kind,
                        t,
                        lr,
                        pv,
                        gv,
                        cpu_slot_f32(&mut self.m[i]),
                        cpu_slot_f32(&mut self.v[i]),
                    )))
                }
                (Storage::Cpu(CpuStorage::F64(pv)), Storage::Cpu(CpuStorage::F64(gv))) => {
                    Storage::Cpu(CpuStorage::F64(update(
                        self.kind,
                        t,
                        lr,
                        pv,
                        gv,
                        cpu_slot_f64(&mut self.m[i]),
                        cpu_slot_f64(&mut self.v[i]),
                    )))
                }
                (Storage::Cuda(pc), Storage::Cuda(gc)) => Storage::Cuda(cuda_update(
                    self.kind,
                    t,
                    lr,
                    pc,
                    gc,
                    &mut self.m[i],
                    &mut self.v[i],
                )?),
                _ => {
                    return Err(Error::DeviceMismatch {
                        op: "optimizer step",
                        lhs: p.device(),
                        rhs: g.device(),
                    })
                }
            };
            params.set(ParamId(i), Tensor::from_storage(new, p.shape()))?;
        }
        Ok(())
    }
}

fn cpu_slot_f32(s: &mut Option<Storage>) -> Option<&mut Vec<f32>> {
    match s {
        Some(Storage::Cpu(CpuStorage::F32(v))) => Some(v),
        _ => None,
    }
}

fn cpu_slot_f64(s: &mut Option<Storage>) -> Option<&mut Vec<f64>> {
    match s {
        Some(Storage::Cpu(CpuStorage::F64(v))) => Some(v),
        _ => None,
    }
}

/// The scalars of step `t` as the fused kernels take them (shared with [`update`]).
fn adam_hyper(kind: OptimizerKind, t: u64, lr: f64) -> Option<AdamHyper> {
    match kind {
        OptimizerKind::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        }
        | OptimizerKind::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
            Some(AdamHyper {
                b1: beta1,
                b2: beta2,
                step_size: lr / (1.0 - beta1.powi(t as i32)),
                inv_sqrt_bc2: 1.0 / (1.0 - beta2.powi(t as i32)).sqrt(),
                eps,
                wd: if decoupled { 0.0 } else { weight_decay },
                decay: if decoupled {
                    1.0 - lr * weight_decay
                } else {
                    1.0
                },
            })
        }
        OptimizerKind::Sgd { .. } | OptimizerKind::AdamAlgorithm1 { .. } => None,
    }
}

fn sgd_hyper(kind: OptimizerKind, t: u64, lr: f64) -> Option<SgdHyper> {
    match kind {
        OptimizerKind::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => Some(SgdHyper {
            lr,
            wd: weight_decay,
            // PyTorch initialises the buffer to the first step's direction.
            keep: if t == 1 { 0.0 } else { momentum },
            nest: if nesterov { momentum } else { 0.0 },
            plain: if nesterov { 1.0 } else { 0.0 },
            base: if nesterov { 0.0 } else { 1.0 },
        }),
        _ => None,
    }
}

fn cuda_update(
    kind: OptimizerKind,
    t: u64,
    lr: f64,
    p: &crate::backend::cuda::CudaStorage,
    g: &crate::backend::cuda::CudaStorage,
    m: &mut Option<Storage>,
    v: &mut Option<Storage>,
) -> Result<crate::backend::cuda::CudaStorage> {
    let misplaced = || {
        Error::invalid(
            "optimizer state",
            "moment buffers",
            "not on the parameter's GPU",
        )
    };
    if let Some(h) = adam_hyper(kind, t, lr) {
        return match (m.as_mut(), v.as_mut()) {
            (Some(Storage::Cuda(mm)), Some(Storage::Cuda(vv))) => p.adam(g, mm, vv, &h),
            _ => Err(misplaced()),
        };
    }
    let h = sgd_hyper(kind, t, lr).ok_or_else(misplaced)?;
    match m.as_mut() {
        Some(Storage::Cuda(b)) => p.sgd(g, Some(b), &h),
        Some(_) => Err(misplaced()),
        None => p.sgd(g, None, &h),
    }
}

/// `x`, or zero where it is subnormal (`|x|` below the smallest normal value).
///
/// The moment buffers of Adam and of SGD with momentum decay geometrically wherever a gradient
/// stays zero (a dead ReLU unit's weights, a converged problem) and become subnormal within a
/// few hundred steps; x86 CPUs then take a microcode assist on every SSE/AVX operation that
/// reads or writes one, and the update pass slowed a whole MLP training step by a fifth (see
/// benches/RESULTS.md). A subnormal moment moves a parameter by less than `lr·1e-30`, so
/// flushing it changes nothing a float can hold; XLA's CPU runtime gets the same effect by
/// running with flush-to-zero. The CUDA kernels (`cuda/optim.cu`) flush identically.
#[inline(always)]
fn flush<T: Float>(x: T) -> T {
    if x.abs() < T::MIN_NORMAL {
        T::ZERO
    } else {
        x
    }
}

crate::backend::cpu::simd::multiversion! {
    /// One fused update pass on the CPU; returns the new parameter buffer. The scalars come from
    /// the same [`adam_hyper`]/[`sgd_hyper`] the GPU kernels take; loops are branch-free zips so
    /// they vectorise, as wide as the CPU allows (`multiversion!`: the same bits at every width).
    /// Moment buffers are stored through [`flush`].
    fn update<T: Float>(
        kind: OptimizerKind,
        t: u64,
        lr: f64,
        p: &[T],
        g: &[T],
        m: Option<&mut Vec<T>>,
        v: Option<&mut Vec<T>>,
    ) -> Vec<T> {
        let mut out = T::take(p.len());
        let f = T::from_f64;
        if let OptimizerKind::AdamAlgorithm1 { beta1, beta2, eps } = kind {
            let (Some(m), Some(v)) = (m, v) else {
                unreachable!("Adam's moments are created before the step")
            };
            let (b1, b2, eps, lr) = (f(beta1), f(beta2), f(eps), f(lr));
            let (c1, c2) = (T::ONE - b1, T::ONE - b2);
            let bc1 = f(1.0 - beta1.powi(t as i32));
            let bc2 = f(1.0 - beta2.powi(t as i32));
            push_all(&mut out,
                p.iter()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .map(|(((p, g), m), v)| {
                        *m = flush(b1 * *m + c1 * *g);
                        *v = flush(b2 * *v + c2 * *g * *g);
                        let m_hat = *m / bc1;
                        let v_hat = *v / bc2;
                        *p - lr * m_hat / (v_hat.sqrt() + eps)
                    }),
            );
        } else if let Some(h) = adam_hyper(kind, t, lr) {
            let (Some(m), Some(v)) = (m, v) else {
                unreachable!("Adam's moments are created before the step")
            };
            let (b1, b2, eps) = (f(h.b1), f(h.b2), f(h.eps));
            let (c1, c2) = (T::ONE - b1, T::ONE - b2);
            let (step_size, inv_sqrt_bc2, wd, decay) =
                (f(h.step_size), f(h.inv_sqrt_bc2), f(h.wd), f(h.decay));
            push_all(&mut out,
                p.iter()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .map(|(((p, g), m), v)| {
                        let gi = *g + wd * *p;
                        *m = flush(b1 * *m + c1 * gi);
                        *v = flush(b2 * *v + c2 * gi * gi);
                        *p * decay - step_size * *m / (v.sqrt() * inv_sqrt_bc2 + eps)
                    }),
            );
        } else if let Some(h) = sgd_hyper(kind, t, lr) {
            let (lr, wd) = (f(h.lr), f(h.wd));
            match m {
                Some(b) => {
                    let (keep, nest, plain, base) = (f(h.keep), f(h.nest), f(h.plain), f(h.base));
                    push_all(&mut out, p.iter().zip(g).zip(b.iter_mut()).map(|((p, g), b)| {
                        let d = *g + wd * *p;
                        *b = flush(keep * *b + d);
                        // Nesterov: d + μb; classic: b.
                        *p - lr * (plain * d + nest * *b + base * *b)
                    }));
                }
                None => push_all(&mut out, p.iter().zip(g).map(|(p, g)| *p - lr * (*g + wd * *p))),
            }
        }
        out
    }
}

/// A learning-rate schedule over steps (or epochs — the caller decides the unit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Cosine annealing from the base rate to `min_lr` over `total` steps (PyTorch's
    /// `CosineAnnealingLR` without restarts).
    Cosine {
        /// Steps of the whole schedule.
        total: usize,
        /// Final rate.
        min_lr: f64,
    },
    /// Multiply by `gamma` every `step_size` steps (`StepLR`).
    Step {
        /// Steps between decays.
        step_size: usize,
        /// Factor.
        gamma: f64,
    },
}

impl Schedule {
    /// The rate at step `k` (0-based) for base rate `base`.
    pub fn lr(&self, base: f64, k: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine { total, min_lr } => {
                let frac = if total == 0 {
                    1.0
                } else {
                    (k.min(total) as f64) / total as f64
                };
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
            Schedule::Step { step_size, gamma } => base * gamma.powi((k / step_size.max(1)) as i32),
        }
    }
}

/// Rescales gradients so their global L2 norm is at most `max_norm`; returns the norm before
/// clipping (PyTorch's `clip_grad_norm_`).
///
/// # Errors
/// [`Error::InvalidArgument`] for a non-positive `max_norm`.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    if !(max_norm > 0.0) {
        return Err(Error::invalid(
            "maximum gradient norm",
            max_norm,
            "must be positive",
        ));
    }
    let mut total = 0.0;
    for g in grads.iter() {
        total += crate::autodiff::no_grad(|| g.square()?.sum_all()?.item())?;
    }
    let total = total.sqrt();
    if total > max_norm {
        let scale = max_norm / (total + 1e-6);
        for g in grads.iter_mut() {
            *g = crate::autodiff::no_grad(|| g.mul_scalar(scale))?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DType;

    fn quadratic_descends(kind: OptimizerKind) {
        // f(p) = ½|p − c|², ∇f = p − c.
        let c = [1.0, -2.0, 0.5];
        let mut params = Params::new();
        params
            .insert("p", Tensor::zeros(&[3], DType::F64).unwrap())
            .unwrap();
        let mut opt = Optimizer::new(kind, &params).unwrap();
        for _ in 0..500 {
            let p = params.get(ParamId(0)).to_vec_f64().unwrap();
            let g: Vec<f64> = p.iter().zip(&c).map(|(a, b)| a - b).collect();
            opt.step(&mut params, &[Tensor::from_vec(g, &[3]).unwrap()], 0.05)
                .unwrap();
        }
        let p = params.get(ParamId(0)).to_vec_f64().unwrap();
        for (a, b) in p.iter().zip(&c) {
            assert!((a - b).abs() < 1e-3, "{kind:?}: {p:?}");
        }
    }

    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        quadratic_descends(OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        });
        quadratic_descends(OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        });
        quadratic_descends(OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        });
        quadratic_descends(OptimizerKind::adam());
        quadratic_descends(OptimizerKind::adam_algorithm1());
        quadratic_descends(OptimizerKind::adamw(0.0));
    }

    #[test]
    fn adam_algorithm1_is_kingma_and_ba_as_written_bit_for_bit() {
        // Algorithm 1 of Kingma & Ba (2015), written out in f64, against the optimizer over 300
        // steps of changing gradients; and against the folded form, which rounds differently.
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8, 0.05);
        let grad = |t: usize, i: usize, p: f64| (0.7 * t as f64 + i as f64).sin() * 3.0 + 0.1 * p;
        let p0 = vec![0.1f64, -0.3, 0.7];
        let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; 3], vec![0.0; 3]);
        let mut params = Params::new();
        params
            .insert("p", Tensor::from_vec(p0.clone(), &[3]).unwrap())
            .unwrap();
        let mut folded = params.clone();
        let mut opt = Optimizer::new(OptimizerKind::adam_algorithm1(), &params).unwrap();
        let mut opt_folded = Optimizer::new(OptimizerKind::adam(), &folded).unwrap();
        for t in 1..=300 {
            let g: Vec<f64> = (0..3).map(|i| grad(t, i, p[i])).collect();
            for i in 0..3 {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let m_hat = m[i] / (1.0 - b1.powi(t as i32));
                let v_hat = v[i] / (1.0 - b2.powi(t as i32));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            opt.step(&mut params, &[Tensor::from_vec(g, &[3]).unwrap()], lr)
                .unwrap();
            assert_eq!(params.get(ParamId(0)).to_vec_f64().unwrap(), p, "step {t}");
            let q = folded.get(ParamId(0)).to_vec_f64().unwrap();
            let gq: Vec<f64> = (0..3).map(|i| grad(t, i, q[i])).collect();
            opt_folded
                .step(&mut folded, &[Tensor::from_vec(gq, &[3]).unwrap()], lr)
                .unwrap();
        }
        let q = folded.get(ParamId(0)).to_vec_f64().unwrap();
        for (a, b) in p.iter().zip(&q) {
            assert!((a - b).abs() < 1e-9, "{p:?} vs {q:?}");
        }
        assert!(Optimizer::new(
            OptimizerKind::AdamAlgorithm1 {
                beta1: 0.9,
                beta2: 1.0,
                eps: 1e-8
            },
            &Params::new()
        )
        .is_err());
    }

    #[test]
    fn adam_first_step_matches_the_closed_form() {
        // After one step from m = v = 0 with bias correction, the update is lr·g/(|g| + ε).
        let mut params = Params::new();
        params
            .insert("p", Tensor::from_vec(vec![0.5f64, -1.0], &[2]).unwrap())
            .unwrap();
        let mut opt = Optimizer::new(OptimizerKind::adam(), &params).unwrap();
        opt.step(
            &mut params,
            &[Tensor::from_vec(vec![2.0f64, -0.1], &[2]).unwrap()],
            0.01,
        )
        .unwrap();
        let p = params.get(ParamId(0)).to_vec_f64().unwrap();
        assert!((p[0] - (0.5 - 0.01 * 2.0 / (2.0 + 1e-8))).abs() < 1e-12);
        assert!((p[1] - (-1.0 + 0.01 * 0.1 / (0.1 + 1e-8))).abs() < 1e-12);
        // AdamW's decoupled decay shrinks p by (1 − lr·λ) before the Adam step.
        let mut params = Params::new();
        params
            .insert("p", Tensor::from_vec(vec![1.0f64], &[1]).unwrap())
            .unwrap();
        let mut opt = Optimizer::new(OptimizerKind::adamw(0.1), &params).unwrap();
        opt.step(
            &mut params,
            &[Tensor::from_vec(vec![0.0f64], &[1]).unwrap()],
            0.5,
        )
        .unwrap();
        assert!((params.get(ParamId(0)).to_vec_f64().unwrap()[0] - 0.95).abs() < 1e-12);
    }

    #[test]
    fn subnormal_moments_are_stored_as_zero() {
        // f32: g = 1e-20 makes (1 − β₂)·g² = 1e-43 (subnormal) and (1 − β₁)·g = 1e-21 (normal);
        // with zero gradients after it, m decays by 0.9 a step and would turn subnormal near
        // step 370 (SGD's buffer, from 1e-20, near 390) — from then on it must be exactly zero,
        // and every stored moment normal or zero.
        for kind in [
            OptimizerKind::adam(),
            OptimizerKind::adam_algorithm1(),
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        ] {
            let mut params = Params::new();
            params
                .insert("p", Tensor::from_vec(vec![0.25f32, -0.5], &[2]).unwrap())
                .unwrap();
            let mut opt = Optimizer::new(kind, &params).unwrap();
            let tiny = Tensor::from_vec(vec![1e-20f32, -1e-20], &[2]).unwrap();
            let zero = Tensor::from_vec(vec![0.0f32, 0.0], &[2]).unwrap();
            opt.step(&mut params, std::slice::from_ref(&tiny), 1e-3)
                .unwrap();
            let moments = |opt: &Optimizer| {
                let (_, m, v) = opt.state().unwrap();
                let flat = |s: Vec<Option<Vec<f64>>>| s.into_iter().flatten().flatten();
                flat(m).chain(flat(v)).collect::<Vec<f64>>()
            };
            let first = moments(&opt);
            assert!(first.iter().any(|&x| x != 0.0), "{kind:?}: {first:?}");
            for _ in 0..500 {
                opt.step(&mut params, std::slice::from_ref(&zero), 1e-3)
                    .unwrap();
                for x in moments(&opt) {
                    let x = x as f32;
                    assert!(x == 0.0 || x.is_normal(), "{kind:?}: a stored moment {x:e}");
                }
            }
            assert!(moments(&opt).iter().all(|&x| x == 0.0), "{kind:?}");
        }
    }

    #[test]
    fn schedules_and_clipping() {
        let s = Schedule::Cosine {
            total: 100,
            min_lr: 0.0,
        };
        assert!(
            (s.lr(1.0, 0) - 1.0).abs() < 1e-15
                && (s.lr(1.0, 50) - 0.5).abs() < 1e-12
                && s.lr(1.0, 100).abs() < 1e-15
        );
        assert!(
            (Schedule::Step {
                step_size: 10,
                gamma: 0.5
            }
            .lr(1.0, 25)
                - 0.25)
                .abs()
                < 1e-15
        );
        let mut g = vec![Tensor::from_vec(vec![3.0f64, 4.0], &[2]).unwrap()];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-12);
        let v = g[0].to_vec_f64().unwrap();
        assert!(((v[0] * v[0] + v[1] * v[1]).sqrt() - 1.0).abs() < 1e-6);
        assert!(Optimizer::new(
            OptimizerKind::Adam {
                beta1: 1.0,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0
            },
            &Params::new()
        )
        .is_err());
    }
}
