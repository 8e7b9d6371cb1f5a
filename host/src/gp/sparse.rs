//! The online sparse baselines of Stanton et al., *Kernel Interpolation for Scalable Online
//! Gaussian Processes* (AISTATS 2021), both after Bui, Nguyen & Turner, *Streaming Sparse
//! Gaussian Process Approximations* (NeurIPS 2017), on `M` inducing points `Z` in feature space
//! (the reference: 256 drawn from U(−1, 1)):
//!
//! - **O-SGPR** ([`Osgpr`]; the reference's `online_gp/models/streaming_sgpr.py`,
//!   wjmaddox/online_gp, after thangbui/streaming_sparse_gp `osgpr.py`): the collapsed bound,
//!   whose optimal `q(u)` after each batch is the sparse (Titsias) posterior of all data so far.
//!   With the kernel and `Z` fixed between points, Bui's update is that posterior's rank-1
//!   update: whitened, `B = I + Σ ψψᵀ/σ²` and `c = Σ ψ y/σ²` with `ψ = L_ZZ⁻¹ k_Z(x)`; Keel keeps
//!   the Cholesky factor of `B` and updates it in `O(M²)` per point.
//! - **O-SVGP** ([`Osvgp`]; `online_gp/models/online_svgp_regression.py` and
//!   `variational_gp_model.py`): the uncollapsed streaming ELBO (Bui et al.'s eqs. 13–14) with an
//!   unwhitened `q(u) = N(m, L Lᵀ)` moved by one Adam step per point. At the step `q` equals the
//!   previous one, so the streaming KL terms (weighted by β = 10⁻³) have zero gradient there and
//!   the step climbs the new point's expected log-likelihood `E_q[log N(y | f, σ²)]` alone —
//!   which is why this baseline adapts slowly.
//!
//! In both, the kernel's hyperparameters and `Z` are those of pretraining and stay fixed along
//! the stream (the reference also takes Adam steps on them per point).

use keel_core::linalg::{cholesky_in_place, solve_lower_in_place, solve_lower_transpose_in_place};
use keel_core::random::{uniform, Xoshiro256PlusPlus};

use super::fit::ThetaAdam;
use super::hyper::Hyper;
use crate::error::{Error, Result};

/// Jitter on `K_ZZ` (the reference's 10⁻⁴).
pub const JITTER: f64 = 1e-4;

/// Inducing points and the Cholesky factor of `K_ZZ + jitter·I`.
#[derive(Clone, Debug)]
pub(crate) struct Inducing {
    dim: usize,
    z: Vec<f64>,
    hyper: Hyper,
    lzz: Vec<f64>,
}

impl Inducing {
    /// `count` points drawn from U(−1, 1)^dim.
    pub(crate) fn uniform(
        count: usize,
        dim: usize,
        hyper: &Hyper,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Inducing> {
        let z = (0..count * dim)
            .map(|_| 2.0 * uniform::<f64, _>(rng) - 1.0)
            .collect();
        Inducing::new(z, dim, hyper)
    }

    /// The given points (`[M, dim]`).
    pub(crate) fn new(z: Vec<f64>, dim: usize, hyper: &Hyper) -> Result<Inducing> {
        let m = z.len() / dim;
        let mut lzz = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                lzz[i * m + j] = kernel(
                    hyper,
                    &z[i * dim..(i + 1) * dim],
                    &z[j * dim..(j + 1) * dim],
                );
            }
            lzz[i * m + i] += JITTER;
        }
        cholesky_in_place(&mut lzz, m).map_err(Error::core("inducing kernel matrix"))?;
        Ok(Inducing {
            dim,
            z,
            hyper: hyper.clone(),
            lzz,
        })
    }

    fn len(&self) -> usize {
        self.z.len() / self.dim
    }

    /// `ψ = L_ZZ⁻¹ k_Z(x)` and `k(x, x)`.
    fn psi(&self, x: &[f64]) -> Result<(Vec<f64>, f64)> {
        let m = self.len();
        let mut psi: Vec<f64> = (0..m)
            .map(|i| kernel(&self.hyper, &self.z[i * self.dim..(i + 1) * self.dim], x))
            .collect();
        solve_lower_in_place(&self.lzz, m, &mut psi).map_err(Error::core("inducing solve"))?;
        Ok((psi, self.hyper.outputscale))
    }
}

