//! `nn::Mlp` against an independent numpy reference, plus finite-difference and error checks.
//!
//! The fixtures in `fixtures/nn/` come from `fixtures/gen/nn_reference.py` (numpy 1.26.4,
//! safetensors 0.4.5): small random MLPs — every activation (relu, tanh, sigmoid, silu,
//! softplus, identity), every output (logits, regression with target standardisation,
//! gaussian), input standardisation on some, one file with F64 weights — saved with
//! `safetensors.numpy.save_file(tensors, path, metadata={"keel.kind": "mlp", "keel.config":
//! json.dumps(cfg)})`. The reference forward pass is plain numpy:
//!
//! ```python
//! h = (x - input_mean) / input_std
//! for i, (w, b) in enumerate(zip(weights, biases)):
//!     z = w @ h + b
//!     h = act(z) if i + 1 < n else z
//! # gaussian: sigma = (logaddexp(0, raw) + 1e-6) * target_std; means/regression: o * std + mean
//! ```
//!
//! and its input gradient is derived by hand (`g = W.T @ g; g *= act'(z)`, `sigmoid` for the
//! softplus scale, `/ input_std` at the end), checked there against central differences (worst
//! relative error 2e-9). Tolerances (relative, with an absolute floor scaled by the vector's
//! largest expected magnitude): f64 1e-9 (rounding only), f32 1e-5 (float32 arithmetic over
//! these small networks; the F64 file is rounded to f32 weights on the f32 path).

use std::path::PathBuf;

use keel_core::io::{Dtype, SafeTensors};
use keel_core::nn::{Activation, Dense, Mlp, Output};
use keel_core::Error;
use proptest::prelude::*;
use serde_json::{json, Value};

fn fixture_path(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "..", "fixtures", "nn", name]
        .iter()
        .collect()
}

const CASES: [&str; 8] = [
    "relu_logits",
    "tanh_regression",
    "sigmoid_gaussian",
    "silu_logits",
    "softplus_regression",
    "identity_gaussian",
    "tanh_gaussian_f64",
    "relu_regression",
];

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// `|got − want| ≤ rtol·(|want| + max|want|·1e-3)` for every component (the floor keeps a
/// near-zero component from demanding more than the vector's scale allows).
fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_close_abs(what, got, want, rtol, 0.0);
}

/// As [`assert_close`], plus an absolute allowance `atol`.
fn assert_close_abs(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rtol * (w.abs() + 1e-3 * scale) + atol;
        assert!(
            (g - w).abs() <= tol,
            "{what}[{k}]: got {g}, want {w} (|diff| {:e} > {tol:e})",
            (g - w).abs()
        );
    }
}

