//! SAC-SVG(H): the GRU cell against numpy (`fixtures/gen/gru.py`), the tanh-Gaussian log density
//! against its closed form, its normalisation and finite differences, the multi-step sampler's
//! windows, the SVG(H) actor loss's gradient against finite differences, a short training run
//! end to end (export → the core's policy gives the host's evaluation), bad input.

use crate::common;

use keel::autodiff::backward;
use keel::backend::DType;
use keel::params::Params;
use keel::rl::agent::{Agent, Config, Parts};
use keel::rl::nets::{Actor, Gru};
use keel::rl::replay::{Normalizer, Replay, Transition};
use keel::tensor::Tensor;
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/rl/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        x => vec![x.as_f64().unwrap()],
    }
}

#[test]
fn the_gru_cell_matches_numpy() {
    let fx = fixture("gru.json");
    let (i, h, b) = (
        fx["input"].as_u64().unwrap() as usize,
        fx["hidden"].as_u64().unwrap() as usize,
        fx["batch"].as_u64().unwrap() as usize,
    );
    let mut p = Params::new();
    let t =
        |name: &str, dims: &[usize]| Tensor::from_f64s(&flat(&fx[name]), dims, DType::F64).unwrap();
    let gru = Gru {
        weight_ih: p.insert("w_ih", t("weight_ih", &[3 * h, i])).unwrap(),
        weight_hh: p.insert("w_hh", t("weight_hh", &[3 * h, h])).unwrap(),
        bias_ih: p.insert("b_ih", t("bias_ih", &[3 * h])).unwrap(),
        bias_hh: p.insert("b_hh", t("bias_hh", &[3 * h])).unwrap(),
        hidden: h,
    };
    let mut state = t("h0", &[b, h]);
    let inputs = fx["inputs"].as_array().unwrap();
    let mut worst: f64 = 0.0;
    for (step, x) in inputs.iter().enumerate() {
        let x = Tensor::from_f64s(&flat(x), &[b, i], DType::F64).unwrap();
        state = gru.step(&p, &x, &state).unwrap();
        let want = flat(&fx["states"][step]);
        let got = state.to_vec_f64().unwrap();
        assert_eq!(got.len(), want.len(), "step {step}: state sizes");
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
    }
    assert!(worst < 1e-14, "largest |Keel − numpy| {worst:e}");

    // The core's cell (what the controller runs) on the same weights, stored as f64.
    let tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = [
        ("weight_ih", vec![3 * h, i]),
        ("weight_hh", vec![3 * h, h]),
        ("bias_ih", vec![3 * h]),
        ("bias_hh", vec![3 * h]),
    ]
    .into_iter()
    .map(|(name, dims)| {
        let bytes = flat(&fx[name])
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        (format!("gru.{name}"), "F64", dims, bytes)
    })
    .collect();
    let bytes = keel::export::safetensors_bytes_typed(&tensors, &Default::default());
    let st = keel_core::io::SafeTensors::<'_, 8>::parse(&bytes).unwrap();
    let cell = keel_core::nn::GruCell::from_safetensors(&st, "gru.").unwrap();
    assert_eq!((cell.inputs(), cell.hidden()), (i, h));
    let mut scratch = vec![0.0f64; cell.scratch_len()];
    let mut worst: f64 = 0.0;
    for row in 0..b {
        let mut state = flat(&fx["h0"])[row * h..(row + 1) * h].to_vec();
        for (step, x) in inputs.iter().enumerate() {
            let x = &flat(x)[row * i..(row + 1) * i];
            cell.step(x, &mut state, &mut scratch).unwrap();
            let want = &flat(&fx["states"][step])[row * h..(row + 1) * h];
            assert_eq!(state.len(), want.len(), "step {step}: state sizes");
            for (g, w) in state.iter().zip(want) {
                worst = worst.max((g - w).abs());
            }
        }
    }
    assert!(worst < 1e-14, "core cell: largest |Keel − numpy| {worst:e}");
    assert!(cell.step(&[0.0; 2], &mut [0.0; 6], &mut scratch).is_err());
    assert!(cell.step(&[0.0; 3], &mut [0.0; 6], &mut [0.0; 5]).is_err());
}

