//! Every file Keel reads is checked against its own description before use (issue 19 §4), and
//! the fuzz targets' seeds and regressions replay here (§5).
//!
//! - Sample sets: a configuration that disagrees with the tensors is refused on reading, and
//!   `bayes export`/`firmware check` refuse a network that does not fit (the panic at
//!   `bayes/samples.rs`).
//! - Training checkpoints (`checkpoint.rs`, `bayes/checkpoint.rs`, `rl/checkpoint.rs`) carry a
//!   checksum (`checksum.rs`): a flipped byte, a renamed or unknown tensor is refused.
//! - Learned dynamics with an absurd weight stop at the rollout's step bound.
//! - `host/fuzz/seeds/<target>/*` are accepted and `host/fuzz/regressions/<target>/*` handled
//!   by `host/fuzz/harness.rs`, the code the fuzz targets run.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel::bayes::samples::{bma_engine, SampleSet, Spec};
use keel::Error;
use keel_core::io::SafeTensors;
use serde_json::json;

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn assets() -> PathBuf {
    dir("../firmware/assets")
}

/// The files of `host/fuzz/<kind>/<target>/`, sorted (none if the folder does not exist).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir(&format!("fuzz/{kind}/{target}"))) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The malformed-file reason of `r`, or a panic naming what came instead.
fn malformed<T>(r: keel::Result<T>) -> String {
    match r {
        Err(Error::Malformed { reason, .. }) => reason,
        Err(e) => panic!("expected a malformed-file error, got: {e}"),
        Ok(_) => panic!("expected a malformed-file error, the file was accepted"),
    }
}

/// The byte range of tensor `name`'s data in a safetensors file.
fn data_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let st = SafeTensors::<'_, 1024>::parse(bytes).unwrap();
    let data = st.tensor(name).unwrap().data();
    let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
    start..start + data.len()
}

/// `bytes` with the first occurrence of `from` replaced by `to` (same length).
fn replaced(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("no {from}"));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to.as_bytes());
    out
}

// --- the fuzz targets' inputs ---------------------------------------------------------------

#[test]
fn every_fuzz_seed_is_accepted() {
    for target in harness::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for path in seeds {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                harness::run(target, &bytes, &assets()),
                "{target}: {} is refused",
                path.display()
            );
        }
    }
}

/// Each input once crashed, hung or exhausted memory in a fuzz target (each is named for what
/// it found, and a test below says how it is handled now); now each is refused or accepted
/// within seconds, and the harness's checks hold.
#[test]
fn every_fuzz_regression_is_handled() {
    for target in harness::TARGETS {
        for path in inputs("regressions", target) {
            let bytes = std::fs::read(&path).unwrap();
            let t0 = std::time::Instant::now();
            harness::run(target, &bytes, &assets());
            assert!(
                t0.elapsed().as_secs() < 10,
                "{target}: {} took {:?}",
                path.display(),
                t0.elapsed()
            );
        }
    }
}

/// `host/fuzz/regressions/<target>/<name>`'s bytes.
fn regression(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(dir(&format!("fuzz/regressions/{target}/{name}"))).unwrap()
}

/// Found by the `models` target: a `bma` file with a NaN among its weights. The host engine's
/// average used to return NaN probabilities, which `firmware check`'s largest-difference fold
/// passed over; now it refuses the file, and the core's reader reports the non-finite output.
#[test]
fn a_model_average_with_a_nan_weight_is_refused() {
    let bytes = regression("models", "bma-non-finite-weights.safetensors");
    let why = malformed(bma_engine(&bytes, Path::new("bma"), &[0.1, 0.2]));
    assert!(
        why.contains("non-finite weight (sample 0, parameter 7)"),
        "{why}"
    );
    let st = SafeTensors::<'_, 8>::parse(&bytes).unwrap();
    let bma = keel_core::nn::Bma::<'_, 4>::from_safetensors(&st).unwrap();
    let mut p = vec![0.0f64; bma.classes()];
    let mut scratch = vec![0.0f64; bma.scratch_len()];
    let e = bma.predict(&[0.1, 0.2], &mut p, &mut scratch).unwrap_err();
    assert!(matches!(e, keel_core::Error::NonFinite { .. }), "{e:?}");
}

