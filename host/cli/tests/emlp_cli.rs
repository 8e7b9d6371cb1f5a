//! `keel emlp basis|train` on the command line: the issue's JSON, saved bases, bad input, and a
//! stopped run resumed.

use std::process::{Command, Output};

use serde_json::Value;

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("keel-emlp-test-cache"),
        )
        .output()
        .expect("run keel")
}

#[test]
fn cli_prints_the_issue_json() {
    let o = keel(&[
        "emlp",
        "basis",
        "--group",
        "SO(3)",
        "--rep-in",
        "V**2",
        "--rep-out",
        "V",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["group"], "SO(3)");
    assert_eq!(v["size_in"], 9);
    assert_eq!(v["size_out"], 3);
    assert_eq!(v["dim"], 1);
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn cli_saves_the_basis_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.safetensors");
    let o = keel(&[
        "emlp",
        "basis",
        "--rep-in",
        "V(SO(3))*V(S(4))",
        "--rep-out",
        "V(SO(3))*V(S(4))",
        "--save",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("basis").unwrap().shape(), &[144, 2]);
    for (args, needle) in [
        (
            vec!["--group", "SO(3", "--rep-in", "V", "--rep-out", "V"],
            "expected ')'",
        ),
        (
            vec!["--group", "Foo(3)", "--rep-in", "V", "--rep-out", "V"],
            "unknown name 'Foo'",
        ),
        (
            vec!["--group", "SO(3)", "--rep-in", "V**", "--rep-out", "V"],
            "--rep-in",
        ),
        (vec!["--rep-in", "V", "--rep-out", "V"], "needs a group"),
        (
            vec!["--group", "SO(3)", "--rep-in", "T(12)", "--rep-out", "V"],
            "too large",
        ),
    ] {
        let mut full = vec!["emlp", "basis"];
        full.extend(args.iter().copied());
        let o = keel(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{full:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{full:?}: {err}");
    }
}

#[test]
fn cli_train_rejects_bad_input_with_one_line() {
    for (args, needle) in [
        (vec!["--dataset", "mnist"], "possible values: o5-synthetic"),
        (
            vec!["--dataset", "inertia", "--group", "O(5)"],
            "needs a group acting on ℝ^3",
        ),
        (
            vec!["--dataset", "inertia", "--model", "cnn"],
            "possible values: emlp",
        ),
        (vec!["--dataset", "inertia", "--lr", "0"], "--lr"),
        (
            vec!["--dataset", "inertia", "--resume"],
            "needs --checkpoint",
        ),
        (vec!["--dataset", "inertia", "--n-train", "0"], "--n-train"),
        (vec!["--dataset", "inertia", "--device", "tpu"], "--device"),
    ]
    .into_iter()
    // Only without a usable GPU: with one, `--device cuda` is a valid request.
    .chain(
        keel::backend::Device::Cuda(0)
            .check()
            .is_err()
            .then(|| (vec!["--dataset", "inertia", "--device", "cuda"], "CUDA")),
    ) {
        let mut full = vec!["emlp", "train", "--quiet"];
        full.extend(args.iter().copied());
        let o = keel(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{full:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{full:?}: {err}");
    }
}

/// Issue 19: `--stop-after` printed the epoch count asked for and a test MSE as if the run had
/// finished. Its JSON now says `"partial": true` and how many epochs were done; the resumed run
/// says `"partial": false`.
#[test]
fn a_stopped_run_says_it_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "emlp",
            "train",
            "--dataset",
            "o5-synthetic",
            "--n-train",
            "50",
            "--n-val",
            "20",
            "--n-test",
            "20",
            "--epochs",
            "4",
            "--ch",
            "24",
            "--layers",
            "1",
            "--device",
            "cpu",
            "--quiet",
            "--json",
            "--checkpoint",
            ck.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = keel(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let stopped = run(&["--stop-after", "2"]);
    assert_eq!(stopped["partial"], true, "{stopped}");
    assert_eq!(
        (stopped["epochs_run"].as_u64(), stopped["epochs"].as_u64()),
        (Some(2), Some(4))
    );
    let resumed = run(&["--resume"]);
    assert_eq!(resumed["partial"], false, "{resumed}");
    assert_eq!(resumed["epochs_run"], 4, "{resumed}");
}

/// `--dataset double-spring-pendulum`: the issue's JSON, a run stopped and resumed lands on the
/// same numbers as one that was not, the export and the plot are written, and bad input is one
/// line with exit 2 and nothing written.
#[test]
fn the_double_spring_pendulum_trains_resumes_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("run.ckpt");
    let export = dir.path().join("spring.safetensors");
    let plot = dir.path().join("spring.png");
    let base = [
        "emlp",
        "train",
        "--dataset",
        "double-spring-pendulum",
        "--model",
        "emlph",
        "--n-train",
        "8",
        "--n-val",
        "4",
        "--n-test",
        "3",
        "--epochs",
        "3",
        "--ch",
        "16",
        "--layers",
        "1",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "--json",
    ];
    let run = |extra: &[&str]| -> Value {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let o = keel(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let whole = run(&[]);
    for key in ["rollout_error", "energy_error", "train_seconds", "test_mse"] {
        assert!(whole[key].as_f64().unwrap().is_finite(), "{key}: {whole}");
    }
    assert_eq!(
        (
            &whole["dataset"],
            &whole["model"],
            &whole["group"],
            &whole["n_train"]
        ),
        (
            &Value::from("double-spring-pendulum"),
            &Value::from("emlph"),
            &Value::from("O2eR3()"),
            &Value::from(8)
        )
    );
    let ckpt = ck.to_str().unwrap();
    let stopped = run(&["--checkpoint", ckpt, "--stop-after", "1"]);
    assert_eq!(stopped["partial"], true, "{stopped}");
    let resumed = run(&[
        "--checkpoint",
        ckpt,
        "--resume",
        "--export",
        export.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(resumed["partial"], false, "{resumed}");
    assert_eq!(
        resumed["rollout_error"], whole["rollout_error"],
        "{resumed} vs {whole}"
    );
    assert_eq!(resumed["val_mse"], whole["val_mse"]);
    let bytes = std::fs::read(&export).unwrap();
    let st = keel_core::io::SafeTensors::<64>::parse(&bytes).unwrap();
    assert_eq!(
        st.metadata("keel.field").and_then(|v| v.as_str()),
        Some("hamiltonian")
    );
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);

    let bad = dir.path().join("never.safetensors");
    let bad_s = bad.to_str().unwrap();
    for (args, needle) in [
        (vec!["--model", "emlp"], "double spring pendulum's models"),
        (vec!["--group", "O(5)"], "acts on ℝ^5"),
        (vec!["--model", "mlph", "--export", bad_s], "only the EMLPs"),
        (vec!["--n-train", "20000"], "at most 20000"),
    ] {
        let mut full = vec![
            "emlp",
            "train",
            "--dataset",
            "double-spring-pendulum",
            "--device",
            "cpu",
            "--quiet",
        ];
        full.extend(args.iter().copied());
        let o = keel(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{full:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{full:?}: {err}");
    }
    for (args, needle) in [
        (
            vec!["--dataset", "o5-synthetic", "--model", "emlph"],
            "learns dynamics",
        ),
        (vec!["--dataset", "inertia", "--plot", bad_s], "--plot"),
    ] {
        let mut full = vec!["emlp", "train", "--quiet"];
        full.extend(args.iter().copied());
        let o = keel(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{full:?}: {err}");
        assert!(err.contains(needle), "{full:?}: {err}");
    }
    assert!(!bad.exists());
}
