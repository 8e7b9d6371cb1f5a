//! `keel simplex …`: loss-surface simplexes (SPRO), ensembles of simplexes (ESPRO) and
//! mode-connecting complexes (Benton et al., ICML 2021), and the loss over the plane through
//! three vertices of a trained simplex.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use keel::distributed;
use keel::error::{Error, Result};
use keel::output::{check_plot, check_writable, Outputs};
use keel::simplex::{
    self, Arch, Driver, Optim, Part, Problem, Share, SimplexConfig, SimplexModel, Spec,
};

use crate::ranks;

use super::values::DtypeArg;

#[derive(Subcommand)]
pub enum SimplexCommand {
    /// Train an ensemble of simplexes (ESPRO; one simplex is SPRO) or a mode-connecting
    /// complex, and report the simplex ensemble's test accuracy, NLL and ECE, the volumes and
    /// the losses at the vertices and at interior points.
    Train(Box<TrainArgs>),
    /// The training loss over the plane through three vertices of an exported simplex.
    Slice(SliceArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    /// The authors' two spirals (notebooks/two-spirals.ipynb), 2 classes.
    TwoSpirals,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimArg {
    /// SGD with momentum 0.9 (the ESPRO scripts).
    Sgd,
    /// Adam (the two-spirals notebook).
    Adam,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    /// Cosine annealing over each stage.
    Cosine,
    /// A constant rate.
    Constant,
}

super::values::display_as_typed!(DatasetArg, OptimArg, ScheduleArg);

#[derive(Args)]
pub struct TrainArgs {
    /// CSV with a header row (classes in --target); split and standardised as `keel bayes`.
    #[arg(long, conflicts_with = "dataset")]
    data: Option<PathBuf>,
    /// Target column of --data.
    #[arg(long, default_value = "label")]
    target: String,
    /// A generated data set instead of --data.
    #[arg(long, value_enum)]
    dataset: Option<DatasetArg>,
    /// `mlp:W1,W2,…` (ReLU hidden layers). Default: mlp:64,64; two-spirals: 7 layers of 25.
    #[arg(long)]
    model: Option<String>,
    /// A CNN of these layers instead of an MLP (`keel fit --layers` syntax), on rows reshaped
    /// to --image-shape.
    #[arg(long, conflicts_with = "model")]
    layers: Option<String>,
    /// CxHxW of the rows of --data for --layers (e.g. 1x8x8 for the digits).
    #[arg(long)]
    image_shape: Option<String>,
    /// Independent simplexes K (ESPRO).
    #[arg(long, value_parser = super::values::at_least_one, conflicts_with = "modes")]
    components: Option<usize>,
    /// A mode-connecting complex of this many base networks instead of ESPRO: connectors are
    /// added to every simplex.
    #[arg(long, value_parser = super::values::at_least_one)]
    modes: Option<usize>,
    /// Vertices per simplex, the base network included. Default 3; two-spirals 4.
    #[arg(long, value_parser = super::values::at_least_one)]
    vertices: Option<usize>,
    /// Epochs of each base network. Default 60; two-spirals 200 (full-batch iterations).
    #[arg(long, value_parser = super::values::at_least_one)]
    base_epochs: Option<usize>,
    /// Epochs of each added vertex. Default 10; two-spirals 100.
    #[arg(long, value_parser = super::values::at_least_one)]
    vertex_epochs: Option<usize>,
    /// Dirichlet draws per mini-batch when training a vertex.
    #[arg(long, default_value_t = 5, value_parser = super::values::at_least_one)]
    n_sample: usize,
    /// Average the draws' losses (the reference sums them).
    #[arg(long)]
    mean_samples: bool,
    /// LMBD of the volume term λ_v = max(LMBD / log(V²_rand + 1e−4), 1e−8); 0 turns it off.
    /// Default 1e-6 (the ESPRO READMEs); two-spirals 3 (the notebook's).
    #[arg(long, allow_hyphen_values = true)]
    lmbd: Option<f64>,
    /// Learning rate of base networks. Default 0.05; two-spirals 0.01.
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Learning rate of added vertices. Default 0.01.
    #[arg(long, allow_hyphen_values = true)]
    vertex_lr: Option<f64>,
    /// Weight decay on the trained vertex. Default 5e-4; two-spirals 1e-4.
    #[arg(long, allow_hyphen_values = true)]
    weight_decay: Option<f64>,
    /// sgd or adam. Default sgd; two-spirals adam.
    #[arg(long, value_enum)]
    optimizer: Option<OptimArg>,
    /// cosine or constant. Default cosine; two-spirals constant.
    #[arg(long, value_enum)]
    schedule: Option<ScheduleArg>,
    /// Mini-batch size. Default 128; two-spirals the whole training set.
    #[arg(long, value_parser = super::values::at_least_one)]
    batch_size: Option<usize>,
    /// Interior points per simplex in prediction (S).
    #[arg(long, default_value_t = 10, value_parser = super::values::at_least_one)]
    points: usize,
    /// Fraction of --data held out for testing.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Seed of the train/test permutation of --data (as `keel bayes --split-seed`).
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Two-spirals: noise standard deviation.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    noise: f64,
    /// Two-spirals: training points per class.
    #[arg(long, default_value_t = 50, value_parser = super::values::at_least_one)]
    n_train: usize,
    /// Two-spirals: test points per class.
    #[arg(long, default_value_t = 100, value_parser = super::values::at_least_one)]
    n_test: usize,
    /// Seed of initialisation, batches, Dirichlet draws, prediction points (and the spirals).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where to train: auto, cpu, cuda, cuda:N (cuda:local under MPI: the rank's GPU on its node).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Write the simplex ensemble (`keel.kind = simplex`) here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Two-spirals: decision regions of one vertex beside the simplex ensemble's (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    checkpoint: super::checkpoint::CheckpointArgs,
}

#[derive(Args)]
pub struct SliceArgs {
    /// A model file written by `keel simplex train --export`.
    #[arg(long)]
    model: PathBuf,
    /// The CSV it was trained on, if not where the file says.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Component (simplex) to slice.
    #[arg(long, default_value_t = 0)]
    component: usize,
    /// The three vertices: anchor, base 1, base 2.
    #[arg(long, default_value = "0,1,2")]
    corners: String,
    /// Grid points per side.
    #[arg(long, default_value_t = 25, value_parser = super::values::at_least_one)]
    grid: usize,
    /// Margin around the triangle, as a fraction of its extent.
    #[arg(long, default_value_t = 0.2)]
    margin: f64,
    /// Draw the loss surface (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the slice as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(cmd: &SimplexCommand) -> Result<()> {
    match cmd {
        SimplexCommand::Train(a) => train_cmd(a),
        SimplexCommand::Slice(a) => slice_cmd(a),
    }
}

fn positive(flag: &str, v: f64) -> Result<f64> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(flag, v, "must be positive and finite"))
    }
}

