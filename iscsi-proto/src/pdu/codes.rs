//! RFC 7143 section 11: the wire codes of the PDU headers as open newtypes.
//!
//! Unknown values parse and are kept; policy (target or initiator) decides whether to refuse them.

/// Declares an open `u8`/`u16` newtype with named constants.
macro_rules! open_code {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $ty);

        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*

            /// The constant's name, if this value has one.
            pub fn name(&self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $v => Some(stringify!($c)),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}::{}", stringify!($name), n),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }
    };
}

open_code! {
    /// The 6-bit opcode of byte 0 of the BHS (RFC 7143 section 11.2.1.2).
    Opcode(u8) {
        NOP_OUT = 0x00,
        SCSI_COMMAND = 0x01,
        TASK_MGMT_REQUEST = 0x02,
        LOGIN_REQUEST = 0x03,
        TEXT_REQUEST = 0x04,
        DATA_OUT = 0x05,
        LOGOUT_REQUEST = 0x06,
        SNACK = 0x10,
        NOP_IN = 0x20,
        SCSI_RESPONSE = 0x21,
        TASK_MGMT_RESPONSE = 0x22,
        LOGIN_RESPONSE = 0x23,
        TEXT_RESPONSE = 0x24,
        DATA_IN = 0x25,
        LOGOUT_RESPONSE = 0x26,
        R2T = 0x31,
        ASYNC_MESSAGE = 0x32,
        REJECT = 0x3f,
    }
}

impl Opcode {
    /// True for opcodes an initiator sends (0x00-0x1f); false for target opcodes.
    pub fn is_initiator(&self) -> bool {
        self.0 & 0x20 == 0
    }
}

open_code! {
    /// SCSI Command task attribute, ATTR bits of byte 1 (RFC 7143 section 11.3.1.2).
    TaskAttr(u8) {
        UNTAGGED = 0,
        SIMPLE = 1,
        ORDERED = 2,
        HEAD_OF_QUEUE = 3,
        ACA = 4,
    }
}

open_code! {
    /// SCSI Response "Response" byte (RFC 7143 section 11.4.3).
    ScsiResponseCode(u8) {
        COMMAND_COMPLETED = 0x00,
        TARGET_FAILURE = 0x01,
    }
}

open_code! {
    /// SCSI status byte carried in SCSI Response and Data-In (SAM-5).
    ScsiStatus(u8) {
        GOOD = 0x00,
        CHECK_CONDITION = 0x02,
        CONDITION_MET = 0x04,
        BUSY = 0x08,
        RESERVATION_CONFLICT = 0x18,
        TASK_SET_FULL = 0x28,
        ACA_ACTIVE = 0x30,
        TASK_ABORTED = 0x40,
    }
}

open_code! {
    /// Task Management Function request code, low 7 bits of byte 1 (RFC 7143 section 11.5.1).
    TmfFunction(u8) {
        ABORT_TASK = 1,
        ABORT_TASK_SET = 2,
        CLEAR_ACA = 3,
        CLEAR_TASK_SET = 4,
        LOGICAL_UNIT_RESET = 5,
        TARGET_WARM_RESET = 6,
        TARGET_COLD_RESET = 7,
        TASK_REASSIGN = 8,
    }
}

open_code! {
    /// Task Management Function response (RFC 7143 section 11.6.1).
    TmfResponse(u8) {
        FUNCTION_COMPLETE = 0,
        TASK_DOES_NOT_EXIST = 1,
        LUN_DOES_NOT_EXIST = 2,
        TASK_STILL_ALLEGIANT = 3,
        TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED = 4,
        FUNCTION_NOT_SUPPORTED = 5,
        FUNCTION_AUTHORIZATION_FAILED = 6,
        FUNCTION_REJECTED = 255,
    }
}

open_code! {
    /// Logout reason code, low 7 bits of byte 1 (RFC 7143 section 11.14.1).
    LogoutReason(u8) {
        CLOSE_SESSION = 0,
        CLOSE_CONNECTION = 1,
        REMOVE_CONNECTION_FOR_RECOVERY = 2,
    }
}

