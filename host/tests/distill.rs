//! `keel::distill` against an independent numpy reference and through its properties.
//!
//! `fixtures/distill/losses.json` is written by `fixtures/gen/distill.py`: every loss of
//! samuelstanton/gnosis `gnosis/distillation/classification.py` (with per-example temperatures
//! and synthetic rows), its gradient with respect to the student's logits derived by hand (and
//! checked there by central differences), the ensemble reduction
//! `reduce_ensemble_logits` (`logsumexp(log_softmax(z), dim=0) − log M`), agreement, KL at
//! T = 1 and the 10-bin ECE of `gnosis/utils/metrics.py`. Keel's gradients come from its
//! autodiff. The reference's own test (`tests/test_kd_loss.py`): at T = 1 forward
//! cross-entropy and KL have the same gradient.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel::distill::{
    distill, fidelity, log_mean_softmax, objective, soft_loss, stream, Augment, DistillConfig,
    Loss, LossInputs, StudentInit, StudentSpec, Teacher,
};
use keel::{grad, DType, Device, Tensor};
use keel_core::random::Xoshiro256PlusPlus;
use serde_json::Value;

const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/data/digits.csv");

fn fixture() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/distill/losses.json"
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// f64 end to end on both sides: the reference's values to 1e-12 relative (abs 1e-13 for values
/// near 0, such as gradient entries of a converged row).
fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-13 + 1e-11 * b.abs(),
        "{what}: keel {a} vs reference {b}"
    );
}

fn loss_of(name: &str) -> Loss {
    match name {
        "fwd-ce" => Loss::FwdCe,
        "kl" => Loss::Kl,
        "sym-kl" => Loss::SymKl,
        "brier" => Loss::Brier,
        "hard-ce" => Loss::HardCe,
        "rev-ce" => Loss::RevCe,
        "cvx" => Loss::Cvx,
        other => panic!("{other}"),
    }
}

#[test]
fn ensemble_reduction_matches_the_reference() {
    let f = fixture();
    let (b, c) = (
        f["rows"].as_u64().unwrap() as usize,
        f["classes"].as_u64().unwrap() as usize,
    );
    let members: Vec<Vec<f64>> = f["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(members[0].len(), b * c);
    let z = log_mean_softmax(&members, c);
    for (k, (a, r)) in z.iter().zip(floats(&f["teacher_reduced"])).enumerate() {
        close(*a, r, &format!("z̄[{k}]"));
    }
    // One member: its log-softmax.
    let one = log_mean_softmax(&members[..1], c);
    let row: Vec<f64> = members[0][..c].to_vec();
    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
    for j in 0..c {
        close(one[j], row[j] - lse, "one member");
    }
}

fn student_and_teacher(f: &Value) -> (Tensor, Tensor, usize, usize) {
    let (b, c) = (
        f["rows"].as_u64().unwrap() as usize,
        f["classes"].as_u64().unwrap() as usize,
    );
    let zs = Tensor::from_f64s(&floats(&f["student"]), &[b, c], DType::F64).unwrap();
    let zt = Tensor::from_f64s(&floats(&f["teacher_reduced"]), &[b, c], DType::F64).unwrap();
    (zs, zt, b, c)
}

#[test]
fn every_loss_and_its_gradient_match_the_reference() {
    let f = fixture();
    let (zs, zt, _, _) = student_and_teacher(&f);
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 21);
    for case in cases {
        let name = case["loss"].as_str().unwrap();
        let what = format!("{name} at {}", case["setting"]);
        let temps = floats(&case["temperatures"]);
        let real = case["real"].as_u64().unwrap() as usize;
        let v = zs.variable();
        let l = soft_loss(
            loss_of(name),
            &LossInputs {
                student: &v,
                teacher: &zt,
                temperatures: &temps,
                real,
            },
            case["beta"].as_f64().unwrap(),
        )
        .unwrap();
        close(l.item().unwrap(), case["value"].as_f64().unwrap(), &what);
        let g = grad(&[&l], &[None], &[&v], false).unwrap();
        let g = g[0].as_ref().unwrap().to_vec_f64().unwrap();
        for (k, (a, r)) in g.iter().zip(floats(&case["grad"])).enumerate() {
            close(*a, r, &format!("{what}: ∂/∂z[{k}]"));
        }
    }
}

