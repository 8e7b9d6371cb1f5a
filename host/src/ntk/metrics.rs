//! What one adaptation is judged by, in both transfer experiments.

use super::jacobian::Network;
use super::posterior::{Posterior, Prediction};

/// The test errors of the adapted posterior and its two baselines, its calibration and its
/// solver's cost, for one new task.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Test MSE of the adapted posterior mean.
    pub test_mse_adapted: f64,
    /// Test MSE of the trained network, not adapted.
    pub test_mse_unadapted: f64,
    /// Test MSE after retraining only the last layer on the adaptation points.
    pub test_mse_last_layer: f64,
    /// Fraction of test targets inside the 95 % predictive interval `μ ± 1.96·√(var + σ²)`.
    pub mean_coverage_95: f64,
    /// CG iterations of the posterior solve.
    pub cg_iterations: usize,
    /// CG's final relative residual.
    pub cg_relative_residual: f64,
    /// Lanczos steps taken for the variances.
    pub lanczos_rank: usize,
    /// Seconds to condition and predict (the posterior only).
    pub seconds: f64,
}

fn mse(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>() / a.len().max(1) as f64
}

impl Metrics {
    /// The metrics of `pred` (the posterior `post`'s prediction at the test inputs, which took
    /// `seconds`) against the test targets `y`, beside the baselines' predictions.
    pub fn measure<N: Network>(
        post: &Posterior<'_, N>,
        pred: &Prediction,
        seconds: f64,
        y: &[f64],
        unadapted: &[f64],
        last_layer: &[f64],
    ) -> Metrics {
        let noise = post.settings().noise;
        let covered = pred
            .mean
            .iter()
            .zip(&pred.variance)
            .zip(y)
            .filter(|((m, v), y)| (*y - *m).abs() <= 1.96 * (**v + noise).sqrt())
            .count();
        Metrics {
            test_mse_adapted: mse(&pred.mean, y),
            test_mse_unadapted: mse(unadapted, y),
            test_mse_last_layer: mse(last_layer, y),
            mean_coverage_95: covered as f64 / y.len().max(1) as f64,
            cg_iterations: post.cg().iterations,
            cg_relative_residual: post.cg().relative_residual,
            lanczos_rank: post.lanczos().rank(),
            seconds,
        }
    }

    /// The mean of one field over several tasks (0 for none).
    pub fn mean<'m>(
        all: impl IntoIterator<Item = &'m Metrics>,
        field: impl Fn(&Metrics) -> f64,
    ) -> f64 {
        let (mut sum, mut n) = (0.0, 0usize);
        for m in all {
            sum += field(m);
            n += 1;
        }
        sum / n.max(1) as f64
    }
}
