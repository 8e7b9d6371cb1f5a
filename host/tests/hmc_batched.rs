//! HMC chains run in lockstep with batched evaluations (`keel::bayes::hmc::sample_batched`):
//! the batched likelihood and gradient equal each chain's own, for both likelihoods, and every
//! chain of a batched run equals the chain run alone — accept decisions, adapted step sizes and
//! samples — to 1e-12 in f64, also when adaptation gives the chains different trajectory
//! lengths.

use keel::bayes::hmc::{
    sample, sample_batched, Adaptation, BatchTarget, Ensembling, HmcConfig, Target,
};
use keel::bayes::mlp::{Bnn, Likelihood};
use keel::{DType, Tensor};

use crate::common::small_bnn;

fn digits() -> Bnn {
    small_bnn(
        "digits.csv",
        "label",
        Likelihood::Categorical { classes: 10 },
        "gaussian",
    )
}

fn close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

#[test]
fn batched_likelihoods_and_gradients_equal_each_chains_own() {
    let diabetes = small_bnn("diabetes.csv", "target", Likelihood::Gaussian, "gaussian");
    for model in [digits(), diabetes] {
        let thetas: Vec<Vec<f64>> = (0..3).map(|s| model.init(10 + s)).collect();
        let flat: Vec<f64> = thetas.concat();
        let stacked = Tensor::from_f64s(&flat, &[3, model.dim()], DType::F64).unwrap();
        let (lls, grads) = model.likelihoods_and_gradients(&stacked).unwrap();
        assert_eq!(grads.dims(), [3, model.dim()]);
        let grads = grads.to_vec_f64().unwrap();
        for (c, theta) in thetas.iter().enumerate() {
            let t = Tensor::from_f64s(theta, &[theta.len()], DType::F64).unwrap();
            let (ll, g) = model.likelihood_and_gradient(&t).unwrap();
            close("log L", &[lls[c]], &[ll], 1e-12);
            close(
                "gradient",
                &grads[c * model.dim()..(c + 1) * model.dim()],
                &g.to_vec_f64().unwrap(),
                1e-12,
            );
        }
    }
    let model = digits();
    let wrong = Tensor::from_f64s(&[0.0; 6], &[2, 3], DType::F64).unwrap();
    let e = model.likelihoods_and_gradients(&wrong).unwrap_err();
    assert!(e.to_string().contains("chains"), "{e}");
}

#[test]
fn every_chain_of_a_batched_run_equals_the_chain_run_alone() {
    let model = digits();
    let cfg = |seed: u64| HmcConfig {
        // Step sizes 1e-3, 2e-3, 3e-3: L = 20, 10, 7 at the start.
        step_size: 1e-3 * (seed - 6) as f64,
        trajectory_length: 0.02,
        max_leapfrog_steps: 1000,
        iterations: 4,
        burn_in: 4,
        mh: true,
        ensembling: Ensembling::Textbook,
        seed,
        // Strong adaptation: the chains' step sizes, and so their L, move during burn-in.
        adapt: Some(Adaptation {
            speed: 2.0,
            target: 0.9,
        }),
    };
    let cfgs: Vec<HmcConfig> = (0..3).map(|c| cfg(7 + c)).collect();
    let starts: Vec<Vec<f64>> = (0..3).map(|c| model.init(20 + c)).collect();
    let mut iterations = 0;
    let batched = sample_batched(&model, starts.clone(), &cfgs, &mut |i| iterations = i).unwrap();
    assert_eq!(iterations, 8);
    let mut lengths = Vec::new();
    for (c, chain) in batched.iter().enumerate() {
        let alone = sample(&model, starts[c].clone(), &cfgs[c]).unwrap();
        assert_eq!(chain.acceptance_rate, alone.acceptance_rate, "chain {c}");
        assert_eq!(chain.leapfrog_steps, alone.leapfrog_steps, "chain {c}");
        close("step size", &[chain.step_size], &[alone.step_size], 1e-12);
        assert_eq!(chain.samples.len(), alone.samples.len());
        for (k, (a, b)) in chain.samples.iter().zip(&alone.samples).enumerate() {
            close(&format!("chain {c} sample {k}"), a, b, 1e-12);
        }
        lengths.push(chain.leapfrog_steps);
    }
    // The test means something only if the chains ran trajectories of different lengths.
    assert!(
        lengths.iter().any(|&l| l != lengths[0]),
        "the chains should end with different L: {lengths:?}"
    );
}
