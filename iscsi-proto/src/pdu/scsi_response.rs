//! RFC 7143 section 11.4: SCSI Response, and the sense data segment of section 11.4.7.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Bhs, Opcode, PduError, ScsiResponseCode, ScsiStatus};

/// SCSI Response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiResponse {
    /// o: bidirectional read residual overflow.
    pub bidi_overflow: bool,
    /// u: bidirectional read residual underflow.
    pub bidi_underflow: bool,
    /// O: residual overflow.
    pub overflow: bool,
    /// U: residual underflow.
    pub underflow: bool,
    pub response: ScsiResponseCode,
    pub status: ScsiStatus,
    pub itt: u32,
    pub snack_tag: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub exp_data_sn: u32,
    pub bidi_residual_count: u32,
    pub residual_count: u32,
    /// SenseLength (2 bytes) + sense data + response data; empty when there is no sense.
    pub data: Bytes,
}

impl ScsiResponse {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> ScsiResponse {
        ScsiResponse {
            bidi_overflow: b.bit(1, 0x10),
            bidi_underflow: b.bit(1, 0x08),
            overflow: b.bit(1, 0x04),
            underflow: b.bit(1, 0x02),
            response: ScsiResponseCode(b.u8_at(2)),
            status: ScsiStatus(b.u8_at(3)),
            itt: b.itt(),
            snack_tag: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            exp_data_sn: b.u32_at(36),
            bidi_residual_count: b.u32_at(40),
            residual_count: b.u32_at(44),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
        b.set_flags(
            0x80 | (self.bidi_overflow as u8) << 4
                | (self.bidi_underflow as u8) << 3
                | (self.overflow as u8) << 2
                | (self.underflow as u8) << 1,
        );
        b.set_u8_at(2, self.response.0);
        b.set_u8_at(3, self.status.0);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.snack_tag);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u32_at(36, self.exp_data_sn);
        b.set_u32_at(40, self.bidi_residual_count);
        b.set_u32_at(44, self.residual_count);
        b
    }

    /// The sense data (without its length prefix); empty when none was sent.
    pub fn sense(&self) -> Result<Bytes, PduError> {
        split_sense(&self.data).map(|(s, _)| s)
    }

    /// The response data following the sense data (RFC 7143 section 11.4.7.2).
    pub fn response_data(&self) -> Result<Bytes, PduError> {
        split_sense(&self.data).map(|(_, r)| r)
    }
}

/// Builds a data segment carrying `sense` with its 2-byte SenseLength prefix.
///
/// Panics if `sense` is longer than 65535 bytes (SPC sense is at most 252).
pub fn sense_data_segment(sense: &[u8]) -> Bytes {
    let len = u16::try_from(sense.len()).expect("sense data over 65535 bytes");
    let mut b = BytesMut::with_capacity(2 + sense.len());
    b.put_u16(len);
    b.put_slice(sense);
    b.freeze()
}

/// Splits a SenseLength-prefixed data segment into (sense, rest).
pub fn split_sense(data: &Bytes) -> Result<(Bytes, Bytes), PduError> {
    if data.is_empty() {
        return Ok((Bytes::new(), Bytes::new()));
    }
    if data.len() < 2 {
        return Err(PduError::BadSenseLength {
            sense_len: 2,
            available: data.len(),
        });
    }
    let sense_len = u16::from_be_bytes([data[0], data[1]]) as usize;
    if 2 + sense_len > data.len() {
        return Err(PduError::BadSenseLength {
            sense_len,
            available: data.len() - 2,
        });
    }
    Ok((data.slice(2..2 + sense_len), data.slice(2 + sense_len..)))
}
