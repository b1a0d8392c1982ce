//! RFC 7143 section 6.2 (text mode negotiation) and section 13 (operational keys): the
//! negotiation engine shared by initiator and target, and the negotiated [`SessionParams`].
//!
//! A [`Negotiator`] holds this side's offers and limits. Feeding it the peer's operational keys
//! ([`Negotiator::process`]) returns this side's answers; keys this side wants to propose come
//! from [`Negotiator::offer`]. Security keys (AuthMethod, CHAP_*) and the login identity keys
//! (InitiatorName, TargetName, SessionType, aliases, TargetPortalGroupTag, TargetAddress) are the
//! login state machine's business and must be filtered out before.

use super::error::TextError;
use super::keys::{
    bool_str, is_special_response, key_def, parse_bool, parse_number, KeyDef, KeyPhase,
    ResultFunction, ValueType, IRRELEVANT, NOT_UNDERSTOOD, REJECT,
};
use super::kv::KeyValue;
use std::collections::{BTreeMap, BTreeSet};

/// Which end of the connection this side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Target,
}

/// A header or data digest choice (RFC 7143 sections 13.1, 11.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestKind {
    None,
    Crc32c,
}

impl DigestKind {
    /// The key value: `None` or `CRC32C`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::None => "None",
            DigestKind::Crc32c => "CRC32C",
        }
    }

    /// Parses `None` / `CRC32C`.
    pub fn parse(value: &str) -> Option<DigestKind> {
        match value {
            "None" => Some(DigestKind::None),
            "CRC32C" => Some(DigestKind::Crc32c),
            _ => None,
        }
    }
}

/// Discovery or normal session (RFC 7143 section 13.21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Discovery,
    Normal,
}

impl SessionType {
    /// The key value: `Discovery` or `Normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Discovery => "Discovery",
            SessionType::Normal => "Normal",
        }
    }

    /// Parses `Discovery` / `Normal`.
    pub fn parse(value: &str) -> Option<SessionType> {
        match value {
            "Discovery" => Some(SessionType::Discovery),
            "Normal" => Some(SessionType::Normal),
            _ => None,
        }
    }
}

/// What this side offers, accepts or declares for the operational keys. For list keys the
/// vector is both the preference order of an offer and the set of acceptable values of an
/// answer; for numeric keys it is our proposal (the result is then min/max with the peer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationalOffers {
    pub header_digest: Vec<DigestKind>,
    pub data_digest: Vec<DigestKind>,
    /// What we declare we can receive in one data segment (RFC 7143 section 13.12).
    pub max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub max_connections: u32,
    pub error_recovery_level: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
}

impl Default for OperationalOffers {
    /// Large transfers (the thesis: few, big requests), no digests preferred but CRC32C
    /// accepted, immediate data, one connection, error recovery level 0.
    fn default() -> Self {
        OperationalOffers {
            header_digest: vec![DigestKind::None, DigestKind::Crc32c],
            data_digest: vec![DigestKind::None, DigestKind::Crc32c],
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1_048_576,
            first_burst_length: 262_144,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 1,
            max_connections: 1,
            error_recovery_level: 0,
            default_time2wait: 2,
            default_time2retain: 20,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
        }
    }
}

/// The negotiated values of a session and connection (RFC 7143 section 13). `Default` gives the
/// RFC defaults, which hold for every key never negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    pub session_type: SessionType,
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// None for discovery sessions.
    pub target_name: Option<String>,
    pub target_alias: Option<String>,
    pub target_portal_group_tag: Option<u16>,
    pub header_digest: DigestKind,
    pub data_digest: DigestKind,
    /// Largest data segment this side accepts: what this side declared.
    pub max_recv_data_segment_length: u32,
    /// Largest data segment this side may send: what the peer declared (8192 if it did not).
    pub max_send_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u32,
    pub max_connections: u32,
    pub error_recovery_level: u32,
    pub default_time2wait: u32,
    pub default_time2retain: u32,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub task_reporting: String,
    pub protocol_level: u32,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            session_type: SessionType::Normal,
            initiator_name: String::new(),
            initiator_alias: None,
            target_name: None,
            target_alias: None,
            target_portal_group_tag: None,
            header_digest: DigestKind::None,
            data_digest: DigestKind::None,
            max_recv_data_segment_length: 8192,
            max_send_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            max_connections: 1,
            error_recovery_level: 0,
            default_time2wait: 2,
            default_time2retain: 20,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            task_reporting: "RFC3720".to_string(),
            protocol_level: 1,
        }
    }
}

