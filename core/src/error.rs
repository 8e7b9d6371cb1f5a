//! The core's one error type: small, `Copy`, and carrying the failing datum.

use core::fmt;

/// Everything that can go wrong in `keel-core` on data.
///
/// Values are `f64` regardless of the scalar type in use, so the error type is not generic.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A state component became NaN or infinite (index into the flattened state).
    NonFinite {
        /// Index of the first non-finite component.
        index: usize,
        /// Time at which it was detected.
        t: f64,
    },
    /// An adaptive integrator's step size fell below what the time resolution allows.
    StepSizeUnderflow {
        /// Time at which the step size collapsed.
        t: f64,
        /// The step size that was rejected.
        h: f64,
    },
    /// An adaptive integrator took more steps than allowed to reach an output time.
    TooManySteps {
        /// Time reached.
        t: f64,
        /// The step budget that was exhausted.
        max_steps: usize,
    },
    /// A linear system was singular: the pivot in column `column` vanished.
    Singular {
        /// Column of the vanishing pivot.
        column: usize,
    },
    /// Newton–Raphson projection onto the constraint manifold did not converge.
    ProjectionFailed {
        /// Iterations performed.
        iterations: usize,
        /// RMS constraint residual when it gave up.
        residual: f64,
    },
    /// The implicit constraint solve of a RATTLE (constrained leapfrog) step did not converge.
    ConstraintSolveFailed {
        /// Iterations performed.
        iterations: usize,
        /// Largest constraint residual when it gave up.
        residual: f64,
    },
    /// A parameter is outside its valid range (`name` is the parameter, `value` what was given).
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Value given.
        value: f64,
    },
    /// A node, body or constraint index is out of range.
    IndexOutOfRange {
        /// What kind of index.
        what: &'static str,
        /// The index given.
        index: usize,
        /// The number of items available.
        len: usize,
    },
    /// A fixed-capacity container was built with the wrong number of items.
    CountMismatch {
        /// What was counted.
        what: &'static str,
        /// Capacity fixed by the type (const generic).
        expected: usize,
        /// Items supplied.
        got: usize,
    },
    /// Initial-condition sampling failed to produce a valid state in the allowed attempts.
    SamplingFailed {
        /// Attempts made.
        attempts: usize,
    },
}

impl Error {
    /// The variant's name, without its data: for reporting where formatting floats is too costly
    /// (a firmware's `f64` formatting alone is ~37 kB of flash).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NonFinite { .. } => "NonFinite",
            Error::StepSizeUnderflow { .. } => "StepSizeUnderflow",
            Error::TooManySteps { .. } => "TooManySteps",
            Error::Singular { .. } => "Singular",
            Error::ProjectionFailed { .. } => "ProjectionFailed",
            Error::ConstraintSolveFailed { .. } => "ConstraintSolveFailed",
            Error::InvalidParameter { .. } => "InvalidParameter",
            Error::IndexOutOfRange { .. } => "IndexOutOfRange",
            Error::CountMismatch { .. } => "CountMismatch",
            Error::SamplingFailed { .. } => "SamplingFailed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NonFinite { index, t } => {
                write!(f, "state component {index} became non-finite at t = {t}")
            }
            Error::StepSizeUnderflow { t, h } => {
                write!(f, "step size underflow at t = {t} (h = {h:e})")
            }
            Error::TooManySteps { t, max_steps } => {
                write!(f, "more than {max_steps} steps needed (stopped at t = {t})")
            }
            Error::Singular { column } => {
                write!(f, "singular linear system (zero pivot in column {column})")
            }
            Error::ProjectionFailed { iterations, residual } => write!(
                f,
                "projection onto the constraints did not converge in {iterations} iterations \
                 (RMS residual {residual:e})"
            ),
            Error::ConstraintSolveFailed { iterations, residual } => write!(
                f,
                "constraint solve did not converge in {iterations} iterations (residual {residual:e})"
            ),
            Error::InvalidParameter { name, value } => {
                write!(f, "invalid value {value} for parameter `{name}`")
            }
            Error::IndexOutOfRange { what, index, len } => {
                write!(f, "{what} index {index} out of range (have {len})")
            }
            Error::CountMismatch { what, expected, got } => {
                write!(f, "expected {expected} {what}, got {got}")
            }
            Error::SamplingFailed { attempts } => {
                write!(f, "no valid initial condition after {attempts} attempts")
            }
        }
    }
}

impl core::error::Error for Error {}

/// `Result` with the core's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
