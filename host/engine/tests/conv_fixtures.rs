//! The engine's image ops against PyTorch in f64: `fixtures/nn/conv_ops.json`, written by
//! `fixtures/gen/conv_ops.py` (torch 2.5.1 and scipy 1.17.1 on the CPU, float64). For each case
//! the fixture holds the inputs, the op's parameters, the output `y`, a random cotangent `gy` and
//! the gradients of `sum(y * gy)` from `torch.autograd.grad`. The reference calls
//! (`F` = `torch.nn.functional`):
//!
//! - `F.conv2d(x, w, b, stride, padding, dilation, groups)`
//! - `F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)`
//! - `F.max_pool2d(x, kernel, stride, padding)`,
//!   `F.avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True)`,
//!   `x.mean((2, 3))`
//! - `F.batch_norm(x, running_mean, running_var, gamma, beta, training=True, momentum=0.1,
//!   eps=1e-5)` (the running stats updated in place) and the same with `training=False`
//! - `grid = F.affine_grid(theta, (N, C, Ho, Wo), align_corners=True)`,
//!   `F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)`
//! - `scipy.linalg.expm(A)` (values) and `torch.linalg.matrix_exp` autograd (gradients; the
//!   script checks them against `scipy.linalg.expm_frechet(Aᵀ, gy)`)
//!
//! Every forward value and gradient is compared here to 1e-10 (see [`TOL`]). The running-stat
//! update is computed from `batch_norm_train`'s returned batch mean and unbiased variance with
//! PyTorch's momentum 0.1. Each test runs in f64 and in f32 (the inputs, weights and cotangents
//! are multiples of 2⁻¹⁰, exact in f32; the f32 run compares with the same f64 values at
//! [`TOL_F32`]), on the CPU, and on a GPU as ignored `cuda` variants (`cuda/check.sh` runs the
//! ignored tests on a GPU machine). `CONV_FIXTURES_REPORT=1 cargo test -p keel-engine --test
//! conv_fixtures -- --nocapture` prints every comparison's error relative to its tensor's scale.

use std::sync::OnceLock;

use keel_engine::autodiff::grad;
use keel_engine::tensor::{Conv2dOpts, ConvTranspose2dOpts};
use keel_engine::{DType, Device, Tensor};
use serde_json::Value;

/// |engine − torch| ≤ TOL · max(1, max |torch| over the tensor), elementwise. Both sides compute
/// in f64 from the same inputs; the only differences are rounding and summation order over at most
/// a few hundred terms of order one (~1e-14 relative to the tensor's scale, which is why the
/// scale is the tensor's largest magnitude and not each element's: small entries come from
/// cancelling sums; measured: at most 2.0e-15). 1e-10 leaves four orders of room for that and
/// still fails on any wrong index, sign, padding or convention, which moves values by 1e-3 or
/// more.
const TOL: f64 = 1e-10;

/// The same comparison for the f32 run against the f64 reference: the inputs are exact in f32
/// (theta, the grid and the expm matrices are rounded to it), and every product and partial sum
/// is rounded to f32 (ε = 6e-8) over at most a few hundred terms. Measured: at most 7.0e-7 (the
/// warp), against 2.0e-15 in f64; 1e-5 leaves a factor of 14 and still fails on a wrong index
/// or convention.
const TOL_F32: f64 = 1e-5;

/// Where a test body runs: the device and the dtype of every tensor it makes.
#[derive(Clone, Copy)]
struct On {
    device: Device,
    dtype: DType,
}

impl On {
    fn tol(self) -> f64 {
        if self.dtype == DType::F64 {
            TOL
        } else {
            TOL_F32
        }
    }
}

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        // From the source tree, or (a bundled binary on a GPU machine, cuda/check.sh) from the
        // repository root it runs in.
        let built = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/nn/conv_ops.json"
        );
        let text = std::fs::read_to_string(built)
            .or_else(|_| std::fs::read_to_string("fixtures/nn/conv_ops.json"))
            .expect("read fixtures/nn/conv_ops.json");
        serde_json::from_str(&text).expect("parse conv_ops.json")
    })
}

