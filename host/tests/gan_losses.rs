//! `keel::gan::{loss, metrics}` against an independent PyTorch / numpy / scipy reference and
//! through their properties.
//!
//! `fixtures/gan/losses.json` and `fixtures/gan/metrics.json` are written by
//! `fixtures/gen/gan.py` (PyTorch 2.5.1 CPU in float64, numpy, scipy; inputs drawn there and
//! stored). The losses are computed there as the reference code defines them (Holmeswww/PPOGAN,
//! `cifar10/main.py`, for "Improving GAN Training with Probability Ratio Clipping and Sample
//! Reweighting", Wu et al., NeurIPS 2020), with PyTorch autograd for every gradient: the critic
//! loss with the stop-gradient weights `B·softmax(f_fake)` on the fake term, the gradient penalty
//! by `autograd.grad(…, create_graph=True)`, the CT term with its margin, the ratio with its two
//! `1e-7` clamps, the clipped surrogate with the code's sign-dependent min/max and PPO's rule, and
//! `BCELoss`.
//!
//! The metrics: FID as pytorch-fid's `calculate_frechet_distance` (`scipy.linalg.sqrtm` of
//! `S₁S₂`), cross-checked there by a Cholesky/eigh route and against closed forms (isotropic,
//! diagonal and 2-D Gaussians); the Inception Score as openai/improved-gan's
//! `inception_score/model.py` on numpy softmax outputs.
//!
//! Every loss test runs in f64 and f32 on the CPU and, ignored unless a GPU is there, on CUDA.

use keel::autodiff::{grad, no_grad};
use keel::gan::loss::{
    batch_softmax_weights, bce_with_probs, clipped_surrogate, consistency_term, critic_loss,
    gradient_penalty, probability_ratio, ClipRule,
};
use keel::gan::metrics::{fid, frechet_distance, inception_score, mean_and_covariance};
use keel::tensor::Conv2dOpts;
use keel::{DType, Device, Error, Result, Tensor};
use serde_json::Value;

/// Tolerances, `|keel − reference| ≤ tol·(1 + |reference|)` (absolute near 0, relative above 1).
/// Measured on the CPU (2026-12): every f64 loss, gradient, moment and IS within 1e-15 by this
/// rule, FID within 1e-14 relative, f32 within 1e-6; the margins below leave room for other
/// summation orders (threads, a GPU's reductions) without hiding a wrong formula (a missing
/// detach, an exclusive clamp or whole-gradient ties each fail by more than 1e-2).
mod tol {
    /// f64 losses and gradients: the same formulas in the same precision; what differs is the
    /// order of sums and a softmax taken as `exp(log_softmax)`, a few ulps.
    pub const F64: f64 = 1e-10;
    /// f32 runs against the f64 reference: inputs rounded to f32 (rel. 6e-8) and f32 arithmetic
    /// through a few operations; the largest entries (ratios of 1e7 over a clamp) keep their
    /// relative accuracy.
    pub const F32: f64 = 1e-4;
    /// Means and covariances of finite samples: two-pass sums in f64.
    pub const MOMENTS: f64 = 1e-12;
    /// FID, relative to the value, looser than the losses: both sides subtract
    /// `2 tr (S₁S₂)^{1/2}` from the traces, so the result carries the rounding of traces of
    /// order 10 relative to a distance of order 1–10, and two different algorithms reach the
    /// square root (Schur in scipy's `sqrtm`, two symmetric eigen-decompositions here), each
    /// accurate to a few ulps of ‖S‖ — and more for worse-conditioned covariances.
    pub const FID: f64 = 1e-8;
    /// The Inception Score: exp of a mean of KL terms of softmax rows.
    pub const IS: f64 = 1e-10;
}

fn fixture(name: &str) -> Value {
    let p = format!("{}/../fixtures/gan/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close_at(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "{what}: keel {got} vs reference {want} (tolerance {tol})"
    );
}

fn all_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close_at(*g, *w, tol, &format!("{what}[{i}]"));
    }
}

/// Where a test body runs.
#[derive(Clone, Copy, Debug)]
struct On {
    device: Device,
    dtype: DType,
}

impl On {
    fn tol(self) -> f64 {
        match self.dtype {
            DType::F64 => tol::F64,
            DType::F32 => tol::F32,
        }
    }

