//! The controller's policy (`keel_core::rl::Policy`, read from the host's export) against the
//! host's actor (`keel::rl::nets::Actor`, the reference's `svg/actor.py`) on the same weights and
//! the same noise: the deterministic action `tanh μ`, and the sampled action
//! `tanh(μ + e^ℓ ε)` with `ℓ = ℓ_min + ½(ℓ_max − ℓ_min)(tanh ℓ̃ + 1)`, over trunk outputs that
//! put `ℓ` near both bounds. The core draws `ε` from the caller's generator; the host is given
//! the same draws.

use keel::backend::DType;
use keel::params::Params;
use keel::rl::agent::{Agent, Config};
use keel::rl::export::policy_bytes;
use keel::rl::replay::{Replay, Transition};
use keel::tensor::Tensor;
use keel_core::io::SafeTensors;
use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_core::rl::Policy;

const OBS: usize = 5;
const ACTIONS: usize = 3;
/// Exact in f32, as the file stores them; not the defaults, so a core that ignored the file's
/// bounds would fail.
const BOUNDS: [f64; 2] = [-4.5, 1.25];

fn f32_rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}

/// An actor whose trunk output spans a wide range (weights of the last layer doubled,
/// random biases), every parameter rounded to f32 as the exporter writes it; and a replay
/// whose observation statistics are far from (0, 1).
fn setup() -> (Agent, Replay) {
    let cfg = Config {
        hidden: 16,
        dtype: DType::F64,
        log_std_bounds: BOUNDS,
        ..Config::default()
    };
    let mut agent = Agent::new(cfg, OBS, ACTIONS, 17).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let layers = agent.actor.net.trunk.layers.clone();
    let p: &mut Params = &mut agent.actor.params;
    for (i, l) in layers.iter().enumerate() {
        let last = i + 1 == layers.len();
        let w = p.get(l.weight).to_vec_f64().unwrap();
        let w: Vec<f64> = w.iter().map(|v| if last { 2.0 * v } else { *v }).collect();
        p.set(
            l.weight,
            Tensor::from_f64s(&f32_rounded(&w), &[l.out, l.inp], DType::F64).unwrap(),
        )
        .unwrap();
        let b: Vec<f64> = (0..l.out)
            .map(|_| uniform::<f64, _>(&mut rng) - 0.5)
            .collect();
        p.set(
            l.bias,
            Tensor::from_f64s(&f32_rounded(&b), &[l.out], DType::F64).unwrap(),
        )
        .unwrap();
    }
    let mut replay = Replay::new(OBS, 100);
    for _ in 0..40 {
        let obs: Vec<f64> = (0..OBS)
            .map(|i| 0.5 * i as f64 - 1.0 + (1.0 + i as f64) * standard_normal::<f64, _>(&mut rng))
            .collect();
        replay.push(Transition {
            obs: obs.clone(),
            action: vec![0.0; ACTIONS],
            reward: 0.0,
            next_obs: obs,
            terminal: false,
            last: false,
        });
    }
    (agent, replay)
}