/// Found by the `models` target: a policy with NaN weights. Acting on it is an error naming
/// the non-finite action, not a NaN handed to the actuator.
#[test]
fn a_policy_with_nan_weights_reports_a_non_finite_action() {
    let bytes = regression("models", "policy-nan-action.safetensors");
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let policy = keel_core::rl::Policy::<'_, 8>::from_safetensors(&st).unwrap();
    let obs = vec![0.0f32; policy.observations()];
    let mut action = vec![0.0f32; policy.actions()];
    let mut scratch = vec![0.0f32; policy.scratch_len()];
    let e = policy.act(&obs, &mut action, &mut scratch).unwrap_err();
    assert!(matches!(e, keel_core::Error::NonFinite { .. }), "{e:?}");
}

/// Found by the `samples` target: an HMC set recording 2³² − 1 chains, its one sample in chain
/// 2³² − 2. The set is what its description says; `bayes compare`'s R̂ used to allocate a list
/// per chain number (out of memory) and now finds that chains are missing (no R̂).
#[test]
fn a_sample_set_numbering_chains_in_the_billions_has_no_rhat() {
    let bytes = regression(
        "samples",
        "chain-number-4294967294-allocates-a-list-per-chain.safetensors",
    );
    let set = SampleSet::from_bytes(&bytes, Path::new("set")).unwrap();
    assert_eq!(set.chain, vec![4_294_967_294]);
    let preds = vec![vec![0.5, 0.5]; set.samples.len()];
    let likelihood = keel::bayes::mlp::Likelihood::Categorical { classes: 2 };
    assert_eq!(
        keel::bayes::samples::function_space_rhat(&preds, &set.chain, likelihood),
        None
    );
    // Two full chains still have one.
    let preds: Vec<Vec<f64>> = (0..6).map(|i| vec![0.1 * i as f64, 0.3]).collect();
    assert!(
        keel::bayes::samples::function_space_rhat(&preds, &[0, 0, 0, 1, 1, 1], likelihood)
            .is_some()
    );
}

/// A firmware log whose numbers are NaN fails its check: the largest difference used to be
/// taken with `f64::max`, which passes over a NaN (the dynamics state, the EMLP outputs, the
/// digits logits, the model average's probabilities; also the policy's state and values).
#[test]
fn a_firmware_log_of_nans_fails_its_checks() {
    let log = std::fs::read_to_string(dir("fuzz/seeds/firmware_log/all-lines.log")).unwrap();
    let run = keel::firmware::parse(&log).unwrap();
    assert!(keel::firmware::check(&run).unwrap().pass);
    let mut nan = run.clone();
    nan.state[1] = f32::NAN;
    let c = keel::firmware::check(&nan).unwrap();
    assert!(!c.pass, "{c:?}");

    let bytes = std::fs::read(assets().join(keel::firmware::EMLP_SAMPLES)).unwrap();
    let st = SafeTensors::<'_, 4>::parse(&bytes).unwrap();
    let y = st.tensor("y").unwrap();
    let y: Vec<f32> = (0..y.len()).map(|i| y.get_f32(i).unwrap()).collect();
    let mut emlp = keel::firmware::FirmwareEmlpRun {
        y: y.clone(),
        yg: y,
    };
    assert!(keel::firmware::check_emlp(&emlp, &assets()).unwrap().pass);
    emlp.y[0] = f32::NAN;
    assert!(!keel::firmware::check_emlp(&emlp, &assets()).unwrap().pass);

    // The digits logits and the model average's probabilities, as the host computes them (a
    // firmware that agrees exactly), then with one NaN.
    let host = keel::firmware::host_digits(&assets()).unwrap();
    let mut digits = keel::firmware::FirmwareModelRun {
        classes: host.classes.clone(),
        logits: host.logits.clone(),
    };
    assert!(keel::firmware::compare_model(&digits, &host).pass);
    digits.logits[3] = f32::NAN;
    assert!(!keel::firmware::compare_model(&digits, &host).pass);
    let host = keel::firmware::host_bma(&assets()).unwrap();
    let mut bma = keel::firmware::FirmwareBmaRun {
        members: 10,
        classes: host.classes.clone(),
        probs: host.probs.iter().map(|&p| p as f32).collect(),
    };
    assert!(keel::firmware::compare_bma(&bma, &host).pass);
    bma.probs[0] = f32::NAN;
    assert!(!keel::firmware::compare_bma(&bma, &host).pass);
}

