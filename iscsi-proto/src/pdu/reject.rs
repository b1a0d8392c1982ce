//! RFC 7143 section 11.17: Reject.

use bytes::Bytes;

use super::bhs::RESERVED_TAG;
use super::{Bhs, Opcode, RejectReason};

/// Reject. Its ITT is always 0xffffffff; the data segment is the header of the rejected PDU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reject {
    pub reason: RejectReason,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// DataSN/R2TSN, for SNACK rejects; otherwise reserved (0).
    pub data_sn: u32,
    /// The complete header (BHS and any AHS) of the rejected PDU.
    pub data: Bytes,
}

impl Reject {
    /// A Reject quoting `rejected`.
    pub fn quoting(reason: RejectReason, rejected: &Bhs) -> Reject {
        Reject {
            reason,
            data: Bytes::copy_from_slice(&rejected.0),
            ..Default::default()
        }
    }

    /// The BHS of the rejected PDU, if the data segment holds one.
    pub fn rejected_bhs(&self) -> Option<Bhs> {
        Bhs::from_slice(&self.data)
    }

    pub fn from_bhs(b: &Bhs, data: Bytes) -> Reject {
        Reject {
            reason: RejectReason(b.u8_at(2)),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            data_sn: b.u32_at(36),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::REJECT);
        b.set_final(true);
        b.set_u8_at(2, self.reason.0);
        b.set_itt(RESERVED_TAG);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u32_at(36, self.data_sn);
        b
    }
}
