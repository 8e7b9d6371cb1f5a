//! Keel's core on an emulated Cortex-M4F (QEMU `mps2-an386`).
//!
//! Builds the paper's 3-link chain pendulum in `f32`, integrates 1000 classic RK4 steps of
//! `dt = 0.01` from a fixed initial state and prints the final state as raw `f32` bits over
//! semihosting, so a host can compare it bit for bit (and no float-formatting code is needed for
//! the result). The first step runs between the markers [`bench_start`] and [`bench_end`], whose
//! addresses `measure.sh` finds in QEMU's execution trace to count the instructions of one step.

#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt;
use core::hint::black_box;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use keel_core::dynamics::learned::{self, Form};
use keel_core::dynamics::systems::{ChainPendulum, Gyroscope};
use keel_core::dynamics::{HamiltonianEmlp, Phase};
use keel_core::gp::{
    refactor_scratch_len, Convention, Family, Grid, Kernel, Wiski, WiskiFile, WiskiMemory,
};
use keel_core::integrate::{Rk4, StateVector};
use keel_core::io::SafeTensors;
use keel_core::nn::{Augerino, Bma, Cnn, Emlp, Mlp, NtkAdaptation, NtkMemory, PriorMean, Simplex};
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_core::rl::{Env, Pendulum, Policy, ValueModel};
use keel_core::Real;
use panic_semihosting as _;

/// Links of the pendulum.
const LINKS: usize = 3;
/// Step size (s).
const DT: f32 = 0.01;
/// Steps taken.
const STEPS: usize = 1000;
/// Initial link angles from the downward vertical (rad).
const ANGLES: [f32; LINKS] = [0.3, -0.2, 1.1];
/// Initial angular velocities (rad/s).
const RATES: [f32; LINKS] = [0.0, 0.5, -0.3];

/// The digits classifier exported by `keel fit` (`keel firmware assets`), read from flash in
/// place by the core's safetensors reader.
static DIGITS_MODEL: &[u8] = include_bytes!("../assets/digits-mlp.safetensors");
/// Test digits (`x: [16, 64]`, `label: [16]`) to classify.
static DIGITS_SAMPLES: &[u8] = include_bytes!("../assets/digits-samples.safetensors");
/// Ten HMC samples of a Bayesian MLP (64 → 64 → 10, ReLU) on digits (`keel bayes hmc … --save-samples`,
/// then `keel bayes export --count 10`): the core averages their class probabilities.
static DIGITS_BMA: &[u8] = include_bytes!("../assets/digits-bma.safetensors");
/// An ensemble of simplexes of ReLU MLPs on digits (ESPRO: `keel simplex train … --export`; see
/// the README): components × vertices × parameters, combined on the fly at fixed interior points.
static DIGITS_SIMPLEX: &[u8] = include_bytes!("../assets/digits-simplex.safetensors");
/// One MLP distilled from that ensemble (`keel distill --teacher … --export`), an ordinary `mlp`
/// file.
static DIGITS_STUDENT: &[u8] = include_bytes!("../assets/digits-student.safetensors");
/// Scratch for the simplex ensemble (`Simplex::scratch_len`: 2 × widest + vertices × h₁).
const SIMPLEX_SCRATCH: usize = 1024;
/// Digits classified (the samples file holds this many).
const SAMPLES: usize = 16;
/// Pixels per digit.
const PIXELS: usize = 64;
/// Classes.
const CLASSES: usize = 10;
/// Scratch for the MLP's forward pass (it needs 2 × its widest layer).
const SCRATCH: usize = 512;

/// An O(5)-invariant EMLP (2V → V⁰) exported by `keel emlp`'s trainer (`keel firmware assets`).
/// A SAC-SVG(2) policy for Pendulum-v1 (`keel rl train --env pendulum --horizon 2 --steps 10000
/// --batch 256 --hidden 64 --seed 1 --export … --export-value …`; 3 → 64 → 64 → 2, f32).
static PENDULUM_POLICY: &[u8] = include_bytes!("../assets/pendulum-policy.safetensors");
/// The same run's whole agent (actor, critic, reward, done and GRU world model) for the
/// model-based value estimate `V̂_2` of every state the loop visits.
static PENDULUM_VALUE: &[u8] = include_bytes!("../assets/pendulum-value.safetensors");
/// Control steps of the closed-loop episode (Pendulum-v1's time limit).
const POLICY_STEPS: usize = 200;
/// Scratch for the value estimate (`ValueModel::scratch_len`: 649 for 64 units).
const VALUE_SCRATCH: usize = 1024;

static EMLP_MODEL: &[u8] = include_bytes!("../assets/emlp-o5.safetensors");
/// Its inputs `x [8, 10]` and `xg = ρ(g) x` for one sampled `g ∈ O(5)`.
static EMLP_SAMPLES: &[u8] = include_bytes!("../assets/emlp-o5-samples.safetensors");
/// EMLP inputs evaluated.
const EMLP_INPUTS: usize = 8;
/// Scratch for the EMLP (3 × its widest gated layer).
const EMLP_SCRATCH: usize = 256;

