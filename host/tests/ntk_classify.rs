//! The linearized classifier (host/src/ntk/classify.rs): the shifted domains, a CNN's Jacobian
//! products against its explicit Jacobian, the minibatch objective's gradients against central
//! differences (MAP and VI), the Laplace approximation's Ritz pairs against a dense
//! eigen-decomposition, the last-layer baseline against the network with its new head, and
//! AMSGrad against PyTorch (fixtures/gen/amsgrad.py).

use keel::cnn::{Augmentation, ImageModel};
use keel::data::Targets;
use keel::images::{ImageSet, ImageShape};
use keel::nn::cnn::{Cnn, LayerSpec, Mode, Norm};
use keel::ntk::classify::{
    fit, minibatch_objective, predict, AmsGrad, CnnNetwork, LinearizedFit, LinearizedSettings,
    Method, Shift,
};
use keel::ntk::jacobian::flatten;
use keel::ntk::{Jacobian, Outputs};
use keel::params::Params;
use keel::{DType, Tensor};
use keel_core::linalg::symmetric_eigen;
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_engine::nn::Activation;

const K: usize = 3;
const SIDE: usize = 4;

/// A tiny CNN (conv 1→2 with batch norm, ReLU, global mean, dense 2→3; 33 parameters) on
/// 1×4×4 images, with non-trivial running statistics and input standardisation.
fn tiny_model(seed: u64) -> ImageModel {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut params = Params::new();
    let spec = [
        LayerSpec::Conv {
            out: 2,
            kernel: 3,
            stride: 1,
            padding: 1,
            norm: Norm::Batch,
            activation: Activation::Relu,
        },
        LayerSpec::GlobalMean,
    ];
    let (cnn, mut state) = Cnn::new(
        &mut params,
        "",
        [1, SIDE, SIDE],
        &spec,
        K,
        DType::F64,
        &mut rng,
    )
    .unwrap();
    state.running[0] = (
        Tensor::from_f64s(&[0.1, -0.2], &[2], DType::F64).unwrap(),
        Tensor::from_f64s(&[0.8, 1.3], &[2], DType::F64).unwrap(),
    );
    ImageModel {
        cnn,
        params,
        state,
        widths: None,
        augmentation: Augmentation::None,
        normalize: (0.3, 0.7),
        history: Vec::new(),
        train_seconds: 0.0,
        outputs: K,
    }
}

fn images(n: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let x = (0..n * SIDE * SIDE)
        .map(|_| uniform::<f64, _>(&mut rng))
        .collect();
    let y = (0..n).map(|i| i % K).collect();
    (x, y)
}

fn tensor(x: &[f64]) -> Tensor {
    let d = SIDE * SIDE;
    Tensor::from_f64s(x, &[x.len() / d, d], DType::F64).unwrap()
}

fn normals(n: usize, rng: &mut Xoshiro256PlusPlus, s: f64) -> Vec<f64> {
    (0..n).map(|_| s * standard_normal::<f64, _>(rng)).collect()
}

#[test]
fn shifts_are_the_documented_pixel_permutations() {
    let shape = ImageShape::new(1, 3, 3).unwrap();
    let set = ImageSet::new(
        shape,
        (0..9).map(f64::from).collect(),
        Targets::Values(vec![0.0]),
    )
    .unwrap();
    // A quarter turn anticlockwise: the right column becomes the top row.
    let r = Shift::Rotate90.apply(&set).unwrap();
    assert_eq!(r.pixels, [2.0, 5.0, 8.0, 1.0, 4.0, 7.0, 0.0, 3.0, 6.0]);
    let m = Shift::Mirror.apply(&set).unwrap();
    assert_eq!(m.pixels, [2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0]);
    let mut four = set.clone();
    for _ in 0..4 {
        four = Shift::Rotate90.apply(&four).unwrap();
    }
    assert_eq!(four, set);
    assert_eq!(Shift::None.apply(&set).unwrap(), set);
    let wide = ImageSet::new(
        ImageShape::new(1, 2, 3).unwrap(),
        vec![0.0; 6],
        Targets::Values(vec![0.0]),
    )
    .unwrap();
    let e = Shift::Rotate90.apply(&wide).unwrap_err().to_string();
    assert!(e.contains("square"), "{e}");
}

