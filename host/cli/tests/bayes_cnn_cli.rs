//! `keel bayes … --model cnn:LAYERS`: a CNN posterior by HMC and an ensemble of the same CNN on
//! image rows, compared and shifted like the MLP's sets; and the networks a posterior over weights
//! cannot have, images that do not fit, and the export the core cannot read, each refused with
//! one line, exit 2 and nothing written.

use crate::common;

use std::path::Path;

use serde_json::Value;

fn digits() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/data/digits.csv")
        .to_str()
        .unwrap()
        .to_string()
}

fn run(args: &[&str]) -> Value {
    let o = common::keel(args);
    assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The small CNN the tests sample: conv → 2 channels (FRN, swish), 2×2 max pool, dense → 10.
const MODEL: &str = "cnn:c2frn,m2";

#[test]
fn hmc_and_an_ensemble_of_a_cnn_are_sampled_compared_and_shifted() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits();
    let hmc = dir.path().join("hmc.safetensors");
    let ens = dir.path().join("ens.safetensors");
    // 90 % of the rows held out, so that the debug build's full-batch gradients stay quick.
    let base = [
        "--data",
        &data,
        "--model",
        MODEL,
        "--prior-std",
        "0.447",
        "--standardize",
        "global",
        "--test-fraction",
        "0.9",
        "--json",
    ];
    let mut args = vec!["bayes", "hmc"];
    args.extend(base);
    args.extend([
        "--step-size",
        "1e-2",
        "--trajectory-length",
        "0.2",
        "--chains",
        "2",
        "--burn-in",
        "5",
        "--samples",
        "3",
        "--save-samples",
        hmc.to_str().unwrap(),
    ]);
    let h = run(&args);
    // conv 1→2 (18 + 2), FRN (6), dense 2·4·4 → 10 (330).
    assert_eq!(h["parameters"], 356);
    assert_eq!(h["model"], MODEL);
    assert_eq!(h["leapfrog_steps"], 20);
    assert!(h["n_samples"].as_u64().unwrap() >= 1);
    let acc = h["test"]["accuracy"].as_f64().unwrap();
    // Ten classes: a sampler that moved nowhere would sit near 0.1.
    assert!(acc > 0.5, "HMC test accuracy {acc}");
    let mut args = vec!["bayes", "ensemble"];
    args.extend(base);
    args.extend([
        "--lr",
        "3e-4",
        "--epochs",
        "5",
        "--members",
        "2",
        "--save-samples",
        ens.to_str().unwrap(),
    ]);
    let e = run(&args);
    assert_eq!(e["parameters"], 356);
    let o = common::keel(&[
        "bayes",
        "compare",
        "--reference",
        hmc.to_str().unwrap(),
        "--others",
        ens.to_str().unwrap(),
        "--data",
        &data,
        "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = c.to_string();
    assert!(text.contains("agreement"), "{text}");
    let o = common::keel(&[
        "bayes",
        "shift",
        "--samples",
        &format!("{},{}", hmc.display(), ens.display()),
        "--data",
        &data,
        "--corruption",
        "rotate",
        "--severity",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = s["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    // Severity 0 is the sets' own clean test split: the same accuracy as the HMC run reported.
    assert_eq!(results[0]["severity"], 0);
    assert_eq!(results[0]["accuracy"].as_f64().unwrap(), acc);
    // The core's model-average file holds MLPs: a CNN set is refused, nothing written.
    let out = dir.path().join("bma.safetensors");
    common::rejects(
        &[
            "bayes",
            "export",
            "--samples",
            hmc.to_str().unwrap(),
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
        ],
        &["--samples", "MLPs"],
    );
    assert!(!out.exists());
    // A CNN set and an MLP set are different problems.
    let mlp = dir.path().join("mlp.safetensors");
    run(&[
        "bayes",
        "sgd",
        "--data",
        &data,
        "--model",
        "mlp:8",
        "--prior-std",
        "0.447",
        "--standardize",
        "global",
        "--test-fraction",
        "0.9",
        "--lr",
        "3e-4",
        "--epochs",
        "2",
        "--json",
        "--save-samples",
        mlp.to_str().unwrap(),
    ]);
    common::rejects(
        &[
            "bayes",
            "compare",
            "--reference",
            hmc.to_str().unwrap(),
            "--others",
            mlp.to_str().unwrap(),
            "--data",
            &data,
        ],
        &["--others", "model cnn:c2frn,m2 vs mlp:8"],
    );
}

#[test]
fn networks_and_images_that_do_not_fit_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = digits();
    let out = dir.path().join("s.safetensors");
    let diabetes = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/data/diabetes.csv")
        .to_str()
        .unwrap()
        .to_string();
    let cases: [(&str, &str, &[&str], &[&str]); 5] = [
        (&data, "cnn:c4,m2", &[], &["--model", "batch normalisation"]),
        (&data, "cnn:c4frn,x0.5", &[], &["--model", "dropout"]),
        (&data, "cnn:c4frn,z3", &[], &["--model", "unknown layer"]),
        (
            &data,
            "cnn:c4frn",
            &["--image-shape", "1x4x4"],
            &["--image-shape", "16 pixels", "64 feature columns"],
        ),
        (
            &diabetes,
            "cnn:c4frn",
            &["--likelihood", "gaussian"],
            &["--model", "not a square image"],
        ),
    ];
    for (file, model, extra, needles) in cases {
        let mut args = vec![
            "bayes",
            "hmc",
            "--data",
            file,
            "--model",
            model,
            "--step-size",
            "1e-2",
            "--samples",
            "2",
            "--save-samples",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        common::rejects(&args, needles);
        assert!(!out.exists(), "{model}: nothing written");
    }
}
