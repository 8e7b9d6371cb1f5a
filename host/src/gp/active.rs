//! Active learning by the integrated posterior variance: the WISKI paper's qNIPV experiment
//! (Stanton, Maddox, Delbridge & Wilson, AISTATS 2021; `experiments/active_learning/
//! qnIPV_experiment.py` in wjmaddox/online_gp) on a generated 2-D field instead of the
//! Malaria Atlas set.
//!
//! # The problem ([`field`], [`Pool`])
//! A smooth field on `[0, 1]²` — five Gaussian bumps and a ripple, see [`field`] — observed at a
//! pool of uniform random points (10,000 by default, like the reference's Nigerian subset), each
//! with its own KNOWN noise variance `v_i = 0.005 + 0.02 u_i`, `u_i ~ U(0, 1)` (the malaria
//! targets carry their estimates' `std_dev²`), and a noisy target `y_i = f(x_i) + √v_i ε_i`.
//! The pool is both the unlabelled pool and, through a seeded random subset of it
//! (`integration` points, 1,000 by default), the integration and test set.
//!
//! # The loop
//! 1. label `init` random pool points (10) and absorb them with their known noise;
//! 2. each step choose `q` (6) unlabelled pool points that maximise qNIPV, the negative mean
//!    posterior variance of `f` over the integration points after adding them (which does not
//!    depend on their targets);
//! 3. absorb their targets with their known noise (`σ² = 1` times `v_i`: fixed heteroscedastic
//!    noise, no learned noise); record the test RMSE against the noiseless field and the mean
//!    posterior variance of `f` over the integration points.
//!
//! Choosing the batch: the reference optimises qNIPV continuously (botorch `optimize_acqf`, one
//! restart) and snaps each candidate to the unlabelled pool point of largest kernel value. Here
//! the batch is chosen greedily, one point at a time, among `candidates` (300) unlabelled pool
//! points drawn at random each step: each pick maximises the reduction of the mean variance
//! given the picks before it (conditioning on a point's input is exact without its target), so
//! the greedy batch is the sequential maximiser of qNIPV over that subset — no snapping needed.
//!
//! # WISKI's closed form
//! Adding `x` (interpolation weights `w`, noise `σ² d`) is a rank-1 Kalman update of the grid
//! covariance `C` (`Var f(z) = σ² w_zᵀ C w_z`): `C′ = C − u uᵀ/(d + wᵀu)`, `u = C w`. So the
//! mean variance over the integration points `Z` drops by
//! `σ² uᵀ M u / (d + wᵀ u)`, `M = (1/|Z|) Σ_z w_z w_zᵀ`,
//! with `M` sparse (at most 49 non-zeros per row in 2-D) and built once: `O(16 m + nnz(M))` per
//! candidate, however many points are labelled. `C` itself is formed once from the core's root
//! (`C = S Sᵀ`) and then follows every pick by the same rank-1 update.
//!
//! # The exact GP
//! The same greedy choice from covariance vectors: for each candidate `c_x = cov(f(Z ∪ X_c),
//! f(x))` from the whitened cross-covariances (`O(n²)` per point), and each pick `p` updates
//! `c_x ← c_x − c_p c_p[x]/(c_p[p] + σ² d_p)`.
//!
//! Hyperparameters are fixed (the reference refits them every step with Adam; not here).

use std::time::Instant;

use keel_core::gp::{Convention, ExactGp, Family, Prediction, Wiski, MAX_NONZEROS};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde::Serialize;

use super::joint::Joint;
use super::{ExactStore, GridSpec, Hyper, StreamMethod, WiskiStore};
use crate::error::{Error, Result};

