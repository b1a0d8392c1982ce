//! RFC 4506 section 4: encodings of the primitive XDR types and the generic containers.
//!
//! | XDR | Rust |
//! | --- | --- |
//! | `int`, `unsigned int`, `hyper`, `unsigned hyper` | `i32`, `u32`, `i64`, `u64` |
//! | `bool` | `bool` |
//! | `float`, `double` | `f32`, `f64` (IEEE 754 bits) |
//! | `opaque o[n]` / `opaque o<max>` | [`FixedOpaque<n>`] / [`Opaque`] |
//! | `string s<max>` | `String` |
//! | `T a[n]` / `T a<max>` | `[T; n]` / `Vec<T>` |
//! | `T *p` (optional data) | `Option<T>` (or `Option<Box<T>>`) |
//! | `void` | `()` |
//! | struct of n members | tuples `(A, B, ...)` or [`xdr_struct!`](crate::xdr_struct) |

use super::{
    put_fixed_opaque, put_var_opaque, var_opaque_len, XdrDecode, XdrDecodeBounded, XdrEncode,
    XdrError, XdrReader, DEFAULT_MAX_ARRAY_LEN, DEFAULT_MAX_OPAQUE_LEN,
};
use bytes::{BufMut, Bytes};

macro_rules! int_impl {
    ($t:ty, $put:ident, $get:ident, $len:expr) => {
        impl XdrEncode for $t {
            fn encode<B: BufMut>(&self, buf: &mut B) {
                buf.$put(*self);
            }
            fn encoded_len(&self) -> usize {
                $len
            }
        }
        impl XdrDecode for $t {
            fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
                Ok(r.$get()? as $t)
            }
        }
    };
}

int_impl!(u32, put_u32, get_u32, 4);
int_impl!(i32, put_i32, get_i32, 4);
int_impl!(u64, put_u64, get_u64, 8);
int_impl!(i64, put_i64, get_u64, 8);

impl XdrEncode for bool {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(*self as u32);
    }
    fn encoded_len(&self) -> usize {
        4
    }
}
impl XdrDecode for bool {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.get_bool()
    }
}

impl XdrEncode for f32 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.to_bits());
    }
    fn encoded_len(&self) -> usize {
        4
    }
}
impl XdrDecode for f32 {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(f32::from_bits(r.get_u32()?))
    }
}

impl XdrEncode for f64 {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u64(self.to_bits());
    }
    fn encoded_len(&self) -> usize {
        8
    }
}
impl XdrDecode for f64 {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(f64::from_bits(r.get_u64()?))
    }
}

/// `void` (RFC 4506 section 4.16): nothing on the wire.
impl XdrEncode for () {
    fn encode<B: BufMut>(&self, _buf: &mut B) {}
    fn encoded_len(&self) -> usize {
        0
    }
}
impl XdrDecode for () {
    fn decode(_r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}

/// `string s<max>` (RFC 4506 section 4.11).
impl XdrEncode for String {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_var_opaque(buf, self.as_bytes());
    }
    fn encoded_len(&self) -> usize {
        var_opaque_len(self.len())
    }
}
impl XdrEncode for str {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_var_opaque(buf, self.as_bytes());
    }
    fn encoded_len(&self) -> usize {
        var_opaque_len(self.len())
    }
}
impl XdrDecode for String {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.get_string(DEFAULT_MAX_OPAQUE_LEN)
    }
}
impl XdrDecodeBounded for String {
    fn decode_bounded(r: &mut XdrReader<'_>, max: u32) -> Result<Self, XdrError> {
        r.get_string(max)
    }
}

/// Variable-length opaque data, `opaque o<max>` (RFC 4506 section 4.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Opaque(pub Bytes);

impl Opaque {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}
impl From<Vec<u8>> for Opaque {
    fn from(v: Vec<u8>) -> Self {
        Opaque(Bytes::from(v))
    }
}
impl From<Bytes> for Opaque {
    fn from(v: Bytes) -> Self {
        Opaque(v)
    }
}
impl From<&[u8]> for Opaque {
    fn from(v: &[u8]) -> Self {
        Opaque(Bytes::copy_from_slice(v))
    }
}
impl XdrEncode for Opaque {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_var_opaque(buf, &self.0);
    }
    fn encoded_len(&self) -> usize {
        var_opaque_len(self.0.len())
    }
}
impl XdrDecode for Opaque {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Self::decode_bounded(r, DEFAULT_MAX_OPAQUE_LEN)
    }
}
impl XdrDecodeBounded for Opaque {
    fn decode_bounded(r: &mut XdrReader<'_>, max: u32) -> Result<Self, XdrError> {
        Ok(Opaque(Bytes::copy_from_slice(r.get_var_opaque(max)?)))
    }
}

