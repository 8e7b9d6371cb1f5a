//! `keel gan …`: GANs trained with WGAN-GP, sample re-weighting and probability-ratio clipping
//! (Wu et al., NeurIPS 2020) on the 8-Gaussian ring or on images, and samples from a saved
//! generator.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keel::error::{Error, Result};
use keel::gan::{self, ClipRule, GanConfig, GanData, GanRun, Method, Ring, Sample};
use keel::output::{check_plot, check_writable, Outputs};

use super::values::DtypeArg;

#[derive(Subcommand)]
pub enum GanCommand {
    /// Train a generator, its critic (and for ppo the auxiliary classifier); report mode
    /// coverage and sample quality (ring) or FID and IS on a feature network (images), and the
    /// variance of both losses.
    Train(Box<TrainArgs>),
    /// Draw samples from a generator saved by `keel gan train --export`.
    Sample(SampleArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// ring8 (8 Gaussians on a circle of radius 2, std 0.02), digits (the 8×8 digits that ship
    /// in fixtures/data), or an image FILE: IDX (with --labels), a CIFAR-10 batch (*.bin), or a
    /// CSV (with --image-shape and --target).
    #[arg(long)]
    dataset: String,
    /// The digits file `--dataset digits` reads (a CSV of 8×8 images with a `label` column).
    #[arg(long, default_value = "fixtures/data/digits.csv")]
    digits: PathBuf,
    /// IDX label file for IDX images.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The shape of a CSV's images, CxHxW.
    #[arg(long)]
    image_shape: Option<String>,
    /// A CSV's label column.
    #[arg(long)]
    target: Option<String>,
    /// wgan-gp, reweight (WGAN-GP with the critic's batch-softmax re-weighting of fakes), or
    /// ppo (re-weighting and the probability-ratio clipped generator objective).
    #[arg(long, default_value = "ppo")]
    method: String,
    /// Networks: mlp:WIDTH[xDEPTH], dcgan[:WIDTH] (sides divisible by 4) or resnet[:WIDTH] (the
    /// reference's CIFAR-10 ResNets, sides divisible by 8; with --ct its configuration). Default:
    /// mlp:128x3 for the ring, dcgan:32 for images.
    #[arg(long)]
    model: Option<String>,
    /// Outer iterations (each: the critic steps, then the generator steps).
    #[arg(long, default_value_t = 5000, value_parser = super::values::at_least_one)]
    iterations: usize,
    /// Critic steps per outer iteration.
    #[arg(long, default_value_t = 5, value_parser = super::values::at_least_one)]
    critic_steps: usize,
    /// Generator steps per outer iteration (each of ppo's is one classifier step and one
    /// generator step); the generator's learning rate is --lr over this.
    #[arg(long, default_value_t = 5, value_parser = super::values::at_least_one)]
    generator_steps: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 256, value_parser = super::values::at_least_one)]
    batch: usize,
    /// Latent size.
    #[arg(long, default_value_t = 128, value_parser = super::values::at_least_one)]
    latent: usize,
    /// The critic's Adam learning rate (β = (0, 0.9)), decayed linearly to 0.
    #[arg(long, default_value_t = 1e-4, allow_hyphen_values = true)]
    lr: f64,
    /// ε of the ratio clipping, in (0, 1).
    #[arg(long, default_value_t = 0.4, allow_hyphen_values = true)]
    clip_eps: f64,
    /// Clip by PPO's rule (min of the two surrogates for every sign of the critic score)
    /// instead of the reference code's sign-dependent min/max.
    #[arg(long)]
    ppo_rule: bool,
    /// λ of the gradient penalty.
    #[arg(long, default_value_t = 5.0, allow_hyphen_values = true)]
    lambda_gp: f64,
    /// Add CT-GAN's consistency term (λ₂ = 2, M = 0) with dropout in the critic.
    #[arg(long)]
    ct: bool,
    /// The paper's Figure 1 follows the first generator update of this outer iteration
    /// (default: the middle of the run).
    #[arg(long, value_parser = super::values::at_least_one)]
    curve_at: Option<usize>,
    /// How far the Figure-1 curve goes past the update, in update lengths (1 = θ_new).
    #[arg(long, default_value_t = 4.0, allow_hyphen_values = true)]
    curve_span: f64,
    /// Samples drawn for the final metrics.
    #[arg(long, default_value_t = 2000)]
    eval_samples: usize,
    /// Window of the losses' rolling variance, in outer iterations.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    loss_window: usize,
    /// Seed of initialisation, batches and every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Network precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where the networks train: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Write a training checkpoint here every --checkpoint-every outer iterations (atomically).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Outer iterations between checkpoints.
    #[arg(long, default_value_t = 500, value_parser = super::values::at_least_one)]
    checkpoint_every: usize,
    /// Continue from --checkpoint if it exists (same configuration required).
    #[arg(long)]
    resume: bool,
    /// Stop after this many outer iterations (checkpointing first); continue with --resume.
    #[arg(long, value_parser = super::values::at_least_one)]
    stop_after: Option<usize>,
    /// Save the generator (for keel gan sample and keel distill --synthetic).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Plot (PNG): samples along training (ring) or a sample grid (images), both losses and
    /// their rolling variance; for ppo also the paper's Figure 1 (the objectives along the last
    /// update) beside it, in FILE-surrogate.png.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SampleArgs {
    /// A generator written by keel gan train --export.
    #[arg(long)]
    model: PathBuf,
    /// Samples to draw.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Seed of the latent draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output: a CSV (one sample per row, in the data's units) or, for images, a PNG grid.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `keel gan …`.