/// The generated field on `[0, 1]²`:
/// `f(x) = Σ_j a_j exp(−‖x − c_j‖²/(2 r_j²)) + 0.15 sin(6π x₁) sin(4π x₂)` with
/// `(a, c, r)` = (1.0, (0.25, 0.30), 0.10), (−0.8, (0.70, 0.25), 0.15), (0.9, (0.55, 0.75),
/// 0.08), (0.6, (0.20, 0.80), 0.12), (−0.5, (0.85, 0.85), 0.06).
pub fn field(x: &[f64; 2]) -> f64 {
    use std::f64::consts::PI;
    const BUMPS: [(f64, [f64; 2], f64); 5] = [
        (1.0, [0.25, 0.30], 0.10),
        (-0.8, [0.70, 0.25], 0.15),
        (0.9, [0.55, 0.75], 0.08),
        (0.6, [0.20, 0.80], 0.12),
        (-0.5, [0.85, 0.85], 0.06),
    ];
    let bumps: f64 = BUMPS
        .iter()
        .map(|(a, c, r)| {
            let d2 = (x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2);
            a * (-d2 / (2.0 * r * r)).exp()
        })
        .sum();
    bumps + 0.15 * (6.0 * PI * x[0]).sin() * (4.0 * PI * x[1]).sin()
}

/// The pool: inputs, the noiseless field, known noise variances and noisy targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Inputs, uniform on `[0, 1]²`.
    pub x: Vec<[f64; 2]>,
    /// `f(x)`.
    pub truth: Vec<f64>,
    /// Known noise variances `0.005 + 0.02 u`.
    pub variance: Vec<f64>,
    /// `f(x) + √variance ε`.
    pub y: Vec<f64>,
}

impl Pool {
    /// `n` points drawn from `rng`.
    pub fn generate(n: usize, rng: &mut Xoshiro256PlusPlus) -> Pool {
        let mut p = Pool {
            x: Vec::with_capacity(n),
            truth: Vec::with_capacity(n),
            variance: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let x = [uniform::<f64, _>(rng), uniform::<f64, _>(rng)];
            let v = 0.005 + 0.02 * uniform::<f64, _>(rng);
            let f = field(&x);
            p.x.push(x);
            p.truth.push(f);
            p.variance.push(v);
            p.y.push(f + v.sqrt() * standard_normal::<f64, _>(rng));
        }
        p
    }
}

/// An active-learning run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveConfig {
    /// Pool size (the reference: all Nigerian 2017 rows; 10,000 here by default).
    pub pool: usize,
    /// Integration and test points, a random subset of the pool.
    pub integration: usize,
    /// Unlabelled pool points considered per step.
    pub candidates: usize,
    /// Initial random labelled points (10).
    pub init: usize,
    /// Points labelled per step, q (6).
    pub batch: usize,
    /// Steps (the paper: 500).
    pub steps: usize,
    /// Kernel family (the reference: Matérn-1/2).
    pub family: Family,
    /// Outputscale.
    pub outputscale: f64,
    /// Lengthscale (one, or one per dimension) on `[0, 1]²`.
    pub lengthscale: Vec<f64>,
    /// WISKI grid nodes per dimension over `[0, 1]²` (30).
    pub grid_size: usize,
    /// Seed of the pool, the initial points and the candidate subsets.
    pub seed: u64,
}

impl Default for ActiveConfig {
    fn default() -> Self {
        ActiveConfig {
            pool: 10_000,
            integration: 1_000,
            candidates: 300,
            init: 10,
            batch: 6,
            steps: 100,
            family: Family::Matern12,
            outputscale: 0.5,
            lengthscale: vec![0.2],
            grid_size: 30,
            seed: 0,
        }
    }
}

/// A run's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveReport {
    /// `wiski` or `exact`.
    pub method: &'static str,
    /// Steps.
    pub steps: usize,
    /// Points per step.
    pub q: usize,
    /// Initial labelled points.
    pub init: usize,
    /// Pool size.
    pub pool: usize,
    /// Integration/test points.
    pub integration: usize,
    /// Candidates per step.
    pub candidates: usize,
    /// Test RMSE (posterior mean against the noiseless field) after the initial points.
    pub initial_rmse: f64,
    /// Mean posterior variance of f over the test points after the initial points.
    pub initial_mean_variance: f64,
    /// Test RMSE after each step.
    pub rmse_over_steps: Vec<f64>,
    /// Test RMSE after each step over the test points not labelled yet (a labelled test point's
    /// mean is pulled towards its noisy target).
    pub rmse_unlabelled_over_steps: Vec<f64>,
    /// Mean posterior variance of f after each step.
    pub mean_variance_over_steps: Vec<f64>,
    /// Seconds per step (choosing the batch and absorbing it; the test metrics are not
    /// timed), mean over all steps.
    pub seconds_per_step: f64,
    /// … over the first 10 % of steps.
    pub step_seconds_first_tenth: f64,
    /// … over the last 10 %.
    pub step_seconds_last_tenth: f64,
    /// Every step's seconds.
    pub step_seconds: Vec<f64>,
    /// Whole run, seconds (including the test metrics).
    pub seconds: f64,
}

