//! Status codes: every C entry point returns one. `KEEL_STATUS_OK` is 0; codes 1 to 33 mirror
//! the variants of [`keel_core::Error`] (the failing datum stays in the core: a controller logs
//! the code, and [`keel_status_str`] names it without any float formatting); codes from 100 on
//! are the boundary's own (null pointers, short buffers, a handle of the wrong kind, …).

use keel_core::Error;

/// The outcome of a call. Values are stable: new codes are only ever appended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeelStatus {
    /// Success.
    Ok = 0,
    /// A state component became NaN or infinite (`keel_core::Error::NonFinite`).
    NonFinite = 1,
    /// An adaptive integrator's step size underflowed.
    StepSizeUnderflow = 2,
    /// An adaptive integrator exhausted its step budget.
    TooManySteps = 3,
    /// A linear system was singular.
    Singular = 4,
    /// Projection onto the constraint manifold did not converge.
    ProjectionFailed = 5,
    /// A RATTLE constraint solve did not converge.
    ConstraintSolveFailed = 6,
    /// A parameter is outside its valid range (e.g. a NaN or non-positive step, noise, scale).
    InvalidParameter = 7,
    /// A node, body or constraint index is out of range.
    IndexOutOfRange = 8,
    /// A fixed-capacity container got the wrong number of items (e.g. a model's node count).
    CountMismatch = 9,
    /// Initial-condition sampling failed.
    SamplingFailed = 10,
    /// The model bytes end before a part they declare.
    Truncated = 11,
    /// The safetensors header is longer than the reader accepts.
    HeaderTooLarge = 12,
    /// The header is not valid JSON.
    InvalidJson = 13,
    /// The header is JSON but not a valid safetensors header.
    InvalidHeader = 14,
    /// A JSON object repeats a key.
    DuplicateKey = 15,
    /// A tensor's dtype is unknown.
    UnknownDtype = 16,
    /// A tensor has too many axes.
    RankTooLarge = 17,
    /// A tensor's size overflows.
    ShapeOverflow = 18,
    /// A tensor's data offsets are reversed.
    InvalidOffsets = 19,
    /// A tensor's data reach past the end of the file.
    OffsetsOutOfBounds = 20,
    /// A tensor's byte range does not match its shape and dtype.
    DataLengthMismatch = 21,
    /// Two tensors overlap.
    OverlappingTensors = 22,
    /// The tensors do not cover the data section exactly.
    DataNotCovered = 23,
    /// More tensors, metadata entries or layers than the API's fixed capacity.
    CapacityExceeded = 24,
    /// A tensor the model needs is missing.
    TensorNotFound = 25,
    /// A tensor's dtype cannot be read as floats.
    UnsupportedDtype = 26,
    /// A tensor's shape does not match the model configuration.
    TensorShape = 27,
    /// An input or output array has the wrong length for the model.
    ShapeMismatch = 28,
    /// The caller's scratch is too small (see the `*_scratch_len` queries).
    ScratchTooSmall = 29,
    /// A matrix that must be positive definite is not.
    NotPositiveDefinite = 30,
    /// A GP input lies outside the interpolation grid.
    OutOfGrid = 31,
    /// The model's `keel.kind`/`keel.config` metadata is missing or invalid.
    InvalidConfig = 32,
    /// A core error this version of the C API does not know by name.
    CoreOther = 33,
    /// A required pointer argument is null.
    NullPointer = 100,
    /// An output or storage buffer is shorter than the call needs.
    BufferTooSmall = 101,
    /// The handle or file is of another kind than the call needs (e.g. a policy passed where a
    /// learned dynamics model is expected).
    WrongKind = 102,
    /// The handle was never initialised, or its initialisation failed.
    InvalidHandle = 103,
    /// A pointer is not aligned for its type (handles: 8 bytes; floats: 4).
    Misaligned = 104,
    /// A size the C API has no instance for (links, nodes, grid dimensions).
    UnsupportedSize = 105,
    /// An argument is invalid: a NaN input, an enum value out of range, an absurd length.
    InvalidArgument = 106,
    /// An output buffer overlaps an input buffer or another output.
    BufferOverlap = 107,
    /// A Rust panic was caught at the boundary (host builds only; a bug: please report it).
    Panic = 108,
}