/// Fixed-length opaque data, `opaque o[N]` (RFC 4506 section 4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedOpaque<const N: usize>(pub [u8; N]);

impl<const N: usize> XdrEncode for FixedOpaque<N> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        put_fixed_opaque(buf, &self.0);
    }
    fn encoded_len(&self) -> usize {
        N + super::pad_len(N)
    }
}
impl<const N: usize> XdrDecode for FixedOpaque<N> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let raw = r.get_fixed_opaque(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(raw);
        Ok(FixedOpaque(out))
    }
}

/// Variable-length array, `T a<max>` (RFC 4506 section 4.13).
impl<T: XdrEncode> XdrEncode for Vec<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.len() as u32);
        for v in self {
            v.encode(buf);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.iter().map(XdrEncode::encoded_len).sum::<usize>()
    }
}
impl<T: XdrEncode> XdrEncode for [T] {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.len() as u32);
        for v in self {
            v.encode(buf);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.iter().map(XdrEncode::encoded_len).sum::<usize>()
    }
}
impl<T: XdrDecode> XdrDecode for Vec<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        Self::decode_bounded(r, DEFAULT_MAX_ARRAY_LEN)
    }
}
impl<T: XdrDecode> XdrDecodeBounded for Vec<T> {
    fn decode_bounded(r: &mut XdrReader<'_>, max: u32) -> Result<Self, XdrError> {
        // Elements may be `void`-sized; the reservation is therefore bounded by the bytes that
        // remain (each non-empty element takes at least four), never by the claimed count alone.
        let len = r.get_u32()?;
        if len > max {
            return Err(XdrError::LengthOverMax { len, max });
        }
        let mut out = Vec::with_capacity((len as usize).min(r.remaining() / 4));
        for _ in 0..len {
            out.push(T::decode(r)?);
        }
        Ok(out)
    }
}

/// Fixed-length array, `T a[N]` (RFC 4506 section 4.12).
impl<T: XdrEncode, const N: usize> XdrEncode for [T; N] {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        for v in self {
            v.encode(buf);
        }
    }
    fn encoded_len(&self) -> usize {
        self.iter().map(XdrEncode::encoded_len).sum()
    }
}
impl<T: XdrDecode, const N: usize> XdrDecode for [T; N] {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        let mut items = Vec::with_capacity(N.min(r.remaining() / 4 + 1));
        for _ in 0..N {
            items.push(T::decode(r)?);
        }
        match items.try_into() {
            Ok(a) => Ok(a),
            Err(_) => unreachable!("exactly N items were decoded"),
        }
    }
}

/// Optional data, `T *p` (RFC 4506 section 4.19): a boolean, then the value if TRUE.
impl<T: XdrEncode> XdrEncode for Option<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            None => buf.put_u32(0),
            Some(v) => {
                buf.put_u32(1);
                v.encode(buf);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, XdrEncode::encoded_len)
    }
}
impl<T: XdrDecode> XdrDecode for Option<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        if r.get_bool()? {
            Ok(Some(T::decode(r)?))
        } else {
            Ok(None)
        }
    }
}
impl<T: XdrDecodeBounded> XdrDecodeBounded for Option<T> {
    fn decode_bounded(r: &mut XdrReader<'_>, max: u32) -> Result<Self, XdrError> {
        if r.get_bool()? {
            Ok(Some(T::decode_bounded(r, max)?))
        } else {
            Ok(None)
        }
    }
}

impl<T: XdrEncode> XdrEncode for Box<T> {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        (**self).encode(buf)
    }
    fn encoded_len(&self) -> usize {
        (**self).encoded_len()
    }
}
impl<T: XdrDecode> XdrDecode for Box<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
        r.nested(|r| Ok(Box::new(T::decode(r)?)))
    }
}

macro_rules! tuple_impl {
    ($($n:tt $t:ident),+) => {
        /// A structure whose members are the tuple's fields in order (RFC 4506 section 4.14).
        impl<$($t: XdrEncode),+> XdrEncode for ($($t,)+) {
            fn encode<BM: BufMut>(&self, buf: &mut BM) {
                $(self.$n.encode(buf);)+
            }
            fn encoded_len(&self) -> usize {
                0 $(+ self.$n.encoded_len())+
            }
        }
        impl<$($t: XdrDecode),+> XdrDecode for ($($t,)+) {
            fn decode(r: &mut XdrReader<'_>) -> Result<Self, XdrError> {
                Ok(($($t::decode(r)?,)+))
            }
        }
    };
}

tuple_impl!(0 A);
tuple_impl!(0 A, 1 B);
tuple_impl!(0 A, 1 B, 2 C);
tuple_impl!(0 A, 1 B, 2 C, 3 D);
tuple_impl!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple_impl!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
