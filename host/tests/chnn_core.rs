//! Learned constrained dynamics on the controller: a CHNN/CLNN trained and exported by the
//! host, loaded by `keel-core` and integrated with its RK4 in f32 without allocation, agrees
//! with the host engine's rollout of the same model; saved models of every kind read back to
//! the same evaluation; files of other kinds are refused.

use crate::common;

use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::export::{load, save, to_bytes, Info};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, rk4_rollout, train, TrainConfig, Trained};
use keel::simulate::SystemKind;
use keel_core::dynamics::learned::{self, Form};
use keel_core::dynamics::{Lagrangian, Phase};
use keel_core::integrate::Rk4;
use keel_core::io::SafeTensors;

const PENDULUM2: SystemSpec = SystemSpec {
    kind: SystemKind::ChainPendulum,
    size: Some(2),
};

fn trained(model: ModelKind, epochs: usize) -> (Trained, Info) {
    let data = generate(PENDULUM2, 40, 0).unwrap();
    let cfg = TrainConfig {
        epochs,
        ..common::chnn_config(PENDULUM2, model)
    };
    let t = train(&cfg, &data, &mut |_| {}).unwrap();
    let info = Info {
        model: model.name().into(),
        system: "chain-pendulum".into(),
        links: Some(2),
        hidden: 32,
        layers: 2,
        n_train: 40,
        epochs,
        seed: 0,
        dt: 0.03,
    };
    (t, info)
}

/// Scratch scalars for a 2 × 32 potential: 32 + 32 + 1 stored plus 2 × 32.
const S: usize = 129;

/// The core's f32 rollout (velocity-form states, 100 steps of 0.03 s) of an exported model.
fn core_rollout(bytes: &[u8], z0: &[f64]) -> Vec<Vec<f64>> {
    let st = SafeTensors::<16>::parse(bytes).unwrap();
    let x0 = [[z0[0] as f32, z0[1] as f32], [z0[2] as f32, z0[3] as f32]];
    let m = learned::load::<f32, 2, 2, 2, 4, S, 16>(&st, &x0).unwrap();
    let mech = &m.mechanics;
    let mut z = Phase::<f32, 2, 2>::zeros();
    *z.x_mut() = x0;
    *z.p_mut() = [[z0[4] as f32, z0[5] as f32], [z0[6] as f32, z0[7] as f32]];
    if m.form == Form::Hamiltonian {
        z = mech.from_velocity_form(&z);
    }
    let rk4 = Rk4::new(0.03f32).unwrap();
    let mut out = Vec::new();
    for step in 0..=100 {
        if step > 0 {
            match m.form {
                Form::Hamiltonian => rk4.step(mech, 0.0, &mut z).unwrap(),
                Form::Lagrangian => rk4.step(&Lagrangian(mech), 0.0, &mut z).unwrap(),
            }
        }
        let zv = match m.form {
            Form::Hamiltonian => mech.to_velocity_form(&z),
            Form::Lagrangian => z,
        };
        out.push(
            zv.x()
                .as_flattened()
                .iter()
                .chain(zv.p().as_flattened())
                .map(|&v| f64::from(v))
                .collect(),
        );
    }
    out
}

#[test]
fn core_rollouts_of_exported_chnn_and_clnn_match_the_host() {
    let test = generate(PENDULUM2, 3, 2).unwrap();
    for model in [ModelKind::Chnn, ModelKind::Clnn] {
        let (t, info) = trained(model, 40);
        let bytes = to_bytes(&t.net, &t.params, &info).unwrap();
        let z0s: Vec<Vec<f64>> = test
            .trajectories
            .iter()
            .map(|tr| tr.x[0].iter().chain(&tr.v[0]).copied().collect())
            .collect();
        let host = rk4_rollout(&t.net, &t.params, &z0s, 0.03, 100).unwrap();
        let mut worst = 0.0f64;
        let mut moved = 0.0f64;
        for (z0, h) in z0s.iter().zip(&host) {
            let c = core_rollout(&bytes, z0);
            assert_eq!(c.len(), 101);
            for (a, b) in c.iter().zip(h) {
                let num: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
                let den: f64 = b.iter().map(|v| v * v).sum();
                worst = worst.max((num / den).sqrt());
            }
            let d: f64 = h[100].iter().zip(z0).map(|(a, b)| (a - b).abs()).sum();
            moved = moved.max(d);
        }
        eprintln!(
            "{}: core f32 vs host f64 over 100 steps: {worst:.2e}",
            model.name()
        );
        assert!(moved > 0.1, "{}: the rollout barely moved", model.name());
        assert!(
            worst < 1e-4,
            "{}: core (f32) vs host (f64) relative error {worst:.2e} over 100 steps",
            model.name()
        );
    }
}