#[test]
fn the_objective_mixes_true_labels_on_real_rows_only() {
    let f = fixture();
    let (zs, zt, _, _) = student_and_teacher(&f);
    for case in f["objectives"].as_array().unwrap() {
        let name = case["loss"].as_str().unwrap();
        let temps = floats(&case["temperatures"]);
        let labels: Vec<usize> = floats(&case["labels"])
            .iter()
            .map(|&l| l as usize)
            .collect();
        let v = zs.variable();
        let l = objective(
            loss_of(name),
            &LossInputs {
                student: &v,
                teacher: &zt,
                temperatures: &temps,
                real: case["real"].as_u64().unwrap() as usize,
            },
            &labels,
            case["alpha"].as_f64().unwrap(),
            case["beta"].as_f64().unwrap(),
        )
        .unwrap();
        close(l.item().unwrap(), case["value"].as_f64().unwrap(), name);
        let g = grad(&[&l], &[None], &[&v], false).unwrap();
        let g = g[0].as_ref().unwrap().to_vec_f64().unwrap();
        for (a, r) in g.iter().zip(floats(&case["grad"])) {
            close(*a, r, &format!("objective {name} gradient"));
        }
    }
}

/// gnosis `tests/test_kd_loss.py`: at T = 1, `ts_fwd_cross_ent` and `ts_kl` differ by the
/// teacher's entropy, a constant, so their gradients agree; at T = 4 they differ by T² = 16.
#[test]
fn forward_cross_entropy_at_t1_has_the_gradient_of_kl() {
    let f = fixture();
    let (zs, zt, b, _) = student_and_teacher(&f);
    let gradient = |loss: Loss, t: f64| {
        let v = zs.variable();
        let temps = vec![t; b];
        let l = soft_loss(
            loss,
            &LossInputs {
                student: &v,
                teacher: &zt,
                temperatures: &temps,
                real: b,
            },
            0.0,
        )
        .unwrap();
        let g = grad(&[&l], &[None], &[&v], false).unwrap();
        g[0].as_ref().unwrap().to_vec_f64().unwrap()
    };
    let (ce, kl) = (gradient(Loss::FwdCe, 1.0), gradient(Loss::Kl, 1.0));
    assert!(
        ce.iter().any(|g| g.abs() > 1e-3),
        "a gradient worth comparing"
    );
    for (a, b) in ce.iter().zip(&kl) {
        close(*a, *b, "fwd-ce vs kl at T = 1");
    }
    let (ce4, kl4) = (gradient(Loss::FwdCe, 4.0), gradient(Loss::Kl, 4.0));
    for (a, b) in ce4.iter().zip(&kl4) {
        close(*a, 16.0 * b, "fwd-ce = T²·kl at T = 4");
    }
}

#[test]
fn agreement_kl_and_ece_match_the_reference() {
    let f = fixture();
    let c = f["classes"].as_u64().unwrap() as usize;
    let (a, kl) = fidelity(
        &floats(&f["teacher_reduced"]),
        &floats(&f["fidelity"]["student"]),
        c,
    );
    close(a, f["fidelity"]["agreement"].as_f64().unwrap(), "agreement");
    close(kl, f["fidelity"]["kl"].as_f64().unwrap(), "KL");
    let e = &f["ece"];
    let labels: Vec<usize> = floats(&e["labels"]).iter().map(|&l| l as usize).collect();
    close(
        keel::metrics::ece(&floats(&e["probs"]), c, &labels, 10),
        e["ece"].as_f64().unwrap(),
        "10-bin ECE",
    );
}

#[test]
fn bad_losses_inputs_are_refused() {
    let z = Tensor::from_f64s(&[0.0; 6], &[2, 3], DType::F64).unwrap();
    let b = |temps: &'static [f64], real| LossInputs {
        student: &z,
        teacher: &z,
        temperatures: temps,
        real,
    };
    assert!(soft_loss(Loss::FwdCe, &b(&[1.0, 0.0], 2), 0.0).is_err());
    assert!(soft_loss(Loss::FwdCe, &b(&[1.0], 1), 0.0).is_err());
    assert!(soft_loss(Loss::FwdCe, &b(&[1.0, 1.0], 3), 0.0).is_err());
    assert!(objective(Loss::FwdCe, &b(&[1.0, 1.0], 2), &[0, 1], 1.5, 0.0).is_err());
}

