//! The safetensors container: validation on parse, zero-copy lookups afterwards.

use super::dtype::Dtype;
use super::json::{Number, Parser, Slice};
use super::json_str::JsonStr;
use super::tensor::TensorView;
use super::{MAX_HEADER_LEN, MAX_METADATA, MAX_RANK};
use crate::{Error, Result};

/// One tensor slot: name, view, and where its bytes start in the data section.
#[derive(Clone, Copy, Debug)]
struct Entry<'a> {
    name: JsonStr<'a>,
    view: TensorView<'a>,
    begin: usize,
}

impl Entry<'_> {
    const EMPTY: Entry<'static> = Entry {
        name: JsonStr::EMPTY,
        view: TensorView::EMPTY,
        begin: 0,
    };
}

/// A parsed, fully validated safetensors file holding at most `MAX` tensors, borrowing
/// everything from the file's bytes.
///
/// [`parse`](SafeTensors::parse) checks the whole file once (see the [module docs](super) for
/// the rules); afterwards lookups cannot fail on the file's contents. The struct stores, per
/// tensor, its name, a [`TensorView`] and its offset (92 bytes on a 64-bit host, 46 on a 32-bit
/// controller), so `SafeTensors<'_, 16>` occupies 1.5 kB / 0.74 kB wherever it lives.
#[derive(Clone, Debug)]
pub struct SafeTensors<'a, const MAX: usize> {
    header: &'a str,
    data: &'a [u8],
    entries: [Entry<'a>; MAX],
    len: usize,
    /// Byte range of the `__metadata__` object in the header.
    metadata: Option<(usize, usize)>,
}

impl<'a, const MAX: usize> SafeTensors<'a, MAX> {
    /// Parses and validates a safetensors file.
    ///
    /// # Errors
    /// The first broken rule, in this order: [`Error::Truncated`], [`Error::HeaderTooLarge`],
    /// [`Error::InvalidJson`] (UTF-8, syntax, depth, trailing characters),
    /// [`Error::InvalidHeader`], [`Error::DuplicateKey`], and per tensor in header order
    /// [`Error::UnknownDtype`], [`Error::RankTooLarge`], [`Error::ShapeOverflow`],
    /// [`Error::InvalidOffsets`], [`Error::OffsetsOutOfBounds`],
    /// [`Error::DataLengthMismatch`], [`Error::CapacityExceeded`] (more than `MAX` tensors or
    /// [`MAX_METADATA`] metadata entries); then [`Error::OverlappingTensors`] and
    /// [`Error::DataNotCovered`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let len = bytes.len();
        let prefix = bytes
            .get(..8)
            .and_then(|p| <[u8; 8]>::try_from(p).ok())
            .ok_or(Error::Truncated { needed: 8, len })?;
        let header_len = u64::from_le_bytes(prefix);
        let max = MAX_HEADER_LEN as u64;
        if header_len > max {
            return Err(Error::HeaderTooLarge {
                len: header_len,
                max,
            });
        }
        // ≤ MAX_HEADER_LEN + 8, which fits any usize of 32 bits or more.
        let header_end = usize::try_from(header_len)
            .ok()
            .and_then(|n| n.checked_add(8))
            .ok_or(Error::HeaderTooLarge {
                len: header_len,
                max,
            })?;
        let header = bytes.get(8..header_end).ok_or(Error::Truncated {
            needed: header_end,
            len,
        })?;
        let data = bytes.get(header_end..).unwrap_or(&[]);
        let text = core::str::from_utf8(header).map_err(|e| Error::InvalidJson {
            offset: e.valid_up_to(),
            reason: "invalid UTF-8",
        })?;

        // Pass 1: the text is one JSON value followed by whitespace only.
        let mut p = Parser::new(Slice::new(header));
        p.skip_value()?;
        p.end()?;
        if header.first() != Some(&b'{') {
            return Err(Error::InvalidHeader {
                what: "the header must be a JSON object starting at its first byte",
                offset: 0,
            });
        }

        // Pass 2: the schema.
        let mut st = SafeTensors {
            header: text,
            data,
            entries: [Entry::EMPTY; MAX],
            len: 0,
            metadata: None,
        };
        let mut seen_metadata = false;
        let mut p = Parser::new(Slice::new(header));
        p.begin_object()?;
        let mut first = true;
        while p.next_member(&mut first)? {
            let key_at = p.offset();
            let name = p.borrowed_string()?;
            p.colon()?;
            if name == "__metadata__" {
                if seen_metadata {
                    return Err(Error::DuplicateKey { offset: key_at });
                }
                seen_metadata = true;
                st.metadata = parse_metadata(&mut p)?;
                continue;
            }
            if st.entries().iter().any(|e| e.name == name) {
                return Err(Error::DuplicateKey { offset: key_at });
            }
            let tensor = st.len;
            let (view, begin) = parse_tensor(&mut p, tensor, data)?;
            let slot = st.entries.get_mut(tensor).ok_or(Error::CapacityExceeded {
                what: "tensors",
                capacity: MAX,
            })?;
            *slot = Entry { name, view, begin };
            st.len += 1;
        }

