//! RFC 7143 sections 6 (login and text negotiation), 11.10-11.13 (text and login PDUs' text),
//! 12 (security: CHAP) and 13 (login/text keys).
//!
//! Pure text logic: Login and Text PDUs ([`crate::pdu`]) carry these texts as
//! their data segments.
//!
//! * [`kv`]: parsing and encoding `key=value\0` lists, continued texts ([`TextAccumulator`]).
//! * [`keys`]: the registry of every RFC 7143 key.
//! * [`negotiate`]: the [`Negotiator`] used by both sides and the resulting [`SessionParams`].
//! * [`login`]: stages, status codes and header fields of the login phase.
//! * [`target_login`] / [`initiator_login`]: the two login state machines.
//! * [`sendtargets`]: SendTargets discovery and TargetAddress values.
//! * [`chap`]: CHAP (RFC 1994) algorithms, values and checks.

pub mod chap;
pub mod error;
pub mod initiator_login;
pub mod keys;
pub mod kv;
pub mod login;
pub mod negotiate;
pub mod sendtargets;
pub mod target_login;

pub use chap::{ChapAlgorithm, ChapCredentials};
pub use error::{ChapError, LoginError, TextError};
pub use initiator_login::{
    InitiatorChapConfig, InitiatorConfig, InitiatorLogin, InitiatorStep, LoginOutcome, MutualChap,
};
pub use kv::{encode_text, parse_text, parse_text_repeatable, KeyValue, TextAccumulator};
pub use login::{
    LoginRequestHeader, LoginRequestParts, LoginResponseHeader, LoginResponseParts, LoginStatus,
    Stage,
};
pub use negotiate::{
    DigestKind, NegotiationPhase, Negotiator, OperationalOffers, Role, SessionParams, SessionType,
};
pub use sendtargets::{
    parse_send_targets_response, send_targets_request, send_targets_response, target_text_response,
    DiscoveredTarget, ExportedTarget, TargetPortal,
};
pub use target_login::{TargetChapConfig, TargetConfig, TargetLogin, TargetOutcome, TargetStep};
