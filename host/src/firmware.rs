//! `keel firmware check`: the embedded proof. The Cortex-M4F firmware (`firmware/`) runs
//! `keel-core` in `f32` under QEMU and prints what it computed as IEEE-754 bit patterns; this
//! module reruns the same work with the same core code on the host and compares. Fourteen
//! checks, one `KEEL-FW` line each:
//!
//! 1. the chain pendulum integrated with RK4 ([`parse`], [`check`]);
//! 2. the digits MLP exported by `keel fit` ([`parse_model`], [`check_model`]);
//! 3. an O(5)-invariant EMLP exported by `keel emlp train`, with its invariance
//!    ([`parse_emlp`], [`check_emlp`]);
//! 4. a WISKI stream and its posterior, against the host's f32 and f64 reruns ([`parse_gp`],
//!    [`check_gp`]);
//! 5. a learned 2-pendulum (CHNN) rolled out with RK4 ([`parse_chnn`], [`check_chnn`]);
//! 6. the Bayesian model average of HMC samples on test digits ([`parse_bma`], [`check_bma`]);
//! 7. a closed-loop Pendulum-v1 episode of a SAC-SVG(2) policy with its on-board value monitor
//!    ([`parse_policy`], [`check_policy`]);
//! 8. an Augerino CNN exported by `keel augerino train` on rotated 28 × 28 digits: the plain
//!    forward pass and the J-copy average, bit for bit against the host's f32 rerun
//!    ([`parse_augerino`], [`check_augerino`]);
//! 9. an ensemble of simplexes exported by `keel simplex train` on the test digits, against the
//!    host engine's f64 prediction with the combined weights formed ([`parse_simplex`],
//!    [`check_simplex`]);
//! 10. the MLP distilled from it by `keel distill` ([`parse_student`], [`check_student`]);
//! 11. the sine network adapted on board to a new task by its linearisation (the finite-NTK
//!     GP), against the host engine's dense posterior
//!     ([`crate::firmware_ntk::parse_ntk`], [`crate::firmware_ntk::check_ntk`]);
//! 12. a learned gyroscope (CHNN, one pinned rigid body as four nodes in 3-D) rolled out with
//!     RK4 ([`parse_chnn_line`], [`check_chnn_line`] with [`CHNN_GYROSCOPE`]);
//! 13. a Hamiltonian EMLP learned on the double spring pendulum rolled out with RK4
//!     ([`parse_spring`], [`check_spring`]);
//! 14. a WISKI model exported by `keel gp online --stem 2` resumed on board from its sufficient
//!     statistics, predicting held-out rows through its frozen stem and absorbing them
//!     ([`crate::firmware_wiski::parse_wiski_stem`], [`crate::firmware_wiski::check_wiski_stem`]).
//!
//! The `system=` line is required; the model lines are checked when present, since the C
//! firmware (`firmware-c/`, through the `keel-ffi` C API) prints a subset of them
//! ([`MODEL_LINES`], [`has_model_line`]). `keel firmware check` fails a log with no model line,
//! and with `--require-all` one that lacks any.
//!
//! The firmware's result line:
//! ```text
//! KEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt=<word> steps=1000 \
//!     angles=<words> rates=<words> state=<2·N·D words>
//! ```
//! where every word is an `f32`'s IEEE-754 bits as 8 hex digits (lists comma-separated), so the
//! host reruns exactly the firmware's inputs and compares exactly its outputs.
//!
//! The firmware also embeds a digits classifier exported by `keel fit` and a few test digits
//! (`firmware/assets/`, written by [`write_digits_assets`]) and prints
//! ```text
//! KEEL-FW model=digits samples=16 classes=<16 integers> logits=<16·10 words>
//! ```
//! which [`check_model`] compares with the host engine's f32 predictions on the same files.

use std::collections::BTreeMap;

use keel_core::dynamics::systems::ChainPendulum;
use keel_core::integrate::{Rk4, StateVector};
use serde::Serialize;

use crate::chnn::data::SystemSpec;
use crate::error::{Error, Result};

/// A parsed firmware result line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareRun {
    /// Chain links.
    pub links: usize,
    /// RK4 step.
    pub dt: f32,
    /// Steps taken.
    pub steps: usize,
    /// Initial link angles.
    pub angles: Vec<f32>,
    /// Initial angular velocities.
    pub rates: Vec<f32>,
    /// Final state as printed.
    pub state: Vec<f32>,
}

/// Outcome of comparing the firmware with the host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Comparison {
    /// Final state from the firmware.
    pub firmware: Vec<f32>,
    /// Final state from the host.
    pub host: Vec<f32>,
    /// `‖fw − host‖∞ / ‖host‖∞`.
    pub relative_error: f64,
    /// Components whose bits are identical.
    pub identical_components: usize,
    /// The tolerance checked.
    pub tolerance: f64,
    /// Whether `relative_error ≤ tolerance`.
    pub pass: bool,
}

/// The tolerance of the firmware check (DESIGN.md: f32 core results match within 1e-4; the
/// same code on both sides should agree far closer, and the issue asks for 1e-5).
pub const TOLERANCE: f64 = 1e-5;

/// Finds and parses the `KEEL-FW system=` line in firmware output.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse(output: &str) -> Result<FirmwareRun> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("KEEL-FW system="))
        .ok_or_else(|| {
            Error::invalid(
                "firmware output",
                "(log)",
                "no 'KEEL-FW system=' line; did the firmware run?",
            )
        })?;
    let fields: BTreeMap<&str, &str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .ok_or_else(|| Error::invalid("firmware output", line, format!("missing {k}=")))
    };
    let expect = |k: &str, want: &str| -> Result<()> {
        let v = get(k)?;
        if v == want {
            Ok(())
        } else {
            Err(Error::invalid(
                "firmware output",
                v,
                format!("{k} must be {want} (the only scenario the check knows)"),
            ))
        }
    };
    expect("system", "chain-pendulum")?;
    expect("integrator", "rk4")?;
    expect("dtype", "f32")?;
    let links: usize = get("links")?
        .parse()
        .map_err(|_| Error::invalid("links", get("links").unwrap_or(""), "not an integer"))?;
    if links != 3 {
        return Err(Error::invalid(
            "links",
            links,
            "the check is compiled for the 3-link chain",
        ));
    }
    let steps: usize = get("steps")?
        .parse()
        .map_err(|_| Error::invalid("steps", get("steps").unwrap_or(""), "not an integer"))?;
    check_steps(steps, MAX_STEPS, line)?;
    let words = |key: &str, n: usize| -> Result<Vec<f32>> {
        let text = get(key)?;
        let v = text
            .split(',')
            .map(|w| match u32::from_str_radix(w, 16) {
                Ok(bits) if w.len() == 8 => Ok(f32::from_bits(bits)),
                _ => Err(Error::invalid(key, w, "not an 8-digit hex word")),
            })
            .collect::<Result<Vec<f32>>>()?;
        if v.len() != n {
            return Err(Error::invalid(
                key,
                text,
                format!("expected {n} words, got {}", v.len()),
            ));
        }
        Ok(v)
    };
    let dt = words("dt", 1)?[0];
    let angles = words("angles", links)?;
    let rates = words("rates", links)?;
    let state = words("state", 4 * links)?;
    Ok(FirmwareRun {
        links,
        dt,
        steps,
        angles,
        rates,
        state,
    })
}

/// Most RK4 steps of the dynamics check the host reruns (the firmware takes 1000).
pub const MAX_STEPS: usize = 1_000_000;
/// Most steps of the learned rollout the host reruns (the firmware takes 100).
pub const MAX_CHNN_STEPS: usize = 10_000;
/// Longest learned rollout `steps·dt` the host reruns, in seconds (the firmware's is 3 s; the
/// reference solution at rtol 1e-10 costs time in proportion).
pub const MAX_CHNN_SPAN: f64 = 1000.0;
/// Most control steps of the closed-loop episode the host reruns (the firmware takes 200).
pub const MAX_POLICY_STEPS: usize = 100_000;
/// Most work `n·grid²` of the GP stream the host reruns (the firmware's is 1000 · 64²).
pub const MAX_GP_WORK: u128 = 1 << 32;

/// A log's step count, refused above what the host will rerun (a damaged or forged log must
/// not keep the check busy for hours).
fn check_steps(steps: usize, max: usize, line: &str) -> Result<()> {
    if steps > max {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!("steps={steps} is more than the host reruns (at most {max})"),
        ));
    }
    Ok(())
}

/// Reruns the firmware's scenario on the host in `f32` with the same core code.
///
/// # Errors
/// [`Error::Core`] if the integration fails.
pub fn host_run(run: &FirmwareRun) -> Result<Vec<f32>> {
    let p = ChainPendulum::<f32, 3>::paper().map_err(Error::core("chain pendulum"))?;
    let a: [f32; 3] = core::array::from_fn(|i| run.angles[i]);
    let r: [f32; 3] = core::array::from_fn(|i| run.rates[i]);
    let mut z = p.state_from_angles(&a, &r);
    let rk4 = Rk4::new(run.dt).map_err(Error::core("rk4"))?;
    rk4.advance(p.mechanics(), 0.0, &mut z, run.steps)
        .map_err(Error::core("host rk4 run"))?;
    Ok(z.as_slice().to_vec())
}

/// The larger of two errors, NaN if either is. `f64::max` passes over a NaN, so a firmware
/// output of NaNs would compare as within tolerance; with this every `error <= tolerance` fails.
fn worse(m: f64, e: f64) -> f64 {
    if m.is_nan() || e.is_nan() {
        f64::NAN
    } else {
        m.max(e)
    }
}

/// Compares the firmware's final state with the host's.
///
/// # Errors
/// As [`host_run`].
pub fn check(run: &FirmwareRun) -> Result<Comparison> {
    let host = host_run(run)?;
    let norm = host.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    let diff = run
        .state
        .iter()
        .zip(&host)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, worse);
    let relative_error = if norm > 0.0 { diff / norm } else { diff };
    let identical_components = run
        .state
        .iter()
        .zip(&host)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    Ok(Comparison {
        firmware: run.state.clone(),
        host,
        relative_error,
        identical_components,
        tolerance: TOLERANCE,
        pass: relative_error <= TOLERANCE && relative_error.is_finite(),
    })
}

/// The digits classifier the firmware embeds.
pub const DIGITS_MODEL: &str = "digits-mlp.safetensors";
/// The test digits the firmware classifies (`x: [n, 64]`, `label: [n]`, f32).
pub const DIGITS_SAMPLES: &str = "digits-samples.safetensors";
/// How many test digits the firmware classifies.
pub const DIGITS_SAMPLE_COUNT: usize = 16;