fn non_negative(flag: &str, v: f64) -> Result<f64> {
    if v >= 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(flag, v, "must be ≥ 0 and finite"))
    }
}

fn hidden(model: &str) -> Result<Vec<usize>> {
    let bad = || Error::invalid("--model", model, "expected mlp:W1,W2,… (positive widths)");
    let widths = model.strip_prefix("mlp:").ok_or_else(bad)?;
    widths
        .split(',')
        .map(|w| {
            w.trim()
                .parse::<usize>()
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(bad)
        })
        .collect()
}

fn train_cmd(a: &TrainArgs) -> Result<()> {
    if let Some(p) = &a.export {
        check_writable("--export", p)?;
    }
    let spirals = a.dataset == Some(DatasetArg::TwoSpirals);
    if let Some(p) = &a.plot {
        if !spirals {
            return Err(Error::invalid(
                "--plot",
                p.display(),
                "draws decision regions of 2-D data: use it with --dataset two-spirals",
            ));
        }
        check_plot("--plot", p)?;
    }
    let mut checkpoint = a.checkpoint.options()?;
    // Over MPI ranks each rank trains its own components and keeps its own checkpoint.
    let w = ranks::world();
    let share = Share {
        index: w.rank(),
        count: w.size(),
    };
    if let (Some(p), true) = (&checkpoint.path, w.size() > 1) {
        let mut own = p.clone().into_os_string();
        own.push(format!(".rank{}", w.rank()));
        check_writable("--checkpoint", Path::new(&own))?;
        checkpoint.path = Some(own.into());
    }
    let pick = |v: Option<f64>, csv: f64, sp: f64| v.unwrap_or(if spirals { sp } else { csv });
    let lr = positive("--lr", pick(a.lr, 0.05, 0.01))?;
    let vertex_lr = positive("--vertex-lr", pick(a.vertex_lr, 0.01, 0.01))?;
    let weight_decay = non_negative("--weight-decay", pick(a.weight_decay, 5e-4, 1e-4))?;
    let lmbd = non_negative("--lmbd", pick(a.lmbd, 1e-6, 3.0))?;
    if !(a.test_fraction > 0.0 && a.test_fraction < 1.0) {
        return Err(Error::invalid(
            "--test-fraction",
            a.test_fraction,
            "must lie in (0, 1)",
        ));
    }
    non_negative("--noise", a.noise)?;
    let arch = match (&a.layers, &a.model) {
        (Some(layers), _) => {
            if spirals {
                return Err(Error::invalid(
                    "--layers",
                    layers,
                    "two-spirals rows are 2-D points: use --model mlp:…",
                ));
            }
            let Some(shape) = &a.image_shape else {
                return Err(Error::invalid(
                    "--image-shape",
                    "(not given)",
                    "--layers needs the rows' CxHxW (e.g. 1x8x8)",
                ));
            };
            let dims: Vec<usize> = shape
                .split('x')
                .map(|s| s.trim().parse::<usize>().ok().filter(|&v| v > 0))
                .collect::<Option<_>>()
                .filter(|d: &Vec<usize>| d.len() == 3)
                .ok_or_else(|| {
                    Error::invalid("--image-shape", shape, "expected CxHxW, e.g. 1x8x8")
                })?;
            let image = [dims[0], dims[1], dims[2]];
            super::values::cnn_layers(layers, image, 2)?;
            Arch::Cnn {
                layers: layers.clone(),
                image,
            }
        }
        (None, Some(m)) => Arch::Mlp { hidden: hidden(m)? },
        (None, None) => Arch::Mlp {
            hidden: if spirals { vec![25; 7] } else { vec![64, 64] },
        },
    };
    if a.image_shape.is_some() && a.layers.is_none() {
        return Err(Error::invalid(
            "--image-shape",
            "set",
            "applies to a CNN: give --layers",
        ));
    }
    let driver = match (a.modes, a.components) {
        (Some(m), _) => Driver::Complex { modes: m },
        (None, c) => Driver::Espro {
            components: c.unwrap_or(if spirals { 1 } else { 3 }),
        },
    };
    if let Driver::Espro { components } = driver {
        if w.size() > components {
            let why = format!(
                "over MPI ranks each rank trains whole components: at least one per rank ({} ranks)",
                w.size()
            );
            return Err(Error::invalid("--components", components, why));
        }
    }
    let (device, notice) = crate::ranks::device(&a.device)?.resolve()?;
    let (problem, spec): (Problem, Spec) = match (&a.data, spirals) {
        (_, true) => simplex::data::two_spirals([a.n_train, a.n_test], a.noise, a.seed),
        (Some(path), false) => simplex::data::csv(path, &a.target, a.test_fraction, a.split_seed)
            .map_err(|e| match e {
            Error::InvalidInput {
                setting,
                value,
                reason,
            } if setting == "target" => Error::invalid("--target", value, reason),
            e => e,
        })?,
        (None, false) => {
            return Err(Error::invalid(
                "--data",
                "(not given)",
                "give a CSV with --data, or --dataset two-spirals",
            ))
        }
    };
    if let Arch::Cnn { image, .. } = &arch {
        if image.iter().product::<usize>() != problem.d {
            return Err(Error::invalid(
                "--image-shape",
                a.image_shape.as_deref().unwrap_or_default(),
                format!(
                    "holds {} values; the rows have {}",
                    image.iter().product::<usize>(),
                    problem.d
                ),
            ));
        }
    }
    let cfg = SimplexConfig {
        arch,
        driver,
        vertices: a.vertices.unwrap_or(if spirals { 4 } else { 3 }),
        base_epochs: a.base_epochs.unwrap_or(if spirals { 200 } else { 60 }),
        vertex_epochs: a.vertex_epochs.unwrap_or(if spirals { 100 } else { 10 }),
        n_sample: a.n_sample,
        mean_over_samples: a.mean_samples,
        lmbd,
        lr,
        vertex_lr,
        weight_decay,
        optimizer: match a.optimizer.unwrap_or(if spirals {
            OptimArg::Adam
        } else {
            OptimArg::Sgd
        }) {
            OptimArg::Sgd => Optim::Sgd,
            OptimArg::Adam => Optim::Adam,
        },
        cosine: a.schedule.unwrap_or(if spirals {
            ScheduleArg::Constant
        } else {
            ScheduleArg::Cosine
        }) == ScheduleArg::Cosine,
        batch_size: a.batch_size.unwrap_or(if spirals { 0 } else { 128 }),
        points: a.points,
        seed: a.seed,
        dtype: a.dtype.into(),
        device,
        checkpoint,
    };
    cfg.validate()
        .and_then(|()| share.check(&cfg))
        .map_err(|e| match e {
            Error::InvalidInput {
                setting,
                value,
                reason,
            } => Error::invalid(format!("--{}", setting.replace('_', "-")), value, reason),
            e => e,
        })?;
    if let (Some(n), true) = (notice, ranks::prints()) {
        eprintln!("{n}");
    }
    let what = if spirals {
        "two-spirals".to_string()
    } else {
        a.data
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    ranks::start(data_fingerprint(&problem))?;
    let bar = super::progress::epoch_bar(!a.json && !a.quiet, 1, format!("simplex {what}"));
    let part = simplex::train_share(&cfg, &problem, share, &mut |t| {
        super::progress::show(&bar, t)
    })?;
    bar.finish_and_clear();
    ranks::fail_point("after its components")?;
    // Rank 0 gathers every rank's components (component c trains on rank c mod N).
    let parts = if w.size() == 1 {
        vec![part]
    } else {
        let Some(all) = w.gather(&distributed::encode(&part.encode()))? else {
            return Ok(());
        };
        all.iter()
            .map(|bytes| Part::decode(distributed::decode(bytes)?))
            .collect::<Result<_>>()?
    };
    let trained = simplex::assemble(&cfg, &problem, &spec, parts)?;
    let mut outputs = Outputs::new();
    if let Some(p) = &a.export {
        outputs.bytes(p, &trained.model.to_bytes()?)?;
    }
    if let Some(p) = &a.plot {
        outputs.with(p, |tmp| plot_regions(tmp, &trained.model, &problem))?;
    }
    outputs.commit()?;
    let r = &trained.report;
    if a.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("data".into(), what.clone().into());
            o.insert("model".into(), cfg.arch.name().into());
            o.insert("n_sample".into(), cfg.n_sample.into());
            o.insert("lmbd".into(), cfg.lmbd.into());
            o.insert("seed".into(), cfg.seed.into());
            o.insert("ranks".into(), w.size().into());
        }
        return super::report::json(&v);
    }
    if r.stopped {
        println!("stopped after epoch {} of {} (--stop-after; continue with --resume); the numbers below are this model's so far", r.history.len(), r.epochs);
    }
    println!(
        "{} of {} simplex(es) × {} vertices on {what} ({} train / {} test rows, {} parameters per vertex, {:.1} s)",
        r.driver, r.components, r.vertices, r.rows[0], r.rows[1], r.parameters, r.train_seconds
    );
    println!(
        "  simplex ensemble ({} points each): test accuracy {:.4}  NLL {:.4}  ECE {:.4}",
        r.points, r.test_accuracy, r.test_nll, r.ece
    );
    for (k, (l, n)) in r
        .vertex_train_loss
        .iter()
        .zip(&r.vertex_test_nll)
        .enumerate()
    {
        let f = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "  simplex {k}: vertex train loss {}  vertex test NLL {}",
            f(l),
            f(n)
        );
    }
    println!(
        "  interior points: mean train loss {:.4} (max {:.4})",
        r.interior_train_loss, r.interior_train_loss_max
    );
    for (c, v) in r.volume.iter().enumerate() {
        if !v.is_empty() {
            println!(
                "  V² of simplex {c} after each vertex: {}",
                v.iter()
                    .map(|x| format!("{x:.3e}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    println!(
        "  training cost: {} example forward passes ({:.1} epoch equivalents)",
        r.forward_passes, r.epoch_equivalents
    );
    for (what, p) in [("model", &a.export), ("plot", &a.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}

/// The data every rank must hold alike (the settings are compared through the command line).
fn data_fingerprint(p: &Problem) -> u64 {
    let mut bytes = Vec::new();
    for v in [&p.x_train, &p.x_test, &p.mean, &p.std] {
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    for y in [&p.y_train, &p.y_test] {
        bytes.extend(y.iter().flat_map(|&c| (c as u64).to_le_bytes()));
    }
    distributed::fingerprint(&bytes)
}

/// P(class 1) over the plane for component 0's vertex 0 and for the simplex ensemble.
fn plot_regions(path: &Path, model: &SimplexModel, p: &Problem) -> Result<()> {
    let xs_all = p.x_train.chunks_exact(2).chain(p.x_test.chunks_exact(2));
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for r in xs_all {
        for k in 0..2 {
            lo[k] = lo[k].min(r[k]);
            hi[k] = hi[k].max(r[k]);
        }
    }
    let g = 80;
    let axis = |k: usize| -> Vec<f64> {
        let pad = 0.05 * (hi[k] - lo[k]);
        (0..g)
            .map(|i| lo[k] - pad + (hi[k] - lo[k] + 2.0 * pad) * i as f64 / (g - 1) as f64)
            .collect()
    };
    let (xs, ys) = (axis(0), axis(1));
    let mut grid = Vec::with_capacity(g * g * 2);
    for &y in &ys {
        for &x in &xs {
            grid.extend([x, y]);
        }
    }
    let mut alpha = vec![0.0; model.vertices()];
    alpha[0] = 1.0;
    let field = |probs: Vec<f64>| -> Vec<Vec<f64>> {
        probs
            .chunks_exact(2)
            .map(|c| c[1])
            .collect::<Vec<_>>()
            .chunks(g)
            .map(<[f64]>::to_vec)
            .collect()
    };
    let vertex = field(model.point_probs(0, &alpha, &grid, g * g)?);
    let ensemble = field(model.predict_standardized(&grid, g * g)?);
    let pts: Vec<(f64, f64, usize)> = p
        .x_train
        .chunks_exact(2)
        .zip(&p.y_train)
        .map(|(r, &c)| (r[0], r[1], c))
        .collect();
    let title = format!(
        "simplex ensemble ({} × {} points)",
        model.components.len(),
        model.points.len()
    );
    keel::plot::plot_fields(
        path,
        &[
            keel::plot::Field {
                title: "one vertex: P(class 1)",
                xs: &xs,
                ys: &ys,
                values: &vertex,
            },
            keel::plot::Field {
                title: &title,
                xs: &xs,
                ys: &ys,
                values: &ensemble,
            },
        ],
        (0.0, 1.0),
        &pts,
        &[],
    )
}

fn slice_cmd(a: &SliceArgs) -> Result<()> {
    if let Some(p) = &a.plot {
        check_plot("--plot", p)?;
    }
    let corners: Vec<usize> = a
        .corners
        .split(',')
        .map(|s| s.trim().parse::<usize>().ok())
        .collect::<Option<_>>()
        .filter(|v: &Vec<usize>| v.len() == 3)
        .ok_or_else(|| {
            Error::invalid(
                "--corners",
                &a.corners,
                "expected three vertex indices, e.g. 0,1,2",
            )
        })?;
    if !(a.margin >= 0.0 && a.margin.is_finite()) {
        return Err(Error::invalid(
            "--margin",
            a.margin,
            "must be ≥ 0 and finite",
        ));
    }
    let model = simplex::load(&a.model).map_err(|e| match e {
        Error::Malformed { path, reason } => Error::invalid("--model", path.display(), reason),
        e => e,
    })?;
    let problem = simplex::data::rebuild(&model.spec, a.data.as_deref()).map_err(|e| match e {
        Error::Io { .. } if a.data.is_none() => Error::invalid(
            "--data",
            &model.spec.data,
            format!("the training data the model names cannot be read ({e}); give --data"),
        ),
        e => e,
    })?;
    let bar = super::progress::counted_bar(!a.json && !a.quiet, a.grid, "slice".into(), "rows");
    let s = simplex::surface::slice(
        &model,
        &problem,
        a.component,
        [corners[0], corners[1], corners[2]],
        a.grid.max(2),
        a.margin,
        &mut |t| super::progress::show(&bar, t),
    )
    .map_err(|e| match e {
        Error::InvalidInput {
            setting,
            value,
            reason,
        } => {
            let flag = match setting.as_str() {
                "component" => "--component",
                "grid" => "--grid",
                _ => "--corners",
            };
            Error::invalid(flag, value, reason)
        }
        e => e,
    })?;
    bar.finish_and_clear();
    if let Some(p) = &a.plot {
        let logs: Vec<Vec<f64>> = s
            .loss
            .iter()
            .map(|r| r.iter().map(|v| v.max(1e-12).log10()).collect())
            .collect();
        let lo = logs.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        let hi = logs
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let title = format!(
            "log10 train loss, simplex {} vertices {:?}",
            s.component, s.vertices
        );
        let marks: Vec<(f64, f64)> = s.corners.iter().map(|c| (c[0], c[1])).collect();
        keel::plot::plot_fields(
            p,
            &[keel::plot::Field {
                title: &title,
                xs: &s.xs,
                ys: &s.ys,
                values: &logs,
            }],
            (lo, hi),
            &[],
            &marks,
        )?;
    }
    if a.json {
        return super::report::json(&s);
    }
    println!(
        "loss over the plane of vertices {:?} of simplex {} ({}×{} grid)",
        s.vertices, s.component, a.grid, a.grid
    );
    println!(
        "  at the vertices {:.4} {:.4} {:.4}; at the centroid {:.4}; grid min {:.4} max {:.4}",
        s.corner_loss[0],
        s.corner_loss[1],
        s.corner_loss[2],
        s.centroid_loss,
        s.loss
            .iter()
            .flatten()
            .copied()
            .fold(f64::INFINITY, f64::min),
        s.loss
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    );
    if let Some(p) = &a.plot {
        println!("  plot: {}", p.display());
    }
    Ok(())
}
