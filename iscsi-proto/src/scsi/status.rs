//! SAM-5 section 5.3 (status codes) and SPC-4 section 4.5.6 (sense keys) and annex D (additional
//! sense codes): the open code spaces a device server answers with.

use std::fmt;

/// SAM-5 section 5.3.1: the status byte of a completed SCSI command. Unknown values are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    pub const GOOD: ScsiStatus = ScsiStatus(0x00);
    pub const CHECK_CONDITION: ScsiStatus = ScsiStatus(0x02);
    pub const CONDITION_MET: ScsiStatus = ScsiStatus(0x04);
    pub const BUSY: ScsiStatus = ScsiStatus(0x08);
    pub const RESERVATION_CONFLICT: ScsiStatus = ScsiStatus(0x18);
    pub const TASK_SET_FULL: ScsiStatus = ScsiStatus(0x28);
    pub const ACA_ACTIVE: ScsiStatus = ScsiStatus(0x30);
    pub const TASK_ABORTED: ScsiStatus = ScsiStatus(0x40);

    /// Name of a known status, `None` for others.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::GOOD => "GOOD",
            Self::CHECK_CONDITION => "CHECK CONDITION",
            Self::CONDITION_MET => "CONDITION MET",
            Self::BUSY => "BUSY",
            Self::RESERVATION_CONFLICT => "RESERVATION CONFLICT",
            Self::TASK_SET_FULL => "TASK SET FULL",
            Self::ACA_ACTIVE => "ACA ACTIVE",
            Self::TASK_ABORTED => "TASK ABORTED",
            _ => return None,
        })
    }
}

impl fmt::Debug for ScsiStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "ScsiStatus({:#04x})", self.0),
        }
    }
}

/// SPC-4 section 4.5.6, table 27: the sense key (4 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SenseKey(pub u8);

impl SenseKey {
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    pub const BLANK_CHECK: SenseKey = SenseKey(0x8);
    pub const VENDOR_SPECIFIC: SenseKey = SenseKey(0x9);
    pub const COPY_ABORTED: SenseKey = SenseKey(0xA);
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xB);
    pub const VOLUME_OVERFLOW: SenseKey = SenseKey(0xD);
    pub const MISCOMPARE: SenseKey = SenseKey(0xE);
    pub const COMPLETED: SenseKey = SenseKey(0xF);
}

impl fmt::Debug for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::NO_SENSE => "NO SENSE",
            Self::RECOVERED_ERROR => "RECOVERED ERROR",
            Self::NOT_READY => "NOT READY",
            Self::MEDIUM_ERROR => "MEDIUM ERROR",
            Self::HARDWARE_ERROR => "HARDWARE ERROR",
            Self::ILLEGAL_REQUEST => "ILLEGAL REQUEST",
            Self::UNIT_ATTENTION => "UNIT ATTENTION",
            Self::DATA_PROTECT => "DATA PROTECT",
            Self::BLANK_CHECK => "BLANK CHECK",
            Self::ABORTED_COMMAND => "ABORTED COMMAND",
            Self::MISCOMPARE => "MISCOMPARE",
            _ => return write!(f, "SenseKey({:#x})", self.0),
        };
        write!(f, "{name}")
    }
}

/// SPC-4 annex D.2: an additional sense code (high byte) and its qualifier (low byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Asc(pub u16);

impl Asc {
    pub const NO_ADDITIONAL_SENSE: Asc = Asc(0x0000);
    pub const LOGICAL_UNIT_NOT_READY_CAUSE_NOT_REPORTABLE: Asc = Asc(0x0400);
    pub const LOGICAL_UNIT_NOT_READY_MANUAL_INTERVENTION: Asc = Asc(0x0403);
    pub const WRITE_ERROR: Asc = Asc(0x0C00);
    pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x1100);
    pub const INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT: Asc = Asc(0x0E03);
    pub const MISCOMPARE_DURING_VERIFY: Asc = Asc(0x1D00);
    pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc(0x1A00);
    pub const INVALID_COMMAND_OPERATION_CODE: Asc = Asc(0x2000);
    pub const LBA_OUT_OF_RANGE: Asc = Asc(0x2100);
    pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x2400);
    pub const LOGICAL_UNIT_NOT_SUPPORTED: Asc = Asc(0x2500);
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x2600);
    pub const PARAMETER_NOT_SUPPORTED: Asc = Asc(0x2601);
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Asc = Asc(0x2604);
    pub const WRITE_PROTECTED: Asc = Asc(0x2700);
    pub const NOT_READY_TO_READY_CHANGE: Asc = Asc(0x2800);
    pub const POWER_ON_RESET_OR_BUS_DEVICE_RESET: Asc = Asc(0x2900);
    pub const POWER_ON_OCCURRED: Asc = Asc(0x2901);
    pub const BUS_RESET_OCCURRED: Asc = Asc(0x2902);
    pub const BUS_DEVICE_RESET_FUNCTION_OCCURRED: Asc = Asc(0x2903);
    pub const I_T_NEXUS_LOSS_OCCURRED: Asc = Asc(0x2907);
    pub const PARAMETERS_CHANGED: Asc = Asc(0x2A00);
    pub const MODE_PARAMETERS_CHANGED: Asc = Asc(0x2A01);
    pub const RESERVATIONS_PREEMPTED: Asc = Asc(0x2A03);
    pub const RESERVATIONS_RELEASED: Asc = Asc(0x2A04);
    pub const REGISTRATIONS_PREEMPTED: Asc = Asc(0x2A05);
    pub const CAPACITY_DATA_HAS_CHANGED: Asc = Asc(0x2A09);
    pub const COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: Asc = Asc(0x2F00);
    pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc(0x3900);
    pub const MEDIUM_NOT_PRESENT: Asc = Asc(0x3A00);
    pub const REPORTED_LUNS_DATA_HAS_CHANGED: Asc = Asc(0x3F0E);
    pub const INTERNAL_TARGET_FAILURE: Asc = Asc(0x4400);
    pub const MEDIUM_REMOVAL_PREVENTED: Asc = Asc(0x5302);
    pub const INSUFFICIENT_REGISTRATION_RESOURCES: Asc = Asc(0x5504);

    /// Builds a code from its two bytes.
    pub const fn new(asc: u8, ascq: u8) -> Asc {
        Asc(((asc as u16) << 8) | ascq as u16)
    }
    /// The ADDITIONAL SENSE CODE byte.
    pub const fn asc(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// The ADDITIONAL SENSE CODE QUALIFIER byte.
    pub const fn ascq(self) -> u8 {
        self.0 as u8
    }
}

impl fmt::Debug for Asc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Asc({:#04x}/{:#04x})", self.asc(), self.ascq())
    }
}
