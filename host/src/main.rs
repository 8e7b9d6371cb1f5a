//! The `keel` command: parses the command line and hands each subcommand to its file in
//! `cli/`, which turns flags into the library's typed configurations, draws progress and prints
//! results. Exit status: 0 success, 1 a run that failed on valid input (or a check that did not
//! pass), 2 bad input.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Simulate(Box<cli::simulate::SimulateArgs>),
    /// Train an MLP on a CSV table (classification or regression) and export it for the core.
    Fit(Box<cli::fit::FitArgs>),
    /// Show the compute backends this machine offers (CPU threads, GPUs, CUDA versions).
    Info(cli::info::InfoArgs),
    /// Bayesian neural networks: full-batch HMC, SGD, deep ensembles, SGLD/SGHMC, mean-field
    /// VI, their comparison, and the model average for the core.
    #[command(subcommand)]
    Bayes(cli::bayes::BayesCommand),
    /// Learned constrained dynamics (CHNN): train on the paper's systems, test by rollouts.
    #[command(subcommand)]
    Chnn(cli::chnn::ChnnCommand),
    /// Equivariant MLPs for matrix groups: bases of equivariant maps.
    #[command(subcommand)]
    Emlp(cli::emlp::EmlpCommand),
    /// Gaussian processes: regression (exact, dense SKI, WISKI with constant-time online
    /// updates), online learning and classification, Bayesian optimisation.
    #[command(subcommand)]
    Gp(cli::gp::GpCommand),
    /// Model-based reinforcement learning (SAC-SVG(H)) on the core's environments, and the
    /// evaluation of exported policies with the core's code.
    #[command(subcommand)]
    Rl(cli::rl::RlCommand),
    /// Check the Cortex-M4F firmware's output against the host.
    #[command(subcommand)]
    Firmware(cli::firmware::FirmwareCommand),
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
        Command::Simulate(args) => cli::simulate::run(args).map(|()| true),
        Command::Fit(args) => cli::fit::run(args).map(|()| true),
        Command::Info(args) => cli::info::run(args),
        Command::Bayes(cmd) => cli::bayes::run(cmd).map(|()| true),
        Command::Chnn(cmd) => cli::chnn::run(cmd).map(|()| true),
        Command::Emlp(cmd) => cli::emlp::run(cmd).map(|()| true),
        Command::Gp(cmd) => cli::gp::run(cmd).map(|()| true),
        Command::Rl(cmd) => cli::rl::run(cmd).map(|()| true),
        Command::Firmware(cmd) => cli::firmware::run(cmd),
    };
    cli::exit_code(result)
}
