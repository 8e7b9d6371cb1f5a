//! Bayesian optimisation with an online GP surrogate: the WISKI paper's experiment, where the
//! exact GP's time per step grows with the number of evaluations and WISKI's stays flat.
//!
//! The loop, as in the reference (inputs scaled to the unit cube, targets standardised with
//! the initial points' mean and sd, minimisation):
//! 1. evaluate `init` uniform random points and absorb them;
//! 2. each step, maximise the acquisition (UCB `−μ + √β σ`, expected improvement, or
//!    Monte-Carlo noisy expected improvement (`nei`: the joint posterior of the
//!    candidate and the pruned observed points, 256 base samples fixed for the step), all on
//!    the standardised and negated objective) from 512 random raw samples, refining the best 10 by
//!    a shrinking random local search; take the `q` best refined points that are at least
//!    `0.05√d` apart (a greedy batch);
//! 3. evaluate them (with observation noise if asked) and absorb them — one online update per
//!    point, which is where the exact GP pays `O(n²)` and WISKI `O(m²)`.
//!
//! Hyperparameters are fixed (the flags), or refit every `refit_every` steps by Adam on the log
//! marginal likelihood (WISKI: from the cached statistics; exact: dense).

use std::time::Instant;

use keel_core::gp::{Convention, Prediction};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::joint::Joint;
use super::nei::{Nei, NEI_SAMPLES};
use super::{fit, GridSpec, Hyper, Store, StreamMethod, TrainData};
use crate::error::{Error, Result};

/// A standard test function on its usual domain (minimisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFunction {
    /// Ackley (a = 20, b = 0.2, c = 2π) on [−32.768, 32.768]^d; minimum 0 at 0.
    Ackley,
    /// Levy on [−10, 10]^d; minimum 0 at 1.
    Levy,
    /// Rastrigin on [−5.12, 5.12]^d; minimum 0 at 0.
    Rastrigin,
    /// Rosenbrock on [−5, 10]^d; minimum 0 at 1.
    Rosenbrock,
    /// Styblinski–Tang on [−5, 5]^d; minimum −39.16617·d at −2.903534.
    StyblinskiTang,
    /// Griewank on [−600, 600]^d; minimum 0 at 0.
    Griewank,
    /// Dixon–Price on [−10, 10]^d; minimum 0.
    DixonPrice,
}

impl TestFunction {
    /// Parses a name (`ackley`, `levy`, `rastrigin`, `rosenbrock`, `styblinski-tang`,
    /// `griewank`, `dixon-price`).
    pub fn from_name(s: &str) -> Option<TestFunction> {
        Some(match s {
            "ackley" => TestFunction::Ackley,
            "levy" => TestFunction::Levy,
            "rastrigin" => TestFunction::Rastrigin,
            "rosenbrock" => TestFunction::Rosenbrock,
            "styblinski-tang" | "styblinskitang" => TestFunction::StyblinskiTang,
            "griewank" => TestFunction::Griewank,
            "dixon-price" | "dixonprice" => TestFunction::DixonPrice,
            _ => return None,
        })
    }

