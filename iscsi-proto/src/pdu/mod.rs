//! RFC 7143 section 11: iSCSI PDUs.
//!
//! A PDU on the wire is
//!
//! ```text
//! BHS (48) | AHS (TotalAHSLength * 4) | header digest (0/4) | data (DataSegmentLength)
//!          | padding to 4 | data digest (0/4, only when the data segment is not empty)
//! ```
//!
//! [`Pdu`] is the typed form of one PDU, with one struct per PDU type. Data segments are
//! [`Bytes`]: a decoded PDU's data is a slice of the receive buffer, never a copy. For big
//! payloads, [`Pdu::encode_header`] + [`Pdu::data`] + [`trailer`] let a caller write the header,
//! the payload and the padding/digest with one vectored write and no copy of the payload.

mod ahs;
mod async_message;
mod bhs;
mod codes;
mod data_in;
mod data_out;
mod error;
mod login_request;
mod login_response;
mod logout_request;
mod logout_response;
mod lun;
mod nop_in;
mod nop_out;
mod r2t;
mod reject;
mod scsi_command;
mod scsi_response;
mod snack;
mod task_mgmt_request;
mod task_mgmt_response;
mod text_request;
mod text_response;

pub use ahs::{parse_ahs, Ahs};
pub use async_message::AsyncMessage;
pub use bhs::{Bhs, RESERVED_TAG};
pub use codes::{
    AhsType, AsyncEvent, LoginStatus, LogoutReason, LogoutResponseCode, Opcode, RejectReason,
    ScsiResponseCode, ScsiStatus, SnackType, Stage, TaskAttr, TmfFunction, TmfResponse,
};
pub use data_in::DataIn;
pub use data_out::DataOut;
pub use error::PduError;
pub use login_request::LoginRequest;
pub use login_response::LoginResponse;
pub use logout_request::LogoutRequest;
pub use logout_response::LogoutResponse;
pub use lun::Lun;
pub use nop_in::NopIn;
pub use nop_out::NopOut;
pub use r2t::R2t;
pub use reject::Reject;
pub use scsi_command::ScsiCommand;
pub use scsi_response::{sense_data_segment, split_sense, ScsiResponse};
pub use snack::Snack;
pub use task_mgmt_request::TaskMgmtRequest;
pub use task_mgmt_response::TaskMgmtResponse;
pub use text_request::TextRequest;
pub use text_response::TextResponse;

use bytes::{BufMut, Bytes, BytesMut};

use crate::digest::{self, DigestConfig};
use crate::limits::{pad4, BHS_LEN, DIGEST_LEN, MAX_AHS_BYTES, MAX_DATA_SEGMENT_LENGTH_FIELD};

/// One iSCSI PDU of any type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pdu {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
    /// A PDU whose opcode this crate does not know (or a vendor opcode), kept raw so that policy
    /// can refuse it (typically with a Reject quoting `bhs`). On encode, TotalAHSLength and
    /// DataSegmentLength of `bhs` are replaced by the lengths of `ahs` and `data`.
    Unknown {
        bhs: Bhs,
        /// The AHS area, whole (a multiple of 4 bytes).
        ahs: Bytes,
        data: Bytes,
    },
}

/// The padding and data digest that follow `data` on the wire: the bytes, and how many of the
/// 7 are used. Empty data has no padding and no digest.
pub fn trailer(data: &[u8], digests: DigestConfig) -> ([u8; 7], usize) {
    let mut t = [0u8; 7];
    if data.is_empty() {
        return (t, 0);
    }
    let pad = pad4(data.len()) - data.len();
    let mut n = pad;
    if digests.data {
        t[pad..pad + DIGEST_LEN].copy_from_slice(&digest::data_digest(data));
        n += DIGEST_LEN;
    }
    (t, n)
}

/// Bytes a data segment of `len` bytes occupies on the wire with padding and digest.
pub fn data_wire_len(len: usize, digests: DigestConfig) -> usize {
    if len == 0 {
        0
    } else {
        pad4(len) + digests.data_len()
    }
}

