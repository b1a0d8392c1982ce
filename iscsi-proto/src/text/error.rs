//! RFC 7143 sections 6, 12 and 13: the errors of text parsing, negotiation, login and CHAP.
//!
//! Every variant names the rule that the peer's (or the caller's) text broke.

use super::login::{LoginStatus, Stage};
use thiserror::Error;

/// A malformed text segment or a key/value that breaks a negotiation rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// The whole text (possibly spread over several PDUs) is longer than the named limit.
    #[error("text of {len} bytes exceeds the limit of {limit} bytes")]
    TextTooLong { len: usize, limit: usize },
    /// Two NULs in a row before the end of the text (RFC 7143 section 6.1).
    #[error("empty key=value pair before the end of the text (RFC 7143 section 6.1)")]
    EmptyPair,
    /// A pair without the '=' separator (RFC 7143 section 6.1).
    #[error("key=value pair without '=' separator (RFC 7143 section 6.1)")]
    MissingSeparator,
    /// A pair starting with '='.
    #[error("empty key name (RFC 7143 section 6.1)")]
    EmptyKey,
    /// A key name longer than 63 bytes (RFC 7143 section 6.1).
    #[error("key name of {len} bytes exceeds the {limit}-byte limit (RFC 7143 section 6.1)")]
    KeyTooLong { len: usize, limit: usize },
    /// A key name byte outside the allowed set (RFC 7143 section 6.1).
    #[error("key name byte {byte:#04x} is not a letter, digit, '.', '-', '+', '@' or '_'")]
    InvalidKeyChar { byte: u8 },
    /// A value longer than the limit for its key (RFC 7143 section 6.1).
    #[error("value of key {key} is {len} bytes, above the {limit}-byte limit")]
    ValueTooLong {
        key: String,
        len: usize,
        limit: usize,
    },
    /// Text values are UTF-8 (RFC 7143 section 6.1).
    #[error("text is not valid UTF-8 (RFC 7143 section 6.1)")]
    InvalidUtf8,
    /// A key appears twice in one text (RFC 7143 section 6.2).
    #[error("key {key} appears more than once (RFC 7143 section 6.2)")]
    DuplicateKey { key: String },
    /// A key negotiated or declared again after it was settled (RFC 7143 section 6.2).
    #[error("key {key} negotiated a second time (RFC 7143 section 6.2)")]
    KeyRenegotiated { key: String },
    /// The peer's answer does not follow from our offer (RFC 7143 section 6.2.2).
    #[error(
        "answer {value:?} for key {key} does not follow from our offer (RFC 7143 section 6.2.2)"
    )]
    InvalidAnswer { key: String, value: String },
    /// A key used in a stage where it is not allowed (RFC 7143 sections 6.3 and 13).
    #[error("key {key} is not allowed in {phase} (RFC 7143 section 6.3)")]
    WrongPhase { key: String, phase: &'static str },
    /// A value that is not valid for its key (number, boolean, name, ...).
    #[error("invalid value {value:?} for key {key} (RFC 7143 section 13)")]
    InvalidValue { key: String, value: String },
    /// A TargetAddress that is not `host[:port][,tpgt]` (RFC 7143 section 13.8).
    #[error("malformed TargetAddress {value:?} (RFC 7143 section 13.8)")]
    InvalidTargetAddress { value: String },
    /// A SendTargets response with a TargetAddress before any TargetName (RFC 7143 appendix C).
    #[error("TargetAddress before any TargetName in a SendTargets response (RFC 7143 appendix C)")]
    OrphanTargetAddress,
}

/// A CHAP exchange that breaks RFC 1994 as profiled by RFC 7143 section 12.1.3.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChapError {
    /// CHAP_A lists no algorithm we accept.
    #[error("no acceptable CHAP algorithm in {value:?} (RFC 7143 section 12.1.3)")]
    NoCommonAlgorithm { value: String },
    /// The peer chose an algorithm we did not offer.
    #[error("CHAP algorithm {value:?} was not offered (RFC 7143 section 12.1.3)")]
    UnofferedAlgorithm { value: String },
    /// A binary value that is neither `0x` hex nor `0b` base64 (RFC 7143 section 6.1).
    #[error("CHAP value {value:?} is not 0x-hex or 0b-base64 (RFC 7143 section 6.1)")]
    BadBinaryEncoding { value: String },
    /// CHAP_I is not a number from 0 to 255.
    #[error("CHAP_I {value:?} is not a number from 0 to 255 (RFC 1994 section 4.1)")]
    InvalidIdentifier { value: String },
    /// A challenge shorter or longer than the named bounds.
    #[error("CHAP challenge of {len} bytes is outside {min}..={max} bytes")]
    ChallengeLength { len: usize, min: usize, max: usize },
    /// The peer sent back the challenge we sent it (RFC 7143 section 12.1.3).
    #[error("CHAP challenge reflected back to us (RFC 7143 section 12.1.3)")]
    ReflectedChallenge,
    /// CHAP_R has the wrong length for the algorithm.
    #[error("CHAP_R of {len} bytes, the algorithm gives {expected} bytes")]
    ResponseLength { len: usize, expected: usize },
    /// CHAP_R does not match the expected response: wrong secret.
    #[error("CHAP_R does not match: wrong secret or name (RFC 1994 section 4.1)")]
    ResponseMismatch,
    /// CHAP_N names nobody we know.
    #[error("CHAP_N {name:?} is not a configured user")]
    UnknownName { name: String },
    /// A CHAP key we need is absent.
    #[error("CHAP key {key} is missing (RFC 7143 section 12.1.3)")]
    MissingKey { key: &'static str },
    /// A CHAP key at the wrong step of the exchange.
    #[error("CHAP key {key} is not expected at this step (RFC 7143 section 12.1.3)")]
    UnexpectedKey { key: String },
    /// Mutual CHAP was required but the peer did not authenticate itself.
    #[error("mutual CHAP required but the target did not answer our challenge")]
    MutualMissing,
}

