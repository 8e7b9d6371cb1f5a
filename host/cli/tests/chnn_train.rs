//! `keel chnn train`: a tiny configuration that checks the pipeline learns (not the paper's
//! numbers), and bad input.

use crate::common;

use common::rejects;
use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, train, TrainConfig};
use keel::simulate::SystemKind;

use common::chnn_config as config;

fn pendulum(links: usize) -> SystemSpec {
    SystemSpec {
        kind: SystemKind::ChainPendulum,
        size: Some(links),
    }
}

#[test]
fn a_small_chnn_learns_the_pendulum() {
    let system = pendulum(1);
    let data = generate(system, 40, 0).unwrap();
    let cfg = config(system, ModelKind::Chnn);
    let untrained = TrainConfig {
        epochs: 1,
        lr: 1e-12,
        ..cfg.clone()
    };
    let t0 = train(&untrained, &data, &mut |_| {}).unwrap();
    let t = train(&cfg, &data, &mut |_| {}).unwrap();
    assert_eq!(t.history.len(), 60);
    let first = t.history[0];
    assert!(
        t.final_loss < 0.3 * first,
        "loss {first:.3e} → {:.3e}",
        t.final_loss
    );
    let test = generate(system, 8, 2).unwrap();
    let e0 = evaluate(&t0.net, &t0.params, system, &test).unwrap();
    let e = evaluate(&t.net, &t.params, system, &test).unwrap();
    assert!(e.rollout_gm_error.is_finite() && e.chaos_floor.is_finite());
    assert!(
        e.rollout_gm_error < 0.5 * e0.rollout_gm_error,
        "rollout error {:.3e} (untrained {:.3e})",
        e.rollout_gm_error,
        e0.rollout_gm_error
    );
    // The chaos floor of a 1e-4 perturbation is far below the model's error here.
    assert!(e.chaos_floor < 1e-2, "{}", e.chaos_floor);
    assert_eq!(e.error_curve.len(), 100);
}

#[test]
fn training_is_reproducible_from_its_seed() {
    let system = pendulum(2);
    let data = generate(system, 10, 0).unwrap();
    let cfg = TrainConfig {
        n_train: 10,
        epochs: 3,
        batch: 5,
        hidden: 16,
        seed: 7,
        ..config(system, ModelKind::Chnn)
    };
    let a = train(&cfg, &data, &mut |_| {}).unwrap();
    let b = train(&cfg, &data, &mut |_| {}).unwrap();
    assert_eq!(a.history, b.history);
}

#[test]
fn cli_rejects_bad_input_with_one_line() {
    let base = ["chnn", "train", "--quiet", "--epochs", "1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    rejects(
        &with(&["--system", "double-pendulum"]),
        &["double-pendulum"],
    );
    rejects(
        &with(&["--system", "chain-pendulum", "--model", "transformer"]),
        &["--model", "transformer"],
    );
    rejects(
        &with(&["--system", "chain-pendulum", "--n-train", "20000"]),
        &["--n-train"],
    );
    rejects(
        &with(&[
            "--system",
            "chain-pendulum",
            "--links",
            "9",
            "--n-train",
            "2",
        ]),
        &["--links"],
    );
    rejects(
        &with(&["--system", "chain-pendulum", "--lr", "0", "--n-train", "2"]),
        &["--lr"],
    );
    rejects(
        &with(&[
            "--system",
            "chain-pendulum",
            "--n-train",
            "2",
            "--n-test",
            "20000",
        ]),
        &["--n-test"],
    );
    rejects(
        &with(&["--system", "chain-pendulum", "--device", "tpu"]),
        &["--device", "tpu"],
    );
    // Only without a usable GPU: with one, `--device cuda` is a valid request. Refused before
    // any work, and nothing is exported.
    if keel::backend::Device::Cuda(0).check().is_err() {
        common::rejects_writing_nothing(
            &with(&["--system", "chain-pendulum", "--device", "cuda"]),
            &["--device", "CUDA"],
        );
    }
    // `chnn eval` names a model file of another kind, and a missing one.
    rejects(
        &[
            "chnn",
            "eval",
            "--model",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../firmware/assets/digits-mlp.safetensors"
            ),
        ],
        &["keel.kind is mlp", "not a learned-dynamics model"],
    );
    rejects(
        &["chnn", "eval", "--model", "/nonexistent/pend2.safetensors"],
        &["/nonexistent/pend2.safetensors"],
    );
}

