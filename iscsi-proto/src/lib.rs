//! Sans-IO iSCSI (RFC 7143) and SCSI (SPC-4, SBC-3) codecs shared by the pvd target and initiator.
//!
//! Nothing in this crate performs I/O: callers hand in bytes and get typed PDUs back, or hand in
//! typed PDUs and get bytes out.
//!
//! * [`pdu`], [`framing`], [`digest`]: the wire format of RFC 7143 section 11 (the 48-byte BHS,
//!   every PDU type, AHS, padded data segments, CRC32C digests) and streaming framing.
//! * [`text`]: login and text negotiation (RFC 7143 sections 6, 11.12-11.13, 13), SendTargets and
//!   CHAP (RFC 1994 as profiled by RFC 7143 section 12.1.3).
//! * [`scsi`]: CDBs, status codes and sense data (SPC-4, SBC-3).

pub mod digest;
pub mod framing;
pub mod limits;
pub mod pdu;
pub mod scsi;
pub mod text;
