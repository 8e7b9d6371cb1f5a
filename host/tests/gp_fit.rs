//! Hyperparameter gradients of the log marginal likelihood against central finite differences,
//! and `fit` improving it: the exact GP (dense) and SKI (from the cached statistics only).

use keel::gp::{
    exact_mll_grad, fit, from_theta, ski_dense, ski_mll_grad, synthetic_stream, to_theta, GridSpec,
    Hyper, TrainData,
};
use keel_core::gp::{Convention, Family};

fn data_2d(n: usize) -> TrainData {
    let s = synthetic_stream(2 * n, 5);
    let x: Vec<f64> = s.x.iter().map(|v| v / 3.0).collect();
    let y = (0..n)
        .map(|i| (2.0 * x[2 * i]).sin() * x[2 * i + 1] + 0.1 * s.y[i])
        .collect();
    TrainData {
        dim: 2,
        x,
        y,
        d: (0..n).map(|i| 1.0 + 0.3 * (i % 2) as f64).collect(),
    }
}

fn check_gradient(name: &str, h: &Hyper, f: &dyn Fn(&Hyper) -> (f64, Vec<f64>)) {
    let (_, g) = f(h);
    let t = to_theta(h);
    for i in 0..t.len() {
        let step = 1e-5;
        let (mut tp, mut tm) = (t.clone(), t.clone());
        tp[i] += step;
        tm[i] -= step;
        let fd = (f(&from_theta(h.family, &tp)).0 - f(&from_theta(h.family, &tm)).0) / (2.0 * step);
        assert!(
            (g[i] - fd).abs() <= 1e-5 * fd.abs().max(1.0),
            "{name}: ∂L/∂θ[{i}] = {} vs finite difference {fd}",
            g[i]
        );
    }
}

#[test]
fn exact_gradient_matches_finite_differences() {
    let train = data_2d(60);
    for family in [
        Family::Rbf,
        Family::Matern12,
        Family::Matern32,
        Family::Matern52,
    ] {
        let h = Hyper {
            family,
            outputscale: 0.8,
            lengthscale: vec![0.4, 0.7],
            noise: 0.05,
        };
        check_gradient(&format!("exact {family:?}"), &h, &|h| {
            exact_mll_grad(h, &train).unwrap()
        });
    }
}

#[test]
fn ski_gradient_from_the_caches_matches_finite_differences() {
    let train = data_2d(80);
    let grid = GridSpec {
        size: vec![10, 9],
        lo: vec![-1.0, -1.0],
        hi: vec![1.0, 1.0],
        convention: Convention::Endpoints,
        clamp: false,
    };
    for family in [Family::Rbf, Family::Matern52] {
        let h = Hyper {
            family,
            outputscale: 0.8,
            lengthscale: vec![0.4, 0.7],
            noise: 0.05,
        };
        check_gradient(&format!("ski {family:?}"), &h, &|h| {
            ski_mll_grad(h, &grid, &train).unwrap()
        });
        // The likelihood from the caches is the dense SKI one.
        let dense = ski_dense(&h, &grid, &train, &[])
            .unwrap()
            .log_marginal_likelihood;
        let cached = ski_mll_grad(&h, &grid, &train).unwrap().0;
        assert!((dense - cached).abs() < 1e-8 * dense.abs());
    }
    let one_d = synthetic_stream(200, 9);
    let grid1 = GridSpec {
        size: vec![40],
        lo: vec![-3.0],
        hi: vec![3.0],
        convention: Convention::Endpoints,
        clamp: false,
    };
    let h = Hyper {
        family: Family::Rbf,
        outputscale: 1.3,
        lengthscale: vec![0.7],
        noise: 0.04,
    };
    check_gradient("ski 1-D", &h, &|h| ski_mll_grad(h, &grid1, &one_d).unwrap());
}

#[test]
fn fitting_raises_the_likelihood_and_finds_the_noise() {
    // The stream's noise sd is 0.2 (variance 0.04); start far from it.
    let train = synthetic_stream(300, 3);
    let h = Hyper {
        family: Family::Rbf,
        outputscale: 0.3,
        lengthscale: vec![2.0],
        noise: 0.5,
    };
    let (best, r) = fit(&h, None, &train, 150, 0.05).unwrap();
    assert!(
        r.log_marginal_likelihood_end > r.log_marginal_likelihood_start + 100.0,
        "{r:?}"
    );
    assert!(best.noise > 0.025 && best.noise < 0.06, "{best:?}");
    let grid = GridSpec {
        size: vec![64],
        lo: vec![-3.0],
        hi: vec![3.0],
        convention: Convention::Endpoints,
        clamp: false,
    };
    let (best_ski, rs) = fit(&h, Some(&grid), &train, 150, 0.05).unwrap();
    assert!(
        rs.log_marginal_likelihood_end > rs.log_marginal_likelihood_start + 100.0,
        "{rs:?}"
    );
    assert!(
        (best_ski.noise - best.noise).abs() < 0.2 * best.noise,
        "{best_ski:?} vs {best:?}"
    );
}

#[test]
fn dirichlet_transform_closed_form() {
    use keel::gp::dirichlet_target;
    // Values from numpy, for the Dirichlet transform of the reference's
    // `online_gp/models/gp_dirichlet_classification.py`: α = 1.01 and α = 0.01.
    let (y1, v1) = dirichlet_target(true, 0.01);
    assert!(
        (v1 - 0.688184).abs() < 1e-6 && (y1 + 0.334142).abs() < 1e-6,
        "{y1} {v1}"
    );
    let (y0, v0) = dirichlet_target(false, 0.01);
    assert!(
        (v0 - 4.615121).abs() < 1e-6 && (y0 + 6.912730).abs() < 1e-6,
        "{y0} {v0}"
    );
    assert_eq!(v0, 101f64.ln());
}

#[test]
fn dirichlet_gps_separate_the_banana_online() {
    use keel::gp::{banana, classify, ClassData, ClassifyConfig, ClassifyMethod};
    let train = banana(800, 0.15, 0);
    let test = banana(400, 0.15, 1);
    assert!(train.x.iter().all(|v| (-1.0..=1.0).contains(v)));
    let ones = train.label.iter().sum::<usize>();
    assert!(ones > 300 && ones < 500);
    let data = ClassData::from_banana(train, test).unwrap();
    let run = |method| {
        let config = ClassifyConfig {
            method,
            pretrain_fraction: 0.1,
            kernel_every: 8,
            ..ClassifyConfig::default()
        };
        classify(&config, &data, |_, _| {}).unwrap()
    };
    let (w, e) = (run(ClassifyMethod::Wiski), run(ClassifyMethod::Exact));
    // A least-squares linear rule gets 0.87 on these crescents (numpy, 4000 points); both GPs
    // must do much better.
    assert!(
        w.test_accuracy > 0.95 && e.test_accuracy > 0.95,
        "{w:?} {e:?}"
    );
    assert!(w.online_accuracy > 0.9 && w.test_nll < 0.2, "{w:?}");
}