pub fn run(cmd: &GanCommand) -> Result<()> {
    match cmd {
        GanCommand::Train(a) => train(a),
        GanCommand::Sample(a) => sample(a),
    }
}

/// The data `--dataset` names.
fn dataset(a: &TrainArgs) -> Result<GanData> {
    use keel::images::{csv::read_csv_images, ImageShape};
    let images = |name: String, set| Ok(GanData::Images { name, set });
    match a.dataset.as_str() {
        "ring8" => return Ok(GanData::Ring(Ring::default())),
        "digits" => {
            let set = read_csv_images(&a.digits, "label", true, ImageShape::new(1, 8, 8)?)?;
            return images("digits".into(), set);
        }
        _ => {}
    }
    let path = PathBuf::from(&a.dataset);
    if !path.exists() {
        return Err(Error::invalid(
            "--dataset",
            &a.dataset,
            "neither ring8, digits nor an existing file",
        ));
    }
    let name = path
        .file_name()
        .map_or_else(|| a.dataset.clone(), |n| n.to_string_lossy().into_owned());
    let set = super::values::read_images(
        &path,
        a.labels.as_deref(),
        a.image_shape.as_deref(),
        a.target.as_deref(),
        true,
    )?;
    images(name, set)
}

/// `FILE.png` → `FILE-surrogate.png`.
fn curve_path(plot: &Path) -> PathBuf {
    let stem = plot
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = plot
        .extension()
        .map_or_else(|| "png".to_string(), |e| e.to_string_lossy().into_owned());
    plot.with_file_name(format!("{stem}-surrogate.{ext}"))
}

fn train(a: &TrainArgs) -> Result<()> {
    let method = Method::parse(&a.method).map_err(|e| flag("--method", e))?;
    if !(a.clip_eps > 0.0 && a.clip_eps < 1.0) {
        return Err(Error::invalid(
            "--clip-eps",
            a.clip_eps,
            "ε must lie in (0, 1)",
        ));
    }
    if a.eval_samples < 2 {
        return Err(Error::invalid(
            "--eval-samples",
            a.eval_samples,
            "the metrics need at least 2 samples",
        ));
    }
    for (name, p) in [("--export", &a.export)] {
        if let Some(p) = p {
            check_writable(name, p)?;
        }
    }
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
        if method == Method::Ppo {
            check_plot("--plot", &curve_path(p))?;
        }
    }
    super::checkpoint::check(a.checkpoint.as_deref(), a.resume, a.stop_after)?;
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let data = dataset(a)?;
    let mut cfg = GanConfig::new(data, method);
    if let Some(m) = &a.model {
        cfg.arch = gan::Arch::parse(m).map_err(|e| flag("--model", e))?;
    }
    cfg.iterations = a.iterations;
    cfg.critic_steps = a.critic_steps;
    cfg.generator_steps = a.generator_steps;
    cfg.batch = a.batch;
    cfg.latent = a.latent;
    cfg.lr = a.lr;
    cfg.clip_eps = a.clip_eps;
    cfg.clip_rule = if a.ppo_rule {
        ClipRule::Ppo
    } else {
        ClipRule::Code
    };
    cfg.lambda_gp = a.lambda_gp;
    cfg.consistency = a.ct;
    cfg.eval_samples = a.eval_samples;
    cfg.curve_at = a.curve_at;
    cfg.curve_span = a.curve_span;
    cfg.loss_window = a.loss_window;
    cfg.seed = a.seed;
    cfg.dtype = a.dtype.into();
    cfg.device = device;
    cfg.checkpoint = keel::checkpoint::Options {
        path: a.checkpoint.clone(),
        every: a.checkpoint_every,
        resume: a.resume,
        stop_after: a.stop_after,
    };
    cfg.validate().map_err(as_flag)?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(
        !a.json,
        cfg.iterations,
        format!("keel gan {} {}", method.name(), cfg.data.name()),
    );
    let run = gan::train(&cfg, &mut |t| super::progress::show(&bar, t)).map_err(as_flag)?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if !run.stopped_early {
        if let Some(p) = &a.export {
            outputs.bytes(p, &run.generator.to_bytes()?)?;
        }
        if let Some(p) = &a.plot {
            outputs.with(p, |tmp| plot(tmp, &cfg, &run))?;
            if let Some(c) = &run.report.surrogate_curve {
                outputs.with(&curve_path(p), |tmp| {
                    keel::plot::plot_surrogate_curve(tmp, &c.t, &c.surrogate, &c.plain)
                })?;
            }
        }
    }
    outputs.commit()?;
    let r = &run.report;
    if a.json {
        return super::report::json(r);
    }
    if run.stopped_early {
        println!(
            "stopped after {} of {} outer iterations; continue with --resume",
            run.critic_losses.len(),
            r.iterations
        );
        return Ok(());
    }
    println!(
        "{} on {} ({}): {} outer iterations of {}+{} steps, batch {}, {:.1} s on {}",
        r.method.name(),
        r.dataset,
        r.model,
        r.iterations,
        r.critic_steps,
        r.generator_steps,
        r.batch,
        r.train_seconds,
        r.device
    );
    if let (Some(m), Some(q)) = (r.modes_covered, r.high_quality_fraction) {
        println!("  modes covered {m} of 8, high-quality samples {q:.4}");
    }
    if let (Some(f), Some(f0)) = (r.fid, r.fid_real) {
        println!(
            "  FID {f:.3} (real vs real {f0:.3}), IS {:.3}, on a feature network of test accuracy {:.3}",
            r.inception_score.unwrap_or(f64::NAN),
            r.feature_accuracy.unwrap_or(f64::NAN)
        );
    }
    println!(
        "  loss variance (window {}): critic {:.4e}, generator {:.4e}",
        r.loss_window, r.critic_loss_var, r.generator_loss_var
    );
    for (what, p) in [("model", &a.export), ("plot", &a.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}

/// A configuration setting's error as its flag's (`clip_eps` → `--clip-eps`).
fn as_flag(e: Error) -> Error {
    match e {
        Error::InvalidInput {
            setting,
            value,
            reason,
        } if !setting.starts_with("--") && !setting.contains(' ') => Error::InvalidInput {
            setting: format!("--{}", setting.replace('_', "-")),
            value,
            reason,
        },
        other => other,
    }
}

fn flag(name: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput { value, reason, .. } => Error::InvalidInput {
            setting: name.into(),
            value,
            reason,
        },
        other => other,
    }
}

