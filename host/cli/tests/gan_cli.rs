//! `keel gan` from the command line: a short ring run whose saved generator samples a CSV, a
//! short digits run that samples a PNG grid and feeds `keel distill --synthetic`, and the bad
//! input refused before training — one line naming the flag, exit 2, nothing written.

use crate::common;

use common::{keel, rejects, rejects_writing_nothing, stderr};

const DIGITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/digits.csv"
);

#[test]
fn a_ring_run_reports_its_metrics_and_its_generator_samples_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.safetensors");
    let plot = dir.path().join("ring.png");
    let o = keel(&[
        "gan",
        "train",
        "--dataset",
        "ring8",
        "--method",
        "ppo",
        "--model",
        "mlp:32x2",
        "--iterations",
        "12",
        "--batch",
        "64",
        "--latent",
        "8",
        "--eval-samples",
        "400",
        "--loss-window",
        "4",
        "--device",
        "cpu",
        "--json",
        "--export",
        g.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "ppo");
    assert_eq!(v["iterations"], 12);
    let modes = v["modes_covered"].as_u64().unwrap();
    assert!(modes <= 8);
    let q = v["high_quality_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&q));
    for k in ["critic_loss_var", "generator_loss_var", "train_seconds"] {
        let x = v[k].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{k}: {x}");
    }
    assert!(v["fid"].is_null(), "no FID for the ring");
    let curve = &v["surrogate_curve"];
    assert_eq!(curve["iteration"], 6, "the middle of the run");
    assert_eq!(curve["t"].as_array().unwrap().len(), 41);
    assert!(plot.exists());
    assert!(dir.path().join("ring-surrogate.png").exists());

    let csv = dir.path().join("s.csv");
    let o = keel(&[
        "gan",
        "sample",
        "--model",
        g.to_str().unwrap(),
        "--count",
        "25",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("x0,x1"));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 25);
    assert!(rows
        .iter()
        .all(|r| r.len() == 2 && r.iter().all(|x| x.is_finite())));
    // A vector generator cannot draw a PNG grid; a missing count is refused.
    rejects(
        &[
            "gan",
            "sample",
            "--model",
            g.to_str().unwrap(),
            "--out",
            dir.path().join("s.png").to_str().unwrap(),
        ],
        &["--out", "image generator"],
    );
    assert!(!dir.path().join("s.png").exists());
    rejects(
        &[
            "gan",
            "sample",
            "--model",
            g.to_str().unwrap(),
            "--count",
            "0",
            "--out",
            csv.to_str().unwrap(),
        ],
        &["--count"],
    );
    // An absurd count is refused before anything is drawn.
    rejects(
        &[
            "gan",
            "sample",
            "--model",
            g.to_str().unwrap(),
            "--count",
            "9000000000",
            "--out",
            csv.to_str().unwrap(),
        ],
        &["--count"],
    );
    // Not a generator: said so, naming what it is.
    rejects(
        &[
            "gan",
            "sample",
            "--model",
            DIGITS,
            "--out",
            dir.path().join("t.csv").to_str().unwrap(),
        ],
        &["digits.csv"],
    );
}

#[test]
fn a_digits_generator_draws_a_grid_and_feeds_distillation() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.safetensors");
    let o = keel(&[
        "gan",
        "train",
        "--dataset",
        "digits",
        "--digits",
        DIGITS,
        "--method",
        "reweight",
        "--model",
        "dcgan:4",
        "--iterations",
        "3",
        "--critic-steps",
        "2",
        "--generator-steps",
        "2",
        "--batch",
        "32",
        "--latent",
        "8",
        "--eval-samples",
        "200",
        "--device",
        "cpu",
        "--json",
        "--export",
        g.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["fid", "fid_real", "inception_score", "feature_accuracy"] {
        let x = v[k].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{k}: {x}");
    }
    assert!(v["feature_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    assert!(
        v["fid"].as_f64().unwrap() > v["fid_real"].as_f64().unwrap(),
        "three iterations do not make digits: {v}"
    );
    assert!(v["surrogate_curve"].is_null(), "only ppo has the curve");

    let png = dir.path().join("grid.png");
    let o = keel(&[
        "gan",
        "sample",
        "--model",
        g.to_str().unwrap(),
        "--count",
        "16",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::metadata(&png).unwrap().len() > 100);

    // The generator as distillation's synthetic stream (a 1 : 4 ratio).
    let teacher = dir.path().join("t.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--task",
        "classify",
        "--hidden",
        "16",
        "--epochs",
        "3",
        "--export",
        teacher.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = keel(&[
        "distill",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--teacher",
        teacher.to_str().unwrap(),
        "--student",
        "mlp:16",
        "--epochs",
        "2",
        "--synthetic",
        g.to_str().unwrap(),
        "--synthetic-ratio",
        "0.2",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["synthetic_per_batch"], 32, "{v}");
    // A ring generator has 2 numbers per sample, the digits 64: refused, named.
    let ring = dir.path().join("ring.safetensors");
    let o = keel(&[
        "gan",
        "train",
        "--dataset",
        "ring8",
        "--model",
        "mlp:8x1",
        "--iterations",
        "1",
        "--batch",
        "16",
        "--latent",
        "2",
        "--eval-samples",
        "20",
        "--device",
        "cpu",
        "--json",
        "--export",
        ring.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    rejects(
        &[
            "distill",
            "--data",
            DIGITS,
            "--target",
            "label",
            "--teacher",
            teacher.to_str().unwrap(),
            "--epochs",
            "1",
            "--synthetic",
            ring.to_str().unwrap(),
        ],
        &["ring.safetensors", "2 numbers", "64 feature columns"],
    );
}

#[test]
fn bad_input_is_refused_before_training_and_writes_nothing() {
    let run = |extra: &[&str], needles: &[&str]| {
        let mut args = vec![
            "gan",
            "train",
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--digits",
            DIGITS,
        ];
        args.extend(extra);
        rejects_writing_nothing(&args, needles);
    };
    run(&["--dataset", "ring9"], &["--dataset", "ring9"]);
    run(
        &["--dataset", "ring8", "--method", "gan"],
        &["--method", "ppo"],
    );
    run(
        &["--dataset", "ring8", "--clip-eps", "1.5"],
        &["--clip-eps"],
    );
    run(&["--dataset", "ring8", "--clip-eps", "0"], &["--clip-eps"]);
    run(&["--dataset", "ring8", "--lr", "-1"], &["--lr"]);
    run(
        &["--dataset", "ring8", "--model", "dcgan"],
        &["--model", "images"],
    );
    run(
        &["--dataset", "digits", "--model", "cnn:3"],
        &["--model", "mlp:"],
    );
    run(
        &["--dataset", "digits", "--batch", "5000"],
        &["--batch", "training images"],
    );
    run(
        &["--dataset", "ring8", "--eval-samples", "1"],
        &["--eval-samples"],
    );
    run(&["--dataset", "ring8", "--curve-at", "3"], &["--curve-at"]);
    // A CSV of images needs its shape; images whose sides are not multiples of 4 cannot be a
    // DCGAN's.
    run(&["--dataset", DIGITS], &["--image-shape"]);
    run(
        &[
            "--dataset",
            DIGITS,
            "--image-shape",
            "1x2x32",
            "--target",
            "label",
        ],
        &["--model", "divisible by 4"],
    );
    // A loss that becomes non-finite stops the run, naming the iteration.
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.safetensors");
    let o = keel(&[
        "gan",
        "train",
        "--dataset",
        "ring8",
        "--model",
        "mlp:8x1",
        "--iterations",
        "50",
        "--batch",
        "16",
        "--latent",
        "2",
        "--lr",
        "1e300",
        "--device",
        "cpu",
        "--export",
        g.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("outer iteration"), "{err}");
    assert!(!g.exists());
}