    /// The domain `[lo, hi]` of every coordinate.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            TestFunction::Ackley => (-32.768, 32.768),
            TestFunction::Levy | TestFunction::DixonPrice => (-10.0, 10.0),
            TestFunction::Rastrigin => (-5.12, 5.12),
            TestFunction::Rosenbrock => (-5.0, 10.0),
            TestFunction::StyblinskiTang => (-5.0, 5.0),
            TestFunction::Griewank => (-600.0, 600.0),
        }
    }

    /// The global minimum value in `d` dimensions.
    pub fn minimum(self, d: usize) -> f64 {
        match self {
            TestFunction::StyblinskiTang => -39.166_165_703_771_42 * d as f64,
            _ => 0.0,
        }
    }

    /// `f(x)` for `x` in the domain.
    pub fn eval(self, x: &[f64]) -> f64 {
        use std::f64::consts::PI;
        let d = x.len() as f64;
        match self {
            TestFunction::Ackley => {
                let s2 = x.iter().map(|v| v * v).sum::<f64>() / d;
                let sc = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
                -20.0 * (-0.2 * s2.sqrt()).exp() - sc.exp() + 20.0 + std::f64::consts::E
            }
            TestFunction::Levy => {
                let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
                let n = w.len();
                let mut s = (PI * w[0]).sin().powi(2);
                for wi in &w[..n - 1] {
                    s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2));
                }
                s + (w[n - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[n - 1]).sin().powi(2))
            }
            TestFunction::Rastrigin => {
                10.0 * d
                    + x.iter()
                        .map(|v| v * v - 10.0 * (2.0 * PI * v).cos())
                        .sum::<f64>()
            }
            TestFunction::Rosenbrock => x
                .windows(2)
                .map(|p| 100.0 * (p[1] - p[0] * p[0]).powi(2) + (p[0] - 1.0).powi(2))
                .sum(),
            TestFunction::StyblinskiTang => {
                0.5 * x
                    .iter()
                    .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
                    .sum::<f64>()
            }
            TestFunction::Griewank => {
                let s = x.iter().map(|v| v * v).sum::<f64>() / 4000.0;
                let p = x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v / ((i + 1) as f64).sqrt()).cos())
                    .product::<f64>();
                s - p + 1.0
            }
            TestFunction::DixonPrice => {
                let mut s = (x[0] - 1.0).powi(2);
                for i in 1..x.len() {
                    s += (i + 1) as f64 * (2.0 * x[i] * x[i] - x[i - 1]).powi(2);
                }
                s
            }
        }
    }
}

/// The acquisition function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Acquisition {
    /// Upper confidence bound on the negated objective, `−μ + √β σ`.
    Ucb {
        /// β.
        beta: f64,
    },
    /// Expected improvement below the best standardised value seen.
    Ei,
    /// Noisy expected improvement (Letham et al. 2019; botorch's `qNoisyExpectedImprovement`
    /// with `q = 1`): Monte-Carlo over the joint posterior of the candidate and the pruned
    /// observed points, improvement over the best of the latter in each sample.
    Nei,
}

impl Acquisition {
    /// `ucb`, `ei` or `nei`.
    pub fn name(self) -> &'static str {
        match self {
            Acquisition::Ucb { .. } => "ucb",
            Acquisition::Ei => "ei",
            Acquisition::Nei => "nei",
        }
    }
}

/// A Bayesian-optimisation run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BoConfig {
    /// Objective.
    pub function: TestFunction,
    /// Dimension (1 to 3 for WISKI).
    pub dim: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Points evaluated per step.
    pub batch: usize,
    /// Random initial points.
    pub init: usize,
    /// Acquisition.
    pub acquisition: Acquisition,
    /// Observation noise sd added to f.
    pub noise_sd: f64,
    /// Kernel and noise (in standardised units, inputs in the unit cube).
    pub hyper: Hyper,
    /// WISKI grid nodes per dimension over the unit cube.
    pub grid_size: usize,
    /// Refit the hyperparameters every this many steps (0: never).
    pub refit_every: usize,
    /// Seed.
    pub seed: u64,
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoStep {
    /// Evaluations so far.
    pub evaluations: usize,
    /// Best objective value seen so far (noisy observations).
    pub best_observed: f64,
    /// Best noise-free objective value among the points evaluated so far.
    pub best_latent: f64,
    /// Seconds absorbing this step's points (and refitting, when due).
    pub model_seconds: f64,
    /// Seconds maximising the acquisition.
    pub acquisition_seconds: f64,
}

/// A run's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// `ucb`, `ei` or `nei`.
    pub acquisition: &'static str,
    /// Function name.
    pub function: String,
    /// Dimension.
    pub dim: usize,
    /// The function's global minimum.
    pub minimum: f64,
    /// Best noise-free value found.
    pub best_latent: f64,
    /// The input where it was found.
    pub best_x: Vec<f64>,
    /// Evaluations.
    pub evaluations: usize,
    /// Mean seconds per step (model + acquisition) over the first and the last 10 % of steps.
    pub step_seconds_first_tenth: f64,
    /// … last tenth.
    pub step_seconds_last_tenth: f64,
    /// Whole run, seconds.
    pub seconds: f64,
    /// Every step.
    pub history: Vec<BoStep>,
}

