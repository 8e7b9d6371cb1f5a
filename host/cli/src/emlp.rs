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
    /// report its test MSE.
    Train(TrainArgs),
}

/// The EMLP paper's data sets.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    O5Synthetic,
    Inertia,
    ParticleInteraction,
}

/// The equivariant model and the baselines.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelArg {
    Emlp,
    Mlp,
    MlpAug,
}

super::values::display_as_typed!(DatasetArg, ModelArg);

#[derive(Args)]
pub struct TrainArgs {
    /// Data set (the paper's).
    #[arg(long, value_enum)]
    dataset: DatasetArg,
    /// Symmetry group (default: the paper's — O(5), O(3), O13()).
    #[arg(long)]
    group: Option<String>,
    /// emlp, mlp or mlp-aug (MLP trained with group augmentation).
    #[arg(long, value_enum, default_value = "emlp")]
    model: ModelArg,
    /// Training rows.
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    n_train: usize,
    /// Validation rows (the best validation epoch is kept).
    #[arg(long, default_value_t = 1000, value_parser = super::values::at_least_one)]
    n_val: usize,
    /// Test rows.
    #[arg(long, default_value_t = 5000, value_parser = super::values::at_least_one)]
    n_test: usize,
    /// Epochs (default: the reference's min(900000 / n_train, 1000)).
    #[arg(long, value_parser = super::values::at_least_one)]
    epochs: Option<usize>,
    /// Hidden channels per layer.
    #[arg(long, default_value_t = 384, value_parser = super::values::at_least_one)]
    ch: usize,
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
    /// safetensors file that keel-core's `nn::Emlp` evaluates.
    #[arg(long)]
    export: Option<PathBuf>,
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
    if let Some(p) = &a.export {
        keel::output::check_writable("--export", p)?;
    }
    let checkpoint = a.checkpoint.options()?;
    let dataset = Dataset::parse(&a.dataset.to_string())?;
    let model = ModelKind::parse(&a.model.to_string())?;
    if a.export.is_some() && model != ModelKind::Emlp {
        return Err(invalid(
            "--export",
            &a.model.to_string(),
            "only EMLP models are exported by this command".into(),
        ));
    }
    let gname = a
        .group
        .clone()
        .unwrap_or_else(|| dataset.default_group().to_string());
    let group = parse_group(&gname).map_err(|e| invalid("--group", &gname, e.render(&gname)))?;
    let (device, notice) = a
        .device
        .parse::<keel::backend::DeviceRequest>()?
        .resolve()?;
    let cfg = TrainConfig {
        dataset,
        group,
        model,
        n_train: a.n_train,
        n_val: a.n_val,
        n_test: a.n_test,
        epochs: a.epochs,
        ch: a.ch,
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
            "dataset": dataset.name(), "group": gname, "model": model.name(), "n_train": a.n_train,
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
            a.n_train,
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
