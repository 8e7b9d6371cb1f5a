//! Keel's own linear algebra against nalgebra's on the Cortex-M4F (feature `nalgebra`; built and
//! counted by `firmware/measure_linalg.sh`, never by `run.sh`, so the firmware's output and its
//! `keel firmware check` are unchanged).
//!
//! Eight regions between the markers, in pairs (Keel's, then nalgebra's) on the same inputs:
//! 1–2. one RK4 step (dt = 0.01) of the paper's 3-pendulum — the firmware's first step —
//!      Keel's field (Cholesky of the 3 × 3 block `S`) or the whole 6 × 6 constraint system
//!      by nalgebra's fixed-size `LU` (`keel_core::dynamics::NalgebraLu`);
//! 3–4. that 6 × 6 solve alone, on a system of the field's shape `[[0, S], [−S, A]]`;
//! 5–6. the first WISKI update of the firmware's model (1-D, m = 64): `Wiski::observe` or
//!      `Wiski::observe_with_noise_nalgebra`;
//! 7–8. the EMLP's three dense layers (10 → 52, 48 → 52, 48 → 1): `Dense::forward` on the
//!      weights in flash, or `keel_core::linalg::nalgebra::dense_forward` on `f32` copies in RAM
//!      (the copies are made before the region).
//!
//! Prints `KEEL-LINALG` with the largest relative difference between each pair's results.

#![no_std]
#![no_main]

use core::arch::asm;
use core::hint::black_box;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use keel_core::dynamics::systems::ChainPendulum;
use keel_core::dynamics::NalgebraLu;
use keel_core::gp::{refactor_scratch_len, Convention, Family, Grid, Kernel, Wiski, WiskiMemory};
use keel_core::integrate::{Rk4, StateVector};
use keel_core::io::SafeTensors;
use keel_core::linalg::{lu_factor, lu_solve};
use keel_core::nn::Dense;
use panic_semihosting as _;

static EMLP_MODEL: &[u8] = include_bytes!("../../assets/emlp-o5.safetensors");

/// Largest `|a − b| / max(|a|, 1)`.
fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0, |m, (x, y)| m.max((x - y).abs() / x.abs().max(1.0)))
}

fn pendulum() -> keel_core::Result<f32> {
    let p = black_box(ChainPendulum::<f32, 3>::paper()?);
    let rk4 = black_box(Rk4::new(0.01f32)?);
    let m = p.mechanics();
    let z0 = p.state_from_angles(&[0.3, -0.2, 1.1], &[0.0, 0.5, -0.3]);
    let (mut a, mut b) = (z0, z0);
    black_box(&mut a);
    bench_start();
    let ra = rk4.step(m, 0.0, &mut a);
    bench_end();
    black_box(&mut b);
    bench_start();
    let rb = rk4.step(&NalgebraLu::<_, 6>(m), 0.0, &mut b);
    bench_end();
    ra?;
    rb?;
    Ok(max_rel(a.as_slice(), b.as_slice()))
}

fn constraint_solve() -> keel_core::Result<f32> {
    let s = [[2.0, 0.3, -0.1], [0.3, 1.5, 0.2], [-0.1, 0.2, 1.1]];
    let an = [[0.0, 0.4, -0.7], [-0.4, 0.0, 0.25], [0.7, -0.25, 0.0]];
    let mut k = [0.0f32; 36];
    for i in 0..3 {
        for j in 0..3 {
            k[i * 6 + 3 + j] = s[i][j];
            k[(3 + i) * 6 + j] = -s[i][j];
            k[(3 + i) * 6 + 3 + j] = an[i][j];
        }
    }
    let k = black_box(k);
    let rhs: [f32; 6] = black_box(core::array::from_fn(|i| 0.3 * i as f32 - 0.8));
    let (mut ka, mut xa, mut perm, mut scratch) = (k, rhs, [0usize; 6], [0.0f32; 6]);
    let mut xb = rhs;
    bench_start();
    let ra = lu_factor(&mut ka, 6, &mut perm)
        .and_then(|()| lu_solve(&ka, 6, &perm, &mut xa, &mut scratch));
    bench_end();
    bench_start();
    let rb = keel_core::linalg::nalgebra::lu_solve_fixed::<f32, 6>(&k, &mut xb);
    bench_end();
    ra?;
    rb?;
    Ok(max_rel(&xa, &xb))
}

