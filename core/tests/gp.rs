//! WISKI and the exact GP against dense computations written out here in f64 (the fixtures in
//! fixtures/gp/ check the host against numpy; these keep the core honest on its own).

use keel_core::gp::{
    refactor_scratch_len, Convention, ExactBuffers, ExactGp, Family, Grid, Kernel, Wiski,
    WiskiBuffers,
};
use keel_core::linalg::{cholesky_in_place, solve_lower_in_place};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus as Rng};
use keel_core::Real;

struct Owned<T> {
    root: Vec<T>,
    precision: Vec<T>,
    b: Vec<T>,
    mean: Vec<T>,
    work: Vec<T>,
}

impl<T: Copy + Default> Owned<T> {
    fn new(m: usize) -> Self {
        Owned {
            root: vec![T::default(); m * m],
            precision: vec![T::default(); m * m],
            b: vec![T::default(); m],
            mean: vec![T::default(); m],
            work: vec![T::default(); 2 * m],
        }
    }
    fn buffers(&mut self) -> WiskiBuffers<'_, T> {
        WiskiBuffers {
            root: &mut self.root,
            precision: &mut self.precision,
            b: &mut self.b,
            mean: &mut self.mean,
            work: &mut self.work,
        }
    }
}

/// Dense SKI: mean, var_f and log p(y) from explicit W and K_UU by Cholesky of W K Wᵀ + σ²D.
fn dense_ski<const D: usize>(
    grid: &Grid<f64, D>,
    kernel: &Kernel<f64, D>,
    noise: f64,
    xs: &[[f64; D]],
    ys: &[f64],
    ds: &[f64],
    tests: &[[f64; D]],
) -> (Vec<f64>, Vec<f64>, f64) {
    let m = grid.len();
    let size = *grid.size();
    let kuu = |i: usize, j: usize| {
        let (mut ri, mut rj, mut v) = (i, j, kernel.outputscale());
        for k in (0..D).rev() {
            let g = size[k];
            v *= kernel.factor(k, grid.coordinate(k, ri % g) - grid.coordinate(k, rj % g));
            ri /= g;
            rj /= g;
        }
        v
    };
    let row = |x: &[f64; D]| {
        let mut w = vec![0.0; m];
        let mut i = [0; 64];
        let mut v = [0.0; 64];
        let nnz = grid.weights(x, &mut i, &mut v).unwrap();
        for e in 0..nnz {
            w[i[e]] += v[e];
        }
        w
    };
    let n = xs.len();
    let w: Vec<Vec<f64>> = xs.iter().map(row).collect();
    let k: Vec<f64> = (0..m * m).map(|e| kuu(e / m, e % m)).collect();
    // KWᵀ columns: kw[i] = K w_i.
    let kw: Vec<Vec<f64>> = w
        .iter()
        .map(|wi| {
            (0..m)
                .map(|a| (0..m).map(|b| k[a * m + b] * wi[b]).sum())
                .collect()
        })
        .collect();
    let mut kxx = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            kxx[i * n + j] = (0..m).map(|a| w[i][a] * kw[j][a]).sum::<f64>();
        }
        kxx[i * n + i] += noise * ds[i];
    }
    cholesky_in_place(&mut kxx, n).unwrap();
    let mut z = ys.to_vec();
    solve_lower_in_place(&kxx, n, &mut z).unwrap();
    let logdet: f64 = (0..n).map(|i| 2.0 * kxx[i * n + i].ln()).sum();
    let lml = -0.5
        * (z.iter().map(|v| v * v).sum::<f64>()
            + logdet
            + n as f64 * (2.0 * std::f64::consts::PI).ln());
    let mut means = vec![];
    let mut vars = vec![];
    for t in tests {
        let ws = row(t);
        let kws: Vec<f64> = (0..m)
            .map(|a| (0..m).map(|b| k[a * m + b] * ws[b]).sum())
            .collect();
        let prior: f64 = (0..m).map(|a| ws[a] * kws[a]).sum();
        let mut c: Vec<f64> = (0..n)
            .map(|i| (0..m).map(|a| w[i][a] * kws[a]).sum())
            .collect();
        solve_lower_in_place(&kxx, n, &mut c).unwrap();
        means.push(c.iter().zip(&z).map(|(a, b)| a * b).sum());
        vars.push(prior - c.iter().map(|v| v * v).sum::<f64>());
    }
    (means, vars, lml)
}

