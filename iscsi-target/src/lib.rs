//! A lightweight iSCSI target (RFC 7143) serving files and block devices as SCSI logical units
//! (SPC-4 / SBC-3).
//!
//! * [`lu`]: the logical unit: SCSI device server, backing store, disk emulation.

pub mod lu;
