//! RFC 7143 sections 6.3, 11.12 and 11.13: login stages, transit/continue bits, versions and
//! login status codes, as plain structs of the login fields, with conversions from and to the
//! PDU codec's [`crate::pdu::LoginRequest`] and [`crate::pdu::LoginResponse`].

pub use crate::pdu::{LoginStatus, Stage};

/// Whether `stage` is one of the three stages the RFC defines (0, 1, 3; RFC 7143 section
/// 11.12.3).
pub fn is_defined_stage(stage: Stage) -> bool {
    matches!(stage.0, 0 | 1 | 3)
}

/// Checks a requested transition CSG -> NSG when T is set (RFC 7143 section 11.12.3): the next
/// stage is a later, defined stage.
pub fn valid_transition(csg: Stage, nsg: Stage) -> bool {
    is_defined_stage(csg) && is_defined_stage(nsg) && nsg > csg && csg != Stage::FULL_FEATURE_PHASE
}

/// Whether a login status is Status-Class 0, success (RFC 7143 section 11.13.5).
pub fn is_success(status: LoginStatus) -> bool {
    status.class() == LoginStatus::CLASS_SUCCESS
}

/// Whether a login status is Status-Class 1, redirection (RFC 7143 section 11.13.5).
pub fn is_redirect(status: LoginStatus) -> bool {
    status.class() == LoginStatus::CLASS_REDIRECTION
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
pub struct LoginRequestParts {
    pub header: LoginRequestHeader,
    pub text: Vec<u8>,
}

/// A login response to send: header fields and data segment text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginResponseParts {
    pub header: LoginResponseHeader,
    pub text: Vec<u8>,
}

impl From<&crate::pdu::LoginRequest> for LoginRequestHeader {
    fn from(p: &crate::pdu::LoginRequest) -> Self {
        LoginRequestHeader {
            transit: p.transit,
            cont: p.cont,
            csg: p.csg,
            nsg: p.nsg,
            version_max: p.version_max,
            version_min: p.version_min,
            isid: p.isid,
            tsih: p.tsih,
        }
    }
}

impl From<&crate::pdu::LoginResponse> for LoginResponseHeader {
    fn from(p: &crate::pdu::LoginResponse) -> Self {
        LoginResponseHeader {
            transit: p.transit,
            cont: p.cont,
            csg: p.csg,
            nsg: p.nsg,
            version_max: p.version_max,
            version_active: p.version_active,
            isid: p.isid,
            tsih: p.tsih,
            status: p.status,
        }
    }
}

impl LoginRequestParts {
    /// Writes the login fields and the text into a PDU; the caller sets ITT, CID, CmdSN and
    /// ExpStatSN.
    pub fn apply_to(&self, p: &mut crate::pdu::LoginRequest) {
        let h = &self.header;
        p.transit = h.transit;
        p.cont = h.cont;
        p.csg = h.csg;
        p.nsg = h.nsg;
        p.version_max = h.version_max;
        p.version_min = h.version_min;
        p.isid = h.isid;
        p.tsih = h.tsih;
        p.data = bytes::Bytes::from(self.text.clone());
    }
}

impl LoginResponseParts {
    /// Writes the login fields and the text into a PDU; the caller sets ITT, StatSN, ExpCmdSN
    /// and MaxCmdSN.
    pub fn apply_to(&self, p: &mut crate::pdu::LoginResponse) {
        let h = &self.header;
        p.transit = h.transit;
        p.cont = h.cont;
        p.csg = h.csg;
        p.nsg = h.nsg;
        p.version_max = h.version_max;
        p.version_active = h.version_active;
        p.isid = h.isid;
        p.tsih = h.tsih;
        p.status = h.status;
        p.data = bytes::Bytes::from(self.text.clone());
    }
}
