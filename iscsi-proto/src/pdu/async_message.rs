//! RFC 7143 section 11.9: Asynchronous Message.

use bytes::Bytes;

use super::bhs::RESERVED_TAG;
use super::{AsyncEvent, Bhs, Lun, Opcode};

/// Asynchronous Message. Its ITT is always 0xffffffff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: Lun,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub event: AsyncEvent,
    pub vcode: u8,
    pub parameter1: u16,
    pub parameter2: u16,
    pub parameter3: u16,
    /// SenseLength-prefixed sense data followed by iSCSI event data (see
    /// [`split_sense`](super::split_sense)).
    pub data: Bytes,
}

impl AsyncMessage {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> AsyncMessage {
        AsyncMessage {
            lun: b.lun(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            event: AsyncEvent(b.u8_at(36)),
            vcode: b.u8_at(37),
            parameter1: b.u16_at(38),
            parameter2: b.u16_at(40),
            parameter3: b.u16_at(42),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
        b.set_final(true);
        b.set_lun(self.lun);
        b.set_itt(RESERVED_TAG);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u8_at(36, self.event.0);
        b.set_u8_at(37, self.vcode);
        b.set_u16_at(38, self.parameter1);
        b.set_u16_at(40, self.parameter2);
        b.set_u16_at(42, self.parameter3);
        b
    }
}
