//! Deep-ensemble members trained in lockstep (`keel::bayes::stochastic::sgd_members`): each
//! member's own batches gathered into one batched computation on the model's device, the
//! parameters and momenta kept there and updated by one fused kernel. Every member must equal
//! the same member trained alone by the host loop (`sgd_on_host`) to 1e-12 in f64, for both
//! likelihoods and every prior (whose gradient the fused update computes).

use keel::bayes::mlp::Likelihood;
use keel::bayes::stochastic::{sgd, sgd_members, sgd_on_host, Batching};

use crate::common::small_bnn;

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

fn batching(seed: u64) -> Batching {
    Batching {
        batch_size: 40,
        epochs: 3,
        seed,
        augment: None,
    }
}

#[test]
fn lockstep_members_equal_each_member_trained_alone_on_the_host() {
    for (model, lr) in [
        (
            small_bnn(
                "digits.csv",
                "label",
                Likelihood::Categorical { classes: 10 },
                "gaussian",
            ),
            1e-4,
        ),
        (
            small_bnn(
                "digits.csv",
                "label",
                Likelihood::Categorical { classes: 10 },
                "mixture",
            ),
            1e-4,
        ),
        (
            small_bnn("diabetes.csv", "target", Likelihood::Gaussian, "logistic"),
            1e-5,
        ),
    ] {
        let seeds = [3u64, 4, 5];
        let inits: Vec<Vec<f64>> = seeds.iter().map(|&s| model.init(s)).collect();
        let batchings: Vec<Batching> = seeds.iter().map(|&s| batching(s)).collect();
        let mut ticks = Vec::new();
        let together = sgd_members(&model, inits.clone(), lr, &batchings, &mut |t| {
            ticks.push((t.done, t.total))
        })
        .unwrap();
        assert_eq!(ticks, [(1, 3), (2, 3), (3, 3)]);
        assert_eq!(together.len(), 3);
        for (k, member) in together.iter().enumerate() {
            let alone =
                sgd_on_host(&model, inits[k].clone(), lr, &batchings[k], &mut |_| {}).unwrap();
            // The run moved the parameters (else equality would say nothing).
            let moved = alone
                .iter()
                .zip(&inits[k])
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(moved > 1e-3, "member {k} moved only {moved}");
            close(
                &format!("{} prior, member {k}", model.prior.name()),
                member,
                &alone,
                1e-12,
            );
            // `sgd`, one member, is the lockstep run of that member alone.
            let single = sgd(&model, inits[k].clone(), lr, &batchings[k], &mut |_| {}).unwrap();
            close(&format!("sgd, member {k}"), &single, member, 1e-12);
        }
    }
}

#[test]
fn members_that_do_not_fit_together_are_refused() {
    let model = small_bnn(
        "digits.csv",
        "label",
        Likelihood::Categorical { classes: 10 },
        "gaussian",
    );
    let inits = vec![model.init(0), model.init(1)];
    let other = Batching {
        batch_size: 20,
        ..batching(1)
    };
    let e = sgd_members(
        &model,
        inits.clone(),
        1e-4,
        &[batching(0), other],
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("same batch size"), "{e}");
    let e = sgd_members(&model, inits.clone(), 1e-4, &[batching(0)], &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("1 batch settings"), "{e}");
    let e = sgd_members(
        &model,
        vec![model.init(0), vec![0.0; 3]],
        1e-4,
        &[batching(0), batching(1)],
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("parameters"), "{e}");
    let e = sgd_members(
        &model,
        inits,
        -1.0,
        &[batching(0), batching(1)],
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("lr"), "{e}");
}

#[test]
fn a_diverging_member_is_named() {
    let model = small_bnn(
        "digits.csv",
        "label",
        Likelihood::Categorical { classes: 10 },
        "gaussian",
    );
    let mut inits = vec![model.init(0), model.init(1)];
    // The output layer's last bias: every log-likelihood of member 2 is NaN from the start (a
    // hidden weight would not do: ReLU sends NaN to 0).
    inits[1][model.dim() - 1] = f64::NAN;
    let e = sgd_members(
        &model,
        inits,
        1e-4,
        &[batching(0), batching(1)],
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("member 2"), "{e}");
    assert!(e.to_string().contains("epoch 1"), "{e}");
}

/// A member's result does not depend on which members it trains beside: what lets MPI ranks
/// split an ensemble and gather the single process's file byte for byte
/// (`host/cli/tests/mpi.rs`).
#[test]
fn a_member_trains_the_same_bits_in_any_group() {
    let model = small_bnn(
        "digits.csv",
        "label",
        Likelihood::Categorical { classes: 10 },
        "gaussian",
    );
    let seeds = [0u64, 1, 2, 3];
    let train = |group: &[usize]| {
        let inits = group.iter().map(|&m| model.init(seeds[m])).collect();
        let b: Vec<Batching> = group.iter().map(|&m| batching(seeds[m])).collect();
        sgd_members(&model, inits, 1e-3, &b, &mut |_| {}).unwrap()
    };
    let all = train(&[0, 1, 2, 3]);
    for groups in [
        &[&[0, 2][..], &[1, 3]][..],
        &[&[0], &[1, 2, 3]],
        &[&[3], &[2], &[1, 0]],
    ] {
        for group in groups {
            for (k, theta) in group.iter().zip(train(group)) {
                assert!(theta == all[*k], "member {k} in the group {group:?}");
            }
        }
    }
}
