//! SAC-SVG(H): one full agent update (`keel rl train`'s per-step work: 4 multi-step dynamics
//! updates of 512 windows, critic, SVG(3) actor and temperature, reward and done models, target
//! update — batch 1024, 128 units, f32) on a replay of 3000 pendulum transitions; one
//! evaluation of an exported policy by the core (`keel_core::rl::Policy::act`, f32); and one
//! model-based value estimate by the core (`keel_core::rl::ValueModel::value`, H = 3, f32).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use keel::rl::agent::{remember, Agent, Config};
use keel::rl::env;
use keel::rl::export::{policy_bytes, value_bytes};
use keel::rl::replay::Replay;
use keel_core::io::SafeTensors;
use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::rl::{Policy, ValueModel};

fn filled_replay() -> Replay {
    let mut task = env::make("pendulum").expect("pendulum");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut replay = Replay::new(3, 3000);
    let mut obs = task.reset(&mut rng).expect("reset");
    for _ in 0..3000 {
        let a = vec![2.0 * uniform::<f64, _>(&mut rng) - 1.0];
        let s = task.step(&a).expect("step");
        remember(
            &mut replay,
            &obs,
            &a,
            s.reward,
            &s.observation,
            s.terminated,
            s.truncated,
        );
        obs = if s.truncated {
            task.reset(&mut rng).expect("reset")
        } else {
            s.observation
        };
    }
    replay
}

fn bench(c: &mut Criterion) {
    let replay = filled_replay();
    let mut agent = Agent::new(Config::default(), 3, 1, 0).expect("agent");
    let mut g = c.benchmark_group("rl");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("update/svg3-b1024-h128-f32", |b| {
        b.iter(|| {
            agent
                .update(black_box(&replay), 5000, 30_000)
                .expect("update")
        })
    });
    let bytes = policy_bytes(&agent, &replay, "pendulum", &[(-2.0, 2.0)]).expect("export");
    let st = SafeTensors::<64>::parse(&bytes).expect("parse");
    let policy = Policy::<8>::from_safetensors(&st).expect("policy");
    let mut scratch = vec![0.0f32; policy.scratch_len()];
    let obs = [0.3f32, -0.95, 1.2];
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(100);
    g.bench_function("core-policy-act/f32-3-128-128-2", |b| {
        b.iter(|| {
            let mut a = [0.0f32; 1];
            policy
                .act(black_box(&obs), &mut a, &mut scratch)
                .expect("act");
            a
        })
    });
    let bytes = value_bytes(&agent, &replay, "pendulum").expect("export");
    let st = SafeTensors::<128>::parse(&bytes).expect("parse");
    let value = ValueModel::<8>::from_safetensors(&st).expect("value model");
    let mut scratch = vec![0.0f32; value.scratch_len()];
    g.bench_function("core-value/f32-h3-128", |b| {
        b.iter(|| value.value(black_box(&obs), &mut scratch).expect("value"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
