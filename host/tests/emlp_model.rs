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
        progress: false,
    };
    let solver = Solver::new(None);
    let e = train(&cfg(ModelKind::Emlp), &solver).unwrap();
    let m = train(&cfg(ModelKind::Mlp), &solver).unwrap();
    assert!(e.test_mse.is_finite() && m.test_mse.is_finite());
    assert!(
        e.test_mse < 0.5 * m.test_mse,
        "EMLP {} vs MLP {}",
        e.test_mse,
        m.test_mse
    );
}
