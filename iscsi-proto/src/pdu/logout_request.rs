//! RFC 7143 section 11.14: Logout Request.

use super::{Bhs, LogoutReason, Opcode};

/// Logout Request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    /// Reason code (7 bits).
    pub reason: LogoutReason,
    pub itt: u32,
    /// The connection to close (reserved for CLOSE_SESSION).
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

impl LogoutRequest {
    pub fn from_bhs(b: &Bhs) -> LogoutRequest {
        LogoutRequest {
            immediate: b.immediate(),
            reason: LogoutReason(b.flags() & 0x7f),
            itt: b.itt(),
            cid: b.u16_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::LOGOUT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(0x80 | (self.reason.0 & 0x7f));
        b.set_itt(self.itt);
        b.set_u16_at(20, self.cid);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b
    }
}