/// Trains the digits classifier exactly as the README's `keel fit` command does and writes it,
/// with the first [`DIGITS_SAMPLE_COUNT`] digits of its test split, into `dir` (atomically).
///
/// # Errors
/// Training or I/O errors.
pub fn write_digits_assets(
    data: &std::path::Path,
    dir: &std::path::Path,
) -> Result<crate::fit::FitReport> {
    use crate::fit::{fit, FitConfig, RegressionLoss, Task};
    let cfg = FitConfig {
        data: data.to_path_buf(),
        target: "label".into(),
        task: Task::Classify,
        loss: RegressionLoss::Mse,
        hidden: vec![128, 128],
        activation: crate::nn::Activation::Relu,
        epochs: 30,
        batch_size: 64,
        lr: 1e-3,
        optimizer: crate::optim::OptimizerKind::adam(),
        schedule: crate::optim::Schedule::Constant,
        clip: None,
        seed: 0,
        test_fraction: 0.2,
        val_fraction: 0.1,
        patience: 10,
        dtype: crate::backend::DType::F32,
        device: crate::backend::Device::Cpu,
    };
    let fitted = fit(&cfg, &mut |_| {})?;
    crate::export::write_mlp(
        &dir.join(DIGITS_MODEL),
        &fitted.mlp,
        &fitted.params,
        &fitted.config,
        &fitted.stats,
    )?;
    let n = DIGITS_SAMPLE_COUNT.min(fitted.test.rows());
    let cols = fitted.test.cols();
    let bytes = crate::export::f32_bytes;
    let labels: Vec<f64> = match &fitted.test.y {
        crate::data::Targets::Classes { labels, .. } => {
            labels[..n].iter().map(|&l| l as f64).collect()
        }
        crate::data::Targets::Values(_) => {
            return Err(Error::invalid(
                "digits",
                "labels",
                "expected a classification set",
            ))
        }
    };
    let tensors = vec![
        (
            "x".to_string(),
            vec![n, cols],
            bytes(&fitted.test.x[..n * cols]),
        ),
        ("label".to_string(), vec![n], bytes(&labels)),
    ];
    let meta = std::collections::BTreeMap::from([("keel.kind".to_string(), "samples".to_string())]);
    crate::output::write_atomic(
        &dir.join(DIGITS_SAMPLES),
        &crate::export::safetensors_bytes(&tensors, &meta),
    )?;
    Ok(fitted.report)
}

/// The EMLP the firmware embeds (`keel firmware assets`).
pub const EMLP_MODEL: &str = "emlp-o5.safetensors";
/// Its samples: `x [8, 10]`, `xg = ρ_in(g) x` for a sampled `g ∈ O(5)`, and the host engine's
/// predictions `y [8, 1]`.
pub const EMLP_SAMPLES: &str = "emlp-o5-samples.safetensors";
/// How many samples the firmware evaluates.
pub const EMLP_SAMPLE_COUNT: usize = 8;
/// Tolerance on `|fw − host| / (1 + |host|)` and on the invariance `|f(gx) − f(x)| / (1 + |f(x)|)`.
pub const EMLP_TOLERANCE: f64 = 1e-4;

/// Trains a small EMLP on O5Synthetic (O(5), 2V → V⁰; 48 channels, 2 blocks, 40 epochs) and
/// writes it and its samples into `dir` (atomically). Returns the test MSE.
///
/// # Errors
/// Training or I/O errors.
pub fn write_emlp_assets(dir: &std::path::Path) -> Result<f64> {
    use crate::emlp::data::Dataset;
    use crate::emlp::train::{train, ModelKind, TrainConfig};
    use crate::emlp::{parse_group, parse_rep, Solver};
    let group = parse_group("O(5)").map_err(|e| Error::invalid("group", "O(5)", e.msg))?;
    let cfg = TrainConfig {
        dataset: Dataset::O5Synthetic,
        group: group.clone(),
        model: ModelKind::Emlp,
        n_train: 1000,
        n_val: 200,
        n_test: 1000,
        epochs: Some(40),
        ch: 48,
        layers: 2,
        lr: 3e-3,
        batch: 250,
        seed: 0,
        checkpoint: crate::checkpoint::Options::default(),
        device: crate::backend::Device::Cpu,
    };
    let t = train(&cfg, &Solver::default(), &mut |_| {})?;
    let net = t
        .emlp
        .as_ref()
        .ok_or_else(|| Error::invalid("model", "emlp", "no network trained"))?;
    let (scale, mean, std) = &t.table_stats;
    let meta = BTreeMap::from([("keel.test_mse".to_string(), format!("{:e}", t.test_mse))]);
    crate::output::write_atomic(
        &dir.join(EMLP_MODEL),
        &net.to_safetensors(&t.params, scale, mean, std, &meta)?,
    )?;
    // Samples and one group element, from their own seed.
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(7);
    let n = EMLP_SAMPLE_COUNT;
    let x: Vec<f64> = (0..n * 10)
        .map(|_| keel_core::random::standard_normal::<f64, _>(&mut rng))
        .collect();
    let h = group.sample(&mut rng);
    let hinv_t = h
        .inverse()
        .ok_or_else(|| Error::invalid("group element", "O(5)", "singular"))?
        .t();
    let rep_in = parse_rep("2*V", Some(&group)).map_err(|e| Error::invalid("rep", "2*V", e.msg))?;
    let els = vec![(group.name.clone(), h, hinv_t)];
    let xg: Vec<f64> = x
        .chunks(10)
        .map(|r| {
            rep_in
                .apply(&els, r)
                .map_err(|reason| Error::Solver { reason })
        })
        .collect::<Result<Vec<_>>>()?
        .concat();
    let xs: Vec<f64> = x
        .chunks(10)
        .flat_map(|r| r.iter().zip(scale).map(|(a, s)| a / s))
        .collect();
    let xt = crate::tensor::Tensor::from_f64s(&xs, &[n, 10], crate::backend::DType::F32)?;
    let out = crate::autodiff::no_grad(|| net.forward(&t.params, &xt))?.to_vec_f64()?;
    let y: Vec<f64> = out.iter().map(|v| v * std[0] + mean[0]).collect();
    let bytes = crate::export::f32_bytes;
    let tensors = vec![
        ("x".to_string(), vec![n, 10], bytes(&x)),
        ("xg".to_string(), vec![n, 10], bytes(&xg)),
        ("y".to_string(), vec![n, 1], bytes(&y)),
    ];
    let meta = BTreeMap::from([("keel.kind".to_string(), "samples".to_string())]);
    crate::output::write_atomic(
        &dir.join(EMLP_SAMPLES),
        &crate::export::safetensors_bytes(&tensors, &meta),
    )?;
    Ok(t.test_mse)
}

/// The firmware's EMLP outputs: `f(x)` and `f(gx)` per sample.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareEmlpRun {
    /// `f(x)`.
    pub y: Vec<f32>,
    /// `f(ρ_in(g) x)`.
    pub yg: Vec<f32>,
}

/// The model lines a firmware log may carry besides the required `KEEL-FW system=` line, by
/// their `model=` name, in the order `keel firmware check` reports them. The Rust firmware prints
/// all of them; the C firmware (`firmware-c/`) prints a subset.
pub const MODEL_LINES: [&str; 13] = [
    "digits",
    "emlp",
    "gp",
    "chnn",
    "bma",
    "policy",
    "augerino",
    "simplex",
    "student",
    "ntk",
    "gyroscope",
    "spring",
    "wiski-stem",
];

/// Whether `output` has a `KEEL-FW model=<name>` line (found as the `parse_*` functions find it;
/// whether it parses is theirs to say).
pub fn has_model_line(output: &str, name: &str) -> bool {
    model_line(output, name).is_ok()
}

/// The `KEEL-FW model=<name>` line of a firmware log and its `key=value` fields.
pub(crate) fn model_line<'a>(
    output: &'a str,
    name: &str,
) -> Result<(&'a str, BTreeMap<&'a str, &'a str>)> {
    let tag = format!("KEEL-FW model={name}");
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with(&tag))
        .ok_or_else(|| Error::invalid("firmware output", "(log)", format!("no '{tag}' line")))?;
    let fields = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    Ok((line, fields))
}

/// Field `k` of a [`model_line`], or an error naming the line.
pub(crate) fn field<'a>(
    fields: &BTreeMap<&'a str, &'a str>,
    line: &str,
    k: &str,
) -> Result<&'a str> {
    fields
        .get(k)
        .copied()
        .ok_or_else(|| Error::invalid("firmware output", line, format!("missing {k}=")))
}

pub(crate) fn hex_words(field: &str, v: &str) -> Result<Vec<f32>> {
    v.split(',')
        .map(|w| match u32::from_str_radix(w, 16) {
            Ok(bits) if w.len() == 8 => Ok(f32::from_bits(bits)),
            _ => Err(Error::invalid(field, w, "not an 8-digit hex word")),
        })
        .collect()
}

/// Finds and parses the `KEEL-FW model=emlp` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_emlp(output: &str) -> Result<FirmwareEmlpRun> {
    let (line, fields) = model_line(output, "emlp")?;
    let get = |k: &str| field(&fields, line, k);
    let (y, yg) = (hex_words("y", get("y")?)?, hex_words("yg", get("yg")?)?);
    if y.len() != EMLP_SAMPLE_COUNT || yg.len() != EMLP_SAMPLE_COUNT {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!("expected {EMLP_SAMPLE_COUNT} outputs"),
        ));
    }
    Ok(FirmwareEmlpRun { y, yg })
}

/// The firmware's EMLP against the host engine, and its invariance on the controller.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EmlpComparison {
    /// Firmware `f(x)`.
    pub firmware: Vec<f32>,
    /// Host engine `f(x)`.
    pub host: Vec<f32>,
    /// Largest `|fw − host| / (1 + |host|)`.
    pub relative_error: f64,
    /// Largest `|f(gx) − f(x)| / (1 + |f(x)|)` on the firmware.
    pub invariance_error: f64,
    /// Tolerance for both.
    pub tolerance: f64,
    /// Both within tolerance.
    pub pass: bool,
}