/// Our iSCSIProtocolLevel (RFC 7144 section 2.1: 1 means RFC 7143).
pub const OUR_PROTOCOL_LEVEL: u32 = 1;

/// The operational keys an initiator proposes in a normal session.
pub const NORMAL_SESSION_KEYS: &[&str] = &[
    "HeaderDigest",
    "DataDigest",
    "MaxConnections",
    "InitialR2T",
    "ImmediateData",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "ErrorRecoveryLevel",
];

/// The operational keys an initiator proposes in a discovery session.
pub const DISCOVERY_SESSION_KEYS: &[&str] =
    &["HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"];

/// Where a negotiation takes place, for the key phase checks of RFC 7143 section 13.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegotiationPhase {
    /// Login (security or operational stage).
    Login,
    /// Text requests of the full feature phase.
    FullFeature,
}

/// The negotiation engine of one side. See the module docs.
#[derive(Clone, Debug)]
pub struct Negotiator {
    role: Role,
    offers: OperationalOffers,
    /// Our outstanding offers, awaiting the peer's answer.
    offered: BTreeMap<&'static str, String>,
    /// Settled values of negotiated keys.
    results: BTreeMap<&'static str, String>,
    /// Values the peer declared.
    peer_declared: BTreeMap<&'static str, String>,
    /// Keys we declared.
    we_declared: BTreeSet<&'static str>,
}