fn wiski() -> keel_core::Result<f32> {
    let grid = Grid::new([-3.0f32], [3.0], [64], Convention::Endpoints)?;
    let kernel = black_box(Kernel::new(Family::Rbf, 1.3f32, [0.7])?);
    let mut scratch = [0.0f32; refactor_scratch_len(64)];
    let (mut ma, mut mb) = (WiskiMemory::<f32, 64>::new(), WiskiMemory::<f32, 64>::new());
    let mut a = Wiski::new(grid, kernel, 0.04, ma.buffers(), &mut scratch)?;
    let mut b = Wiski::new(grid, kernel, 0.04, mb.buffers(), &mut scratch)?;
    let (x, y) = ([0.37f32], 1.05f32);
    bench_start();
    let ra = a.observe(black_box(&x), black_box(y));
    bench_end();
    bench_start();
    let rb = b.observe_with_noise_nalgebra(black_box(&x), black_box(y), 1.0);
    bench_end();
    ra?;
    rb?;
    let mut worst = max_rel(a.root(), b.root()).max(max_rel(a.grid_mean(), b.grid_mean()));
    worst = worst.max(max_rel(
        &[a.log_marginal_likelihood()],
        &[b.log_marginal_likelihood()],
    ));
    Ok(worst)
}

fn emlp_dense() -> keel_core::Result<f32> {
    let st = SafeTensors::<32>::parse(EMLP_MODEL)?;
    let layer = |w: &str, b: &str| Dense::new(&st.tensor(w)?, &st.tensor(b)?);
    let (l0, l1, l2) = (
        layer("block0.weight", "block0.bias")?,
        layer("block1.weight", "block1.bias")?,
        layer("head.weight", "head.bias")?,
    );
    // f32 copies in RAM for nalgebra (it cannot view the file's bytes).
    let copy = |name: &str, out: &mut [f32]| -> keel_core::Result<()> {
        let t = st.tensor(name)?;
        for (i, v) in out.iter_mut().enumerate() {
            *v = t.get_f32(i)?;
        }
        Ok(())
    };
    let (mut w0, mut b0, mut w1, mut b1, mut w2, mut b2) = (
        [0.0f32; 520],
        [0.0f32; 52],
        [0.0f32; 2496],
        [0.0f32; 52],
        [0.0f32; 48],
        [0.0f32; 1],
    );
    copy("block0.weight", &mut w0)?;
    copy("block0.bias", &mut b0)?;
    copy("block1.weight", &mut w1)?;
    copy("block1.bias", &mut b1)?;
    copy("head.weight", &mut w2)?;
    copy("head.bias", &mut b2)?;
    let x: [f32; 10] = black_box(core::array::from_fn(|i| 0.1 * i as f32 - 0.45));
    let h: [f32; 48] = black_box(core::array::from_fn(|i| 0.02 * i as f32 - 0.5));
    let (mut ya0, mut ya1, mut ya2) = ([0.0f32; 52], [0.0f32; 52], [0.0f32; 1]);
    let (mut yb0, mut yb1, mut yb2) = ([0.0f32; 52], [0.0f32; 52], [0.0f32; 1]);
    bench_start();
    let ra = l0
        .forward(&x, &mut ya0)
        .and_then(|()| l1.forward(&h, &mut ya1))
        .and_then(|()| l2.forward(&h, &mut ya2));
    bench_end();
    let na = keel_core::linalg::nalgebra::dense_forward::<f32>;
    bench_start();
    let rb = na(&w0, &b0, &x, &mut yb0)
        .and_then(|()| na(&w1, &b1, &h, &mut yb1))
        .and_then(|()| na(&w2, &b2, &h, &mut yb2));
    bench_end();
    ra?;
    rb?;
    Ok(max_rel(&ya0, &yb0)
        .max(max_rel(&ya1, &yb1))
        .max(max_rel(&ya2, &yb2)))
}

fn run() -> keel_core::Result<()> {
    let p = pendulum()?;
    let s = constraint_solve()?;
    let g = wiski()?;
    let e = emlp_dense()?;
    hprintln!(
        "KEEL-LINALG max_rel_diff pendulum={:08x} solve={:08x} wiski={:08x} emlp_dense={:08x}",
        p.to_bits(),
        s.to_bits(),
        g.to_bits(),
        e.to_bits()
    );
    Ok(())
}

/// Start of a measured region (as in the firmware's `main.rs`).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_start() {
    // SAFETY: a `nop` has no effect; without `nomem` the compiler treats it as touching memory,
    // so loads and stores of the measured state are not moved across the marker.
    unsafe { asm!("nop") }
}

/// End of a measured region.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_end() {
    // SAFETY: as in `bench_start`.
    unsafe { asm!("nop", "nop") }
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(()) => debug::exit(debug::EXIT_SUCCESS),
        Err(e) => {
            hprintln!("KEEL-LINALG error={}", e.kind());
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("KEEL-LINALG hardfault {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
