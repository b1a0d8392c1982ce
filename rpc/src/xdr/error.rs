//! RFC 4506: the rules an XDR decoder enforces, one variant per broken rule.

use thiserror::Error;

/// A violation of RFC 4506 (or of a length limit this crate places on it) found while decoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XdrError {
    /// Fewer bytes remain than the next item needs (RFC 4506 section 3: every item is a multiple
    /// of four bytes and must be present in full).
    #[error("XDR input ends early: {needed} bytes needed, {remaining} remain")]
    UnexpectedEof { needed: usize, remaining: usize },
    /// A variable-length item declares more elements than its declared maximum
    /// (RFC 4506 sections 4.10, 4.11, 4.13: `<max>` bounds opaque, string and array lengths).
    #[error("XDR length {len} exceeds the maximum {max} of this item")]
    LengthOverMax { len: u32, max: u32 },
    /// A variable-length item declares more data than the message still holds; refused before
    /// allocating.
    #[error("XDR length {len} claims more than the {remaining} bytes that remain")]
    LengthOverRemaining { len: u32, remaining: usize },
    /// A boolean (or optional-data flag) other than 0 or 1 (RFC 4506 sections 4.4 and 4.19).
    #[error("XDR boolean must be 0 or 1, got {0}")]
    InvalidBool(u32),
    /// Fill bytes after opaque data or a string were not zero (RFC 4506 section 4.9).
    #[error("XDR padding bytes must be zero")]
    NonZeroPadding,
    /// A string whose bytes are not UTF-8 (this crate maps XDR strings to Rust `String`).
    #[error("XDR string is not valid UTF-8")]
    InvalidUtf8,
    /// A union discriminant that matches no arm and the union has no default arm
    /// (RFC 4506 section 4.15).
    #[error("XDR union {union} has no arm for discriminant {value}")]
    UnknownDiscriminant { union: &'static str, value: i32 },
    /// Bytes left over after the item that should fill the whole message.
    #[error("{0} trailing bytes after the XDR item")]
    TrailingBytes(usize),
    /// Recursive data (e.g. a linked list of optional data) nested deeper than allowed.
    #[error("XDR data nested deeper than {max} levels")]
    TooDeep { max: u32 },
    /// Optional-data chains (linked lists) longer than the allowed element count.
    #[error("XDR list longer than the maximum {max} elements")]
    ListTooLong { max: u32 },
}
