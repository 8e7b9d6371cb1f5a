//! Joint posteriors of `f` at several inputs from the online GPs, for acquisitions that need
//! covariances between points: noisy expected improvement (Bayesian optimisation, [`bo`]) and
//! the integrated posterior variance (active learning, [`active`]).
//!
//! Both models write the covariance as an inner product of per-point feature vectors:
//! - WISKI (Stanton et al., AISTATS 2021): with `C = S Sᵀ` the core's grid covariance cache
//!   (`(K′⁻¹ + A)⁻¹`, §"Prediction" of the paper; `prediction_cache` in the reference's
//!   `online_gp/models/batched_fixed_noise_online_gp.py`), `cov(f(a), f(b)) = σ² w_aᵀ C w_b
//!   = σ² φ_aᵀ φ_b` with `φ = Sᵀ w` (`m` scalars, `4^D m` to form from the interpolation
//!   weights `w`);
//! - the exact GP: `cov(f(a), f(b)) = k(a, b) − v_aᵀ v_b` with `v = L⁻¹ k(X, ·)` (`n` scalars,
//!   `O(n²)`, [`ExactGp::whiten`]).
//!
//! [`bo`]: super::bo
//! [`active`]: super::active

use keel_core::gp::{ExactGp, Wiski, MAX_NONZEROS};
use keel_core::linalg::{cholesky_in_place, dot_lanes};

use super::hyper::{GridSpec, Hyper};
use super::store::Store;
use super::stream::Online;
use crate::error::{Error, Result};

/// An online GP whose posterior covariances between points are available.
pub(crate) trait Joint<const D: usize>: Online<D> {
    /// Length of the feature vectors [`feature`](Joint::feature) writes.
    fn feature_len(&self) -> usize;
    /// Writes `x`'s feature vector into `out[..feature_len()]`; returns the posterior mean at `x`.
    fn feature(&self, x: &[f64; D], out: &mut [f64]) -> keel_core::Result<f64>;
    /// `cov(f(a), f(b))` from the inputs and their features.
    fn covariance(&self, a: &[f64; D], b: &[f64; D], fa: &[f64], fb: &[f64]) -> f64;
    /// The noise variance σ² (an observation's is `σ² d`).
    fn noise_variance(&self) -> f64;
}

impl<const D: usize> Joint<D> for Wiski<'_, f64, D> {
    fn feature_len(&self) -> usize {
        self.grid().len()
    }
    fn feature(&self, x: &[f64; D], out: &mut [f64]) -> keel_core::Result<f64> {
        let m = self.grid().len();
        let mut idx = [0usize; MAX_NONZEROS];
        let mut w = [0.0; MAX_NONZEROS];
        let nnz = self.grid().weights(x, &mut idx, &mut w)?;
        let (root, a) = (self.root(), self.grid_mean());
        let out = &mut out[..m];
        out.fill(0.0);
        let mut mean = 0.0;
        for (&i, &wi) in idx[..nnz].iter().zip(&w[..nnz]) {
            mean += wi * a[i];
            for (o, r) in out.iter_mut().zip(&root[i * m..(i + 1) * m]) {
                *o += wi * r;
            }
        }
        Ok(mean)
    }
    fn covariance(&self, _: &[f64; D], _: &[f64; D], fa: &[f64], fb: &[f64]) -> f64 {
        self.noise() * dot_lanes(fa, fb)
    }
    fn noise_variance(&self) -> f64 {
        self.noise()
    }
}

impl<const D: usize> Joint<D> for ExactGp<'_, f64, D> {
    fn feature_len(&self) -> usize {
        self.len()
    }
    fn feature(&self, x: &[f64; D], out: &mut [f64]) -> keel_core::Result<f64> {
        let n = self.len();
        self.whiten(x, &mut out[..n])?;
        Ok(dot_lanes(&out[..n], self.whitened_targets()))
    }
    fn covariance(&self, a: &[f64; D], b: &[f64; D], fa: &[f64], fb: &[f64]) -> f64 {
        let n = self.len();
        self.kernel().eval(a, b) - dot_lanes(&fa[..n], &fb[..n])
    }
    fn noise_variance(&self) -> f64 {
        self.noise()
    }
}

