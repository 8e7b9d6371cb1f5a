//! The `keel` command.
#![forbid(unsafe_code)]

mod bayes_cmd;
mod checkpoint_args;
mod chnn_cmd;
mod emlp_cmd;
mod gp_cmd;
mod rl_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keel::error::Error;
use keel::output::{check_writable, write_atomic};
use keel::plot::{plot_overview, plot_trajectory};
use keel::simulate::{
    parse_list, simulate, Dtype, InitSpec, IntegratorSpec, SimulateConfig, SystemKind,
    SystemParams, Trajectory,
};
use keel_core::dynamics::DipoleSign;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "Train on a workstation, run on a controller, prove both give the same numbers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a constrained mechanical system of the CHNN paper (or `paper`: all of them).
    Simulate(Box<SimulateArgs>),
    /// Train an MLP on a CSV table (classification or regression) and export it for the core.
    Fit(Box<FitArgs>),
    /// Show the compute backends this machine offers (CPU threads, GPUs, CUDA versions).
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Compile every CUDA kernel to PTX with NVRTC (no GPU needed) and report; fails with
        /// the compiler log if one does not compile.
        #[arg(long)]
        compile_kernels: bool,
        /// NVRTC target for --compile-kernels.
        #[arg(long, default_value = "compute_90")]
        arch: String,
    },
    /// Bayesian neural networks: full-batch HMC, SGD, deep ensembles, SGLD/SGHMC, mean-field
    /// VI, their comparison, and the model average for the core.
    #[command(subcommand)]
    Bayes(bayes_cmd::BayesCommand),
    /// Learned constrained dynamics (CHNN): train on the paper's systems, test by rollouts.
    #[command(subcommand)]
    Chnn(chnn_cmd::ChnnCommand),
    /// Equivariant MLPs for matrix groups: bases of equivariant maps.
    #[command(subcommand)]
    Emlp(emlp_cmd::EmlpCommand),
    /// Gaussian processes: regression (exact, dense SKI, WISKI with constant-time online
    /// updates), online learning and classification, Bayesian optimisation.
    #[command(subcommand)]
    Gp(gp_cmd::GpCommand),
    /// Model-based reinforcement learning (SAC-SVG(H)) on the core's environments, and the
    /// evaluation of exported policies with the core's code.
    #[command(subcommand)]
    Rl(rl_cmd::RlCommand),
    /// Check the Cortex-M4F firmware's output against the host.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Classify,
    Regress,
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Mse,
    Gaussian,
}

#[derive(Clone, Copy, ValueEnum)]
enum ActivationArg {
    Relu,
    Tanh,
    Sigmoid,
    Silu,
    Softplus,
    Identity,
}