/// `s·profile(Σ ((a − b)/ℓ)²)`.
fn kernel(h: &Hyper, a: &[f64], b: &[f64]) -> f64 {
    let r2: f64 = a
        .iter()
        .zip(b)
        .zip(&h.lengthscale)
        .map(|((x, y), l)| ((x - y) / l).powi(2))
        .sum();
    h.outputscale * h.family.profile(r2)
}

/// `L Lᵀ + v vᵀ` into `L` (lower, row-major `n×n`), `O(n²)`; `v` is consumed.
pub(crate) fn cholesky_rank1_update(l: &mut [f64], n: usize, v: &mut [f64]) {
    for k in 0..n {
        let lkk = l[k * n + k];
        let r = lkk.hypot(v[k]);
        let (c, s) = (r / lkk, v[k] / lkk);
        l[k * n + k] = r;
        for i in k + 1..n {
            let lik = (l[i * n + k] + s * v[i]) / c;
            v[i] = c * v[i] - s * lik;
            l[i * n + k] = lik;
        }
    }
}

/// A posterior prediction: mean, variance of f, variance of y.
pub(crate) type Moments = (f64, f64, f64);

/// O-SGPR: the sparse posterior of everything seen, updated in `O(M²)` per point.
#[derive(Clone, Debug)]
pub struct Osgpr {
    inducing: Inducing,
    /// Cholesky factor of `B = I + Σ ψψᵀ/σ²`.
    lb: Vec<f64>,
    /// `c = Σ ψ y/σ²`.
    c: Vec<f64>,
    /// `B⁻¹ c`, kept current.
    mean: Vec<f64>,
}

impl Osgpr {
    pub(crate) fn new(inducing: Inducing) -> Osgpr {
        let m = inducing.len();
        let mut lb = vec![0.0; m * m];
        for i in 0..m {
            lb[i * m + i] = 1.0;
        }
        Osgpr {
            inducing,
            lb,
            c: vec![0.0; m],
            mean: vec![0.0; m],
        }
    }

    /// The kernel and noise.
    pub(crate) fn hyper(&self) -> &Hyper {
        &self.inducing.hyper
    }

