//! RFC 7143 section 11.11: Text Response.

use bytes::Bytes;

use super::{Bhs, Lun, Opcode};

/// Text Response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextResponse {
    /// F: the target has no more text for this exchange.
    pub final_bit: bool,
    /// C: the text is continued in the next PDU.
    pub cont: bool,
    pub lun: Lun,
    pub itt: u32,
    /// 0xffffffff when final; otherwise a tag the initiator echoes to continue.
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data: Bytes,
}

impl TextResponse {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> TextResponse {
        TextResponse {
            final_bit: b.final_bit(),
            cont: b.bit(1, 0x40),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
        b.set_final(self.final_bit);
        b.set_bit(1, 0x40, self.cont);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b
    }
}
