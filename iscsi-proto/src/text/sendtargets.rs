//! RFC 7143 section 13.3 and appendix C: SendTargets discovery, and TargetAddress values
//! (section 13.8: `domainname[:port][,portal-group-tag]`, IPv6 literals in brackets).

use super::error::TextError;
use super::keys::{parse_number, IRRELEVANT, NOT_UNDERSTOOD, REJECT};
use super::kv::{encode_pair, parse_text, parse_text_repeatable, KeyValue};
use super::negotiate::SessionType;
use std::fmt;

/// One TargetAddress: host (name, IPv4 or IPv6 literal without brackets), optional TCP port
/// and optional target portal group tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetPortal {
    pub host: String,
    pub port: Option<u16>,
    pub portal_group_tag: Option<u16>,
}

impl TargetPortal {
    /// A portal with port and tag.
    pub fn new(host: impl Into<String>, port: u16, portal_group_tag: u16) -> TargetPortal {
        TargetPortal {
            host: host.into(),
            port: Some(port),
            portal_group_tag: Some(portal_group_tag),
        }
    }

    /// Parses `host[:port][,tpgt]`, `[v6addr][:port][,tpgt]`.
    pub fn parse(value: &str) -> Result<TargetPortal, TextError> {
        let bad = || TextError::InvalidTargetAddress {
            value: value.chars().take(64).collect(),
        };
        let (addr, tag) = match value.rsplit_once(',') {
            Some((a, t)) => (a, Some(t)),
            None => (value, None),
        };
        let portal_group_tag = match tag {
            Some(t) => Some(
                parse_number(t)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (h, port)
        } else if addr.matches(':').count() > 1 {
            // A bare IPv6 literal without port.
            (addr, None)
        } else {
            match addr.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (addr, None),
            }
        };
        if host.is_empty() || host.contains(['[', ']', ',']) {
            return Err(bad());
        }
        let port = match port {
            Some(p) => Some(
                parse_number(p)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        Ok(TargetPortal {
            host: host.to_string(),
            port,
            portal_group_tag,
        })
    }
}

impl fmt::Display for TargetPortal {
    /// The TargetAddress value, IPv6 hosts in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.portal_group_tag {
            write!(f, ",{t}")?;
        }
        Ok(())
    }
}

/// A target found by SendTargets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    pub addresses: Vec<TargetPortal>,
}

/// A target this side exports: its name, alias, portals and access list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedTarget {
    pub name: String,
    pub alias: Option<String>,
    pub portals: Vec<TargetPortal>,
    /// Initiator names allowed to log in; None lets everyone in.
    pub allowed_initiators: Option<Vec<String>>,
}

impl ExportedTarget {
    /// A target open to every initiator.
    pub fn new(name: impl Into<String>, portals: Vec<TargetPortal>) -> ExportedTarget {
        ExportedTarget {
            name: name.into(),
            alias: None,
            portals,
            allowed_initiators: None,
        }
    }

    /// Whether `initiator` passes the access list.
    pub fn allows(&self, initiator: &str) -> bool {
        self.allowed_initiators
            .as_ref()
            .is_none_or(|acl| acl.iter().any(|a| a == initiator))
    }
}

/// The text of a SendTargets request: `SendTargets=<value>`.
pub fn send_targets_request(value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pair("SendTargets", value, &mut out);
    out
}

/// Builds the SendTargets response (RFC 7143 appendix C) for `value` (`All`, a target name, or
/// empty for the session's own target), listing only targets `initiator` may access. `All` is
/// honoured in discovery sessions only; in a normal session it lists the session's target.
pub fn send_targets_response(
    targets: &[ExportedTarget],
    value: &str,
    initiator: &str,
    session_type: SessionType,
    current_target: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let chosen: Vec<&ExportedTarget> = match value {
        "All" if session_type == SessionType::Discovery => targets.iter().collect(),
        "All" | "" => targets
            .iter()
            .filter(|t| Some(t.name.as_str()) == current_target)
            .collect(),
        name => targets.iter().filter(|t| t.name == name).collect(),
    };
    for t in chosen.into_iter().filter(|t| t.allows(initiator)) {
        encode_pair("TargetName", &t.name, &mut out);
        for p in &t.portals {
            encode_pair("TargetAddress", &p.to_string(), &mut out);
        }
    }
    out
}

/// Parses a SendTargets response into targets and their portals. Other keys (TargetAlias) are
/// skipped.
pub fn parse_send_targets_response(data: &[u8]) -> Result<Vec<DiscoveredTarget>, TextError> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for kv in parse_text_repeatable(data)? {
        match kv.key.as_str() {
            "TargetName" => out.push(DiscoveredTarget {
                name: kv.value,
                addresses: Vec::new(),
            }),
            "TargetAddress" => {
                let portal = TargetPortal::parse(&kv.value)?;
                out.last_mut()
                    .ok_or(TextError::OrphanTargetAddress)?
                    .addresses
                    .push(portal);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The target's answer to a full-feature-phase Text Request (RFC 7143 section 11.10):
/// SendTargets is answered with [`send_targets_response`]; declarations allowed in the full
/// feature phase need no answer; keys of other phases get `Reject`; unknown keys
/// `NotUnderstood`.
pub fn target_text_response(
    targets: &[ExportedTarget],
    data: &[u8],
    initiator: &str,
    session_type: SessionType,
    current_target: Option<&str>,
) -> Result<Vec<u8>, TextError> {
    let pairs = parse_text(data)?;
    let mut out = Vec::new();
    for KeyValue { key, value } in &pairs {
        match key.as_str() {
            "SendTargets" => out.extend(send_targets_response(
                targets,
                value,
                initiator,
                session_type,
                current_target,
            )),
            "MaxRecvDataSegmentLength" | "InitiatorAlias" => {}
            _ if value == REJECT || value == IRRELEVANT || value == NOT_UNDERSTOOD => {}
            k if super::keys::key_def(k).is_some() => encode_pair(k, REJECT, &mut out),
            k => encode_pair(k, NOT_UNDERSTOOD, &mut out),
        }
    }
    Ok(out)
}
