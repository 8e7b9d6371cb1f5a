//! One test body per operation, run on every device (candle's `test_device!` pattern). The
//! `_cpu` variant runs everywhere and compares the CPU backend, in f32 and f64, with a reference
//! written out in plain `f64` Rust in this file (each operation's definition, independent of the
//! engine's kernels); the `_cuda` variant is ignored unless run on a machine with a GPU
//! (`cuda/check.sh` runs the ignored tests there), where it compares the GPU's results with the
//! CPU backend's. The kernels' logic is also checked without a GPU in `cuda_emu.rs`.

use keel_engine::autodiff::backward;
use keel_engine::{DType, Device, Result, Tensor};

/// The test's inputs: uniform in [−0.5, 1.5), seeded.
fn inputs(dims: &[&[usize]]) -> Vec<Vec<f64>> {
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(7);
    dims.iter()
        .map(|d| {
            (0..d.iter().product::<usize>())
                .map(|_| keel_core::random::uniform::<f64, _>(&mut rng) * 2.0 - 0.5)
                .collect()
        })
        .collect()
}

/// Builds `f` on `device` from the inputs of `dims` and compares the result, in f32 and f64:
/// on the CPU with `reference` (plain f64 arithmetic on the same inputs), elsewhere with the
/// CPU backend's result. Relative tolerances against the reference: f32 1e-6, f64 1e-14
/// (measured: at most 1.2e-7 and 3.8e-16 — the rounding of inputs, results and sums in
/// different orders; a wrong index or formula is off by far more). Against the CPU backend:
/// f32 2e-5 (the GPU's own `exp`, `tanh` … and its summation order), f64 1e-12.
fn same_on(
    device: Device,
    dims: &[&[usize]],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let inputs = inputs(dims);
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
        let (want, against, tol) = if device == Device::Cpu {
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            (reference(&inputs), "reference", tol)
        } else {
            let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
            let cpu = f(&make(Device::Cpu)).unwrap().to_vec_f64().unwrap();
            (cpu, "cpu", tol)
        };
        assert_eq!(got.len(), want.len(), "{device} {dtype}: element count");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs());
            assert!(ok, "{device} {dtype} element {i}: {a} vs {against} {b}");
        }
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// Every element of a tensor of shape `dims`, in row-major order, from its multi-index.
fn build(dims: &[usize], f: impl Fn(&[usize]) -> f64) -> Vec<f64> {
    let n: usize = dims.iter().product();
    let st = strides(dims);
    (0..n)
        .map(|flat| {
            let ix: Vec<usize> = st.iter().zip(dims).map(|(s, d)| flat / s % d).collect();
            f(&ix)
        })
        .collect()
}

/// `v` (shape `dims`) at the multi-index `ix` of a broadcast shape: dimensions aligned on the
/// right, a dimension of size 1 read at 0.
fn at(v: &[f64], dims: &[usize], ix: &[usize]) -> f64 {
    let st = strides(dims);
    let off = ix.len() - dims.len();
    let i: usize = (0..dims.len())
        .map(|k| if dims[k] == 1 { 0 } else { ix[off + k] * st[k] })
        .sum();
    v[i]
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
    same_on(
        d,
        &[&[3, 257]],
        |x| {
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
        },
        |x| {
            let ops: [fn(f64) -> f64; 17] = [
                |a| -a,
                f64::exp,
                |a| (a + 1.0).ln(),
                f64::ln_1p,
                f64::tanh,
                |a| 1.0 / (1.0 + (-a).exp()),
                |a| a.exp().ln_1p(),
                |a| a.max(0.0),
                f64::sin,
                f64::cos,
                |a| a.abs().sqrt(),
                |a| a * a,
                f64::abs,
                |a| if a > 0.0 { 1.0 } else { 0.0 },
                f64::signum,
                |a| -2.0 * a + 0.5,
                |a| a.abs().powf(1.7),
            ];
            ops.iter()
                .flat_map(|op| x[0].iter().map(|&a| op(a)))
                .collect()
        },
    );
});

test_device!(binary_broadcast_and_where, |d| {
    same_on(
        d,
        &[&[4, 1, 33], &[5, 33], &[33]],
        |x| {
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
        },
        |x| {
            let (d0, d1, d2): (&[usize], &[usize], &[usize]) = (&[4, 1, 33], &[5, 33], &[33]);
            let (a, b, c) = (
                |ix: &[usize]| at(&x[0], d0, ix),
                |ix: &[usize]| at(&x[1], d1, ix),
                |ix: &[usize]| at(&x[2], d2, ix),
            );
            let mut out = build(&[4, 5, 33], |ix| {
                if b(ix) > c(ix) {
                    a(ix) + b(ix)
                } else {
                    a(ix) * c(ix) - b(ix)
                }
            });
            out.extend(build(&[5, 33], |ix| b(ix) / (c(ix) + 1.0)));
            out.extend(build(&[5, 33], |ix| b(ix).max(c(ix))));
            out.extend(build(&[5, 33], |_| 1.0));
            out
        },
    );
});

