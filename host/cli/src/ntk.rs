//! `keel ntk …`: linearized networks (the finite NTK) — a network trained on one task adapts to
//! new tasks from a few points by its linearization's GP posterior, with error bars, without
//! retraining.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use keel::error::Result;
use keel::export::{MlpConfig, OutputKind, Standardization};
use keel::ntk::tasks::{adapt, AdaptConfig, AdaptReport, TaskKind};
use keel::ntk::{CgSettings, Mean, Metrics, Space};
use keel::output::{check_plot, check_writable, Outputs};
use serde_json::json;

#[derive(Subcommand)]
pub enum NtkCommand {
    /// Train an MLP on one task, then adapt it to new tasks from a few points each by the
    /// linearization's GP posterior (function or parameter space); compare with no adaptation
    /// and with retraining the last layer.
    Adapt(Box<AdaptArgs>),
    /// Time the CG solves of both spaces as the number of points grows (the reference's
    /// 803,601-parameter MLP 5→200→2000→200→1, SiLU for its ELU), and say where CG stops
    /// converging.
    Scaling(ScalingArgs),
    /// Train a CNN on half of an image set, then fit its linearization to a few labelled
    /// images of the other half moved into a shifted domain (MAP, Laplace, mean-field VI);
    /// compare with no adaptation and with retraining the output layer.
    Classify(Box<ClassifyArgs>),
}

#[derive(Args)]
pub struct ClassifyArgs {
    /// The images: a CSV table (with --image-shape and --target), IDX images (with --labels)
    /// or a CIFAR-10 batch (*.bin).
    #[arg(long)]
    data: PathBuf,
    /// The IDX labels file of IDX images.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A CSV's image shape, CxHxW.
    #[arg(long)]
    image_shape: Option<String>,
    /// A CSV's label column.
    #[arg(long)]
    target: Option<String>,
    /// The CNN's layers (as `keel fit --layers`; the output layer is added).
    #[arg(long, default_value = "c16,m2,c32,g")]
    layers: String,
    /// Epochs of training on the source domain (Adam).
    #[arg(long, default_value_t = 15, value_parser = super::values::at_least_one)]
    epochs: usize,
    /// Adam's learning rate on the source domain.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Minibatch size on the source domain.
    #[arg(long, default_value_t = 64, value_parser = super::values::at_least_one)]
    batch_size: usize,
    /// The target domain: a quarter turn anticlockwise, a left–right mirror, or none.
    #[arg(long, value_enum, default_value = "rotate90")]
    shift: ShiftArg,
    /// Labelled target-domain images the linearization is fitted to.
    #[arg(long, default_value_t = 200, value_parser = super::values::at_least_one)]
    n_adapt: usize,
    /// Fits to compare, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "last-layer,map,laplace,vi"
    )]
    inference: Vec<InferenceArg>,
    /// Epochs of the linearized fit (AMSGrad; the reference's 10 are of CIFAR-10's 391
    /// minibatches).
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    adapt_epochs: usize,
    /// Its learning rate (the reference's 0.1 is for those 3,910 steps).
    #[arg(long, default_value_t = 0.01)]
    adapt_lr: f64,
    /// Its minibatch size.
    #[arg(long, default_value_t = 128, value_parser = super::values::at_least_one)]
    adapt_batch_size: usize,
    /// wd of the MAP penalty wd·‖θ‖ and of the VI prior N(0, (1/wd)²).
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Offset the linear model by the network, f(x; θ̂) + J(x)(θ − θ̂) (default: J(x)θ, as the
    /// reference without --bias).
    #[arg(long)]
    bias: bool,
    /// Draws averaged by the Laplace and VI predictives.
    #[arg(long, default_value_t = 30, value_parser = super::values::at_least_one)]
    samples: usize,
    /// Lanczos steps of the Laplace approximation (the top half of the Ritz pairs are kept).
    #[arg(long, default_value_t = 30, value_parser = super::values::at_least_one)]
    lanczos_steps: usize,
    /// The Laplace approximation's prior precision (the reference's jitter, 1).
    #[arg(long, default_value_t = 1.0)]
    prior_precision: f64,
    /// Seed of the split, the network and the fits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A reliability diagram of every method on the target test images (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShiftArg {
    /// A quarter turn anticlockwise (a camera mounted on its side).
    Rotate90,
    /// Left–right mirror.
    Mirror,
    /// No shift.
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InferenceArg {
    /// Retrain the output layer alone (the reference's baseline).
    LastLayer,
    /// The linearized model's MAP weights.
    Map,
    /// The MAP with a low-rank Laplace approximation.
    Laplace,
    /// Mean-field variational inference.
    Vi,
}

#[derive(Args)]
pub struct ScalingArgs {
    /// Numbers of points, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "300,1000,3000,10000,30000"
    )]
    n: Vec<usize>,
    /// Layer widths, comma-separated (input first, one output).
    #[arg(long, value_delimiter = ',', default_value = "5,200,2000,200,1")]
    sizes: Vec<usize>,
    /// Spaces to time, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "function,parameter"
    )]
    spaces: Vec<SpaceArg>,
    /// Noise variance σ².
    #[arg(long, default_value_t = 0.01)]
    noise: f64,
    /// CG's relative-residual tolerance (the reference's evaluation tolerance).
    #[arg(long, default_value_t = 0.01)]
    cg_tol: f64,
    /// CG's iteration cap (a solve that reaches it is reported as not converged).
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    cg_max_iter: usize,
    /// Precision of the network's products (CG runs in f64).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: super::values::DtypeArg,
    /// Seed of the network and the data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    /// y = A sin(w x + b) + 0.01·A·ε, A ~ U[0.1, 5], b ~ U[0, 2π], w ~ U[0.5, 2].
    Sine,
    /// y = A x + b + 0.3·ε, A, b ~ U[−3, 3].
    Linear,
    /// A smooth 2-D field that drifts between two years (the malaria experiment's shape):
    /// MLP 2→500→500→2 with a heteroscedastic head, adapted to year 2.
    Spatial,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SpaceArg {
    /// Solves with the n×n Jacobian kernel (K + σ²I).
    Function,
    /// Solves with the P×P Gauss–Newton matrix (JᵀJ + σ²I).
    Parameter,
}

