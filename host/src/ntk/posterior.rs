//! The linearized network's Gaussian-process posterior, in function space and in parameter
//! space (Maddox et al., AISTATS 2021, §3; reference code: GPyTorch's exact prediction strategy
//! on the lazy NTK, and `finite_ntk/strategies/linear_strategy.py` for parameter space).
//!
//! With `f_lin(x; θ) = f(x; θ̂) + J(x)(θ − θ̂)`, the prior `θ − θ̂ ~ N(0, I)` and Gaussian noise
//! σ², observations `y` at `X` give
//! - function space: `α = (K + σ²I)⁻¹(y − m(X))` with `K = J_X J_Xᵀ` by CG on `K v = J_X(J_Xᵀv)`;
//!   mean `m(x*) + J_*(J_Xᵀ α)`; latent variance `k** − k*ᵀ(K + σ²I)⁻¹k*` with the inverse
//!   replaced by the Lanczos root `Q T⁻¹ Qᵀ` of `K + σ²I` started from `y − m(X)`;
//! - parameter space: `w̄ = (JᵀJ + σ²I)⁻¹ Jᵀ(y − m(X))` by CG on `JᵀJ u + σ²u`; mean
//!   `m(x*) + J_* w̄`; latent variance `σ² J_*(JᵀJ + σ²I)⁻¹J_*ᵀ` from the Lanczos root
//!   `S = Q V Λ^{−1/2}` of `JᵀJ + σ²I` started from `Jᵀ(y − m(X))`.
//!
//! The two agree by the push-through identity `J_*(JᵀJ + σ²I)⁻¹Jᵀ = J_*Jᵀ(JJᵀ + σ²I)⁻¹`.
//!
//! One departure from the reference: its parameter-space covariance is `σ²(J_*S)(J_*S)ᵀ`
//! alone, which drops the prior variance of the directions outside the Krylov space — there
//! `JᵀJ + σ²I` acts as `σ²I`, its inverse as `σ⁻²I`. When the Lanczos run reaches an invariant
//! space (it holds all of `range(Jᵀ)` for a generic start vector, at most `n·k` steps) those
//! directions lie in `null(J)` and contribute exactly `‖J_*ᵀ‖² − ‖QᵀJ_*ᵀ‖²`; Keel adds that
//! term, which makes the two spaces agree.

use keel_engine::Tensor;

use super::jacobian::{Jacobian, Network, Outputs};
use super::krylov::{cg, CgReport, CgSettings, Lanczos};
use crate::error::{Error, Result};

/// Where the posterior is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `n·k`-dimensional solves with the Jacobian kernel.
    Function,
    /// `P`-dimensional solves with the Gauss–Newton matrix.
    Parameter,
}

impl Space {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Space::Function => "function",
            Space::Parameter => "parameter",
        }
    }
}

/// The prior mean of the linearized network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mean {
    /// Constant zero: the reference's regression scripts (a GPyTorch `ConstantMean` that is never
    /// optimised).
    Zero,
    /// The trained network `f(x; θ̂)` (the reference's `--bias`).
    Network,
}

/// What to do when CG stops at `cg_max_iter` above the tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnNoConvergence {
    /// Return [`Error::Failed`] naming the iterations and the residual.
    Fail,
    /// Return the last iterate; [`Posterior::cg`] says it did not converge.
    Report,
}

/// Settings of a posterior.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PosteriorSettings {
    /// Observation noise variance σ² (> 0).
    pub noise: f64,
    /// The prior mean.
    pub mean: Mean,
    /// The space of the solves.
    pub space: Space,
    /// The CG tolerance and iteration cap.
    pub cg: CgSettings,
    /// Lanczos steps for the variances (at most the space's dimension).
    pub lanczos_rank: usize,
    /// Jacobi-precondition the function-space CG with `diag K + σ²` (costs `n·k` backward
    /// passes; ignored in parameter space).
    pub precondition: bool,
    /// What a CG run that does not converge does.
    pub on_no_convergence: OnNoConvergence,
}