/// Runs the loop with `method` as the surrogate; `progress(k)` after step `k`.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad configuration (naming the setting); GP errors.
pub fn active(
    method: StreamMethod,
    cfg: &ActiveConfig,
    mut progress: impl FnMut(usize),
) -> Result<ActiveReport> {
    validate(method, cfg)?;
    let start = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let pool = Pool::generate(cfg.pool, &mut rng);
    let mut order: Vec<usize> = (0..cfg.pool).collect();
    shuffle(&mut order, &mut rng);
    let test: Vec<usize> = order[..cfg.integration].to_vec();
    shuffle(&mut order, &mut rng);
    let init: Vec<usize> = order[..cfg.init].to_vec();
    let integ: Vec<[f64; 2]> = test.iter().map(|&i| pool.x[i]).collect();
    let hyper = Hyper {
        family: cfg.family,
        outputscale: cfg.outputscale,
        lengthscale: cfg.lengthscale.clone(),
        noise: 1.0,
    }
    .for_dim(2)?;
    let grid = GridSpec {
        size: vec![cfg.grid_size; 2],
        lo: vec![0.0; 2],
        hi: vec![1.0; 2],
        convention: Convention::Endpoints,
        clamp: true,
    };
    let capacity = cfg.init + cfg.steps * cfg.batch;
    let mut wstore;
    let mut estore;
    let mut learner: Box<dyn Learner + '_> = match method {
        StreamMethod::Wiski => {
            wstore = WiskiStore::new(grid.nodes());
            let (gp, _) = wstore.model::<2>(&grid, &hyper)?;
            Box::new(WiskiLearner::new(gp, &integ)?)
        }
        StreamMethod::Exact => {
            estore = ExactStore::new(capacity, 2);
            let gp = ExactGp::new(hyper.kernel::<2>()?, 1.0, estore.buffers())
                .map_err(Error::core("exact GP"))?;
            Box::new(ExactLearner {
                gp,
                integ: integ.clone(),
            })
        }
    };
    let mut labelled = vec![false; cfg.pool];
    for &i in &init {
        learner.absorb(&pool.x[i], pool.y[i], pool.variance[i])?;
        labelled[i] = true;
    }
    // (RMSE, RMSE over the unlabelled test points, mean variance).
    let metrics = |l: &mut dyn Learner, labelled: &[bool]| -> Result<(f64, f64, f64)> {
        let (mut se, mut se_u, mut n_u, mut var) = (0.0, 0.0, 0usize, 0.0);
        for &i in &test {
            let p = l.predict(&pool.x[i])?;
            let e = (p.mean - pool.truth[i]).powi(2);
            se += e;
            if !labelled[i] {
                se_u += e;
                n_u += 1;
            }
            var += p.var_f;
        }
        let n = test.len() as f64;
        let rmse_u = if n_u > 0 {
            (se_u / n_u as f64).sqrt()
        } else {
            f64::NAN
        };
        Ok(((se / n).sqrt(), rmse_u, var / n))
    };
    let (initial_rmse, _, initial_mean_variance) = metrics(learner.as_mut(), &labelled)?;
    let mut rmse = Vec::with_capacity(cfg.steps);
    let mut rmse_u = Vec::with_capacity(cfg.steps);
    let mut mean_var = Vec::with_capacity(cfg.steps);
    let mut step_seconds = Vec::with_capacity(cfg.steps);
    let mut unlabelled: Vec<usize> = (0..cfg.pool).filter(|&i| !labelled[i]).collect();
    for step in 0..cfg.steps {
        let t = Instant::now();
        // A random subset of the unlabelled pool (partial Fisher–Yates).
        let k = cfg.candidates.min(unlabelled.len());
        for j in 0..k {
            let r = j + below(unlabelled.len() - j, &mut rng);
            unlabelled.swap(j, r);
        }
        let cands: Vec<([f64; 2], f64)> = unlabelled[..k]
            .iter()
            .map(|&i| (pool.x[i], pool.variance[i]))
            .collect();
        let picks = learner.select(&cands, cfg.batch)?;
        let mut chosen: Vec<usize> = picks.iter().map(|&j| unlabelled[j]).collect();
        for &i in &chosen {
            learner.absorb(&pool.x[i], pool.y[i], pool.variance[i])?;
            labelled[i] = true;
        }
        chosen.sort_unstable();
        unlabelled.retain(|i| chosen.binary_search(i).is_err());
        step_seconds.push(t.elapsed().as_secs_f64());
        let (r, ru, v) = metrics(learner.as_mut(), &labelled)?;
        rmse.push(r);
        rmse_u.push(ru);
        mean_var.push(v);
        progress(step + 1);
    }
    let tenth = (cfg.steps / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    Ok(ActiveReport {
        method: method.name(),
        steps: cfg.steps,
        q: cfg.batch,
        init: cfg.init,
        pool: cfg.pool,
        integration: cfg.integration,
        candidates: cfg.candidates,
        initial_rmse,
        initial_mean_variance,
        rmse_over_steps: rmse,
        rmse_unlabelled_over_steps: rmse_u,
        mean_variance_over_steps: mean_var,
        seconds_per_step: mean(&step_seconds),
        step_seconds_first_tenth: mean(&step_seconds[..tenth]),
        step_seconds_last_tenth: mean(&step_seconds[step_seconds.len() - tenth..]),
        step_seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn validate(method: StreamMethod, cfg: &ActiveConfig) -> Result<()> {
    if cfg.batch == 0 {
        return Err(Error::invalid("q", 0, "label at least one point per step"));
    }
    if cfg.steps == 0 {
        return Err(Error::invalid("steps", 0, "run at least one step"));
    }
    if cfg.init == 0 {
        return Err(Error::invalid(
            "init",
            0,
            "start from at least one labelled point",
        ));
    }
    if cfg.pool == 0 || cfg.pool > 1_000_000 {
        return Err(Error::invalid(
            "pool",
            cfg.pool,
            "use 1 to 1,000,000 points",
        ));
    }
    let labels = (cfg.init as u128) + (cfg.steps as u128) * (cfg.batch as u128);
    if labels > cfg.pool as u128 {
        return Err(Error::invalid(
            "steps",
            cfg.steps,
            format!(
                "{} initial + {} steps × {} points = {labels} labels, more than the pool's {} points",
                cfg.init, cfg.steps, cfg.batch, cfg.pool
            ),
        ));
    }
    if cfg.integration == 0 || cfg.integration > cfg.pool {
        return Err(Error::invalid(
            "integration",
            cfg.integration,
            format!("use 1 to the pool's {} points", cfg.pool),
        ));
    }
    if cfg.candidates < cfg.batch {
        return Err(Error::invalid(
            "candidates",
            cfg.candidates,
            format!("at least q = {} candidates are needed per step", cfg.batch),
        ));
    }
    if method == StreamMethod::Wiski && !(4..=64).contains(&cfg.grid_size) {
        return Err(Error::invalid(
            "grid_size",
            cfg.grid_size,
            "use 4 to 64 nodes per dimension (WISKI keeps three m×m matrices, m = nodes², and \
             forms the grid covariance once in O(m³))",
        ));
    }
    // Work: the exact GP pays O(n²) per point for (integration + candidates) points a step.
    let per_step = match method {
        StreamMethod::Exact => {
            crate::limits::memory(
                "steps",
                cfg.steps,
                "the exact GP's Cholesky factor",
                labels * labels * 8,
            )?;
            labels * labels * (cfg.integration as u128 + 2 * cfg.candidates as u128)
        }
        StreamMethod::Wiski => {
            let m = (cfg.grid_size as u128).pow(2);
            m * 65 * cfg.candidates as u128 * cfg.batch as u128
        }
    };
    crate::limits::work(
        "steps",
        cfg.steps,
        per_step * cfg.steps as u128,
        "multiply-adds",
    )
}

/// Uniform integer below `n` (> 0).
fn below(n: usize, rng: &mut Xoshiro256PlusPlus) -> usize {
    ((uniform::<f64, _>(rng) * n as f64) as usize).min(n - 1)
}

fn shuffle(v: &mut [usize], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..v.len()).rev() {
        v.swap(i, below(i + 1, rng));
    }
}

/// A surrogate that absorbs labels, predicts, and picks a greedy qNIPV batch.
trait Learner {
    fn absorb(&mut self, x: &[f64; 2], y: f64, d: f64) -> Result<()>;
    fn predict(&mut self, x: &[f64; 2]) -> Result<Prediction<f64>>;
    /// Indices into `cands` (input, noise factor) of `q` greedy picks.
    fn select(&mut self, cands: &[([f64; 2], f64)], q: usize) -> Result<Vec<usize>>;
}

/// `M = (1/|Z|) Σ_z w_z w_zᵀ` in compressed rows.
#[derive(Debug)]
pub(crate) struct Csr {
    start: Vec<usize>,
    col: Vec<usize>,
    val: Vec<f64>,
}

impl Csr {
    /// Built from the integration points' interpolation weights on `gp`'s grid.
    pub(crate) fn integration<const D: usize>(
        gp: &Wiski<'_, f64, D>,
        integ: &[[f64; D]],
    ) -> Result<Csr> {
        let m = gp.grid().len();
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); m];
        let scale = 1.0 / integ.len() as f64;
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [0.0; MAX_NONZEROS];
        for z in integ {
            let nnz = gp
                .grid()
                .weights(z, &mut idx, &mut w)
                .map_err(Error::core("integration point"))?;
            for a in 0..nnz {
                for b in 0..nnz {
                    let row = &mut rows[idx[a]];
                    let v = scale * w[a] * w[b];
                    match row.iter_mut().find(|(c, _)| *c == idx[b]) {
                        Some(e) => e.1 += v,
                        None => row.push((idx[b], v)),
                    }
                }
            }
        }
        let mut csr = Csr {
            start: vec![0],
            col: vec![],
            val: vec![],
        };
        for mut r in rows {
            r.sort_by_key(|e| e.0);
            for (c, v) in r {
                csr.col.push(c);
                csr.val.push(v);
            }
            csr.start.push(csr.col.len());
        }
        Ok(csr)
    }

    /// `uᵀ M u`.
    pub(crate) fn quadratic(&self, u: &[f64]) -> f64 {
        let mut s = 0.0;
        for (i, ui) in u.iter().enumerate() {
            let (a, b) = (self.start[i], self.start[i + 1]);
            let row: f64 = self.col[a..b]
                .iter()
                .zip(&self.val[a..b])
                .map(|(&c, v)| v * u[c])
                .sum();
            s += ui * row;
        }
        s
    }
}

