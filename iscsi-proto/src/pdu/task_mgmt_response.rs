//! RFC 7143 section 11.6: Task Management Function Response.

use super::{Bhs, Opcode, TmfResponse};

/// Task Management Function Response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    pub response: TmfResponse,
    pub itt: u32,
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

impl TaskMgmtResponse {
    pub fn from_bhs(b: &Bhs) -> TaskMgmtResponse {
        TaskMgmtResponse {
            response: TmfResponse(b.u8_at(2)),
            itt: b.itt(),
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TASK_MGMT_RESPONSE);
        b.set_final(true);
        b.set_u8_at(2, self.response.0);
        b.set_itt(self.itt);
        b.set_u32_at(24, self.stat_sn);
        b.set_u32_at(28, self.exp_cmd_sn);
        b.set_u32_at(32, self.max_cmd_sn);
        b
    }
}