// --- sample sets ----------------------------------------------------------------------------

/// A 3-member ensemble of `[4, 3, 3]` networks (27 parameters), three classes.
fn ensemble() -> SampleSet {
    let spec = Spec {
        method: "ensemble".into(),
        hidden: vec![3],
        cnn: None,
        likelihood: "categorical".into(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        prior: "gaussian".into(),
        prior_std: 1.0,
        mixture_weight: 0.5,
        mixture_ratio: 4.0,
        temperature: 1.0,
        data: "iris.csv".into(),
        target: "species".into(),
        rows: 150,
        test_fraction: 0.2,
        split_seed: 0,
        standardize: Default::default(),
        settings: json!({"lr": 1e-3, "epochs": 5, "batch_size": 16, "members": 3, "seed": 0}),
    };
    SampleSet {
        spec,
        samples: (0..3)
            .map(|m| (0..27).map(|i| (m * 27 + i) as f64 * 0.01).collect())
            .collect(),
        chain: vec![0, 1, 2],
    }
}

/// Saves `set` and reads it back.
fn round_trip(set: &SampleSet) -> keel::Result<SampleSet> {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("set.safetensors");
    set.save(&path).unwrap();
    SampleSet::load(&path)
}

#[test]
fn a_sample_set_whose_configuration_disagrees_with_its_tensors_is_refused() {
    let good = ensemble();
    let back = round_trip(&good).unwrap();
    assert_eq!(
        (back.samples, back.chain),
        (good.samples.clone(), good.chain.clone())
    );

    // The configuration says 10 members; the file holds 3.
    let mut ten = ensemble();
    ten.spec.settings["members"] = json!(10);
    let why = malformed(round_trip(&ten));
    assert!(why.contains("3 samples for 10 members"), "{why}");

    // Hidden widths [10] need 10·d + 10 + 10·3 + 3 parameters: no d gives 27.
    let mut wide = ensemble();
    wide.spec.hidden = vec![10];
    let why = malformed(round_trip(&wide));
    assert!(
        why.contains("27 parameters") && why.contains("[10]"),
        "{why}"
    );

    // Two classes make [d, 3, 2] (3d + 11): 27 − 11 = 16 is not a multiple of 3.
    let mut two = ensemble();
    two.spec.classes.pop();
    let why = malformed(round_trip(&two));
    assert!(why.contains("27 parameters"), "{why}");

    // Members numbered out of order, a method that does not exist, a likelihood without
    // classes, a zero width.
    let mut shuffled = ensemble();
    shuffled.chain = vec![0, 2, 1];
    assert!(malformed(round_trip(&shuffled)).contains("members"));
    let mut method = ensemble();
    method.spec.method = "magic".into();
    assert!(malformed(round_trip(&method)).contains("unknown method 'magic'"));
    let mut classes = ensemble();
    classes.spec.classes.clear();
    assert!(malformed(round_trip(&classes)).contains("0 classes"));
    let mut zero = ensemble();
    zero.spec.hidden = vec![3, 0];
    assert!(malformed(round_trip(&zero)).contains("include 0"));

    // HMC: chains beyond the settings', or more samples in a chain than it drew.
    let mut hmc = ensemble();
    hmc.spec.method = "hmc".into();
    hmc.spec.settings = json!({"chains": 2, "samples": 2});
    hmc.chain = vec![0, 1, 1];
    round_trip(&hmc).unwrap();
    hmc.chain = vec![0, 1, 2];
    assert!(malformed(round_trip(&hmc)).contains("chain 2 of a run with 2 chains"));
    hmc.chain = vec![1, 1, 1];
    assert!(malformed(round_trip(&hmc)).contains("3 samples in chain 1"));
}

#[test]
fn a_sample_set_file_with_other_tensors_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("set.safetensors");
    ensemble().save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let load = |b: &[u8]| SampleSet::from_bytes(b, Path::new("set"));
    load(&bytes).unwrap();
    // `chain` as I32, `samples` renamed, an empty set.
    assert!(malformed(load(&replaced(&bytes, "\"U32\"", "\"I32\""))).contains("U32"));
    assert!(malformed(load(&replaced(&bytes, "\"samples\"", "\"sampler\""))).contains("sampler"));
    let st = SafeTensors::<'_, 8>::parse(&bytes).unwrap();
    let meta: BTreeMap<String, String> = st
        .metadata_entries()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let empty = keel::export::safetensors_bytes_typed(
        &[
            ("samples".into(), "F64", vec![0, 27], vec![]),
            ("chain".into(), "U32", vec![0], vec![]),
        ],
        &meta,
    );
    assert!(malformed(load(&empty)).contains("no samples"));
}

