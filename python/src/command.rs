//! The `keel` command in process: `keel_cli::run_captured` with the GIL released, its `--json`
//! report handed back as JSON text (the Python half parses it), its failure raised with the
//! command's own error line — `ValueError` for bad input (exit status 2), `RuntimeError` for a
//! run that failed on valid input (1).

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::guard;

/// Runs `keel ARGS…` (without the program name) on this thread with the GIL released and
/// returns its report as JSON text (`null` if it gave none).
#[pyfunction]
pub fn run(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    let outcome = py.detach(|| {
        guard(|| {
            Ok(keel_cli::run_captured(
                std::iter::once("keel".to_string()).chain(args),
            ))
        })
    })?;
    match outcome {
        Ok(report) => Ok(report.to_string()),
        Err(f) if f.exit_code == 2 => Err(PyValueError::new_err(if f.message.is_empty() {
            "the command needs a subcommand (its help is on stderr)".to_string()
        } else {
            f.message
        })),
        Err(f) => Err(PyRuntimeError::new_err(f.to_string())),
    }
}
