//! The `keel` command's subcommands, one file each. Only this folder and `main.rs` parse flags,
//! draw progress bars and print; the library takes typed configurations and reports progress
//! through callbacks.

pub mod bayes;
pub mod checkpoint;
pub mod chnn;
pub mod emlp;
pub mod firmware;
pub mod fit;
pub mod gp;
pub mod info;
pub mod progress;
pub mod rl;
pub mod simulate;
pub mod values;

use std::process::ExitCode;

use keel::error::Error;

/// The exit status of a command's result: 0 success, 1 a run that failed on valid input (or a
/// check that did not pass: `Ok(false)`), 2 bad input. The error is one line on stderr.
pub fn exit_code(result: Result<bool, Error>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(keel::Error::Engine(e)) if e.is_device_error() => {
            eprintln!("error: --device: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_input_error() { 2 } else { 1 })
        }
    }
}