super::values::display_as_typed!(TaskArg, SpaceArg, ShiftArg, InferenceArg);

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
    /// Points of the first task (year) the network is trained on [default: 10; spatial 2000].
    #[arg(long, value_parser = super::values::at_least_one)]
    n_train: Option<usize>,
    /// Held-out test points per new task, apart from the adaptation points [default: 1000;
    /// spatial 5000].
    #[arg(long, value_parser = super::values::at_least_one)]
    n_test: Option<usize>,
    /// Hidden width of the two tanh layers [default: 40; spatial 500].
    #[arg(long, value_parser = super::values::at_least_one)]
    hidden: Option<usize>,
    /// Training epochs [default: 2500 of 3 minibatches, ×0.1 every 500; spatial 500 of 10,
    /// ×0.1 every 100].
    #[arg(long, value_parser = super::values::at_least_one)]
    epochs: Option<usize>,
    /// SGD learning rate (momentum 0.9; spatial: none).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Use the trained network f(x; θ̂) as the prior mean (default: zero, as the reference's
    /// regression script).
    #[arg(long)]
    bias: bool,
    /// The GP's noise variance σ² [default: max(1e-3, training MSE); spatial: GPyTorch's
    /// untouched softplus(0) + 1e-4 ≈ 0.6932, as the reference].
    #[arg(long)]
    noise: Option<f64>,
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
        NtkCommand::Scaling(a) => scaling_cmd(a),
        NtkCommand::Classify(a) => classify_cmd(a),
    }
}

