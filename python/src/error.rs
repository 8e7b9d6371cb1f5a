//! Errors as Python exceptions: bad input is a `ValueError` (a `TypeError` for an argument of
//! the wrong type, an `OSError` for a file that cannot be read), a run that failed on valid input
//! a `RuntimeError`, and a panic — a bug, whatever the input — a `RuntimeError` saying so.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// `ValueError("{context}: {e}")` for an error of the core.
pub fn core(context: &str, e: keel_core::Error) -> PyErr {
    PyValueError::new_err(format!("{context}: {e}"))
}

/// Runs `f`, turning a panic into a `RuntimeError` that names it as a bug (the last line of
/// defence: every input Keel refuses is an error before this).
pub fn guard<R>(f: impl FnOnce() -> PyResult<R>) -> PyResult<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(PyRuntimeError::new_err(format!(
                "internal error in keel (a bug, please report it): {msg}"
            )))
        }
    }
}

/// Panics inside [`guard`], so the tests can check that a panic reaches Python as a
/// `RuntimeError` and leaves the interpreter usable.
#[pyfunction]
pub fn panic_for_test() -> PyResult<()> {
    guard(|| panic!("deliberate panic for the test of the panic guard"))
}
