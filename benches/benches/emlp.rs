//! EMLP: solving equivariant bases in process (a fresh solver with no cache each time, so every
//! monomial is solved), the forward pass of the reference's default network on the host engine,
//! and the controller-side forward pass of an exported network in keel-core.
//!
//! Bench ids:
//! - `basis/<case>`: `Solver::new(None).basis(rep_in >> rep_out)` — the cases of
//!   `benches/peers/emlp_basis.py`, which times the reference `emlp` on the same ones;
//! - `emlp_forward/f32/o5-2V-scalar-ch384/b512`: `EMLP(2V → V⁰, O(5), ch 384, 3 layers)`
//!   forward on a batch of 512 under `no_grad` — `benches/peers/emlp_forward.py` times the
//!   reference's jitted forward on the same network;
//! - `core_forward/f32/o5-2V-scalar-ch384/b1`: one sample through `keel_core::nn::Emlp`;
//! - `dynamics_step/<model>/spring-ch<ch>/b500`: one optimisation step of the double spring
//!   pendulum's models as `keel emlp train --dataset double-spring-pendulum` takes it (a batch of
//!   500 five-sample chunks rolled out by RK4, the rollout MSE differentiated through the
//!   integrator and, for EMLPH/MLPH, through `∇H`; Adam), O(2) about z, 3 layers, f32, at the
//!   CPU sweep's width 32 and the reference's 128 (EMLPs) — the MLP baselines at both;
//! - `core_spring_step/f32/emlph-ch32`: one RK4 step of an exported EMLPH by
//!   `keel_core::dynamics::HamiltonianEmlp` (four reverse passes of the network), as the firmware
//!   takes it.
//!
//! ```text
//! cargo bench -p keel-benches --bench emlp
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::autodiff::no_grad;
use keel::backend::DType;
use keel::emlp::model::Emlp;
use keel::emlp::{parse_group, parse_rep, Solver};
use keel::params::Params;
use keel::tensor::Tensor;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

const CASES: &[(&str, &str, &str, &str)] = &[
    ("SO3-V2-V", "SO(3)", "V**2", "V"),
    ("O3-inertia", "O(3)", "5*Scalar+5*V", "V**2"),
    ("O5-V2-scalar", "O(5)", "V**2", "Scalar"),
    ("SO13p-V4-scalar", "SO13p()", "V**4", "Scalar"),
    ("O13-V4-scalar", "O13()", "V**4", "Scalar"),
    ("S6-V2-V2", "S(6)", "V**2", "V**2"),
    ("S5-T5-scalar", "S(5)", "T(5)", "Scalar"),
    ("Z6-V-V", "Z(6)", "V", "V"),
    ("Rubiks-V-V", "RubiksCube()", "V", "V"),
    (
        "SO4-multilinear",
        "SO(4)",
        "3*V+V**2",
        "(V.T+Scalar)>>(Scalar+V**2+V)",
    ),
];

fn basis(c: &mut Criterion) {
    let mut g = c.benchmark_group("basis");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for &(id, group, rin, rout) in CASES {
        let grp = parse_group(group).expect("group");
        let rep = parse_rep(rin, Some(&grp))
            .expect("rep_in")
            .maps_to(&parse_rep(rout, Some(&grp)).expect("rep_out"));
        g.bench_function(id, |b| {
            b.iter(|| black_box(Solver::new(None).basis(&rep).expect("solve").dim()))
        });
    }
    g.finish();
}

