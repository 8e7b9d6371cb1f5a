//! `keel ntk` from the command line: short sine runs in both spaces agree, the exported network
//! loads in the core, the spatial and scaling commands report their fields, and bad input is
//! refused — one line naming the flag, exit 2, nothing written — while a CG solve that does not
//! converge fails the run (exit 1).

use crate::common;

use common::{keel, rejects, rejects_writing_nothing, stderr};

fn adapt(space: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "ntk", "adapt", "--task", "sine", "--space", space, "--epochs", "300", "--tasks", "2",
        "--n-test", "200", "--json",
    ];
    args.extend(extra);
    let o = keel(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn both_spaces_give_the_same_adaptation_and_the_network_exports() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("sine.safetensors");
    let plot = dir.path().join("tasks.png");
    let f = adapt(
        "function",
        &[
            "--export",
            model.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    let p = adapt("parameter", &[]);
    assert_eq!(f["parameters"], 1761);
    assert_eq!(f["tasks"].as_array().unwrap().len(), 2);
    for (a, b) in f["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(p["tasks"].as_array().unwrap())
    {
        let (x, y) = (
            a["test_mse_adapted"].as_f64().unwrap(),
            b["test_mse_adapted"].as_f64().unwrap(),
        );
        assert!((x - y).abs() <= 1e-6 * x.abs().max(1e-3), "{x} vs {y}");
        assert_eq!(a["mean_coverage_95"], b["mean_coverage_95"]);
        assert!(a["cg_iterations"].as_u64().unwrap() >= 1);
        assert!(a["cg_relative_residual"].as_f64().unwrap() <= 1e-8);
        let c = a["mean_coverage_95"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
    }
    // The noise heuristic: max(1e-3, training MSE).
    let (noise, mse) = (
        f["noise"].as_f64().unwrap(),
        f["train_mse"].as_f64().unwrap(),
    );
    assert_eq!(noise, mse.max(1e-3));
    let bytes = std::fs::read(&model).unwrap();
    let st = keel_core::io::SafeTensors::<16>::parse(&bytes).unwrap();
    let mlp = keel_core::nn::Mlp::<4>::from_safetensors(&st).unwrap();
    assert_eq!((mlp.inputs(), mlp.outputs()), (1, 1));
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
}

#[test]
fn the_spatial_and_scaling_commands_report_their_fields() {
    let o = keel(&[
        "ntk",
        "adapt",
        "--task",
        "spatial",
        "--n-train",
        "200",
        "--hidden",
        "16",
        "--epochs",
        "5",
        "--n-test",
        "100",
        "--tasks",
        "1",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["task"], "spatial");
    assert_eq!(v["parameters"], 2 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2);
    for k in [
        "test_mse_adapted",
        "test_mse_unadapted",
        "test_mse_last_layer",
    ] {
        assert!(v["tasks"][0][k].as_f64().unwrap().is_finite(), "{k}");
    }
    let o = keel(&[
        "ntk", "scaling", "--n", "40,80", "--sizes", "3,16,1", "--cg-tol", "1e-6", "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["parameters"], 3 * 16 + 16 + 16 + 1);
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 4);
    assert_eq!(
        (pts[0]["n"].as_u64(), pts[1]["space"].as_str()),
        (Some(40), Some("parameter"))
    );
    assert!(pts.iter().all(|p| p["converged"] == true));
}

#[test]
fn bad_input_is_refused_and_a_solve_that_does_not_converge_fails() {
    let short = [
        "ntk", "adapt", "--epochs", "5", "--tasks", "1", "--n-test", "10",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = short.to_vec();
        v.extend(extra);
        v
    };
    rejects_writing_nothing(&with(&["--cg-tol", "0"]), &["--cg-tol"]);
    rejects_writing_nothing(&with(&["--lr", "0"]), &["--lr"]);
    rejects_writing_nothing(&with(&["--noise", "0"]), &["--noise"]);
    rejects_writing_nothing(&with(&["--n-adapt", "0"]), &["--n-adapt"]);
    rejects_writing_nothing(
        &with(&["--task", "spatial"]),
        &["--export", "heteroscedastic"],
    );
    rejects(&with(&["--plot", "/nonexistent-dir/x.png"]), &["--plot"]);
    rejects(&["ntk", "scaling", "--n", "0"], &["--n"]);
    rejects(
        &["ntk", "scaling", "--sizes", "3,4,2"],
        &["--sizes", "output width"],
    );
    let o = keel(&with(&["--cg-max-iter", "1", "--cg-tol", "1e-14"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("did not converge") && err.contains("--cg-max-iter"),
        "{err}"
    );
}

const DIGITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/digits.csv"
);

fn classify_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec![
        "ntk",
        "classify",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--image-shape",
        "1x8x8",
        "--epochs",
        "8",
        "--adapt-epochs",
        "40",
        "--samples",
        "5",
    ];
    v.extend(extra);
    v
}

#[test]
fn the_linearized_classifier_adapts_to_rotated_digits() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("reliability.png");
    let plot_arg: &'static str = Box::leak(plot.to_str().unwrap().to_string().into_boxed_str());
    let o = keel(&classify_args(&["--bias", "--json", "--plot", plot_arg]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(plot.exists());
    assert_eq!(r["shift"], "rotate90");
    assert_eq!(r["n_adapt"], 200);
    // Half of the 1,797 digits are the target domain: 200 to adapt, the rest to test.
    assert_eq!(r["n_test"], 1797 - 1797 / 2 - 200);
    assert!(r["source_test_accuracy"].as_f64().unwrap() > 0.8, "{r}");
    let methods = r["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["unadapted", "last-layer", "map", "laplace", "vi", "vi-mean"]
    );
    let acc = |name: &str| {
        methods.iter().find(|m| m["method"] == name).unwrap()["test_accuracy"]
            .as_f64()
            .unwrap()
    };
    // A quarter turn defeats the network; the linearization fitted to 200 turned digits does
    // far better, and better than retraining the output layer alone.
    assert!(acc("unadapted") < 0.3, "{r}");
    assert!(acc("map") > acc("unadapted") + 0.4, "{r}");
    assert!(acc("map") > acc("last-layer"), "{r}");
    assert!(methods[3]["ritz_kept"].as_u64().unwrap() >= 1);
    for m in methods {
        let nll = m["test_nll"].as_f64().unwrap();
        let ece = m["ece"].as_f64().unwrap();
        assert!(
            nll.is_finite() && nll > 0.0 && (0.0..=1.0).contains(&ece),
            "{m}"
        );
    }
}

#[test]
fn the_linearized_classifier_refuses_bad_input() {
    rejects(
        &classify_args(&["--n-adapt", "899"]),
        &["--n-adapt", "899 images"],
    );
    rejects(&classify_args(&["--adapt-lr", "0"]), &["--adapt-lr"]);
    rejects(
        &classify_args(&["--prior-precision=-1"]),
        &["--prior-precision"],
    );
    rejects(&classify_args(&["--layers", "c8,q"]), &["--layers"]);
    rejects(
        &classify_args(&["--plot", "/nonexistent-dir/x.png"]),
        &["--plot"],
    );
    rejects(
        &[
            "ntk",
            "classify",
            "--data",
            DIGITS,
            "--target",
            "label",
            "--image-shape",
            "1x4x16",
        ],
        &["rotate90", "square"],
    );
}
