//! The MLP's parameter derivatives and the on-board NTK adaptation (`nn::NtkAdaptation`)
//! against dense references in f64.
//!
//! The reference here shares no code with the core: a straightforward f64 evaluation of the
//! network from its weight lists, its parameter Jacobian by central differences of that
//! evaluation, and the posterior of Maddox et al., *Fast Adaptation with Linearized Neural
//! Networks* (AISTATS 2021) formed densely — `K = JJᵀ + σ²I`, `α = K⁻¹(y − m)` by Gaussian
//! elimination, `μ(x*) = m(x*) + J(x*)Jᵀα`, `Var = ‖J(x*)‖² − k*ᵀK⁻¹k*`.
//!
//! Tolerances (relative, with floors scaled by the quantity's magnitude):
//! - parameter gradient and JVP vs central differences: 1e-6 (step `h = 1e-5`; the truncation
//!   error `h²·f‴/6` and the cancellation `ε·f/h` are both ≈ 1e-10 relative here);
//! - adaptation vs the dense reference, with the reference's Jacobian from the core's own
//!   `parameter_vjp` (checked above): mean and variance 1e-10 of the prior scale (rounding only);
//! - f32 vs f64 adaptation: mean 1e-3 of the targets' scale, variance 1e-3 of the prior variance
//!   (float32 rounding ≈ 6e-8 multiplied by `cond(K)` ≈ 1e3 for these networks and σ² = 0.01).

use keel_core::io::SafeTensors;
use keel_core::nn::{Activation, Mlp, NtkAdaptation, NtkBuffers, NtkMemory, PriorMean};
use keel_core::Error;
use serde_json::{json, Value};

use crate::splitmix::Rng;

/// A regression MLP with one output: its weights in the export's parameter order.
#[derive(Clone, Debug)]
struct Net {
    sizes: Vec<usize>,
    activation: Activation,
    /// Layer by layer: weight `[out, in]` row-major, then bias.
    theta: Vec<f64>,
    input_std: Option<(Vec<f64>, Vec<f64>)>,
    target_std: Option<(f64, f64)>,
}

fn act(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Silu => z / (1.0 + (-z).exp()),
        Activation::Softplus => z.exp().ln_1p(),
        Activation::Identity => z,
    }
}

impl Net {
    fn random(seed: u64, sizes: Vec<usize>, activation: Activation, standardize: bool) -> Net {
        let mut rng = Rng(seed);
        let mut theta = vec![];
        for w in sizes.windows(2) {
            let s = 1.5 / (w[0] as f64).sqrt();
            theta.extend(rng.vec(w[0] * w[1], -s, s));
            theta.extend(rng.vec(w[1], -0.5, 0.5));
        }
        let input_std =
            standardize.then(|| (rng.vec(sizes[0], -1.0, 1.0), rng.vec(sizes[0], 0.5, 2.0)));
        let target_std = standardize.then(|| (rng.uniform(-1.0, 1.0), rng.uniform(0.5, 2.0)));
        Net {
            sizes,
            activation,
            theta,
            input_std,
            target_std,
        }
    }

    fn params(&self) -> usize {
        self.theta.len()
    }

    /// `f(x; θ)`, straightforwardly in f64.
    fn eval(&self, theta: &[f64], x: &[f64]) -> f64 {
        let mut h: Vec<f64> = match &self.input_std {
            Some((m, s)) => x
                .iter()
                .zip(m)
                .zip(s)
                .map(|((x, m), s)| (x - m) / s)
                .collect(),
            None => x.to_vec(),
        };
        let mut off = 0;
        let layers = self.sizes.len() - 1;
        for (i, w) in self.sizes.windows(2).enumerate() {
            let (ni, no) = (w[0], w[1]);
            let z: Vec<f64> = (0..no)
                .map(|j| {
                    theta[off + no * ni + j]
                        + (0..ni).map(|k| theta[off + j * ni + k] * h[k]).sum::<f64>()
                })
                .collect();
            off += no * (ni + 1);
            h = if i + 1 < layers {
                z.iter().map(|&v| act(self.activation, v)).collect()
            } else {
                z
            };
        }
        match self.target_std {
            Some((m, s)) => h[0] * s + m,
            None => h[0],
        }
    }