fn network() -> (Emlp, Params, Vec<f32>) {
    let grp = parse_group("O(5)").expect("group");
    let (ri, ro) = (
        parse_rep("2*V", Some(&grp)).expect("rep"),
        parse_rep("Scalar", Some(&grp)).expect("rep"),
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut params = Params::new();
    let net = Emlp::new(
        &mut params,
        &grp,
        &ri,
        &ro,
        384,
        3,
        &Solver::default(),
        DType::F32,
        &mut rng,
    )
    .expect("emlp");
    let x: Vec<f32> = (0..512 * 10)
        .map(|_| standard_normal::<f64, _>(&mut rng) as f32)
        .collect();
    (net, params, x)
}

fn forward(c: &mut Criterion) {
    let (net, params, x) = network();
    let xt = Tensor::from_vec(x.clone(), &[512, 10]).expect("x");
    let mut g = c.benchmark_group("emlp_forward");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    g.bench_function("f32/o5-2V-scalar-ch384/b512", |b| {
        b.iter(|| no_grad(|| black_box(net.forward(&params, &xt).expect("forward"))))
    });
    g.finish();

    let bytes = net
        .to_safetensors(&params, &[1.0; 10], &[0.0], &[1.0], &Default::default())
        .expect("export");
    let st = keel_core::io::SafeTensors::<'_, 64>::parse(&bytes).expect("parse");
    let core = keel_core::nn::Emlp::<'_, 4, 8>::from_safetensors(&st).expect("core");
    let mut scratch = vec![0.0f32; core.scratch_len()];
    let mut y = [0.0f32; 1];
    let mut g = c.benchmark_group("core_forward");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("f32/o5-2V-scalar-ch384/b1", |b| {
        b.iter(|| {
            core.forward(black_box(&x[..10]), &mut y, &mut scratch)
                .expect("core forward");
            black_box(y[0])
        })
    });
    g.finish();
}

fn dynamics_step(c: &mut Criterion) {
    use keel::emlp::dynamics::{spring_group, step, DynamicsKind, DynamicsNet};
    use keel::optim::{Optimizer, OptimizerKind};
    let group = spring_group(&parse_group("O(2)").expect("group")).expect("embed");
    let data = keel::emlp::spring::generate(500, 0).expect("data");
    let idx: Vec<usize> = (0..500).collect();
    let mut g = c.benchmark_group("dynamics_step");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sample_size(10);
    let mut core_file = None;
    for kind in DynamicsKind::ALL {
        for ch in [32, 128] {
            let mut params = Params::new();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
            let net = DynamicsNet::new(
                kind,
                &mut params,
                &group,
                ch,
                3,
                &Solver::default(),
                DType::F32,
                &mut rng,
            )
            .expect("model");
            if kind == DynamicsKind::Emlph && ch == 32 {
                core_file = Some(
                    net.emlp()
                        .expect("emlp")
                        .to_safetensors(&params, &[1.0; 12], &[0.0], &[1.0], &Default::default())
                        .expect("export"),
                );
            }
            let mut opt = Optimizer::new(OptimizerKind::adam(), &params).expect("adam");
            g.bench_function(format!("{}/spring-ch{ch}/b500", kind.name()), |b| {
                b.iter(|| {
                    black_box(
                        step(
                            &net,
                            &mut params,
                            &mut opt,
                            &data.chunks,
                            &idx,
                            3e-3,
                            keel::backend::Device::Cpu,
                        )
                        .expect("step"),
                    )
                })
            });
        }
    }
    g.finish();

    let bytes = core_file.expect("exported");
    let st = keel_core::io::SafeTensors::<'_, 64>::parse(&bytes).expect("parse");
    let core = keel_core::nn::Emlp::<'_, 4, 16>::from_safetensors(&st).expect("core");
    let field = keel_core::dynamics::HamiltonianEmlp::<4, 16, 12, 4096>::new(&core).expect("field");
    let rk4 = keel_core::integrate::Rk4::new(0.2f32).expect("rk4");
    let z0: [f32; 12] = [
        0.12, -0.21, -1.38, -0.17, 0.26, -3.09, 0.31, -0.22, 0.08, -0.41, 0.33, 0.18,
    ];
    let mut g = c.benchmark_group("core_spring_step");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("f32/emlph-ch32", |b| {
        b.iter(|| {
            let mut z = black_box(z0);
            rk4.step(&field, 0.0, &mut z).expect("step");
            black_box(z)
        })
    });
    g.finish();
}

criterion_group!(benches, basis, forward, dynamics_step);
criterion_main!(benches);
