//! Where the gyroscope's rollout error comes from (benches/RESULTS.md, "Data efficiency on the
//! 2-pendulum and the gyroscope …"): at n = 100 the HNN in Euler angles beat CHNN although
//! CHNN fit the training chunks far better. This trains CHNN and the HNN at the data-efficiency
//! study's budget (3 × 128, 300 epochs, AdamW 3e-3 / 1e-4, batch min(200, n), the reference's
//! data seeds) and splits the test error of their rollouts by time and by node:
//!
//! - the mean relative error over the 100 test trajectories at a few sample indices (the
//!   training chunks span 5 samples, the test rollouts 100);
//! - the geometric-mean error of the positions of the nodes that do not move when the top spins
//!   about its symmetry axis (node 0, the centre of mass, and node 3 on the symmetry axis,
//!   `core/src/dynamics/rotation.rs`'s `rigid_body_nodes`) against those that do (nodes 1 and 2,
//!   on the other principal axes). A model whose spin rate is slightly off drifts in phase: its
//!   spin-node error grows while its axis stays where the truth's is.
//!
//! `cargo run --release -p keel-benches --example chnn_gyro_diagnosis -- [n ...] [--seed S]`
//! (default n = 100 400, seed 0); one JSON line per model and n on stdout.

use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, rk4_rollout, test_set, train, TrainConfig};
use keel::simulate::SystemKind;
use keel_core::metrics::relative_error;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ns = Vec::new();
    let mut seed = 0u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seed" {
            seed = it.next().ok_or("--seed needs a value")?.parse()?;
        } else {
            ns.push(a.parse::<usize>()?);
        }
    }
    if ns.is_empty() {
        ns = vec![100, 400];
    }
    let system = SystemSpec {
        kind: SystemKind::Gyroscope,
        size: None,
    };
    let test = test_set(system, 100)?;
    let times = &test.trajectories[0].t;
    let dt = times[1] - times[0];
    let steps = times.len() - 1;
    let z0: Vec<Vec<f64>> = test
        .trajectories
        .iter()
        .map(|tr| tr.x[0].iter().chain(&tr.v[0]).copied().collect())
        .collect();
    for &n in &ns {
        let data = generate(system, n, 0)?;
        for model in [ModelKind::Chnn, ModelKind::Hnn] {
            let cfg = TrainConfig {
                system,
                model,
                n_train: n,
                epochs: 300,
                batch: 200,
                lr: 3e-3,
                weight_decay: 1e-4,
                hidden: 128,
                layers: 3,
                seed,
                checkpoint: Default::default(),
                device: keel::Device::Cpu,
            };
            let t = train(&cfg, &data, &mut |_| {})?;
            let e = evaluate(&t.net, &t.params, system, &test)?;
            let at: Vec<(usize, f64)> = [1, 4, 10, 25, 50, 99]
                .iter()
                .filter(|&&k| k < e.error_curve.len())
                .map(|&k| (k, e.error_curve[k]))
                .collect();
            // Node positions (4 nodes × 3) of the classic-RK4 rollout at the samples' spacing.
            let pred = rk4_rollout(&t.net, &t.params, &z0, dt, steps)?;
            let nodes = |z: &[f64], which: &[usize]| -> Vec<f64> {
                which
                    .iter()
                    .flat_map(|&i| z[3 * i..3 * i + 3].to_vec())
                    .collect()
            };
            let gm = |which: &[usize]| -> f64 {
                let mut log_sum = 0.0;
                let mut count = 0.0;
                for (tr, pr) in test.trajectories.iter().zip(&pred) {
                    for k in 1..=steps {
                        let err = relative_error(&nodes(&pr[k], which), &nodes(&tr.x[k], which));
                        log_sum += err.max(1e-12).ln();
                        count += 1.0;
                    }
                }
                (log_sum / count).exp()
            };
            let line = serde_json::json!({
                "model": model.name(), "n_train": n, "seed": seed,
                "final_loss": t.final_loss,
                "rollout_gm_error": e.rollout_gm_error,
                "energy_error": e.energy_error,
                "error_at_sample": at,
                "gm_position_error_axis_nodes_0_3": gm(&[0, 3]),
                "gm_position_error_spin_nodes_1_2": gm(&[1, 2]),
            });
            println!("{line}");
        }
    }
    Ok(())
}