/// WISKI with an explicit grid covariance `C` and the integration matrix `M`.
struct WiskiLearner<'a> {
    gp: Wiski<'a, f64, 2>,
    /// `C` (row-major `m×m`), formed from the root once and then updated by each pick.
    c: Vec<f64>,
    /// Whether `c` has been formed.
    c_ready: bool,
    /// Points absorbed since `c` was formed that it does not hold yet.
    pending: Vec<([f64; 2], f64)>,
    /// Picks already in `c`, to be absorbed next.
    picked: Vec<[f64; 2]>,
    integ_m: Csr,
}

impl<'a> WiskiLearner<'a> {
    fn new(gp: Wiski<'a, f64, 2>, integ: &[[f64; 2]]) -> Result<Self> {
        let integ_m = Csr::integration(&gp, integ)?;
        let m = gp.grid().len();
        Ok(WiskiLearner {
            gp,
            c: vec![0.0; m * m],
            c_ready: false,
            pending: vec![],
            picked: vec![],
            integ_m,
        })
    }

    /// `C = S Sᵀ` from the core's root (`O(m³)`, once).
    fn form_c(&mut self) {
        let m = self.gp.grid().len();
        let s = self.gp.root();
        for i in 0..m {
            for j in 0..=i {
                let v =
                    keel_core::linalg::dot_lanes(&s[i * m..(i + 1) * m], &s[j * m..(j + 1) * m]);
                self.c[i * m + j] = v;
                self.c[j * m + i] = v;
            }
        }
        self.c_ready = true;
        self.pending.clear();
    }
}