#[test]
fn cvx_beta_anneals_linearly_from_one_to_zero() {
    assert_eq!(Loss::cvx_beta(0, 5), 1.0);
    assert_eq!(Loss::cvx_beta(2, 5), 0.5);
    assert_eq!(Loss::cvx_beta(4, 5), 0.0);
    assert_eq!(Loss::cvx_beta(0, 1), 1.0);
}

#[test]
fn shifts_and_mixup_are_determined_by_the_seed() {
    // A 1×3×3 image with distinct pixels; a shift moves every pixel by (dy, dx), zero-filled.
    let img: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut x: Vec<f64> = img.iter().chain(&img).chain(&img).copied().collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let shifts = stream::shift(&mut x, [1, 3, 3], &mut rng).unwrap();
    for (k, &(dy, dx)) in shifts.iter().enumerate() {
        assert!((-1..=1).contains(&dy) && (-1..=1).contains(&dx));
        for r in 0..3i64 {
            for q in 0..3i64 {
                let (sr, sq) = (r - dy, q - dx);
                let want = if (0..3).contains(&sr) && (0..3).contains(&sq) {
                    img[(sr * 3 + sq) as usize]
                } else {
                    0.0
                };
                assert_eq!(x[k * 9 + (r * 3 + q) as usize], want);
            }
        }
    }
    let mut again: Vec<f64> = img.iter().chain(&img).chain(&img).copied().collect();
    let s2 = stream::shift(
        &mut again,
        [1, 3, 3],
        &mut Xoshiro256PlusPlus::seed_from_u64(7),
    )
    .unwrap();
    assert_eq!(
        (shifts.clone(), x.clone()),
        (s2, again),
        "same seed, same shifts"
    );
    // Over many rows every one of the nine shifts is drawn.
    let mut many = vec![0.0; 9 * 200];
    let s = stream::shift(&mut many, [1, 3, 3], &mut rng).unwrap();
    let distinct: std::collections::BTreeSet<_> = s.into_iter().collect();
    assert_eq!(distinct.len(), 9);

    // Mixup: x ← λx + (1 − λ)x[perm], λ and perm from the seed.
    let rows: Vec<f64> = (0..12).map(f64::from).collect();
    let mut m = rows.clone();
    let (lambda, perm) = stream::mixup(&mut m, 3, 1.0, &mut Xoshiro256PlusPlus::seed_from_u64(3));
    assert!((0.0..=1.0).contains(&lambda));
    for i in 0..4 {
        for k in 0..3 {
            let want = lambda * rows[i * 3 + k] + (1.0 - lambda) * rows[perm[i] * 3 + k];
            assert_eq!(m[i * 3 + k], want);
        }
    }
    let mut m2 = rows.clone();
    let again = stream::mixup(&mut m2, 3, 1.0, &mut Xoshiro256PlusPlus::seed_from_u64(3));
    assert_eq!((lambda, perm, m), (again.0, again.1, m2));
}

#[test]
fn beta_draws_have_the_beta_moments() {
    // Beta(a, a): mean 1/2, variance 1/(4(2a + 1)). 40 000 draws: the standard error of the
    // mean is below 0.0015, of the variance below 0.0005; 5 standard errors allowed.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for a in [0.4, 1.0, 2.0] {
        let n = 40_000;
        let d: Vec<f64> = (0..n)
            .map(|_| stream::beta_symmetric(a, &mut rng))
            .collect();
        let mean = d.iter().sum::<f64>() / n as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.0075, "Beta({a}) mean {mean}");
        let want = 1.0 / (4.0 * (2.0 * a + 1.0));
        assert!(
            (var - want).abs() < 0.0025,
            "Beta({a}) variance {var} vs {want}"
        );
    }
}

/// A random ReLU MLP `[64, 8, 10]` exported as `keel fit --export` writes it, with the digits'
/// classes and columns (or others).
fn write_mlp_teacher(dir: &Path, name: &str, classes: Vec<String>, seed: u64) -> PathBuf {
    use keel::export::{mlp_bytes, MlpConfig, OutputKind, Standardization};
    let data = keel::data::read_csv(Path::new(DIGITS), "label", true).unwrap();
    let mut params = keel::params::Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mlp = keel::nn::Mlp::new(
        &mut params,
        &[64, 8, 10],
        keel::nn::Activation::Relu,
        keel::init::Init::PyTorchDefault,
        DType::F64,
        &mut rng,
    )
    .unwrap();
    let (m, s) = keel::data::column_stats(&data.x, 64);
    let config = MlpConfig {
        sizes: vec![64, 8, 10],
        activation: "relu".into(),
        output: OutputKind::Logits,
        input_standardization: true,
        target_standardization: false,
        classes: Some(classes),
        features: data.features.clone(),
    };
    let stats = Standardization {
        input: Some((m, s)),
        target: None,
    };
    let path = dir.join(name);
    std::fs::write(&path, mlp_bytes(&mlp, &params, &config, &stats).unwrap()).unwrap();
    path
}