open_code! {
    /// Logout Response "Response" byte (RFC 7143 section 11.15.1).
    LogoutResponseCode(u8) {
        SUCCESS = 0,
        CID_NOT_FOUND = 1,
        RECOVERY_NOT_SUPPORTED = 2,
        CLEANUP_FAILED = 3,
    }
}

open_code! {
    /// Reject reason (RFC 7143 section 11.17.1).
    RejectReason(u8) {
        DATA_DIGEST_ERROR = 0x02,
        SNACK_REJECT = 0x03,
        PROTOCOL_ERROR = 0x04,
        COMMAND_NOT_SUPPORTED = 0x05,
        IMMEDIATE_COMMAND_REJECT = 0x06,
        TASK_IN_PROGRESS = 0x07,
        INVALID_DATA_ACK = 0x08,
        INVALID_PDU_FIELD = 0x09,
        LONG_OPERATION_REJECT = 0x0a,
        NEGOTIATION_RESET = 0x0b,
        WAITING_FOR_LOGOUT = 0x0c,
    }
}

open_code! {
    /// Login Response Status-Class (high byte) and Status-Detail (low byte) together
    /// (RFC 7143 section 11.13.5).
    LoginStatus(u16) {
        SUCCESS = 0x0000,
        TARGET_MOVED_TEMPORARILY = 0x0101,
        TARGET_MOVED_PERMANENTLY = 0x0102,
        INITIATOR_ERROR = 0x0200,
        AUTHENTICATION_FAILURE = 0x0201,
        AUTHORIZATION_FAILURE = 0x0202,
        NOT_FOUND = 0x0203,
        TARGET_REMOVED = 0x0204,
        UNSUPPORTED_VERSION = 0x0205,
        TOO_MANY_CONNECTIONS = 0x0206,
        MISSING_PARAMETER = 0x0207,
        CANT_INCLUDE_IN_SESSION = 0x0208,
        SESSION_TYPE_NOT_SUPPORTED = 0x0209,
        SESSION_DOES_NOT_EXIST = 0x020a,
        INVALID_DURING_LOGIN = 0x020b,
        TARGET_ERROR = 0x0300,
        SERVICE_UNAVAILABLE = 0x0301,
        OUT_OF_RESOURCES = 0x0302,
    }
}

impl LoginStatus {
    /// Status-Class 0: success.
    pub const CLASS_SUCCESS: u8 = 0;
    /// Status-Class 1: redirection.
    pub const CLASS_REDIRECTION: u8 = 1;
    /// Status-Class 2: initiator error.
    pub const CLASS_INITIATOR_ERROR: u8 = 2;
    /// Status-Class 3: target error.
    pub const CLASS_TARGET_ERROR: u8 = 3;

    /// Builds a status from its class and detail bytes.
    pub const fn from_parts(class: u8, detail: u8) -> LoginStatus {
        LoginStatus(((class as u16) << 8) | detail as u16)
    }
    /// Status-Class byte.
    pub const fn class(&self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Status-Detail byte.
    pub const fn detail(&self) -> u8 {
        self.0 as u8
    }
}

open_code! {
    /// Login stage, the CSG and NSG fields (RFC 7143 section 11.12.3).
    Stage(u8) {
        SECURITY_NEGOTIATION = 0,
        LOGIN_OPERATIONAL_NEGOTIATION = 1,
        FULL_FEATURE_PHASE = 3,
    }
}

open_code! {
    /// Asynchronous Message event code (RFC 7143 section 11.9.1).
    AsyncEvent(u8) {
        SCSI_ASYNC_EVENT = 0,
        LOGOUT_REQUEST = 1,
        CONNECTION_DROP = 2,
        SESSION_DROP = 3,
        NEGOTIATION_REQUEST = 4,
        TASK_TERMINATION = 5,
        VENDOR_SPECIFIC = 255,
    }
}

open_code! {
    /// SNACK type, low 4 bits of byte 1 (RFC 7143 section 11.16.1).
    SnackType(u8) {
        DATA_R2T = 0,
        STATUS = 1,
        DATA_ACK = 2,
        R_DATA = 3,
    }
}

open_code! {
    /// AHS type (RFC 7143 section 11.2.2.2).
    AhsType(u8) {
        EXTENDED_CDB = 1,
        BIDI_READ_DATA_LENGTH = 2,
    }
}