fn join_digests(list: &[DigestKind]) -> String {
    if list.is_empty() {
        return "None".to_string();
    }
    list.iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn combine(def: &KeyDef, ours: &str, theirs: &str) -> Option<String> {
    match def.function {
        ResultFunction::And | ResultFunction::Or => {
            let a = parse_bool(ours)?;
            let b = parse_bool(theirs)?;
            let r = if def.function == ResultFunction::And {
                a && b
            } else {
                a || b
            };
            Some(bool_str(r).to_string())
        }
        ResultFunction::Min | ResultFunction::Max => {
            let a = parse_number(ours)?;
            let b = parse_number(theirs)?;
            let r = if def.function == ResultFunction::Min {
                a.min(b)
            } else {
                a.max(b)
            };
            Some(r.to_string())
        }
        ResultFunction::List => {
            // The first of `ours` (an offer list) that `theirs` (an acceptable list) allows.
            let accept: Vec<&str> = theirs.split(',').collect();
            ours.split(',')
                .find(|v| accept.contains(v))
                .map(str::to_string)
        }
        ResultFunction::Declarative | ResultFunction::Special => Some(ours.to_string()),
    }
}

impl Negotiator {
    /// A negotiator for `role` with our offers and limits.
    pub fn new(role: Role, offers: OperationalOffers) -> Negotiator {
        Negotiator {
            role,
            offers,
            offered: BTreeMap::new(),
            results: BTreeMap::new(),
            peer_declared: BTreeMap::new(),
            we_declared: BTreeSet::new(),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our offers.
    pub fn offers(&self) -> &OperationalOffers {
        &self.offers
    }

    /// Our own value (offer, acceptable list or declaration) for a registered key.
    pub fn our_value(&self, key: &str) -> Option<String> {
        let o = &self.offers;
        let v = match key {
            "HeaderDigest" => join_digests(&o.header_digest),
            "DataDigest" => join_digests(&o.data_digest),
            "MaxConnections" => o.max_connections.to_string(),
            "InitialR2T" => bool_str(o.initial_r2t).to_string(),
            "ImmediateData" => bool_str(o.immediate_data).to_string(),
            "MaxRecvDataSegmentLength" => o.max_recv_data_segment_length.to_string(),
            "MaxBurstLength" => o.max_burst_length.to_string(),
            "FirstBurstLength" => o.first_burst_length.min(o.max_burst_length).to_string(),
            "DefaultTime2Wait" => o.default_time2wait.to_string(),
            "DefaultTime2Retain" => o.default_time2retain.to_string(),
            "MaxOutstandingR2T" => o.max_outstanding_r2t.to_string(),
            "DataPDUInOrder" => bool_str(o.data_pdu_in_order).to_string(),
            "DataSequenceInOrder" => bool_str(o.data_sequence_in_order).to_string(),
            "ErrorRecoveryLevel" => o.error_recovery_level.to_string(),
            "OFMarker" | "IFMarker" => "No".to_string(),
            "TaskReporting" => "RFC3720".to_string(),
            "iSCSIProtocolLevel" => OUR_PROTOCOL_LEVEL.to_string(),
            _ => return None,
        };
        Some(v)
    }

    /// Proposes (or declares) the given keys, skipping those already offered, settled or
    /// declared, and unknown ones. The returned pairs go into our next request or response.
    pub fn offer(&mut self, keys: &[&str]) -> Vec<KeyValue> {
        let mut out = Vec::new();
        for &key in keys {
            let Some(def) = key_def(key) else { continue };
            let Some(value) = self.our_value(key) else {
                continue;
            };
            if def.function == ResultFunction::Declarative {
                if self.we_declared.insert(def.name) {
                    out.push(KeyValue::new(def.name, value));
                }
                continue;
            }
            if self.offered.contains_key(def.name) || self.results.contains_key(def.name) {
                continue;
            }
            self.offered.insert(def.name, value.clone());
            out.push(KeyValue::new(def.name, value));
        }
        out
    }

    /// Declares MaxRecvDataSegmentLength if not done yet (what a target sends before the full
    /// feature phase).
    pub fn declarations(&mut self) -> Vec<KeyValue> {
        self.offer(&["MaxRecvDataSegmentLength"])
    }

    /// Keys we offered that the peer has not answered yet.
    pub fn pending(&self) -> Vec<&'static str> {
        self.offered.keys().copied().collect()
    }

    /// Whether `key` was settled (negotiated or answered).
    pub fn is_settled(&self, key: &str) -> bool {
        self.results.contains_key(key)
    }

    /// Processes the peer's operational pairs (answers to our offers, its own offers and
    /// declarations) and returns our answers, in the peer's order.
    pub fn process(
        &mut self,
        peer: &[KeyValue],
        phase: NegotiationPhase,
    ) -> Result<Vec<KeyValue>, TextError> {
        let mut out = Vec::new();
        for kv in peer {
            if let Some(answer) = self.process_one(kv, phase)? {
                out.push(answer);
            }
        }
        Ok(out)
    }

    fn process_one(
        &mut self,
        kv: &KeyValue,
        phase: NegotiationPhase,
    ) -> Result<Option<KeyValue>, TextError> {
        let key = kv.key.as_str();
        let value = kv.value.as_str();
        let Some(def) = key_def(key) else {
            // Unknown and X-/X# extension keys (RFC 7143 sections 6.2, 13.16): never
            // understood, never an error.
            if is_special_response(value) {
                return Ok(None);
            }
            return Ok(Some(KeyValue::new(key, NOT_UNDERSTOOD)));
        };
        if def.phase == KeyPhase::Security {
            return Err(TextError::WrongPhase {
                key: key.to_string(),
                phase: "operational negotiation",
            });
        }
        let phase_ok = !matches!(
            (def.phase, phase),
            (KeyPhase::FullFeature, NegotiationPhase::Login)
                | (
                    KeyPhase::Login | KeyPhase::LeadingOnly,
                    NegotiationPhase::FullFeature
                )
        );
        // Answers to our offers.
        if let Some(ours) = self.offered.get(def.name).cloned() {
            self.offered.remove(def.name);
            let result = if is_special_response(value) {
                fallback(def, &ours)
            } else {
                self.check_answer(def, &ours, value)?
            };
            self.results.insert(def.name, result);
            return Ok(None);
        }
        if is_special_response(value) {
            if self.we_declared.contains(def.name) {
                return Ok(None);
            }
            return Err(TextError::InvalidAnswer {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        if !phase_ok {
            return Ok(Some(KeyValue::new(def.name, REJECT)));
        }
        if def.function == ResultFunction::Declarative {
            if self.peer_declared.contains_key(def.name) {
                return Err(TextError::KeyRenegotiated {
                    key: key.to_string(),
                });
            }
            if !def.valid_value(value) {
                return Ok(Some(KeyValue::new(def.name, REJECT)));
            }
            self.peer_declared.insert(def.name, value.to_string());
            return Ok(None);
        }
        if self.results.contains_key(def.name) {
            return Err(TextError::KeyRenegotiated {
                key: key.to_string(),
            });
        }
        // The peer's offer.
        let answer = self.answer_offer(def, value);
        if answer != REJECT && answer != IRRELEVANT {
            self.results.insert(def.name, answer.clone());
        } else {
            self.results
                .insert(def.name, def.default.unwrap_or_default().to_string());
        }
        Ok(Some(KeyValue::new(def.name, answer)))
    }

    fn answer_offer(&self, def: &KeyDef, value: &str) -> String {
        if def.function == ResultFunction::Special {
            // OFMarkInt/IFMarkInt: markers are off (RFC 7143 section 13.25, RFC 3720 A.3.2).
            return IRRELEVANT.to_string();
        }
        let Some(ours) = self.our_value(def.name) else {
            return NOT_UNDERSTOOD.to_string();
        };
        match def.function {
            ResultFunction::List => {
                let ours_list: Vec<&str> = ours.split(',').collect();
                value
                    .split(',')
                    .find(|v| ours_list.contains(v))
                    .map_or_else(|| REJECT.to_string(), str::to_string)
            }
            ResultFunction::And | ResultFunction::Or => {
                if !def.valid_value(value) {
                    return REJECT.to_string();
                }
                combine(def, &ours, value).unwrap_or_else(|| REJECT.to_string())
            }
            ResultFunction::Min | ResultFunction::Max => {
                if !def.valid_value(value) {
                    return REJECT.to_string();
                }
                let mut ours = ours;
                if def.name == "FirstBurstLength" {
                    // FirstBurstLength never exceeds MaxBurstLength (RFC 7143 section 13.14).
                    let burst = self
                        .results
                        .get("MaxBurstLength")
                        .and_then(|v| parse_number(v))
                        .unwrap_or(self.offers.max_burst_length as u64);
                    let mine = parse_number(&ours).unwrap_or(0);
                    ours = mine.min(burst).to_string();
                }
                combine(def, &ours, value).unwrap_or_else(|| REJECT.to_string())
            }
            ResultFunction::Declarative | ResultFunction::Special => IRRELEVANT.to_string(),
        }
    }

    fn check_answer(&self, def: &KeyDef, ours: &str, value: &str) -> Result<String, TextError> {
        let bad = || TextError::InvalidAnswer {
            key: def.name.to_string(),
            value: value.to_string(),
        };
        match def.function {
            ResultFunction::List => {
                if value.contains(',') || !ours.split(',').any(|v| v == value) {
                    return Err(bad());
                }
                Ok(value.to_string())
            }
            ResultFunction::And | ResultFunction::Or => {
                if !def.valid_value(value) {
                    return Err(bad());
                }
                combine(def, ours, value).ok_or_else(bad)
            }
            ResultFunction::Min | ResultFunction::Max => {
                if !def.valid_value(value) {
                    return Err(bad());
                }
                let a = parse_number(ours).ok_or_else(bad)?;
                let b = parse_number(value).ok_or_else(bad)?;
                let fine = if def.function == ResultFunction::Min {
                    b <= a
                } else {
                    b >= a
                };
                if !fine {
                    return Err(bad());
                }
                Ok(b.to_string())
            }
            ResultFunction::Declarative | ResultFunction::Special => Ok(value.to_string()),
        }
    }

    /// The value in force for `key`: settled result, else the fallback of an unanswered offer
    /// (our offer combined with the RFC default), else the RFC default.
    pub fn value(&self, key: &str) -> Option<String> {
        let def = key_def(key)?;
        if let Some(v) = self.results.get(def.name) {
            return Some(v.clone());
        }
        if let Some(ours) = self.offered.get(def.name) {
            return Some(fallback(def, ours));
        }
        def.default.map(str::to_string)
    }

    /// The value the peer declared for a declarative key.
    pub fn peer_declared(&self, key: &str) -> Option<&str> {
        self.peer_declared.get(key).map(String::as_str)
    }

    /// The negotiated operational values (identity fields left at their defaults; the login
    /// state machines fill them in).
    pub fn finish(&self) -> SessionParams {
        let mut p = SessionParams::default();
        let num = |key: &str, dflt: u32| -> u32 {
            self.value(key)
                .and_then(|v| parse_number(&v))
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(dflt)
        };
        let boolean = |key: &str, dflt: bool| -> bool {
            self.value(key).and_then(|v| parse_bool(&v)).unwrap_or(dflt)
        };
        let digest = |key: &str| -> DigestKind {
            self.value(key)
                .and_then(|v| DigestKind::parse(&v))
                .unwrap_or(DigestKind::None)
        };
        p.header_digest = digest("HeaderDigest");
        p.data_digest = digest("DataDigest");
        p.max_recv_data_segment_length = if self.we_declared.contains("MaxRecvDataSegmentLength") {
            self.offers.max_recv_data_segment_length
        } else {
            8192
        };
        p.max_send_data_segment_length = self
            .peer_declared
            .get("MaxRecvDataSegmentLength")
            .and_then(|v| parse_number(v))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(8192);
        p.max_burst_length = num("MaxBurstLength", p.max_burst_length);
        p.first_burst_length =
            num("FirstBurstLength", p.first_burst_length).min(p.max_burst_length);
        p.initial_r2t = boolean("InitialR2T", p.initial_r2t);
        p.immediate_data = boolean("ImmediateData", p.immediate_data);
        p.max_outstanding_r2t = num("MaxOutstandingR2T", p.max_outstanding_r2t);
        p.max_connections = num("MaxConnections", p.max_connections);
        p.error_recovery_level = num("ErrorRecoveryLevel", p.error_recovery_level);
        p.default_time2wait = num("DefaultTime2Wait", p.default_time2wait);
        p.default_time2retain = num("DefaultTime2Retain", p.default_time2retain);
        p.data_pdu_in_order = boolean("DataPDUInOrder", p.data_pdu_in_order);
        p.data_sequence_in_order = boolean("DataSequenceInOrder", p.data_sequence_in_order);
        if let Some(v) = self.value("TaskReporting") {
            p.task_reporting = v;
        }
        p.protocol_level = num("iSCSIProtocolLevel", p.protocol_level);
        p
    }
}

/// The result when an offer got no usable answer (Reject, Irrelevant, NotUnderstood, or none at
/// all): the result function applied to our offer and the RFC default, which is what a peer that
/// ignored the key assumes; for lists, the default.
fn fallback(def: &KeyDef, ours: &str) -> String {
    let dflt = def.default.unwrap_or_default();
    match def.function {
        ResultFunction::List | ResultFunction::Declarative | ResultFunction::Special => {
            dflt.to_string()
        }
        _ => {
            if let ValueType::Number { .. } | ValueType::Boolean = def.value {
                combine(def, ours, dflt).unwrap_or_else(|| dflt.to_string())
            } else {
                dflt.to_string()
            }
        }
    }
}