    fn tensor(self, v: &[f64], dims: &[usize]) -> Tensor {
        Tensor::from_f64s(v, dims, self.dtype)
            .unwrap()
            .to_device(self.device)
            .unwrap()
    }

    fn var(self, v: &[f64], dims: &[usize]) -> Tensor {
        self.tensor(v, dims).variable()
    }

    fn check(self, got: &Tensor, want: &[f64], what: &str) {
        all_close(&got.to_vec_f64().unwrap(), want, self.tol(), what);
    }
}

/// `d out / d inputs`, zeros for an input `out` does not depend on.
fn grads_of(out: &Tensor, inputs: &[&Tensor]) -> Vec<Vec<f64>> {
    let g = grad(&[out], &[None], inputs, false).unwrap();
    g.into_iter()
        .zip(inputs)
        .map(|(g, x)| match g {
            Some(g) => g.to_vec_f64().unwrap(),
            None => vec![0.0; x.numel()],
        })
        .collect()
}

/// One body per dtype and device: f64 and f32 on the CPU, and (ignored unless a GPU is there)
/// on CUDA device 0.
macro_rules! test_device {
    ($name:ident, |$on:ident| $body:block) => {
        mod $name {
            use super::*;
            fn run($on: On) $body
            #[test]
            fn cpu_f64() {
                run(On { device: Device::Cpu, dtype: DType::F64 });
            }
            #[test]
            fn cpu_f32() {
                run(On { device: Device::Cpu, dtype: DType::F32 });
            }
            #[test]
            #[ignore = "needs a GPU: run cuda/check.sh on a GPU machine"]
            fn cuda_f64() {
                run(On { device: Device::Cuda(0), dtype: DType::F64 });
            }
            #[test]
            #[ignore = "needs a GPU: run cuda/check.sh on a GPU machine"]
            fn cuda_f32() {
                run(On { device: Device::Cuda(0), dtype: DType::F32 });
            }
        }
    };
}

// ---------------------------------------------------------------------------------- critic loss

test_device!(critic_loss_and_gradient_match_the_reference, |on| {
    let f = fixture("losses.json");
    let cases = f["critic_loss"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let what = format!("{} reweight={}", c["name"], c["reweight"]);
        let (real, fake) = (floats(&c["f_real"]), floats(&c["f_fake"]));
        // Scores as [B] and as a linear layer's [B, 1].
        for column in [false, true] {
            let dims = |n: usize| if column { vec![n, 1] } else { vec![n] };
            let fr = on.var(&real, &dims(real.len()));
            let ff = on.var(&fake, &dims(fake.len()));
            let l = critic_loss(&fr, &ff, c["reweight"].as_bool().unwrap()).unwrap();
            assert_eq!(l.dims(), &[] as &[usize]);
            on.check(&l, &[c["loss"].as_f64().unwrap()], &what);
            let g = grads_of(&l, &[&fr, &ff]);
            all_close(&g[0], &floats(&c["grad_f_real"]), on.tol(), &what);
            all_close(&g[1], &floats(&c["grad_f_fake"]), on.tol(), &what);
            if c["reweight"].as_bool().unwrap() {
                let w = batch_softmax_weights(&ff).unwrap();
                assert_eq!(w.dims(), ff.dims());
                on.check(&w, &floats(&c["weights"]), &what);
            }
        }
    }
});

test_device!(the_weights_pass_no_gradient, |on| {
    let f = fixture("losses.json");
    let c = &f["critic_loss"][0];
    assert!(c["reweight"].as_bool().unwrap());
    let fake = floats(&c["f_fake"]);
    let fr = on.var(&floats(&c["f_real"]), &[7]);
    let ff = on.var(&fake, &[7]);
    let w = batch_softmax_weights(&ff).unwrap();
    assert!(!w.is_tracked(), "the weights are constants");
    let l = critic_loss(&fr, &ff, true).unwrap();
    let g = grads_of(&l, &[&ff]).remove(0);
    // ∂L/∂f_fake,i = w_i exactly: the product's gradient is the weight itself.
    assert_eq!(g, w.to_vec_f64().unwrap());
    // Had the weights carried a gradient it would be w_i·(1 + f_i − Σ w f): far from w.
    let wv = w.to_vec_f64().unwrap();
    let wf: f64 = wv.iter().zip(&fake).map(|(w, f)| w * f).sum();
    let through: Vec<f64> = wv
        .iter()
        .zip(&fake)
        .map(|(w, f)| w * (1.0 + f - wf))
        .collect();
    assert!(g.iter().zip(&through).any(|(a, b)| (a - b).abs() > 1e-3));
    // And the softmax weights sum to 1.
    close_at(wv.iter().sum(), 1.0, on.tol(), "Σ w");
});

