//! Loss-surface simplexes (`keel::simplex`) through the public API: the Cayley–Menger volume
//! against numpy (fixtures/gen/simplex.py), the simplex forward pass against the plain network
//! with combined weights, Dirichlet(1) moments, the SPRO gradient against central differences,
//! frozen vertices, bit-identical resume, the complex driver's shared connectors, and the model
//! file's round trip.

use std::path::Path;

use keel::nn::cnn::CnnState;
use keel::nn::{Activation, Mlp};
use keel::params::{ParamId, Params};
use keel::simplex::net::{flatten, unflatten};
use keel::simplex::train::{dirichlet, spro_loss};
use keel::simplex::volume::{cayley_menger, gram_volume};
use keel::simplex::{self, Arch, Driver, Net, Optim, SimplexConfig};
use keel::{DType, Device, Tensor};
use keel_core::random::Xoshiro256PlusPlus;

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/simplex/volume.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The fixture's V² (numpy's Gram determinant) against ours: 1e-9 relative (DESIGN's f64
/// tolerance); a degenerate simplex must come out below 1e-12 of its squared edge scale
/// raised to the simplex's dimension (what f64 rounding of a zero determinant can leave), so
/// that the regulariser sees log(V² + 1e-4) = log(1e-4) to 8 digits.
#[test]
fn volume_matches_numpy_gram_determinant() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let verts: Vec<Vec<f64>> = serde_json::from_value(c["vertices"].clone()).unwrap();
        let refs: Vec<&[f64]> = verts.iter().map(Vec::as_slice).collect();
        let want = c["v2_gram"].as_f64().unwrap();
        let cm = cayley_menger(&refs);
        let gv = gram_volume(&refs);
        let n = verts.len();
        let edge2 = verts
            .iter()
            .map(|v| {
                v.iter()
                    .zip(&verts[0])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        let floor = 1e-12 * edge2.powi(n as i32 - 1);
        if c["degenerate"].as_bool().unwrap() {
            assert!(
                cm.abs() < floor && gv.abs() < floor,
                "{name}: {cm} {gv} (floor {floor})"
            );
            assert!(((cm + 1e-4).ln() - 1e-4f64.ln()).abs() < 1e-8, "{name}");
        } else {
            let tol = 1e-9 * want.abs().max(floor);
            assert!(
                (cm - want).abs() <= tol,
                "{name}: Cayley–Menger {cm} vs numpy {want}"
            );
            assert!(
                (gv - want).abs() <= tol,
                "{name}: Gram {gv} vs numpy {want}"
            );
        }
        if n == 1 {
            assert_eq!(cm, 1.0, "one vertex");
        }
    }
}

fn mlp_net(hidden: &[usize]) -> Net {
    Net::new(
        &Arch::Mlp {
            hidden: hidden.to_vec(),
        },
        3,
        3,
        DType::F64,
        Device::Cpu,
    )
    .unwrap()
}

fn rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * d)
        .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect()
}

#[test]
fn simplex_forward_at_fixed_alpha_is_the_plain_network_with_combined_weights() {
    let net = mlp_net(&[5, 4]);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let verts: Vec<Params> = (0..3).map(|_| net.init(&mut rng).unwrap()).collect();
    let alpha = [0.2, 0.5, 0.3];
    let x = rows(7, 3, 1);
    let xt = net.input(&x, 7).unwrap();
    let refs: Vec<&Params> = verts.iter().collect();
    let point = net.combine(&refs, &alpha).unwrap();
    let got = net
        .forward(&point, &mut CnnState::default(), &xt, false, 0)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    // The plain engine MLP with weights combined outside the tape, in f64.
    let flats: Vec<Vec<f64>> = verts.iter().map(|v| flatten(v).unwrap()).collect();
    let combined: Vec<f64> = (0..flats[0].len())
        .map(|i| (0..3).map(|j| alpha[j] * flats[j][i]).sum())
        .collect();
    let mut params = Params::new();
    let mlp = Mlp::new(
        &mut params,
        &[3, 5, 4, 3],
        Activation::Relu,
        keel::init::Init::PyTorchDefault,
        DType::F64,
        &mut Xoshiro256PlusPlus::seed_from_u64(99),
    )
    .unwrap();
    let params = unflatten(&params, &combined).unwrap();
    let want = mlp.forward(&params, &xt).unwrap().to_vec_f64().unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // A vertex of the simplex is that vertex's network.
    let v1 = net.combine(&refs, &[0.0, 1.0, 0.0]).unwrap();
    assert_eq!(flatten(&v1).unwrap(), flats[1]);
}

