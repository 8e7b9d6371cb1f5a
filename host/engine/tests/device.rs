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
/// (measured: at most 1.2e-7 and 3.8e-16 for the elementwise, matrix and reduction ops, 4.8e-7
/// (grid_sample) and 7.4e-16 for the image ops, 4.9e-15 for matrix_exp with its gradient — the
/// rounding of inputs, results and sums in different orders; a wrong index or formula is off by
/// far more; `--nocapture` prints each). Against the CPU backend:
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
        let mut worst = 0.0f64;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + b.abs());
            assert!(ok, "{device} {dtype} element {i}: {a} vs {against} {b}");
            if !a.is_nan() {
                worst = worst.max((a - b).abs() / (1.0 + b.abs()));
            }
        }
        // Seen with --nocapture: how close each test came to its tolerance.
        eprintln!(
            "{device} {dtype}: {} elements, largest |Δ|/(1 + |{against}|) {worst:.1e} (tolerance {tol:e})",
            got.len()
        );
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

/// `t` as one axis, for concatenating results of different shapes.
fn flat(t: &Tensor) -> Result<Tensor> {
    t.reshape(&[t.numel()])
}

/// `Σ y ⊙ r`: a loss whose gradient with respect to `y` is the (random) `r`, so the gradients
/// below are vector–Jacobian products with `r`.
fn weighted_sum(y: &Tensor, r: &Tensor) -> Result<Tensor> {
    y.mul(r)?.sum_all()
}

/// A 2-D convolution written out for the references: `[n, c, h, w]` images, `o` output
/// channels in `groups` groups, PyTorch's conventions (weights `[o, c/groups, kh, kw]`).
#[derive(Clone, Copy)]
struct ConvSpec {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    groups: usize,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
}

impl ConvSpec {
    /// Output height and width, `⌊(h + 2p − d(k − 1) − 1)/s⌋ + 1`.
    fn out(&self) -> [usize; 2] {
        [0, 1].map(|a| {
            ([self.h, self.w][a] + 2 * self.p[a] - self.d[a] * (self.k[a] - 1) - 1) / self.s[a] + 1
        })
    }

