//! Monte-Carlo noisy expected improvement (Letham, Karrer, Ottoni & Bakshy, *Constrained
//! Bayesian Optimization with Noisy Experiments*, 2019), as botorch's
//! `qNoisyExpectedImprovement` computes it — one of the acquisitions of the WISKI paper's BO
//! experiment (`experiments/bayesopt/bayesopt.py` in wjmaddox/online_gp, `--acquisition nei`).
//!
//! With noisy observations the best value seen is itself uncertain, so instead of comparing a
//! candidate with a fixed incumbent, NEI samples the JOINT posterior of the candidate and the
//! observed points (the baseline) and averages `max(g(x) − max_j g(x_j), 0)` over the samples
//! (`g = −f`: the loop minimises). Details, as botorch does them:
//! - the baseline is pruned (botorch's `prune_inferior_points`) to the observed points that are
//!   the best in at least one of [`PRUNE_SAMPLES`] joint samples, so the joint covariance stays
//!   small; here that sampling runs over the [`PRUNE_POOL`] observed points of lowest posterior
//!   mean (all of them below that count) to bound its `O(n²)` covariance;
//! - the base samples are drawn once per step and shared by every candidate (common random
//!   numbers), so the acquisition is a smooth, deterministic function of `x` for the optimiser;
//! - the baseline block of the joint Cholesky factor is computed once per step and each
//!   candidate borders it by one row: `O(p·len + p² + S·p)` per candidate for `p` baseline
//!   points, feature length `len` and `S` samples.
//!
//! The candidate batch is scored one point at a time (`q = 1`); [`bo`](super::bo) assembles a
//! batch from the best-scoring points as for UCB and EI.

use keel_core::linalg::{dot_lanes, solve_lower_in_place};
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

use super::joint::{jittered_cholesky, joint_posterior, Joint};
use crate::error::{Error, Result};

/// Monte-Carlo samples for the acquisition (the reference's `--num_samples`-style default).
pub const NEI_SAMPLES: usize = 256;
/// Observed points, lowest posterior mean first, among which the baseline is pruned.
pub const PRUNE_POOL: usize = 100;
/// Joint samples used for pruning.
pub const PRUNE_SAMPLES: usize = 256;

/// One step's NEI: the pruned baseline, its joint factor and the fixed base samples.
pub(crate) struct Nei<const D: usize> {
    base: Vec<[f64; D]>,
    feats: Vec<f64>,
    len: usize,
    chol: Vec<f64>,
    /// Base samples, `samples × (p + 1)`; the last column drives the candidate.
    z: Vec<f64>,
    /// Per sample, `max_j g(x_j)` over the baseline.
    best: Vec<f64>,
}

