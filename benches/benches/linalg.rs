//! Keel's own linear algebra against nalgebra's on the three paths issue 20 names, on the same
//! inputs in the same run (README, "Architecture notes"; the Cortex-M4F counts of the same pairs
//! come from `firmware/measure_linalg.sh`).
//!
//! Bench ids (`<path>/<impl>/<dtype>`, `impl` = `keel` or `nalgebra`):
//! - `pendulum3_rk4_step`: one RK4 step (dt = 0.01) of the paper's 3-pendulum — Keel's field
//!   (a Cholesky of the 3 × 3 block `S` and two triangular pairs per evaluation) or the whole
//!   6 × 6 constraint system by nalgebra's fixed-size `LU` (`keel_core::dynamics::NalgebraLu`);
//!   until the Cholesky field (issue 27 §4) both solved the 6 × 6 system, Keel's by
//!   `lu_factor`/`lu_solve`;
//! - `constraint_solve`: that 6 × 6 solve alone, on a system of the field's shape
//!   `[[0, S], [−S, A]]` (the copy of the matrix included in both);
//! - `wiski_update`: one WISKI update (1-D, m = 64 as on the firmware, after 10⁴ points) —
//!   `Wiski::observe` or `Wiski::observe_with_noise_nalgebra` (nalgebra's `dot`, `gemv_tr`,
//!   `ger`, `axpy` on views of the same buffers);
//! - `emlp_dense`: the firmware EMLP's three dense layers (10 → 52, 48 → 52, 48 → 1) —
//!   `keel_core::nn::Dense::forward` on the file's bytes, or
//!   `keel_core::linalg::nalgebra::dense_forward` on `f32` copies of the weights; `keel_lanes`:
//!   the same in-place byte reads as Keel's, each dot product summed in 8 lanes (bench-only).
//!
//! ```text
//! cargo bench -p keel-benches --bench linalg -- --warm-up-time 1 --measurement-time 5
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keel_core::dynamics::systems::ChainPendulum;
use keel_core::dynamics::NalgebraLu;
use keel_core::gp::{refactor_scratch_len, Convention, Family, Grid, Kernel, Wiski, WiskiMemory};
use keel_core::integrate::Rk4;
use keel_core::io::SafeTensors;
use keel_core::linalg::{lu_factor, lu_solve};
use keel_core::nn::Dense;
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_core::Real;

/// `x` in `T` (a function bounded by `Real` alone: nalgebra's `RealField` also has a `from_f64`).
fn r<T: Real>(x: f64) -> T {
    T::from_f64(x)
}

/// A sample of `sin(3x) + 0.3x` with noise 0.2, `x` in `[−2.9, 2.9]`.
fn sample<T: Real>(rng: &mut Xoshiro256PlusPlus) -> (T, T) {
    let x = r::<T>(-2.9) + r::<T>(5.8) * uniform::<T, _>(rng);
    let y =
        (r::<T>(3.0) * x).libm_sin() + r::<T>(0.3) * x + r::<T>(0.2) * standard_normal::<T, _>(rng);
    (x, y)
}

static EMLP_MODEL: &[u8] = include_bytes!("../../firmware/assets/emlp-o5.safetensors");

fn pendulum<T: Real + nalgebra::RealField>(c: &mut Criterion, dtype: &str) {
    let p = ChainPendulum::<T, 3>::paper().unwrap();
    let m = p.mechanics();
    let rk4 = Rk4::new(r::<T>(0.01)).unwrap();
    let z0 = p.state_from_angles(&[0.3, -0.2, 1.1].map(r::<T>), &[0.0, 0.5, -0.3].map(r::<T>));
    let mut g = c.benchmark_group("pendulum3_rk4_step");
    g.bench_function(format!("keel/{dtype}"), |b| {
        b.iter(|| {
            let mut z = black_box(z0);
            rk4.step(m, T::ZERO, &mut z).unwrap();
            z
        })
    });
    g.bench_function(format!("nalgebra/{dtype}"), |b| {
        b.iter(|| {
            let mut z = black_box(z0);
            rk4.step(&NalgebraLu::<_, 6>(m), T::ZERO, &mut z).unwrap();
            z
        })
    });
    g.finish();
}

