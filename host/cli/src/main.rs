//! The `keel` command: [`keel_cli::run`] on this process's command line. Exit status: 0 success,
//! 1 a run that failed on valid input (or a check that did not pass), 2 bad input; an error is
//! one line on stderr.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

/// Exit status of a process whose output pipe closed (as if killed by SIGPIPE: 128 + 13).
const BROKEN_PIPE_STATUS: i32 = 141;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `keel … | head` would end in a panic from `println!` once `head`
    // exits. Leave quietly instead, with the status a SIGPIPE'd process has; every other panic
    // goes to the default hook.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        default_hook(info);
    }));
    // Joins the MPI job when a launcher started this process (the guard finalises MPI).
    let outcome = keel_cli::ranks::init().and_then(|_mpi| keel_cli::run(std::env::args_os()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                // One write, so that under mpirun no other process's output lands inside it.
                let _ = std::io::stderr().write_all(format!("error: {}\n", f.message).as_bytes());
            }
            ExitCode::from(f.exit_code)
        }
    }
}
