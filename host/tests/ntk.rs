//! Linearized networks (host/src/ntk): the Jacobian products against explicit Jacobians, the
//! Fisher-vector products, CG and Lanczos inside the posteriors, function vs parameter space,
//! and the posterior against numpy's dense computation (fixtures/gen/ntk.py).

use keel::ntk::jacobian::{flatten, unflatten};
use keel::ntk::krylov::CgSettings;
use keel::ntk::{Jacobian, Mean, OnNoConvergence, Outputs, Posterior, PosteriorSettings, Space};
use keel_core::random::Xoshiro256PlusPlus;
use keel_engine::init::Init;
use keel_engine::nn::{Activation, Mlp};
use keel_engine::params::Params;
use keel_engine::{DType, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/ntk/posterior.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// An MLP of `sizes` (tanh) with the flat parameters `flat` (random ones when `None`).
fn mlp(sizes: &[usize], flat: Option<&[f64]>, seed: u64) -> (Mlp, Params) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut params = Params::new();
    let net = Mlp::new(
        &mut params,
        sizes,
        Activation::Tanh,
        Init::PyTorchDefault,
        DType::F64,
        &mut rng,
    )
    .unwrap();
    if let Some(flat) = flat {
        let values = unflatten(flat, &params, DType::F64).unwrap();
        for (i, v) in values.into_iter().enumerate() {
            params.set(keel_engine::params::ParamId(i), v).unwrap();
        }
    }
    (net, params)
}

fn matrix(data: &[f64], cols: usize) -> Tensor {
    Tensor::from_f64s(data, &[data.len() / cols, cols], DType::F64).unwrap()
}

fn rows(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * d)
        .map(|_| 4.0 * keel_core::random::uniform::<f64, _>(&mut rng) - 2.0)
        .collect()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn dense_mv(j: &[f64], rows: usize, cols: usize, u: &[f64]) -> Vec<f64> {
    (0..rows)
        .map(|r| (0..cols).map(|c| j[r * cols + c] * u[c]).sum())
        .collect()
}

fn dense_tmv(j: &[f64], rows: usize, cols: usize, v: &[f64]) -> Vec<f64> {
    (0..cols)
        .map(|c| (0..rows).map(|r| j[r * cols + c] * v[r]).sum())
        .collect()
}

#[test]
fn products_match_the_explicit_jacobian() {
    // Two outputs, so the function space interleaves rows and outputs.
    let (net, params) = mlp(&[3, 6, 5, 2], None, 1);
    let xd = rows(7, 3, 2);
    let x = matrix(&xd, 3);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All)
        .unwrap()
        .chunk(3);
    let (n, p) = (jac.len(), jac.params_len());
    assert_eq!((n, p), (14, 3 * 6 + 6 + 6 * 5 + 5 + 5 * 2 + 2));
    let j = jac.dense().unwrap();
    let u = rows(1, p, 3);
    let v = rows(1, n, 4);
    let ju = dense_mv(&j, n, p, &u);
    assert!(max_rel(&jac.jvp(&u).unwrap(), &ju) < 1e-10);
    assert!(max_rel(&jac.vjp(&v).unwrap(), &dense_tmv(&j, n, p, &v)) < 1e-10);
    // K v = J Jᵀ v; Jᵀ J u; diag K.
    let kv = dense_mv(&j, n, p, &dense_tmv(&j, n, p, &v));
    assert!(
        max_rel(
            &keel::ntk::jacobian::kernel_mv(&jac, &jac, &v).unwrap(),
            &kv
        ) < 1e-10
    );
    let gn = dense_tmv(&j, n, p, &ju);
    assert!(max_rel(&jac.gauss_newton(&u).unwrap(), &gn) < 1e-10);
    let diag: Vec<f64> = (0..n)
        .map(|r| j[r * p..(r + 1) * p].iter().map(|x| x * x).sum())
        .collect();
    assert!(max_rel(&jac.sq_norms().unwrap(), &diag) < 1e-10);
    // The reverse-mode columns against central differences of the outputs.
    let theta = flatten(params.values()).unwrap();
    let h = 1e-6;
    for c in [0, 17, p - 1] {
        let mut plus = theta.clone();
        plus[c] += h;
        let mut minus = theta.clone();
        minus[c] -= h;
        let (_, pp) = mlp(&[3, 6, 5, 2], Some(&plus), 1);
        let (_, pm) = mlp(&[3, 6, 5, 2], Some(&minus), 1);
        let fp = jac.values_at(&pp).unwrap();
        let fm = jac.values_at(&pm).unwrap();
        for r in 0..n {
            let fd = (fp[r] - fm[r]) / (2.0 * h);
            assert!((fd - j[r * p + c]).abs() < 1e-8, "row {r} column {c}");
        }
    }
}