fn section(name: &str, at_least: usize) -> &'static [Value] {
    let cases = fixture()[name]
        .as_array()
        .unwrap_or_else(|| panic!("fixture has no section {name}"));
    assert!(
        cases.len() >= at_least,
        "{name}: {} cases, expected at least {at_least}",
        cases.len()
    );
    cases
}

fn dims(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

fn data(v: &Value) -> Vec<f64> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A constant tensor from a fixture `{shape, data}`, in `on`'s dtype on its device.
fn tensor(v: &Value, on: On) -> Tensor {
    Tensor::from_f64s(&data(v), &dims(v), on.dtype)
        .and_then(|t| t.to_device(on.device))
        .expect("tensor from fixture")
}

fn pair(v: &Value) -> [usize; 2] {
    let a = v.as_array().expect("pair");
    [
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    ]
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("case name")
}

/// Asserts shape, dtype and device, and `|got − want| ≤ tol · max(1, max|want|)`.
fn check(on: On, what: &str, got: &Tensor, want: &Value) {
    assert_eq!(got.dims(), dims(want).as_slice(), "{what}: shape");
    assert_eq!(got.dtype(), on.dtype, "{what}: dtype");
    assert_eq!(got.device(), on.device, "{what}: device");
    let tol = on.tol();
    let g = got.to_vec_f64().expect("to_vec_f64");
    let w = data(want);
    let scale = w.iter().fold(1.0_f64, |m, x| m.max(x.abs()));
    let (mut worst, mut at) = (0.0_f64, 0);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let d = (a - b).abs();
        assert!(d.is_finite(), "{what}[{i}]: engine {a}, torch {b}");
        if d > worst {
            worst = d;
            at = i;
        }
    }
    if std::env::var_os("CONV_FIXTURES_REPORT").is_some() {
        eprintln!("ERR {:?} {what} {:.3e}", on.dtype, worst / scale);
    }
    assert!(
        worst <= tol * scale,
        "{what}: |engine − torch| = {worst:.3e} at flat index {at} (engine {}, torch {}), \
         allowed {:.1e}",
        g[at],
        w[at],
        tol * scale
    );
}

/// The gradients of `sum(y * gy)` with respect to `inputs`, each required to exist.
fn vjp(what: &str, y: &Tensor, gy: &Tensor, inputs: &[&Tensor]) -> Vec<Tensor> {
    grad(&[y], &[Some(gy)], inputs, false)
        .unwrap_or_else(|e| panic!("{what}: grad failed: {e}"))
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.unwrap_or_else(|| panic!("{what}: no gradient for input {i}")))
        .collect()
}

/// One body per op, run in f64 and f32 on the CPU and (ignored unless a GPU is there) on CUDA
/// device 0.
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

test_device!(conv2d_matches_pytorch, |on| {
    for case in section("conv2d", 8) {
        let n = name(case);
        let x = tensor(&case["x"], on).variable();
        let w = tensor(&case["weight"], on).variable();
        let b = (!case["bias"].is_null()).then(|| tensor(&case["bias"], on).variable());
        let opts = Conv2dOpts {
            stride: pair(&case["stride"]),
            padding: pair(&case["padding"]),
            dilation: pair(&case["dilation"]),
            groups: case["groups"].as_u64().unwrap() as usize,
        };
        let y = x
            .conv2d(&w, b.as_ref(), opts)
            .unwrap_or_else(|e| panic!("conv2d {n}: {e}"));
        check(on, &format!("conv2d {n} y"), &y, &case["y"]);
        let gy = tensor(&case["gy"], on);
        let mut inputs = vec![&x, &w];
        inputs.extend(b.as_ref());
        let g = vjp(n, &y, &gy, &inputs);
        check(on, &format!("conv2d {n} grad x"), &g[0], &case["grad_x"]);
        check(
            on,
            &format!("conv2d {n} grad weight"),
            &g[1],
            &case["grad_weight"],
        );
        if b.is_some() {
            check(
                on,
                &format!("conv2d {n} grad bias"),
                &g[2],
                &case["grad_bias"],
            );
        }
    }
});