    /// `∂f(x)/∂θ` by central differences.
    fn jacobian_fd(&self, x: &[f64]) -> Vec<f64> {
        let mut t = self.theta.clone();
        (0..self.params())
            .map(|p| {
                let h = 1e-5;
                let t0 = t[p];
                t[p] = t0 + h;
                let fp = self.eval(&t, x);
                t[p] = t0 - h;
                let fm = self.eval(&t, x);
                t[p] = t0;
                (fp - fm) / (2.0 * h)
            })
            .collect()
    }

    fn file(&self) -> Vec<u8> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<f64>)> = vec![];
        let mut off = 0;
        for (i, w) in self.sizes.windows(2).enumerate() {
            let (ni, no) = (w[0], w[1]);
            tensors.push((
                format!("layer{i}.weight"),
                vec![no, ni],
                self.theta[off..off + no * ni].to_vec(),
            ));
            tensors.push((
                format!("layer{i}.bias"),
                vec![no],
                self.theta[off + no * ni..off + no * (ni + 1)].to_vec(),
            ));
            off += no * (ni + 1);
        }
        if let Some((m, s)) = &self.input_std {
            tensors.push(("input.mean".into(), vec![m.len()], m.clone()));
            tensors.push(("input.std".into(), vec![s.len()], s.clone()));
        }
        if let Some((m, s)) = self.target_std {
            tensors.push(("target.mean".into(), vec![1], vec![m]));
            tensors.push(("target.std".into(), vec![1], vec![s]));
        }
        let config = json!({
            "sizes": self.sizes,
            "activation": self.activation.name(),
            "output": "regression",
            "input_standardization": self.input_std.is_some(),
            "target_standardization": self.target_std.is_some(),
        })
        .to_string();
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            json!({"keel.kind": "mlp", "keel.config": config}),
        );
        let mut data = vec![];
        for (name, shape, v) in tensors {
            let begin = data.len();
            data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
            header.insert(
                name,
                json!({"dtype": "F64", "shape": shape, "data_offsets": [begin, data.len()]}),
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
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rtol * (w.abs() + 1e-3 * scale);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{k}]: got {g}, want {w} (|diff| {:e} > {tol:e})",
            (g - w).abs()
        );
    }
}

const CASES: [(Activation, bool); 4] = [
    (Activation::Tanh, true),
    (Activation::Sigmoid, false),
    (Activation::Silu, true),
    (Activation::Softplus, false),
];

