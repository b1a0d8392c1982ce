//! RFC 7143 section 11.7.2: SCSI Data-In (with optional phase-collapsed status).

use bytes::Bytes;

use super::{Bhs, Lun, Opcode, ScsiStatus};

/// SCSI Data-In.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataIn {
    /// F: the last PDU of the sequence.
    pub final_bit: bool,
    /// A: the target asks for a DataACK SNACK.
    pub acknowledge: bool,
    /// O: residual overflow (valid with status).
    pub overflow: bool,
    /// U: residual underflow (valid with status).
    pub underflow: bool,
    /// S bit and status byte: Some when this PDU carries the command's status.
    pub status: Option<ScsiStatus>,
    pub lun: Lun,
    pub itt: u32,
    pub ttt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual_count: u32,
    pub data: Bytes,
}

impl DataIn {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> DataIn {
        DataIn {
            final_bit: b.final_bit(),
            acknowledge: b.bit(1, 0x40),
            overflow: b.bit(1, 0x04),
            underflow: b.bit(1, 0x02),
            status: b.bit(1, 0x01).then(|| ScsiStatus(b.u8_at(3))),
            lun: b.lun(),
            itt: b.itt(),
            ttt: b.u32_at(20),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            data_sn: b.u32_at(36),
            buffer_offset: b.u32_at(40),
            residual_count: b.u32_at(44),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::DATA_IN);
        b.set_flags(
            (self.final_bit as u8) << 7
                | (self.acknowledge as u8) << 6
                | (self.overflow as u8) << 2
                | (self.underflow as u8) << 1
                | self.status.is_some() as u8,
        );
        b.set_u8_at(3, self.status.map_or(0, |s| s.0));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.ttt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u32_at(36, self.data_sn);
        b.set_u32_at(40, self.buffer_offset);
        b.set_u32_at(44, self.residual_count);
        b
    }
}
