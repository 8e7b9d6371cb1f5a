//! EMLP models: the data sets against the reference package's own rows, `uniform_rep` against
//! the reference's documented allocation, equivariance of whole networks under sampled group
//! elements, and the paper's effect (EMLP beats the MLP at equal data) in a small run.

use std::path::PathBuf;
use std::sync::Arc;

use keel::backend::DType;
use keel::emlp::data::{statistics, targets, Dataset};
use keel::emlp::model::{describe, uniform_rep, Emlp};
use keel::emlp::train::{train, ModelKind, TrainConfig};
use keel::emlp::{parse_group, parse_rep, Group, Mat, Solver};
use keel::params::Params;
use keel::tensor::Tensor;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "fixtures", "emlp", name]
        .iter()
        .collect();
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not numeric: {other}"),
    }
}

#[test]
fn data_sets_match_the_reference_rows_and_statistics() {
    let f = fixture("datasets.json");
    for d in f["datasets"].as_array().unwrap() {
        let ds = Dataset::parse(d["dataset"].as_str().unwrap()).unwrap();
        let (x, y) = (flat(&d["X"]), flat(&d["Y"]));
        let ours = targets(ds, &x);
        assert_eq!(ours.len(), y.len());
        for (a, b) in ours.iter().zip(&y) {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                "{}: target {a} vs {b}",
                ds.name()
            );
        }
        let (scale, mean, std) = statistics(ds, &x, &y);
        let stats = d["stats"].as_array().unwrap();
        let want_scale = flat(&stats[1]);
        if ds != Dataset::Inertia {
            for (a, b) in scale.iter().zip(&want_scale) {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs(),
                    "{}: input scale {a} vs {b}",
                    ds.name()
                );
            }
            let (m, s) = (flat(&stats[2]), flat(&stats[3]));
            assert!(
                (mean[0] - m[0]).abs() <= 1e-9 * (1.0 + m[0].abs()),
                "{}: mean",
                ds.name()
            );
            assert!((std[0] - s[0]).abs() <= 1e-9 * s[0], "{}: std", ds.name());
        } else {
            assert!(
                scale.iter().all(|&s| s == 1.0) && want_scale == vec![1.0],
                "Inertia is not standardised"
            );
        }
    }
}

#[test]
fn uniform_rep_allocates_as_the_reference_documents() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    // emlp docs: uniform_rep(512, SO(3)) = 122V⁰+40V+12V²+3V³+V⁴.
    let s = uniform_rep(512, &Group::so(3), &mut rng).unwrap();
    assert_eq!(describe(&s), "122*Scalar+40*V+12*V**2+3*V**3+V**4");
    let s = uniform_rep(384, &Group::o(5), &mut rng).unwrap();
    let size: usize = s.iter().map(|&(p, q)| 5usize.pow((p + q) as u32)).sum();
    assert_eq!(size, 384);
}

