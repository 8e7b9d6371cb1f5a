//! Reading the weights a host exports: a no-heap, no-panic, zero-copy [safetensors] reader.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON header
//! (UTF-8, possibly padded with trailing spaces), then the data section. The header maps tensor
//! names to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data
//! section) and may hold `"__metadata__"`, an object of string values.
//!
//! [`SafeTensors::parse`] validates everything once, so a corrupt or hostile file is an
//! [`Error`](crate::Error), never a panic or an out-of-bounds read:
//!
//! - the length prefix is present, `N ≤` [`MAX_HEADER_LEN`] and the header lies in the file;
//! - the header is UTF-8 and exactly one JSON value followed by whitespace (the JSON scanner
//!   checks strings, escapes, surrogate pairs, numbers; nesting is capped at
//!   [`MAX_JSON_DEPTH`] and walked without recursion), and is an object starting at its first
//!   byte;
//! - every tensor entry has exactly the fields `dtype`, `shape`, `data_offsets` (an unknown field
//!   or a repeated one is an error); the dtype is known ([`Dtype`]); the rank is at most
//!   [`MAX_RANK`]; the element count and byte length do not overflow; `begin ≤ end ≤` data
//!   length; `end − begin` equals elements × dtype size;
//! - names are distinct (compared unescaped) and at most the capacity `MAX`;
//! - `__metadata__` is `null` or an object of at most [`MAX_METADATA`] strings with distinct
//!   keys;
//! - tensors do not overlap and cover the data section exactly, as the format requires (no
//!   gaps, no trailing bytes).
//!
//! After that, [`TensorView`]s borrow the file's bytes and decode little-endian elements on
//! each read (no alignment requirement, no copy): a model `include_bytes!`-ed into flash is used
//! in place. Strings (names, metadata) are [`JsonStr`]s, unescaped as they are read.
//!
//! Stack: `parse` builds the returned [`SafeTensors`] (92 bytes per tensor slot on a 64-bit
//! host, 46 on a 32-bit controller) and, while it checks metadata keys, one array of
//! [`MAX_METADATA`] string slices (512 bytes / 256 bytes); nothing recurses.
//!
//! ```
//! use keel_core::io::{Dtype, SafeTensors};
//!
//! // A file with one F32 tensor [1.0, -2.0] and one metadata entry.
//! let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"keel.kind":"mlp"}}"#;
//! let mut file = Vec::new();
//! file.extend_from_slice(&(header.len() as u64).to_le_bytes());
//! file.extend_from_slice(header);
//! file.extend_from_slice(&1.0f32.to_le_bytes());
//! file.extend_from_slice(&(-2.0f32).to_le_bytes());
//!
//! let st = keel_core::io::SafeTensors::<'_, 4>::parse(&file)?;
//! let w = st.tensor("w")?;
//! assert_eq!((w.dtype(), w.shape()), (Dtype::F32, &[2][..]));
//! assert_eq!(w.get_f32(1)?, -2.0);
//! assert!(st.metadata("keel.kind").is_some_and(|k| k == "mlp"));
//! // Corruption is an error, not a panic:
//! assert!(SafeTensors::<'_, 4>::parse(&file[..file.len() - 1]).is_err());
//! # Ok::<(), keel_core::Error>(())
//! ```
//!
//! What this is *not*: a writer (the host exports), or a reader for sub-byte dtypes.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

mod dtype;
pub(crate) mod json;
mod json_str;
mod safetensors;
mod tensor;

pub use dtype::Dtype;
pub use json::MAX_DEPTH as MAX_JSON_DEPTH;
pub use json_str::{Bytes as JsonBytes, Chars as JsonChars, JsonStr};
pub use safetensors::{MetadataEntries, SafeTensors};
pub use tensor::TensorView;

pub(crate) use tensor::{from_f32, read_f32, read_f64};

/// The longest header accepted, in bytes (100 MB, as the reference implementation).
pub const MAX_HEADER_LEN: usize = 100_000_000;

/// The highest tensor rank accepted (a [`TensorView`] stores its shape inline).
pub const MAX_RANK: usize = 4;

/// The most `__metadata__` entries accepted.
pub const MAX_METADATA: usize = 32;
