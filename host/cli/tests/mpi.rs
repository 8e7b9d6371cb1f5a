//! `keel` over MPI ranks (`mpirun --oversubscribe -np 2` and 4 on the machine running the tests):
//! data-parallel HMC gives the single process's chain, runs split over ranks gather into the
//! single process's files, a failing rank ends the job, bad input is one line from rank 0 and a
//! non-zero exit. Built with the `mpi` feature only (`cargo test -p keel-cli --features mpi
//! --test mpi`; needs `mpirun` on the PATH); without it, only the refusal to run under a launcher
//! is tested (it needs no launcher: the launcher's variables are set by hand).

mod common;

use std::path::Path;
#[cfg(feature = "mpi")]
use std::path::PathBuf;
use std::process::{Command, Output};

use common::stderr;

const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn digits() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/data/digits.csv")
        .display()
        .to_string()
}

#[cfg(feature = "mpi")]
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keel-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `keel args` as `np` MPI ranks (`None`: one process without a launcher), ended after two
/// minutes if it hangs (`timeout` exits 124 then).
fn keel_on(np: Option<usize>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = match np {
        None => Command::new(KEEL),
        Some(np) => {
            let mut c = Command::new("timeout");
            c.args([
                "120",
                "mpirun",
                "--allow-run-as-root",
                "--oversubscribe",
                "-np",
            ])
            .arg(np.to_string())
            .arg(KEEL);
            c
        }
    };
    c.args(args);
    if args.first() != Some(&"info") {
        c.args(["--device", "cpu"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run keel (is mpirun on the PATH?)")
}

/// Keel's own error lines in a run's stderr (not mpirun's banners).
#[cfg(feature = "mpi")]
fn keel_errors(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

#[cfg(feature = "mpi")]
fn samples(path: &Path) -> keel::bayes::samples::SampleSet {
    keel::bayes::samples::SampleSet::load(path).unwrap()
}

#[cfg(feature = "mpi")]
fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout).expect("one JSON report, from rank 0 only")
}

#[cfg(feature = "mpi")]
const HMC: [&str; 20] = [
    "bayes",
    "hmc",
    "--target",
    "label",
    "--model",
    "mlp:16",
    "--prior-std",
    "0.447",
    "--step-size",
    "5e-3",
    "--trajectory-length",
    "0.1",
    "--chains",
    "2",
    "--samples",
    "8",
    "--burn-in",
    "2",
    "--json",
    "--quiet",
];

/// Data-parallel HMC: the chain on 2 and 4 ranks (each with a shard of the rows, the
/// likelihood and gradient summed at every leapfrog step) is the single process's, up to the
/// order of the sum: the same decisions and sample count, the samples within 1e-10.
#[cfg(feature = "mpi")]
#[test]
fn rows_over_ranks_give_the_single_process_chain() {
    let dir = scratch("rows");
    let data = digits();
    let run = |np: Option<usize>, file: &str| {
        let out = dir.join(file);
        let mut args = HMC.to_vec();
        let out_s = out.display().to_string();
        args.extend(["--data", &data, "--save-samples", &out_s]);
        (json(&keel_on(np, &args, &[])), samples(&out))
    };
    let (r1, s1) = run(None, "one.safetensors");
    assert_eq!(r1["ranks"], 1);
    for np in [2, 4] {
        let (r, s) = run(Some(np), &format!("np{np}.safetensors"));
        assert_eq!(r["ranks"], np);
        assert_eq!(r["distribute"], "rows");
        assert_eq!(r["train_rows"], r1["train_rows"]);
        assert_eq!(
            r["acceptance_rate_per_chain"], r1["acceptance_rate_per_chain"],
            "np {np}"
        );
        assert_eq!(
            s.chain, s1.chain,
            "np {np}: which chain each sample came from"
        );
        assert_eq!(s.samples.len(), s1.samples.len());
        let worst = s
            .samples
            .iter()
            .zip(&s1.samples)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0f64, f64::max);
        assert!(worst < 1e-10, "np {np}: samples differ by {worst:e}");
        // The test metrics come from the same samples.
        let (a, b) = (&r["test"]["nll"], &r1["test"]["nll"]);
        assert!(
            (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-8,
            "{a} {b}"
        );
    }
    // The chain moved (equal samples would prove nothing otherwise).
    assert!(s1.samples.len() >= 8 && s1.samples[0] != s1.samples[1]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whole chains over ranks, gathered on rank 0: byte for byte the single process's file.
#[cfg(feature = "mpi")]
#[test]
fn chains_over_ranks_gather_into_the_same_file() {
    let dir = scratch("chains");
    let data = digits();
    let run = |np: Option<usize>, file: &str| {
        let out = dir.join(file);
        let out_s = out.display().to_string();
        let mut args = HMC.to_vec();
        args[13] = "3"; // --chains 3 over 2 ranks: rank 0 runs chains 0 and 2.
        args.extend([
            "--data",
            &data,
            "--save-samples",
            &out_s,
            "--distribute",
            "chains",
        ]);
        let r = json(&keel_on(np, &args, &[]));
        (r, std::fs::read(&out).unwrap())
    };
    let (r1, one) = run(None, "one.safetensors");
    let (r2, two) = run(Some(2), "two.safetensors");
    assert_eq!(r2["distribute"], "chains");
    assert_eq!(
        r1["acceptance_rate_per_chain"],
        r2["acceptance_rate_per_chain"]
    );
    assert!(
        one == two,
        "the gathered sample file differs from the single process's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ensemble members over 2 and 3 ranks, gathered on rank 0: the single process's file.
#[cfg(feature = "mpi")]
#[test]
fn ensemble_members_over_ranks_gather_into_the_same_file() {
    let dir = scratch("ensemble");
    let data = digits();
    let run = |np: Option<usize>, file: &str| {
        let out = dir.join(file);
        let out_s = out.display().to_string();
        let args = [
            "bayes",
            "ensemble",
            "--data",
            &data,
            "--model",
            "mlp:16",
            "--lr",
            "1e-3",
            "--epochs",
            "2",
            "--members",
            "4",
            "--save-samples",
            &out_s,
            "--json",
            "--quiet",
        ];
        let r = json(&keel_on(np, &args, &[]));
        (r, std::fs::read(&out).unwrap())
    };
    let (r1, one) = run(None, "one.safetensors");
    for np in [2, 3] {
        let (r, f) = run(Some(np), &format!("np{np}.safetensors"));
        assert_eq!(r["test"], r1["test"], "np {np}");
        assert!(
            f == one,
            "np {np}: the gathered members differ from the single process's"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `keel simplex train` over MPI ranks: ESPRO's components train on rank c mod N and rank 0
/// assembles them — the single process's model file and report, on 2 and 3 ranks; a run over
/// 2 ranks stopped (each rank keeps its own checkpoint, `F.rank<r>`) and resumed ends with the
/// same file.
#[cfg(feature = "mpi")]
#[test]
fn simplex_components_over_ranks_give_the_single_process_model() {
    let dir = scratch("simplex");
    let data = digits();
    let run = |np: Option<usize>, file: &str, extra: &[&str]| {
        let out = dir.join(file);
        let out_s = out.display().to_string();
        let mut args = vec![
            "simplex",
            "train",
            "--data",
            &data,
            "--model",
            "mlp:16",
            "--components",
            "3",
            "--vertices",
            "2",
            "--base-epochs",
            "2",
            "--vertex-epochs",
            "1",
            "--export",
            &out_s,
            "--json",
            "--quiet",
        ];
        args.extend(extra);
        let o = keel_on(np, &args, &[]);
        (o, out)
    };
    let read = |(o, out): (Output, PathBuf)| (json(&o), std::fs::read(out).unwrap());
    let (r1, one) = read(run(None, "one.keel", &[]));
    assert_eq!(r1["ranks"], 1);
    for np in [2, 3] {
        let (r, f) = read(run(Some(np), &format!("np{np}.keel"), &[]));
        assert_eq!(r["ranks"], np);
        for key in [
            "test_accuracy",
            "test_nll",
            "history",
            "volume",
            "forward_passes",
        ] {
            assert_eq!(r[key], r1[key], "np {np}: {key}");
        }
        assert!(
            f == one,
            "np {np}: the assembled model differs from the single process's"
        );
    }
    // Stopped after 2 epochs of each rank's plan, then resumed: each rank its own checkpoint.
    let ck = dir.join("ck.safetensors");
    let ck_s = ck.display().to_string();
    let (o, out) = run(
        Some(2),
        "resumed.keel",
        &["--checkpoint", &ck_s, "--stop-after", "2"],
    );
    let partial = json(&o);
    assert_eq!(partial["stopped"], true);
    for r in 0..2 {
        assert!(
            dir.join(format!("ck.safetensors.rank{r}")).exists(),
            "rank {r}"
        );
    }
    assert!(!ck.exists());
    let _ = std::fs::remove_file(&out);
    let (r, f) = read(run(
        Some(2),
        "resumed.keel",
        &["--checkpoint", &ck_s, "--resume"],
    ));
    assert_eq!(r["test_nll"], r1["test_nll"]);
    assert!(f == one, "the resumed run's model differs");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `keel rl train` sweep over 3 ranks (run i on rank i mod 3): the single process's JSON
/// lines, in the same order, and its policy files byte for byte.
#[cfg(feature = "mpi")]
#[test]
fn rl_sweep_over_ranks_gives_the_single_process_runs() {
    let dir = scratch("rl");
    let run = |np: Option<usize>, tag: &str| {
        let template = dir.join(format!("{tag}-h{{horizon}}-s{{seed}}.safetensors"));
        let template = template.display().to_string();
        let mut args = common::SHORT_RL_RUN.to_vec();
        args.extend([
            "--seeds",
            "0-1",
            "--horizons",
            "0,2",
            "--export",
            &template,
            "--json",
        ]);
        let o = keel_on(np, &args, &[]);
        assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| common::without_timings(serde_json::from_str(l).unwrap()))
            .collect::<Vec<_>>()
    };
    let one = run(None, "one");
    let three = run(Some(3), "three");
    assert_eq!(one.len(), 4);
    assert_eq!(one, three);
    for h in [0, 2] {
        for s in [0, 1] {
            let f = |tag: &str| std::fs::read(dir.join(format!("{tag}-h{h}-s{s}.safetensors")));
            assert!(f("one").unwrap() == f("three").unwrap(), "h {h} seed {s}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SGLD chains over 2 ranks, gathered on rank 0: the single process's file.
#[cfg(feature = "mpi")]
#[test]
fn sgld_chains_over_ranks_gather_into_the_same_file() {
    let dir = scratch("sgld");
    let data = digits();
    let run = |np: Option<usize>, file: &str| {
        let out = dir.join(file);
        let out_s = out.display().to_string();
        let args = [
            "bayes",
            "sgld",
            "--data",
            &data,
            "--model",
            "mlp:16",
            "--lr",
            "1e-4",
            "--epochs",
            "6",
            "--burn-in",
            "2",
            "--sample-every",
            "2",
            "--chains",
            "3",
            "--save-samples",
            &out_s,
            "--json",
            "--quiet",
        ];
        let r = json(&keel_on(np, &args, &[]));
        (r, std::fs::read(&out).unwrap())
    };
    let (r1, one) = run(None, "one.safetensors");
    let (r2, two) = run(Some(2), "two.safetensors");
    assert_eq!(r1["n_samples"], r2["n_samples"]);
    assert!(
        one == two,
        "the gathered chains differ from the single process's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rank that fails after the start ends the job with its message (no hang, no file).
#[cfg(feature = "mpi")]
#[test]
fn a_failing_rank_ends_the_job() {
    let dir = scratch("fail");
    let out = dir.join("never.safetensors");
    let out_s = out.display().to_string();
    let data = digits();
    let mut args = HMC.to_vec();
    args.extend(["--data", &data, "--save-samples", &out_s]);
    let o = keel_on(Some(2), &args, &[("KEEL_MPI_FAIL_RANK", "1")]);
    assert_ne!(o.status.code(), Some(0));
    assert_ne!(o.status.code(), Some(124), "the job hung");
    let errors = keel_errors(&o);
    assert_eq!(errors.len(), 1, "{}", stderr(&o));
    assert!(
        errors[0].contains("rank 1 of 2") && errors[0].contains("failed on purpose"),
        "{errors:?}"
    );
    assert!(o.stdout.is_empty());
    assert!(!out.exists(), "a failed job wrote its output");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad input over ranks: one line from rank 0, a non-zero exit, nothing written.
#[cfg(feature = "mpi")]
#[test]
fn bad_input_over_ranks_is_one_line_from_rank_0() {
    let dir = scratch("bad");
    let data = digits();
    let out = dir.join("never.safetensors");
    let out_s = out.display().to_string();
    let expect = |o: Output, needles: &[&str]| {
        assert_eq!(o.status.code(), Some(2), "{:?}: {}", o.status, stderr(&o));
        let errors = keel_errors(&o);
        assert_eq!(errors.len(), 1, "one line from rank 0: {}", stderr(&o));
        for n in needles {
            assert!(errors[0].contains(n), "{errors:?} should mention {n}");
        }
        assert!(o.stdout.is_empty());
        assert!(!out.exists());
    };
    // A rank whose data differs from rank 0's: the same command line, run from two folders whose
    // `d.csv` differ in one value (MPMD launch, `-wdir`).
    let (here, there) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&there).unwrap();
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(here.join("d.csv"), &text).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[5] = lines[5].replacen('0', "1", 1);
    std::fs::write(there.join("d.csv"), lines.join("\n") + "\n").unwrap();
    let mut args: Vec<&str> = HMC.to_vec();
    args.extend([
        "--data",
        "d.csv",
        "--save-samples",
        &out_s,
        "--device",
        "cpu",
    ]);
    let mpmd = |rank1_extra: &[&str]| {
        let mut c = Command::new("timeout");
        c.args(["120", "mpirun", "--allow-run-as-root", "--oversubscribe"]);
        c.arg("-np")
            .arg("1")
            .arg("-wdir")
            .arg(&here)
            .arg(KEEL)
            .args(&args);
        c.arg(":")
            .arg("-np")
            .arg("1")
            .arg("-wdir")
            .arg(&there)
            .arg(KEEL)
            .args(&args);
        c.args(rank1_extra);
        c.output().unwrap()
    };
    expect(mpmd(&[]), &["rank 1 of 2", "other data"]);
    // The same data but another flag on rank 1 (harmless here; another --stop-after would leave
    // rank 0 waiting): refused too.
    std::fs::write(there.join("d.csv"), &text).unwrap();
    expect(
        mpmd(&["--checkpoint-every", "5"]),
        &["rank 1 of 2", "every flag"],
    );
    // More ranks than training rows (5 rows: 1 for testing, 4 for training).
    let tiny = dir.join("tiny.csv");
    std::fs::write(
        &tiny,
        "a,b,y\n1,2,0.5\n2,1,0.1\n3,3,0.9\n4,0,0.3\n0,4,0.7\n",
    )
    .unwrap();
    let tiny_s = tiny.display().to_string();
    let args = [
        "bayes",
        "hmc",
        "--data",
        &tiny_s,
        "--likelihood",
        "gaussian",
        "--model",
        "mlp:4",
        "--step-size",
        "1e-3",
        "--samples",
        "2",
        "--save-samples",
        &out_s,
    ];
    expect(
        keel_on(Some(5), &args, &[]),
        &["mpirun -np", "more ranks than the 4 training rows"],
    );
    // A missing file on every rank, a command that runs as one process, a usage error.
    let mut args = HMC.to_vec();
    args.extend(["--data", "missing.csv", "--save-samples", &out_s]);
    expect(keel_on(Some(2), &args, &[]), &["missing.csv"]);
    expect(
        keel_on(
            Some(2),
            &[
                "fit", "--data", &data, "--target", "label", "--task", "classify",
            ],
            &[],
        ),
        &["keel fit runs as one process"],
    );
    expect(
        keel_on(Some(2), &["bayes", "hmc", "--chainz", "2"], &[]),
        &["--chainz"],
    );
    // Simplexes: a component per rank; a mode-connecting complex trains as one process.
    let simplex = |extra: &[&str]| {
        let mut args = vec![
            "simplex", "train", "--data", &data, "--model", "mlp:8", "--export", &out_s,
        ];
        args.extend(extra);
        keel_on(Some(3), &args, &[])
    };
    expect(
        simplex(&["--components", "2"]),
        &["--components", "at least one per rank (3 ranks)"],
    );
    expect(
        simplex(&["--modes", "3"]),
        &["--modes", "trains as one process"],
    );
    // A sweep needs a run per rank.
    expect(
        keel_on(
            Some(3),
            &["rl", "train", "--env", "pendulum", "--seeds", "0,1"],
            &[],
        ),
        &["--seeds", "at least one run per rank (3 ranks)"],
    );
    // --distribute chains needs a chain per rank and writes no checkpoints.
    let mut args = HMC.to_vec();
    args.extend(["--data", &data, "--distribute", "chains", "--chains", "1"]);
    let args: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| !(12..=13).contains(i))
        .map(|(_, a)| *a)
        .collect();
    expect(
        keel_on(Some(2), &args, &[]),
        &["--chains", "one chain per MPI rank"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `keel info` says MPI is compiled in, and the rank and size under a launcher (rank 0 only).
#[cfg(feature = "mpi")]
#[test]
fn info_reports_the_ranks() {
    let o = Command::new("timeout")
        .args([
            "120",
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "2",
            KEEL,
        ])
        .args(["info", "--json"])
        .output()
        .unwrap();
    let v = json(&o);
    assert_eq!(v["mpi"]["compiled"], true);
    assert_eq!(v["mpi"]["rank"], 0);
    assert_eq!(v["mpi"]["size"], 2);
    let alone = Command::new(KEEL)
        .args(["info", "--json"])
        .output()
        .unwrap();
    let v = json(&alone);
    assert_eq!(v["mpi"]["size"], serde_json::Value::Null);
}

/// A build without MPI started as one of several ranks refuses (exit 2): rank 0 says how to
/// build with MPI, the others say nothing. The launcher's variables are set by hand.
#[cfg(not(feature = "mpi"))]
#[test]
fn without_mpi_a_launched_rank_refuses() {
    let data = digits();
    let args = [
        "bayes",
        "hmc",
        "--data",
        data.as_str(),
        "--step-size",
        "1e-3",
    ];
    for (rank, says) in [("0", true), ("1", false)] {
        let o = keel_on(
            None,
            &args,
            &[
                ("OMPI_COMM_WORLD_SIZE", "2"),
                ("OMPI_COMM_WORLD_RANK", rank),
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
        let err = stderr(&o);
        if says {
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("built without MPI support") && err.contains("--features mpi"));
        } else {
            assert!(err.is_empty(), "rank 1 printed: {err}");
        }
    }
    // One rank under a launcher is a process alone.
    let o = keel_on(
        None,
        &["info", "--json"],
        &[("OMPI_COMM_WORLD_SIZE", "1"), ("OMPI_COMM_WORLD_RANK", "0")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