fn check_against_dense<const D: usize>(
    grid: Grid<f64, D>,
    kernel: Kernel<f64, D>,
    n: usize,
    seed: u64,
) {
    let mut rng = Rng::seed_from_u64(seed);
    let noise = 0.05;
    let lo: Vec<f64> = (0..D).map(|k| grid.coordinate(k, 0)).collect();
    let hi: Vec<f64> = (0..D)
        .map(|k| grid.coordinate(k, grid.size()[k] - 1))
        .collect();
    let point = |rng: &mut Rng| {
        let mut x = [0.0; D];
        for k in 0..D {
            x[k] = lo[k] + (hi[k] - lo[k]) * uniform::<f64, _>(rng);
        }
        x
    };
    let xs: Vec<[f64; D]> = (0..n).map(|_| point(&mut rng)).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|x| {
            x.iter().map(|v| (1.3 * v).sin()).sum::<f64>()
                + 0.1 * standard_normal::<f64, _>(&mut rng)
        })
        .collect();
    let ds: Vec<f64> = (0..n).map(|i| 1.0 + 0.5 * (i % 3) as f64).collect();
    let tests: Vec<[f64; D]> = (0..20).map(|_| point(&mut rng)).collect();
    let (mean, var, lml) = dense_ski(&grid, &kernel, noise, &xs, &ys, &ds, &tests);

    let m = grid.len();
    let mut mem = Owned::<f64>::new(m);
    let mut scratch = vec![0.0; refactor_scratch_len(m)];
    let mut gp = Wiski::new(grid, kernel, noise, mem.buffers(), &mut scratch).unwrap();
    for i in 0..n {
        gp.observe_with_noise(&xs[i], ys[i], ds[i]).unwrap();
    }
    let scale = 1.0 + lml.abs();
    let streamed = gp.log_marginal_likelihood();
    assert!(
        (streamed - lml).abs() < 1e-9 * scale,
        "streamed lml {streamed} vs dense {lml}"
    );
    for (t, x) in tests.iter().enumerate() {
        let p = gp.predict(x).unwrap();
        assert!(
            (p.mean - mean[t]).abs() < 1e-9,
            "mean {t}: {} vs {}",
            p.mean,
            mean[t]
        );
        assert!(
            (p.var_f - var[t]).abs() < 1e-9,
            "var {t}: {} vs {}",
            p.var_f,
            var[t]
        );
    }
    // Rebuilding from the statistics gives the same model.
    gp.refactorize(&mut scratch).unwrap();
    let rebuilt = gp.log_marginal_likelihood();
    assert!(
        (rebuilt - lml).abs() < 1e-9 * scale,
        "refactorised lml {rebuilt} vs dense {lml}"
    );
    for (t, x) in tests.iter().enumerate() {
        let p = gp.predict(x).unwrap();
        assert!((p.mean - mean[t]).abs() < 1e-9 && (p.var_f - var[t]).abs() < 1e-9);
    }
}

#[test]
fn wiski_1d_equals_dense_ski() {
    for conv in [Convention::Endpoints, Convention::Extended] {
        let grid = Grid::new([-2.0], [2.0], [24], conv).unwrap();
        let kernel = Kernel::new(Family::Rbf, 1.3, [0.7]).unwrap();
        check_against_dense(grid, kernel, 60, 1);
        let kernel = Kernel::new(Family::Matern52, 0.8, [0.4]).unwrap();
        check_against_dense(grid, kernel, 60, 2);
    }
}

#[test]
fn wiski_2d_and_3d_equal_dense_ski() {
    let grid = Grid::new([-1.0, 0.0], [1.0, 2.0], [8, 6], Convention::Endpoints).unwrap();
    let kernel = Kernel::new(Family::Rbf, 1.0, [0.6, 0.9]).unwrap();
    check_against_dense(grid, kernel, 40, 3);
    let kernel = Kernel::new(Family::Matern32, 1.0, [0.6, 0.9]).unwrap();
    check_against_dense(grid, kernel, 40, 4);
    let grid = Grid::new([-1.0; 3], [1.0; 3], [5, 4, 4], Convention::Endpoints).unwrap();
    let kernel = Kernel::new(Family::Rbf, 1.0, [0.8, 0.9, 1.1]).unwrap();
    check_against_dense(grid, kernel, 30, 5);
}

