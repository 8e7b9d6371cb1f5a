//! Every differentiable operation against central finite differences in f64: reverse-mode
//! gradients, forward-mode JVPs, and second derivatives (Hessian–vector products through
//! gradients of gradients). Plus property tests over random shapes, and matrix products large
//! enough for the `gemm` crate's blocking and threading (and the backend's elementwise thread
//! split) against loops written here.

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_engine::autodiff::{grad, hvp, jvp};
use keel_engine::{DType, Result, Tensor};
use proptest::prelude::*;

type F = dyn Fn(&[Tensor]) -> Result<Tensor>;

struct Input {
    dims: Vec<usize>,
    /// Values are drawn from this range (keeps logs, square roots and kinks honest).
    lo: f64,
    hi: f64,
}

fn input(dims: &[usize]) -> Input {
    Input {
        dims: dims.to_vec(),
        lo: -1.5,
        hi: 1.5,
    }
}

fn positive(dims: &[usize]) -> Input {
    Input {
        dims: dims.to_vec(),
        lo: 0.3,
        hi: 2.0,
    }
}

fn draw(rng: &mut Xoshiro256PlusPlus, inp: &Input) -> Vec<f64> {
    let n: usize = inp.dims.iter().product();
    (0..n)
        .map(|_| inp.lo + (inp.hi - inp.lo) * uniform::<f64, _>(rng))
        .collect()
}

fn t(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), dims).unwrap()
}

/// `L(x) = Σ w ⊙ f(x)` with fixed random weights `w`.
fn scalarize(f: &F, xs: &[Tensor], w: &Tensor) -> Tensor {
    f(xs).unwrap().mul(w).unwrap().sum_all().unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Checks reverse mode, forward mode and Hessian–vector products of `f` at a random point.
fn check(name: &str, f: &F, inputs: &[Input], seed: u64) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let vals: Vec<Vec<f64>> = inputs.iter().map(|i| draw(&mut rng, i)).collect();
    let vars: Vec<Tensor> = vals
        .iter()
        .zip(inputs)
        .map(|(v, i)| t(v, &i.dims).variable())
        .collect();
    let out = f(&vars).unwrap();
    let w = t(
        &(0..out.numel())
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect::<Vec<_>>(),
        out.dims(),
    );
    let loss = out.mul(&w).unwrap().sum_all().unwrap();
    let refs: Vec<&Tensor> = vars.iter().collect();
    let g = grad(&[&loss], &[None], &refs, false).unwrap();
    let h = 1e-6;
    let eval = |vals: &[Vec<f64>]| -> f64 {
        let xs: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, i)| t(v, &i.dims))
            .collect();
        scalarize(f, &xs, &w).item().unwrap()
    };
    // Reverse mode vs finite differences, every component.
    for (k, inp) in inputs.iter().enumerate() {
        let gk = g[k]
            .as_ref()
            .map(|g| g.to_vec_f64().unwrap())
            .unwrap_or_else(|| vec![0.0; vals[k].len()]);
        assert_eq!(gk.len(), vals[k].len(), "{name}: gradient shape");
        for j in 0..vals[k].len() {
            let mut p = vals.clone();
            let mut m = vals.clone();
            p[k][j] += h;
            m[k][j] -= h;
            let fd = (eval(&p) - eval(&m)) / (2.0 * h);
            assert!(
                close(gk[j], fd, 1e-6),
                "{name}: ∂L/∂x{k}[{j}] reverse {} vs fd {fd} (dims {:?})",
                gk[j],
                inp.dims
            );
        }
    }
    // Forward mode: J·v vs (f(x + hv) − f(x − hv)) / 2h.
    let tangents: Vec<Tensor> = inputs
        .iter()
        .map(|i| t(&draw(&mut rng, &input(&i.dims)), &i.dims))
        .collect();
    let trefs: Vec<&Tensor> = tangents.iter().collect();
    let jv = jvp(&[&out], &refs, &trefs)
        .unwrap()
        .pop()
        .flatten()
        .map(|t| t.to_vec_f64().unwrap())
        .unwrap_or_else(|| vec![0.0; out.numel()]);
    let shifted = |s: f64| -> Vec<f64> {
        let xs: Vec<Tensor> = vals
            .iter()
            .zip(&tangents)
            .zip(inputs)
            .map(|((v, tv), i)| {
                t(
                    &v.iter()
                        .zip(tv.to_vec_f64().unwrap())
                        .map(|(a, b)| a + s * b)
                        .collect::<Vec<_>>(),
                    &i.dims,
                )
            })
            .collect();
        f(&xs).unwrap().to_vec_f64().unwrap()
    };
    let (fp, fm) = (shifted(h), shifted(-h));
    for j in 0..jv.len() {
        let fd = (fp[j] - fm[j]) / (2.0 * h);
        assert!(
            close(jv[j], fd, 1e-6),
            "{name}: JVP[{j}] forward {} vs fd {fd}",
            jv[j]
        );
    }
    // JVP agrees with reverse mode: ⟨w, J v⟩ = ⟨Jᵀw, v⟩.
    let lhs: f64 = jv
        .iter()
        .zip(w.to_vec_f64().unwrap())
        .map(|(a, b)| a * b)
        .sum();
    let rhs: f64 = g
        .iter()
        .zip(&tangents)
        .map(|(gk, tk)| {
            gk.as_ref().map_or(0.0, |gk| {
                gk.to_vec_f64()
                    .unwrap()
                    .iter()
                    .zip(tk.to_vec_f64().unwrap())
                    .map(|(a, b)| a * b)
                    .sum()
            })
        })
        .sum();
    assert!(
        close(lhs, rhs, 1e-9),
        "{name}: ⟨w, Jv⟩ = {lhs} but ⟨Jᵀw, v⟩ = {rhs}"
    );
    // Second derivatives: H·v (first input) vs finite differences of the reverse gradient.
    let v0 = &tangents[0];
    let x0 = &vars[0];
    let hv = {
        let xs = vars.clone();
        let l = scalarize(f, &xs, &w);
        hvp(&l, x0, v0).unwrap().to_vec_f64().unwrap()
    };
    let grad_at = |s: f64| -> Vec<f64> {
        let mut xs: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, i)| t(v, &i.dims))
            .collect();
        xs[0] = t(
            &vals[0]
                .iter()
                .zip(v0.to_vec_f64().unwrap())
                .map(|(a, b)| a + s * b)
                .collect::<Vec<_>>(),
            &inputs[0].dims,
        )
        .variable();
        let l = scalarize(f, &xs, &w);
        grad(&[&l], &[None], &[&xs[0]], false)
            .unwrap()
            .pop()
            .flatten()
            .map(|g| g.to_vec_f64().unwrap())
            .unwrap_or_else(|| vec![0.0; vals[0].len()])
    };
    let h2 = 1e-5;
    let (gp, gm) = (grad_at(h2), grad_at(-h2));
    for j in 0..hv.len() {
        let fd = (gp[j] - gm[j]) / (2.0 * h2);
        assert!(
            close(hv[j], fd, 1e-5),
            "{name}: (Hv)[{j}] {} vs fd {fd}",
            hv[j]
        );
    }
}

