//! RFC 7143 section 11.5: Task Management Function Request.

use super::{Bhs, Lun, Opcode, TmfFunction};

/// Task Management Function Request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    /// Function (7 bits).
    pub function: TmfFunction,
    pub lun: Lun,
    pub itt: u32,
    /// ITT of the task to abort (ABORT TASK), else 0xffffffff.
    pub referenced_task_tag: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

impl TaskMgmtRequest {
    pub fn from_bhs(b: &Bhs) -> TaskMgmtRequest {
        TaskMgmtRequest {
            immediate: b.immediate(),
            function: TmfFunction(b.flags() & 0x7f),
            lun: b.lun(),
            itt: b.itt(),
            referenced_task_tag: b.u32_at(20),
            cmd_sn: b.u32_at(24),
            exp_stat_sn: b.u32_at(28),
            ref_cmd_sn: b.u32_at(32),
            exp_data_sn: b.u32_at(36),
        }
    }

    pub fn to_bhs(&self) -> Bhs {
        let mut b = Bhs::new(Opcode::TASK_MGMT_REQUEST);
        b.set_immediate(self.immediate);
        b.set_flags(0x80 | (self.function.0 & 0x7f));
        b.set_lun(self.lun);
        b.set_itt(self.itt);
        b.set_u32_at(20, self.referenced_task_tag);
        b.set_u32_at(24, self.cmd_sn);
        b.set_u32_at(28, self.exp_stat_sn);
        b.set_u32_at(32, self.ref_cmd_sn);
        b.set_u32_at(36, self.exp_data_sn);
        b
    }
}
