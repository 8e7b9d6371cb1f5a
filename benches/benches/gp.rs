//! Online GP updates and predictions: the exact GP (rank-1 Cholesky extension, `O(n²)`) and
//! WISKI (Potter square-root update, `O(m²)` whatever n is), f64, on the host.
//!
//! Bench ids:
//! - `exact_update/n{100,1000,4000}`: add one point to an exact GP holding n (then forget it
//!   again with `truncate`, `O(1)`, so every iteration starts from n points);
//!   `exact_predict/n…`: mean and variance at one input. `benches/peers/gp_update.py` times
//!   numpy/scipy doing the same.
//! - `wiski_update/{1d-m64,1d-m256,2d-16x16}/n{1e2,1e4,1e6}`: one `observe` on a model that has
//!   absorbed n points (built from the statistics and one refactorisation: the same model as
//!   streaming them); `wiski_predict/…`: mean and variance at one input. Each iteration adds a
//!   point (the update's cost does not depend on the values it works on), so a run moves n a
//!   little: 10² grows to about 10⁶ over a run, which is the point of the comparison.
//!
//! ```text
//! cargo bench -p keel-benches --bench gp
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keel::gp::{ExactStore, WiskiStore};
use keel_core::gp::{Convention, ExactGp, Family, Grid, Kernel, Wiski};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

fn sample<const D: usize>(rng: &mut Xoshiro256PlusPlus) -> ([f64; D], f64) {
    let mut x = [0.0; D];
    let mut y = 0.0;
    for v in x.iter_mut() {
        *v = -2.9 + 5.8 * uniform::<f64, _>(rng);
        y += (1.3 * *v).sin();
    }
    (x, y + 0.2 * standard_normal::<f64, _>(rng))
}

fn exact(c: &mut Criterion) {
    let kernel = Kernel::new(Family::Rbf, 1.3, [0.7]).unwrap();
    for n in [100usize, 1000, 4000] {
        let cap = n + 1;
        let mut store = ExactStore::new(cap, 1);
        let mut gp = ExactGp::new(kernel, 0.04, store.buffers()).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..n {
            let (p, t) = sample::<1>(&mut rng);
            gp.push(p, t).unwrap();
        }
        let (p, t) = sample::<1>(&mut rng);
        let id = BenchmarkId::from_parameter(format!("n{n}"));
        let mut g = c.benchmark_group("exact_update");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function(id.clone(), |b| {
            b.iter(|| {
                gp.push(black_box(p), black_box(t)).unwrap();
                gp.truncate(n);
            })
        });
        g.finish();
        let mut g = c.benchmark_group("exact_predict");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function(id, |b| b.iter(|| gp.predict(black_box(&[0.3])).unwrap()));
        g.finish();
    }
}

fn wiski_case<const D: usize>(
    c: &mut Criterion,
    name: &str,
    size: [usize; D],
    lengthscale: [f64; D],
) {
    let grid = Grid::new([-3.0; D], [3.0; D], size, Convention::Endpoints).unwrap();
    let kernel = Kernel::new(Family::Rbf, 1.3, lengthscale).unwrap();
    for (label, n) in [("n1e2", 100u64), ("n1e4", 10_000), ("n1e6", 1_000_000)] {
        let mut store = WiskiStore::new(grid.len());
        let (buf, scratch) = store.split();
        let mut gp = Wiski::new(grid, kernel, 0.04, buf, scratch).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for _ in 0..n {
            let (x, y) = sample::<D>(&mut rng);
            gp.accumulate(&x, y, 1.0).unwrap();
        }
        let mut scratch = vec![0.0; keel_core::gp::refactor_scratch_len(grid.len())];
        gp.refactorize(&mut scratch).unwrap();
        let (x, y) = sample::<D>(&mut rng);
        let mut g = c.benchmark_group("wiski_update");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function(BenchmarkId::new(name, label), |b| {
            b.iter(|| gp.observe(black_box(&x), black_box(y)).unwrap())
        });
        g.finish();
        let mut g = c.benchmark_group("wiski_predict");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        g.bench_function(BenchmarkId::new(name, label), |b| {
            b.iter(|| gp.predict(black_box(&x)).unwrap())
        });
        g.finish();
    }
}

fn wiski(c: &mut Criterion) {
    wiski_case::<1>(c, "1d-m64", [64], [0.7]);
    wiski_case::<1>(c, "1d-m256", [256], [0.7]);
    wiski_case::<2>(c, "2d-16x16", [16, 16], [0.7, 0.7]);
}

criterion_group!(benches, exact, wiski);
criterion_main!(benches);
