//! The host library's error type.

use std::path::PathBuf;

/// Everything the host library reports. Variants say which input was wrong and why, so the
/// command line can print one line and exit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-supplied value is invalid (`flag` names the option as typed on the command line).
    #[error("invalid value '{value}' for {flag}: {reason}")]
    InvalidInput {
        /// The flag or field, e.g. `--angles`.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
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
        flag: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            flag: flag.into(),
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

    /// Whether the error is the user's input (exit status 2) rather than a failure while running:
    /// bad flags and files, and the core errors that only data causes (a point off the GP grid,
    /// a kernel matrix that is not positive definite).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidInput { .. } | Error::Malformed { .. } | Error::TooLarge { .. }
        ) || matches!(self, Error::Engine(e) if e.is_request_error())
            || matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
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
