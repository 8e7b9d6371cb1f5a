//! Full-batch Hamiltonian Monte Carlo exactly as the reference runs it (`bnn_hmc/core/hmc.py`,
//! `run_hmc.py`): identity mass matrix, fresh momentum every iteration, `L = ⌈τ/ε⌉` leapfrog steps
//! with one full-batch gradient each, the Metropolis–Hastings test on
//! `[½‖p₀‖² − ½‖p_L‖²] + [log L(θ_L) − log L(θ₀)] + [log p(θ_L) − log p(θ₀)]` with the prior ratio
//! computed as a difference by the target (the reference does so for float32 accuracy), burn-in
//! without the test, and — by default — only accepted proposals ensembled (the reference's quirk;
//! [`Ensembling::Textbook`] re-counts the current state after a rejection).

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use crate::backend::hmc::{self, LeapfrogArgs, PriorArgs};
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A tempered log posterior `log π(θ) = log L(θ) + log p(θ)` over a flat parameter vector held
/// on the target's device. The sampler keeps its whole state there: the likelihood and its
/// gradient come from the target, the prior's gradient joins them inside the fused leapfrog
/// update, and the prior difference and kinetic energy of the MH test are device reductions
/// (`backend::hmc`, `cuda/hmc.cu`).
pub trait Target {
    /// Number of parameters.
    fn dim(&self) -> usize;
    /// Where `θ` lives and its element type.
    fn placement(&self) -> (Device, DType) {
        (Device::Cpu, DType::F64)
    }
    /// `(log L(θ), ∇ log L(θ))` for a flat `θ` `[dim]` as placed — the likelihood alone.
    ///
    /// # Errors
    /// Evaluation errors of the model.
    fn likelihood_and_gradient(&self, theta: &Tensor) -> Result<(f64, Tensor)>;
    /// The prior on every parameter and the temperature `T` dividing it (`log p_T = log p / T`).
    fn prior(&self) -> (PriorArgs, f64);
    /// Makes the chain's random choices agree across the processes that evaluate this target
    /// together (`values`: a momentum, or a Metropolis–Hastings draw with its `log a`): one
    /// process's values replace the others' ([`crate::distributed::Sharded`]). A target in one
    /// process leaves them as they are.
    ///
    /// # Errors
    /// Communication failures.
    fn agree(&self, values: &mut [f64]) -> Result<()> {
        let _ = values;
        Ok(())
    }
}

/// `log p_T(new) − log p_T(old)` as the sampler computes it: a difference (for a Gaussian prior
/// `−Σ(new − old)(new + old)/(2σ²T)`, the reference's form for float32 accuracy).
///
/// # Errors
/// Tensors on other devices or of other lengths.
pub fn log_prior_difference(target: &dyn Target, new: &Tensor, old: &Tensor) -> Result<f64> {
    let (prior, temperature) = target.prior();
    Ok(hmc::prior_difference(new, old, &prior)? / temperature)
}

fn flat(target: &dyn Target, values: &[f64]) -> Result<Tensor> {
    let (device, dtype) = target.placement();
    Ok(Tensor::from_f64s(values, &[values.len()], dtype)?.to_device(device)?)
}

/// Which states a run keeps as samples after burn-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensembling {
    /// The reference: a state is recorded only when its proposal was accepted.
    AcceptedOnly,
    /// Textbook MCMC: the current state is recorded every iteration (again after a rejection).
    Textbook,
}

/// Sampler settings.
#[derive(Clone, Debug)]
pub struct HmcConfig {
    /// Leapfrog step size `ε`.
    pub step_size: f64,
    /// Trajectory length `τ` (`L = ⌈τ/ε⌉` steps).
    pub trajectory_length: f64,
    /// Guard on `L`.
    pub max_leapfrog_steps: usize,
    /// Iterations after burn-in.
    pub iterations: usize,
    /// Iterations without the MH test, not recorded.
    pub burn_in: usize,
    /// Apply the MH test after burn-in (the reference's `--no_mh` turns it off).
    pub mh: bool,
    /// Which states are recorded.
    pub ensembling: Ensembling,
    /// Seed of the momenta and the MH draws.
    pub seed: u64,
    /// Step-size adaptation during burn-in (off in the reference's runs).
    pub adapt: Option<Adaptation>,
}

/// The reference's step-size rule `ε ← ε·exp(speed·(a − target))` after every proposal, where `a`
/// is its acceptance probability (0 for a non-finite energy). Applied during burn-in only, so the
/// recorded chain runs at one fixed step size (`L = ⌈τ/ε⌉` follows `ε`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptation {
    /// `speed`.
    pub speed: f64,
    /// Target acceptance probability.
    pub target: f64,
}