/// Compares a firmware EMLP run with the host engine's predictions stored with the samples.
///
/// # Errors
/// I/O and format errors for the samples file.
pub fn check_emlp(run: &FirmwareEmlpRun, assets: &std::path::Path) -> Result<EmlpComparison> {
    let path = assets.join(EMLP_SAMPLES);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let bad = Error::malformed(&path);
    let st = keel_core::io::SafeTensors::<4>::parse(&bytes).map_err(&bad)?;
    let yt = st.tensor("y").map_err(&bad)?;
    let host = (0..yt.len())
        .map(|i| yt.get_f32(i))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(&bad)?;
    let rel = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| f64::from((a - b).abs() / (1.0 + b.abs())))
            .fold(0.0, worse)
    };
    let relative_error = rel(&run.y, &host);
    let invariance_error = rel(&run.yg, &run.y);
    let pass = host.len() == run.y.len()
        && relative_error <= EMLP_TOLERANCE
        && invariance_error <= EMLP_TOLERANCE;
    Ok(EmlpComparison {
        firmware: run.y.clone(),
        host,
        relative_error,
        invariance_error,
        tolerance: EMLP_TOLERANCE,
        pass,
    })
}

/// A parsed firmware model line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareModelRun {
    /// Predicted classes.
    pub classes: Vec<usize>,
    /// Logits, `samples × 10`.
    pub logits: Vec<f32>,
}

/// Finds and parses the `KEEL-FW model=digits` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_model(output: &str) -> Result<FirmwareModelRun> {
    parse_classifier(output, "digits")
}

/// Finds and parses the `KEEL-FW model=student` line (the distilled MLP; as [`parse_model`]).
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_student(output: &str) -> Result<FirmwareModelRun> {
    parse_classifier(output, "student")
}

/// A `KEEL-FW model=<name> samples= classes= logits=` line.
fn parse_classifier(output: &str, name: &str) -> Result<FirmwareModelRun> {
    let (line, fields) = model_line(output, name)?;
    let get = |k: &str| field(&fields, line, k);
    let samples: usize = get("samples")?
        .parse()
        .map_err(|_| Error::invalid("samples", get("samples").unwrap_or(""), "not an integer"))?;
    let classes = class_list(get("classes")?)?;
    let logits = hex_words("logits", get("logits")?)?;
    if classes.len() != samples || logits.len() != samples * 10 {
        return Err(Error::invalid(
            "firmware output",
            samples,
            format!(
                "{} classes and {} logits for {samples} samples",
                classes.len(),
                logits.len()
            ),
        ));
    }
    Ok(FirmwareModelRun { classes, logits })
}

/// Outcome of comparing the firmware's digit classifications with the host engine's.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelComparison {
    /// Classes the firmware predicted.
    pub firmware_classes: Vec<usize>,
    /// Classes the host engine predicted.
    pub host_classes: Vec<usize>,
    /// True labels.
    pub labels: Vec<usize>,
    /// Largest `|fw − host| / (1 + |host|)` over all logits.
    pub relative_error: f64,
    /// The tolerance checked.
    pub tolerance: f64,
    /// Whether classes agree and the logits are within tolerance.
    pub pass: bool,
}

/// The host engine's side of the digits check: its f32 logits and classes on the firmware's
/// samples, and their labels. It depends on the asset files only, not on the log.
#[derive(Clone, Debug, PartialEq)]
pub struct HostDigits {
    /// Logits, `samples × 10`.
    pub logits: Vec<f32>,
    /// Predicted classes.
    pub classes: Vec<usize>,
    /// True labels.
    pub labels: Vec<usize>,
}

/// Runs the digits MLP with the host engine in f32 on the firmware's samples.
///
/// # Errors
/// I/O and format errors for the assets.
pub fn host_digits(assets: &std::path::Path) -> Result<HostDigits> {
    host_classifier(assets, DIGITS_MODEL)
}

/// Runs the MLP file `model` of `assets` with the host engine in f32 on the firmware's digits.
fn host_classifier(assets: &std::path::Path, model: &str) -> Result<HostDigits> {
    let read = |name: &str| crate::output::read(&assets.join(name));
    let model_path = assets.join(model);
    let loaded = crate::export::load_mlp(&read(model)?, &model_path, crate::backend::DType::F32)?;
    let (x, labels) = digits_samples(&read(DIGITS_SAMPLES)?, &assets.join(DIGITS_SAMPLES))?;
    let cols = loaded.mlp.layers[0].inp;
    let xs = match &loaded.stats.input {
        Some((m, s)) => crate::data::standardize(&x, m, s),
        None => x.clone(),
    };
    let t =
        crate::tensor::Tensor::from_f64s(&xs, &[x.len() / cols, cols], crate::backend::DType::F32)?;
    let out = crate::autodiff::no_grad(|| loaded.mlp.forward(&loaded.params, &t))?;
    Ok(HostDigits {
        logits: out.to_vec_f32()?,
        classes: out.argmax(-1)?,
        labels,
    })
}

/// Compares a firmware model run with the host engine's f32 predictions ([`host_digits`]).
pub fn compare_model(run: &FirmwareModelRun, host: &HostDigits) -> ModelComparison {
    let relative_error = run
        .logits
        .iter()
        .zip(&host.logits)
        .map(|(a, b)| f64::from((a - b).abs() / (1.0 + b.abs())))
        .fold(0.0, worse);
    let pass = host.classes == run.classes
        && relative_error <= TOLERANCE
        && host.logits.len() == run.logits.len();
    ModelComparison {
        firmware_classes: run.classes.clone(),
        host_classes: host.classes.clone(),
        labels: host.labels.clone(),
        relative_error,
        tolerance: TOLERANCE,
        pass,
    }
}

/// Compares a firmware model run with the host engine's f32 predictions from the same asset
/// files ([`host_digits`], [`compare_model`]).
///
/// # Errors
/// I/O and format errors for the assets.
pub fn check_model(run: &FirmwareModelRun, assets: &std::path::Path) -> Result<ModelComparison> {
    Ok(compare_model(run, &host_digits(assets)?))
}

/// The MLP distilled from the simplex ensemble that the firmware embeds (`keel distill`).
pub const STUDENT_MODEL: &str = "digits-student.safetensors";

/// Compares the firmware's distilled student with the host engine's f32 predictions from the
/// same asset files (as [`check_model`]).
///
/// # Errors
/// I/O and format errors for the assets.
pub fn check_student(run: &FirmwareModelRun, assets: &std::path::Path) -> Result<ModelComparison> {
    Ok(compare_model(run, &host_classifier(assets, STUDENT_MODEL)?))
}

/// A parsed `KEEL-FW model=gp` line: the WISKI stream the firmware ran and its posterior.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareGpRun {
    /// Grid nodes.
    pub grid: usize,
    /// Grid bounds.
    pub lo: f32,
    /// Upper bound.
    pub hi: f32,
    /// Kernel outputscale.
    pub outputscale: f32,
    /// Kernel lengthscale.
    pub lengthscale: f32,
    /// Noise variance.
    pub noise: f32,
    /// Stream seed.
    pub seed: u64,
    /// Points streamed.
    pub n: usize,
    /// Test inputs.
    pub test: Vec<f32>,
    /// Posterior means there.
    pub mean: Vec<f32>,
    /// Posterior variances of f there.
    pub var_f: Vec<f32>,
    /// Log marginal likelihood.
    pub lml: f32,
}

/// Finds and parses the `KEEL-FW model=gp` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_gp(output: &str) -> Result<FirmwareGpRun> {
    let (line, fields) = model_line(output, "gp")?;
    let get = |k: &str| field(&fields, line, k);
    let word = |k: &str| -> Result<f32> {
        let v = hex_words(k, get(k)?)?;
        v.first().copied().filter(|_| v.len() == 1).ok_or_else(|| {
            Error::invalid("firmware output", line, format!("{k}= must be one word"))
        })
    };
    let int = |k: &str| -> Result<u64> {
        get(k)?
            .parse()
            .map_err(|_| Error::invalid("firmware output", line, format!("{k}= is not an integer")))
    };
    let run = FirmwareGpRun {
        grid: int("grid")? as usize,
        lo: word("lo")?,
        hi: word("hi")?,
        outputscale: word("outputscale")?,
        lengthscale: word("lengthscale")?,
        noise: word("noise")?,
        seed: int("seed")?,
        n: int("n")? as usize,
        test: hex_words("test", get("test")?)?,
        mean: hex_words("mean", get("mean")?)?,
        var_f: hex_words("var_f", get("var_f")?)?,
        lml: word("lml")?,
    };
    if run.mean.len() != run.test.len() || run.var_f.len() != run.test.len() {
        return Err(Error::invalid(
            "firmware output",
            line,
            "mean= and var_f= need one word per test= input",
        ));
    }
    if run.grid < 4
        || run.grid > 4096
        || run.n > 10_000_000
        || run.n as u128 * (run.grid as u128).pow(2) > MAX_GP_WORK
    {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!("grid= or n= out of range (grid 4 to 4096, n·grid² at most {MAX_GP_WORK})"),
        ));
    }
    Ok(run)
}

/// The firmware's stream regenerated: `x ~ U(lo + 0.1, hi − 0.1)`,
/// `y = sin(3x) + 0.3x + 0.2ε`, drawn in `T` with the core's generator and libm, exactly as the
/// firmware draws it.
fn gp_stream<T: keel_core::Real>(run: &FirmwareGpRun) -> Vec<(T, T)> {
    use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(run.seed);
    let (lo, hi) = (run.lo, run.hi);
    (0..run.n)
        .map(|_| {
            // f32 arithmetic as on the firmware, then widened for the f64 rerun.
            let x = lo + 0.1 + (hi - lo - 0.2) * uniform::<f32, _>(&mut rng);
            let y = keel_core::Real::libm_sin(3.0 * x)
                + 0.3 * x
                + 0.2 * standard_normal::<f32, _>(&mut rng);
            (T::from_f32(x), T::from_f32(y))
        })
        .collect()
}

