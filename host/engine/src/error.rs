//! The engine's error type. It names shapes, element types, devices and sizes — never a
//! command-line flag: the engine knows no command line, and the caller (a method, or the
//! `keel` command) maps an error to the setting that caused it.

use crate::backend::{DType, Device};
use crate::tensor::Shape;

/// Everything the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument out of its range (a negative learning rate, a zero width, an unknown
    /// activation). `name` is the argument as the API names it.
    #[error("invalid {name} '{value}': {reason}")]
    InvalidArgument {
        /// The argument, e.g. `learning rate`.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Two tensor shapes do not fit an operation.
    #[error("{op}: shapes {lhs} and {rhs} do not match")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's shape.
        lhs: Shape,
        /// Second operand's shape (or the expected shape).
        rhs: Shape,
    },
    /// Two buffers of one operation have different lengths.
    #[error("{op}: lengths {lhs} and {rhs} differ")]
    LengthMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's length.
        lhs: usize,
        /// Second operand's length.
        rhs: usize,
    },
    /// Two tensors have different element types.
    #[error("{op}: element types {lhs} and {rhs} differ")]
    DTypeMismatch {
        /// The operation.
        op: &'static str,
        /// First operand's type.
        lhs: DType,
        /// Second operand's type.
        rhs: DType,
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
        shape: Shape,
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
        lhs: Device,
        /// Second operand's device.
        rhs: Device,
    },
    /// A device name that is none of `auto`, `cpu`, `cuda`, `cuda:N`.
    #[error("unknown device '{name}': expected auto, cpu, cuda or cuda:N")]
    UnknownDevice {
        /// The name given.
        name: String,
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
    /// A GPU allocation that did not fit: what, how much, how much was free.
    #[error(
        "out of memory on cuda:{ordinal}: {what} asked for {} with {} free of {}; use fewer \
         chains or members, a smaller batch or model, or --device cpu",
        crate::memory::format_bytes(*asked),
        crate::memory::format_bytes(*free),
        crate::memory::format_bytes(*total)
    )]
    DeviceOutOfMemory {
        /// The GPU.
        ordinal: usize,
        /// The operation and its sizes.
        what: String,
        /// Bytes asked for.
        asked: u128,
        /// Bytes free on the device then (0 if the driver did not say).
        free: u128,
        /// The device's memory (0 if the driver did not say).
        total: u128,
    },
    /// A CUDA device was requested from a build without CUDA support.
    #[error("this build has no CUDA support (built without the `cuda` feature); use the CPU")]
    CudaNotCompiled,
    /// A computation would need more memory than the engine allows; refused before allocating.
    #[error("{what} is too large{}", human_bytes(*bytes))]
    TooLarge {
        /// What would be allocated.
        what: String,
        /// How many bytes it would take (0 if not known).
        bytes: u128,
    },
}

impl Error {
    /// An [`Error::InvalidArgument`].
    pub fn invalid(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Whether the error is the caller's request rather than a failure while computing: an
    /// argument out of range, a device this machine or build cannot use, a size refused before
    /// allocating. Shape, type and device mismatches between tensors are the calling code's
    /// bugs, and CUDA failures happen while running.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidArgument { .. }
                | Error::UnknownDevice { .. }
                | Error::NoGpu { .. }
                | Error::CudaNotCompiled
                | Error::TooLarge { .. }
                | Error::DeviceOutOfMemory { .. }
        )
    }

    /// Whether the error is about the device a caller asked for (no GPU, a build without CUDA,
    /// an unknown device name, more than its memory holds).
    pub fn is_device_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownDevice { .. }
                | Error::NoGpu { .. }
                | Error::CudaNotCompiled
                | Error::DeviceOutOfMemory { .. }
        )
    }
}

/// `Result` with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// ` (12.0 MiB needed)`, or nothing for 0 bytes.
pub fn human_bytes(b: u128) -> String {
    if b == 0 {
        return String::new();
    }
    format!(" ({} needed)", crate::memory::format_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a user reads when a GPU allocation does not fit (the CUDA backend raises it from
    /// the driver's out-of-memory status; no GPU is needed to check the words).
    #[test]
    fn out_of_device_memory_says_how_much_and_what_to_change() {
        let e = Error::DeviceOutOfMemory {
            ordinal: 1,
            what: "matmul: allocating 268435456 elements on cuda:1".into(),
            asked: 1 << 30,
            free: 512 << 20,
            total: 80 << 30,
        };
        let m = e.to_string();
        for part in [
            "cuda:1",
            "1.0 GiB",
            "512.0 MiB free of 80.0 GiB",
            "fewer chains or members",
            "--device cpu",
        ] {
            assert!(m.contains(part), "'{m}' lacks '{part}'");
        }
        assert!(e.is_request_error() && e.is_device_error());
        assert!(!m.contains('\n'), "one line: {m}");
    }
}
