//! Bayesian neural networks: the HMC leapfrog step on the host and the model average on the
//! controller side (keel-core).
//!
//! Bench ids:
//! - `leapfrog/f64/digits-mlp64`: one leapfrog step of `keel bayes hmc` on the digits MLP
//!   (64 → 64 → 10, ReLU, 4810 parameters): half kick, drift, one full-batch gradient of the
//!   tempered log posterior (1617 training rows, categorical likelihood, Gaussian prior), half
//!   kick — the unit of HMC's cost (`L = ⌈τ/ε⌉` of them per iteration);
//! - `hmc_chains/{batched,sequential}/C{1,2,4,8}`: one HMC iteration (fresh momenta, a
//!   5-step trajectory, the MH test) of C chains on the same digits MLP — batched, the chains in
//!   lockstep with one batched evaluation per leapfrog step (`hmc::advance_batched`), or one
//!   chain after the other (`ChainState::advance`) — issue 25 §4;
//! - `ensemble_members/{lockstep,host}/M{1,2,4,8}`: one epoch (12 steps of batch 128) of M
//!   deep-ensemble members' SGD on the same digits MLP — in lockstep, each member's batch in one
//!   batched computation and the parameters updated in place by the fused kernel
//!   (`stochastic::sgd_members`), or one member after the other by the host loop
//!   (`stochastic::sgd_on_host`, a gradient copied out and the update on host vectors);
//! - `bma/f32/digits-10x64`: one 10-sample Bayesian model average of one digit by
//!   `keel_core::nn::Bma` (the firmware's classification), f32.
//!
//! The JAX-on-the-CPU peer of the leapfrog step is `benches/peers/hmc_leapfrog.py`.
//!
//! ```text
//! cargo bench -p keel-benches --bench bayes
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel::backend::{DType, Device};
use keel::bayes::hmc::{advance_batched, leapfrog, ChainState, Ensembling, HmcConfig, State};
use keel::bayes::mlp::{Bnn, Likelihood, Split};
use keel::bayes::prior::Prior;
use keel::bayes::samples::{bma_bytes, SampleSet, Spec};
use keel::bayes::stochastic::{sgd_members, sgd_on_host, Batching};
use keel_core::io::SafeTensors;
use keel_core::nn::Bma;

fn digits() -> (Split, Bnn) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = keel::data::read_csv(&root.join("fixtures/data/digits.csv"), "label", true)
        .expect("digits");
    let split = Split::new(&data, 0.1, 0).expect("split");
    let bnn = Bnn::new(
        &split,
        &[64],
        Likelihood::Categorical { classes: 10 },
        Prior::Gaussian { std: 0.447 },
        1.0,
        Device::Cpu,
        DType::F64,
    )
    .expect("model");
    (split, bnn)
}

fn bench(c: &mut Criterion) {
    eprintln!("{}", keel_benches::cpu_line());
    let (split, bnn) = digits();
    let state = State::at(&bnn, &bnn.init(0)).expect("state");
    let p: Vec<f64> = (0..bnn.dim()).map(|i| ((i as f64) * 0.37).sin()).collect();
    let mut g = c.benchmark_group("leapfrog");
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("f64/digits-mlp64", |b| {
        b.iter(|| leapfrog(&bnn, black_box(&state), black_box(&p), 5e-3, 1).expect("step"))
    });
    g.finish();

    let mut g = c.benchmark_group("hmc_chains");
    g.measurement_time(Duration::from_secs(5));
    for chains in [1usize, 2, 4, 8] {
        let cfgs: Vec<HmcConfig> = (0..chains)
            .map(|k| HmcConfig {
                step_size: 1e-3,
                trajectory_length: 5e-3,
                max_leapfrog_steps: 100,
                iterations: 10,
                burn_in: 10,
                mh: true,
                ensembling: Ensembling::AcceptedOnly,
                seed: k as u64,
                adapt: None,
            })
            .collect();
        let start: Vec<ChainState> = cfgs
            .iter()
            .enumerate()
            .map(|(k, cfg)| ChainState::start(&bnn, bnn.init(k as u64), cfg).expect("chain"))
            .collect();
        let refs: Vec<&HmcConfig> = cfgs.iter().collect();
        g.bench_function(format!("batched/C{chains}"), |b| {
            b.iter_batched(
                || start.clone(),
                |mut states| {
                    let mut each: Vec<&mut ChainState> = states.iter_mut().collect();
                    advance_batched(&bnn, &mut each, &refs).expect("iteration")
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("sequential/C{chains}"), |b| {
            b.iter_batched(
                || start.clone(),
                |mut states| {
                    for (st, cfg) in states.iter_mut().zip(&cfgs) {
                        st.advance(&bnn, cfg).expect("iteration");
                    }
                    states
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("ensemble_members");
    g.measurement_time(Duration::from_secs(5));
    for members in [1usize, 2, 4, 8] {
        let batchings: Vec<Batching> = (0..members as u64)
            .map(|seed| Batching {
                batch_size: 128,
                epochs: 1,
                seed,
                augment: None,
            })
            .collect();
        let inits: Vec<Vec<f64>> = (0..members as u64).map(|s| bnn.init(s)).collect();
        g.bench_function(format!("lockstep/M{members}"), |b| {
            b.iter_batched(
                || inits.clone(),
                |inits| sgd_members(&bnn, inits, 1e-3, &batchings, &mut |_| {}).expect("epoch"),
                BatchSize::SmallInput,
            )
        });
        g.bench_function(format!("host/M{members}"), |b| {
            b.iter_batched(
                || inits.clone(),
                |inits| {
                    inits
                        .into_iter()
                        .zip(&batchings)
                        .map(|(t, bt)| sgd_on_host(&bnn, t, 1e-3, bt, &mut |_| {}).expect("epoch"))
                        .collect::<Vec<_>>()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let samples: Vec<Vec<f64>> = (0..10).map(|s| bnn.init(s)).collect();
    let set = SampleSet {
        spec: Spec {
            method: "bench".into(),
            hidden: vec![64],
            cnn: None,
            likelihood: "categorical".into(),
            classes: (0..10).map(|c| c.to_string()).collect(),
            prior: "gaussian".into(),
            prior_std: 0.447,
            mixture_weight: 0.5,
            mixture_ratio: 4.0,
            temperature: 1.0,
            data: "digits.csv".into(),
            target: "label".into(),
            rows: 1797,
            test_fraction: 0.1,
            split_seed: 0,
            standardize: Default::default(),
            settings: Default::default(),
        },
        samples,
        chain: vec![0; 10],
    };
    let bytes = bma_bytes(&set, &split, &bnn.sizes(), 10).expect("export");
    let st = SafeTensors::<8>::parse(&bytes).expect("parse");
    let bma = Bma::<4>::from_safetensors(&st).expect("bma");
    let x: Vec<f32> = split.x_test[..64].iter().map(|&v| v as f32).collect();
    let mut probs = [0.0f32; 10];
    let mut scratch = vec![0.0f32; bma.scratch_len()];
    let mut g = c.benchmark_group("bma");
    g.bench_function("f32/digits-10x64", |b| {
        b.iter(|| {
            bma.predict(black_box(&x), &mut probs, &mut scratch)
                .expect("predict")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