/// Dirichlet(1) marginals are Beta(1, n − 1): mean 1/n, variance (n − 1)/(n²(n + 1)). With N
/// draws the sample mean and variance are within 5 standard errors of them (the standard
/// errors by the central limit theorem: σ/√N for the mean, √((μ₄ − σ⁴)/N) for the variance,
/// with Beta(1, n−1)'s exact fourth central moment).
#[test]
fn dirichlet_draws_have_the_moments_of_dirichlet_one() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for n in [2usize, 3, 5] {
        let draws = 100_000;
        let mut s1 = vec![0.0; n];
        let mut s2 = vec![0.0; n];
        let mut s4 = vec![0.0; n];
        let mean = 1.0 / n as f64;
        for _ in 0..draws {
            let a = dirichlet(n, &mut rng);
            assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-14);
            assert!(a.iter().all(|&v| v > 0.0));
            for j in 0..n {
                let d = a[j] - mean;
                s1[j] += a[j];
                s2[j] += d * d;
                s4[j] += d.powi(4);
            }
        }
        let (a, b) = (1.0, n as f64 - 1.0);
        let var = a * b / ((a + b).powi(2) * (a + b + 1.0));
        assert!((var - (n as f64 - 1.0) / ((n * n) as f64 * (n as f64 + 1.0))).abs() < 1e-15);
        // Fourth central moment of Beta(a, b).
        let mu4 = 3.0 * a * b * (a * b * (a + b - 6.0) + 2.0 * (a + b).powi(2))
            / ((a + b).powi(4) * (a + b + 1.0) * (a + b + 2.0) * (a + b + 3.0));
        let nn = draws as f64;
        for j in 0..n {
            let m = s1[j] / nn;
            let v = s2[j] / nn;
            assert!(
                (m - mean).abs() < 5.0 * (var / nn).sqrt(),
                "n {n}: mean {m}"
            );
            let se = ((mu4 - var * var) / nn).sqrt();
            assert!(
                (v - var).abs() < 5.0 * se,
                "n {n}: var {v} vs {var} (se {se})"
            );
            assert!((s4[j] / nn - mu4).abs() < 0.05 * mu4, "n {n}: μ₄");
        }
    }
}