    /// Calls `f(pixel, output, weight)` — flat indices into the image `[n, c, h, w]`, the output
    /// `[n, o, oh, ow]` and the weight `[o, c/groups, kh, kw]` — for every kernel tap of every
    /// output that reads a pixel (output `(oi, oj)` at tap `(ki, kj)` reads row
    /// `oi·s − p + ki·d`, column likewise; taps in the zero padding contribute nothing).
    fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (cg, og) = (self.c / self.groups, self.o / self.groups);
        let [oh, ow] = self.out();
        let [kh, kw] = self.k;
        for b in 0..self.n {
            for oc in 0..self.o {
                for oi in 0..oh {
                    for oj in 0..ow {
                        let out = ((b * self.o + oc) * oh + oi) * ow + oj;
                        for ci in 0..cg {
                            let ch = oc / og * cg + ci;
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let r =
                                        (oi * self.s[0] + ki * self.d[0]).checked_sub(self.p[0]);
                                    let col =
                                        (oj * self.s[1] + kj * self.d[1]).checked_sub(self.p[1]);
                                    let (Some(r), Some(col)) = (r, col) else {
                                        continue;
                                    };
                                    if r < self.h && col < self.w {
                                        let pixel = ((b * self.c + ch) * self.h + r) * self.w + col;
                                        let weight = ((oc * cg + ci) * kh + ki) * kw + kj;
                                        f(pixel, out, weight);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn image_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    fn out_len(&self) -> usize {
        let [oh, ow] = self.out();
        self.n * self.o * oh * ow
    }

    fn weight_len(&self) -> usize {
        self.o * self.c / self.groups * self.k[0] * self.k[1]
    }
}

/// `conv2d` of `x` with weight `w` and bias `bias` (if any) and the gradients of `Σ y ⊙ r` to
/// each, as `[y, ∂x, ∂w, ∂bias]` (the bias-free case leaves ∂bias out).
fn conv2d_case(d: Device, cs: ConvSpec, with_bias: bool) {
    use keel_engine::tensor::Conv2dOpts;
    let [oh, ow] = cs.out();
    let x_dims = [cs.n, cs.c, cs.h, cs.w];
    let w_dims = [cs.o, cs.c / cs.groups, cs.k[0], cs.k[1]];
    let r_dims = [cs.n, cs.o, oh, ow];
    same_on(
        d,
        &[&x_dims, &w_dims, &r_dims, &[cs.o]],
        |t| {
            let (x, w, b) = (t[0].variable(), t[1].variable(), t[3].variable());
            let opts = Conv2dOpts {
                stride: cs.s,
                padding: cs.p,
                dilation: cs.d,
                groups: cs.groups,
            };
            let y = x.conv2d(&w, with_bias.then_some(&b), opts)?;
            let mut params = vec![&x, &w];
            if with_bias {
                params.push(&b);
            }
            let g = backward(&weighted_sum(&y, &t[2])?, &params)?;
            let mut parts = vec![flat(&y)?];
            for gi in &g {
                parts.push(flat(gi)?);
            }
            Tensor::concat(&parts, 0)
        },
        |v| {
            let (x, w, r, b) = (&v[0], &v[1], &v[2], &v[3]);
            let per_map = oh * ow;
            let mut y: Vec<f64> = (0..cs.out_len())
                .map(|i| {
                    if with_bias {
                        b[i / per_map % cs.o]
                    } else {
                        0.0
                    }
                })
                .collect();
            let (mut dx, mut dw) = (vec![0.0; cs.image_len()], vec![0.0; cs.weight_len()]);
            cs.taps(|pi, oi, wi| {
                y[oi] += x[pi] * w[wi];
                dx[pi] += r[oi] * w[wi];
                dw[wi] += r[oi] * x[pi];
            });
            y.extend(dx);
            y.extend(dw);
            if with_bias {
                y.extend((0..cs.o).map(|oc| {
                    (0..cs.n)
                        .flat_map(|b| r[(b * cs.o + oc) * per_map..][..per_map].iter())
                        .sum::<f64>()
                }));
            }
            y
        },
    );
}

test_device!(conv2d_groups_stride_padding_dilation, |d| {
    // Two groups, anisotropic kernel, stride, padding and dilation per axis, with a bias.
    let grouped = ConvSpec {
        n: 2,
        c: 4,
        h: 7,
        w: 6,
        o: 6,
        groups: 2,
        k: [3, 2],
        s: [2, 1],
        p: [1, 2],
        d: [1, 2],
    };
    conv2d_case(d, grouped, true);
    // Depthwise with a channel multiplier of 2, no bias.
    let depthwise = ConvSpec {
        n: 2,
        c: 3,
        h: 6,
        w: 5,
        o: 6,
        groups: 3,
        k: [3, 3],
        s: [1, 1],
        p: [2, 1],
        d: [2, 1],
    };
    conv2d_case(d, depthwise, false);
});

test_device!(conv_transpose2d_groups_stride_output_padding, |d| {
    use keel_engine::tensor::ConvTranspose2dOpts;
    // The adjoint of a convolution from [2, 6, 6, 6] to the input's [2, 4, 3, 4]; output
    // padding 1 on the strided axis picks 6 rows out of the 5 and 6 that map to 3.
    let conv = ConvSpec {
        n: 2,
        c: 6,
        h: 6,
        w: 6,
        o: 4,
        groups: 2,
        k: [3, 2],
        s: [2, 1],
        p: [1, 0],
        d: [1, 2],
    };
    assert_eq!(
        conv.out(),
        [3, 4],
        "the transposed convolution's input size"
    );
    let x_dims = [conv.n, conv.o, 3, 4];
    let w_dims = [conv.o, conv.c / conv.groups, conv.k[0], conv.k[1]];
    let y_dims = [conv.n, conv.c, conv.h, conv.w];
    same_on(
        d,
        &[&x_dims, &w_dims, &y_dims, &[conv.c]],
        |t| {
            let (x, w, b) = (t[0].variable(), t[1].variable(), t[3].variable());
            let opts = ConvTranspose2dOpts {
                stride: conv.s,
                padding: conv.p,
                output_padding: [1, 0],
                dilation: conv.d,
                groups: conv.groups,
            };
            let y = x.conv_transpose2d(&w, Some(&b), opts)?;
            let g = backward(&weighted_sum(&y, &t[2])?, &[&x, &w, &b])?;
            Tensor::concat(&[flat(&y)?, flat(&g[0])?, flat(&g[1])?, flat(&g[2])?], 0)
        },
        |v| {
            // The transposed convolution's input is the convolution's output and vice versa.
            let (x, w, r, b) = (&v[0], &v[1], &v[2], &v[3]);
            let plane = conv.h * conv.w;
            let mut y: Vec<f64> = (0..conv.image_len())
                .map(|i| b[i / plane % conv.c])
                .collect();
            let (mut dx, mut dw) = (vec![0.0; conv.out_len()], vec![0.0; conv.weight_len()]);
            conv.taps(|pi, xi, wi| {
                y[pi] += x[xi] * w[wi];
                dx[xi] += r[pi] * w[wi];
                dw[wi] += r[pi] * x[xi];
            });
            y.extend(dx);
            y.extend(dw);
            y.extend((0..conv.c).map(|ch| {
                (0..conv.n)
                    .flat_map(|bi| r[(bi * conv.c + ch) * plane..][..plane].iter())
                    .sum::<f64>()
            }));
            y
        },
    );
});

/// Pooling windows as a depthwise [`ConvSpec`] (one output channel per channel, dilation 1).
fn pool_spec(dims: [usize; 4], k: [usize; 2], s: [usize; 2], p: [usize; 2]) -> ConvSpec {
    let [n, c, h, w] = dims;
    ConvSpec {
        n,
        c,
        h,
        w,
        o: c,
        groups: c,
        k,
        s,
        p,
        d: [1, 1],
    }
}

test_device!(max_pool2d_and_gradient, |d| {
    // Windows overlapping on one axis and not the other, padded on both.
    let ps = pool_spec([2, 3, 7, 6], [3, 2], [2, 2], [1, 1]);
    let [oh, ow] = ps.out();
    same_on(
        d,
        &[&[2, 3, 7, 6], &[2, 3, oh, ow]],
        |t| {
            let x = t[0].variable();
            let y = x.max_pool2d(ps.k, ps.s, ps.p)?;
            let g = backward(&weighted_sum(&y, &t[1])?, &[&x])?;
            Tensor::concat(&[flat(&y)?, flat(&g[0])?], 0)
        },
        |v| {
            // Random inputs have no ties, so each output's gradient goes to its one argmax.
            let (x, r) = (&v[0], &v[1]);
            let mut best = vec![None::<usize>; ps.out_len()];
            ps.taps(|pi, oi, _| {
                if best[oi].is_none_or(|b| x[pi] > x[b]) {
                    best[oi] = Some(pi);
                }
            });
            let mut dx = vec![0.0; ps.image_len()];
            let mut y = Vec::with_capacity(ps.out_len() + ps.image_len());
            for (oi, b) in best.iter().enumerate() {
                let b = b.expect("every window holds a pixel");
                y.push(x[b]);
                dx[b] += r[oi];
            }
            y.extend(dx);
            y
        },
    );
});

test_device!(avg_pool2d_and_gradient, |d| {
    // Zero padding counts in each mean (count_include_pad).
    let ps = pool_spec([2, 3, 7, 6], [2, 3], [1, 2], [1, 1]);
    let [oh, ow] = ps.out();
    same_on(
        d,
        &[&[2, 3, 7, 6], &[2, 3, oh, ow]],
        |t| {
            let x = t[0].variable();
            let y = x.avg_pool2d(ps.k, ps.s, ps.p)?;
            let g = backward(&weighted_sum(&y, &t[1])?, &[&x])?;
            Tensor::concat(&[flat(&y)?, flat(&g[0])?], 0)
        },
        |v| {
            let (x, r) = (&v[0], &v[1]);
            let area = (ps.k[0] * ps.k[1]) as f64;
            let (mut y, mut dx) = (vec![0.0; ps.out_len()], vec![0.0; ps.image_len()]);
            ps.taps(|pi, oi, _| {
                y[oi] += x[pi] / area;
                dx[pi] += r[oi] / area;
            });
            y.extend(dx);
            y
        },
    );
});

test_device!(batch_norm_train_and_gradient, |d| {
    let (n, c, h, w) = (3, 4, 5, 2);
    let eps = 1e-5;
    same_on(
        d,
        &[&[n, c, h, w], &[c], &[c], &[n, c, h, w]],
        |t| {
            let (x, gamma, beta) = (t[0].variable(), t[1].variable(), t[2].variable());
            let (y, mean, var) = x.batch_norm_train(&gamma, &beta, eps)?;
            let g = backward(&weighted_sum(&y, &t[3])?, &[&x, &gamma, &beta])?;
            let parts = [&y, &mean, &var, &g[0], &g[1], &g[2]].map(flat);
            Tensor::concat(&parts.into_iter().collect::<Result<Vec<_>>>()?, 0)
        },
        |v| {
            // Per channel over m = n·h·w values: x̂ = (x − μ)/√(σ² + ε) with the biased σ²,
            // y = γx̂ + β; ∂β = Σr, ∂γ = Σ r·x̂, ∂x = γ/√(σ² + ε)·(r − mean r − x̂·mean(r·x̂)).
            let (x, gamma, beta, r) = (&v[0], &v[1], &v[2], &v[3]);
            let (plane, m) = (h * w, (n * h * w) as f64);
            let idx = |ch: usize| {
                (0..n).flat_map(move |b| (0..plane).map(move |k| (b * c + ch) * plane + k))
            };
            let mut y = vec![0.0; x.len()];
            let mut dx = vec![0.0; x.len()];
            let (mut means, mut vars, mut dgamma, mut dbeta) = (vec![], vec![], vec![], vec![]);
            for ch in 0..c {
                let mu = idx(ch).map(|i| x[i]).sum::<f64>() / m;
                let var = idx(ch).map(|i| (x[i] - mu).powi(2)).sum::<f64>() / m;
                let sd = (var + eps).sqrt();
                let xhat = |i: usize| (x[i] - mu) / sd;
                let r_mean = idx(ch).map(|i| r[i]).sum::<f64>() / m;
                let rx_mean = idx(ch).map(|i| r[i] * xhat(i)).sum::<f64>() / m;
                for i in idx(ch) {
                    y[i] = gamma[ch] * xhat(i) + beta[ch];
                    dx[i] = gamma[ch] / sd * (r[i] - r_mean - xhat(i) * rx_mean);
                }
                means.push(mu);
                vars.push(var * m / (m - 1.0));
                dgamma.push(rx_mean * m);
                dbeta.push(r_mean * m);
            }
            [y, means, vars, dx, dgamma, dbeta].concat()
        },
    );
});

test_device!(grid_sample_and_gradients, |d| {
    // Grid values in [−0.5, 1.5): some points fall past the right and bottom edges, where
    // corners read zeros.
    let (n, c, h, w, ho, wo) = (2, 3, 5, 4, 3, 4);
    same_on(
        d,
        &[&[n, c, h, w], &[n, ho, wo, 2], &[n, c, ho, wo]],
        |t| {
            let (x, grid) = (t[0].variable(), t[1].variable());
            let y = x.grid_sample(&grid)?;
            let g = backward(&weighted_sum(&y, &t[2])?, &[&x, &grid])?;
            Tensor::concat(&[flat(&y)?, flat(&g[0])?, flat(&g[1])?], 0)
        },
        |v| {
            // Bilinear, zeros outside, align_corners: pixel (ix, iy) = ((gx + 1)/2·(w − 1),
            // (gy + 1)/2·(h − 1)); corner weights (1 − fx or fx)·(1 − fy or fy).
            let (x, grid, r) = (&v[0], &v[1], &v[2]);
            let mut y = vec![0.0; n * c * ho * wo];
            let mut dx = vec![0.0; x.len()];
            let mut dgrid = vec![0.0; grid.len()];
            for b in 0..n {
                for i in 0..ho {
                    for j in 0..wo {
                        let p = (b * ho + i) * wo + j;
                        let ix = (grid[2 * p] + 1.0) / 2.0 * (w - 1) as f64;
                        let iy = (grid[2 * p + 1] + 1.0) / 2.0 * (h - 1) as f64;
                        let (x0, y0) = (ix.floor(), iy.floor());
                        let (fx, fy) = (ix - x0, iy - y0);
                        for (cy, wy, dwy) in [(y0, 1.0 - fy, -1.0), (y0 + 1.0, fy, 1.0)] {
                            for (cx, wx, dwx) in [(x0, 1.0 - fx, -1.0), (x0 + 1.0, fx, 1.0)] {
                                if cx < 0.0 || cy < 0.0 || cx >= w as f64 || cy >= h as f64 {
                                    continue;
                                }
                                for ch in 0..c {
                                    let pixel = ((b * c + ch) * h + cy as usize) * w + cx as usize;
                                    let out = ((b * c + ch) * ho + i) * wo + j;
                                    y[out] += wx * wy * x[pixel];
                                    dx[pixel] += wx * wy * r[out];
                                    dgrid[2 * p] +=
                                        dwx * wy * x[pixel] * r[out] * (w - 1) as f64 / 2.0;
                                    dgrid[2 * p + 1] +=
                                        wx * dwy * x[pixel] * r[out] * (h - 1) as f64 / 2.0;
                                }
                            }
                        }
                    }
                }
            }
            [y, dx, dgrid].concat()
        },
    );
});

/// `m × m` matrix product, row-major.
fn matmul_sq(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    build(&[m, m], |ix| {
        (0..m).map(|k| a[ix[0] * m + k] * b[k * m + ix[1]]).sum()
    })
}

/// e^A for the references, a method apart from the engine's: scale to ‖A/2ˢ‖₁ ≤ 1, sum 40
/// terms of the Taylor series term by term, square `s` times.
fn expm_reference(a: &[f64], m: usize) -> Vec<f64> {
    let norm = (0..m)
        .map(|j| (0..m).map(|i| a[i * m + j].abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let s = if norm > 0.125 {
        (norm / 0.125).log2().ceil() as i32
    } else {
        0
    };
    let scaled: Vec<f64> = a.iter().map(|v| v * 0.5f64.powi(s)).collect();
    let mut sum = build(&[m, m], |ix| if ix[0] == ix[1] { 1.0 } else { 0.0 });
    let mut term = sum.clone();
    for k in 1..40 {
        term = matmul_sq(&term, &scaled, m)
            .iter()
            .map(|v| v / k as f64)
            .collect();
        sum.iter_mut().zip(&term).for_each(|(s, t)| *s += t);
    }
    for _ in 0..s {
        sum = matmul_sq(&sum, &sum, m);
    }
    sum
}

test_device!(matrix_exp_and_gradient, |d| {
    // A batch of two 3×3 matrices A = x/2 (‖A‖₁ between ½ and 2.25, so the engine squares up
    // to three times); the loss Σ R ⊙ e^A. With A = x (four squarings) the f64 gradient drifts
    // to 1.4e-14 relative, past the tolerance: rounding amplified by differentiating the
    // squarings (the reference gives the same digits whether it scales to ‖·‖₁ ≤ 1 or ≤ 1/8),
    // not a wrong formula.
    let m = 3;
    same_on(
        d,
        &[&[2, m, m], &[2, m, m]],
        |t| {
            let a = t[0].mul_scalar(0.5)?.variable();
            let e = a.matrix_exp()?;
            let g = backward(&weighted_sum(&e, &t[1])?, &[&a])?;
            Tensor::concat(&[flat(&e)?, flat(&g[0])?], 0)
        },
        |v| {
            // The gradient of Σ R ⊙ e^A is the Fréchet derivative of exp at Aᵀ in the direction
            // R: the upper-right block of exp([[Aᵀ, R], [0, Aᵀ]]) (Higham, "Functions of
            // Matrices", 2008, Thm 3.6 / eq. 10.15).
            let mut e = Vec::new();
            let mut grad = Vec::new();
            for b in 0..2 {
                let a: Vec<f64> = v[0][b * m * m..][..m * m].iter().map(|x| 0.5 * x).collect();
                let a = &a;
                let norm = (0..m)
                    .map(|j| (0..m).map(|i| a[i * m + j].abs()).sum::<f64>())
                    .fold(0.0, f64::max);
                assert!(
                    norm > 0.5,
                    "matrix {b}: ‖A‖₁ = {norm}: no squaring exercised"
                );
                let r = &v[1][b * m * m..][..m * m];
                e.extend(expm_reference(a, m));
                let big = build(&[2 * m, 2 * m], |ix| {
                    let (i, j) = (ix[0], ix[1]);
                    match (i < m, j < m) {
                        (true, true) => a[j * m + i],
                        (false, false) => a[(j - m) * m + (i - m)],
                        (true, false) => r[i * m + (j - m)],
                        (false, true) => 0.0,
                    }
                });
                let eb = expm_reference(&big, 2 * m);
                grad.extend(build(&[m, m], |ix| eb[ix[0] * 2 * m + m + ix[1]]));
            }
            [e, grad].concat()
        },
    );
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

/// NCCL without a GPU, or without NCCL: a clear error naming what is missing, not a panic (the
/// MPI ranks then sum over host buffers).
#[test]
fn nccl_without_a_gpu_is_a_clear_error() {
    use keel_engine::backend::cuda::nccl;
    if Device::Cuda(0).check().is_ok() && nccl::library().is_ok() {
        return; // A GPU machine with NCCL: `nccl_single_rank_sum_cuda` runs the real thing.
    }
    let e = nccl::Communicator::new(0, 0, 1, &[0; 128]).unwrap_err();
    assert!(e.is_device_error(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("NCCL") || msg.contains("GPU") || msg.contains("CUDA"),
        "{msg}"
    );
    assert!(nccl::Communicator::new(0, 1, 1, &[0; 128]).is_err());
}

/// One rank's NCCL communicator on GPU 0: the all-reduce of one rank is the tensor itself, bit
/// for bit, in f32 and f64, on the device, and every call after the first reuses the
/// communicator. Needs NCCL (`libnccl.so`; `cuda/check.sh` links the wheel's `libnccl.so.2`).
#[test]
#[ignore = "needs a GPU and NCCL: run cuda/check.sh on a GPU machine"]
fn nccl_single_rank_sum_cuda() {
    use keel_engine::backend::cuda::nccl;
    let version = nccl::library().unwrap_or_else(|why| panic!("NCCL: {why}"));
    println!("NCCL {version}");
    let id = nccl::unique_id().unwrap();
    let comm = nccl::Communicator::new(0, 0, 1, &id).unwrap();
    assert_eq!((comm.rank(), comm.size(), comm.ordinal()), (0, 1, 0));
    let values = inputs(&[&[1000, 3]]).remove(0);
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::from_f64s(&values, &[1000, 3], dtype)
            .unwrap()
            .to_device(Device::Cuda(0))
            .unwrap();
        for _ in 0..3 {
            let s = comm.sum(&x).unwrap();
            assert_eq!(s.device(), Device::Cuda(0));
            assert_eq!(s.dims(), [1000, 3]);
            assert_eq!(
                s.to_vec_f64().unwrap(),
                x.to_vec_f64().unwrap(),
                "{dtype:?}"
            );
        }
        let cpu = Tensor::from_f64s(&values, &[1000, 3], dtype).unwrap();
        assert!(comm.sum(&cpu).is_err(), "a tensor on the CPU is refused");
    }
}
