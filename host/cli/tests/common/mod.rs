//! Helpers shared by the command-line tests: run the built `keel`, and check a rejection.

// Not every test binary uses all of these.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `keel` binary built for these tests. A command whose `--device` defaults to `auto`
/// runs on the CPU unless the test chooses a device, so that its numbers are the CPU's on a
/// machine with a GPU too (the GPU paths have their own tests: `methods_on_device.rs` and the
/// engine's `device.rs`, run by `cuda/check.sh`).
pub fn keel(args: &[&str]) -> Output {
    let mut args: Vec<&str> = args.to_vec();
    if device_defaults_to_auto(&args) && !args.iter().any(|a| a.starts_with("--device")) {
        args.extend(["--device", "cpu"]);
    }
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(&args)
        .output()
        .expect("run keel")
}

/// Whether `args` run a command with `--device` (default `auto`): `fit`, `distill`, `emlp train`
/// and the `bayes` samplers.
fn device_defaults_to_auto(args: &[&str]) -> bool {
    match args {
        ["fit", ..] | ["distill", ..] => true,
        ["emlp", "train", ..] => true,
        ["bayes", sub, ..] => ["hmc", "sgd", "ensemble", "sgld", "sghmc", "vi"].contains(sub),
        _ => false,
    }
}

/// The run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The lines of a run's stderr that are not `--device auto`'s notice that it runs on the CPU
/// (the notice is not part of an error).
pub fn error_lines(err: &str) -> Vec<&str> {
    err.trim_end()
        .lines()
        .filter(|l| !l.starts_with("keel: running on the CPU"))
        .collect()
}

/// Runs `args` expecting exit 2 with a one-line error that mentions every string in `needles`
/// and nothing on stdout.
pub fn rejects(args: &[&str], needles: &[&str]) {
    let o = keel(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?} → {:?}: {err}", o.status);
    assert_eq!(error_lines(&err).len(), 1, "one line expected: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{err}' should mention '{n}'");
    }
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout for a rejected command"
    );
}

/// Runs `args` with `--export` into a fresh directory, expecting exit 2 with a one-line error
/// that mentions every string in `needles`, and no exported file.
pub fn rejects_writing_nothing(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--export", model.to_str().unwrap()]);
    let o = keel(&full);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(error_lines(&err).len(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "'{err}' should mention '{n}'");
    }
    assert!(!model.exists(), "nothing written");
}

/// The small learned-dynamics configuration the CHNN tests train (shared with the library's tests).
#[path = "../../../tests/common/chnn.rs"]
mod chnn;
#[allow(unused_imports)]
pub use chnn::chnn_config;

/// A `keel rl train` on Pendulum short enough for a test (300 steps, a network of 8 units, two
/// evaluations of one episode); tests add the seed, horizon and outputs.
pub const SHORT_RL_RUN: [&str; 18] = [
    "rl",
    "train",
    "--env",
    "pendulum",
    "--steps",
    "300",
    "--seed-steps",
    "100",
    "--warmup",
    "200",
    "--batch",
    "32",
    "--hidden",
    "8",
    "--eval-every",
    "150",
    "--eval-episodes",
    "1",
];

/// A `keel rl train --json` report without the fields that differ between identical runs (the
/// wall-clock times, and the export path a test chose).
pub fn without_timings(mut report: serde_json::Value) -> serde_json::Value {
    if let Some(o) = report.as_object_mut() {
        for key in ["train_seconds", "update_seconds", "export"] {
            o.remove(key);
        }
    }
    report
}