#[test]
fn angle_coordinates_round_trip_and_refuse_other_systems() {
    use keel::chnn::angles::Chain;
    use keel::chnn::truth::truth;
    let system = pendulum(3);
    let data = generate(system, 4, 0).unwrap();
    let graph = truth(system).unwrap().graph();
    let chain = Chain::of(&graph, &data.chunks[0].z[0]).unwrap();
    assert_eq!(chain.parent, vec![None, Some(0), Some(1)]);
    // The paper's 3-pendulum lengths (tether, link01, link12).
    for (l, want) in chain.lengths.iter().zip([1.116715, 0.938924, 1.035907]) {
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
    }
    let mut worst: f64 = 0.0;
    for tr in &data.trajectories {
        for k in [0, 37, 99] {
            let z: Vec<f64> = tr.x[k].iter().chain(&tr.v[k]).copied().collect();
            let back = chain.to_cartesian(&chain.to_angles(&z));
            assert_eq!(back.len(), z.len());
            for (a, b) in back.iter().zip(&z) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    // Exact where the state satisfies the constraints: (θ, ω) → (x, v) → (θ, ω).
    let mut worst_exact: f64 = 0.0;
    for s in [
        [0.3, -2.0, 1.0, 0.1, 0.2, -0.3],
        [3.0, 0.0, -3.1, -1.0, 2.5, 0.7],
    ] {
        let back = chain.to_angles(&chain.to_cartesian(&s));
        assert_eq!(back.len(), s.len());
        for (a, b) in back.iter().zip(&s) {
            worst_exact = worst_exact.max((a - b).abs());
        }
    }
    // Measured 4.4e-16: rounding in sin/cos and atan2.
    assert!(worst_exact < 1e-13, "angles round trip: {worst_exact:e}");
    // Not exact: the trajectories come from Dormand–Prince with its constraint drift, and
    // the chain's lengths are measured at one state, so a state whose links drifted returns
    // with the measured lengths. Measured: 1.4e-6; an error in the angle map is of order 1.
    assert!(worst < 1e-5, "round trip: largest difference {worst:e}");
    // Unwrapping keeps consecutive angles within π of each other.
    let coords = keel::chnn::coords::Coords::Chain(chain.clone());
    let s = coords.unwrapped(&data.chunks[1].z);
    for w in s.windows(2) {
        for i in 0..3 {
            assert!((w[1][i] - w[0][i]).abs() < std::f64::consts::PI);
        }
    }
    let gyro = SystemSpec {
        kind: SystemKind::Gyroscope,
        size: None,
    };
    let g = truth(gyro).unwrap().graph();
    let z = vec![0.0; 24];
    let e = Chain::of(&g, &z).unwrap_err().to_string();
    assert!(e.contains("not a planar chain"), "{e}");
}

#[test]
fn the_clnn_and_the_baselines_learn_too() {
    let system = pendulum(1);
    let data = generate(system, 40, 0).unwrap();
    let test = generate(system, 8, 2).unwrap();
    for model in [
        ModelKind::Clnn,
        ModelKind::Node,
        ModelKind::Hnn,
        ModelKind::Delan,
    ] {
        let t = train(&config(system, model), &data, &mut |_| {}).unwrap();
        assert!(
            t.final_loss < 0.3 * t.history[0],
            "{}: loss {:.3e} → {:.3e}",
            model.name(),
            t.history[0],
            t.final_loss
        );
        let e = evaluate(&t.net, &t.params, system, &test).unwrap();
        assert!(
            e.rollout_gm_error.is_finite() && e.rollout_gm_error < 0.5,
            "{}: {}",
            model.name(),
            e.rollout_gm_error
        );
    }
}

#[test]
fn an_interrupted_run_resumed_ends_with_the_same_numbers() {
    let system = pendulum(2);
    let data = generate(system, 12, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let cfg = TrainConfig {
        n_train: 12,
        epochs: 6,
        batch: 5,
        hidden: 16,
        seed: 3,
        ..config(system, ModelKind::Chnn)
    };
    let at = |resume, stop_after| keel::checkpoint::Options {
        path: Some(ck.clone()),
        every: 2,
        resume,
        stop_after,
    };
    let whole = train(&cfg, &data, &mut |_| {}).unwrap();
    let first = TrainConfig {
        checkpoint: at(false, Some(3)),
        ..cfg.clone()
    };
    let part = train(&first, &data, &mut |_| {}).unwrap();
    assert_eq!(part.history.len(), 3);
    let rest = TrainConfig {
        checkpoint: at(true, None),
        ..cfg.clone()
    };
    let resumed = train(&rest, &data, &mut |_| {}).unwrap();
    assert_eq!(resumed.history, whole.history);
    for (a, b) in resumed.params.values().iter().zip(whole.params.values()) {
        assert_eq!(a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    }
    // Another configuration is refused, naming both.
    let other = TrainConfig {
        checkpoint: at(true, None),
        seed: 4,
        ..cfg.clone()
    };
    let e = train(&other, &data, &mut |_| {}).err().unwrap().to_string();
    assert!(e.contains("seed=3") && e.contains("seed=4"), "{e}");
    // A damaged file is refused, not trusted.
    std::fs::write(&ck, b"not a checkpoint").unwrap();
    assert!(train(&rest, &data, &mut |_| {}).is_err());
}

/// Issue 19: `chnn train --stop-after --json` printed nothing on stdout; it now prints a line
/// that says the run is partial, and the finished run's says it is not.
#[test]
fn a_stopped_run_says_it_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "chnn",
            "train",
            "--system",
            "chain-pendulum",
            "--links",
            "1",
            "--n-train",
            "10",
            "--n-test",
            "2",
            "--epochs",
            "3",
            "--batch",
            "5",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--quiet",
            "--json",
            "--checkpoint",
            ck.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = common::keel(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let stopped = run(&["--stop-after", "1"]);
    assert_eq!(stopped["partial"], true, "{stopped}");
    assert_eq!(stopped["stopped_after"], 1, "{stopped}");
    let finished = run(&["--resume"]);
    assert_eq!(finished["partial"], false, "{finished}");
    assert_eq!(finished["epochs"], 3, "{finished}");
}
