//! `keel fit` end to end: the issue's digits command reaches its accuracy target, regression
//! runs, and bad input fails with one line, exit status 2 and nothing written.

use crate::common;
use common::{keel, rejects_writing_nothing as rejects, stderr};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn data(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "../..",
        "fixtures",
        "data",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

#[test]
fn digits_command_from_the_issue_reaches_96_percent() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("digits.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        &data("digits.csv"),
        "--target",
        "label",
        "--task",
        "classify",
        "--hidden",
        "128,128",
        "--activation",
        "relu",
        "--epochs",
        "30",
        "--batch-size",
        "64",
        "--lr",
        "1e-3",
        "--seed",
        "0",
        "--test-fraction",
        "0.2",
        "--export",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "task",
        "epochs",
        "train_seconds",
        "test_accuracy",
        "test_nll",
        "ece",
    ] {
        assert!(j.get(key).is_some(), "missing {key} in {j}");
    }
    let acc = j["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.96, "test accuracy {acc}");
    // Early stopping is on by default: the epochs run beside the epochs asked for (the README
    // says this command stops before its 30).
    assert_eq!(j["max_epochs"], 30, "{j}");
    assert!(j["epochs"].as_u64().unwrap() < 30, "{j}");
    assert!(j["ece"].as_f64().unwrap() < 0.1);
    let bytes = std::fs::read(&model).unwrap();
    assert!(bytes.len() > 26_000 * 4, "weights as f32");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporaries left"
    );
}

#[test]
fn regression_with_mse_and_gaussian_heads() {
    for loss in ["mse", "gaussian"] {
        let o = keel(&[
            "fit",
            "--data",
            &data("diabetes.csv"),
            "--target",
            "target",
            "--task",
            "regress",
            "--loss",
            loss,
            "--hidden",
            "32",
            "--epochs",
            "100",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        let rmse = j["test_rmse"].as_f64().unwrap();
        // The target's standard deviation is 77; a model that learned nothing scores about that.
        assert!(rmse < 65.0, "{loss}: rmse {rmse}");
        assert_eq!(j.get("test_nll").is_some(), loss == "gaussian");
    }
}

#[test]
fn same_seed_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    for p in [&a, &b] {
        let o = keel(&[
            "fit",
            "--data",
            &data("digits.csv"),
            "--target",
            "label",
            "--task",
            "classify",
            "--epochs",
            "3",
            "--export",
            p.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the two exports differ"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn bad_input_is_one_line_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let digits = data("digits.csv");
    rejects(
        &[
            "fit", "--data", &digits, "--target", "digit", "--task", "classify",
        ],
        &["--target", "digit", "p0"],
    );
    let f = write(d, "text.csv", "a,b,y\n1,2,0\n3,four,1\n");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "classify"],
        &["row 3", "'b'", "four"],
    );
    let f = write(d, "missing.csv", "a,b,y\n1,2,0\n3,,1\n");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "classify"],
        &["row 3", "'b'", "empty"],
    );
    let f = write(d, "one.csv", "a,y\n1,5\n2,5\n3,5\n");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "classify"],
        &["one class"],
    );
    let f = write(d, "nan.csv", "a,y\n1,0\nnan,1\n");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "classify"],
        &["row 3", "not finite"],
    );
    let f = write(d, "inf.csv", "a,y\n1,0\n2,inf\n");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "regress"],
        &["row 3", "not finite"],
    );
    let f = write(d, "empty.csv", "");
    rejects(
        &["fit", "--data", &f, "--target", "y", "--task", "classify"],
        &["empty"],
    );
    rejects(
        &[
            "fit", "--data", &digits, "--target", "label", "--task", "classify", "--hidden",
            "128,0",
        ],
        &["--hidden"],
    );
    rejects(
        &[
            "fit", "--data", &digits, "--target", "label", "--task", "classify", "--lr", "-0.1",
        ],
        &["--lr", "-0.1"],
    );
    rejects(
        &[
            "fit",
            "--data",
            &digits,
            "--target",
            "label",
            "--task",
            "classify",
            "--activation",
            "gelu",
        ],
        &["--activation", "gelu"],
    );
    rejects(
        &[
            "fit",
            "--data",
            &digits,
            "--target",
            "label",
            "--task",
            "classify",
            "--test-fraction",
            "1.5",
        ],
        &["--test-fraction"],
    );
    rejects(
        &[
            "fit",
            "--data",
            "/no/such.csv",
            "--target",
            "y",
            "--task",
            "classify",
        ],
        &["/no/such.csv"],
    );
    // Only without a usable GPU: with one, `--device cuda` is a valid request.
    if keel::backend::Device::Cuda(0).check().is_err() {
        rejects(
            &[
                "fit", "--data", &digits, "--target", "label", "--task", "classify", "--device",
                "cuda",
            ],
            &["CUDA"],
        );
    }
}