    pub(crate) fn predict(&self, x: &[f64]) -> Result<Moments> {
        let m = self.inducing.len();
        let (psi, kxx) = self.inducing.psi(x)?;
        let mean: f64 = psi.iter().zip(&self.mean).map(|(a, b)| a * b).sum();
        let mut t = psi.clone();
        solve_lower_in_place(&self.lb, m, &mut t).map_err(Error::core("O-SGPR solve"))?;
        let q: f64 = psi.iter().map(|v| v * v).sum();
        let var_f = (kxx - q + t.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        Ok((mean, var_f, var_f + self.inducing.hyper.noise))
    }

    pub(crate) fn update(&mut self, x: &[f64], y: f64) -> Result<()> {
        self.update_with_noise(x, y, 1.0)
    }

    /// Absorbs a point of noise `σ²d`.
    pub(crate) fn update_with_noise(&mut self, x: &[f64], y: f64, d: f64) -> Result<()> {
        let m = self.inducing.len();
        let noise = self.inducing.hyper.noise * d;
        let (psi, _) = self.inducing.psi(x)?;
        for (c, p) in self.c.iter_mut().zip(&psi) {
            *c += p * y / noise;
        }
        let mut v: Vec<f64> = psi.iter().map(|p| p / noise.sqrt()).collect();
        cholesky_rank1_update(&mut self.lb, m, &mut v);
        self.mean.copy_from_slice(&self.c);
        solve_lower_in_place(&self.lb, m, &mut self.mean).map_err(Error::core("O-SGPR solve"))?;
        solve_lower_transpose_in_place(&self.lb, m, &mut self.mean)
            .map_err(Error::core("O-SGPR solve"))?;
        Ok(())
    }

    /// `q(u) = N(m, S)` (unwhitened): `m = L_ZZ B⁻¹c`, `S = L_ZZ B⁻¹ L_ZZᵀ`.
    fn q(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let m = self.inducing.len();
        let lzz = &self.inducing.lzz;
        let mean: Vec<f64> = (0..m)
            .map(|i| (0..=i).map(|j| lzz[i * m + j] * self.mean[j]).sum())
            .collect();
        // X = L_ZZ L_B⁻ᵀ column by column: row i of X is L_B⁻¹ (row i of L_ZZ).
        let mut x = vec![0.0; m * m];
        for i in 0..m {
            let mut r = lzz[i * m..(i + 1) * m].to_vec();
            solve_lower_in_place(&self.lb, m, &mut r).map_err(Error::core("O-SGPR solve"))?;
            x[i * m..(i + 1) * m].copy_from_slice(&r);
        }
        let mut s = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..=i {
                let v: f64 = x[i * m..(i + 1) * m]
                    .iter()
                    .zip(&x[j * m..(j + 1) * m])
                    .map(|(a, b)| a * b)
                    .sum();
                s[i * m + j] = v;
                s[j * m + i] = v;
            }
        }
        Ok((mean, s))
    }
}

/// O-SVGP: `q(u) = N(m, L Lᵀ)` moved by one Adam step per point.
pub struct Osvgp {
    inducing: Inducing,
    mean: Vec<f64>,
    /// Lower-triangular `L`, row-major `M×M`.
    chol: Vec<f64>,
    adam: ThetaAdam,
    lr: f64,
}

impl std::fmt::Debug for Osvgp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Osvgp")
            .field("inducing", &self.inducing.len())
            .field("lr", &self.lr)
            .finish()
    }
}

impl Osvgp {
    /// Starts from the optimum of the (collapsed) bound on the points `start` has absorbed —
    /// the limit of the reference's full-batch fit of `q` on the pretraining rows.
    pub(crate) fn from_collapsed(start: &Osgpr, lr: f64) -> Result<Osvgp> {
        let m = start.inducing.len();
        let (mean, s) = start.q()?;
        let mut chol = s.clone();
        let mut jitter = 1e-10;
        loop {
            match cholesky_in_place(&mut chol, m) {
                Ok(()) => break,
                Err(e) if jitter > 1e-3 => return Err(Error::core("O-SVGP covariance")(e)),
                Err(_) => {
                    chol.copy_from_slice(&s);
                    for i in 0..m {
                        chol[i * m + i] += jitter;
                    }
                    jitter *= 10.0;
                }
            }
        }
        let adam = ThetaAdam::unclamped(pack(&mean, &chol, m))?;
        Ok(Osvgp {
            inducing: start.inducing.clone(),
            mean,
            chol,
            adam,
            lr,
        })
    }

    /// `a = K_ZZ⁻¹ k_Z(x)`, `ψ`, `k(x, x)`.
    fn project(&self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>, f64)> {
        let m = self.inducing.len();
        let (psi, kxx) = self.inducing.psi(x)?;
        let mut a = psi.clone();
        solve_lower_transpose_in_place(&self.inducing.lzz, m, &mut a)
            .map_err(Error::core("O-SVGP solve"))?;
        Ok((a, psi, kxx))
    }

    /// `Lᵀa`.
    fn lta(&self, a: &[f64]) -> Vec<f64> {
        let m = a.len();
        (0..m)
            .map(|j| (j..m).map(|i| self.chol[i * m + j] * a[i]).sum())
            .collect()
    }

    /// The kernel and noise.
    pub(crate) fn hyper(&self) -> &Hyper {
        &self.inducing.hyper
    }

