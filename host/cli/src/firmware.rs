//! `keel firmware`: the Cortex-M4F firmware's output checked against the host, and the assets
//! it embeds.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use keel::error::{Error, Result};

#[derive(Subcommand)]
pub enum FirmwareCommand {
    /// Rerun the firmware's scenario on the host (same core code, f32) and compare final states.
    Check {
        /// File with the firmware's QEMU output (`firmware/run.sh --out FILE`); `-` for stdin.
        log: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Fail unless the log has every model line (the Rust firmware prints all of them; the C
        /// firmware in firmware-c/ prints a subset, and by default a log is checked on the model
        /// lines it has, at least one).
        #[arg(long)]
        require_all: bool,
        /// Folder with the models and samples the firmware embeds (the default is the
        /// repository's when run from its root).
        #[arg(long, default_value = "firmware/assets")]
        assets: PathBuf,
    },
    /// Train the digits classifier the firmware embeds and write it with test digits.
    Assets {
        /// The digits CSV.
        #[arg(long, default_value = "fixtures/data/digits.csv")]
        data: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "firmware/assets")]
        out: PathBuf,
    },
    /// Write the rotated test digits the firmware's Augerino check classifies (the first 8 test
    /// images of `keel augerino train --dataset rotated-digits --seed SEED`).
    AugerinoSamples {
        /// The digits CSV.
        #[arg(long, default_value = "fixtures/data/digits.csv")]
        data: PathBuf,
        /// Seed of the data set (the training run's `--seed`).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long, default_value = "firmware/assets")]
        out: PathBuf,
    },
    /// Write the held-out rows the firmware's WISKI-behind-a-stem check predicts and absorbs:
    /// the first rows of the test set `keel gp online --data DATA --seed SEED --test-fraction F`
    /// holds out (rows its exported model never absorbed), raw, with their targets.
    WiskiSamples {
        /// The CSV the model was exported from.
        #[arg(long, default_value = "fixtures/data/computers.csv")]
        data: PathBuf,
        /// Its target column.
        #[arg(long, default_value = "price")]
        target: String,
        /// The export's `--seed` (the row order).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The export's `--test-fraction`.
        #[arg(long, default_value_t = 0.1)]
        test_fraction: f64,
        /// Rows to write.
        #[arg(long, default_value_t = keel::firmware_wiski::WISKI_STEM_ROWS)]
        count: usize,
        /// Output folder.
        #[arg(long, default_value = "firmware/assets")]
        out: PathBuf,
    },
}

/// Runs `keel firmware …`; `false` when a check did not pass.
pub fn run(cmd: &FirmwareCommand) -> Result<bool> {
    match cmd {
        FirmwareCommand::Check {
            log,
            json,
            require_all,
            assets,
        } => check(log, *json, *require_all, assets),
        FirmwareCommand::Assets { data, out } => {
            let r = keel::firmware::write_digits_assets(data, out)?;
            let mse = keel::firmware::write_emlp_assets(out)?;
            println!(
                "wrote {}, {} (test accuracy {:.4}), {} and {} (test MSE {:.4}) to {}",
                keel::firmware::DIGITS_MODEL,
                keel::firmware::DIGITS_SAMPLES,
                r.test_accuracy.unwrap_or(f64::NAN),
                keel::firmware::EMLP_MODEL,
                keel::firmware::EMLP_SAMPLES,
                mse,
                out.display()
            );
            Ok(true)
        }
        FirmwareCommand::AugerinoSamples { data, seed, out } => {
            keel::firmware::write_augerino_samples(data, out, *seed)?;
            println!(
                "wrote {} (rotated-digits, seed {seed}) to {}",
                keel::firmware::AUGERINO_SAMPLES,
                out.display()
            );
            Ok(true)
        }
        FirmwareCommand::WiskiSamples {
            data,
            target,
            seed,
            test_fraction,
            count,
            out,
        } => {
            let spec = keel::firmware_wiski::WiskiSamplesSpec {
                data,
                target,
                seed: *seed,
                test_fraction: *test_fraction,
                count: *count,
            };
            let path = out.join(keel::firmware_wiski::WISKI_STEM_SAMPLES);
            let rows = keel::firmware_wiski::write_wiski_samples(&spec, &path)?;
            println!(
                "wrote {} held-out rows of {} (seed {seed}, test fraction {test_fraction}; data rows {:?}) to {}",
                rows.len(),
                data.display(),
                rows,
                path.display()
            );
            Ok(true)
        }
    }
}

