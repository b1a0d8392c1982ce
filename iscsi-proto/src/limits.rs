//! RFC 7143 sections 11.2 and 13.12: the sizes of PDU parts and the limits a receiver enforces.
//!
//! Every length read from the wire (TotalAHSLength, DataSegmentLength) is checked against these
//! before a single byte of the PDU body is buffered or allocated.

/// Length of the Basic Header Segment (RFC 7143 section 11.2.1).
pub const BHS_LEN: usize = 48;

/// Length of a CRC32C header or data digest (RFC 7143 section 11.2.3).
pub const DIGEST_LEN: usize = 4;

/// Largest total length of the Additional Header Segments: TotalAHSLength is one byte counting
/// 4-byte words (RFC 7143 section 11.2.1.2).
pub const MAX_AHS_BYTES: usize = 255 * 4;

/// Largest value the 24-bit DataSegmentLength field can carry.
pub const MAX_DATA_SEGMENT_LENGTH_FIELD: usize = 0x00ff_ffff;

/// Hard cap on any received data segment whatever was negotiated (16 MiB).
pub const MAX_DATA_SEGMENT_HARD_CAP: usize = 16 * 1024 * 1024;

/// MaxRecvDataSegmentLength that applies until one is declared (RFC 7143 section 13.12).
pub const DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 8192;

/// Smallest MaxRecvDataSegmentLength a peer may declare (RFC 7143 section 13.12).
pub const MIN_MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 512;

/// Largest MaxRecvDataSegmentLength a peer may declare (2^24 - 1, RFC 7143 section 13.12).
pub const MAX_MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 0x00ff_ffff;

/// Largest PDU a decoder with the hard caps could ever have to buffer: BHS, AHS, header digest,
/// data segment padded to 4 bytes, data digest.
pub const MAX_PDU_LEN: usize =
    BHS_LEN + MAX_AHS_BYTES + DIGEST_LEN + MAX_DATA_SEGMENT_HARD_CAP + DIGEST_LEN;

/// What a receiver accepts from its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The MaxRecvDataSegmentLength this side declared (it bounds what the peer may send).
    /// Values above [`MAX_DATA_SEGMENT_HARD_CAP`] are clamped to it.
    pub max_recv_data_segment_length: u32,
    /// Largest accepted TotalAHSLength in bytes; clamped to [`MAX_AHS_BYTES`].
    pub max_ahs_bytes: usize,
}

impl Limits {
    /// The limits before and during login: RFC default MaxRecvDataSegmentLength, any AHS.
    pub const fn new() -> Limits {
        Limits {
            max_recv_data_segment_length: DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
            max_ahs_bytes: MAX_AHS_BYTES,
        }
    }

    /// Limits with the given declared MaxRecvDataSegmentLength.
    pub const fn with_max_recv_data_segment_length(len: u32) -> Limits {
        Limits {
            max_recv_data_segment_length: len,
            max_ahs_bytes: MAX_AHS_BYTES,
        }
    }

    /// The data segment limit in force: the declared one, never above the hard cap.
    pub fn data_segment_limit(&self) -> usize {
        (self.max_recv_data_segment_length as usize).min(MAX_DATA_SEGMENT_HARD_CAP)
    }

    /// The AHS limit in force, never above [`MAX_AHS_BYTES`].
    pub fn ahs_limit(&self) -> usize {
        self.max_ahs_bytes.min(MAX_AHS_BYTES)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

/// Rounds a data or AHS length up to the 4-byte boundary of RFC 7143 section 11.2.3.
pub const fn pad4(len: usize) -> usize {
    (len + 3) & !3
}
