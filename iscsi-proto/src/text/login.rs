//! RFC 7143 sections 6.3, 11.12 and 11.13: login stages, transit/continue bits, versions and
//! login status codes, as plain structs independent of the PDU codec.

use std::fmt;

/// A login stage (CSG/NSG, RFC 7143 section 11.12.3). Open: value 2 parses and is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stage(pub u8);

impl Stage {
    pub const SECURITY_NEGOTIATION: Stage = Stage(0);
    pub const LOGIN_OPERATIONAL_NEGOTIATION: Stage = Stage(1);
    pub const FULL_FEATURE_PHASE: Stage = Stage(3);

    /// Whether this is one of the three stages the RFC defines.
    pub fn is_valid(self) -> bool {
        matches!(self.0, 0 | 1 | 3)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("SecurityNegotiation"),
            1 => f.write_str("LoginOperationalNegotiation"),
            3 => f.write_str("FullFeaturePhase"),
            n => write!(f, "stage {n}"),
        }
    }
}

/// Checks a requested transition CSG -> NSG when T is set (RFC 7143 section 11.12.3): the next
/// stage is a later, defined stage.
pub fn valid_transition(csg: Stage, nsg: Stage) -> bool {
    csg.is_valid() && nsg.is_valid() && nsg > csg && csg != Stage::FULL_FEATURE_PHASE
}

/// Status-Class and Status-Detail of a login response (RFC 7143 section 11.13.5), as one open
/// 16-bit code `class << 8 | detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoginStatus(pub u16);

impl LoginStatus {
    pub const SUCCESS: LoginStatus = LoginStatus(0x0000);
    pub const TARGET_MOVED_TEMPORARILY: LoginStatus = LoginStatus(0x0101);
    pub const TARGET_MOVED_PERMANENTLY: LoginStatus = LoginStatus(0x0102);
    pub const INITIATOR_ERROR: LoginStatus = LoginStatus(0x0200);
    pub const AUTHENTICATION_FAILURE: LoginStatus = LoginStatus(0x0201);
    pub const AUTHORIZATION_FAILURE: LoginStatus = LoginStatus(0x0202);
    pub const NOT_FOUND: LoginStatus = LoginStatus(0x0203);
    pub const TARGET_REMOVED: LoginStatus = LoginStatus(0x0204);
    pub const UNSUPPORTED_VERSION: LoginStatus = LoginStatus(0x0205);
    pub const TOO_MANY_CONNECTIONS: LoginStatus = LoginStatus(0x0206);
    pub const MISSING_PARAMETER: LoginStatus = LoginStatus(0x0207);
    pub const CANT_INCLUDE_IN_SESSION: LoginStatus = LoginStatus(0x0208);
    pub const SESSION_TYPE_NOT_SUPPORTED: LoginStatus = LoginStatus(0x0209);
    pub const SESSION_DOES_NOT_EXIST: LoginStatus = LoginStatus(0x020a);
    pub const INVALID_DURING_LOGIN: LoginStatus = LoginStatus(0x020b);
    pub const TARGET_ERROR: LoginStatus = LoginStatus(0x0300);
    pub const SERVICE_UNAVAILABLE: LoginStatus = LoginStatus(0x0301);
    pub const OUT_OF_RESOURCES: LoginStatus = LoginStatus(0x0302);

    /// From the two header bytes.
    pub fn from_parts(class: u8, detail: u8) -> LoginStatus {
        LoginStatus(u16::from(class) << 8 | u16::from(detail))
    }

    /// Status-Class: 0 success, 1 redirection, 2 initiator error, 3 target error.
    pub fn class(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Status-Detail.
    pub fn detail(self) -> u8 {
        self.0 as u8
    }

    pub fn is_success(self) -> bool {
        self.class() == 0
    }

    pub fn is_redirect(self) -> bool {
        self.class() == 1
    }

    fn name(self) -> &'static str {
        match self {
            LoginStatus::SUCCESS => "success",
            LoginStatus::TARGET_MOVED_TEMPORARILY => "target moved temporarily",
            LoginStatus::TARGET_MOVED_PERMANENTLY => "target moved permanently",
            LoginStatus::INITIATOR_ERROR => "initiator error",
            LoginStatus::AUTHENTICATION_FAILURE => "authentication failure",
            LoginStatus::AUTHORIZATION_FAILURE => "authorization failure",
            LoginStatus::NOT_FOUND => "not found",
            LoginStatus::TARGET_REMOVED => "target removed",
            LoginStatus::UNSUPPORTED_VERSION => "unsupported version",
            LoginStatus::TOO_MANY_CONNECTIONS => "too many connections",
            LoginStatus::MISSING_PARAMETER => "missing parameter",
            LoginStatus::CANT_INCLUDE_IN_SESSION => "can't include in session",
            LoginStatus::SESSION_TYPE_NOT_SUPPORTED => "session type not supported",
            LoginStatus::SESSION_DOES_NOT_EXIST => "session does not exist",
            LoginStatus::INVALID_DURING_LOGIN => "invalid request during login",
            LoginStatus::TARGET_ERROR => "target error",
            LoginStatus::SERVICE_UNAVAILABLE => "service unavailable",
            LoginStatus::OUT_OF_RESOURCES => "out of resources",
            _ => "unknown",
        }
    }
}

impl fmt::Display for LoginStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} ({})", self.0, self.name())
    }
}

/// The only iSCSI version (RFC 7143 section 11.12.4).
pub const ISCSI_VERSION: u8 = 0;

/// Most login request/response exchanges one login may take before it is abandoned.
pub const MAX_LOGIN_ROUNDS: usize = 32;

/// The login-relevant fields of a Login Request header (RFC 7143 section 11.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginRequestHeader {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    pub nsg: Stage,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
}

/// The login-relevant fields of a Login Response header (RFC 7143 section 11.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginResponseHeader {
    pub transit: bool,
    pub cont: bool,
    pub csg: Stage,
    /// Meaningful only when `transit` is set (reserved, 0, otherwise).
    pub nsg: Stage,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub status: LoginStatus,
}

/// A login request to send: header fields and data segment text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRequest {
    pub header: LoginRequestHeader,
    pub text: Vec<u8>,
}

/// A login response to send: header fields and data segment text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResponse {
    pub header: LoginResponseHeader,
    pub text: Vec<u8>,
}
