//! A small JSON scanner: no heap, no recursion, no panics.
//!
//! It reads from any [`Source`] of bytes — the header text itself, or the unescaped bytes of a
//! JSON string (a model configuration serialised *into* a metadata value) — and offers two
//! things:
//!
//! - [`Parser::skip_value`] validates one complete value of any shape (RFC 8259 grammar; strings
//!   with every escape and surrogate pairs checked, control characters rejected; numbers by the
//!   exact grammar) iteratively: open containers are remembered in one `u64` bit stack, so the
//!   nesting depth is capped at [`MAX_DEPTH`] and stack use is constant;
//! - pull-style helpers ([`Parser::next_member`], [`Parser::next_element`], [`Parser::string`],
//!   [`Parser::number`], …) to walk a value of a known schema.
//!
//! UTF-8 validity of the raw text is checked by the caller once (`core::str::from_utf8`), so
//! strings only check escapes and control characters here.

use super::json_str::{self, JsonStr};
use crate::{Error, Result};

/// Deepest nesting of arrays and objects the scanner accepts.
pub const MAX_DEPTH: usize = 64;

// Open containers are remembered one bit each in a `u64`.
const _: () = assert!(MAX_DEPTH <= 64);

/// A stream of bytes with a position.
pub(crate) trait Source: Clone {
    /// The next byte, consumed.
    fn next_byte(&mut self) -> Option<u8>;
    /// Offset of the next byte.
    fn offset(&self) -> usize;
}

/// A byte slice read from the front.
#[derive(Clone, Debug)]
pub(crate) struct Slice<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Slice<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Slice { bytes, pos: 0 }
    }
}

impl Source for Slice<'_> {
    #[inline]
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }
    #[inline]
    fn offset(&self) -> usize {
        self.pos
    }
}

impl Source for json_str::Bytes<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        self.next()
    }
    fn offset(&self) -> usize {
        json_str::Bytes::offset(self)
    }
}

/// What a number turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Number {
    /// A non-negative integer without fraction or exponent that fits in `u64`.
    Unsigned(u64),
    /// Any other valid number (negative, fractional, exponent, or larger than `u64`).
    Other,
}

/// The JSON scanner.
#[derive(Clone, Debug)]
pub(crate) struct Parser<S> {
    src: S,
}

impl<S: Source> Parser<S> {
    pub(crate) fn new(src: S) -> Self {
        Parser { src }
    }