/// Reruns the firmware's WISKI stream with the core in `T`: posterior means, variances of f at
/// the test inputs, and log p(y).
fn gp_rerun<T: keel_core::Real>(run: &FirmwareGpRun) -> Result<(Vec<T>, Vec<T>, T)> {
    use keel_core::gp::{
        refactor_scratch_len, Convention, Family, Grid, Kernel, Wiski, WiskiBuffers,
    };
    let core = |e| Error::core("firmware GP rerun")(e);
    let m = run.grid;
    let t = T::from_f32;
    let grid = Grid::new([t(run.lo)], [t(run.hi)], [m], Convention::Endpoints).map_err(core)?;
    let kernel =
        Kernel::new(Family::Rbf, t(run.outputscale), [t(run.lengthscale)]).map_err(core)?;
    let (mut root, mut prec) = (vec![T::ZERO; m * m], vec![T::ZERO; m * m]);
    let (mut b, mut mean, mut work) = (vec![T::ZERO; m], vec![T::ZERO; m], vec![T::ZERO; 2 * m]);
    let mut scratch = vec![T::ZERO; refactor_scratch_len(m)];
    let buf = WiskiBuffers {
        root: &mut root,
        precision: &mut prec,
        b: &mut b,
        mean: &mut mean,
        work: &mut work,
    };
    let mut gp = Wiski::new(grid, kernel, t(run.noise), buf, &mut scratch).map_err(core)?;
    for (x, y) in gp_stream::<T>(run) {
        gp.observe(&[x], y).map_err(core)?;
    }
    let mut means = Vec::new();
    let mut vars = Vec::new();
    for &x in &run.test {
        let p = gp.predict(&[t(x)]).map_err(core)?;
        means.push(p.mean);
        vars.push(p.var_f);
    }
    Ok((means, vars, gp.log_marginal_likelihood()))
}

/// The firmware's WISKI against the same stream on the host, in f32 (same code: expected
/// bit-identical) and in f64 (the f32 core within 1e-4 of it).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GpComparison {
    /// Points streamed.
    pub n: usize,
    /// Grid nodes.
    pub grid: usize,
    /// Firmware posterior means.
    pub firmware_mean: Vec<f32>,
    /// Host f64 posterior means.
    pub host_f64_mean: Vec<f64>,
    /// Values (means, variances, log p(y)) bit-identical to the host's f32 rerun, of the total.
    pub identical_to_host_f32: (usize, usize),
    /// Largest `|fw − f64| / (1 + |f64|)` over the means.
    pub mean_error_vs_f64: f64,
    /// Largest `|fw − f64| / s` over the variances of f (s = the prior variance).
    pub var_error_vs_f64: f64,
    /// `|fw − f64| / |f64|` of log p(y).
    pub lml_error_vs_f64: f64,
    /// Tolerance for the f64 comparisons.
    pub tolerance: f64,
    /// Bit-identical to f32 and within tolerance of f64.
    pub pass: bool,
}

/// Tolerance of the firmware's f32 GP against the host's f64 (the DESIGN's f32 contract).
pub const GP_TOLERANCE: f64 = 1e-4;

/// Compares a firmware WISKI run with host reruns of the same stream.
///
/// # Errors
/// [`Error::Core`] if the rerun fails.
pub fn check_gp(run: &FirmwareGpRun) -> Result<GpComparison> {
    let (m32, v32, l32) = gp_rerun::<f32>(run)?;
    let (m64, v64, l64) = gp_rerun::<f64>(run)?;
    let same = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .filter(|(a, b)| a.to_bits() == b.to_bits())
            .count()
    };
    let identical = same(&run.mean, &m32)
        + same(&run.var_f, &v32)
        + usize::from(run.lml.to_bits() == l32.to_bits());
    let total = 2 * run.test.len() + 1;
    let mean_error = run
        .mean
        .iter()
        .zip(&m64)
        .map(|(a, b)| (f64::from(*a) - b).abs() / (1.0 + b.abs()))
        .fold(0.0, worse);
    let s = f64::from(run.outputscale);
    let var_error = run
        .var_f
        .iter()
        .zip(&v64)
        .map(|(a, b)| (f64::from(*a) - b).abs() / s)
        .fold(0.0, worse);
    let lml_error = (f64::from(run.lml) - l64).abs() / l64.abs().max(1.0);
    let pass = identical == total
        && mean_error <= GP_TOLERANCE
        && var_error <= GP_TOLERANCE
        && lml_error <= GP_TOLERANCE;
    Ok(GpComparison {
        n: run.n,
        grid: run.grid,
        firmware_mean: run.mean.clone(),
        host_f64_mean: m64,
        identical_to_host_f32: (identical, total),
        mean_error_vs_f64: mean_error,
        var_error_vs_f64: var_error,
        lml_error_vs_f64: lml_error,
        tolerance: GP_TOLERANCE,
        pass,
    })
}

/// The SAC-SVG(2) policy the firmware runs in closed loop (`keel rl train --export`).
pub const POLICY_MODEL: &str = "pendulum-policy.safetensors";

/// The same agent's value model (`keel rl train --export-value`), the loop's monitor.
pub const VALUE_MODEL: &str = "pendulum-value.safetensors";

/// Tolerance of the firmware's closed-loop episode against the host's f64 rerun: relative on the
/// return, absolute (radians, rad/s) on the final state.
pub const POLICY_TOLERANCE: f64 = 1e-3;

/// A parsed `KEEL-FW model=policy` line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwarePolicyRun {
    /// Environment name.
    pub env: String,
    /// Control steps.
    pub steps: usize,
    /// The episode's return (f32).
    pub ret: f32,
    /// The final state `(θ, θ̇)`.
    pub state: Vec<f32>,
    /// The value estimate `V̂_H` of the first state.
    pub value0: f32,
    /// The sum of the estimates of every state the loop acted in.
    pub value_sum: f32,
}

/// Finds and parses the `KEEL-FW model=policy` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_policy(output: &str) -> Result<FirmwarePolicyRun> {
    let (line, fields) = model_line(output, "policy")?;
    let get = |k: &str| field(&fields, line, k);
    let steps = get("steps")?
        .parse()
        .map_err(|_| Error::invalid("steps", line, "not an integer"))?;
    check_steps(steps, MAX_POLICY_STEPS, line)?;
    let ret = hex_words("return", get("return")?)?;
    let state = hex_words("state", get("state")?)?;
    let value0 = hex_words("value0", get("value0")?)?;
    let value_sum = hex_words("value_sum", get("value_sum")?)?;
    if ret.len() != 1 || state.len() != 2 || value0.len() != 1 || value_sum.len() != 1 {
        return Err(Error::invalid(
            "firmware output",
            line,
            "expected one return, a 2-component state and two values",
        ));
    }
    Ok(FirmwarePolicyRun {
        env: get("env")?.to_string(),
        steps,
        ret: ret[0],
        state,
        value0: value0[0],
        value_sum: value_sum[0],
    })
}

/// Outcome of comparing the firmware's closed-loop episode with the host's reruns.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PolicyComparison {
    /// Control steps.
    pub steps: usize,
    /// The firmware's return.
    pub firmware_return: f64,
    /// The host's return with the same core code in f32.
    pub host_f32_return: f64,
    /// The host's return in f64.
    pub host_f64_return: f64,
    /// The firmware's value estimate of the first state.
    pub firmware_value0: f64,
    /// The host's, in f64.
    pub host_f64_value0: f64,
    /// Whether the host's f32 rerun is bit-identical (return, state and values).
    pub identical_to_host_f32: bool,
    /// `|fw − f64| / (1 + |f64|)` of the return.
    pub return_error: f64,
    /// `|fw − f64| / (1 + |f64|)` of the first value and of the sum of values (the larger).
    pub value_error: f64,
    /// Largest `|fw − f64|` of the final state.
    pub state_error: f64,
    /// The tolerance checked.
    pub tolerance: f64,
    /// Whether both are within tolerance.
    pub pass: bool,
}

/// What the host's rerun of the firmware's episode gives.
struct Episode<T> {
    ret: T,
    state: [T; 2],
    value0: T,
    value_sum: T,
}

/// The episode the firmware runs: from hanging at rest, `steps` control steps of the policy's
/// deterministic action, each state's value estimate before acting, in the precision `T`.
fn policy_episode<T: keel_core::Real>(
    policy: &keel_core::rl::Policy<'_, 4>,
    value: &keel_core::rl::ValueModel<'_, 4>,
    steps: usize,
) -> Result<Episode<T>> {
    use keel_core::rl::{Env, Pendulum};
    let mut env = Pendulum::<T>::new();
    env.set_state([T::PI, T::ZERO]);
    let mut scratch = vec![T::ZERO; policy.scratch_len()];
    let mut value_scratch = vec![T::ZERO; value.scratch_len()];
    let mut obs = env.observation();
    let (mut total, mut value0, mut value_sum) = (T::ZERO, T::ZERO, T::ZERO);
    for t in 0..steps {
        let v = value
            .value(&obs, &mut value_scratch)
            .map_err(Error::core("value estimate"))?;
        if t == 0 {
            value0 = v;
            value_sum = v;
        } else {
            value_sum += v;
        }
        let mut action = [T::ZERO; 1];
        policy
            .act(&obs, &mut action, &mut scratch)
            .map_err(Error::core("policy"))?;
        let s = env.step(&action).map_err(Error::core("pendulum"))?;
        total += s.reward;
        obs = s.observation;
    }
    Ok(Episode {
        ret: total,
        state: env.state(),
        value0,
        value_sum,
    })
}

/// Reruns the firmware's closed-loop episode on the host with the core's policy and environment
/// code, in f32 (expected bit-identical: the same operations and libm) and f64 (the tolerance
/// check).
///
/// # Errors
/// I/O and format errors for the asset; an environment other than `pendulum`.
pub fn check_policy(run: &FirmwarePolicyRun, assets: &std::path::Path) -> Result<PolicyComparison> {
    if run.env != "pendulum" {
        return Err(Error::invalid(
            "firmware output",
            &run.env,
            "the firmware's closed loop runs pendulum",
        ));
    }
    let read = |name: &str| -> Result<(std::path::PathBuf, Vec<u8>)> {
        let path = assets.join(name);
        let bytes = crate::output::read(&path)?;
        Ok((path, bytes))
    };
    let (path, bytes) = read(POLICY_MODEL)?;
    let st = keel_core::io::SafeTensors::<16>::parse(&bytes).map_err(Error::malformed(&path))?;
    let policy =
        keel_core::rl::Policy::<4>::from_safetensors(&st).map_err(Error::malformed(&path))?;
    let (vpath, vbytes) = read(VALUE_MODEL)?;
    let vst = keel_core::io::SafeTensors::<64>::parse(&vbytes).map_err(Error::malformed(&vpath))?;
    let value =
        keel_core::rl::ValueModel::<4>::from_safetensors(&vst).map_err(Error::malformed(&vpath))?;
    let e32 = policy_episode::<f32>(&policy, &value, run.steps)?;
    let e64 = policy_episode::<f64>(&policy, &value, run.steps)?;
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits();
    let identical = same(e32.ret, run.ret)
        && same(e32.value0, run.value0)
        && same(e32.value_sum, run.value_sum)
        && e32.state.iter().zip(&run.state).all(|(a, b)| same(*a, *b));
    let relative = |fw: f32, host: f64| (f64::from(fw) - host).abs() / (1.0 + host.abs());
    let return_error = relative(run.ret, e64.ret);
    let value_error = worse(
        relative(run.value0, e64.value0),
        relative(run.value_sum, e64.value_sum),
    );
    let state_error = run
        .state
        .iter()
        .zip(&e64.state)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, worse);
    let pass = return_error <= POLICY_TOLERANCE
        && state_error <= POLICY_TOLERANCE
        && value_error <= POLICY_TOLERANCE;
    Ok(PolicyComparison {
        steps: run.steps,
        firmware_return: f64::from(run.ret),
        host_f32_return: f64::from(e32.ret),
        host_f64_return: e64.ret,
        firmware_value0: f64::from(run.value0),
        host_f64_value0: e64.value0,
        identical_to_host_f32: identical,
        return_error,
        value_error,
        state_error,
        tolerance: POLICY_TOLERANCE,
        pass,
    })
}

