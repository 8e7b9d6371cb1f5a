//! The methods' device paths, one test body per device (candle's `test_device!` pattern): an
//! EMLP forward and backward, the device-resident HMC sampler, and the whole training loops of a
//! GAN, of the constrained-dynamics models (`keel chnn train`), of SAC-SVG(H) (`keel rl
//! train`) and of a deep ensemble's members in lockstep (`keel bayes ensemble`). The `_cpu` variant runs everywhere; the `_cuda` variant is ignored unless run on a machine with a GPU
//! (`cuda/check.sh` runs the ignored tests there). The engine's own operations are compared
//! across devices in `host/engine/tests/device.rs`.

use keel::autodiff::backward;
use keel::{DType, Device, Tensor};

/// `fixtures/data/digits.csv` from the source tree, or (a bundled binary on a GPU machine,
/// `cuda/check.sh`) from the repository root it runs in.
fn digits_csv() -> std::path::PathBuf {
    let built =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/digits.csv");
    if built.exists() {
        built
    } else {
        std::path::PathBuf::from("fixtures/data/digits.csv")
    }
}

macro_rules! test_device {
    ($name:ident, |$d:ident| $body:block) => {
        mod $name {
            use super::*;
            fn run($d: Device) $body
            #[test]
            fn cpu() {
                run(Device::Cpu);
            }
            #[test]
            #[ignore = "needs a GPU: run cuda/check.sh on a GPU machine"]
            fn cuda() {
                run(Device::Cuda(0));
            }
        }
    };
}

fn emlp_parity(d: Device) {
    use keel::emlp::model::Emlp;
    use keel::emlp::{parse_group, parse_rep, Solver};
    use keel::params::Params;
    let g = parse_group("O(3)").unwrap();
    let ri = parse_rep("V**2+V", Some(&g)).unwrap();
    let ro = parse_rep("V", Some(&g)).unwrap();
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(3);
    let mut params = Params::new();
    let net = Emlp::new(
        &mut params,
        &g,
        &ri,
        &ro,
        48,
        2,
        &Solver::new(None),
        DType::F32,
        &mut rng,
    )
    .unwrap();
    let b = 37;
    let x: Vec<f64> = (0..b * ri.size())
        .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect();
    let run = |dev: Device| -> (Vec<f64>, Vec<Vec<f64>>) {
        let net = net.to_device(dev).unwrap();
        let p = params.to_device(dev).unwrap().variables();
        let xt = Tensor::from_f64s(&x, &[b, ri.size()], DType::F32)
            .unwrap()
            .to_device(dev)
            .unwrap();
        let y = net.forward(&p, &xt).unwrap();
        assert_eq!(y.device(), dev);
        let loss = y.square().unwrap().sum_all().unwrap();
        let refs: Vec<&Tensor> = p.values().iter().collect();
        let grads = backward(&loss, &refs).unwrap();
        (
            y.to_vec_f64().unwrap(),
            grads.iter().map(|g| g.to_vec_f64().unwrap()).collect(),
        )
    };
    let (y, gr) = run(d);
    let (y0, gr0) = run(Device::Cpu);
    let close = |what: &str, a: &[f64], b: &[f64]| {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-4 * scale,
                "{d} {what}[{i}]: {p} vs cpu {q} (scale {scale})"
            );
        }
    };
    close("output", &y, &y0);
    assert!(y0.iter().any(|v| v.abs() > 1e-3), "a non-trivial output");
    for (k, (a, b)) in gr.iter().zip(&gr0).enumerate() {
        close(&format!("gradient {k}"), a, b);
    }
}

test_device!(emlp_forward_backward, |d| {
    emlp_parity(d);
});

