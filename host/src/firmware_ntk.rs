//! The firmware's on-board NTK adaptation (`KEEL-FW model=ntk`) checked on the host.
//!
//! The controller adapts the embedded sine network (`firmware/assets/ntk-sine.safetensors`) to
//! a new task from a few points with `keel_core::nn::NtkAdaptation` — the finite neural-tangent
//! kernel GP of Maddox et al., *Fast Adaptation with Linearized Neural Networks* (AISTATS 2021)
//! — and prints the points, the posterior mean and latent variance at test inputs, the mean
//! again by forward mode along the weight offset, and the network's own prediction:
//!
//! ```text
//! KEEL-FW model=ntk mean=network noise=<word> seed=<u64> task=<A,b,w words> capacity=<N> \
//!     x=<n words> y=<n words> test=<m words> mu=<m words> var_f=<m words> \
//!     mu_jvp=<m words> network=<m words>
//! ```
//!
//! [`check_ntk`] reruns the same core code on the host in `f32` (every word must be
//! bit-identical) and computes the posterior independently with the host engine
//! ([`engine_posterior`]): each point's parameter gradient by reverse mode (`autodiff::grad`),
//! `K = JJᵀ + σ²I` formed densely in `f64` and factored by a Cholesky written here, the mean
//! `m(x*) + J(x*)Jᵀα` and the variance `‖J(x*)‖² − k*ᵀK⁻¹k*` — a dense reference, right for
//! the n ≤ 32 points the controller holds, and independent of the core's linear algebra, which
//! the adaptation under test uses. (The host's matrix-free posteriors, [`crate::ntk`], are
//! checked against numpy's dense computation in `host/tests/ntk.rs`.)

use serde::Serialize;

use crate::autodiff::grad;
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub use keel_core::nn::PriorMean;

/// The sine network the firmware adapts.
pub const NTK_MODEL: &str = "ntk-sine.safetensors";

/// Tolerance of the firmware's f32 posterior against the engine's f64 one: the mean within
/// `NTK_TOLERANCE · (1 + |μ|)` and the latent variance within `NTK_TOLERANCE · ‖J(x*)‖²` (the
/// prior variance; the posterior variance is a difference of that and a quantity of the same
/// size, so its f32 error scales with it). Looser than DESIGN's 1e-4 for f32 results, because
/// the solve with `K = JJᵀ + σ²I` amplifies float32 rounding (≈ 6e-8) by `cond(K)`, up to
/// ≈ 1 + λ_max(JJᵀ)/σ² ≈ 3e4 for the sine network with σ² = 0.01. Measured: the firmware's
/// adaptation 5.4e-6 (means) and 4.9e-7 (variances); `host/tests/ntk_core.rs` up to 1.1e-4.
pub const NTK_TOLERANCE: f64 = 1e-3;

/// A parsed `KEEL-FW model=ntk` line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareNtkRun {
    /// The prior mean.
    pub mean: PriorMean,
    /// Noise variance σ².
    pub noise: f32,
    /// Seed of the task and its points (informative: the points are in the line).
    pub seed: u64,
    /// The task's amplitude, phase and frequency (`y = A sin(w x + b) + 0.01·A·ε`).
    pub task: [f32; 3],
    /// The adaptation's capacity.
    pub capacity: usize,
    /// Adaptation inputs.
    pub x: Vec<f32>,
    /// Adaptation targets.
    pub y: Vec<f32>,
    /// Test inputs.
    pub test: Vec<f32>,
    /// Posterior means at the test inputs.
    pub mu: Vec<f32>,
    /// Latent posterior variances.
    pub var_f: Vec<f32>,
    /// Means by forward mode along the weight offset.
    pub mu_jvp: Vec<f32>,
    /// The network's own prediction.
    pub network: Vec<f32>,
}

