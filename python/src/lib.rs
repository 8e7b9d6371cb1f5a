//! `keel._keel`, the compiled half of the `keel` Python package (the pure-Python half,
//! `keel/__init__.py`, turns keyword arguments into flags and JSON into dicts).
//!
//! - [`model`]: exported models read by the controller core's own loaders (the code the firmware
//!   runs), evaluated row by row on numpy arrays borrowed without a copy.
//! - [`gp`]: the core's online GP (WISKI) with its constant-time update.
//! - [`dynamics`]: learned constrained dynamics (CHNN/CLNN files) rolled out by the core's RK4.
//! - [`command`]: the `keel` command run in process (`keel_cli::run_captured`), its `--json`
//!   report returned, its error line raised.
//!
//! Every entry point runs under [`guard`]: a panic, which no input should cause, becomes a
//! Python `RuntimeError` instead of unwinding into the interpreter.

mod array;
mod command;
mod dynamics;
mod error;
mod gp;
mod model;
mod system;

use pyo3::prelude::*;

/// The compiled module.
#[pymodule]
fn _keel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(command::run, m)?)?;
    m.add_function(wrap_pyfunction!(error::panic_for_test, m)?)?;
    m.add_class::<model::Mlp>()?;
    m.add_class::<model::Emlp>()?;
    m.add_class::<model::Bma>()?;
    m.add_class::<model::Policy>()?;
    m.add_class::<model::ValueModel>()?;
    m.add_class::<dynamics::LearnedDynamics>()?;
    m.add_class::<gp::Wiski>()?;
    m.add_class::<system::ChainPendulum>()?;
    Ok(())
}