/// Full-batch HMC held on `d` (the fused leapfrog kernel, the kinetic-energy and prior-difference
/// reductions, the engine's gradients) against the same chain on the CPU: a digits MLP, f64 and
/// f32, every prior — one 20-step trajectory's end point and momentum, its log acceptance, and
/// then four MH iterations whose accept decisions and samples must agree.
fn hmc_parity(d: Device) {
    use keel::bayes::hmc::{leapfrog, log_acceptance, sample, Ensembling, HmcConfig, State};
    use keel::bayes::mlp::{Bnn, Likelihood, Split};
    use keel::bayes::prior::Prior;
    let path = digits_csv();
    let data = keel::data::read_csv(&path, "label", true).unwrap();
    let split = Split::new(&data, 0.5, 0).unwrap();
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 2e-3)] {
        for prior in ["gaussian", "mixture", "logistic"] {
            let prior = Prior::new(prior, 0.3, 0.5, 4.0).unwrap();
            let bnn = |dev| {
                Bnn::new(
                    &split,
                    &[32],
                    Likelihood::Categorical { classes: 10 },
                    prior,
                    1.0,
                    dev,
                    dtype,
                )
                .unwrap()
            };
            let (on, cpu) = (bnn(d), bnn(Device::Cpu));
            let theta0 = cpu.init(3);
            let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(5);
            let p0: Vec<f64> = (0..theta0.len())
                .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
                .collect();
            let run = |b: &Bnn| {
                let s0 = State::at(b, &theta0).unwrap();
                let (s, p) = leapfrog(b, &s0, &p0, 2e-3, 20).unwrap();
                assert_eq!(
                    s.theta.device(),
                    b.device(),
                    "the state stays on the device"
                );
                let p0t = b.flat(&p0).unwrap();
                let log_a = log_acceptance(b, &s0, &p0t, &s, &p).unwrap();
                (
                    s.theta.to_vec_f64().unwrap(),
                    p.to_vec_f64().unwrap(),
                    log_a,
                )
            };
            let ((t, p, a), (t0, p0c, a0)) = (run(&on), run(&cpu));
            let close = |what: &str, x: &[f64], y: &[f64]| {
                let scale = y.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    assert!(
                        (u - v).abs() <= tol * scale,
                        "{d} {dtype} {prior:?} {what}[{i}]: {u} vs cpu {v}"
                    );
                }
            };
            close("θ", &t, &t0);
            close("p", &p, &p0c);
            assert!(
                (a - a0).abs() <= tol * 100.0 * (1.0 + a0.abs()),
                "{d} {dtype} log a {a} vs cpu {a0}"
            );
            if dtype == DType::F64 {
                let cfg = HmcConfig {
                    step_size: 2e-3,
                    trajectory_length: 0.02,
                    max_leapfrog_steps: 100,
                    iterations: 4,
                    burn_in: 1,
                    mh: true,
                    ensembling: Ensembling::Textbook,
                    seed: 9,
                    adapt: None,
                };
                let (c, c0) = (
                    sample(&on, theta0.clone(), &cfg).unwrap(),
                    sample(&cpu, theta0.clone(), &cfg).unwrap(),
                );
                assert_eq!(
                    c.acceptance_rate, c0.acceptance_rate,
                    "{d} {prior:?}: the same decisions"
                );
                for (x, y) in c.samples.iter().zip(&c0.samples) {
                    close("sample", x, y);
                }
            }
        }
    }
}

test_device!(hmc_on_device, |d| {
    hmc_parity(d);
});