/// The 10-sample Bayesian model average the firmware embeds (`keel bayes export`).
pub const BMA_MODEL: &str = "digits-bma.safetensors";

/// A parsed `KEEL-FW model=bma` line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareBmaRun {
    /// Samples averaged.
    pub members: usize,
    /// Predicted classes.
    pub classes: Vec<usize>,
    /// Averaged probabilities `[digits, 10]`.
    pub probs: Vec<f32>,
}

/// Finds and parses the `KEEL-FW model=bma` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_bma(output: &str) -> Result<FirmwareBmaRun> {
    parse_average(output, "bma")
}

/// Finds and parses the `KEEL-FW model=simplex` line (`members` = components × points; the
/// same fields as [`parse_bma`]'s besides).
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_simplex(output: &str) -> Result<FirmwareBmaRun> {
    parse_average(output, "simplex")
}

/// A `KEEL-FW model=<name> samples= members= classes= probs=` line.
fn parse_average(output: &str, name: &str) -> Result<FirmwareBmaRun> {
    let (line, fields) = model_line(output, name)?;
    let get = |k: &str| field(&fields, line, k);
    let int = |k: &str| -> Result<usize> {
        let v = get(k)?;
        v.parse()
            .map_err(|_| Error::invalid(k.to_string(), v, "not an integer"))
    };
    let (samples, members) = (int("samples")?, int("members")?);
    let classes = class_list(get("classes")?)?;
    let probs = hex_words("probs", get("probs")?)?;
    if classes.len() != samples || probs.len() != samples * 10 {
        return Err(Error::invalid(
            "firmware output",
            samples,
            format!(
                "{} classes and {} probabilities for {samples} digits",
                classes.len(),
                probs.len()
            ),
        ));
    }
    Ok(FirmwareBmaRun {
        members,
        classes,
        probs,
    })
}

/// Outcome of comparing the firmware's model average with the host engine's.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BmaComparison {
    /// Samples averaged on the controller.
    pub members: usize,
    /// Classes the firmware predicted.
    pub firmware_classes: Vec<usize>,
    /// Classes the host engine predicted (f64).
    pub host_classes: Vec<usize>,
    /// True labels.
    pub labels: Vec<usize>,
    /// Largest `|fw − host|` over the probabilities.
    pub max_error: f64,
    /// The tolerance checked.
    pub tolerance: f64,
    /// Whether classes agree and the probabilities are within tolerance.
    pub pass: bool,
}

/// The host engine's side of the model-average check: its f64 probabilities and classes on the
/// firmware's samples, and their labels. It depends on the asset files only, not on the log.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBma {
    /// Probabilities, `samples × 10`.
    pub probs: Vec<f64>,
    /// Predicted classes.
    pub classes: Vec<usize>,
    /// True labels.
    pub labels: Vec<usize>,
}

/// Recomputes the firmware's model average with the host engine (f64, its own matmuls, not the
/// core's loop) from the same asset files.
///
/// # Errors
/// I/O and format errors for the assets.
pub fn host_bma(assets: &std::path::Path) -> Result<HostBma> {
    let read = |name: &str| crate::output::read(&assets.join(name));
    let (x, labels) = digits_samples(&read(DIGITS_SAMPLES)?, &assets.join(DIGITS_SAMPLES))?;
    let probs = crate::bayes::samples::bma_engine(&read(BMA_MODEL)?, &assets.join(BMA_MODEL), &x)?;
    let classes = argmax_rows(&probs);
    Ok(HostBma {
        probs,
        classes,
        labels,
    })
}

/// Compares the firmware's model average with the host engine's ([`host_bma`]).
pub fn compare_bma(run: &FirmwareBmaRun, host: &HostBma) -> BmaComparison {
    let max_error = run
        .probs
        .iter()
        .zip(&host.probs)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, worse);
    let pass = host.classes == run.classes
        && host.probs.len() == run.probs.len()
        && max_error <= TOLERANCE;
    BmaComparison {
        members: run.members,
        firmware_classes: run.classes.clone(),
        host_classes: host.classes.clone(),
        labels: host.labels.clone(),
        max_error,
        tolerance: TOLERANCE,
        pass,
    }
}

/// Compares the firmware's model average with the host engine's from the same asset files
/// ([`host_bma`], [`compare_bma`]).
///
/// # Errors
/// I/O and format errors for the assets.
pub fn check_bma(run: &FirmwareBmaRun, assets: &std::path::Path) -> Result<BmaComparison> {
    Ok(compare_bma(run, &host_bma(assets)?))
}

/// The ensemble of simplexes the firmware embeds (`keel simplex train --export`).
pub const SIMPLEX_MODEL: &str = "digits-simplex.safetensors";

/// Recomputes the firmware's simplex-ensemble prediction with the host engine (f64, the combined
/// weights formed explicitly and multiplied by the engine — not the core's on-the-fly loop) from
/// the same asset files.
///
/// # Errors
/// I/O and format errors for the assets.
pub fn host_simplex(assets: &std::path::Path) -> Result<HostBma> {
    let read = |name: &str| crate::output::read(&assets.join(name));
    let (x, labels) = digits_samples(&read(DIGITS_SAMPLES)?, &assets.join(DIGITS_SAMPLES))?;
    let model = crate::simplex::load(&assets.join(SIMPLEX_MODEL))?;
    let probs = model.predict_proba(&x, labels.len())?;
    let classes = argmax_rows(&probs);
    Ok(HostBma {
        probs,
        classes,
        labels,
    })
}

/// Compares the firmware's simplex-ensemble prediction with the host engine's ([`host_simplex`],
/// [`compare_bma`]).
///
/// # Errors
/// I/O and format errors for the assets.
pub fn check_simplex(run: &FirmwareBmaRun, assets: &std::path::Path) -> Result<BmaComparison> {
    Ok(compare_bma(run, &host_simplex(assets)?))
}

/// A comma-separated list of class indices.
fn class_list(v: &str) -> Result<Vec<usize>> {
    v.split(',')
        .map(|c| {
            c.parse::<usize>()
                .map_err(|_| Error::invalid("classes", c, "not an integer"))
        })
        .collect()
}

/// The digits and labels of the firmware's samples file.
fn digits_samples(bytes: &[u8], path: &std::path::Path) -> Result<(Vec<f64>, Vec<usize>)> {
    let bad = Error::malformed(path);
    let st = keel_core::io::SafeTensors::<4>::parse(bytes).map_err(&bad)?;
    let xt = st.tensor("x").map_err(&bad)?;
    let lt = st.tensor("label").map_err(&bad)?;
    let x = (0..xt.len())
        .map(|i| xt.get_f64(i))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(&bad)?;
    let labels = (0..lt.len())
        .map(|i| lt.get_f64(i).map(|v| v as usize))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(&bad)?;
    Ok((x, labels))
}

/// The Augerino CNN the firmware embeds (`keel augerino train --dataset rotated-digits … --export`).
pub const AUGERINO_MODEL: &str = "augerino-digits.safetensors";
/// Its test digits (`x [8, 784]`, 28 × 28 rotated, `label [8]`), written by
/// [`write_augerino_samples`].
pub const AUGERINO_SAMPLES: &str = "augerino-samples.safetensors";
/// How many rotated test digits the firmware classifies.
pub const AUGERINO_SAMPLE_COUNT: usize = 8;
/// Tolerance on `|fw − host f64| / (1 + |host f64|)` over the averaged log-probabilities (the
/// f32 rerun must match bit for bit).
pub const AUGERINO_TOLERANCE: f64 = 1e-4;

/// Writes the first [`AUGERINO_SAMPLE_COUNT`] test images of `rotated-digits` (seed `seed`, the
/// data set `keel augerino train --seed` makes from `digits`) as `f32` into
/// `dir/`[`AUGERINO_SAMPLES`] (atomically).
///
/// # Errors
/// I/O and format errors for the digits CSV or the output.
pub fn write_augerino_samples(
    digits: &std::path::Path,
    dir: &std::path::Path,
    seed: u64,
) -> Result<()> {
    use crate::images::datasets::{rotated_digits, RotatedDigits};
    let set = crate::images::csv::read_csv_images(
        digits,
        "label",
        true,
        crate::images::ImageShape::new(1, 8, 8)?,
    )?;
    let split = rotated_digits(
        &set,
        &RotatedDigits {
            seed,
            ..RotatedDigits::default()
        },
    )?;
    let test = &split.test.images;
    let n = AUGERINO_SAMPLE_COUNT.min(test.len());
    let px = test.shape.pixels();
    let labels: Vec<f64> = test
        .labels()
        .ok_or_else(|| Error::invalid("digits", "labels", "expected a classification set"))?[..n]
        .iter()
        .map(|&l| l as f64)
        .collect();
    let bytes = crate::export::f32_bytes;
    let tensors = vec![
        ("x".to_string(), vec![n, px], bytes(&test.pixels[..n * px])),
        ("label".to_string(), vec![n], bytes(&labels)),
    ];
    let meta = BTreeMap::from([
        ("keel.kind".to_string(), "samples".to_string()),
        ("keel.dataset".to_string(), "rotated-digits".to_string()),
        ("keel.seed".to_string(), seed.to_string()),
    ]);
    crate::output::write_atomic(
        &dir.join(AUGERINO_SAMPLES),
        &crate::export::safetensors_bytes(&tensors, &meta),
    )
}