impl Adaptation {
    /// Checks the settings.
    ///
    /// # Errors
    /// A speed that is not a positive number; a target outside (0, 1).
    pub fn check(&self) -> Result<()> {
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return Err(Error::invalid(
                "adapt_speed",
                self.speed,
                "must be a positive number",
            ));
        }
        if !(self.target > 0.0 && self.target < 1.0) {
            return Err(Error::invalid(
                "target_accept",
                self.target,
                "must lie strictly between 0 and 1",
            ));
        }
        Ok(())
    }
}

impl HmcConfig {
    /// `L = ⌈τ/ε⌉` after checking the settings.
    ///
    /// # Errors
    /// A step size or trajectory length that is not a positive number; `L` above the guard
    /// (naming what to change).
    pub fn leapfrog_steps(&self) -> Result<usize> {
        if !(self.step_size > 0.0 && self.step_size.is_finite()) {
            return Err(Error::invalid(
                "step_size",
                self.step_size,
                "must be a positive number",
            ));
        }
        if !(self.trajectory_length > 0.0 && self.trajectory_length.is_finite()) {
            return Err(Error::invalid(
                "trajectory_length",
                self.trajectory_length,
                "must be a positive number",
            ));
        }
        let l = (self.trajectory_length / self.step_size).ceil();
        if l > self.max_leapfrog_steps as f64 {
            return Err(Error::invalid(
                "trajectory_length",
                self.trajectory_length,
                format!(
                    "needs {l} leapfrog steps at step size {}, above `max_leapfrog_steps` {}; \
                     shorten the trajectory, enlarge the step or raise the guard",
                    self.step_size, self.max_leapfrog_steps
                ),
            ));
        }
        Ok(l as usize)
    }
}

/// A phase-space point with its cached likelihood and gradient, on the target's device.
#[derive(Clone, Debug)]
pub struct State {
    /// Parameters `[dim]`.
    pub theta: Tensor,
    /// `log L(θ)`.
    pub log_likelihood: f64,
    /// `∇ log L(θ)` (the prior's joins it in the leapfrog update).
    pub gradient: Tensor,
}

impl State {
    /// Evaluates the target at `theta` (host values, placed as the target asks).
    ///
    /// # Errors
    /// A `theta` of the wrong length; as the target.
    pub fn at(target: &dyn Target, theta: &[f64]) -> Result<State> {
        if theta.len() != target.dim() {
            return Err(Error::invalid(
                "initial parameters",
                theta.len(),
                format!("the model has {} parameters", target.dim()),
            ));
        }
        let theta = flat(target, theta)?;
        let (log_likelihood, gradient) = target.likelihood_and_gradient(&theta)?;
        Ok(State {
            theta,
            log_likelihood,
            gradient,
        })
    }
}

/// `steps` leapfrog steps of size `eps` from `(state, p)` (velocity Verlet, one gradient per
/// step), the state updated in place on its device by the fused kernel (`backend::hmc`): returns
/// the end state and momentum.
///
/// # Errors
/// As the target; a momentum of the wrong length.
pub fn leapfrog(
    target: &dyn Target,
    state: &State,
    p: &[f64],
    eps: f64,
    steps: usize,
) -> Result<(State, Tensor)> {
    leapfrog_from(target, state, &flat(target, p)?, eps, steps)
}

/// [`leapfrog`] from a momentum already placed on the target's device (left unchanged).
///
/// # Errors
/// As [`leapfrog`].
pub fn leapfrog_from(
    target: &dyn Target,
    state: &State,
    p: &Tensor,
    eps: f64,
    steps: usize,
) -> Result<(State, Tensor)> {
    let (prior, temp) = target.prior();
    // The first update copies θ and p (the caller keeps them); later ones run in place.
    let mut theta = state.theta.clone();
    let mut momentum = p.clone();
    let mut s = State {
        theta: state.theta.clone(),
        log_likelihood: state.log_likelihood,
        gradient: state.gradient.clone(),
    };
    let mut args = LeapfrogArgs {
        half: 0.5 * eps,
        kicks: 1,
        eps,
        drift: true,
        prior,
        temp,
    };
    for step in 0..steps {
        // The closing half kick of the last step and the opening one of this, fused.
        args.kicks = if step == 0 { 1 } else { 2 };
        (theta, momentum) = hmc::leapfrog_update(theta, momentum, &s.gradient, &args)?;
        let (ll, g) = target.likelihood_and_gradient(&theta)?;
        s.log_likelihood = ll;
        s.gradient = g;
    }
    if steps > 0 {
        args.kicks = 1;
        args.drift = false;
        (theta, momentum) = hmc::leapfrog_update(theta, momentum, &s.gradient, &args)?;
    }
    s.theta = theta;
    Ok((s, momentum))
}

