//! Full-batch HMC: the leapfrog integrator against velocity Verlet written out, its
//! reversibility, volume preservation and O(ε²) energy error; acceptance → 1 as ε → 0;
//! Bayesian linear regression against its analytic posterior, written out here by cofactors
//! (the library's Cholesky solve and the command's `exact_posterior_*` within 2e-15 of it; HMC
//! means within 3 Monte-Carlo standard errors from the ESS, covariances within 10 %); bad
//! settings refused.

use crate::common;

use keel::backend::hmc::{PriorArgs, PriorKind};
use keel::bayes::ess::effective_sample_size;
use keel::bayes::hmc::{
    leapfrog, log_prior_difference, sample, Ensembling, HmcConfig, State, Target,
};
use keel::bayes::linear::LinearGaussian;
use keel::error::Result;
use keel::tensor::Tensor;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

/// A non-Gaussian 2-D target: `log π = −¼Σθ⁴ − ½Σθ² + 0.3 θ₀θ₁` (likelihood part: the quartic
/// and the coupling; prior: the Gaussian).
struct Quartic;

impl Target for Quartic {
    fn dim(&self) -> usize {
        2
    }
    fn likelihood_and_gradient(&self, theta: &Tensor) -> Result<(f64, Tensor)> {
        let t = theta.to_vec_f64()?;
        let ll = -0.25 * (t[0].powi(4) + t[1].powi(4)) + 0.3 * t[0] * t[1];
        let g = vec![-t[0].powi(3) + 0.3 * t[1], -t[1].powi(3) + 0.3 * t[0]];
        Ok((ll, Tensor::from_vec(g, &[2])?))
    }
    fn prior(&self) -> (PriorArgs, f64) {
        let gaussian = PriorArgs {
            kind: PriorKind::Gaussian,
            params: [1.0, 0.0, 0.0],
        };
        (gaussian, 1.0)
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn hamiltonian(t: &dyn Target, s: &State, p: &Tensor) -> f64 {
    let zero = Tensor::from_vec(vec![0.0; t.dim()], &[t.dim()]).unwrap();
    -(s.log_likelihood + log_prior_difference(t, &s.theta, &zero).unwrap())
        + 0.5 * values(p).iter().map(|v| v * v).sum::<f64>()
}

#[test]
fn leapfrog_is_reversible_and_volume_preserving() {
    let q = Quartic;
    let s0 = State::at(&q, &[0.7, -1.1]).unwrap();
    let p0 = vec![0.4, 0.9];
    let (s1, p1) = leapfrog(&q, &s0, &p0, 0.1, 25).unwrap();
    let (t0, t1) = (values(&s0.theta), values(&s1.theta));
    assert!((t1[0] - t0[0]).abs() > 0.1, "it moved");
    let back: Vec<f64> = values(&p1).iter().map(|v| -v).collect();
    let (s2, p2) = leapfrog(&q, &s1, &back, 0.1, 25).unwrap();
    for (a, b) in values(&s2.theta).iter().zip(&t0) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    for (a, b) in values(&p2).iter().zip(&p0) {
        assert!((a + b).abs() < 1e-12, "{a} vs {}", -b);
    }
    // det of the map (θ, p) → leapfrog(θ, p) by central differences.
    let map = |z: &[f64]| -> Vec<f64> {
        let s = State::at(&q, &z[..2]).unwrap();
        let (e, p) = leapfrog(&q, &s, &z[2..], 0.1, 25).unwrap();
        values(&e.theta).into_iter().chain(values(&p)).collect()
    };
    let z = [0.7, -1.1, 0.4, 0.9];
    let h = 1e-6;
    let mut j = [[0.0; 4]; 4];
    for c in 0..4 {
        let (mut a, mut b) = (z, z);
        a[c] += h;
        b[c] -= h;
        let (fa, fb) = (map(&a), map(&b));
        for r in 0..4 {
            j[r][c] = (fa[r] - fb[r]) / (2.0 * h);
        }
    }
    let det = det4(j);
    assert!((det - 1.0).abs() < 1e-6, "det {det}");
}

/// The fused leapfrog kernel against velocity Verlet written out (Neal, MCMC using Hamiltonian
/// dynamics, Handbook of MCMC 2011, "the leapfrog method", unit mass) on the quartic target,
/// `∇ log π = (−θ₀³ + 0.3θ₁ − θ₀, −θ₁³ + 0.3θ₀ − θ₁)` (likelihood plus the N(0, 1) prior).
#[test]
fn leapfrog_is_velocity_verlet() {
    let q = Quartic;
    let grad = |t: [f64; 2]| {
        [
            -t[0].powi(3) + 0.3 * t[1] - t[0],
            -t[1].powi(3) + 0.3 * t[0] - t[1],
        ]
    };
    let (eps, steps) = (0.1, 25);
    let (mut t, mut p) = ([0.7, -1.1], [0.4, 0.9]);
    for _ in 0..steps {
        let g = grad(t);
        let half = [p[0] + 0.5 * eps * g[0], p[1] + 0.5 * eps * g[1]];
        t = [t[0] + eps * half[0], t[1] + eps * half[1]];
        let g = grad(t);
        p = [half[0] + 0.5 * eps * g[0], half[1] + 0.5 * eps * g[1]];
    }
    let s0 = State::at(&q, &[0.7, -1.1]).unwrap();
    let (s1, p1) = leapfrog(&q, &s0, &[0.4, 0.9], eps, steps).unwrap();
    let (got_t, got_p) = (values(&s1.theta), values(&p1));
    let err = (0..2)
        .map(|i| (got_t[i] - t[i]).abs().max((got_p[i] - p[i]).abs()))
        .fold(0.0, f64::max);
    eprintln!("leapfrog vs velocity Verlet: {err:.1e}");
    // Measured 0 (the same operations in the same order); bound 1e-14 leaves room for a kernel
    // that regroups the half kicks (rounding over 25 steps), not for a wrong step.
    assert!(err < 1e-14, "θ {got_t:?} vs {t:?}, p {got_p:?} vs {p:?}");
}

fn det4(m: [[f64; 4]; 4]) -> f64 {
    let mut a = m;
    let mut det = 1.0;
    for k in 0..4 {
        let piv = (k..4)
            .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
            .unwrap();
        if piv != k {
            a.swap(piv, k);
            det = -det;
        }
        det *= a[k][k];
        for i in k + 1..4 {
            let f = a[i][k] / a[k][k];
            for c in k..4 {
                a[i][c] -= f * a[k][c];
            }
        }
    }
    det
}

#[test]
fn the_energy_error_scales_as_the_step_squared() {
    let q = Quartic;
    let s0 = State::at(&q, &[0.7, -1.1]).unwrap();
    let p0 = vec![0.4, 0.9];
    let h0 = hamiltonian(&q, &s0, &Tensor::from_vec(p0.clone(), &[2]).unwrap());
    let err = |eps: f64| {
        let steps = (1.0 / eps).round() as usize;
        let (s, p) = leapfrog(&q, &s0, &p0, eps, steps).unwrap();
        (hamiltonian(&q, &s, &p) - h0).abs()
    };
    let (e1, e2, e3) = (err(0.04), err(0.02), err(0.01));
    for (a, b) in [(e1, e2), (e2, e3)] {
        let ratio = a / b;
        assert!(
            (3.0..5.0).contains(&ratio),
            "halving ε: {a:.3e} → {b:.3e} ({ratio:.2})"
        );
    }
}

/// Synthetic regression data: 60 rows, 3 features, true weights (1, −2, 0.5), noise 0.5.
fn blr() -> LinearGaussian {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let (n, d) = (60, 3);
    let w = [1.0, -2.0, 0.5];
    let x: Vec<f64> = (0..n * d)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let y: Vec<f64> = x
        .chunks(d)
        .map(|r| {
            r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()
                + 0.5 * standard_normal::<f64, _>(&mut rng)
        })
        .collect();
    LinearGaussian::new(x, y, d, 0.5, 1.0, 1.0).unwrap()
}

/// The conjugate posterior written out (Bishop, Pattern Recognition and Machine Learning, eqs.
/// 3.53–3.54, with the temperature of the module docs): precision `P = XᵀX/σ² + I/s²`,
/// `μ = P⁻¹Xᵀy/σ²`, `Σ = T·P⁻¹`, the 3×3 inverse by cofactors — no Cholesky, nothing of
/// `LinearGaussian::posterior`.
fn closed_form(t: &LinearGaussian) -> ([f64; 3], [[f64; 3]; 3]) {
    assert_eq!(t.d, 3);
    let nv = t.noise_std * t.noise_std;
    let mut p = [[0.0; 3]; 3];
    let mut b = [0.0; 3];
    for (row, y) in t.x.chunks(3).zip(&t.y) {
        for i in 0..3 {
            b[i] += row[i] * y / nv;
            for j in 0..3 {
                p[i][j] += row[i] * row[j] / nv;
            }
        }
    }
    for (i, r) in p.iter_mut().enumerate() {
        r[i] += 1.0 / (t.prior_std * t.prior_std);
    }
    // inv[j][i] = cofactor(i, j) / det, cofactors with cyclic indices (signs built in).
    let cof = |i: usize, j: usize| {
        let (i1, i2, j1, j2) = ((i + 1) % 3, (i + 2) % 3, (j + 1) % 3, (j + 2) % 3);
        p[i1][j1] * p[i2][j2] - p[i1][j2] * p[i2][j1]
    };
    let det: f64 = (0..3).map(|j| p[0][j] * cof(0, j)).sum();
    let inv: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| cof(c, r) / det));
    let mean = std::array::from_fn(|r| (0..3).map(|c| inv[r][c] * b[c]).sum());
    let cov = inv.map(|r| r.map(|v| t.temperature * v));
    (mean, cov)
}