#[test]
fn parameter_gradient_and_jvp_match_central_differences() {
    for (seed, &(activation, standardize)) in CASES.iter().enumerate() {
        let net = Net::random(seed as u64, vec![2, 5, 4, 1], activation, standardize);
        let bytes = net.file();
        let st = SafeTensors::<16>::parse(&bytes).unwrap();
        let mlp = Mlp::<4>::from_safetensors(&st).unwrap();
        assert_eq!(mlp.parameter_count(), net.params());
        assert_eq!(mlp.gradient_factors_len(), 2 + 5 + 5 + 4 + 4 + 1);
        let mut rng = Rng(100 + seed as u64);
        for _ in 0..4 {
            let x = rng.vec(2, -2.0, 2.0);
            let want = net.jacobian_fd(&x);
            let mut scratch = vec![0.0; mlp.parameter_vjp_scratch_len()];
            let mut grad = vec![0.0; mlp.parameter_count()];
            let mut out = [0.0];
            mlp.parameter_vjp(&x, &[1.0], &mut out, &mut grad, &mut scratch)
                .unwrap();
            assert!((out[0] - net.eval(&net.theta, &x)).abs() < 1e-12);
            assert_close(&format!("{activation:?} ∂f/∂θ"), &grad, &want, 1e-6);

            // A cotangent scales the gradient.
            let mut g2 = vec![0.0; mlp.parameter_count()];
            mlp.parameter_vjp(&x, &[-2.5], &mut out, &mut g2, &mut scratch)
                .unwrap();
            let scaled: Vec<f64> = grad.iter().map(|g| -2.5 * g).collect();
            assert_close("cotangent", &g2, &scaled, 1e-14);

            // The factored inner product is the expanded one.
            let x2 = rng.vec(2, -2.0, 2.0);
            let (mut fa, mut fb) = (
                vec![0.0; mlp.gradient_factors_len()],
                vec![0.0; mlp.gradient_factors_len()],
            );
            let mut s = vec![0.0; mlp.parameter_vjp_factors_scratch_len()];
            mlp.parameter_vjp_factors(&x, &[1.0], &mut out, &mut fa, &mut s)
                .unwrap();
            mlp.parameter_vjp_factors(&x2, &[1.0], &mut out, &mut fb, &mut s)
                .unwrap();
            let want_dot: f64 = net
                .jacobian_fd(&x2)
                .iter()
                .zip(&want)
                .map(|(a, b)| a * b)
                .sum();
            let dot = mlp.gradient_factors_dot(&fa, &fb).unwrap();
            assert!(
                (dot - want_dot).abs() <= 1e-6 * want_dot.abs().max(1.0),
                "{dot} vs {want_dot}"
            );

            // JVP along a random direction: J·u.
            let u = rng.vec(mlp.parameter_count(), -1.0, 1.0);
            let ju: f64 = want.iter().zip(&u).map(|(a, b)| a * b).sum();
            let mut js = vec![0.0; mlp.parameter_jvp_scratch_len()];
            let (mut o, mut t) = ([0.0], [0.0]);
            mlp.parameter_jvp(&x, &u, &mut o, &mut t, &mut js).unwrap();
            assert!((o[0] - net.eval(&net.theta, &x)).abs() < 1e-12);
            assert!(
                (t[0] - ju).abs() <= 1e-6 * ju.abs().max(1.0),
                "{activation:?} J·u: {} vs {ju}",
                t[0]
            );
        }
    }
}

/// `A x = b` by Gaussian elimination with partial pivoting (the reference's dense solve).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * b[k]).sum();
        b[r] = (b[r] - s) / a[r * n + r];
    }
    b
}

/// The dense posterior: mean, latent variance at each test input.
fn dense_posterior(
    rows: &[Vec<f64>],
    f_train: &[f64],
    y: &[f64],
    star: &[(Vec<f64>, f64)],
    noise: f64,
    mean: PriorMean,
) -> Vec<(f64, f64)> {
    let n = rows.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] = dot(&rows[i], &rows[j]) + if i == j { noise } else { 0.0 };
        }
    }
    let prior = |f: f64| if mean == PriorMean::Network { f } else { 0.0 };
    let r: Vec<f64> = y.iter().zip(f_train).map(|(y, f)| y - prior(*f)).collect();
    let alpha = solve(k.clone(), r);
    star.iter()
        .map(|(js, fs)| {
            let ks: Vec<f64> = rows.iter().map(|r| dot(js, r)).collect();
            let kinv_ks = solve(k.clone(), ks.clone());
            (
                prior(*fs) + dot(&ks, &alpha),
                dot(js, js) - dot(&ks, &kinv_ks),
            )
        })
        .collect()
}