        // The data section: no overlaps, and covered exactly (so no gap and no trailing bytes).
        let entries = st.entries();
        let mut covered: usize = 0;
        for (i, a) in entries.iter().enumerate() {
            let a_end = a.begin + a.view.data().len();
            for (j, b) in entries.iter().enumerate().skip(i + 1) {
                let b_end = b.begin + b.view.data().len();
                if a.begin < b_end && b.begin < a_end {
                    return Err(Error::OverlappingTensors {
                        first: i,
                        second: j,
                    });
                }
            }
            // Non-overlapping ranges inside `data`: the sum stays ≤ data.len().
            covered = covered.saturating_add(a.view.data().len());
        }
        if covered != data.len() {
            return Err(Error::DataNotCovered {
                covered,
                len: data.len(),
            });
        }
        Ok(st)
    }

    fn entries(&self) -> &[Entry<'a>] {
        self.entries.get(..self.len).unwrap_or(&[])
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensor called `name`.
    ///
    /// # Errors
    /// [`Error::TensorNotFound`] (with `role: "tensor"`) if there is none.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'a>> {
        self.find(|n| n == name).ok_or(Error::TensorNotFound {
            role: "tensor",
            layer: None,
        })
    }

    /// The first tensor (in header order) whose name satisfies `pred`.
    pub fn find(&self, mut pred: impl FnMut(JsonStr<'a>) -> bool) -> Option<TensorView<'a>> {
        self.entries().iter().find(|e| pred(e.name)).map(|e| e.view)
    }

    /// Names and views of all tensors, in header order.
    pub fn tensors(&self) -> impl Iterator<Item = (JsonStr<'a>, TensorView<'a>)> + '_ {
        self.entries().iter().map(|e| (e.name, e.view))
    }

    /// The `__metadata__` value stored under `key`, if the file has one.
    ///
    /// Values are returned as [`JsonStr`]s: escapes (a JSON configuration serialised into a
    /// string is full of `\"`) are decoded as the value is read.
    pub fn metadata(&self, key: &str) -> Option<JsonStr<'a>> {
        self.metadata_entries()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// All `__metadata__` entries, in header order.
    pub fn metadata_entries(&self) -> MetadataEntries<'a> {
        let body = self
            .metadata
            .and_then(|(start, end)| self.header.as_bytes().get(start..end));
        let mut parser = Parser::new(Slice::new(body.unwrap_or(&[])));
        let done = body.is_none() || parser.begin_object().is_err();
        MetadataEntries {
            parser,
            first: true,
            done,
        }
    }

    /// The header's JSON text, trailing padding included.
    pub fn header(&self) -> &'a str {
        self.header
    }

    /// The data section (everything after the header).
    pub fn data_section(&self) -> &'a [u8] {
        self.data
    }
}

/// The entries of a file's `__metadata__` object: `(key, value)` pairs, in header order.
#[derive(Clone, Debug)]
pub struct MetadataEntries<'a> {
    parser: Parser<Slice<'a>>,
    first: bool,
    done: bool,
}

impl<'a> Iterator for MetadataEntries<'a> {
    type Item = (JsonStr<'a>, JsonStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Validated by `parse`; any surprise ends the iteration rather than panicking.
        let entry = (|| {
            if !self.parser.next_member(&mut self.first)? {
                return Ok(None);
            }
            let key = self.parser.borrowed_string()?;
            self.parser.colon()?;
            let value = self.parser.borrowed_string()?;
            Ok::<_, Error>(Some((key, value)))
        })();
        match entry {
            Ok(Some(kv)) => Some(kv),
            _ => {
                self.done = true;
                None
            }
        }
    }
}

fn invalid(what: &'static str, offset: usize) -> Error {
    Error::InvalidHeader { what, offset }
}

/// `__metadata__`: `null`, or an object of at most [`MAX_METADATA`] string values with distinct
/// keys. Returns the object's byte range.
fn parse_metadata(p: &mut Parser<Slice<'_>>) -> Result<Option<(usize, usize)>> {
    const RULE: &str = "`__metadata__` must be an object of strings";
    if p.null()? {
        return Ok(None);
    }
    let start = p.offset();
    if p.peek_token() != Some(b'{') {
        return Err(invalid(RULE, start));
    }
    p.begin_object()?;
    let mut keys = [JsonStr::EMPTY; MAX_METADATA];
    let mut n = 0;
    let mut first = true;
    while p.next_member(&mut first)? {
        let key_at = p.offset();
        let key = p.borrowed_string()?;
        p.colon()?;
        if keys.get(..n).unwrap_or(&[]).contains(&key) {
            return Err(Error::DuplicateKey { offset: key_at });
        }
        *keys.get_mut(n).ok_or(Error::CapacityExceeded {
            what: "metadata entries",
            capacity: MAX_METADATA,
        })? = key;
        n += 1;
        if p.peek_token() != Some(b'"') {
            return Err(invalid(RULE, p.offset()));
        }
        p.borrowed_string()?;
    }
    Ok(Some((start, p.offset())))
}