fn check_network(group: &str, rin: &str, rout: &str, ch: usize, seed: u64) {
    let g: Arc<Group> = parse_group(group).unwrap();
    let (ri, ro) = (
        parse_rep(rin, Some(&g)).unwrap(),
        parse_rep(rout, Some(&g)).unwrap(),
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut params = Params::new();
    let solver = Solver::new(None);
    let net = Emlp::new(
        &mut params,
        &g,
        &ri,
        &ro,
        ch,
        2,
        &solver,
        DType::F64,
        &mut rng,
    )
    .unwrap();
    let b = 4;
    let x: Vec<f64> = (0..b * ri.size())
        .map(|_| standard_normal::<f64, _>(&mut rng) * 0.5)
        .collect();
    let run = |x: &[f64]| -> Vec<f64> {
        let t = Tensor::from_f64s(x, &[b, ri.size()], DType::F64).unwrap();
        net.forward(&params, &t).unwrap().to_vec_f64().unwrap()
    };
    let y = run(&x);
    for _ in 0..3 {
        let h: Mat = g.sample(&mut rng);
        let els = vec![(g.name.clone(), h.clone(), h.inverse().unwrap().t())];
        let gx: Vec<f64> = x
            .chunks(ri.size())
            .flat_map(|r| ri.apply(&els, r).unwrap())
            .collect();
        let f_gx = run(&gx);
        let g_fx: Vec<f64> = y
            .chunks(ro.size())
            .flat_map(|r| ro.apply(&els, r).unwrap())
            .collect();
        let err: f64 = f_gx.iter().zip(&g_fx).map(|(a, b)| (a - b).abs()).sum();
        let scale: f64 = f_gx.iter().chain(&g_fx).map(|a| a.abs()).sum();
        assert!(
            err <= 1e-8 * scale,
            "{group}: {rin} → {rout}: relative equivariance error {}",
            err / scale
        );
        // Not vacuous: the input really moved.
        let moved: f64 = x.iter().zip(&gx).map(|(a, b)| (a - b).abs()).sum();
        assert!(moved > 1e-3, "{group}: the sampled element fixed the input");
    }
}

#[test]
fn emlp_networks_are_equivariant() {
    check_network("O(5)", "2*V", "Scalar", 40, 1);
    check_network("O(3)", "5*Scalar+5*V", "T(2)", 40, 2);
    check_network("SO(3)", "V+V**2", "V", 40, 3);
    check_network("SO13p()", "2*V", "V+Scalar", 30, 4);
    check_network("S(4)", "2*V", "V", 24, 5);
    check_network("D(6)", "V", "V", 20, 6);
}

#[test]
fn emlp_beats_the_mlp_on_o5_synthetic_with_little_data() {
    let cfg = |model| TrainConfig {
        dataset: Dataset::O5Synthetic,
        group: parse_group("O(5)").unwrap(),
        model,
        n_train: 300,
        n_val: 300,
        n_test: 1000,
        epochs: Some(40),
        ch: 48,
        layers: 2,
        lr: 3e-3,
        batch: 100,
        seed: 0,
        checkpoint: keel::checkpoint::Options::default(),
        device: keel::backend::Device::Cpu,
    };
    let solver = Solver::new(None);
    let e = train(&cfg(ModelKind::Emlp), &solver, &mut |_| {}).unwrap();
    let m = train(&cfg(ModelKind::Mlp), &solver, &mut |_| {}).unwrap();
    assert!(e.test_mse.is_finite() && m.test_mse.is_finite());
    assert!(
        e.test_mse < 0.5 * m.test_mse,
        "EMLP {} vs MLP {}",
        e.test_mse,
        m.test_mse
    );
}

/// The core evaluates an exported EMLP without allocating: it matches the host engine and is
/// equivariant in f32 to 1e-4 (relative) under group elements sampled on the host.
#[test]
fn core_evaluates_exported_emlps_equivariantly() {
    use keel_core::io::SafeTensors;
    for (group, rin, rout, seed) in [
        ("O(5)", "2*V", "Scalar", 11u64),
        ("O(3)", "5*Scalar+5*V", "T(2)", 12),
        ("SO13p()", "2*V", "V", 13),
    ] {
        let g: Arc<Group> = parse_group(group).unwrap();
        let (ri, ro) = (
            parse_rep(rin, Some(&g)).unwrap(),
            parse_rep(rout, Some(&g)).unwrap(),
        );
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut params = Params::new();
        let solver = Solver::new(None);
        let net = Emlp::new(
            &mut params,
            &g,
            &ri,
            &ro,
            40,
            2,
            &solver,
            DType::F32,
            &mut rng,
        )
        .unwrap();
        let (n_in, n_out) = (ri.size(), ro.size());
        let scale: Vec<f64> = (0..n_in).map(|i| 0.5 + 0.1 * (i / 5) as f64).collect();
        let scale = if ri.terms().unwrap().iter().all(|t| t.factors.len() == 1) {
            // one scale per vector keeps the standardisation equivariant
            scale
        } else {
            vec![1.0; n_in]
        };
        let (mean, std) = (vec![0.25; n_out], vec![2.0; n_out]);
        let bytes = net
            .to_safetensors(&params, &scale, &mean, &std, &Default::default())
            .unwrap();
        let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
        let core = keel_core::nn::Emlp::<'_, 4, 16>::from_safetensors(&st).unwrap();
        assert_eq!(
            (core.inputs(), core.outputs(), core.blocks()),
            (n_in, n_out, 2)
        );
        let scratch = vec![0.0f32; core.scratch_len()];
        let f = |x: &[f64]| -> Vec<f64> {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut y = vec![0.0f32; n_out];
            let mut s = scratch.clone();
            core.forward(&xf, &mut y, &mut s).unwrap();
            y.iter().map(|&v| f64::from(v)).collect()
        };
        for _ in 0..3 {
            let x: Vec<f64> = (0..n_in)
                .map(|_| standard_normal::<f64, _>(&mut rng) * 0.5)
                .collect();
            // Host engine on the same standardised input, un-standardised.
            let xs: Vec<f64> = x.iter().zip(&scale).map(|(a, s)| a / s).collect();
            let host = net
                .forward(
                    &params,
                    &Tensor::from_f64s(&xs, &[1, n_in], DType::F32).unwrap(),
                )
                .unwrap()
                .to_vec_f64()
                .unwrap();
            let host: Vec<f64> = host.iter().map(|v| v * 2.0 + 0.25).collect();
            let y = f(&x);
            for (a, b) in y.iter().zip(&host) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{group}: core {a} vs host {b}"
                );
            }
            let h = g.sample(&mut rng);
            let els = vec![(g.name.clone(), h.clone(), h.inverse().unwrap().t())];
            let f_gx = f(&ri.apply(&els, &x).unwrap());
            // ρ_out(g)(f(x) − mean) + mean: the output offset is a scalar shift only for scalars.
            let centred: Vec<f64> = y.iter().zip(&mean).map(|(a, m)| a - m).collect();
            let g_fx: Vec<f64> = ro
                .apply(&els, &centred)
                .unwrap()
                .iter()
                .zip(&mean)
                .map(|(a, m)| a + m)
                .collect();
            let err: f64 = f_gx.iter().zip(&g_fx).map(|(a, b)| (a - b).abs()).sum();
            let sc: f64 = f_gx.iter().chain(&g_fx).map(|a| a.abs()).sum();
            assert!(
                err <= 1e-4 * sc,
                "{group}: core relative equivariance error {}",
                err / sc
            );
        }
    }
}

