//! `keel bayes shift` (sample sets on corrupted test digits) and `--augment shift1`: the JSON
//! a run reports, its agreement with the sets' own clean test metrics, the plot, and bad input
//! refused with one line, exit 2 and nothing written.

use crate::common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

fn run(args: &[&str]) -> Value {
    let o = common::keel(args);
    assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A quick SGD set on the digits (MLP [16]) and an SGLD set with per-step shift augmentation,
/// and their reports.
fn digit_sets(dir: &Path) -> (PathBuf, PathBuf, Value, Value) {
    let digits = fixture("data/digits.csv");
    let sgd = dir.join("sgd.safetensors");
    let sgld = dir.join("sgld.safetensors");
    let base = [
        "--data",
        &digits,
        "--model",
        "mlp:16",
        "--prior-std",
        "0.447",
        "--json",
    ];
    let mut a = vec!["bayes", "sgd"];
    a.extend(base);
    a.extend(["--lr", "3e-4", "--epochs", "20", "--save-samples"]);
    a.push(sgd.to_str().unwrap());
    let v_sgd = run(&a);
    let mut a = vec!["bayes", "sgld"];
    a.extend(base);
    a.extend([
        "--lr",
        "1e-4",
        "--epochs",
        "6",
        "--burn-in",
        "2",
        "--sample-every",
        "1",
        "--augment",
        "shift1",
        "--temperature",
        "0.3",
        "--save-samples",
    ]);
    a.push(sgld.to_str().unwrap());
    let v_sgld = run(&a);
    (sgd, sgld, v_sgd, v_sgld)
}

#[test]
fn shift_reports_every_set_at_every_severity_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let (sgd, sgld, v_sgd, v_sgld) = digit_sets(dir.path());
    assert_eq!(v_sgld["augment"], "shift1");
    assert_eq!(v_sgd["augment"], "none");
    assert!(
        v_sgld["test"]["accuracy"].as_f64().unwrap() > 0.5,
        "{v_sgld}"
    );
    let plot = dir.path().join("shift.png");
    let samples = format!("{},{}", sgd.display(), sgld.display());
    let digits = fixture("data/digits.csv");
    let v = run(&[
        "bayes",
        "shift",
        "--samples",
        &samples,
        "--data",
        &digits,
        "--corruption",
        "rotate",
        "--severity",
        "1,3",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(v["corruption"], "rotate");
    assert_eq!(v["pixel_range"], 16.0);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "2 sets × (clean + 2 severities): {v}");
    let severities: Vec<u64> = results
        .iter()
        .map(|r| r["severity"].as_u64().unwrap())
        .collect();
    assert_eq!(severities, [0, 1, 3, 0, 1, 3]);
    for r in results {
        for k in ["file", "method", "severity", "accuracy", "nll", "ece"] {
            assert!(!r[k].is_null(), "{k} missing in {r}");
        }
        let acc = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert!(r["nll"].as_f64().unwrap().is_finite(), "{r}");
    }
    assert_eq!(results[0]["method"], "sgd");
    assert_eq!(results[3]["method"], "sgld");
    assert_eq!(results[3]["augment"], "shift1");
    // Severity 0 is the sets' own test split, as their runs evaluated it.
    for (r, own) in [(&results[0], &v_sgd), (&results[3], &v_sgld)] {
        for k in ["accuracy", "nll", "ece"] {
            let (a, b) = (r[k].as_f64().unwrap(), own["test"][k].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{k}: {a} vs {b}");
        }
    }
    // A 60° rotation is harder than none.
    let acc = |i: usize| results[i]["accuracy"].as_f64().unwrap();
    assert!(acc(2) < acc(0), "{v}");
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // The same seed again: the same numbers.
    let again = run(&[
        "bayes",
        "shift",
        "--samples",
        &samples,
        "--data",
        &digits,
        "--corruption",
        "rotate",
        "--severity",
        "1,3",
        "--json",
    ]);
    assert_eq!(again["results"], v["results"]);
}

#[test]
fn bad_input_is_one_line_exit_2_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let digits = fixture("data/digits.csv");
    let logistic = fixture("bayes/logistic.csv");
    let diabetes = fixture("data/diabetes.csv");
    // A quick digits set, a classifier on 2-column rows, a regression.
    let set = dir.path().join("d.safetensors");
    let flat = dir.path().join("flat.safetensors");
    let reg = dir.path().join("reg.safetensors");
    for (data, extra, out) in [
        (&digits, vec!["--model", "mlp:4"], &set),
        (
            &logistic,
            vec!["--model", "mlp:4", "--batch-size", "20"],
            &flat,
        ),
        (
            &diabetes,
            vec!["--model", "mlp:4", "--likelihood", "gaussian"],
            &reg,
        ),
    ] {
        let mut a = vec![
            "bayes", "sgd", "--data", data, "--lr", "1e-4", "--epochs", "2",
        ];
        a.extend(extra);
        a.extend(["--quiet", "--save-samples", out.to_str().unwrap()]);
        let o = common::keel(&a);
        assert!(o.status.success(), "{a:?}: {}", common::stderr(&o));
    }
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let plot = dir.path().join("p.png");
    let set_s = set.to_str().unwrap();
    let shift = |samples: &str, corruption: &str, severity: &str| {
        vec![
            "bayes".to_string(),
            "shift".into(),
            "--samples".into(),
            samples.into(),
            "--data".into(),
            digits.clone(),
            "--corruption".into(),
            corruption.into(),
            "--severity".into(),
            severity.into(),
            "--json".into(),
            "--plot".into(),
            plot.to_str().unwrap().into(),
        ]
    };
    let missing = dir.path().join("missing.safetensors");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (shift(set_s, "fog", "1"), vec!["--corruption", "fog"]),
        (shift(set_s, "noise", "0"), vec!["--severity"]),
        (shift(set_s, "noise", "1,6"), vec!["--severity"]),
        (shift(set_s, "noise", ""), vec!["--severity"]),
        (shift(set_s, "noise", "two"), vec!["--severity"]),
        (
            shift(missing.to_str().unwrap(), "noise", "1"),
            vec!["--samples", "missing.safetensors"],
        ),
        (
            shift(junk.to_str().unwrap(), "noise", "1"),
            vec!["--samples", "junk.safetensors"],
        ),
        (
            shift(&format!("{set_s},{}", reg.display()), "blur", "1"),
            vec!["--samples", "regression"],
        ),
    ];
    for (args, needles) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::rejects(&args, needles);
        assert!(!plot.exists(), "{args:?} wrote the plot");
    }
    // A classifier whose rows are not images, with its own data file.
    common::rejects(
        &[
            "bayes",
            "shift",
            "--samples",
            flat.to_str().unwrap(),
            "--data",
            &logistic,
            "--corruption",
            "shift",
            "--plot",
            plot.to_str().unwrap(),
        ],
        &["--samples", "square image"],
    );
    assert!(!plot.exists());
    // Augmentation needs image rows; temperatures must be positive.
    let out = dir.path().join("aug.safetensors");
    common::rejects(
        &[
            "bayes",
            "sgld",
            "--data",
            &logistic,
            "--lr",
            "1e-4",
            "--batch-size",
            "20",
            "--augment",
            "shift1",
            "--save-samples",
            out.to_str().unwrap(),
        ],
        &["--augment"],
    );
    for t in ["--temperature=0", "--temperature=-1"] {
        common::rejects(
            &[
                "bayes",
                "sgld",
                "--data",
                &digits,
                "--lr",
                "1e-4",
                t,
                "--save-samples",
                out.to_str().unwrap(),
            ],
            &["--temperature"],
        );
    }
    assert!(!out.exists());
    // The linear model has neither.
    for flag in [["--augment", "shift1"], ["--standardize", "global"]] {
        let mut a = vec![
            "bayes",
            "hmc",
            "--data",
            &logistic,
            "--model",
            "linear",
            "--step-size",
            "0.01",
        ];
        a.extend(flag);
        common::rejects(&a, &[flag[0]]);
    }
}

#[test]
fn hmc_with_augmentation_samples_the_expanded_rows() {
    let dir = tempfile::tempdir().unwrap();
    let digits = fixture("data/digits.csv");
    let out = dir.path().join("hmc.safetensors");
    let v = run(&[
        "bayes",
        "hmc",
        "--data",
        &digits,
        "--model",
        "mlp:4",
        "--prior-std",
        "0.447",
        "--step-size",
        "2e-3",
        "--trajectory-length",
        "0.02",
        "--samples",
        "3",
        "--burn-in",
        "0",
        "--textbook",
        "--augment",
        "shift1",
        "--json",
        "--save-samples",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["augment"], "shift1");
    // 1617 training digits, each with its eight shifted copies; the test rows untouched.
    assert_eq!(v["train_rows"], 1617);
    assert_eq!(v["likelihood_rows"], 9 * 1617);
    assert_eq!(v["test_rows"], 180);
    assert_eq!(v["gradient_evaluations"], 30);
    assert!(out.exists());
}
