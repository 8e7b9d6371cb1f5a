//! A JSON string borrowed from the text it was parsed from, unescaped lazily.
//!
//! The reader keeps no heap, so it cannot store unescaped copies: a [`JsonStr`] holds the raw
//! (escaped) body between the quotes, which the scanner has already validated, and decodes the
//! escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX` with surrogate pairs) on
//! every pass over it.

use core::fmt;

/// A validated JSON string, borrowed escaped and read unescaped.
///
/// Compare it with `==` against a `&str` (or another `JsonStr`), iterate its characters with
/// [`chars`](JsonStr::chars) or its UTF-8 bytes with [`bytes`](JsonStr::bytes), print it with
/// `Display`; [`as_str`](JsonStr::as_str) borrows it directly when it has no escapes.
#[derive(Clone, Copy)]
pub struct JsonStr<'a> {
    raw: &'a str,
}

impl<'a> JsonStr<'a> {
    /// The empty string (placeholder for capacity slots).
    pub(crate) const EMPTY: JsonStr<'static> = JsonStr { raw: "" };

    /// Wraps a string body the scanner validated (escapes well-formed, no control characters).
    pub(crate) fn from_validated(raw: &'a str) -> Self {
        JsonStr { raw }
    }

    /// The body as written in the file, escapes included, without the quotes.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The string itself, borrowed, when it contains no escapes; `None` otherwise (use
    /// [`chars`](JsonStr::chars) or [`bytes`](JsonStr::bytes) then).
    pub fn as_str(&self) -> Option<&'a str> {
        if self.raw.as_bytes().contains(&b'\\') {
            None
        } else {
            Some(self.raw)
        }
    }

    /// Whether the unescaped string is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The unescaped characters.
    pub fn chars(&self) -> Chars<'a> {
        Chars {
            rest: self.raw.chars(),
        }
    }

    /// The UTF-8 bytes of the unescaped string.
    pub fn bytes(&self) -> Bytes<'a> {
        Bytes {
            chars: self.chars(),
            buf: [0; 4],
            at: 0,
            len: 0,
            offset: 0,
        }
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw || self.chars().eq(other.chars())
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        match self.as_str() {
            Some(s) => s == other,
            None => self.chars().eq(other.chars()),
        }
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => f.write_str(s),
            None => {
                for c in self.chars() {
                    fmt::Write::write_char(f, c)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.raw)
    }
}

/// The unescaped characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Chars<'a> {
    rest: core::str::Chars<'a>,
}

impl Chars<'_> {
    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + self.rest.next()?.to_digit(16)?;
        }
        Some(v)
    }
}

impl Iterator for Chars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        // The body was validated when it was scanned; should it not be (it always is), the
        // iteration just stops instead of panicking.
        let c = self.rest.next()?;
        if c != '\\' {
            return Some(c);
        }
        Some(match self.rest.next()? {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) {
                    if self.rest.next()? != '\\' || self.rest.next()? != 'u' {
                        return None;
                    }
                    let lo = self.hex4()?;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + lo.checked_sub(0xDC00)?)?
                } else {
                    char::from_u32(hi)?
                }
            }
            other => other, // `"`, `\`, `/`
        })
    }
}

/// The UTF-8 bytes of the unescaped string of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Bytes<'a> {
    chars: Chars<'a>,
    buf: [u8; 4],
    at: u8,
    len: u8,
    offset: usize,
}

impl Bytes<'_> {
    /// Bytes produced so far (the offset of the next one in the unescaped string).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }
}

impl Iterator for Bytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.at >= self.len {
            let c = self.chars.next()?;
            self.len = c.encode_utf8(&mut self.buf).len() as u8;
            self.at = 0;
        }
        let b = self.buf.get(usize::from(self.at)).copied()?;
        self.at += 1;
        self.offset += 1;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::JsonStr;

    #[test]
    fn decodes_escapes_and_surrogates() {
        let s = JsonStr::from_validated(r#"a\"b\\c\/\n\u00e9\ud83d\ude00"#);
        let mut out = [0u8; 32];
        let mut n = 0;
        for b in s.bytes() {
            out[n] = b;
            n += 1;
        }
        assert_eq!(core::str::from_utf8(&out[..n]).unwrap(), "a\"b\\c/\né😀");
        assert!(s == "a\"b\\c/\né😀");
        assert!(s != "a\"b\\c/\né");
        assert_eq!(s.as_str(), None);
        assert_eq!(JsonStr::from_validated("plain").as_str(), Some("plain"));
    }
}