/// The path: `bayes export` of samples drawn for another network wrote a `bma` file,
/// and `firmware check` then panicked slicing it. Now both refuse, naming the sizes.
#[test]
fn a_model_average_of_another_network_is_refused_not_a_panic() {
    let data = keel::data::parse_csv(
        "a,b,label\n0.1,0.2,0\n0.4,0.1,1\n-0.3,0.5,0\n0.9,-0.2,1\n0.3,0.3,1\n",
        Path::new("mem.csv"),
        "label",
        true,
    )
    .unwrap();
    let split = keel::bayes::mlp::Split::new(&data, 0.0, 0).unwrap();
    let mut set = ensemble();
    set.spec.classes.pop();
    // 27 parameters per sample; the network [2, 3, 2] of these data has 17.
    let e = keel::bayes::samples::bma_bytes(&set, &split, &[2, 3, 2], 2).unwrap_err();
    assert!(
        e.to_string().contains("27 parameters") && e.to_string().contains("has 17"),
        "{e}"
    );
    // A `bma` file whose widths disagree with its samples, as the old export could write.
    set.samples = vec![vec![0.0; 17]; 3];
    let bytes = keel::bayes::samples::bma_bytes(&set, &split, &[2, 3, 2], 2).unwrap();
    bma_engine(&bytes, Path::new("ok"), &[0.1, 0.2]).unwrap();
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let sizes = data_range(&bytes, "sizes");
    let mut bad = bytes.clone();
    bad[sizes.clone()].copy_from_slice(&f32s(&[2.0, 9.0, 2.0]));
    let why = malformed(bma_engine(&bad, Path::new("bad"), &[0.1, 0.2]));
    assert!(why.contains("[2, 9, 2]"), "{why}");
    bad[sizes].copy_from_slice(&f32s(&[0.0, 3.0, 2.0]));
    assert!(malformed(bma_engine(&bad, Path::new("bad"), &[0.1, 0.2])).contains("widths"));
}

// --- training checkpoints -------------------------------------------------------------------

/// A training checkpoint of the fuzz context after one Adam step, with a `best` copy and a
/// loss series.
fn train_checkpoint(path: &Path) {
    let (mut params, mut opt, rng, order, best) = harness::train_context();
    let grads: Vec<keel::Tensor> = params
        .values()
        .iter()
        .map(|p| p.mul_scalar(0.5).unwrap())
        .collect();
    opt.step(&mut params, &grads, 1e-2).unwrap();
    keel::checkpoint::save(
        path,
        &keel::checkpoint::Snapshot {
            kind: harness::TRAIN_KIND,
            fingerprint: harness::FINGERPRINT,
            epoch: 1,
            params: &params,
            opt: &opt,
            rng: &rng,
            order: &order,
            extra_params: &[("best", &best)],
            series: &[("loss", &[0.5])],
            meta: BTreeMap::new(),
        },
    )
    .unwrap();
}

/// Loads a training checkpoint into the fuzz context.
fn load_train(path: &Path) -> keel::Result<keel::checkpoint::Restored> {
    let (mut params, mut opt, mut rng, mut order, mut best) = harness::train_context();
    keel::checkpoint::load(
        path,
        harness::TRAIN_KIND,
        harness::FINGERPRINT,
        &mut params,
        &mut opt,
        &mut rng,
        &mut order,
        &mut [("best", &mut best)],
    )
}