#[test]
fn matches_the_numpy_reference() {
    for case in CASES {
        let fx: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_path(&format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(fixture_path(&format!("{case}.safetensors"))).unwrap();
        let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        let mlp = Mlp::<'_, 8>::from_safetensors(&st).unwrap_or_else(|e| panic!("{case}: {e}"));
        let rtol64 = fx["tolerance"]["f64"].as_f64().unwrap();
        let rtol32 = fx["tolerance"]["f32"].as_f64().unwrap();
        assert!(
            rtol64 <= 1e-6 && rtol32 <= 1e-5,
            "{case}: tolerances too loose"
        );
        let sizes: Vec<usize> = fx["config"]["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(mlp.inputs(), sizes[0]);
        assert_eq!(mlp.outputs(), *sizes.last().unwrap());
        assert_eq!(mlp.layers().len(), sizes.len() - 1);
        assert_eq!(
            mlp.config().activation().name(),
            fx["config"]["activation"].as_str().unwrap()
        );

        let inputs = rows(&fx["inputs"]);
        let outputs = rows(&fx["outputs"]);
        let cots = rows(&fx["cotangents"]);
        let grads = rows(&fx["input_gradients"]);
        assert!(inputs.len() >= 3);
        let mut s64 = vec![0.0f64; mlp.scratch_len()];
        let mut s32 = vec![0.0f32; mlp.scratch_len()];
        for (n, (((x, want), c), want_g)) in inputs
            .iter()
            .zip(&outputs)
            .zip(&cots)
            .zip(&grads)
            .enumerate()
        {
            // f64
            let mut out = vec![0.0; mlp.outputs()];
            mlp.forward(x, &mut out, &mut s64[..mlp.forward_scratch_len()])
                .unwrap();
            assert_close(&format!("{case} #{n} f64 forward"), &out, want, rtol64);
            let mut g = vec![0.0; mlp.inputs()];
            mlp.input_gradient(x, c, &mut g, &mut s64).unwrap();
            assert_close(&format!("{case} #{n} f64 gradient"), &g, want_g, rtol64);

            // f32 (inputs and cotangents are exactly representable)
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
            let mut out32 = vec![0.0f32; mlp.outputs()];
            mlp.forward(&x32, &mut out32, &mut s32).unwrap();
            let out32: Vec<f64> = out32.iter().map(|&v| f64::from(v)).collect();
            assert_close(&format!("{case} #{n} f32 forward"), &out32, want, rtol32);
            let mut g32 = vec![0.0f32; mlp.inputs()];
            mlp.input_gradient(&x32, &c32, &mut g32, &mut s32).unwrap();
            let g32: Vec<f64> = g32.iter().map(|&v| f64::from(v)).collect();
            assert_close(&format!("{case} #{n} f32 gradient"), &g32, want_g, rtol32);

            if mlp.config().output() == Output::Logits {
                let argmax = (0..want.len())
                    .max_by(|&a, &b| want[a].total_cmp(&want[b]))
                    .unwrap();
                assert_eq!(
                    mlp.predict_class(x, &mut s64).unwrap(),
                    argmax,
                    "{case} #{n}"
                );
                assert_eq!(
                    mlp.predict_class(&x32, &mut s32).unwrap(),
                    argmax,
                    "{case} #{n}"
                );
            }
        }
    }
}

#[test]
fn fixture_files_carry_the_exporter_metadata() {
    let bytes = std::fs::read(fixture_path("tanh_gaussian_f64.safetensors")).unwrap();
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    assert!(st.metadata("keel.kind").unwrap() == "mlp");
    let config = st.metadata("keel.config").unwrap();
    assert!(config.as_str().is_none(), "the config is escaped JSON");
    let decoded: String = config.chars().collect();
    let v: Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(v["output"], "gaussian");
    assert_eq!(st.tensor("layer0.weight").unwrap().dtype(), Dtype::F64);
}

// ---------------------------------------------------------------------------------------------
// A small safetensors writer and an independent f64 evaluation for generated models.

/// A tensor to write: name, dtype name, shape, raw bytes.
type Entry = (String, &'static str, Vec<usize>, Vec<u8>);

#[derive(Clone, Debug)]
struct Model {
    sizes: Vec<usize>,
    activation: Activation,
    output: Output,
    weights: Vec<Vec<f64>>,
    biases: Vec<Vec<f64>>,
    input_std: Option<(Vec<f64>, Vec<f64>)>,
    target_std: Option<(Vec<f64>, Vec<f64>)>,
    wide: bool,
}

use crate::splitmix::Rng;

impl Model {
    fn random(
        seed: u64,
        sizes: Vec<usize>,
        activation: Activation,
        output: Output,
        input_std: bool,
        target_std: bool,
        wide: bool,
    ) -> Model {
        let mut rng = Rng(seed);
        let round = |v: Vec<f64>| -> Vec<f64> {
            if wide {
                v
            } else {
                v.into_iter().map(|x| x as f32 as f64).collect()
            }
        };
        let mut weights = vec![];
        let mut biases = vec![];
        for w in sizes.windows(2) {
            let s = 1.5 / (w[0] as f64).sqrt();
            weights.push(round(rng.vec(w[0] * w[1], -s, s)));
            biases.push(round(rng.vec(w[1], -0.5, 0.5)));
        }
        let n = sizes[0];
        let last = *sizes.last().unwrap();
        let k = if output == Output::Gaussian {
            last / 2
        } else {
            last
        };
        let input_std =
            input_std.then(|| (round(rng.vec(n, -2.0, 2.0)), round(rng.vec(n, 0.5, 2.0))));
        let target_std =
            target_std.then(|| (round(rng.vec(k, -3.0, 3.0)), round(rng.vec(k, 0.3, 3.0))));
        Model {
            sizes,
            activation,
            output,
            weights,
            biases,
            input_std,
            target_std,
            wide,
        }
    }

    fn config(&self) -> Value {
        json!({
            "sizes": self.sizes,
            "activation": self.activation.name(),
            "output": self.output.name(),
            "input_standardization": self.input_std.is_some(),
            "target_standardization": self.target_std.is_some(),
        })
    }

    fn file(&self) -> Vec<u8> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<f64>)> = vec![];
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let (o, n) = (self.sizes[i + 1], self.sizes[i]);
            tensors.push((format!("layer{i}.weight"), vec![o, n], w.clone()));
            tensors.push((format!("layer{i}.bias"), vec![o], b.clone()));
        }
        for (prefix, s) in [("input", &self.input_std), ("target", &self.target_std)] {
            if let Some((m, sd)) = s {
                tensors.push((format!("{prefix}.mean"), vec![m.len()], m.clone()));
                tensors.push((format!("{prefix}.std"), vec![sd.len()], sd.clone()));
            }
        }
        let dtype = if self.wide { "F64" } else { "F32" };
        let entries: Vec<Entry> = tensors
            .into_iter()
            .map(|(name, shape, v)| {
                let bytes = if self.wide {
                    v.iter().flat_map(|x| x.to_le_bytes()).collect()
                } else {
                    v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
                };
                (name, dtype, shape, bytes)
            })
            .collect();
        let config = self.config().to_string();
        write_file(&entries, &[("keel.kind", "mlp"), ("keel.config", &config)])
    }

    /// The head output and the hidden pre-activations, evaluated straightforwardly in f64.
    fn eval(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut h: Vec<f64> = match &self.input_std {
            Some((m, s)) => x
                .iter()
                .zip(m)
                .zip(s)
                .map(|((x, m), s)| (x - m) / s)
                .collect(),
            None => x.to_vec(),
        };
        let mut hidden = vec![];
        let n = self.weights.len();
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let z: Vec<f64> = b
                .iter()
                .enumerate()
                .map(|(j, bj)| bj + (0..h.len()).map(|k| w[j * h.len() + k] * h[k]).sum::<f64>())
                .collect();
            if i + 1 < n {
                hidden.extend_from_slice(&z);
                h = z.iter().map(|&v| activation(self.activation, v)).collect();
            } else {
                h = z;
            }
        }
        let k = if self.output == Output::Gaussian {
            h.len() / 2
        } else {
            h.len()
        };
        let mut out = h.clone();
        for v in &mut out[k..] {
            *v = (1.0 + (-v.abs()).exp()).ln() + v.max(0.0) + 1e-6;
        }
        if let Some((m, s)) = &self.target_std {
            for j in 0..k {
                out[j] = out[j] * s[j] + m[j];
            }
            for j in k..out.len() {
                out[j] *= s[j - k];
            }
        }
        (out, hidden)
    }
}