test_device!(conv_transpose2d_matches_pytorch, |on| {
    for case in section("conv_transpose2d", 6) {
        let n = name(case);
        let x = tensor(&case["x"], on).variable();
        let w = tensor(&case["weight"], on).variable();
        let b = (!case["bias"].is_null()).then(|| tensor(&case["bias"], on).variable());
        let opts = ConvTranspose2dOpts {
            stride: pair(&case["stride"]),
            padding: pair(&case["padding"]),
            output_padding: pair(&case["output_padding"]),
            dilation: pair(&case["dilation"]),
            groups: case["groups"].as_u64().unwrap() as usize,
        };
        let y = x
            .conv_transpose2d(&w, b.as_ref(), opts)
            .unwrap_or_else(|e| panic!("conv_transpose2d {n}: {e}"));
        check(on, &format!("conv_transpose2d {n} y"), &y, &case["y"]);
        let gy = tensor(&case["gy"], on);
        let mut inputs = vec![&x, &w];
        inputs.extend(b.as_ref());
        let g = vjp(n, &y, &gy, &inputs);
        check(
            on,
            &format!("conv_transpose2d {n} grad x"),
            &g[0],
            &case["grad_x"],
        );
        check(
            on,
            &format!("conv_transpose2d {n} grad weight"),
            &g[1],
            &case["grad_weight"],
        );
        if b.is_some() {
            check(
                on,
                &format!("conv_transpose2d {n} grad bias"),
                &g[2],
                &case["grad_bias"],
            );
        }
    }
});

test_device!(pooling_matches_pytorch, |on| {
    let cases = section("pool", 12);
    let mut kinds = [0usize; 3];
    for case in cases {
        let n = name(case);
        let x = tensor(&case["x"], on).variable();
        let kind = case["kind"].as_str().unwrap();
        let y = match kind {
            "global_mean" => {
                kinds[2] += 1;
                x.global_mean_pool()
            }
            "max" | "avg" => {
                let (k, s, p) = (
                    pair(&case["kernel"]),
                    pair(&case["stride"]),
                    pair(&case["padding"]),
                );
                if kind == "max" {
                    kinds[0] += 1;
                    x.max_pool2d(k, s, p)
                } else {
                    kinds[1] += 1;
                    x.avg_pool2d(k, s, p)
                }
            }
            other => panic!("unknown pool kind {other}"),
        }
        .unwrap_or_else(|e| panic!("pool {n}: {e}"));
        check(on, &format!("pool {n} y"), &y, &case["y"]);
        let g = vjp(n, &y, &tensor(&case["gy"], on), &[&x]);
        check(on, &format!("pool {n} grad x"), &g[0], &case["grad_x"]);
    }
    assert!(
        kinds.iter().all(|&k| k >= 2),
        "pool kinds covered: {kinds:?}"
    );
});

test_device!(batch_norm_matches_pytorch, |on| {
    let (mut train, mut eval) = (0, 0);
    for case in section("batch_norm", 4) {
        let n = name(case);
        let x = tensor(&case["x"], on).variable();
        let gamma = tensor(&case["gamma"], on).variable();
        let beta = tensor(&case["beta"], on).variable();
        let eps = case["eps"].as_f64().unwrap();
        let rm = tensor(&case["running_mean"], on);
        let rv = tensor(&case["running_var"], on);
        let y = if case["training"].as_bool().unwrap() {
            train += 1;
            let (y, mean, var) = x
                .batch_norm_train(&gamma, &beta, eps)
                .unwrap_or_else(|e| panic!("batch_norm_train {n}: {e}"));
            // PyTorch: running ← (1 − momentum)·running + momentum·batch stat (unbiased var).
            let m = case["momentum"].as_f64().unwrap();
            let update = |run: &Tensor, stat: &Tensor| -> Vec<f64> {
                let r = run.to_vec_f64().unwrap();
                let s = stat.to_vec_f64().unwrap();
                assert_eq!(r.len(), s.len(), "{n}: batch stat length");
                r.iter()
                    .zip(&s)
                    .map(|(r, s)| (1.0 - m) * r + m * s)
                    .collect()
            };
            let c = [rm.numel()];
            let after = |v: Vec<f64>| {
                Tensor::from_f64s(&v, &c, on.dtype)
                    .and_then(|t| t.to_device(on.device))
                    .unwrap()
            };
            let rm_after = after(update(&rm, &mean));
            let rv_after = after(update(&rv, &var));
            check(
                on,
                &format!("bn {n} running mean"),
                &rm_after,
                &case["running_mean_after"],
            );
            check(
                on,
                &format!("bn {n} running var"),
                &rv_after,
                &case["running_var_after"],
            );
            y
        } else {
            eval += 1;
            x.batch_norm_eval(&gamma, &beta, &rm, &rv, eps)
                .unwrap_or_else(|e| panic!("batch_norm_eval {n}: {e}"))
        };
        check(on, &format!("bn {n} y"), &y, &case["y"]);
        let g = vjp(n, &y, &tensor(&case["gy"], on), &[&x, &gamma, &beta]);
        check(on, &format!("bn {n} grad x"), &g[0], &case["grad_x"]);
        check(
            on,
            &format!("bn {n} grad gamma"),
            &g[1],
            &case["grad_gamma"],
        );
        check(on, &format!("bn {n} grad beta"), &g[2], &case["grad_beta"]);
    }
    assert!(train >= 2 && eval >= 2, "train {train}, eval {eval}");
});