#[test]
fn a_changed_training_checkpoint_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("ck");
    train_checkpoint(&path);
    let r = load_train(&path).unwrap();
    assert_eq!((r.epoch, &r.series["loss"]), (1, &vec![0.5]));
    let bytes = std::fs::read(&path).unwrap();
    let write = |b: &[u8]| std::fs::write(&path, b).unwrap();

    // One bit of a parameter, of an Adam moment, of the loss history: each used to resume.
    for name in ["param.0", "adam_v.1", "series.loss"] {
        let mut b = bytes.clone();
        b[data_range(&bytes, name).start] ^= 1;
        write(&b);
        let why = malformed(load_train(&path));
        assert!(why.contains("checksum"), "{name}: {why}");
    }
    // The epoch counter.
    write(&replaced(&bytes, "\"epoch\":\"1\"", "\"epoch\":\"2\""));
    assert!(malformed(load_train(&path)).contains("checksum"));
    // A renamed Adam moment: without it the run used to restart the moments silently. With
    // the checksum recomputed, the name itself is refused.
    let renamed = replaced(&bytes, "\"adam_m.1\"", "\"adam_q.1\"");
    write(&renamed);
    assert!(malformed(load_train(&path)).contains("checksum"));
    write(&keel::checksum::reseal(&renamed).unwrap());
    assert!(malformed(load_train(&path)).contains("unexpected tensor `adam_q.1`"));
    // Adam moments in halves.
    let unpaired = replaced(&bytes, "\"adam_m.1\"", "\"series.x\"");
    write(&keel::checksum::reseal(&unpaired).unwrap());
    assert!(malformed(load_train(&path)).contains("Adam moments of parameter 1"));
    // Another configuration is still its own error.
    write(&bytes);
    let (mut params, mut opt, mut rng, mut order, mut best) = harness::train_context();
    let e = keel::checkpoint::load(
        &path,
        harness::TRAIN_KIND,
        "another run",
        &mut params,
        &mut opt,
        &mut rng,
        &mut order,
        &mut [("best", &mut best)],
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, Error::InvalidInput { ref setting, .. } if setting == "resume"),
        "{e}"
    );
}

#[test]
fn a_changed_hmc_checkpoint_is_refused() {
    use keel::bayes::checkpoint::{load, save, Progress};
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("hmc");
    let running = [harness::hmc_running(5), harness::hmc_running(2)];
    save(
        &path,
        harness::FINGERPRINT,
        &Progress {
            finished: &[],
            running: &running,
        },
    )
    .unwrap();
    let target = harness::hmc_target();
    let cfg_of = |c: usize| Ok(harness::hmc_config(c));
    let load_it = || load(&path, harness::FINGERPRINT, &target, &cfg_of);
    let (_, back) = load_it().unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].samples, running[0].samples);
    assert_eq!(back[1].samples, running[1].samples);
    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    flipped[data_range(&bytes, "theta1").start] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(malformed(load_it()).contains("checksum"));
    let renamed = replaced(&bytes, "\"chain0.samples\"", "\"chain7.samples\"");
    std::fs::write(&path, keel::checksum::reseal(&renamed).unwrap()).unwrap();
    assert!(malformed(load_it()).contains("unexpected tensor `chain7.samples`"));
    // A running chain's state missing: `theta1` renamed to one no chain has.
    let renamed = replaced(&bytes, "\"theta1\"", "\"theta9\"");
    std::fs::write(&path, keel::checksum::reseal(&renamed).unwrap()).unwrap();
    assert!(malformed(load_it()).contains("unexpected tensor `theta9`"));
}

#[test]
fn a_changed_rl_checkpoint_is_refused() {
    use keel::rl::checkpoint::{load, save};
    use keel::rl::replay::Transition;
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("rl");
    let (agent, mut replay) = harness::rl_context();
    for k in 0..3 {
        replay.push(Transition {
            obs: vec![0.1 * k as f64, 0.2, -0.3],
            action: vec![0.5],
            reward: -1.0,
            next_obs: vec![0.2, 0.1 * k as f64, 0.0],
            terminal: false,
            last: k == 2,
        });
    }
    let state = harness::rl_loop_state();
    save(&path, harness::FINGERPRINT, &agent, &replay, &state).unwrap();
    let load_it = || {
        let (mut agent, mut replay) = harness::rl_context();
        load(
            &path,
            |fp| fp == harness::FINGERPRINT,
            &mut agent,
            &mut replay,
        )
        .map(|s| (s, replay))
    };
    let (back, r) = load_it().unwrap();
    assert_eq!((back, r.items.len()), (state, 3));
    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    flipped[data_range(&bytes, "replay.reward").start] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(malformed(load_it()).contains("checksum"));
    let renamed = replaced(&bytes, "\"replay.m2\"", "\"replay.q2\"");
    std::fs::write(&path, keel::checksum::reseal(&renamed).unwrap()).unwrap();
    assert!(malformed(load_it()).contains("unexpected tensor `replay.q2`"));
}