#[test]
fn the_library_posterior_is_the_closed_form() {
    for temperature in [1.0, 2.0] {
        let mut t = blr();
        t.temperature = temperature;
        let (mean, cov) = t.posterior().unwrap();
        let (want_mean, want_cov) = closed_form(&t);
        // Cholesky against cofactors of a well-conditioned 3×3 (60 standard-normal rows): rounding
        // only, measured 2.2e-16 (mean) and 1.5e-16 (covariance) relative; bound 2e-15.
        for i in 0..3 {
            assert!(
                (mean[i] - want_mean[i]).abs() < 2e-15 * want_mean[i].abs(),
                "T = {temperature}: μ{i} {} vs {}",
                mean[i],
                want_mean[i]
            );
            for j in 0..3 {
                let scale = (want_cov[i][i] * want_cov[j][j]).sqrt();
                assert!(
                    (cov[i * 3 + j] - want_cov[i][j]).abs() < 2e-15 * scale,
                    "T = {temperature}: Σ{i}{j} {} vs {}",
                    cov[i * 3 + j],
                    want_cov[i][j]
                );
            }
        }
    }
}

fn config(step: f64, iterations: usize) -> HmcConfig {
    HmcConfig {
        step_size: step,
        trajectory_length: 0.3,
        max_leapfrog_steps: 100_000,
        iterations,
        burn_in: 50,
        mh: true,
        ensembling: Ensembling::Textbook,
        seed: 0,
        adapt: None,
    }
}