/// Finds and parses the `KEEL-FW model=ntk` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_ntk(output: &str) -> Result<FirmwareNtkRun> {
    let (line, fields) = crate::firmware::model_line(output, "ntk")?;
    let get = |k: &str| crate::firmware::field(&fields, line, k);
    let words = |k: &str| crate::firmware::hex_words(k, get(k)?);
    let one = |k: &str| -> Result<f32> {
        match words(k)?.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::invalid(k.to_string(), get(k)?, "one word expected")),
        }
    };
    let int = |k: &str| -> Result<u64> {
        let v = get(k)?;
        v.parse()
            .map_err(|_| Error::invalid(k.to_string(), v, "not an integer"))
    };
    let mean = match get("mean")? {
        "network" => PriorMean::Network,
        "zero" => PriorMean::Zero,
        other => return Err(Error::invalid("mean", other, "expected network or zero")),
    };
    let task = words("task")?;
    let run = FirmwareNtkRun {
        mean,
        noise: one("noise")?,
        seed: int("seed")?,
        task: [
            task.first().copied().unwrap_or(f32::NAN),
            task.get(1).copied().unwrap_or(f32::NAN),
            task.get(2).copied().unwrap_or(f32::NAN),
        ],
        capacity: int("capacity")? as usize,
        x: words("x")?,
        y: words("y")?,
        test: words("test")?,
        mu: words("mu")?,
        var_f: words("var_f")?,
        mu_jvp: words("mu_jvp")?,
        network: words("network")?,
    };
    let m = run.test.len();
    if task.len() != 3
        || run.x.len() != run.y.len()
        || run.x.is_empty()
        || run.x.len() > run.capacity
        || run.capacity > 1024
        || [&run.mu, &run.var_f, &run.mu_jvp, &run.network]
            .iter()
            .any(|v| v.len() != m)
    {
        return Err(Error::invalid(
            "firmware output",
            line,
            "task needs 3 words; x and y as many words (1 to capacity ≤ 1024); mu, var_f, \
             mu_jvp and network one word per test input",
        ));
    }
    Ok(run)
}

/// The engine's dense posterior at test inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnginePosterior {
    /// Posterior means.
    pub mean: Vec<f64>,
    /// Latent variances `‖J(x*)‖² − k*ᵀK⁻¹k*`.
    pub var_f: Vec<f64>,
    /// Prior variances `‖J(x*)‖²`.
    pub prior_var: Vec<f64>,
    /// The network's outputs `f(x*; θ̂)`.
    pub network: Vec<f64>,
}

/// The network's output and parameter gradient at each row of `x` by the host engine's reverse
/// mode, in the export's parameter order (the un-standardised output: the target
/// standardisation's scale included).
///
/// # Errors
/// Engine errors; [`Error::Malformed`] for a file the core cannot read.
pub fn engine_jacobian(
    model: &[u8],
    path: &std::path::Path,
    x: &[f64],
) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    let loaded = crate::export::load_mlp(model, path, DType::F64)?;
    let d = loaded.mlp.layers.first().map_or(1, |l| l.inp);
    let (t_mean, t_std) = match &loaded.stats.target {
        Some((m, s)) => (m[0], s[0]),
        None => (0.0, 1.0),
    };
    let mut f = Vec::new();
    let mut rows = Vec::new();
    for xi in x.chunks(d) {
        let xs = match &loaded.stats.input {
            Some((m, s)) => crate::data::standardize(xi, m, s),
            None => xi.to_vec(),
        };
        let t = Tensor::from_f64s(&xs, &[1, d], DType::F64)?;
        let vars = loaded.params.variables();
        let out = loaded.mlp.forward(&vars, &t)?;
        let inputs: Vec<&Tensor> = vars.values().iter().collect();
        let grads = grad(&[&out], &[None], &inputs, false)?;
        let mut row = Vec::with_capacity(loaded.params.numel());
        for (g, p) in grads.iter().zip(&inputs) {
            match g {
                Some(g) => row.extend(g.to_vec_f64()?.iter().map(|v| v * t_std)),
                None => row.extend(std::iter::repeat_n(0.0, p.numel())),
            }
        }
        f.push(out.to_vec_f64()?[0] * t_std + t_mean);
        rows.push(row);
    }
    Ok((f, rows))
}

/// `A = L Lᵀ` in place (row-major `n × n`, lower triangle used).
fn cholesky(a: &mut [f64], n: usize) -> Result<()> {
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k].powi(2)).sum::<f64>();
        if !(d > 0.0) {
            return Err(Error::invalid(
                "NTK kernel matrix",
                format!("pivot {j} = {d:e}"),
                "not positive definite",
            ));
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    Ok(())
}

/// `L v = b` in place.
fn forward_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s = b[i] - (0..i).map(|k| l[i * n + k] * b[k]).sum::<f64>();
        b[i] = s / l[i * n + i];
    }
}

