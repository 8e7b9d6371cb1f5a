//! One test body per operation, run on every device (candle's `test_device!` pattern): the
//! `_cpu` variant runs everywhere; the `_cuda` variant is ignored unless run on a machine with a
//! GPU (`cuda/check.sh` runs the ignored tests there), where it compares the GPU's results with
//! the CPU backend's. The kernels' logic is also checked without a GPU in `cuda_emu.rs`.

use keel_engine::autodiff::backward;
use keel_engine::{DType, Device, Result, Tensor};

/// Builds `f` on `device` and on the CPU from the same host inputs and compares the results.
fn same_on(device: Device, dims: &[&[usize]], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(7);
    let inputs: Vec<Vec<f64>> = dims
        .iter()
        .map(|d| {
            (0..d.iter().product::<usize>())
                .map(|_| keel_core::random::uniform::<f64, _>(&mut rng) * 2.0 - 0.5)
                .collect()
        })
        .collect();
    for dtype in [DType::F32, DType::F64] {
        let make = |dev: Device| -> Vec<Tensor> {
            inputs
                .iter()
                .zip(dims)
                .map(|(v, d)| {
                    Tensor::from_f64s(v, d, dtype)
                        .unwrap()
                        .to_device(dev)
                        .unwrap()
                })
                .collect()
        };
        let on_device = f(&make(device)).unwrap();
        assert_eq!(on_device.device(), device, "result stays on {device}");
        let got = on_device.to_vec_f64().unwrap();
        let want = f(&make(Device::Cpu)).unwrap().to_vec_f64().unwrap();
        assert_eq!(got.len(), want.len());
        let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs());
            assert!(ok, "{device} {dtype} element {i}: {a} vs cpu {b}");
        }
    }
}

macro_rules! test_device {
    ($name:ident, |$d:ident| $body:block) => {
        mod $name {
            use super::*;
            fn run($d: Device) $body
            #[test]
            fn cpu() {
                run(Device::Cpu);
            }
            #[test]
            #[ignore = "needs a GPU: run cuda/check.sh on a GPU machine"]
            fn cuda() {
                run(Device::Cuda(0));
            }
        }
    };
}

test_device!(unary_ops, |d| {
    same_on(d, &[&[3, 257]], |x| {
        let a = &x[0];
        let parts = [
            a.neg()?,
            a.exp()?,
            a.add_scalar(1.0)?.log()?,
            a.log1p()?,
            a.tanh()?,
            a.sigmoid()?,
            a.softplus()?,
            a.relu()?,
            a.sin()?,
            a.cos()?,
            a.abs()?.sqrt()?,
            a.square()?,
            a.abs()?,
            a.step()?,
            a.sign()?,
            a.affine(-2.0, 0.5)?,
            a.abs()?.powf(1.7)?,
        ];
        Tensor::concat(&parts, 0)
    });
});

test_device!(binary_broadcast_and_where, |d| {
    same_on(d, &[&[4, 1, 33], &[5, 33], &[33]], |x| {
        let s = x[0].add(&x[1])?;
        let p = x[0].mul(&x[2])?.sub(&x[1])?;
        let q = x[1].div(&x[2].add_scalar(1.0)?)?;
        let w = Tensor::where_(&x[1].gt(&x[2])?, &s, &p)?;
        Tensor::concat(
            &[
                w.reshape(&[4 * 5 * 33])?,
                q.reshape(&[5 * 33])?,
                x[1].maximum(&x[2])?.reshape(&[165])?,
                x[1].eq(&x[1])?.reshape(&[165])?,
            ],
            0,
        )
    });
});

test_device!(matmul_variants, |d| {
    same_on(d, &[&[2, 7, 5], &[5, 3], &[2, 3, 5], &[2, 5, 7]], |x| {
        let a = x[0].matmul(&x[1])?; // shared rhs
        let b = x[0].matmul_t(&x[2], false, true)?; // batched, rhs transposed
        let c = x[3].matmul_t(&x[0], true, true)?; // both transposed: [2, 7, 7]
        Tensor::concat(
            &[a.reshape(&[42])?, b.reshape(&[42])?, c.reshape(&[98])?],
            0,
        )
    });
});

test_device!(reductions_and_softmax, |d| {
    same_on(d, &[&[3, 4, 65]], |x| {
        let s = x[0].sum(&[1], false)?.reshape(&[195])?;
        let m = x[0].max(-1, false)?.reshape(&[12])?;
        let l = x[0].log_softmax(-1)?.reshape(&[780])?;
        let e = x[0].logsumexp(0, false)?.reshape(&[260])?;
        Tensor::concat(&[s, m, l, e, x[0].mean_all()?.reshape(&[1])?], 0)
    });
});