/// `[[0, S], [−S, A]]` with `S` symmetric positive definite and `A` antisymmetric, row-major.
fn saddle<T: Real>() -> [T; 36] {
    let s = [[2.0, 0.3, -0.1], [0.3, 1.5, 0.2], [-0.1, 0.2, 1.1]];
    let a = [[0.0, 0.4, -0.7], [-0.4, 0.0, 0.25], [0.7, -0.25, 0.0]];
    let mut k = [T::ZERO; 36];
    for i in 0..3 {
        for j in 0..3 {
            k[i * 6 + 3 + j] = T::from_f64(s[i][j]);
            k[(3 + i) * 6 + j] = T::from_f64(-s[i][j]);
            k[(3 + i) * 6 + 3 + j] = T::from_f64(a[i][j]);
        }
    }
    k
}

fn constraint_solve<T: Real + nalgebra::RealField>(c: &mut Criterion, dtype: &str) {
    let k0 = saddle::<T>();
    let b0: [T; 6] = core::array::from_fn(|i| r::<T>(0.3 * i as f64 - 0.8));
    let mut g = c.benchmark_group("constraint_solve");
    g.bench_function(format!("keel/{dtype}"), |b| {
        b.iter(|| {
            let (mut k, mut x) = (black_box(k0), black_box(b0));
            let mut perm = [0usize; 6];
            let mut scratch = [T::ZERO; 6];
            lu_factor(&mut k, 6, &mut perm).unwrap();
            lu_solve(&k, 6, &perm, &mut x, &mut scratch).unwrap();
            x
        })
    });
    g.bench_function(format!("nalgebra/{dtype}"), |b| {
        b.iter(|| {
            let (k, mut x) = (black_box(k0), black_box(b0));
            keel_core::linalg::nalgebra::lu_solve_fixed::<T, 6>(&k[..], &mut x).unwrap();
            x
        })
    });
    g.finish();
}

fn wiski<T: Real + nalgebra::RealField>(c: &mut Criterion, dtype: &str) {
    let grid = Grid::new([r::<T>(-3.0)], [r::<T>(3.0)], [64], Convention::Endpoints).unwrap();
    let kernel = Kernel::new(Family::Rbf, r::<T>(1.3), [r::<T>(0.7)]).unwrap();
    let mut g = c.benchmark_group("wiski_update");
    for nalg in [false, true] {
        let mut memory = Box::new(WiskiMemory::<T, 64>::new());
        let mut scratch = vec![T::ZERO; refactor_scratch_len(64)];
        let mut gp =
            Wiski::new(grid, kernel, r::<T>(0.04), memory.buffers(), &mut scratch).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for _ in 0..10_000 {
            let (x, y) = sample::<T>(&mut rng);
            gp.accumulate(&[x], y, T::ONE).unwrap();
        }
        gp.refactorize(&mut scratch).unwrap();
        let (x, y) = sample::<T>(&mut rng);
        if nalg {
            g.bench_function(format!("nalgebra/{dtype}"), |b| {
                b.iter(|| {
                    gp.observe_with_noise_nalgebra(black_box(&[x]), black_box(y), T::ONE)
                        .unwrap()
                })
            });
        } else {
            g.bench_function(format!("keel/{dtype}"), |b| {
                b.iter(|| gp.observe(black_box(&[x]), black_box(y)).unwrap())
            });
        }
    }
    g.finish();
}