/// Evaluates the EMLP on every input and its rotated copy and prints both outputs.
fn run_emlp() -> keel_core::Result<()> {
    let st = SafeTensors::<32>::parse(EMLP_MODEL)?;
    let emlp = Emlp::<4, 8>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(EMLP_SAMPLES)?;
    let mut scratch = [0.0f32; EMLP_SCRATCH];
    let mut y = [0.0f32; EMLP_INPUTS];
    let mut yg = [0.0f32; EMLP_INPUTS];
    for (name, out) in [("x", &mut y), ("xg", &mut yg)] {
        let t = samples.tensor(name)?;
        for (k, o) in out.iter_mut().enumerate() {
            let mut x = [0.0f32; 10];
            for (i, v) in x.iter_mut().enumerate() {
                *v = t.get_f32(k * 10 + i)?;
            }
            let mut one = [0.0f32; 1];
            emlp.forward(&x, &mut one, &mut scratch)?;
            *o = one[0];
        }
    }
    hprintln!(
        "KEEL-FW model=emlp samples={} y={} yg={}",
        EMLP_INPUTS,
        Bits(&y),
        Bits(&yg)
    );
    Ok(())
}

/// A CHNN learned on the 2-pendulum at the paper's budget (`keel chnn train --system
/// chain-pendulum --links 2 --model chnn --n-train 800 --epochs 2000 --export …`): a 3 × 256 tanh
/// potential, learned masses and the constraint graph, read from flash in place.
static CHNN_MODEL: &[u8] = include_bytes!("../assets/chnn-pend2.safetensors");
/// Initial link angles and rates of the learned rollout.
const CHNN_ANGLES: [f32; 2] = [0.5, -0.4];
const CHNN_RATES: [f32; 2] = [0.3, 0.8];
/// The data's step (s) and the steps taken.
const CHNN_DT: f32 = 0.03;
const CHNN_STEPS: usize = 100;
/// Scratch for the potential's input gradient: 256 × 3 + 1 stored plus 2 × 256.
const CHNN_SCRATCH: usize = 1281;

/// The learned model as loaded from flash.
type LearnedPendulum = learned::Learned<'static, f32, 2, 2, 2, 4, CHNN_SCRATCH>;

/// Loads the learned 2-pendulum and takes its first RK4 step between the markers (early in the
/// run, so the instruction trace reaches it quickly); returns the model, the velocity-form start
/// and the state after one step.
fn chnn_first_step() -> keel_core::Result<(LearnedPendulum, Phase<f32, 2, 2>, Phase<f32, 2, 2>)> {
    let real = ChainPendulum::<f32, 2>::paper()?;
    let z0 = real.velocity_state_from_angles(&CHNN_ANGLES, &CHNN_RATES);
    let st = SafeTensors::<16>::parse(CHNN_MODEL)?;
    let model = learned::load::<f32, 2, 2, 2, 4, CHNN_SCRATCH, 16>(&st, z0.x())?;
    if model.form != Form::Hamiltonian {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded model is not a CHNN",
        });
    }
    let rk4 = black_box(Rk4::new(CHNN_DT)?);
    let mut z = model.mechanics.from_velocity_form(&z0);
    black_box(&mut z);
    bench_start();
    let first = rk4.step(&model.mechanics, 0.0, &mut z);
    bench_end();
    first?;
    Ok((model, z0, z))
}

/// Finishes the `CHNN_STEPS`-step rollout and prints the start and final velocity-form states.
fn chnn_finish(
    model: &LearnedPendulum,
    z0: &Phase<f32, 2, 2>,
    mut z: Phase<f32, 2, 2>,
) -> keel_core::Result<()> {
    let mechanics = &model.mechanics;
    let rk4 = Rk4::new(CHNN_DT)?;
    for k in 1..CHNN_STEPS {
        rk4.step(mechanics, CHNN_DT * k as f32, &mut z)?;
    }
    let zv = mechanics.to_velocity_form(&z);
    hprintln!(
        "KEEL-FW model=chnn links=2 dt={:08x} steps={} z0={} state={}",
        CHNN_DT.to_bits(),
        CHNN_STEPS,
        Bits(z0.as_slice()),
        Bits(zv.as_slice())
    );
    Ok(())
}

/// A CHNN learned on the gyroscope (`keel chnn train --system gyroscope --model chnn --n-train
/// 800 --epochs 500 --hidden 64 --export …`): a 3 × 64 tanh potential of the four nodes' 12
/// coordinates, the body's learned mass and moments, and the pinned rigid body's 9 constraints.
static GYRO_MODEL: &[u8] = include_bytes!("../assets/chnn-gyroscope.safetensors");
/// ZXZ Euler angles and rates of the start: tilted, precessing slowly, spinning fast (as the
/// paper's initial conditions).
const GYRO_EULER: [f32; 3] = [0.4, 0.9, -0.2];
const GYRO_RATES: [f32; 3] = [1.5, 0.1, 10.0];
/// The data's step (s) and the steps taken.
const GYRO_DT: f32 = 0.02;
const GYRO_STEPS: usize = 100;
/// Scratch for the potential's input gradient: 64 × 3 + 1 stored plus 2 × 64.
const GYRO_SCRATCH: usize = 321;

/// The learned gyroscope as loaded from flash.
type LearnedGyroscope = learned::Learned<'static, f32, 4, 3, 9, 4, GYRO_SCRATCH>;

