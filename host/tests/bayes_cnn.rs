//! Bayesian CNNs (`keel::bayes::mlp::Arch::Cnn`): the tempered log likelihood's gradient
//! against central finite differences in f64 through convolutions, filter response
//! normalisation and pooling; the chains' batched evaluation equal to each chain's own; the
//! initialisation; sample files that record the network and refuse parameters of another;
//! and the layers a posterior over weights cannot have.

use keel::bayes::hmc::BatchTarget;
use keel::bayes::mlp::{Arch, Bnn, Likelihood, Split, Standardize};
use keel::bayes::prior::Prior;
use keel::bayes::samples::{rebuild, CnnSpec, SampleSet, Spec};
use keel::{DType, Device, Tensor};

const LAYERS: &str = "c3frn,m2,c4nobn,m2";

fn digits_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv")
}

fn split(rows: usize) -> Split {
    let data = keel::data::read_csv(&digits_path(), "label", true).unwrap();
    Split::standardized(&data, 0.1, 0, Standardize::Global)
        .unwrap()
        .training_rows(0, rows)
        .unwrap()
}

fn cnn(split: &Split, layers: &str, temperature: f64) -> keel::error::Result<Bnn> {
    Bnn::with_arch(
        split,
        &Arch::Cnn {
            layers: layers.into(),
            image: [1, 8, 8],
        },
        Likelihood::Categorical { classes: 10 },
        Prior::new("gaussian", 0.447, 0.5, 4.0).unwrap(),
        temperature,
        Device::Cpu,
        DType::F64,
    )
}

#[test]
fn the_likelihood_gradient_matches_central_differences() {
    let s = split(24);
    // T = 0.5 so that the temperature's factor is in the check too.
    let bnn = cnn(&s, LAYERS, 0.5).unwrap();
    // conv 1→3 (27 + 3), FRN (9), conv 3→4 (108 + 4), dense 4·2·2→10 (170).
    assert_eq!(bnn.dim(), 30 + 9 + 112 + 170);
    let mut theta = bnn.init(3);
    // Move FRN's β and τ off their zero start so that the threshold's both sides are seen.
    for (i, v) in theta.iter_mut().enumerate().skip(30).take(9) {
        *v += 0.1 * ((i % 5) as f64 - 2.0);
    }
    let (ll, g) = bnn.likelihood_gradient(&theta, None, 1.0).unwrap();
    assert!(ll.is_finite() && ll < 0.0, "log likelihood {ll}");
    let h = 1e-6;
    let mut worst = 0.0f64;
    for j in 0..theta.len() {
        let (mut p, mut m) = (theta.clone(), theta.clone());
        p[j] += h;
        m[j] -= h;
        let lp = bnn.likelihood_gradient(&p, None, 1.0).unwrap().0;
        let lm = bnn.likelihood_gradient(&m, None, 1.0).unwrap().0;
        let fd = (lp - lm) / (2.0 * h);
        let err = (g[j] - fd).abs() / (1.0 + fd.abs());
        worst = worst.max(err);
        assert!(err < 1e-6, "∂/∂θ[{j}]: reverse {} vs fd {fd}", g[j]);
    }
    // The gradient is not trivially zero anywhere it should not be.
    assert!(g.iter().filter(|v| v.abs() > 1e-8).count() > theta.len() / 2);
    eprintln!("worst relative error {worst:.2e}");
}