macro_rules! checks {
    ($($name:ident: $inputs:expr => $f:expr;)*) => {$(
        #[test]
        fn $name() {
            let f: Box<F> = Box::new($f);
            for seed in 0..3 {
                check(stringify!($name), &*f, &$inputs, seed);
            }
        }
    )*};
}

checks! {
    neg: [input(&[3, 4])] => |x| x[0].neg();
    exp: [input(&[3, 4])] => |x| x[0].exp();
    log: [positive(&[3, 4])] => |x| x[0].log();
    log1p: [positive(&[5])] => |x| x[0].log1p();
    tanh: [input(&[2, 3, 2])] => |x| x[0].tanh();
    sigmoid: [input(&[6])] => |x| x[0].sigmoid();
    softplus: [input(&[6])] => |x| x[0].softplus();
    relu: [positive(&[4])] => |x| x[0].add_scalar(-1.1)?.relu()?.mul(&x[0]);
    add_relu: [input(&[4, 3]), input(&[3])] => |x| x[0].add_relu(&x[1])?.mul(&x[0]);
    mul_step: [input(&[3, 4]), input(&[4])] => |x| x[0].square()?.mul_step(&x[1]);
    silu: [input(&[7])] => |x| x[0].silu();
    sin_cos: [input(&[5])] => |x| x[0].sin()?.mul(&x[0].cos()?);
    sqrt: [positive(&[5])] => |x| x[0].sqrt();
    square: [input(&[5])] => |x| x[0].square();
    abs: [positive(&[5])] => |x| x[0].add_scalar(-1.15)?.abs()?.mul(&x[0]);
    powf: [positive(&[5])] => |x| x[0].powf(2.7);
    pow: [positive(&[2, 3]), input(&[3])] => |x| x[0].pow(&x[1]);
    affine: [input(&[4])] => |x| x[0].affine(-2.5, 0.3)?.square();
    add_broadcast: [input(&[2, 3, 4]), input(&[3, 1])] => |x| x[0].add(&x[1])?.square();
    sub_broadcast: [input(&[4]), input(&[2, 3, 4])] => |x| x[0].sub(&x[1])?.square();
    mul_broadcast: [input(&[2, 1, 4]), input(&[3, 4])] => |x| x[0].mul(&x[1]);
    div_broadcast: [input(&[2, 3]), positive(&[1, 3])] => |x| x[0].div(&x[1]);
    mul_self: [input(&[3])] => |x| x[0].mul(&x[0]);
    where_select: [input(&[3, 4]), input(&[4])] => |x| {
        let mask = x[0].detach().gt(&Tensor::scalar(0.0, DType::F64))?;
        Tensor::where_(&mask, &x[0].square()?, &x[1].exp()?)
    };
    matmul: [input(&[3, 4]), input(&[4, 5])] => |x| x[0].matmul(&x[1]);
    matmul_ta: [input(&[4, 3]), input(&[4, 5])] => |x| x[0].matmul_t(&x[1], true, false);
    matmul_tb: [input(&[3, 4]), input(&[5, 4])] => |x| x[0].matmul_t(&x[1], false, true);
    matmul_tab: [input(&[4, 3]), input(&[5, 4])] => |x| x[0].matmul_t(&x[1], true, true);
    matmul_batched: [input(&[2, 3, 4]), input(&[2, 4, 2])] => |x| x[0].matmul(&x[1]);
    matmul_shared_rhs: [input(&[2, 3, 4]), input(&[4, 2])] => |x| x[0].matmul(&x[1])?.tanh()?.matmul_t(&x[1], false, true);
    matmul_shared_lhs: [input(&[3, 4]), input(&[2, 4, 2])] => |x| x[0].matmul(&x[1]);
    sum_axes: [input(&[2, 3, 4])] => |x| x[0].sum(&[0, 2], false)?.square();
    sum_keepdim: [input(&[2, 3, 4])] => |x| x[0].sum(&[-1], true)?.exp();
    mean: [input(&[3, 4])] => |x| x[0].mean(&[1], false)?.square();
    max_axis: [input(&[3, 5])] => |x| x[0].max(1, false)?.square();
    logsumexp: [input(&[3, 5])] => |x| x[0].logsumexp(-1, false);
    softmax: [input(&[2, 4])] => |x| x[0].softmax(-1);
    log_softmax: [input(&[4, 3])] => |x| x[0].log_softmax(0);
    broadcast_to: [input(&[3, 1])] => |x| x[0].broadcast_to(&[2, 3, 4])?.square();
    sum_to: [input(&[2, 3, 4])] => |x| x[0].square()?.sum_to(&[3, 1]);
    reshape: [input(&[2, 6])] => |x| x[0].reshape(&[3, 4])?.matmul(&x[0].reshape(&[4, 3])?);
    permute: [input(&[2, 3, 4])] => |x| x[0].permute(&[2, 0, 1])?.tanh();
    transpose: [input(&[3, 4])] => |x| x[0].t()?.matmul(&x[0]);
    narrow: [input(&[3, 6])] => |x| x[0].narrow(1, 2, 3)?.square();
    pad: [input(&[2, 2])] => |x| x[0].pad_axis(0, 1, 4)?.exp();
    concat: [input(&[2, 3]), input(&[2, 2])] => |x| Tensor::concat(&[x[0].clone(), x[1].square()?], 1)?.sin();
    stack: [input(&[3]), input(&[3])] => |x| Tensor::stack(&[x[0].clone(), x[1].exp()?], 0)?.square();
    index_select: [input(&[4, 3])] => |x| x[0].index_select(0, &[3, 0, 3, 1])?.square();
    index_add: [input(&[2, 3])] => |x| x[0].index_add(1, &[4, 0, 4], 5)?.square();
    gather_rows: [input(&[3, 4])] => |x| x[0].gather_rows(&[1, 3, 0])?.exp();
    cross_entropy: [input(&[5, 4])] => |x| x[0].cross_entropy(&[0, 3, 1, 1, 2]);
    gaussian_nll: [input(&[6]), positive(&[6])] => |x| x[0].gaussian_nll(&x[1], &Tensor::from_vec(vec![0.1f64, -0.3, 1.2, 0.0, 0.7, -1.0], &[6])?);
    mse: [input(&[6])] => |x| x[0].mse(&Tensor::full(0.3, &[6], DType::F64)?);
    mlp_layer: [input(&[4, 3]), input(&[5, 3]), input(&[5])] => |x| x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.tanh()?.sum(&[1], false);
}

