//! `keel chnn …`: learning constrained dynamics (CHNN) on the paper's systems.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::export::{load, save, Info};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, test_set, train, Net, TrainConfig, Trained};
use keel::error::{Error, Result};
use keel::params::Params;
use keel::simulate::SystemKind;

#[derive(Subcommand)]
pub enum ChnnCommand {
    /// Train a learned-dynamics model on trajectories of one of the paper's systems and report
    /// its rollout error on test trajectories.
    Train(TrainArgs),
    /// Evaluate a saved model (`train --export`) on test trajectories of its system.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// A model written by `keel chnn train --export`.
    #[arg(long)]
    model: PathBuf,
    /// Test trajectories (seed 2).
    #[arg(long, default_value_t = 100)]
    n_test: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Plot the test error over time (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
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
    /// Plot the test error over time and the training loss (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Save the trained model here (safetensors; CHNN and CLNN files load in keel-core).
    #[arg(long)]
    export: Option<PathBuf>,
    #[command(flatten)]
    checkpoint: super::checkpoint::CheckpointArgs,
}

pub fn run(cmd: &ChnnCommand) -> Result<()> {
    match cmd {
        ChnnCommand::Train(a) => train_cmd(a),
        ChnnCommand::Eval(a) => eval_cmd(a),
    }
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    for (flag, path) in [("--plot", &a.plot), ("--export", &a.export)] {
        if let Some(p) = path {
            keel::output::check_writable(flag, p)?;
        }
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
        checkpoint: checkpoint.clone(),
    };
    cfg.validate()?;
    check_n_test(a.n_test)?;
    let data = generate(system, a.n_train, 0)?;
    let bar = super::progress::epoch_bar(
        !a.quiet,
        cfg.epochs,
        format!("{} {}", cfg.model.name(), cfg.system.kind.name()),
    );
    let t = train(&cfg, &data, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    // One loss per epoch done, those before a resumed checkpoint included.
    if t.history.len() < a.epochs {
        if a.json {
            let path = checkpoint.path.as_deref().map(|p| p.display().to_string());
            println!(
                "{}",
                serde_json::json!({"partial": true, "stopped_after": t.history.len(),
                                   "epochs": a.epochs, "checkpoint": path})
            );
        } else {
            eprintln!(
                "keel: stopped after epoch {} of {}; continue with --resume",
                t.history.len(),
                a.epochs
            );
        }
        return Ok(());
    }
    let info = Info {
        model: model.name().into(),
        system: kind.name().into(),
        links: a.links,
        hidden: a.hidden,
        layers: a.layers,
        n_train: a.n_train,
        epochs: a.epochs,
        seed: a.seed,
        dt: data.chunks[0].t[1] - data.chunks[0].t[0],
    };
    if let Some(p) = &a.export {
        save(p, &t.net, &t.params, &info)?;
    }
    report(
        &t.net,
        &t.params,
        &info,
        a.n_test,
        a.json,
        a.plot.as_deref(),
        Some(&t),
    )
}

/// Checked before any work (the test set itself checks again).
fn check_n_test(n: usize) -> Result<()> {
    let max = keel::chnn::data::MAX_TRAJECTORIES;
    if n == 0 || n > max {
        return Err(Error::invalid(
            "--n-test",
            n,
            format!("between 1 and {max} trajectories"),
        ));
    }
    Ok(())
}

fn eval_cmd(a: &EvalArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        keel::output::check_writable("--plot", p)?;
    }
    check_n_test(a.n_test)?;
    let saved = load(&a.model)?;
    report(
        &saved.net,
        &saved.params,
        &saved.info,
        a.n_test,
        a.json,
        a.plot.as_deref(),
        None,
    )
}

/// Evaluates on `n_test` test trajectories and prints (and plots) the metrics; `trained` adds
/// the training time, loss and curve.
fn report(
    net: &Net,
    params: &Params,
    info: &Info,
    n_test: usize,
    json: bool,
    plot: Option<&Path>,
    trained: Option<&Trained>,
) -> Result<()> {
    let system = info.spec()?;
    let test = test_set(system, n_test)?;
    let e = evaluate(net, params, system, &test)?;
    let name = match info.links {
        Some(n) => format!("{}-{n}", info.system),
        None => info.system.clone(),
    };
    if let Some(p) = plot {
        let dt = test.trajectories[0].t[1];
        let at = |v: &[f64], scale: f64| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(k, y)| (k as f64 * scale, *y))
                .collect()
        };
        // From the first step on: at t = 0 both start from the same state.
        let errors = [(
            format!("{} (mean over {n_test} test trajectories)", info.model),
            at(&e.error_curve, dt).split_off(1),
        )];
        let loss = [(
            "training L1 loss".to_string(),
            trained.map_or_else(Vec::new, |t| at(&t.history, 1.0)),
        )];
        // The last node's path in the first two coordinates: the truth and the model.
        // (x, y) in the plane, the side view (x, z) in 3-D.
        let (d, up) = if info.system == "chain-pendulum" {
            (2, 1)
        } else {
            (3, 2)
        };
        let nd = e.first_truth[0].len() / 2;
        let xy = |zs: &[Vec<f64>]| -> Vec<(f64, f64)> {
            zs.iter().map(|z| (z[nd - d], z[nd - d + up])).collect()
        };
        let paths = [
            ("truth".to_string(), xy(&e.first_truth)),
            (info.model.clone(), xy(&e.first_rollout)),
        ];
        let mut panels: Vec<keel::plot::Panel<'_>> = vec![(
            "Relative error of test rollouts",
            "t (s)",
            "relative error",
            &errors,
        )];
        if trained.is_some() {
            panels.push(("Training", "epoch", "mean |ẑ − z|", &loss));
        }
        keel::plot::plot_log_panels_and_paths(
            p,
            &panels,
            (
                "Last node, first test trajectory",
                "x (m)",
                if up == 1 { "y (m)" } else { "z (m)" },
                &paths,
            ),
        )?;
    }
    if json {
        let mut v = serde_json::json!({
            "system": name, "model": info.model, "n_train": info.n_train, "epochs": info.epochs,
            "rollout_gm_error": e.rollout_gm_error, "energy_error": e.energy_error,
            "chaos_floor": e.chaos_floor, "n_test": n_test, "seed": info.seed,
        });
        if let Some(t) = trained {
            v["train_seconds"] = t.train_seconds.into();
            v["final_loss"] = t.final_loss.into();
            v["partial"] = false.into();
        }
        println!("{v}");
    } else {
        let training = trained.map_or_else(String::new, |t| {
            format!(
                "; {:.1} s of training, final training loss {:.3e}",
                t.train_seconds, t.final_loss
            )
        });
        println!(
            "{} on {name} (n_train {}, {} epochs): test rollout error (geometric mean) {:.3e}, energy error {:.3e}, chaos floor {:.3e}{training}",
            info.model, info.n_train, info.epochs, e.rollout_gm_error, e.energy_error, e.chaos_floor,
        );
    }
    Ok(())
}
