//! `keel emlp …`: equivariant bases (and, later, models) from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use keel::emlp::{parse_group, parse_rep, Solver};
use keel::error::{Error, Result};

#[derive(Subcommand)]
pub enum EmlpCommand {
    /// Solve for the equivariant linear maps rep_in → rep_out of a group (the null space of the
    /// group's constraints) and print their number.
    Basis(BasisArgs),
    /// Train an EMLP (or an MLP baseline) on one of the paper's synthetic regression sets and
    /// report its test MSE, or learn the double spring pendulum's dynamics (EMLPH, EMLP-ODE and
    /// their MLP baselines) and report the 30 s rollout error.
    Train(TrainArgs),
}

/// The EMLP paper's data sets.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    O5Synthetic,
    Inertia,
    ParticleInteraction,
    DoubleSpringPendulum,
}

/// The equivariant model and the baselines.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Emlp,
    Mlp,
    MlpAug,
    Emlph,
    EmlpOde,
    Mlph,
    MlpOde,
}

super::values::display_as_typed!(DatasetArg, ModelArg);

#[derive(Args)]
pub struct TrainArgs {
    /// Data set (the paper's).
    #[arg(long, value_enum)]
    dataset: DatasetArg,
    /// Symmetry group (default: the paper's — O(5), O(3), O13(), and O(2) about the z axis for
    /// the double spring pendulum, where a group on ℝ² acts about z and one on ℝ³ as it is).
    #[arg(long)]
    group: Option<String>,
    /// emlp, mlp or mlp-aug (MLP trained with group augmentation) on the regression sets;
    /// emlph (Hamiltonian EMLP), emlp-ode, mlph or mlp-ode on the double spring pendulum
    /// (default: emlp, or emlph).
    #[arg(long, value_enum)]
    model: Option<ModelArg>,
    /// Training rows, or trajectory chunks (default: 1000, or the reference's 500 chunks).
    #[arg(long, value_parser = super::values::at_least_one)]
    n_train: Option<usize>,
    /// Validation rows or chunks; the best validation epoch is kept (default: 1000, or 500).
    #[arg(long, value_parser = super::values::at_least_one)]
    n_val: Option<usize>,
    /// Test rows, or chunks each starting a 30 s rollout (default: 5000, or 500).
    #[arg(long, value_parser = super::values::at_least_one)]
    n_test: Option<usize>,
    /// Epochs (default: the reference's min(900000 / n_train, 1000), or 2000 for dynamics).
    #[arg(long, value_parser = super::values::at_least_one)]
    epochs: Option<usize>,
    /// Hidden channels per layer (default: the reference's 384, or 128 for dynamics).
    #[arg(long, value_parser = super::values::at_least_one)]
    ch: Option<usize>,
    /// Hidden layers.
    #[arg(long, default_value_t = 3, value_parser = super::values::at_least_one)]
    layers: usize,
    /// Adam learning rate (constant).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 500, value_parser = super::values::at_least_one)]
    batch: usize,
    /// Seed for the data, the initialisation and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    checkpoint: super::checkpoint::CheckpointArgs,
    /// Write the trained EMLP (effective weights, bilinear maps, gates, standardisation) as a
    /// safetensors file that keel-core's `nn::Emlp` evaluates (for emlph, keel-core's
    /// `HamiltonianEmlp` integrates its dynamics).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Plot the test rollouts' error against time and one rollout beside the truth (PNG or SVG;
    /// double spring pendulum only).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Where to train: auto (a GPU if usable, else the CPU with a notice), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args)]
pub struct BasisArgs {
    /// The group in the reference package's notation: SO(3), O(5), SO13p(), O13(), Sp(2),
    /// S(4), Z(6), C(4), D(6), Cube(), RubiksCube(), SO(3)*S(4), …  Omit it for mixed-group
    /// representations written with V(G), such as V(SO(3))*V(S(4)).
    #[arg(long)]
    group: Option<String>,
    /// Input representation: V, V.T, V**2, 2*V+V**2, T(1,1), Scalar+V, …
    #[arg(long)]
    rep_in: String,
    /// Output representation.
    #[arg(long)]
    rep_out: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Write the basis Q (size_in·size_out × dim, f32; a column reshapes row-major to
    /// W[size_out, size_in]) to a safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Do not read or write the on-disk basis cache (~/.cache/keel/emlp).
    #[arg(long)]
    no_cache: bool,
}

pub fn run(cmd: &EmlpCommand) -> Result<()> {
    match cmd {
        EmlpCommand::Basis(a) => basis(a),
        EmlpCommand::Train(a) => train(a),
    }
}

fn invalid(flag: &str, value: &str, reason: String) -> Error {
    Error::invalid(flag, value, reason)
}

fn basis(a: &BasisArgs) -> Result<()> {
    if let Some(p) = &a.save {
        keel::output::check_writable("--save", p)?;
    }
    let group = match &a.group {
        Some(g) => Some(parse_group(g).map_err(|e| invalid("--group", g, e.render(g)))?),
        None => None,
    };
    let rep_in = parse_rep(&a.rep_in, group.as_ref())
        .map_err(|e| invalid("--rep-in", &a.rep_in, e.render(&a.rep_in)))?;
    let rep_out = parse_rep(&a.rep_out, group.as_ref())
        .map_err(|e| invalid("--rep-out", &a.rep_out, e.render(&a.rep_out)))?;
    let rep = rep_in.maps_to(&rep_out);
    let solver = if a.no_cache {
        Solver::new(None)
    } else {
        Solver::default()
    };
    let t0 = Instant::now();
    let basis = solver.basis(&rep)?;
    let seconds = t0.elapsed().as_secs_f64();
    let (size_in, size_out, dim) = (rep_in.size(), rep_out.size(), basis.dim());
    if let Some(path) = &a.save {
        let q = basis.dense()?;
        let bytes: Vec<u8> = q
            .data
            .iter()
            .flat_map(|&x| (x as f32).to_le_bytes())
            .collect();
        let mut meta = BTreeMap::new();
        meta.insert("keel.kind".to_string(), "emlp-basis".to_string());
        meta.insert("group".to_string(), a.group.clone().unwrap_or_default());
        meta.insert("rep_in".to_string(), a.rep_in.clone());
        meta.insert("rep_out".to_string(), a.rep_out.clone());
        let file = keel::export::safetensors_bytes(
            &[("basis".into(), vec![q.rows, q.cols], bytes)],
            &meta,
        );
        keel::output::write_atomic(path, &file)?;
    }
    if a.json {
        let v = serde_json::json!({
            "group": a.group, "rep_in": a.rep_in, "rep_out": a.rep_out,
            "size_in": size_in, "size_out": size_out, "dim": dim, "seconds": seconds,
        });
        super::report::json(&v)?;
    } else {
        let g = a.group.as_deref().unwrap_or("(mixed)");
        println!(
            "{g}: {} → {}  ({size_in} → {size_out}, {} weights): {dim} equivariant linear maps ({:.3} s)",
            a.rep_in,
            a.rep_out,
            size_in * size_out,
            seconds
        );
    }
    Ok(())
}

fn train(a: &TrainArgs) -> Result<()> {
    use keel::emlp::data::Dataset;
    use keel::emlp::train::{train, ModelKind, TrainConfig};
    if a.dataset == DatasetArg::DoubleSpringPendulum {
        return train_dynamics(a);
    }
    if let Some(m) = a
        .model
        .filter(|m| !matches!(m, ModelArg::Emlp | ModelArg::Mlp | ModelArg::MlpAug))
    {
        return Err(invalid(
            "--model",
            &m.to_string(),
            format!(
                "learns dynamics: use it with --dataset double-spring-pendulum (on {}: emlp, mlp, mlp-aug)",
                a.dataset
            ),
        ));
    }
    if let Some(p) = &a.plot {
        return Err(invalid(
            "--plot",
            &p.display().to_string(),
            "plots the double spring pendulum's rollouts; the regression sets have none".into(),
        ));
    }
    if let Some(p) = &a.export {
        keel::output::check_writable("--export", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let dataset = Dataset::parse(&a.dataset.to_string())?;
    let model = ModelKind::parse(&a.model.unwrap_or(ModelArg::Emlp).to_string())?;
    if a.export.is_some() && model != ModelKind::Emlp {
        return Err(invalid(
            "--export",
            model.name(),
            "only EMLP models are exported by this command".into(),
        ));
    }
    let gname = a
        .group
        .clone()
        .unwrap_or_else(|| dataset.default_group().to_string());
    let group = parse_group(&gname).map_err(|e| invalid("--group", &gname, e.render(&gname)))?;
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let cfg = TrainConfig {
        dataset,
        group,
        model,
        n_train: a.n_train.unwrap_or(1000),
        n_val: a.n_val.unwrap_or(1000),
        n_test: a.n_test.unwrap_or(5000),
        epochs: a.epochs,
        ch: a.ch.unwrap_or(384),
        layers: a.layers,
        lr: a.lr,
        batch: a.batch,
        seed: a.seed,
        checkpoint,
        device,
    };
    cfg.validate()?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(
        !a.quiet,
        cfg.epochs_to_run(),
        format!("{} {}", cfg.model.name(), cfg.dataset.name()),
    );
    let t = train(&cfg, &Solver::default(), &mut |t| {
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let partial = t.epochs_run < t.epochs;
    if let (Some(path), Some(net)) = (&a.export, &t.emlp) {
        let (scale, mean, std) = &t.table_stats;
        let mut meta = BTreeMap::new();
        meta.insert("keel.dataset".to_string(), dataset.name().to_string());
        meta.insert("keel.seed".to_string(), a.seed.to_string());
        meta.insert("keel.test_mse".to_string(), format!("{:e}", t.test_mse));
        let bytes = net.to_safetensors(&t.params, scale, mean, std, &meta)?;
        keel::output::write_atomic(path, &bytes)?;
    }
    if a.json {
        let v = serde_json::json!({
            "dataset": dataset.name(), "group": gname, "model": model.name(), "n_train": cfg.n_train,
            "test_mse": t.test_mse, "train_seconds": t.train_seconds, "val_mse": t.val_mse,
            "best_epoch": t.best_epoch, "epochs": t.epochs, "epochs_run": t.epochs_run,
            "partial": partial, "parameters": t.parameters, "hidden": t.hidden, "seed": a.seed,
        });
        super::report::json(&v)?;
    } else {
        if partial {
            println!(
                "stopped after epoch {} of {} (--stop-after; continue with --resume): the numbers below are the best so far",
                t.epochs_run, t.epochs
            );
        }
        println!(
            "{} {} on {} (n_train {}): test MSE {:.4e} (validation {:.4e} at epoch {} of {}), {} parameters, {:.1} s",
            model.name(),
            gname,
            dataset.name(),
            cfg.n_train,
            t.test_mse,
            t.val_mse,
            t.best_epoch,
            t.epochs,
            t.parameters,
            t.train_seconds
        );
        if let Some(h) = &t.hidden {
            println!("  hidden representation: {h}");
        }
    }
    Ok(())
}

/// `keel emlp train --dataset double-spring-pendulum`.
fn train_dynamics(a: &TrainArgs) -> Result<()> {
    use keel::emlp::dynamics::{spring_group, train, DynamicsConfig, DynamicsKind};
    let kind =
        DynamicsKind::parse(&a.model.unwrap_or(ModelArg::Emlph).to_string()).map_err(|_| {
            invalid(
            "--model",
            &a.model.map(|m| m.to_string()).unwrap_or_default(),
            "fits the regression sets; the double spring pendulum's models are emlph, emlp-ode, \
             mlph and mlp-ode"
                .into(),
        )
        })?;
    if let Some(p) = &a.export {
        if !kind.equivariant() {
            return Err(invalid(
                "--export",
                &p.display().to_string(),
                format!(
                    "{} is an MLP; only the EMLPs (emlph, emlp-ode) are exported",
                    kind.name()
                ),
            ));
        }
        keel::output::check_writable("--export", p)?;
    }
    if let Some(p) = &a.plot {
        keel::output::check_plot("--plot", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let gname = a.group.clone().unwrap_or_else(|| "O(2)".to_string());
    let parsed = parse_group(&gname).map_err(|e| invalid("--group", &gname, e.render(&gname)))?;
    let group = spring_group(&parsed).map_err(|e| match e {
        Error::InvalidInput { reason, .. } => invalid("--group", &gname, reason),
        other => other,
    })?;
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let mut cfg = DynamicsConfig::paper(kind, group);
    cfg.n_train = a.n_train.unwrap_or(cfg.n_train);
    cfg.n_val = a.n_val.unwrap_or(cfg.n_val);
    cfg.n_test = a.n_test.unwrap_or(cfg.n_test);
    cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
    cfg.ch = a.ch.unwrap_or(cfg.ch);
    cfg.layers = a.layers;
    cfg.lr = a.lr;
    cfg.batch = a.batch;
    cfg.seed = a.seed;
    cfg.checkpoint = checkpoint;
    cfg.device = device;
    cfg.validate()?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let bar = super::progress::epoch_bar(
        !a.quiet,
        cfg.epochs,
        format!("{} double-spring-pendulum", kind.name()),
    );
    let t = train(&cfg, &Solver::default(), &mut |t| {
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    let partial = t.epochs_run < t.epochs;
    let group_name = if kind.equivariant() {
        Some(cfg.group.name.clone())
    } else {
        None
    };
    // The export and the plot only once training and evaluation have succeeded.
    let mut outputs = keel::output::Outputs::new();
    if let (Some(path), Some(net)) = (&a.export, t.net.emlp()) {
        let mut meta = BTreeMap::new();
        meta.insert(
            "keel.dataset".to_string(),
            "double-spring-pendulum".to_string(),
        );
        meta.insert("keel.model".to_string(), kind.name().to_string());
        meta.insert(
            "keel.field".to_string(),
            if kind.hamiltonian() {
                "hamiltonian"
            } else {
                "vector-field"
            }
            .to_string(),
        );
        meta.insert(
            "keel.state".to_string(),
            "x1,x2,p1,p2 (each in R^3)".to_string(),
        );
        meta.insert("keel.seed".to_string(), a.seed.to_string());
        meta.insert(
            "keel.rollout_error".to_string(),
            format!("{:e}", t.rollout_error),
        );
        let n = keel::emlp::spring::STATE;
        let out = if kind.hamiltonian() { 1 } else { n };
        let bytes = net.to_safetensors(
            &t.params,
            &vec![1.0; n],
            &vec![0.0; out],
            &vec![1.0; out],
            &meta,
        )?;
        outputs.bytes(path, &bytes)?;
    }
    if let Some(p) = &a.plot {
        let errors = [(
            format!("{} (mean over {} test rollouts)", kind.name(), cfg.n_test),
            t.error_curve
                .iter()
                .enumerate()
                .skip(1)
                .map(|(k, e)| (k as f64 * keel::emlp::spring::DT, *e))
                .collect::<Vec<_>>(),
        )];
        // The lower bob in the side view (x, z): the truth and the model, first test chunk.
        let side = |zs: &[keel::emlp::spring::State]| -> Vec<(f64, f64)> {
            zs.iter().map(|z| (z[3], z[5])).collect()
        };
        let paths = [
            ("truth".to_string(), side(&t.first_truth)),
            (kind.name().to_string(), side(&t.first_rollout)),
        ];
        let panels: Vec<keel::plot::Panel<'_>> = vec![(
            "Relative error of 30 s test rollouts",
            "t (s)",
            "relative error",
            &errors,
        )];
        outputs.with(p, |tmp| {
            keel::plot::plot_log_panels_and_paths(
                tmp,
                &panels,
                ("Lower bob, first test rollout", "x", "z", &paths),
            )
        })?;
    }
    outputs.commit()?;
    if a.json {
        let v = serde_json::json!({
            "dataset": "double-spring-pendulum", "model": kind.name(), "group": group_name,
            "n_train": cfg.n_train, "n_test": cfg.n_test, "rollout_error": t.rollout_error,
            "energy_error": t.energy_error, "diverged": t.diverged, "test_mse": t.test_mse,
            "val_mse": t.val_mse,
            "best_epoch": t.best_epoch, "epochs": t.epochs, "epochs_run": t.epochs_run,
            "partial": partial, "train_loss": t.train_loss, "train_seconds": t.train_seconds,
            "eval_seconds": t.eval_seconds, "parameters": t.parameters, "hidden": t.hidden,
            "ch": cfg.ch, "layers": cfg.layers, "seed": a.seed,
        });
        super::report::json(&v)?;
    } else {
        if partial {
            println!(
                "stopped after epoch {} of {} (--stop-after; continue with --resume): the numbers below are the best so far",
                t.epochs_run, t.epochs
            );
        }
        println!(
            "{}{} on the double spring pendulum (n_train {}): rollout error {:.4e} (geometric mean over {} test rollouts of 30 s), energy error {:.3e}, chunk MSE {:.3e} (validation {:.3e} at epoch {} of {}), {} parameters, {:.1} s",
            kind.name(),
            group_name.map(|g| format!(" {g}")).unwrap_or_default(),
            cfg.n_train,
            t.rollout_error,
            cfg.n_test,
            t.energy_error,
            t.test_mse,
            t.val_mse,
            t.best_epoch,
            t.epochs,
            t.parameters,
            t.train_seconds
        );
        if let Some(h) = &t.hidden {
            println!("  hidden representation: {h}");
        }
        if t.diverged > 0 {
            println!(
                "  {} of {} test rollouts diverged before 30 s (scored with relative error 1 from there on)",
                t.diverged, cfg.n_test
            );
        }
    }
    Ok(())
}
