//! What the `keel` command's exit status and stderr mean, one test per class: 0 success; 2 bad
//! input (usage, values, files that cannot be read, outputs that cannot be written, sizes whose
//! memory or work is absurd — all refused before any work, with one line naming the flag); 1 a
//! run that failed on valid input (training that diverged). And the output discipline: a
//! command writes all of its outputs only when the whole run succeeded.

use crate::common;

use common::{error_lines, keel, rejects, stderr};

const DIGITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/data/digits.csv"
);

#[test]
fn success_is_exit_0() {
    let o = keel(&["simulate", "chain-pendulum", "--links", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty());
}

#[test]
fn usage_errors_are_one_line_exit_2_naming_the_flag() {
    rejects(&["fit", "--data", DIGITS, "--bogus"], &["--bogus"]);
    rejects(&["fit", "--data", DIGITS], &["--task"]);
    // --target is optional for clap (IDX and CIFAR images carry their labels) but a CSV needs it.
    rejects(
        &["fit", "--data", DIGITS, "--task", "classify"],
        &["--target", "not given"],
    );
    rejects(
        &[
            "fit",
            "--data",
            DIGITS,
            "--target",
            "label",
            "--task",
            "classify",
            "--activation",
            "gelu",
        ],
        &["--activation", "relu"],
    );
    rejects(&["simulat"], &["simulate"]);
}

/// `KEEL_CPU_ISA` caps the CPU kernels' vector level; a value that is not a level is refused
/// before any command runs, and a cap shows in `keel info`.
#[test]
fn a_vector_level_cap_that_is_not_one_is_exit_2() {
    let with = |isa: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .env("KEEL_CPU_ISA", isa)
            .args(args)
            .output()
            .unwrap()
    };
    let o = with(
        "avx1024",
        &["simulate", "chain-pendulum", "--links", "2", "--json"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("KEEL_CPU_ISA") && lines[0].contains("avx2"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    let o = with("baseline", &["info", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["cpu"]["vector"], "baseline");
}

/// Values that make no sense are refused everywhere with the same words.
#[test]
fn zero_counts_are_refused_alike_in_every_command() {
    for args in [
        &[
            "fit", "--data", DIGITS, "--target", "label", "--task", "classify", "--epochs", "0",
        ][..],
        &[
            "chnn",
            "train",
            "--system",
            "chain-pendulum",
            "--epochs",
            "0",
        ],
        &[
            "emlp",
            "train",
            "--dataset",
            "o5-synthetic",
            "--epochs",
            "0",
        ],
        &[
            "chnn",
            "train",
            "--system",
            "chain-pendulum",
            "--checkpoint-every",
            "0",
        ],
        &[
            "rl",
            "train",
            "--env",
            "pendulum",
            "--checkpoint-every",
            "0",
        ],
        &[
            "bayes",
            "hmc",
            "--data",
            DIGITS,
            "--step-size",
            "1e-4",
            "--chains",
            "0",
        ],
        &[
            "bayes",
            "export",
            "--samples",
            "s",
            "--data",
            DIGITS,
            "--count",
            "0",
            "--out",
            "o",
        ],
        &["gp", "bo", "--function", "ackley", "--steps", "0"],
    ] {
        rejects(args, &["'0'", "must be at least 1"]);
    }
}

/// Flags the library's settings were misnamed as before (issue: `fit --weight-decay inf`
/// blamed `--lr`, `gp classify --n-test 0` named `--n`, `chnn train --links 7` named `--bobs`,
/// `rl train --horizon 1000000` reported "step 19").
#[test]
fn every_error_names_the_flag_the_user_typed() {
    let fit = [
        "fit", "--data", DIGITS, "--target", "label", "--task", "classify",
    ];
    rejects(
        &[&fit[..], &["--weight-decay", "inf"]].concat(),
        &["--weight-decay"],
    );
    rejects(&["gp", "classify", "--n-test", "0"], &["--n-test"]);
    rejects(
        &[
            "chnn",
            "train",
            "--system",
            "coupled-pendulum",
            "--links",
            "7",
        ],
        &["--links", "1 to 6"],
    );
    rejects(
        &["rl", "train", "--env", "pendulum", "--horizon", "1000000"],
        &["--horizon", "200 steps"],
    );
    rejects(
        &[&fit[..], &["--device", "tpu"]].concat(),
        &["--device", "tpu"],
    );
}

#[test]
fn files_that_cannot_be_read_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_text = dir.path().join("latin1.csv");
    std::fs::write(&not_text, b"p0,label\n\xff\xfe,1\n").unwrap();
    let folder = dir.path().to_str().unwrap();
    for data in [folder, not_text.to_str().unwrap(), "/no/such/file.csv"] {
        let o = keel(&[
            "fit", "--data", data, "--target", "label", "--task", "classify",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{data}: {err}");
        assert_eq!(error_lines(&err).len(), 1, "{err}");
        assert!(
            err.contains(&format!("--data {data}")),
            "names the flag: {err}"
        );
    }
    rejects(
        &["simulate", "chain-pendulum", "--init", folder],
        &["--init", folder],
    );
}

#[test]
fn outputs_that_cannot_be_written_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap().to_string();
    let read_only = dir.path().join("ro.png");
    std::fs::write(&read_only, b"keep").unwrap();
    let mut perm = std::fs::metadata(&read_only).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&read_only, perm).unwrap();
    let fit = [
        "fit", "--data", DIGITS, "--target", "label", "--task", "classify",
    ];
    for (flag, path, says) in [
        ("--plot", "/no/such/folder/p.png", "does not exist"),
        ("--plot", folder.as_str(), "is a folder"),
        ("--plot", read_only.to_str().unwrap(), "read-only"),
        ("--plot", "curves.svg", ".png"),
        ("--export", folder.as_str(), "is a folder"),
    ] {
        rejects(&[&fit[..], &[flag, path]].concat(), &[flag, says]);
    }
    assert_eq!(std::fs::read(&read_only).unwrap(), b"keep");
}

/// Sizes whose memory could never fit or whose work would never end are refused before
/// anything is allocated or run, saying what they would need (they used to abort with
/// "memory allocation failed" or run forever).
#[test]
fn absurd_sizes_are_refused_with_what_they_would_need() {
    let huge = "100000000";
    let max = "18446744073709551615";
    let fit = [
        "fit", "--data", DIGITS, "--target", "label", "--task", "classify",
    ];
    rejects(
        &[&fit[..], &["--hidden", huge]].concat(),
        &["--hidden", "memory"],
    );
    rejects(
        &[&fit[..], &["--epochs", max]].concat(),
        &["--epochs", "would take"],
    );
    let hmc = [
        "bayes",
        "hmc",
        "--data",
        DIGITS,
        "--model",
        "mlp:16",
        "--step-size",
        "1e-4",
    ];
    rejects(
        &[&hmc[..], &["--chains", huge]].concat(),
        &["--chains", "memory"],
    );
    rejects(
        &[
            "simulate",
            "chain-pendulum",
            "--integrator",
            "rk4",
            "--substeps",
            max,
        ],
        &["--substeps", "integrator steps"],
    );
    rejects(
        &["rl", "train", "--env", "pendulum", "--steps", max],
        &["--steps", "memory"],
    );
    rejects(
        &["rl", "train", "--env", "pendulum", "--hidden", huge],
        &["--hidden", "memory"],
    );
    rejects(
        &[
            "chnn",
            "train",
            "--system",
            "chain-pendulum",
            "--layers",
            huge,
        ],
        &["--layers", "memory"],
    );
    rejects(
        &[
            "emlp",
            "train",
            "--dataset",
            "o5-synthetic",
            "--layers",
            huge,
        ],
        &["--layers", "memory"],
    );
    rejects(
        &[
            "gp",
            "bo",
            "--function",
            "ackley",
            "--dim",
            "3",
            "--steps",
            huge,
        ],
        &["--steps", "would take"],
    );
    rejects(
        &["gp", "classify", "--grid-size", huge],
        &["--grid-size", "4 to 64"],
    );
}

/// Valid input whose run fails — here training that diverges — is exit 1, one line, with the
/// remedy naming the flag; nothing is written.
#[test]
fn a_run_that_fails_on_valid_input_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("m.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--task",
        "classify",
        "--epochs",
        "3",
        "--lr",
        "1e6",
        "--optimizer",
        "sgd",
        "--export",
        export.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(error_lines(&err).len(), 1, "{err}");
    assert!(err.contains("diverged") && err.contains("--lr"), "{err}");
    assert!(!export.exists());
}

/// A command writes all of its outputs or none: when a later output fails, the earlier ones
/// are not left behind (`fit --export` used to be written before a failing `--plot`; `rl train
/// --export` before a failing `--export-value`).
#[test]
fn no_output_is_written_unless_every_output_is() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("m.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--task",
        "classify",
        "--epochs",
        "1",
        "--export",
        export.to_str().unwrap(),
        "--plot",
        dir.path().join("p.xyz").to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!export.exists(), "the export is not left behind");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary files"
    );
}

/// `keel simplex`: bad settings and a model file of the wrong kind are one line naming the
/// flag, exit 2, and nothing is written.
#[test]
fn simplex_bad_input_is_one_line_exit_2_writing_nothing() {
    use common::rejects_writing_nothing;
    let train = ["simplex", "train", "--data", DIGITS, "--device", "cpu"];
    for (extra, needles) in [
        (&["--vertices", "0"][..], &["--vertices", "at least 1"][..]),
        (&["--components", "0"], &["--components", "at least 1"]),
        (&["--n-sample", "0"], &["--n-sample", "at least 1"]),
        (&["--lmbd", "-1"], &["--lmbd", "≥ 0"]),
        (&["--lr", "0"], &["--lr", "positive"]),
        (&["--model", "mlp:0"], &["--model", "mlp:0"]),
        (&["--target", "nope"], &["nope"]),
        (&["--test-fraction", "1.5"], &["--test-fraction"]),
        (&["--layers", "c4"], &["--image-shape"]),
        (
            &["--layers", "c4", "--image-shape", "1x8x9"],
            &["--image-shape", "72"],
        ),
        (&["--plot", "regions.png"], &["--plot", "two-spirals"]),
        (&["--resume"], &["--resume", "--checkpoint"]),
    ] {
        rejects_writing_nothing(&[&train[..], extra].concat(), needles);
    }
    rejects_writing_nothing(
        &["simplex", "train", "--device", "cpu"],
        &["--data", "two-spirals"],
    );
    // A model file of another kind (a `keel fit` export) given to `simplex slice`.
    let dir = tempfile::tempdir().unwrap();
    let fit_model = dir.path().join("fit.safetensors");
    let o = keel(&[
        "fit",
        "--data",
        DIGITS,
        "--target",
        "label",
        "--task",
        "classify",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--export",
        fit_model.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plot = dir.path().join("slice.png");
    rejects(
        &[
            "simplex",
            "slice",
            "--model",
            fit_model.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
        &["--model", "not a simplex model"],
    );
    assert!(!plot.exists());
    rejects(
        &["simplex", "slice", "--model", "/no/such/model.safetensors"],
        &["/no/such/model.safetensors"],
    );
}
