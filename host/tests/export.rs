//! Export → the core loads it: a model trained by `keel fit` and written as safetensors is read
//! by `keel-core`'s no-alloc reader, and the core's f32 evaluation agrees with the host's on the
//! whole digits test set.

use std::path::PathBuf;

use keel::fit::{fit, FitConfig, RegressionLoss, Task};
use keel::nn::Activation;
use keel::optim::{OptimizerKind, Schedule};
use keel::DType;
use keel_core::io::SafeTensors;
use keel_core::nn::Mlp;

fn config(data: &str, target: &str, task: Task, loss: RegressionLoss, epochs: usize) -> FitConfig {
    FitConfig {
        data: [env!("CARGO_MANIFEST_DIR"), "..", "fixtures", "data", data]
            .iter()
            .collect::<PathBuf>(),
        target: target.into(),
        task,
        loss,
        hidden: vec![128, 128],
        activation: Activation::Relu,
        epochs,
        batch_size: 64,
        lr: 1e-3,
        optimizer: OptimizerKind::adam(),
        schedule: Schedule::Constant,
        clip: None,
        seed: 0,
        test_fraction: 0.2,
        val_fraction: 0.1,
        patience: 10,
        dtype: DType::F32,
        device: keel::Device::Cpu,
    }
}

#[test]
fn core_f32_predictions_match_the_host_on_the_digits_test_set() {
    let fitted = fit(
        &config(
            "digits.csv",
            "label",
            Task::Classify,
            RegressionLoss::Mse,
            30,
        ),
        &mut |_| {},
    )
    .unwrap();
    let bytes = keel::export::mlp_bytes(&fitted.mlp, &fitted.params, &fitted.config, &fitted.stats)
        .unwrap();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    assert_eq!(st.metadata("keel.kind").unwrap(), "mlp");
    let mlp = Mlp::<8>::from_safetensors(&st).unwrap();
    assert_eq!(mlp.inputs(), 64);
    assert_eq!(mlp.outputs(), 10);

    let test = &fitted.test;
    let rows = test.rows();
    let host = fitted
        .predict(&test.x, DType::F32)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    let mut scratch = vec![0.0f32; mlp.scratch_len()];
    let mut out = [0.0f32; 10];
    let mut worst = 0.0f32;
    let mut agree = 0;
    for r in 0..rows {
        let x: Vec<f32> = test.x[r * 64..(r + 1) * 64]
            .iter()
            .map(|v| *v as f32)
            .collect();
        mlp.forward(&x, &mut out, &mut scratch).unwrap();
        let h = &host[r * 10..(r + 1) * 10];
        for (a, b) in out.iter().zip(h) {
            let rel = (a - b).abs() / (1.0 + b.abs());
            worst = worst.max(rel);
        }
        let host_class = h
            .iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |m, (i, v)| if *v > m.1 { (i, *v) } else { m },
            )
            .0;
        if mlp.predict_class(&x, &mut scratch).unwrap() == host_class {
            agree += 1;
        }
    }
    eprintln!("host vs core f32 on {rows} test digits: worst relative difference {worst:e}");
    assert!(
        worst <= 1e-5,
        "worst relative difference {worst:e} over {rows} test digits"
    );
    assert_eq!(agree, rows, "every predicted class agrees");
}

#[test]
fn core_reads_regression_and_gaussian_heads_with_target_standardisation() {
    for loss in [RegressionLoss::Mse, RegressionLoss::Gaussian] {
        let fitted = fit(
            &config("diabetes.csv", "target", Task::Regress, loss, 20),
            &mut |_| {},
        )
        .unwrap();
        let bytes =
            keel::export::mlp_bytes(&fitted.mlp, &fitted.params, &fitted.config, &fitted.stats)
                .unwrap();
        let st = SafeTensors::<16>::parse(&bytes).unwrap();
        let mlp = Mlp::<8>::from_safetensors(&st).unwrap();
        let (tm, ts) = fitted
            .stats
            .target
            .as_ref()
            .map(|(m, s)| (m[0], s[0]))
            .unwrap();
        let host = fitted
            .predict(&fitted.test.x, DType::F32)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        let k = mlp.outputs();
        let mut scratch = vec![0.0f64; mlp.scratch_len()];
        let mut out = vec![0.0f64; k];
        for r in 0..fitted.test.rows() {
            let x = &fitted.test.x[r * 10..(r + 1) * 10];
            mlp.forward(x, &mut out, &mut scratch).unwrap();
            // The core un-standardises: mean·std + mean_t (and σ·std for the Gaussian head).
            let h = &host[r * k..(r + 1) * k];
            let mean = h[0] * ts + tm;
            assert!(
                (out[0] - mean).abs() <= 1e-4 * (1.0 + mean.abs()),
                "{loss:?}: {} vs {mean}",
                out[0]
            );
            if loss == RegressionLoss::Gaussian {
                let sigma = (h[1].max(0.0) + (-h[1].abs()).exp().ln_1p() + 1e-6) * ts;
                assert!(
                    (out[1] - sigma).abs() <= 1e-4 * (1.0 + sigma.abs()),
                    "σ {} vs {sigma}",
                    out[1]
                );
            }
        }
    }
}
