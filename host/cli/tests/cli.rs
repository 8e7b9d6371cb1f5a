//! The `keel` command end to end: outputs, and bad input that must fail with one clear line,
//! exit status 2 and nothing written.

use crate::common;
use common::{keel, rejects, stderr};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "../..",
        "fixtures",
        "dynamics",
        name,
    ]
    .iter()
    .collect();
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn readme_example_matches_the_independent_fixture() {
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--links",
        "3",
        "--masses",
        "1,2,1.5",
        "--lengths",
        "1,0.5,0.8",
        "--gravity",
        "9.81",
        "--angles",
        "0.3,-0.2,1.1",
        "--angular-velocities",
        "0,0.5,-0.3",
        "--t-end",
        "5",
        "--dt",
        "0.1",
        "--integrator",
        "dopri5",
        "--rtol",
        "1e-10",
        "--atol",
        "1e-10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["system", "t", "x", "v", "energy", "constraint_violation"] {
        assert!(j.get(key).is_some(), "missing {key}");
    }
    let t = j["t"].as_array().unwrap();
    assert_eq!(t.len(), 51);
    assert_eq!(t[3].as_f64().unwrap(), 0.3);
    assert_eq!(j["x"][0].as_array().unwrap().len(), 6);
    // The generalized-coordinate reference for this exact setup, at its output times.
    let fx = fixture("chain_pendulum_3_cli.json");
    let times = fx["t"].as_array().unwrap();
    for (k, tf) in times.iter().enumerate() {
        let tf = tf.as_f64().unwrap();
        let row = t
            .iter()
            .position(|v| (v.as_f64().unwrap() - tf).abs() < 1e-12)
            .unwrap_or_else(|| panic!("the fixture's time {tf} is not an output row"));
        let ours: Vec<f64> = j["x"][row]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let theirs: Vec<f64> = fx["x"][k]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(ours.len(), theirs.len(), "t = {tf}: coordinates");
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-7, "t = {tf}: {a} vs {b}");
        }
    }
    assert!(times.len() >= 10, "the fixture holds {} times", times.len());
}