/// The SPRO objective's gradient with respect to the trained vertex (cross-entropy summed over
/// two fixed draws, minus λ log(V² + 1e−4)) against central differences of the objective in
/// f64, every coordinate.
#[test]
fn spro_gradient_matches_central_differences() {
    let net = mlp_net(&[4]);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let verts: Vec<Params> = (0..3).map(|_| net.init(&mut rng).unwrap()).collect();
    let x = rows(6, 3, 2);
    let xt = net.input(&x, 6).unwrap();
    let labels = [0, 1, 2, 1, 0, 2];
    let simplex = [0usize, 1, 2];
    let draws: [&[usize]; 2] = [&simplex, &simplex];
    let alphas = vec![vec![0.2, 0.3, 0.5], vec![0.6, 0.1, 0.3]];
    let lambda = 0.3;
    let objective = |vs: &[Params]| -> (f64, f64, Vec<Tensor>) {
        spro_loss(
            &net,
            vs,
            2,
            &draws,
            &alphas,
            false,
            lambda,
            &simplex,
            &mut CnnState::default(),
            &xt,
            &labels,
            &[0, 0],
        )
        .unwrap()
    };
    // The mean over draws (`mean_over_samples`) is the sum's half for two draws, gradient
    // included (the volume term is not averaged).
    let (ce_mean, vol_mean, g_mean) = spro_loss(
        &net,
        &verts,
        2,
        &draws,
        &alphas,
        true,
        lambda,
        &simplex,
        &mut CnnState::default(),
        &xt,
        &labels,
        &[0, 0],
    )
    .unwrap();
    let (ce_only, _, g_ce) = spro_loss(
        &net,
        &verts,
        2,
        &draws,
        &alphas,
        false,
        0.0,
        &simplex,
        &mut CnnState::default(),
        &xt,
        &labels,
        &[0, 0],
    )
    .unwrap();
    let (ce, vol, grads) = objective(&verts);
    assert!(vol != 0.0 && ce > 0.0);
    assert!((ce_mean - ce_only / 2.0).abs() < 1e-14 * ce_only);
    assert_eq!(vol_mean, vol);
    let flat =
        |g: &[Tensor]| -> Vec<f64> { g.iter().flat_map(|t| t.to_vec_f64().unwrap()).collect() };
    let (gs, gm, gc) = (flat(&grads), flat(&g_mean), flat(&g_ce));
    for i in 0..gs.len() {
        // sum: g_ce + g_vol; mean: g_ce/2 + g_vol.
        let want = gs[i] - gc[i] / 2.0;
        assert!((gm[i] - want).abs() < 1e-12 * (1.0 + want.abs()), "{i}");
    }
    let g: Vec<f64> = grads.iter().flat_map(|t| t.to_vec_f64().unwrap()).collect();
    let w = flatten(&verts[2]).unwrap();
    assert_eq!(g.len(), w.len());
    let h = 1e-6;
    for i in 0..w.len() {
        let at = |d: f64| {
            let mut wi = w.clone();
            wi[i] += d;
            let mut vs = verts.clone();
            vs[2] = unflatten(&verts[2], &wi).unwrap();
            let (c, v, _) = objective(&vs);
            c + v
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "coordinate {i}: finite differences {fd} vs gradient {}",
            g[i]
        );
    }
}

fn spirals_cfg(dir: &Path, stop_after: Option<usize>, resume: bool) -> SimplexConfig {
    SimplexConfig {
        arch: Arch::Mlp { hidden: vec![8, 8] },
        driver: Driver::Espro { components: 2 },
        vertices: 3,
        base_epochs: 3,
        vertex_epochs: 3,
        n_sample: 3,
        mean_over_samples: false,
        lmbd: 1.0,
        lr: 0.05,
        vertex_lr: 0.02,
        weight_decay: 5e-4,
        optimizer: Optim::Sgd,
        cosine: true,
        batch_size: 16,
        points: 4,
        seed: 7,
        dtype: DType::F64,
        device: Device::Cpu,
        checkpoint: keel::checkpoint::Options {
            path: Some(dir.join("ck.safetensors")),
            every: 1,
            resume,
            stop_after,
        },
    }
}

fn all_vertices(m: &simplex::SimplexModel) -> Vec<Vec<f64>> {
    m.components
        .iter()
        .flat_map(|c| c.iter().map(|v| flatten(v).unwrap()))
        .collect()
}