impl PosteriorSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the setting.
    pub fn check(&self) -> Result<()> {
        if !(self.noise > 0.0) || !self.noise.is_finite() {
            return Err(Error::invalid(
                "noise",
                self.noise,
                "the noise variance σ² must be positive and finite",
            ));
        }
        if self.lanczos_rank == 0 {
            return Err(Error::invalid("lanczos_rank", 0, "must be at least 1"));
        }
        self.cg.check()
    }
}

/// Predictions of the posterior at new inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The predictive mean, flat (`n*·k`).
    pub mean: Vec<f64>,
    /// The latent (noise-free) variance of `f_lin`, flat.
    pub variance: Vec<f64>,
    /// The prior mean `m(x*)` (zeros or the network's outputs).
    pub prior_mean: Vec<f64>,
}

/// A linearized network conditioned on observations.
pub struct Posterior<'a, N: Network> {
    jac: Jacobian<'a, N>,
    settings: PosteriorSettings,
    /// `α` (function space) or `w̄` (parameter space).
    weights: Vec<f64>,
    lanczos: Lanczos,
    root: Vec<f64>,
    cg: CgReport,
}

impl<'a, N: Network> Posterior<'a, N> {
    /// Conditions the linearization of `net` at `params` on the targets `y` (flat, `n·k`, row
    /// after row) at the inputs `x`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad settings, a wrong number of targets or a non-finite
    /// target (naming `targets`); [`Error::Failed`] when CG does not converge and
    /// `on_no_convergence` is [`OnNoConvergence::Fail`]; [`Error::Solver`] from the solvers;
    /// engine errors.
    pub fn fit(
        net: &'a N,
        params: &'a keel_engine::params::Params,
        x: &'a Tensor,
        y: &[f64],
        outputs: Outputs,
        settings: PosteriorSettings,
    ) -> Result<Self> {
        settings.check()?;
        let jac = Jacobian::new(net, params, x, outputs)?;
        if y.len() != jac.len() {
            return Err(Error::invalid(
                "targets",
                y.len(),
                format!(
                    "expected {} ({} rows × {} outputs)",
                    jac.len(),
                    jac.rows(),
                    jac.outputs_per_row()
                ),
            ));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "targets",
                y[i],
                format!("target {i} is not finite"),
            ));
        }
        let prior = match settings.mean {
            Mean::Zero => vec![0.0; y.len()],
            Mean::Network => jac.values()?,
        };
        let r: Vec<f64> = y.iter().zip(&prior).map(|(a, b)| a - b).collect();
        let s2 = settings.noise;
        // Before the Lanczos run: a solve that did not converge ends here.
        let check = |rep: &CgReport| -> Result<()> {
            if !rep.converged && settings.on_no_convergence == OnNoConvergence::Fail {
                return Err(Error::failed(
                    format!(
                        "the {}-space CG solve did not converge: relative residual {:.3e} after {} iterations (tolerance {:e})",
                        settings.space.name(),
                        rep.relative_residual,
                        rep.iterations,
                        settings.cg.tol
                    ),
                    "raise `cg_max_iter`, loosen `cg_tol` or raise `noise`",
                ));
            }
            Ok(())
        };
        let (weights, cg_report, lanczos) = match settings.space {
            Space::Function => {
                let apply = |v: &[f64]| -> Result<Vec<f64>> {
                    let kv = jac.jvp(&jac.vjp(v)?)?;
                    Ok(kv.iter().zip(v).map(|(a, b)| a + s2 * b).collect())
                };
                let diag = if settings.precondition {
                    Some(
                        jac.sq_norms()?
                            .into_iter()
                            .map(|d| d + s2)
                            .collect::<Vec<_>>(),
                    )
                } else {
                    None
                };
                let (alpha, rep) = cg(apply, &r, diag.as_deref(), settings.cg)?;
                check(&rep)?;
                let start = if r.iter().any(|v| *v != 0.0) {
                    r.clone()
                } else {
                    vec![1.0; r.len()]
                };
                let l = Lanczos::run(apply, &start, settings.lanczos_rank)?;
                (alpha, rep, l)
            }
            Space::Parameter => {
                let apply = |u: &[f64]| -> Result<Vec<f64>> {
                    let g = jac.gauss_newton(u)?;
                    Ok(g.iter().zip(u).map(|(a, b)| a + s2 * b).collect())
                };
                let b = jac.vjp(&r)?;
                let (w, rep) = cg(apply, &b, None, settings.cg)?;
                check(&rep)?;
                let start = if b.iter().any(|v| *v != 0.0) {
                    b.clone()
                } else {
                    jac.vjp(&vec![1.0; r.len()])?
                };
                let l = Lanczos::run(apply, &start, settings.lanczos_rank)?;
                (w, rep, l)
            }
        };
        let root = lanczos.inverse_root()?;
        Ok(Posterior {
            jac,
            settings,
            weights,
            lanczos,
            root,
            cg: cg_report,
        })
    }

    /// How the CG solve ended.
    pub fn cg(&self) -> &CgReport {
        &self.cg
    }

    /// The Lanczos decomposition behind the variances.
    pub fn lanczos(&self) -> &Lanczos {
        &self.lanczos
    }

    /// `α = (K + σ²I)⁻¹(y − m)` (function space) or `w̄` (parameter space).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The settings it was fitted with.
    pub fn settings(&self) -> &PosteriorSettings {
        &self.settings
    }

    /// The predictive mean and latent variance at the rows of `x_star`.
    ///
    /// # Errors
    /// Engine errors (a wrong input width).
    pub fn predict(&self, x_star: &Tensor) -> Result<Prediction> {
        let net = self.jac_net();
        let js = Jacobian::new(net.0, net.1, x_star, net.2)?;
        let prior = match self.settings.mean {
            Mean::Zero => vec![0.0; js.len()],
            Mean::Network => js.values()?,
        };
        let kss = js.sq_norms()?;
        let m = self.lanczos.rank();
        let mut proj = vec![vec![0.0; m]; js.len()];
        let shift = match self.settings.space {
            Space::Function => {
                let u = self.jac.vjp(&self.weights)?;
                for (j, q) in self.lanczos.q.iter().enumerate() {
                    let kq = js.jvp(&self.jac.vjp(q)?)?;
                    for (p, v) in proj.iter_mut().zip(kq) {
                        p[j] = v;
                    }
                }
                js.jvp(&u)?
            }
            Space::Parameter => {
                for (j, q) in self.lanczos.q.iter().enumerate() {
                    let jq = js.jvp(q)?;
                    for (p, v) in proj.iter_mut().zip(jq) {
                        p[j] = v;
                    }
                }
                js.jvp(&self.weights)?
            }
        };
        let s2 = self.settings.noise;
        let variance = proj
            .iter()
            .zip(&kss)
            .map(|(p, kss)| {
                // ‖Rᵀ p‖² = pᵀ T⁻¹ p.
                let quad: f64 = (0..m)
                    .map(|c| {
                        let v: f64 = (0..m).map(|r| self.root[r * m + c] * p[r]).sum();
                        v * v
                    })
                    .sum();
                let v = match self.settings.space {
                    Space::Function => kss - quad,
                    Space::Parameter => {
                        let in_space: f64 = p.iter().map(|x| x * x).sum();
                        s2 * quad + (kss - in_space)
                    }
                };
                v.max(0.0)
            })
            .collect();
        let mean = prior.iter().zip(&shift).map(|(a, b)| a + b).collect();
        Ok(Prediction {
            mean,
            variance,
            prior_mean: prior,
        })
    }

    fn jac_net(&self) -> (&'a N, &'a keel_engine::params::Params, Outputs) {
        self.jac.parts()
    }
}