/// Runs Bayesian optimisation with `method` as the surrogate.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad configuration; GP errors as in [`stream`](fn@super::stream).
pub fn optimise(
    method: StreamMethod,
    cfg: &BoConfig,
    progress: impl FnMut(usize),
) -> Result<BoReport> {
    if cfg.steps == 0 || cfg.batch == 0 || cfg.init < 2 {
        return Err(Error::invalid(
            "steps/batch/init",
            format!("{}/{}/{}", cfg.steps, cfg.batch, cfg.init),
            "need at least one step of one point and two initial points",
        ));
    }
    if !(cfg.noise_sd >= 0.0 && cfg.noise_sd.is_finite()) {
        return Err(Error::invalid("noise_sd", cfg.noise_sd, "must be ≥ 0"));
    }
    // The exact GP keeps a Cholesky factor of every point; either surrogate updates once per
    // point at a cost of O(n) (exact) or O(m²) (WISKI, m grid nodes).
    let points =
        (cfg.init as u128).saturating_add((cfg.steps as u128).saturating_mul(cfg.batch as u128));
    let per_point = match method {
        StreamMethod::Exact => {
            crate::limits::memory(
                "steps/batch",
                format!("{}/{}", cfg.steps, cfg.batch),
                "the exact GP's Cholesky factor",
                points.saturating_mul(points).saturating_mul(8),
            )?;
            points
        }
        StreamMethod::Wiski => {
            let nodes = (cfg.grid_size as u128).saturating_pow(cfg.dim.min(3) as u32);
            if nodes > 8192 {
                return Err(Error::invalid(
                    "grid_size",
                    cfg.grid_size,
                    format!(
                        "{nodes} grid nodes in {} dimensions: WISKI keeps two m×m matrices; use at most 8192 nodes",
                        cfg.dim
                    ),
                ));
            }
            nodes.saturating_mul(nodes)
        }
    };
    crate::limits::work(
        "steps/batch",
        format!("{}/{}", cfg.steps, cfg.batch),
        points.saturating_mul(per_point),
        "multiply-adds",
    )?;
    if let Acquisition::Ucb { beta } = cfg.acquisition {
        if !(beta >= 0.0 && beta.is_finite()) {
            return Err(Error::invalid("beta", beta, "must be ≥ 0"));
        }
    }
    let hyper = cfg.hyper.for_dim(cfg.dim)?;
    match (method, cfg.dim) {
        (_, 1) => run::<1>(method, cfg, &hyper, progress),
        (_, 2) => run::<2>(method, cfg, &hyper, progress),
        (_, 3) => run::<3>(method, cfg, &hyper, progress),
        (StreamMethod::Exact, 4) => run::<4>(method, cfg, &hyper, progress),
        (StreamMethod::Exact, 5) => run::<5>(method, cfg, &hyper, progress),
        (StreamMethod::Exact, 6) => run::<6>(method, cfg, &hyper, progress),
        (_, d) => Err(Error::invalid(
            "dim",
            d,
            "WISKI interpolates on 1- to 3-D grids (the exact GP takes up to 6)",
        )),
    }
}