#[test]
fn saved_models_read_back_to_the_same_numbers_and_other_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let test = generate(PENDULUM2, 3, 2).unwrap();
    for model in ModelKind::ALL {
        let (t, info) = trained(model, 3);
        let path = dir.path().join(format!("{}.safetensors", model.name()));
        save(&path, &t.net, &t.params, &info).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.info, info);
        let a = evaluate(&t.net, &t.params, PENDULUM2, &test).unwrap();
        let b = evaluate(&back.net, &back.params, PENDULUM2, &test).unwrap();
        assert_eq!(a.rollout_gm_error, b.rollout_gm_error, "{}", model.name());
        assert_eq!(a.energy_error, b.energy_error, "{}", model.name());
        // Only the constrained models run on the core.
        let st_bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::<16>::parse(&st_bytes).unwrap();
        let core = learned::load::<f32, 2, 2, 2, 4, S, 16>(&st, &[[0.0, -1.0], [0.0, -2.0]]);
        assert_eq!(core.is_ok(), model.cartesian(), "{}", model.name());
    }
    // Another kind of model file is named, not misread.
    let mlp = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware/assets/digits-mlp.safetensors");
    let e = load(&mlp).err().unwrap().to_string();
    assert!(e.contains("keel.kind is mlp"), "{e}");
    // A file with a parameter of the wrong shape is refused.
    let (t, mut info) = trained(ModelKind::Chnn, 1);
    info.hidden = 16;
    let path = dir.path().join("lying.safetensors");
    save(&path, &t.net, &t.params, &info).unwrap();
    let e = load(&path).err().unwrap().to_string();
    assert!(e.contains("shape"), "{e}");
    std::fs::write(&path, b"garbage").unwrap();
    assert!(load(&path).is_err());
}

#[test]
fn the_core_refuses_a_graph_of_another_size() {
    let (t, info) = trained(ModelKind::Chnn, 1);
    let bytes = to_bytes(&t.net, &t.params, &info).unwrap();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    // Three nodes declared where the file has two.
    let x0 = [[0.0f32, -1.0], [0.0, -2.0], [0.0, -3.0]];
    assert!(learned::load::<f32, 3, 2, 3, 4, S, 16>(&st, &x0).is_err());
    // Too little scratch for the potential.
    let x0 = [[0.0f32, -1.0], [0.0, -2.0]];
    let e = learned::load::<f32, 2, 2, 2, 4, 8, 16>(&st, &x0)
        .err()
        .unwrap();
    assert!(matches!(e, keel_core::Error::ScratchTooSmall { .. }), "{e}");
}

#[test]
fn an_extended_body_with_a_pin_loads_on_the_core_and_matches_the_host() {
    // The gyroscope: one 3-D body (4 nodes, 6 internal distances) pinned at the origin (3 linear
    // constraints) — the learned inertias and the linear-constraint table on the core.
    let gyro = SystemSpec {
        kind: SystemKind::Gyroscope,
        size: None,
    };
    let data = generate(gyro, 10, 0).unwrap();
    let cfg = TrainConfig {
        n_train: 10,
        epochs: 3,
        batch: 10,
        hidden: 16,
        ..common::chnn_config(gyro, ModelKind::Chnn)
    };
    let t = train(&cfg, &data, &mut |_| {}).unwrap();
    let info = Info {
        model: "chnn".into(),
        system: "gyroscope".into(),
        links: None,
        hidden: 16,
        layers: 2,
        n_train: 10,
        epochs: 3,
        seed: 0,
        dt: 0.02,
    };
    let bytes = to_bytes(&t.net, &t.params, &info).unwrap();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    let z0: Vec<f64> = data.chunks[0].z[0].clone();
    let mut x0 = [[0.0f64; 3]; 4];
    let mut v0 = [[0.0f64; 3]; 4];
    for i in 0..4 {
        for k in 0..3 {
            x0[i][k] = z0[i * 3 + k];
            v0[i][k] = z0[12 + i * 3 + k];
        }
    }
    let m = learned::load::<f64, 4, 3, 9, 4, 65, 16>(&st, &x0).unwrap();
    // The learned masses: one body of mass e^θ₀ and moments e^θ_k.
    assert_eq!(m.mechanics.mass().body_of(0), (0, 4));
    let mut z = Phase::<f64, 4, 3>::zeros();
    *z.x_mut() = x0;
    *z.p_mut() = v0;
    let mut z = m.mechanics.from_velocity_form(&z);
    let rk4 = Rk4::new(0.02).unwrap();
    let host = rk4_rollout(&t.net, &t.params, &[z0], 0.02, 20).unwrap();
    for k in 1..=20 {
        rk4.step(&m.mechanics, 0.0, &mut z).unwrap();
        let zv = m.mechanics.to_velocity_form(&z);
        let core: Vec<f64> = zv
            .x()
            .as_flattened()
            .iter()
            .chain(zv.p().as_flattened())
            .copied()
            .collect();
        for (a, b) in core.iter().zip(&host[0][k]) {
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "step {k}: core {a} vs host {b}"
            );
        }
    }
}