fn emlp_dense(c: &mut Criterion) {
    let st = SafeTensors::<32>::parse(EMLP_MODEL).unwrap();
    let names = [
        ("block0.weight", "block0.bias"),
        ("block1.weight", "block1.bias"),
        ("head.weight", "head.bias"),
    ];
    let layers =
        names.map(|(w, b)| Dense::new(&st.tensor(w).unwrap(), &st.tensor(b).unwrap()).unwrap());
    let copies = names.map(|(w, b)| {
        let f = |name| {
            let t = st.tensor(name).unwrap();
            let n: usize = t.shape().iter().product();
            (0..n).map(|i| t.get_f32(i).unwrap()).collect::<Vec<f32>>()
        };
        (f(w), f(b))
    });
    let x: Vec<f32> = (0..10).map(|i| 0.1 * i as f32 - 0.45).collect();
    let h: Vec<f32> = (0..48).map(|i| 0.02 * i as f32 - 0.5).collect();
    let mut g = c.benchmark_group("emlp_dense");
    g.bench_function("keel/f32", |b| {
        b.iter(|| {
            let (mut y0, mut y1, mut y2) = ([0.0f32; 52], [0.0f32; 52], [0.0f32; 1]);
            layers[0].forward(black_box(&x), &mut y0).unwrap();
            layers[1].forward(black_box(&h), &mut y1).unwrap();
            layers[2].forward(black_box(&h), &mut y2).unwrap();
            (y0, y1, y2)
        })
    });
    let raw = names.map(|(w, b)| (st.tensor(w).unwrap().data(), st.tensor(b).unwrap().data()));
    // Both twins compute the same layers as Keel's, to rounding.
    for (k, input) in [&x, &h, &h].into_iter().enumerate() {
        let n = layers[k].outputs();
        let (mut a, mut l, mut na) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        layers[k].forward(input, &mut a).unwrap();
        dense_bytes_lanes(raw[k].0, raw[k].1, input, &mut l);
        keel_core::linalg::nalgebra::dense_forward(&copies[k].0, &copies[k].1, input, &mut na)
            .unwrap();
        for j in 0..n {
            assert!(
                (a[j] - l[j]).abs() <= 1e-5 * (1.0 + a[j].abs()),
                "lanes {k}/{j}"
            );
            assert!(
                (a[j] - na[j]).abs() <= 1e-5 * (1.0 + a[j].abs()),
                "nalgebra {k}/{j}"
            );
        }
    }
    g.bench_function("keel_lanes/f32", |b| {
        b.iter(|| {
            let (mut y0, mut y1, mut y2) = ([0.0f32; 52], [0.0f32; 52], [0.0f32; 1]);
            dense_bytes_lanes(raw[0].0, raw[0].1, black_box(&x), &mut y0);
            dense_bytes_lanes(raw[1].0, raw[1].1, black_box(&h), &mut y1);
            dense_bytes_lanes(raw[2].0, raw[2].1, black_box(&h), &mut y2);
            (y0, y1, y2)
        })
    });
    g.bench_function("nalgebra/f32", |b| {
        b.iter(|| {
            let (mut y0, mut y1, mut y2) = ([0.0f32; 52], [0.0f32; 52], [0.0f32; 1]);
            let na = keel_core::linalg::nalgebra::dense_forward;
            na(&copies[0].0, &copies[0].1, black_box(&x), &mut y0).unwrap();
            na(&copies[1].0, &copies[1].1, black_box(&h), &mut y1).unwrap();
            na(&copies[2].0, &copies[2].1, black_box(&h), &mut y2).unwrap();
            (y0, y1, y2)
        })
    });
    g.finish();
}

/// `y = W x + b` on little-endian `f32` bytes read in place, as `Dense::forward` does, but each
/// row's dot product summed in 8 interleaved lanes (the order of `keel_core::linalg::dot_lanes`)
/// instead of one: whether the host gap to nalgebra is the summation order or the typed layout.
fn dense_bytes_lanes(w: &[u8], bias: &[u8], x: &[f32], y: &mut [f32]) {
    let f = |c: &[u8]| f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    let n = x.len();
    let split = n - n % 8;
    for ((yj, row), bj) in y
        .iter_mut()
        .zip(w.chunks_exact(4 * n))
        .zip(bias.chunks_exact(4))
    {
        let mut acc = [0.0f32; 8];
        for (cw, cx) in row[..4 * split]
            .chunks_exact(32)
            .zip(x[..split].chunks_exact(8))
        {
            for k in 0..8 {
                acc[k] += f(&cw[4 * k..]) * cx[k];
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        for (c, xk) in row[4 * split..].chunks_exact(4).zip(&x[split..]) {
            s += f(c) * xk;
        }
        *yj = s + f(bj);
    }
}

fn all(c: &mut Criterion) {
    pendulum::<f32>(c, "f32");
    pendulum::<f64>(c, "f64");
    constraint_solve::<f32>(c, "f32");
    constraint_solve::<f64>(c, "f64");
    wiski::<f32>(c, "f32");
    wiski::<f64>(c, "f64");
    emlp_dense(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