// --- learned dynamics -----------------------------------------------------------------------

/// A model file whose description asks for a network far larger than the file is refused
/// before anything is built (it used to allocate the network first).
#[test]
fn a_learned_dynamics_file_describing_a_huge_network_is_refused() {
    let bytes = std::fs::read(assets().join("chnn-pend2.safetensors")).unwrap();
    let saved = keel::chnn::export::from_bytes(&bytes, Path::new("pend2")).unwrap();
    let (h, l) = (saved.info.hidden, saved.info.layers);
    let huge = replaced(
        &bytes,
        &format!("\\\"hidden\\\":{h},"),
        &format!("\\\"hidden\\\":{},", "9".repeat(h.to_string().len())),
    );
    let why = malformed(keel::chnn::export::from_bytes(&huge, Path::new("huge")));
    assert!(why.contains(&format!("{l} × 999")), "{why}");
}

/// A potential weight of 10¹² makes the learned dynamics so stiff that the rollout needed more
/// steps than anyone waits for; it stops at the bound with an error that says so.
#[test]
fn learned_dynamics_with_an_absurd_weight_stop_at_the_step_bound() {
    use keel::chnn::train::{evaluate_within, test_set};
    let bytes = std::fs::read(assets().join("chnn-pend2.safetensors")).unwrap();
    let mut saved = keel::chnn::export::from_bytes(&bytes, Path::new("pend2")).unwrap();
    let system = saved.info.spec().unwrap();
    let test = test_set(system, 1).unwrap();
    // As trained: well within the bound.
    evaluate_within(&saved.net, &saved.params, system, &test, 2000).unwrap();
    let names = saved.params.names().to_vec();
    let last = names.iter().rposition(|n| n.ends_with(".weight")).unwrap();
    let w = saved.params.get(keel::params::ParamId(last));
    let scaled = w.mul_scalar(1e12).unwrap();
    saved
        .params
        .set(keel::params::ParamId(last), scaled)
        .unwrap();
    let e = evaluate_within(&saved.net, &saved.params, system, &test, 2000)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("more than 2000 steps"),
        "{e} ({})",
        names[last]
    );
}

// --- seeds ----------------------------------------------------------------------------------