/// A digits GAN trained on `d` against the same run on the CPU: the DCGAN networks (transposed
/// convolutions, batch norm, the gradient penalty's double backward through convolutions), the
/// re-weighting softmax, the classifier and the clipped surrogate, all three outer iterations'
/// logged losses and the saved generator's samples, in f64 (the draws are the host's, so the
/// runs see the same numbers; only summation order differs).
fn gan_parity(d: Device) {
    use keel::gan::{self, GanConfig, GanData, Method};
    let path = digits_csv();
    let set = keel::images::csv::read_csv_images(
        &path,
        "label",
        true,
        keel::images::ImageShape::new(1, 8, 8).unwrap(),
    )
    .unwrap();
    let run = |dev: Device| {
        let mut cfg = GanConfig::new(
            GanData::Images {
                name: "digits".into(),
                set: set.clone(),
            },
            Method::Ppo,
        );
        cfg.arch = gan::Arch::Dcgan { width: 8 };
        cfg.iterations = 3;
        cfg.batch = 64;
        cfg.latent = 16;
        cfg.eval_samples = 100;
        cfg.dtype = DType::F64;
        cfg.device = dev;
        gan::train(&cfg, &mut |_| {}).unwrap()
    };
    let (on, cpu) = (run(d), run(Device::Cpu));
    let tol = 1e-9;
    for (what, x, y) in [
        ("critic", &on.critic_losses, &cpu.critic_losses),
        ("generator", &on.generator_losses, &cpu.generator_losses),
        ("samples", &on.samples, &cpu.samples),
    ] {
        assert_eq!(x.len(), y.len());
        for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
            assert!(
                (u - v).abs() <= tol * (1.0 + v.abs()),
                "{d} {what}[{i}]: {u} vs cpu {v}"
            );
        }
    }
}

test_device!(gan_on_device, |d| {
    gan_parity(d);
});

/// Constrained-dynamics training on `d` against the same run on the CPU: CHNN (learned masses,
/// the projected field of the constraint graph), HNN and DeLaN (learned mass factors) in
/// generalised coordinates — each epoch's mean RK4-rollout loss through the integrator's
/// gradients and AdamW. The networks are f32 (as `keel chnn train` trains them) and the batches
/// the host's, so only summation order and fused multiply-adds differ.
fn chnn_parity(d: Device) {
    use keel::chnn::data::{generate, SystemSpec};
    use keel::chnn::model::ModelKind;
    use keel::chnn::train::{train, TrainConfig};
    use keel::simulate::SystemKind;
    let system = SystemSpec {
        kind: SystemKind::ChainPendulum,
        size: Some(2),
    };
    let data = generate(system, 20, 0).unwrap();
    for model in [ModelKind::Chnn, ModelKind::Hnn, ModelKind::Delan] {
        let run = |dev: Device| {
            let cfg = TrainConfig {
                system,
                model,
                n_train: 20,
                epochs: 3,
                batch: 10,
                lr: 3e-3,
                weight_decay: 1e-4,
                hidden: 32,
                layers: 2,
                seed: 0,
                checkpoint: Default::default(),
                device: dev,
            };
            train(&cfg, &data, &mut |_| {}).unwrap()
        };
        let (on, cpu) = (run(d), run(Device::Cpu));
        assert_eq!(on.device, d);
        assert!(
            on.params.values().iter().all(|p| p.device() == Device::Cpu),
            "the trained parameters come back to the host"
        );
        assert_eq!(on.history.len(), 3);
        for (i, (u, v)) in on.history.iter().zip(&cpu.history).enumerate() {
            // f32 over 6 AdamW steps: a relative 1e-4 is ~1000 ulps of headroom for reordered
            // sums, far below the loss's change from one epoch to the next.
            assert!(
                (u - v).abs() <= 1e-4 * v.abs(),
                "{d} {} epoch {i}: loss {u} vs cpu {v}",
                model.name()
            );
        }
    }
}

test_device!(chnn_on_device, |d| {
    chnn_parity(d);
});