/// The mean-variance reduction of adding `x` with noise factor `d`, from `C` (`m×m`) and `M`:
/// `σ² uᵀ M u / (d + wᵀ u)`, `u = C w`; also returns `u` and `d + wᵀu`.
pub(crate) fn wiski_reduction<const D: usize>(
    gp: &Wiski<'_, f64, D>,
    c: &[f64],
    integ_m: &Csr,
    x: &[f64; D],
    d: f64,
    u: &mut [f64],
) -> Result<(f64, f64)> {
    let m = gp.grid().len();
    let mut idx = [0usize; MAX_NONZEROS];
    let mut w = [0.0; MAX_NONZEROS];
    let nnz = gp
        .grid()
        .weights(x, &mut idx, &mut w)
        .map_err(Error::core("candidate"))?;
    u.fill(0.0);
    let mut wu = 0.0;
    for (&i, &wi) in idx[..nnz].iter().zip(&w[..nnz]) {
        for (o, r) in u.iter_mut().zip(&c[i * m..(i + 1) * m]) {
            *o += wi * r;
        }
    }
    for (&i, &wi) in idx[..nnz].iter().zip(&w[..nnz]) {
        wu += wi * u[i];
    }
    let s = d + wu;
    Ok((gp.noise() * integ_m.quadratic(u) / s, s))
}