#[test]
fn adaptation_matches_the_dense_posterior_in_f64() {
    for (seed, &(activation, standardize)) in CASES.iter().enumerate() {
        let net = Net::random(10 + seed as u64, vec![1, 8, 8, 1], activation, standardize);
        let bytes = net.file();
        let st = SafeTensors::<16>::parse(&bytes).unwrap();
        let mlp = Mlp::<4>::from_safetensors(&st).unwrap();
        let mut rng = Rng(200 + seed as u64);
        let n = 7;
        let x = rng.vec(n, -3.0, 3.0);
        let y: Vec<f64> = x.iter().map(|x| 1.3 * (0.8 * x + 0.4).sin()).collect();
        let xs = [-3.5, -1.0, 0.0, 0.7, 2.9, 4.0];
        let mut scratch = vec![0.0; mlp.parameter_vjp_scratch_len()];
        let row = |x: f64, scratch: &mut [f64]| {
            let mut g = vec![0.0; mlp.parameter_count()];
            let mut out = [0.0];
            mlp.parameter_vjp(&[x], &[1.0], &mut out, &mut g, scratch)
                .unwrap();
            (g, out[0])
        };
        let train: Vec<(Vec<f64>, f64)> = x.iter().map(|&x| row(x, &mut scratch)).collect();
        let rows: Vec<Vec<f64>> = train.iter().map(|t| t.0.clone()).collect();
        let f_train: Vec<f64> = train.iter().map(|t| t.1).collect();
        let star: Vec<(Vec<f64>, f64)> = xs.iter().map(|&x| row(x, &mut scratch)).collect();

        for mean in [PriorMean::Zero, PriorMean::Network] {
            for noise in [0.01, 0.5] {
                let want = dense_posterior(&rows, &f_train, &y, &star, noise, mean);
                assert_eq!(mlp.gradient_factors_len(), 34);
                let mut memory = NtkMemory::<f64, 8, 34>::new();
                let mut ntk = NtkAdaptation::new(&mlp, mean, noise, memory.buffers()).unwrap();
                let mut s = vec![0.0; ntk.scratch_len()];
                ntk.adapt(&x, &y, &mut s).unwrap();
                assert_eq!(ntk.len(), n);
                let prior_scale = star
                    .iter()
                    .map(|(j, _)| j.iter().map(|v| v * v).sum::<f64>());
                let scale = prior_scale.fold(1.0f64, f64::max);
                for (&xs, &(m, v)) in xs.iter().zip(&want) {
                    let p = ntk.predict(&[xs], &mut s).unwrap();
                    assert!(
                        (p.mean - m).abs() <= 1e-10 * scale.max(m.abs()),
                        "{activation:?} {mean:?} σ²={noise} mean at {xs}: {} vs {m}",
                        p.mean
                    );
                    assert!(
                        (p.var_f - v.max(0.0)).abs() <= 1e-10 * scale,
                        "{activation:?} {mean:?} σ²={noise} var at {xs}: {} vs {v}",
                        p.var_f
                    );
                    assert!((p.var_y - p.var_f - noise).abs() <= 1e-15 * scale);
                }
                // The mean through the weight offset u = Jᵀα and one forward-mode pass.
                let mut u = vec![0.0; mlp.parameter_count()];
                ntk.weight_offset(&mut u, &mut s).unwrap();
                for &xs in &xs {
                    let m = ntk.predict(&[xs], &mut s).unwrap().mean;
                    let mj = ntk.predict_mean_jvp(&[xs], &u, &mut s).unwrap();
                    assert!((m - mj).abs() <= 1e-10 * scale.max(m.abs()), "{m} vs {mj}");
                }
                // At the points, y − μ(X) = σ²K⁻¹(y − m(X)): no larger than y − m(X) in norm
                // (σ²K⁻¹ has eigenvalues in (0, 1]), and much smaller for a small σ².
                let (mut before, mut after) = (0.0, 0.0);
                for ((&xi, &yi), &fi) in x.iter().zip(&y).zip(&f_train) {
                    let p = ntk.predict(&[xi], &mut s).unwrap();
                    let m = if mean == PriorMean::Network { fi } else { 0.0 };
                    before += (yi - m) * (yi - m);
                    after += (yi - p.mean) * (yi - p.mean);
                }
                assert!(after <= before * (1.0 + 1e-12), "{after} > {before}");
                // No points: the prior.
                ntk.clear();
                let p = ntk.predict(&[0.3], &mut s).unwrap();
                let (j, f) = row(0.3, &mut scratch);
                let want_mean = if mean == PriorMean::Network { f } else { 0.0 };
                assert!((p.mean - want_mean).abs() < 1e-14);
                let jj: f64 = j.iter().map(|v| v * v).sum();
                assert!((p.var_f - jj).abs() <= 1e-12 * jj);
            }
        }
    }
}

