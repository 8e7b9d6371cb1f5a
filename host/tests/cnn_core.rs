//! The controller's CNN against the engine that trained it: a network with batch norm (folded
//! by the export), pooling and a dense head, and Augerino's averaged prediction with the same
//! uniform draws, exported by `keel::cnn::export_bytes` and evaluated by `keel_core::nn::Cnn` /
//! `keel_core::nn::Augerino` in f64 and f32.
//!
//! The engine runs in f64 on the trained f32 weights (converted exactly), so the differences are
//! the export's f32 rounding of the folded batch-norm weights (relative ~6e-8 per weight) and the
//! core's f32 arithmetic in the f32 case.

use keel::cnn::{train, Augmentation, ImageModel, ImageTrainConfig, W_INIT_SMALL};
use keel::data::Targets;
use keel::images::{ImageSet, ImageShape};
use keel::nn::cnn::parse_spec;
use keel::{DType, Device, Tensor};
use keel_core::io::SafeTensors;
use keel_core::nn::{Augerino, Cnn};
use keel_core::random::{uniform, Xoshiro256PlusPlus};

fn images(n: usize, seed: u64) -> ImageSet {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let shape = ImageShape::new(2, 9, 7).unwrap();
    let pixels: Vec<f64> = (0..n * shape.pixels())
        .map(|_| uniform::<f64, _>(&mut rng))
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let targets = Targets::Classes {
        labels,
        classes: vec!["a".into(), "b".into(), "c".into()],
    };
    ImageSet::new(shape, pixels, targets).unwrap()
}

fn trained(aug: Augmentation) -> (ImageModel, ImageSet) {
    let set = images(48, 1);
    let cfg = ImageTrainConfig {
        spec: parse_spec("c4,m2,c5k3s2,a1,x0.2,d6").unwrap(),
        augmentation: aug,
        epochs: 2,
        batch_size: 16,
        lr: 0.01,
        weight_decay: 0.0,
        copies: 4,
        seed: 3,
        dtype: DType::F32,
        device: Device::Cpu,
        checkpoint: Default::default(),
    };
    let mut m = train(&cfg, &set, &mut |_| {}).unwrap();
    m.params = m.params.to_dtype(DType::F64).unwrap();
    for (a, b) in &mut m.state.running {
        *a = a.to_dtype(DType::F64).unwrap();
        *b = b.to_dtype(DType::F64).unwrap();
    }
    (m, set)
}

fn log_softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s = v.iter().map(|x| (x - m).exp()).sum::<f64>().ln() + m;
    v.iter().map(|x| x - s).collect()
}

#[test]
fn core_cnn_matches_the_engine() {
    let (model, set) = trained(Augmentation::None);
    let bytes = keel::cnn::export_bytes(&model, &set, 1).unwrap();
    let st = SafeTensors::<32>::parse(&bytes).unwrap();
    let cnn = Cnn::<16>::from_safetensors(&st).unwrap();
    assert_eq!(cnn.input_shape(), [2, 9, 7]);
    let test = images(5, 9);
    let x = Tensor::from_f64s(&test.pixels, &[5, 2, 9, 7], DType::F64).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let host = model
        .predict(&x, 1, true, &mut rng)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let mut scratch64 = vec![0.0f64; cnn.scratch_len()];
    let mut scratch32 = vec![0.0f32; cnn.scratch_len()];
    let mut worst = (0.0f64, 0.0f64);
    for i in 0..5 {
        let img = test.image(i);
        let mut out = [0.0f64; 3];
        cnn.forward(img, &mut out, &mut scratch64).unwrap();
        let img32: Vec<f32> = img.iter().map(|&v| v as f32).collect();
        let mut out32 = [0.0f32; 3];
        cnn.forward(&img32, &mut out32, &mut scratch32).unwrap();
        let lp = log_softmax(&out);
        let lp32 = log_softmax(&out32.map(f64::from));
        for k in 0..3 {
            let h = host[i * 3 + k];
            worst.0 = worst.0.max((lp[k] - h).abs());
            worst.1 = worst.1.max((lp32[k] - h).abs());
        }
    }
    assert!(worst.0 < 1e-6, "core f64 vs engine: {:e}", worst.0);
    assert!(worst.1 < 1e-4, "core f32 vs engine: {:e}", worst.1);
    assert!(
        worst.0 > 0.0 || worst.1 > 0.0,
        "the comparison saw the export's rounding"
    );
}

#[test]
fn core_augerino_matches_the_engine_draw_for_draw() {
    let mut init = [W_INIT_SMALL; 6];
    init[2] = 1.0;
    init[0] = 0.5;
    let (model, set) = trained(Augmentation::Learned {
        init,
        reg: 0.01,
        safe: true,
    });
    let widths = model.widths().unwrap();
    assert!(widths[2] > 0.5, "a rotation width to warp with: {widths:?}");
    let bytes = keel::cnn::export_bytes(&model, &set, 4).unwrap();
    let st = SafeTensors::<32>::parse(&bytes).unwrap();
    let cnn = Cnn::<16>::from_safetensors(&st).unwrap();
    let aug = Augerino::new(&cnn).unwrap();
    assert_eq!(aug.default_copies(), 4);
    for (a, b) in aug.widths().iter().zip(widths) {
        assert!((a - b).abs() <= 1e-7 * b.abs(), "widths {a} vs {b}");
    }
    let test = images(3, 11);
    let mut scratch = vec![0.0f64; aug.scratch_len()];
    for i in 0..3 {
        let img = test.image(i);
        // One image per call: the host draws u image by image, generator by generator for each
        // copy — the core's order for a single image.
        let x = Tensor::from_f64s(img, &[1, 2, 9, 7], DType::F64).unwrap();
        let host = model
            .predict(
                &x,
                4,
                true,
                &mut Xoshiro256PlusPlus::seed_from_u64(20 + i as u64),
            )
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let mut out = [0.0f64; 3];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(20 + i as u64);
        aug.predict(img, 4, &mut rng, &mut out, &mut scratch)
            .unwrap();
        for k in 0..3 {
            assert!(
                (out[k] - host[k]).abs() < 1e-6,
                "image {i} class {k}: core {} vs engine {}",
                out[k],
                host[k]
            );
        }
        // Another draw gives another answer (the comparison is not of unwarped images).
        let mut other = [0.0f64; 3];
        aug.predict(
            img,
            4,
            &mut Xoshiro256PlusPlus::seed_from_u64(99),
            &mut other,
            &mut scratch,
        )
        .unwrap();
        assert!(out.iter().zip(&other).any(|(a, b)| (a - b).abs() > 1e-6));
    }
}