/// Writes the seeds `host/fuzz/make-seeds.sh` does not make with the `keel` binary: one
/// checkpoint of each kind for the fuzz contexts, CSV tables, and a firmware log whose every
/// line parses (the dynamics line is the host's own result, so its check passes).
#[test]
#[ignore = "writes host/fuzz/seeds; run by host/fuzz/make-seeds.sh"]
fn write_fuzz_seeds() {
    let seeds = dir("fuzz/seeds");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(seeds.join(target)).unwrap();
        std::fs::write(seeds.join(target).join(name), bytes).unwrap();
    };
    let d = tempfile::tempdir().unwrap();
    let tmp = |name: &str| d.path().join(name);

    train_checkpoint(&tmp("train"));
    put(
        "checkpoints",
        "train.safetensors",
        &std::fs::read(tmp("train")).unwrap(),
    );
    keel::bayes::checkpoint::save(
        &tmp("hmc"),
        harness::FINGERPRINT,
        &keel::bayes::checkpoint::Progress {
            finished: &[harness::hmc_running(0).finish(&harness::hmc_config(0))],
            running: &[harness::hmc_running(3), harness::hmc_running(1)],
        },
    )
    .unwrap();
    put(
        "checkpoints",
        "hmc.safetensors",
        &std::fs::read(tmp("hmc")).unwrap(),
    );
    let (agent, mut replay) = harness::rl_context();
    replay.push(keel::rl::replay::Transition {
        obs: vec![0.1, 0.2, -0.3],
        action: vec![0.5],
        reward: -1.0,
        next_obs: vec![0.2, 0.1, 0.0],
        terminal: false,
        last: true,
    });
    keel::rl::checkpoint::save(
        &tmp("rl"),
        harness::FINGERPRINT,
        &agent,
        &replay,
        &harness::rl_loop_state(),
    )
    .unwrap();
    put(
        "checkpoints",
        "rl.safetensors",
        &std::fs::read(tmp("rl")).unwrap(),
    );

    put("csv", "numeric.csv", b"x,y,z\n0.5,-1e-3,2\n1,2.5E2,-0.25\n");
    put(
        "csv",
        "labels.csv",
        b"\"a\", b ,label\n0.1,0.2,cat\n\n0.4,0.1,dog\n-0.3,0.5,cat\n0.9,-0.2,bird\n",
    );
    put(
        "csv",
        "numeric-classes.csv",
        b"f,class\n1,10\n2,9\n3,10\n4,2\n",
    );

    let hex = |v: &[f32]| -> String {
        v.iter()
            .map(|x| format!("{:08x}", x.to_bits()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (angles, rates) = ([0.3f32, -0.2, 1.1], [0.0f32, 0.5, -0.3]);
    let line = |state: &[f32]| {
        format!(
            "KEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt={} steps=20 \
             angles={} rates={} state={}",
            hex(&[0.01]),
            hex(&angles),
            hex(&rates),
            hex(state)
        )
    };
    let probe = keel::firmware::parse(&line(&[0.0; 12])).unwrap();
    let state = keel::firmware::host_run(&probe).unwrap();
    let zeros = |n: usize| hex(&vec![0.0; n]);
    let classes = |n: usize| vec!["3"; n].join(",");
    let log = [
        "qemu: booting".to_string(),
        line(&state),
        format!(
            "KEEL-FW model=digits samples=2 classes={} logits={}",
            classes(2),
            zeros(20)
        ),
        format!(
            "KEEL-FW model=emlp samples=8 y={} yg={}",
            zeros(8),
            zeros(8)
        ),
        format!(
            "KEEL-FW model=gp method=wiski grid=16 lo={} hi={} outputscale={} lengthscale={} \
             noise={} seed=7 n=16 test={} mean={} var_f={} lml={}",
            hex(&[-3.0]),
            hex(&[3.0]),
            hex(&[1.3]),
            hex(&[0.7]),
            hex(&[0.04]),
            hex(&[-1.0, 0.5]),
            zeros(2),
            zeros(2),
            zeros(1)
        ),
        format!(
            "KEEL-FW model=bma samples=2 members=10 classes={} probs={}",
            classes(2),
            zeros(20)
        ),
        format!(
            "KEEL-FW model=policy env=pendulum steps=20 return={} state={} value0={} value_sum={}",
            zeros(1),
            zeros(2),
            zeros(1),
            zeros(1)
        ),
        format!(
            "KEEL-FW model=chnn links=2 dt={} steps=100 z0={} state={}",
            hex(&[0.03]),
            zeros(8),
            zeros(8)
        ),
        format!(
            "KEEL-FW model=ntk mean=network noise={} seed=11 task={} capacity=4 x={} y={} \
             test={} mu={} var_f={} mu_jvp={} network={}",
            hex(&[0.01]),
            zeros(3),
            hex(&[-1.0, 2.0]),
            zeros(2),
            hex(&[0.5]),
            zeros(1),
            zeros(1),
            zeros(1),
            zeros(1)
        ),
        format!(
            "KEEL-FW model=wiski-stem nodes=64 inputs=9 features=2 n0=100 rows=2 z={} y={} \
             mean={} var_f={} lml0={} final_mean={} final_var_f={} lml={} n=102",
            zeros(4),
            zeros(2),
            zeros(2),
            zeros(2),
            zeros(1),
            zeros(2),
            zeros(2),
            zeros(1)
        ),
        "KEEL-FW done".to_string(),
    ]
    .join("\n");
    put("firmware_log", "all-lines.log", log.as_bytes());
}