/// Grid nodes of the f32-vs-f64 models.
const SINE_GRID: usize = 64;

/// The f32-vs-f64 tests' model: 64 nodes on [−3.5, 3.5], RBF (s 1.3, ℓ 0.7), noise 0.04.
fn sine_model<'a, T: Real>(mem: &'a mut Owned<T>, scratch: &mut [T]) -> Wiski<'a, T, 1> {
    let t = T::from_f64;
    let grid = Grid::new([t(-3.5)], [t(3.5)], [SINE_GRID], Convention::Endpoints).unwrap();
    let kernel = Kernel::new(Family::Rbf, t(1.3), [t(0.7)]).unwrap();
    Wiski::new(grid, kernel, t(0.04), mem.buffers(), scratch).unwrap()
}

#[test]
fn f32_core_tracks_f64_over_many_updates() {
    let (mut m64, mut m32) = (Owned::<f64>::new(SINE_GRID), Owned::<f32>::new(SINE_GRID));
    let mut s64 = vec![0.0; refactor_scratch_len(SINE_GRID)];
    let mut s32 = vec![0.0f32; refactor_scratch_len(SINE_GRID)];
    let mut g64 = sine_model(&mut m64, &mut s64);
    let mut g32 = sine_model(&mut m32, &mut s32);
    let mut rng = Rng::seed_from_u64(7);
    for _ in 0..20_000 {
        let x = 3.4 * (2.0 * uniform::<f64, _>(&mut rng) - 1.0);
        let y = x.sin() + 0.2 * standard_normal::<f64, _>(&mut rng);
        g64.observe(&[x], y).unwrap();
        g32.observe(&[x as f32], y as f32).unwrap();
    }
    for i in 0..=40 {
        let x = -3.4 + 6.8 * i as f64 / 40.0;
        let (p, q) = (
            g64.predict(&[x]).unwrap(),
            g32.predict(&[x as f32]).unwrap(),
        );
        assert!(
            (p.mean - q.mean as f64).abs() < 1e-4 * (1.0 + p.mean.abs()),
            "x = {x}: {} vs {}",
            p.mean,
            q.mean
        );
        assert!(
            (p.var_y - q.var_y as f64).abs() < 1e-4 * p.var_y,
            "x = {x}: {} vs {}",
            p.var_y,
            q.var_y
        );
        assert!(q.var_f >= 0.0);
    }
    let (l64, l32) = (
        g64.log_marginal_likelihood(),
        g32.log_marginal_likelihood() as f64,
    );
    assert!((l64 - l32).abs() < 1e-4 * l64.abs(), "{l64} vs {l32}");
}

#[test]
fn exact_gp_equals_dense() {
    let kernel = Kernel::new(Family::Matern52, 1.3, [0.7, 0.4]).unwrap();
    let cap = 50;
    let (mut x, mut y, mut d, mut l, mut z, mut w) = (
        vec![0.0; cap * 2],
        vec![0.0; cap],
        vec![0.0; cap],
        vec![0.0; cap * cap],
        vec![0.0; cap],
        vec![0.0; cap],
    );
    let buf = ExactBuffers {
        x: &mut x,
        y: &mut y,
        d: &mut d,
        l: &mut l,
        z: &mut z,
        work: &mut w,
    };
    let mut gp = ExactGp::new(kernel, 0.04, buf).unwrap();
    let mut rng = Rng::seed_from_u64(11);
    let pts: Vec<([f64; 2], f64)> = (0..cap)
        .map(|_| {
            (
                [standard_normal(&mut rng), standard_normal(&mut rng)],
                standard_normal(&mut rng),
            )
        })
        .collect();
    for &(p, t) in &pts {
        gp.push(p, t).unwrap();
    }
    let n = cap;
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            k[i * n + j] = kernel.eval(&pts[i].0, &pts[j].0) + if i == j { 0.04 } else { 0.0 };
        }
    }
    cholesky_in_place(&mut k, n).unwrap();
    let mut zz: Vec<f64> = pts.iter().map(|p| p.1).collect();
    solve_lower_in_place(&k, n, &mut zz).unwrap();
    let lml = -0.5
        * (zz.iter().map(|v| v * v).sum::<f64>()
            + (0..n).map(|i| 2.0 * k[i * n + i].ln()).sum::<f64>()
            + n as f64 * (2.0 * std::f64::consts::PI).ln());
    assert!((gp.log_marginal_likelihood() - lml).abs() < 1e-10 * lml.abs());
    let t = [0.3, -0.2];
    let mut c: Vec<f64> = pts.iter().map(|p| kernel.eval(&p.0, &t)).collect();
    solve_lower_in_place(&k, n, &mut c).unwrap();
    let p = gp.predict(&t).unwrap();
    assert!((p.mean - c.iter().zip(&zz).map(|(a, b)| a * b).sum::<f64>()).abs() < 1e-12);
    assert!((p.var_f - (1.3 - c.iter().map(|v| v * v).sum::<f64>())).abs() < 1e-12);
}

