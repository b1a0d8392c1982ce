//! RFC 7143 section 11.19: NOP-In.

use bytes::Bytes;

use super::{Bhs, Lun, Opcode};

/// NOP-In: the answer to a NOP-Out, or a ping from the target (then `ttt` != 0xffffffff).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NopIn {
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data: Bytes,
}

impl NopIn {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> NopIn {
        NopIn {
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
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_final(true);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b
    }
}