fn digit_classes() -> Vec<String> {
    (0..10).map(|c| c.to_string()).collect()
}

fn config(teachers: Vec<PathBuf>) -> DistillConfig {
    DistillConfig {
        teachers,
        data: PathBuf::from(DIGITS),
        target: "label".into(),
        image_shape: None,
        student: StudentSpec::Mlp {
            hidden: vec![8],
            activation: keel::nn::Activation::Relu,
        },
        loss: Loss::FwdCe,
        temperature: 4.0,
        alpha: 0.0,
        epochs: 3,
        lr: 0.05,
        batch_size: 128,
        seed: 0,
        init: StudentInit::Random,
        augment: Augment::None,
        synthetic: None,
        test_data: None,
        test_fraction: None,
        split_seed: None,
        dtype: DType::F64,
        device: Device::Cpu,
        checkpoint: Default::default(),
    }
}

/// A simplex ensemble file in the exact layout `keel simplex train --export` writes: `vertices
/// [K, n, P]`, `points [S, n]`, `sizes`, `input.mean`/`input.std`, `keel.kind = simplex`.
#[test]
fn a_simplex_teacher_averages_its_component_networks() {
    use keel::export::safetensors_bytes;
    let dir = tempfile::tempdir().unwrap();
    let data = keel::data::read_csv(Path::new(DIGITS), "label", true).unwrap();
    let sizes = [64usize, 4, 10];
    let p = 64 * 4 + 4 + 4 * 10 + 10;
    let (k, n, s) = (2usize, 3usize, 2usize);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let vertices: Vec<f64> = (0..k * n * p)
        .map(|_| 0.3 * keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect();
    let points = [0.2, 0.3, 0.5, 0.6, 0.1, 0.3];
    let (mean, std) = keel::data::column_stats(&data.x, 64);
    let f32b =
        |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect() };
    let tensors = vec![
        ("vertices".to_string(), vec![k, n, p], f32b(&vertices)),
        ("points".to_string(), vec![s, n], f32b(&points)),
        ("sizes".to_string(), vec![3], f32b(&sizes.map(|v| v as f64))),
        ("input.mean".to_string(), vec![64], f32b(&mean)),
        ("input.std".to_string(), vec![64], f32b(&std)),
    ];
    let cfg = serde_json::json!({"model": "mlp", "sizes": sizes, "activation": "relu",
        "components": k, "vertices": n, "points": s, "classes": digit_classes(),
        "features": data.features});
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "simplex".to_string()),
        ("keel.config".to_string(), cfg.to_string()),
    ]);
    let path = dir.path().join("simplex.safetensors");
    std::fs::write(&path, safetensors_bytes(&tensors, &meta)).unwrap();
    let teacher = Teacher::load(std::slice::from_ref(&path), Path::new(DIGITS), &data).unwrap();
    // The same file declaring a simplex of CNNs: refused, saying so.
    let mut cnn_cfg = cfg.clone();
    cnn_cfg["model"] = "cnn".into();
    let cnn_meta = BTreeMap::from([
        ("keel.kind".to_string(), "simplex".to_string()),
        ("keel.config".to_string(), cnn_cfg.to_string()),
    ]);
    let cnn_path = dir.path().join("simplex-cnn.safetensors");
    std::fs::write(&cnn_path, safetensors_bytes(&tensors, &cnn_meta)).unwrap();
    let err = Teacher::load(&[cnn_path], Path::new(DIGITS), &data)
        .err()
        .unwrap();
    assert!(
        err.is_input_error() && err.to_string().contains("not supported"),
        "{err}"
    );
    assert_eq!(teacher.members(), k * s);
    // The expected members, computed by hand from the f32-rounded file contents.
    let r = |v: f64| v as f32 as f64;
    let rows = 5;
    let x = &data.x[..rows * 64];
    let mut member_logp = Vec::new();
    for c in 0..k {
        for a in points.chunks(n) {
            let w: Vec<f64> = (0..p)
                .map(|i| {
                    (0..n)
                        .map(|j| r(a[j]) * r(vertices[(c * n + j) * p + i]))
                        .sum()
                })
                .collect();
            let mut logits = Vec::new();
            for row in x.chunks(64) {
                let xs: Vec<f64> = (0..64).map(|i| (row[i] - r(mean[i])) / r(std[i])).collect();
                let h: Vec<f64> = (0..4)
                    .map(|o| {
                        let z = (0..64).map(|i| w[o * 64 + i] * xs[i]).sum::<f64>() + w[256 + o];
                        z.max(0.0)
                    })
                    .collect();
                logits.extend(
                    (0..10).map(|o| {
                        (0..4).map(|i| w[260 + o * 4 + i] * h[i]).sum::<f64>() + w[300 + o]
                    }),
                );
            }
            member_logp.push(logits);
        }
    }
    let want = log_mean_softmax(&member_logp, 10);
    let got = teacher.logits(x).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-9 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn a_teacher_that_does_not_fit_the_data_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = digit_classes();
    other[9] = "nine".into();
    let t = write_mlp_teacher(dir.path(), "t.safetensors", other, 0);
    let err = distill(&config(vec![t]), &mut |_| {}).err().unwrap();
    let msg = err.to_string();
    assert!(err.is_input_error(), "{msg}");
    assert!(msg.contains("nine") && msg.contains("digits.csv"), "{msg}");
    // A non-teacher file: a checkpoint of another command is the wrong kind.
    let bad = dir.path().join("not-a-model.safetensors");
    std::fs::write(
        &bad,
        keel::export::safetensors_bytes(
            &[],
            &BTreeMap::from([("keel.kind".to_string(), "emlp".to_string())]),
        ),
    )
    .unwrap();
    let err = distill(&config(vec![bad]), &mut |_| {}).err().unwrap();
    assert!(
        err.is_input_error() && err.to_string().contains("'emlp'"),
        "{err}"
    );
}

