//! Helpers shared by the library's tests.

// Not every test binary uses all of these.
#![allow(dead_code)]

mod chnn;
pub use chnn::chnn_config;

/// A 16-unit Bayesian MLP (f64, on the CPU) on half the rows of `fixtures/data/<file>`, with the
/// prior `prior` (std 0.3; a mixture's weight 0.5 and ratio 4), at temperature 1.
pub fn small_bnn(
    file: &str,
    target: &str,
    likelihood: keel::bayes::mlp::Likelihood,
    prior: &str,
) -> keel::bayes::mlp::Bnn {
    use keel::bayes::mlp::{Bnn, Likelihood, Split};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data")
        .join(file);
    let classify = matches!(likelihood, Likelihood::Categorical { .. });
    let data = keel::data::read_csv(&path, target, classify).unwrap();
    let split = Split::new(&data, 0.5, 0).unwrap();
    let prior = keel::bayes::prior::Prior::new(prior, 0.3, 0.5, 4.0).unwrap();
    Bnn::new(
        &split,
        &[16],
        likelihood,
        prior,
        1.0,
        keel::Device::Cpu,
        keel::DType::F64,
    )
    .unwrap()
}