fn run<const D: usize>(
    method: StreamMethod,
    cfg: &BoConfig,
    hyper: &Hyper,
    mut progress: impl FnMut(usize),
) -> Result<BoReport> {
    let start = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let (lo, hi) = cfg.function.bounds();
    let to_domain = |u: &[f64; D]| -> Vec<f64> { u.iter().map(|v| lo + (hi - lo) * v).collect() };
    let capacity = cfg.init + cfg.steps * cfg.batch;
    let grid = GridSpec {
        size: vec![cfg.grid_size; D],
        lo: vec![0.0; D],
        hi: vec![1.0; D],
        convention: Convention::Endpoints,
        clamp: true,
    };
    if method == StreamMethod::Wiski {
        grid.for_dim(D)?;
    }
    let mut store = Store::new(method, &grid, capacity, D);
    // Evaluations (unit-cube inputs, raw values) and standardisation from the initial points.
    let mut xs: Vec<[f64; D]> = Vec::with_capacity(capacity);
    let mut ys: Vec<f64> = Vec::with_capacity(capacity);
    let mut latent: Vec<f64> = Vec::with_capacity(capacity);
    let evaluate = |u: [f64; D], rng: &mut Xoshiro256PlusPlus| {
        let f = cfg.function.eval(&to_domain(&u));
        let y = f + cfg.noise_sd * standard_normal::<f64, _>(rng);
        (f, y)
    };
    for _ in 0..cfg.init {
        let mut u = [0.0; D];
        for v in u.iter_mut() {
            *v = uniform::<f64, _>(&mut rng);
        }
        let (f, y) = evaluate(u, &mut rng);
        xs.push(u);
        ys.push(y);
        latent.push(f);
    }
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let sd = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (ys.len() - 1) as f64)
        .sqrt()
        .max(1e-12);
    let z = |y: f64| (y - mean) / sd;
    let mut hyper = hyper.clone();
    let mut history = Vec::with_capacity(cfg.steps);
    let mut absorbed = 0usize;
    let mut model = store.build_joint::<D>(&grid, &hyper)?;
    for step in 0..cfg.steps {
        let t = Instant::now();
        if cfg.refit_every > 0 && step % cfg.refit_every == 0 && step > 0 {
            let train = TrainData {
                dim: D,
                x: xs.iter().flat_map(|u| u.iter().copied()).collect(),
                y: ys.iter().map(|&y| z(y)).collect(),
                d: vec![1.0; xs.len()],
            };
            let g = (method == StreamMethod::Wiski).then_some(&grid);
            hyper = fit(&hyper, g, &train, 20, 0.05)?.0;
            drop(model);
            model = store.build_joint::<D>(&grid, &hyper)?;
            absorbed = 0;
        }
        while absorbed < xs.len() {
            model
                .absorb(&xs[absorbed], z(ys[absorbed]), 1.0)
                .map_err(Error::core("absorbing an evaluation"))?;
            absorbed += 1;
        }
        let model_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let best_z = ys.iter().map(|&y| z(y)).fold(f64::INFINITY, f64::min);
        let batch = propose::<D>(model.as_mut(), cfg, best_z, &xs, &mut rng)?;
        let acquisition_seconds = t.elapsed().as_secs_f64();
        for u in batch {
            let (f, y) = evaluate(u, &mut rng);
            xs.push(u);
            ys.push(y);
            latent.push(f);
        }
        history.push(BoStep {
            evaluations: xs.len(),
            best_observed: ys.iter().copied().fold(f64::INFINITY, f64::min),
            best_latent: latent.iter().copied().fold(f64::INFINITY, f64::min),
            model_seconds,
            acquisition_seconds,
        });
        progress(step + 1);
    }
    let (best_i, best) =
        latent
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |a, (i, v)| if v < a.1 { (i, v) } else { a },
            );
    let tenth = (cfg.steps / 10).max(1);
    let mean_secs = |h: &[BoStep]| {
        h.iter()
            .map(|s| s.model_seconds + s.acquisition_seconds)
            .sum::<f64>()
            / h.len().max(1) as f64
    };
    Ok(BoReport {
        method: method.name(),
        acquisition: cfg.acquisition.name(),
        function: format!("{:?}", cfg.function),
        dim: D,
        minimum: cfg.function.minimum(D),
        best_latent: best,
        best_x: to_domain(&xs[best_i]),
        evaluations: xs.len(),
        step_seconds_first_tenth: mean_secs(&history[..tenth]),
        step_seconds_last_tenth: mean_secs(&history[history.len() - tenth..]),
        seconds: start.elapsed().as_secs_f64(),
        history,
    })
}

/// UCB or analytic EI from the marginal posterior (NEI is scored by [`Nei::value`]).
fn score(p: &Prediction<f64>, acq: Acquisition, best_z: f64) -> f64 {
    let sd = p.var_f.max(0.0).sqrt();
    match acq {
        Acquisition::Ucb { beta } => -p.mean + beta.sqrt() * sd,
        Acquisition::Ei | Acquisition::Nei => expected_improvement(p.mean, sd, best_z),
    }
}

