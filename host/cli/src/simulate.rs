//! `keel simulate`: the CHNN paper's constrained systems, integrated by the core.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use keel::error::Result;
use keel::output::{check_plot, check_writable, Outputs};
use keel::plot::{plot_overview, plot_trajectory};
use keel::simulate::{
    parse_list, simulate, Dtype, InitSpec, IntegratorSpec, SimulateConfig, SystemKind,
    SystemParams, Trajectory,
};
use keel_core::dynamics::DipoleSign;

use super::values::DtypeArg;

/// The CHNN paper's systems, or all of them.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SystemArg {
    ChainPendulum,
    CoupledPendulum,
    MagnetPendulum,
    Gyroscope,
    Rotor,
    /// Every system of the paper, with the paper's sizes, as a table.
    #[value(alias = "all")]
    Paper,
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
enum SignArg {
    Physical,
    Reference,
}

#[derive(Args)]
pub struct SimulateArgs {
    /// The system — or `paper` to run every paper system and print a table.
    #[arg(value_enum)]
    system: SystemArg,

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
    #[arg(long, default_value_t = 1, help_heading = "Integration", value_parser = super::values::at_least_one)]
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

fn list(flag: &str, v: &Option<String>) -> Result<Option<Vec<f64>>> {
    v.as_deref().map(|s| parse_list(flag, s)).transpose()
}

impl SimulateArgs {
    fn config(&self, system: SystemKind) -> Result<SimulateConfig> {
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

/// Runs `keel simulate`.
pub fn run(args: &SimulateArgs) -> Result<()> {
    if let Some(p) = &args.csv {
        check_writable("--csv", p)?;
    }
    if let Some(p) = &args.plot {
        check_plot("--plot", p)?;
    }
    let system = match args.system {
        SystemArg::Paper => return run_paper(args),
        SystemArg::ChainPendulum => SystemKind::ChainPendulum,
        SystemArg::CoupledPendulum => SystemKind::CoupledPendulum,
        SystemArg::MagnetPendulum => SystemKind::MagnetPendulum,
        SystemArg::Gyroscope => SystemKind::Gyroscope,
        SystemArg::Rotor => SystemKind::Rotor,
    };
    let cfg = args.config(system)?;
    let traj = simulate(&cfg)?;
    let mut outputs = Outputs::new();
    if let Some(p) = &args.csv {
        outputs.bytes(p, csv(&traj).as_bytes())?;
    }
    if let Some(p) = &args.plot {
        let title = format!("{} ({})", traj.system, describe(&cfg));
        outputs.with(p, |tmp| plot_trajectory(tmp, &traj, &title))?;
    }
    outputs.commit()?;
    if args.json {
        super::report::json(&traj)?;
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

fn run_paper(args: &SimulateArgs) -> Result<()> {
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
        super::report::json(&rows)?;
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