#[test]
fn interpolating_at_rho_zero_starts_and_stays_at_the_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let t = write_mlp_teacher(dir.path(), "t.safetensors", digit_classes(), 1);
    let mut cfg = config(vec![t]);
    cfg.epochs = 2;
    cfg.init = StudentInit::Interpolate { rho: 0.0 };
    let r = distill(&cfg, &mut |_| {}).unwrap().report;
    assert_eq!(
        r.lr,
        keel::distill::ETA_MIN,
        "lr scaled to max(lr·ρ, eta_min)"
    );
    assert_eq!(r.test_agreement, 1.0);
    assert_eq!(r.stream_agreement, 1.0);
    assert!(
        r.test_kl < 1e-6 && r.stream_kl < 1e-6,
        "{} {}",
        r.test_kl,
        r.stream_kl
    );
    // From random (ρ = 1) the student does not reach the teacher in two epochs.
    cfg.init = StudentInit::Interpolate { rho: 1.0 };
    let r1 = distill(&cfg, &mut |_| {}).unwrap().report;
    assert_eq!(r1.lr, 0.05);
    assert!(r1.test_kl > 100.0 * r.test_kl.max(1e-8), "{}", r1.test_kl);
    // An ensemble teacher cannot be interpolated.
    let t2 = write_mlp_teacher(dir.path(), "t2.safetensors", digit_classes(), 2);
    cfg.teachers.push(t2);
    let err = distill(&cfg, &mut |_| {}).err().unwrap();
    assert!(
        err.is_input_error() && err.to_string().contains("one MLP"),
        "{err}"
    );
}