#[test]
fn negative_lists_after_a_space_and_outputs_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("run.csv");
    let png = dir.path().join("run.png");
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--links",
        "2",
        "--angles",
        "-0.62,2.41",
        "--angular-velocities",
        "-1,0",
        "--t-end",
        "1",
        "--dt",
        "0.05",
        "--csv",
        csv.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("t,x1,y1,x2,y2,vx1,vy1,vx2,vy2,energy,constraint_violation\n"));
    assert_eq!(text.lines().count(), 22);
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Only the two outputs: no temporaries left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn every_system_runs_with_every_integrator() {
    for system in [
        "chain-pendulum",
        "coupled-pendulum",
        "magnet-pendulum",
        "gyroscope",
        "rotor",
    ] {
        for integrator in ["dopri5", "rk4", "rk4-38", "leapfrog"] {
            let o = keel(&[
                "simulate",
                system,
                "--integrator",
                integrator,
                "--substeps",
                "20",
                "--t-end",
                "0.5",
                "--seed",
                "3",
                "--json",
            ]);
            assert!(o.status.success(), "{system} {integrator}: {}", stderr(&o));
            let j: Value = serde_json::from_slice(&o.stdout).unwrap();
            let e: Vec<f64> = j["energy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let drift =
                e.iter().map(|v| (v - e[0]).abs()).fold(0.0, f64::max) / e[0].abs().max(1.0);
            // Largest drift measured over the five systems: dopri5 1.1e-8 (default tolerances
            // 1e-10; the chain pendulum, whose energy is near zero), RK4 and its 3/8 variant 6.3e-7
            // (fourth order at the paper's step / 20; the magnet pendulum), leapfrog 2.6e-4
            // (RATTLE is second order: a bounded O(h²) oscillation). Each bound is about ten
            // times its integrator's, so an integrator that lost an order fails.
            let bound = match integrator {
                "dopri5" => 1e-7,
                "rk4" | "rk4-38" => 5e-6,
                _ => 2e-3,
            };
            assert!(
                drift < bound,
                "{system} {integrator}: energy drift {drift:e} (bound {bound:e})"
            );
        }
    }
}

#[test]
fn f32_and_f64_runs_agree() {
    let run = |dtype: &str| {
        let o = keel(&[
            "simulate",
            "gyroscope",
            "--euler",
            "0.3,1.0,0.2",
            "--euler-rates",
            "0.5,0.3,10",
            "--t-end",
            "0.4",
            "--dt",
            "0.02",
            "--integrator",
            "rk4",
            "--substeps",
            "5",
            "--dtype",
            dtype,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        j["x"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let (a, b) = (run("f32"), run("f64"));
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * scale, "{x} vs {y}");
    }
}

#[test]
fn same_seed_same_numbers() {
    let a = keel(&["simulate", "coupled-pendulum", "--seed", "42", "--json"]);
    let b = keel(&["simulate", "coupled-pendulum", "--seed", "42", "--json"]);
    let c = keel(&["simulate", "coupled-pendulum", "--seed", "43", "--json"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn paper_table_covers_every_system() {
    let o = keel(&["simulate", "paper", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.len(), 8);
    for r in &rows {
        assert!(r["energy_drift"].as_f64().unwrap() < 1e-6, "{r}");
        assert!(r["max_violation"].as_f64().unwrap() < 1e-6, "{r}");
    }
}

#[test]
fn bad_input_is_one_line_exit_2() {
    rejects(
        &["simulate", "double-pendulum"],
        &["double-pendulum", "chain-pendulum"],
    );
    rejects(
        &[
            "simulate",
            "chain-pendulum",
            "--links",
            "3",
            "--angles",
            "0.1,0.2",
        ],
        &["--angles", "0.1,0.2", "expected 3"],
    );
    rejects(
        &[
            "simulate",
            "chain-pendulum",
            "--links",
            "2",
            "--masses",
            "1,-2",
        ],
        &["--masses", "-2"],
    );
    rejects(
        &["simulate", "chain-pendulum", "--lengths", "1,0,1"],
        &["--lengths"],
    );
    rejects(&["simulate", "chain-pendulum", "--dt", "0"], &["--dt", "0"]);
    rejects(&["simulate", "chain-pendulum", "--dt", "-0.1"], &["--dt"]);
    rejects(&["simulate", "chain-pendulum", "--rtol", "0"], &["--rtol"]);
    rejects(
        &["simulate", "chain-pendulum", "--gravity", "nan"],
        &["--gravity", "NaN"],
    );
    rejects(
        &["simulate", "chain-pendulum", "--angles", "0.1,abc,0.3"],
        &["--angles", "abc"],
    );
    rejects(
        &["simulate", "chain-pendulum", "--links", "9"],
        &["--links", "9"],
    );
    rejects(
        &["simulate", "gyroscope", "--angles", "0.1"],
        &["--angles", "gyroscope"],
    );
    rejects(
        &["simulate", "rotor", "--init", "/no/such/state.json"],
        &["/no/such/state.json"],
    );
    rejects(
        &["simulate", "rotor", "--dtype", "f32", "--rtol", "1e-10"],
        &["--rtol", "f32"],
    );
}

#[test]
fn failed_runs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--angles",
        "1,2",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!csv.exists());
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--csv",
        "/no/such/dir/out.csv",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--csv"));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn init_files_are_checked_against_the_constraints() {
    let dir = tempfile::tempdir().unwrap();
    // On the manifold: the 1-pendulum (paper length 1.0390508…) is not; use --lengths 1.
    let good = write(
        dir.path(),
        "good.json",
        r#"{"x": [[0.6, -0.8]], "v": [[0.8, 0.6]]}"#,
    );
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--links",
        "1",
        "--lengths",
        "1",
        "--init",
        good.to_str().unwrap(),
        "--t-end",
        "0.3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Off the manifold: rejected, then accepted with --project.
    let off = write(
        dir.path(),
        "off.json",
        r#"{"x": [[0.7, -0.8]], "v": [[0.8, 0.6]]}"#,
    );
    rejects(
        &[
            "simulate",
            "chain-pendulum",
            "--links",
            "1",
            "--lengths",
            "1",
            "--init",
            off.to_str().unwrap(),
        ],
        &["off the constraint manifold", "--project"],
    );
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--links",
        "1",
        "--lengths",
        "1",
        "--init",
        off.to_str().unwrap(),
        "--project",
        "--t-end",
        "0.3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let x: Vec<f64> = j["x"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((x[0].hypot(x[1]) - 1.0).abs() < 1e-12);
    // Wrong shape, malformed JSON, unreadable content.
    let shape = write(
        dir.path(),
        "shape.json",
        r#"{"x": [[0.6, -0.8, 0.0]], "v": [[0.8, 0.6, 0.0]]}"#,
    );
    rejects(
        &[
            "simulate",
            "chain-pendulum",
            "--links",
            "1",
            "--init",
            shape.to_str().unwrap(),
        ],
        &["shape.json", "1 nodes × 2"],
    );
    let junk = write(dir.path(), "junk.json", "{ not json");
    rejects(
        &["simulate", "rotor", "--init", junk.to_str().unwrap()],
        &["junk.json", "not valid JSON"],
    );
    // A --json output can be continued from its last row.
    let traj = write(
        dir.path(),
        "traj.json",
        std::str::from_utf8(&o.stdout).unwrap(),
    );
    let o = keel(&[
        "simulate",
        "chain-pendulum",
        "--links",
        "1",
        "--lengths",
        "1",
        "--init",
        traj.to_str().unwrap(),
        "--t-end",
        "0.3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Issue 19: `keel firmware check` run outside the repository root looked for
/// `firmware/assets` relative to the working directory and failed on a missing model file; it
/// now says to pass `--assets`.
#[test]
fn firmware_check_outside_the_repository_asks_for_assets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("firmware.log"), "").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["firmware", "check", "firmware.log"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--assets") && err.contains("firmware/assets"),
        "{err}"
    );
}

/// Issue 20 §2: `keel firmware check` checks the model lines a log has (the C firmware prints a
/// subset), says which, and still fails a log with none of them; `--require-all` (the Rust
/// firmware's check in CI) insists on all of them. The lines are the host's own results, so they
/// pass; a seed log of the fuzz target supplies well-formed lines that do not.
#[test]
fn firmware_check_takes_the_model_lines_a_log_has() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let assets = root.join("../firmware/assets");
    let hex = |v: &[f32]| -> String {
        let words: Vec<String> = v.iter().map(|x| format!("{:08x}", x.to_bits())).collect();
        words.join(",")
    };
    let system = |state: &[f32]| {
        format!(
            "KEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt={} steps=50 \
             angles={} rates={} state={}",
            hex(&[0.01]),
            hex(&[0.3, -0.2, 1.1]),
            hex(&[0.0, 0.5, -0.3]),
            hex(state)
        )
    };
    let probe = keel::firmware::parse(&system(&[0.0; 12])).unwrap();
    let system = system(&keel::firmware::host_run(&probe).unwrap());
    let host = keel::firmware::host_digits(&assets).unwrap();
    let classes: Vec<String> = host.classes.iter().map(usize::to_string).collect();
    let digits = format!(
        "KEEL-FW model=digits samples={} classes={} logits={}",
        host.classes.len(),
        classes.join(","),
        hex(&host.logits)
    );
    let seeds =
        std::fs::read_to_string(root.join("fuzz/seeds/firmware_log/all-lines.log")).unwrap();
    let seed_gp = seeds.lines().find(|l| l.contains("model=gp")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let check = |lines: &[&str], extra: &[&str]| {
        let path = dir.path().join("firmware.log");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut args = vec![
            "firmware",
            "check",
            path.to_str().unwrap(),
            "--assets",
            assets.to_str().unwrap(),
        ];
        args.extend(extra);
        keel(&args)
    };

    let o = check(&["qemu: booting", &system, &digits], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains(
            "checked 2 of 14 lines (dynamics, digits); not in the log: emlp, gp, chnn, bma, policy, augerino, simplex, student, ntk, gyroscope, spring, wiski-stem: PASS"
        ),
        "{out}"
    );
    assert!(
        out.contains("digits MLP") && !out.contains("WISKI"),
        "{out}"
    );
    let o = check(&[&system, &digits], &["--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["checked"], serde_json::json!(["dynamics", "digits"]));
    assert_eq!(
        v["absent"],
        serde_json::json!([
            "emlp",
            "gp",
            "chnn",
            "bma",
            "policy",
            "augerino",
            "simplex",
            "student",
            "ntk",
            "gyroscope",
            "spring",
            "wiski-stem"
        ])
    );
    assert!(v["gp"].is_null() && v["model"]["pass"] == true && v["pass"] == true);

    // No model line, a missing one under --require-all, or no dynamics line: bad input (exit 2),
    // said in one line.
    for (lines, extra, needle) in [
        (vec![system.as_str()], &[][..], "no 'KEEL-FW model=' line"),
        (
            vec![system.as_str(), digits.as_str()],
            &["--require-all"][..],
            "--require-all: no 'KEEL-FW model=' line for emlp, gp, chnn, bma, policy, augerino, simplex, student, ntk, gyroscope, spring, wiski-stem",
        ),
        (vec![digits.as_str()], &[][..], "no 'KEEL-FW system=' line"),
    ] {
        let o = check(&lines, extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }

    // A present line is checked: a wrong one fails the run (exit 1) and the others still pass.
    let o = check(&[&system, &digits, seed_gp], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.contains("(dynamics, digits, gp)") && out.contains("WISKI"),
        "{out}"
    );
    let (head, logits) = digits.split_once("logits=").unwrap();
    let wrong = format!("{head}logits=41200000{}", &logits[8..]);
    let o = check(&[&system, &wrong], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