/// The activations from their definitions, in std's f64 functions (the core evaluates them with
/// libm through `Real`, with overflow-safe forms of its own), so `eval` shares no code with the
/// core's `Activation::apply`.
fn activation(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Silu => z / (1.0 + (-z).exp()),
        Activation::Softplus => z.exp().ln_1p(),
        Activation::Identity => z,
    }
}

/// Writes a safetensors file: tensors packed in order, header padded with spaces to 8 bytes.
fn write_file(tensors: &[Entry], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    header.insert("__metadata__".into(), Value::Object(meta));
    let mut data = vec![];
    for (name, dtype, shape, bytes) in tensors {
        let begin = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&text);
    file.extend_from_slice(&data);
    file
}

const ACTIVATIONS: [Activation; 6] = [
    Activation::Relu,
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Silu,
    Activation::Softplus,
    Activation::Identity,
];
const OUTPUTS: [Output; 3] = [Output::Logits, Output::Regression, Output::Gaussian];

fn model_strategy() -> impl Strategy<Value = (Model, Vec<f64>, Vec<f64>)> {
    (
        any::<u64>(),
        0..6usize,
        0..3usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(1..6usize, 2..=5),
    )
        .prop_map(|(seed, a, o, in_std, t_std, wide, mut sizes)| {
            let output = OUTPUTS[o];
            if output == Output::Gaussian {
                *sizes.last_mut().unwrap() *= 2;
            }
            let t_std = t_std && output != Output::Logits;
            let m = Model::random(seed, sizes, ACTIVATIONS[a], output, in_std, t_std, wide);
            let mut rng = Rng(seed ^ 0xDEAD_BEEF);
            let x = rng.vec(m.sizes[0], -2.5, 2.5);
            let c = rng.vec(*m.sizes.last().unwrap(), -1.0, 1.0);
            (m, x, c)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// `input_gradient` equals central differences of `forward` (f64), for every activation and
    /// head, and `forward` equals a straightforward f64 evaluation.
    #[test]
    fn input_gradient_matches_finite_differences((m, x, c) in model_strategy()) {
        let (want, hidden) = m.eval(&x);
        // Central differences straddling a relu kink measure the kink, not the derivative.
        prop_assume!(m.activation != Activation::Relu || hidden.iter().all(|z| z.abs() > 1e-4));
        let bytes = m.file();
        let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
        let mlp = Mlp::<'_, 4>::from_safetensors(&st).unwrap();
        let mut scratch = vec![0.0; mlp.scratch_len()];
        let mut out = vec![0.0; mlp.outputs()];
        mlp.forward(&x, &mut out, &mut scratch).unwrap();
        // Two evaluations in f64 that differ in the order of sums and in the activations'
        // formulas: at most 1.8e-13 (relative, with the 1e-3·max floor) over 20,000 random
        // models; bound 1e-12.
        assert_close("forward", &out, &want, 1e-12);

        let mut g = vec![0.0; x.len()];
        mlp.input_gradient(&x, &c, &mut g, &mut scratch).unwrap();
        let f = |x: &[f64]| -> f64 {
            let mut out = vec![0.0; mlp.outputs()];
            let mut s = vec![0.0; mlp.forward_scratch_len()];
            mlp.forward(x, &mut out, &mut s).unwrap();
            out.iter().zip(&c).map(|(o, c)| o * c).sum()
        };
        let g_scale = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let f_scale = 1.0 + out.iter().zip(&c).map(|(o, c)| (o * c).abs()).sum::<f64>();
        for k in 0..x.len() {
            let h = 1e-6 * x[k].abs().max(1.0);
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += h;
            xm[k] -= h;
            let fd = (f(&xp) - f(&xm)) / (2.0 * h);
            let tol = 1e-6 * (g[k].abs() + 1e-3 * g_scale) + 1e-9 * f_scale;
            prop_assert!((fd - g[k]).abs() <= tol,
                "{:?}/{:?} ∂/∂x{k}: fd {fd}, vjp {} (tol {tol:e})", m.activation, m.output, g[k]);
        }
    }

    /// f32 evaluation of the same file agrees with f64 to float32 accuracy.
    #[test]
    fn f32_agrees_with_f64((m, x, c) in model_strategy()) {
        let bytes = m.file();
        let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
        let mlp = Mlp::<'_, 4>::from_safetensors(&st).unwrap();
        let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
        let c: Vec<f64> = c.iter().map(|&v| v as f32 as f64).collect();
        let mut s64 = vec![0.0; mlp.scratch_len()];
        let mut s32 = vec![0.0f32; mlp.scratch_len()];
        let (mut o64, mut o32) = (vec![0.0; mlp.outputs()], vec![0.0f32; mlp.outputs()]);
        mlp.forward(&x, &mut o64, &mut s64).unwrap();
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        mlp.forward(&x32, &mut o32, &mut s32).unwrap();
        let o32: Vec<f64> = o32.iter().map(|&v| v.into()).collect();
        assert_close_abs("f32 forward", &o32, &o64, 2e-5, 1e-6);
        let (mut g64, mut g32) = (vec![0.0; x.len()], vec![0.0f32; x.len()]);
        mlp.input_gradient(&x, &c, &mut g64, &mut s64).unwrap();
        let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        mlp.input_gradient(&x32, &c32, &mut g32, &mut s32).unwrap();
        let g32: Vec<f64> = g32.iter().map(|&v| v.into()).collect();
        let (_, hidden) = m.eval(&x);
        if m.activation != Activation::Relu || hidden.iter().all(|z| z.abs() > 1e-4) {
            // Components are sums of O(1) terms that may cancel: float32 rounding of those
            // terms (≈ 6e-8 each) bounds the absolute error, not the small result.
            assert_close_abs("f32 gradient", &g32, &g64, 2e-5, 1e-6);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: shapes, scratch, configuration and tensors.

fn small_model(output: Output) -> Model {
    let last = if output == Output::Gaussian { 4 } else { 2 };
    Model::random(
        7,
        vec![3, 5, last],
        Activation::Tanh,
        output,
        true,
        output != Output::Logits,
        false,
    )
}

#[test]
fn shape_and_scratch_errors_are_reported() {
    let bytes = small_model(Output::Regression).file();
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let mlp = Mlp::<'_, 4>::from_safetensors(&st).unwrap();
    assert_eq!(mlp.forward_scratch_len(), 10);
    assert_eq!(mlp.scratch_len(), 17);
    let mut s = vec![0.0; mlp.scratch_len()];
    let mut out = [0.0; 2];
    assert!(matches!(
        mlp.forward(&[0.0; 2], &mut out, &mut s),
        Err(Error::ShapeMismatch {
            what: "input",
            expected: 3,
            got: 2
        })
    ));
    assert!(matches!(
        mlp.forward(&[0.0; 3], &mut [0.0; 3], &mut s),
        Err(Error::ShapeMismatch {
            what: "output",
            expected: 2,
            got: 3
        })
    ));
    assert!(matches!(
        mlp.forward(&[0.0; 3], &mut out, &mut s[..9]),
        Err(Error::ScratchTooSmall { needed: 10, got: 9 })
    ));
    mlp.forward(&[0.0; 3], &mut out, &mut s[..10]).unwrap();
    let mut g = [0.0; 3];
    assert!(matches!(
        mlp.input_gradient(&[0.0; 3], &[1.0; 2], &mut g, &mut s[..16]),
        Err(Error::ScratchTooSmall {
            needed: 17,
            got: 16
        })
    ));
    assert!(matches!(
        mlp.input_gradient(&[0.0; 3], &[1.0; 3], &mut g, &mut s),
        Err(Error::ShapeMismatch {
            what: "cotangent",
            ..
        })
    ));
    assert!(matches!(
        mlp.input_gradient(&[0.0; 3], &[1.0; 2], &mut [0.0; 4], &mut s),
        Err(Error::ShapeMismatch {
            what: "gradient",
            ..
        })
    ));
    assert!(matches!(
        mlp.input_gradient(&[0.0; 4], &[1.0; 2], &mut g, &mut s),
        Err(Error::ShapeMismatch { what: "input", .. })
    ));
    assert!(matches!(
        mlp.predict_class(&[0.0; 3], &mut s),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn predict_class_reports_nan_logits() {
    let mut m = small_model(Output::Logits);
    m.biases[1][1] = f64::NAN;
    let bytes = m.file();
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let mlp = Mlp::<'_, 4>::from_safetensors(&st).unwrap();
    let mut s = vec![0.0f32; mlp.forward_scratch_len()];
    assert!(matches!(
        mlp.predict_class(&[0.0f32; 3], &mut s),
        Err(Error::NonFinite { index: 1, .. })
    ));
}

/// Rebuilds the small regression model's file with its metadata replaced.
fn with_metadata(metadata: &[(&str, &str)]) -> Vec<u8> {
    let m = small_model(Output::Regression);
    let file = m.file();
    let st = SafeTensors::<'_, 16>::parse(&file).unwrap();
    let tensors: Vec<Entry> = st
        .tensors()
        .map(|(n, v)| (n.to_string(), "F32", v.shape().to_vec(), v.data().to_vec()))
        .collect();
    write_file(&tensors, metadata)
}

fn load_error(bytes: &[u8]) -> Error {
    let st = SafeTensors::<'_, 16>::parse(bytes).unwrap();
    Mlp::<'_, 4>::from_safetensors(&st).unwrap_err()
}

#[test]
fn configuration_errors_are_reported() {
    let good = r#"{"sizes":[3,5,2],"activation":"tanh","output":"regression","input_standardization":true,"target_standardization":true}"#;
    // The good configuration loads, also with an unknown extra key.
    let extra = good.replace("{\"sizes", "{\"note\":{\"a\":[1,2]},\"sizes");
    for c in [good, &extra] {
        let st_bytes = with_metadata(&[("keel.kind", "mlp"), ("keel.config", c)]);
        let st = SafeTensors::<'_, 16>::parse(&st_bytes).unwrap();
        Mlp::<'_, 4>::from_safetensors(&st).unwrap();
    }
    type Check = Box<dyn Fn(&Error) -> bool>;
    let cases: Vec<(String, Check)> = vec![
        (
            good.replace("tanh", "gelu"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "unknown `activation`"
                    }
                )
            }),
        ),
        (
            good.replace("regression", "ranking"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "unknown `output`"
                    }
                )
            }),
        ),
        (
            good.replace("\"sizes\":[3,5,2],", ""),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "`keel.config` lacks `sizes`"
                    }
                )
            }),
        ),
        (
            good.replace(",\"target_standardization\":true", ""),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "`keel.config` lacks `target_standardization`"
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "`sizes` needs at least two entries"
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3,0,2]"),
            Box::new(|e| matches!(e, Error::InvalidConfig { .. })),
        ),
        (
            good.replace("[3,5,2]", "[3,5.0,2]"),
            Box::new(|e| matches!(e, Error::InvalidConfig { .. })),
        ),
        (
            good.replace("[3,5,2]", "[3,5,5,5,5,2]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::CapacityExceeded {
                        what: "layers",
                        capacity: 4
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3,5,5,2]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::TensorShape {
                        role: "weight",
                        layer: Some(1)
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3,5,2,2]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::TensorNotFound {
                        role: "weight",
                        layer: Some(2)
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3,6,2]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::TensorShape {
                        role: "weight",
                        layer: Some(0)
                    }
                )
            }),
        ),
        (
            good.replace("[3,5,2]", "[3,5]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "the file has more layers than `sizes` describes"
                    }
                )
            }),
        ),
        (
            good.replace("regression", "gaussian")
                .replace("[3,5,2]", "[3,5,3]"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "a `gaussian` output needs an even last size"
                    }
                )
            }),
        ),
        (
            good.replace("regression", "gaussian"),
            Box::new(|e| {
                matches!(
                    e,
                    Error::TensorShape {
                        role: "target.mean",
                        layer: None
                    }
                )
            }),
        ),
        (
            good.replace("regression", "logits"),
            Box::new(|e| matches!(e, Error::InvalidConfig { .. })),
        ),
        (
            good.replace("true,", "1,"),
            Box::new(|e| matches!(e, Error::InvalidConfig { .. })),
        ),
        (
            good.replace("\"activation\"", "\"output\":\"logits\",\"activation\""),
            Box::new(|e| matches!(e, Error::DuplicateKey { .. })),
        ),
        (
            good.replace('}', ""),
            Box::new(|e| matches!(e, Error::InvalidJson { .. })),
        ),
        (
            "[1,2]".into(),
            Box::new(|e| {
                matches!(
                    e,
                    Error::InvalidConfig {
                        what: "`keel.config` must be a JSON object"
                    }
                )
            }),
        ),
    ];
    for (config, check) in &cases {
        let e = load_error(&with_metadata(&[
            ("keel.kind", "mlp"),
            ("keel.config", config),
        ]));
        assert!(check(&e), "{config}: {e:?}");
    }
    let e = load_error(&with_metadata(&[
        ("keel.kind", "gp"),
        ("keel.config", good),
    ]));
    assert!(matches!(
        e,
        Error::InvalidConfig {
            what: "`keel.kind` is not the model kind expected"
        }
    ));
    let e = load_error(&with_metadata(&[("keel.config", good)]));
    assert!(matches!(
        e,
        Error::InvalidConfig {
            what: "no `keel.kind` metadata"
        }
    ));
    let e = load_error(&with_metadata(&[("keel.kind", "mlp")]));
    assert!(matches!(
        e,
        Error::InvalidConfig {
            what: "no `keel.config` metadata"
        }
    ));
}