#[test]
fn gradient_of_a_gradient_with_respect_to_parameters() {
    // H(x; θ) = θ₀ x² + θ₁ sin x; ∂H/∂x = 2θ₀x + θ₁ cos x; L = Σ (∂H/∂x)²;
    // ∂L/∂θ₀ = Σ 2(∂H/∂x)·2x, ∂L/∂θ₁ = Σ 2(∂H/∂x)·cos x — the learned-Hamiltonian pattern.
    let x = Tensor::from_vec(vec![0.3f64, -1.2, 0.8], &[3])
        .unwrap()
        .variable();
    let th = Tensor::from_vec(vec![0.7f64, -0.4], &[2])
        .unwrap()
        .variable();
    let t0 = th.narrow(0, 0, 1).unwrap();
    let t1 = th.narrow(0, 1, 1).unwrap();
    let h = x
        .square()
        .unwrap()
        .mul(&t0)
        .unwrap()
        .add(&x.sin().unwrap().mul(&t1).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let dhdx = grad(&[&h], &[None], &[&x], true)
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let l = dhdx.square().unwrap().sum_all().unwrap();
    let g = grad(&[&l], &[None], &[&th], false)
        .unwrap()
        .pop()
        .flatten()
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let xs = [0.3f64, -1.2, 0.8];
    let d: Vec<f64> = xs.iter().map(|x| 2.0 * 0.7 * x - 0.4 * x.cos()).collect();
    let want0: f64 = xs.iter().zip(&d).map(|(x, d)| 2.0 * d * 2.0 * x).sum();
    let want1: f64 = xs.iter().zip(&d).map(|(x, d)| 2.0 * d * x.cos()).sum();
    assert!(
        (g[0] - want0).abs() < 1e-12 && (g[1] - want1).abs() < 1e-12,
        "{g:?} vs {want0}, {want1}"
    );
}

#[test]
fn gradients_are_not_recorded_unless_asked() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2])
        .unwrap()
        .variable();
    let y = x.exp().unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[None], &[&x], false)
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    assert!(!g.is_tracked());
    let g = grad(&[&y], &[None], &[&x], true)
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    assert!(g.is_tracked());
    assert!(
        grad(&[&y], &[None], &[&x.detach()], false).is_err(),
        "detached inputs are rejected"
    );
}