test_device!(matmul_variants, |d| {
    same_on(
        d,
        &[&[2, 7, 5], &[5, 3], &[2, 3, 5], &[2, 5, 7]],
        |x| {
            let a = x[0].matmul(&x[1])?; // shared rhs
            let b = x[0].matmul_t(&x[2], false, true)?; // batched, rhs transposed
            let c = x[3].matmul_t(&x[0], true, true)?; // both transposed: [2, 7, 7]
            Tensor::concat(
                &[a.reshape(&[42])?, b.reshape(&[42])?, c.reshape(&[98])?],
                0,
            )
        },
        |x| {
            // x0 [2, 7, 5], x1 [5, 3], x2 [2, 3, 5], x3 [2, 5, 7].
            let x0 = |b: usize, i: usize, k: usize| x[0][(b * 7 + i) * 5 + k];
            let x1 = |k: usize, j: usize| x[1][k * 3 + j];
            let x2 = |b: usize, j: usize, k: usize| x[2][(b * 3 + j) * 5 + k];
            let x3 = |b: usize, k: usize, i: usize| x[3][(b * 5 + k) * 7 + i];
            let mut out = build(&[2, 7, 3], |ix| {
                (0..5).map(|k| x0(ix[0], ix[1], k) * x1(k, ix[2])).sum()
            });
            out.extend(build(&[2, 7, 3], |ix| {
                (0..5)
                    .map(|k| x0(ix[0], ix[1], k) * x2(ix[0], ix[2], k))
                    .sum()
            }));
            // (x3ᵀ)(x0ᵀ): [7, 5]·[5, 7] per batch.
            out.extend(build(&[2, 7, 7], |ix| {
                (0..5)
                    .map(|k| x3(ix[0], k, ix[1]) * x0(ix[0], ix[2], k))
                    .sum()
            }));
            out
        },
    );
});

test_device!(reductions_and_softmax, |d| {
    same_on(
        d,
        &[&[3, 4, 65]],
        |x| {
            let s = x[0].sum(&[1], false)?.reshape(&[195])?;
            let m = x[0].max(-1, false)?.reshape(&[12])?;
            let l = x[0].log_softmax(-1)?.reshape(&[780])?;
            let e = x[0].logsumexp(0, false)?.reshape(&[260])?;
            Tensor::concat(&[s, m, l, e, x[0].mean_all()?.reshape(&[1])?], 0)
        },
        |x| {
            let v = |i: usize, j: usize, k: usize| x[0][(i * 4 + j) * 65 + k];
            let row_max = |i: usize, j: usize| (0..65).map(|k| v(i, j, k)).fold(f64::MIN, f64::max);
            let row_lse = |i: usize, j: usize| {
                let m = row_max(i, j);
                m + (0..65).map(|k| (v(i, j, k) - m).exp()).sum::<f64>().ln()
            };
            let mut out = build(&[3, 65], |ix| (0..4).map(|j| v(ix[0], j, ix[1])).sum());
            out.extend(build(&[3, 4], |ix| row_max(ix[0], ix[1])));
            out.extend(build(&[3, 4, 65], |ix| {
                v(ix[0], ix[1], ix[2]) - row_lse(ix[0], ix[1])
            }));
            out.extend(build(&[4, 65], |ix| {
                (0..3).map(|i| v(i, ix[0], ix[1]).exp()).sum::<f64>().ln()
            }));
            out.push(x[0].iter().sum::<f64>() / x[0].len() as f64);
            out
        },
    );
});

test_device!(layout_and_indexing, |d| {
    same_on(
        d,
        &[&[2, 3, 4], &[3, 1]],
        |x| {
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
        },
        |x| {
            let v = |i: usize, j: usize, k: usize| x[0][(i * 3 + j) * 4 + k];
            let mut out = build(&[4, 2, 3], |ix| v(ix[1], ix[2], ix[0]));
            out.extend(build(&[2, 3, 4], |ix| x[1][ix[1]]));
            out.extend(build(&[2, 3, 2], |ix| v(ix[0], ix[1], ix[2] + 1)));
            out.extend(build(&[2, 5, 4], |ix| {
                if (1..4).contains(&ix[1]) {
                    v(ix[0], ix[1] - 1, ix[2])
                } else {
                    0.0
                }
            }));
            let picks = [3, 0, 3];
            out.extend(build(&[2, 3, 3], |ix| v(ix[0], ix[1], picks[ix[2]])));
            let targets = [2, 2, 0];
            out.extend(build(&[2, 4, 4], |ix| {
                (0..3)
                    .filter(|&m| targets[m] == ix[1])
                    .map(|m| v(ix[0], m, ix[2]))
                    .sum()
            }));
            out.extend(build(&[2, 2, 3, 4], |ix| {
                let a = v(ix[0], ix[2], ix[3]);
                if ix[1] == 0 {
                    a
                } else {
                    a * a
                }
            }));
            out.extend(x[0].iter().copied());
            out
        },
    );
});

