//! The processes a command runs on: this one alone, or — in a build with the `mpi` feature
//! started by an MPI launcher (`mpirun -np N keel …`, `srun`) — the ranks of the job.
//!
//! How a job ends is decided together, so that bad input gives one line from rank 0 and the
//! same exit status on every rank, never a hang:
//! - Before its first collective operation a command that runs on several ranks calls
//!   [`start`] with the fingerprint of its data and settings. Every rank says whether it got
//!   there, and with which fingerprint; if a rank failed before (a file it could not read, a
//!   flag it refused) or holds other data, every rank ends with that rank's exit status and rank
//!   0 prints the one line.
//! - A rank whose command fails without reaching [`start`] takes part in the same exchange from
//!   [`finish`]; so does a rank whose command needs none (`keel info`).
//! - A rank that fails after [`start`] — while the others may wait for it in a sum — prints its
//!   error with its rank and ends the job with `MPI_Abort`.
//!
//! `KEEL_MPI_FAIL_RANK=r` makes rank `r` fail on purpose after its first iteration (the check
//! that a failing rank ends the job instead of hanging it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use keel::distributed::{Collective, Single};
use keel::error::{Error, Result};

use crate::exit::CliFailure;

/// Whether MPI was initialised for this process (by [`init`]).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether the ranks agreed to start ([`start`]): a failure after this aborts the job.
static STARTED: AtomicBool = AtomicBool::new(false);
/// The outcome the ranks agreed on in an exchange that ended the command.
static DECIDED: Mutex<Option<CliFailure>> = Mutex::new(None);

/// The launcher's environment variables that give the number of processes (Open MPI's
/// `mpirun`, MPICH's Hydra and Slurm's PMI-2, in that order).
const SIZE_VARIABLES: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The launchers' variables that give a process's rank among those on its node (Open MPI,
/// MPICH's Hydra, Slurm).
const LOCAL_RANK_VARIABLES: [&str; 3] = [
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "SLURM_LOCALID",
];

/// A `--device` value, with `cuda:local` read as `cuda:<this process's rank on its node>` (0
/// for a process on its own): one process per GPU under a launcher, every rank given the same
/// command line.
///
/// # Errors
/// An unknown device name.
pub fn device(value: &str) -> Result<keel::backend::DeviceRequest> {
    let local;
    let value = if value.trim() == "cuda:local" {
        local = format!("cuda:{}", launched(&LOCAL_RANK_VARIABLES).unwrap_or(0));
        &local
    } else {
        value
    };
    Ok(value.parse()?)
}

fn launched(vars: &[&str]) -> Option<usize> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| s.trim().parse().ok()))
}

/// The processes this command runs on.
pub fn world() -> &'static dyn Collective {
    #[cfg(feature = "mpi")]
    if ACTIVE.load(Ordering::Relaxed) {
        return &crate::mpi_world::Mpi;
    }
    &Single
}

/// Whether this process prints: rank 0, or a process on its own.
pub fn prints() -> bool {
    world().rank() == 0
}

/// Whether MPI support is compiled in.
pub const COMPILED: bool = cfg!(feature = "mpi");

/// Keeps MPI initialised; dropping it finalises MPI.
pub struct Guard {
    #[cfg(feature = "mpi")]
    _universe: Option<crate::mpi_world::Universe>,
}

/// Joins the job's ranks when a launcher started this process (a build with the `mpi`
/// feature); otherwise this process runs alone.
///
/// # Errors
/// A process started as one of several ranks by a build without MPI (exit 2, the line from
/// rank 0 only: the others could not agree on anything).
pub fn init() -> std::result::Result<Guard, CliFailure> {
    let size = launched(&SIZE_VARIABLES).unwrap_or(1);
    #[cfg(feature = "mpi")]
    {
        if size > 1 || std::env::var_os("PMIX_RANK").is_some() {
            let universe = crate::mpi_world::Mpi::init();
            ACTIVE.store(universe.is_some(), Ordering::Relaxed);
            return Ok(Guard {
                _universe: universe,
            });
        }
        Ok(Guard { _universe: None })
    }
    #[cfg(not(feature = "mpi"))]
    {
        if size > 1 {
            // This process's rank, from the same launchers.
            let rank = launched(&["OMPI_COMM_WORLD_RANK", "PMI_RANK"]).unwrap_or(0);
            return Err(CliFailure {
                exit_code: 2,
                message: if rank == 0 {
                    format!(
                        "this keel runs as one of {size} processes under an MPI launcher but was built without MPI support; build it with `cargo build --release -p keel-cli --features mpi` (needs an MPI library: Debian's libopenmpi-dev and libclang-dev), or run it as one process"
                    )
                } else {
                    String::new()
                },
            });
        }
        Ok(Guard {})
    }
}