#[test]
fn tensor_errors_are_reported() {
    let m = small_model(Output::Regression);
    let config = m.config().to_string();
    let meta = [("keel.kind", "mlp"), ("keel.config", config.as_str())];
    let base: Vec<Entry> = {
        let file = m.file();
        let st = SafeTensors::<'_, 16>::parse(&file).unwrap();
        st.tensors()
            .map(|(n, v)| (n.to_string(), "F32", v.shape().to_vec(), v.data().to_vec()))
            .collect()
    };
    let edit = |f: &dyn Fn(&mut Vec<Entry>)| {
        let mut t = base.clone();
        f(&mut t);
        load_error(&write_file(&t, &meta))
    };
    let e = edit(&|t| t.retain(|x| x.0 != "input.std"));
    assert!(
        matches!(
            e,
            Error::TensorNotFound {
                role: "input.std",
                layer: None
            }
        ),
        "{e:?}"
    );
    let e = edit(&|t| t.retain(|x| x.0 != "layer1.bias"));
    assert!(
        matches!(
            e,
            Error::TensorNotFound {
                role: "bias",
                layer: Some(1)
            }
        ),
        "{e:?}"
    );
    let e = edit(&|t| {
        let b = t.iter_mut().find(|x| x.0 == "layer1.bias").unwrap();
        b.2 = vec![1, 2];
    });
    assert!(
        matches!(
            e,
            Error::TensorShape {
                role: "bias",
                layer: Some(1)
            }
        ),
        "{e:?}"
    );
    let e = edit(&|t| {
        let w = t.iter_mut().find(|x| x.0 == "layer0.weight").unwrap();
        w.2 = vec![5, 3, 1];
    });
    assert!(
        matches!(
            e,
            Error::TensorShape {
                role: "weight",
                layer: Some(0)
            }
        ),
        "{e:?}"
    );
    let e = edit(&|t| {
        let w = t.iter_mut().find(|x| x.0 == "target.mean").unwrap();
        w.1 = "I32";
    });
    assert!(
        matches!(e, Error::UnsupportedDtype { dtype: Dtype::I32 }),
        "{e:?}"
    );
    let e = edit(&|t| {
        let s = t.iter_mut().find(|x| x.0 == "input.std").unwrap();
        s.3[..4].copy_from_slice(&0.0f32.to_le_bytes());
    });
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e:?}");
    let e = edit(&|t| {
        let s = t.iter_mut().find(|x| x.0 == "target.mean").unwrap();
        s.2 = vec![1];
        s.3.truncate(4);
    });
    assert!(
        matches!(
            e,
            Error::TensorShape {
                role: "target.mean",
                layer: None
            }
        ),
        "{e:?}"
    );
}