/// A parsed `KEEL-FW model=augerino` line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareAugerinoRun {
    /// Warped copies averaged per digit (J).
    pub copies: usize,
    /// Seed of the one `Xoshiro256PlusPlus` the digits draw from in turn.
    pub seed: u64,
    /// Classes of the averaged log-probabilities.
    pub classes: Vec<usize>,
    /// Averaged log-probabilities `[digits, 10]`.
    pub logp: Vec<f32>,
    /// Classes of the plain CNN forward pass (no warp).
    pub cnn_classes: Vec<usize>,
    /// Its logits `[digits, 10]`.
    pub logits: Vec<f32>,
}

/// Finds and parses the `KEEL-FW model=augerino` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_augerino(output: &str) -> Result<FirmwareAugerinoRun> {
    let (line, fields) = model_line(output, "augerino")?;
    let get = |k: &str| field(&fields, line, k);
    let int = |k: &str| -> Result<u64> {
        let v = get(k)?;
        v.parse()
            .map_err(|_| Error::invalid(k.to_string(), v, "not an integer"))
    };
    let samples = int("samples")? as usize;
    let copies = int("copies")? as usize;
    let seed = int("seed")?;
    let classes = class_list(get("classes")?)?;
    let logp = hex_words("logp", get("logp")?)?;
    let cnn_classes = class_list(get("cnn_classes")?)?;
    let logits = hex_words("logits", get("logits")?)?;
    if classes.len() != samples
        || cnn_classes.len() != samples
        || logp.len() != samples * 10
        || logits.len() != samples * 10
        || copies == 0
        || copies > 64
    {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!("{samples} digits need as many classes and 10 words each; copies in 1..=64"),
        ));
    }
    Ok(FirmwareAugerinoRun {
        copies,
        seed,
        classes,
        logp,
        cnn_classes,
        logits,
    })
}

/// Outcome of rerunning the firmware's Augerino classification on the host.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AugerinoComparison {
    /// Copies averaged (J).
    pub copies: usize,
    /// Classes the firmware predicted (Augerino average).
    pub firmware_classes: Vec<usize>,
    /// Classes of the host's f64 rerun of the same core code and draws.
    pub host_f64_classes: Vec<usize>,
    /// Classes of the plain CNN on the controller.
    pub firmware_cnn_classes: Vec<usize>,
    /// True labels.
    pub labels: Vec<usize>,
    /// Words (log-probabilities and logits) identical to the host's f32 rerun, of all.
    pub identical_to_host_f32: (usize, usize),
    /// Largest `|fw − host f64| / (1 + |host f64|)` over the averaged log-probabilities.
    pub relative_error_vs_f64: f64,
    /// The tolerance on it.
    pub tolerance: f64,
    /// Whether every word is bit-identical to the f32 rerun and the f64 error is within
    /// tolerance.
    pub pass: bool,
}

/// The core's Augerino prediction and plain forward pass on every digit, in `T`, with one
/// generator seeded `seed` shared by the digits in turn (as the firmware does).
fn augerino_rerun<T: keel_core::Real>(
    model: &[u8],
    x: &[f64],
    copies: usize,
    seed: u64,
    path: &std::path::Path,
) -> Result<(Vec<T>, Vec<T>)> {
    use keel_core::nn::{Augerino, Cnn};
    let bad = Error::malformed(path);
    let st = keel_core::io::SafeTensors::<16>::parse(model).map_err(&bad)?;
    let cnn = Cnn::<8>::from_safetensors(&st).map_err(&bad)?;
    let aug = Augerino::new(&cnn).map_err(&bad)?;
    let n_in = cnn.input_len();
    let mut scratch = vec![T::ZERO; aug.scratch_len()];
    let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut logp, mut logits) = (Vec::new(), Vec::new());
    for img in x.chunks(n_in) {
        let img: Vec<T> = img.iter().map(|&v| T::from_f64(v as f32 as f64)).collect();
        let mut out = [T::ZERO; 10];
        cnn.forward(&img, &mut out, &mut scratch).map_err(&bad)?;
        logits.extend_from_slice(&out);
        aug.predict(&img, copies, &mut rng, &mut out, &mut scratch)
            .map_err(&bad)?;
        logp.extend_from_slice(&out);
    }
    Ok((logp, logits))
}

/// The arg-max of each row of ten values (the first of equal maxima, as the firmware's).
fn argmax_rows<T: PartialOrd + Copy>(v: &[T]) -> Vec<usize> {
    v.chunks(10)
        .map(|p| {
            let mut best = 0;
            for c in 1..p.len() {
                if p[c] > p[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// Reruns the firmware's Augerino classification with the same core code on the host, in `f32`
/// (compared bit for bit) and in `f64` (compared within [`AUGERINO_TOLERANCE`]).
///
/// # Errors
/// I/O and format errors for the assets.
pub fn check_augerino(
    run: &FirmwareAugerinoRun,
    assets: &std::path::Path,
) -> Result<AugerinoComparison> {
    let read = |name: &str| crate::output::read(&assets.join(name));
    let samples_path = assets.join(AUGERINO_SAMPLES);
    let (x, labels) = digits_samples(&read(AUGERINO_SAMPLES)?, &samples_path)?;
    let model_path = assets.join(AUGERINO_MODEL);
    let model = read(AUGERINO_MODEL)?;
    let (p32, l32) = augerino_rerun::<f32>(&model, &x, run.copies, run.seed, &model_path)?;
    let (p64, _) = augerino_rerun::<f64>(&model, &x, run.copies, run.seed, &model_path)?;
    let fw: Vec<f32> = run.logp.iter().chain(&run.logits).copied().collect();
    let host: Vec<f32> = p32.iter().chain(&l32).copied().collect();
    let identical = fw
        .iter()
        .zip(&host)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count();
    let relative_error_vs_f64 = run
        .logp
        .iter()
        .zip(&p64)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / (1.0 + b.abs()))
        .fold(0.0, worse);
    let same_len = fw.len() == host.len() && run.logp.len() == p64.len();
    let pass = same_len
        && identical == fw.len()
        && relative_error_vs_f64 <= AUGERINO_TOLERANCE
        && run.classes == argmax_rows(&run.logp)
        && run.cnn_classes == argmax_rows(&run.logits);
    Ok(AugerinoComparison {
        copies: run.copies,
        firmware_classes: run.classes.clone(),
        host_f64_classes: argmax_rows(&p64),
        firmware_cnn_classes: run.cnn_classes.clone(),
        labels,
        identical_to_host_f32: (identical, host.len()),
        relative_error_vs_f64,
        tolerance: AUGERINO_TOLERANCE,
        pass,
    })
}
/// A learned constrained model the firmware embeds and rolls out with RK4 (`keel chnn train …
/// --export`), and the line it prints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChnnLine {
    /// The line's `model=` name.
    pub name: &'static str,
    /// The model file in the firmware's assets.
    pub asset: &'static str,
    /// The system it was trained on.
    pub system: SystemSpec,
    /// Components of a velocity-form state (`2 · nodes · dimensions`).
    pub state_len: usize,
}

/// The learned 2-pendulum CHNN (3 × 256).
pub const CHNN_PEND2: ChnnLine = ChnnLine {
    name: "chnn",
    asset: "chnn-pend2.safetensors",
    system: SystemSpec {
        kind: crate::simulate::SystemKind::ChainPendulum,
        size: Some(2),
    },
    state_len: 8,
};

/// The learned gyroscope CHNN (3 × 64; 4 nodes in 3-D).
pub const CHNN_GYROSCOPE: ChnnLine = ChnnLine {
    name: "gyroscope",
    asset: "chnn-gyroscope.safetensors",
    system: SystemSpec {
        kind: crate::simulate::SystemKind::Gyroscope,
        size: None,
    },
    state_len: 24,
};

/// The learned 2-pendulum CHNN's file.
pub const CHNN_MODEL: &str = CHNN_PEND2.asset;
/// Tolerance on the firmware's final state against the host engine's rollout,
/// `‖fw − host‖₂ / ‖host‖₂` (f32 on the controller, f64 on the host, 100 RK4 steps).
pub const CHNN_TOLERANCE: f64 = 1e-4;

/// A parsed `KEEL-FW model=chnn` (or `model=gyroscope`) line.
#[derive(Clone, Debug, PartialEq)]
pub struct FirmwareChnnRun {
    /// RK4 step.
    pub dt: f32,
    /// Steps.
    pub steps: usize,
    /// Initial velocity-form state `(x, v)`.
    pub z0: Vec<f32>,
    /// Final velocity-form state.
    pub state: Vec<f32>,
}

/// Finds and parses the learned 2-pendulum's `KEEL-FW model=chnn` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_chnn(output: &str) -> Result<FirmwareChnnRun> {
    parse_chnn_line(output, &CHNN_PEND2)
}

/// Finds and parses the `KEEL-FW model=<name>` line of the learned model `model`.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_chnn_line(output: &str, model: &ChnnLine) -> Result<FirmwareChnnRun> {
    parse_rollout_line(output, model.name, model.state_len)
}

/// Finds and parses a learned model's `KEEL-FW model=<name> dt= steps= z0= state=` line with
/// states of `state_len` components.
fn parse_rollout_line(output: &str, name: &str, state_len: usize) -> Result<FirmwareChnnRun> {
    let (line, fields) = model_line(output, name)?;
    let get = |k: &str| field(&fields, line, k);
    let dt = hex_words("dt", get("dt")?)?;
    let steps: usize = get("steps")?
        .parse()
        .map_err(|_| Error::invalid("firmware output", line, "steps= is not a count"))?;
    check_steps(steps, MAX_CHNN_STEPS, line)?;
    let (z0, state) = (
        hex_words("z0", get("z0")?)?,
        hex_words("state", get("state")?)?,
    );
    if dt.len() != 1 || z0.len() != state_len || state.len() != state_len {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!("expected one dt and {state_len}-component states"),
        ));
    }
    let span = f64::from(dt[0]) * steps as f64;
    if !(dt[0] > 0.0 && span <= MAX_CHNN_SPAN) {
        return Err(Error::invalid(
            "firmware output",
            line,
            format!(
                "dt={} over {steps} steps: the host reruns a positive step over at most \
                 {MAX_CHNN_SPAN} s",
                dt[0]
            ),
        ));
    }
    Ok(FirmwareChnnRun {
        dt: dt[0],
        steps,
        z0,
        state,
    })
}

