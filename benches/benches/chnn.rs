//! Learned constrained dynamics: one training step on the host engine and one step of the
//! learned dynamics on the controller side (keel-core).
//!
//! Bench ids:
//! - `train_step/<model>/pend2-3x256/b200`: one optimisation step as `keel chnn train` takes it
//!   (batch 200 of 5-sample chunks of the 2-pendulum, 5-sample RK4 3/8 rollout differentiated
//!   through the integrator, AdamW update), the reference's 3 × 256 tanh networks, f32;
//! - `train_step/<model>/gyro-3x256/b200`: the same on the gyroscope (four nodes in 3-D and nine
//!   constraints for CHNN/CLNN; ZXZ Euler angles for the baselines);
//! - `core_step/f32/pend2-3x256`: one classic RK4 step of an exported CHNN loaded by
//!   `keel_core::dynamics::learned` (input gradient of the potential, projection), f32.
//!
//! ```text
//! cargo bench -p keel-benches --bench chnn
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::export::{to_bytes, Info};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{model_rows, step, Net};
use keel::chnn::truth::truth;
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::simulate::SystemKind;
use keel_core::dynamics::learned;
use keel_core::dynamics::Phase;
use keel_core::integrate::Rk4;
use keel_core::io::SafeTensors;
use keel_core::random::Xoshiro256PlusPlus;

const PENDULUM2: SystemSpec = SystemSpec {
    kind: SystemKind::ChainPendulum,
    size: Some(2),
};

const GYROSCOPE: SystemSpec = SystemSpec {
    kind: SystemKind::Gyroscope,
    size: None,
};

fn model(kind: ModelKind, z0: &[f64]) -> (Net, Params) {
    model_of(PENDULUM2, kind, z0)
}

fn model_of(system: SystemSpec, kind: ModelKind, z0: &[f64]) -> (Net, Params) {
    let graph = truth(system).expect("system").graph();
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let net = Net::new(kind, &mut params, &graph, z0, 256, 3, &mut rng).expect("model");
    (net, params)
}

fn train_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    let idx: Vec<usize> = (0..200).collect();
    for (system, label, dt) in [(PENDULUM2, "pend2", 0.03), (GYROSCOPE, "gyro", 0.02)] {
        let data = generate(system, 200, 0).expect("data");
        for kind in ModelKind::ALL {
            let (net, mut params) = model_of(system, kind, &data.chunks[0].z[0]);
            let rows = model_rows(&net, &data.chunks);
            let mut opt = Optimizer::new(OptimizerKind::adamw(1e-4), &params).expect("optimizer");
            g.bench_function(format!("{}/{label}-3x256/b200", kind.name()), |b| {
                b.iter(|| {
                    black_box(
                        step(&net, &mut params, &mut opt, &rows, &idx, dt, 1e-3).expect("step"),
                    )
                })
            });
        }
    }
    g.finish();
}

fn core_step(c: &mut Criterion) {
    let data = generate(PENDULUM2, 1, 0).expect("data");
    let z0 = &data.chunks[0].z[0];
    let (net, params) = model(ModelKind::Chnn, z0);
    let info = Info {
        model: "chnn".into(),
        system: "chain-pendulum".into(),
        links: Some(2),
        hidden: 256,
        layers: 3,
        n_train: 0,
        epochs: 0,
        seed: 0,
        dt: 0.03,
    };
    let bytes = to_bytes(&net, &params, &info).expect("export");
    let st = SafeTensors::<16>::parse(&bytes).expect("parse");
    let x0 = [[z0[0] as f32, z0[1] as f32], [z0[2] as f32, z0[3] as f32]];
    let m = learned::load::<f32, 2, 2, 2, 4, 1281, 16>(&st, &x0).expect("load");
    let mut z = Phase::<f32, 2, 2>::zeros();
    *z.x_mut() = x0;
    *z.p_mut() = [[z0[4] as f32, z0[5] as f32], [z0[6] as f32, z0[7] as f32]];
    let z = m.mechanics.from_velocity_form(&z);
    let rk4 = Rk4::new(0.03f32).expect("rk4");
    c.bench_function("core_step/f32/pend2-3x256", |b| {
        b.iter(|| {
            let mut s = black_box(z);
            rk4.step(&m.mechanics, 0.0, &mut s).expect("step");
            black_box(s)
        })
    });
}

criterion_group!(benches, train_step, core_step);
criterion_main!(benches);