fn actor(actions: usize, seed: u64) -> (Actor, Params) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut p = Params::new();
    let trunk = keel::rl::nets::mlp(
        &mut p,
        "a.",
        &keel::nn::widths(3, 8, 2, 2 * actions),
        DType::F64,
        &mut rng,
    )
    .unwrap();
    let actor = Actor {
        trunk,
        actions,
        log_std_bounds: [-5.0, 2.0],
    };
    (actor, p)
}

#[test]
fn the_squashed_gaussian_log_density_is_the_closed_form_and_normalised() {
    let (actor, p) = actor(1, 1);
    let x = Tensor::from_f64s(&[0.3, -1.2, 0.5], &[1, 3], DType::F64).unwrap();
    let (mu, log_std) = actor.mean_and_log_std(&p, &x).unwrap();
    let (mu, sigma) = (mu.item().unwrap(), log_std.item().unwrap().exp());
    // Against the naive form away from saturation: log N(ũ; μ, σ) − log(1 − tanh² ũ).
    for eps in [-1.5, -0.2, 0.0, 0.7, 1.9] {
        let e = Tensor::from_f64s(&[eps], &[1, 1], DType::F64).unwrap();
        let s = actor.sample(&p, &x, &e).unwrap();
        let pre = mu + sigma * eps;
        let naive = -0.5 * eps * eps
            - sigma.ln()
            - 0.5 * (2.0 * std::f64::consts::PI).ln()
            - (1.0 - pre.tanh().powi(2)).ln();
        let got = s.log_prob.item().unwrap();
        assert!((got - naive).abs() < 1e-10, "ε = {eps}: {got} vs {naive}");
        assert!((s.action.item().unwrap() - pre.tanh()).abs() < 1e-15);
    }
    // ∫₋₁¹ π(u) du = 1: evaluate the density at u through ε = (atanh u − μ)/σ.
    let n = 20_000;
    let (mut mass, h) = (0.0, 2.0 / n as f64);
    let us: Vec<f64> = (0..n).map(|k| -1.0 + (k as f64 + 0.5) * h).collect();
    let eps: Vec<f64> = us.iter().map(|u| (u.atanh() - mu) / sigma).collect();
    let xs = Tensor::from_f64s(&[0.3, -1.2, 0.5].repeat(n), &[n, 3], DType::F64).unwrap();
    let e = Tensor::from_f64s(&eps, &[n, 1], DType::F64).unwrap();
    for lp in actor
        .sample(&p, &xs, &e)
        .unwrap()
        .log_prob
        .to_vec_f64()
        .unwrap()
    {
        mass += lp.exp() * h;
    }
    assert!((mass - 1.0).abs() < 1e-3, "∫π(u)du = {mass}");
}

#[test]
fn the_log_density_gradient_matches_finite_differences() {
    let (actor, p) = actor(2, 2);
    let x = Tensor::from_f64s(&[0.3, -1.2, 0.5, 1.0, 0.1, -0.4], &[2, 3], DType::F64).unwrap();
    let e = Tensor::from_f64s(&[0.4, -1.1, 2.0, 0.3], &[2, 2], DType::F64).unwrap();
    let f = |p: &Params| -> f64 {
        actor
            .sample(p, &x, &e)
            .unwrap()
            .log_prob
            .sum_all()
            .unwrap()
            .item()
            .unwrap()
    };
    let vars = p.variables();
    let lp = actor
        .sample(&vars, &x, &e)
        .unwrap()
        .log_prob
        .sum_all()
        .unwrap();
    let refs: Vec<&Tensor> = vars.values().iter().collect();
    let grads = backward(&lp, &refs).unwrap();
    check_fd(&p, &grads, f);
}

