//! Every body system of the CHNN paper, with the reference code's default parameters and
//! initial-condition samplers (the reference code's `biases/systems/*.py`).
//!
//! Frames: 2-D systems have y up and gravity along −y; 3-D systems have z up and gravity along
//! −z. Each system owns its [`Mechanics`](crate::dynamics::Mechanics); states are
//! Hamiltonian-form [`Phase`](crate::dynamics::Phase)s `(x, p)` unless a function says otherwise.

mod chain_pendulum;
mod coupled_pendulum;
mod gyroscope;
mod magnet_pendulum;
mod rotor;

pub use chain_pendulum::{ChainPendulum, ChainPendulumMechanics};
pub use coupled_pendulum::{CoupledPendulum, CoupledPendulumMechanics};
pub use gyroscope::{Gyroscope, GyroscopeMechanics};
pub use magnet_pendulum::{MagnetPendulum, MagnetPendulumMechanics};
pub use rotor::{Rotor, RotorMechanics};

use crate::error::{Error, Result};

/// Attempts an initial-condition sampler draws before giving up.
pub const SAMPLE_ATTEMPTS: usize = 100;

/// Retries `draw` until it succeeds (the reference resamples when projection fails).
fn resample<S>(mut draw: impl FnMut() -> Result<S>) -> Result<S> {
    for _ in 0..SAMPLE_ATTEMPTS {
        if let Ok(s) = draw() {
            return Ok(s);
        }
    }
    Err(Error::SamplingFailed {
        attempts: SAMPLE_ATTEMPTS,
    })
}
