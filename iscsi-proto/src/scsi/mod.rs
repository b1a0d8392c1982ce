//! SPC-4 / SBC-3 / SAM-5: SCSI command descriptor blocks, status, sense data and the parameter
//! data a block device exchanges, sans-IO.
//!
//! * [`status`]: [`ScsiStatus`], [`SenseKey`], [`Asc`] code spaces.
//! * [`sense`]: fixed and descriptor format sense data ([`Sense`]).
//! * [`opcode`]: [`Opcode`] and service actions.
//! * [`cdb`]: typed CDB decoding ([`Cdb::parse`]).
//! * [`build`]: CDB builders for the initiator side.
//! * [`inquiry`], [`capacity`], [`luns`]: parameter data encoders and decoders.

pub mod build;
pub mod capacity;
pub mod cdb;
pub mod inquiry;
pub mod luns;
pub mod opcode;
pub mod sense;
pub mod status;

pub use cdb::{BlockRange, Cdb, CdbError, PageControl};
pub use opcode::Opcode;
pub use sense::{FieldPointer, Sense, SenseError, SenseFormat};
pub use status::{Asc, ScsiStatus, SenseKey};