#[test]
fn dense_layer_forward_and_backward() {
    // W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -1].
    let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.5f64, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = write_file(
        &[
            ("w".into(), "F32", vec![2, 3], w),
            ("b".into(), "F64", vec![2], b),
        ],
        &[],
    );
    let st = SafeTensors::<'_, 4>::parse(&file).unwrap();
    let (wv, bv) = (st.tensor("w").unwrap(), st.tensor("b").unwrap());
    let dense = Dense::new(&wv, &bv).unwrap();
    assert_eq!((dense.inputs(), dense.outputs()), (3, 2));
    let mut y = [0.0f64; 2];
    dense.forward(&[1.0, 0.0, -1.0], &mut y).unwrap();
    assert_eq!(y, [-1.5, -3.0]);
    let mut dx = [0.0f32; 3];
    dense.backward(&[1.0, 2.0], &mut dx).unwrap();
    assert_eq!(dx, [9.0, 12.0, 15.0]);
    assert!(matches!(
        dense.forward(&[1.0f64; 2], &mut y),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Dense::new(&bv, &bv),
        Err(Error::TensorShape { role: "weight", .. })
    ));
    assert!(matches!(
        Dense::new(&wv, &wv),
        Err(Error::TensorShape { role: "bias", .. })
    ));
}
