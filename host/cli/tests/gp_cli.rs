//! `keel gp` end to end: the issue's command line against the numpy fixture, streaming, and bad
//! input (one line on stderr, exit 2, nothing on stdout).

use crate::common;
use common::{keel, rejects};

use std::io::Write;
use std::process::Command;

use serde_json::Value;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.to_str().unwrap().to_string()
}

fn case(name: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/gp/cases.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
        .clone()
}

/// Training and test CSVs of a 1-D fixture case.
fn csvs(dir: &tempfile::TempDir, c: &Value) -> (String, String) {
    let mut train = String::from("x,y\n");
    for (x, y) in c["x"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c["y"].as_array().unwrap())
    {
        train += &format!("{},{}\n", x[0].as_f64().unwrap(), y.as_f64().unwrap());
    }
    let mut test = String::from("x\n");
    for x in c["x_test"].as_array().unwrap() {
        test += &format!("{}\n", x[0].as_f64().unwrap());
    }
    (
        write(dir, "train.csv", &train),
        write(dir, "test.csv", &test),
    )
}

#[test]
fn the_issues_command_line_matches_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let c = case("ski-rbf-1d-g64-n100");
    let (train, test) = csvs(&dir, &c);
    for method in ["wiski", "ski"] {
        let o = keel(&[
            "gp",
            "regress",
            "--train",
            &train,
            "--test",
            &test,
            "--kernel",
            "rbf",
            "--outputscale",
            "1.3",
            "--lengthscale",
            "0.7",
            "--noise",
            "0.04",
            "--method",
            method,
            "--grid-size",
            "64",
            "--grid-bounds",
            "-3.5,3.5",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        for key in ["mean", "var_f", "var_y"] {
            let (got, want) = (v[key].as_array().unwrap(), c[key].as_array().unwrap());
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
                assert!(
                    (g - w).abs() < 1e-8 * w.abs().max(1.0),
                    "{method} {key}: {g} vs {w}"
                );
            }
        }
        let lml = c["log_marginal_likelihood"].as_f64().unwrap();
        assert!((v["log_marginal_likelihood"].as_f64().unwrap() - lml).abs() < 1e-8 * lml.abs());
    }
    let c = case("exact-rbf-1d-n100");
    let (train, test) = csvs(&dir, &c);
    let o = keel(&[
        "gp",
        "regress",
        "--train",
        &train,
        "--test",
        &test,
        "--outputscale",
        "1.3",
        "--lengthscale",
        "0.7",
        "--noise",
        "0.04",
        "--method",
        "exact",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (g, w) = (
        v["mean"][7].as_f64().unwrap(),
        c["mean"][7].as_f64().unwrap(),
    );
    assert!((g - w).abs() < 1e-9 * w.abs().max(1.0));
}

#[test]
fn fit_learns_the_hyperparameters_before_predicting() {
    let dir = tempfile::tempdir().unwrap();
    let c = case("ski-rbf-1d-g64-n1000");
    let (train, test) = csvs(&dir, &c);
    let o = keel(&[
        "gp",
        "regress",
        "--train",
        &train,
        "--test",
        &test,
        "--method",
        "wiski",
        "--grid-size",
        "64",
        "--grid-bounds",
        "-3.5,3.5",
        "--outputscale",
        "0.5",
        "--lengthscale",
        "2",
        "--noise",
        "0.3",
        "--fit",
        "--fit-iters",
        "60",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["fit"];
    let (l0, l1) = (
        f["log_marginal_likelihood_start"].as_f64().unwrap(),
        f["log_marginal_likelihood_end"].as_f64().unwrap(),
    );
    assert!(l1 > l0, "{f}");
    // Streaming the points at the fitted values gives the likelihood the caches gave.
    assert!((v["log_marginal_likelihood"].as_f64().unwrap() - l1).abs() < 1e-9 * l1.abs());
    // The fixture's data have noise sd 0.1 (variance 0.01) around Σ sin(1.3x).
    let noise = f["noise"].as_f64().unwrap();
    assert!(noise > 0.005 && noise < 0.02, "{noise}");
}

#[test]
fn stream_reports_prequential_metrics_and_flat_update_times() {
    let o = keel(&[
        "gp",
        "stream",
        "--synthetic",
        "3000",
        "--lengthscale",
        "0.5",
        "--noise",
        "0.04",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 3000);
    assert_eq!(v["grid_nodes"], 64);
    // The stream's noise sd is 0.2: a GP that learned the function predicts at about that.
    let rmse = v["prequential_rmse"].as_f64().unwrap();
    assert!(rmse > 0.18 && rmse < 0.25, "{rmse}");
    assert!(v["log_marginal_likelihood"].as_f64().unwrap().is_finite());
    assert_eq!(v["state_bytes"], (2 * 64 * 64 + 4 * 64) * 8);
    let exact = keel(&[
        "gp",
        "stream",
        "--synthetic",
        "300",
        "--method",
        "exact",
        "--lengthscale",
        "0.5",
        "--noise",
        "0.04",
        "--json",
        "--quiet",
    ]);
    let e: Value = serde_json::from_slice(&exact.stdout).unwrap();
    assert_eq!(e["method"], "exact");
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(&dir, "train.csv", "x,y\n0.1,1\n0.5,2\n-0.3,0.5\n");
    let test = write(&dir, "test.csv", "x\n0.2\n");
    let nan = write(&dir, "nan.csv", "x,y\n0.1,1\n0.5,nan\n");
    let wide = write(&dir, "wide.csv", "a,b\n0.2,0.3\n");
    let far = write(&dir, "far.csv", "x\n5.0\n");
    let dup = write(&dir, "dup.csv", "x,y\n0.1,1\n0.1,1\n");
    let base = ["gp", "regress", "--train", &train, "--test", &test];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&a, needles);
    };
    rejects(
        &["gp", "regress", "--train", &nan, "--test", &test],
        &["row 3", "'y'", "not finite"],
    );
    run(with(&["--noise", "0"]), &["--noise"]);
    run(with(&["--outputscale=-1"]), &["--outputscale"]);
    run(
        with(&["--lengthscale", "0.5,0.2"]),
        &["--lengthscale", "one per input"],
    );
    run(with(&["--grid-size", "3"]), &["--grid-size", "at least 4"]);
    run(
        with(&["--grid-bounds", "1,-1"]),
        &["--grid-bounds", "lo < hi"],
    );
    run(with(&["--kernel", "cosine"]), &["--kernel", "matern52"]);
    run(with(&["--method", "svgp"]), &["--method"]);
    rejects(
        &["gp", "regress", "--train", &train, "--test", &wide],
        &["--test", "2 columns", "1 input"],
    );
    rejects(
        &[
            "gp",
            "regress",
            "--train",
            &train,
            "--test",
            &far,
            "--grid-bounds",
            "-1,1",
        ],
        &["test row 1", "outside the interpolation grid"],
    );
    rejects(
        &[
            "gp", "regress", "--train", &dup, "--test", &test, "--method", "exact", "--noise",
            "1e-300",
        ],
        &["training row 2", "not positive definite", "pivot 1"],
    );
    rejects(
        &["gp", "stream", "--synthetic", "10", "--method", "svgp"],
        &["--method"],
    );
    rejects(&["gp", "stream"], &["--data", "--synthetic"]);
    rejects(
        &[
            "gp",
            "stream",
            "--data",
            &train,
            "--plot",
            "/nonexistent/dir/p.png",
        ],
        &["--plot"],
    );
}

#[test]
fn bayesian_optimisation_runs_both_surrogates_and_improves() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("bo.png");
    let o = keel(&[
        "gp",
        "bo",
        "--function",
        "styblinski-tang",
        "--dim",
        "2",
        "--steps",
        "15",
        "--batch",
        "2",
        "--method",
        "both",
        "--acquisition",
        "ei",
        "--grid-size",
        "20",
        "--plot",
        plot.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["evaluations"], 40);
        let h = r["history"].as_array().unwrap();
        assert_eq!(h.len(), 15);
        let first = h[0]["best_latent"].as_f64().unwrap();
        let last = h[14]["best_latent"].as_f64().unwrap();
        // Never worse, and the surrogate's 30 guided points beat the 10 random ones.
        assert!(last < first, "{} {first} → {last}", r["method"]);
        assert!(last >= r["minimum"].as_f64().unwrap());
    }
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    rejects(
        &["gp", "bo", "--function", "branin"],
        &["--function", "ackley"],
    );
    rejects(&["gp", "bo", "--dim", "4"], &["--dim", "1- to 3-D"]);
    rejects(&["gp", "bo", "--acquisition", "kg"], &["--acquisition"]);
    rejects(&["gp", "bo", "--steps", "0"], &["--steps"]);
}

#[test]
fn classify_runs_and_rejects_bad_input() {
    let o = keel(&[
        "gp",
        "classify",
        "--n",
        "400",
        "--n-test",
        "200",
        "--kernel-every",
        "4",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    assert_eq!(v["classes"], 2);
    rejects(&["gp", "classify", "--alpha-eps", "0"], &["--alpha-eps"]);
    rejects(
        &["gp", "classify", "--lengthscale=-0.3"],
        &["--lengthscale"],
    );
    rejects(&["gp", "classify", "--grid-size", "2"], &["--grid-size"]);
}

/// `gp classify` on the digits through a 2-feature stem: the issue's JSON for every method, all
/// well above chance (0.1), and the plot.
#[test]
fn classify_real_rows_through_a_stem() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/digits.csv"
    );
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("classify.png");
    for method in ["wiski", "exact", "svgp"] {
        let mut args = vec![
            "gp",
            "classify",
            "--data",
            data,
            "--target",
            "label",
            "--method",
            method,
            "--stem",
            "2",
            "--grid-size",
            "10",
            "--kernel-every",
            "64",
            "--inducing",
            "64",
            "--pretrain-epochs",
            "100",
            "--evaluations",
            "3",
            "--json",
            "--quiet",
        ];
        if method == "wiski" {
            args.extend(["--plot", plot.to_str().unwrap()]);
        }
        let o = keel(&args);
        assert!(
            o.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["method"], method);
        assert_eq!(v["n"], 1617, "1797 rows less 10 % test");
        assert_eq!(v["dims"], 64);
        assert_eq!(v["classes"], 10);
        assert_eq!(v["stem"], 2);
        assert_eq!(v["pretrain_rows"], 81);
        assert_eq!(v["accuracy_over_time"].as_array().unwrap().len(), 4);
        let acc = v["test_accuracy"].as_f64().unwrap();
        let (nll, ece) = (v["test_nll"].as_f64().unwrap(), v["ece"].as_f64().unwrap());
        assert!(
            acc > 0.4 && nll < 2.0 && (0.0..0.3).contains(&ece),
            "{method}: {v}"
        );
        assert_eq!(v["outputscale"].as_array().unwrap().len(), 10);
    }
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
}

#[test]
fn classify_bad_input_is_one_line_exit_2() {
    let digits = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/digits.csv"
    );
    let diabetes = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/diabetes.csv"
    );
    let base = ["gp", "classify", "--data", digits, "--target", "label"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&a, needles);
    };
    // 64 columns on a grid, or on the exact GP, without a stem.
    run(with(&[]), &["--stem", "1 to 3"]);
    run(with(&["--method", "svgp"]), &["--stem", "1 to 8"]);
    run(with(&["--stem", "4"]), &["--stem", "1 to 3"]);
    run(with(&["--stem", "2", "--inducing", "0"]), &["--inducing"]);
    run(with(&["--stem", "2", "--svgp-lr", "0"]), &["--svgp-lr"]);
    run(
        with(&["--stem", "2", "--plot", "/nonexistent/dir/p.png"]),
        &["--plot"],
    );
    run(with(&["--stem", "2", "--n", "10"]), &["--n", "--data"]);
    rejects(
        &["gp", "classify", "--data", digits, "--target", "nope"],
        &["nope"],
    );
    // A real-valued target has hundreds of "classes".
    rejects(
        &[
            "gp", "classify", "--data", diabetes, "--target", "target", "--stem", "2",
        ],
        &["--target", "classes"],
    );
}