/// Loads the learned gyroscope and takes its first RK4 step between the markers (early in the
/// run, as the pendulum's, so the instruction trace reaches it quickly); returns the model, the
/// velocity-form start and the state after one step.
fn gyro_first_step() -> keel_core::Result<(LearnedGyroscope, Phase<f32, 4, 3>, Phase<f32, 4, 3>)> {
    let real = Gyroscope::<f32>::paper()?;
    let z0 = real.velocity_state_from_euler(GYRO_EULER, GYRO_RATES);
    let st = SafeTensors::<16>::parse(GYRO_MODEL)?;
    let model = learned::load::<f32, 4, 3, 9, 4, GYRO_SCRATCH, 16>(&st, z0.x())?;
    if model.form != Form::Hamiltonian {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded gyroscope model is not a CHNN",
        });
    }
    let rk4 = black_box(Rk4::new(GYRO_DT)?);
    let mut z = model.mechanics.from_velocity_form(&z0);
    black_box(&mut z);
    bench_start();
    let first = rk4.step(&model.mechanics, 0.0, &mut z);
    bench_end();
    first?;
    Ok((model, z0, z))
}

/// Finishes the `GYRO_STEPS`-step rollout and prints the start and final velocity-form states.
fn gyro_finish(
    model: &LearnedGyroscope,
    z0: &Phase<f32, 4, 3>,
    mut z: Phase<f32, 4, 3>,
) -> keel_core::Result<()> {
    let mechanics = &model.mechanics;
    let rk4 = Rk4::new(GYRO_DT)?;
    for k in 1..GYRO_STEPS {
        rk4.step(mechanics, GYRO_DT * k as f32, &mut z)?;
    }
    let zv = mechanics.to_velocity_form(&z);
    hprintln!(
        "KEEL-FW model=gyroscope dt={:08x} steps={} z0={} state={}",
        GYRO_DT.to_bits(),
        GYRO_STEPS,
        Bits(z0.as_slice()),
        Bits(zv.as_slice())
    );
    Ok(())
}

/// A Hamiltonian EMLP learned on the EMLP paper's double spring pendulum (`keel emlp train
/// --dataset double-spring-pendulum --model emlph --ch 32 --epochs 400 --seed 0 --export …`):
/// `H(x₁, x₂, p₁, p₂)` invariant under O(2) about the z axis, its dynamics `ż = J∇H` with the
/// network's input gradient by reverse mode.
static SPRING_MODEL: &[u8] = include_bytes!("../assets/emlph-spring.safetensors");
/// A start from the data's distribution (`x₁ ≈ (0, 0, −1.5)`, `x₂ ≈ (0, 0, −3)`, `p ≈ 0.4·N`).
const SPRING_Z0: [f32; 12] = [
    0.12, -0.21, -1.38, -0.17, 0.26, -3.09, 0.31, -0.22, 0.08, -0.41, 0.33, 0.18,
];
/// The data's sample spacing (s), one RK4 step each, and the steps taken (10 s).
const SPRING_DT: f32 = 0.2;
const SPRING_STEPS: usize = 50;
/// Scratch for the network's gradient (`Emlp::gradient_scratch_len`: 2·Σ gated widths + 3 ×
/// the widest = 2·3·36 + 3·36), on the stack in each field evaluation (1,296 bytes).
const SPRING_SCRATCH: usize = 324;

/// Loads the learned spring pendulum, takes its first RK4 step between the markers, finishes the
/// rollout and prints the start and final states.
fn run_spring() -> keel_core::Result<()> {
    let st = SafeTensors::<48>::parse(SPRING_MODEL)?;
    let emlp = Emlp::<4, 8>::from_safetensors(&st)?;
    let field = HamiltonianEmlp::<4, 8, 12, SPRING_SCRATCH>::new(&emlp)?;
    let rk4 = black_box(Rk4::new(SPRING_DT)?);
    let mut z = black_box(SPRING_Z0);
    black_box(&mut z);
    bench_start();
    let first = rk4.step(&field, 0.0, &mut z);
    bench_end();
    first?;
    for k in 1..SPRING_STEPS {
        rk4.step(&field, SPRING_DT * k as f32, &mut z)?;
    }
    hprintln!(
        "KEEL-FW model=spring dt={:08x} steps={} z0={} state={}",
        SPRING_DT.to_bits(),
        SPRING_STEPS,
        Bits(&SPRING_Z0),
        Bits(&z)
    );
    Ok(())
}

/// WISKI grid nodes (1-D).
const GP_GRID: usize = 64;
/// Points streamed through the WISKI update.
const GP_POINTS: usize = 1000;
/// Seed of the stream (the host regenerates it from the printed line).
const GP_SEED: u64 = 7;
/// Grid bounds, kernel and noise.
const GP_LO: f32 = -3.0;
const GP_HI: f32 = 3.0;
const GP_OUTPUTSCALE: f32 = 1.3;
const GP_LENGTHSCALE: f32 = 0.7;
const GP_NOISE: f32 = 0.04;
/// Where the posterior is reported.
const GP_TEST: [f32; 8] = [-2.9, -2.0, -1.1, -0.3, 0.4, 1.2, 2.1, 2.9];