// ---------------------------------------------------------------------------- gradient penalty

/// The fixture's critics, rebuilt from the engine's operations with the fixture's parameters.
struct Critic {
    conv: bool,
    tanh: bool,
    /// w1, b1, w2, b2 as variables (nn.Linear / nn.Conv2d layouts).
    p: Vec<Tensor>,
}

impl Critic {
    fn new(on: On, c: &Value) -> Critic {
        let conv = c["kind"] == "conv";
        let dims: [&[usize]; 4] = if conv {
            [&[2, 1, 3, 3], &[2], &[1, 18], &[1]]
        } else {
            [&[5, 3], &[5], &[1, 5], &[1]]
        };
        let p = ["w1", "b1", "w2", "b2"]
            .iter()
            .zip(dims)
            .map(|(k, d)| on.var(&floats(&c["params"][*k]), d))
            .collect();
        Critic {
            conv,
            tanh: c["activation"] == "tanh",
            p,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let p = &self.p;
        if self.conv {
            let h = x
                .conv2d(&p[0], Some(&p[1]), Conv2dOpts::default())?
                .relu()?;
            return Ok(h.flatten()?.matmul_t(&p[2], false, true)?.add(&p[3])?);
        }
        let h = x.matmul_t(&p[0], false, true)?.add(&p[1])?;
        let h = if self.tanh { h.tanh()? } else { h.relu()? };
        Ok(h.matmul_t(&p[2], false, true)?.add(&p[3])?)
    }
}

test_device!(
    gradient_penalty_and_its_double_backward_match_the_reference,
    |on| {
        let f = fixture("losses.json");
        let cases = f["gradient_penalty"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for c in cases {
            let what = c["name"].as_str().unwrap();
            let critic = Critic::new(on, c);
            let shape: Vec<usize> = c["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let real = on.tensor(&floats(&c["real"]), &shape);
            let fake = on.tensor(&floats(&c["fake"]), &shape);
            let a = on.tensor(&floats(&c["a"]), &shape[..1]);
            let forward = |x: &Tensor| critic.forward(x);
            let gp = gradient_penalty(&forward, &real, &fake, &a).unwrap();
            on.check(&gp, &[c["gp"].as_f64().unwrap()], what);
            let params: Vec<&Tensor> = critic.p.iter().collect();
            let g = grads_of(&gp, &params);
            for (k, gk) in ["w1", "b1", "w2", "b2"].iter().zip(&g) {
                all_close(
                    gk,
                    &floats(&c["grad_gp"][*k]),
                    on.tol(),
                    &format!("{what} ∂gp/∂{k}"),
                );
            }
            // The whole critic loss of a step: reweighted Wasserstein terms plus 5·GP.
            if let Some(total) = c["total"].as_f64() {
                let l = critic_loss(
                    &critic.forward(&real).unwrap(),
                    &critic.forward(&fake).unwrap(),
                    true,
                )
                .unwrap()
                .add(&gp.mul_scalar(5.0).unwrap())
                .unwrap();
                on.check(&l, &[total], what);
                let g = grads_of(&l, &params);
                for (k, gk) in ["w1", "b1", "w2", "b2"].iter().zip(&g) {
                    all_close(
                        gk,
                        &floats(&c["grad_total"][*k]),
                        on.tol(),
                        &format!("{what} ∂L/∂{k}"),
                    );
                }
            }
        }
    }
);

test_device!(a_zero_input_gradient_gives_penalty_one_and_no_nan, |on| {
    // A relu critic whose units are all dead on the interpolates: ∇_x f = 0 for every sample,
    // so the penalty is 1 and its parameter gradient 0 (PyTorch's norm sub-gradient), not NaN.
    let w1 = on.var(&[1.0, -1.0, 0.5, 0.0, 2.0, 1.0], &[2, 3]);
    let b1 = on.var(&[-100.0, -100.0], &[2]);
    let w2 = on.var(&[1.0, 1.0], &[1, 2]);
    let critic = |x: &Tensor| -> Result<Tensor> {
        Ok(x.matmul_t(&w1, false, true)?
            .add(&b1)?
            .relu()?
            .matmul_t(&w2, false, true)?)
    };
    let real = on.tensor(&[0.1, 0.2, 0.3, -0.4, 0.5, 0.6], &[2, 3]);
    let fake = on.tensor(&[1.0, 0.0, -1.0, 0.5, 0.5, 0.5], &[2, 3]);
    let a = on.tensor(&[0.3, 0.9], &[2]);
    let gp = gradient_penalty(&critic, &real, &fake, &a).unwrap();
    assert_eq!(gp.to_vec_f64().unwrap(), [1.0]);
    for g in grads_of(&gp, &[&w1, &b1, &w2]) {
        assert!(g.iter().all(|v| *v == 0.0), "{g:?}");
    }
});

// ------------------------------------------------------------------------------ consistency term

test_device!(consistency_term_matches_the_reference, |on| {
    let f = fixture("losses.json");
    let cases = f["consistency_term"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let (b, k) = (
            c["rows"].as_u64().unwrap() as usize,
            c["features"].as_u64().unwrap() as usize,
        );
        let what = format!("M = {}", c["m"]);
        let f1 = on.var(&floats(&c["f1"]), &[b, 1]);
        let f2 = on.var(&floats(&c["f2"]), &[b, 1]);
        let h1 = on.var(&floats(&c["h1"]), &[b, k]);
        let h2 = on.var(&floats(&c["h2"]), &[b, k]);
        let ct = consistency_term(
            &f1,
            &f2,
            &h1,
            &h2,
            c["lambda2"].as_f64().unwrap(),
            c["m"].as_f64().unwrap(),
        )
        .unwrap();
        on.check(&ct, &[c["ct"].as_f64().unwrap()], &what);
        let g = grads_of(&ct, &[&f1, &f2, &h1, &h2]);
        for (name, gk) in ["grad_f1", "grad_f2", "grad_h1", "grad_h2"].iter().zip(&g) {
            all_close(gk, &floats(&c[*name]), on.tol(), &format!("{what} {name}"));
        }
    }
});

// -------------------------------------------------------------------------- ratio and surrogate

fn rule_of(name: &str) -> ClipRule {
    ClipRule::parse(name).unwrap()
}

test_device!(ratio_and_surrogate_match_on_every_branch, |on| {
    let f = fixture("losses.json");
    let c = &f["ratio"];
    let n = floats(&c["d0"]).len();
    let d0 = on.var(&floats(&c["d0"]), &[n]);
    let d1 = on.var(&floats(&c["d1"]), &[n]);
    let a = on.var(&floats(&c["a"]), &[n]);
    let r = probability_ratio(&d0, &d1).unwrap();
    on.check(&r, &floats(&c["r"]), "r");
    let g = grads_of(&r.sum_all().unwrap(), &[&d1, &d0]);
    all_close(&g[0], &floats(&c["grad_r_d1"]), on.tol(), "∂r/∂D1");
    assert!(g[1].iter().all(|v| *v == 0.0), "D0 is a constant");
    let eps = c["eps"].as_f64().unwrap();
    for rule in ["code", "ppo"] {
        let obj = clipped_surrogate(&r, &a, eps, rule_of(rule)).unwrap();
        assert_eq!(obj.dims(), &[n]);
        on.check(&obj, &floats(&c[rule]["obj"]), rule);
        let g = grads_of(&obj.sum_all().unwrap(), &[&d1, &a]);
        all_close(
            &g[0],
            &floats(&c[rule]["grad_d1"]),
            on.tol(),
            &format!("{rule} ∂/∂D1"),
        );
        all_close(
            &g[1],
            &floats(&c[rule]["grad_a"]),
            on.tol(),
            &format!("{rule} ∂/∂A"),
        );
    }
    // The two rules differ on this fixture (for A < 0), so swapping them would fail.
    let (code, ppo) = (floats(&c["code"]["obj"]), floats(&c["ppo"]["obj"]));
    assert!(code.iter().zip(&ppo).any(|(x, y)| (x - y).abs() > 0.1));
});

test_device!(surrogate_at_the_clip_boundaries_and_ties_matches, |on| {
    // r exactly at 1 ± ε (the clamp passes the gradient there) and A = 0 (s1 = s2: half the
    // gradient to each of r·A and clip(r)·A, and the code's `max` branch).
    let f = fixture("losses.json");
    let c = &f["surrogate"];
    let n = floats(&c["r"]).len();
    let r = on.var(&floats(&c["r"]), &[n]);
    let a = on.var(&floats(&c["a"]), &[n]);
    for rule in ["code", "ppo"] {
        let obj = clipped_surrogate(&r, &a, c["eps"].as_f64().unwrap(), rule_of(rule)).unwrap();
        on.check(&obj, &floats(&c[rule]["obj"]), rule);
        let g = grads_of(&obj.sum_all().unwrap(), &[&r, &a]);
        all_close(
            &g[0],
            &floats(&c[rule]["grad_r"]),
            on.tol(),
            &format!("{rule} ∂/∂r"),
        );
        all_close(
            &g[1],
            &floats(&c[rule]["grad_a"]),
            on.tol(),
            &format!("{rule} ∂/∂A"),
        );
    }
});

// ------------------------------------------------------------------------------------------- BCE

test_device!(bce_matches_pytorch_bce_loss, |on| {
    let f = fixture("losses.json");
    for c in f["bce"].as_array().unwrap() {
        // The saturated probabilities (1e-50, 1 − 1e-16) are not representable in f32.
        if c["name"] == "extreme" && on.dtype == DType::F32 {
            continue;
        }
        let what = format!("{} target {}", c["name"], c["target"]);
        let target = c["target"].as_f64().unwrap();
        let p = floats(&c["p"]);
        let pt = on.var(&p, &[p.len()]);
        let l = bce_with_probs(&pt, target).unwrap();
        let g = grads_of(&l, &[&pt]).remove(0);
        if on.dtype == DType::F32 {
            // 1 − 1e-6 rounds in f32 so that ln(1 − p) moves by 1e-2 (condition number 1e6):
            // the f32 run is compared with Keel's f64 run on the f32-rounded inputs instead.
            let p32: Vec<f64> = p.iter().map(|v| *v as f32 as f64).collect();
            let p64 = Tensor::from_f64s(&p32, &[p.len()], DType::F64)
                .unwrap()
                .variable();
            let l64 = bce_with_probs(&p64, target).unwrap();
            on.check(&l, &l64.to_vec_f64().unwrap(), &what);
            all_close(&g, &grads_of(&l64, &[&p64]).remove(0), on.tol(), &what);
            continue;
        }
        on.check(&l, &[c["loss"].as_f64().unwrap()], &what);
        match c.get("grad_p") {
            Some(want) => all_close(&g, &floats(want), on.tol(), &what),
            None => assert!(g.iter().all(|v| v.is_finite()), "{what}: {g:?}"),
        }
    }
});

// --------------------------------------------------------------------------------------- metrics

#[test]
fn moments_and_fid_of_samples_match_numpy_and_scipy_sqrtm() {
    let f = fixture("metrics.json");
    let cases = f["fid_samples"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let dim = c["dim"].as_u64().unwrap() as usize;
        let (a, b) = (floats(&c["a"]), floats(&c["b"]));
        let (ma, ca) = mean_and_covariance(&a, dim).unwrap();
        all_close(&ma, &floats(&c["mean_a"]), tol::MOMENTS, "mean a");
        all_close(&ca, &floats(&c["cov_a"]), tol::MOMENTS, "cov a");
        let (mb, cb) = mean_and_covariance(&b, dim).unwrap();
        all_close(&mb, &floats(&c["mean_b"]), tol::MOMENTS, "mean b");
        all_close(&cb, &floats(&c["cov_b"]), tol::MOMENTS, "cov b");
        let want = c["fid"].as_f64().unwrap();
        let got = fid(&a, &b, dim).unwrap();
        assert!(
            (got - want).abs() <= tol::FID * want,
            "dim {dim}: keel {got} vs pytorch-fid {want}"
        );
        // From the reference's own moments, too.
        let from_moments = frechet_distance(
            &floats(&c["mean_a"]),
            &floats(&c["cov_a"]),
            &floats(&c["mean_b"]),
            &floats(&c["cov_b"]),
            dim,
        )
        .unwrap();
        assert!((from_moments - want).abs() <= tol::FID * want);
    }
}

#[test]
fn frechet_distance_matches_closed_forms() {
    let f = fixture("metrics.json");
    let cases = f["fid_closed_form"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let dim = c["dim"].as_u64().unwrap() as usize;
        let want = c["fid"].as_f64().unwrap();
        let got = frechet_distance(
            &floats(&c["mu1"]),
            &floats(&c["s1"]),
            &floats(&c["mu2"]),
            &floats(&c["s2"]),
            dim,
        )
        .unwrap();
        assert!(
            (got - want).abs() <= tol::FID * want,
            "{}: keel {got} vs closed form {want}",
            c["name"]
        );
    }
}

#[test]
fn fid_properties() {
    let f = fixture("metrics.json");
    let c = &f["fid_samples"][0];
    let dim = c["dim"].as_u64().unwrap() as usize;
    let (a, b) = (floats(&c["a"]), floats(&c["b"]));
    let ab = fid(&a, &b, dim).unwrap();
    // Symmetric, zero on itself, unchanged by a common shift, grows with a shift of one set.
    close_at(fid(&b, &a, dim).unwrap(), ab, 1e-10, "symmetry");
    assert!(fid(&a, &a, dim).unwrap() < 1e-10);
    let shift = |x: &[f64], s: f64| -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| v + s * (i % dim) as f64)
            .collect()
    };
    close_at(
        fid(&shift(&a, 0.7), &shift(&b, 0.7), dim).unwrap(),
        ab,
        1e-10,
        "common shift",
    );
    let moved = fid(&shift(&a, 3.0), &b, dim).unwrap();
    assert!(moved > ab + 1.0, "{moved} vs {ab}");
    // Fewer rows than features: singular covariances, still finite, non-negative, and 0 on
    // itself (pytorch-fid would add 1e-6·I here).
    let few = &a[..3 * dim];
    let v = fid(few, &b[..4 * dim], dim).unwrap();
    assert!(v.is_finite() && v >= 0.0, "{v}");
    assert!(fid(few, few, dim).unwrap() < 1e-10);
}

#[test]
fn inception_score_matches_numpy() {
    let f = fixture("metrics.json");
    let cases = f["inception_score"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let classes = c["classes"].as_u64().unwrap() as usize;
        let splits = c["splits"].as_u64().unwrap() as usize;
        let (mean, std) = inception_score(&floats(&c["logits"]), classes, splits).unwrap();
        let what = format!("{classes} classes, {splits} splits");
        close_at(mean, c["mean"].as_f64().unwrap(), tol::IS, &what);
        close_at(std, c["std"].as_f64().unwrap(), tol::IS, &what);
    }
    // Identical confident rows: p(y) = p(y|x), KL 0, score 1 with no spread.
    let same: Vec<f64> = (0..6).flat_map(|_| [5.0, 0.0, 0.0]).collect();
    let (m, s) = inception_score(&same, 3, 2).unwrap();
    close_at(m, 1.0, 1e-14, "identical rows");
    assert_eq!(s, 0.0);
    // One-hot rows spread evenly over C classes: the score is C.
    let hot: Vec<f64> = (0..8)
        .flat_map(|i| (0..4).map(move |j| if i % 4 == j { 800.0 } else { 0.0 }))
        .collect();
    close_at(
        inception_score(&hot, 4, 1).unwrap().0,
        4.0,
        1e-12,
        "one-hot",
    );
}

// ------------------------------------------------------------------------------------- bad input

fn invalid<T: std::fmt::Debug>(r: Result<T>, setting: &str) {
    match r {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(e.is_input_error());
            let msg = e.to_string();
            assert!(msg.contains(setting), "{msg} should name {setting}");
        }
        other => panic!("expected invalid {setting}, got {other:?}"),
    }
}