#[test]
fn acceptance_tends_to_one_as_the_step_shrinks() {
    let t = blr();
    let rate = |eps| {
        sample(&t, vec![0.0; 3], &config(eps, 200))
            .unwrap()
            .acceptance_rate
    };
    let (coarse, fine) = (rate(0.05), rate(0.002));
    assert!(fine > 0.99, "ε = 0.002: {fine}");
    assert!(coarse < fine, "ε = 0.05: {coarse}");
}

#[test]
fn hmc_matches_the_analytic_linear_regression_posterior() {
    let t = blr();
    let (mean, cov) = closed_form(&t);
    let cov: Vec<f64> = cov.concat();
    let chain = sample(&t, vec![0.0; 3], &config(0.02, 3000)).unwrap();
    assert!(chain.acceptance_rate > 0.6, "{}", chain.acceptance_rate);
    let n = chain.samples.len() as f64;
    let d = 3;
    let m: Vec<f64> = (0..d)
        .map(|i| chain.samples.iter().map(|s| s[i]).sum::<f64>() / n)
        .collect();
    for i in 0..d {
        let xs: Vec<f64> = chain.samples.iter().map(|s| s[i]).collect();
        let ess = effective_sample_size(&xs);
        let mcse = cov[i * d + i].sqrt() / ess.sqrt();
        assert!(ess > 100.0, "ESS {ess}");
        assert!(
            (m[i] - mean[i]).abs() < 3.0 * mcse,
            "w{i}: HMC {} vs exact {} (MCSE {mcse:.2e}, ESS {ess:.0})",
            m[i],
            mean[i]
        );
        for j in 0..d {
            let c = chain
                .samples
                .iter()
                .map(|s| (s[i] - m[i]) * (s[j] - m[j]))
                .sum::<f64>()
                / (n - 1.0);
            let scale = (cov[i * d + i] * cov[j * d + j]).sqrt();
            assert!(
                (c - cov[i * d + j]).abs() < 0.1 * scale,
                "cov[{i}][{j}]: HMC {c:.3e} vs exact {:.3e}",
                cov[i * d + j]
            );
        }
    }
}

#[test]
fn bad_settings_are_refused_naming_the_flag() {
    let t = blr();
    let e = sample(&t, vec![0.0; 3], &config(0.0, 10))
        .err()
        .unwrap()
        .to_string();
    // The library names its settings; the command line maps them to flags.
    assert!(e.contains("step_size"), "{e}");
    let mut c = config(1e-6, 10);
    c.max_leapfrog_steps = 1000;
    let e = sample(&t, vec![0.0; 3], &c).err().unwrap().to_string();
    assert!(
        e.contains("max_leapfrog_steps") && e.contains("300000"),
        "{e}"
    );
    let e = sample(&t, vec![0.0; 2], &config(0.02, 10))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("3 parameters"), "{e}");
    assert!(LinearGaussian::new(vec![1.0, f64::NAN], vec![1.0, 2.0], 1, 0.5, 1.0, 1.0).is_err());
    assert!(LinearGaussian::new(vec![1.0, 2.0], vec![1.0, 2.0], 1, 0.0, 1.0, 1.0).is_err());
}

