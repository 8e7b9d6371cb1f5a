//! `keel distill` from the command line: a run from a `keel fit` teacher whose exported student
//! is itself a model file (`keel fit --export`'s format) that can teach, and the bad input it
//! refuses before training — one line naming the flag, exit 2, nothing written.

use crate::common;

use std::path::Path;

use common::{keel, rejects, rejects_writing_nothing, stderr};

const DIGITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/digits.csv"
);

fn teacher(dir: &Path, name: &str, task: &str) -> String {
    let path = dir.join(name);
    let p = path.to_str().unwrap();
    let o = keel(&[
        "fit", "--data", DIGITS, "--target", "label", "--task", task, "--hidden", "16", "--epochs",
        "3", "--export", p,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    p.to_string()
}

#[test]
fn a_student_distilled_from_a_fit_model_reports_fidelity_and_can_teach() {
    let dir = tempfile::tempdir().unwrap();
    let t = teacher(dir.path(), "t.safetensors", "classify");
    let s = dir.path().join("s.safetensors");
    let base = [
        "distill",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--student",
        "mlp:16",
        "--epochs",
        "3",
        "--json",
    ];
    let o = keel(
        &[
            &base[..],
            &["--teacher", &t, "--export", s.to_str().unwrap()],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "test_agreement",
        "test_kl",
        "stream_agreement",
        "stream_kl",
        "test_accuracy",
        "test_nll",
        "ece",
    ] {
        let x = v[k].as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x >= 0.0, "{k}: {x}");
    }
    for k in ["test_accuracy", "test_nll", "ece"] {
        assert!(v["teacher"][k].as_f64().is_some(), "teacher.{k}");
    }
    assert!(v["test_agreement"].as_f64().unwrap() <= 1.0);
    // The student is an ordinary model file: it can teach in turn, and interpolation from it
    // at ρ = 0 reproduces it.
    let o = keel(
        &[
            &base[..],
            &[
                "--teacher",
                s.to_str().unwrap(),
                "--init",
                "interpolate",
                "--rho",
                "0",
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["test_agreement"].as_f64(), Some(1.0));
    assert_eq!(v["rho"].as_f64(), Some(0.0));
}

#[test]
fn bad_input_is_refused_before_training_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = teacher(dir.path(), "t.safetensors", "classify");
    let regression = teacher(dir.path(), "r.safetensors", "regress");
    let run = |extra: &[&str], needles: &[&str]| {
        let mut args = vec![
            "distill",
            "--data",
            DIGITS,
            "--target",
            "label",
            "--epochs",
            "2",
            "--teacher",
        ];
        args.push(&t);
        args.extend(extra);
        rejects_writing_nothing(&args, needles);
    };
    run(&["--temperature", "0"], &["--temperature", "positive"]);
    run(&["--temperature", "-1"], &["--temperature"]);
    run(
        &["--init", "interpolate", "--rho", "1.5"],
        &["--rho", "[0, 1]"],
    );
    run(&["--alpha", "2"], &["--alpha"]);
    run(&["--augment", "shift"], &["--augment", "image shape"]);
    run(&["--student", "cnn:3"], &["--student", "mlp:"]);
    run(
        &[
            "--init",
            "interpolate",
            "--rho",
            "0.5",
            "--student",
            "mlp:32",
        ],
        &["--init", "[64, 16, 10]", "[64, 32, 10]"],
    );
    run(&["--teacher", &regression], &["r.safetensors", "logits"]);
    run(&["--teacher", DIGITS], &["digits.csv"]);

    // A data file whose classes or columns differ from the teacher's: both named.
    let text = std::fs::read_to_string(DIGITS).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let no_nines: String = std::iter::once(header)
        .chain(lines.clone().filter(|l| !l.ends_with(",9")))
        .map(|l| format!("{l}\n"))
        .collect();
    let p9 = dir.path().join("no-nines.csv");
    std::fs::write(&p9, no_nines).unwrap();
    let extra: String = std::iter::once(format!("bias,{header}"))
        .chain(lines.map(|l| format!("1,{l}")))
        .map(|l| format!("{l}\n"))
        .collect();
    let pe = dir.path().join("extra.csv");
    std::fs::write(&pe, extra).unwrap();
    for (data, says) in [(&p9, "classes"), (&pe, "input columns")] {
        rejects_writing_nothing(
            &[
                "distill",
                "--data",
                data.to_str().unwrap(),
                "--target",
                "label",
                "--teacher",
                &t,
            ],
            &[
                "--teacher",
                "t.safetensors",
                data.file_name().unwrap().to_str().unwrap(),
                says,
            ],
        );
    }
    rejects(
        &["distill", "--data", DIGITS, "--target", "label"],
        &["--teacher"],
    );
    rejects(
        &[
            "distill",
            "--data",
            DIGITS,
            "--target",
            "label",
            "--teacher",
            &t,
            "--epochs",
            "0",
        ],
        &["--epochs", "at least 1"],
    );
}

#[test]
fn a_cnn_teacher_distils_into_a_cnn_student_that_teaches_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("cnn.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--task",
        "classify",
        "--image-shape",
        "1x8x8",
        "--layers",
        "c8,m2,g",
        "--epochs",
        "2",
        "--export",
        t.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = dir.path().join("student.safetensors");
    let base = [
        "distill",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--image-shape",
        "1x8x8",
        "--layers",
        "c8,m2,g",
        "--epochs",
        "2",
        "--augment",
        "shift",
        "--json",
    ];
    let o = keel(
        &[
            &base[..],
            &[
                "--teacher",
                t.to_str().unwrap(),
                "--export",
                s.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["teacher"]["kinds"][0], "cnn");
    assert!(v["test_agreement"].as_f64().unwrap() > 0.0);
    // The student file is read back by keel-core's CNN loader as a teacher.
    let o = keel(&[&base[..], &["--teacher", s.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Interpolation needs a one-MLP teacher.
    rejects_writing_nothing(
        &[
            &base[..],
            &[
                "--teacher",
                t.to_str().unwrap(),
                "--init",
                "interpolate",
                "--rho",
                "0.5",
            ],
        ]
        .concat(),
        &["--init", "one MLP"],
    );
}