impl Learner for WiskiLearner<'_> {
    fn absorb(&mut self, x: &[f64; 2], y: f64, d: f64) -> Result<()> {
        self.gp
            .observe_with_noise(x, y, d)
            .map_err(Error::core("absorbing a label"))?;
        if let Some(k) = self.picked.iter().position(|p| p == x) {
            self.picked.swap_remove(k);
        } else if self.c_ready {
            self.pending.push((*x, d));
        }
        Ok(())
    }

    fn predict(&mut self, x: &[f64; 2]) -> Result<Prediction<f64>> {
        self.gp.predict(x).map_err(Error::core("prediction"))
    }

    fn select(&mut self, cands: &[([f64; 2], f64)], q: usize) -> Result<Vec<usize>> {
        let m = self.gp.grid().len();
        if !self.c_ready {
            self.form_c();
        }
        // Points absorbed but not picked here (labels given from outside) enter C by the same
        // rank-1 update.
        let mut u = vec![0.0; m];
        for (x, d) in std::mem::take(&mut self.pending) {
            let (_, s) = wiski_reduction(&self.gp, &self.c, &self.integ_m, &x, d, &mut u)?;
            rank1_downdate(&mut self.c, m, &u, s);
        }
        let mut taken = vec![false; cands.len()];
        let mut picks = Vec::with_capacity(q);
        for _ in 0..q.min(cands.len()) {
            let mut best = (usize::MAX, f64::NEG_INFINITY);
            for (j, (x, d)) in cands.iter().enumerate() {
                if taken[j] {
                    continue;
                }
                let (r, _) = wiski_reduction(&self.gp, &self.c, &self.integ_m, x, *d, &mut u)?;
                if r > best.1 {
                    best = (j, r);
                }
            }
            let j = best.0;
            let (x, d) = cands[j];
            let (_, s) = wiski_reduction(&self.gp, &self.c, &self.integ_m, &x, d, &mut u)?;
            rank1_downdate(&mut self.c, m, &u, s);
            taken[j] = true;
            picks.push(j);
            self.picked.push(x);
        }
        Ok(picks)
    }
}

/// `C ← C − u uᵀ / s`.
fn rank1_downdate(c: &mut [f64], m: usize, u: &[f64], s: f64) {
    for (row, ui) in c.chunks_exact_mut(m).zip(u) {
        let g = ui / s;
        for (v, uj) in row.iter_mut().zip(u) {
            *v -= g * uj;
        }
    }
}

/// The exact GP and the integration points.
struct ExactLearner<'a> {
    gp: ExactGp<'a, f64, 2>,
    integ: Vec<[f64; 2]>,
}

impl Learner for ExactLearner<'_> {
    fn absorb(&mut self, x: &[f64; 2], y: f64, d: f64) -> Result<()> {
        self.gp
            .push_with_noise(*x, y, d)
            .map_err(|r| Error::core("absorbing a label")(r.error))
    }

    fn predict(&mut self, x: &[f64; 2]) -> Result<Prediction<f64>> {
        self.gp.predict(x).map_err(Error::core("prediction"))
    }

    fn select(&mut self, cands: &[([f64; 2], f64)], q: usize) -> Result<Vec<usize>> {
        greedy_nipv(&self.gp, &self.integ, cands, q)
    }
}

