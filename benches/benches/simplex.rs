//! Loss-surface simplexes: the cost of one SPRO step against plain training.
//!
//! Bench ids (digits, the `keel simplex train` default network 64 → 64 → 64 → 10 ReLU, f32,
//! one mini-batch of 128 rows, SGD with momentum 0.9 and weight decay 5e-4):
//! - `simplex/spro-step-n_sample5`: one SPRO step training vertex 2 of a 3-vertex simplex —
//!   five Dirichlet(1) draws, five forwards and one backward through the convex combinations
//!   of the vertices, the Cayley–Menger volume term (its gradient in f64 on the host), the
//!   optimizer step;
//! - `simplex/plain-step-x5`: five plain steps of the same network on the same batch (forward,
//!   cross-entropy, backward, optimizer step each) — the same number of forward passes.
//!
//! ```text
//! cargo bench -p keel-benches --bench simplex
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::backend::{DType, Device};
use keel::nn::cnn::CnnState;
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::simplex::train::{dirichlet, spro_loss};
use keel::simplex::{Arch, Net};
use keel_core::random::Xoshiro256PlusPlus;

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (problem, _) =
        keel::simplex::data::csv(&root.join("fixtures/data/digits.csv"), "label", 0.1, 0)
            .expect("digits");
    let net = Net::new(
        &Arch::Mlp {
            hidden: vec![64, 64],
        },
        64,
        10,
        DType::F32,
        Device::Cpu,
    )
    .expect("net");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let verts: Vec<Params> = (0..3).map(|_| net.init(&mut rng).expect("init")).collect();
    let idx: Vec<usize> = (0..128).collect();
    let mut xb = Vec::new();
    for &i in &idx {
        xb.extend_from_slice(&problem.x_train[i * 64..(i + 1) * 64]);
    }
    let x = net.input(&xb, 128).expect("x");
    let labels: Vec<usize> = idx.iter().map(|&i| problem.y_train[i]).collect();
    let kind = OptimizerKind::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    };
    let simplex = [0usize, 1, 2];
    let mut g = c.benchmark_group("simplex");
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("spro-step-n_sample5", |b| {
        let mut vs = verts.clone();
        let mut opt = Optimizer::new(kind, &vs[2]).expect("opt");
        let mut r = Xoshiro256PlusPlus::seed_from_u64(1);
        b.iter(|| {
            let draws: Vec<&[usize]> = vec![&simplex; 5];
            let alphas: Vec<Vec<f64>> = (0..5).map(|_| dirichlet(3, &mut r)).collect();
            let (_, _, grads) = spro_loss(
                &net,
                &vs,
                2,
                &draws,
                &alphas,
                false,
                1e-3,
                &simplex,
                &mut CnnState::default(),
                black_box(&x),
                &labels,
                &[0; 5],
            )
            .expect("loss");
            keel::no_grad(|| opt.step(&mut vs[2], &grads, 0.01)).expect("step");
        })
    });
    g.bench_function("plain-step-x5", |b| {
        let mut p = verts[0].clone();
        let mut opt = Optimizer::new(kind, &p).expect("opt");
        b.iter(|| {
            for _ in 0..5 {
                let vars = p.variables();
                let loss = net
                    .forward(&vars, &mut CnnState::default(), black_box(&x), true, 0)
                    .expect("forward")
                    .cross_entropy(&labels)
                    .expect("ce");
                keel::train::step(&loss, &vars, &mut p, &mut opt, 0.01, None).expect("step");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