test_device!(affine_grid_and_grid_sample_match_pytorch, |on| {
    let mut resized = 0;
    for case in section("warp", 8) {
        let n = name(case);
        let img = tensor(&case["image"], on).variable();
        let theta = tensor(&case["theta"], on).variable();
        let [ho, wo] = pair(&case["out_size"]);
        let batch = img.dims()[0];
        if [ho, wo] != [img.dims()[2], img.dims()[3]] {
            resized += 1;
        }
        assert!(
            case["fraction_outside"].as_f64().unwrap() > 0.05,
            "{n}: the fixture should sample outside the image"
        );
        // The composed warp: gradients to the image and through the grid to theta.
        let grid = Tensor::affine_grid(&theta, batch, ho, wo)
            .unwrap_or_else(|e| panic!("affine_grid {n}: {e}"));
        check(on, &format!("warp {n} grid"), &grid, &case["grid"]);
        let y = img
            .grid_sample(&grid)
            .unwrap_or_else(|e| panic!("grid_sample {n}: {e}"));
        check(on, &format!("warp {n} y"), &y, &case["y"]);
        let gy = tensor(&case["gy"], on);
        let g = vjp(n, &y, &gy, &[&img, &theta]);
        check(
            on,
            &format!("warp {n} grad image"),
            &g[0],
            &case["grad_image"],
        );
        check(
            on,
            &format!("warp {n} grad theta"),
            &g[1],
            &case["grad_theta"],
        );
        // grid_sample alone, with PyTorch's grid as the variable.
        let grid_t = tensor(&case["grid"], on).variable();
        let y2 = img.grid_sample(&grid_t).unwrap();
        check(on, &format!("warp {n} y (fixture grid)"), &y2, &case["y"]);
        let g2 = vjp(n, &y2, &gy, &[&grid_t]);
        check(
            on,
            &format!("warp {n} grad grid"),
            &g2[0],
            &case["grad_grid"],
        );
    }
    assert!(
        resized >= 1,
        "no case with an output size other than the input's"
    );
});

test_device!(matrix_exp_matches_scipy_and_pytorch, |on| {
    let mut sizes = std::collections::BTreeSet::new();
    for case in section("matrix_exp", 10) {
        let n = name(case);
        let a = tensor(&case["a"], on).variable();
        sizes.insert(*a.dims().last().unwrap());
        let y = a
            .matrix_exp()
            .unwrap_or_else(|e| panic!("matrix_exp {n}: {e}"));
        check(on, &format!("expm {n} value (scipy)"), &y, &case["y"]);
        let g = vjp(n, &y, &tensor(&case["gy"], on), &[&a]);
        check(
            on,
            &format!("expm {n} grad (torch)"),
            &g[0],
            &case["grad_a"],
        );
    }
    assert!(sizes.contains(&3) && sizes.contains(&5), "sizes {sizes:?}");
});
