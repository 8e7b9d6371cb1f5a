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
    /// Two tensor shapes do not fit an operation.
    #[error("{op}: shapes {lhs} and {rhs} do not match")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's shape.
        lhs: crate::tensor::Shape,
        /// Second operand's shape (or the expected shape).
        rhs: crate::tensor::Shape,
    },
    /// Two tensors have different element types.
    #[error("{op}: element types {lhs} and {rhs} differ")]
    DTypeMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's type.
        lhs: crate::backend::DType,
        /// Second operand's type.
        rhs: crate::backend::DType,
    },
    /// A tensor of too high a rank.
    #[error("{op}: rank {rank} exceeds the maximum {max}")]
    Rank {
        /// The operation.
        op: &'static str,
        /// Rank requested.
        rank: usize,
        /// Largest rank supported.
        max: usize,
    },
    /// An axis out of range.
    #[error("{op}: axis {axis} is invalid for shape {shape}")]
    Axis {
        /// The operation.
        op: &'static str,
        /// The axis given.
        axis: isize,
        /// The tensor's shape.
        shape: crate::tensor::Shape,
    },
    /// An index out of range.
    #[error("{op}: index {index} out of range for size {len}")]
    Index {
        /// The operation.
        op: &'static str,
        /// The index.
        index: usize,
        /// The size indexed.
        len: usize,
    },
    /// An operation given no tensors.
    #[error("{op}: no tensors given")]
    Empty {
        /// The operation.
        op: &'static str,
    },
    /// Differentiation with respect to a tensor that is not a variable.
    #[error("{op}: input is not a variable (use Tensor::variable)")]
    NotTracked {
        /// The operation.
        op: &'static str,
    },
    /// Tensors on different devices.
    #[error("{op}: operands on {lhs} and {rhs}; move them to one device first")]
    DeviceMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's device.
        lhs: crate::backend::Device,
        /// Second operand's device.
        rhs: crate::backend::Device,
    },
    /// No usable GPU, and why.
    #[error("no usable GPU: {reason}")]
    NoGpu {
        /// What is missing.
        reason: String,
    },
    /// A CUDA operation failed (launch, out of memory, compilation), naming the op and sizes.
    #[error("CUDA {op}: {detail}")]
    Cuda {
        /// The operation and its sizes.
        op: String,
        /// The driver's, NVRTC's or cuBLAS's message.
        detail: String,
    },
    /// A CUDA device was requested from a build without CUDA support.
    #[error("this build of keel has no CUDA support; use --device cpu (or auto)")]
    CudaNotCompiled,
    /// A computation would need more memory than Keel allows; refused before allocating.
    #[error("{what} is too large{}", human_bytes(*bytes))]
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
            Error::InvalidInput { .. }
                | Error::Malformed { .. }
                | Error::CudaNotCompiled
                | Error::NoGpu { .. }
                | Error::TooLarge { .. }
        ) || matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
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

fn human_bytes(b: u128) -> String {
    if b == 0 {
        return String::new();
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    format!(" ({x:.1} {} needed)", units[u])
}
