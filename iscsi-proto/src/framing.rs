//! RFC 7143 sections 11.2 and 7.8: splitting a TCP byte stream into PDUs.
//!
//! [`PduDecoder`] looks at the BHS as soon as its 48 bytes are buffered and checks
//! TotalAHSLength and DataSegmentLength against [`Limits`] before the caller reads (and buffers)
//! the rest, so a peer cannot make the receiver allocate more than the limits allow. With header
//! digests on, the digest is verified as soon as BHS + AHS + digest are buffered, before waiting
//! for the data segment. A complete PDU is split off the buffer (`split_to(..).freeze()`) and its
//! data segment is a slice of that allocation.

use bytes::BytesMut;

use crate::digest::{self, DigestConfig};
use crate::limits::{pad4, Limits, BHS_LEN};
use crate::pdu::{data_wire_len, Bhs, Pdu, PduError};

/// Streaming PDU decoder for one connection.
#[derive(Clone, Debug, Default)]
pub struct PduDecoder {
    limits: Limits,
    digests: DigestConfig,
}

impl PduDecoder {
    /// A decoder with the given limits and digests (use [`DigestConfig::NONE`] during login).
    pub fn new(limits: Limits, digests: DigestConfig) -> PduDecoder {
        PduDecoder { limits, digests }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits, e.g. once MaxRecvDataSegmentLength is negotiated.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The digests in force.
    pub fn digests(&self) -> DigestConfig {
        self.digests
    }

    /// Changes the digests; call between PDUs, after the last Login Response (RFC 7143
    /// section 13.1: digests start with the first PDU after login).
    pub fn set_digests(&mut self, digests: DigestConfig) {
        self.digests = digests;
    }

    /// The wire length of the PDU at the start of `buf` once its BHS is buffered (None before),
    /// after checking its lengths against the limits (and, when enabled and buffered, its
    /// header digest).
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, PduError> {
        let Some(bhs) = Bhs::from_slice(buf) else {
            return Ok(None);
        };
        let ahs_len = bhs.ahs_len();
        if ahs_len > self.limits.ahs_limit() {
            return Err(PduError::AhsTooLong {
                len: ahs_len,
                limit: self.limits.ahs_limit(),
            });
        }
        let data_len = bhs.data_segment_length() as usize;
        if data_len > self.limits.data_segment_limit() {
            return Err(PduError::DataSegmentTooLong {
                len: data_len,
                limit: self.limits.data_segment_limit(),
            });
        }
        let header_end = BHS_LEN + ahs_len;
        if self.digests.header && buf.len() >= header_end + 4 {
            let mut d = [0u8; 4];
            d.copy_from_slice(&buf[header_end..header_end + 4]);
            let received = u32::from_le_bytes(d);
            let computed = digest::crc32c(&buf[..header_end]);
            if received != computed {
                return Err(PduError::HeaderDigestMismatch { received, computed });
            }
        }
        Ok(Some(
            header_end + self.digests.header_len() + data_wire_len(data_len, self.digests),
        ))
    }

    /// The longest PDU the limits and digests in force admit (BHS, the longest AHS, the
    /// largest padded data segment and both digests): a buffer with this much room holds any
    /// PDU [`PduDecoder::decode`] accepts.
    pub fn max_frame_len(&self) -> usize {
        BHS_LEN
            + self.limits.ahs_limit()
            + self.digests.header_len()
            + data_wire_len(self.limits.data_segment_limit(), self.digests)
    }

    /// How many more bytes must be buffered before [`PduDecoder::decode`] returns a PDU
    /// (0: a complete PDU is buffered). Before the BHS is complete this is what the BHS
    /// still lacks. Never more than the limits allow for one PDU.
    pub fn needed(&self, buf: &[u8]) -> Result<usize, PduError> {
        Ok(match self.frame_len(buf)? {
            None => BHS_LEN - buf.len(),
            Some(total) => total.saturating_sub(buf.len()),
        })
    }

    /// Splits the next complete PDU off `buf`. Ok(None): more bytes are needed (see
    /// [`PduDecoder::needed`]); `buf` is untouched.
    ///
    /// On [`PduError::DataDigestMismatch`] the damaged PDU has been removed from `buf` and the
    /// stream can go on; on any other error the connection must be dropped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Pdu>, PduError> {
        let Some(total) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            // Make room for the rest now that the length is known to be within limits.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let frame = buf.split_to(total).freeze();
        Pdu::decode(frame, self.digests).map(Some)
    }
}

/// Bytes of padding after a data segment of `len` bytes.
pub fn padding_len(len: usize) -> usize {
    pad4(len) - len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{DIGEST_LEN, MAX_AHS_BYTES};

    #[test]
    fn max_frame_len_counts_header_longest_ahs_padded_data_and_digests() {
        let limits = Limits::with_max_recv_data_segment_length(8191);
        let plain = PduDecoder::new(limits, DigestConfig::NONE);
        assert_eq!(plain.max_frame_len(), BHS_LEN + MAX_AHS_BYTES + 8192);
        let both = PduDecoder::new(
            limits,
            DigestConfig {
                header: true,
                data: true,
            },
        );
        assert_eq!(
            both.max_frame_len(),
            BHS_LEN + MAX_AHS_BYTES + DIGEST_LEN + 8192 + DIGEST_LEN
        );
        // No PDU the decoder accepts is longer: the longest admitted BHS says so itself.
        let mut bhs = [0u8; BHS_LEN];
        bhs[4] = (MAX_AHS_BYTES / 4) as u8;
        bhs[5..8].copy_from_slice(&8191u32.to_be_bytes()[1..]);
        assert_eq!(both.frame_len(&bhs).unwrap(), Some(both.max_frame_len()));
    }
}