#[test]
fn losses_refuse_bad_input() {
    let on = On {
        device: Device::Cpu,
        dtype: DType::F64,
    };
    let v3 = on.var(&[0.1, 0.2, 0.3], &[3]);
    let v2 = on.var(&[0.1, 0.2], &[2]);
    let m32 = on.var(&[0.0; 6], &[3, 2]);
    let empty = on.var(&[], &[0]);
    invalid(critic_loss(&m32, &v3, true), "f_real");
    invalid(critic_loss(&v3, &empty, false), "f_fake");
    invalid(batch_softmax_weights(&m32), "f_fake");

    let x = on.tensor(&[0.0; 6], &[2, 3]);
    let critic = |x: &Tensor| -> Result<Tensor> { Ok(x.sum(&[1], false)?) };
    invalid(gradient_penalty(&critic, &x, &m32, &v2), "fake");
    invalid(gradient_penalty(&critic, &v2, &v2, &v2), "fake");
    invalid(gradient_penalty(&critic, &x, &x, &v3), "a");
    let wide = |x: &Tensor| -> Result<Tensor> { Ok(x.clone()) };
    invalid(gradient_penalty(&wide, &x, &x, &v2), "critic output");
    let w = on.var(&[1.0, 2.0, 3.0], &[1, 3]);
    let linear = |x: &Tensor| -> Result<Tensor> { Ok(x.matmul_t(&w, false, true)?) };
    invalid(
        no_grad(|| gradient_penalty(&linear, &x, &x, &v2)),
        "critic output",
    );
    assert!(gradient_penalty(&linear, &x, &x, &v2).is_ok());

    let h = on.var(&[0.0; 6], &[3, 2]);
    invalid(consistency_term(&v3, &v2, &h, &h, 2.0, 0.0), "f2");
    invalid(
        consistency_term(&v3, &v3, &h, &m32.reshape(&[2, 3]).unwrap(), 2.0, 0.0),
        "h2",
    );
    invalid(consistency_term(&v3, &v3, &v3, &v3, 2.0, 0.0), "h2");
    invalid(consistency_term(&v3, &v3, &h, &h, -1.0, 0.0), "lambda2");
    invalid(consistency_term(&v3, &v3, &h, &h, f64::NAN, 0.0), "lambda2");
    invalid(consistency_term(&v3, &v3, &h, &h, 2.0, f64::INFINITY), "m");

    invalid(probability_ratio(&v3, &v2), "d1");
    invalid(probability_ratio(&empty, &empty), "d1");
    for eps in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
        invalid(clipped_surrogate(&v3, &v3, eps, ClipRule::Code), "eps");
    }
    invalid(clipped_surrogate(&v3, &v2, 0.4, ClipRule::Ppo), "a");
    invalid(ClipRule::parse("PPO"), "clip_rule");
    for rule in [ClipRule::Code, ClipRule::Ppo] {
        assert_eq!(ClipRule::parse(rule.name()).unwrap(), rule);
    }
    assert_eq!(ClipRule::default(), ClipRule::Code);

    for target in [-0.1, 1.5, f64::NAN] {
        invalid(bce_with_probs(&v3, target), "target");
    }
    invalid(bce_with_probs(&empty, 1.0), "p");
}

