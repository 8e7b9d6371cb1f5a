//! What each fuzz target feeds to which loader, shared by the targets (`fuzz_targets/*.rs`, one
//! line each) and by `host/tests/loaders.rs`, which replays every committed seed (each must be
//! accepted) and every regression input (each must be refused or accepted, never panic) through
//! the same functions.
//!
//! Every function takes arbitrary bytes, runs the loaders of its family on them exactly as the
//! commands do, checks what an accepted file promises, and returns whether some loader accepted
//! the input. A panic, an overflow (debug assertions are on), a hang or an allocation beyond
//! libFuzzer's `-rss_limit_mb` is a finding.

// Each includer uses a different subset.
#![allow(dead_code)]

use std::path::Path;

use keel::backend::DType;
use keel::bayes::hmc::{ChainState, Ensembling, HmcConfig};
use keel::bayes::linear::LinearGaussian;
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::Params;
use keel::rl::agent::{Agent, Config};
use keel::rl::checkpoint::LoopState;
use keel::rl::replay::Replay;
use keel::rl::train::Diagnostics;
use keel::tensor::Tensor;
use keel_core::io::SafeTensors;
use keel_core::random::Xoshiro256PlusPlus;

/// The targets, by name (each has `fuzz_targets/{name}.rs` and `seeds/{name}/`).
pub const TARGETS: [&str; 6] = [
    "models",
    "samples",
    "checkpoints",
    "csv",
    "init",
    "firmware_log",
];

/// How errors name the input.
const WHAT: &str = "fuzz-input";

/// Runs target `name` on `data`; `assets` is the firmware's asset folder (`firmware/assets`).
///
/// # Panics
/// An unknown target name.
pub fn run(name: &str, data: &[u8], assets: &Path) -> bool {
    match name {
        "models" => models(data),
        "samples" => samples(data),
        "checkpoints" => checkpoints(data),
        "csv" => csv(data),
        "init" => init(data),
        "firmware_log" => firmware_log(data, assets),
        other => panic!("no fuzz target {other}"),
    }
}

// --- models ---------------------------------------------------------------------------------

/// Core models whose scratch is larger than this are not evaluated (valid, just slow to fuzz).
const MAX_SCRATCH: usize = 1 << 16;

/// An evaluation of a loaded core model on buffers of the sizes it asks for may fail only on
/// the numbers (weights that overflow to a non-finite value), never on a shape.
fn data_error(e: keel_core::Error) {
    assert!(
        matches!(e, keel_core::Error::NonFinite { .. }),
        "a loaded model refused buffers of its own sizes: {e:?}"
    );
}

