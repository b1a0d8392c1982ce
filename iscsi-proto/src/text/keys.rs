//! RFC 7143 section 13 (and RFC 7144 for iSCSIProtocolLevel): the registry of text keys, their
//! value types, result functions, and where they may be used.

/// The special values every key may take in a response (RFC 7143 sections 6.2 and 6.2.1).
pub const REJECT: &str = "Reject";
/// The key does not apply given other negotiated values (RFC 7143 section 6.2.1).
pub const IRRELEVANT: &str = "Irrelevant";
/// The key is not known to the responder (RFC 7143 section 6.2).
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";
/// Boolean true (RFC 7143 section 6.1).
pub const YES: &str = "Yes";
/// Boolean false (RFC 7143 section 6.1).
pub const NO: &str = "No";
/// The `None` list value of digests and AuthMethod.
pub const NONE: &str = "None";

/// How the result of a key follows from the offer and the answer (RFC 7143 section 6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultFunction {
    /// Each side states its own value; nothing is answered.
    Declarative,
    /// The responder picks the first value of the offered list that it accepts.
    List,
    /// Boolean AND of both values.
    And,
    /// Boolean OR of both values.
    Or,
    /// The smaller of both numbers.
    Min,
    /// The larger of both numbers.
    Max,
    /// A key with its own exchange (AuthMethod sub-keys, SendTargets, markers intervals).
    Special,
}

/// The values a key takes (RFC 7143 section 6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Free text (names, addresses, CHAP values).
    Text,
    /// `Yes` or `No`.
    Boolean,
    /// A decimal number in the inclusive range.
    Number { min: u32, max: u32 },
    /// One of (or, in an offer, a comma-separated list of) the given values.
    Enumerated(&'static [&'static str]),
}

/// Where a key may appear (RFC 7143 section 13, "Use:").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPhase {
    /// Security negotiation stage only (AuthMethod and its sub-keys).
    Security,
    /// Login only, any stage (IO: initialize only).
    Login,
    /// Login operational stage of the leading connection only (LO).
    LeadingOnly,
    /// Login or full feature phase (ALL).
    All,
    /// Full feature phase text requests only (SendTargets).
    FullFeature,
}

/// Who may send the key first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Initiator,
    Target,
    Both,
}

/// One registered key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDef {
    pub name: &'static str,
    pub function: ResultFunction,
    pub value: ValueType,
    pub phase: KeyPhase,
    pub sender: Sender,
    /// The value in force when the key is never negotiated, if the RFC gives one.
    pub default: Option<&'static str>,
}

/// 512 to 2^24-1 (RFC 7143 sections 13.12-13.14).
const LEN_RANGE: ValueType = ValueType::Number {
    min: 512,
    max: 0x00ff_ffff,
};

const fn def(
    name: &'static str,
    function: ResultFunction,
    value: ValueType,
    phase: KeyPhase,
    sender: Sender,
    default: Option<&'static str>,
) -> KeyDef {
    KeyDef {
        name,
        function,
        value,
        phase,
        sender,
        default,
    }
}

use KeyPhase as P;
use ResultFunction as F;
use Sender as S;
use ValueType as V;

