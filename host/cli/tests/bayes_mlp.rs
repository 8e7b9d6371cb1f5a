//! Bayesian MLPs and the baselines: gradients against finite differences, Bayesian logistic
//! regression against an independent reference chain (fixtures/gen/bayes.py), sample files,
//! `keel bayes compare`, bad input.

use crate::common;

use std::path::{Path, PathBuf};

use keel::backend::{DType, Device};
use keel::bayes::ess::{effective_sample_size, moments};
use keel::bayes::hmc::{log_prior_difference, sample, Adaptation, Ensembling, HmcConfig};
use keel::bayes::mlp::{Bnn, Likelihood, Split};
use keel::bayes::prior::Prior;
use keel::bayes::stochastic::{mfvi, sgd, sgmcmc, Batching, Schedule, SgmcmcConfig};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn logistic(hidden: &[usize], prior: Prior, temperature: f64) -> (Split, Bnn) {
    let data = keel::data::read_csv(&fixture("bayes/logistic.csv"), "label", true).unwrap();
    let split = Split::new(&data, 0.0, 0).unwrap();
    let bnn = Bnn::new(
        &split,
        hidden,
        Likelihood::Categorical { classes: 2 },
        prior,
        temperature,
        Device::Cpu,
        DType::F64,
    )
    .unwrap();
    (split, bnn)
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("bayes/logistic_posterior.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vec_of(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Gradient of `log L_T + log p_T` by central differences.
fn check_gradient(bnn: &Bnn, theta: &[f64], rows: Option<&[usize]>, scale: f64) {
    let (_, g) = bnn.posterior_gradient(theta, rows, scale).unwrap();
    let f = |t: &[f64]| {
        let (ll, _) = bnn.likelihood_gradient(t, rows, 1.0).unwrap();
        scale * ll + bnn.prior.log_prob(t, bnn.temperature)
    };
    for i in (0..theta.len()).step_by(3) {
        let h = 1e-6;
        let (mut a, mut b) = (theta.to_vec(), theta.to_vec());
        a[i] += h;
        b[i] -= h;
        let fd = (f(&a) - f(&b)) / (2.0 * h);
        assert!(
            (g[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()),
            "parameter {i}: {} vs {fd}",
            g[i]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    for prior in [
        Prior::new("gaussian", 0.7, 0.5, 4.0).unwrap(),
        Prior::new("mixture", 0.7, 0.3, 5.0).unwrap(),
        Prior::new("logistic", 0.7, 0.5, 4.0).unwrap(),
    ] {
        let (_, bnn) = logistic(&[5, 4], prior, 0.5);
        let theta = bnn.init(3);
        check_gradient(&bnn, &theta, None, 1.0);
        check_gradient(&bnn, &theta, Some(&[3, 7, 11, 40]), 15.0);
    }
    // Learned-scale Gaussian likelihood at T = 0.3 (the σ√T convention).
    let data = keel::data::read_csv(&fixture("data/diabetes.csv"), "target", false).unwrap();
    let split = Split::new(&data.subset(&(0..50).collect::<Vec<_>>()), 0.2, 1).unwrap();
    let bnn = Bnn::new(
        &split,
        &[6],
        Likelihood::Gaussian,
        Prior::Gaussian { std: 1.0 },
        0.3,
        Device::Cpu,
        DType::F64,
    )
    .unwrap();
    check_gradient(&bnn, &bnn.init(1), None, 1.0);
}

#[test]
fn tempering_follows_the_reference_convention() {
    // Categorical: log L_T = log L / T.
    let (_, cold) = logistic(&[3], Prior::Gaussian { std: 1.0 }, 0.25);
    let (_, warm) = logistic(&[3], Prior::Gaussian { std: 1.0 }, 1.0);
    let theta = warm.init(0);
    let a = cold.likelihood_gradient(&theta, None, 1.0).unwrap().0;
    let b = warm.likelihood_gradient(&theta, None, 1.0).unwrap().0;
    assert!((a - 4.0 * b).abs() < 1e-9 * b.abs(), "{a} vs 4 × {b}");
    // The prior is divided by T in the MH difference.
    let mut other = theta.clone();
    other[0] += 0.3;
    let diff = |b: &Bnn| {
        let (new, old) = (b.flat(&other).unwrap(), b.flat(&theta).unwrap());
        log_prior_difference(b, &new, &old).unwrap()
    };
    let (d_cold, d_warm) = (diff(&cold), diff(&warm));
    assert!((d_cold - 4.0 * d_warm).abs() < 1e-12);
}

/// The reference posterior's mean, covariance and the Monte-Carlo standard errors of its mean.
struct Reference {
    mean: Vec<f64>,
    cov: Vec<Vec<f64>>,
    mcse: Vec<f64>,
}

impl Reference {
    fn load() -> Reference {
        let r = reference();
        Reference {
            mean: vec_of(&r["mean"]),
            cov: r["cov"].as_array().unwrap().iter().map(vec_of).collect(),
            mcse: vec_of(&r["mcse_mean"]),
        }
    }

    /// Every mean within 3 combined Monte-Carlo standard errors (the sampler's from `ess`, the
    /// reference's) plus `slack` posterior standard deviations.
    fn check_means(&self, mean: &[f64], cov: &[Vec<f64>], ess: &[f64], slack: f64) {
        for i in 0..mean.len() {
            let mcse = (cov[i][i] / ess[i] + self.mcse[i].powi(2)).sqrt();
            assert!(
                (mean[i] - self.mean[i]).abs() < 3.0 * mcse + slack * self.cov[i][i].sqrt(),
                "θ{i}: {} vs {} (MCSE {mcse:.3}, ESS {:.0})",
                mean[i],
                self.mean[i],
                ess[i]
            );
        }
    }
}

/// HMC on Bayesian logistic regression (no hidden layer) against the reference chain: means
/// within 3 combined Monte-Carlo standard errors (Keel's from its ESS, the reference's from
/// batch means), covariances within 10 %.
#[test]
fn hmc_matches_the_reference_logistic_posterior() {
    let r = Reference::load();
    let (_, bnn) = logistic(&[], Prior::Gaussian { std: 1.0 }, 1.0);
    let mut samples = Vec::new();
    let mut ess = [0.0; 6];
    for c in 0..2 {
        let cfg = HmcConfig {
            step_size: 0.15,
            trajectory_length: std::f64::consts::FRAC_PI_2,
            max_leapfrog_steps: 1000,
            iterations: 2000,
            burn_in: 50,
            mh: true,
            ensembling: Ensembling::Textbook,
            seed: 40 + c,
            adapt: None,
        };
        let chain = sample(&bnn, bnn.init(c), &cfg).unwrap();
        assert!(chain.acceptance_rate > 0.6, "{}", chain.acceptance_rate);
        for (i, e) in ess.iter_mut().enumerate() {
            let xs: Vec<f64> = chain.samples.iter().map(|s| s[i]).collect();
            *e += effective_sample_size(&xs);
        }
        samples.extend(chain.samples);
    }
    let (mean, cov) = moments(&samples);
    r.check_means(&mean, &cov, &ess, 0.0);
    for i in 0..6 {
        for j in 0..6 {
            let scale = (r.cov[i][i] * r.cov[j][j]).sqrt();
            assert!(
                (cov[i][j] - r.cov[i][j]).abs() < 0.1 * scale,
                "cov[{i}][{j}]: {} vs {}",
                cov[i][j],
                r.cov[i][j]
            );
        }
    }
}

/// SGLD at a small step size samples close to the posterior (its bias is O(ηλ) ≈ 1 % here):
/// means within 3 combined Monte-Carlo standard errors (SGLD's from its own ESS) plus 5 % of a
/// standard deviation, marginal variances within 25 % (≈ 4 standard errors at its ESS).
#[test]
fn sgld_approaches_the_reference_logistic_posterior() {
    let r = Reference::load();
    let (_, bnn) = logistic(&[], Prior::Gaussian { std: 1.0 }, 1.0);
    let cfg = SgmcmcConfig {
        lr: 5e-3,
        momentum: 0.0,
        burn_in_epochs: 200,
        ensemble_freq: 5,
        schedule: Schedule::Constant,
        preconditioned: false,
    };
    let b = Batching {
        batch_size: 20,
        epochs: 60_200,
        seed: 5,
        augment: None,
    };
    let samples = sgmcmc(&bnn, bnn.init(0), &cfg, &b, &mut |_| {}).unwrap();
    assert_eq!(samples.len(), 12_000);
    let (mean, cov) = moments(&samples);
    let ess: Vec<f64> = (0..6)
        .map(|i| effective_sample_size(&samples.iter().map(|s| s[i]).collect::<Vec<_>>()))
        .collect();
    assert!(ess.iter().all(|&e| e > 300.0), "ESS {ess:?}");
    r.check_means(&mean, &cov, &ess, 0.05);
    for i in 0..6 {
        assert!(
            (cov[i][i] / r.cov[i][i] - 1.0).abs() < 0.25,
            "var θ{i}: {} vs {} (ESS {:.0})",
            cov[i][i],
            r.cov[i][i],
            ess[i]
        );
    }
}

/// Mean-field VI on a near-Gaussian posterior: the optimum's means are the posterior means and
/// its standard deviations the conditional ones, `1/√Λ_kk` with `Λ` the precision (taken from
/// the reference's Laplace approximation) — smaller than the marginal ones.
#[test]
fn mfvi_finds_the_mean_field_optimum() {
    let r = reference();
    let (_, bnn) = logistic(&[], Prior::Gaussian { std: 1.0 }, 1.0);
    let ref_mean = vec_of(&r["mean"]);
    let laplace: Vec<f64> = r["laplace_cov"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(vec_of)
        .collect();
    let precision = invert6(&laplace);
    let b = Batching {
        batch_size: 20,
        epochs: 300,
        seed: 1,
        augment: None,
    };
    let mean = sgd(&bnn, bnn.init(0), 1e-3, &b, &mut |_| {}).unwrap();
    let b = Batching {
        epochs: 3000,
        seed: 2,
        ..b
    };
    let q = mfvi(&bnn, mean, 1e-2, 1e-2, &b, &mut |_| {}).unwrap();
    for k in 0..6 {
        let sd = laplace[k * 6 + k].sqrt();
        let conditional = 1.0 / precision[k * 6 + k].sqrt();
        assert!(
            (q.mean[k] - ref_mean[k]).abs() < 0.15 * sd,
            "μ{k}: {} vs {}",
            q.mean[k],
            ref_mean[k]
        );
        assert!(
            (q.std[k] / conditional - 1.0).abs() < 0.15,
            "σ{k}: {} vs conditional {conditional} (marginal {sd})",
            q.std[k]
        );
    }
}

/// Gauss–Jordan inverse of a 6 × 6 matrix (row-major).
fn invert6(a: &[f64]) -> Vec<f64> {
    let n = 6;
    let mut m: Vec<f64> = Vec::new();
    for i in 0..n {
        m.extend_from_slice(&a[i * n..(i + 1) * n]);
        m.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
    }
    let w = 2 * n;
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| m[x * w + c].abs().total_cmp(&m[y * w + c].abs()))
            .unwrap();
        for j in 0..w {
            m.swap(c * w + j, p * w + j);
        }
        let d = m[c * w + c];
        for j in 0..w {
            m[c * w + j] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * w + c];
                for j in 0..w {
                    m[r * w + j] -= f * m[c * w + j];
                }
            }
        }
    }
    (0..n)
        .flat_map(|i| m[i * w + n..(i + 1) * w].to_vec())
        .collect()
}

#[test]
fn adaptation_moves_the_step_size_towards_the_target() {
    let (_, bnn) = logistic(&[], Prior::Gaussian { std: 1.0 }, 1.0);
    let run = |eps: f64| {
        let cfg = HmcConfig {
            step_size: eps,
            trajectory_length: 1.0,
            max_leapfrog_steps: 10_000,
            iterations: 200,
            burn_in: 200,
            mh: true,
            ensembling: Ensembling::AcceptedOnly,
            seed: 3,
            adapt: Some(Adaptation {
                speed: 0.1,
                target: 0.8,
            }),
        };
        sample(&bnn, bnn.init(0), &cfg).unwrap()
    };
    // From far too large and far too small, towards the step size giving 80 % acceptance.
    let big = run(1.5);
    let small = run(0.01);
    assert!(big.step_size < 1.0, "{}", big.step_size);
    assert!(small.step_size > 0.05, "{}", small.step_size);
    for c in [&big, &small] {
        assert!(
            (c.acceptance_rate - 0.8).abs() < 0.15,
            "acceptance {} at ε {}",
            c.acceptance_rate,
            c.step_size
        );
    }
}

#[test]
fn cli_runs_saves_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("bayes/logistic.csv");
    let data = data.to_str().unwrap();
    let hmc = dir.path().join("hmc.safetensors");
    let ens = dir.path().join("ens.safetensors");
    let common = [
        "--data",
        data,
        "--model",
        "mlp:8",
        "--test-fraction",
        "0.25",
        "--device",
        "cpu",
        "--json",
    ];
    let run = |args: &[&str]| -> Value {
        let o = common::keel(args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let mut a = vec!["bayes", "hmc"];
    a.extend(common);
    a.extend([
        "--step-size",
        "0.05",
        "--chains",
        "2",
        "--samples",
        "30",
        "--burn-in",
        "10",
        "--save-samples",
        hmc.to_str().unwrap(),
    ]);
    let v = run(&a);
    assert_eq!(v["method"], "hmc");
    assert_eq!(v["test_rows"], 15);
    assert!(v["n_samples"].as_u64().unwrap() >= 20, "{v}");
    let acc = v["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "{v}");
    assert!(v["rhat_function_mean"].as_f64().unwrap() < 1.5, "{v}");
    let mut a = vec!["bayes", "ensemble"];
    a.extend(common);
    a.extend([
        "--lr",
        "1e-2",
        "--epochs",
        "30",
        "--batch-size",
        "15",
        "--members",
        "3",
        "--save-samples",
        ens.to_str().unwrap(),
    ]);
    let e = run(&a);
    assert_eq!(e["n_samples"], 3);
    let c = run(&[
        "bayes",
        "compare",
        "--reference",
        hmc.to_str().unwrap(),
        "--others",
        ens.to_str().unwrap(),
        "--data",
        data,
        "--json",
    ]);
    // The table: every row's bars under the header's (issue 19: the sample counts were not
    // padded, and paths longer than 28 characters pushed their rows out of line).
    let o = common::keel(&[
        "bayes",
        "compare",
        "--reference",
        hmc.to_str().unwrap(),
        "--others",
        ens.to_str().unwrap(),
        "--data",
        data,
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    let bars = |l: &str| -> Vec<usize> {
        l.chars()
            .enumerate()
            .filter(|c| c.1 == '|')
            .map(|c| c.0)
            .collect()
    };
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "header, rule, two rows:\n{table}");
    for l in &lines {
        assert_eq!(bars(l), bars(lines[0]), "misaligned:\n{table}");
    }
    let png = dir.path().join("reliability.png");
    let o = common::keel(&[
        "bayes",
        "compare",
        "--reference",
        hmc.to_str().unwrap(),
        "--others",
        ens.to_str().unwrap(),
        "--data",
        data,
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // Exporting more samples than the set holds exports them all and says so.
    let bma = dir.path().join("bma.safetensors");
    let o = common::keel(&[
        "bayes",
        "export",
        "--samples",
        ens.to_str().unwrap(),
        "--data",
        data,
        "--count",
        "10",
        "--out",
        bma.to_str().unwrap(),
    ]);
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("--count 10 is more than the 3 samples"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("3 of 3 ensemble samples"));
    let rows = c["rows"].as_array().unwrap();
    // The reference against itself: full agreement, no distance; the same test metrics as the
    // run that saved it.
    assert_eq!(rows[0]["to_reference"]["agreement"], 1.0);
    assert_eq!(rows[0]["to_reference"]["total_variation"], 0.0);
    assert_eq!(rows[0]["test"], v["test"]);
    assert_eq!(rows[1]["test"], e["test"]);
    let tv = rows[1]["to_reference"]["total_variation"].as_f64().unwrap();
    assert!(tv > 0.0 && tv < 1.0, "{tv}");

    // Bad input: one line, exit 2.
    let p = ["--data", data, "--batch-size", "20"];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["bayes", "sgd"].iter().map(|s| s.to_string()).collect();
        v.extend(p.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let check = |extra: &[&str], needles: &[&str]| {
        let args = with(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        common::rejects(&refs, needles);
    };
    check(
        &["--lr", "1e-3", "--prior", "laplace"],
        &["--prior", "laplace"],
    );
    check(&["--lr", "1e-3", "--prior-std=-1"], &["--prior-std"]);
    check(&["--lr", "0"], &["--lr"]);
    check(&["--lr", "1e-3", "--model", "mlp:4,x"], &["--model"]);
    check(
        &["--lr", "1e-3", "--likelihood", "poisson"],
        &["--likelihood", "poisson"],
    );
    common::rejects(
        &[
            "bayes",
            "sgd",
            "--data",
            data,
            "--lr",
            "1e-3",
            "--batch-size",
            "500",
        ],
        &["--batch-size", "54"],
    );
    check(&["--lr", "1e-3", "--device", "tpu"], &["--device", "tpu"]);
    if keel::backend::Device::Cuda(0).check().is_err() {
        check(&["--lr", "1e-3", "--device", "cuda"], &["GPU"]);
    }
    common::rejects(
        &[
            "bayes",
            "compare",
            "--reference",
            data,
            "--others",
            ens.to_str().unwrap(),
            "--data",
            data,
        ],
        &["logistic.csv"],
    );
    // A regression target read as classes.
    common::rejects(
        &[
            "bayes",
            "sgd",
            "--data",
            fixture("data/diabetes.csv").to_str().unwrap(),
            "--lr",
            "1e-3",
        ],
        &["--likelihood gaussian", "distinct values"],
    );
    // Samples evaluated on other data than they were drawn on.
    let diabetes = fixture("data/diabetes.csv");
    common::rejects(
        &[
            "bayes",
            "compare",
            "--reference",
            hmc.to_str().unwrap(),
            "--others",
            ens.to_str().unwrap(),
            "--data",
            diabetes.to_str().unwrap(),
        ],
        &["--data", "target 'label'"],
    );
    // A set drawn on another split is not comparable.
    let other = dir.path().join("other.safetensors");
    let mut a = vec!["bayes", "sgd"];
    a.extend(common);
    a.extend([
        "--lr",
        "1e-2",
        "--epochs",
        "2",
        "--batch-size",
        "15",
        "--split-seed",
        "7",
        "--save-samples",
        other.to_str().unwrap(),
    ]);
    run(&a);
    common::rejects(
        &[
            "bayes",
            "compare",
            "--reference",
            hmc.to_str().unwrap(),
            "--others",
            other.to_str().unwrap(),
            "--data",
            data,
        ],
        &["--others", "split seed"],
    );
    // mean-field VI needs the Gaussian prior's closed-form KL.
    common::rejects(
        &[
            "bayes", "vi", "--data", data, "--device", "cpu", "--sgd-lr", "1e-3", "--prior",
            "logistic",
        ],
        &["--prior", "gaussian"],
    );
}

/// The core's model average of an exported set equals the host engine's (f64: 1e-12; the core in
/// f32: 1e-5), and the export refuses a regression set.
#[test]
fn the_core_averages_an_exported_set_like_the_engine() {
    use keel::bayes::samples::{bma_bytes, bma_engine, SampleSet, Spec};
    use keel_core::io::SafeTensors;
    use keel_core::nn::Bma;
    let (split, bnn) = logistic(&[8, 6], Prior::Gaussian { std: 1.0 }, 1.0);
    let samples: Vec<Vec<f64>> = (0..7).map(|s| bnn.init(s)).collect();
    let spec = Spec {
        method: "test".into(),
        hidden: vec![8, 6],
        cnn: None,
        likelihood: "categorical".into(),
        classes: vec!["0".into(), "1".into()],
        prior: "gaussian".into(),
        prior_std: 1.0,
        mixture_weight: 0.5,
        mixture_ratio: 4.0,
        temperature: 1.0,
        data: "logistic.csv".into(),
        target: "label".into(),
        rows: 60,
        test_fraction: 0.0,
        split_seed: 0,
        standardize: Default::default(),
        settings: Value::Null,
    };
    let set = SampleSet {
        spec: spec.clone(),
        samples,
        chain: vec![0; 7],
    };
    let bytes = bma_bytes(&set, &split, &bnn.sizes(), 5).unwrap();
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let bma = Bma::<4>::from_safetensors(&st).unwrap();
    assert_eq!((bma.count(), bma.inputs(), bma.classes()), (5, 2, 2));
    let raw = [0.3, -1.2, 2.0, 0.1, -0.7, -0.4];
    let host = bma_engine(&bytes, Path::new("mem"), &raw).unwrap();
    let mut scratch = vec![0.0f64; bma.scratch_len()];
    let mut scratch32 = vec![0.0f32; bma.scratch_len()];
    for (k, x) in raw.chunks(2).enumerate() {
        let mut p = [0.0f64; 2];
        bma.predict(x, &mut p, &mut scratch).unwrap();
        let x32 = [x[0] as f32, x[1] as f32];
        let mut p32 = [0.0f32; 2];
        bma.predict(&x32, &mut p32, &mut scratch32).unwrap();
        for c in 0..2 {
            let h = host[k * 2 + c];
            assert!((p[c] - h).abs() < 1e-12, "{} vs {h}", p[c]);
            assert!((f64::from(p32[c]) - h).abs() < 1e-5, "{} vs {h}", p32[c]);
        }
        assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
    }
    // Bad calls and files.
    let mut p = [0.0f64; 3];
    assert!(bma.predict(&raw[..2], &mut p, &mut scratch).is_err());
    assert!(bma
        .predict(&raw[..2], &mut p[..2], &mut scratch[..1])
        .is_err());
    let regression = SampleSet {
        spec: Spec {
            likelihood: "gaussian".into(),
            ..spec
        },
        ..set
    };
    assert!(bma_bytes(&regression, &split, &bnn.sizes(), 5).is_err());
    let mlp_file = std::fs::read(fixture("../firmware/assets/digits-mlp.safetensors")).unwrap();
    let st = SafeTensors::<16>::parse(&mlp_file).unwrap();
    assert!(Bma::<4>::from_safetensors(&st).is_err());
}

/// A run stopped twice (in burn-in, then after it) and resumed ends with the same samples, byte
/// for byte, as an uninterrupted one; a checkpoint from other settings is refused.
#[test]
fn hmc_resumes_from_checkpoints_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture("bayes/logistic.csv");
    let file = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (whole, parts, ck) = (
        file("whole.safetensors"),
        file("parts.safetensors"),
        file("ck"),
    );
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "bayes",
            "hmc",
            "--data",
            data.to_str().unwrap(),
            "--model",
            "mlp:4",
            "--step-size",
            "0.05",
            "--chains",
            "2",
            "--samples",
            "15",
            "--burn-in",
            "5",
            "--device",
            "cpu",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        let o = common::keel(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{v:?}: {}", common::stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let full = base(&["--save-samples", &whole]);
    let cut = ["--checkpoint", &ck, "--checkpoint-every", "3"];
    assert_eq!(full["partial"], false, "{full}");
    // The two chains run in lockstep: 5 burn-in and 15 sampling iterations each.
    let s1 = base(&[&cut[..], &["--stop-after", "4"]].concat());
    assert_eq!(s1["stopped_after"], 4);
    assert_eq!(s1["iteration"], 4);
    assert_eq!(s1["partial"], true, "{s1}");
    let s2 = base(&[&cut[..], &["--resume", "--stop-after", "9"]].concat());
    assert_eq!(s2["iteration"], 13, "{s2}");
    let rest = base(&[&cut[..], &["--resume", "--save-samples", &parts]].concat());
    assert_eq!(rest["test"], full["test"]);
    assert_eq!(
        rest["acceptance_rate_per_chain"],
        full["acceptance_rate_per_chain"]
    );
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&parts).unwrap()
    );
    // Refused, one line each: other settings; --resume without a file; a zero adaptation speed.
    let refuse = |extra: &[&str], needles: &[&str]| {
        let mut v = vec![
            "bayes",
            "hmc",
            "--data",
            data.to_str().unwrap(),
            "--model",
            "mlp:4",
        ];
        v.extend_from_slice(extra);
        common::rejects(&v, needles);
    };
    refuse(
        &[
            "--step-size",
            "0.04",
            "--chains",
            "2",
            "--samples",
            "15",
            "--burn-in",
            "5",
            "--device",
            "cpu",
            "--checkpoint",
            &ck,
            "--resume",
        ],
        &["--resume", "other settings"],
    );
    refuse(
        &["--step-size", "0.05", "--resume"],
        &["--resume", "--checkpoint"],
    );
    refuse(
        &["--step-size", "0.05", "--adapt-speed", "0"],
        &["--adapt-speed"],
    );
}

/// A split that leaves no test rows is refused (its test metrics would be empty, not zero).
#[test]
fn a_split_without_test_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.csv");
    std::fs::write(&tiny, "a,b,y\n1,2,0.5\n2,1,0.1\n3,3,0.9\n4,0,0.3\n").unwrap();
    let tiny = tiny.to_str().unwrap();
    common::rejects(
        &[
            "bayes",
            "hmc",
            "--data",
            tiny,
            "--likelihood",
            "gaussian",
            "--model",
            "mlp:4",
            "--step-size",
            "1e-3",
        ],
        &["--test-fraction", "no test rows"],
    );
}
