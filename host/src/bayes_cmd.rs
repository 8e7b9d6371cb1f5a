//! `keel bayes …`: Bayesian inference by full-batch HMC.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use keel::bayes::ess::effective_sample_size;
use keel::bayes::hmc::{sample, Ensembling, HmcConfig};
use keel::bayes::linear::LinearGaussian;
use keel::error::{Error, Result};

#[derive(Subcommand)]
pub enum BayesCommand {
    /// Full-batch HMC as the reference runs it (fresh momentum, L = ceil(τ/ε) leapfrog steps,
    /// Metropolis–Hastings, burn-in without it); prints acceptance, posterior moments and ESS.
    Hmc(HmcArgs),
}

#[derive(Args)]
pub struct HmcArgs {
    /// CSV with a header row; the target is the last column unless --target names it.
    #[arg(long)]
    data: PathBuf,
    /// Target column.
    #[arg(long)]
    target: Option<String>,
    /// `linear`: y = Xw (no intercept unless --bias). (MLPs are not built yet.)
    #[arg(long, default_value = "linear")]
    model: String,
    /// Add an intercept column of ones.
    #[arg(long)]
    bias: bool,
    /// `gaussian` with a known noise scale (--noise-std).
    #[arg(long, default_value = "gaussian")]
    likelihood: String,
    /// Noise standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 1.0)]
    noise_std: f64,
    /// Standard deviation of the Gaussian prior on every weight.
    #[arg(long, default_value_t = 1.0)]
    prior_std: f64,
    /// Posterior temperature T (the noise scale becomes σ√T, the prior is divided by T).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Leapfrog step size ε.
    #[arg(long)]
    step_size: f64,
    /// Trajectory length τ, or `auto` = (π/2)·σ_prior·√T (half a period of the prior's
    /// dynamics, the rule behind the reference's settings).
    #[arg(long, default_value = "auto")]
    trajectory_length: String,
    /// Refuse trajectories longer than this many leapfrog steps.
    #[arg(long, default_value_t = 100_000)]
    max_leapfrog_steps: usize,
    /// Iterations per chain after burn-in.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Burn-in iterations per chain (no MH test, nothing recorded).
    #[arg(long, default_value_t = 100)]
    burn_in: usize,
    /// Independent chains (seeds seed, seed + 1, …), pooled.
    #[arg(long, default_value_t = 1)]
    chains: usize,
    /// Record the current state every iteration (textbook MCMC) instead of only accepted
    /// proposals (the reference).
    #[arg(long)]
    textbook: bool,
    /// No Metropolis–Hastings test (every proposal kept).
    #[arg(long)]
    no_mh: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: &BayesCommand) -> Result<()> {
    match cmd {
        BayesCommand::Hmc(a) => hmc_cmd(a),
    }
}

