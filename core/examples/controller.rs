//! Keel's core as a Rust controller uses it: an exported model read in place from bytes (on a
//! controller, `include_bytes!` puts them in flash), evaluated with stack scratch, and a
//! constrained mechanical system stepped by RK4 — no heap, nothing that panics on data. The same
//! code runs in `firmware/` on the Cortex-M4F; here it runs on the host:
//!
//! ```sh
//! cargo run -p keel-core --example controller
//! ```
//!
//! The part between the `README` markers is the README's Rust example (a test checks they agree).

fn main() {
    if let Err(e) = run() {
        eprintln!("controller example: {e}");
        std::process::exit(1);
    }
}

// README:begin
use keel_core::dynamics::systems::ChainPendulum;
use keel_core::integrate::Rk4;
use keel_core::io::SafeTensors;
use keel_core::nn::Mlp;

/// The digits classifier `keel fit` exported, and 16 test digits (`x: [16, 64]`, `label: [16]`).
static MODEL: &[u8] = include_bytes!("../../firmware/assets/digits-mlp.safetensors");
static DIGITS: &[u8] = include_bytes!("../../firmware/assets/digits-samples.safetensors");

fn run() -> keel_core::Result<()> {
    // A model: parsed and checked in place (every offset, shape, dtype), then evaluated.
    let mlp = Mlp::<4>::from_safetensors(&SafeTensors::<16>::parse(MODEL)?)?;
    let digits = SafeTensors::<4>::parse(DIGITS)?;
    let (x, label) = (digits.tensor("x")?, digits.tensor("label")?);
    let (mut pixels, mut logits, mut scratch) = ([0.0f32; 64], [0.0f32; 10], [0.0f32; 512]);
    for (i, p) in pixels.iter_mut().enumerate() {
        *p = x.get_f32(i)?;
    }
    mlp.forward(&pixels, &mut logits, &mut scratch)?;
    let class = (0..10).fold(0, |b, k| if logits[k] > logits[b] { k } else { b });
    println!("digit 0: class {class}, label {}", label.get_f32(0)?);

    // A system: the CHNN paper's 3-link pendulum, 1000 RK4 steps of 10 ms in f32.
    let pendulum = ChainPendulum::<f32, 3>::paper()?;
    let mechanics = pendulum.mechanics();
    let mut z = pendulum.state_from_angles(&[0.3, -0.2, 1.1], &[0.0, 0.5, -0.3]);
    let (rk4, e0) = (Rk4::new(0.01)?, mechanics.energy(&z));
    for k in 0..1000 {
        rk4.step(mechanics, 0.01 * k as f32, &mut z)?;
    }
    let e = mechanics.energy(&z);
    println!("pendulum: energy {e0:.5} -> {e:.5} after 10 s");
    Ok(())
}
// README:end
