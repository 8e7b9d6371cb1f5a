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
use keel_core::dynamics::systems::ChainPendulum;
use keel_core::integrate::{Rk4, StateVector};
use keel_core::io::SafeTensors;
use keel_core::nn::{Emlp, Mlp};
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
/// Digits classified (the samples file holds this many).
const SAMPLES: usize = 16;
/// Pixels per digit.
const PIXELS: usize = 64;
/// Classes.
const CLASSES: usize = 10;
/// Scratch for the MLP's forward pass (it needs 2 × its widest layer).
const SCRATCH: usize = 512;

/// An O(5)-invariant EMLP (2V → V⁰) exported by `keel emlp`'s trainer (`keel firmware assets`).
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
        let mut best = 0;
        for c in 1..CLASSES {
            if out[c] > out[best] {
                best = c;
            }
        }
        classes[k] = best as u8;
    }
    hprintln!(
        "KEEL-FW model=digits samples={} classes={} logits={}",
        SAMPLES,
        Classes(&classes),
        Bits(&logits)
    );
    Ok(())
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

    classify_digits()?;
    run_emlp()?;

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
