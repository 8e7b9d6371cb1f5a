//! `keel ntk …`: linearized networks (the finite NTK) — a network trained on one task adapts to
//! new tasks from a few points by its linearization's GP posterior, with error bars, without
//! retraining.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use keel::error::Result;
use keel::export::{MlpConfig, OutputKind, Standardization};
use keel::ntk::tasks::{adapt, AdaptConfig, AdaptReport, TaskKind};
use keel::ntk::{CgSettings, Mean, Space};
use keel::output::{check_plot, check_writable, Outputs};
use serde_json::json;

#[derive(Subcommand)]
pub enum NtkCommand {
    /// Train an MLP on one task, then adapt it to new tasks from a few points each by the
    /// linearization's GP posterior (function or parameter space); compare with no adaptation
    /// and with retraining the last layer.
    Adapt(Box<AdaptArgs>),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    /// y = A sin(w x + b) + 0.01·A·ε, A ~ U[0.1, 5], b ~ U[0, 2π], w ~ U[0.5, 2].
    Sine,
    /// y = A x + b + 0.3·ε, A, b ~ U[−3, 3].
    Linear,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SpaceArg {
    /// Solves with the n×n Jacobian kernel (K + σ²I).
    Function,
    /// Solves with the P×P Gauss–Newton matrix (JᵀJ + σ²I).
    Parameter,
}

super::values::display_as_typed!(TaskArg, SpaceArg);

#[derive(Args)]
pub struct AdaptArgs {
    /// The task family.
    #[arg(long, value_enum, default_value = "sine")]
    task: TaskArg,
    /// Where the posterior is computed (the two agree to the solver's tolerance).
    #[arg(long, value_enum, default_value = "function")]
    space: SpaceArg,
    /// Points of each new task the posterior is conditioned on.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    n_adapt: usize,
    /// New tasks.
    #[arg(long, default_value_t = 5, value_parser = super::values::at_least_one)]
    tasks: usize,
    /// Points of the first task the network is trained on.
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    n_train: usize,
    /// Held-out test points per new task.
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    n_test: usize,
    /// Hidden width of the MLP 1→W→W→1 (tanh).
    #[arg(long, default_value_t = 40, value_parser = super::values::at_least_one)]
    hidden: usize,
    /// Training epochs (3 minibatches each; the rate ×0.1 every 500 epochs).
    #[arg(long, default_value_t = 2500, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// SGD learning rate (momentum 0.9).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Use the trained network f(x; θ̂) as the prior mean (default: zero, as the reference's
    /// regression script).
    #[arg(long)]
    bias: bool,
    /// CG's relative-residual tolerance.
    #[arg(long, default_value_t = 1e-8)]
    cg_tol: f64,
    /// CG's iteration cap (a solve that reaches it fails the run).
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    cg_max_iter: usize,
    /// Lanczos steps for the predictive variances.
    #[arg(long, default_value_t = 64, value_parser = super::values::at_least_one)]
    lanczos_rank: usize,
    /// Seed of the tasks, the data and the network.
    #[arg(long, default_value_t = 10)]
    seed: u64,
    /// Plot each task: data, network, last-layer baseline, posterior mean and band (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Export the network trained on the first task for keel-core (`keel.kind = "mlp"`).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: &NtkCommand) -> Result<()> {
    match cmd {
        NtkCommand::Adapt(a) => adapt_cmd(a),
    }
}

fn adapt_cmd(a: &AdaptArgs) -> Result<()> {
    if let Some(p) = &a.export {
        check_writable("--export", p)?;
    }
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let task = match a.task {
        TaskArg::Sine => TaskKind::Sine,
        TaskArg::Linear => TaskKind::Linear,
    };
    let space = match a.space {
        SpaceArg::Function => Space::Function,
        SpaceArg::Parameter => Space::Parameter,
    };
    let cfg = AdaptConfig {
        mean: if a.bias { Mean::Network } else { Mean::Zero },
        n_train: a.n_train,
        n_adapt: a.n_adapt,
        tasks: a.tasks,
        n_test: a.n_test,
        hidden: a.hidden,
        epochs: a.epochs,
        lr: a.lr,
        cg: CgSettings {
            tol: a.cg_tol,
            max_iter: a.cg_max_iter,
        },
        lanczos_rank: a.lanczos_rank,
        grid: if a.plot.is_some() { 200 } else { 0 },
        seed: a.seed,
        ..AdaptConfig::reference(task, space)
    };
    let bar = super::progress::epoch_bar(!a.json, cfg.epochs, format!("ntk {} train", a.task));
    let mut adapting = false;
    let report = adapt(&cfg, &mut |t| {
        if !adapting && t.values.first().map(|v| v.0) == Some("task") {
            adapting = true;
            bar.set_prefix(format!("ntk {} adapt", a.task));
            bar.set_length(t.total as u64);
        }
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if let Some(p) = &a.export {
        let config = MlpConfig {
            sizes: report.net.sizes(),
            activation: "tanh".into(),
            output: OutputKind::Regression,
            input_standardization: false,
            target_standardization: false,
            classes: None,
            features: vec!["x".into()],
        };
        outputs.bytes(
            p,
            &keel::export::mlp_bytes(
                &report.net,
                &report.trained,
                &config,
                &Standardization::default(),
            )?,
        )?;
    }
    if let Some(p) = &a.plot {
        outputs.with(p, |tmp| keel::plot::plot_ntk_tasks(tmp, &report))?;
    }
    outputs.commit()?;
    if a.json {
        return super::report::json(&report_json(a, &report));
    }
    print_report(a, &report);
    Ok(())
}

fn mean_of(report: &AdaptReport, f: impl Fn(&keel::ntk::tasks::TaskReport) -> f64) -> f64 {
    report.tasks.iter().map(f).sum::<f64>() / report.tasks.len().max(1) as f64
}

fn report_json(a: &AdaptArgs, r: &AdaptReport) -> serde_json::Value {
    let tasks: Vec<serde_json::Value> = r
        .tasks
        .iter()
        .map(|t| {
            json!({
                "amplitude": t.task.amplitude,
                "phase": t.task.phase,
                "frequency": if t.task.kind == TaskKind::Sine { json!(t.task.frequency) } else { json!(null) },
                "test_mse_adapted": t.test_mse_adapted,
                "test_mse_unadapted": t.test_mse_unadapted,
                "test_mse_last_layer": t.test_mse_last_layer,
                "mean_coverage_95": t.mean_coverage_95,
                "cg_iterations": t.cg_iterations,
                "cg_relative_residual": t.cg_relative_residual,
                "lanczos_rank": t.lanczos_rank,
                "seconds": t.seconds,
            })
        })
        .collect();
    json!({
        "task": a.task.to_string(),
        "space": a.space.to_string(),
        "mean": if a.bias { "network" } else { "zero" },
        "n_adapt": a.n_adapt,
        "n_train": a.n_train,
        "n_test": a.n_test,
        "seed": a.seed,
        "parameters": r.params,
        "train_mse": r.train_mse,
        "noise": r.noise,
        "train_seconds": r.train_seconds,
        "tasks": tasks,
        "mean_test_mse_adapted": mean_of(r, |t| t.test_mse_adapted),
        "mean_test_mse_unadapted": mean_of(r, |t| t.test_mse_unadapted),
        "mean_test_mse_last_layer": mean_of(r, |t| t.test_mse_last_layer),
        "mean_coverage_95": mean_of(r, |t| t.mean_coverage_95),
    })
}

fn print_report(a: &AdaptArgs, r: &AdaptReport) {
    println!(
        "ntk adapt: {} tasks, MLP 1→{h}→{h}→1 tanh ({} parameters) trained on {} points of task 0 in {:.1} s (MSE {:.2e}, σ² = {:.2e}); {}-space posterior, {} mean, {} points per task",
        a.task,
        r.params,
        a.n_train,
        r.train_seconds,
        r.train_mse,
        r.noise,
        a.space,
        if a.bias { "network" } else { "zero" },
        a.n_adapt,
        h = a.hidden,
    );
    println!("  task  test MSE: adapted  not adapted  last layer   95% coverage  CG its  seconds");
    for (i, t) in r.tasks.iter().enumerate() {
        println!(
            "  {:>4}  {:>17.4}  {:>11.4}  {:>10.4}  {:>13.3}  {:>6}  {:>7.3}",
            i + 1,
            t.test_mse_adapted,
            t.test_mse_unadapted,
            t.test_mse_last_layer,
            t.mean_coverage_95,
            t.cg_iterations,
            t.seconds
        );
    }
    println!(
        "  mean  {:>17.4}  {:>11.4}  {:>10.4}  {:>13.3}",
        mean_of(r, |t| t.test_mse_adapted),
        mean_of(r, |t| t.test_mse_unadapted),
        mean_of(r, |t| t.test_mse_last_layer),
        mean_of(r, |t| t.mean_coverage_95),
    );
    for (what, p) in [("model", &a.export), ("plot", &a.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
}