/// The exchange every rank takes part in once: `status` 0 to go on, else its exit status;
/// `fingerprint` of its data and settings. Returns the failure every rank ends with, if any.
fn exchange(status: u8, message: &str, fingerprint: u64) -> Result<Option<CliFailure>> {
    let w = world();
    let statuses = w.all_gather(u64::from(status))?;
    let prints = w.rank() == 0;
    if let Some(first) = statuses.iter().position(|&s| s != 0) {
        let exit_code = u8::try_from(statuses[first]).unwrap_or(1);
        // Rank 0 prints the first failing rank's line.
        let lines = w.gather(message.as_bytes())?;
        let message = match lines {
            Some(lines) if prints => {
                let line = String::from_utf8_lossy(&lines[first]).into_owned();
                if first == 0 || line.is_empty() {
                    line
                } else {
                    format!("rank {first} of {}: {line}", w.size())
                }
            }
            _ => String::new(),
        };
        return Ok(Some(CliFailure { exit_code, message }));
    }
    let prints_of = w.all_gather(fingerprint)?;
    if let Some(other) = prints_of.iter().position(|&f| f != prints_of[0]) {
        return Ok(Some(CliFailure {
            exit_code: 2,
            message: if prints {
                format!(
                    "rank {other} of {} holds other data or settings than rank 0 (--data and every flag must be the same on every rank, and so must the file's contents)",
                    w.size()
                )
            } else {
                String::new()
            },
        }));
    }
    Ok(None)
}