/// A run stopped mid-stage (epoch 4: the first added vertex's first epoch) and resumed ends
/// with the same vertices, bit for bit, as an uninterrupted run; and a vertex, once its stage
/// is over, never moves again (frozen: zero update from every later stage).
#[test]
fn resume_is_bit_identical_and_frozen_vertices_never_move() {
    let (problem, spec) = simplex::data::two_spirals([24, 10], 1.0, 3);
    let d1 = tempfile::tempdir().unwrap();
    let full = simplex::train(
        &spirals_cfg(d1.path(), None, false),
        &problem,
        &spec,
        &mut |_| {},
    )
    .unwrap();
    assert!(!full.report.stopped);
    assert_eq!(full.report.history.len(), 2 * (3 + 2 * 3));
    let d2 = tempfile::tempdir().unwrap();
    let part = simplex::train(
        &spirals_cfg(d2.path(), Some(4), false),
        &problem,
        &spec,
        &mut |_| {},
    )
    .unwrap();
    assert!(part.report.stopped);
    let resumed = simplex::train(
        &spirals_cfg(d2.path(), None, true),
        &problem,
        &spec,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(all_vertices(&full.model), all_vertices(&resumed.model));
    assert_eq!(
        full.report.test_nll.to_bits(),
        resumed.report.test_nll.to_bits()
    );
    assert_eq!(full.report.forward_passes, resumed.report.forward_passes);
    assert_eq!(full.report.history.len(), resumed.report.history.len());
    // After epoch 4 (base done, vertex 1 one epoch in), component 0's base vertex is final.
    assert_eq!(
        flatten(&part.model.components[0][0]).unwrap(),
        flatten(&full.model.components[0][0]).unwrap()
    );
    // Vertex 1 was still training at the stop, and moved afterwards.
    assert_ne!(
        flatten(&part.model.components[0][1]).unwrap(),
        flatten(&full.model.components[0][1]).unwrap()
    );
    // A checkpoint of another configuration is refused, naming `resume`.
    let mut other = spirals_cfg(d2.path(), None, true);
    other.lmbd = 2.0;
    let e = simplex::train(&other, &problem, &spec, &mut |_| {})
        .err()
        .unwrap();
    assert!(e.to_string().contains("resume"), "{e}");
}

/// ESPRO's components split over processes: two shares of a run of three components, trained
/// apart (one of them stopped and resumed from its checkpoint), carried as lists of numbers and
/// assembled in another order give the one-process run's model and report bit for bit; a
/// complex refuses to split, and a part missing or given twice is refused.
#[test]
fn components_trained_apart_assemble_into_the_one_process_run() {
    let (problem, spec) = simplex::data::two_spirals([24, 10], 1.0, 3);
    let d = tempfile::tempdir().unwrap();
    let mut cfg = spirals_cfg(d.path(), None, false);
    cfg.checkpoint = Default::default();
    cfg.driver = Driver::Espro { components: 3 };
    let alone = simplex::train(&cfg, &problem, &spec, &mut |_| {}).unwrap();
    let share = |index: usize, cfg: &SimplexConfig| {
        let mut ticks = 0;
        let part = simplex::train_share(
            cfg,
            &problem,
            simplex::Share { index, count: 2 },
            &mut |_| ticks += 1,
        )
        .unwrap();
        (part, ticks)
    };
    let (p0, t0) = share(0, &cfg);
    // Share 1 (component 1) stopped after its base network and resumed.
    let mut stop = cfg.clone();
    stop.checkpoint = keel::checkpoint::Options {
        path: Some(d.path().join("share1.safetensors")),
        every: 1,
        resume: false,
        stop_after: Some(3),
    };
    let (_, t_stop) = share(1, &stop);
    stop.checkpoint.stop_after = None;
    stop.checkpoint.resume = true;
    let (p1, _) = share(1, &stop);
    // Progress counts each share's own epochs: components {0, 2} and {1}.
    assert_eq!((t0, t_stop), (2 * 9, 3));
    let wire = |p: simplex::Part| simplex::Part::decode(p.encode()).unwrap();
    let split = simplex::assemble(
        &cfg,
        &problem,
        &spec,
        vec![wire(p1.clone()), wire(p0.clone())],
    )
    .unwrap();
    assert_eq!(all_vertices(&split.model), all_vertices(&alone.model));
    let report = |t: &simplex::Trained| {
        let mut v = serde_json::to_value(&t.report).unwrap();
        v.as_object_mut().unwrap().remove("train_seconds");
        v.to_string()
    };
    assert_eq!(report(&split), report(&alone));
    assert_eq!(
        split.model.to_bytes().unwrap(),
        alone.model.to_bytes().unwrap()
    );
    // Parts that do not make the run.
    let mut cut = p1.encode();
    cut.pop();
    assert!(simplex::Part::decode(cut).is_err());
    let e = simplex::assemble(&cfg, &problem, &spec, vec![p0.clone()])
        .err()
        .unwrap();
    assert!(e.to_string().contains("component 1 is missing"), "{e}");
    let e = simplex::assemble(&cfg, &problem, &spec, vec![p0.clone(), p0, p1])
        .err()
        .unwrap();
    assert!(e.to_string().contains("given twice"), "{e}");
    let mut complex = cfg.clone();
    complex.driver = Driver::Complex { modes: 2 };
    let e = simplex::train_share(
        &complex,
        &problem,
        simplex::Share { index: 0, count: 2 },
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("modes"), "{e}");
}

/// The mode-connecting complex: simplex i = {mode i, c₁, c₂}; connectors are shared (the same
/// parameters in every simplex), modes are distinct; the volume grows from the first connector
/// (trained without the term) to the second.
#[test]
fn complex_driver_shares_connectors_between_modes() {
    let (problem, spec) = simplex::data::two_spirals([24, 10], 1.0, 3);
    let d = tempfile::tempdir().unwrap();
    let mut cfg = spirals_cfg(d.path(), None, false);
    cfg.checkpoint = Default::default();
    cfg.driver = Driver::Complex { modes: 3 };
    let t = simplex::train(&cfg, &problem, &spec, &mut |_| {}).unwrap();
    assert_eq!(t.model.components.len(), 3);
    let m = &t.model.components;
    for k in 1..3 {
        assert_ne!(flatten(&m[0][0]).unwrap(), flatten(&m[k][0]).unwrap());
        for j in 1..3 {
            assert_eq!(flatten(&m[0][j]).unwrap(), flatten(&m[k][j]).unwrap());
        }
    }
    assert_eq!(t.report.volume.len(), 1);
    assert_eq!(t.report.volume[0].len(), 2);
    assert_eq!(t.report.history.len(), 3 * 3 + 2 * 3);
}

/// Export → load → predict: the file has the documented tensors and metadata, and the loaded
/// model's f64 prediction on raw rows matches the trained model's up to the f32 rounding of
/// the stored weights; a file of another kind is refused by name.
#[test]
fn export_load_predict_round_trip() {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv");
    let (problem, spec) = simplex::data::csv(&digits, "label", 0.1, 0).unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut cfg = spirals_cfg(d.path(), None, false);
    cfg.checkpoint = Default::default();
    cfg.arch = Arch::Mlp { hidden: vec![16] };
    cfg.base_epochs = 2;
    cfg.vertex_epochs = 1;
    cfg.batch_size = 128;
    let t = simplex::train(&cfg, &problem, &spec, &mut |_| {}).unwrap();
    let bytes = t.model.to_bytes().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let p = 64 * 16 + 16 + 16 * 10 + 10;
    assert_eq!(st.tensor("vertices").unwrap().shape(), [2, 3, p]);
    assert_eq!(st.tensor("points").unwrap().shape(), [4, 3]);
    assert_eq!(st.tensor("sizes").unwrap().shape(), [3]);
    assert_eq!(st.tensor("input.mean").unwrap().shape(), [64]);
    for name in ["vertices", "points", "sizes", "input.mean", "input.std"] {
        assert_eq!(st.tensor(name).unwrap().dtype(), safetensors::Dtype::F32);
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["keel.kind"], "simplex");
    let config: serde_json::Value = serde_json::from_str(&meta["keel.config"]).unwrap();
    assert_eq!(config["model"], "mlp");
    assert_eq!(config["sizes"], serde_json::json!([64, 16, 10]));
    assert_eq!(config["components"], 2);
    assert_eq!(config["vertices"], 3);
    assert_eq!(config["points"], 4);
    assert_eq!(config["classes"].as_array().unwrap().len(), 10);
    assert_eq!(config["features"].as_array().unwrap().len(), 64);
    // The bma layout: layer0.weight [out, in] row-major first.
    let stored: Vec<f32> = st
        .tensor("vertices")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let w0 = t.model.components[0][0]
        .get(ParamId(0))
        .to_vec_f64()
        .unwrap();
    assert_eq!(stored[1], w0[1] as f32);
    let loaded = simplex::from_bytes(&bytes, Path::new("m.safetensors")).unwrap();
    for a in &loaded.points {
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }
    // Raw test rows.
    let raw: Vec<f64> = problem
        .x_test
        .chunks_exact(64)
        .flat_map(|r| {
            r.iter()
                .zip(&problem.mean)
                .zip(&problem.std)
                .map(|((z, m), s)| z * s + m)
        })
        .collect();
    let rows = problem.y_test.len();
    let want = t.model.predict_proba(&raw, rows).unwrap();
    let got = loaded.predict_proba(&raw, rows).unwrap();
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "largest probability gap {worst}");
    let acc_a = keel::metrics::accuracy(&want, 10, &problem.y_test);
    assert!((acc_a - t.report.test_accuracy).abs() < 1e-12);
    // As a distillation teacher (its own reader of the file): the simplex's split, so the
    // student is scored on the rows the simplexes never saw, and the same probabilities there.
    let path = d.path().join("simplex.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let data = keel::data::read_csv(&digits, "label", true).unwrap();
    let teacher = keel::distill::Teacher::load(&[path], &digits, &data).unwrap();
    assert_eq!(teacher.files[0].split, Some((0.1, 0)));
    let z = teacher.logits(&raw).unwrap();
    for (a, b) in z.iter().zip(&got) {
        assert!((a.exp() - b).abs() < 1e-9, "{} vs {b}", a.exp());
    }
    // Another kind of file.
    let other = keel::export::safetensors_bytes(
        &[("samples".into(), vec![1], vec![0, 0, 0, 0])],
        &[("keel.kind".to_string(), "bma".to_string())]
            .into_iter()
            .collect(),
    );
    let e = simplex::from_bytes(&other, Path::new("x.safetensors"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("bma") && e.contains("not a simplex model"),
        "{e}"
    );
}

/// A CNN simplex (batch norm: interpolated affine weights, shared running statistics) trains,
/// exports and reloads with the same predictions.
#[test]
fn cnn_simplex_round_trip() {
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv");
    let (problem, spec) = simplex::data::csv(&digits, "label", 0.1, 0).unwrap();
    let mut cfg = spirals_cfg(Path::new("."), None, false);
    cfg.checkpoint = Default::default();
    cfg.arch = Arch::Cnn {
        layers: "c4,m2".into(),
        image: [1, 8, 8],
    };
    cfg.driver = Driver::Espro { components: 1 };
    cfg.base_epochs = 1;
    cfg.vertex_epochs = 1;
    cfg.batch_size = 256;
    let t = simplex::train(&cfg, &problem, &spec, &mut |_| {}).unwrap();
    assert!(t.report.test_accuracy > 0.3, "{}", t.report.test_accuracy);
    let loaded = simplex::from_bytes(&t.model.to_bytes().unwrap(), Path::new("c")).unwrap();
    let want = t
        .model
        .predict_standardized(&problem.x_test, problem.y_test.len())
        .unwrap();
    let got = loaded
        .predict_standardized(&problem.x_test, problem.y_test.len())
        .unwrap();
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "{worst}");
}
