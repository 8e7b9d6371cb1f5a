//! The convolutional network builder: spec parsing, shapes, batch norm's running statistics in
//! training and evaluation mode, and that a few Adam steps fit a small image task.

use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_engine::nn::cnn::{parse_spec, Cnn, LayerSpec, Mode, Norm};
use keel_engine::optim::{Optimizer, OptimizerKind};
use keel_engine::params::Params;
use keel_engine::{grad, no_grad, DType, Tensor};

#[test]
fn specs_parse_and_refuse_nonsense() {
    let s = parse_spec("c8,c16k5s2nobn,m2,a2,x0.25,g,d32").unwrap();
    assert_eq!(s.len(), 7);
    assert!(matches!(
        s[1],
        LayerSpec::Conv {
            out: 16,
            kernel: 5,
            stride: 2,
            padding: 2,
            norm: Norm::None,
            ..
        }
    ));
    assert_eq!(s[4], LayerSpec::Dropout(0.25));
    for bad in ["c0", "q3", "x1.5", "m", "c8k", "g2", ""] {
        let e = parse_spec(bad).unwrap_err().to_string();
        assert!(e.contains("cnn layer"), "{bad}: {e}");
    }
}

#[test]
fn shapes_flow_and_bad_specs_are_refused_at_build() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut p = Params::new();
    let spec = parse_spec("c4,m2,c6nobn,f,d5").unwrap();
    let (cnn, mut st) = Cnn::new(&mut p, "", [1, 8, 8], &spec, 3, DType::F64, &mut rng).unwrap();
    // conv 1→4 (36+4), bn (8), conv 4→6 (216+6), dense 96→5 (485), dense 5→3 (18).
    assert_eq!(p.numel(), 40 + 8 + 222 + 485 + 18);
    let x = Tensor::zeros(&[2, 1, 8, 8], DType::F64).unwrap();
    let y = cnn.forward(&p, &mut st, &x, Mode::Eval).unwrap();
    assert_eq!(y.dims(), [2, 3]);
    let bad = Tensor::zeros(&[2, 1, 7, 8], DType::F64).unwrap();
    assert!(cnn.forward(&p, &mut st, &bad, Mode::Eval).is_err());
    let mut p2 = Params::new();
    let e = Cnn::new(
        &mut p2,
        "",
        [1, 4, 4],
        &parse_spec("m2,m2,m2").unwrap(),
        2,
        DType::F64,
        &mut rng,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("pooling window"), "{e}");
}

#[test]
fn batch_norm_running_statistics_follow_pytorch() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    let mut p = Params::new();
    let spec = parse_spec("c2k1").unwrap();
    let (cnn, mut st) = Cnn::new(&mut p, "", [1, 3, 3], &spec, 2, DType::F64, &mut rng).unwrap();
    let xs: Vec<f64> = (0..4 * 9)
        .map(|_| uniform::<f64, _>(&mut rng) * 3.0)
        .collect();
    let x = Tensor::from_vec(xs, &[4, 1, 3, 3]).unwrap();
    let z = no_grad(|| {
        let Some(keel_engine::nn::cnn::Layer::Conv(c, _, _)) = cnn.layers.first() else {
            panic!("first layer is the convolution");
        };
        x.conv2d(p.get(c.weight), Some(p.get(c.bias)), c.opts)
    })
    .unwrap();
    cnn.forward(&p, &mut st, &x, Mode::Train { seed: 0 })
        .unwrap();
    let zv = z.to_vec_f64().unwrap();
    for ch in 0..2 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|b| zv[(b * 2 + ch) * 9..][..9].to_vec())
            .collect();
        let m = vals.iter().sum::<f64>() / 36.0;
        let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 35.0;
        let rm = st.running[0].0.to_vec_f64().unwrap()[ch];
        let rv = st.running[0].1.to_vec_f64().unwrap()[ch];
        assert!((rm - 0.1 * m).abs() < 1e-12, "mean {rm} vs {}", 0.1 * m);
        assert!(
            (rv - (0.9 + 0.1 * v)).abs() < 1e-12,
            "var {rv} vs {}",
            0.9 + 0.1 * v
        );
    }
}

#[test]
fn a_small_cnn_learns_where_the_bright_pixel_is() {
    // Class = which quadrant of a 6×6 image holds the bright pixel (noise elsewhere).
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let (n, classes) = (64, 4);
    let mut xs = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let k = i % classes;
        let mut img: Vec<f64> = (0..36).map(|_| 0.1 * uniform::<f64, _>(&mut rng)).collect();
        let (r, c) = ((k / 2) * 3 + 1, (k % 2) * 3 + 1);
        img[r * 6 + c] = 1.0;
        xs.extend(img);
        labels.push(k);
    }
    let x = Tensor::from_vec(xs, &[n, 1, 6, 6]).unwrap();
    let mut p = Params::new();
    let spec = parse_spec("c8,m2,d16").unwrap();
    let (cnn, mut st) =
        Cnn::new(&mut p, "", [1, 6, 6], &spec, classes, DType::F64, &mut rng).unwrap();
    let mut opt = Optimizer::new(OptimizerKind::adamw(0.0), &p).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for step in 0..60 {
        let vars = p.variables();
        let loss = cnn
            .forward(&vars, &mut st, &x, Mode::Train { seed: step })
            .unwrap()
            .cross_entropy(&labels)
            .unwrap();
        last = loss.item().unwrap();
        first.get_or_insert(last);
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let g: Vec<Tensor> = no_grad(|| grad(&[&loss], &[None], &refs, false))
            .unwrap()
            .into_iter()
            .map(|g| g.unwrap())
            .collect();
        no_grad(|| opt.step(&mut p, &g, 0.02)).unwrap();
    }
    let first = first.unwrap();
    assert!(last < 0.1 * first, "loss {first} → {last}");
    let out = no_grad(|| cnn.forward(&p, &mut st, &x, Mode::Eval)).unwrap();
    let pred = out.argmax(1).unwrap();
    let acc = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    assert!(acc >= 60, "eval-mode accuracy {acc}/64");
}