test_device!(layout_and_indexing, |d| {
    same_on(d, &[&[2, 3, 4], &[3, 1]], |x| {
        let p = x[0].permute(&[2, 0, 1])?.reshape(&[24])?;
        let b = x[1].broadcast_to(&[2, 3, 4])?.reshape(&[24])?;
        let n = x[0].narrow(2, 1, 2)?.reshape(&[12])?;
        let pad = x[0].pad_axis(1, 1, 5)?.reshape(&[40])?;
        let sel = x[0].index_select(2, &[3, 0, 3])?.reshape(&[18])?;
        let add = x[0].index_add(1, &[2, 2, 0], 4)?.reshape(&[32])?;
        let st = Tensor::stack(&[x[0].clone(), x[0].square()?], 1)?.reshape(&[48])?;
        let c = x[0]
            .to_dtype(DType::F64)?
            .to_dtype(x[0].dtype())?
            .reshape(&[24])?;
        Tensor::concat(&[p, b, n, pad, sel, add, st, c], 0)
    });
});

test_device!(gradients_of_a_small_network, |d| {
    same_on(d, &[&[16, 5], &[8, 5], &[8], &[3, 8]], |x| {
        let (w1, b1, w2) = (x[1].variable(), x[2].variable(), x[3].variable());
        let h = x[0].matmul_t(&w1, false, true)?.add(&b1)?.tanh()?;
        let loss = h
            .matmul_t(&w2, false, true)?
            .cross_entropy(&[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0])?;
        let g = backward(&loss, &[&w1, &b1, &w2])?;
        Tensor::concat(
            &[
                g[0].reshape(&[40])?,
                g[1].clone(),
                g[2].reshape(&[24])?,
                loss.reshape(&[1])?,
            ],
            0,
        )
    });
});

test_device!(optimizer_steps, |d| {
    use keel_engine::optim::{Optimizer, OptimizerKind};
    use keel_engine::params::{ParamId, Params};
    for kind in [
        OptimizerKind::adam(),
        OptimizerKind::adamw(0.01),
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
        },
        OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
    ] {
        let run = |dev: Device| -> Vec<f64> {
            let mut p = Params::new();
            p.insert(
                "w",
                Tensor::from_f64s(&[0.5, -1.0, 2.0, 0.25, 0.0], &[5], DType::F64)
                    .unwrap()
                    .to_device(dev)
                    .unwrap(),
            )
            .unwrap();
            let mut opt = Optimizer::new(kind, &p).unwrap();
            for k in 0..3 {
                let g = Tensor::from_f64s(&[0.1 * k as f64, -0.3, 1.0, 0.0, 2.5], &[5], DType::F64)
                    .unwrap()
                    .to_device(dev)
                    .unwrap();
                opt.step(&mut p, &[g], 0.01).unwrap();
            }
            p.get(ParamId(0)).to_vec_f64().unwrap()
        };
        let (a, b) = (run(d), run(Device::Cpu));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12, "{kind:?} on {d}: {x} vs {y}");
        }
    }
});

test_device!(random_normals_have_unit_moments, |d| {
    let x = Tensor::randn(&[100_000], DType::F64, d, 3)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
    // Standard errors: 0.003 for the mean, 0.0045 for the variance.
    assert!(
        mean.abs() < 0.015 && (var - 1.0).abs() < 0.02,
        "{d}: mean {mean}, variance {var}"
    );
    let odd = Tensor::randn(&[7], DType::F32, d, 1).unwrap();
    assert_eq!(odd.numel(), 7);
});

#[test]
fn a_missing_gpu_is_a_clear_error_not_a_panic() {
    // On a machine with a usable GPU this simply succeeds; without one it must be `NoGpu`
    // (or `CudaNotCompiled` in a CPU-only build) with a reason.
    match Tensor::zeros(&[3], DType::F32)
        .unwrap()
        .to_device(Device::Cuda(0))
    {
        Ok(t) => assert_eq!(t.device(), Device::Cuda(0)),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("GPU") || msg.contains("CUDA"), "{msg}");
        }
    }
    let e = Tensor::zeros(&[3], DType::F32)
        .unwrap()
        .to_device(Device::Cuda(99))
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty());
}