/// The adapted posterior by the host engine, densely in f64: the points' Jacobian rows by
/// reverse mode ([`engine_jacobian`]), `K = JJᵀ + σ²I`, `z = L⁻¹(y − m(X))`, and at each test
/// input `v = L⁻¹k*`, mean `m(x*) + v·z`, variance `‖J(x*)‖² − v·v` (not clamped).
///
/// # Errors
/// As [`engine_jacobian`]; [`Error::InvalidInput`] if `K` is not positive definite.
pub fn engine_posterior(
    model: &[u8],
    path: &std::path::Path,
    x: &[f64],
    y: &[f64],
    test: &[f64],
    noise: f64,
    mean: PriorMean,
) -> Result<EnginePosterior> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let (f, rows) = engine_jacobian(model, path, x)?;
    let (fs, stars) = engine_jacobian(model, path, test)?;
    let n = rows.len();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            k[i * n + j] = dot(&rows[i], &rows[j]) + if i == j { noise } else { 0.0 };
        }
    }
    cholesky(&mut k, n)?;
    let prior = |f: f64| match mean {
        PriorMean::Network => f,
        PriorMean::Zero => 0.0,
    };
    let mut z: Vec<f64> = y.iter().zip(&f).map(|(y, f)| y - prior(*f)).collect();
    forward_solve(&k, n, &mut z);
    let mut out = EnginePosterior {
        mean: vec![],
        var_f: vec![],
        prior_var: vec![],
        network: fs.clone(),
    };
    for (js, &f) in stars.iter().zip(&fs) {
        let mut v: Vec<f64> = rows.iter().map(|r| dot(js, r)).collect();
        forward_solve(&k, n, &mut v);
        let prior_var = dot(js, js);
        out.mean.push(prior(f) + dot(&v, &z));
        out.var_f.push(prior_var - dot(&v, &v));
        out.prior_var.push(prior_var);
    }
    Ok(out)
}

/// Outcome of checking the firmware's adaptation on the host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NtkComparison {
    /// Points adapted to.
    pub points: usize,
    /// Test inputs.
    pub tests: usize,
    /// Words (means, variances, forward-mode means, network outputs) identical to the host's
    /// f32 rerun of the same core code, of all.
    pub identical_to_host_f32: (usize, usize),
    /// Largest `|μ_fw − μ_engine| / (1 + |μ_engine|)` (both means: reverse and forward mode).
    pub mean_error_vs_engine: f64,
    /// Largest `|var_fw − var_engine| / ‖J(x*)‖²`.
    pub var_error_vs_engine: f64,
    /// RMS error against the task's noiseless curve at the test inputs: the network alone.
    pub network_rmse: f64,
    /// The same for the adapted mean.
    pub adapted_rmse: f64,
    /// The tolerance on the engine errors.
    pub tolerance: f64,
    /// Whether every word matches the f32 rerun and both engine errors are within tolerance.
    pub pass: bool,
}

/// The core's adaptation rerun on the host in `T`: means, variances, forward-mode means and the
/// network's outputs at the test inputs.
fn core_rerun<T: keel_core::Real>(
    model: &[u8],
    path: &std::path::Path,
    run: &FirmwareNtkRun,
) -> Result<[Vec<T>; 4]> {
    use keel_core::nn::{Mlp, NtkAdaptation, NtkBuffers};
    let bad = Error::malformed(path);
    let st = keel_core::io::SafeTensors::<16>::parse(model).map_err(&bad)?;
    let mlp = Mlp::<16>::from_safetensors(&st).map_err(&bad)?;
    let cap = run.capacity;
    let mut factors = vec![T::ZERO; cap * mlp.gradient_factors_len()];
    let mut factor = vec![T::ZERO; cap * cap];
    let mut z = vec![T::ZERO; cap];
    let buf = NtkBuffers {
        factors: &mut factors,
        factor: &mut factor,
        z: &mut z,
    };
    let to = |v: &[f32]| -> Vec<T> { v.iter().map(|&a| T::from_f32(a)).collect() };
    let mut ntk = NtkAdaptation::new(&mlp, run.mean, T::from_f32(run.noise), buf).map_err(&bad)?;
    let mut scratch = vec![T::ZERO; ntk.scratch_len()];
    ntk.adapt(&to(&run.x), &to(&run.y), &mut scratch)
        .map_err(&bad)?;
    let mut u = vec![T::ZERO; mlp.parameter_count()];
    ntk.weight_offset(&mut u, &mut scratch).map_err(&bad)?;
    let mut out: [Vec<T>; 4] = Default::default();
    let mut fwd = vec![T::ZERO; mlp.forward_scratch_len()];
    for &xs in &to(&run.test) {
        let p = ntk.predict(&[xs], &mut scratch).map_err(&bad)?;
        out[0].push(p.mean);
        out[1].push(p.var_f);
        out[2].push(
            ntk.predict_mean_jvp(&[xs], &u, &mut scratch)
                .map_err(&bad)?,
        );
        let mut f = [T::ZERO];
        mlp.forward(&[xs], &mut f, &mut fwd).map_err(&bad)?;
        out[3].push(f[0]);
    }
    Ok(out)
}