impl Store {
    /// An empty model in this storage (`grid` must be expanded to `D` dimensions for WISKI),
    /// with its joint covariances.
    pub(crate) fn build_joint<const D: usize>(
        &mut self,
        grid: &GridSpec,
        hyper: &Hyper,
    ) -> Result<Box<dyn Joint<D> + '_>> {
        let kernel = hyper.kernel::<D>()?;
        Ok(match self {
            Store::Wiski(s) => Box::new(s.model::<D>(grid, hyper)?.0),
            Store::Exact(s) => Box::new(
                ExactGp::new(kernel, hyper.noise, s.buffers()).map_err(Error::core("exact GP"))?,
            ),
        })
    }
}

/// Posterior means and the row-major covariance of `f` at `xs`.
///
/// # Errors
/// [`Error::Core`] for an input the model rejects.
pub(crate) fn joint_posterior<const D: usize>(
    model: &dyn Joint<D>,
    xs: &[[f64; D]],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let len = model.feature_len();
    let mut feats = vec![0.0; len * xs.len()];
    let mut mean = Vec::with_capacity(xs.len());
    for (x, f) in xs.iter().zip(feats.chunks_exact_mut(len.max(1))) {
        mean.push(
            model
                .feature(x, f)
                .map_err(Error::core("joint posterior"))?,
        );
    }
    let k = xs.len();
    let mut cov = vec![0.0; k * k];
    let feat = |i: usize| &feats[i * len..(i + 1) * len];
    for i in 0..k {
        for j in 0..=i {
            let c = model.covariance(&xs[i], &xs[j], feat(i), feat(j));
            cov[i * k + j] = c;
            cov[j * k + i] = c;
        }
    }
    Ok((mean, cov))
}