fn plot(path: &Path, cfg: &GanConfig, run: &GanRun) -> Result<()> {
    let losses = gan::variance::GanLossSeries {
        iterations: (1..=run.critic_losses.len()).collect(),
        critic: run.critic_losses.clone(),
        generator: run.generator_losses.clone(),
        window: cfg.loss_window.min(run.critic_losses.len()).max(1),
    };
    match (&cfg.data, cfg.data.sample()) {
        (GanData::Ring(ring), _) => {
            keel::plot::plot_gan_ring(path, &run.snapshots, &ring.centres(), &losses)
        }
        (_, Sample::Image(s)) => keel::plot::plot_gan_images(
            path,
            &run.samples,
            s.channels,
            s.height,
            s.width,
            8,
            Some(&losses),
        ),
        (_, Sample::Vector(_)) => Ok(()),
    }
}

fn sample(a: &SampleArgs) -> Result<()> {
    if a.count == 0 || a.count > gan::export::MAX_SAMPLES {
        return Err(Error::invalid(
            "--count",
            a.count,
            format!("draw between 1 and {}", gan::export::MAX_SAMPLES),
        ));
    }
    let png = a.out.extension().is_some_and(|e| e == "png");
    if png {
        check_plot("--out", &a.out)?;
    } else {
        check_writable("--out", &a.out)?;
    }
    let g = gan::export::load(&a.model)?;
    if a.count.saturating_mul(g.sample.numel()) > gan::export::MAX_VALUES {
        return Err(Error::invalid(
            "--count",
            a.count,
            format!(
                "{} numbers per sample: at most {} samples",
                g.sample.numel(),
                gan::export::MAX_VALUES / g.sample.numel().max(1)
            ),
        ));
    }
    let mut outputs = Outputs::new();
    if png {
        let Sample::Image(s) = g.sample else {
            return Err(Error::invalid(
                "--out",
                a.out.display(),
                "a PNG grid needs an image generator; write samples of vectors to a CSV",
            ));
        };
        let mut rng = keel_core::random::Xoshiro256PlusPlus::seed_from_u64(a.seed);
        let unit = g.sample_unit(a.count, &mut rng)?;
        let cols = (a.count as f64).sqrt().ceil() as usize;
        outputs.with(&a.out, |tmp| {
            keel::plot::plot_gan_images(tmp, &unit, s.channels, s.height, s.width, cols, None)
        })?;
    } else {
        let rows = g.sample(a.count, a.seed)?;
        let d = g.sample.numel();
        let header: Vec<String> = match g.sample {
            Sample::Vector(_) => (0..d).map(|i| format!("x{i}")).collect(),
            Sample::Image(_) => (0..d).map(|i| format!("pixel{i}")).collect(),
        };
        let mut text = header.join(",");
        text.push('\n');
        for row in rows.chunks_exact(d) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        outputs.bytes(&a.out, text.as_bytes())?;
    }
    outputs.commit()?;
    println!(
        "{} samples of a {} generator ({}, {}) → {}",
        a.count,
        g.arch.spec(),
        g.method,
        g.dataset,
        a.out.display()
    );
    Ok(())
}