#[test]
fn jacobian_matches_numpys_backpropagation() {
    let fx = fixture();
    let reg = &fx["regression"];
    let (net, params) = mlp(&[2, 4, 3, 1], Some(&floats(&reg["params"])), 0);
    let x = matrix(&floats(&reg["x"]), 2);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All).unwrap();
    assert!(max_rel(&jac.dense().unwrap(), &floats(&reg["jacobian"])) < 1e-12);
    assert!(max_rel(&jac.values().unwrap(), &floats(&reg["f_train"])) < 1e-13);
}

fn settings(space: Space, mean: Mean, noise: f64) -> PosteriorSettings {
    PosteriorSettings {
        noise,
        mean,
        space,
        cg: CgSettings {
            tol: 1e-12,
            max_iter: 500,
        },
        lanczos_rank: 200,
        precondition: true,
        on_no_convergence: OnNoConvergence::Fail,
    }
}

#[test]
fn posterior_matches_numpy_in_both_spaces() {
    let fx = fixture();
    let reg = &fx["regression"];
    let (net, params) = mlp(&[2, 4, 3, 1], Some(&floats(&reg["params"])), 0);
    let x = matrix(&floats(&reg["x"]), 2);
    let xs = matrix(&floats(&reg["x_test"]), 2);
    let y = floats(&reg["y"]);
    let noise = reg["noise"].as_f64().unwrap();
    for (name, mean) in [("zero", Mean::Zero), ("network", Mean::Network)] {
        let want_mean = floats(&reg[name]["mean"]);
        let want_var = floats(&reg[name]["variance"]);
        for space in [Space::Function, Space::Parameter] {
            let post = Posterior::fit(
                &net,
                &params,
                &x,
                &y,
                Outputs::All,
                settings(space, mean, noise),
            )
            .unwrap();
            assert!(post.cg().converged);
            let pred = post.predict(&xs).unwrap();
            let em = max_rel(&pred.mean, &want_mean);
            let ev = max_rel(&pred.variance, &want_var);
            assert!(
                em < 1e-8 && ev < 1e-8,
                "{name} {space:?}: mean {em:e}, variance {ev:e}"
            );
        }
    }
}

#[test]
fn function_and_parameter_space_agree_on_a_wider_network() {
    // P = 1,761 (the sine network) ≫ n = 10: the parameter-space variance needs the prior term
    // of the directions outside the Krylov space.
    let (net, params) = mlp(&[1, 40, 40, 1], None, 5);
    let x = matrix(&rows(10, 1, 6), 1);
    let xs = matrix(&rows(25, 1, 7), 1);
    let y: Vec<f64> = rows(10, 1, 6).iter().map(|x| (2.0 * x).sin()).collect();
    let f = Posterior::fit(
        &net,
        &params,
        &x,
        &y,
        Outputs::All,
        settings(Space::Function, Mean::Zero, 0.01),
    )
    .unwrap()
    .predict(&xs)
    .unwrap();
    let p = Posterior::fit(
        &net,
        &params,
        &x,
        &y,
        Outputs::All,
        settings(Space::Parameter, Mean::Zero, 0.01),
    )
    .unwrap();
    assert!(p.lanczos().invariant);
    let p = p.predict(&xs).unwrap();
    assert!(
        max_rel(&p.mean, &f.mean) < 1e-8,
        "{:e}",
        max_rel(&p.mean, &f.mean)
    );
    assert!(
        max_rel(&p.variance, &f.variance) < 1e-8,
        "{:e}",
        max_rel(&p.variance, &f.variance)
    );
    // The variance shrinks at the data and stays at most the prior's everywhere.
    let prior = Jacobian::new(&net, &params, &xs, Outputs::All)
        .unwrap()
        .sq_norms()
        .unwrap();
    assert!(f
        .variance
        .iter()
        .zip(&prior)
        .all(|(v, k)| *v <= k * (1.0 + 1e-12)));
}

#[test]
fn linearization_error_is_second_order() {
    let (net, params) = mlp(&[2, 8, 1], None, 8);
    let x = matrix(&rows(5, 2, 9), 2);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All).unwrap();
    let theta = flatten(params.values()).unwrap();
    let delta = rows(1, theta.len(), 10);
    let f0 = jac.values().unwrap();
    let jd = jac.jvp(&delta).unwrap();
    let err = |t: f64| -> f64 {
        let moved: Vec<f64> = theta.iter().zip(&delta).map(|(a, d)| a + t * d).collect();
        let (_, pm) = mlp(&[2, 8, 1], Some(&moved), 8);
        let f = jac.values_at(&pm).unwrap();
        f.iter()
            .zip(f0.iter().zip(&jd))
            .map(|(f, (a, b))| (f - a - t * b).abs())
            .fold(0.0, f64::max)
    };
    for t in [1e-2, 1e-3] {
        let ratio = err(t) / err(t / 2.0);
        assert!((ratio - 4.0).abs() < 0.2, "t = {t}: error ratio {ratio}");
    }
}