/// Central differences of `f` against `grads` on every third element of every parameter.
fn check_fd(p: &Params, grads: &[Tensor], f: impl Fn(&Params) -> f64) {
    let mut checked = 0;
    for (k, g) in grads.iter().enumerate() {
        let g = g.to_vec_f64().unwrap();
        let v = p.values()[k].to_vec_f64().unwrap();
        let dims = p.values()[k].dims().to_vec();
        for i in (0..v.len()).step_by(3) {
            let h = 1e-6;
            let shifted = |d: f64| {
                let mut q = p.clone();
                let mut w = v.clone();
                w[i] += d;
                q.set(
                    keel::params::ParamId(k),
                    Tensor::from_f64s(&w, &dims, DType::F64).unwrap(),
                )
                .unwrap();
                f(&q)
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{} [{i}]: backward {} vs finite differences {fd}",
                p.names()[k],
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
}

#[test]
fn the_svg_actor_loss_gradient_matches_finite_differences() {
    for (corrected, horizon) in [(false, 0), (false, 1), (false, 2), (false, 3), (true, 3)] {
        let cfg = Config {
            horizon,
            hidden: 6,
            dtype: DType::F64,
            corrected_survival: corrected,
            ..Config::default()
        };
        let agent = Agent::new(cfg.clone(), 3, 1, 4).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let b = 4;
        let mut normal = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| standard_normal::<f64, _>(&mut rng))
                .collect()
        };
        let x = Tensor::from_f64s(&normal(b * 3), &[b, 3], DType::F64).unwrap();
        let noises: Vec<Tensor> = (0..3)
            .map(|_| Tensor::from_f64s(&normal(b), &[b, 1], DType::F64).unwrap())
            .collect();
        let parts = Parts {
            critic: &agent.critic,
            model: &agent.model,
            reward: &agent.reward,
            done: &agent.done,
            cfg: &cfg,
        };
        let loss = |p: &Params| {
            parts
                .actor_loss(&agent.actor.net, p, &x, &noises, 0.1, horizon)
                .unwrap()
                .loss
                .item()
                .unwrap()
        };
        let vars = agent.actor.params.variables();
        let l = parts
            .actor_loss(&agent.actor.net, &vars, &x, &noises, 0.1, horizon)
            .unwrap()
            .loss;
        let refs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = backward(&l, &refs).unwrap();
        check_fd(&agent.actor.params, &grads, loss);
        if horizon == 0 {
            continue;
        }
        // The quirk and the corrected weights differ.
        let other = Config {
            corrected_survival: !corrected,
            ..cfg.clone()
        };
        let parts2 = Parts {
            cfg: &other,
            ..parts
        };
        let l2 = parts2
            .actor_loss(
                &agent.actor.net,
                &agent.actor.params,
                &x,
                &noises,
                0.1,
                horizon,
            )
            .unwrap()
            .loss;
        assert!((l2.item().unwrap() - loss(&agent.actor.params)).abs() > 1e-9);
    }
}

#[test]
fn multistep_windows_never_cross_an_episode_end() {
    let mut replay = Replay::new(2, 10_000);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let (mut episode, mut t) = (0.0, 0.0);
    for _ in 0..600 {
        let end = uniform::<f64, _>(&mut rng) < 0.15;
        let terminal = end && uniform::<f64, _>(&mut rng) < 0.5;
        replay.push(Transition {
            obs: vec![episode, t],
            action: vec![t],
            reward: 0.0,
            next_obs: vec![episode, t + 1.0],
            terminal,
            last: end,
        });
        t += 1.0;
        if end {
            episode += 1.0;
            t = 0.0;
        }
    }
    let std = replay.stats.std();
    let mean = replay.stats.mean.clone();
    for len in [2, 3, 6] {
        let w = replay
            .sample_windows(&replay.window_starts(len), 500, len, &mut rng)
            .unwrap();
        for row in 0..500 {
            let state = |k: usize| {
                let v = &w.obs[k][2 * row..2 * row + 2];
                [v[0] * std[0] + mean[0], v[1] * std[1] + mean[1]]
            };
            let first = state(0);
            for k in 1..len {
                let s = state(k);
                assert!((s[0] - first[0]).abs() < 1e-9, "window crosses episodes");
                assert!(
                    (s[1] - first[1] - k as f64).abs() < 1e-9,
                    "window skips steps"
                );
                assert!((w.action[k - 1][row] - (first[1] + (k - 1) as f64)).abs() < 1e-9);
            }
        }
    }
    assert!(replay.sample_windows(&[0], 4, 1, &mut rng).is_err());
}

#[test]
fn the_normalizer_matches_population_statistics() {
    let mut n = Normalizer::new(2);
    let rows = [[1.0, 100.0], [2.0, 100.0], [4.0, 100.0], [9.0, 100.0]];
    for r in &rows {
        n.push(r);
    }
    let mean = 4.0;
    let var = rows.iter().map(|r| (r[0] - mean).powi(2)).sum::<f64>() / 4.0;
    assert!((n.mean[0] - mean).abs() < 1e-12);
    assert!((n.std()[0] - var.sqrt()).abs() < 1e-12);
    assert_eq!(
        n.std()[1],
        0.1,
        "a constant column's std is clamped up to 0.1"
    );
}

#[test]
fn a_short_run_exports_a_policy_the_core_evaluates_as_the_host_did() {
    let dir = std::env::temp_dir().join(format!("keel-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("p.safetensors");
    let o = common::keel(&[
        "rl",
        "train",
        "--env",
        "pendulum",
        "--horizon",
        "2",
        "--steps",
        "400",
        "--seed-steps",
        "100",
        "--warmup",
        "200",
        "--batch",
        "64",
        "--hidden",
        "16",
        "--eval-every",
        "0",
        "--eval-episodes",
        "3",
        "--seed",
        "5",
        "--json",
        "--export",
        policy.to_str().unwrap(),
        "--export-value",
        dir.join("v.safetensors").to_str().unwrap(),
        "--plot",
        dir.join("curve.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let png = std::fs::read(dir.join("curve.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG", "--plot writes a PNG");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "env",
        "horizon",
        "steps",
        "eval_return_mean",
        "eval_return_std",
        "train_seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let host = v["eval_return_mean"].as_f64().unwrap();
    // The host evaluated with seed + 1_000_003, as its JSON says; the core's code (f64 on the
    // exported f32 weights) from the same initial states must give nearly the same returns.
    assert_eq!(v["eval_seed"], 1_000_008, "{v}");
    let o = common::keel(&[
        "rl",
        "eval",
        "--policy",
        policy.to_str().unwrap(),
        "--env",
        "pendulum",
        "--episodes",
        "3",
        "--seed",
        "1000008",
        "--json",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    let core = e["return_mean"].as_f64().unwrap();
    // The same f32 weights evaluated in f64 by the engine and by the core, summed in different
    // orders, over 3 episodes of 200 steps: measured 1.5e-12 relative on one machine and 1.5e-9
    // on another (AMD EPYC; the closed loop amplifies rounding differently with the CPU's
    // kernels). 1e-6 leaves a margin of several hundred for that growth and still fails on any
    // real difference between the two (one wrong step moves a return by far more).
    let rel = (core - host).abs() / host.abs();
    assert!(rel < 1e-6, "core {core} vs host {host}: relative {rel:e}");
    // With the value model: a finite estimate per state, compared with the returns that
    // followed, and the plot.
    let o = common::keel(&[
        "rl",
        "eval",
        "--policy",
        policy.to_str().unwrap(),
        "--value",
        dir.join("v.safetensors").to_str().unwrap(),
        "--env",
        "pendulum",
        "--episodes",
        "2",
        "--json",
        "--plot",
        dir.join("value.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["value"]["states"], 200, "{e}");
    for key in ["value_mean", "return_to_go_mean", "mean_abs_difference"] {
        assert!(e["value"][key].as_f64().unwrap().is_finite(), "{key}: {e}");
    }
    let png = std::fs::read(dir.join("value.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A policy file is not a value file.
    common::rejects(
        &[
            "rl",
            "eval",
            "--policy",
            policy.to_str().unwrap(),
            "--value",
            policy.to_str().unwrap(),
            "--env",
            "pendulum",
        ],
        &["p.safetensors", "keel.kind"],
    );
    // A policy for another environment is refused, naming both sizes.
    common::rejects(
        &[
            "rl",
            "eval",
            "--policy",
            policy.to_str().unwrap(),
            "--env",
            "cartpole",
        ],
        &["3 observations", "cartpole has 5"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A sweep (`--seeds`, `--horizons`) is its runs one after the other: one JSON line per run in
/// (horizon, seed) order, each the report and policy file of that run alone (`--seed`,
/// `--horizon`); its paths must name each run's file; bad lists are refused.
#[test]
fn a_sweep_is_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let mut short = common::SHORT_RL_RUN.to_vec();
    short.push("--json");
    let template = path("p-h{horizon}-s{seed}.safetensors");
    let mut sweep = short.to_vec();
    sweep.extend(["--seeds", "3-4", "--horizons", "0,2", "--export", &template]);
    let o = common::keel(&sweep);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let order: Vec<(u64, u64)> = lines
        .iter()
        .map(|v| (v["horizon"].as_u64().unwrap(), v["seed"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [(0, 3), (0, 4), (2, 3), (2, 4)]);
    let alone = path("alone.safetensors");
    let mut one = short.to_vec();
    one.extend(["--seed", "4", "--horizon", "2", "--export", &alone]);
    let o = common::keel(&one);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let single: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        common::without_timings(single),
        common::without_timings(lines[3].clone())
    );
    assert_eq!(
        std::fs::read(&alone).unwrap(),
        std::fs::read(path("p-h2-s4.safetensors")).unwrap()
    );
    // Paths that would hold several runs, and bad lists: refused before any run, nothing written.
    let refused = |extra: &[&str], needles: &[&str]| {
        let mut args = short.to_vec();
        args.extend(extra);
        common::rejects(&args, needles);
    };
    let flat = path("flat.safetensors");
    refused(
        &["--seeds", "0,1", "--export", &flat],
        &["--export", "{seed}"],
    );
    let by_seed = path("s{seed}.png");
    refused(
        &["--seeds", "0,1", "--horizons", "1,2", "--plot", &by_seed],
        &["--plot", "{horizon}"],
    );
    refused(&["--seeds", "4-2"], &["--seeds", "low to high"]);
    refused(&["--seeds", "1,x"], &["--seeds", "whole numbers"]);
    refused(&["--seeds", "1,1"], &["--seeds", "listed twice"]);
    refused(&["--seeds", "0-99999"], &["--seeds", "more than 4096 runs"]);
    refused(&["--horizons", "0,1", "--horizon", "2"], &["--horizon"]);
    assert!(!std::path::Path::new(&flat).exists());
}

#[test]
fn bad_input_is_refused() {
    common::rejects(
        &["rl", "train", "--env", "hopper"],
        &["--env", "possible values: pendulum"],
    );
    common::rejects(
        &["rl", "train", "--env", "pendulum", "--horizon", "-1"],
        &["--horizon"],
    );
    common::rejects(
        &["rl", "train", "--env", "pendulum", "--steps", "0"],
        &["--steps"],
    );
    common::rejects(
        &["rl", "train", "--env", "pendulum", "--device", "tpu"],
        &["--device", "tpu"],
    );
    // Only without a usable GPU: with one, `--device cuda` is a valid request. Refused before
    // any work, and nothing is exported.
    if keel::backend::Device::Cuda(0).check().is_err() {
        common::rejects_writing_nothing(
            &["rl", "train", "--env", "pendulum", "--device", "cuda"],
            &["--device", "CUDA"],
        );
    }
    common::rejects(
        &[
            "rl",
            "eval",
            "--policy",
            "/nonexistent/p.safetensors",
            "--env",
            "pendulum",
        ],
        &["p.safetensors"],
    );
}

#[test]
fn an_interrupted_run_resumes_to_the_same_policy() {
    let dir = std::env::temp_dir().join(format!("keel-rl-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let base = [
        "rl",
        "train",
        "--env",
        "pendulum",
        "--horizon",
        "2",
        "--steps",
        "700",
        "--seed-steps",
        "100",
        "--warmup",
        "300",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--eval-every",
        "0",
        "--eval-episodes",
        "1",
        "--seed",
        "3",
        "--quiet",
    ];
    // A run of `steps` steps with `extra` flags; returns its stdout.
    let run_for = |steps: &str, extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args[7] = steps;
        args.extend_from_slice(extra);
        let o = common::keel(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let run = |extra: &[&str]| run_for("700", extra);
    let same = |a: &str, b: &str, what: &str| {
        let same = std::fs::read(a).unwrap() == std::fs::read(b).unwrap();
        assert!(
            same,
            "the {what} run's policy differs from the uninterrupted run's"
        );
    };
    let (whole, pieces, ck) = (path("whole.st"), path("pieces.st"), path("ck.st"));
    run(&["--export", &whole]);
    // Two interruptions: at the first episode end after 250 steps (step 400), then after
    // another 150 (step 600), then to the end.
    let first = run(&[
        "--checkpoint",
        &ck,
        "--stop-after",
        "250",
        "--export",
        &pieces,
    ]);
    assert!(first.contains("stopped after 400 steps"), "{first}");
    let second = run(&[
        "--checkpoint",
        &ck,
        "--resume",
        "--stop-after",
        "150",
        "--export",
        &pieces,
    ]);
    assert!(second.contains("stopped after 600 steps"), "{second}");
    run(&["--checkpoint", &ck, "--resume", "--export", &pieces]);
    same(&whole, &pieces, "resumed");
    // A finished run extended to 900 steps is the uninterrupted 900-step run.
    let (whole900, extended) = (path("whole900.st"), path("extended.st"));
    run_for("900", &["--export", &whole900]);
    run_for(
        "900",
        &["--checkpoint", &ck, "--resume", "--export", &extended],
    );
    same(&whole900, &extended, "extended");
    // But not shortened below where the checkpoint is (step 600: 900 is not an episode end).
    let mut shorter: Vec<&str> = base.to_vec();
    shorter[7] = "500";
    shorter.extend_from_slice(&["--checkpoint", &ck, "--resume"]);
    common::rejects(&shorter, &["--steps", "already at step 600"]);
    // Another configuration refuses the checkpoint.
    let mut other: Vec<&str> = base.to_vec();
    other[5] = "3";
    other.extend_from_slice(&["--checkpoint", &ck, "--resume"]);
    common::rejects(&other, &["--resume", "other settings"]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Rounds every parameter to f32, as the exporter writes it.
fn round_to_f32(p: &mut Params) {
    for i in 0..p.values().len() {
        let t = &p.values()[i];
        let v: Vec<f64> = t
            .to_vec_f64()
            .unwrap()
            .iter()
            .map(|&x| x as f32 as f64)
            .collect();
        let r = Tensor::from_f64s(&v, t.dims(), DType::F64).unwrap();
        p.set(keel::params::ParamId(i), r).unwrap();
    }
}

#[test]
fn the_core_value_estimate_is_the_hosts_svg_objective() {
    use keel::rl::export::value_bytes;
    use keel_core::io::SafeTensors;
    use keel_core::rl::ValueModel;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
    let mut normal = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| standard_normal::<f64, _>(&mut rng))
            .collect()
    };
    let (o, a) = (3, 1);
    let mut replay = Replay::new(o, 100);
    for _ in 0..20 {
        let x = normal(o).iter().map(|v| 2.0 * v + 0.5).collect::<Vec<_>>();
        replay.push(Transition {
            obs: x.clone(),
            action: vec![0.0],
            reward: 0.0,
            next_obs: x,
            terminal: false,
            last: false,
        });
    }
    for (horizon, corrected) in [(0, false), (1, false), (2, false), (3, false), (4, true)] {
        let cfg = Config {
            horizon,
            hidden: 8,
            dtype: DType::F64,
            corrected_survival: corrected,
            // Exact in f32, as the file stores it.
            gamma: 0.9921875,
            ..Config::default()
        };
        let mut agent = Agent::new(cfg.clone(), o, a, 3 + horizon as u64).unwrap();
        for params in [
            &mut agent.actor.params,
            &mut agent.critic.params,
            &mut agent.model.params,
            &mut agent.reward.params,
            &mut agent.done.params,
        ] {
            round_to_f32(params);
        }
        let bytes = value_bytes(&agent, &replay, "pendulum").unwrap();
        let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
        let vm = ValueModel::<'_, 4>::from_safetensors(&st).unwrap();
        assert_eq!(
            (vm.observations(), vm.actions(), vm.horizon()),
            (o, a, horizon)
        );
        let parts = Parts {
            critic: &agent.critic,
            model: &agent.model,
            reward: &agent.reward,
            done: &agent.done,
            cfg: &cfg,
        };
        let mean: Vec<f64> = replay.stats.mean.iter().map(|&m| m as f32 as f64).collect();
        let std: Vec<f64> = replay
            .stats
            .std()
            .iter()
            .map(|&s| s as f32 as f64)
            .collect();
        let mut scratch = vec![0.0f64; vm.scratch_len()];
        let mut scratch32 = vec![0.0f32; vm.scratch_len()];
        for trial in 0..4 {
            let obs = normal(o);
            let x: Vec<f64> = (0..o).map(|i| (obs[i] - mean[i]) / std[i]).collect();
            let x = Tensor::from_f64s(&x, &[1, o], DType::F64).unwrap();
            // Deterministic (zero noise) on even trials, sampled noise on odd ones.
            let eps: Vec<f64> = if trial % 2 == 0 {
                vec![0.0; vm.noise_len()]
            } else {
                normal(vm.noise_len())
            };
            let noises: Vec<Tensor> = eps
                .chunks(a)
                .map(|c| Tensor::from_f64s(c, &[1, a], DType::F64).unwrap())
                .collect();
            let loss = parts
                .actor_loss(
                    &agent.actor.net,
                    &agent.actor.params,
                    &x,
                    &noises,
                    0.0,
                    horizon,
                )
                .unwrap()
                .loss
                .item()
                .unwrap();
            // The loss is −J/H (−J at H = 0).
            let host = -loss * horizon.max(1) as f64;
            let core = if trial % 2 == 0 {
                vm.value(&obs, &mut scratch).unwrap()
            } else {
                vm.value_with_noise(&obs, &eps, &mut scratch).unwrap()
            };
            assert!(
                (core - host).abs() <= 1e-10 * host.abs().max(1.0),
                "H = {horizon}, trial {trial}: core {core} vs host {host}"
            );
            // f32 on the controller: the same number to single precision.
            let obs32: Vec<f32> = obs.iter().map(|&v| v as f32).collect();
            let eps32: Vec<f32> = eps.iter().map(|&v| v as f32).collect();
            let core32 = vm.value_with_noise(&obs32, &eps32, &mut scratch32).unwrap() as f64;
            assert!(
                (core32 - host).abs() <= 1e-4 * host.abs().max(1.0),
                "H = {horizon}, f32: {core32} vs {host}"
            );
        }
        // Wrong lengths are errors, not panics.
        assert!(vm.value(&[0.0; 2], &mut scratch).is_err());
        assert!(vm
            .value_with_noise(&obs_zero(o), &[0.0; 7], &mut scratch)
            .is_err());
        assert!(vm.value(&obs_zero(o), &mut scratch[..3]).is_err());
        assert!(vm.value(&[f64::NAN, 0.0, 0.0], &mut scratch).is_err());
    }
    // A horizon the core does not roll is refused when the file is read.
    let cfg = Config {
        horizon: keel_core::rl::MAX_HORIZON + 1,
        hidden: 4,
        ..Config::default()
    };
    let agent = Agent::new(cfg, o, a, 1).unwrap();
    let bytes = value_bytes(&agent, &replay, "pendulum").unwrap();
    let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
    let err = ValueModel::<'_, 4>::from_safetensors(&st).unwrap_err();
    assert!(err.to_string().contains("value.horizon"), "{err}");
}

fn obs_zero(o: usize) -> Vec<f64> {
    vec![0.0; o]
}

#[test]
fn curves_average_runs_by_horizon_and_refuse_malformed_lines() {
    let dir = std::env::temp_dir().join(format!("keel-rl-curves-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs.jsonl");
    let line = |h: u64, seed: u64, r: [f64; 2]| {
        serde_json::json!({"env": "pendulum", "horizon": h, "steps": 2000, "seed": seed,
            "train_seconds": 1.0, "evaluations": [
                {"step": 1000, "return_mean": r[0]}, {"step": 2000, "return_mean": r[1]}]})
        .to_string()
    };
    let text = [
        line(0, 0, [-1000.0, -500.0]),
        line(0, 1, [-800.0, -300.0]),
        line(2, 0, [-900.0, -200.0]),
        // A repeated seed counts once, the last line.
        line(2, 0, [-700.0, -100.0]),
    ]
    .join("\n");
    std::fs::write(&runs, text).unwrap();
    let o = common::keel(&["rl", "curves", runs.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0]["mean_return"],
        serde_json::json!([-900.0, -400.0])
    );
    assert_eq!(
        groups[0]["best_return"],
        serde_json::json!([-500.0, -300.0])
    );
    assert_eq!(groups[1]["seeds"], serde_json::json!([0]));
    assert_eq!(
        groups[1]["mean_return"],
        serde_json::json!([-700.0, -100.0])
    );
    std::fs::write(
        &runs,
        format!("{}\n{{\"env\": 3}}\n", line(0, 0, [1.0, 2.0])),
    )
    .unwrap();
    common::rejects(
        &["rl", "curves", runs.to_str().unwrap()],
        &["runs.jsonl", "line 2"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 19: a resumed run printed `evaluations[0].return_std` one unit in the last place off
/// the uninterrupted run's. The checkpoint keeps the evaluations in JSON metadata, and
/// serde_json's default float parser may read a number back one ULP away from the one it wrote
/// (serde-rs/json#707); with `float_roundtrip` it reads back exactly. The whole `--json` line
/// must match, text for text, except the wall-clock time.
#[test]
fn a_resumed_run_prints_the_uninterrupted_runs_json() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.st");
    let ck = ck.to_str().unwrap();
    // Seven evaluations of three episodes each, four of them before the interruption, so that
    // 40-odd numbers (means, standard deviations, the updates' diagnostics) cross the
    // checkpoint.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "rl",
            "train",
            "--env",
            "pendulum",
            "--horizon",
            "2",
            "--steps",
            "700",
            "--seed-steps",
            "100",
            "--warmup",
            "300",
            "--batch",
            "32",
            "--hidden",
            "8",
            "--eval-every",
            "100",
            "--eval-episodes",
            "3",
            "--seed",
            "4",
            "--quiet",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = common::keel(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    // The line with the timings (the numbers after `"train_seconds":` and `"update_seconds":`)
    // cut out.
    let timeless = |line: &str| {
        let mut line = line.to_string();
        for key in ["\"train_seconds\":", "\"update_seconds\":"] {
            let at = line.find(key).expect(key) + key.len();
            let number = line[at..]
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .expect("the number ends");
            line = format!("{}{}", &line[..at], &line[at + number..]);
        }
        line
    };
    let whole = run(&[]);
    let stopped = run(&["--checkpoint", ck, "--stop-after", "250"]);
    let stopped: Value = serde_json::from_str(&stopped).unwrap();
    assert_eq!(stopped["partial"], true, "{stopped}");
    assert_eq!(stopped["stopped_after"], 400, "{stopped}");
    let resumed = run(&["--checkpoint", ck, "--resume"]);
    let v: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(v["partial"], false, "{v}");
    assert_eq!(v["evaluations"].as_array().unwrap().len(), 7, "{v}");
    assert!(
        v["evaluations"][0]["return_std"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert_eq!(timeless(&resumed), timeless(&whole));
}