/// Model files of every kind: the host's readers (`keel fit`'s MLP in both precisions, learned
/// dynamics, the engine's model average) and the core's as the commands and the firmware use
/// them (MLP, EMLP, model average, RL policy and value, learned CHNN/CLNN), each evaluated once
/// on zeros when it loads.
pub fn models(data: &[u8]) -> bool {
    let what = Path::new(WHAT);
    let mut accepted = false;
    for dtype in [DType::F32, DType::F64] {
        if let Ok(m) = keel::export::load_mlp(data, what, dtype) {
            accepted = true;
            let inputs = m.mlp.layers[0].inp;
            if inputs * m.mlp.layers.len() <= MAX_SCRATCH {
                let x = Tensor::from_f64s(&vec![0.0; inputs], &[1, inputs], dtype).unwrap();
                m.mlp
                    .forward(&m.params, &x)
                    .expect("a loaded MLP evaluates");
            }
        }
    }
    if let Ok(saved) = keel::chnn::export::from_bytes(data, what) {
        accepted = true;
        assert_eq!(saved.net.kind().name(), saved.info.model);
    }
    if let Ok(p) = keel::bayes::samples::bma_engine(data, what, &[0.0; 64]) {
        accepted = true;
        assert!(p.iter().all(|v| (-1e-9..=1.0 + 1e-9).contains(v)));
    }
    let Ok(st) = SafeTensors::<'_, 64>::parse(data) else {
        return accepted;
    };
    if let Ok(mlp) = keel_core::nn::Mlp::<'_, 16>::from_safetensors(&st) {
        accepted = true;
        if mlp.scratch_len() <= MAX_SCRATCH {
            let x = vec![0.0f32; mlp.inputs()];
            let mut out = vec![0.0f32; mlp.outputs()];
            let mut scratch = vec![0.0f32; mlp.scratch_len()];
            if let Err(e) = mlp.forward(&x, &mut out, &mut scratch) {
                data_error(e);
            }
        }
    }
    if let Ok(e) = keel_core::nn::Emlp::<'_, 4, 8>::from_safetensors(&st) {
        accepted = true;
        if e.scratch_len() <= MAX_SCRATCH {
            let x = vec![0.0f32; e.inputs()];
            let mut out = vec![0.0f32; e.outputs()];
            let mut scratch = vec![0.0f32; e.scratch_len()];
            if let Err(e) = e.forward(&x, &mut out, &mut scratch) {
                data_error(e);
            }
        }
    }
    if let Ok(b) = keel_core::nn::Bma::<'_, 4>::from_safetensors(&st) {
        accepted = true;
        if b.scratch_len() <= MAX_SCRATCH {
            let x = vec![0.0f64; b.inputs()];
            let mut p = vec![0.0f64; b.classes()];
            let mut scratch = vec![0.0f64; b.scratch_len()];
            if let Err(e) = b.predict(&x, &mut p, &mut scratch) {
                data_error(e);
            }
        }
    }
    if let Ok(policy) = keel_core::rl::Policy::<'_, 8>::from_safetensors(&st) {
        accepted = true;
        if policy.scratch_len() <= MAX_SCRATCH {
            let obs = vec![0.0f32; policy.observations()];
            let mut action = vec![0.0f32; policy.actions()];
            let mut scratch = vec![0.0f32; policy.scratch_len()];
            match policy.act(&obs, &mut action, &mut scratch) {
                Ok(()) => {
                    let mut command = vec![0.0f32; policy.actions()];
                    policy
                        .to_actuator(&action, &mut command)
                        .expect("a finite action rescales");
                }
                Err(e) => data_error(e),
            }
        }
    }
    if let Ok(value) = keel_core::rl::ValueModel::<'_, 8>::from_safetensors(&st) {
        accepted = true;
        if value.scratch_len() <= MAX_SCRATCH {
            let obs = vec![0.0f32; value.observations()];
            let mut scratch = vec![0.0f32; value.scratch_len()];
            if let Err(e) = value.value(&obs, &mut scratch) {
                data_error(e);
            }
        }
    }
    // The firmware's learned 2-link pendulum (`firmware/src/main.rs`), at its resting state.
    let x0 = [[0.0f32, -1.0], [0.0, -2.0]];
    if keel_core::dynamics::learned::load::<f32, 2, 2, 2, 4, 1281, 64>(&st, &x0).is_ok() {
        accepted = true;
    }
    accepted
}

// --- samples --------------------------------------------------------------------------------

/// Posterior sample sets (`keel bayes … --save-samples`, read by `bayes compare` and `bayes
/// export`).
pub fn samples(data: &[u8]) -> bool {
    let Ok(set) = keel::bayes::samples::SampleSet::from_bytes(data, Path::new(WHAT)) else {
        return false;
    };
    // What a loaded set promises the commands.
    assert!(!set.samples.is_empty());
    assert_eq!(set.samples.len(), set.chain.len());
    let p = set.samples[0].len();
    assert!(set.samples.iter().all(|s| s.len() == p));
    set.spec.check().expect("a loaded spec checks");
    set.spec.check_parameters(p).expect("its parameters fit");
    let _ = keel::bayes::samples::spread(&set.samples, 3);
    // What `bayes compare` computes from the chains, on stand-in predictions.
    let preds: Vec<Vec<f64>> = (0..set.samples.len())
        .map(|i| vec![0.5, i as f64])
        .collect();
    let likelihood = keel::bayes::mlp::Likelihood::Categorical { classes: 2 };
    let _ = keel::bayes::samples::function_space_rhat(&preds, &set.chain, likelihood);
    true
}

// --- checkpoints ----------------------------------------------------------------------------

/// `keel.kind` of the training checkpoints the fuzz context writes and reads.
pub const TRAIN_KIND: &str = "fuzz-checkpoint";
/// The configuration the fuzz contexts' checkpoints record.
pub const FINGERPRINT: &str = "fuzz";
/// Training rows of the fuzz context (the batch order's length).
pub const TRAIN_ROWS: usize = 5;

/// A small model to restore a training checkpoint into: parameters `w [2, 3]` and `b [3]`
/// (F64), Adam, a generator, the batch order and a `best` copy of the parameters.
pub fn train_context() -> (Params, Optimizer, Xoshiro256PlusPlus, Vec<usize>, Params) {
    let mut params = Params::new();
    let w = Tensor::from_f64s(&[0.1, -0.2, 0.3, 0.4, -0.5, 0.6], &[2, 3], DType::F64).unwrap();
    let b = Tensor::from_f64s(&[0.0, 0.1, -0.1], &[3], DType::F64).unwrap();
    params.insert("w", w).unwrap();
    params.insert("b", b).unwrap();
    let opt = Optimizer::new(OptimizerKind::adam(), &params).unwrap();
    let best = params.clone();
    let rng = Xoshiro256PlusPlus::seed_from_u64(1);
    (params, opt, rng, (0..TRAIN_ROWS).collect(), best)
}