#[test]
fn f32_gradients_match_f64() {
    let v = vec![0.3, -0.7, 1.1, 0.2, -0.5, 0.9];
    let run = |dtype: DType| {
        let x = Tensor::from_f64s(&v, &[2, 3], dtype).unwrap().variable();
        let y = x
            .tanh()
            .unwrap()
            .matmul_t(&x, false, true)
            .unwrap()
            .softmax(-1)
            .unwrap()
            .log()
            .unwrap()
            .sum_all()
            .unwrap();
        grad(&[&y], &[None], &[&x], false)
            .unwrap()
            .pop()
            .flatten()
            .unwrap()
            .to_vec_f64()
            .unwrap()
    };
    for (a, b) in run(DType::F32).iter().zip(run(DType::F64)) {
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let a = Tensor::zeros(&[2, 3], DType::F64).unwrap();
    let b = Tensor::zeros(&[4, 5], DType::F64).unwrap();
    let e = a.matmul(&b).unwrap_err().to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = a.add(&b).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let c = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    assert!(a.add(&c).unwrap_err().to_string().contains("f32"));
    assert!(a.index_select(1, &[3]).is_err());
    assert!(Tensor::zeros(&[1, 1, 1, 1, 1], DType::F64).is_err());
}

/// Element `(i, j)` of `op(X)` (`rows × cols`), `X` stored row-major and used transposed when
/// `t`.
fn op_at(x: &[f64], t: bool, rows: usize, cols: usize, i: usize, j: usize) -> f64 {
    if t {
        x[j * rows + i]
    } else {
        x[i * cols + j]
    }
}

/// Where `op(X)[i, j]` lives in `X`.
fn op_index(t: bool, rows: usize, cols: usize, i: usize, j: usize) -> usize {
    if t {
        j * rows + i
    } else {
        i * cols + j
    }
}

/// Largest `|engine − reference| / Σ|terms|` over an output, the reference summed here in plain
/// loops (the forward error of a k-term dot product is at most γ_k = k·u/(1 − k·u) times
/// `Σ|terms|`, Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
fn worst(got: &[f64], want: &[(f64, f64)]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, (w, scale))| (g - w).abs() / scale.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// `L = Σ W ⊙ op(A)·op(B)` over `batch` products (`B` shared across the batch when `shared`):
/// the forward product, both reverse-mode gradients (`∂L/∂op(A) = W·op(B)ᵀ`,
/// `∂L/∂op(B) = op(A)ᵀ·W`, summed over the batch for a shared `B`) and the JVP
/// `op(dA)·op(B) + op(A)·op(dB)`, each against loops written here. Returns the four normalised
/// errors.
#[allow(clippy::too_many_arguments)]
fn matmul_against_loops(
    batch: usize,
    shared: bool,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    seed: u64,
) -> [f64; 4] {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let a_dims: Vec<usize> = [batch]
        .into_iter()
        .filter(|_| batch > 1)
        .chain(if ta { [k, m] } else { [m, k] })
        .collect();
    let b_dims: Vec<usize> = [batch]
        .into_iter()
        .filter(|_| batch > 1 && !shared)
        .chain(if tb { [n, k] } else { [k, n] })
        .collect();
    let (a, b) = (
        draw(&mut rng, &input(&a_dims)),
        draw(&mut rng, &input(&b_dims)),
    );
    let (da, db) = (
        draw(&mut rng, &input(&a_dims)),
        draw(&mut rng, &input(&b_dims)),
    );
    let w: Vec<f64> = (0..batch * m * n)
        .map(|_| standard_normal::<f64, _>(&mut rng))
        .collect();
    let (av, bv) = (t(&a, &a_dims).variable(), t(&b, &b_dims).variable());
    let out = av.matmul_t(&bv, ta, tb).unwrap();
    let out_dims: Vec<usize> = out.dims().to_vec();
    let loss = out.mul(&t(&w, &out_dims)).unwrap().sum_all().unwrap();
    let g = grad(&[&loss], &[None], &[&av, &bv], false).unwrap();
    let (ga, gb) = (
        g[0].as_ref().unwrap().to_vec_f64().unwrap(),
        g[1].as_ref().unwrap().to_vec_f64().unwrap(),
    );
    let jv = jvp(&[&out], &[&av, &bv], &[&t(&da, &a_dims), &t(&db, &b_dims)])
        .unwrap()
        .pop()
        .flatten()
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let out = out.to_vec_f64().unwrap();

    let (sa, sb) = (m * k, if shared { 0 } else { k * n });
    let mut fwd = vec![(0.0, 0.0); batch * m * n];
    let mut tan = vec![(0.0, 0.0); batch * m * n];
    let mut want_ga = vec![(0.0, 0.0); a.len()];
    let mut want_gb = vec![(0.0, 0.0); b.len()];
    for q in 0..batch {
        let (a, da) = (&a[q * sa..], &da[q * sa..]);
        let (b, db) = (&b[q * sb..], &db[q * sb..]);
        let w = &w[q * m * n..];
        for i in 0..m {
            for j in 0..n {
                let (c, dc) = (
                    &mut fwd[q * m * n + i * n + j],
                    &mut tan[q * m * n + i * n + j],
                );
                for p in 0..k {
                    let (x, y) = (op_at(a, ta, m, k, i, p), op_at(b, tb, k, n, p, j));
                    let (dx, dy) = (op_at(da, ta, m, k, i, p), op_at(db, tb, k, n, p, j));
                    c.0 += x * y;
                    c.1 += (x * y).abs();
                    dc.0 += dx * y + x * dy;
                    dc.1 += (dx * y).abs() + (x * dy).abs();
                    let e = &mut want_ga[q * sa + op_index(ta, m, k, i, p)];
                    e.0 += w[i * n + j] * y;
                    e.1 += (w[i * n + j] * y).abs();
                    let e = &mut want_gb[q * sb + op_index(tb, k, n, p, j)];
                    e.0 += x * w[i * n + j];
                    e.1 += (x * w[i * n + j]).abs();
                }
            }
        }
    }
    [
        worst(&out, &fwd),
        worst(&ga, &want_ga),
        worst(&gb, &want_gb),
        worst(&jv, &tan),
    ]
}

fn sci(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|e| format!("{e:.1e}")).collect();
    parts.join(", ")
}

