//! Gaussian-process regression on the controller: kernels, an exact online GP of fixed
//! capacity, and WISKI — the structured-kernel-interpolation GP whose per-observation update
//! costs the same after a million points as after ten (Stanton, Maddox, Delbridge & Wilson,
//! *Kernel Interpolation for Scalable Online Gaussian Processes*, AISTATS 2021).
//!
//! Everything works in caller-provided storage ([`ExactMemory`], [`WiskiMemory`] for sizes
//! fixed at compile time, or the `*Buffers` slices for sizes chosen at run time) and reports
//! bad data as [`Error`](crate::Error)s.
//!
//! ```
//! use keel_core::gp::{Convention, Family, Grid, Kernel, Wiski, WiskiMemory, refactor_scratch_len};
//!
//! let grid = Grid::new([-3.0], [3.0], [32], Convention::Endpoints)?;
//! let kernel = Kernel::new(Family::Rbf, 1.0, [0.5])?;
//! let mut memory = WiskiMemory::<f64, 32>::new();
//! let mut scratch = [0.0; refactor_scratch_len(32)];
//! let mut gp = Wiski::new(grid, kernel, 0.01, memory.buffers(), &mut scratch)?;
//! for i in 0..200 {
//!     let x = -2.5 + 5.0 * i as f64 / 199.0;
//!     gp.observe(&[x], (2.0 * x).sin())?;
//! }
//! let p = gp.predict(&[0.3])?;
//! assert!((p.mean - 0.6f64.sin()).abs() < 0.02 && p.var_f < 1e-3);
//! # Ok::<(), keel_core::Error>(())
//! ```

mod exact;
mod file;
mod grid;
mod kernel;
mod wiski;

pub use exact::{ExactBuffers, ExactGp, ExactMemory, Rejected};
pub use file::WiskiFile;
pub use grid::{keys, Convention, Grid, MAX_NONZEROS};
pub use kernel::{Family, Kernel};
pub use wiski::{refactor_scratch_len, Wiski, WiskiBuffers, WiskiMemory};

/// A GP's prediction at one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction<T> {
    /// Posterior mean of `f(x)` (and of `y(x)`).
    pub mean: T,
    /// Posterior variance of `f(x)`.
    pub var_f: T,
    /// Predictive variance of a new observation `y(x)`: `var_f` plus the noise.
    pub var_y: T,
}