impl<const D: usize> Nei<D> {
    /// Prunes the baseline among `observed` and draws `samples` base samples from `rng`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no observed points or no samples; model errors.
    pub(crate) fn new(
        model: &dyn Joint<D>,
        observed: &[[f64; D]],
        samples: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Self> {
        if observed.is_empty() || samples == 0 {
            return Err(Error::invalid(
                "NEI baseline/samples",
                format!("{}/{samples}", observed.len()),
                "need observed points and at least one sample",
            ));
        }
        let base = prune(model, observed, rng)?;
        Self::with_baseline(model, base, samples, rng)
    }

    /// NEI against exactly the baseline `base` (no pruning).
    pub(crate) fn with_baseline(
        model: &dyn Joint<D>,
        base: Vec<[f64; D]>,
        samples: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Self> {
        let p = base.len();
        let len = model.feature_len();
        let mut feats = vec![0.0; p * len];
        let mut mean = Vec::with_capacity(p);
        for (x, f) in base.iter().zip(feats.chunks_exact_mut(len.max(1))) {
            mean.push(model.feature(x, f).map_err(Error::core("NEI baseline"))?);
        }
        let mut chol = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                let (fi, fj) = (
                    &feats[i * len..(i + 1) * len],
                    &feats[j * len..(j + 1) * len],
                );
                chol[i * p + j] = model.covariance(&base[i], &base[j], fi, fj);
                chol[j * p + i] = chol[i * p + j];
            }
        }
        jittered_cholesky(&mut chol, p)?;
        let z: Vec<f64> = (0..samples * (p + 1))
            .map(|_| standard_normal::<f64, _>(rng))
            .collect();
        let best = z
            .chunks_exact(p + 1)
            .map(|zs| {
                (0..p)
                    .map(|j| -(mean[j] + dot_lanes(&chol[j * p..j * p + j + 1], &zs[..=j])))
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        Ok(Nei {
            base,
            feats,
            len,
            chol,
            z,
            best,
        })
    }

    /// Baseline points after pruning.
    #[cfg(test)]
    pub(crate) fn baseline(&self) -> &[[f64; D]] {
        &self.base
    }

    /// The acquisition at `x`: the sample mean of `max(g(x) − max_j g(x_j), 0)`, and its
    /// Monte-Carlo standard error.
    pub(crate) fn value(&self, model: &dyn Joint<D>, x: &[f64; D]) -> Result<(f64, f64)> {
        let (p, len) = (self.base.len(), self.len);
        let mut fx = vec![0.0; len];
        let mu = model.feature(x, &mut fx).map_err(Error::core("NEI"))?;
        let mut l: Vec<f64> = (0..p)
            .map(|j| model.covariance(&self.base[j], x, &self.feats[j * len..(j + 1) * len], &fx))
            .collect();
        solve_lower_in_place(&self.chol, p, &mut l).map_err(Error::core("NEI"))?;
        let lxx = (model.covariance(x, x, &fx, &fx) - dot_lanes(&l, &l))
            .max(0.0)
            .sqrt();
        let (mut sum, mut sum2) = (0.0, 0.0);
        for (zs, best) in self.z.chunks_exact(p + 1).zip(&self.best) {
            let g = -(mu + dot_lanes(&l, &zs[..p]) + lxx * zs[p]);
            let imp = (g - best).max(0.0);
            sum += imp;
            sum2 += imp * imp;
        }
        let s = self.best.len() as f64;
        let m = sum / s;
        let var = (sum2 / s - m * m).max(0.0);
        Ok((m, (var / s).sqrt()))
    }
}

/// The observed points that are the best (lowest f) in at least one joint posterior sample.
fn prune<const D: usize>(
    model: &dyn Joint<D>,
    observed: &[[f64; D]],
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<[f64; D]>> {
    let mut pool: Vec<[f64; D]> = observed.to_vec();
    if pool.len() > PRUNE_POOL {
        let len = model.feature_len();
        let mut f = vec![0.0; len];
        let mut scored = Vec::with_capacity(pool.len());
        for x in &pool {
            scored.push((model.feature(x, &mut f).map_err(Error::core("NEI"))?, *x));
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        pool = scored
            .into_iter()
            .take(PRUNE_POOL)
            .map(|(_, x)| x)
            .collect();
    }
    let k = pool.len();
    let (mean, mut chol) = joint_posterior(model, &pool)?;
    jittered_cholesky(&mut chol, k)?;
    let mut wins = vec![false; k];
    let mut z = vec![0.0; k];
    for _ in 0..PRUNE_SAMPLES {
        z.iter_mut()
            .for_each(|v| *v = standard_normal::<f64, _>(rng));
        let arg = (0..k)
            .map(|j| mean[j] + dot_lanes(&chol[j * k..j * k + j + 1], &z[..=j]))
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |a, (j, f)| if f < a.1 { (j, f) } else { a },
            )
            .0;
        wins[arg] = true;
    }
    Ok(pool
        .into_iter()
        .zip(wins)
        .filter_map(|(x, w)| w.then_some(x))
        .collect())
}

/// Dense q-point NEI from an explicit joint posterior (`mean`, row-major `cov`) whose first
/// `p` points are the baseline and the rest the candidates, on base samples `z`
/// (`samples × len`): the reference formula, for tests.
#[cfg(test)]
pub(crate) fn dense_qnei(mean: &[f64], cov: &[f64], p: usize, z: &[f64]) -> Result<(f64, f64)> {
    let k = mean.len();
    let mut l = cov.to_vec();
    jittered_cholesky(&mut l, k)?;
    let (mut sum, mut sum2, mut s) = (0.0, 0.0, 0.0);
    for zs in z.chunks_exact(k) {
        let g: Vec<f64> = (0..k)
            .map(|j| -(mean[j] + dot_lanes(&l[j * k..j * k + j + 1], &zs[..=j])))
            .collect();
        let best = g[..p].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let cand = g[p..].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let imp = (cand - best).max(0.0);
        sum += imp;
        sum2 += imp * imp;
        s += 1.0;
    }
    let m = sum / s;
    Ok((m, ((sum2 / s - m * m).max(0.0) / s).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp::bo::expected_improvement;
    use crate::gp::{ExactStore, GridSpec, Hyper, WiskiStore};
    use keel_core::gp::{Convention, ExactGp, Family};

    fn data() -> (Vec<[f64; 1]>, Vec<f64>) {
        let x: Vec<[f64; 1]> = [0.05, 0.2, 0.33, 0.5, 0.71, 0.9]
            .iter()
            .map(|&v| [v])
            .collect();
        let y = x.iter().map(|p| (6.0 * p[0]).sin() + 0.3 * p[0]).collect();
        (x, y)
    }

    fn hyper(noise: f64) -> Hyper {
        Hyper {
            family: Family::Matern52,
            outputscale: 1.0,
            lengthscale: vec![0.2],
            noise,
        }
    }

    /// With a tiny noise the baseline's values are known, `max_j g(x_j) = −min y`, and NEI is
    /// analytic EI against the best observation (to Monte-Carlo error).
    #[test]
    fn nei_with_tiny_noise_is_analytic_ei() {
        let (x, y) = data();
        let mut store = ExactStore::new(x.len(), 1);
        let h = hyper(1e-9);
        let mut gp = ExactGp::new(h.kernel::<1>().unwrap(), h.noise, store.buffers()).unwrap();
        for (p, v) in x.iter().zip(&y) {
            gp.push(*p, *v).unwrap();
        }
        let best = y.iter().copied().fold(f64::INFINITY, f64::min);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let nei = Nei::new(&gp, &x, 100_000, &mut rng).unwrap();
        assert!(!nei.baseline().is_empty());
        for c in [0.12, 0.42, 0.6, 0.8] {
            let (v, se) = nei.value(&gp, &[c]).unwrap();
            let p = gp.predict(&[c]).unwrap();
            let ei = expected_improvement(p.mean, p.var_f.sqrt(), best);
            assert!(
                (v - ei).abs() <= 4.0 * se + 1e-6,
                "x = {c}: NEI {v} ± {se}, EI {ei}"
            );
        }
    }

    /// The per-candidate bordered factor gives the dense joint formula on the same samples.
    #[test]
    fn bordered_value_equals_dense_joint_nei() {
        let (x, y) = data();
        let h = hyper(0.05);
        let grid = GridSpec {
            size: vec![40],
            lo: vec![0.0],
            hi: vec![1.0],
            convention: Convention::Endpoints,
            clamp: true,
        };
        let mut ws = WiskiStore::new(40);
        let (mut wiski, _) = ws.model::<1>(&grid, &h).unwrap();
        let mut es = ExactStore::new(x.len(), 1);
        let mut exact = ExactGp::new(h.kernel::<1>().unwrap(), h.noise, es.buffers()).unwrap();
        for (p, v) in x.iter().zip(&y) {
            wiski.observe(p, *v).unwrap();
            exact.push(*p, *v).unwrap();
        }
        let models: [&dyn Joint<1>; 2] = [&wiski, &exact];
        for model in models {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
            let nei = Nei::with_baseline(model, x.clone(), 500, &mut rng).unwrap();
            for c in [0.15, 0.4, 0.77] {
                let mut pts = x.clone();
                pts.push([c]);
                let (mean, cov) = joint_posterior(model, &pts).unwrap();
                let (want, _) = dense_qnei(&mean, &cov, x.len(), &nei.z).unwrap();
                let (got, _) = nei.value(model, &[c]).unwrap();
                assert!((got - want).abs() <= 1e-9 * (1.0 + want), "{got} vs {want}");
            }
        }
    }
}