fn hmc_cmd(a: &HmcArgs) -> Result<()> {
    if a.model != "linear" {
        return Err(Error::invalid(
            "--model",
            &a.model,
            "unknown or not built yet (expected linear)",
        ));
    }
    if a.likelihood != "gaussian" {
        return Err(Error::invalid(
            "--likelihood",
            &a.likelihood,
            "unknown or not built yet for --model linear (expected gaussian)",
        ));
    }
    if a.chains == 0 || a.samples == 0 {
        return Err(Error::invalid(
            "--chains/--samples",
            format!("{}/{}", a.chains, a.samples),
            "must be positive",
        ));
    }
    let trajectory_length = match a.trajectory_length.as_str() {
        "auto" => std::f64::consts::FRAC_PI_2 * a.prior_std * a.temperature.sqrt(),
        s => s
            .parse()
            .map_err(|_| Error::invalid("--trajectory-length", s, "expected a number or auto"))?,
    };
    let table = keel::data::read_numeric_csv(&a.data)?;
    let cols = table.names.len();
    let t = match &a.target {
        None => cols - 1,
        Some(name) => table.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid(
                "--target",
                name,
                format!("no such column; columns are: {}", table.names.join(", ")),
            )
        })?,
    };
    if cols < 2 {
        return Err(Error::invalid(
            "--data",
            a.data.display(),
            "needs at least one feature column besides the target",
        ));
    }
    let mut features: Vec<String> = (0..cols)
        .filter(|&c| c != t)
        .map(|c| table.names[c].clone())
        .collect();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for row in table.values.chunks(cols) {
        for (c, v) in row.iter().enumerate() {
            if c != t {
                x.push(*v);
            }
        }
        if a.bias {
            x.push(1.0);
        }
        y.push(row[t]);
    }
    if a.bias {
        features.push("bias".into());
    }
    let d = features.len();
    let model = LinearGaussian::new(x, y, d, a.noise_std, a.prior_std, a.temperature)?;
    let mut samples = Vec::new();
    // ESS per chain (chains record different numbers of states), summed over chains.
    let mut ess = vec![0.0; d];
    let (mut accepted, mut nan, mut steps) = (0.0, 0, 0);
    for c in 0..a.chains {
        let cfg = HmcConfig {
            step_size: a.step_size,
            trajectory_length,
            max_leapfrog_steps: a.max_leapfrog_steps,
            iterations: a.samples,
            burn_in: a.burn_in,
            mh: !a.no_mh,
            ensembling: if a.textbook {
                Ensembling::Textbook
            } else {
                Ensembling::AcceptedOnly
            },
            seed: a.seed.wrapping_add(c as u64),
        };
        let chain = sample(&model, vec![0.0; d], &cfg)?;
        accepted += chain.acceptance_rate / a.chains as f64;
        nan += chain.nan_energies;
        steps = chain.leapfrog_steps;
        for (i, e) in ess.iter_mut().enumerate() {
            let xs: Vec<f64> = chain.samples.iter().map(|s| s[i]).collect();
            *e += effective_sample_size(&xs);
        }
        samples.extend(chain.samples);
    }
    let n = samples.len();
    if n < 2 {
        return Err(Error::invalid(
            "--step-size",
            a.step_size,
            format!(
                "only {n} samples were recorded (acceptance {accepted:.3}); lower the step size"
            ),
        ));
    }
    let mean: Vec<f64> = (0..d)
        .map(|i| samples.iter().map(|s| s[i]).sum::<f64>() / n as f64)
        .collect();
    let cov: Vec<Vec<f64>> = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    samples
                        .iter()
                        .map(|s| (s[i] - mean[i]) * (s[j] - mean[j]))
                        .sum::<f64>()
                        / (n - 1) as f64
                })
                .collect()
        })
        .collect();
    let ess_min = ess.iter().copied().fold(f64::INFINITY, f64::min);
    let (exact_mean, exact_cov) = model.posterior()?;
    if a.json {
        let v = serde_json::json!({
            "acceptance_rate": accepted, "n_samples": n, "features": features,
            "posterior_mean": mean, "posterior_cov": cov, "ess": ess, "ess_min": ess_min,
            "leapfrog_steps": steps, "trajectory_length": trajectory_length,
            "nan_energies": nan, "chains": a.chains,
            "exact_posterior_mean": exact_mean,
            "exact_posterior_cov": exact_cov.chunks(d).map(|r| r.to_vec()).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        println!(
            "HMC, {} chain(s): {n} samples, acceptance {accepted:.3}, L = {steps} leapfrog steps (τ = {trajectory_length:.4}), min ESS {ess_min:.0}{}",
            a.chains,
            if nan > 0 { format!(", {nan} non-finite energies (rejected)") } else { String::new() }
        );
        println!(
            "{:>12} {:>12} {:>12} {:>12} {:>8}",
            "weight", "HMC mean", "exact mean", "HMC sd", "ESS"
        );
        for i in 0..d {
            println!(
                "{:>12} {:>12.5} {:>12.5} {:>12.5} {:>8.0}",
                features[i],
                mean[i],
                exact_mean[i],
                cov[i][i].sqrt(),
                ess[i]
            );
        }
    }
    Ok(())
}