/// The firmware's learned rollout against the host engine's, and both against the real system.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChnnComparison {
    /// Firmware final state.
    pub firmware: Vec<f32>,
    /// Host engine final state (f64 rollout of the same file).
    pub host: Vec<f64>,
    /// `‖fw − host‖₂ / ‖host‖₂`.
    pub relative_error: f64,
    /// The real pendulum's final state from the same start (dopri5, rtol 1e-10).
    pub truth: Vec<f64>,
    /// `‖host − truth‖₂ / ‖truth‖₂`: how well the learned model predicts after `steps` steps.
    pub model_error: f64,
    /// Tolerance on `relative_error`.
    pub tolerance: f64,
    /// Within tolerance.
    pub pass: bool,
}

/// Reruns the firmware's learned 2-pendulum rollout on the host engine (f64) from the same
/// start, and the real system for reference.
///
/// # Errors
/// I/O and format errors for the model; integration errors.
pub fn check_chnn(run: &FirmwareChnnRun, assets: &std::path::Path) -> Result<ChnnComparison> {
    check_chnn_line(run, &CHNN_PEND2, assets)
}

/// Reruns the firmware's rollout of the learned model `model` on the host engine (f64) from the
/// same start, and the real system for reference.
///
/// # Errors
/// I/O and format errors for the model (including one trained on another system); integration
/// errors.
pub fn check_chnn_line(
    run: &FirmwareChnnRun,
    model: &ChnnLine,
    assets: &std::path::Path,
) -> Result<ChnnComparison> {
    use crate::chnn::truth::truth;
    let path = assets.join(model.asset);
    let saved = crate::chnn::export::load(&path)?;
    if saved.info.spec()? != model.system {
        return Err(Error::invalid(
            "model",
            path.display(),
            format!(
                "was trained on {}, the firmware line `model={}` needs {}",
                saved.info.system,
                model.name,
                model.system.kind.name()
            ),
        ));
    }
    let z0: Vec<f64> = run.z0.iter().map(|&v| f64::from(v)).collect();
    let dt = f64::from(run.dt);
    let host = crate::chnn::train::rk4_rollout(
        &saved.net,
        &saved.params,
        std::slice::from_ref(&z0),
        dt,
        run.steps,
    )?
    .remove(0)
    .pop()
    .unwrap_or_default();
    let sys = truth(model.system)?;
    let times: Vec<f64> = (0..=run.steps).map(|k| k as f64 * dt).collect();
    let half = z0.len() / 2;
    let truth_end = sys
        .rollout(&z0[..half], &z0[half..], &times, 1e-10)?
        .pop()
        .unwrap_or_default();
    let fw: Vec<f64> = run.state.iter().map(|&v| f64::from(v)).collect();
    let relative_error = relative_l2(&fw, &host);
    Ok(ChnnComparison {
        firmware: run.state.clone(),
        model_error: relative_l2(&host, &truth_end),
        truth: truth_end,
        pass: host.len() == fw.len() && relative_error <= CHNN_TOLERANCE,
        host,
        relative_error,
        tolerance: CHNN_TOLERANCE,
    })
}

/// `‖a − b‖₂ / ‖b‖₂`.
fn relative_l2(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = b.iter().map(|v| v * v).sum();
    (num / den).sqrt()
}

/// The Hamiltonian EMLP learned on the double spring pendulum (`keel emlp train --dataset
/// double-spring-pendulum --model emlph --ch 32 --epochs 400 --seed 0 --export …`), which the
/// firmware rolls out with the core's `HamiltonianEmlp` and RK4.
pub const SPRING_MODEL: &str = "emlph-spring.safetensors";
/// Components of its state `(x₁, x₂, p₁, p₂)`.
pub const SPRING_STATE: usize = 12;
/// Scratch the host's core rollout gives the network's gradient (f64 scalars; the file's own
/// need, `Emlp::gradient_scratch_len`, is checked against it).
const SPRING_SCRATCH: usize = 1 << 13;
/// Tolerance on the firmware's final state against the core's f64 rollout of the same file,
/// `‖fw − host‖₂ / ‖host‖₂`.
pub const SPRING_TOLERANCE: f64 = 1e-4;

/// Finds and parses the learned spring pendulum's `KEEL-FW model=spring` line.
///
/// # Errors
/// [`Error::InvalidInput`] naming the missing or malformed field.
pub fn parse_spring(output: &str) -> Result<FirmwareChnnRun> {
    parse_rollout_line(output, "spring", SPRING_STATE)
}