/// The known-noise linear model the HMC checkpoints of the fuzz context sample (4 rows, 2
/// features).
pub fn hmc_target() -> LinearGaussian {
    let x = vec![1.0, 0.5, -0.3, 1.2, 0.8, -1.0, 0.1, 0.4];
    LinearGaussian::new(x, vec![0.7, -0.2, 1.1, 0.3], 2, 0.5, 1.0, 1.0).unwrap()
}

/// The HMC settings of chain `c` in the fuzz context.
pub fn hmc_config(c: usize) -> HmcConfig {
    HmcConfig {
        step_size: 0.1,
        trajectory_length: 0.5,
        max_leapfrog_steps: 100,
        iterations: 6,
        burn_in: 2,
        mh: true,
        ensembling: Ensembling::AcceptedOnly,
        seed: c as u64,
        adapt: None,
    }
}

/// A small SAC-SVG(2) agent (3 observations, 1 action, width 4) and an empty replay.
pub fn rl_context() -> (Agent, Replay) {
    let cfg = Config {
        horizon: 2,
        hidden: 4,
        depth: 1,
        model_depth: 1,
        batch: 4,
        seq_batch: 4,
        ..Config::default()
    };
    (Agent::new(cfg, 3, 1, 0).unwrap(), Replay::new(3, 64))
}

/// Training checkpoints of all three kinds: `fit`/`chnn`/`emlp` training, HMC, SAC-SVG(H). Each
/// reader sees the bytes as they are (exercising the checksum) and resealed with the checksum
/// of their contents (exercising everything behind it).
pub fn checkpoints(data: &[u8]) -> bool {
    let what = Path::new(WHAT);
    let resealed = keel::checksum::reseal(data).ok();
    let mut accepted = false;
    for bytes in [Some(data), resealed.as_deref()].into_iter().flatten() {
        let (mut params, mut opt, mut rng, mut order, mut best) = train_context();
        let before = params.clone();
        let r = keel::checkpoint::load_bytes(
            bytes,
            what,
            TRAIN_KIND,
            FINGERPRINT,
            &mut params,
            &mut opt,
            &mut rng,
            &mut order,
            &mut [("best", &mut best)],
        );
        match r {
            Ok(_) => {
                accepted = true;
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..TRAIN_ROWS).collect::<Vec<_>>());
                for (a, b) in params.values().iter().zip(before.values()) {
                    assert_eq!(a.dims(), b.dims());
                }
            }
            Err(_) => {
                // A refused file leaves the run as it was.
                for (a, b) in params.values().iter().zip(before.values()) {
                    assert_eq!(a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
                }
                assert_eq!(order, (0..TRAIN_ROWS).collect::<Vec<_>>());
            }
        }
        let target = hmc_target();
        let cfg_of = |c: usize| Ok(hmc_config(c));
        if let Ok((finished, running)) =
            keel::bayes::checkpoint::load_bytes(bytes, what, FINGERPRINT, &target, &cfg_of)
        {
            accepted = true;
            for c in &finished {
                assert!(c.samples.iter().all(|s| s.len() == 2));
            }
            for c in &running {
                assert!(c.samples.iter().all(|s| s.len() == 2));
            }
        }
        let (mut agent, mut replay) = rl_context();
        if keel::rl::checkpoint::load_bytes(
            bytes,
            what,
            |fp: &str| fp == FINGERPRINT,
            &mut agent,
            &mut replay,
        )
        .is_ok()
        {
            accepted = true;
            assert!(replay
                .items
                .iter()
                .all(|t| t.obs.len() == 3 && t.action.len() == 1));
        }
    }
    accepted
}

/// The loop state the RL seed checkpoint records.
pub fn rl_loop_state() -> LoopState {
    LoopState {
        step: 3,
        env_rng: [1, 2, 3, 4],
        evaluations: Vec::new(),
        episodes: vec![(3, -1.5)],
        diagnostics: Diagnostics::default(),
    }
}

/// A chain of the HMC fuzz context advanced `iterations` times.
pub fn hmc_running(iterations: usize) -> ChainState {
    let target = hmc_target();
    let cfg = hmc_config(0);
    let mut s = ChainState::start(&target, vec![0.0, 0.0], &cfg).unwrap();
    for _ in 0..iterations {
        s.advance(&target, &cfg).unwrap();
    }
    s
}

// --- CSV ------------------------------------------------------------------------------------