fn classify_cmd(a: &ClassifyArgs) -> Result<()> {
    use keel::ntk::classify::{classify, ClassifyConfig, LinearizedSettings, Method, Shift};
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        return Err(keel::error::Error::invalid(
            "--lr",
            a.lr,
            "must be positive and finite",
        ));
    }
    let set = super::values::read_images(
        &a.data,
        a.labels.as_deref(),
        a.image_shape.as_deref(),
        a.target.as_deref(),
        true,
    )?;
    let shape = [set.shape.channels, set.shape.height, set.shape.width];
    let spec = super::values::cnn_layers(&a.layers, shape, set.classes())?;
    let cfg = ClassifyConfig {
        spec,
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        shift: match a.shift {
            ShiftArg::Rotate90 => Shift::Rotate90,
            ShiftArg::Mirror => Shift::Mirror,
            ShiftArg::None => Shift::None,
        },
        n_adapt: a.n_adapt,
        methods: a
            .inference
            .iter()
            .map(|m| match m {
                InferenceArg::LastLayer => Method::LastLayer,
                InferenceArg::Map => Method::Map,
                InferenceArg::Laplace => Method::Laplace,
                InferenceArg::Vi => Method::Vi,
            })
            .collect(),
        linearized: LinearizedSettings {
            epochs: a.adapt_epochs,
            batch_size: a.adapt_batch_size,
            lr: a.adapt_lr,
            weight_decay: a.weight_decay,
            bias: a.bias,
            samples: a.samples,
            lanczos_steps: a.lanczos_steps,
            prior_precision: a.prior_precision,
            seed: a.seed,
        },
        seed: a.seed,
    };
    cfg.linearized.check()?;
    let bar = super::progress::epoch_bar(!a.json, cfg.epochs, "ntk classify train".into());
    let mut adapting = false;
    let report = classify(&cfg, &set, &mut |t| {
        if !adapting && t.values.first().map(|v| v.0) == Some("method") {
            adapting = true;
            bar.set_prefix("ntk classify adapt");
            bar.set_length(t.total as u64);
        }
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if let Some(p) = &a.plot {
        let series: Vec<(String, Vec<(f64, f64)>)> = report
            .methods
            .iter()
            .map(|m| {
                (
                    format!("{} (ECE {:.3})", m.method, m.ece),
                    m.reliability.iter().map(|&(c, acc, _)| (c, acc)).collect(),
                )
            })
            .collect();
        let title = format!(
            "linearized CNN, {} digits, {} adaptation images",
            report.shift, report.n_adapt
        );
        outputs.with(p, |tmp| keel::plot::plot_reliability(tmp, &series, &title))?;
    }
    outputs.commit()?;
    if a.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| keel::error::Error::failed(e.to_string(), ""))?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("bias".into(), json!(a.bias));
            m.insert("seed".into(), json!(a.seed));
            m.insert("layers".into(), json!(a.layers));
        }
        return super::report::json(&v);
    }
    println!(
        "ntk classify: CNN {} ({} parameters) trained on {} images in {:.1} s (source test accuracy {:.3}); target domain {}: {} adaptation images, {} test images; linear model {}",
        a.layers,
        report.params,
        report.n_train,
        report.train_seconds,
        report.source_test_accuracy,
        report.shift,
        report.n_adapt,
        report.n_test,
        if a.bias { "f(x; θ̂) + J(x)(θ − θ̂)" } else { "J(x)θ" },
    );
    println!("  {:>11}  accuracy     NLL     ECE  seconds", "method");
    for m in &report.methods {
        println!(
            "  {:>11}  {:>8.3}  {:>6.3}  {:>6.3}  {:>7.2}",
            m.method, m.test_accuracy, m.test_nll, m.ece, m.seconds
        );
    }
    if let Some(p) = &a.plot {
        println!("  plot: {}", p.display());
    }
    Ok(())
}