#[test]
fn ess_of_independent_draws_is_near_n_and_of_a_sticky_chain_is_small() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let iid: Vec<f64> = (0..4000)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let e = effective_sample_size(&iid);
    assert!((3000.0..5000.0).contains(&e), "{e}");
    // AR(1) with φ = 0.9: τ = (1 + φ)/(1 − φ) = 19.
    let mut x = 0.0;
    let ar: Vec<f64> = (0..20000)
        .map(|_| {
            x = 0.9 * x + standard_normal::<f64, _>(&mut rng);
            x
        })
        .collect();
    let e = effective_sample_size(&ar);
    assert!(
        (20000.0 / 19.0 * 0.7..20000.0 / 19.0 * 1.3).contains(&e),
        "{e}"
    );
}

#[test]
fn the_command_reports_posterior_moments_next_to_the_exact_ones() {
    let t = blr();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blr.csv");
    let mut csv = String::from("x1,x2,x3,y\n");
    for (row, y) in t.x.chunks(3).zip(&t.y) {
        csv.push_str(&format!("{},{},{},{}\n", row[0], row[1], row[2], y));
    }
    std::fs::write(&path, csv).unwrap();
    let p = path.to_str().unwrap();
    let out = common::keel(&[
        "bayes",
        "hmc",
        "--data",
        p,
        "--model",
        "linear",
        "--likelihood",
        "gaussian",
        "--noise-std",
        "0.5",
        "--prior-std",
        "1.0",
        "--step-size",
        "0.02",
        "--trajectory-length",
        "0.3",
        "--samples",
        "1500",
        "--burn-in",
        "50",
        "--chains",
        "2",
        "--textbook",
        "--seed",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mean, cov) = closed_form(&t);
    assert_eq!(v["n_samples"], 3000);
    let ess_min = v["ess_min"].as_f64().unwrap();
    assert!(ess_min > 100.0, "{ess_min}");
    // The reported exact moments against the closed form (the CSV carries every value's
    // shortest round-trip form, so the data are the same): rounding only, measured 2.2e-16
    // (mean) and 1.5e-16 (covariance) relative; bound 2e-15.
    for i in 0..3 {
        let exact = v["exact_posterior_mean"][i].as_f64().unwrap();
        assert!(
            (exact - mean[i]).abs() < 2e-15 * mean[i].abs(),
            "exact_posterior_mean[{i}] {exact} vs closed form {}",
            mean[i]
        );
        for j in 0..3 {
            let c = v["exact_posterior_cov"][i][j].as_f64().unwrap();
            let scale = (cov[i][i] * cov[j][j]).sqrt();
            assert!(
                (c - cov[i][j]).abs() < 2e-15 * scale,
                "exact_posterior_cov[{i}][{j}] {c} vs closed form {}",
                cov[i][j]
            );
        }
        let got = v["posterior_mean"][i].as_f64().unwrap();
        let mcse = cov[i][i].sqrt() / ess_min.sqrt();
        assert!(
            (got - mean[i]).abs() < 3.0 * mcse,
            "w{i}: {got} vs {} ({mcse:.1e})",
            mean[i]
        );
    }
    let a = v["acceptance_rate"].as_f64().unwrap();
    assert!(a > 0.5 && a <= 1.0, "{a}");
    // Bad input: one line, exit 2.
    common::rejects(
        &["bayes", "hmc", "--data", p, "--step-size", "0"],
        &["--step-size"],
    );
    common::rejects(
        &[
            "bayes",
            "hmc",
            "--data",
            p,
            "--step-size",
            "0.01",
            "--model",
            "cnn:3",
        ],
        &["--model", "cnn:3"],
    );
    common::rejects(
        &[
            "bayes",
            "hmc",
            "--data",
            p,
            "--step-size",
            "0.01",
            "--target",
            "z",
        ],
        &["--target", "x1, x2, x3, y"],
    );
    common::rejects(
        &[
            "bayes",
            "hmc",
            "--data",
            p,
            "--step-size",
            "1e-7",
            "--trajectory-length",
            "1",
            "--max-leapfrog-steps",
            "1000",
        ],
        &["--max-leapfrog-steps"],
    );
}
