//! The core's on-board NTK adaptation (`keel_core::nn::NtkAdaptation`) against the host
//! engine's: the finite neural-tangent-kernel GP of Maddox et al., *Fast Adaptation with
//! Linearized Neural Networks* (AISTATS 2021), formed densely by
//! `keel::firmware_ntk::engine_posterior` — each point's parameter gradient by the engine's
//! reverse mode (`autodiff::grad`), `K = JJᵀ + σ²I` in f64, a Cholesky, mean
//! `m(x*) + J(x*)Jᵀα` and variance `‖J(x*)‖² − k*ᵀK⁻¹k*`.
//!
//! Networks: a small random MLP (2 → 6 → 5 → 1, tanh, input and target standardisation)
//! exported through `keel::export::mlp_bytes`, and the firmware's sine network
//! (`firmware/assets/ntk-sine.safetensors`, 1 → 40 → 40 → 1). Both sides read the same f32
//! weights, so in f64 the differences are rounding only.
//!
//! Tolerances: f64, mean within 1e-10·(1 + |μ|) and variance within 1e-10·‖J(x*)‖² (rounding
//! amplified by `cond(K)`: at most 5e-13 observed); f32, 1e-3 of the same scales
//! (`keel::firmware_ntk::NTK_TOLERANCE`: float32 rounding ≈ 6e-8 times `cond(K)`, up to ≈ 3e4
//! for the sine network at σ² = 0.01; at most 1.1e-4 observed).

use keel::export::{mlp_bytes, MlpConfig, OutputKind, Standardization};
use keel::firmware_ntk::{engine_posterior, EnginePosterior, NTK_MODEL, NTK_TOLERANCE};
use keel::init::Init;
use keel::nn::{Activation, Mlp};
use keel::params::Params;
use keel::DType;
use keel_core::io::SafeTensors;
use keel_core::nn::{Mlp as CoreMlp, NtkAdaptation, NtkBuffers, PriorMean};
use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::Real;

fn small_net() -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut params = Params::new();
    let mlp = Mlp::new(
        &mut params,
        &[2, 6, 5, 1],
        Activation::Tanh,
        Init::PyTorchDefault,
        DType::F64,
        &mut rng,
    )
    .unwrap();
    let config = MlpConfig {
        sizes: vec![2, 6, 5, 1],
        activation: "tanh".into(),
        output: OutputKind::Regression,
        input_standardization: true,
        target_standardization: true,
        classes: None,
        features: vec!["a".into(), "b".into()],
    };
    let stats = Standardization {
        input: Some((vec![0.3, -0.2], vec![1.5, 0.7])),
        target: Some((vec![0.4], vec![2.0])),
    };
    mlp_bytes(&mlp, &params, &config, &stats).unwrap()
}

fn sine_net() -> (Vec<u8>, std::path::PathBuf) {
    let path: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "firmware",
        "assets",
        NTK_MODEL,
    ]
    .iter()
    .collect();
    (std::fs::read(&path).unwrap(), path)
}

/// The core's posterior in `T` at `test`: means, latent variances, forward-mode means.
fn core_posterior<T: Real>(
    model: &[u8],
    x: &[f64],
    y: &[f64],
    test: &[f64],
    noise: f64,
    mean: PriorMean,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let st = SafeTensors::<16>::parse(model).unwrap();
    let mlp = CoreMlp::<8>::from_safetensors(&st).unwrap();
    let cap = 32;
    let d = mlp.inputs();
    let (mut factors, mut factor, mut z) = (
        vec![T::ZERO; cap * mlp.gradient_factors_len()],
        vec![T::ZERO; cap * cap],
        vec![T::ZERO; cap],
    );
    let buf = NtkBuffers {
        factors: &mut factors,
        factor: &mut factor,
        z: &mut z,
    };
    let mut ntk = NtkAdaptation::new(&mlp, mean, T::from_f64(noise), buf).unwrap();
    let mut s = vec![T::ZERO; ntk.scratch_len()];
    let t = |v: &[f64]| -> Vec<T> { v.iter().map(|&a| T::from_f64(a)).collect() };
    ntk.adapt(&t(x), &t(y), &mut s).unwrap();
    let mut u = vec![T::ZERO; mlp.parameter_count()];
    ntk.weight_offset(&mut u, &mut s).unwrap();
    let (mut m, mut v, mut mj) = (vec![], vec![], vec![]);
    for xs in test.chunks(d) {
        let p = ntk.predict(&t(xs), &mut s).unwrap();
        m.push(p.mean.as_f64());
        v.push(p.var_f.as_f64());
        mj.push(ntk.predict_mean_jvp(&t(xs), &u, &mut s).unwrap().as_f64());
    }
    (m, v, mj)
}

