//! An async iSCSI initiator (RFC 7143) on tokio.
//!
//! * [`discover`]: SendTargets discovery.
//! * [`Session::connect`]: login with full negotiation, CHAP (one-way and mutual), digests;
//!   a clonable [`Session`] that pipelines commands up to the target's CmdSN window, sends
//!   immediate and unsolicited data, answers R2Ts, keeps the connection alive with NOP-Outs and
//!   reconnects (session reinstatement) when it drops, reissuing unfinished commands.
//! * Convenience SCSI calls on [`Session`]: `inquiry`, `read_capacity`, `read`, `write`,
//!   `write_segments`, `flush`, `unmap`, `write_same`, `compare_and_write`, `report_luns`,
//!   `test_unit_ready`; any CDB through [`Session::execute`].
//! * [`cli`]: the `pvd iscsi` command.

pub mod cli;
mod commands;
pub mod config;
mod discovery;
pub mod error;
mod login;
mod reader;
mod session;
pub mod splice;
mod task;
mod writer;

pub use commands::{Capacity, PipedRead};
pub use config::{ChapSecret, SessionConfig};
pub use discovery::discover;
pub use error::{IscsiError, Result};
pub use iscsi_proto::text::DiscoveredTarget;
pub use session::{ScsiResult, Session};
pub use splice::SplicePipe;
