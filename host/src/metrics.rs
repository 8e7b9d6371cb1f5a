//! Evaluation metrics shared by every method (as the references' `bnn_hmc/utils/metrics.py` and
//! `gnosis/utils/metrics.py` define them): accuracy, negative log-likelihood, expected calibration
//! error in both of the references' conventions, RMSE, agreement and total variation between
//! predictive distributions, the moment-matched Gaussian of an ensemble, and the Gelman–Rubin R̂.

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
    let n = labels.len().max(1) as f64;
    reliability(probs, classes, labels, bins)
        .iter()
        .map(|&(conf, acc, count)| count as f64 * (acc - conf).abs() / n)
        .sum()
}

/// The reliability diagram behind [`ece`]: for every non-empty equal-width bin `(k/B, (k+1)/B]`
/// of top-label confidence (confidence 0 in the first), its mean confidence, its accuracy and
/// its size.
pub fn reliability(
    probs: &[f64],
    classes: usize,
    labels: &[usize],
    bins: usize,
) -> Vec<(f64, f64, usize)> {
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut acc = vec![0.0; bins];
    for (p, &l) in probs.chunks_exact(classes).zip(labels) {
        let (arg, top) =
            p.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
        let b = ((top * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf[b] += top;
        acc[b] += if arg == l { 1.0 } else { 0.0 };
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            (
                conf[b] / count[b] as f64,
                acc[b] / count[b] as f64,
                count[b],
            )
        })
        .collect()
}

/// The arg-max of each row (the first on ties).
fn argmax_rows(probs: &[f64], classes: usize) -> impl Iterator<Item = usize> + '_ {
    probs.chunks_exact(classes).map(|p| {
        p.iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    })
}

/// Top-1 agreement: the fraction of rows whose arg-max class is the same under `p` and `q`.
pub fn agreement(p: &[f64], q: &[f64], classes: usize) -> f64 {
    let n = p.len() / classes.max(1);
    let same = argmax_rows(p, classes)
        .zip(argmax_rows(q, classes))
        .filter(|(a, b)| a == b)
        .count();
    same as f64 / n.max(1) as f64
}

/// Mean total variation distance `(1/n) Σ_i ½ Σ_j |p_ij − q_ij|`.
pub fn total_variation(p: &[f64], q: &[f64], classes: usize) -> f64 {
    let n = p.len() / classes.max(1);
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>() / n.max(1) as f64
}

/// Expected calibration error as `bnn_hmc` computes it (`calibration_curve`, 20 equal-mass
/// bins): edges every `⌈n/20⌉`-th sorted confidence, the maximum appended unless
/// `n mod step = 1`, and a point counted in a bin only if strictly inside it (points on an edge —
/// the smallest and the largest confidence among them — are dropped: the reference's quirk).
pub fn ece_equal_mass(probs: &[f64], classes: usize, labels: &[usize], bins: usize) -> f64 {
    let n = labels.len();
    if n == 0 || bins == 0 {
        return 0.0;
    }
    let tops: Vec<(f64, bool)> = probs
        .chunks_exact(classes)
        .zip(argmax_rows(probs, classes))
        .zip(labels)
        .map(|((p, arg), &l)| (p[arg], arg == l))
        .collect();
    let mut sorted: Vec<f64> = tops.iter().map(|t| t.0).collect();
    sorted.sort_by(f64::total_cmp);
    let step = n.div_ceil(bins);
    let mut edges: Vec<f64> = sorted.iter().step_by(step).copied().collect();
    if n % step != 1 {
        edges.push(sorted[n - 1]);
    }
    edges
        .windows(2)
        .map(|w| {
            let inside: Vec<&(f64, bool)> = tops
                .iter()
                .filter(|(c, _)| w[0] < *c && *c < w[1])
                .collect();
            if inside.is_empty() {
                return 0.0;
            }
            let m = inside.len() as f64;
            let conf = inside.iter().map(|t| t.0).sum::<f64>() / m;
            let acc = inside.iter().filter(|t| t.1).count() as f64 / m;
            (conf - acc).abs() * m / n as f64
        })
        .sum()
}

/// The ensemble predictive of Gaussian members moment-matched to one Gaussian per point:
/// `μ̄ = mean_s μ_s`, `σ̄² = mean_s(σ_s² + μ_s²) − μ̄²` (`means`, `stds` are `[members][points]`).
pub fn moment_matched(means: &[Vec<f64>], stds: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let s = means.len().max(1) as f64;
    let points = means.first().map_or(0, Vec::len);
    let mu: Vec<f64> = (0..points)
        .map(|i| means.iter().map(|m| m[i]).sum::<f64>() / s)
        .collect();
    let sd = (0..points)
        .map(|i| {
            let second = means
                .iter()
                .zip(stds)
                .map(|(m, d)| d[i] * d[i] + m[i] * m[i])
                .sum::<f64>()
                / s;
            (second - mu[i] * mu[i]).max(0.0).sqrt()
        })
        .collect();
    (mu, sd)
}