#[test]
fn f32_adaptation_agrees_with_f64() {
    let net = Net::random(42, vec![1, 40, 40, 1], Activation::Tanh, true);
    let bytes = net.file();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    let mlp = Mlp::<4>::from_safetensors(&st).unwrap();
    assert_eq!(mlp.parameter_count(), 1761);
    assert_eq!(mlp.gradient_factors_len(), 162);
    let mut rng = Rng(9);
    let x: Vec<f64> = rng
        .vec(10, -5.0, 5.0)
        .iter()
        .map(|&v| v as f32 as f64)
        .collect();
    let y: Vec<f64> = x
        .iter()
        .map(|x| (2.0 * (1.2 * x + 0.5).sin()) as f32 as f64)
        .collect();
    let mut m64 = NtkMemory::<f64, 10, 162>::new();
    let mut m32 = NtkMemory::<f32, 10, 162>::new();
    let a64 = NtkAdaptation::new(&mlp, PriorMean::Network, 0.01, m64.buffers());
    let a32 = NtkAdaptation::new(&mlp, PriorMean::Network, 0.01f32, m32.buffers());
    let (mut a64, mut a32) = (a64.unwrap(), a32.unwrap());
    let mut s64 = vec![0.0; a64.scratch_len()];
    let mut s32 = vec![0.0f32; a32.scratch_len()];
    a64.adapt(&x, &y, &mut s64).unwrap();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    a32.adapt(&x32, &y32, &mut s32).unwrap();
    for k in 0..21 {
        let xs = -5.0 + 0.5 * k as f64;
        let p64 = a64.predict(&[xs], &mut s64).unwrap();
        let p32 = a32.predict(&[xs as f32], &mut s32).unwrap();
        assert!(
            (f64::from(p32.mean) - p64.mean).abs() <= 1e-3 * (1.0 + p64.mean.abs()),
            "mean at {xs}: {} vs {}",
            p32.mean,
            p64.mean
        );
        let mut empty = NtkMemory::<f64, 1, 162>::new();
        let ntk0 = NtkAdaptation::new(&mlp, PriorMean::Network, 0.01, empty.buffers()).unwrap();
        let prior_var = ntk0.predict(&[xs], &mut s64).unwrap().var_f;
        assert!(
            (f64::from(p32.var_f) - p64.var_f).abs() <= 1e-3 * prior_var,
            "var at {xs}: {} vs {} (prior {prior_var})",
            p32.var_f,
            p64.var_f
        );
    }
}