fn check(log: &Path, json: bool, require_all: bool, assets: &Path) -> Result<bool> {
    if !assets.is_dir() {
        return Err(Error::invalid(
            "--assets",
            assets.display(),
            "no such folder: run from the repository root, or pass --assets REPO/firmware/assets",
        ));
    }
    let text = if log == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|source| Error::Io {
            path: log.to_path_buf(),
            source,
        })?
    } else {
        std::fs::read_to_string(log).map_err(|source| Error::Io {
            path: log.to_path_buf(),
            source,
        })?
    };
    let run = keel::firmware::parse(&text)?;
    let c = keel::firmware::check(&run)?;
    // The model lines are checked when present (the C firmware prints a subset); a malformed
    // line is an error, an absent one is reported as such.
    let (present, absent): (Vec<&str>, Vec<&str>) = keel::firmware::MODEL_LINES
        .into_iter()
        .partition(|name| keel::firmware::has_model_line(&text, name));
    if present.is_empty() {
        return Err(Error::invalid(
            "firmware output",
            log.display(),
            "no 'KEEL-FW model=' line: a log must carry at least one model check besides the \
             dynamics line",
        ));
    }
    if require_all && !absent.is_empty() {
        return Err(Error::invalid(
            "firmware output",
            log.display(),
            format!(
                "--require-all: no 'KEEL-FW model=' line for {}",
                absent.join(", ")
            ),
        ));
    }
    let has = |name: &str| present.contains(&name);
    let model = if has("digits") {
        Some(keel::firmware::check_model(
            &keel::firmware::parse_model(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let emlp = if has("emlp") {
        Some(keel::firmware::check_emlp(
            &keel::firmware::parse_emlp(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let gp = if has("gp") {
        Some(keel::firmware::check_gp(&keel::firmware::parse_gp(&text)?)?)
    } else {
        None
    };
    let chnn = if has("chnn") {
        let chnn_run = keel::firmware::parse_chnn(&text)?;
        let chnn = keel::firmware::check_chnn(&chnn_run, assets)?;
        Some((chnn_run, chnn))
    } else {
        None
    };
    let gyroscope = if has("gyroscope") {
        let model = &keel::firmware::CHNN_GYROSCOPE;
        let run = keel::firmware::parse_chnn_line(&text, model)?;
        let check = keel::firmware::check_chnn_line(&run, model, assets)?;
        Some((run, check))
    } else {
        None
    };
    let spring = if has("spring") {
        let run = keel::firmware::parse_spring(&text)?;
        let check = keel::firmware::check_spring(&run, assets)?;
        Some((run, check))
    } else {
        None
    };
    let bma = if has("bma") {
        Some(keel::firmware::check_bma(
            &keel::firmware::parse_bma(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let policy = if has("policy") {
        Some(keel::firmware::check_policy(
            &keel::firmware::parse_policy(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let augerino = if has("augerino") {
        Some(keel::firmware::check_augerino(
            &keel::firmware::parse_augerino(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let simplex = if has("simplex") {
        Some(keel::firmware::check_simplex(
            &keel::firmware::parse_simplex(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let student = if has("student") {
        Some(keel::firmware::check_student(
            &keel::firmware::parse_student(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let ntk = if has("ntk") {
        let ntk_run = keel::firmware_ntk::parse_ntk(&text)?;
        let ntk = keel::firmware_ntk::check_ntk(&ntk_run, assets)?;
        Some((ntk_run, ntk))
    } else {
        None
    };
    let wiski_stem = if has("wiski-stem") {
        Some(keel::firmware_wiski::check_wiski_stem(
            &keel::firmware_wiski::parse_wiski_stem(&text)?,
            assets,
        )?)
    } else {
        None
    };
    let pass = c.pass
        && wiski_stem.as_ref().is_none_or(|m| m.pass)
        && ntk.as_ref().is_none_or(|(_, m)| m.pass)
        && augerino.as_ref().is_none_or(|m| m.pass)
        && simplex.as_ref().is_none_or(|m| m.pass)
        && student.as_ref().is_none_or(|m| m.pass)
        && model.as_ref().is_none_or(|m| m.pass)
        && emlp.as_ref().is_none_or(|m| m.pass)
        && gp.as_ref().is_none_or(|m| m.pass)
        && chnn.as_ref().is_none_or(|(_, m)| m.pass)
        && gyroscope.as_ref().is_none_or(|(_, m)| m.pass)
        && spring.as_ref().is_none_or(|(_, m)| m.pass)
        && bma.as_ref().is_none_or(|m| m.pass)
        && policy.as_ref().is_none_or(|m| m.pass);
    let mut checked = vec!["dynamics"];
    checked.extend(&present);
    if json {
        super::report::json(
            &serde_json::json!({"dynamics": c, "model": model, "emlp": emlp,
            "gp": gp, "chnn": chnn.as_ref().map(|(_, m)| m), "bma": bma, "policy": policy, "augerino": augerino,
            "simplex": simplex, "student": student, "ntk": ntk.as_ref().map(|(_, m)| m),
            "gyroscope": gyroscope.as_ref().map(|(_, m)| m),
            "spring": spring.as_ref().map(|(_, m)| m),
            "wiski_stem": wiski_stem,
            "checked": checked, "absent": absent, "pass": pass}),
        )?;
    } else {
        println!(
            "firmware (Cortex-M4F, QEMU) vs host, {}-link chain pendulum, RK4 f32, dt = {}, {} steps",
            run.links, run.dt, run.steps
        );
        println!(
            "{:>4} {:>16} {:>16} {:>12}",
            "i", "firmware", "host", "|diff|"
        );
        for (i, (a, b)) in c.firmware.iter().zip(&c.host).enumerate() {
            println!("{i:>4} {a:>16.9e} {b:>16.9e} {:>12.3e}", (a - b).abs());
        }
        println!(
            "relative error ‖fw − host‖∞/‖host‖∞ = {:.3e} (tolerance {:e}); {} of {} components bit-identical: {}",
            c.relative_error,
            c.tolerance,
            c.identical_components,
            c.host.len(),
            if c.pass { "PASS" } else { "FAIL" }
        );
        if let Some(model) = &model {
            let correct = model
                .firmware_classes
                .iter()
                .zip(&model.labels)
                .filter(|(a, b)| a == b)
                .count();
            println!(
                "digits MLP (embedded keel fit export) on {} test digits: firmware classes {:?}, host {:?}, labels {:?}",
                model.labels.len(),
                model.firmware_classes,
                model.host_classes,
                model.labels
            );
            println!(
                "  {} of {} correct; logits max |fw − host|/(1 + |host|) = {:.3e} (tolerance {:e}): {}",
                correct,
                model.labels.len(),
                model.relative_error,
                model.tolerance,
                if model.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(emlp) = &emlp {
            println!(
                "EMLP O(5) 2V → V⁰ (embedded keel emlp export) on {} inputs: max |fw − host|/(1 + |host|) = {:.3e}, \
                 invariance max |f(gx) − f(x)|/(1 + |f(x)|) = {:.3e} (tolerance {:e}): {}",
                emlp.host.len(),
                emlp.relative_error,
                emlp.invariance_error,
                emlp.tolerance,
                if emlp.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(gp) = &gp {
            println!(
                "WISKI 1-D (m = {}, f32) after {} streamed points: {} of {} values bit-identical to the host's f32 rerun; \
                 vs f64: means {:.3e}, var_f {:.3e}, log p(y) {:.3e} (tolerance {:e}): {}",
                gp.grid,
                gp.n,
                gp.identical_to_host_f32.0,
                gp.identical_to_host_f32.1,
                gp.mean_error_vs_f64,
                gp.var_error_vs_f64,
                gp.lml_error_vs_f64,
                gp.tolerance,
                if gp.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some((chnn_run, chnn)) = &chnn {
            println!(
                "CHNN 2-pendulum (embedded keel chnn export, 3 × 256) for {} RK4 steps: final state \
                 ‖fw − host‖/‖host‖ = {:.3e} (tolerance {:e}): {}; the learned model vs the real pendulum: {:.3e}",
                chnn_run.steps,
                chnn.relative_error,
                chnn.tolerance,
                if chnn.pass { "PASS" } else { "FAIL" },
                chnn.model_error
            );
        }
        if let Some((run, gyro)) = &gyroscope {
            println!(
                "CHNN gyroscope (embedded keel chnn export, 3 × 64) for {} RK4 steps: final state \
                 ‖fw − host‖/‖host‖ = {:.3e} (tolerance {:e}): {}; the learned model vs the real gyroscope: {:.3e}",
                run.steps,
                gyro.relative_error,
                gyro.tolerance,
                if gyro.pass { "PASS" } else { "FAIL" },
                gyro.model_error
            );
        }
        if let Some((run, m)) = &spring {
            println!(
                "EMLPH double spring pendulum (embedded keel emlp export, O(2), 3 × 32) for {} RK4 steps: final state \
                 ‖fw − host‖/‖host‖ = {:.3e} (tolerance {:e}): {}; the learned model vs the real pendulum: {:.3e}",
                run.steps,
                m.relative_error,
                m.tolerance,
                if m.pass { "PASS" } else { "FAIL" },
                m.model_error
            );
        }
        if let Some(bma) = &bma {
            let correct = bma
                .firmware_classes
                .iter()
                .zip(&bma.labels)
                .filter(|(a, b)| a == b)
                .count();
            println!(
                "digits BMA ({} HMC samples, embedded keel bayes export) on {} test digits: firmware classes {:?}, host {:?}; \
                 {} of {} correct; probabilities max |fw − host| = {:.3e} (tolerance {:e}): {}",
                bma.members,
                bma.labels.len(),
                bma.firmware_classes,
                bma.host_classes,
                correct,
                bma.labels.len(),
                bma.max_error,
                bma.tolerance,
                if bma.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(policy) = &policy {
            println!(
                "pendulum swing-up, closed loop (embedded keel rl export), {} control steps: return firmware {:.4}, \
                 host f32 {:.4} ({}), host f64 {:.4}; value monitor V̂(x₀) firmware {:.4}, host f64 {:.4}; \
                 |Δ return|/(1 + |host|) = {:.3e}, |Δ value|/(1 + |host|) = {:.3e}, final state max |Δ| = {:.3e} \
                 (tolerance {:e}): {}",
                policy.steps,
                policy.firmware_return,
                policy.host_f32_return,
                if policy.identical_to_host_f32 {
                    "bit-identical"
                } else {
                    "differs"
                },
                policy.host_f64_return,
                policy.firmware_value0,
                policy.host_f64_value0,
                policy.return_error,
                policy.value_error,
                policy.state_error,
                policy.tolerance,
                if policy.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(a) = &augerino {
            let correct = |c: &[usize]| c.iter().zip(&a.labels).filter(|(x, y)| x == y).count();
            println!(
                "rotated digits, Augerino CNN (embedded keel augerino export), J = {} copies, on {} test digits: \
                 firmware classes {:?}, host f64 {:?}, plain CNN {:?}, labels {:?}; {} of {} correct ({} plain); \
                 {} of {} words bit-identical to the host's f32 rerun; log p max |fw − host f64|/(1 + |host|) = {:.3e} \
                 (tolerance {:e}): {}",
                a.copies,
                a.labels.len(),
                a.firmware_classes,
                a.host_f64_classes,
                a.firmware_cnn_classes,
                a.labels,
                correct(&a.firmware_classes),
                a.labels.len(),
                correct(&a.firmware_cnn_classes),
                a.identical_to_host_f32.0,
                a.identical_to_host_f32.1,
                a.relative_error_vs_f64,
                a.tolerance,
                if a.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(m) = &simplex {
            let correct = m
                .firmware_classes
                .iter()
                .zip(&m.labels)
                .filter(|(a, b)| a == b)
                .count();
            println!(
                "digits, ensemble of simplexes (embedded keel simplex export, {} networks) on {} test digits: \
                 firmware classes {:?}, host f64 {:?}; {} of {} correct; probabilities max |fw − host| = {:.3e} \
                 (tolerance {:e}): {}",
                m.members,
                m.labels.len(),
                m.firmware_classes,
                m.host_classes,
                correct,
                m.labels.len(),
                m.max_error,
                m.tolerance,
                if m.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(m) = &student {
            let correct = m
                .firmware_classes
                .iter()
                .zip(&m.labels)
                .filter(|(a, b)| a == b)
                .count();
            println!(
                "digits, MLP distilled from the simplexes (embedded keel distill export) on {} test digits: \
                 firmware classes {:?}, host {:?}; {} of {} correct; logits max |fw − host|/(1 + |host|) = {:.3e} \
                 (tolerance {:e}): {}",
                m.labels.len(),
                m.firmware_classes,
                m.host_classes,
                correct,
                m.labels.len(),
                m.relative_error,
                m.tolerance,
                if m.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some((r, m)) = &ntk {
            println!(
                "sine network (embedded keel fit export, 1 → 40 → 40 → 1) adapted on board by its linearisation \
                 (NTK GP, σ² = {}) to a new task from {} points: RMS error at {} test inputs, network {:.4}, adapted {:.4}; \
                 {} of {} words bit-identical to the host's f32 rerun; vs the engine's f64 dense posterior: \
                 means {:.3e}, variances {:.3e} (tolerance {:e}): {}",
                r.noise,
                m.points,
                m.tests,
                m.network_rmse,
                m.adapted_rmse,
                m.identical_to_host_f32.0,
                m.identical_to_host_f32.1,
                m.mean_error_vs_engine,
                m.var_error_vs_engine,
                m.tolerance,
                if m.pass { "PASS" } else { "FAIL" }
            );
        }
        if let Some(m) = &wiski_stem {
            println!(
                "WISKI behind a learned stem (embedded keel gp online export, {} inputs → 2 features, m = {}, \
                 resumed from {} points by one f32 refactorisation) on {} held-out rows, each predicted then absorbed: \
                 RMSE before absorbing {:.1}, after {:.1} (target units); {} of {} words bit-identical to the host's \
                 f32 rerun; vs f64: features {:.3e}, means {:.3e}, var_f {:.3e}, log p(y) {:.3e} (tolerance {:e}): {}",
                m.inputs,
                m.nodes,
                m.n0,
                m.rows,
                m.rmse_before,
                m.rmse_after,
                m.identical_to_host_f32.0,
                m.identical_to_host_f32.1,
                m.feature_error_vs_f64,
                m.mean_error_vs_f64,
                m.var_error_vs_f64,
                m.lml_error_vs_f64,
                m.tolerance,
                if m.pass { "PASS" } else { "FAIL" }
            );
        }
        println!(
            "checked {} of {} lines ({}){}: {}",
            checked.len(),
            1 + keel::firmware::MODEL_LINES.len(),
            checked.join(", "),
            if absent.is_empty() {
                String::new()
            } else {
                format!("; not in the log: {}", absent.join(", "))
            },
            if pass { "PASS" } else { "FAIL" }
        );
    }
    Ok(pass)
}