impl From<Error> for KeelStatus {
    fn from(e: Error) -> Self {
        match e {
            Error::NonFinite { .. } => KeelStatus::NonFinite,
            Error::StepSizeUnderflow { .. } => KeelStatus::StepSizeUnderflow,
            Error::TooManySteps { .. } => KeelStatus::TooManySteps,
            Error::Singular { .. } => KeelStatus::Singular,
            Error::ProjectionFailed { .. } => KeelStatus::ProjectionFailed,
            Error::ConstraintSolveFailed { .. } => KeelStatus::ConstraintSolveFailed,
            Error::InvalidParameter { .. } => KeelStatus::InvalidParameter,
            Error::IndexOutOfRange { .. } => KeelStatus::IndexOutOfRange,
            Error::CountMismatch { .. } => KeelStatus::CountMismatch,
            Error::SamplingFailed { .. } => KeelStatus::SamplingFailed,
            Error::Truncated { .. } => KeelStatus::Truncated,
            Error::HeaderTooLarge { .. } => KeelStatus::HeaderTooLarge,
            Error::InvalidJson { .. } => KeelStatus::InvalidJson,
            Error::InvalidHeader { .. } => KeelStatus::InvalidHeader,
            Error::DuplicateKey { .. } => KeelStatus::DuplicateKey,
            Error::UnknownDtype { .. } => KeelStatus::UnknownDtype,
            Error::RankTooLarge { .. } => KeelStatus::RankTooLarge,
            Error::ShapeOverflow { .. } => KeelStatus::ShapeOverflow,
            Error::InvalidOffsets { .. } => KeelStatus::InvalidOffsets,
            Error::OffsetsOutOfBounds { .. } => KeelStatus::OffsetsOutOfBounds,
            Error::DataLengthMismatch { .. } => KeelStatus::DataLengthMismatch,
            Error::OverlappingTensors { .. } => KeelStatus::OverlappingTensors,
            Error::DataNotCovered { .. } => KeelStatus::DataNotCovered,
            Error::CapacityExceeded { .. } => KeelStatus::CapacityExceeded,
            Error::TensorNotFound { .. } => KeelStatus::TensorNotFound,
            Error::UnsupportedDtype { .. } => KeelStatus::UnsupportedDtype,
            Error::TensorShape { .. } => KeelStatus::TensorShape,
            Error::ShapeMismatch { .. } => KeelStatus::ShapeMismatch,
            Error::ScratchTooSmall { .. } => KeelStatus::ScratchTooSmall,
            Error::NotPositiveDefinite { .. } => KeelStatus::NotPositiveDefinite,
            Error::OutOfGrid { .. } => KeelStatus::OutOfGrid,
            Error::InvalidConfig { .. } | Error::InvalidLayer { .. } => KeelStatus::InvalidConfig,
            _ => KeelStatus::CoreOther,
        }
    }
}

/// Every code, in order (the name table of [`keel_status_str`]).
const ALL: [KeelStatus; 43] = [
    KeelStatus::Ok,
    KeelStatus::NonFinite,
    KeelStatus::StepSizeUnderflow,
    KeelStatus::TooManySteps,
    KeelStatus::Singular,
    KeelStatus::ProjectionFailed,
    KeelStatus::ConstraintSolveFailed,
    KeelStatus::InvalidParameter,
    KeelStatus::IndexOutOfRange,
    KeelStatus::CountMismatch,
    KeelStatus::SamplingFailed,
    KeelStatus::Truncated,
    KeelStatus::HeaderTooLarge,
    KeelStatus::InvalidJson,
    KeelStatus::InvalidHeader,
    KeelStatus::DuplicateKey,
    KeelStatus::UnknownDtype,
    KeelStatus::RankTooLarge,
    KeelStatus::ShapeOverflow,
    KeelStatus::InvalidOffsets,
    KeelStatus::OffsetsOutOfBounds,
    KeelStatus::DataLengthMismatch,
    KeelStatus::OverlappingTensors,
    KeelStatus::DataNotCovered,
    KeelStatus::CapacityExceeded,
    KeelStatus::TensorNotFound,
    KeelStatus::UnsupportedDtype,
    KeelStatus::TensorShape,
    KeelStatus::ShapeMismatch,
    KeelStatus::ScratchTooSmall,
    KeelStatus::NotPositiveDefinite,
    KeelStatus::OutOfGrid,
    KeelStatus::InvalidConfig,
    KeelStatus::CoreOther,
    KeelStatus::NullPointer,
    KeelStatus::BufferTooSmall,
    KeelStatus::WrongKind,
    KeelStatus::InvalidHandle,
    KeelStatus::Misaligned,
    KeelStatus::UnsupportedSize,
    KeelStatus::InvalidArgument,
    KeelStatus::BufferOverlap,
    KeelStatus::Panic,
];