/// Streams `GP_POINTS` noisy samples of `sin(3x) + 0.3x` through a 1-D WISKI (f32) and prints
/// the posterior at `GP_TEST` and the log marginal likelihood. The first update and a
/// prediction right after it run between the markers (instruction counts in `measure.sh`).
fn run_gp() -> keel_core::Result<()> {
    let grid = Grid::new([GP_LO], [GP_HI], [GP_GRID], Convention::Endpoints)?;
    let kernel = black_box(Kernel::new(Family::Rbf, GP_OUTPUTSCALE, [GP_LENGTHSCALE])?);
    let mut memory = WiskiMemory::<f32, GP_GRID>::new();
    let mut scratch = [0.0f32; refactor_scratch_len(GP_GRID)];
    let mut gp = Wiski::new(grid, kernel, GP_NOISE, memory.buffers(), &mut scratch)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(GP_SEED);
    for i in 0..GP_POINTS {
        let x = GP_LO + 0.1 + (GP_HI - GP_LO - 0.2) * uniform::<f32, _>(&mut rng);
        let y = (3.0 * x).libm_sin() + 0.3 * x + 0.2 * standard_normal::<f32, _>(&mut rng);
        if i == 0 {
            bench_start();
            let r = gp.observe(black_box(&[x]), black_box(y));
            bench_end();
            r?;
            // A prediction costs the same after one point as after a million (O(4m)); measuring
            // it here keeps the traced prefix of the run short.
            bench_start();
            let p = gp.predict(black_box(&[GP_TEST[0]]));
            bench_end();
            black_box(p?);
        } else {
            gp.observe(&[x], y)?;
        }
    }
    let mut mean = [0.0f32; GP_TEST.len()];
    let mut var = [0.0f32; GP_TEST.len()];
    for (k, &x) in GP_TEST.iter().enumerate() {
        let p = gp.predict(&[x])?;
        mean[k] = p.mean;
        var[k] = p.var_f;
    }
    hprintln!(
        "KEEL-FW model=gp method=wiski grid={} lo={:08x} hi={:08x} outputscale={:08x} lengthscale={:08x} noise={:08x} seed={} n={} test={} mean={} var_f={} lml={:08x}",
        GP_GRID,
        GP_LO.to_bits(),
        GP_HI.to_bits(),
        GP_OUTPUTSCALE.to_bits(),
        GP_LENGTHSCALE.to_bits(),
        GP_NOISE.to_bits(),
        GP_SEED,
        GP_POINTS,
        Bits(&GP_TEST),
        Bits(&mean),
        Bits(&var),
        gp.log_marginal_likelihood().to_bits()
    );
    Ok(())
}

/// A WISKI model with a learned two-feature stem, exported by `keel gp online --data
/// fixtures/data/computers.csv --target price --method wiski --stem 2 --grid-size 8 --seed 0
/// --export …` (see the README): the stem `z = tanh(W x + c)` on the 9 raw columns, an 8 × 8
/// grid, the kernel and noise, and the sufficient statistics of the 5,633 streamed rows (F64,
/// read in place by `keel_core::gp::WiskiFile`; Stanton et al., *Kernel Interpolation for
/// Scalable Online Gaussian Processes*, AISTATS 2021).
static WISKI_MODEL: &[u8] = include_bytes!("../assets/wiski-computers.safetensors");
/// 16 held-out rows of the same split (`x [16, 9]` raw, `y [16]` the price;
/// `keel firmware wiski-samples`).
static WISKI_SAMPLES: &[u8] = include_bytes!("../assets/wiski-computers-samples.safetensors");
/// Grid nodes of the embedded model (8 × 8).
const WISKI_NODES: usize = 64;
/// Raw input columns the stem reads.
const WISKI_INPUTS: usize = 9;
/// Stem features (the grid's dimensions).
const WISKI_FEATURES: usize = 2;
/// Rows predicted, then absorbed.
const WISKI_ROWS: usize = 16;

/// Resumes the exported WISKI on the controller (one `O(m³)` refactorisation of the file's
/// statistics in `f32`), then for each held-out row: its stem features, the prediction, and the
/// row's standardised target absorbed with the stem fixed. Prints the features, the targets,
/// the predictions made before each row was absorbed, the log marginal likelihood before and
/// after, and the predictions at all rows at the end. Marked regions 17–18: the first row's stem
/// and prediction, then its absorption (one WISKI update, m = 64, D = 2).
#[inline(never)]
fn run_wiski_stem() -> keel_core::Result<()> {
    let st = SafeTensors::<8>::parse(WISKI_MODEL)?;
    let file = WiskiFile::from_safetensors(&st)?;
    if file.nodes() != WISKI_NODES || file.inputs() != WISKI_INPUTS || !file.has_stem() {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded WISKI's grid, inputs or stem differ from the firmware's",
        });
    }
    // The stream's targets were standardised; `target.scale` holds their mean and sd.
    let scale = st.tensor("target.scale")?;
    let (y_mean, y_sd) = (scale.get_f32(0)?, scale.get_f32(1)?);
    let samples = SafeTensors::<4>::parse(WISKI_SAMPLES)?;
    let (xt, yt) = (samples.tensor("x")?, samples.tensor("y")?);
    let mut memory = WiskiMemory::<f32, WISKI_NODES>::new();
    let mut scratch = [0.0f32; refactor_scratch_len(WISKI_NODES)];
    let mut gp = file.model::<f32, WISKI_FEATURES>(memory.buffers(), &mut scratch)?;
    let n0 = gp.len();
    let lml0 = gp.log_marginal_likelihood();
    let mut z = [[0.0f32; WISKI_FEATURES]; WISKI_ROWS];
    let mut y = [0.0f32; WISKI_ROWS];
    let mut mean = [0.0f32; WISKI_ROWS];
    let mut var = [0.0f32; WISKI_ROWS];
    for k in 0..WISKI_ROWS {
        let mut x = [0.0f32; WISKI_INPUTS];
        for (i, v) in x.iter_mut().enumerate() {
            *v = xt.get_f32(k * WISKI_INPUTS + i)?;
        }
        y[k] = (yt.get_f32(k)? - y_mean) / y_sd;
        let p = if k == 0 {
            black_box(&mut x);
            bench_start();
            let p = file
                .features(&x, &mut z[k])
                .and_then(|()| gp.predict(&z[k]));
            bench_end();
            let p = p?;
            bench_start();
            let r = gp.observe(black_box(&z[k]), black_box(y[k]));
            bench_end();
            r?;
            p
        } else {
            file.features(&x, &mut z[k])?;
            let p = gp.predict(&z[k])?;
            gp.observe(&z[k], y[k])?;
            p
        };
        mean[k] = p.mean;
        var[k] = p.var_f;
    }
    let mut final_mean = [0.0f32; WISKI_ROWS];
    let mut final_var = [0.0f32; WISKI_ROWS];
    for k in 0..WISKI_ROWS {
        let p = gp.predict(&z[k])?;
        final_mean[k] = p.mean;
        final_var[k] = p.var_f;
    }
    hprintln!(
        "KEEL-FW model=wiski-stem nodes={} inputs={} features={} n0={} rows={} z={} y={} mean={} var_f={} lml0={:08x} final_mean={} final_var_f={} lml={:08x} n={}",
        WISKI_NODES,
        WISKI_INPUTS,
        WISKI_FEATURES,
        n0,
        WISKI_ROWS,
        Bits(z.as_flattened()),
        Bits(&y),
        Bits(&mean),
        Bits(&var),
        lml0.to_bits(),
        Bits(&final_mean),
        Bits(&final_var),
        gp.log_marginal_likelihood().to_bits(),
        gp.len()
    );
    Ok(())
}

