//! One step of every paper system under every integrator, in `f32` and `f64`.
//!
//! Bench ids are `<what>/<dtype>/<system>`:
//! - `rate/…`: one evaluation of the projected Hamiltonian vector field `ż = P(z)J∇H`;
//! - `rk4/…`: one classic RK4 step of the paper's `dt` (4 evaluations);
//! - `leapfrog/…`: one leapfrog/RATTLE step of the paper's `dt`;
//! - `dopri5/…`: one accepted Dormand–Prince 5(4) step at `rtol = atol = 1e-8` (f64) or `1e-5`
//!   (f32), taken by a solver that has already made [`DOPRI5_WARM_STEPS`] or more steps, so the
//!   step size comes from the controller and not from the starting heuristic, and whose next
//!   step is accepted at the first try (6 evaluations; it reports what it times on stderr).
//!
//! Inputs come from `keel_benches::for_each_case` (seeded samplers); every routine runs under
//! `iter_batched` so copying the state or cloning the solver is outside the timing.
//!
//! ```text
//! cargo bench -p keel-benches --bench dynamics -- rk4/f64/chain-pendulum-3
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel_benches::{for_each_case, Case, Precision, Visitor};
use keel_core::dynamics::{Phase, Potential};
use keel_core::integrate::{Dopri5, Leapfrog, Rk4, VectorField};

/// Accepted steps a Dopri5 solver takes before it is cloned for timing.
const DOPRI5_WARM_STEPS: usize = 10;

struct Bench<'a> {
    c: &'a mut Criterion,
}

impl<T: Precision> Visitor<T> for Bench<'_> {
    fn visit<const N: usize, const D: usize, const C: usize, P: Potential<T, N, D>>(
        &mut self,
        case: &Case<T, N, D, C, P>,
    ) {
        let m = &case.mechanics;
        let z0 = case.z0;
        let id = |what: &str| format!("{what}/{}/{}", T::NAME, case.name);

        self.c.bench_function(&id("rate"), |b| {
            b.iter_batched(
                || (z0, Phase::<T, N, D>::zeros()),
                |(z, mut dz)| {
                    black_box(m)
                        .rate(black_box(T::ZERO), &black_box(z), &mut dz)
                        .expect("rate");
                    dz
                },
                BatchSize::SmallInput,
            );
        });

        let rk4 = Rk4::new(case.dt).expect("rk4");
        self.c.bench_function(&id("rk4"), |b| {
            b.iter_batched(
                || z0,
                |mut z| {
                    black_box(&rk4)
                        .step(black_box(m), black_box(T::ZERO), black_box(&mut z))
                        .expect("rk4 step");
                    z
                },
                BatchSize::SmallInput,
            );
        });

        let lf = Leapfrog::new(case.dt).expect("leapfrog");
        self.c.bench_function(&id("leapfrog"), |b| {
            b.iter_batched(
                || z0,
                |mut z| {
                    black_box(&lf)
                        .step(black_box(m), black_box(&mut z))
                        .expect("leapfrog step");
                    z
                },
                BatchSize::SmallInput,
            );
        });

        let tol = T::from_f64(T::DOPRI5_TOL);
        let mut solver = Dopri5::new(tol, tol)
            .expect("dopri5")
            .start(m, T::ZERO, z0)
            .expect("dopri5 start");
        for _ in 0..DOPRI5_WARM_STEPS {
            solver.step(m).expect("dopri5 warm-up step");
        }
        // Time a step that is accepted at the first try (6 evaluations), so every system's
        // number means the same work: skip ahead past steps that would be rejected first.
        let mut probe = solver.clone();
        let mut before = probe.stats();
        probe.step(m).expect("dopri5 step");
        for _ in 0..DOPRI5_WARM_STEPS {
            if probe.stats().rejected == before.rejected {
                break;
            }
            solver.step(m).expect("dopri5 warm-up step");
            probe = solver.clone();
            before = probe.stats();
            probe.step(m).expect("dopri5 step");
        }
        let after = probe.stats();
        eprintln!(
            "{}: t = {:.3}, h = {:.3e}, {} evaluations, {} rejections per timed step",
            id("dopri5"),
            solver.t().as_f64(),
            (probe.t() - solver.t()).as_f64(),
            after.evaluations - before.evaluations,
            after.rejected - before.rejected,
        );
        self.c.bench_function(&id("dopri5"), |b| {
            b.iter_batched(
                || solver.clone(),
                |mut s| {
                    s.step(black_box(m)).expect("dopri5 step");
                    s
                },
                BatchSize::SmallInput,
            );
        });
    }
}

fn dynamics(c: &mut Criterion) {
    let mut bench = Bench { c };
    for_each_case::<f64, _>(&mut bench).expect("f64 cases");
    for_each_case::<f32, _>(&mut bench).expect("f32 cases");
}

criterion_group! {
    name = benches;
    // Short defaults for a 2-core CI; `-- --warm-up-time 3 --measurement-time 10` overrides.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = dynamics
}
criterion_main!(benches);