/// Matrix products through each of the `gemm` crate's paths (gemm-common 0.19
/// `gemm_basic_generic`) and across the engine's thread splits, with their gradients and JVPs
/// against loops: sizes 1–4 (the property tests) reach only the small-size kernels.
#[test]
fn matmul_gradients_across_gemm_paths_and_thread_splits() {
    // (what, batch, shared B, m, k, n)
    let cases: [(&str, usize, bool, usize, usize, usize); 10] = [
        // m·n ≤ 16·16 with a row-major lhs and column-major rhs: the horizontal kernel, whose
        // depth blocks are 1024 long.
        (
            "horizontal kernel, two depth blocks",
            1,
            false,
            13,
            1100,
            16,
        ),
        ("k ≤ 2 outer products (gevv)", 1, false, 150, 2, 170),
        ("n = 1 (gemv)", 1, false, 300, 700, 1),
        ("m = 1 (gemv)", 1, false, 1, 700, 300),
        // m, n ≤ 64: kc = min(k, 512), so k = 600 takes two depth blocks.
        ("small blocked, two depth blocks", 1, false, 40, 600, 50),
        // m·n·k ≥ 48·48·256 = 589,824 (the crate's threading threshold) in one depth block.
        ("small blocked, threaded", 1, false, 64, 256, 64),
        // m or n > 64: kernel_params' cache blocking; threaded.
        ("cache-blocked, threaded", 1, false, 130, 300, 150),
        ("cache-blocked, k split", 1, false, 100, 1200, 90),
        // m·n = 65,536 = the backend's elementwise PAR_THRESHOLD (backend/cpu/kernels.rs): the
        // loss's product with W and its gradient run on rayon.
        ("elementwise thread split", 1, false, 256, 3, 256),
        ("batched, shared B", 4, true, 70, 90, 80),
    ];
    let mut worst_all = [0.0f64; 4];
    for (c, &(what, batch, shared, m, k, n)) in cases.iter().enumerate() {
        for (v, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            let e = matmul_against_loops(batch, shared, m, k, n, ta, tb, (10 * c + v) as u64);
            for (w, e) in worst_all.iter_mut().zip(e) {
                *w = w.max(e);
            }
            // Both sides sum in f64 in different orders: measured at most 5.3e-16 of Σ|terms|
            // here and 4.8e-16 over 400 random sizes (2.4 u; the worst case γ_k grows with k,
            // the typical error only as √k and it is divided by Σ|terms|); bound 2e-15 (9 u).
            assert!(
                e.iter().all(|&e| e < 2e-15),
                "{what} (m {m}, k {k}, n {n}, ta {ta}, tb {tb}): forward, ∂A, ∂B, JVP {}",
                sci(&e)
            );
        }
    }
    eprintln!(
        "matmul vs loops (forward, ∂A, ∂B, JVP): {}",
        sci(&worst_all)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Broadcasting arithmetic and reductions over random shapes: reverse mode equals finite
    /// differences and forward mode.
    #[test]
    fn random_shapes_broadcast_and_reduce(
        d0 in 1usize..4, d1 in 1usize..4, d2 in 1usize..4,
        b0 in any::<bool>(), b1 in any::<bool>(), seed in any::<u64>(),
    ) {
        let a_dims = vec![d0, d1, d2];
        let b_dims = vec![if b0 { 1 } else { d1 }, if b1 { 1 } else { d2 }];
        let f: Box<F> = Box::new(|x| x[0].mul(&x[1].exp()?)?.tanh()?.sum(&[1], false));
        check("random", &*f, &[input(&a_dims), input(&b_dims)], seed);
    }

    /// Matrix products of random sizes and transposes.
    #[test]
    fn random_matmuls(m in 1usize..5, k in 1usize..5, n in 1usize..5, ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>()) {
        let a = if ta { vec![k, m] } else { vec![m, k] };
        let b = if tb { vec![n, k] } else { vec![k, n] };
        let f: Box<F> = Box::new(move |x| x[0].matmul_t(&x[1], ta, tb));
        check("random matmul", &*f, &[input(&a), input(&b)], seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Matrix products of random sizes up to 160 × 700 × 160 (across the crate's blocking and
    /// threading thresholds): forward, gradients and JVP against loops.
    #[test]
    fn random_large_matmuls(
        m in 1usize..=160, k in 1usize..=700, n in 1usize..=160,
        ta in any::<bool>(), tb in any::<bool>(), seed in any::<u64>(),
    ) {
        let e = matmul_against_loops(1, false, m, k, n, ta, tb, seed);
        // As in matmul_gradients_across_gemm_paths_and_thread_splits (measured 4.8e-16).
        prop_assert!(e.iter().all(|&e| e < 2e-15), "m {m}, k {k}, n {n}: {e:?}");
    }
}

// ---------------------------------------------------------------- image operations
//
// Each image op is followed by a nonlinearity so that the Hessian–vector check of `check` sees
// second derivatives through the op (a convolution alone is linear in its image).

use keel_engine::tensor::{Conv2dOpts, ConvTranspose2dOpts};

fn conv(
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Conv2dOpts {
    Conv2dOpts {
        stride,
        padding,
        dilation,
        groups,
    }
}

/// The affine maps `[n, 2, 3]` of `expm` of generator combinations (rotations past π/2, zoom,
/// shear, translation), so that many sampling points fall outside the image.
fn thetas(x: &Tensor) -> Result<Tensor> {
    let n = x.dims()[0];
    x.reshape(&[n, 2, 3])?.affine(1.2, 0.0)
}

/// A rotation by 2.2 rad with a zoom out, and a shear with a translation.
fn fixed_thetas() -> Result<Tensor> {
    let (c, s) = (2.2f64.cos() * 1.3, 2.2f64.sin() * 1.3);
    Tensor::from_vec(
        vec![c, -s, 0.1, s, c, -0.2, 1.0, 0.6, 0.3, 0.4, 0.9, 0.0],
        &[2, 2, 3],
    )
}

checks! {
    conv2d_plain: [input(&[2, 3, 5, 6]), input(&[4, 3, 3, 3]), input(&[4])] =>
        |x| x[0].conv2d(&x[1], Some(&x[2]), Conv2dOpts::default())?.tanh();
    conv2d_stride_pad: [input(&[2, 2, 7, 6]), input(&[3, 2, 2, 3])] =>
        |x| x[0].conv2d(&x[1], None, conv([2, 1], [1, 2], [1, 1], 1))?.square();
    conv2d_dilated: [input(&[1, 2, 7, 7]), input(&[2, 2, 3, 2])] =>
        |x| x[0].conv2d(&x[1], None, conv([1, 2], [2, 1], [2, 3], 1))?.tanh();
    conv2d_groups: [input(&[2, 4, 5, 5]), input(&[6, 2, 3, 3]), input(&[6])] =>
        |x| x[0].conv2d(&x[1], Some(&x[2]), conv([1, 1], [1, 1], [1, 1], 2))?.tanh();
    // Stride 1 with dilation: the input gradient is the flipped-weight convolution.
    conv2d_dilated_unit_stride: [input(&[2, 2, 6, 7]), input(&[4, 2, 3, 2]), input(&[4])] =>
        |x| x[0].conv2d(&x[1], Some(&x[2]), conv([1, 1], [2, 1], [2, 3], 1))?.tanh();
    // Padding past the kernel's span less one: the input gradient through col2im.
    conv2d_wide_padding: [input(&[1, 2, 3, 4]), input(&[2, 2, 1, 2])] =>
        |x| x[0].conv2d(&x[1], None, conv([1, 1], [1, 2], [1, 1], 1))?.tanh();
    // The weight first, so that the Hessian–vector check differentiates the weight gradient
    // (`Op::Conv2dWeightGrad`) again.
    conv2d_weight_first: [input(&[3, 2, 2, 3]), input(&[2, 2, 5, 4]), input(&[3])] =>
        |x| x[1].conv2d(&x[0], Some(&x[2]), conv([1, 1], [1, 1], [1, 1], 1))?.tanh();
    conv2d_weight_first_strided: [input(&[4, 1, 3, 3]), input(&[1, 2, 6, 5])] =>
        |x| x[1].conv2d(&x[0], None, conv([2, 1], [1, 0], [1, 1], 2))?.tanh();
    conv2d_depthwise: [input(&[2, 3, 4, 5]), input(&[3, 1, 2, 2])] =>
        |x| x[0].conv2d(&x[1], None, conv([2, 2], [1, 0], [1, 1], 3))?.square();
    conv_transpose2d_plain: [input(&[2, 3, 3, 4]), input(&[3, 2, 3, 3]), input(&[2])] =>
        |x| x[0].conv_transpose2d(&x[1], Some(&x[2]), ConvTranspose2dOpts::default())?.tanh();
    conv_transpose2d_strided: [input(&[1, 4, 3, 3]), input(&[4, 1, 3, 2])] =>
        |x| x[0].conv_transpose2d(&x[1], None, ConvTranspose2dOpts {
            stride: [2, 2], padding: [1, 0], output_padding: [1, 1], dilation: [1, 1], groups: 2,
        })?.square();
    conv_transpose2d_dilated: [input(&[2, 2, 3, 4]), input(&[2, 3, 2, 2])] =>
        |x| x[0].conv_transpose2d(&x[1], None, ConvTranspose2dOpts {
            stride: [1, 2], padding: [0, 1], output_padding: [0, 0], dilation: [2, 1], groups: 1,
        })?.tanh();
    max_pool2d: [input(&[2, 3, 5, 7])] => |x| x[0].max_pool2d([2, 3], [2, 2], [1, 1])?.square();
    max_pool2d_overlapping: [input(&[1, 2, 6, 6])] => |x| x[0].max_pool2d([3, 3], [1, 1], [0, 0])?.tanh();
    avg_pool2d: [input(&[2, 2, 5, 6])] => |x| x[0].avg_pool2d([3, 2], [2, 2], [1, 1])?.square();
    global_mean_pool: [input(&[3, 2, 3, 4])] => |x| x[0].global_mean_pool()?.square();
    flatten: [input(&[2, 3, 2, 2])] => |x| x[0].flatten()?.matmul_t(&x[0].flatten()?, false, true);
    batch_norm_train: [input(&[3, 2, 3, 2]), input(&[2]), input(&[2])] =>
        |x| x[0].batch_norm_train(&x[1], &x[2], 1e-5)?.0.tanh();
    // γ first, so that the Hessian–vector check differentiates the fused op's rule in γ.
    batch_norm_train_gamma_first: [input(&[3]), input(&[2, 3, 2, 3]), input(&[3])] =>
        |x| x[1].batch_norm_train(&x[0], &x[2], 1e-5)?.0.tanh();
    batch_norm_eval: [input(&[2, 3, 2, 2]), input(&[3]), input(&[3]), input(&[3]), positive(&[3])] =>
        |x| x[0].batch_norm_eval(&x[1], &x[2], &x[3], &x[4], 1e-5)?.tanh();
    // γ, β and τ spread so that the threshold splits the values both ways.
    filter_response_norm: [input(&[2, 3, 3, 4]), input(&[3]), input(&[3]), input(&[3])] =>
        |x| x[0].filter_response_norm(&x[1], &x[2], &x[3].mul_scalar(0.3)?, 1e-6)?.tanh();
    filter_response_norm_gamma_first: [input(&[2]), input(&[3, 2, 2, 3]), input(&[2]), input(&[2])] =>
        |x| x[1].filter_response_norm(&x[0], &x[2], &x[3], 1e-6)?.square();
    affine_grid: [input(&[2, 6])] => |x| Tensor::affine_grid(&thetas(&x[0])?, 2, 3, 4)?.square();
    grid_sample_image: [input(&[2, 2, 5, 4])] =>
        |x| x[0].grid_sample(&Tensor::affine_grid(&fixed_thetas()?, 2, 4, 5)?)?.tanh();
    grid_sample_theta: [input(&[2, 6]), input(&[2, 2, 5, 4])] =>
        |x| x[1].grid_sample(&Tensor::affine_grid(&thetas(&x[0])?, 2, 4, 5)?)?.square();
    matrix_exp: [input(&[2, 3, 3])] => |x| x[0].mul_scalar(1.7)?.matrix_exp();
    matrix_exp_small: [input(&[3, 3])] => |x| x[0].mul_scalar(0.1)?.matrix_exp()?.square();
}

#[test]
fn dropout_keeps_the_expectation_and_its_mask_is_the_gradient() {
    let x = Tensor::full(1.0, &[200, 50], DType::F64)
        .unwrap()
        .variable();
    let y = x.dropout(0.3, 7).unwrap();
    let v = y.to_vec_f64().unwrap();
    let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / v.len() as f64;
    // 10,000 Bernoulli(0.7) draws: σ ≈ 0.0046.
    assert!((kept - 0.7).abs() < 0.02, "kept fraction {kept}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.7).abs() < 1e-15));
    let g = grad(&[&y.sum_all().unwrap()], &[None], &[&x], false).unwrap()[0]
        .clone()
        .unwrap()
        .to_vec_f64()
        .unwrap();
    assert_eq!(g, v, "d(sum dropout(x))/dx is the mask");
    assert_eq!(
        x.dropout(0.3, 7).unwrap().to_vec_f64().unwrap(),
        v,
        "seeded"
    );
    assert!(x.dropout(1.0, 7).is_err());
}

#[test]
fn image_ops_refuse_bad_geometry() {
    let x = Tensor::zeros(&[1, 2, 4, 4], DType::F64).unwrap();
    let w = Tensor::zeros(&[3, 2, 5, 5], DType::F64).unwrap();
    let e = x
        .conv2d(&w, None, Conv2dOpts::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kernel spans 5 rows but the padded input has 4"),
        "{e}"
    );
    let w = Tensor::zeros(&[3, 1, 3, 3], DType::F64).unwrap();
    assert!(
        x.conv2d(&w, None, Conv2dOpts::default()).is_err(),
        "channels"
    );
    let e = x
        .conv2d(&w, None, conv([1, 1], [0, 0], [1, 1], 3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
    assert!(
        x.max_pool2d([2, 2], [2, 2], [2, 0]).is_err(),
        "padding over half the kernel"
    );
    assert!(x.max_pool2d([2, 0], [2, 2], [0, 0]).is_err(), "zero kernel");
    let x3 = Tensor::zeros(&[2, 4, 4], DType::F64).unwrap();
    assert!(x3.max_pool2d([2, 2], [2, 2], [0, 0]).is_err(), "rank 3");
    let e = Tensor::zeros(&[2, 3, 2], DType::F64)
        .unwrap()
        .matrix_exp()
        .unwrap_err()
        .to_string();
    assert!(e.contains("square"), "{e}");
}

/// The CPU's fused max pooling and batch norm: their unrecorded backward kernels give the
/// gradients that their recorded rules (the compositions, taken when the gradient is itself
/// recorded) give — here with tied maxima (whole numbers, overlapping and padded windows), where
/// finite differences do not apply.
#[test]
fn fused_backward_kernels_match_their_recorded_rules() {
    let vals: Vec<f64> = (0..2 * 3 * 6 * 5).map(|k| ((k * 7) % 5) as f64).collect();
    let x = Tensor::from_vec(vals, &[2, 3, 6, 5]).unwrap().variable();
    let gamma = Tensor::from_vec(vec![0.5, -1.5, 2.0], &[3])
        .unwrap()
        .variable();
    let beta = Tensor::from_vec(vec![0.1, 0.2, -0.3], &[3])
        .unwrap()
        .variable();
    let cases: [(&str, &F); 3] = [
        ("max_pool2d 2x2/2", &|x| {
            x[0].max_pool2d([2, 2], [2, 2], [0, 0])
        }),
        ("max_pool2d 3x3/1 pad 1", &|x| {
            x[0].max_pool2d([3, 3], [1, 1], [1, 1])
        }),
        ("batch_norm_train", &|x| {
            Ok(x[0].batch_norm_train(&x[1], &x[2], 1e-5)?.0)
        }),
    ];
    for (name, f) in cases {
        let y = f(&[x.clone(), gamma.clone(), beta.clone()]).unwrap();
        let n = y.numel();
        let w: Vec<f64> = (0..n).map(|k| (0.3 * k as f64).sin()).collect();
        let loss = y.mul(&t(&w, y.dims())).unwrap().sum_all().unwrap();
        let wrt = [&x, &gamma, &beta];
        let fused = grad(&[&loss], &[None], &wrt, false).unwrap();
        let recorded = grad(&[&loss], &[None], &wrt, true).unwrap();
        for (a, b) in fused.iter().zip(&recorded) {
            let (Some(a), Some(b)) = (a, b) else {
                assert!(a.is_none() && b.is_none(), "{name}");
                continue;
            };
            let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!(close(*u, *v, 1e-12), "{name} [{i}]: {u} vs {v}");
            }
        }
    }
}

/// The one-pass `add_relu` and `mul_step` give the bits of the compositions they stand for
/// (`add` then `relu`, `mul` by `step`) — values and gradients, with signed zeros, a NaN and
/// broadcast operands — so that a network's results do not depend on which was used.
#[test]
fn fused_relu_ops_are_their_compositions_bit_for_bit() {
    let special = [
        0.0,
        -0.0,
        f64::NAN,
        1.5,
        -2.25,
        f64::INFINITY,
        3.0e-300,
        -7.0,
    ];
    let a: Vec<f64> = (0..6 * 8)
        .map(|k| {
            if k % 5 == 0 {
                special[k % special.len()]
            } else {
                ((k * 37 % 23) as f64 - 11.0) / 3.0
            }
        })
        .collect();
    let b: Vec<f64> = (0..8).map(|k| special[(k * 3) % special.len()]).collect();
    let bits = |t: &Tensor| -> Vec<u64> {
        t.to_vec_f64()
            .unwrap()
            .into_iter()
            .map(f64::to_bits)
            .collect()
    };
    let (a, b) = (t(&a, &[6, 8]).variable(), t(&b, &[8]).variable());
    let w: Vec<f64> = (0..6 * 8).map(|k| (0.7 * k as f64).cos()).collect();
    let w = t(&w, &[6, 8]);
    type Pair = (&'static str, &'static F, &'static F);
    let cases: [Pair; 2] = [
        ("add_relu", &|x| x[0].add_relu(&x[1]), &|x| {
            x[0].add(&x[1])?.relu()
        }),
        ("mul_step", &|x| x[0].mul_step(&x[1]), &|x| {
            x[0].mul(&x[1].step()?)
        }),
    ];
    for (name, fused, composed) in cases {
        let (y, z) = (
            fused(&[a.clone(), b.clone()]).unwrap(),
            composed(&[a.clone(), b.clone()]).unwrap(),
        );
        assert_eq!(bits(&y), bits(&z), "{name}: values");
        let loss = |y: &Tensor| y.mul(&w).unwrap().sum_all().unwrap();
        let gy = grad(&[&loss(&y)], &[None], &[&a, &b], false).unwrap();
        let gz = grad(&[&loss(&z)], &[None], &[&a, &b], false).unwrap();
        assert_eq!(
            bits(gy[0].as_ref().unwrap()),
            bits(gz[0].as_ref().unwrap()),
            "{name}: ∂/∂a"
        );
        match (&gy[1], &gz[1]) {
            (Some(u), Some(v)) => assert_eq!(bits(u), bits(v), "{name}: ∂/∂b"),
            (None, None) => {}
            (u, v) => panic!("{name}: ∂/∂b {} vs {}", u.is_some(), v.is_some()),
        }
    }
}