/// A short SAC-SVG(3) run on `d` against the same run on the CPU, in f64: random seed steps,
/// then model-free and model-based updates (the world model's multi-step loss through the GRU,
/// the critic and its Polyak target, the actor's rollout through the models, the temperature,
/// reward and done models), with the environment and the replay on the host. The evaluation
/// returns, each interval's update diagnostics and the final actor must agree.
fn rl_parity(d: Device) {
    use keel::rl::agent::Config;
    use keel::rl::train::{train, Outcome, Run};
    let run = |dev: Device| {
        let cfg = Config {
            horizon: 3,
            hidden: 16,
            batch: 32,
            seq_batch: 16,
            seed_steps: 30,
            warmup: 60,
            dtype: DType::F64,
            ..Config::default()
        };
        let run = Run {
            env: "pendulum".into(),
            steps: 120,
            seed: 5,
            eval_every: 60,
            eval_episodes: 1,
        };
        match train(cfg, &run, &Default::default(), dev, |_| {}).unwrap() {
            Outcome::Finished(t) => *t,
            Outcome::Stopped { step } => panic!("stopped at {step}"),
        }
    };
    let (on, cpu) = (run(d), run(Device::Cpu));
    assert_eq!(on.agent.device, d);
    assert!(on.update_seconds.is_some_and(|s| s > 0.0));
    let close = |what: &str, u: f64, v: f64| {
        assert!(
            (u - v).abs() <= 1e-8 * (1.0 + v.abs()),
            "{d} {what}: {u} vs cpu {v}"
        );
    };
    assert_eq!(on.evaluations.len(), cpu.evaluations.len());
    for (e, f) in on.evaluations.iter().zip(&cpu.evaluations) {
        close(&format!("return at step {}", e.step), e.mean, f.mean);
        let (x, y) = (e.diagnostics.named(), f.diagnostics.named());
        assert_eq!(x.len(), y.len());
        for ((name, u), (_, v)) in x.iter().zip(&y) {
            close(&format!("{name} at step {}", e.step), *u, *v);
        }
    }
    for (i, (p, q)) in on
        .agent
        .actor
        .params
        .values()
        .iter()
        .zip(cpu.agent.actor.params.values())
        .enumerate()
    {
        assert_eq!(p.device(), d);
        for (u, v) in p.to_vec_f64().unwrap().iter().zip(q.to_vec_f64().unwrap()) {
            close(&format!("actor parameter {i}"), *u, v);
        }
    }
}

test_device!(rl_on_device, |d| {
    rl_parity(d);
});

/// A deep ensemble's members trained in lockstep on `d` (parameters, momenta and the fused
/// update on the device; each member's batches gathered into one batched computation) against
/// the same members on the CPU, in f64.
fn ensemble_parity(d: Device) {
    use keel::bayes::mlp::{Bnn, Likelihood, Split};
    use keel::bayes::prior::Prior;
    use keel::bayes::stochastic::{sgd_members, Batching};
    let path = digits_csv();
    let data = keel::data::read_csv(&path, "label", true).unwrap();
    let split = Split::new(&data, 0.5, 0).unwrap();
    let run = |dev: Device| {
        let bnn = Bnn::new(
            &split,
            &[32],
            Likelihood::Categorical { classes: 10 },
            Prior::new("mixture", 0.3, 0.5, 4.0).unwrap(),
            1.0,
            dev,
            DType::F64,
        )
        .unwrap();
        let seeds = [0u64, 1, 2, 3];
        let batchings: Vec<Batching> = seeds
            .iter()
            .map(|&seed| Batching {
                batch_size: 64,
                epochs: 3,
                seed,
                augment: None,
            })
            .collect();
        let inits = seeds.iter().map(|&s| bnn.init(s)).collect();
        sgd_members(&bnn, inits, 1e-4, &batchings, &mut |_| {}).unwrap()
    };
    let (on, cpu) = (run(d), run(Device::Cpu));
    for (k, (a, b)) in on.iter().zip(&cpu).enumerate() {
        for (i, (u, v)) in a.iter().zip(b).enumerate() {
            assert!(
                (u - v).abs() <= 1e-9 * (1.0 + v.abs()),
                "{d} member {k} parameter {i}: {u} vs cpu {v}"
            );
        }
    }
}

test_device!(ensemble_on_device, |d| {
    ensemble_parity(d);
});