/// Every key of RFC 7143 section 13 (plus iSCSIProtocolLevel of RFC 7144 and the obsolete
/// marker keys of RFC 3720).
pub static KEYS: &[KeyDef] = &[
    def(
        "AuthMethod",
        F::List,
        V::Enumerated(&["KRB5", "SRP", "SPKM1", "SPKM2", "CHAP", "None"]),
        P::Security,
        S::Both,
        Some("None"),
    ),
    def("CHAP_A", F::Special, V::Text, P::Security, S::Both, None),
    def("CHAP_I", F::Special, V::Text, P::Security, S::Both, None),
    def("CHAP_C", F::Special, V::Text, P::Security, S::Both, None),
    def("CHAP_N", F::Special, V::Text, P::Security, S::Both, None),
    def("CHAP_R", F::Special, V::Text, P::Security, S::Both, None),
    def(
        "HeaderDigest",
        F::List,
        V::Enumerated(&["CRC32C", "None"]),
        P::Login,
        S::Both,
        Some("None"),
    ),
    def(
        "DataDigest",
        F::List,
        V::Enumerated(&["CRC32C", "None"]),
        P::Login,
        S::Both,
        Some("None"),
    ),
    def(
        "MaxConnections",
        F::Min,
        V::Number { min: 1, max: 65535 },
        P::LeadingOnly,
        S::Both,
        Some("1"),
    ),
    def(
        "SendTargets",
        F::Special,
        V::Text,
        P::FullFeature,
        S::Initiator,
        None,
    ),
    def(
        "TargetName",
        F::Declarative,
        V::Text,
        P::Login,
        S::Initiator,
        None,
    ),
    def(
        "InitiatorName",
        F::Declarative,
        V::Text,
        P::Login,
        S::Initiator,
        None,
    ),
    def(
        "TargetAlias",
        F::Declarative,
        V::Text,
        P::All,
        S::Target,
        None,
    ),
    def(
        "InitiatorAlias",
        F::Declarative,
        V::Text,
        P::All,
        S::Initiator,
        None,
    ),
    def(
        "TargetAddress",
        F::Declarative,
        V::Text,
        P::All,
        S::Target,
        None,
    ),
    def(
        "TargetPortalGroupTag",
        F::Declarative,
        V::Number { min: 0, max: 65535 },
        P::Login,
        S::Target,
        None,
    ),
    def(
        "InitialR2T",
        F::Or,
        V::Boolean,
        P::LeadingOnly,
        S::Both,
        Some("Yes"),
    ),
    def(
        "ImmediateData",
        F::And,
        V::Boolean,
        P::LeadingOnly,
        S::Both,
        Some("Yes"),
    ),
    def(
        "MaxRecvDataSegmentLength",
        F::Declarative,
        LEN_RANGE,
        P::All,
        S::Both,
        Some("8192"),
    ),
    def(
        "MaxBurstLength",
        F::Min,
        LEN_RANGE,
        P::LeadingOnly,
        S::Both,
        Some("262144"),
    ),
    def(
        "FirstBurstLength",
        F::Min,
        LEN_RANGE,
        P::LeadingOnly,
        S::Both,
        Some("65536"),
    ),
    def(
        "DefaultTime2Wait",
        F::Max,
        V::Number { min: 0, max: 3600 },
        P::LeadingOnly,
        S::Both,
        Some("2"),
    ),
    def(
        "DefaultTime2Retain",
        F::Min,
        V::Number { min: 0, max: 3600 },
        P::LeadingOnly,
        S::Both,
        Some("20"),
    ),
    def(
        "MaxOutstandingR2T",
        F::Min,
        V::Number { min: 1, max: 65535 },
        P::LeadingOnly,
        S::Both,
        Some("1"),
    ),
    def(
        "DataPDUInOrder",
        F::Or,
        V::Boolean,
        P::LeadingOnly,
        S::Both,
        Some("Yes"),
    ),
    def(
        "DataSequenceInOrder",
        F::Or,
        V::Boolean,
        P::LeadingOnly,
        S::Both,
        Some("Yes"),
    ),
    def(
        "ErrorRecoveryLevel",
        F::Min,
        V::Number { min: 0, max: 2 },
        P::LeadingOnly,
        S::Both,
        Some("0"),
    ),
    def(
        "SessionType",
        F::Declarative,
        V::Enumerated(&["Discovery", "Normal"]),
        P::LeadingOnly,
        S::Initiator,
        Some("Normal"),
    ),
    def(
        "OFMarker",
        F::And,
        V::Boolean,
        P::Login,
        S::Both,
        Some("No"),
    ),
    def(
        "IFMarker",
        F::And,
        V::Boolean,
        P::Login,
        S::Both,
        Some("No"),
    ),
    def(
        "OFMarkInt",
        F::Special,
        V::Text,
        P::Login,
        S::Both,
        Some("2048"),
    ),
    def(
        "IFMarkInt",
        F::Special,
        V::Text,
        P::Login,
        S::Both,
        Some("2048"),
    ),
    def(
        "TaskReporting",
        F::List,
        V::Enumerated(&["RFC3720", "ResponseFence", "FastAbort"]),
        P::LeadingOnly,
        S::Both,
        Some("RFC3720"),
    ),
    def(
        "iSCSIProtocolLevel",
        F::Min,
        V::Number { min: 0, max: 31 },
        P::LeadingOnly,
        S::Both,
        Some("1"),
    ),
];

/// The registry entry for `name`.
pub fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// Private or public extension keys (`X-...`, `X#...`, RFC 7143 section 13.16), which we do
/// not understand.
pub fn is_extension_key(name: &str) -> bool {
    name.starts_with("X-")
        || name.starts_with("X#")
        || name.starts_with("Y#")
        || name.starts_with("Z#")
}

/// Keys of the security stage (AuthMethod and the CHAP keys, RFC 7143 section 12).
pub fn is_security_key(name: &str) -> bool {
    key_def(name).is_some_and(|k| k.phase == KeyPhase::Security)
}

/// Whether `value` is one of the responses Reject, Irrelevant, NotUnderstood.
pub fn is_special_response(value: &str) -> bool {
    matches!(value, REJECT | IRRELEVANT | NOT_UNDERSTOOD)
}

/// Parses a decimal number (or a `0x` hex number, RFC 7143 section 6.1 numerical values).
pub fn parse_number(value: &str) -> Option<u64> {
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        if hex.is_empty() || hex.len() > 16 {
            return None;
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Parses `Yes`/`No`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        YES => Some(true),
        NO => Some(false),
        _ => None,
    }
}

/// `Yes` or `No`.
pub fn bool_str(b: bool) -> &'static str {
    if b {
        YES
    } else {
        NO
    }
}

impl KeyDef {
    /// Checks a single (non-list) value against the key's type.
    pub fn valid_value(&self, value: &str) -> bool {
        match self.value {
            ValueType::Text => true,
            ValueType::Boolean => parse_bool(value).is_some(),
            ValueType::Number { min, max } => {
                parse_number(value).is_some_and(|n| n >= min as u64 && n <= max as u64)
            }
            ValueType::Enumerated(allowed) => allowed.contains(&value),
        }
    }
}