    /// Offset of the next byte.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.src.offset()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.src.clone().next_byte()
    }

    #[inline]
    fn bump(&mut self) -> Option<u8> {
        self.src.next_byte()
    }

    /// An [`Error::InvalidJson`] at the current offset.
    pub(crate) fn error(&self, reason: &'static str) -> Error {
        Error::InvalidJson {
            offset: self.offset(),
            reason,
        }
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    /// The next non-whitespace byte, not consumed.
    pub(crate) fn peek_token(&mut self) -> Option<u8> {
        self.ws();
        self.peek()
    }

    fn consume(&mut self, byte: u8, reason: &'static str) -> Result<()> {
        if self.peek() == Some(byte) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    /// Whitespace, then the end of the input.
    pub(crate) fn end(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters after the JSON value")),
        }
    }

    /// Consumes `{` (after whitespace); the caller then loops on [`next_member`](Self::next_member).
    pub(crate) fn begin_object(&mut self) -> Result<()> {
        self.ws();
        self.consume(b'{', "expected `{`")
    }

    /// Consumes `[` (after whitespace); the caller then loops on
    /// [`next_element`](Self::next_element).
    pub(crate) fn begin_array(&mut self) -> Result<()> {
        self.ws();
        self.consume(b'[', "expected `[`")
    }

    /// Moves to the next member of an object: `Ok(true)` when a key string follows (positioned
    /// at its quote), `Ok(false)` when the closing `}` was consumed. `first` tracks the comma.
    pub(crate) fn next_member(&mut self, first: &mut bool) -> Result<bool> {
        self.ws();
        if self.peek() == Some(b'}') {
            self.bump();
            return Ok(false);
        }
        if !*first {
            self.consume(b',', "expected `,` or `}`")?;
            self.ws();
        }
        *first = false;
        if self.peek() == Some(b'"') {
            Ok(true)
        } else {
            Err(self.error("expected a key string"))
        }
    }

    /// Consumes the `:` after a key.
    pub(crate) fn colon(&mut self) -> Result<()> {
        self.ws();
        self.consume(b':', "expected `:`")?;
        self.ws();
        Ok(())
    }

    /// Moves to the next element of an array: `Ok(true)` when a value follows, `Ok(false)`
    /// when the closing `]` was consumed.
    pub(crate) fn next_element(&mut self, first: &mut bool) -> Result<bool> {
        self.ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(false);
        }
        if !*first {
            self.consume(b',', "expected `,` or `]`")?;
            self.ws();
        }
        *first = false;
        Ok(true)
    }

    /// Reads a string (at its opening quote), feeding the unescaped UTF-8 bytes to `sink`.
    pub(crate) fn string(&mut self, mut sink: impl FnMut(&[u8])) -> Result<()> {
        self.ws();
        self.consume(b'"', "expected a string")?;
        loop {
            let before = self.clone();
            match self.bump() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => return Ok(()),
                Some(b'\\') => {
                    let c = self.escape(&before)?;
                    let mut buf = [0u8; 4];
                    sink(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(b) if b < 0x20 => return Err(before.error("control character in string")),
                Some(b) => sink(&[b]),
            }
        }
    }

    /// Reads a string and returns it decoded if it fits `buf` (`None` when longer; the string
    /// is consumed and validated either way).
    pub(crate) fn small_string<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b str>> {
        let mut len = 0usize;
        let mut fits = true;
        self.string(|bytes| {
            for &b in bytes {
                match buf.get_mut(len) {
                    Some(slot) if fits => {
                        *slot = b;
                        len += 1;
                    }
                    _ => fits = false,
                }
            }
        })?;
        if !fits {
            return Ok(None);
        }
        // Complete characters were written (escapes are encoded whole, raw bytes come from
        // valid UTF-8 text), so this succeeds; a failure reads as "does not fit".
        Ok(buf.get(..len).and_then(|b| core::str::from_utf8(b).ok()))
    }

    fn hex4(&mut self, at: &Self) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .bump()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| at.error("invalid \\u escape"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    /// The character of an escape whose backslash was consumed (`at`: the parser before it).
    fn escape(&mut self, at: &Self) -> Result<char> {
        Ok(match self.bump() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hi = self.hex4(at)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if self.bump() != Some(b'\\') || self.bump() != Some(b'u') {
                        return Err(at.error("unpaired surrogate in \\u escape"));
                    }
                    let lo = self.hex4(at)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(at.error("unpaired surrogate in \\u escape"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(at.error("unpaired surrogate in \\u escape"));
                } else {
                    hi
                };
                char::from_u32(code).ok_or_else(|| at.error("invalid \\u escape"))?
            }
            _ => return Err(at.error("invalid escape")),
        })
    }

    fn digits(&mut self, mut each: impl FnMut(u8)) -> Result<()> {
        match self.peek() {
            Some(d @ b'0'..=b'9') => {
                self.bump();
                each(d - b'0');
            }
            _ => return Err(self.error("expected a digit")),
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            self.bump();
            each(d - b'0');
        }
        Ok(())
    }

    /// Reads a number by the exact JSON grammar.
    pub(crate) fn number(&mut self) -> Result<Number> {
        self.ws();
        let mut negative = false;
        if self.peek() == Some(b'-') {
            self.bump();
            negative = true;
        }
        let mut value = Some(0u64);
        match self.peek() {
            Some(b'0') => {
                self.bump();
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("leading zero in number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(|d| {
                value = value
                    .and_then(|v| v.checked_mul(10))
                    .and_then(|v| v.checked_add(u64::from(d)));
            })?,
            _ => return Err(self.error("invalid number")),
        }
        let mut integer = !negative;
        if self.peek() == Some(b'.') {
            self.bump();
            integer = false;
            self.digits(|_| ())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.bump();
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.bump();
            }
            self.digits(|_| ())?;
        }
        Ok(match value {
            Some(v) if integer => Number::Unsigned(v),
            _ => Number::Other,
        })
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        let at = self.clone();
        for &b in word {
            if self.bump() != Some(b) {
                return Err(at.error("invalid literal"));
            }
        }
        Ok(())
    }

    /// Reads `true` or `false`; `Ok(None)` (nothing consumed) for any other value.
    pub(crate) fn boolean(&mut self) -> Result<Option<bool>> {
        match self.peek_token() {
            Some(b't') => self.literal(b"true").map(|()| Some(true)),
            Some(b'f') => self.literal(b"false").map(|()| Some(false)),
            _ => Ok(None),
        }
    }

    /// Reads `null` if it comes next (`Ok(true)`); otherwise consumes nothing (`Ok(false)`).
    pub(crate) fn null(&mut self) -> Result<bool> {
        if self.peek_token() == Some(b'n') {
            self.literal(b"null").map(|()| true)
        } else {
            Ok(false)
        }
    }

    /// Validates and skips one complete value of any kind, without recursion.
    pub(crate) fn skip_value(&mut self) -> Result<()> {
        // Bit d of `objects` says whether the container at depth d+1 is an object.
        let mut objects: u64 = 0;
        let mut depth: usize = 0;
        loop {
            // A value is expected here.
            match self.peek_token() {
                Some(open @ (b'{' | b'[')) => {
                    if depth >= MAX_DEPTH {
                        return Err(self.error("nesting too deep"));
                    }
                    self.bump();
                    let is_object = open == b'{';
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek_token() == Some(close) {
                        self.bump();
                    } else {
                        objects = if is_object {
                            objects | (1 << depth)
                        } else {
                            objects & !(1 << depth)
                        };
                        depth += 1;
                        if is_object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string(|_| ())?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(_) => return Err(self.error("expected a value")),
                None => return Err(self.error("unexpected end of input")),
            }
            // A value is complete: close containers until another value is expected.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let in_object = objects & (1 << (depth - 1)) != 0;
                match self.peek_token() {
                    Some(b',') => {
                        self.bump();
                        if in_object {
                            self.key()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {
                        self.bump();
                        depth -= 1;
                    }
                    Some(b']') if !in_object => {
                        self.bump();
                        depth -= 1;
                    }
                    Some(_) if in_object => return Err(self.error("expected `,` or `}`")),
                    Some(_) => return Err(self.error("expected `,` or `]`")),
                    None => return Err(self.error("unexpected end of input")),
                }
            }
        }
    }

    /// A key string and its colon.
    fn key(&mut self) -> Result<()> {
        if self.peek_token() != Some(b'"') {
            return Err(self.error("expected a key string"));
        }
        self.string(|_| ())?;
        self.colon()
    }
}

impl<'a> Parser<Slice<'a>> {
    /// Reads a string and returns it borrowed from the text (the text must be valid UTF-8,
    /// which the caller checked before scanning).
    pub(crate) fn borrowed_string(&mut self) -> Result<JsonStr<'a>> {
        self.ws();
        let start = self.offset() + 1;
        self.string(|_| ())?;
        let end = self.offset().saturating_sub(1);
        self.src
            .bytes
            .get(start..end)
            .and_then(|b| core::str::from_utf8(b).ok())
            .map(JsonStr::from_validated)
            .ok_or_else(|| self.error("string is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Number, Parser, Slice, MAX_DEPTH};

    fn valid(text: &str) -> bool {
        let mut p = Parser::new(Slice::new(text.as_bytes()));
        p.skip_value().and_then(|()| p.end()).is_ok()
    }

    #[test]
    fn accepts_rfc_8259_values() {
        for ok in [
            "0",
            "-0",
            "1.5e-3",
            "-12E+4",
            "true",
            "null",
            r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
            "[]",
            "{}",
            r#" { "a" : [ 1 , { "b" : [ ] } , "c" ] , "d" : { } } "#,
        ] {
            assert!(valid(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "[}",
            "{]",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "\"open",
            "[1] x",
            "[[[",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn depth_is_capped_without_recursion() {
        let mut deep = [b'['; 2 * MAX_DEPTH + 2];
        for b in deep.iter_mut().skip(MAX_DEPTH) {
            *b = b']';
        }
        assert!(valid(core::str::from_utf8(&deep[..2 * MAX_DEPTH]).unwrap()));
        let mut deeper = [b'['; 2 * MAX_DEPTH + 2];
        for b in deeper.iter_mut().skip(MAX_DEPTH + 1) {
            *b = b']';
        }
        assert!(!valid(core::str::from_utf8(&deeper).unwrap()));
        let huge = [b'['; 100_000];
        assert!(!valid(core::str::from_utf8(&huge).unwrap()));
    }

    #[test]
    fn numbers_classify() {
        let n = |t: &str| Parser::new(Slice::new(t.as_bytes())).number().unwrap();
        assert_eq!(n("42"), Number::Unsigned(42));
        assert_eq!(n("18446744073709551615"), Number::Unsigned(u64::MAX));
        assert_eq!(n("18446744073709551616"), Number::Other);
        assert_eq!(n("-1"), Number::Other);
        assert_eq!(n("1.0"), Number::Other);
        assert_eq!(n("1e2"), Number::Other);
    }

    #[test]
    fn small_string_decodes_or_reports_too_long() {
        let mut buf = [0u8; 8];
        let mut p = Parser::new(Slice::new(br#""F\u0033\u0032""#));
        assert_eq!(p.small_string(&mut buf).unwrap(), Some("F32"));
        let mut p = Parser::new(Slice::new(br#""much too long""#));
        assert_eq!(p.small_string(&mut buf).unwrap(), None);
    }
}