/// A login that cannot go on. On the target side [`LoginError::status`] gives the status the
/// login response carries.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoginError {
    /// The text was malformed or broke a negotiation rule.
    #[error(transparent)]
    Text(#[from] TextError),
    /// Authentication failed.
    #[error(transparent)]
    Chap(#[from] ChapError),
    /// The peer answered with a non-success status (RFC 7143 section 11.13.5).
    #[error("login rejected with status {status:?}")]
    Rejected { status: LoginStatus },
    /// The target redirected us (status class 1, RFC 7143 section 11.13.5).
    #[error("login redirected with status {status:?} to {address:?}")]
    Redirected {
        status: LoginStatus,
        address: Option<String>,
    },
    /// Both T and C set (RFC 7143 section 11.12.2).
    #[error("transit and continue bits both set (RFC 7143 section 11.12.2)")]
    TransitAndContinue,
    /// CSG/NSG combination that the stage rules forbid (RFC 7143 section 11.12.3).
    #[error("stage transition {csg:?} -> {nsg:?} not allowed (RFC 7143 section 11.12.3)")]
    InvalidTransition { csg: Stage, nsg: Stage },
    /// A PDU for a stage other than the current one (RFC 7143 section 6.3).
    #[error("login PDU for stage {got:?}, current stage is {expected:?} (RFC 7143 section 6.3)")]
    UnexpectedStage { expected: Stage, got: Stage },
    /// The target set T although the initiator did not ask (RFC 7143 section 11.13.1).
    #[error("target set the transit bit without being asked (RFC 7143 section 11.13.1)")]
    UnrequestedTransit,
    /// No common protocol version (RFC 7143 section 11.12.4).
    #[error("version range {min}..={max} excludes version 0 (RFC 7143 section 11.12.4)")]
    UnsupportedVersion { min: u8, max: u8 },
    /// A key the login needs is missing (RFC 7143 section 6.3, status 0x0207).
    #[error("login key {key} is missing (RFC 7143 section 6.3)")]
    MissingKey { key: &'static str },
    /// The TargetName is not served here (status 0x0203).
    #[error("target {name:?} not found")]
    TargetNotFound { name: String },
    /// The initiator is not allowed to log in to the target (status 0x0202).
    #[error("initiator {name:?} not allowed by the access list")]
    NotAuthorized { name: String },
    /// AuthMethod negotiation found no method both sides accept (RFC 7143 section 12).
    #[error("no acceptable AuthMethod in {offered:?} (RFC 7143 section 12)")]
    NoAuthMethod { offered: String },
    /// The initiator tried to leave the security stage before authenticating.
    #[error("authentication required before leaving the security stage")]
    AuthenticationRequired,
    /// A SessionType value we do not serve (status 0x0209).
    #[error("session type {value:?} not supported")]
    UnsupportedSessionType { value: String },
    /// A non-zero TSIH for a session that does not exist here (status 0x020a).
    #[error("session with TSIH {tsih} does not exist")]
    SessionDoesNotExist { tsih: u16 },
    /// A later login request changed the ISID or TSIH of the first (RFC 7143 section 11.12.5).
    #[error("ISID or TSIH changed during the login (RFC 7143 section 11.12.5)")]
    SessionIdentityChanged,
    /// The exchange went on for more rounds than the named limit.
    #[error("login did not finish within {limit} exchanges")]
    TooManyRounds { limit: usize },
    /// The state machine was used after it finished or failed.
    #[error("login already finished")]
    Finished,
}

impl LoginError {
    /// The login status a target sends back for this failure (RFC 7143 section 11.13.5).
    pub fn status(&self) -> LoginStatus {
        match self {
            LoginError::Chap(_) | LoginError::NoAuthMethod { .. } => {
                LoginStatus::AUTHENTICATION_FAILURE
            }
            LoginError::AuthenticationRequired => LoginStatus::AUTHENTICATION_FAILURE,
            LoginError::NotAuthorized { .. } => LoginStatus::AUTHORIZATION_FAILURE,
            LoginError::TargetNotFound { .. } => LoginStatus::NOT_FOUND,
            LoginError::UnsupportedVersion { .. } => LoginStatus::UNSUPPORTED_VERSION,
            LoginError::MissingKey { .. } => LoginStatus::MISSING_PARAMETER,
            LoginError::UnsupportedSessionType { .. } => LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
            LoginError::SessionDoesNotExist { .. } => LoginStatus::SESSION_DOES_NOT_EXIST,
            LoginError::Rejected { status } | LoginError::Redirected { status, .. } => *status,
            LoginError::TooManyRounds { .. } => LoginStatus::INITIATOR_ERROR,
            LoginError::Finished => LoginStatus::INVALID_DURING_LOGIN,
            LoginError::Text(_)
            | LoginError::TransitAndContinue
            | LoginError::InvalidTransition { .. }
            | LoginError::UnexpectedStage { .. }
            | LoginError::UnrequestedTransit
            | LoginError::SessionIdentityChanged => LoginStatus::INITIATOR_ERROR,
        }
    }
}
