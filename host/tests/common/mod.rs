//! Helpers shared by the command-line tests: run the built `keel`, and check a rejection.

// Each test file is its own crate and uses a different subset of these.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `keel` binary built for these tests.
pub fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("run keel")
}

/// The run's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args` expecting exit 2 with a one-line error that mentions every string in `needles`
/// and nothing on stdout.
pub fn rejects(args: &[&str], needles: &[&str]) {
    let o = keel(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?} → {:?}: {err}", o.status);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{err}' should mention '{n}'");
    }
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout for a rejected command"
    );
}
