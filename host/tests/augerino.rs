//! Augerino's reparameterisation gradient: ∂L/∂w of `L = CE(f(warp(x; ε(u, softplus(w))))) −
//! λ‖softplus(w)‖₂` through the matrix exponential and the bilinear warp, on a tiny CNN with fixed
//! uniform draws `u`, against central finite differences in f64 (the check the paper's method
//! rests on: the widths learn only through this gradient).

use keel::cnn::warp_batch;
use keel::nn::cnn::{parse_spec, Cnn, Mode};
use keel::params::Params;
use keel::{grad, DType, Tensor};
use keel_core::random::{uniform, Xoshiro256PlusPlus};

fn loss(cnn: &Cnn, p: &Params, x: &Tensor, u: &Tensor, w: &Tensor, labels: &[usize]) -> Tensor {
    let theta = w.softplus().unwrap();
    let xw = warp_batch(x, &theta.reshape(&[1, 6]).unwrap(), u).unwrap();
    let mut st = Default::default();
    let ce = cnn
        .forward(p, &mut st, &xw, Mode::Eval)
        .unwrap()
        .cross_entropy(labels)
        .unwrap();
    ce.sub(&theta.square().unwrap().sum_all().unwrap().sqrt().unwrap().mul_scalar(0.05).unwrap())
        .unwrap()
}

#[test]
fn width_gradient_matches_finite_differences() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let (n, h, w) = (3, 7, 6);
    let xs: Vec<f64> = (0..n * h * w).map(|_| uniform::<f64, _>(&mut rng)).collect();
    let x = Tensor::from_vec(xs, &[n, 1, h, w]).unwrap();
    let us: Vec<f64> = (0..n * 6).map(|_| uniform::<f64, _>(&mut rng)).collect();
    let u = Tensor::from_vec(us, &[n, 6]).unwrap();
    let mut p = Params::new();
    let (cnn, _) = Cnn::new(&mut p, "", [1, h, w], &parse_spec("c3nobn,m2").unwrap(), 3, DType::F64, &mut rng)
        .unwrap();
    let labels = [0, 2, 1];
    // Widths large enough that the warp moves sample points across several pixels.
    let w0 = [0.3, -0.2, 1.0, -0.5, -1.0, 0.2];
    let wt = Tensor::from_vec(w0.to_vec(), &[6]).unwrap().variable();
    let l = loss(&cnn, &p, &x, &u, &wt, &labels);
    let g = grad(&[&l], &[None], &[&wt], false).unwrap()[0]
        .clone()
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let h_fd = 1e-6;
    for i in 0..6 {
        let at = |d: f64| {
            let mut v = w0;
            v[i] += d;
            loss(&cnn, &p, &x, &u, &Tensor::from_vec(v.to_vec(), &[6]).unwrap(), &labels)
                .item()
                .unwrap()
        };
        let fd = (at(h_fd) - at(-h_fd)) / (2.0 * h_fd);
        assert!(
            (g[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
            "∂L/∂w[{i}]: autodiff {} vs finite differences {fd}",
            g[i]
        );
        assert!(g[i].abs() > 1e-6, "w[{i}] has a gradient ({})", g[i]);
    }
}

#[test]
fn zero_widths_leave_the_image_unchanged() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
    let xs: Vec<f64> = (0..2 * 2 * 5 * 4).map(|_| uniform::<f64, _>(&mut rng)).collect();
    let x = Tensor::from_vec(xs.clone(), &[2, 2, 5, 4]).unwrap();
    let u = Tensor::from_vec(vec![0.3; 12], &[2, 6]).unwrap();
    let theta = Tensor::zeros(&[1, 6], DType::F64).unwrap();
    let y = warp_batch(&x, &theta, &u).unwrap().to_vec_f64().unwrap();
    for (a, b) in y.iter().zip(&xs) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
}
