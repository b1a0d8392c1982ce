//! RFC 4506: XDR, the External Data Representation.
//!
//! Types that cross the wire implement [`XdrEncode`] (write into any `bytes::BufMut`) and
//! [`XdrDecode`] (read from an [`XdrReader`], a bounded cursor over a byte slice). Variable-length
//! items (strings, opaque data, arrays) are checked twice before anything is allocated: against
//! the bytes that remain in the message and against a maximum, either the item's own (`<max>` in
//! the XDR language, given to [`XdrDecodeBounded`]) or the named defaults below.
//!
//! Message types are declared once with [`xdr_struct!`](crate::xdr_struct),
//! [`xdr_union!`](crate::xdr_union) and [`xdr_enum!`](crate::xdr_enum).

mod error;
mod macros;
mod primitives;

pub use error::XdrError;
pub use primitives::{FixedOpaque, Opaque};

use bytes::{Bytes, BytesMut};

/// Default maximum length of a variable-length opaque or string without its own `<max>`.
pub const DEFAULT_MAX_OPAQUE_LEN: u32 = 64 << 20;
/// Default maximum element count of a variable-length array without its own `<max>`.
pub const DEFAULT_MAX_ARRAY_LEN: u32 = 1 << 20;
/// Deepest nesting of boxed (recursive) values, e.g. a linked list declared as optional data
/// (`struct node { ...; node *next; }`): decoding recurses once per level.
pub const MAX_DECODE_DEPTH: u32 = 1024;

/// Encodes `self` in XDR.
pub trait XdrEncode {
    /// Appends the XDR encoding of `self` to `buf`.
    fn encode<B: bytes::BufMut>(&self, buf: &mut B);
    /// Exactly the number of bytes [`encode`](Self::encode) writes.
    fn encoded_len(&self) -> usize;
}

/// Decodes a value from XDR.
pub trait XdrDecode: Sized {
    /// Reads one value; on error the reader's position is unspecified.
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError>;
}

/// Decoding of variable-length items under an explicit maximum (`string s<255>`,
/// `opaque o<1024>`, `int a<16>` in the XDR language).
pub trait XdrDecodeBounded: Sized {
    /// Reads one value whose length (in bytes or elements) must not exceed `max`.
    fn decode_bounded(r: &mut XdrReader<'_>, max: u32) -> Result<Self, XdrError>;
}

impl<T: XdrEncode + ?Sized> XdrEncode for &T {
    fn encode<B: bytes::BufMut>(&self, buf: &mut B) {
        (**self).encode(buf)
    }
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}

/// Number of zero bytes that pad `len` bytes up to a multiple of four (RFC 4506 section 3).
pub const fn pad_len(len: usize) -> usize {
    (4 - (len % 4)) % 4
}

/// A bounded cursor over XDR input: every read checks the bytes that remain first.
#[derive(Debug, Clone)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    depth: u32,
}

impl<'a> XdrReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        XdrReader { buf, depth: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not yet read (without consuming them).
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Runs `f` one nesting level deeper, refusing more than [`MAX_DECODE_DEPTH`] levels.
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, XdrError>,
    ) -> Result<T, XdrError> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(XdrError::TooDeep {
                max: MAX_DECODE_DEPTH,
            });
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Fails with [`XdrError::TrailingBytes`] unless everything was read.
    pub fn finish(&self) -> Result<(), XdrError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(XdrError::TrailingBytes(self.buf.len()))
        }
    }

    fn need(&self, n: usize) -> Result<(), XdrError> {
        if self.buf.len() < n {
            Err(XdrError::UnexpectedEof {
                needed: n,
                remaining: self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// An unsigned 32-bit integer (RFC 4506 section 4.2).
    pub fn get_u32(&mut self) -> Result<u32, XdrError> {
        self.need(4)?;
        let (head, tail) = self.buf.split_at(4);
        self.buf = tail;
        Ok(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
    }

    /// A signed 32-bit integer (RFC 4506 section 4.1).
    pub fn get_i32(&mut self) -> Result<i32, XdrError> {
        Ok(self.get_u32()? as i32)
    }

    /// An unsigned hyper integer (RFC 4506 section 4.5).
    pub fn get_u64(&mut self) -> Result<u64, XdrError> {
        let hi = self.get_u32()? as u64;
        let lo = self.get_u32()? as u64;
        Ok((hi << 32) | lo)
    }

    /// A boolean (RFC 4506 section 4.4): only 0 and 1 are valid.
    pub fn get_bool(&mut self) -> Result<bool, XdrError> {
        match self.get_u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::InvalidBool(v)),
        }
    }

    /// `len` bytes of opaque data plus their zero padding (RFC 4506 section 4.9); borrows.
    pub fn get_fixed_opaque(&mut self, len: usize) -> Result<&'a [u8], XdrError> {
        let padded = len
            .checked_add(pad_len(len))
            .ok_or(XdrError::UnexpectedEof {
                needed: usize::MAX,
                remaining: self.buf.len(),
            })?;
        self.need(padded)?;
        let (data, tail) = self.buf.split_at(padded);
        if data[len..].iter().any(|&b| b != 0) {
            return Err(XdrError::NonZeroPadding);
        }
        self.buf = tail;
        Ok(&data[..len])
    }

    /// A length prefix for an item of at most `max` units, each at least `unit` bytes on the
    /// wire: checked against `max` and against the bytes that remain, before any allocation.
    pub fn get_len(&mut self, max: u32, unit: usize) -> Result<u32, XdrError> {
        let len = self.get_u32()?;
        if len > max {
            return Err(XdrError::LengthOverMax { len, max });
        }
        if (len as usize).saturating_mul(unit.max(1)) > self.buf.len() {
            return Err(XdrError::LengthOverRemaining {
                len,
                remaining: self.buf.len(),
            });
        }
        Ok(len)
    }

    /// Variable-length opaque data of at most `max` bytes (RFC 4506 section 4.10); borrows.
    pub fn get_var_opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let len = self.get_len(max, 1)?;
        self.get_fixed_opaque(len as usize)
    }

    /// A string of at most `max` bytes (RFC 4506 section 4.11), which must be UTF-8 here.
    pub fn get_string(&mut self, max: u32) -> Result<String, XdrError> {
        let raw = self.get_var_opaque(max)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| XdrError::InvalidUtf8)
    }
}

/// The XDR encoding of `value` as one buffer.
pub fn to_bytes<T: XdrEncode + ?Sized>(value: &T) -> Bytes {
    let mut buf = BytesMut::with_capacity(value.encoded_len());
    value.encode(&mut buf);
    buf.freeze()
}

/// Decodes a `T` that must fill `buf` exactly.
pub fn from_bytes<T: XdrDecode>(buf: &[u8]) -> Result<T, XdrError> {
    let mut r = XdrReader::new(buf);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Writes variable-length opaque data (length, bytes, zero padding; RFC 4506 section 4.10).
pub fn put_var_opaque<B: bytes::BufMut>(buf: &mut B, data: &[u8]) {
    buf.put_u32(data.len() as u32);
    put_fixed_opaque(buf, data);
}

/// Writes fixed-length opaque data and its zero padding (RFC 4506 section 4.9).
pub fn put_fixed_opaque<B: bytes::BufMut>(buf: &mut B, data: &[u8]) {
    buf.put_slice(data);
    buf.put_bytes(0, pad_len(data.len()));
}

/// Encoded length of variable-length opaque data of `len` bytes.
pub const fn var_opaque_len(len: usize) -> usize {
    4 + len + pad_len(len)
}