fn adapt_cmd(a: &AdaptArgs) -> Result<()> {
    if let Some(p) = &a.export {
        check_writable("--export", p)?;
    }
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let task = match a.task {
        TaskArg::Linear => TaskKind::Linear,
        _ => TaskKind::Sine,
    };
    let space = match a.space {
        SpaceArg::Function => Space::Function,
        SpaceArg::Parameter => Space::Parameter,
    };
    if a.task == TaskArg::Spatial {
        return spatial_cmd(a, space);
    }
    let reference = AdaptConfig::reference(task, space);
    let cfg = AdaptConfig {
        mean: if a.bias { Mean::Network } else { Mean::Zero },
        n_train: a.n_train.unwrap_or(reference.n_train),
        n_adapt: a.n_adapt,
        tasks: a.tasks,
        n_test: a.n_test.unwrap_or(reference.n_test),
        hidden: a.hidden.unwrap_or(reference.hidden),
        epochs: a.epochs.unwrap_or(reference.epochs),
        lr: a.lr,
        cg: CgSettings {
            tol: a.cg_tol,
            max_iter: a.cg_max_iter,
        },
        lanczos_rank: a.lanczos_rank,
        grid: if a.plot.is_some() { 200 } else { 0 },
        noise: a.noise,
        seed: a.seed,
        ..reference
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

/// One task's metrics as JSON fields, merged into `extra`.
fn metrics_json(
    m: &Metrics,
    mut extra: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    for (k, v) in [
        ("test_mse_adapted", json!(m.test_mse_adapted)),
        ("test_mse_unadapted", json!(m.test_mse_unadapted)),
        ("test_mse_last_layer", json!(m.test_mse_last_layer)),
        ("mean_coverage_95", json!(m.mean_coverage_95)),
        ("cg_iterations", json!(m.cg_iterations)),
        ("cg_relative_residual", json!(m.cg_relative_residual)),
        ("lanczos_rank", json!(m.lanczos_rank)),
        ("seconds", json!(m.seconds)),
    ] {
        extra.insert(k.to_string(), v);
    }
    serde_json::Value::Object(extra)
}

/// The report's common fields: the tasks and the means of their metrics over them.
fn summary_json(all: &[&Metrics], tasks: Vec<serde_json::Value>) -> serde_json::Value {
    let mean = |f: fn(&Metrics) -> f64| Metrics::mean(all.iter().copied(), f);
    json!({
        "tasks": tasks,
        "mean_test_mse_adapted": mean(|m| m.test_mse_adapted),
        "mean_test_mse_unadapted": mean(|m| m.test_mse_unadapted),
        "mean_test_mse_last_layer": mean(|m| m.test_mse_last_layer),
        "mean_coverage_95": mean(|m| m.mean_coverage_95),
    })
}

/// `a`'s fields with `b`'s added.
fn merged(a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    match (a, b) {
        (serde_json::Value::Object(mut a), serde_json::Value::Object(b)) => {
            a.extend(b);
            serde_json::Value::Object(a)
        }
        (a, _) => a,
    }
}

/// The per-task table and its mean row.
fn print_table(label: &str, all: &[&Metrics]) {
    let w = label.len().max(4);
    println!(
        "  {label:>w$}  test MSE: adapted  not adapted  last layer   95% coverage  CG its  seconds"
    );
    for (i, m) in all.iter().enumerate() {
        println!(
            "  {:>w$}  {:>17.4}  {:>11.4}  {:>10.4}  {:>13.3}  {:>6}  {:>7.3}",
            i + 1,
            m.test_mse_adapted,
            m.test_mse_unadapted,
            m.test_mse_last_layer,
            m.mean_coverage_95,
            m.cg_iterations,
            m.seconds
        );
    }
    let mean = |f: fn(&Metrics) -> f64| Metrics::mean(all.iter().copied(), f);
    println!(
        "  {:>w$}  {:>17.4}  {:>11.4}  {:>10.4}  {:>13.3}",
        "mean",
        mean(|m| m.test_mse_adapted),
        mean(|m| m.test_mse_unadapted),
        mean(|m| m.test_mse_last_layer),
        mean(|m| m.mean_coverage_95),
    );
}

fn report_json(a: &AdaptArgs, r: &AdaptReport) -> serde_json::Value {
    let tasks = r
        .tasks
        .iter()
        .map(|t| {
            let mut task = serde_json::Map::new();
            task.insert("amplitude".into(), json!(t.task.amplitude));
            task.insert("phase".into(), json!(t.task.phase));
            let frequency = (t.task.kind == TaskKind::Sine).then_some(t.task.frequency);
            task.insert("frequency".into(), json!(frequency));
            metrics_json(&t.metrics, task)
        })
        .collect();
    let all: Vec<&Metrics> = r.tasks.iter().map(|t| &t.metrics).collect();
    merged(
        json!({
            "task": a.task.to_string(),
            "space": a.space.to_string(),
            "mean": if a.bias { "network" } else { "zero" },
            "n_adapt": a.n_adapt,
            "n_train": r.config.n_train,
            "n_test": r.config.n_test,
            "seed": a.seed,
            "parameters": r.params,
            "train_mse": r.train_mse,
            "noise": r.noise,
            "train_seconds": r.train_seconds,
        }),
        summary_json(&all, tasks),
    )
}

fn print_report(a: &AdaptArgs, r: &AdaptReport) {
    println!(
        "ntk adapt: {} tasks, MLP 1→{h}→{h}→1 tanh ({} parameters) trained on {} points of task 0 in {:.1} s (MSE {:.2e}, σ² = {:.2e}); {}-space posterior, {} mean, {} points per task",
        a.task,
        r.params,
        r.config.n_train,
        r.train_seconds,
        r.train_mse,
        r.noise,
        a.space,
        if a.bias { "network" } else { "zero" },
        a.n_adapt,
        h = r.config.hidden,
    );
    let all: Vec<&Metrics> = r.tasks.iter().map(|t| &t.metrics).collect();
    print_table("task", &all);
    for (what, p) in [("model", &a.export), ("plot", &a.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
}

fn spatial_cmd(a: &AdaptArgs, space: Space) -> Result<()> {
    use keel::ntk::spatial::{run, SpatialConfig};
    if a.export.is_some() {
        return Err(keel::error::Error::invalid(
            "--export",
            "",
            "the spatial network has a heteroscedastic head the core's MLP export does not describe; export the sine or line network",
        ));
    }
    let reference = SpatialConfig::reference(space);
    let cfg = SpatialConfig {
        mean: if a.bias { Mean::Network } else { Mean::Zero },
        n_train: a.n_train.unwrap_or(reference.n_train),
        n_adapt: a.n_adapt,
        tasks: a.tasks,
        n_test: a.n_test.unwrap_or(reference.n_test),
        hidden: a.hidden.unwrap_or(reference.hidden),
        epochs: a.epochs.unwrap_or(reference.epochs),
        lr: a.lr,
        cg: CgSettings {
            tol: a.cg_tol,
            max_iter: a.cg_max_iter,
        },
        lanczos_rank: a.lanczos_rank,
        grid: if a.plot.is_some() { 60 } else { 0 },
        noise: a.noise.unwrap_or(reference.noise),
        seed: a.seed,
        ..reference
    };
    let bar = super::progress::epoch_bar(!a.json, cfg.epochs, "ntk spatial train".into());
    let mut adapting = false;
    let r = run(&cfg, &mut |t| {
        if !adapting && t.values.first().map(|v| v.0) == Some("task") {
            adapting = true;
            bar.set_prefix("ntk spatial adapt");
        }
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let mut outputs = Outputs::new();
    if let Some(p) = &a.plot {
        outputs.with(p, |tmp| {
            let g = &r.grid;
            let titles = [
                "year 1 (training)",
                "year 2 (adaptation)",
                "network, not adapted",
                "NTK-GP mean (repeat 1)",
            ];
            let fields: Vec<keel::plot::Field> = titles
                .iter()
                .zip(&g.fields)
                .map(|(t, v)| keel::plot::Field {
                    title: t,
                    xs: &g.axis,
                    ys: &g.axis,
                    values: v,
                })
                .collect();
            let lo = g.fields[..2]
                .iter()
                .flatten()
                .flatten()
                .copied()
                .fold(f64::INFINITY, f64::min);
            let hi = g.fields[..2]
                .iter()
                .flatten()
                .flatten()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let pts: Vec<(f64, f64, usize)> = r.tasks[0]
                .adapt_x
                .chunks(2)
                .map(|p| (p[0], p[1], 1))
                .collect();
            keel::plot::plot_fields(tmp, &fields, (lo, hi), &pts, &[])
        })?;
    }
    outputs.commit()?;
    let all: Vec<&Metrics> = r.tasks.iter().map(|t| &t.metrics).collect();
    if a.json {
        let tasks = all
            .iter()
            .map(|m| metrics_json(m, serde_json::Map::new()))
            .collect();
        return super::report::json(&merged(
            json!({
                "task": "spatial",
                "space": a.space.to_string(),
                "mean": if a.bias { "network" } else { "zero" },
                "n_adapt": a.n_adapt,
                "n_train": cfg.n_train,
                "n_test": cfg.n_test,
                "seed": a.seed,
                "parameters": r.params,
                "train_nll": r.train_nll,
                "noise": cfg.noise,
                "train_seconds": r.train_seconds,
            }),
            summary_json(&all, tasks),
        ));
    }
    println!(
        "ntk adapt: spatial field, MLP 2→{h}→{h}→2 tanh with a heteroscedastic head ({} parameters) trained on {} year-1 points in {:.1} s (NLL {:.3}); {}-space posterior of the mean output, {} mean, σ² = {:.4}, {} year-2 points per repeat, {} test points apart from them",
        r.params,
        cfg.n_train,
        r.train_seconds,
        r.train_nll,
        a.space,
        if a.bias { "network" } else { "zero" },
        cfg.noise,
        a.n_adapt,
        cfg.n_test,
        h = cfg.hidden,
    );
    print_table("repeat", &all);
    if let Some(p) = &a.plot {
        println!("  plot: {}", p.display());
    }
    Ok(())
}

fn scaling_cmd(a: &ScalingArgs) -> Result<()> {
    use keel::ntk::scaling::{run, ScalingConfig};
    let cfg = ScalingConfig {
        n: a.n.clone(),
        sizes: a.sizes.clone(),
        noise: a.noise,
        cg: CgSettings {
            tol: a.cg_tol,
            max_iter: a.cg_max_iter,
        },
        spaces: a
            .spaces
            .iter()
            .map(|s| match s {
                SpaceArg::Function => Space::Function,
                SpaceArg::Parameter => Space::Parameter,
            })
            .collect(),
        dtype: match a.dtype {
            super::values::DtypeArg::F32 => keel::DType::F32,
            super::values::DtypeArg::F64 => keel::DType::F64,
        },
        seed: a.seed,
        ..ScalingConfig::reference()
    };
    let total = cfg.n.len() * cfg.spaces.len();
    let bar = super::progress::counted_bar(!a.json, total, "ntk scaling".into(), "solves");
    let r = run(&cfg, &mut |t| super::progress::show(&bar, t))?;
    bar.finish_and_clear();
    if a.json {
        let points: Vec<serde_json::Value> = r
            .points
            .iter()
            .map(|p| {
                json!({
                    "n": p.n,
                    "space": p.space.name(),
                    "iterations": p.cg.iterations,
                    "relative_residual": p.cg.relative_residual,
                    "converged": p.cg.converged,
                    "seconds": p.seconds,
                    "seconds_per_iteration": p.seconds_per_iteration(),
                })
            })
            .collect();
        return super::report::json(&json!({
            "parameters": r.params,
            "sizes": a.sizes,
            "noise": a.noise,
            "cg_tol": a.cg_tol,
            "cg_max_iter": a.cg_max_iter,
            "dtype": super::values::name(&a.dtype),
            "points": points,
        }));
    }
    println!(
        "ntk scaling: MLP {:?} (SiLU, {} parameters), σ² = {}, CG to {} within {} iterations",
        a.sizes, r.params, a.noise, a.cg_tol, a.cg_max_iter
    );
    println!("        n  space      iterations  residual   converged  seconds  s/iteration");
    for p in &r.points {
        println!(
            "  {:>7}  {:<9}  {:>10}  {:>8.2e}  {:>9}  {:>7.2}  {:>11.4}",
            p.n,
            p.space.name(),
            p.cg.iterations,
            p.cg.relative_residual,
            if p.cg.converged { "yes" } else { "no" },
            p.seconds,
            p.seconds_per_iteration()
        );
    }
    Ok(())
}
