//! RFC 7143 section 11.15: Logout Response.

use super::{Bhs, LogoutResponseCode, Opcode};

/// Logout Response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutResponse {
    pub response: LogoutResponseCode,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    pub time2wait: u16,
    pub time2retain: u16,
}

impl LogoutResponse {
    pub fn from_bhs(b: &Bhs) -> LogoutResponse {
        LogoutResponse {
            response: LogoutResponseCode(b.u8_at(2)),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
            time2wait: b.u16_at(40),
            time2retain: b.u16_at(42),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
        b.set_final(true);
        b.set_u8_at(2, self.response.0);
        b.set_itt(self.itt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b.set_u16_at(40, self.time2wait);
        b.set_u16_at(42, self.time2retain);
        b
    }
}
