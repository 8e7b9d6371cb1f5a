//! The element types a safetensors file can declare.

use super::json_str::JsonStr;

/// A safetensors element type (the header's `dtype` string).
///
/// All fixed-width dtypes of the safetensors format are recognised, so a file that mixes float
/// weights with, say, integer buffers still parses; numbers are read only from [`Dtype::F32`]
/// and [`Dtype::F64`] (see [`TensorView::get_f64`](super::TensorView::get_f64)). The sub-byte
/// and exotic dtypes of newer safetensors releases (`F4`, `F6_*`, `F8_E8M0`, `C64`) are rejected
/// as unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Dtype {
    /// `BOOL`, one byte.
    Bool,
    /// `U8`.
    U8,
    /// `I8`.
    I8,
    /// `F8_E5M2`.
    F8E5M2,
    /// `F8_E4M3`.
    F8E4M3,
    /// `I16`.
    I16,
    /// `U16`.
    U16,
    /// `F16`.
    F16,
    /// `BF16`.
    BF16,
    /// `I32`.
    I32,
    /// `U32`.
    U32,
    /// `F32`, little-endian IEEE 754 binary32.
    F32,
    /// `I64`.
    I64,
    /// `U64`.
    U64,
    /// `F64`, little-endian IEEE 754 binary64.
    F64,
}

const ALL: [Dtype; 15] = [
    Dtype::Bool,
    Dtype::U8,
    Dtype::I8,
    Dtype::F8E5M2,
    Dtype::F8E4M3,
    Dtype::I16,
    Dtype::U16,
    Dtype::F16,
    Dtype::BF16,
    Dtype::I32,
    Dtype::U32,
    Dtype::F32,
    Dtype::I64,
    Dtype::U64,
    Dtype::F64,
];

impl Dtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// The name the header uses (`"F32"`, `"F8_E4M3"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F64 => "F64",
        }
    }

    /// The dtype a header name denotes (case-sensitive, as the format is), if it is known.
    pub fn from_name(name: &str) -> Option<Dtype> {
        ALL.iter().copied().find(|d| d.name() == name)
    }

    /// The dtype a (possibly escaped) JSON string denotes.
    pub(crate) fn from_json(name: JsonStr<'_>) -> Option<Dtype> {
        ALL.iter().copied().find(|d| name == d.name())
    }
}