#[test]
fn the_exported_student_is_what_keel_core_loads() {
    let dir = tempfile::tempdir().unwrap();
    let t = write_mlp_teacher(dir.path(), "t.safetensors", digit_classes(), 3);
    let mut cfg = config(vec![t]);
    cfg.augment = Augment::Mixup { alpha: 1.0 };
    let mut out = distill(&cfg, &mut |_| {}).unwrap();
    assert!(out.report.stream_agreement < 1.0 && out.report.stream_kl > 0.0);
    let bytes = out.student.export_bytes().unwrap();
    let st = keel_core::io::SafeTensors::<64>::parse(&bytes).unwrap();
    let core = keel_core::nn::Mlp::<16>::from_safetensors(&st).unwrap();
    let data = keel::data::read_csv(Path::new(DIGITS), "label", true).unwrap();
    let x = &data.x[..64 * 20];
    let host = out.student.logits(x).unwrap();
    let mut o = [0.0f64; 10];
    let mut scratch = vec![0.0f64; core.scratch_len()];
    for (row, h) in x.chunks(64).zip(host.chunks(10)) {
        core.forward(row, &mut o, &mut scratch).unwrap();
        for (a, b) in o.iter().zip(h) {
            // The file holds f32 weights; the host student trained in f64.
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = write_mlp_teacher(dir.path(), "t.safetensors", digit_classes(), 4);
    let syn = dir.path().join("syn.csv");
    let data = keel::data::read_csv(Path::new(DIGITS), "label", true).unwrap();
    let mut text = data.features.join(",") + "\n";
    for row in data.x.chunks(64).take(50) {
        text += &row
            .iter()
            .map(|v| (16.0 - v).to_string())
            .collect::<Vec<_>>()
            .join(",");
        text += "\n";
    }
    std::fs::write(&syn, text).unwrap();
    let mut cfg = config(vec![t]);
    cfg.epochs = 4;
    cfg.augment = Augment::Mixup { alpha: 1.0 };
    cfg.synthetic = Some((syn, 0.2));
    let full = distill(&cfg, &mut |_| {}).unwrap();
    assert_eq!(full.report.synthetic_per_batch, 32);
    let ck = dir.path().join("ck.safetensors");
    cfg.checkpoint = keel::checkpoint::Options {
        path: Some(ck.clone()),
        every: 1,
        resume: true,
        stop_after: Some(2),
    };
    let half = distill(&cfg, &mut |_| {}).unwrap();
    assert_eq!(half.report.epochs, 2);
    cfg.checkpoint.stop_after = None;
    let resumed = distill(&cfg, &mut |_| {}).unwrap();
    assert_eq!(
        full.student.export_bytes().unwrap(),
        resumed.student.export_bytes().unwrap()
    );
    let j = |r: &keel::distill::DistillReport| {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("train_seconds");
        v
    };
    assert_eq!(j(&full.report), j(&resumed.report));
    // A checkpoint of another configuration is refused.
    cfg.temperature = 2.0;
    assert!(distill(&cfg, &mut |_| {}).is_err());
}

/// A `keel bayes` sample set as a teacher: its members' softmax average is the set's own BMA
/// (`bayes::samples::predictions` + `predictive`) on the set's test rows.
#[test]
fn a_sample_set_teacher_is_the_sets_own_model_average() {
    use keel::bayes::samples::{predictions, predictive, rebuild, Predictive, SampleSet, Spec};
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        method: "ensemble".into(),
        hidden: vec![6],
        cnn: None,
        likelihood: "categorical".into(),
        classes: digit_classes(),
        prior: "gaussian".into(),
        prior_std: 1.0,
        mixture_weight: 0.5,
        mixture_ratio: 0.1,
        temperature: 1.0,
        data: "digits.csv".into(),
        target: "label".into(),
        rows: 1797,
        test_fraction: 0.1,
        split_seed: 3,
        standardize: Default::default(),
        settings: serde_json::json!({"members": 3}),
    };
    let (split, bnn) = rebuild(&spec, Path::new(DIGITS), Device::Cpu).unwrap();
    let samples: Vec<Vec<f64>> = (0..3).map(|s| bnn.init(s)).collect();
    let set = SampleSet {
        spec,
        samples: samples.clone(),
        chain: vec![0, 1, 2],
    };
    let path = dir.path().join("ens.safetensors");
    set.save(&path).unwrap();
    let Predictive::Classes { probs, .. } = predictive(
        bnn.likelihood,
        &predictions(&bnn, &split, &samples).unwrap(),
    ) else {
        panic!("classes")
    };
    // The raw test rows of the same split: the first n − n_test of the permutation train.
    let data = keel::data::read_csv(Path::new(DIGITS), "label", true).unwrap();
    let order = keel::data::permutation(1797, &mut Xoshiro256PlusPlus::seed_from_u64(3));
    let test = data.subset(&order[1797 - 180..]);
    let teacher = Teacher::load(&[path], Path::new(DIGITS), &data).unwrap();
    assert_eq!(teacher.members(), 3);
    assert_eq!(teacher.files[0].split, Some((0.1, 3)));
    let z = teacher.logits(&test.x).unwrap();
    assert_eq!(z.len(), probs.len());
    for (a, b) in z.iter().zip(&probs) {
        assert!((a.exp() - b).abs() < 1e-12, "{} vs {b}", a.exp());
    }
}