#[test]
fn cnn_jacobian_products_match_the_explicit_jacobian() {
    let model = tiny_model(1);
    let (x, _) = images(5, 2);
    let xt = tensor(&x);
    let net = CnnNetwork::new(&model);
    let jac = Jacobian::new(&net, &model.params, &xt, Outputs::All).unwrap();
    let (rows, p) = (jac.len(), jac.params_len());
    assert_eq!((rows, p), (5 * K, 33));
    let dense = jac.dense().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let u = normals(p, &mut rng, 1.0);
    let v = normals(rows, &mut rng, 1.0);
    let ju = jac.jvp(&u).unwrap();
    let jtv = jac.vjp(&v).unwrap();
    for r in 0..rows {
        let want: f64 = (0..p).map(|c| dense[r * p + c] * u[c]).sum();
        assert!(
            (ju[r] - want).abs() < 1e-10 * (1.0 + want.abs()),
            "J u row {r}"
        );
    }
    for c in 0..p {
        let want: f64 = (0..rows).map(|r| dense[r * p + c] * v[r]).sum();
        assert!(
            (jtv[c] - want).abs() < 1e-10 * (1.0 + want.abs()),
            "Jᵀv col {c}"
        );
    }
    // The network the Jacobian is taken of is the model's evaluation-mode forward pass.
    let mut state = model.state.clone();
    let direct = model
        .cnn
        .forward(
            &model.params,
            &mut state,
            &xt.reshape(&[5, 1, SIDE, SIDE])
                .unwrap()
                .affine(1.0 / 0.7, -0.3 / 0.7)
                .unwrap(),
            Mode::Eval,
        )
        .unwrap()
        .to_vec_f64()
        .unwrap();
    for (a, b) in jac.values().unwrap().iter().zip(&direct) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
}

