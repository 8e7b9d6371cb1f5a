//! `keel chnn …`: learning constrained dynamics (CHNN) on the paper's systems.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use keel::chnn::data::{generate, SystemSpec};
use keel::chnn::export::{load, to_bytes, Info};
use keel::chnn::model::ModelKind;
use keel::chnn::train::{evaluate, test_set, train, Net, TrainConfig, Trained};
use keel::error::{Error, Result};
use keel::output::Outputs;
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
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    n_test: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Plot the test error over time (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// The CHNN paper's systems.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SystemArg {
    ChainPendulum,
    CoupledPendulum,
    MagnetPendulum,
    Gyroscope,
    Rotor,
}

/// Learned dynamics in Cartesian coordinates with explicit constraints, and the baselines.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Chnn,
    Clnn,
    Node,
    Hnn,
    Delan,
}

super::values::display_as_typed!(SystemArg, ModelArg);

#[derive(Args)]
pub struct TrainArgs {
    /// System.
    #[arg(long, value_enum)]
    system: SystemArg,
    /// Links of the chain pendulum / bobs of the coupled pendulum.
    #[arg(long)]
    links: Option<usize>,
    /// chnn or clnn (Cartesian coordinates, explicit constraints), or the baselines in
    /// generalised coordinates (link angles, the bobs' spherical angles, Euler angles): node
    /// (Neural ODE), hnn (HNN with a learned M⁻¹(q)) or delan (DeLaN with a learned M(q)).
    #[arg(long, value_enum, default_value = "chnn")]
    model: ModelArg,
    /// Training trajectories (one 5-sample chunk each; the reference's first n of seed 0).
    #[arg(long, default_value_t = 800, value_parser = super::values::at_least_one)]
    n_train: usize,
    /// Test trajectories (seed 2) for the rollout error.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    n_test: usize,
    /// Epochs (cosine schedule over all of them).
    #[arg(long, default_value_t = 2000, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 200, value_parser = super::values::at_least_one)]
    batch: usize,
    /// AdamW base learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Hidden units per layer of the potential MLP.
    #[arg(long, default_value_t = 256, value_parser = super::values::at_least_one)]
    hidden: usize,
    /// Hidden layers of the potential MLP.
    #[arg(long, default_value_t = 3, value_parser = super::values::at_least_one)]
    layers: usize,
    /// Seed of the initialisation and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train: auto, cpu, cuda, cuda:N (the test rollouts are evaluated on the CPU in
    /// f64).
    #[arg(long, default_value = "auto")]
    device: String,
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
    // The system's size (links or bobs) is `--links` here.
    .map_err(|e| super::exit::renamed(e, &["size", "bobs"], "--links"))
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        keel::output::check_plot("--plot", p)?;
    }
    if let Some(p) = &a.export {
        keel::output::check_writable("--export", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let kind: SystemKind = a.system.to_string().parse()?;
    let model = ModelKind::parse(&a.model.to_string())?;
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
        device,
    };
    cfg.validate()?;
    check_n_test(a.n_test)?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
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
            super::report::json(
                &serde_json::json!({"partial": true, "stopped_after": t.history.len(),
                                   "epochs": a.epochs, "checkpoint": path}),
            )?;
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
    // The export, the plot and the printed report only once the evaluation has succeeded.
    let mut outputs = Outputs::new();
    if let Some(p) = &a.export {
        outputs.bytes(p, &to_bytes(&t.net, &t.params, &info)?)?;
    }
    let shown = Shown {
        n_test: a.n_test,
        json: a.json,
        plot: a.plot.as_deref(),
    };
    report(&t.net, &t.params, &info, &shown, Some(&t), outputs)
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
        keel::output::check_plot("--plot", p)?;
    }
    check_n_test(a.n_test)?;
    let saved = load(&a.model)?;
    let shown = Shown {
        n_test: a.n_test,
        json: a.json,
        plot: a.plot.as_deref(),
    };
    report(
        &saved.net,
        &saved.params,
        &saved.info,
        &shown,
        None,
        Outputs::new(),
    )
}

/// Evaluates on `n_test` test trajectories and prints (and plots) the metrics; `trained` adds
/// the training time, loss and curve.
/// What a report evaluates and shows.
struct Shown<'a> {
    /// Test trajectories.
    n_test: usize,
    /// JSON instead of a line of text.
    json: bool,
    /// The plot to write.
    plot: Option<&'a Path>,
}

fn report(
    net: &Net,
    params: &Params,
    info: &Info,
    shown: &Shown,
    trained: Option<&Trained>,
    mut outputs: Outputs,
) -> Result<()> {
    let Shown { n_test, json, plot } = *shown;
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
        outputs.with(p, |tmp| {
            keel::plot::plot_log_panels_and_paths(
                tmp,
                &panels,
                (
                    "Last node, first test trajectory",
                    "x (m)",
                    if up == 1 { "y (m)" } else { "z (m)" },
                    &paths,
                ),
            )
        })?;
    }
    outputs.commit()?;
    if json {
        let mut v = serde_json::json!({
            "system": name, "model": info.model, "n_train": info.n_train, "epochs": info.epochs,
            "rollout_gm_error": e.rollout_gm_error, "energy_error": e.energy_error,
            "chaos_floor": e.chaos_floor, "n_test": n_test, "seed": info.seed,
        });
        if let Some(t) = trained {
            v["train_seconds"] = t.train_seconds.into();
            v["device"] = t.device.to_string().into();
            v["final_loss"] = t.final_loss.into();
            v["partial"] = false.into();
        }
        super::report::json(&v)?;
    } else {
        let training = trained.map_or_else(String::new, |t| {
            format!(
                "; {:.1} s of training on {}, final training loss {:.3e}",
                t.train_seconds, t.device, t.final_loss
            )
        });
        println!(
            "{} on {name} (n_train {}, {} epochs): test rollout error (geometric mean) {:.3e}, energy error {:.3e}, chaos floor {:.3e}{training}",
            info.model, info.n_train, info.epochs, e.rollout_gm_error, e.energy_error, e.chaos_floor,
        );
    }
    Ok(())
}
