//! RFC 7143 sections 7.8 and 11: what can be wrong with a received PDU.

use super::bhs::Bhs;
use super::codes::Opcode;

/// A rule of the PDU wire format that received bytes broke.
///
/// After [`PduError::DataDigestMismatch`] the stream is still in sync (the PDU was consumed) and
/// the receiver may answer with a Reject (reason DATA_DIGEST_ERROR) quoting `header`; after any
/// other error the connection must be dropped (RFC 7143 section 7.8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// DataSegmentLength above the negotiated MaxRecvDataSegmentLength or the hard cap.
    #[error("data segment of {len} bytes exceeds the limit of {limit} bytes")]
    DataSegmentTooLong { len: usize, limit: usize },
    /// TotalAHSLength above the AHS limit.
    #[error("additional header segments of {len} bytes exceed the limit of {limit} bytes")]
    AhsTooLong { len: usize, limit: usize },
    /// The header digest does not match BHS + AHS: framing can no longer be trusted.
    #[error("header digest mismatch: received {received:#010x}, computed {computed:#010x}")]
    HeaderDigestMismatch { received: u32, computed: u32 },
    /// The data digest does not match the data segment; the PDU was consumed.
    #[error("data digest mismatch on {opcode:?} itt {itt:#x}: received {received:#010x}, computed {computed:#010x}")]
    DataDigestMismatch {
        opcode: Opcode,
        itt: u32,
        received: u32,
        computed: u32,
        /// The BHS of the damaged PDU, to quote in a Reject.
        header: Box<Bhs>,
    },
    /// Fewer bytes than the header says the PDU has.
    #[error("PDU truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    /// More bytes than the header says the PDU has (when decoding one exact frame).
    #[error("PDU frame has {extra} bytes beyond its declared length")]
    TrailingBytes { extra: usize },
    /// An Additional Header Segment is malformed.
    #[error("malformed AHS: {reason}")]
    BadAhs { reason: &'static str },
    /// A SCSI Response or Async Message sense segment whose SenseLength overruns the data.
    #[error("SenseLength {sense_len} exceeds the {available} bytes of the data segment")]
    BadSenseLength { sense_len: usize, available: usize },
}