/// Central differences of the minibatch objective along coordinate `i` of `mean` or `rho`.
#[test]
fn minibatch_objective_gradients_match_central_differences() {
    let model = tiny_model(4);
    let (x, y) = images(6, 5);
    let xt = tensor(&x);
    let net = CnnNetwork::new(&model);
    let jac = Jacobian::new(&net, &model.params, &xt, Outputs::All).unwrap();
    let theta_hat = flatten(model.params.values()).unwrap();
    let p = theta_hat.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let mean: Vec<f64> = theta_hat
        .iter()
        .zip(normals(p, &mut rng, 0.3))
        .map(|(a, b)| a + b)
        .collect();
    let rho = normals(p, &mut rng, 1.0)
        .into_iter()
        .map(|v| v - 2.0)
        .collect::<Vec<_>>();
    let eps = normals(p, &mut rng, 1.0);
    let (scale, wd) = (7.0, 0.05);
    for bias in [false, true] {
        for vi in [false, true] {
            let vi_arg = vi.then_some((rho.as_slice(), eps.as_slice()));
            let at = |m: &[f64], r: &[f64]| {
                minibatch_objective(
                    &jac,
                    &y,
                    scale,
                    &theta_hat,
                    m,
                    vi.then_some((r, eps.as_slice())),
                    bias,
                    wd,
                )
                .unwrap()
                .value
            };
            let got =
                minibatch_objective(&jac, &y, scale, &theta_hat, &mean, vi_arg, bias, wd).unwrap();
            assert_eq!(got.grad_rho.is_some(), vi);
            let h = 1e-5;
            for i in (0..p).step_by(4) {
                let mut up = mean.clone();
                let mut down = mean.clone();
                up[i] += h;
                down[i] -= h;
                let fd = (at(&up, &rho) - at(&down, &rho)) / (2.0 * h);
                let g = got.grad_mean[i];
                assert!(
                    (g - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                    "bias {bias} vi {vi}: ∂/∂θ[{i}] {g} vs {fd}"
                );
                if let Some(g_rho) = &got.grad_rho {
                    let mut up = rho.clone();
                    let mut down = rho.clone();
                    up[i] += h;
                    down[i] -= h;
                    let fd = (at(&mean, &up) - at(&mean, &down)) / (2.0 * h);
                    assert!(
                        (g_rho[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                        "bias {bias}: ∂/∂ρ[{i}] {} vs {fd}",
                        g_rho[i]
                    );
                }
            }
        }
    }
    // Labels outside the outputs are refused.
    let bad = vec![K; 6];
    assert!(minibatch_objective(&jac, &bad, 1.0, &theta_hat, &mean, None, true, wd).is_err());
}

fn settings(method_epochs: usize) -> LinearizedSettings {
    LinearizedSettings {
        epochs: method_epochs,
        batch_size: 4,
        lr: 0.01,
        weight_decay: 1e-4,
        bias: true,
        samples: 5,
        lanczos_steps: 33,
        prior_precision: 0.5,
        seed: 9,
    }
}

#[test]
fn laplace_keeps_the_top_eigenpairs_of_the_ggn_plus_prior() {
    let model = tiny_model(7);
    let (x, y) = images(8, 8);
    let s = settings(5);
    let laplace = fit(&model, &x, &y, Method::Laplace, &s, &mut |_| {}).unwrap();
    // The GGN has rank (K − 1)·8 = 16, so the Krylov space of GGN + τI becomes invariant at
    // dimension 17 (those 16 eigenvectors and τ's): Lanczos stops there, its Ritz pairs are
    // exact eigenpairs, and the top half, 8, are kept.
    assert_eq!(laplace.directions.len(), 8);
    // The dense precision Σᵢ Jᵢᵀ(diag pᵢ − pᵢpᵢᵀ)Jᵢ + τI at the MAP.
    let map = LinearizedFit {
        method: Method::Map,
        directions: Vec::new(),
        ..laplace.clone()
    };
    let probs = predict(&model, &map, &x, 1, false, 0).unwrap();
    let xt = tensor(&x);
    let net = CnnNetwork::new(&model);
    let jac = Jacobian::new(&net, &model.params, &xt, Outputs::All).unwrap();
    let dense = jac.dense().unwrap();
    let p = jac.params_len();
    let mut a = vec![0.0; p * p];
    for i in 0..y.len() {
        let pi = &probs[i * K..(i + 1) * K];
        for r in 0..K {
            for c in 0..K {
                let h = if r == c { pi[r] } else { 0.0 } - pi[r] * pi[c];
                let (jr, jc) = (
                    &dense[(i * K + r) * p..][..p],
                    &dense[(i * K + c) * p..][..p],
                );
                for u in 0..p {
                    for v in 0..p {
                        a[u * p + v] += jr[u] * h * jc[v];
                    }
                }
            }
        }
    }
    for u in 0..p {
        a[u * p + u] += s.prior_precision;
    }
    let a_copy = a.clone();
    let mut vecs = vec![0.0; p * p];
    symmetric_eigen(&mut a, p, &mut vecs).unwrap();
    let mut lam: Vec<f64> = (0..p).map(|i| a[i * p + i]).collect();
    lam.sort_by(|x, y| y.total_cmp(x));
    for (j, (sd, u)) in laplace.directions.iter().enumerate() {
        let ritz = sd.powi(-2);
        assert!(
            (ritz - lam[j]).abs() < 1e-8 * lam[0],
            "Ritz value {j}: {ritz} vs {}",
            lam[j]
        );
        // A u = λ u for the kept direction, ‖u‖ = 1.
        let norm: f64 = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-10);
        for r in 0..p {
            let au: f64 = (0..p).map(|c| a_copy[r * p + c] * u[c]).sum();
            assert!(
                (au - ritz * u[r]).abs() < 1e-7 * lam[0],
                "A u − λu, row {r}"
            );
        }
    }
    // The Laplace predictive is a proper distribution and differs from the MAP's.
    let lp = predict(&model, &laplace, &x, 50, false, 1).unwrap();
    for row in lp.chunks_exact(K) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert!(lp.iter().zip(&probs).any(|(a, b)| (a - b).abs() > 1e-6));
}

#[test]
fn last_layer_is_the_network_with_a_retrained_head() {
    let model = tiny_model(10);
    let (x, y) = images(8, 11);
    let fitted = fit(
        &model,
        &x,
        &y,
        Method::LastLayer,
        &settings(20),
        &mut |_| {},
    )
    .unwrap();
    let theta_hat = &fitted.theta_hat;
    let p = theta_hat.len();
    // Only the dense output layer's 3·2 + 3 entries, the last ones, moved; the rest are the
    // network's own.
    let head = p - (K * 2 + K);
    assert_eq!(fitted.mean[..head], theta_hat[..head]);
    assert!((head..p).all(|i| (fitted.mean[i] - theta_hat[i]).abs() > 1e-4));
    // The network with the new head gives the same probabilities.
    let mut retrained = Params::new();
    let mut at = 0;
    for (name, t) in model.params.names().iter().zip(model.params.values()) {
        let n = t.numel();
        let flat: Vec<f64> = if at >= head {
            fitted.mean[at..at + n].to_vec()
        } else {
            theta_hat[at..at + n].to_vec()
        };
        retrained
            .insert(
                name.clone(),
                Tensor::from_f64s(&flat, t.dims(), DType::F64).unwrap(),
            )
            .unwrap();
        at += n;
    }
    let net = CnnNetwork::new(&model);
    let xt = tensor(&x);
    let jac = Jacobian::new(&net, &retrained, &xt, Outputs::All).unwrap();
    let mut want = jac.values().unwrap();
    for row in want.chunks_exact_mut(K) {
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
        row.iter_mut().for_each(|v| *v = (*v - m).exp() / s);
    }
    let got = predict(&model, &fitted, &x, 1, false, 0).unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-10, "{a} vs {b}");
    }
    // And it fitted: the training objective fell.
    assert!(
        fitted.losses.last() < fitted.losses.first(),
        "{:?}",
        fitted.losses
    );
}