/// Start of the measured region. Not inlined, and its body differs from [`bench_end`]'s so the
/// linker cannot fold the two into one address; unmangled so the trace names it.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_start() {
    // SAFETY: a `nop` has no effect; without `nomem` the compiler treats it as touching memory,
    // so loads and stores of the measured state are not moved across the marker.
    unsafe { asm!("nop") }
}

/// End of the measured region (see [`bench_start`]).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_end() {
    // SAFETY: as in `bench_start`.
    unsafe { asm!("nop", "nop") }
}

/// Formats `f32`s as their bits: 8 lowercase hex digits each, comma-separated.
struct Bits<'a>(&'a [f32]);

impl fmt::Display for Bits<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{:08x}", v.to_bits())?;
        }
        Ok(())
    }
}

/// Reads digit `k` of the samples into `x`.
fn digit(samples: &SafeTensors<'_, 4>, k: usize, x: &mut [f32; PIXELS]) -> keel_core::Result<()> {
    let t = samples.tensor("x")?;
    for (i, v) in x.iter_mut().enumerate() {
        *v = t.get_f32(k * PIXELS + i)?;
    }
    Ok(())
}

/// Classifies every sample digit and prints classes and logits.
fn classify_digits() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(DIGITS_MODEL)?;
    let mlp = Mlp::<4>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(DIGITS_SAMPLES)?;
    let mut scratch = [0.0f32; SCRATCH];
    let mut x = [0.0f32; PIXELS];
    let mut logits = [0.0f32; SAMPLES * CLASSES];
    let mut classes = [0u8; SAMPLES];

    // The measured classification (second marked region after the RK4 step).
    digit(&samples, 0, &mut x)?;
    black_box(&mut x);
    bench_start();
    let first = mlp.forward(&x, &mut logits[..CLASSES], &mut scratch);
    bench_end();
    first?;

    for k in 0..SAMPLES {
        digit(&samples, k, &mut x)?;
        let out = &mut logits[k * CLASSES..(k + 1) * CLASSES];
        mlp.forward(&x, out, &mut scratch)?;
        classes[k] = argmax(out);
    }
    hprintln!(
        "KEEL-FW model=digits samples={} classes={} logits={}",
        SAMPLES,
        Classes(&classes),
        Bits(&logits)
    );
    Ok(())
}

/// Classifies the test digits with the 10-sample Bayesian model average and prints the classes and
/// the averaged probabilities (fourth marked region: one BMA prediction).
fn classify_digits_bma() -> keel_core::Result<()> {
    let st = SafeTensors::<8>::parse(DIGITS_BMA)?;
    let bma = Bma::<4>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(DIGITS_SAMPLES)?;
    let mut scratch = [0.0f32; SCRATCH];
    let mut x = [0.0f32; PIXELS];
    let mut probs = [0.0f32; SAMPLES * CLASSES];
    let mut classes = [0u8; SAMPLES];

    digit(&samples, 0, &mut x)?;
    black_box(&mut x);
    bench_start();
    let first = bma.predict(&x, &mut probs[..CLASSES], &mut scratch);
    bench_end();
    first?;

    for k in 0..SAMPLES {
        digit(&samples, k, &mut x)?;
        let out = &mut probs[k * CLASSES..(k + 1) * CLASSES];
        bma.predict(&x, out, &mut scratch)?;
        classes[k] = argmax(out);
    }
    hprintln!(
        "KEEL-FW model=bma samples={} members={} classes={} probs={}",
        SAMPLES,
        bma.count(),
        Classes(&classes),
        Bits(&probs)
    );
    Ok(())
}