/// Checks the firmware's adaptation: bit for bit against the same core code in `f32` on the
/// host, and within [`NTK_TOLERANCE`] against the engine's dense f64 posterior
/// ([`engine_posterior`]).
///
/// # Errors
/// I/O and format errors for the model; engine errors.
pub fn check_ntk(run: &FirmwareNtkRun, assets: &std::path::Path) -> Result<NtkComparison> {
    let path = assets.join(NTK_MODEL);
    let model = crate::output::read(&path)?;
    let host = core_rerun::<f32>(&model, &path, run)?;
    let fw = [&run.mu, &run.var_f, &run.mu_jvp, &run.network];
    let total: usize = fw.iter().map(|v| v.len()).sum();
    let identical = fw
        .iter()
        .zip(&host)
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .filter(|(p, q)| p.to_bits() == q.to_bits())
                .count()
        })
        .sum::<usize>();
    let f64s = |v: &[f32]| -> Vec<f64> { v.iter().map(|&a| f64::from(a)).collect() };
    let engine = engine_posterior(
        &model,
        &path,
        &f64s(&run.x),
        &f64s(&run.y),
        &f64s(&run.test),
        f64::from(run.noise),
        run.mean,
    )?;
    let mut mean_error = 0.0f64;
    for (mu, want) in run
        .mu
        .iter()
        .chain(&run.mu_jvp)
        .zip(engine.mean.iter().cycle())
    {
        mean_error = mean_error.max((f64::from(*mu) - want).abs() / (1.0 + want.abs()));
    }
    let var_error = run
        .var_f
        .iter()
        .zip(&engine.var_f)
        .zip(&engine.prior_var)
        .map(|((v, want), prior)| (f64::from(*v) - want.max(0.0)).abs() / prior)
        .fold(0.0f64, f64::max);
    let [a, b, w] = run.task.map(f64::from);
    let truth: Vec<f64> = run
        .test
        .iter()
        .map(|&x| a * (w * f64::from(x) + b).sin())
        .collect();
    let rmse = |v: &[f32]| -> f64 {
        let s: f64 = v
            .iter()
            .zip(&truth)
            .map(|(p, t)| (f64::from(*p) - t).powi(2))
            .sum();
        (s / truth.len().max(1) as f64).sqrt()
    };
    let pass = identical == total
        && host.iter().map(Vec::len).sum::<usize>() == total
        && mean_error <= NTK_TOLERANCE
        && var_error <= NTK_TOLERANCE;
    Ok(NtkComparison {
        points: run.x.len(),
        tests: run.test.len(),
        identical_to_host_f32: (identical, total),
        mean_error_vs_engine: mean_error,
        var_error_vs_engine: var_error,
        network_rmse: rmse(&run.network),
        adapted_rmse: rmse(&run.mu),
        tolerance: NTK_TOLERANCE,
        pass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[f32]) -> String {
        v.iter()
            .map(|x| format!("{:08x}", x.to_bits()))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn the_line_parses_and_bad_lines_are_refused() {
        let line = |x: &[f32], mu: &[f32], mean: &str| {
            format!(
                "KEEL-FW model=ntk mean={mean} noise={} seed=11 task={} capacity=32 x={} y={} \
                 test={} mu={} var_f={} mu_jvp={} network={}",
                hex(&[0.01]),
                hex(&[1.0, 2.0, 0.5]),
                hex(x),
                hex(x),
                hex(&[0.0, 1.0]),
                hex(mu),
                hex(&[0.1, 0.2]),
                hex(mu),
                hex(mu)
            )
        };
        let run = parse_ntk(&line(&[0.5, -1.0, 2.0], &[0.3, 0.4], "network")).unwrap();
        assert_eq!(run.mean, PriorMean::Network);
        assert_eq!(run.x, vec![0.5, -1.0, 2.0]);
        assert_eq!(run.task, [1.0, 2.0, 0.5]);
        assert_eq!(run.capacity, 32);
        assert!(
            parse_ntk(&line(&[0.5], &[0.3], "network")).is_err(),
            "mu per test input"
        );
        assert!(parse_ntk(&line(&[0.5], &[0.3, 0.4], "other")).is_err());
        assert!(
            parse_ntk(&line(&[0.5; 33], &[0.3, 0.4], "zero")).is_err(),
            "over capacity"
        );
        assert!(parse_ntk("KEEL-FW model=ntk mean=network").is_err());
    }
}
