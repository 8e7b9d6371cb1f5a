//! `keel simplex train` and `keel simplex slice` end to end on the two spirals: the JSON
//! report's keys, the exported file, the plots, the slice read back from the file's training
//! spec, and `--resume` through the command line.

use crate::common;

use common::{keel, stderr};

fn train(dir: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let model = dir.join("s.safetensors");
    let mut args = vec![
        "simplex",
        "train",
        "--dataset",
        "two-spirals",
        "--model",
        "mlp:16,16",
        "--vertices",
        "3",
        "--base-epochs",
        "30",
        "--vertex-epochs",
        "10",
        "--device",
        "cpu",
        "--json",
        "--export",
        model.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = keel(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn train_export_plot_and_slice() {
    let dir = tempfile::tempdir().unwrap();
    let regions = dir.path().join("regions.png");
    let r = train(dir.path(), &["--plot", regions.to_str().unwrap()]);
    for key in [
        "components",
        "vertices",
        "test_accuracy",
        "test_nll",
        "ece",
        "volume",
        "vertex_train_loss",
        "interior_train_loss",
        "forward_passes",
        "history",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    assert_eq!(r["vertices"], 3);
    assert_eq!(r["vertex_train_loss"][0].as_array().unwrap().len(), 3);
    assert_eq!(r["volume"][0].as_array().unwrap().len(), 2);
    // Base: 30 full-batch epochs of 100 rows, one draw; two vertices: 10 epochs, 5 draws.
    assert_eq!(r["forward_passes"], 30 * 100 + 2 * 10 * 100 * 5);
    assert!(std::fs::read(&regions).unwrap().starts_with(b"\x89PNG"));
    let model = dir.path().join("s.safetensors");
    let plot = dir.path().join("slice.png");
    let o = keel(&[
        "simplex",
        "slice",
        "--model",
        model.to_str().unwrap(),
        "--grid",
        "6",
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["loss"].as_array().unwrap().len(), 6);
    // The slice recomputes the vertices' training losses from the rebuilt data.
    for j in 0..3 {
        let a = s["corner_loss"][j].as_f64().unwrap();
        let b = r["vertex_train_loss"][0][j].as_f64().unwrap();
        assert!((a - b).abs() < 1e-3 * (1.0 + b), "vertex {j}: {a} vs {b}");
    }
    assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn resume_through_the_command_line_gives_the_same_report() {
    let a = tempfile::tempdir().unwrap();
    let full = train(a.path(), &[]);
    let b = tempfile::tempdir().unwrap();
    let ck = b.path().join("ck.safetensors");
    let ck = ck.to_str().unwrap();
    let part = train(
        b.path(),
        &[
            "--checkpoint",
            ck,
            "--checkpoint-every",
            "5",
            "--stop-after",
            "35",
        ],
    );
    assert_eq!(part["stopped"], true);
    let resumed = train(b.path(), &["--checkpoint", ck, "--resume"]);
    for key in [
        "test_nll",
        "test_accuracy",
        "volume",
        "vertex_train_loss",
        "forward_passes",
    ] {
        assert_eq!(full[key], resumed[key], "{key}");
    }
    assert_eq!(
        std::fs::read(a.path().join("s.safetensors")).unwrap(),
        std::fs::read(b.path().join("s.safetensors")).unwrap()
    );
}