test_device!(gradients_of_a_small_network, |d| {
    same_on(
        d,
        &[&[16, 5], &[8, 5], &[8], &[3, 8]],
        |x| {
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
        },
        |x| {
            // Backpropagation written out: h = tanh(X W₁ᵀ + b₁), logits = h W₂ᵀ, loss = mean
            // cross-entropy; ∂loss/∂logits = (softmax − onehot)/n.
            let (n, d, k, c) = (16, 5, 8, 3);
            let (xs, w1, b1, w2) = (&x[0], &x[1], &x[2], &x[3]);
            let h: Vec<f64> = build(&[n, k], |ix| {
                let z: f64 = (0..d).map(|q| xs[ix[0] * d + q] * w1[ix[1] * d + q]).sum();
                (z + b1[ix[1]]).tanh()
            });
            let logits = build(&[n, c], |ix| {
                (0..k).map(|q| h[ix[0] * k + q] * w2[ix[1] * k + q]).sum()
            });
            let mut loss = 0.0;
            let mut dlogits = vec![0.0; n * c];
            for r in 0..n {
                let row = &logits[r * c..(r + 1) * c];
                let m = row.iter().fold(f64::MIN, |a, &b| a.max(b));
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                loss -= (row[r % 3] - lse) / n as f64;
                for j in 0..c {
                    let onehot = if j == r % 3 { 1.0 } else { 0.0 };
                    dlogits[r * c + j] = ((row[j] - lse).exp() - onehot) / n as f64;
                }
            }
            let dz = build(&[n, k], |ix| {
                let dh: f64 = (0..c)
                    .map(|j| dlogits[ix[0] * c + j] * w2[j * k + ix[1]])
                    .sum();
                let hv = h[ix[0] * k + ix[1]];
                dh * (1.0 - hv * hv)
            });
            let mut out = build(&[k, d], |ix| {
                (0..n).map(|r| dz[r * k + ix[0]] * xs[r * d + ix[1]]).sum()
            });
            out.extend(build(&[k], |ix| (0..n).map(|r| dz[r * k + ix[0]]).sum()));
            out.extend(build(&[c, k], |ix| {
                (0..n)
                    .map(|r| dlogits[r * c + ix[0]] * h[r * k + ix[1]])
                    .sum()
            }));
            out.push(loss);
            out
        },
    );
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
        let a = run(d);
        let b = if d == Device::Cpu {
            optimizer_reference(kind)
        } else {
            run(Device::Cpu)
        };
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12, "{kind:?} on {d}: {x} vs {y}");
        }
    }
});

/// The three steps of `optimizer_steps` by PyTorch's documented update rules (`torch.optim.SGD`,
/// `Adam`, `AdamW`), element by element.
fn optimizer_reference(kind: keel_engine::optim::OptimizerKind) -> Vec<f64> {
    use keel_engine::optim::OptimizerKind;
    let lr = 0.01;
    let mut p = vec![0.5, -1.0, 2.0, 0.25, 0.0];
    let (mut m, mut v) = (vec![0.0; 5], vec![0.0; 5]);
    for k in 0..3 {
        let g = [0.1 * k as f64, -0.3, 1.0, 0.0, 2.5];
        let t = k + 1;
        for i in 0..5 {
            match kind {
                OptimizerKind::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                } => {
                    let d = g[i] + weight_decay * p[i];
                    m[i] = if t == 1 { d } else { momentum * m[i] + d };
                    p[i] -= lr * if nesterov { d + momentum * m[i] } else { m[i] };
                }
                OptimizerKind::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
                | OptimizerKind::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
                    let gi = if decoupled {
                        p[i] *= 1.0 - lr * weight_decay;
                        g[i]
                    } else {
                        g[i] + weight_decay * p[i]
                    };
                    m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
                    let m_hat = m[i] / (1.0 - beta1.powi(t));
                    let v_hat = v[i] / (1.0 - beta2.powi(t));
                    p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
                OptimizerKind::AdamAlgorithm1 { .. } => {
                    unreachable!(
                        "CPU only (no fused kernel), so not among the kinds run on devices"
                    )
                }
            }
        }
    }
    p
}

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