#[test]
fn map_and_vi_fits_lower_their_objectives_and_bad_settings_are_refused() {
    let model = tiny_model(12);
    let (x, y) = images(8, 13);
    for method in [Method::Map, Method::Vi] {
        let f = fit(&model, &x, &y, method, &settings(30), &mut |_| {}).unwrap();
        assert!(f.losses[29] < f.losses[0], "{method:?}: {:?}", f.losses);
        assert_eq!(f.std.is_some(), method == Method::Vi);
    }
    let bad = LinearizedSettings {
        lr: 0.0,
        ..settings(1)
    };
    let e = fit(&model, &x, &y, Method::Map, &bad, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("adapt_lr"), "{e}");
    let e = fit(&model, &x[..10], &y, Method::Map, &settings(1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("adaptation images"), "{e}");
    let e = fit(&model, &x, &[K; 8], Method::Map, &settings(1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("labels"), "{e}");
    let mut nan = x.clone();
    nan[SIDE * SIDE * 3 + 5] = f64::NAN;
    let e = fit(&model, &nan, &y, Method::Map, &settings(1), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("image 3"), "{e}");
    let fitted = fit(&model, &x, &y, Method::Map, &settings(1), &mut |_| {}).unwrap();
    let e = predict(&model, &fitted, &nan, 1, false, 0).unwrap_err();
    assert!(e.to_string().contains("image 3"), "{e}");
}

#[test]
fn amsgrad_matches_pytorch() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/ntk/amsgrad.json"
    ))
    .unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for case in fx["cases"].as_array().unwrap() {
        let lr = case["lr"].as_f64().unwrap();
        let mut x = floats(&case["x0"]);
        let mut opt = AmsGrad::new(x.len());
        let want = case["params_after_each_step"].as_array().unwrap();
        for (t, g) in case["grads"].as_array().unwrap().iter().enumerate() {
            opt.step(&mut x, &floats(g), lr);
            for (a, b) in x.iter().zip(floats(&want[t])) {
                assert!((a - b).abs() < 1e-12, "step {t}: {a} vs {b}");
            }
        }
    }
}