/// Agrees with the other ranks to start the run: each brings the `fingerprint` of its data and
/// settings, combined here with its command line (every rank must be given the same). On one
/// process it does nothing.
///
/// # Errors
/// Another rank failed before starting, or holds other data (the outcome every rank ends with
/// is then already decided; this rank's error only stops the command).
pub fn start(fingerprint: u64) -> Result<()> {
    if world().size() == 1 {
        return Ok(());
    }
    // The command line too: ranks given other flags (a different --stop-after, say) would leave
    // each other waiting.
    let mut line = fingerprint.to_le_bytes().to_vec();
    for a in std::env::args_os() {
        line.extend(a.as_encoded_bytes());
        line.push(0);
    }
    match exchange(0, "", keel::distributed::fingerprint(&line))? {
        None => {
            STARTED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Some(failure) => {
            if let Ok(mut d) = DECIDED.lock() {
                *d = Some(failure);
            }
            Err(Error::Failed {
                what: "the ranks did not agree to start".into(),
                hint: None,
            })
        }
    }
}

/// Fails on purpose on the rank `KEEL_MPI_FAIL_RANK` names (after the start: the test that a
/// failing rank ends the job).
///
/// # Errors
/// On that rank.
pub fn fail_point(what: &str) -> Result<()> {
    let w = world();
    let chosen = std::env::var("KEEL_MPI_FAIL_RANK")
        .ok()
        .and_then(|r| r.parse::<usize>().ok());
    if w.size() > 1 && chosen == Some(w.rank()) {
        return Err(Error::Failed {
            what: format!("failed on purpose {what} (KEEL_MPI_FAIL_RANK)"),
            hint: None,
        });
    }
    Ok(())
}

/// Refuses a command that does not split over ranks when there are several.
///
/// # Errors
/// Several ranks.
pub fn alone(command: &str) -> Result<()> {
    let size = world().size();
    if size > 1 {
        return Err(Error::invalid(
            "mpirun -np",
            size,
            format!("{command} runs as one process; over MPI ranks Keel splits keel bayes hmc (rows or chains), the members of keel bayes ensemble and sgd, the chains of keel bayes sgld and sghmc, the components of keel simplex train and the runs of a keel rl train sweep (--seeds, --horizons)"),
        ));
    }
    Ok(())
}

/// The command's outcome on this rank, made the job's: alone it is returned as it is; on
/// several ranks a failure after the start ends the job (`MPI_Abort`), and an outcome before
/// it is agreed with the other ranks (one line from rank 0, the same status everywhere).
pub fn finish(outcome: std::result::Result<(), CliFailure>) -> std::result::Result<(), CliFailure> {
    let w = world();
    if w.size() == 1 {
        return outcome;
    }
    if let Some(decided) = DECIDED.lock().ok().and_then(|mut d| d.take()) {
        return Err(settle(decided));
    }
    if STARTED.load(Ordering::Relaxed) {
        return match outcome {
            Err(f) => {
                say(&format!("rank {} of {}: {}", w.rank(), w.size(), f.message));
                abort(f.exit_code)
            }
            ok => ok,
        };
    }
    let (status, message) = match &outcome {
        Ok(()) => (0, ""),
        Err(f) => (f.exit_code.max(1), f.message.as_str()),
    };
    match exchange(status, message, 0) {
        Ok(None) => outcome,
        Ok(Some(f)) => Err(settle(f)),
        Err(e) => {
            say(&format!("rank {}: {e}", w.rank()));
            abort(1)
        }
    }
}

/// A failure the ranks agreed on, said before any rank leaves: rank 0 writes its line now, then
/// every rank waits for every other (an all-reduce). mpirun ends the job at the first non-zero
/// exit, so a rank leaving at once could cut rank 0 off before its line was written (seen in CI:
/// exit status 2 everywhere and no line). The returned failure has no message left to print.
fn settle(f: CliFailure) -> CliFailure {
    if !f.message.is_empty() {
        say(&f.message);
    }
    let _ = world().sum(&mut [0.0]);
    CliFailure {
        message: String::new(),
        ..f
    }
}

/// An error line in one write (under mpirun, output from several processes interleaves by
/// writes).
fn say(message: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("error: {message}\n").as_bytes());
}

fn abort(code: u8) -> ! {
    #[cfg(feature = "mpi")]
    crate::mpi_world::Mpi::abort(i32::from(code));
    #[cfg(not(feature = "mpi"))]
    std::process::exit(i32::from(code))
}

/// A line for `keel info`: whether MPI is compiled in, and this process's rank.
pub fn describe() -> String {
    let w = world();
    match (COMPILED, w.size()) {
        (false, _) => "no (build with --features mpi)".into(),
        (true, 1) if !ACTIVE.load(Ordering::Relaxed) => {
            "yes; not started by an MPI launcher (one process)".into()
        }
        (true, size) => format!("yes; rank {} of {size}{}", w.rank(), library()),
    }
}

fn library() -> String {
    #[cfg(feature = "mpi")]
    if let Some(name) = crate::mpi_world::Mpi::library() {
        return format!(" ({name})");
    }
    String::new()
}

/// `(compiled, rank, size)` for `keel info --json` (rank and size only when MPI is running).
pub fn json() -> serde_json::Value {
    let w = world();
    let active = ACTIVE.load(Ordering::Relaxed);
    serde_json::json!({
        "compiled": COMPILED,
        "rank": active.then(|| w.rank()),
        "size": active.then(|| w.size()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_local_is_the_rank_on_the_node() {
        use keel::backend::DeviceRequest;
        // Alone (no launcher variables in the test's environment): GPU 0.
        if LOCAL_RANK_VARIABLES
            .iter()
            .all(|v| std::env::var_os(v).is_none())
        {
            assert_eq!(device("cuda:local").unwrap(), DeviceRequest::Cuda(0));
        }
        assert_eq!(device("cuda:3").unwrap(), DeviceRequest::Cuda(3));
        assert_eq!(device("cpu").unwrap(), DeviceRequest::Cpu);
        assert!(device("cuda:nearby").is_err());
    }
}