/// Classifies the test digits with the ensemble of simplexes at the file's fixed points and
/// prints the classes and averaged probabilities (ninth marked region: one ensemble prediction).
fn classify_digits_simplex() -> keel_core::Result<()> {
    let st = SafeTensors::<8>::parse(DIGITS_SIMPLEX)?;
    let simplex = Simplex::<4>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(DIGITS_SAMPLES)?;
    let mut scratch = [0.0f32; SIMPLEX_SCRATCH];
    let mut x = [0.0f32; PIXELS];
    let mut probs = [0.0f32; SAMPLES * CLASSES];
    let mut classes = [0u8; SAMPLES];

    digit(&samples, 0, &mut x)?;
    black_box(&mut x);
    bench_start();
    let first = simplex.predict(&x, &mut probs[..CLASSES], &mut scratch);
    bench_end();
    first?;

    for k in 0..SAMPLES {
        digit(&samples, k, &mut x)?;
        let out = &mut probs[k * CLASSES..(k + 1) * CLASSES];
        simplex.predict(&x, out, &mut scratch)?;
        classes[k] = argmax(out);
    }
    hprintln!(
        "KEEL-FW model=simplex samples={} members={} components={} vertices={} points={} classes={} probs={}",
        SAMPLES,
        simplex.components() * simplex.points(),
        simplex.components(),
        simplex.vertices(),
        simplex.points(),
        Classes(&classes),
        Bits(&probs)
    );
    Ok(())
}

/// Classifies the test digits with the distilled student and prints classes and logits (tenth
/// marked region: one student forward pass).
fn classify_digits_student() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(DIGITS_STUDENT)?;
    let mlp = Mlp::<4>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(DIGITS_SAMPLES)?;
    let mut scratch = [0.0f32; SCRATCH];
    let mut x = [0.0f32; PIXELS];
    let mut logits = [0.0f32; SAMPLES * CLASSES];
    let mut classes = [0u8; SAMPLES];

    digit(&samples, 0, &mut x)?;
    black_box(&mut x);
    bench_start();
    let first = mlp.forward(&x, &mut logits[..CLASSES], &mut scratch);
    bench_end();
    first?;

    for k in 0..SAMPLES {
        digit(&samples, k, &mut x)?;
        let out = &mut logits[k * CLASSES..(k + 1) * CLASSES];
        mlp.forward(&x, out, &mut scratch)?;
        classes[k] = argmax(out);
    }
    hprintln!(
        "KEEL-FW model=student samples={} classes={} logits={}",
        SAMPLES,
        Classes(&classes),
        Bits(&logits)
    );
    Ok(())
}

/// The sine network of the linearised-adaptation experiment (1 → 40 → 40 → 1, tanh, f32),
/// trained by `keel fit` on one sine task (`assets/ntk-sine-task.py`; see the README).
static NTK_SINE: &[u8] = include_bytes!("../assets/ntk-sine.safetensors");
/// Points of the new task the network adapts to.
const NTK_POINTS: usize = 10;
/// The adaptation's capacity (points it could take; the n ≤ 32).
const NTK_CAPACITY: usize = 32;
/// Gradient factors per point (`Mlp::gradient_factors_len`: 1+40 + 40+40 + 40+1).
const NTK_ROW: usize = 162;
/// Seed of the new task and its points (the host reads them from the printed line).
const NTK_SEED: u64 = 11;
/// Noise variance σ² of the adaptation (the reference's floor is 1e-3; the task's noise
/// variance is (0.01·A)² ≤ 0.0025).
const NTK_NOISE: f32 = 0.01;
/// Where the adapted posterior is reported.
const NTK_TEST: [f32; 8] = [-4.5, -3.2, -1.9, -0.6, 0.6, 1.9, 3.2, 4.5];
/// Scratch of the adaptation (`NtkAdaptation::scratch_len`: 162 + 40 + 32).
const NTK_SCRATCH: usize = 234;

/// Adapts the sine network to a new task drawn from `NTK_SEED` (`y = A sin(w x + b) + 0.01·A·ε`,
/// the reference's task distribution) from `NTK_POINTS` points, by its linearisation (the
/// finite-NTK GP, prior mean the network), and prints the points, the posterior at `NTK_TEST`
/// and the network's own prediction there. Marked regions 11–14: the adaptation to the 10
/// points, one prediction (mean and variance), the weight offset `u = Jᵀα`, and one mean by
/// forward mode along `u`.
fn run_ntk() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(NTK_SINE)?;
    let mlp = Mlp::<4>::from_safetensors(&st)?;
    let mut memory = NtkMemory::<f32, NTK_CAPACITY, NTK_ROW>::new();
    let noise = black_box(NTK_NOISE);
    let mut ntk = NtkAdaptation::new(&mlp, PriorMean::Network, noise, memory.buffers())?;
    if ntk.scratch_len() > NTK_SCRATCH {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded sine network needs more NTK scratch than the firmware's",
        });
    }
    let mut scratch = [0.0f32; NTK_SCRATCH];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(NTK_SEED);
    let amplitude = 0.1 + 4.9 * uniform::<f32, _>(&mut rng);
    let phase = 2.0 * core::f32::consts::PI * uniform::<f32, _>(&mut rng);
    let frequency = 0.5 + 1.5 * uniform::<f32, _>(&mut rng);
    let mut x = [0.0f32; NTK_POINTS];
    let mut y = [0.0f32; NTK_POINTS];
    for (xi, yi) in x.iter_mut().zip(y.iter_mut()) {
        *xi = -5.0 + 10.0 * uniform::<f32, _>(&mut rng);
        *yi = amplitude * (frequency * *xi + phase).libm_sin()
            + 0.01 * amplitude * standard_normal::<f32, _>(&mut rng);
    }
    black_box(&mut x);
    black_box(&mut y);
    bench_start();
    let r = ntk.adapt(&x, &y, &mut scratch);
    bench_end();
    r?;
    bench_start();
    let p = ntk.predict(black_box(&[NTK_TEST[0]]), &mut scratch);
    bench_end();
    black_box(p?);
    let mut u = [0.0f32; 1761];
    if u.len() != mlp.parameter_count() {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded sine network's parameter count differs from the firmware's",
        });
    }
    bench_start();
    let r = ntk.weight_offset(&mut u, &mut scratch);
    bench_end();
    r?;
    bench_start();
    let m = ntk.predict_mean_jvp(black_box(&[NTK_TEST[0]]), &u, &mut scratch);
    bench_end();
    black_box(m?);

    let mut mean = [0.0f32; NTK_TEST.len()];
    let mut var = [0.0f32; NTK_TEST.len()];
    let mut mean_jvp = [0.0f32; NTK_TEST.len()];
    let mut network = [0.0f32; NTK_TEST.len()];
    let mut fwd = [0.0f32; 80];
    for (k, &xs) in NTK_TEST.iter().enumerate() {
        let p = ntk.predict(&[xs], &mut scratch)?;
        mean[k] = p.mean;
        var[k] = p.var_f;
        mean_jvp[k] = ntk.predict_mean_jvp(&[xs], &u, &mut scratch)?;
        let mut out = [0.0f32];
        mlp.forward(&[xs], &mut out, &mut fwd)?;
        network[k] = out[0];
    }
    hprintln!(
        "KEEL-FW model=ntk mean=network noise={:08x} seed={} task={},{},{} capacity={} x={} y={} test={} mu={} var_f={} mu_jvp={} network={}",
        NTK_NOISE.to_bits(),
        NTK_SEED,
        Bits(&[amplitude]),
        Bits(&[phase]),
        Bits(&[frequency]),
        NTK_CAPACITY,
        Bits(&x),
        Bits(&y),
        Bits(&NTK_TEST),
        Bits(&mean),
        Bits(&var),
        Bits(&mean_jvp),
        Bits(&network)
    );
    Ok(())
}