impl From<ActivationArg> for keel::nn::Activation {
    fn from(a: ActivationArg) -> Self {
        use keel::nn::Activation;
        match a {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sigmoid => Activation::Sigmoid,
            ActivationArg::Silu => Activation::Silu,
            ActivationArg::Softplus => Activation::Softplus,
            ActivationArg::Identity => Activation::Identity,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
    Step,
}

#[derive(Args)]
struct FitArgs {
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// Target column.
    #[arg(long)]
    target: String,
    /// classify (cross-entropy) or regress.
    #[arg(long, value_enum)]
    task: TaskArg,
    /// Regression loss: mse, or gaussian (NLL with a learned variance head).
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossArg,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128,128")]
    hidden: String,
    /// Hidden activation.
    #[arg(long, value_enum, default_value = "relu")]
    activation: ActivationArg,
    /// Maximum epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    lr: f64,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    /// Weight decay (L2 for adam/sgd, decoupled for adamw).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    weight_decay: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Learning-rate schedule over epochs.
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    /// Clip the global gradient norm to this value.
    #[arg(long, allow_hyphen_values = true)]
    clip: Option<f64>,
    /// Seed for the split, initialisation and batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of rows held out for testing.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    test_fraction: f64,
    /// Fraction of the remaining rows held out for validation and early stopping.
    #[arg(long, default_value_t = 0.1, allow_hyphen_values = true)]
    val_fraction: f64,
    /// Stop after this many epochs without validation improvement (0: never).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Training precision.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where to train: auto (a GPU if usable, else the CPU with a notice), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Export the trained model (safetensors, loadable by keel-core).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Plot the learning curves.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum FirmwareCommand {
    /// Rerun the firmware's scenario on the host (same core code, f32) and compare final states.
    Check {
        /// File with the firmware's QEMU output (`firmware/run.sh --out FILE`); `-` for stdin.
        log: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
        /// Folder with the digits model and samples the firmware embeds.
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
}

#[derive(Clone, Copy, ValueEnum)]
enum IntegratorArg {
    Dopri5,
    Rk4,
    #[value(name = "rk4-38")]
    Rk438,
    Leapfrog,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    F64,
}

#[derive(Clone, Copy, ValueEnum)]
enum SignArg {
    Physical,
    Reference,
}

#[derive(Args)]
struct SimulateArgs {
    /// chain-pendulum, coupled-pendulum, magnet-pendulum, gyroscope, rotor — or `paper` to run
    /// every paper system and print a table.
    system: String,

    // --- system parameters (omitted: the paper's defaults) ---
    /// Chain links (1–6).
    #[arg(long, help_heading = "System")]
    links: Option<usize>,
    /// Coupled-pendulum bobs (1–6).
    #[arg(long, help_heading = "System")]
    bobs: Option<usize>,
    /// Bob masses, one per link/bob (kg).
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    masses: Option<String>,
    /// Lengths pivot→bob 1, bob 1→bob 2, … (m).
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    lengths: Option<String>,
    /// Body mass (magnet pendulum, gyroscope, rotor) (kg).
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    mass: Option<f64>,
    /// Gravitational acceleration (m/s²); coupled pendulum default 10 as in the paper's code.
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    gravity: Option<f64>,
    /// Spring stiffness of the coupled pendulum (N/m).
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    spring_k: Option<f64>,
    /// Dipole strength of the magnet pendulum.
    #[arg(long, allow_hyphen_values = true, help_heading = "System")]
    q: Option<f64>,
    /// Dipole–dipole energy sign: physical, or the reference code's.
    #[arg(long, value_enum, default_value = "physical", help_heading = "System")]
    dipole_sign: SignArg,

    // --- initial state (omitted: sampled with --seed) ---
    /// Chain: link angles from the downward vertical (rad), comma-separated.
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    angles: Option<String>,
    /// Chain: angular velocities (rad/s).
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    angular_velocities: Option<String>,
    /// Magnet/coupled: spherical angles φ,θ per bob ((π, π/2) hangs down).
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    spherical: Option<String>,
    /// Magnet/coupled: spherical rates φ̇,θ̇ per bob.
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    spherical_rates: Option<String>,
    /// Gyroscope/rotor: ZXZ Euler angles φ,θ,ψ (rad).
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    euler: Option<String>,
    /// Gyroscope/rotor: Euler-angle rates.
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    euler_rates: Option<String>,
    /// Rotor: centre-of-mass position.
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    com: Option<String>,
    /// Rotor: centre-of-mass velocity.
    #[arg(long, allow_hyphen_values = true, help_heading = "Initial state")]
    com_velocity: Option<String>,
    /// JSON file with Cartesian "x" and "v" (or a `--json` output: its last row is used).
    #[arg(long, help_heading = "Initial state")]
    init: Option<PathBuf>,
    /// Project an --init state onto the constraints instead of rejecting it.
    #[arg(long, help_heading = "Initial state")]
    project: bool,
    /// Largest constraint violation accepted from --init.
    #[arg(long, default_value_t = 1e-6, help_heading = "Initial state")]
    manifold_tol: f64,
    /// Seed for sampled initial states.
    #[arg(long, default_value_t = 0, help_heading = "Initial state")]
    seed: u64,

    // --- integration ---
    /// End time (s); default: the paper's trajectory length for the system.
    #[arg(long, allow_hyphen_values = true, help_heading = "Integration")]
    t_end: Option<f64>,
    /// Output interval (s); default: the paper's sampling interval.
    #[arg(long, allow_hyphen_values = true, help_heading = "Integration")]
    dt: Option<f64>,
    /// Integrator.
    #[arg(
        long,
        value_enum,
        default_value = "dopri5",
        help_heading = "Integration"
    )]
    integrator: IntegratorArg,
    /// Dopri5 relative tolerance.
    #[arg(
        long,
        default_value_t = 1e-10,
        allow_hyphen_values = true,
        help_heading = "Integration"
    )]
    rtol: f64,
    /// Dopri5 absolute tolerance.
    #[arg(
        long,
        default_value_t = 1e-10,
        allow_hyphen_values = true,
        help_heading = "Integration"
    )]
    atol: f64,
    /// Fixed-step integrators: steps per output interval.
    #[arg(long, default_value_t = 1, help_heading = "Integration")]
    substeps: usize,
    /// Scalar type (f32 is what the controller runs).
    #[arg(long, value_enum, default_value = "f64", help_heading = "Integration")]
    dtype: DtypeArg,

    // --- output ---
    /// Print one JSON object on stdout.
    #[arg(long, help_heading = "Output")]
    json: bool,
    /// Write the trajectory as CSV.
    #[arg(long, help_heading = "Output")]
    csv: Option<PathBuf>,
    /// Write a PNG plot (trajectories, energy error, constraint violation).
    #[arg(long, help_heading = "Output")]
    plot: Option<PathBuf>,
}

