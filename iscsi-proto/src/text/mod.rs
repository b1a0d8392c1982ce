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
//!
//! A login, both ends in memory (a target feeds each Login Request's fields and data segment to
//! [`TargetLogin::step`]; an initiator sends what [`InitiatorLogin`] produces):
//!
//! ```
//! use iscsi_proto::text::*;
//! use std::sync::Arc;
//!
//! let portal = TargetPortal::new("127.0.0.1", 3260, 1);
//! let config = Arc::new(TargetConfig::new(vec![ExportedTarget::new("iqn.2026-01.org.pvd:d", vec![portal])]));
//! let mut target = TargetLogin::new(config, 1 /* TSIH for the new session */);
//! let mut initiator =
//!     InitiatorLogin::new(InitiatorConfig::normal("iqn.2026-01.org.pvd:i", "iqn.2026-01.org.pvd:d", [0x80, 0, 0, 0, 0, 1]));
//! let mut request = initiator.start();
//! let outcome = loop {
//!     let step = target.step(&request.header, &request.text);
//!     match initiator.step(&step.response.header, &step.response.text).unwrap() {
//!         InitiatorStep::Send(next) => request = next,
//!         InitiatorStep::Complete(outcome) => break outcome,
//!     }
//! };
//! assert_eq!(outcome.tsih, 1);
//! assert_eq!(outcome.params, {
//!     let mut p = target.params().clone();
//!     // Each side records its own receive limit and the peer's as its send limit.
//!     std::mem::swap(&mut p.max_recv_data_segment_length, &mut p.max_send_data_segment_length);
//!     p
//! });
//! ```

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