impl KeelStatus {
    /// The code's C name as a NUL-terminated string.
    pub const fn name(self) -> &'static core::ffi::CStr {
        match self {
            KeelStatus::Ok => c"KEEL_STATUS_OK",
            KeelStatus::NonFinite => c"KEEL_STATUS_NON_FINITE",
            KeelStatus::StepSizeUnderflow => c"KEEL_STATUS_STEP_SIZE_UNDERFLOW",
            KeelStatus::TooManySteps => c"KEEL_STATUS_TOO_MANY_STEPS",
            KeelStatus::Singular => c"KEEL_STATUS_SINGULAR",
            KeelStatus::ProjectionFailed => c"KEEL_STATUS_PROJECTION_FAILED",
            KeelStatus::ConstraintSolveFailed => c"KEEL_STATUS_CONSTRAINT_SOLVE_FAILED",
            KeelStatus::InvalidParameter => c"KEEL_STATUS_INVALID_PARAMETER",
            KeelStatus::IndexOutOfRange => c"KEEL_STATUS_INDEX_OUT_OF_RANGE",
            KeelStatus::CountMismatch => c"KEEL_STATUS_COUNT_MISMATCH",
            KeelStatus::SamplingFailed => c"KEEL_STATUS_SAMPLING_FAILED",
            KeelStatus::Truncated => c"KEEL_STATUS_TRUNCATED",
            KeelStatus::HeaderTooLarge => c"KEEL_STATUS_HEADER_TOO_LARGE",
            KeelStatus::InvalidJson => c"KEEL_STATUS_INVALID_JSON",
            KeelStatus::InvalidHeader => c"KEEL_STATUS_INVALID_HEADER",
            KeelStatus::DuplicateKey => c"KEEL_STATUS_DUPLICATE_KEY",
            KeelStatus::UnknownDtype => c"KEEL_STATUS_UNKNOWN_DTYPE",
            KeelStatus::RankTooLarge => c"KEEL_STATUS_RANK_TOO_LARGE",
            KeelStatus::ShapeOverflow => c"KEEL_STATUS_SHAPE_OVERFLOW",
            KeelStatus::InvalidOffsets => c"KEEL_STATUS_INVALID_OFFSETS",
            KeelStatus::OffsetsOutOfBounds => c"KEEL_STATUS_OFFSETS_OUT_OF_BOUNDS",
            KeelStatus::DataLengthMismatch => c"KEEL_STATUS_DATA_LENGTH_MISMATCH",
            KeelStatus::OverlappingTensors => c"KEEL_STATUS_OVERLAPPING_TENSORS",
            KeelStatus::DataNotCovered => c"KEEL_STATUS_DATA_NOT_COVERED",
            KeelStatus::CapacityExceeded => c"KEEL_STATUS_CAPACITY_EXCEEDED",
            KeelStatus::TensorNotFound => c"KEEL_STATUS_TENSOR_NOT_FOUND",
            KeelStatus::UnsupportedDtype => c"KEEL_STATUS_UNSUPPORTED_DTYPE",
            KeelStatus::TensorShape => c"KEEL_STATUS_TENSOR_SHAPE",
            KeelStatus::ShapeMismatch => c"KEEL_STATUS_SHAPE_MISMATCH",
            KeelStatus::ScratchTooSmall => c"KEEL_STATUS_SCRATCH_TOO_SMALL",
            KeelStatus::NotPositiveDefinite => c"KEEL_STATUS_NOT_POSITIVE_DEFINITE",
            KeelStatus::OutOfGrid => c"KEEL_STATUS_OUT_OF_GRID",
            KeelStatus::InvalidConfig => c"KEEL_STATUS_INVALID_CONFIG",
            KeelStatus::CoreOther => c"KEEL_STATUS_CORE_OTHER",
            KeelStatus::NullPointer => c"KEEL_STATUS_NULL_POINTER",
            KeelStatus::BufferTooSmall => c"KEEL_STATUS_BUFFER_TOO_SMALL",
            KeelStatus::WrongKind => c"KEEL_STATUS_WRONG_KIND",
            KeelStatus::InvalidHandle => c"KEEL_STATUS_INVALID_HANDLE",
            KeelStatus::Misaligned => c"KEEL_STATUS_MISALIGNED",
            KeelStatus::UnsupportedSize => c"KEEL_STATUS_UNSUPPORTED_SIZE",
            KeelStatus::InvalidArgument => c"KEEL_STATUS_INVALID_ARGUMENT",
            KeelStatus::BufferOverlap => c"KEEL_STATUS_BUFFER_OVERLAP",
            KeelStatus::Panic => c"KEEL_STATUS_PANIC",
        }
    }
}

/// `Ok(())` as [`KeelStatus::Ok`], an error as its code: the body of every entry point is a
/// `Result<(), KeelStatus>`, turned into a code once at the boundary.
pub(crate) fn code(r: Result<(), KeelStatus>) -> KeelStatus {
    match r {
        Ok(()) => KeelStatus::Ok,
        Err(s) => s,
    }
}

/// The name of a status code (`"KEEL_STATUS_NULL_POINTER"`, …) as a static NUL-terminated
/// string, or `"KEEL_STATUS_UNKNOWN"` for a value that is not a code. Never returns null.
#[no_mangle]
pub extern "C" fn keel_status_str(code: i32) -> *const core::ffi::c_char {
    ALL.iter()
        .find(|s| **s as i32 == code)
        .map_or(c"KEEL_STATUS_UNKNOWN", |s| s.name())
        .as_ptr()
}
