//! RFC 7143 section 11.18: NOP-Out.

use bytes::Bytes;

use super::{Bhs, Lun, Opcode};

/// NOP-Out: a ping from the initiator, or the answer to a target's NOP-In.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: Lun,
    /// 0xffffffff when answering a NOP-In (then `ttt` echoes the target's tag).
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// Ping data, echoed by the target.
    pub data: Bytes,
}

impl NopOut {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> NopOut {
        NopOut {
            immediate: b.immediate(),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_immediate(self.immediate);
        b.set_final(true);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b
    }
}