/// Reruns the firmware's rollout of the learned spring pendulum with the same core code in f64
/// on the host (the engine's gradient of the same network is checked against the core's in
/// `host/tests/emlp_core_gradient.rs`), and the real system from the same start.
///
/// # Errors
/// I/O and format errors for the model (one that is not a Hamiltonian EMLP of the 12-component
/// state included); integration errors.
pub fn check_spring(run: &FirmwareChnnRun, assets: &std::path::Path) -> Result<ChnnComparison> {
    use keel_core::dynamics::HamiltonianEmlp;
    use keel_core::integrate::Rk4;
    let path = assets.join(SPRING_MODEL);
    let bytes = crate::output::read(&path)?;
    let st = keel_core::io::SafeTensors::<64>::parse(&bytes).map_err(Error::malformed(&path))?;
    let meta = |k: &str| st.metadata(k).and_then(|v| v.as_str());
    if meta("keel.kind") != Some("emlp") || meta("keel.field") != Some("hamiltonian") {
        return Err(Error::Malformed {
            path: path.clone(),
            reason: "not a Hamiltonian EMLP (`keel.kind` = emlp, `keel.field` = hamiltonian)"
                .into(),
        });
    }
    let emlp =
        keel_core::nn::Emlp::<4, 16>::from_safetensors(&st).map_err(Error::malformed(&path))?;
    let field = HamiltonianEmlp::<4, 16, SPRING_STATE, SPRING_SCRATCH>::new(&emlp)
        .map_err(Error::malformed(&path))?;
    let mut z = [0.0f64; SPRING_STATE];
    for (a, &b) in z.iter_mut().zip(&run.z0) {
        *a = f64::from(b);
    }
    let z0 = z;
    let dt = f64::from(run.dt);
    let rk4 = Rk4::new(dt).map_err(|e| Error::invalid("firmware output", run.dt, e.to_string()))?;
    for k in 0..run.steps {
        rk4.step(&field, k as f64 * dt, &mut z)
            .map_err(|e| Error::Solver {
                reason: format!("the learned spring pendulum at step {k}: {e}"),
            })?;
    }
    let times: Vec<f64> = (0..=run.steps).map(|k| k as f64 * dt).collect();
    let truth_end = crate::emlp::spring::SpringPendulum::PAPER
        .rollout(&z0, &times, 1e-10)?
        .pop()
        .map(|s| s.to_vec())
        .unwrap_or_default();
    let host = z.to_vec();
    let fw: Vec<f64> = run.state.iter().map(|&v| f64::from(v)).collect();
    let relative_error = relative_l2(&fw, &host);
    Ok(ChnnComparison {
        firmware: run.state.clone(),
        model_error: relative_l2(&host, &truth_end),
        truth: truth_end,
        pass: relative_error <= SPRING_TOLERANCE,
        host,
        relative_error,
        tolerance: SPRING_TOLERANCE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &[f32]) -> String {
        v.iter()
            .map(|v| format!("{:08x}", v.to_bits()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn line(state: &[f32]) -> String {
        format!(
            "boot\nKEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt={} steps=50 angles={} rates={} state={}\n",
            hex(&[0.01]),
            hex(&[0.3, -0.2, 1.1]),
            hex(&[0.0, 0.5, -0.3]),
            hex(state)
        )
    }

    #[test]
    fn host_result_passes_its_own_check_and_a_perturbed_one_fails() {
        let probe = parse(&line(&[0.0; 12])).unwrap();
        let host = host_run(&probe).unwrap();
        let c = check(&parse(&line(&host)).unwrap()).unwrap();
        assert!(c.pass && c.identical_components == 12 && c.relative_error == 0.0);
        let mut off = host.clone();
        off[7] *= 1.001;
        let c = check(&parse(&line(&off)).unwrap()).unwrap();
        assert!(!c.pass, "relative error {}", c.relative_error);
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert!(parse("nothing here").is_err());
        let ok = line(&[0.0; 12]);
        assert!(parse(&ok.replace("links=3", "links=4")).is_err());
        assert!(parse(&ok.replace("state=00000000,", "state=zz,")).is_err());
        assert!(parse(&ok.replace("state=00000000,", "state=0,")).is_err());
        assert!(parse(&ok.replace("steps=50", "steps=x")).is_err());
        assert!(parse(&ok.replace("dtype=f32", "dtype=f64")).is_err());
    }

    /// A damaged log must not keep the check busy for hours (or overflow a buffer's size):
    /// counts beyond what the host reruns are refused, naming the bound.
    #[test]
    fn step_counts_beyond_the_reruns_bounds_are_refused() {
        let ok = line(&[0.0; 12]);
        let huge = ok.replace("steps=50", &format!("steps={}", MAX_STEPS + 1));
        let e = parse(&huge).unwrap_err().to_string();
        assert!(e.contains(&format!("at most {MAX_STEPS}")), "{e}");
        parse(&ok.replace("steps=50", &format!("steps={MAX_STEPS}"))).unwrap();
        let chnn = format!(
            "KEEL-FW model=chnn links=2 dt=3cf5c28f steps={} z0={zeros} state={zeros}",
            usize::MAX,
            zeros = ["00000000"; 8].join(",")
        );
        let e = parse_chnn(&chnn).unwrap_err().to_string();
        assert!(e.contains(&format!("at most {MAX_CHNN_STEPS}")), "{e}");
        // dt = 0.03 over 100 steps is the firmware's; 10⁹ s is not, nor is a negative step.
        parse_chnn(&chnn.replace(&usize::MAX.to_string(), "100")).unwrap();
        let long = chnn
            .replace(&usize::MAX.to_string(), "100")
            .replace("dt=3cf5c28f", &format!("dt={:08x}", 1e9f32.to_bits()));
        assert!(parse_chnn(&long)
            .unwrap_err()
            .to_string()
            .contains("1000 s"));
        let negative = chnn
            .replace(&usize::MAX.to_string(), "100")
            .replace("dt=3cf5c28f", "dt=bcf5c28f");
        assert!(parse_chnn(&negative).is_err());
        let policy = format!(
            "KEEL-FW model=policy env=pendulum steps={} return=00000000 state=00000000,00000000 \
             value0=00000000 value_sum=00000000",
            MAX_POLICY_STEPS + 1
        );
        let e = parse_policy(&policy).unwrap_err().to_string();
        assert!(e.contains(&format!("at most {MAX_POLICY_STEPS}")), "{e}");
    }

    #[test]
    fn emlp_lines_parse_and_malformed_ones_are_rejected() {
        let words = |v: f32| vec![format!("{:08x}", v.to_bits()); EMLP_SAMPLE_COUNT].join(",");
        let ok = format!(
            "KEEL-FW model=emlp samples=8 y={} yg={}",
            words(1.5),
            words(1.5)
        );
        let run = parse_emlp(&ok).unwrap();
        assert_eq!(run.y, vec![1.5; EMLP_SAMPLE_COUNT]);
        assert!(parse_emlp("KEEL-FW model=digits").is_err());
        assert!(parse_emlp(&ok.replace(" yg=", " yh=")).is_err());
        assert!(parse_emlp(&ok.replacen("3fc00000,", "zz,", 1)).is_err());
        assert!(parse_emlp(&ok.replacen("3fc00000,", "", 1)).is_err());
    }

    #[test]
    fn gp_line_round_trips_and_a_changed_word_is_caught() {
        let hex = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{:08x}", x.to_bits()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut run = FirmwareGpRun {
            grid: 16,
            lo: -3.0,
            hi: 3.0,
            outputscale: 1.3,
            lengthscale: 0.7,
            noise: 0.04,
            seed: 7,
            n: 200,
            test: vec![-1.0, 0.5],
            mean: vec![],
            var_f: vec![],
            lml: 0.0,
        };
        let (m, v, l) = gp_rerun::<f32>(&run).unwrap();
        let line = format!(
            "KEEL-FW model=gp method=wiski grid=16 lo={} hi={} outputscale={} lengthscale={} noise={} seed=7 n=200 test={} mean={} var_f={} lml={}",
            hex(&[-3.0]), hex(&[3.0]), hex(&[1.3]), hex(&[0.7]), hex(&[0.04]), hex(&run.test), hex(&m), hex(&v), hex(&[l])
        );
        (run.mean, run.var_f, run.lml) = (m.clone(), v, l);
        let parsed = parse_gp(&format!("boot\n{line}\n")).unwrap();
        assert_eq!(parsed, run);
        let c = check_gp(&parsed).unwrap();
        assert!(c.pass && c.identical_to_host_f32 == (5, 5), "{c:?}");
        let mut bad = parsed.clone();
        bad.mean[1] = f32::from_bits(bad.mean[1].to_bits() ^ 1);
        assert!(!check_gp(&bad).unwrap().pass);
        assert!(parse_gp(&line.replace("n=200 ", "")).is_err());
        assert!(parse_gp(&line.replace(
            &format!("mean={}", hex(&m)),
            &format!("mean={}", hex(&m[..1]))
        ))
        .is_err());
    }

    #[test]
    fn the_chnn_line_parses_and_bad_lines_are_refused() {
        let hex = |v: &[f32]| -> String {
            v.iter()
                .map(|x| format!("{:08x}", x.to_bits()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let z0 = [0.1f32, -1.0, 0.3, -2.0, 0.5, 0.1, 0.2, -0.3];
        let line = format!(
            "KEEL-FW model=chnn links=2 dt={} steps=100 z0={} state={}",
            hex(&[0.03]),
            hex(&z0),
            hex(&z0)
        );
        let run = parse_chnn(&format!("boot\n{line}\n")).unwrap();
        assert_eq!(run.steps, 100);
        assert_eq!(run.z0, z0.to_vec());
        assert_eq!(run.dt, 0.03);
        assert!(parse_chnn(&line.replace("steps=100 ", "")).is_err());
        assert!(parse_chnn(&line.replace("steps=100", "steps=many")).is_err());
        assert!(parse_chnn(&line.replace(
            &format!("z0={}", hex(&z0)),
            &format!("z0={}", hex(&z0[..3]))
        ))
        .is_err());
        // The gyroscope's line has 24-component states; the pendulum's is not taken for it.
        assert!(parse_chnn_line(&line, &CHNN_GYROSCOPE).is_err());
        let z24: Vec<f32> = (0..24).map(|i| 0.1 * i as f32).collect();
        let gyro = format!(
            "KEEL-FW model=gyroscope dt={} steps=100 z0={} state={}",
            hex(&[0.02]),
            hex(&z24),
            hex(&z24)
        );
        let run = parse_chnn_line(&format!("{line}\n{gyro}\n"), &CHNN_GYROSCOPE).unwrap();
        assert_eq!((run.z0.len(), run.dt), (24, 0.02));
        assert!(
            parse_chnn_line(&gyro.replace("state=", "state=3f800000,"), &CHNN_GYROSCOPE).is_err()
        );
        assert!(parse_chnn(&gyro).is_err());
    }

    #[test]
    fn the_bma_line_parses_and_bad_lines_are_refused() {
        let probs: Vec<String> = (0..20)
            .map(|i| format!("{:08x}", (0.05f32 * i as f32).to_bits()))
            .collect();
        let line = format!(
            "KEEL-FW model=bma samples=2 members=10 classes=3,9 probs={}",
            probs.join(",")
        );
        let run = parse_bma(&format!("boot\n{line}\n")).unwrap();
        assert_eq!((run.members, run.classes.clone()), (10, vec![3, 9]));
        assert_eq!(run.probs[1], 0.05);
        assert!(parse_bma(&line.replace("members=10 ", "")).is_err());
        assert!(parse_bma(&line.replace("classes=3,9", "classes=3")).is_err());
        assert!(parse_bma(&line.replace("samples=2", "samples=two")).is_err());
        assert!(parse_bma("KEEL-FW model=digits samples=0").is_err());
        // The simplex line has the same fields (and more); each parser finds its own line.
        let simplex = line.replace(
            "model=bma",
            "model=simplex components=3 vertices=3 points=10",
        );
        let run = parse_simplex(&format!("{line}\n{simplex}\n")).unwrap();
        assert_eq!((run.members, run.classes.clone()), (10, vec![3, 9]));
        assert!(parse_simplex(&line).is_err());
        let student = format!(
            "KEEL-FW model=student samples=2 classes=3,9 logits={}",
            probs.join(",")
        );
        assert_eq!(parse_student(&student).unwrap().classes, vec![3, 9]);
        assert!(parse_student(&student.replace("samples=2", "samples=3")).is_err());
    }

    #[test]
    fn the_policy_line_is_checked_against_the_hosts_rerun() {
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets");
        let bytes = std::fs::read(assets.join(POLICY_MODEL)).unwrap();
        let st = keel_core::io::SafeTensors::<16>::parse(&bytes).unwrap();
        let policy = keel_core::rl::Policy::<4>::from_safetensors(&st).unwrap();
        let vbytes = std::fs::read(assets.join(VALUE_MODEL)).unwrap();
        let vst = keel_core::io::SafeTensors::<64>::parse(&vbytes).unwrap();
        let value = keel_core::rl::ValueModel::<4>::from_safetensors(&vst).unwrap();
        let e = policy_episode::<f32>(&policy, &value, 200).unwrap();
        let s = e.state;
        let line = format!(
            "KEEL-FW model=policy env=pendulum steps=200 return={:08x} state={:08x},{:08x} \
             value0={:08x} value_sum={:08x}",
            e.ret.to_bits(),
            s[0].to_bits(),
            s[1].to_bits(),
            e.value0.to_bits(),
            e.value_sum.to_bits()
        );
        let c = check_policy(&parse_policy(&line).unwrap(), &assets).unwrap();
        assert!(c.identical_to_host_f32 && c.pass, "{c:?}");
        // A different final state fails the check.
        let moved = line.replace(
            &format!("{:08x},", s[0].to_bits()),
            &format!("{:08x},", (s[0] + 0.01).to_bits()),
        );
        let c = check_policy(&parse_policy(&moved).unwrap(), &assets).unwrap();
        assert!(!c.pass && !c.identical_to_host_f32);
        // So does a different value estimate.
        let off = line.replace(
            &format!("value0={:08x}", e.value0.to_bits()),
            &format!("value0={:08x}", (e.value0 * 1.01).to_bits()),
        );
        let c = check_policy(&parse_policy(&off).unwrap(), &assets).unwrap();
        assert!(!c.pass && !c.identical_to_host_f32);
        assert!(parse_policy(&line.replace(" value_sum=", " sum=")).is_err());
        assert!(parse_policy(&line.replace("steps=200 ", "")).is_err());
        assert!(parse_policy(&line.replace(&format!(",{:08x}", s[1].to_bits()), "")).is_err());
        assert!(check_policy(
            &parse_policy(&line.replace("pendulum", "cartpole")).unwrap(),
            &assets
        )
        .is_err());
    }

    #[test]
    fn the_spring_line_is_checked_against_the_cores_f64_rollout() {
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets");
        let z0 = [
            0.12f32, -0.21, -1.38, -0.17, 0.26, -3.09, 0.31, -0.22, 0.08, -0.41, 0.33, 0.18,
        ];
        let line = |state: &[f32]| {
            format!(
                "KEEL-FW model=spring dt={} steps=20 z0={} state={}",
                hex(&[0.2]),
                hex(&z0),
                hex(state)
            )
        };
        // The host's own answer, read back from a first check.
        let probe = check_spring(&parse_spring(&line(&[0.0; 12])).unwrap(), &assets).unwrap();
        assert!(!probe.pass);
        let host: Vec<f32> = probe.host.iter().map(|&v| v as f32).collect();
        let c = check_spring(&parse_spring(&line(&host)).unwrap(), &assets).unwrap();
        assert!(c.pass && c.relative_error < 1e-7, "{c:?}");
        // The learned model follows the real pendulum over 4 s only roughly, but it does.
        assert!(
            c.model_error > 1e-4 && c.model_error < 0.5,
            "{}",
            c.model_error
        );
        let mut off = host.clone();
        off[4] += 0.01;
        assert!(
            !check_spring(&parse_spring(&line(&off)).unwrap(), &assets)
                .unwrap()
                .pass
        );
        assert!(parse_spring(&line(&host[..11])).is_err());
        // A file that is not a Hamiltonian EMLP is refused by name.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(assets.join(CHNN_MODEL), dir.path().join(SPRING_MODEL)).unwrap();
        let e = check_spring(&parse_spring(&line(&host)).unwrap(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("Hamiltonian EMLP"), "{e}");
    }
}
