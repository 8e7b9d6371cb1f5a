//! Evaluation metrics shared by every method: accuracy, negative log-likelihood, expected
//! calibration error, RMSE.

/// Fraction of rows whose arg-max probability is the label.
pub fn accuracy(probs: &[f64], classes: usize, labels: &[usize]) -> f64 {
    let correct = probs
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(p, &l)| {
            p.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0
                == l
        })
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// Mean negative log-likelihood of the labels under the predicted probabilities (probabilities
/// are floored at 1e-300 so a confident mistake is large but finite).
pub fn nll(probs: &[f64], classes: usize, labels: &[usize]) -> f64 {
    let total: f64 = probs
        .chunks_exact(classes)
        .zip(labels)
        .map(|(p, &l)| -p[l].max(1e-300).ln())
        .sum();
    total / labels.len().max(1) as f64
}

/// Expected calibration error with `bins` equal-width confidence bins over the top-label
/// confidence (Guo et al. 2017): `Σ_b (n_b/n)·|acc_b − conf_b|`.
pub fn ece(probs: &[f64], classes: usize, labels: &[usize], bins: usize) -> f64 {
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut acc = vec![0.0; bins];
    for (p, &l) in probs.chunks_exact(classes).zip(labels) {
        let (arg, top) =
            p.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        // Bin (k/B, (k+1)/B]; confidence 0 goes to the first bin.
        let b = ((top * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf[b] += top;
        acc[b] += if arg == l { 1.0 } else { 0.0 };
    }
    let n = labels.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (acc[b] - conf[b]).abs() / n)
        .sum()
}

/// Root mean squared error.
pub fn rmse(pred: &[f64], target: &[f64]) -> f64 {
    (pred
        .iter()
        .zip(target)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / target.len().max(1) as f64)
        .sqrt()
}

/// Mean Gaussian negative log-likelihood of targets under per-point means and standard
/// deviations.
pub fn gaussian_nll(mean: &[f64], std: &[f64], target: &[f64]) -> f64 {
    let total: f64 = mean
        .iter()
        .zip(std)
        .zip(target)
        .map(|((m, s), y)| {
            0.5 * (2.0 * std::f64::consts::PI * s * s).ln() + 0.5 * ((y - m) / s).powi(2)
        })
        .sum();
    total / target.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_on_a_hand_example() {
        // Two rows: confident right (0.9), unsure wrong (0.6 on the wrong class).
        let p = [0.9, 0.1, 0.6, 0.4];
        let l = [0, 1];
        assert_eq!(accuracy(&p, 2, &l), 0.5);
        assert!((nll(&p, 2, &l) - (-(0.9f64.ln()) - 0.4f64.ln()) / 2.0).abs() < 1e-15);
        // Bins of width 0.1: 0.9 → (0.8, 0.9] acc 1 conf 0.9; 0.6 → (0.5, 0.6] acc 0 conf 0.6.
        assert!((ece(&p, 2, &l, 10) - (0.5 * 0.1 + 0.5 * 0.6)).abs() < 1e-12);
    }

    #[test]
    fn regression_metrics() {
        assert!((rmse(&[1.0, 2.0], &[1.0, 4.0]) - 2f64.sqrt()).abs() < 1e-15);
        let v = gaussian_nll(&[0.0], &[1.0], &[0.0]);
        assert!((v - 0.5 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-15);
    }
}