/// A small Augerino CNN trained on rotated digits (`keel augerino train --dataset rotated-digits
/// --model augerino --layers c8,m2,c16,m2,c16,g …`; see the README), read from flash in place.
static AUGERINO_MODEL: &[u8] = include_bytes!("../assets/augerino-digits.safetensors");
/// Its rotated test digits (`x [8, 784]`, 28 × 28, `label [8]`; `keel firmware augerino-samples`).
static AUGERINO_SAMPLES: &[u8] = include_bytes!("../assets/augerino-samples.safetensors");
/// Rotated digits classified.
const AUG_DIGITS: usize = 8;
/// Pixels per rotated digit.
const AUG_PIXELS: usize = 28 * 28;
/// Warped copies averaged per digit (the exported J).
const AUG_COPIES: usize = 4;
/// Seed of the one generator the digits draw their transforms from, in turn.
const AUG_SEED: u64 = 21;
/// Augerino's scratch (`Augerino::scratch_len`: the warped image, one logit vector and the CNN's
/// two activation buffers).
const AUG_SCRATCH: usize = AUG_PIXELS + CLASSES + 2 * 8 * 28 * 28;

/// Classifies the rotated test digits with the Augerino CNN: a plain forward pass and the average
/// of `AUG_COPIES` warped copies' log-softmaxes, and prints both (the fifteenth and sixteenth marked
/// regions, past `measure.sh`'s fourteen: one forward pass, one Augerino prediction).
fn classify_augerino() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(AUGERINO_MODEL)?;
    let cnn = Cnn::<8>::from_safetensors(&st)?;
    let aug = Augerino::new(&cnn)?;
    if aug.default_copies() != AUG_COPIES || aug.scratch_len() > AUG_SCRATCH {
        return Err(keel_core::Error::InvalidConfig {
            what: "the embedded Augerino model's copies or scratch differ from the firmware's",
        });
    }
    let samples = SafeTensors::<4>::parse(AUGERINO_SAMPLES)?;
    let t = samples.tensor("x")?;
    let mut scratch = [0.0f32; AUG_SCRATCH];
    let mut x = [0.0f32; AUG_PIXELS];
    let mut logp = [0.0f32; AUG_DIGITS * CLASSES];
    let mut logits = [0.0f32; AUG_DIGITS * CLASSES];
    let mut classes = [0u8; AUG_DIGITS];
    let mut cnn_classes = [0u8; AUG_DIGITS];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(AUG_SEED);
    for k in 0..AUG_DIGITS {
        for (i, v) in x.iter_mut().enumerate() {
            *v = t.get_f32(k * AUG_PIXELS + i)?;
        }
        let l = &mut logits[k * CLASSES..(k + 1) * CLASSES];
        let p = &mut logp[k * CLASSES..(k + 1) * CLASSES];
        if k == 0 {
            black_box(&mut x);
            bench_start();
            let r = cnn.forward(&x, l, &mut scratch);
            bench_end();
            r?;
            bench_start();
            let r = aug.predict(&x, AUG_COPIES, &mut rng, p, &mut scratch);
            bench_end();
            r?;
        } else {
            cnn.forward(&x, l, &mut scratch)?;
            aug.predict(&x, AUG_COPIES, &mut rng, p, &mut scratch)?;
        }
        cnn_classes[k] = argmax(l);
        classes[k] = argmax(p);
    }
    hprintln!(
        "KEEL-FW model=augerino samples={} copies={} seed={} classes={} logp={} cnn_classes={} logits={}",
        AUG_DIGITS,
        AUG_COPIES,
        AUG_SEED,
        Classes(&classes),
        Bits(&logp),
        Classes(&cnn_classes),
        Bits(&logits)
    );
    Ok(())
}