#[test]
fn batched_chains_equal_each_chains_own() {
    let s = split(30);
    let bnn = cnn(&s, LAYERS, 1.0).unwrap();
    let thetas: Vec<Vec<f64>> = (0..3).map(|c| bnn.init(20 + c)).collect();
    let stacked = Tensor::from_f64s(&thetas.concat(), &[3, bnn.dim()], DType::F64).unwrap();
    let (lls, grads) = bnn.likelihoods_and_gradients(&stacked).unwrap();
    let grads = grads.to_vec_f64().unwrap();
    for (c, theta) in thetas.iter().enumerate() {
        let (ll, g) = bnn.likelihood_gradient(theta, None, 1.0).unwrap();
        assert!(
            (lls[c] - ll).abs() <= 1e-12 * ll.abs(),
            "chain {c}: {} vs {ll}",
            lls[c]
        );
        let row = &grads[c * bnn.dim()..(c + 1) * bnn.dim()];
        for (a, b) in row.iter().zip(&g) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "chain {c}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn the_initialisation_is_the_references() {
    let s = split(10);
    let bnn = cnn(&s, "c16frn,m2", 1.0).unwrap();
    let theta = bnn.init(0);
    // conv 1→16: 144 weights with variance 2/9 (He-normal, truncated), 16 zero biases, then
    // FRN γ = 1, β = τ = 0, then the dense head 16·4·4 → 10 with variance 1/256.
    let w = &theta[..144];
    let var = w.iter().map(|v| v * v).sum::<f64>() / 144.0;
    assert!((var / (2.0 / 9.0) - 1.0).abs() < 0.3, "conv variance {var}");
    let bound = 2.0 * (2.0f64 / 9.0).sqrt() / 0.879_625_661_034_239_8;
    assert!(w.iter().all(|v| v.abs() <= bound + 1e-12));
    assert!(theta[144..160].iter().all(|&v| v == 0.0));
    assert!(theta[160..176].iter().all(|&v| v == 1.0));
    assert!(theta[176..208].iter().all(|&v| v == 0.0));
    let dense = &theta[208..208 + 2560];
    let var = dense.iter().map(|v| v * v).sum::<f64>() / 2560.0;
    assert!((var * 256.0 - 1.0).abs() < 0.1, "dense variance {var}");
    assert_eq!(theta.len(), 208 + 2570);
}

#[test]
fn layers_without_a_fixed_function_and_wrong_images_are_refused() {
    let s = split(10);
    for (layers, says) in [
        ("c4,m2", "batch"),
        ("c4frn,x0.2", "dropout"),
        ("c4frn,q2", "unknown layer"),
        ("m16", "pooling window"),
    ] {
        let e = cnn(&s, layers, 1.0).err().expect(layers).to_string();
        assert!(e.contains(says), "{layers}: {e}");
    }
    let e = Bnn::with_arch(
        &s,
        &Arch::Cnn {
            layers: "c4frn".into(),
            image: [1, 4, 4],
        },
        Likelihood::Categorical { classes: 10 },
        Prior::new("gaussian", 1.0, 0.5, 4.0).unwrap(),
        1.0,
        Device::Cpu,
        DType::F64,
    )
    .err()
    .expect("a 4×4 image of 64 columns")
    .to_string();
    assert!(e.contains("64 feature columns"), "{e}");
}

fn spec(layers: &str) -> Spec {
    let data = keel::data::read_csv(&digits_path(), "label", true).unwrap();
    let classes = match &data.y {
        keel::data::Targets::Classes { classes, .. } => classes.clone(),
        keel::data::Targets::Values(_) => unreachable!(),
    };
    Spec {
        method: "hmc".into(),
        hidden: Vec::new(),
        cnn: Some(CnnSpec {
            layers: layers.into(),
            image: [1, 8, 8],
        }),
        likelihood: "categorical".into(),
        classes,
        prior: "gaussian".into(),
        prior_std: 0.447,
        mixture_weight: 0.5,
        mixture_ratio: 4.0,
        temperature: 1.0,
        data: "digits.csv".into(),
        target: "label".into(),
        rows: data.rows(),
        test_fraction: 0.1,
        split_seed: 0,
        standardize: Standardize::Global,
        settings: serde_json::json!({"samples": 2, "chains": 1}),
    }
}

#[test]
fn sample_files_record_the_network_and_refuse_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    let spec = spec(LAYERS);
    let (split, bnn) = rebuild(&spec, &digits_path(), Device::Cpu).unwrap();
    assert_eq!(split.y_test.len(), 180);
    let samples = vec![bnn.init(1), bnn.init(2)];
    let set = SampleSet {
        spec: spec.clone(),
        samples: samples.clone(),
        chain: vec![0, 0],
    };
    set.save(&path).unwrap();
    let back = SampleSet::load(&path).unwrap();
    assert_eq!(back.spec, spec);
    assert_eq!(back.samples, samples);
    let (_, again) = rebuild(&back.spec, &digits_path(), Device::Cpu).unwrap();
    let x = again.inputs(&split.x_test, split.d).unwrap();
    assert_eq!(
        again.predict(&samples[0], &x).unwrap(),
        bnn.predict(&samples[0], &x).unwrap()
    );
    // The same vectors under another CNN's spec: refused on load, naming both counts.
    let other = SampleSet {
        spec: Spec {
            cnn: Some(CnnSpec {
                layers: "c3frn,m2,c5nobn,m2".into(),
                image: [1, 8, 8],
            }),
            ..spec.clone()
        },
        ..set.clone()
    };
    other.save(&path).unwrap();
    let e = SampleSet::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("321 parameters per sample") && e.contains("has 389"),
        "{e}"
    );
    // An MLP set and a CNN set are not the same problem.
    let mlp = Spec {
        hidden: vec![64],
        cnn: None,
        ..spec.clone()
    };
    assert!(spec.same_problem(&mlp).unwrap_err().contains("model"));
    // The core's model-average file is for MLPs: a CNN set is refused, not mis-exported.
    let e = keel::bayes::samples::bma_bytes(&set, &split, &bnn.sizes(), 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds MLPs"), "{e}");
}
