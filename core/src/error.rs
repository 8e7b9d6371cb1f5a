//! The core's one error type: small, `Copy`, and carrying the failing datum.

use core::fmt;

use crate::io::Dtype;

/// Everything that can go wrong in `keel-core` on data.
///
/// Values are `f64` regardless of the scalar type in use, so the error type is not generic.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
    /// A file ended before a part it declares (the 8-byte length prefix, or the header).
    Truncated {
        /// Bytes the declared layout needs.
        needed: usize,
        /// Bytes present.
        len: usize,
    },
    /// A safetensors header is longer than the reader accepts
    /// ([`io::MAX_HEADER_LEN`](crate::io::MAX_HEADER_LEN)).
    HeaderTooLarge {
        /// The declared header length.
        len: u64,
        /// The largest accepted length.
        max: u64,
    },
    /// Text that must be JSON is not: bad UTF-8, syntax, escape or number, nesting deeper than
    /// [`io::MAX_JSON_DEPTH`](crate::io::MAX_JSON_DEPTH), or trailing characters.
    InvalidJson {
        /// Byte offset of the problem in the JSON text (a safetensors header counts from its
        /// first byte, after the 8-byte length; a metadata value from its first unescaped byte).
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A safetensors header is valid JSON but not a valid header: wrong value types, a missing,
    /// unknown or malformed field.
    InvalidHeader {
        /// The rule that was broken.
        what: &'static str,
        /// Byte offset in the header JSON where the offending value starts.
        offset: usize,
    },
    /// A JSON object has the same key twice (tensor names, metadata keys, fields of a tensor
    /// entry, keys of a model configuration), compared after unescaping.
    DuplicateKey {
        /// Byte offset of the second occurrence in its JSON text.
        offset: usize,
    },
    /// A tensor's `dtype` is not one of the safetensors dtypes the reader knows.
    UnknownDtype {
        /// The tensor's position in the header (0-based, `__metadata__` not counted).
        tensor: usize,
    },
    /// A tensor has more axes than the reader supports ([`io::MAX_RANK`](crate::io::MAX_RANK)).
    RankTooLarge {
        /// The tensor's position in the header.
        tensor: usize,
        /// Its rank.
        rank: usize,
        /// The largest supported rank.
        max: usize,
    },
    /// A tensor's element count or byte length overflows `usize`.
    ShapeOverflow {
        /// The tensor's position in the header.
        tensor: usize,
    },
    /// A tensor's `data_offsets` are reversed (`begin > end`).
    InvalidOffsets {
        /// The tensor's position in the header.
        tensor: usize,
        /// Declared start (relative to the data section; saturated at `usize::MAX`).
        begin: usize,
        /// Declared end (relative to the data section; saturated at `usize::MAX`).
        end: usize,
    },
    /// A tensor's `data_offsets` reach past the end of the data section.
    OffsetsOutOfBounds {
        /// The tensor's position in the header.
        tensor: usize,
        /// Declared end (relative to the data section; saturated at `usize::MAX`).
        end: usize,
        /// Length of the data section.
        len: usize,
    },
    /// A tensor's byte range does not match its shape and dtype.
    DataLengthMismatch {
        /// The tensor's position in the header.
        tensor: usize,
        /// Bytes implied by shape × dtype size.
        expected: usize,
        /// Bytes declared by `data_offsets`.
        got: usize,
    },
    /// Two tensors' byte ranges overlap.
    OverlappingTensors {
        /// Position in the header of the earlier tensor.
        first: usize,
        /// Position in the header of the later tensor.
        second: usize,
    },
    /// The tensors do not cover the data section exactly (a gap, or bytes after the last one).
    DataNotCovered {
        /// Bytes covered by tensors.
        covered: usize,
        /// Length of the data section.
        len: usize,
    },
    /// More items than a fixed capacity holds (tensors, metadata entries, layers).
    CapacityExceeded {
        /// What overflowed.
        what: &'static str,
        /// The capacity.
        capacity: usize,
    },
    /// A tensor was looked up by name and is not in the file.
    TensorNotFound {
        /// Its role: `weight`/`bias` of a layer, `input.mean`, …, or `tensor` for a lookup by
        /// an arbitrary name.
        role: &'static str,
        /// The layer, for layer tensors (`layer{i}.{role}`).
        layer: Option<usize>,
    },
    /// A tensor has a dtype the operation cannot read (e.g. reading `I32` as floats).
    UnsupportedDtype {
        /// The tensor's dtype.
        dtype: Dtype,
    },
    /// A tensor's shape does not match the model configuration.
    TensorShape {
        /// Its role (as in [`Error::TensorNotFound`]).
        role: &'static str,
        /// The layer, for layer tensors.
        layer: Option<usize>,
    },
    /// A slice argument has the wrong length.
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A caller-provided scratch buffer is too small.
    ScratchTooSmall {
        /// Scalars needed.
        needed: usize,
        /// Scalars given.
        got: usize,
    },
    /// A symmetric matrix that must be positive definite is not: the Cholesky pivot `pivot`
    /// came out as `value` (≤ 0 or not finite).
    NotPositiveDefinite {
        /// Index of the failing pivot.
        pivot: usize,
        /// The pivot's value before the square root.
        value: f64,
    },
    /// An input lies outside the interpolation grid of a structured-kernel GP.
    OutOfGrid {
        /// The input dimension.
        dim: usize,
        /// The coordinate given.
        value: f64,
        /// The grid's usable range in that dimension.
        lo: f64,
        /// Upper end of the usable range.
        hi: f64,
    },
    /// A model's metadata (`keel.kind`, `keel.config`) is missing or does not describe a model
    /// this operation can build or run.
    InvalidConfig {
        /// The rule that was broken.
        what: &'static str,
    },
    /// One layer of a model's configuration is invalid or does not fit its input (a kernel
    /// larger than the padded input, channels not divisible by the groups, …).
    InvalidLayer {
        /// The layer's index in the configuration (0-based).
        layer: usize,
        /// The rule that was broken.
        what: &'static str,
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
            Error::Truncated { .. } => "Truncated",
            Error::HeaderTooLarge { .. } => "HeaderTooLarge",
            Error::InvalidJson { .. } => "InvalidJson",
            Error::InvalidHeader { .. } => "InvalidHeader",
            Error::DuplicateKey { .. } => "DuplicateKey",
            Error::UnknownDtype { .. } => "UnknownDtype",
            Error::RankTooLarge { .. } => "RankTooLarge",
            Error::ShapeOverflow { .. } => "ShapeOverflow",
            Error::InvalidOffsets { .. } => "InvalidOffsets",
            Error::OffsetsOutOfBounds { .. } => "OffsetsOutOfBounds",
            Error::DataLengthMismatch { .. } => "DataLengthMismatch",
            Error::OverlappingTensors { .. } => "OverlappingTensors",
            Error::DataNotCovered { .. } => "DataNotCovered",
            Error::CapacityExceeded { .. } => "CapacityExceeded",
            Error::TensorNotFound { .. } => "TensorNotFound",
            Error::UnsupportedDtype { .. } => "UnsupportedDtype",
            Error::TensorShape { .. } => "TensorShape",
            Error::ShapeMismatch { .. } => "ShapeMismatch",
            Error::ScratchTooSmall { .. } => "ScratchTooSmall",
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::InvalidLayer { .. } => "InvalidLayer",
            Error::NotPositiveDefinite { .. } => "NotPositiveDefinite",
            Error::OutOfGrid { .. } => "OutOfGrid",
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
            Error::NotPositiveDefinite { pivot, value } => write!(
                f,
                "matrix is not positive definite (Cholesky pivot {pivot} is {value:e})"
            ),
            Error::OutOfGrid { dim, value, lo, hi } => write!(
                f,
                "input {value} in dimension {dim} is outside the interpolation grid's usable \
                 range [{lo}, {hi}]"
            ),
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
            Error::Truncated { needed, len } => {
                write!(f, "file truncated: needs {needed} bytes, has {len}")
            }
            Error::HeaderTooLarge { len, max } => {
                write!(f, "header of {len} bytes is larger than the limit of {max}")
            }
            Error::InvalidJson { offset, reason } => {
                write!(f, "invalid JSON at byte {offset}: {reason}")
            }
            Error::InvalidHeader { what, offset } => {
                write!(f, "invalid safetensors header at byte {offset}: {what}")
            }
            Error::DuplicateKey { offset } => write!(f, "duplicate key at byte {offset}"),
            Error::UnknownDtype { tensor } => write!(f, "tensor {tensor} has an unknown dtype"),
            Error::RankTooLarge { tensor, rank, max } => {
                write!(f, "tensor {tensor} has rank {rank}, more than the supported {max}")
            }
            Error::ShapeOverflow { tensor } => {
                write!(f, "tensor {tensor}: element count or byte length overflows")
            }
            Error::InvalidOffsets { tensor, begin, end } => {
                write!(f, "tensor {tensor}: data offsets reversed ({begin} > {end})")
            }
            Error::OffsetsOutOfBounds { tensor, end, len } => write!(
                f,
                "tensor {tensor}: data ends at {end}, past the data section of {len} bytes"
            ),
            Error::DataLengthMismatch {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor {tensor}: shape and dtype need {expected} bytes, offsets give {got}"
            ),
            Error::OverlappingTensors { first, second } => {
                write!(f, "tensors {first} and {second} overlap")
            }
            Error::DataNotCovered { covered, len } => write!(
                f,
                "tensors cover {covered} bytes of a {len}-byte data section"
            ),
            Error::CapacityExceeded { what, capacity } => {
                write!(f, "more {what} than the capacity of {capacity}")
            }
            Error::TensorNotFound { role, layer } => match layer {
                Some(i) => write!(f, "tensor `layer{i}.{role}` not found"),
                None if role == "tensor" => write!(f, "tensor not found"),
                None => write!(f, "tensor `{role}` not found"),
            },
            Error::UnsupportedDtype { dtype } => {
                write!(f, "dtype {} not supported here", dtype.name())
            }
            Error::TensorShape { role, layer } => match layer {
                Some(i) => write!(f, "tensor `layer{i}.{role}` has the wrong shape"),
                None => write!(f, "tensor `{role}` has the wrong shape"),
            },
            Error::ShapeMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected length {expected}, got {got}"),
            Error::ScratchTooSmall { needed, got } => {
                write!(f, "scratch of {got} scalars is too small (needs {needed})")
            }
            Error::InvalidConfig { what } => write!(f, "invalid model configuration: {what}"),
            Error::InvalidLayer { layer, what } => {
                write!(f, "invalid model configuration: layer {layer}: {what}")
            }
        }
    }
}

impl core::error::Error for Error {}

/// `Result` with the core's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// `Ok` for a positive, finite `v`; else [`Error::InvalidParameter`] naming `name`.
pub(crate) fn positive<T: crate::real::Real>(name: &'static str, v: T) -> Result<()> {
    if v > T::ZERO && v.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: v.as_f64(),
        })
    }
}

/// `Ok` if a buffer `what` holds the `expected` entries; else [`Error::CountMismatch`].
pub(crate) fn expect_count(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::CountMismatch {
            what,
            expected,
            got,
        })
    }
}
