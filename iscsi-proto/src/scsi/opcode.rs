//! SPC-4 annex E.3 and SBC-3 section 5: SCSI operation codes and the service actions that share
//! an operation code.

use std::fmt;

/// The first CDB byte. Unknown values are kept; policy decides what to refuse.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(pub u8);

impl Opcode {
    pub const TEST_UNIT_READY: Opcode = Opcode(0x00);
    pub const REQUEST_SENSE: Opcode = Opcode(0x03);
    pub const READ_6: Opcode = Opcode(0x08);
    pub const WRITE_6: Opcode = Opcode(0x0A);
    pub const INQUIRY: Opcode = Opcode(0x12);
    pub const MODE_SELECT_6: Opcode = Opcode(0x15);
    pub const RESERVE_6: Opcode = Opcode(0x16);
    pub const RELEASE_6: Opcode = Opcode(0x17);
    pub const MODE_SENSE_6: Opcode = Opcode(0x1A);
    pub const START_STOP_UNIT: Opcode = Opcode(0x1B);
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: Opcode = Opcode(0x1E);
    pub const READ_CAPACITY_10: Opcode = Opcode(0x25);
    pub const READ_10: Opcode = Opcode(0x28);
    pub const WRITE_10: Opcode = Opcode(0x2A);
    pub const WRITE_AND_VERIFY_10: Opcode = Opcode(0x2E);
    pub const VERIFY_10: Opcode = Opcode(0x2F);
    pub const PRE_FETCH_10: Opcode = Opcode(0x34);
    pub const SYNCHRONIZE_CACHE_10: Opcode = Opcode(0x35);
    pub const READ_DEFECT_DATA_10: Opcode = Opcode(0x37);
    pub const WRITE_BUFFER: Opcode = Opcode(0x3B);
    pub const READ_BUFFER: Opcode = Opcode(0x3C);
    pub const WRITE_SAME_10: Opcode = Opcode(0x41);
    pub const UNMAP: Opcode = Opcode(0x42);
    pub const LOG_SELECT: Opcode = Opcode(0x4C);
    pub const LOG_SENSE: Opcode = Opcode(0x4D);
    pub const MODE_SELECT_10: Opcode = Opcode(0x55);
    pub const MODE_SENSE_10: Opcode = Opcode(0x5A);
    pub const PERSISTENT_RESERVE_IN: Opcode = Opcode(0x5E);
    pub const PERSISTENT_RESERVE_OUT: Opcode = Opcode(0x5F);
    pub const EXTENDED_COPY: Opcode = Opcode(0x83);
    pub const RECEIVE_COPY_RESULTS: Opcode = Opcode(0x84);
    pub const READ_16: Opcode = Opcode(0x88);
    pub const COMPARE_AND_WRITE: Opcode = Opcode(0x89);
    pub const WRITE_16: Opcode = Opcode(0x8A);
    pub const ORWRITE_16: Opcode = Opcode(0x8B);
    pub const WRITE_AND_VERIFY_16: Opcode = Opcode(0x8E);
    pub const VERIFY_16: Opcode = Opcode(0x8F);
    pub const PRE_FETCH_16: Opcode = Opcode(0x90);
    pub const SYNCHRONIZE_CACHE_16: Opcode = Opcode(0x91);
    pub const WRITE_SAME_16: Opcode = Opcode(0x93);
    /// SERVICE ACTION IN (16): READ CAPACITY (16), GET LBA STATUS, ...
    pub const SERVICE_ACTION_IN_16: Opcode = Opcode(0x9E);
    pub const REPORT_LUNS: Opcode = Opcode(0xA0);
    /// MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES, ...
    pub const MAINTENANCE_IN: Opcode = Opcode(0xA3);
    pub const READ_12: Opcode = Opcode(0xA8);
    pub const WRITE_12: Opcode = Opcode(0xAA);
    pub const WRITE_AND_VERIFY_12: Opcode = Opcode(0xAE);
    pub const VERIFY_12: Opcode = Opcode(0xAF);
    pub const READ_DEFECT_DATA_12: Opcode = Opcode(0xB7);

    /// CDB length implied by the group code (SPC-4 section 4.2.5.1), `None` for the reserved and
    /// vendor-specific groups.
    pub fn cdb_len(self) -> Option<usize> {
        match self.0 >> 5 {
            0 => Some(6),
            1 | 2 => Some(10),
            4 => Some(16),
            5 => Some(12),
            _ => None,
        }
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opcode({:#04x})", self.0)
    }
}

/// SERVICE ACTION IN (16) service actions (SBC-3 section 5.16 / 5.24).
pub mod service_action_in {
    pub const READ_CAPACITY_16: u8 = 0x10;
    pub const GET_LBA_STATUS: u8 = 0x12;
}

/// MAINTENANCE IN service actions (SPC-4 section 6.36 and neighbours).
pub mod maintenance_in {
    pub const REPORT_TARGET_PORT_GROUPS: u8 = 0x0A;
    pub const REPORT_SUPPORTED_OPERATION_CODES: u8 = 0x0C;
    pub const REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS: u8 = 0x0D;
}
