//! Monte-Carlo summaries: the effective sample size of a scalar chain by Geyer's initial monotone
//! sequence estimator (the autocovariances summed in consecutive pairs while the pair sums stay
//! positive, made non-increasing), and the sample moments of parameter vectors.

/// `n / τ` with `τ = −1 + 2 Σ_k Γ_k` over the initial positive, monotone pair sums
/// `Γ_k = ρ_{2k} + ρ_{2k+1}`; `n` for a constant chain. At most `n·log10(n)` to keep
/// antithetic chains' estimates finite.
pub fn effective_sample_size(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 4 {
        return n as f64;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let c: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let var = c.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if var == 0.0 {
        return n as f64;
    }
    let rho = |k: usize| -> f64 {
        c[..n - k]
            .iter()
            .zip(&c[k..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / (n as f64 * var)
    };
    let mut tau = -1.0;
    let mut last = f64::INFINITY;
    let mut k = 0;
    while 2 * k + 1 < n {
        let pair = rho(2 * k) + rho(2 * k + 1);
        if pair <= 0.0 {
            break;
        }
        let pair = pair.min(last);
        tau += 2.0 * pair;
        last = pair;
        k += 1;
    }
    let cap = n as f64 * (n as f64).log10();
    (n as f64 / tau).min(cap)
}

/// Sample mean and covariance (denominator `n − 1`) of parameter vectors.
pub fn moments(samples: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = samples.len() as f64;
    let d = samples.first().map_or(0, Vec::len);
    let mean: Vec<f64> = (0..d)
        .map(|i| samples.iter().map(|s| s[i]).sum::<f64>() / n)
        .collect();
    let cov = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    samples
                        .iter()
                        .map(|s| (s[i] - mean[i]) * (s[j] - mean[j]))
                        .sum::<f64>()
                        / (n - 1.0)
                })
                .collect()
        })
        .collect();
    (mean, cov)
}