#[test]
fn online_learning_finds_the_streams_noise() {
    let o = keel(&[
        "gp",
        "stream",
        "--synthetic",
        "800",
        "--learn",
        "--lengthscale",
        "1",
        "--outputscale",
        "0.3",
        "--noise",
        "0.5",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // (From a lengthscale of 2 the 40-point pretraining settles in the likelihood's other mode —
    // a long lengthscale that calls sin(3x) noise — as marginal likelihoods do.)
    let l = &v["learned"];
    assert_eq!(l["pretrain_points"], 40);
    // The stream's noise variance is 0.04; the start was 0.5.
    let noise = l["noise"].as_f64().unwrap();
    assert!(noise > 0.025 && noise < 0.06, "{l}");
    rejects(
        &[
            "gp",
            "stream",
            "--synthetic",
            "100",
            "--learn",
            "--method",
            "exact",
        ],
        &["--learn", "wiski"],
    );
    rejects(
        &[
            "gp",
            "stream",
            "--synthetic",
            "100",
            "--learn",
            "--pretrain-fraction",
            "1.5",
        ],
        &["--pretrain-fraction"],
    );
}

#[test]
fn a_closed_output_pipe_ends_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let train = write(&dir, "train.csv", "x,y\n0.1,1\n0.5,2\n-0.3,0.5\n");
    let test: String = std::iter::once("x\n".to_string())
        .chain((0..20_000).map(|i| format!("{}\n", (i % 100) as f64 / 200.0)))
        .collect();
    let test = write(&dir, "test.csv", &test);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "gp", "regress", "--train", &train, "--test", &test, "--method", "exact",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// `gp online` on the diabetes rows through a 2-feature stem: the issue's JSON for every method,
/// O-SGPR with 256 inducing points on 2 features tracking the exact GP, and the plot.
#[test]
fn online_regression_on_real_rows_reports_the_issues_json() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/diabetes.csv"
    );
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("online.png");
    let model = dir.path().join("wiski.safetensors");
    let mut rmse = std::collections::HashMap::new();
    for method in ["wiski", "exact", "osgpr", "osvgp"] {
        let mut args = vec![
            "gp",
            "online",
            "--data",
            data,
            "--target",
            "target",
            "--method",
            method,
            "--stem",
            "2",
            "--seed",
            "0",
            "--evaluations",
            "3",
            "--grid-size",
            "10",
            "--json",
            "--quiet",
        ];
        if method == "wiski" {
            args.extend(["--plot", plot.to_str().unwrap()]);
            args.extend(["--export", model.to_str().unwrap()]);
        }
        let o = keel(&args);
        assert!(
            o.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["method"], method);
        assert_eq!(v["n"], 398, "442 rows less 10 % test");
        assert_eq!(v["dims"], 10);
        assert_eq!(v["stem"], 2);
        assert_eq!(v["pretrain_rows"], 20);
        assert_eq!(v["rmse_over_time"].as_array().unwrap().len(), 4);
        assert!(v["seconds_per_update"].as_f64().unwrap() > 0.0);
        let r = v["test_rmse"].as_f64().unwrap();
        assert!(r.is_finite() && v["test_nll"].as_f64().unwrap().is_finite());
        rmse.insert(method, r);
    }
    // With the same pretrained kernel and stem, 256 inducing points cover 2 features: O-SGPR's
    // posterior is the exact one's to within a hair.
    assert!((rmse["osgpr"] - rmse["exact"]).abs() < 1e-3, "{rmse:?}");
    // Learning the kernel along the stream, WISKI beats predicting the mean (RMSE 1).
    assert!(rmse["wiski"] < 1.0, "{rmse:?}");
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    // 10 × 10 grid nodes: A alone is 100² f64.
    assert!(std::fs::metadata(&model).unwrap().len() > 80_000);
}