/// CSV tables: numeric (`keel gp`) and with a target column (`keel fit`, `keel bayes`), the
/// target being the header's first or last column, as labels and as numbers.
pub fn csv(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let what = Path::new(WHAT);
    let mut accepted = false;
    if let Ok(t) = keel::data::parse_numeric_csv(text, what) {
        accepted = true;
        assert_eq!(t.values.len(), t.rows() * t.names.len());
    }
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first = header.split(',').next().unwrap_or("").trim();
    let last = header.rsplit(',').next().unwrap_or("").trim();
    for target in [first, last] {
        for classify in [false, true] {
            if let Ok(d) = keel::data::parse_csv(text, what, target, classify) {
                accepted = true;
                assert_eq!(d.x.len(), d.rows() * d.cols());
                match &d.y {
                    keel::data::Targets::Classes { labels, classes } => {
                        assert_eq!(labels.len(), d.rows());
                        assert!(labels.iter().all(|&l| l < classes.len()));
                    }
                    keel::data::Targets::Values(v) => assert_eq!(v.len(), d.rows()),
                }
            }
        }
    }
    accepted
}

// --- --init JSON ----------------------------------------------------------------------------

/// `keel simulate --init FILE`: a state for the 3-link chain pendulum (f64, checked against
/// and projected onto its constraints) and for the gyroscope (f32, 3-D).
pub fn init(data: &[u8]) -> bool {
    use keel::simulate::init::parse_state;
    use keel::simulate::InitSpec;
    use keel_core::dynamics::systems::{ChainPendulum, Gyroscope};
    use keel_core::integrate::StateVector;
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let what = Path::new(WHAT);
    let mut accepted = false;
    for project in [false, true] {
        let spec = InitSpec {
            project,
            manifold_tol: 1e-6,
            ..InitSpec::default()
        };
        let chain = ChainPendulum::<f64, 3>::paper().unwrap();
        if let Ok(z) = parse_state(text, what, &spec, chain.mechanics()) {
            accepted = true;
            assert!(z.as_slice().iter().all(|v| v.is_finite()));
        }
        let gyro = Gyroscope::<f32>::paper().unwrap();
        if parse_state(text, what, &spec, gyro.mechanics()).is_ok() {
            accepted = true;
        }
    }
    accepted
}

// --- the firmware log -----------------------------------------------------------------------

/// `keel firmware check`'s log: every `KEEL-FW` line's parser, then the comparisons a parsed
/// line leads to when they are cheap enough to fuzz (the dynamics and GP reruns with small
/// counts, and the digits, EMLP and model-average comparisons against `assets`, whose host side
/// is computed for the first `assets` a process sees).
pub fn firmware_log(data: &[u8], assets: &Path) -> bool {
    use keel::firmware as fw;
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut accepted = false;
    // Reruns are bounded so that each input runs in milliseconds in the unoptimised fuzz build
    // (100 chain-pendulum steps took 70 ms, a GP rerun with n·grid² = 12,800 40 ms); the seed's
    // lines are within the bounds.
    if let Ok(run) = fw::parse(text) {
        accepted = true;
        if run.steps <= 20 {
            let _ = fw::check(&run);
        }
    }
    if let Ok(run) = fw::parse_gp(text) {
        accepted = true;
        if run.n.saturating_mul(run.grid).saturating_mul(run.grid) <= 1 << 12 {
            let _ = fw::check_gp(&run);
        }
    }
    // The host's side of the digits and model-average checks depends on the assets only: it is
    // computed once per process (0.06 and 0.12 s), and each input is compared with it.
    static HOST: std::sync::OnceLock<(Option<fw::HostDigits>, Option<fw::HostBma>)> =
        std::sync::OnceLock::new();
    let (digits, bma) =
        HOST.get_or_init(|| (fw::host_digits(assets).ok(), fw::host_bma(assets).ok()));
    if let Ok(run) = fw::parse_model(text) {
        accepted = true;
        if let Some(host) = digits {
            let _ = fw::compare_model(&run, host);
        }
    }
    if let Ok(run) = fw::parse_emlp(text) {
        accepted = true;
        let _ = fw::check_emlp(&run, assets);
    }
    if let Ok(run) = fw::parse_bma(text) {
        accepted = true;
        if let Some(host) = bma {
            let _ = fw::compare_bma(&run, host);
        }
    }
    // The closed-loop and learned-rollout reruns cost milliseconds to seconds each; their
    // counts are bounded by the parsers (`firmware::MAX_POLICY_STEPS`, `MAX_CHNN_STEPS`).
    accepted |= fw::parse_policy(text).is_ok();
    accepted |= fw::parse_chnn(text).is_ok();
    accepted |= keel::firmware_ntk::parse_ntk(text).is_ok();
    // The WISKI-behind-a-stem check reruns the embedded files whatever the line says (two
    // m = 64 refactorisations); its parser is what the input reaches.
    accepted |= keel::firmware_wiski::parse_wiski_stem(text).is_ok();
    accepted
}