fn compare(what: &str, got: &(Vec<f64>, Vec<f64>, Vec<f64>), want: &EnginePosterior, tol: f64) {
    let (m, v, mj) = got;
    let mut worst = (0.0f64, 0.0f64);
    for k in 0..want.mean.len() {
        for mu in [m[k], mj[k]] {
            let e = (mu - want.mean[k]).abs() / (1.0 + want.mean[k].abs());
            worst.0 = worst.0.max(e);
            assert!(
                e <= tol,
                "{what} mean {k}: {mu} vs {} ({e:e})",
                want.mean[k]
            );
        }
        let e = (v[k] - want.var_f[k].max(0.0)).abs() / want.prior_var[k];
        worst.1 = worst.1.max(e);
        assert!(
            e <= tol,
            "{what} var {k}: {} vs {} ({e:e})",
            v[k],
            want.var_f[k]
        );
    }
    eprintln!(
        "{what}: worst mean error {:.2e}, variance error {:.2e} (tolerance {tol:e})",
        worst.0, worst.1
    );
}

#[test]
fn small_exported_mlp_matches_the_engine() {
    let bytes = small_net();
    let path = std::path::Path::new("small.safetensors");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
    let mut draw = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| (-2.0 + 4.0 * uniform::<f64, _>(&mut rng)) as f32 as f64)
            .collect()
    };
    let x = draw(2 * 9);
    let y: Vec<f64> = x.chunks(2).map(|p| (p[0] - 0.5 * p[1]).sin()).collect();
    let test = draw(2 * 6);
    for mean in [PriorMean::Zero, PriorMean::Network] {
        for noise in [0.01, 0.3] {
            let want = engine_posterior(&bytes, path, &x, &y, &test, noise, mean).unwrap();
            let got = core_posterior::<f64>(&bytes, &x, &y, &test, noise, mean);
            compare(
                &format!("small f64 {mean:?} σ²={noise}"),
                &got,
                &want,
                1e-10,
            );
            let got = core_posterior::<f32>(&bytes, &x, &y, &test, noise, mean);
            compare(
                &format!("small f32 {mean:?} σ²={noise}"),
                &got,
                &want,
                NTK_TOLERANCE,
            );
        }
    }
}

#[test]
fn sine_network_adapted_to_a_new_task_matches_the_engine() {
    let (bytes, path) = sine_net();
    // A task of the reference's distribution, 10 points, drawn here in f64.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut u = || uniform::<f64, _>(&mut rng);
    let (a, b, w) = (
        0.1 + 4.9 * u(),
        2.0 * std::f64::consts::PI * u(),
        0.5 + 1.5 * u(),
    );
    // Inputs and targets as f32 values, so the f32 run adapts to the same points.
    let x: Vec<f64> = (0..10).map(|_| (-5.0 + 10.0 * u()) as f32 as f64).collect();
    let y: Vec<f64> = x
        .iter()
        .map(|x| (a * (w * x + b).sin()) as f32 as f64)
        .collect();
    let test: Vec<f64> = (0..11).map(|k| -5.0 + k as f64).collect();
    for mean in [PriorMean::Zero, PriorMean::Network] {
        let want = engine_posterior(&bytes, &path, &x, &y, &test, 0.01, mean).unwrap();
        let got = core_posterior::<f64>(&bytes, &x, &y, &test, 0.01, mean);
        compare(&format!("sine f64 {mean:?}"), &got, &want, 1e-10);
        let got = core_posterior::<f32>(&bytes, &x, &y, &test, 0.01, mean);
        compare(&format!("sine f32 {mean:?}"), &got, &want, NTK_TOLERANCE);
    }
}