/// Reads an array of non-negative integers into `out`, returning how many there were (which
/// may exceed `out.len()`; the extra ones are validated and dropped).
fn unsigned_array(p: &mut Parser<Slice<'_>>, out: &mut [u64], rule: &'static str) -> Result<usize> {
    if p.peek_token() != Some(b'[') {
        return Err(invalid(rule, p.offset()));
    }
    p.begin_array()?;
    let mut n = 0usize;
    let mut first = true;
    while p.next_element(&mut first)? {
        let at = p.offset();
        if !matches!(p.peek_token(), Some(b'-' | b'0'..=b'9')) {
            return Err(invalid(rule, at));
        }
        match p.number()? {
            Number::Unsigned(v) => {
                if let Some(slot) = out.get_mut(n) {
                    *slot = v;
                }
                n = n.saturating_add(1);
            }
            Number::Other => return Err(invalid(rule, at)),
        }
    }
    Ok(n)
}

/// One tensor entry `{"dtype": …, "shape": […], "data_offsets": [begin, end]}`, checked against
/// the data section. Returns the view and its start offset.
fn parse_tensor<'a>(
    p: &mut Parser<Slice<'a>>,
    tensor: usize,
    data: &'a [u8],
) -> Result<(TensorView<'a>, usize)> {
    const SHAPE_RULE: &str = "`shape` must be an array of non-negative integers";
    const OFFSETS_RULE: &str = "`data_offsets` must be two non-negative integers";
    let at = p.offset();
    if p.peek_token() != Some(b'{') {
        return Err(invalid("a tensor entry must be an object", p.offset()));
    }
    p.begin_object()?;
    let mut dtype = None;
    let mut shape = None;
    let mut offsets = None;
    let mut first = true;
    while p.next_member(&mut first)? {
        let key_at = p.offset();
        let key = p.borrowed_string()?;
        p.colon()?;
        let duplicate = Error::DuplicateKey { offset: key_at };
        if key == "dtype" {
            if dtype.is_some() {
                return Err(duplicate);
            }
            if p.peek_token() != Some(b'"') {
                return Err(invalid("`dtype` must be a string", p.offset()));
            }
            dtype = Some(p.borrowed_string()?);
        } else if key == "shape" {
            if shape.is_some() {
                return Err(duplicate);
            }
            let mut dims = [0u64; MAX_RANK];
            let rank = unsigned_array(p, &mut dims, SHAPE_RULE)?;
            shape = Some((dims, rank));
        } else if key == "data_offsets" {
            if offsets.is_some() {
                return Err(duplicate);
            }
            let value_at = p.offset();
            let mut pair = [0u64; 2];
            if unsigned_array(p, &mut pair, OFFSETS_RULE)? != 2 {
                return Err(invalid(OFFSETS_RULE, value_at));
            }
            offsets = Some(pair);
        } else {
            return Err(invalid("unknown field in a tensor entry", key_at));
        }
    }
    let dtype = dtype.ok_or(invalid("a tensor entry lacks `dtype`", at))?;
    let (dims, rank) = shape.ok_or(invalid("a tensor entry lacks `shape`", at))?;
    let [begin, end] = offsets.ok_or(invalid("a tensor entry lacks `data_offsets`", at))?;

    let dtype = Dtype::from_json(dtype).ok_or(Error::UnknownDtype { tensor })?;
    if rank > MAX_RANK {
        return Err(Error::RankTooLarge {
            tensor,
            rank,
            max: MAX_RANK,
        });
    }
    let overflow = Error::ShapeOverflow { tensor };
    let mut shape = [0usize; MAX_RANK];
    for (s, &d) in shape.iter_mut().zip(dims.iter()).take(rank) {
        *s = usize::try_from(d).map_err(|_| overflow)?;
    }
    let shape_used = shape.get(..rank).unwrap_or(&[]);
    // A zero axis makes the tensor empty however large the other axes are.
    let elements = if shape_used.contains(&0) {
        0
    } else {
        shape_used
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or(overflow)?
    };
    let expected = elements.checked_mul(dtype.size()).ok_or(overflow)?;
    let saturate = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if begin > end {
        return Err(Error::InvalidOffsets {
            tensor,
            begin: saturate(begin),
            end: saturate(end),
        });
    }
    let out_of_bounds = Error::OffsetsOutOfBounds {
        tensor,
        end: saturate(end),
        len: data.len(),
    };
    if end > data.len() as u64 {
        return Err(out_of_bounds);
    }
    // Both ≤ data.len(), so they fit usize.
    let (begin, end) = (saturate(begin), saturate(end));
    if end - begin != expected {
        return Err(Error::DataLengthMismatch {
            tensor,
            expected,
            got: end - begin,
        });
    }
    let bytes = data.get(begin..end).ok_or(out_of_bounds)?;
    Ok((TensorView::new(dtype, shape, rank, bytes), begin))
}