/// One control step: the policy's deterministic action for `obs`, one environment step; returns
/// the reward and leaves the next observation in `obs`.
fn control_step(
    policy: &Policy<'_, 4>,
    env: &mut Pendulum<f32>,
    obs: &mut [f32; 3],
    scratch: &mut [f32],
) -> keel_core::Result<f32> {
    let mut action = [0.0f32; 1];
    policy.act(&obs[..], &mut action, scratch)?;
    let s = env.step(&action)?;
    *obs = s.observation;
    Ok(s.reward)
}

/// Swings the pendulum up from hanging at rest with the exported policy for one episode, closed
/// loop on the controller (seventh marked region: one control step, policy and environment),
/// with the model-based value estimate of every state visited as an on-board monitor (eighth
/// marked region: the first estimate), and prints the return, the final state, the first
/// estimate and the sum of all of them.
fn run_policy() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(PENDULUM_POLICY)?;
    let policy = Policy::<4>::from_safetensors(&st)?;
    let vst = SafeTensors::<64>::parse(PENDULUM_VALUE)?;
    let value = ValueModel::<4>::from_safetensors(&vst)?;
    let mut value_scratch = [0.0f32; VALUE_SCRATCH];
    let mut env = Pendulum::<f32>::new();
    env.set_state(black_box([core::f32::consts::PI, 0.0]));
    let mut scratch = [0.0f32; SCRATCH];
    let mut obs = env.observation();
    black_box(&mut obs);
    let mut obs0 = obs;
    bench_start();
    let first = control_step(&policy, &mut env, &mut obs, &mut scratch);
    bench_end();
    let mut total = first?;
    // The first state's estimate, measured; then every later state's.
    black_box(&mut obs0);
    bench_start();
    let value0 = value.value(&obs0, &mut value_scratch);
    bench_end();
    let value0 = value0?;
    let mut value_sum = value0;
    for _ in 1..POLICY_STEPS {
        value_sum += value.value(&obs, &mut value_scratch)?;
        total += control_step(&policy, &mut env, &mut obs, &mut scratch)?;
    }
    hprintln!(
        "KEEL-FW model=policy env={} steps={} return={:08x} state={} value0={:08x} value_sum={:08x}",
        <Pendulum<f32> as Env<f32, 3, 1>>::NAME,
        POLICY_STEPS,
        total.to_bits(),
        Bits(&env.state()),
        value0.to_bits(),
        value_sum.to_bits()
    );
    Ok(())
}

/// The index of the largest score (the first on ties).
fn argmax(scores: &[f32]) -> u8 {
    let mut best = 0;
    for c in 1..scores.len() {
        if scores[c] > scores[best] {
            best = c;
        }
    }
    best as u8
}

/// Formats small integers comma-separated.
struct Classes<'a>(&'a [u8]);

impl fmt::Display for Classes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

fn run() -> keel_core::Result<()> {
    // Opaque to the optimiser: the parameters are data, as on a controller that loads them, not
    // constants folded into the vector field (keeps the instruction count honest).
    let pendulum = black_box(ChainPendulum::<f32, LINKS>::paper()?);
    let rk4 = black_box(Rk4::new(DT)?);
    let mechanics = pendulum.mechanics();

    let mut z = pendulum.state_from_angles(&ANGLES, &RATES);
    let energy0 = mechanics.energy(&z);
    let mut t = 0.0f32;

    // The measured step: `z` lives in memory that the markers may touch, so the step's loads come
    // after `bench_start` and its stores before `bench_end`.
    black_box(&mut z);
    bench_start();
    let first = rk4.step(mechanics, t, &mut z);
    bench_end();
    first?;
    t += DT;

    let (chnn, chnn_z0, chnn_z) = chnn_first_step()?;
    let (gyro, gyro_z0, gyro_z) = gyro_first_step()?;
    classify_digits()?;
    classify_digits_bma()?;
    run_gp()?;
    run_emlp()?;
    run_policy()?;
    classify_digits_simplex()?;
    classify_digits_student()?;
    run_ntk()?;
    run_spring()?;
    run_wiski_stem()?;
    chnn_finish(&chnn, &chnn_z0, chnn_z)?;
    classify_augerino()?;
    gyro_finish(&gyro, &gyro_z0, gyro_z)?;

    for _ in 1..STEPS {
        rk4.step(mechanics, t, &mut z)?;
        t += DT;
    }

    let energy = mechanics.energy(&z);
    // Everything the host needs to rerun the scenario travels in the line (`keel firmware check`).
    hprintln!(
        "KEEL-FW system={} links={} integrator=rk4 dtype=f32 dt={:08x} steps={} angles={} rates={} state={}",
        ChainPendulum::<f32, LINKS>::NAME,
        LINKS,
        DT.to_bits(),
        STEPS,
        Bits(&ANGLES),
        Bits(&RATES),
        Bits(z.as_slice()),
    );
    hprintln!(
        "KEEL-FW energy0={:08x} energy={:08x}",
        energy0.to_bits(),
        energy.to_bits()
    );
    Ok(())
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(()) => debug::exit(debug::EXIT_SUCCESS),
        Err(e) => {
            // The variant name only: formatting the error's f64 fields would add ~37 kB of flash.
            hprintln!("KEEL-FW error={}", e.kind());
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    // `debug::exit` returns if semihosting is off (not under QEMU's `-semihosting-config`).
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("KEEL-FW hardfault {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