#[test]
fn sampled_and_deterministic_actions_are_the_hosts_actor() {
    let (agent, replay) = setup();
    let limits = [(-2.0, 2.0), (-10.0, 10.0), (0.0, 1.0)];
    let bytes = policy_bytes(&agent, &replay, "test", &limits).unwrap();
    let st = SafeTensors::<'_, 32>::parse(&bytes).unwrap();
    let policy = Policy::<'_, 4>::from_safetensors(&st).unwrap();
    assert_eq!((policy.observations(), policy.actions()), (OBS, ACTIONS));
    // The file's statistics are f32; the host normalises with the same numbers.
    let mean = f32_rounded(&replay.stats.mean);
    let std = f32_rounded(&replay.stats.std());
    let actor = &agent.actor;
    let mut scratch = vec![0.0f64; policy.scratch_len()];
    let mut scratch32 = vec![0.0f32; policy.scratch_len()];
    let mut obs_rng = Xoshiro256PlusPlus::seed_from_u64(99);
    let (mut worst, mut worst_mean, mut worst32) = (0.0f64, 0.0f64, 0.0f64);
    let (mut lo_seen, mut hi_seen, mut interior) = (f64::INFINITY, f64::NEG_INFINITY, 0);
    let span = BOUNDS[1] - BOUNDS[0];
    let trials = 200;
    for trial in 0..trials {
        let obs: Vec<f64> = (0..OBS)
            .map(|i| mean[i] + 2.0 * std[i] * standard_normal::<f64, _>(&mut obs_rng))
            .collect();
        let x: Vec<f64> = (0..OBS).map(|i| (obs[i] - mean[i]) / std[i]).collect();
        let x = Tensor::from_f64s(&x, &[1, OBS], DType::F64).unwrap();

        // Sampled: the core draws ε from `rng`; the host gets the same draws from a copy.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1000 + trial);
        let mut copy = rng.clone();
        let eps: Vec<f64> = (0..ACTIONS)
            .map(|_| standard_normal::<f64, _>(&mut copy))
            .collect();
        let mut action = [0.0f64; ACTIONS];
        policy
            .sample(&obs, &mut rng, &mut action, &mut scratch)
            .unwrap();
        assert_eq!(
            uniform::<f64, _>(&mut rng),
            uniform::<f64, _>(&mut copy),
            "the core draws one normal per action"
        );
        let eps_t = Tensor::from_f64s(&eps, &[1, ACTIONS], DType::F64).unwrap();
        let host = actor
            .net
            .sample(&actor.params, &x, &eps_t)
            .unwrap()
            .action
            .to_vec_f64()
            .unwrap();
        // Both evaluate the same f64 network and map (sums in another order, libm's tanh and
        // exp against the engine's): rounding only, measured 1.5e-15 absolute on actions in
        // (−1, 1); bound 1e-14.
        for i in 0..ACTIONS {
            worst = worst.max((action[i] - host[i]).abs());
            assert!(
                (action[i] - host[i]).abs() < 1e-14,
                "trial {trial} action {i}: core {} vs host {} (ε {})",
                action[i],
                host[i],
                eps[i]
            );
        }
        let (_, log_std) = actor.net.mean_and_log_std(&actor.params, &x).unwrap();
        for l in log_std.to_vec_f64().unwrap() {
            interior += usize::from(l > BOUNDS[0] + 0.1 * span && l < BOUNDS[1] - 0.1 * span);
            lo_seen = lo_seen.min(l);
            hi_seen = hi_seen.max(l);
        }

        // Deterministic: tanh μ.
        let mut det = [0.0f64; ACTIONS];
        policy.act(&obs, &mut det, &mut scratch).unwrap();
        let host_det = actor
            .net
            .mean_action(&actor.params, &x)
            .unwrap()
            .to_vec_f64()
            .unwrap();
        // Rounding only: measured 8.6e-16; bound 1e-14.
        for i in 0..ACTIONS {
            worst_mean = worst_mean.max((det[i] - host_det[i]).abs());
            assert!(
                (det[i] - host_det[i]).abs() < 1e-14,
                "trial {trial} mean action {i}: core {} vs host {}",
                det[i],
                host_det[i]
            );
        }

        // f32 on the controller: ε drawn as f32 from the same generator state.
        let mut rng32 = Xoshiro256PlusPlus::seed_from_u64(1000 + trial);
        let mut copy32 = rng32.clone();
        let eps32: Vec<f64> = (0..ACTIONS)
            .map(|_| standard_normal::<f32, _>(&mut copy32) as f64)
            .collect();
        let obs32: Vec<f32> = obs.iter().map(|&v| v as f32).collect();
        let mut action32 = [0.0f32; ACTIONS];
        policy
            .sample(&obs32, &mut rng32, &mut action32, &mut scratch32)
            .unwrap();
        let x32: Vec<f64> = (0..OBS)
            .map(|i| (obs32[i] as f64 - mean[i]) / std[i])
            .collect();
        let host32 = actor
            .net
            .sample(
                &actor.params,
                &Tensor::from_f64s(&x32, &[1, OBS], DType::F64).unwrap(),
                &Tensor::from_f64s(&eps32, &[1, ACTIONS], DType::F64).unwrap(),
            )
            .unwrap()
            .action
            .to_vec_f64()
            .unwrap();
        for i in 0..ACTIONS {
            let e = (action32[i] as f64 - host32[i]).abs();
            worst32 = worst32.max(e);
            // f32 arithmetic through the 5-16-16-6 network and the map (ε drawn in f32 too):
            // measured 1.0e-6 against the f64 host on the same f32 inputs; bound 5e-6.
            assert!(
                e < 5e-6,
                "trial {trial} f32 action {i}: {} vs {}",
                action32[i],
                host32[i]
            );
        }
    }
    eprintln!(
        "core vs host: sampled {worst:.1e}, deterministic {worst_mean:.1e}, f32 sampled \
         {worst32:.1e}; log-std seen in [{lo_seen:.2}, {hi_seen:.2}] of {BOUNDS:?}"
    );
    // The log-std map was exercised near both of its bounds and between them (measured: 357
    // of the 600 values more than a tenth of the span from either bound).
    assert!(
        lo_seen < BOUNDS[0] + 0.1 * span && hi_seen > BOUNDS[1] - 0.1 * span,
        "log-std only in [{lo_seen}, {hi_seen}]"
    );
    assert!(interior >= trials as usize, "{interior} interior log-stds");
}
