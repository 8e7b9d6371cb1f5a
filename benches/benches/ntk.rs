//! Linearized networks: one function-space kernel product `K v = J(Jᵀv)` and one
//! parameter-space CG iteration (its cost is one Gauss–Newton product `Jᵀ(J u)` plus vector
//! updates) on the speed notebooks' MLP 5→200→2000→200→1 (803,601 parameters; SiLU for the
//! reference's ELU), f32 products, at n = 300, 1,000 and 3,000 points.
//!
//! Bench ids: `ntk/kernel-mv/{n}`, `ntk/gauss-newton-mv/{n}`.
//!
//! ```text
//! cargo bench -p keel-benches --bench ntk
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::backend::DType;
use keel::init::Init;
use keel::nn::{Activation, Mlp};
use keel::ntk::jacobian::{kernel_mv, param_count};
use keel::ntk::{Jacobian, Outputs};
use keel::params::Params;
use keel::Tensor;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

fn bench(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut params = Params::new();
    let net = Mlp::new(
        &mut params,
        &[5, 200, 2000, 200, 1],
        Activation::Silu,
        Init::PyTorchDefault,
        DType::F32,
        &mut rng,
    )
    .expect("network");
    let p = param_count(&params);
    assert_eq!(p, 803_601);
    let mut g = c.benchmark_group("ntk");
    g.measurement_time(Duration::from_secs(10));
    g.sample_size(10);
    for n in [300usize, 1000, 3000] {
        let x: Vec<f64> = (0..n * 5)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let xt = Tensor::from_f64s(&x, &[n, 5], DType::F32).expect("inputs");
        let jac = Jacobian::new(&net, &params, &xt, Outputs::All).expect("jacobian");
        let v: Vec<f64> = (0..n)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        let u: Vec<f64> = (0..p)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect();
        g.bench_function(format!("kernel-mv/{n}"), |b| {
            b.iter(|| black_box(kernel_mv(&jac, &jac, &v).expect("K v")))
        });
        g.bench_function(format!("gauss-newton-mv/{n}"), |b| {
            b.iter(|| black_box(jac.gauss_newton(&u).expect("JᵀJ u")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