fn list(flag: &str, v: &Option<String>) -> Result<Option<Vec<f64>>, Error> {
    v.as_deref().map(|s| parse_list(flag, s)).transpose()
}

impl SimulateArgs {
    fn config(&self, system: SystemKind) -> Result<SimulateConfig, Error> {
        let (dt, t_end) = system.paper_grid();
        let integrator = match self.integrator {
            IntegratorArg::Dopri5 => IntegratorSpec::Dopri5 {
                rtol: self.rtol,
                atol: self.atol,
            },
            IntegratorArg::Rk4 => IntegratorSpec::Rk4 {
                three_eighths: false,
                substeps: self.substeps,
            },
            IntegratorArg::Rk438 => IntegratorSpec::Rk4 {
                three_eighths: true,
                substeps: self.substeps,
            },
            IntegratorArg::Leapfrog => IntegratorSpec::Leapfrog {
                substeps: self.substeps,
            },
        };
        Ok(SimulateConfig {
            system,
            params: SystemParams {
                links: self.links,
                bobs: self.bobs,
                masses: list("--masses", &self.masses)?,
                lengths: list("--lengths", &self.lengths)?,
                mass: self.mass,
                gravity: self.gravity,
                spring_k: self.spring_k,
                q: self.q,
                dipole_sign: match self.dipole_sign {
                    SignArg::Physical => DipoleSign::Physical,
                    SignArg::Reference => DipoleSign::Reference,
                },
            },
            init: InitSpec {
                angles: list("--angles", &self.angles)?,
                angular_velocities: list("--angular-velocities", &self.angular_velocities)?,
                spherical: list("--spherical", &self.spherical)?,
                spherical_rates: list("--spherical-rates", &self.spherical_rates)?,
                euler: list("--euler", &self.euler)?,
                euler_rates: list("--euler-rates", &self.euler_rates)?,
                com: list("--com", &self.com)?,
                com_velocity: list("--com-velocity", &self.com_velocity)?,
                file: self.init.clone(),
                project: self.project,
                manifold_tol: self.manifold_tol,
            },
            seed: self.seed,
            t_end: self.t_end.unwrap_or(t_end),
            dt: self.dt.unwrap_or(dt),
            integrator,
            dtype: match self.dtype {
                DtypeArg::F32 => Dtype::F32,
                DtypeArg::F64 => Dtype::F64,
            },
        })
    }
}

