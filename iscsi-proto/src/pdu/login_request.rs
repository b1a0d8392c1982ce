//! RFC 7143 section 11.12: Login Request.

use bytes::Bytes;

use super::{Bhs, Opcode, Stage};

/// Login Request. Always sent with the immediate bit set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: the initiator is ready to move to `nsg`.
    pub transit: bool,
    /// C: the text is continued in the next PDU.
    pub cont: bool,
    /// Current stage (2 bits).
    pub csg: Stage,
    /// Next stage (2 bits), meaningful when `transit`.
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// Login key=value text, NUL separated.
    pub data: Bytes,
}

impl LoginRequest {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> LoginRequest {
        let f = b.flags();
        LoginRequest {
            transit: f & 0x80 != 0,
            cont: f & 0x40 != 0,
            csg: Stage((f >> 2) & 3),
            nsg: Stage(f & 3),
            version_max: b.u8_at(2),
            version_min: b.u8_at(3),
            isid: b.array_at::<6>(8),
            tsih: b.u16_at(14),
            itt: b.itt(),
            cid: b.u16_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
        b.set_immediate(true);
        b.set_flags(
            (self.transit as u8) << 7
                | (self.cont as u8) << 6
                | (self.csg.0 & 3) << 2
                | (self.nsg.0 & 3),
        );
        b.set_u8_at(2, self.version_max);
        b.set_u8_at(3, self.version_min);
        b.set_bytes_at(8, &self.isid);
        b.set_u16_at(14, self.tsih);
        b.set_itt(self.itt);
        b.set_u16_at(20, self.cid);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b
    }
}
