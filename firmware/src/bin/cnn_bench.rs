//! The exported-CNN path on the Cortex-M4F (feature `cnn-bench`; built and counted by
//! `firmware/measure_cnn.sh`, never by `run.sh` or `measure.sh`, so the firmware's output and
//! its `keel firmware check` are unchanged).
//!
//! Embeds `assets/cnn-digit.safetensors` — a digits-sized Augerino CNN with fixed seeded
//! weights written by the host's `keel::export::cnn_bytes` (`host/tests/cnn_export.rs`,
//! `firmware_cnn`: conv 3×3 1→8 relu, 2×2 max pool, conv 3×3 8→16 relu, global mean, dense
//! 16→10) — and the firmware's first test digit, and measures two regions between the markers:
//! 1. one CNN forward pass (`Cnn::forward`, f32, weights read in place from flash);
//! 2. one Augerino prediction with J = 4 (`Augerino::predict`: 24 uniform draws, 4 matrix
//!    exponentials, 4 bilinear warps and 4 forward passes, averaged log-softmax).
//!
//! Prints `KEEL-CNN logits=<10 words> augerino=<10 words> scratch=<scalars> model=<bytes>
//! cnn_struct=<bytes> safetensors_struct=<bytes>` (words: `f32` bits as 8 hex digits; the
//! structs are what the model takes in RAM besides the scratch).

#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt;
use core::hint::black_box;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use keel_core::io::SafeTensors;
use keel_core::nn::{Augerino, Cnn};
use keel_core::random::Xoshiro256PlusPlus;
use panic_semihosting as _;

static CNN_MODEL: &[u8] = include_bytes!("../../assets/cnn-digit.safetensors");
static DIGITS_SAMPLES: &[u8] = include_bytes!("../../assets/digits-samples.safetensors");

/// The model's scratch: two buffers of its largest activation (8 × 8 × 8).
const SCRATCH: usize = 1024;
/// Augerino's: the warped image (64), one logit vector (10) and the CNN's scratch.
const AUG_SCRATCH: usize = 64 + 10 + SCRATCH;

#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_start() {
    // SAFETY: a `nop` has no effect; without `nomem` the compiler treats it as touching memory.
    unsafe { asm!("nop") }
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_end() {
    // SAFETY: as in `bench_start`.
    unsafe { asm!("nop", "nop") }
}

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

fn run() -> keel_core::Result<()> {
    let st = SafeTensors::<16>::parse(CNN_MODEL)?;
    let cnn = Cnn::<8>::from_safetensors(&st)?;
    let samples = SafeTensors::<4>::parse(DIGITS_SAMPLES)?;
    let x = samples.tensor("x")?;
    let mut image = [0.0f32; 64];
    for (i, v) in image.iter_mut().enumerate() {
        *v = x.get_f32(i)?;
    }
    let mut scratch = [0.0f32; AUG_SCRATCH];
    let mut logits = [0.0f32; 10];
    bench_start();
    let r = cnn.forward(black_box(&image), &mut logits, &mut scratch[..SCRATCH]);
    bench_end();
    r?;
    let aug = Augerino::new(&cnn)?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut averaged = [0.0f32; 10];
    bench_start();
    let r = aug.predict(black_box(&image), 4, &mut rng, &mut averaged, &mut scratch);
    bench_end();
    r?;
    hprintln!(
        "KEEL-CNN logits={} augerino={} scratch={} model={} cnn_struct={} safetensors_struct={}",
        Bits(&logits),
        Bits(&averaged),
        aug.scratch_len(),
        CNN_MODEL.len(),
        core::mem::size_of::<Cnn<8>>(),
        core::mem::size_of::<SafeTensors<16>>()
    );
    Ok(())
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(()) => debug::exit(debug::EXIT_SUCCESS),
        Err(e) => {
            hprintln!("KEEL-CNN error={}", e.kind());
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("KEEL-CNN hardfault {:?}", frame);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
