//! The host library's error type, and what each kind of error means for a program's exit
//! status: bad input (a value, a file, a size refused before anything ran) or a run that
//! failed on valid input.

use std::path::PathBuf;

/// Everything the host library reports. Variants say which input was wrong and why, so a caller
/// can print one line and exit; [`Error::is_input_error`] tells bad input from a failed run.
///
/// The library names its settings as its configurations do (`lr`, `weight_decay`, `angles`),
/// never a command-line flag; the `keel` command maps a setting to the flag that set it. A
/// setting named inside a reason is written in backticks (``use a larger `dt` ``).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting's value is invalid.
    #[error("invalid value '{value}' for {setting}: {reason}")]
    InvalidInput {
        /// The setting, as the configuration names it (e.g. `angles`, or `steps/batch` for a
        /// combination).
        setting: String,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A file could not be read (missing, a directory, not text, no permission): bad input.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An output could not be written after the run (a full disk, a vanished folder): a failed
    /// run. Output paths are checked before a run starts ([`crate::output::check_writable`]).
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A run on valid input did not succeed: training diverged, an integrator or a solver gave
    /// up. `hint` says what to change, if anything is known to help.
    #[error("{what}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Failed {
        /// What went wrong, and where (the epoch, the step).
        what: String,
        /// A remedy, naming settings in backticks.
        hint: Option<String>,
    },
    /// A file's contents are malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The numerical core failed (integration, projection, singular constraints…).
    #[error("{context}: {source}")]
    Core {
        /// What was being done.
        context: String,
        /// The core's error.
        source: keel_core::Error,
    },
    /// The tensor engine failed or refused a request.
    #[error(transparent)]
    Engine(#[from] keel_engine::Error),
    /// A computation would need more memory than Keel allows; refused before allocating.
    #[error("{what} is too large{}", keel_engine::error::human_bytes(*bytes))]
    TooLarge {
        /// What would be allocated.
        what: String,
        /// How many bytes it would take (0 if not known).
        bytes: u128,
    },
    /// A numerical solver failed.
    #[error("{reason}")]
    Solver {
        /// Why.
        reason: String,
    },
    /// Plotting failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid(
        setting: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            setting: setting.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Reports a core error reading the file at `path` as [`Error::Malformed`].
    pub fn malformed(path: &std::path::Path) -> impl Fn(keel_core::Error) -> Self {
        let path = path.to_path_buf();
        move |e| Error::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        }
    }

    /// Wraps a core error with context.
    pub fn core(context: impl Into<String>) -> impl FnOnce(keel_core::Error) -> Self {
        let context = context.into();
        move |source| Error::Core { context, source }
    }

    /// A [`Error::Failed`] with a remedy.
    pub fn failed(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Failed {
            what: what.into(),
            hint: Some(hint.into()),
        }
    }

    /// Whether the error is the user's input (exit status 2) rather than a failure while running
    /// (exit status 1): bad values and settings, files that cannot be read or are malformed,
    /// sizes refused before anything ran, a device this machine or build cannot use, and the
    /// core errors that only data causes (a point off the GP grid, a kernel matrix that is not
    /// positive definite). Divergence, solvers that give up, failed writes, CUDA failures and
    /// broken internal invariants are failed runs.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidInput { .. }
                | Error::Io { .. }
                | Error::Malformed { .. }
                | Error::TooLarge { .. }
        ) || matches!(self, Error::Engine(e) if e.is_request_error())
            || matches!(
                self,
                Error::Core {
                    source: keel_core::Error::OutOfGrid { .. }
                        | keel_core::Error::NotPositiveDefinite { .. },
                    ..
                }
            )
    }
}

/// `Result` with the host's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