/// `f(x) = xᵀθ + b`: a linear model, whose Fisher for the Gaussian likelihood is `X̃ᵀX̃ / n`.
#[test]
fn finite_difference_fisher_on_a_linear_model() {
    let (net, params) = mlp(&[4, 1], None, 11);
    let xd = rows(30, 4, 12);
    let x = matrix(&xd, 4);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All).unwrap();
    let v = rows(1, 5, 13);
    let n = 30.0;
    // X̃ = [x, 1]; exact F v = X̃ᵀ(X̃ v)/n.
    let xt: Vec<f64> = (0..30)
        .flat_map(|r| xd[r * 4..r * 4 + 4].iter().copied().chain([1.0]))
        .collect();
    let exact: Vec<f64> = dense_tmv(&xt, 30, 5, &dense_mv(&xt, 30, 5, &v))
        .iter()
        .map(|x| x / n)
        .collect();
    for eps in [1e-6, 1e-4, 1e-2, 1.0] {
        let fd = jac.fisher_fd_regression(&v, eps).unwrap();
        let rel = max_rel(&fd, &exact);
        assert!(rel < 0.04, "eps {eps}: relative error {rel}");
    }
    assert!(jac.fisher_fd_regression(&v, 0.0).is_err());
}

#[test]
fn fisher_products_of_a_nonlinear_network() {
    // Regression: the finite difference against the exact Gauss–Newton product / n.
    let (net, params) = mlp(&[2, 6, 1], None, 14);
    let x = matrix(&rows(9, 2, 15), 2);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All).unwrap();
    let v = rows(1, jac.params_len(), 16);
    let exact: Vec<f64> = jac
        .gauss_newton(&v)
        .unwrap()
        .iter()
        .map(|g| g / 9.0)
        .collect();
    let fd = jac.fisher_fd_regression(&v, 1e-4).unwrap();
    assert!(max_rel(&fd, &exact) < 1e-3, "{:e}", max_rel(&fd, &exact));

    // Classification: the exact Fisher (second-order autodiff of the detached entropy) against
    // numpy's (1/n) Σ Jᵢᵀ(diag pᵢ − pᵢpᵢᵀ)Jᵢ v, and the finite difference against it.
    let fx = fixture();
    let cls = &fx["classification"];
    let (net, params) = mlp(&[2, 5, 3], Some(&floats(&cls["params"])), 0);
    let x = matrix(&floats(&cls["x"]), 2);
    let jac = Jacobian::new(&net, &params, &x, Outputs::All).unwrap();
    let v = floats(&cls["v"]);
    let want = floats(&cls["fisher_v"]);
    let exact = jac.fisher_exact_classification(&v).unwrap();
    assert!(
        max_rel(&exact, &want) < 1e-10,
        "{:e}",
        max_rel(&exact, &want)
    );
    let fd = jac.fisher_fd_classification(&v, 1e-4).unwrap();
    assert!(max_rel(&fd, &want) < 1e-3, "{:e}", max_rel(&fd, &want));
}

#[test]
fn bad_settings_and_targets_are_refused() {
    let (net, params) = mlp(&[1, 4, 1], None, 17);
    let x = matrix(&[0.0, 0.5, 1.0], 1);
    let y = [0.0, 1.0, 0.5];
    let fit = |y: &[f64], s: PosteriorSettings| {
        Posterior::fit(&net, &params, &x, y, Outputs::All, s).map(|_| ())
    };
    let good = settings(Space::Function, Mean::Zero, 0.1);
    for noise in [0.0, -1.0, f64::NAN] {
        let e = fit(&y, PosteriorSettings { noise, ..good }).unwrap_err();
        assert!(e.to_string().contains("noise"), "{e}");
        assert!(e.is_input_error());
    }
    let e = fit(&[0.0, f64::NAN, 1.0], good).unwrap_err();
    assert!(e.to_string().contains("target 1 is not finite"), "{e}");
    let e = fit(&[0.0, 1.0], good).unwrap_err();
    assert!(e.to_string().contains("expected 3"), "{e}");
    let e = Jacobian::new(&net, &params, &x, Outputs::One(1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("1 outputs"), "{e}");
}

#[test]
fn a_solve_that_does_not_converge_says_so() {
    let (net, params) = mlp(&[1, 20, 1], None, 18);
    let xd = rows(12, 1, 19);
    let x = matrix(&xd, 1);
    let y: Vec<f64> = xd.iter().map(|x| x.cos()).collect();
    for space in [Space::Function, Space::Parameter] {
        let mut s = settings(space, Mean::Zero, 1e-4);
        s.cg = CgSettings {
            tol: 1e-12,
            max_iter: 2,
        };
        s.precondition = false;
        let e = Posterior::fit(&net, &params, &x, &y, Outputs::All, s)
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("did not converge") && msg.contains("after 2 iterations"),
            "{msg}"
        );
        assert!(!e.is_input_error());
        s.on_no_convergence = OnNoConvergence::Report;
        let post = Posterior::fit(&net, &params, &x, &y, Outputs::All, s).unwrap();
        assert!(!post.cg().converged);
        assert!(post.cg().relative_residual > 1e-12);
    }
}
