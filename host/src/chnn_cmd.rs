//! `keel chnn …`: learning constrained dynamics (CHNN) on the paper's systems.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, test_set, train, TrainConfig};
use keel::error::{Error, Result};
use keel::simulate::SystemKind;

#[derive(Subcommand)]
pub enum ChnnCommand {
    /// Train a learned-dynamics model on trajectories of one of the paper's systems and report
    /// its rollout error on test trajectories.
    Train(TrainArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// chain-pendulum, coupled-pendulum, magnet-pendulum, gyroscope or rotor.
    #[arg(long)]
    system: String,
    /// Links of the chain pendulum / bobs of the coupled pendulum.
    #[arg(long)]
    links: Option<usize>,
    /// chnn or clnn (Cartesian coordinates, explicit constraints), or the baselines in angle
    /// coordinates (planar chain pendulums): node (Neural ODE) or hnn (HNN with a learned
    /// M⁻¹(q)).
    #[arg(long, default_value = "chnn")]
    model: String,
    /// Training trajectories (one 5-sample chunk each; the reference's first n of seed 0).
    #[arg(long, default_value_t = 800)]
    n_train: usize,
    /// Test trajectories (seed 2) for the rollout error.
    #[arg(long, default_value_t = 100)]
    n_test: usize,
    /// Epochs (cosine schedule over all of them).
    #[arg(long, default_value_t = 2000)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// AdamW base learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Hidden units per layer of the potential MLP.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Hidden layers of the potential MLP.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Seed of the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Plot the test error over time (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    checkpoint: crate::checkpoint_args::CheckpointArgs,
}

pub fn run(cmd: &ChnnCommand) -> Result<()> {
    match cmd {
        ChnnCommand::Train(a) => train_cmd(a),
    }
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        keel::output::check_writable("--plot", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let kind: SystemKind = a.system.parse()?;
    let model = ModelKind::parse(&a.model)?;
    let system = SystemSpec {
        kind,
        size: a.links,
    };
    let cfg = TrainConfig {
        system,
        model,
        n_train: a.n_train,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        hidden: a.hidden,
        layers: a.layers,
        seed: a.seed,
        progress: !a.quiet,
        checkpoint: checkpoint.clone(),
    };
    cfg.validate()?;
    if a.n_test == 0 {
        return Err(Error::invalid("--n-test", a.n_test, "must be positive"));
    }
    let data = generate(system, a.n_train, 0)?;
    let t = train(&cfg, &data)?;
    if checkpoint.stop_after.is_some_and(|s| s < a.epochs) {
        eprintln!(
            "keel: stopped after epoch {} of {}; continue with --resume",
            t.history.len(),
            a.epochs
        );
        return Ok(());
    }
    let test = test_set(system, a.n_test)?;
    let e = evaluate(&t.net, &t.params, system, &test)?;
    if let Some(p) = &a.plot {
        let dt = test.trajectories[0].t[1];
        let at = |v: &[f64], scale: f64| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(k, y)| (k as f64 * scale, *y))
                .collect()
        };
        let errors = [(
            format!(
                "{} (mean over {} test trajectories)",
                model.name(),
                a.n_test
            ),
            at(&e.error_curve, dt),
        )];
        let loss = [("training L1 loss".to_string(), at(&t.history, 1.0))];
        keel::plot::plot_log_panels(
            p,
            [
                (
                    "Relative error of test rollouts",
                    "t (s)",
                    "relative error",
                    &errors,
                ),
                ("Training", "epoch", "mean |ẑ − z|", &loss),
            ],
        )?;
    }
    let name = match a.links {
        Some(n) => format!("{}-{n}", kind.name()),
        None => kind.name().to_string(),
    };
    if a.json {
        let v = serde_json::json!({
            "system": name, "model": model.name(), "n_train": a.n_train, "epochs": a.epochs,
            "rollout_gm_error": e.rollout_gm_error, "energy_error": e.energy_error,
            "chaos_floor": e.chaos_floor, "train_seconds": t.train_seconds,
            "final_loss": t.final_loss, "n_test": a.n_test, "seed": a.seed,
        });
        println!("{v}");
    } else {
        println!(
            "{} on {} (n_train {}, {} epochs, {:.1} s): test rollout error (geometric mean) {:.3e}, energy error {:.3e}, chaos floor {:.3e}; final training loss {:.3e}",
            model.name(),
            name,
            a.n_train,
            a.epochs,
            t.train_seconds,
            e.rollout_gm_error,
            e.energy_error,
            e.chaos_floor,
            t.final_loss
        );
    }
    Ok(())
}