/// The plain (non-split) Gelman–Rubin R̂ of a scalar over `m` chains of `N` draws each:
/// `W` the mean within-chain variance (denominator `N − 1`), `B/N` the variance of the chain
/// means (denominator `m − 1`), `R̂ = √(((N − 1)/N·W + B/N)/W)`. `None` for fewer than two
/// chains or draws, or chains of unequal length; NaN if every chain is constant.
pub fn gelman_rubin(chains: &[Vec<f64>]) -> Option<f64> {
    let m = chains.len();
    let n = chains.first()?.len();
    if m < 2 || n < 2 || chains.iter().any(|c| c.len() != n) {
        return None;
    }
    let means: Vec<f64> = chains
        .iter()
        .map(|c| c.iter().sum::<f64>() / n as f64)
        .collect();
    let w = chains
        .iter()
        .zip(&means)
        .map(|(c, mu)| c.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n - 1) as f64)
        .sum::<f64>()
        / m as f64;
    let grand = means.iter().sum::<f64>() / m as f64;
    let b_over_n = means.iter().map(|mu| (mu - grand).powi(2)).sum::<f64>() / (m - 1) as f64;
    let v = (n - 1) as f64 / n as f64 * w + b_over_n;
    Some((v / w).sqrt())
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

/// Mean predictive KL divergence `(1/n) Σ_i Σ_j p_ij (log p_ij − log q_ij)` from row-major
/// log-probabilities `log_p`, `log_q` `[n, classes]` (`gnosis`'s `KL(teacher ‖ student)` with
/// `p` the teacher; terms with `p_ij = 0` count 0).
pub fn predictive_kl(log_p: &[f64], log_q: &[f64], classes: usize) -> f64 {
    let n = log_p.len() / classes.max(1);
    let total: f64 = log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            let p = lp.exp();
            if p == 0.0 {
                0.0
            } else {
                p * (lp - lq)
            }
        })
        .sum();
    total / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_and_total_variation_by_hand() {
        let p = [0.7, 0.2, 0.1, 0.1, 0.5, 0.4];
        let q = [0.6, 0.3, 0.1, 0.2, 0.3, 0.5];
        assert_eq!(agreement(&p, &q, 3), 0.5);
        // Row 1: ½(0.1 + 0.1 + 0) = 0.1; row 2: ½(0.1 + 0.2 + 0.1) = 0.2.
        assert!((total_variation(&p, &q, 3) - 0.15).abs() < 1e-12);
        assert_eq!(total_variation(&p, &p, 3), 0.0);
    }

    #[test]
    fn equal_mass_ece_drops_points_on_the_edges() {
        // Four points, two bins: step 2, edges (c₁, c₃) + max appended (4 mod 2 ≠ 1), so the
        // bins are (0.55, 0.75) and (0.75, 0.95): only 0.65 lies strictly inside either.
        let probs = [0.55, 0.45, 0.65, 0.35, 0.75, 0.25, 0.95, 0.05];
        let labels = [0, 1, 0, 0];
        // 0.65 is wrong (label 1): |0.65 − 0| · 1/4.
        let e = ece_equal_mass(&probs, 2, &labels, 2);
        assert!((e - 0.65 / 4.0).abs() < 1e-12, "{e}");
        let e = ece_equal_mass(&probs, 2, &[0, 0, 0, 0], 2);
        assert!((e - 0.35 / 4.0).abs() < 1e-12, "{e}");
    }

    #[test]
    fn moment_matching_and_r_hat() {
        let (mu, sd) = moment_matched(&[vec![0.0], vec![2.0]], &[vec![1.0], vec![1.0]]);
        // Mixture of N(0,1) and N(2,1): mean 1, variance 1 + 1.
        assert_eq!(mu, vec![1.0]);
        assert!((sd[0] - 2f64.sqrt()).abs() < 1e-12);
        // Identical chains: R̂ = √((N−1)/N) < 1; chains around different means: R̂ ≫ 1.
        let c = vec![1.0, 2.0, 3.0, 4.0];
        let r = gelman_rubin(&[c.clone(), c.clone()]).unwrap();
        assert!((r - (0.75f64).sqrt()).abs() < 1e-12, "{r}");
        let far: Vec<f64> = c.iter().map(|v| v + 100.0).collect();
        assert!(gelman_rubin(&[c.clone(), far]).unwrap() > 10.0);
        assert!(gelman_rubin(std::slice::from_ref(&c)).is_none());
        assert!(gelman_rubin(&[c, vec![1.0]]).is_none());
    }

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