#[test]
fn bad_input_is_refused_with_an_error() {
    let net = Net::random(3, vec![1, 4, 1], Activation::Tanh, false);
    let bytes = net.file();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    let mlp = Mlp::<4>::from_safetensors(&st).unwrap();
    let r = mlp.gradient_factors_len();
    assert_eq!(r, 1 + 4 + 4 + 1);
    let mut memory = NtkMemory::<f64, 3, 10>::new();

    // σ² ≤ 0 or not finite.
    for noise in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = NtkAdaptation::new(&mlp, PriorMean::Zero, noise, memory.buffers()).unwrap_err();
        assert!(
            matches!(e, Error::InvalidParameter { name: "noise", .. }),
            "{e:?}"
        );
    }
    let mut ntk = NtkAdaptation::new(&mlp, PriorMean::Zero, 0.1, memory.buffers()).unwrap();
    let mut s = vec![0.0; ntk.scratch_len()];
    assert_eq!(ntk.capacity(), 3);

    // More points than the capacity: the limit is in the error.
    assert_eq!(
        ntk.adapt(&[0.0; 4], &[1.0; 4], &mut s),
        Err(Error::CapacityExceeded {
            what: "adaptation points",
            capacity: 3
        })
    );
    // NaN targets and inputs, with their index (targets counted after the inputs).
    assert_eq!(
        ntk.adapt(&[0.0, 1.0], &[1.0, f64::NAN], &mut s),
        Err(Error::NonFinite { index: 3, t: 0.0 })
    );
    assert_eq!(
        ntk.adapt(&[f64::INFINITY, 1.0], &[1.0, 2.0], &mut s),
        Err(Error::NonFinite { index: 0, t: 0.0 })
    );
    assert!(ntk.is_empty(), "a refused adaptation holds no points");
    assert_eq!(
        ntk.predict(&[f64::NAN], &mut s),
        Err(Error::NonFinite { index: 0, t: 0.0 })
    );
    // Shapes and scratch.
    assert!(matches!(
        ntk.adapt(&[0.0; 3], &[1.0; 2], &mut s),
        Err(Error::ShapeMismatch {
            what: "adaptation inputs",
            expected: 2,
            got: 3
        })
    ));
    let short = ntk.scratch_len() - 1;
    assert!(matches!(
        ntk.adapt(&[0.0], &[1.0], &mut s[..short]),
        Err(Error::ScratchTooSmall { .. })
    ));
    ntk.adapt(&[0.5], &[1.0], &mut s).unwrap();
    assert!(matches!(
        ntk.predict(&[0.0], &mut s[..short]),
        Err(Error::ScratchTooSmall { .. })
    ));
    let mut u = vec![0.0; mlp.parameter_count() + 1];
    assert!(matches!(
        ntk.weight_offset(&mut u, &mut s),
        Err(Error::ShapeMismatch {
            what: "weight offset",
            ..
        })
    ));

    // Buffers of the wrong size, and a network that is not a scalar regressor.
    let mut factors = vec![0.0; 3 * r + 1];
    let (mut f, mut z) = (vec![0.0; 9], vec![0.0; 3]);
    let buf = NtkBuffers {
        factors: &mut factors,
        factor: &mut f,
        z: &mut z,
    };
    assert!(matches!(
        NtkAdaptation::new(&mlp, PriorMean::Zero, 0.1, buf),
        Err(Error::CountMismatch { .. })
    ));
    let two = Net::random(3, vec![1, 4, 2], Activation::Tanh, false);
    let bytes2 = two.file();
    let st2 = SafeTensors::<16>::parse(&bytes2).unwrap();
    let mlp2 = Mlp::<4>::from_safetensors(&st2).unwrap();
    let mut m2 = NtkMemory::<f64, 3, 12>::new();
    assert!(matches!(
        NtkAdaptation::new(&mlp2, PriorMean::Zero, 0.1, m2.buffers()),
        Err(Error::InvalidConfig { .. })
    ));

    // A NaN weight: the kernel is not positive definite, reported, not a panic.
    let mut bad = net.clone();
    bad.theta[2] = f64::NAN;
    let bytes3 = bad.file();
    let st3 = SafeTensors::<16>::parse(&bytes3).unwrap();
    let mlp3 = Mlp::<4>::from_safetensors(&st3).unwrap();
    let mut m3 = NtkMemory::<f64, 3, 10>::new();
    let mut ntk3 = NtkAdaptation::new(&mlp3, PriorMean::Zero, 0.1, m3.buffers()).unwrap();
    assert!(matches!(
        ntk3.adapt(&[0.1, 0.2], &[1.0, 2.0], &mut s),
        Err(Error::NotPositiveDefinite { .. })
    ));
    // Parameter-derivative shape errors.
    let mut out = [0.0];
    let mut g = vec![0.0; mlp.parameter_count() - 1];
    let mut ps = vec![0.0; mlp.parameter_vjp_scratch_len()];
    assert!(matches!(
        mlp.parameter_vjp(&[0.0], &[1.0], &mut out, &mut g, &mut ps),
        Err(Error::ShapeMismatch {
            what: "parameter gradient",
            ..
        })
    ));
    let mut t = [0.0];
    let mut js = vec![0.0; mlp.parameter_jvp_scratch_len()];
    assert!(matches!(
        mlp.parameter_jvp(&[0.0], &g, &mut out, &mut t, &mut js),
        Err(Error::ShapeMismatch {
            what: "parameter direction",
            ..
        })
    ));
}