/// The lower Cholesky factor of the covariance `cov` (`k×k`, overwritten), with the smallest
/// jitter `ε · mean diagonal` (ε = 1e-12, 1e-10, … 1e-4) that makes it positive definite: joint
/// posteriors at nearby or observed points are close to singular.
///
/// # Errors
/// [`Error::Core`] (`NotPositiveDefinite`) when even ε = 1e-4 fails.
pub(crate) fn jittered_cholesky(cov: &mut [f64], k: usize) -> Result<()> {
    let scale = ((0..k).map(|i| cov[i * k + i]).sum::<f64>() / k.max(1) as f64).max(1e-300);
    let original = cov.to_vec();
    let mut eps = 0.0;
    loop {
        cov.copy_from_slice(&original);
        for i in 0..k {
            cov[i * k + i] += eps * scale;
        }
        match cholesky_in_place(cov, k) {
            Ok(()) => return Ok(()),
            Err(e) if eps >= 1e-4 => return Err(Error::core("joint posterior covariance")(e)),
            Err(_) => eps = if eps == 0.0 { 1e-12 } else { eps * 100.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp::{ExactStore, WiskiStore};
    use keel_core::gp::{Convention, Family};
    use keel_core::linalg::solve_lower_in_place;

    /// Hyperparameters, grid, training inputs, targets, noise factors and test inputs.
    type Setup = (
        Hyper,
        GridSpec,
        Vec<[f64; 2]>,
        Vec<f64>,
        Vec<f64>,
        Vec<[f64; 2]>,
    );

    fn setup() -> Setup {
        let hyper = Hyper {
            family: Family::Matern52,
            outputscale: 0.8,
            lengthscale: vec![0.3, 0.2],
            noise: 0.05,
        };
        let grid = GridSpec {
            size: vec![9, 8],
            lo: vec![0.0; 2],
            hi: vec![1.0; 2],
            convention: Convention::Endpoints,
            clamp: true,
        };
        let x: Vec<[f64; 2]> = (0..12)
            .map(|i| {
                let t = i as f64;
                [(0.37 * t + 0.05).fract(), (0.61 * t + 0.13).fract()]
            })
            .collect();
        let y: Vec<f64> = x.iter().map(|p| (4.0 * p[0]).sin() + p[1]).collect();
        let d: Vec<f64> = (0..12).map(|i| 0.5 + 0.1 * i as f64).collect();
        let test = vec![[0.1, 0.9], [0.5, 0.5], [0.52, 0.47], [0.93, 0.07]];
        (hyper, grid, x, y, d, test)
    }

    /// Dense posterior covariance `P − Cᵀ (K_XX + σ²D)⁻¹ C` from explicit cross-covariances.
    fn dense_cov(
        kxx: &mut [f64],
        n: usize,
        cross: &[Vec<f64>],
        prior: &[f64],
        k: usize,
    ) -> Vec<f64> {
        cholesky_in_place(kxx, n).unwrap();
        let white: Vec<Vec<f64>> = cross
            .iter()
            .map(|c| {
                let mut v = c.clone();
                solve_lower_in_place(kxx, n, &mut v).unwrap();
                v
            })
            .collect();
        let mut out = prior.to_vec();
        for i in 0..k {
            for j in 0..k {
                out[i * k + j] -= dot_lanes(&white[i], &white[j]);
            }
        }
        out
    }

    #[test]
    fn wiski_joint_covariance_matches_dense_ski() {
        let (hyper, grid, x, y, d, test) = setup();
        let mut store = WiskiStore::new(grid.nodes());
        let (mut gp, _) = store.model::<2>(&grid, &hyper).unwrap();
        for i in 0..x.len() {
            gp.observe_with_noise(&x[i], y[i], d[i]).unwrap();
        }
        let (_, cov) = joint_posterior::<2>(&gp, &test).unwrap();
        // Dense SKI: K = W K_UU Wᵀ with explicit W rows and K_UU.
        let g = grid.grid::<2>().unwrap();
        let kern = hyper.kernel::<2>().unwrap();
        let m = g.len();
        let size = *g.size();
        let coord = |i: usize| [g.coordinate(0, i / size[1]), g.coordinate(1, i % size[1])];
        let kuu: Vec<f64> = (0..m * m)
            .map(|e| {
                let (a, b) = (coord(e / m), coord(e % m));
                kern.outputscale() * kern.factor(0, a[0] - b[0]) * kern.factor(1, a[1] - b[1])
            })
            .collect();
        let wrow = |p: &[f64; 2]| {
            let mut idx = [0usize; MAX_NONZEROS];
            let mut w = [0.0; MAX_NONZEROS];
            let nnz = g.weights(p, &mut idx, &mut w).unwrap();
            let mut row = vec![0.0; m];
            for k in 0..nnz {
                row[idx[k]] += w[k];
            }
            row
        };
        let kw = |r: &[f64]| -> Vec<f64> {
            (0..m)
                .map(|i| dot_lanes(&kuu[i * m..(i + 1) * m], r))
                .collect()
        };
        let wx: Vec<Vec<f64>> = x.iter().map(wrow).collect();
        let wt: Vec<Vec<f64>> = test.iter().map(wrow).collect();
        let kwx: Vec<Vec<f64>> = wx.iter().map(|r| kw(r)).collect();
        let kwt: Vec<Vec<f64>> = wt.iter().map(|r| kw(r)).collect();
        let n = x.len();
        let mut kxx = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                kxx[i * n + j] = dot_lanes(&wx[i], &kwx[j]);
            }
            kxx[i * n + i] += hyper.noise * d[i];
        }
        let cross: Vec<Vec<f64>> = kwt
            .iter()
            .map(|c| wx.iter().map(|r| dot_lanes(r, c)).collect())
            .collect();
        let k = test.len();
        let prior: Vec<f64> = (0..k * k)
            .map(|e| dot_lanes(&wt[e / k], &kwt[e % k]))
            .collect();
        let want = dense_cov(&mut kxx, n, &cross, &prior, k);
        for (a, b) in cov.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn exact_joint_covariance_matches_dense() {
        let (hyper, _, x, y, d, test) = setup();
        let mut store = ExactStore::new(x.len(), 2);
        let kern = hyper.kernel::<2>().unwrap();
        let mut gp = ExactGp::new(kern, hyper.noise, store.buffers()).unwrap();
        for i in 0..x.len() {
            gp.push_with_noise(x[i], y[i], d[i]).unwrap();
        }
        let (mean, cov) = joint_posterior::<2>(&gp, &test).unwrap();
        let n = x.len();
        let mut kxx = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                kxx[i * n + j] = kern.eval(&x[i], &x[j]);
            }
            kxx[i * n + i] += hyper.noise * d[i];
        }
        let cross: Vec<Vec<f64>> = test
            .iter()
            .map(|t| x.iter().map(|p| kern.eval(p, t)).collect())
            .collect();
        let k = test.len();
        let prior: Vec<f64> = (0..k * k)
            .map(|e| kern.eval(&test[e / k], &test[e % k]))
            .collect();
        let want = dense_cov(&mut kxx, n, &cross, &prior, k);
        for (a, b) in cov.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
        for (t, mu) in test.iter().zip(&mean) {
            let p = gp.predict(t).unwrap();
            assert!((p.mean - mu).abs() < 1e-12);
        }
    }
}