#[test]
fn online_bad_input_is_one_line_exit_2() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/data/diabetes.csv"
    );
    let base = ["gp", "online", "--data", data, "--target", "target"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&a, needles);
    };
    run(with(&[]), &["--stem", "WISKI", "1 to 3"]);
    run(with(&["--method", "exact"]), &["--stem", "1 to 8"]);
    run(with(&["--stem", "4"]), &["--stem", "1 to 3"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let out = out.to_str().unwrap();
    run(
        with(&["--stem", "2", "--method", "osgpr", "--export", out]),
        &["--export", "wiski"],
    );
    run(with(&["--export", out]), &["--export", "--stem"]);
    assert!(!std::path::Path::new(out).exists(), "nothing written");
    run(with(&["--stem", "2", "--inducing", "0"]), &["--inducing"]);
    run(with(&["--stem", "2", "--lr", "0"]), &["--lr"]);
    run(
        with(&["--stem", "2", "--pretrain-fraction", "1.5"]),
        &["--pretrain-fraction"],
    );
    run(
        with(&["--stem", "2", "--plot", "/nonexistent/dir/p.png"]),
        &["--plot"],
    );
    rejects(
        &["gp", "online", "--data", data, "--target", "glucose"],
        &["glucose"],
    );
    rejects(
        &["gp", "online", "--synthetic", "10"],
        &["--synthetic", "20"],
    );
    rejects(&["gp", "online"], &["--data", "--synthetic"]);
}
