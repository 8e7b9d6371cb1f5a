//! Content checksums of the files Keel resumes from (training checkpoints), so that a damaged or
//! edited file is refused instead of continuing a run with other numbers.
//!
//! The checksum is 64-bit FNV-1a (Fowler, Noll, Vo; IETF draft-eastlake-fnv) over every tensor
//! — name, dtype, shape and bytes — and every `__metadata__` entry except the checksum itself,
//! each in name order and each field length-prefixed (so no two different files give the same
//! byte stream). It is stored as `keel.checksum = fnv1a64:<16 hex digits>`. A flipped byte, a
//! renamed, added or dropped tensor and a changed counter all change it. It is a check against
//! accidents (a truncated copy, a file edited by hand, a disk error), not against tampering:
//! anyone can recompute it.

use std::collections::BTreeMap;

use keel_core::io::SafeTensors;

use crate::export::safetensors_bytes_typed;

/// The metadata key that holds the checksum.
pub const KEY: &str = "keel.checksum";

/// The algorithm's name, written before the digits.
const ALGORITHM: &str = "fnv1a64";

/// 64-bit FNV-1a, fed incrementally.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn eat(&mut self, bytes: impl IntoIterator<Item = u8>) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// A length-prefixed field.
    fn field(&mut self, bytes: &[u8]) {
        self.eat((bytes.len() as u64).to_le_bytes());
        self.eat(bytes.iter().copied());
    }
}

/// One tensor as the checksum sees it.
struct Item<'a> {
    name: Vec<u8>,
    dtype: &'a str,
    shape: &'a [usize],
    data: &'a [u8],
}

/// The checksum of tensors and metadata (any order; the checksum entry, if present, is skipped).
fn digest<'a>(mut tensors: Vec<Item<'a>>, mut metadata: Vec<(Vec<u8>, Vec<u8>)>) -> u64 {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    metadata.retain(|(k, _)| k.as_slice() != KEY.as_bytes());
    metadata.sort();
    let mut h = Fnv1a::new();
    h.eat((tensors.len() as u64).to_le_bytes());
    for t in &tensors {
        h.field(&t.name);
        h.field(t.dtype.as_bytes());
        h.eat((t.shape.len() as u64).to_le_bytes());
        for &d in t.shape {
            h.eat((d as u64).to_le_bytes());
        }
        h.field(t.data);
    }
    h.eat((metadata.len() as u64).to_le_bytes());
    for (k, v) in &metadata {
        h.field(k);
        h.field(v);
    }
    h.0
}

fn format(sum: u64) -> String {
    format!("{ALGORITHM}:{sum:016x}")
}

/// The checksum of a parsed file, as it would be written.
pub fn of<const MAX: usize>(st: &SafeTensors<'_, MAX>) -> String {
    let views: Vec<_> = st.tensors().collect();
    let tensors = views
        .iter()
        .map(|(name, view)| Item {
            name: name.bytes().collect(),
            dtype: view.dtype().name(),
            shape: view.shape(),
            data: view.data(),
        })
        .collect();
    let metadata = st
        .metadata_entries()
        .map(|(k, v)| (k.bytes().collect(), v.bytes().collect()))
        .collect();
    format(digest(tensors, metadata))
}

/// Serialises tensors (name, dtype, shape, little-endian bytes) and metadata as
/// [`safetensors_bytes_typed`] does, with the checksum of both added to the metadata.
pub fn sealed_safetensors(
    tensors: &[(String, &'static str, Vec<usize>, Vec<u8>)],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let items = tensors
        .iter()
        .map(|(name, dtype, shape, data)| Item {
            name: name.as_bytes().to_vec(),
            dtype,
            shape,
            data,
        })
        .collect();
    let meta = metadata
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let mut metadata = metadata.clone();
    metadata.insert(KEY.to_string(), format(digest(items, meta)));
    safetensors_bytes_typed(tensors, &metadata)
}

/// Whether a parsed file's contents match the checksum it records.
///
/// # Errors
/// The reason, in words: no checksum, or one that differs from the contents'.
pub fn verify<const MAX: usize>(st: &SafeTensors<'_, MAX>) -> Result<(), String> {
    let recorded: String = st
        .metadata(KEY)
        .ok_or_else(|| format!("no `{KEY}` in the metadata (not written by this version of keel)"))?
        .chars()
        .collect();
    let actual = of(st);
    if recorded != actual {
        return Err(format!(
            "the contents' checksum {actual} differs from the recorded {recorded}: the file \
             was changed or damaged after it was written"
        ));
    }
    Ok(())
}

/// Rewrites a safetensors file with the checksum of its contents (tensors in name order), so
/// a test or a fuzz target can reach the checks behind [`verify`] with edited contents.
///
/// # Errors
/// The core reader's error if `bytes` is not a safetensors file.
pub fn reseal(bytes: &[u8]) -> Result<Vec<u8>, keel_core::Error> {
    let st = SafeTensors::<'_, 1024>::parse(bytes)?;
    let tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .map(|(name, view)| {
            (
                name.chars().collect(),
                view.dtype().name(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    let metadata: BTreeMap<String, String> = st
        .metadata_entries()
        .map(|(k, v)| (k.chars().collect(), v.chars().collect()))
        .filter(|(k, _): &(String, String)| k != KEY)
        .collect();
    Ok(sealed_safetensors(&tensors, &metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FNV-1a test vectors of draft-eastlake-fnv (§ "Test vectors", 64-bit FNV-1a).
    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        let hash = |s: &[u8]| {
            let mut h = Fnv1a::new();
            h.eat(s.iter().copied());
            h.0
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn file() -> Vec<u8> {
        let t = vec![
            (
                "b".to_string(),
                "F64",
                vec![2],
                [1.0f64, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                "a \"q\"".to_string(),
                "U32",
                vec![1],
                7u32.to_le_bytes().to_vec(),
            ),
        ];
        let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
        sealed_safetensors(&t, &meta)
    }

    #[test]
    fn a_sealed_file_verifies_and_any_edit_is_caught() {
        let bytes = file();
        let st = SafeTensors::<'_, 8>::parse(&bytes).unwrap();
        verify(&st).unwrap();
        assert_eq!(reseal(&bytes).unwrap(), bytes, "resealing is the identity");
        // Every byte of the data section matters.
        let data_start = bytes.len() - 20;
        for i in data_start..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            let st = SafeTensors::<'_, 8>::parse(&b).unwrap();
            assert!(verify(&st).unwrap_err().contains("differs"), "byte {i}");
        }
        // A renamed tensor and a changed counter (same lengths, so the file still parses).
        for (from, to) in [(&b"\"b\""[..], &b"\"c\""[..]), (b"\"3\"", b"\"4\"")] {
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            let mut b = bytes.clone();
            b[at..at + to.len()].copy_from_slice(to);
            let st = SafeTensors::<'_, 8>::parse(&b).unwrap();
            assert!(verify(&st).is_err(), "{from:?} → {to:?}");
        }
        // No checksum at all.
        let plain = safetensors_bytes_typed(&[], &BTreeMap::new());
        let st = SafeTensors::<'_, 8>::parse(&plain).unwrap();
        assert!(verify(&st).unwrap_err().contains("no `keel.checksum`"));
    }
}