/// A run split by a checkpoint (stop after 5 of 10 epochs, resume) ends exactly where an
/// uninterrupted run does; a checkpoint from another configuration is refused.
#[test]
fn training_resumes_from_a_checkpoint_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let cfg = |checkpoint: Option<std::path::PathBuf>, stop_after, resume, model| TrainConfig {
        dataset: Dataset::O5Synthetic,
        group: parse_group("O(5)").unwrap(),
        model,
        n_train: 200,
        n_val: 100,
        n_test: 200,
        epochs: Some(10),
        ch: 24,
        layers: 1,
        lr: 3e-3,
        batch: 25,
        seed: 3,
        checkpoint: keel::checkpoint::Options {
            path: checkpoint,
            every: 2,
            resume,
            stop_after,
        },
        device: keel::backend::Device::Cpu,
    };
    let solver = Solver::new(None);
    for model in [ModelKind::Emlp, ModelKind::MlpAug] {
        let straight = train(&cfg(None, None, false, model), &solver, &mut |_| {}).unwrap();
        let _ = std::fs::remove_file(&ck);
        let first = train(
            &cfg(Some(ck.clone()), Some(5), true, model),
            &solver,
            &mut |_| {},
        )
        .unwrap();
        assert!(ck.exists());
        assert_eq!(
            (first.epochs_run, straight.epochs_run),
            (5, 10),
            "{model:?}: epochs done"
        );
        // Still improving: the first half's best is its last epoch, the whole run's is later.
        eprintln!(
            "{model:?}: first half best epoch {} ({}), whole run {} ({})",
            first.best_epoch, first.test_mse, straight.best_epoch, straight.test_mse
        );
        assert_eq!(first.best_epoch, 5, "{model:?}");
        assert!(
            straight.best_epoch > 5,
            "{model:?}: best epoch {}",
            straight.best_epoch
        );
        assert_ne!(first.test_mse, straight.test_mse, "{model:?}");
        let resumed = train(
            &cfg(Some(ck.clone()), None, true, model),
            &solver,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(resumed.test_mse, straight.test_mse, "{model:?}");
        assert_eq!(resumed.epochs_run, 10, "{model:?}");
        assert_eq!(resumed.best_epoch, straight.best_epoch);
        let flat = |t: &keel::emlp::train::Trained| -> Vec<f64> {
            t.params
                .values()
                .iter()
                .flat_map(|p| p.to_vec_f64().unwrap())
                .collect()
        };
        assert_eq!(
            flat(&resumed),
            flat(&straight),
            "{model:?}: parameters differ after resuming"
        );
    }
    // Another configuration: refused with a clear error, the file untouched.
    let before = std::fs::read(&ck).unwrap();
    let mut other = cfg(Some(ck.clone()), None, true, ModelKind::Emlp);
    other.lr = 1e-3;
    let e = train(&other, &solver, &mut |_| {})
        .err()
        .expect("mismatched checkpoint")
        .to_string();
    assert!(e.contains("the checkpoint is for"), "{e}");
    assert_eq!(std::fs::read(&ck).unwrap(), before);
    // A corrupt file is an error, not a panic.
    std::fs::write(&ck, b"not a checkpoint").unwrap();
    assert!(train(
        &cfg(Some(ck.clone()), None, true, ModelKind::Emlp),
        &solver,
        &mut |_| {}
    )
    .is_err());
}
