//! RFC 7143 section 11.10: Text Request.

use bytes::Bytes;

use super::{Bhs, Lun, Opcode};

/// Text Request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    /// F: the last PDU of this text exchange from the initiator.
    pub final_bit: bool,
    /// C: the text is continued in the next PDU.
    pub cont: bool,
    pub lun: Lun,
    pub itt: u32,
    /// 0xffffffff to start; the target's tag to continue.
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub data: Bytes,
}

impl TextRequest {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> TextRequest {
        TextRequest {
            immediate: b.immediate(),
            final_bit: b.final_bit(),
            cont: b.bit(1, 0x40),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TEXT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_final(self.final_bit);
        b.set_bit(1, 0x40, self.cont);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b
    }
}