fn csv(t: &Trajectory) -> String {
    let axes = ["x", "y", "z"];
    let mut header = vec!["t".to_string()];
    for prefix in ["", "v"] {
        for n in 0..t.nodes {
            for a in &axes[..t.dim] {
                header.push(format!("{prefix}{a}{}", n + 1));
            }
        }
    }
    header.push("energy".into());
    header.push("constraint_violation".into());
    let mut out = header.join(",");
    out.push('\n');
    for k in 0..t.t.len() {
        let row: Vec<String> = std::iter::once(t.t[k])
            .chain(t.x[k].iter().copied())
            .chain(t.v[k].iter().copied())
            .chain([t.energy[k], t.constraint_violation[k]])
            .map(|v| format!("{v:e}"))
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn describe(cfg: &SimulateConfig) -> String {
    let integ = match cfg.integrator {
        IntegratorSpec::Dopri5 { rtol, atol } => format!("dopri5 rtol={rtol:e} atol={atol:e}"),
        IntegratorSpec::Rk4 { substeps, .. } | IntegratorSpec::Leapfrog { substeps } => {
            format!("{} h={:e}", cfg.integrator.name(), cfg.dt / substeps as f64)
        }
    };
    let dtype = if cfg.dtype == Dtype::F32 {
        "f32"
    } else {
        "f64"
    };
    format!("{integ}, {dtype}")
}

fn summary(cfg: &SimulateConfig, t: &Trajectory) -> String {
    let s = &t.stats;
    let mut out = format!(
        "{} — {} nodes × {}-D, {} constraints; {}\n",
        t.system,
        t.nodes,
        t.dim,
        s.constraints,
        describe(cfg)
    );
    out += &format!(
        "  t = 0 → {} s: {} rows, {} steps ({} rejected), {} evaluations, {:.2} ms\n",
        cfg.t_end,
        t.t.len(),
        s.steps,
        s.rejected,
        s.evaluations,
        s.seconds * 1e3
    );
    out += &format!(
        "  energy E₀ = {:.10} J, max |E − E₀|/|E₀| = {:.2e}\n  max constraint violation max(|Φ|, |Φ̇|) = {:.2e}\n",
        t.energy[0],
        t.max_energy_drift(),
        t.max_violation()
    );
    if let Some(last) = t.x.last() {
        let nodes: Vec<String> = last
            .chunks(t.dim)
            .map(|n| {
                format!(
                    "({})",
                    n.iter()
                        .map(|v| format!("{v:.6}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        out += &format!("  final positions: {}\n", nodes.join(" "));
    }
    out
}

fn run_simulate(args: &SimulateArgs) -> Result<(), Error> {
    for (flag, path) in [("--csv", &args.csv), ("--plot", &args.plot)] {
        if let Some(p) = path {
            check_writable(flag, p)?;
        }
    }
    if args.system == "paper" || args.system == "all" {
        return run_paper(args);
    }
    let system: SystemKind = args.system.parse()?;
    let cfg = args.config(system)?;
    let traj = simulate(&cfg)?;
    if let Some(p) = &args.csv {
        write_atomic(p, csv(&traj).as_bytes())?;
    }
    if let Some(p) = &args.plot {
        let title = format!("{} ({})", traj.system, describe(&cfg));
        plot_trajectory(p, &traj, &title)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&traj).map_err(|e| Error::invalid(
                "--json",
                "",
                e.to_string()
            ))?
        );
    } else {
        print!("{}", summary(&cfg, &traj));
        for (what, p) in [("csv", &args.csv), ("plot", &args.plot)] {
            if let Some(p) = p {
                println!("  {what}: {}", p.display());
            }
        }
    }
    Ok(())
}

/// The paper's systems with the paper's sizes.
fn paper_cases() -> Vec<(String, SystemKind, Option<usize>)> {
    let mut v: Vec<_> = [1, 2, 3, 5]
        .into_iter()
        .map(|n| (format!("{n}-pendulum"), SystemKind::ChainPendulum, Some(n)))
        .collect();
    v.push((
        "3-coupled-pendulum".into(),
        SystemKind::CoupledPendulum,
        None,
    ));
    v.push(("magnet-pendulum".into(), SystemKind::MagnetPendulum, None));
    v.push(("gyroscope".into(), SystemKind::Gyroscope, None));
    v.push(("rotor".into(), SystemKind::Rotor, None));
    v
}

fn run_paper(args: &SimulateArgs) -> Result<(), Error> {
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for (label, kind, links) in paper_cases() {
        let mut cfg = SimulateConfig::paper(kind, args.seed);
        cfg.params.links = links;
        cfg.params.dipole_sign = match args.dipole_sign {
            SignArg::Physical => DipoleSign::Physical,
            SignArg::Reference => DipoleSign::Reference,
        };
        cfg.integrator = IntegratorSpec::Dopri5 {
            rtol: args.rtol,
            atol: args.atol,
        };
        let t = simulate(&cfg)?;
        rows.push(serde_json::json!({
            "system": label,
            "nodes": t.nodes, "dim": t.dim, "constraints": t.stats.constraints,
            "t_end": cfg.t_end, "dt": cfg.dt,
            "steps": t.stats.steps, "evaluations": t.stats.evaluations,
            "energy_drift": t.max_energy_drift(), "max_violation": t.max_violation(),
            "seconds": t.stats.seconds,
        }));
        runs.push((label, t));
    }
    if let Some(p) = &args.plot {
        plot_overview(p, &runs)?;
    }
    if args.json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    println!(
        "The CHNN paper's systems in Cartesian coordinates with explicit constraints\n\
         (dopri5 rtol={:e} atol={:e}, f64, sampled initial state seed {}):\n",
        args.rtol, args.atol, args.seed
    );
    println!(
        "{:<20} {:>9} {:>4} {:>6} {:>6} {:>8} {:>14} {:>14} {:>9}",
        "system", "nodes×dim", "C", "T (s)", "steps", "f evals", "max ΔE/|E₀|", "max |Φ|,|Φ̇|", "ms"
    );
    for (label, t) in &runs {
        println!(
            "{:<20} {:>9} {:>4} {:>6} {:>6} {:>8} {:>14.2e} {:>14.2e} {:>9.2}",
            label,
            format!("{}×{}", t.nodes, t.dim),
            t.stats.constraints,
            t.t.last().copied().unwrap_or(0.0),
            t.stats.steps,
            t.stats.evaluations,
            t.max_energy_drift(),
            t.max_violation(),
            t.stats.seconds * 1e3
        );
    }
    if let Some(p) = &args.plot {
        println!("\nplot: {}", p.display());
    }
    Ok(())
}

fn run_firmware_check(log: &Path, json: bool, assets: &Path) -> Result<bool, Error> {
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
    let model = keel::firmware::check_model(&keel::firmware::parse_model(&text)?, assets)?;
    let emlp = keel::firmware::check_emlp(&keel::firmware::parse_emlp(&text)?, assets)?;
    let gp = keel::firmware::check_gp(&keel::firmware::parse_gp(&text)?)?;
    let chnn_run = keel::firmware::parse_chnn(&text)?;
    let chnn = keel::firmware::check_chnn(&chnn_run, assets)?;
    let bma = keel::firmware::check_bma(&keel::firmware::parse_bma(&text)?, assets)?;
    let policy = keel::firmware::check_policy(&keel::firmware::parse_policy(&text)?, assets)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"dynamics": c, "model": model, "emlp": emlp, "gp": gp, "chnn": chnn, "bma": bma, "policy": policy})
        );
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
        println!(
            "EMLP O(5) 2V → V⁰ (embedded keel emlp export) on {} inputs: max |fw − host|/(1 + |host|) = {:.3e}, \
             invariance max |f(gx) − f(x)|/(1 + |f(x)|) = {:.3e} (tolerance {:e}): {}",
            emlp.host.len(),
            emlp.relative_error,
            emlp.invariance_error,
            emlp.tolerance,
            if emlp.pass { "PASS" } else { "FAIL" }
        );
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
        println!(
            "CHNN 2-pendulum (embedded keel chnn export, 3 × 256) for {} RK4 steps: final state \
             ‖fw − host‖/‖host‖ = {:.3e} (tolerance {:e}): {}; the learned model vs the real pendulum: {:.3e}",
            chnn_run.steps,
            chnn.relative_error,
            chnn.tolerance,
            if chnn.pass { "PASS" } else { "FAIL" },
            chnn.model_error
        );
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
    Ok(c.pass && model.pass && emlp.pass && gp.pass && chnn.pass && bma.pass && policy.pass)
}

fn run_fit(args: &FitArgs) -> Result<(), Error> {
    use keel::fit::{fit, FitConfig, RegressionLoss, Task};
    use keel::optim::{OptimizerKind, Schedule};
    for (flag, path) in [("--export", &args.export), ("--plot", &args.plot)] {
        if let Some(p) = path {
            check_writable(flag, p)?;
        }
    }
    let (device, notice) = args
        .device
        .parse::<keel::backend::DeviceRequest>()?
        .resolve()?;
    let hidden = args
        .hidden
        .split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                Error::invalid(
                    "--hidden",
                    &args.hidden,
                    format!("'{s}' is not a whole number"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(args.weight_decay >= 0.0) {
        return Err(Error::invalid(
            "--weight-decay",
            args.weight_decay,
            "must be ≥ 0",
        ));
    }
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: args.weight_decay,
        },
        OptimizerArg::Adamw => OptimizerKind::adamw(args.weight_decay),
        OptimizerArg::Sgd => OptimizerKind::Sgd {
            momentum: args.momentum,
            nesterov: false,
            weight_decay: args.weight_decay,
        },
    };
    let schedule = match args.schedule {
        ScheduleArg::Constant => Schedule::Constant,
        ScheduleArg::Cosine => Schedule::Cosine {
            total: args.epochs,
            min_lr: 0.0,
        },
        ScheduleArg::Step => Schedule::Step {
            step_size: (args.epochs / 3).max(1),
            gamma: 0.1,
        },
    };
    let cfg = FitConfig {
        data: args.data.clone(),
        target: args.target.clone(),
        task: match args.task {
            TaskArg::Classify => Task::Classify,
            TaskArg::Regress => Task::Regress,
        },
        loss: match args.loss {
            LossArg::Mse => RegressionLoss::Mse,
            LossArg::Gaussian => RegressionLoss::Gaussian,
        },
        hidden,
        activation: args.activation.into(),
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        optimizer,
        schedule,
        clip: args.clip,
        seed: args.seed,
        test_fraction: args.test_fraction,
        val_fraction: args.val_fraction,
        patience: args.patience,
        dtype: match args.dtype {
            DtypeArg::F32 => keel::DType::F32,
            DtypeArg::F64 => keel::DType::F64,
        },
        progress: !args.json,
        device,
        notice,
    };
    let fitted = fit(&cfg)?;
    if let Some(p) = &args.export {
        keel::export::write_mlp(
            p,
            &fitted.mlp,
            &fitted.params,
            &fitted.config,
            &fitted.stats,
        )?;
    }
    if let Some(p) = &args.plot {
        keel::plot::plot_learning_curves(
            p,
            &fitted.report.history,
            &format!("keel fit {}", args.data.display()),
        )?;
    }
    let r = &fitted.report;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(r).map_err(|e| Error::invalid("--json", "", e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{} on {}: {} epochs (best {}), {:.2} s; {} parameters; rows train/val/test {}/{}/{}",
        if cfg.task == Task::Classify {
            "classification"
        } else {
            "regression"
        },
        args.data.display(),
        r.epochs,
        r.best_epoch,
        r.train_seconds,
        r.parameters,
        r.rows[0],
        r.rows[1],
        r.rows[2]
    );
    if let Some(a) = r.test_accuracy {
        println!("  test accuracy {a:.4}");
    }
    if let Some(v) = r.test_rmse {
        println!("  test RMSE {v:.4}");
    }
    if let Some(v) = r.test_nll {
        println!("  test NLL {v:.4}");
    }
    if let Some(v) = r.ece {
        println!("  test ECE (15 bins) {v:.4}");
    }
    for (what, p) in [("model", &args.export), ("plot", &args.plot)] {
        if let Some(p) = p {
            println!("  {what}: {}", p.display());
        }
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn run_info(json: bool, compile_kernels: bool, arch: &str) -> Result<bool, Error> {
    use keel::backend::cuda;
    let threads = rayon::current_num_threads();
    let probe = cuda::probe();
    let versions = cuda::versions();
    let compiled = cfg!(feature = "cuda");
    let kernels = if compile_kernels {
        let arch: &'static str = match arch {
            "compute_75" => "compute_75",
            "compute_80" => "compute_80",
            "compute_86" => "compute_86",
            "compute_89" => "compute_89",
            "compute_90" => "compute_90",
            "compute_100" => "compute_100",
            "compute_120" => "compute_120",
            other => {
                return Err(Error::invalid(
                    "--arch",
                    other,
                    "expected compute_75, _80, _86, _89, _90, _100 or _120",
                ))
            }
        };
        Some(cuda::compile_all_kernels(arch)?)
    } else {
        None
    };
    if json {
        let gpus = match &probe {
            Ok(g) => serde_json::json!(g.iter().map(|g| serde_json::json!({"ordinal": g.ordinal, "name": g.name, "memory_bytes": g.total_mem, "compute_capability": [g.compute_capability.0, g.compute_capability.1]})).collect::<Vec<_>>()),
            Err(_) => serde_json::json!([]),
        };
        let v = serde_json::json!({
            "cpu": {"model": cpu_model(), "threads": threads},
            "cuda_compiled": compiled,
            "gpus": gpus,
            "gpu_unavailable_reason": probe.as_ref().err(),
            "cuda_driver_version": versions.driver,
            "nvrtc_version": versions.nvrtc.map(|(a, b)| format!("{a}.{b}")),
            "kernels_ptx_bytes": kernels.as_ref().map(|k| k.iter().map(|(f, n)| (f.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>()),
        });
        println!("{v}");
        return Ok(true);
    }
    println!(
        "keel {} — compute backends on this machine",
        env!("CARGO_PKG_VERSION")
    );
    println!("  CPU: {} ({threads} threads for Keel)", cpu_model());
    println!(
        "  CUDA support compiled in: {}",
        if compiled {
            "yes (cudarc, libraries loaded at run time)"
        } else {
            "no"
        }
    );
    match &probe {
        Ok(gpus) => {
            for g in gpus {
                println!(
                    "  GPU cuda:{}: {}, {:.1} GiB, compute capability {}.{}",
                    g.ordinal,
                    g.name,
                    g.total_mem as f64 / (1u64 << 30) as f64,
                    g.compute_capability.0,
                    g.compute_capability.1
                );
            }
        }
        Err(reason) => println!("  GPU: none usable — {reason}"),
    }
    let dv = versions
        .driver
        .map(|d| format!("{}.{}", d / 1000, (d % 1000) / 10))
        .unwrap_or_else(|| "not found".into());
    let nv = versions
        .nvrtc
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|| "not found".into());
    println!("  CUDA driver: {dv}; NVRTC: {nv}");
    if let Some(k) = kernels {
        println!("  kernels compiled to PTX for {arch}:");
        for (family, bytes) in k {
            println!("    cuda/{family}.cu → {bytes} bytes of PTX");
        }
    }
    Ok(true)
}

/// Help and version go to stdout (exit 0); a usage error is one line on stderr naming the flag,
/// with the accepted values where clap knows them (exit 2).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's message up to the usage block, on one line: the error, then its list or tip.
    let text = e.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !l.is_empty() {
            parts.push(l);
        }
    }
    let mut line = if parts.is_empty() {
        "error: invalid command line".to_string()
    } else {
        parts.join(" ")
    };
    line = line.replace("tip: ", "— ");
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
        if !values.is_empty() && !line.contains("possible values") {
            line.push_str(&format!(" (possible values: {})", values.join(", ")));
        }
    }
    eprintln!("{line}");
    ExitCode::from(2)
}

/// Exit status of a process whose output pipe closed (as if killed by SIGPIPE: 128 + 13).
const BROKEN_PIPE_STATUS: i32 = 141;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `keel … | head` would end in a panic from `println!` once `head`
    // exits. Leave quietly instead, with the status a SIGPIPE'd process has; every other panic
    // goes to the default hook.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE_STATUS);
        }
        default_hook(info);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match &cli.command {
        Command::Simulate(args) => run_simulate(args).map(|()| true),
        Command::Fit(args) => run_fit(args).map(|()| true),
        Command::Info {
            json,
            compile_kernels,
            arch,
        } => run_info(*json, *compile_kernels, arch),
        Command::Bayes(cmd) => bayes_cmd::run(cmd).map(|()| true),
        Command::Chnn(cmd) => chnn_cmd::run(cmd).map(|()| true),
        Command::Emlp(cmd) => emlp_cmd::run(cmd).map(|()| true),
        Command::Gp(cmd) => gp_cmd::run(cmd).map(|()| true),
        Command::Rl(cmd) => rl_cmd::run(cmd).map(|()| true),
        Command::Firmware(FirmwareCommand::Check { log, json, assets }) => {
            run_firmware_check(log, *json, assets)
        }
        Command::Firmware(FirmwareCommand::Assets { data, out }) => {
            keel::firmware::write_digits_assets(data, out)
                .and_then(|r| keel::firmware::write_emlp_assets(out).map(|mse| (r, mse)))
                .map(|(r, mse)| {
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
                    true
                })
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(keel::Error::Engine(e)) if e.is_device_error() => {
            eprintln!("error: --device: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_input_error() { 2 } else { 1 })
        }
    }
}
