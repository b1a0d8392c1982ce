//! RFC 7143 section 11.8: Ready To Transfer (R2T).

use super::{Bhs, Lun, Opcode};

/// R2T: the target asks for a range of write data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct R2t {
    pub lun: Lun,
    pub itt: u32,
    /// Tag the initiator echoes in the Data-Out PDUs answering this R2T.
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_data_transfer_length: u32,
}

impl R2t {
    pub fn from_bhs(b: &Bhs) -> R2t {
        R2t {
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            r2t_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
            desired_data_transfer_length: b.u32_at(44),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::R2T);
        b.set_final(true);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u32_at(36, self.r2t_sn);
        b.set_u32_at(40, self.buffer_offset);
        b.set_u32_at(44, self.desired_data_transfer_length);
        b
    }
}