/// `log a` of a proposal: kinetic, likelihood and prior differences (NaN if any is).
///
/// # Errors
/// Device errors.
pub fn log_acceptance(
    target: &dyn Target,
    from: &State,
    p0: &Tensor,
    to: &State,
    p: &Tensor,
) -> Result<f64> {
    let kinetic = 0.5 * (hmc::sum_squares(p0)? - hmc::sum_squares(p)?);
    Ok(kinetic
        + (to.log_likelihood - from.log_likelihood)
        + log_prior_difference(target, &to.theta, &from.theta)?)
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Recorded states' parameters, in order.
    pub samples: Vec<Vec<f64>>,
    /// Accepted proposals after burn-in / iterations after burn-in.
    pub acceptance_rate: f64,
    /// Proposals whose energy was not finite (counted as rejections).
    pub nan_energies: usize,
    /// `L` used after burn-in.
    pub leapfrog_steps: usize,
    /// `ε` used after burn-in (differs from the setting when adapted).
    pub step_size: f64,
}

/// Where a run is, reported after every iteration.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Iterations done (burn-in included).
    pub iteration: usize,
    /// Whether the last was a burn-in iteration.
    pub burning: bool,
    /// Acceptance rate after burn-in so far.
    pub acceptance_rate: f64,
    /// Current step size.
    pub step_size: f64,
}

/// Runs one chain from `theta0`.
///
/// # Errors
/// Invalid settings ([`HmcConfig::leapfrog_steps`]); a target error at the start; adaptation
/// that drives `L` above the guard.
pub fn sample(target: &dyn Target, theta0: Vec<f64>, cfg: &HmcConfig) -> Result<Chain> {
    let mut chain = ChainState::start(target, theta0, cfg)?;
    while !chain.is_done(cfg) {
        chain.advance(target, cfg)?;
    }
    Ok(chain.finish(cfg))
}

/// A chain between iterations: everything needed to continue it exactly (the cached likelihood
/// and gradient are recomputed from `θ` on restore, deterministically).
#[derive(Clone, Debug)]
pub struct ChainState {
    /// The current state.
    pub current: State,
    /// The generator of momenta and MH draws.
    pub rng: Xoshiro256PlusPlus,
    /// Iterations done (burn-in included).
    pub iteration: usize,
    /// Current step size.
    pub step_size: f64,
    /// Current `L`.
    pub leapfrog_steps: usize,
    /// Accepted proposals after burn-in.
    pub accepted: usize,
    /// Non-finite energies after burn-in.
    pub nan: usize,
    /// Recorded samples.
    pub samples: Vec<Vec<f64>>,
}

impl ChainState {
    /// A chain at `theta0` seeded from the configuration.
    ///
    /// # Errors
    /// Invalid settings; a `theta0` of the wrong length; a target error at the start.
    pub fn start(target: &dyn Target, theta0: Vec<f64>, cfg: &HmcConfig) -> Result<ChainState> {
        let rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        ChainState::restore(target, theta0, rng, 0, cfg.step_size, 0, 0, Vec::new(), cfg)
    }

    /// A chain continued from saved values (a checkpoint).
    ///
    /// # Errors
    /// As [`ChainState::start`].
    #[allow(clippy::too_many_arguments)] // The saved fields, in order.
    pub fn restore(
        target: &dyn Target,
        theta: Vec<f64>,
        rng: Xoshiro256PlusPlus,
        iteration: usize,
        step_size: f64,
        accepted: usize,
        nan: usize,
        samples: Vec<Vec<f64>>,
        cfg: &HmcConfig,
    ) -> Result<ChainState> {
        cfg.leapfrog_steps()?;
        let leapfrog_steps = HmcConfig {
            step_size,
            ..cfg.clone()
        }
        .leapfrog_steps()?;
        if let Some(a) = cfg.adapt {
            a.check()?;
        }
        Ok(ChainState {
            current: State::at(target, &theta)?,
            rng,
            iteration,
            step_size,
            leapfrog_steps,
            accepted,
            nan,
            samples,
        })
    }

    /// Whether all burn-in and sampling iterations are done.
    pub fn is_done(&self, cfg: &HmcConfig) -> bool {
        self.iteration >= cfg.burn_in + cfg.iterations
    }