impl Pdu {
    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Pdu::NopOut(_) => Opcode::NOP_OUT,
            Pdu::ScsiCommand(_) => Opcode::SCSI_COMMAND,
            Pdu::TaskMgmtRequest(_) => Opcode::TASK_MGMT_REQUEST,
            Pdu::LoginRequest(_) => Opcode::LOGIN_REQUEST,
            Pdu::TextRequest(_) => Opcode::TEXT_REQUEST,
            Pdu::DataOut(_) => Opcode::DATA_OUT,
            Pdu::LogoutRequest(_) => Opcode::LOGOUT_REQUEST,
            Pdu::Snack(_) => Opcode::SNACK,
            Pdu::NopIn(_) => Opcode::NOP_IN,
            Pdu::ScsiResponse(_) => Opcode::SCSI_RESPONSE,
            Pdu::TaskMgmtResponse(_) => Opcode::TASK_MGMT_RESPONSE,
            Pdu::LoginResponse(_) => Opcode::LOGIN_RESPONSE,
            Pdu::TextResponse(_) => Opcode::TEXT_RESPONSE,
            Pdu::DataIn(_) => Opcode::DATA_IN,
            Pdu::LogoutResponse(_) => Opcode::LOGOUT_RESPONSE,
            Pdu::R2t(_) => Opcode::R2T,
            Pdu::AsyncMessage(_) => Opcode::ASYNC_MESSAGE,
            Pdu::Reject(_) => Opcode::REJECT,
            Pdu::Unknown { bhs, .. } => bhs.opcode(),
        }
    }

    /// The Initiator Task Tag (0xffffffff for Reject and Async Message).
    pub fn itt(&self) -> u32 {
        match self {
            Pdu::NopOut(p) => p.itt,
            Pdu::ScsiCommand(p) => p.itt,
            Pdu::TaskMgmtRequest(p) => p.itt,
            Pdu::LoginRequest(p) => p.itt,
            Pdu::TextRequest(p) => p.itt,
            Pdu::DataOut(p) => p.itt,
            Pdu::LogoutRequest(p) => p.itt,
            Pdu::Snack(p) => p.itt,
            Pdu::NopIn(p) => p.itt,
            Pdu::ScsiResponse(p) => p.itt,
            Pdu::TaskMgmtResponse(p) => p.itt,
            Pdu::LoginResponse(p) => p.itt,
            Pdu::TextResponse(p) => p.itt,
            Pdu::DataIn(p) => p.itt,
            Pdu::LogoutResponse(p) => p.itt,
            Pdu::R2t(p) => p.itt,
            Pdu::AsyncMessage(_) | Pdu::Reject(_) => RESERVED_TAG,
            Pdu::Unknown { bhs, .. } => bhs.itt(),
        }
    }

    /// The data segment, for PDU types that have one (it may be empty); None for types without.
    pub fn data(&self) -> Option<&Bytes> {
        match self {
            Pdu::NopOut(p) => Some(&p.data),
            Pdu::ScsiCommand(p) => Some(&p.data),
            Pdu::LoginRequest(p) => Some(&p.data),
            Pdu::TextRequest(p) => Some(&p.data),
            Pdu::DataOut(p) => Some(&p.data),
            Pdu::NopIn(p) => Some(&p.data),
            Pdu::ScsiResponse(p) => Some(&p.data),
            Pdu::LoginResponse(p) => Some(&p.data),
            Pdu::TextResponse(p) => Some(&p.data),
            Pdu::DataIn(p) => Some(&p.data),
            Pdu::AsyncMessage(p) => Some(&p.data),
            Pdu::Reject(p) => Some(&p.data),
            Pdu::Unknown { data, .. } => Some(data),
            Pdu::TaskMgmtRequest(_)
            | Pdu::LogoutRequest(_)
            | Pdu::Snack(_)
            | Pdu::TaskMgmtResponse(_)
            | Pdu::LogoutResponse(_)
            | Pdu::R2t(_) => None,
        }
    }

    fn data_len(&self) -> usize {
        self.data().map_or(0, |d| d.len())
    }

    /// Bytes of AHS this PDU carries.
    pub fn ahs_len(&self) -> usize {
        match self {
            Pdu::ScsiCommand(c) => c.ahs_len(),
            Pdu::Unknown { ahs, .. } => pad4(ahs.len()),
            _ => 0,
        }
    }

    /// The complete BHS, TotalAHSLength and DataSegmentLength included.
    ///
    /// Panics if the AHS exceed 1020 bytes or the data segment 2^24 - 1 bytes: such a PDU
    /// cannot be expressed on the wire and only the caller can have built it.
    pub fn bhs(&self) -> Bhs {
        let mut b = match self {
            Pdu::NopOut(p) => p.to_bhs(),
            Pdu::ScsiCommand(p) => p.to_bhs(),
            Pdu::TaskMgmtRequest(p) => p.to_bhs(),
            Pdu::LoginRequest(p) => p.to_bhs(),
            Pdu::TextRequest(p) => p.to_bhs(),
            Pdu::DataOut(p) => p.to_bhs(),
            Pdu::LogoutRequest(p) => p.to_bhs(),
            Pdu::Snack(p) => p.to_bhs(),
            Pdu::NopIn(p) => p.to_bhs(),
            Pdu::ScsiResponse(p) => p.to_bhs(),
            Pdu::TaskMgmtResponse(p) => p.to_bhs(),
            Pdu::LoginResponse(p) => p.to_bhs(),
            Pdu::TextResponse(p) => p.to_bhs(),
            Pdu::DataIn(p) => p.to_bhs(),
            Pdu::LogoutResponse(p) => p.to_bhs(),
            Pdu::R2t(p) => p.to_bhs(),
            Pdu::AsyncMessage(p) => p.to_bhs(),
            Pdu::Reject(p) => p.to_bhs(),
            Pdu::Unknown { bhs, .. } => *bhs,
        };
        let ahs = self.ahs_len();
        assert!(ahs <= MAX_AHS_BYTES, "AHS of {ahs} bytes cannot be encoded");
        let data = self.data_len();
        assert!(
            data <= MAX_DATA_SEGMENT_LENGTH_FIELD,
            "data segment of {data} bytes cannot be encoded"
        );
        b.set_total_ahs_length((ahs / 4) as u8);
        b.set_data_segment_length(data as u32);
        b
    }

    /// Bytes [`Pdu::encode_header`] writes: BHS, AHS, header digest.
    pub fn header_len(&self, digests: DigestConfig) -> usize {
        BHS_LEN + self.ahs_len() + digests.header_len()
    }

    /// Bytes [`Pdu::encode`] writes.
    pub fn encoded_len(&self, digests: DigestConfig) -> usize {
        self.header_len(digests) + data_wire_len(self.data_len(), digests)
    }

    /// Writes BHS, AHS and header digest (not the data segment). See [`Pdu::bhs`] for panics.
    pub fn encode_header(&self, digests: DigestConfig, out: &mut BytesMut) {
        out.reserve(self.header_len(digests));
        let start = out.len();
        out.put_slice(&self.bhs().0);
        match self {
            Pdu::ScsiCommand(c) => c.encode_ahs(out),
            Pdu::Unknown { ahs, .. } => {
                out.put_slice(ahs);
                out.put_bytes(0, pad4(ahs.len()) - ahs.len());
            }
            _ => {}
        }
        if digests.header {
            let d = digest::header_digest(&out[start..]);
            out.put_slice(&d);
        }
    }

    /// Writes the whole PDU: header, data, padding and digests. See [`Pdu::bhs`] for panics.
    pub fn encode(&self, digests: DigestConfig, out: &mut BytesMut) {
        out.reserve(self.encoded_len(digests));
        self.encode_header(digests, out);
        if let Some(data) = self.data() {
            out.put_slice(data);
            let (t, n) = trailer(data, digests);
            out.put_slice(&t[..n]);
        }
    }

    /// The whole PDU as one buffer.
    pub fn to_bytes(&self, digests: DigestConfig) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len(digests));
        self.encode(digests, &mut out);
        out.freeze()
    }

    /// Decodes exactly one complete PDU from `frame`, checking digests. Lengths are not checked
    /// against any negotiated limit here (that is [`PduDecoder`](crate::framing::PduDecoder)'s
    /// job, before it buffers); the data segment is a slice of `frame`.
    pub fn decode(frame: Bytes, digests: DigestConfig) -> Result<Pdu, PduError> {
        let bhs = Bhs::from_slice(&frame).ok_or(PduError::Truncated {
            needed: BHS_LEN,
            available: frame.len(),
        })?;
        let header_end = BHS_LEN + bhs.ahs_len();
        let data_start = header_end + digests.header_len();
        let data_len = bhs.data_segment_length() as usize;
        let total = data_start + data_wire_len(data_len, digests);
        if frame.len() < total {
            return Err(PduError::Truncated {
                needed: total,
                available: frame.len(),
            });
        }
        if frame.len() > total {
            return Err(PduError::TrailingBytes {
                extra: frame.len() - total,
            });
        }
        if digests.header {
            let received = u32::from_le_bytes(read4(&frame[header_end..]));
            let computed = digest::crc32c(&frame[..header_end]);
            if received != computed {
                return Err(PduError::HeaderDigestMismatch { received, computed });
            }
        }
        if digests.data && data_len > 0 {
            let padded = pad4(data_len);
            let received = u32::from_le_bytes(read4(&frame[data_start + padded..]));
            let computed = digest::crc32c(&frame[data_start..data_start + padded]);
            if received != computed {
                return Err(PduError::DataDigestMismatch {
                    opcode: bhs.opcode(),
                    itt: bhs.itt(),
                    received,
                    computed,
                    header: Box::new(bhs),
                });
            }
        }
        let ahs = frame.slice(BHS_LEN..header_end);
        let data = frame.slice(data_start..data_start + data_len);
        Pdu::from_parts(bhs, ahs, data)
    }

    /// Builds the typed PDU from a header, its AHS area and its data segment (no padding).
    ///
    /// PDU types without a data segment (Task Management, Logout, R2T, SNACK) drop one if the
    /// peer sent it anyway; AHS are only interpreted for SCSI Command (and kept raw for unknown
    /// opcodes), as RFC 7143 defines none for the other types.
    pub fn from_parts(bhs: Bhs, ahs: Bytes, data: Bytes) -> Result<Pdu, PduError> {
        let b = &bhs;
        Ok(match b.opcode() {
            Opcode::NOP_OUT => Pdu::NopOut(NopOut::from_bhs(b, data)),
            Opcode::SCSI_COMMAND => {
                Pdu::ScsiCommand(ScsiCommand::from_parts(b, parse_ahs(ahs)?, data)?)
            }
            Opcode::TASK_MGMT_REQUEST => Pdu::TaskMgmtRequest(TaskMgmtRequest::from_bhs(b)),
            Opcode::LOGIN_REQUEST => Pdu::LoginRequest(LoginRequest::from_bhs(b, data)),
            Opcode::TEXT_REQUEST => Pdu::TextRequest(TextRequest::from_bhs(b, data)),
            Opcode::DATA_OUT => Pdu::DataOut(DataOut::from_bhs(b, data)),
            Opcode::LOGOUT_REQUEST => Pdu::LogoutRequest(LogoutRequest::from_bhs(b)),
            Opcode::SNACK => Pdu::Snack(Snack::from_bhs(b)),
            Opcode::NOP_IN => Pdu::NopIn(NopIn::from_bhs(b, data)),
            Opcode::SCSI_RESPONSE => Pdu::ScsiResponse(ScsiResponse::from_bhs(b, data)),
            Opcode::TASK_MGMT_RESPONSE => Pdu::TaskMgmtResponse(TaskMgmtResponse::from_bhs(b)),
            Opcode::LOGIN_RESPONSE => Pdu::LoginResponse(LoginResponse::from_bhs(b, data)),
            Opcode::TEXT_RESPONSE => Pdu::TextResponse(TextResponse::from_bhs(b, data)),
            Opcode::DATA_IN => Pdu::DataIn(DataIn::from_bhs(b, data)),
            Opcode::LOGOUT_RESPONSE => Pdu::LogoutResponse(LogoutResponse::from_bhs(b)),
            Opcode::R2T => Pdu::R2t(R2t::from_bhs(b)),
            Opcode::ASYNC_MESSAGE => Pdu::AsyncMessage(AsyncMessage::from_bhs(b, data)),
            Opcode::REJECT => Pdu::Reject(Reject::from_bhs(b, data)),
            _ => Pdu::Unknown { bhs, ahs, data },
        })
    }
}

fn read4(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    a
}

macro_rules! from_variant {
    ($($t:ident),*) => {$(
        impl From<$t> for Pdu {
            fn from(p: $t) -> Pdu {
                Pdu::$t(p)
            }
        }
    )*};
}
from_variant!(
    NopOut,
    ScsiCommand,
    TaskMgmtRequest,
    LoginRequest,
    TextRequest,
    DataOut,
    LogoutRequest,
    Snack,
    NopIn,
    ScsiResponse,
    TaskMgmtResponse,
    LoginResponse,
    TextResponse,
    DataIn,
    LogoutResponse,
    R2t,
    AsyncMessage,
    Reject
);