    pub(crate) fn predict(&self, x: &[f64]) -> Result<Moments> {
        let q = self.marginal(x)?;
        Ok((q.mean, q.var, q.var + self.inducing.hyper.noise))
    }

    /// `q(f(x))`, and what a step at `x` needs.
    pub(crate) fn marginal(&self, x: &[f64]) -> Result<Marginal> {
        let (a, psi, kxx) = self.project(x)?;
        let mean: f64 = a.iter().zip(&self.mean).map(|(p, q)| p * q).sum();
        let q: f64 = psi.iter().map(|v| v * v).sum();
        let lta = self.lta(&a);
        let var = (kxx - q + lta.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        Ok(Marginal { mean, var, a, lta })
    }

    /// One Adam step up `E_q[log N(y | f, σ²)]`: `∂/∂μ = (y − μ)/σ²`, `∂/∂var = −1/(2σ²)`.
    pub(crate) fn update(&mut self, x: &[f64], y: f64) -> Result<()> {
        let sigma2 = self.inducing.hyper.noise;
        let q = self.marginal(x)?;
        self.step(&q, (y - q.mean) / sigma2, -0.5 / sigma2)
    }

    /// One Adam step up an expected log-likelihood at the point of `q` whose derivatives in the
    /// marginal's mean and variance are `g_mean`, `g_var`: `∂/∂m = a·g_mean`,
    /// `∂/∂L = 2·g_var·a(Lᵀa)ᵀ` (lower triangle), with `μ = aᵀm`, `var = … + ‖Lᵀa‖²`.
    pub(crate) fn step(&mut self, q: &Marginal, g_mean: f64, g_var: f64) -> Result<()> {
        let m = self.inducing.len();
        let gm: Vec<f64> = q.a.iter().map(|ai| ai * g_mean).collect();
        let mut gl = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..=i {
                gl[i * m + j] = 2.0 * g_var * q.a[i] * q.lta[j];
            }
        }
        let packed = self.adam.ascend(&pack(&gm, &gl, m), self.lr, 1.0)?;
        unpack(&packed, m, &mut self.mean, &mut self.chol);
        Ok(())
    }
}

/// The marginal `q(f(x)) = N(mean, var)` of an [`Osvgp`], with `a = K_ZZ⁻¹k_Z(x)` and `Lᵀa`.
#[derive(Clone, Debug)]
pub(crate) struct Marginal {
    pub(crate) mean: f64,
    pub(crate) var: f64,
    a: Vec<f64>,
    lta: Vec<f64>,
}

/// `[m; lower triangle of L by rows]`.
fn pack(mean: &[f64], chol: &[f64], m: usize) -> Vec<f64> {
    let mut v = mean.to_vec();
    for i in 0..m {
        v.extend_from_slice(&chol[i * m..i * m + i + 1]);
    }
    v
}

