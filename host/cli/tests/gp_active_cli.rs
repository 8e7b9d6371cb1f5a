//! `keel gp active` and `keel gp bo --acquisition nei` end to end: short runs of both
//! surrogates, the JSON the README documents, and bad input (one line on stderr naming the flag,
//! exit 2, nothing on stdout, no plot written).

use crate::common;
use common::{keel, rejects};

use serde_json::Value;

#[test]
fn active_learning_runs_both_surrogates_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("active.png");
    let o = keel(&[
        "gp",
        "active",
        "--steps",
        "6",
        "--pool",
        "2000",
        "--integration",
        "300",
        "--candidates",
        "60",
        "--grid-size",
        "20",
        "--method",
        "both",
        "--plot",
        plot.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (r, method) in runs.iter().zip(["wiski", "exact"]) {
        assert_eq!(r["method"], method);
        assert_eq!(r["steps"], 6);
        assert_eq!(r["q"], 6);
        let rmse = r["rmse_over_steps"].as_array().unwrap();
        let var = r["mean_variance_over_steps"].as_array().unwrap();
        assert_eq!(rmse.len(), 6);
        assert_eq!(var.len(), 6);
        assert!(rmse[5].as_f64().unwrap() < r["initial_rmse"].as_f64().unwrap());
        assert!(var[5].as_f64().unwrap() < r["initial_mean_variance"].as_f64().unwrap());
        assert!(r["seconds_per_step"].as_f64().unwrap() > 0.0);
    }
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
}

#[test]
fn active_learning_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("never.png");
    let p = plot.to_str().unwrap();
    rejects(&["gp", "active", "--q", "0", "--plot", p], &["--q"]);
    rejects(&["gp", "active", "--steps", "0", "--plot", p], &["--steps"]);
    rejects(
        &["gp", "active", "--steps", "1000000000", "--plot", p],
        &["--steps", "pool"],
    );
    rejects(&["gp", "active", "--method", "gpytorch"], &["--method"]);
    rejects(
        &["gp", "active", "--integration", "0", "--plot", p],
        &["--integration"],
    );
    rejects(
        &["gp", "active", "--candidates", "3", "--plot", p],
        &["--candidates"],
    );
    rejects(
        &["gp", "active", "--grid-size", "2", "--plot", p],
        &["--grid-size"],
    );
    rejects(
        &["gp", "active", "--lengthscale=-1", "--plot", p],
        &["lengthscale"],
    );
    assert!(!plot.exists(), "nothing written");
}

#[test]
fn noisy_expected_improvement_improves_on_the_initial_points() {
    let o = keel(&[
        "gp",
        "bo",
        "--function",
        "styblinski-tang",
        "--dim",
        "2",
        "--steps",
        "12",
        "--batch",
        "2",
        "--noise-sd",
        "0.5",
        "--method",
        "both",
        "--acquisition",
        "nei",
        "--grid-size",
        "20",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for r in v.as_array().unwrap() {
        assert_eq!(r["acquisition"], "nei");
        let h = r["history"].as_array().unwrap();
        let first = h[0]["best_latent"].as_f64().unwrap();
        let last = h[11]["best_latent"].as_f64().unwrap();
        assert!(last < first, "{} {first} → {last}", r["method"]);
    }
    rejects(&["gp", "bo", "--acquisition", "qnei"], &["--acquisition"]);
}