/// A million f32 updates without refactorisation: no drift. After 10⁶ points the posterior
/// variance of f is ~5·10⁻⁷ of the prior's, which f32 resolves only to about ε times the prior
/// scale; the test checks that the streamed model is as close to f64 as a from-scratch f32
/// refactorisation of the same statistics is (the update adds no error of its own), that the
/// absolute errors sit at that rounding level, and that variances stay positive.
#[test]
fn f32_wiski_is_stable_over_a_million_updates() {
    let (mut m64, mut m32) = (Owned::<f64>::new(SINE_GRID), Owned::<f32>::new(SINE_GRID));
    let mut s64 = vec![0.0; refactor_scratch_len(SINE_GRID)];
    let mut s32 = vec![0.0f32; refactor_scratch_len(SINE_GRID)];
    let mut g64 = sine_model(&mut m64, &mut s64);
    let mut g32 = sine_model(&mut m32, &mut s32);
    let mut rng = Rng::seed_from_u64(3);
    let errors = |g64: &Wiski<f64, 1>, g32: &Wiski<f32, 1>| {
        let (mut dm, mut dv) = (0.0f64, 0.0f64);
        for i in 0..=40 {
            let x = -3.4 + 6.8 * i as f64 / 40.0;
            let (p, q) = (
                g64.predict(&[x]).unwrap(),
                g32.predict(&[x as f32]).unwrap(),
            );
            assert!(q.var_f > 0.0, "f32 variance {} at x = {x}", q.var_f);
            dm = dm.max((p.mean - q.mean as f64).abs());
            dv = dv.max((p.var_f - q.var_f as f64).abs());
        }
        (dm, dv)
    };
    for step in 1..=1_000_000u32 {
        let x = 3.4 * (2.0 * uniform::<f64, _>(&mut rng) - 1.0);
        let y = (3.0 * x).sin() + 0.2 * standard_normal::<f64, _>(&mut rng);
        g64.observe(&[x], y).unwrap();
        g32.observe(&[x as f32], y as f32).unwrap();
        if step % 250_000 == 0 {
            errors(&g64, &g32);
        }
    }
    let streamed = errors(&g64, &g32);
    g32.refactorize(&mut s32).unwrap();
    let rebuilt = errors(&g64, &g32);
    println!(
        "after 10⁶ updates: streamed |Δmean| {:.2e} |Δvar_f| {:.2e}; refactorised {:.2e} {:.2e}",
        streamed.0, streamed.1, rebuilt.0, rebuilt.1
    );
    assert!(
        streamed.0 <= 1.5 * rebuilt.0 + 1e-5 && streamed.1 <= 1.5 * rebuilt.1 + 1e-8,
        "{streamed:?} vs {rebuilt:?}"
    );
    let eps = f32::EPSILON as f64;
    assert!(streamed.1 < 4.0 * eps * 1.3, "|Δvar_f| {:.2e}", streamed.1);
    assert!(streamed.0 < 1e-3, "|Δmean| {:.2e}", streamed.0);
}