    /// One iteration: fresh momentum, a trajectory, the MH test (after burn-in), adaptation
    /// (during burn-in), recording.
    ///
    /// # Errors
    /// Adaptation that drives `L` above the guard.
    pub fn advance(&mut self, target: &dyn Target, cfg: &HmcConfig) -> Result<Progress> {
        let p0 = self.draw_momentum(target)?;
        // A target error mid-trajectory (e.g. an overflow) is a rejected proposal.
        let proposal = leapfrog_from(
            target,
            &self.current,
            &p0,
            self.step_size,
            self.leapfrog_steps,
        )
        .ok();
        self.conclude(target, cfg, &p0, proposal)
    }

    /// The iteration's fresh momentum, from the chain's generator.
    fn draw_momentum(&mut self, target: &dyn Target) -> Result<Tensor> {
        let mut p0: Vec<f64> = (0..target.dim())
            .map(|_| standard_normal::<f64, _>(&mut self.rng))
            .collect();
        target.agree(&mut p0)?;
        flat(target, &p0)
    }

    /// The rest of an iteration once the trajectory from momentum `p0` ended at `proposal`
    /// (`None`: the target failed on the way, a rejection): the MH test, adaptation, recording.
    fn conclude(
        &mut self,
        target: &dyn Target,
        cfg: &HmcConfig,
        p0: &Tensor,
        proposal: Option<(State, Tensor)>,
    ) -> Result<Progress> {
        let burning = self.iteration < cfg.burn_in;
        let log_a = match &proposal {
            Some((s, p)) => log_acceptance(target, &self.current, p0, s, p)?,
            None => f64::NAN,
        };
        let mut decision = [log_a, uniform(&mut self.rng)];
        target.agree(&mut decision)?;
        let [log_a, u] = decision;
        let finite = log_a.is_finite() || log_a == f64::INFINITY;
        if !burning && !finite {
            self.nan += 1;
        }
        let accept = finite && (burning || !cfg.mh || u.ln() < log_a.min(0.0));
        if let (true, Some((s, _))) = (accept, proposal) {
            self.current = s;
        }
        if burning {
            if let Some(a) = cfg.adapt {
                let prob = if finite { log_a.min(0.0).exp() } else { 0.0 };
                self.step_size *= (a.speed * (prob - a.target)).exp();
                self.leapfrog_steps = HmcConfig {
                    step_size: self.step_size,
                    ..cfg.clone()
                }
                .leapfrog_steps()?;
            }
        } else {
            if accept {
                self.accepted += 1;
            }
            if accept || cfg.ensembling == Ensembling::Textbook {
                self.samples.push(self.current.theta.to_vec_f64()?);
            }
        }
        self.iteration += 1;
        let done = self.iteration.saturating_sub(cfg.burn_in);
        Ok(Progress {
            iteration: self.iteration,
            burning,
            acceptance_rate: self.accepted as f64 / done.max(1) as f64,
            step_size: self.step_size,
        })
    }

    /// The finished chain.
    pub fn finish(self, cfg: &HmcConfig) -> Chain {
        Chain {
            samples: self.samples,
            acceptance_rate: self.accepted as f64 / cfg.iterations.max(1) as f64,
            nan_energies: self.nan,
            leapfrog_steps: self.leapfrog_steps,
            step_size: self.step_size,
        }
    }
}

/// A target that also evaluates several parameter vectors in one computation — the shared data
/// against every chain's weights as batched matrix products — for chains run in lockstep.
pub trait BatchTarget: Target {
    /// `(log L(θ_c), ∇ log L(θ_c))` for the rows `θ_c` of `thetas` `[C, dim]`: `C` values and a
    /// `[C, dim]` gradient, each row equal (up to the summation order of the batched products)
    /// to what [`Target::likelihood_and_gradient`] gives for that row alone.
    ///
    /// # Errors
    /// Evaluation errors of the model.
    fn likelihoods_and_gradients(&self, thetas: &Tensor) -> Result<(Vec<f64>, Tensor)>;
}

