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
    ce.sub(
        &theta
            .square()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .mul_scalar(0.05)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn width_gradient_matches_finite_differences() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let (n, h, w) = (3, 7, 6);
    let xs: Vec<f64> = (0..n * h * w)
        .map(|_| uniform::<f64, _>(&mut rng))
        .collect();
    let x = Tensor::from_vec(xs, &[n, 1, h, w]).unwrap();
    let us: Vec<f64> = (0..n * 6).map(|_| uniform::<f64, _>(&mut rng)).collect();
    let u = Tensor::from_vec(us, &[n, 6]).unwrap();
    let mut p = Params::new();
    let (cnn, _) = Cnn::new(
        &mut p,
        "",
        [1, h, w],
        &parse_spec("c3nobn,m2").unwrap(),
        3,
        DType::F64,
        &mut rng,
    )
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
            loss(
                &cnn,
                &p,
                &x,
                &u,
                &Tensor::from_vec(v.to_vec(), &[6]).unwrap(),
                &labels,
            )
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
    let xs: Vec<f64> = (0..2 * 2 * 5 * 4)
        .map(|_| uniform::<f64, _>(&mut rng))
        .collect();
    let x = Tensor::from_vec(xs.clone(), &[2, 2, 5, 4]).unwrap();
    let u = Tensor::from_vec(vec![0.3; 12], &[2, 6]).unwrap();
    let theta = Tensor::zeros(&[1, 6], DType::F64).unwrap();
    let y = warp_batch(&x, &theta, &u).unwrap().to_vec_f64().unwrap();
    for (a, b) in y.iter().zip(&xs) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    use keel::checkpoint::Options;
    use keel::cnn::{train, Augmentation, ImageTrainConfig};
    use keel::data::Targets;
    use keel::images::{ImageSet, ImageShape};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
    let shape = ImageShape::new(1, 6, 6).unwrap();
    let pixels: Vec<f64> = (0..40 * 36).map(|_| uniform::<f64, _>(&mut rng)).collect();
    let targets = Targets::Classes {
        labels: (0..40).map(|i| i % 2).collect(),
        classes: vec!["a".into(), "b".into()],
    };
    let set = ImageSet::new(shape, pixels, targets).unwrap();
    let dir = std::env::temp_dir().join(format!("keel-cnn-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("ck.safetensors");
    let cfg = |checkpoint: Options| ImageTrainConfig {
        spec: parse_spec("c3,x0.1,m2").unwrap(),
        augmentation: Augmentation::Learned {
            init: [-2.0, -2.0, 0.5, -2.0, -2.0, -2.0],
            reg: 0.01,
            safe: true,
        },
        epochs: 4,
        batch_size: 16,
        lr: 0.01,
        weight_decay: 1e-3,
        copies: 2,
        seed: 4,
        dtype: DType::F64,
        device: keel::Device::Cpu,
        checkpoint,
    };
    let whole = train(&cfg(Options::default()), &set, &mut |_| {}).unwrap();
    let opts = |resume: bool, stop_after: Option<usize>| Options {
        path: Some(ck.clone()),
        every: 1,
        resume,
        stop_after,
    };
    let first = train(&cfg(opts(false, Some(2))), &set, &mut |_| {}).unwrap();
    assert_eq!(first.history.len(), 2);
    let mut ticks = Vec::new();
    let rest = train(&cfg(opts(true, None)), &set, &mut |t| ticks.push(t.done)).unwrap();
    assert_eq!(ticks, [3, 4], "the resumed run starts at epoch 3");
    assert_eq!(rest.history.len(), 4);
    for (a, b) in whole.params.values().iter().zip(rest.params.values()) {
        assert_eq!(
            a.to_vec_f64().unwrap(),
            b.to_vec_f64().unwrap(),
            "parameters"
        );
    }
    for ((m1, v1), (m2, v2)) in whole.state.running.iter().zip(&rest.state.running) {
        assert_eq!(m1.to_vec_f64().unwrap(), m2.to_vec_f64().unwrap());
        assert_eq!(v1.to_vec_f64().unwrap(), v2.to_vec_f64().unwrap());
    }
    let (h1, h2): (Vec<f64>, Vec<f64>) = whole
        .history
        .iter()
        .zip(&rest.history)
        .map(|(a, b)| (a.train_loss, b.train_loss))
        .unzip();
    assert_eq!(h1, h2, "learning curves");
    // Another configuration refuses the checkpoint.
    let mut other = cfg(opts(true, None));
    other.lr = 0.02;
    let e = train(&other, &set, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("checkpoint is for"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
