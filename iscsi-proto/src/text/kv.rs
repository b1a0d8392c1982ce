//! RFC 7143 section 6.1: the text format of login and text data segments.
//!
//! A data segment is a list of `key=value` pairs, each followed by a NUL byte. Key names are at
//! most 63 bytes of letters, digits, '.', '-', '+', '@' and '_'; values are UTF-8 of at most 255
//! bytes except where a key allows longer (CHAP_C and CHAP_R carry large binary values). A text
//! may be spread over several PDUs with the continue bit set; [`TextAccumulator`] joins them
//! under a bound before parsing.

use super::error::TextError;
use nom::bytes::complete::{tag, take_till};
use nom::combinator::rest;
use nom::sequence::separated_pair;
use nom::IResult;

/// Longest key name (RFC 7143 section 6.1).
pub const MAX_KEY_LEN: usize = 63;
/// Longest value unless the key allows more (RFC 7143 section 6.1).
pub const MAX_VALUE_LEN: usize = 255;
/// Longest string form of a large binary value (CHAP_C, CHAP_R; RFC 7143 sections 6.1, 12.1.3).
pub const MAX_LARGE_VALUE_LEN: usize = 8192;
/// Longest text of one login or text negotiation, all PDUs of a continued text together.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// One `key=value` pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl KeyValue {
    /// A pair from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The value limit for `key` (RFC 7143 section 6.1).
pub fn value_limit(key: &str) -> usize {
    match key {
        "CHAP_C" | "CHAP_R" => MAX_LARGE_VALUE_LEN,
        _ => MAX_VALUE_LEN,
    }
}

/// Whether `b` may appear in a key name (RFC 7143 section 6.1).
pub fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'@' | b'_')
}

fn key_and_value(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    separated_pair(take_till(|b| b == b'='), tag(&b"="[..]), rest)(input)
}

/// Parses one `key=value` pair (without its NUL).
pub fn parse_pair(entry: &[u8]) -> Result<KeyValue, TextError> {
    let (_, (key, value)) = key_and_value(entry).map_err(|_| TextError::MissingSeparator)?;
    if key.is_empty() {
        return Err(TextError::EmptyKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(TextError::KeyTooLong {
            len: key.len(),
            limit: MAX_KEY_LEN,
        });
    }
    if let Some(&byte) = key.iter().find(|&&b| !is_key_byte(b)) {
        return Err(TextError::InvalidKeyChar { byte });
    }
    // Only key bytes from the allowed ASCII set are present, so this cannot fail.
    let key = std::str::from_utf8(key).map_err(|_| TextError::InvalidUtf8)?;
    let limit = value_limit(key);
    if value.len() > limit {
        return Err(TextError::ValueTooLong {
            key: key.to_string(),
            len: value.len(),
            limit,
        });
    }
    let value = std::str::from_utf8(value).map_err(|_| TextError::InvalidUtf8)?;
    Ok(KeyValue::new(key, value))
}

fn parse_entries(data: &[u8]) -> Result<Vec<KeyValue>, TextError> {
    if data.len() > MAX_TEXT_LEN {
        return Err(TextError::TextTooLong {
            len: data.len(),
            limit: MAX_TEXT_LEN,
        });
    }
    // Trailing NULs (the terminator of the last pair, or padding) end the text; an empty
    // entry followed by a pair is malformed.
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let body = &data[..end];
    let mut out = Vec::new();
    if body.is_empty() {
        return Ok(out);
    }
    for entry in body.split(|&b| b == 0) {
        if entry.is_empty() {
            return Err(TextError::EmptyPair);
        }
        out.push(parse_pair(entry)?);
    }
    Ok(out)
}

/// Parses a login or text data segment; a key appearing twice is an error (RFC 7143 section
/// 6.2). The last pair may lack its NUL; trailing NULs are ignored.
pub fn parse_text(data: &[u8]) -> Result<Vec<KeyValue>, TextError> {
    let pairs = parse_entries(data)?;
    for (i, p) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|q| q.key == p.key) {
            return Err(TextError::DuplicateKey { key: p.key.clone() });
        }
    }
    Ok(pairs)
}

/// Parses a text where keys may repeat: SendTargets responses list many TargetName and
/// TargetAddress pairs (RFC 7143 appendix C).
pub fn parse_text_repeatable(data: &[u8]) -> Result<Vec<KeyValue>, TextError> {
    parse_entries(data)
}

/// Appends `key=value\0` to `out`.
pub fn encode_pair(key: &str, value: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// Encodes pairs as a data segment, every pair followed by NUL.
pub fn encode_text(pairs: &[KeyValue]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.iter().map(|p| p.key.len() + p.value.len() + 2).sum());
    for p in pairs {
        encode_pair(&p.key, &p.value, &mut out);
    }
    out
}

/// The value of the first pair named `key`.
pub fn find<'a>(pairs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

/// Joins the data segments of a text spread over several PDUs (C bit set on all but the last,
/// RFC 7143 sections 11.10.2 and 11.12.2), refusing to grow beyond its limit.
#[derive(Clone, Debug)]
pub struct TextAccumulator {
    buf: Vec<u8>,
    limit: usize,
}

impl Default for TextAccumulator {
    fn default() -> Self {
        TextAccumulator::new(MAX_TEXT_LEN)
    }
}

impl TextAccumulator {
    /// An empty accumulator holding at most `limit` bytes.
    pub fn new(limit: usize) -> TextAccumulator {
        TextAccumulator {
            buf: Vec::new(),
            limit,
        }
    }

    /// Appends one PDU's data segment.
    pub fn push(&mut self, segment: &[u8]) -> Result<(), TextError> {
        let len = self.buf.len().saturating_add(segment.len());
        if len > self.limit {
            return Err(TextError::TextTooLong {
                len,
                limit: self.limit,
            });
        }
        self.buf.extend_from_slice(segment);
        Ok(())
    }

    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the joined text out, leaving the accumulator empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Takes the joined text out and parses it with [`parse_text`].
    pub fn finish(&mut self) -> Result<Vec<KeyValue>, TextError> {
        let data = self.take();
        parse_text(&data)
    }
}

/// Cuts an encoded text into data segments of at most `max_segment` bytes; all but the last go
/// into PDUs with the C bit set. A zero `max_segment` is treated as 1.
pub fn split_text(text: &[u8], max_segment: usize) -> Vec<&[u8]> {
    if text.is_empty() {
        return vec![text];
    }
    text.chunks(max_segment.max(1)).collect()
}