fn unpack(v: &[f64], m: usize, mean: &mut [f64], chol: &mut [f64]) {
    mean.copy_from_slice(&v[..m]);
    let mut o = m;
    for i in 0..m {
        chol[i * m..i * m + i + 1].copy_from_slice(&v[o..o + i + 1]);
        o += i + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::gp::Family;

    #[test]
    fn rank1_update_matches_a_fresh_factorisation() {
        let n = 7;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = 1.0 / (1.0 + (i as f64 - j as f64).abs());
            }
            a[i * n + i] += 0.5;
        }
        let mut l = a.clone();
        cholesky_in_place(&mut l, n).unwrap();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.9).cos()).collect();
        let mut w = v.clone();
        cholesky_rank1_update(&mut l, n, &mut w);
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] += v[i] * v[j];
            }
        }
        let mut fresh = a;
        cholesky_in_place(&mut fresh, n).unwrap();
        for i in 0..n {
            for j in 0..=i {
                assert!((l[i * n + j] - fresh[i * n + j]).abs() < 1e-13);
            }
        }
    }

    /// With the kernel fixed, one O-SVGP step from the collapsed optimum moves `q` up the new
    /// point's expected log-likelihood, and the collapsed start predicts as O-SGPR does.
    #[test]
    fn osvgp_starts_at_the_collapsed_posterior_and_climbs() {
        let h = Hyper {
            family: Family::Rbf,
            outputscale: 1.0,
            lengthscale: vec![0.5, 0.7],
            noise: 0.1,
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let ind = Inducing::uniform(12, 2, &h, &mut rng).unwrap();
        let mut sg = Osgpr::new(ind);
        for i in 0..30 {
            let x = [(i as f64 * 0.37).sin(), (i as f64 * 0.61).cos()];
            sg.update(&x, (2.0 * x[0]).sin() + x[1]).unwrap();
        }
        let mut sv = Osvgp::from_collapsed(&sg, 1e-3).unwrap();
        let probe = [0.2, -0.3];
        let (m1, v1, _) = sg.predict(&probe).unwrap();
        let (m2, v2, _) = sv.predict(&probe).unwrap();
        assert!(
            (m1 - m2).abs() < 1e-8 && (v1 - v2).abs() < 1e-6,
            "{m1} {v1} vs {m2} {v2}"
        );
        let ell = |s: &Osvgp, y: f64| {
            let (mu, vf, _) = s.predict(&probe).unwrap();
            -((y - mu).powi(2) + vf) / (2.0 * 0.1)
        };
        let before = ell(&sv, 2.0);
        sv.update(&probe, 2.0).unwrap();
        assert!(ell(&sv, 2.0) > before);
    }

    /// O-SGPR after 30 and 60 points, and O-SVGP's 30 Adam steps from the collapsed start,
    /// against `fixtures/gen/gp_sparse.py` (numpy: Titsias' posterior, checked there against
    /// Bui et al.'s two-batch update; Adam on the closed-form expectation).
    #[test]
    fn matches_the_numpy_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/gp/sparse.json");
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let v = |k: &str| -> Vec<f64> {
            f[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let h = Hyper {
            family: Family::Rbf,
            outputscale: f["outputscale"].as_f64().unwrap(),
            lengthscale: v("lengthscale"),
            noise: f["noise"].as_f64().unwrap(),
        };
        assert_eq!(f["jitter"].as_f64().unwrap(), JITTER);
        let n0 = f["n_first"].as_u64().unwrap() as usize;
        let (x, y, tx) = (v("x"), v("y"), v("test_x"));
        let mut sg = Osgpr::new(Inducing::new(v("z"), 2, &h).unwrap());
        let check = |model: &dyn Fn(&[f64]) -> Moments, key: &str, tol: f64| {
            let mean = f[key]["mean"].as_array().unwrap();
            let var = f[key]["var_f"].as_array().unwrap();
            for (i, p) in tx.chunks_exact(2).enumerate() {
                let (m, vf, _) = model(p);
                let (em, ev) = (mean[i].as_f64().unwrap(), var[i].as_f64().unwrap());
                assert!(
                    (m - em).abs() < tol * (1.0 + em.abs()),
                    "{key} mean {i}: {m} vs {em}"
                );
                assert!(
                    (vf - ev).abs() < tol * (1.0 + ev.abs()),
                    "{key} var {i}: {vf} vs {ev}"
                );
            }
        };
        for i in 0..n0 {
            sg.update(&x[2 * i..2 * i + 2], y[i]).unwrap();
        }
        check(&|p| sg.predict(p).unwrap(), "osgpr_first", 1e-7);
        let mut sv = Osvgp::from_collapsed(&sg, f["svgp_lr"].as_f64().unwrap()).unwrap();
        for i in n0..y.len() {
            sg.update(&x[2 * i..2 * i + 2], y[i]).unwrap();
            sv.update(&x[2 * i..2 * i + 2], y[i]).unwrap();
        }
        check(&|p| sg.predict(p).unwrap(), "osgpr_all", 1e-7);
        check(&|p| sv.predict(p).unwrap(), "osvgp_all", 1e-6);
    }
}