/// `E max(best − f, 0)` for `f ~ N(mean, sd²)`.
pub(crate) fn expected_improvement(mean: f64, sd: f64, best: f64) -> f64 {
    if sd <= 0.0 {
        return (best - mean).max(0.0);
    }
    let u = (best - mean) / sd;
    let pdf = (-0.5 * u * u).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = 0.5 * erfc(-u / std::f64::consts::SQRT_2);
    sd * (u * cdf + pdf)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7 — ample
/// for ranking candidates).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn propose<const D: usize>(
    model: &mut dyn Joint<D>,
    cfg: &BoConfig,
    best_z: f64,
    observed: &[[f64; D]],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<[f64; D]>> {
    const RAW: usize = 512;
    const RESTARTS: usize = 10;
    const LOCAL: usize = 30;
    let nei = match cfg.acquisition {
        Acquisition::Nei => Some(Nei::new(&*model, observed, NEI_SAMPLES, rng)?),
        _ => None,
    };
    let mut eval = |u: &[f64; D]| -> Result<f64> {
        if let Some(nei) = &nei {
            return Ok(nei.value(&*model, u)?.0);
        }
        let p = model.predict(u).map_err(Error::core("acquisition"))?;
        Ok(score(&p, cfg.acquisition, best_z))
    };
    let mut raw: Vec<([f64; D], f64)> = Vec::with_capacity(RAW);
    for _ in 0..RAW {
        let mut u = [0.0; D];
        for v in u.iter_mut() {
            *v = uniform::<f64, _>(rng);
        }
        let s = eval(&u)?;
        raw.push((u, s));
    }
    raw.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut refined = Vec::with_capacity(RESTARTS);
    for &(u0, s0) in raw.iter().take(RESTARTS) {
        let (mut u, mut s) = (u0, s0);
        let mut step = 0.1;
        for _ in 0..LOCAL {
            let mut c = u;
            for v in c.iter_mut() {
                *v = (*v + step * standard_normal::<f64, _>(rng)).clamp(0.0, 1.0);
            }
            let sc = eval(&c)?;
            if sc > s {
                (u, s) = (c, sc);
            } else {
                step *= 0.85;
            }
        }
        refined.push((u, s));
    }
    refined.sort_by(|a, b| b.1.total_cmp(&a.1));
    let min_dist = 0.05 * (D as f64).sqrt();
    let mut batch: Vec<[f64; D]> = Vec::with_capacity(cfg.batch);
    for (u, _) in refined.iter().chain(raw.iter()) {
        if batch.len() == cfg.batch {
            break;
        }
        let far = batch.iter().all(|b| {
            b.iter()
                .zip(u)
                .map(|(a, c)| (a - c).powi(2))
                .sum::<f64>()
                .sqrt()
                >= min_dist
        });
        if far {
            batch.push(*u);
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_functions_hit_their_minima() {
        let d = 3;
        assert!(TestFunction::Ackley.eval(&[0.0; 3]).abs() < 1e-12);
        assert!(TestFunction::Levy.eval(&[1.0; 3]).abs() < 1e-12);
        assert!(TestFunction::Rastrigin.eval(&[0.0; 3]).abs() < 1e-12);
        assert!(TestFunction::Rosenbrock.eval(&[1.0; 3]).abs() < 1e-12);
        assert!(TestFunction::Griewank.eval(&[0.0; 3]).abs() < 1e-12);
        let st = TestFunction::StyblinskiTang.eval(&[-2.903_534; 3]);
        assert!((st - TestFunction::StyblinskiTang.minimum(d)).abs() < 1e-6);
        let dp: Vec<f64> = (0..3)
            .map(|i| 2f64.powf(-(2f64.powi(i + 1) - 2.0) / 2f64.powi(i + 1)))
            .collect();
        assert!(TestFunction::DixonPrice.eval(&dp).abs() < 1e-12);
        // A known value: Ackley at (1, 1, 1) = −20e^{−0.2} − e + 20 + e.
        let a = TestFunction::Ackley.eval(&[1.0; 3]);
        assert!((a - (20.0 - 20.0 * (-0.2f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn erfc_is_accurate_enough() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (-1.0, 1.842_700_792_949_715),
            (2.0, 0.004_677_734_981_047_266),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "{x}");
        }
    }
}
