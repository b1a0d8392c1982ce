//! RFC 7143 section 11.7.1: SCSI Data-Out.

use bytes::Bytes;

use super::{Bhs, Lun, Opcode};

/// SCSI Data-Out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataOut {
    /// F: the last PDU of this unsolicited burst or R2T answer.
    pub final_bit: bool,
    pub lun: Lun,
    pub itt: u32,
    /// The R2T's tag, or 0xffffffff for unsolicited data.
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub data: Bytes,
}

impl DataOut {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> DataOut {
        DataOut {
            final_bit: b.final_bit(),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            exp_stat_sn: b.u32_at(28),
            data_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::DATA_OUT);
        b.set_final(self.final_bit);
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(28, self.exp_stat_sn);
        b.set_u32_at(36, self.data_sn);
        b.set_u32_at(40, self.buffer_offset);
        b
    }
}