/// Greedy qNIPV from covariance vectors through any [`Joint`] model: the exact GP's selection,
/// and the reference for WISKI's closed form in tests.
pub(crate) fn greedy_nipv<const D: usize>(
    model: &dyn Joint<D>,
    integ: &[[f64; D]],
    cands: &[([f64; D], f64)],
    q: usize,
) -> Result<Vec<usize>> {
    let (nz, k) = (integ.len(), cands.len());
    let len = model.feature_len();
    let pts: Vec<[f64; D]> = integ
        .iter()
        .copied()
        .chain(cands.iter().map(|c| c.0))
        .collect();
    let mut feats = vec![0.0; pts.len() * len];
    for (x, f) in pts.iter().zip(feats.chunks_exact_mut(len.max(1))) {
        model.feature(x, f).map_err(Error::core("qNIPV"))?;
    }
    let feat = |i: usize| &feats[i * len..(i + 1) * len];
    let width = nz + k;
    // cov[j] = cov(f(Z ∪ X_c), f(x_j)).
    let mut cov = vec![0.0; k * width];
    for j in 0..k {
        for i in 0..width {
            cov[j * width + i] = model.covariance(&pts[i], &pts[nz + j], feat(i), feat(nz + j));
        }
    }
    let noise = model.noise_variance();
    let mut taken = vec![false; k];
    let mut picks = Vec::with_capacity(q);
    for _ in 0..q.min(k) {
        let mut best = (usize::MAX, f64::NEG_INFINITY);
        for j in (0..k).filter(|&j| !taken[j]) {
            let c = &cov[j * width..(j + 1) * width];
            let s = c[nz + j] + noise * cands[j].1;
            let r = c[..nz].iter().map(|v| v * v).sum::<f64>() / (nz as f64 * s);
            if r > best.1 {
                best = (j, r);
            }
        }
        let p = best.0;
        let cp = cov[p * width..(p + 1) * width].to_vec();
        let s = cp[nz + p] + noise * cands[p].1;
        for j in 0..k {
            let g = cp[nz + j] / s;
            for (v, c) in cov[j * width..(j + 1) * width].iter_mut().zip(&cp) {
                *v -= g * c;
            }
        }
        taken[p] = true;
        picks.push(p);
    }
    Ok(picks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Hyper, GridSpec, Pool, Vec<[f64; 2]>) {
        let hyper = Hyper {
            family: Family::Matern12,
            outputscale: 0.5,
            lengthscale: vec![0.2],
            noise: 1.0,
        }
        .for_dim(2)
        .unwrap();
        let grid = GridSpec {
            size: vec![12, 12],
            lo: vec![0.0; 2],
            hi: vec![1.0; 2],
            convention: Convention::Endpoints,
            clamp: true,
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let pool = Pool::generate(300, &mut rng);
        let integ = pool.x[100..300].to_vec();
        (hyper, grid, pool, integ)
    }

    fn mean_var(gp: &Wiski<'_, f64, 2>, integ: &[[f64; 2]]) -> f64 {
        integ
            .iter()
            .map(|z| gp.predict(z).unwrap().var_f)
            .sum::<f64>()
            / integ.len() as f64
    }

    /// The closed form `σ² uᵀMu/(d + wᵀu)` is what absorbing the point does to the mean
    /// variance, and the greedy WISKI batch is the generic covariance-vector batch.
    #[test]
    fn wiski_closed_form_equals_absorbing_the_point() {
        let (hyper, grid, pool, integ) = setup();
        let mut s1 = WiskiStore::new(grid.nodes());
        let (gp, _) = s1.model::<2>(&grid, &hyper).unwrap();
        let mut learner = WiskiLearner::new(gp, &integ).unwrap();
        for i in 0..10 {
            learner
                .absorb(&pool.x[i], pool.y[i], pool.variance[i])
                .unwrap();
        }
        learner.form_c();
        let m = grid.nodes();
        let mut u = vec![0.0; m];
        let before = mean_var(&learner.gp, &integ);
        for i in 10..15 {
            let (red, _) = wiski_reduction(
                &learner.gp,
                &learner.c,
                &learner.integ_m,
                &pool.x[i],
                pool.variance[i],
                &mut u,
            )
            .unwrap();
            let mut s2 = WiskiStore::new(m);
            let (mut copy, _) = s2.model::<2>(&grid, &hyper).unwrap();
            for j in (0..10).chain([i]) {
                copy.observe_with_noise(&pool.x[j], pool.y[j], pool.variance[j])
                    .unwrap();
            }
            let brute = before - mean_var(&copy, &integ);
            assert!(
                (red - brute).abs() <= 1e-10 * (1.0 + brute),
                "{red} vs {brute}"
            );
        }
        let cands: Vec<([f64; 2], f64)> = (20..80).map(|i| (pool.x[i], pool.variance[i])).collect();
        let generic = greedy_nipv::<2>(&learner.gp, &integ, &cands, 6).unwrap();
        let closed = learner.select(&cands, 6).unwrap();
        assert_eq!(generic, closed);
        // C followed the picks: absorbing them leaves C equal to the root's S Sᵀ.
        for &j in &closed {
            learner.absorb(&cands[j].0, 0.0, cands[j].1).unwrap();
        }
        let c = learner.c.clone();
        learner.form_c();
        for (a, b) in c.iter().zip(&learner.c) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }

    /// The exact GP's greedy first pick reduces the mean variance by what absorbing it does.
    #[test]
    fn exact_greedy_pick_reduction_equals_absorbing() {
        let (hyper, _, pool, integ) = setup();
        let kern = hyper.kernel::<2>().unwrap();
        let mut es = ExactStore::new(20, 2);
        let mut gp = ExactGp::new(kern, 1.0, es.buffers()).unwrap();
        for i in 0..10 {
            gp.push_with_noise(pool.x[i], pool.y[i], pool.variance[i])
                .unwrap();
        }
        let cands: Vec<([f64; 2], f64)> = (20..60).map(|i| (pool.x[i], pool.variance[i])).collect();
        let picks = greedy_nipv::<2>(&gp, &integ, &cands, 2).unwrap();
        let mv = |gp: &mut ExactGp<'_, f64, 2>| {
            integ
                .iter()
                .map(|z| gp.predict(z).unwrap().var_f)
                .sum::<f64>()
                / integ.len() as f64
        };
        let before = mv(&mut gp);
        // Brute force: the best single point by absorbing each in turn.
        let mut best = (usize::MAX, f64::NEG_INFINITY);
        for (j, (x, d)) in cands.iter().enumerate() {
            gp.push_with_noise(*x, 0.0, *d).unwrap();
            let r = before - mv(&mut gp);
            gp.truncate(10);
            if r > best.1 {
                best = (j, r);
            }
        }
        assert_eq!(picks[0], best.0);
    }

    #[test]
    fn a_short_run_learns_the_field() {
        let cfg = ActiveConfig {
            pool: 2000,
            integration: 300,
            candidates: 60,
            steps: 8,
            grid_size: 20,
            ..ActiveConfig::default()
        };
        for method in [StreamMethod::Wiski, StreamMethod::Exact] {
            let mut calls = 0;
            let r = active(method, &cfg, |_| calls += 1).unwrap();
            assert_eq!(calls, 8);
            assert_eq!(r.rmse_over_steps.len(), 8);
            assert!(r.rmse_over_steps[7] < r.initial_rmse, "{method:?}: {r:?}");
            assert!(r.mean_variance_over_steps[7] < r.initial_mean_variance);
        }
    }

    #[test]
    fn bad_settings_name_themselves() {
        let bad = |cfg: ActiveConfig, name: &str| {
            let e = active(StreamMethod::Wiski, &cfg, |_| {}).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        };
        bad(
            ActiveConfig {
                batch: 0,
                ..ActiveConfig::default()
            },
            "q",
        );
        bad(
            ActiveConfig {
                steps: 10_000,
                ..ActiveConfig::default()
            },
            "steps",
        );
        bad(
            ActiveConfig {
                integration: 0,
                ..ActiveConfig::default()
            },
            "integration",
        );
        bad(
            ActiveConfig {
                candidates: 2,
                ..ActiveConfig::default()
            },
            "candidates",
        );
    }
}
