//! The `keel` command as a library: [`run`] parses a command line and runs the command, printing
//! as the `keel` binary does; [`run_captured`] runs it on this thread and hands back its `--json`
//! report instead of printing it (the Python package's training entry points call it). One file
//! per subcommand turns flags into the library's typed configurations, draws progress and prints
//! results; the `keel` library knows no flag. Exit status: 0 success, 1 a run that failed on
//! valid input (or a check that did not pass), 2 bad input.
#![forbid(unsafe_code)]

pub mod augerino;
pub mod bayes;
pub mod checkpoint;
pub mod chnn;
pub mod distill;
pub mod emlp;
pub mod exit;
pub mod firmware;
pub mod fit;
pub mod gan;
pub mod gp;
pub mod info;
#[cfg(feature = "mpi")]
pub mod mpi_world;
pub mod ntk;
pub mod progress;
pub mod ranks;
pub mod report;
pub mod rl;
pub mod simplex;
pub mod simulate;
pub mod values;

use clap::{Parser, Subcommand};
pub use exit::CliFailure;
use serde_json::Value;

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
    Simulate(Box<simulate::SimulateArgs>),
    /// Train an MLP on a CSV table, or a CNN on images (CSV with --image-shape, IDX, CIFAR-10),
    /// and export it for the core.
    Fit(Box<fit::FitArgs>),
    /// Show the compute backends this machine offers (CPU threads, GPUs, CUDA versions).
    Info(info::InfoArgs),
    /// Bayesian neural networks: full-batch HMC, SGD, deep ensembles, SGLD/SGHMC, mean-field
    /// VI, their comparison, and the model average for the core.
    #[command(subcommand)]
    Bayes(bayes::BayesCommand),
    /// Learned constrained dynamics (CHNN): train on the paper's systems, test by rollouts.
    #[command(subcommand)]
    Chnn(chnn::ChnnCommand),
    /// Equivariant MLPs for matrix groups: bases of equivariant maps.
    #[command(subcommand)]
    Emlp(emlp::EmlpCommand),
    /// Gaussian processes: regression (exact, dense SKI, WISKI with constant-time online
    /// updates), online learning and classification, Bayesian optimisation.
    #[command(subcommand)]
    Gp(gp::GpCommand),
    /// Model-based reinforcement learning (SAC-SVG(H)) on the core's environments, and the
    /// evaluation of exported policies with the core's code.
    #[command(subcommand)]
    Rl(rl::RlCommand),
    /// Learned invariances (Augerino): CNNs with learned affine augmentation widths on the
    /// paper's generated image sets, beside a plain CNN and fixed rotation augmentation.
    #[command(subcommand)]
    Augerino(augerino::AugerinoCommand),
    /// Loss-surface simplexes: SPRO, ensembles of simplexes (ESPRO), mode-connecting
    /// complexes, and loss slices through three vertices.
    #[command(subcommand)]
    Simplex(simplex::SimplexCommand),
    /// Knowledge distillation: a student network trained to match a teacher (a keel fit model,
    /// a keel bayes sample set, a simplex ensemble), with its fidelity and generalisation.
    Distill(Box<distill::DistillArgs>),
    /// GANs with sample re-weighting and probability-ratio clipping (WGAN-GP, reweight, ppo) on
    /// the 8-Gaussian ring or images, and samples from a saved generator.
    #[command(subcommand)]
    Gan(gan::GanCommand),
    /// Linearized networks (the finite NTK): adapt a trained network to new tasks from a few
    /// points by its linearization's GP posterior, with error bars, without retraining.
    #[command(subcommand)]
    Ntk(ntk::NtkCommand),
    /// Check the Cortex-M4F firmware's output against the host.
    #[command(subcommand)]
    Firmware(firmware::FirmwareCommand),
}

/// Help and version are printed on stdout (exit 0; help for a command given without its
/// subcommand goes to stderr, exit 2); a usage error is one line naming the flag, with the accepted values
/// where clap knows them (exit 2).
fn usage_error(e: clap::Error) -> Result<(), CliFailure> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            Err(CliFailure {
                exit_code: 2,
                message: String::new(),
            })
        } else {
            Ok(())
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
    Err(CliFailure {
        exit_code: 2,
        message: line.strip_prefix("error: ").unwrap_or(&line).to_string(),
    })
}

/// Parses `args` (the command line, the program's name first, as `std::env::args_os` gives it)
/// and runs the command: its results on stdout, progress and notices on stderr.
///
/// # Errors
/// The exit status and error line of a command that did not succeed (the error line is not
/// printed: the caller prints it, as the binary does, or raises it).
pub fn run<I, T>(args: I) -> Result<(), CliFailure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return ranks::finish(usage_error(e)),
    };
    // A cap on the CPU kernels' vector level that is not one is bad input before any work.
    if let Err(message) = keel::backend::cpu::isa::cap_from_env() {
        return ranks::finish(Err(CliFailure {
            exit_code: 2,
            message,
        }));
    }
    let result = match &cli.command {
        // Over several MPI ranks only the commands that split their work run.
        Command::Info(_)
        | Command::Bayes(bayes::BayesCommand::Hmc(_))
        | Command::Bayes(bayes::BayesCommand::Sgd(_))
        | Command::Bayes(bayes::BayesCommand::Ensemble(_))
        | Command::Bayes(bayes::BayesCommand::Sgld(_))
        | Command::Bayes(bayes::BayesCommand::Sghmc(_))
        | Command::Simplex(simplex::SimplexCommand::Train(_))
        | Command::Rl(rl::RlCommand::Train(_)) => Ok(()),
        _ => ranks::alone(&format!(
            "keel {}",
            args.iter()
                .skip(1)
                .take(2)
                .map(|a| a.to_string_lossy())
                .take_while(|a| !a.starts_with('-'))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
    .and_then(|()| match &cli.command {
        Command::Simulate(a) => simulate::run(a).map(|()| true),
        Command::Fit(a) => fit::run(a).map(|()| true),
        Command::Info(a) => info::run(a),
        Command::Bayes(cmd) => bayes::run(cmd).map(|()| true),
        Command::Chnn(cmd) => chnn::run(cmd).map(|()| true),
        Command::Emlp(cmd) => emlp::run(cmd).map(|()| true),
        Command::Gp(cmd) => gp::run(cmd).map(|()| true),
        Command::Rl(cmd) => rl::run(cmd).map(|()| true),
        Command::Augerino(cmd) => augerino::run(cmd).map(|()| true),
        Command::Simplex(cmd) => simplex::run(cmd).map(|()| true),
        Command::Distill(a) => distill::run(a).map(|()| true),
        Command::Gan(cmd) => gan::run(cmd).map(|()| true),
        Command::Ntk(cmd) => ntk::run(cmd).map(|()| true),
        Command::Firmware(cmd) => firmware::run(cmd),
    });
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ranks::finish(exit::outcome(result, &args))
}

/// Runs a command as [`run`] does, on this thread, and returns the report it gives with
/// `--json` instead of printing it (`Null` for a command that gave none, such as one run
/// without `--json` or `--help`). Human-readable output, progress and
/// notices still go to stdout and stderr.
///
/// # Errors
/// As [`run`]: the exit status and error line of a command that did not succeed.
pub fn run_captured<I, T>(args: I) -> Result<Value, CliFailure>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    let (result, report) = report::capture(|| run(args));
    result.map(|()| report)
}