/// One iteration of every chain in lockstep, with the target evaluated for all chains still in
/// their trajectory at once ([`BatchTarget`]). Each chain keeps its own generator, step size,
/// `L` and settings (`cfgs[c]`), so chain `c` follows the same path as [`ChainState::advance`]
/// would take it alone, up to the summation order of the batched products (tested to 1e-12
/// in f64). Chains whose trajectory is shorter (another `L` after adaptation) stop updating
/// while the others go on. A batched evaluation that fails rejects the proposals of the chains
/// it evaluated (alone, only the chain whose evaluation failed would be rejected).
///
/// # Errors
/// `cfgs` of another length than `chains`; adaptation that drives `L` above the guard; device
/// errors of the fused updates.
pub fn advance_batched(
    target: &dyn BatchTarget,
    chains: &mut [&mut ChainState],
    cfgs: &[&HmcConfig],
) -> Result<Vec<Progress>> {
    if cfgs.len() != chains.len() {
        return Err(Error::invalid(
            "chains",
            chains.len(),
            format!("{} settings given", cfgs.len()),
        ));
    }
    let dim = target.dim();
    let (prior, temp) = target.prior();
    let p0: Vec<Tensor> = chains
        .iter_mut()
        .map(|c| c.draw_momentum(target))
        .collect::<Result<_>>()?;
    // Per chain: θ, p and the state at θ, as `leapfrog_from` keeps them.
    let mut theta: Vec<Tensor> = chains.iter().map(|c| c.current.theta.clone()).collect();
    let mut momentum = p0.clone();
    let mut state: Vec<State> = chains.iter().map(|c| c.current.clone()).collect();
    let mut failed = vec![false; chains.len()];
    let args = |c: &ChainState, kicks: u64, drift: bool| LeapfrogArgs {
        half: 0.5 * c.step_size,
        kicks,
        eps: c.step_size,
        drift,
        prior,
        temp,
    };
    let longest = chains.iter().map(|c| c.leapfrog_steps).max().unwrap_or(0);
    for step in 0..longest {
        let active: Vec<usize> = (0..chains.len())
            .filter(|&c| step < chains[c].leapfrog_steps && !failed[c])
            .collect();
        if active.is_empty() {
            break;
        }
        for &c in &active {
            // The closing half kick of the last step and the opening one of this, fused.
            let a = args(chains[c], if step == 0 { 1 } else { 2 }, true);
            let (t, p) = (theta[c].clone(), momentum[c].clone());
            (theta[c], momentum[c]) = hmc::leapfrog_update(t, p, &state[c].gradient, &a)?;
        }
        let stacked = Tensor::stack(
            &active.iter().map(|&c| theta[c].clone()).collect::<Vec<_>>(),
            0,
        )?;
        match target.likelihoods_and_gradients(&stacked) {
            Ok((lls, grads)) => {
                for (j, &c) in active.iter().enumerate() {
                    state[c].log_likelihood = lls[j];
                    state[c].gradient = grads.narrow(0, j, 1)?.reshape(&[dim])?;
                }
            }
            Err(_) => active.iter().for_each(|&c| failed[c] = true),
        }
    }
    let mut out = Vec::with_capacity(chains.len());
    for (c, chain) in chains.iter_mut().enumerate() {
        let proposal = if failed[c] {
            None
        } else {
            let (mut t, mut p) = (theta[c].clone(), momentum[c].clone());
            if chain.leapfrog_steps > 0 {
                let a = args(chain, 1, false);
                (t, p) = hmc::leapfrog_update(t, p, &state[c].gradient, &a)?;
            }
            let mut s = state[c].clone();
            s.theta = t;
            Some((s, p))
        };
        out.push(chain.conclude(target, cfgs[c], &p0[c], proposal)?);
    }
    Ok(out)
}

/// Runs `cfgs.len()` chains in lockstep from `theta0s` with batched evaluations
/// ([`advance_batched`]); chain `c` is the chain [`sample`] runs from `theta0s[c]` with
/// `cfgs[c]`. `progress` hears of every iteration (its number, burn-in included).
///
/// # Errors
/// As [`ChainState::start`] and [`advance_batched`].
pub fn sample_batched(
    target: &dyn BatchTarget,
    theta0s: Vec<Vec<f64>>,
    cfgs: &[HmcConfig],
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Chain>> {
    let mut chains: Vec<ChainState> = theta0s
        .into_iter()
        .zip(cfgs)
        .map(|(t, cfg)| ChainState::start(target, t, cfg))
        .collect::<Result<_>>()?;
    if chains.len() != cfgs.len() {
        return Err(Error::invalid(
            "chains",
            chains.len(),
            format!("{} settings given", cfgs.len()),
        ));
    }
    let mut iteration = 0;
    loop {
        // Chains with fewer iterations to run (other settings) drop out when done.
        let (mut running, settings): (Vec<&mut ChainState>, Vec<&HmcConfig>) = chains
            .iter_mut()
            .zip(cfgs)
            .filter(|(c, cfg)| !c.is_done(cfg))
            .unzip();
        if running.is_empty() {
            break;
        }
        advance_batched(target, &mut running, &settings)?;
        iteration += 1;
        progress(iteration);
    }
    Ok(chains
        .into_iter()
        .zip(cfgs)
        .map(|(c, cfg)| c.finish(cfg))
        .collect())
}
