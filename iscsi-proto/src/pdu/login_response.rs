//! RFC 7143 section 11.13: Login Response.

use bytes::Bytes;

use super::{Bhs, LoginStatus, Opcode, Stage};

/// Login Response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginResponse {
    /// T: the target agrees to move to `nsg`.
    pub transit: bool,
    /// C: the text is continued in the next PDU.
    pub cont: bool,
    /// Current stage (2 bits).
    pub csg: Stage,
    /// Next stage (2 bits).
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    /// Status-Class and Status-Detail.
    pub status: LoginStatus,
    /// Login key=value text, NUL separated.
    pub data: Bytes,
}

impl LoginResponse {
    pub fn from_bhs(b: &Bhs, data: Bytes) -> LoginResponse {
        let f = b.flags();
        LoginResponse {
            transit: f & 0x80 != 0,
            cont: f & 0x40 != 0,
            csg: Stage((f >> 2) & 3),
            nsg: Stage(f & 3),
            version_max: b.u8_at(2),
            version_active: b.u8_at(3),
            isid: b.array_at::<6>(8),
            tsih: b.u16_at(14),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            status: LoginStatus(b.u16_at(36)),
            data,
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGIN_RESPONSE);
        b.set_flags(
            (self.transit as u8) << 7
                | (self.cont as u8) << 6
                | (self.csg.0 & 3) << 2
                | (self.nsg.0 & 3),
        );
        b.set_u8_at(2, self.version_max);
        b.set_u8_at(3, self.version_active);
        b.set_bytes_at(8, &self.isid);
        b.set_u16_at(14, self.tsih);
        b.set_itt(self.itt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u16_at(36, self.status.0);
        b
    }
}