#[test]
fn metrics_refuse_bad_input() {
    let rows: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
    invalid(mean_and_covariance(&rows[..3], 3), "features");
    invalid(mean_and_covariance(&rows[..7], 3), "features");
    invalid(mean_and_covariance(&rows, 0), "features");
    let mut bad = rows.clone();
    bad[5] = f64::NAN;
    invalid(mean_and_covariance(&bad, 3), "features");
    bad[5] = f64::INFINITY;
    invalid(fid(&rows, &bad, 3), "features");
    invalid(fid(&rows, &rows[..3], 3), "features");

    let (m, s) = mean_and_covariance(&rows, 3).unwrap();
    invalid(frechet_distance(&m, &s, &m[..2], &s, 3), "mu2");
    invalid(frechet_distance(&m, &s[..8], &m, &s, 3), "s1");
    invalid(frechet_distance(&m, &s, &m, &s, 0), "dim");
    let mut asym = s.clone();
    asym[1] += 0.5;
    invalid(frechet_distance(&m, &s, &m, &asym, 3), "s2");
    let mut nan = m.clone();
    nan[0] = f64::NAN;
    invalid(frechet_distance(&nan, &s, &m, &s, 3), "mu1");

    invalid(inception_score(&rows, 1, 1), "classes");
    invalid(inception_score(&rows[..4], 4, 1), "logits");
    invalid(inception_score(&rows[..10], 4, 1), "logits");
    invalid(inception_score(&rows, 4, 0), "splits");
    invalid(inception_score(&rows, 4, 4), "splits");
    invalid(inception_score(&bad, 4, 1), "logits");
}
