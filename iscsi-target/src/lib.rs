//! A lightweight iSCSI target (RFC 7143) serving files and block devices as SCSI logical units
//! (SPC-4 / SBC-3).
//!
//! * [`server`]: [`Target::bind`] starts a target, [`TargetHandle`] stops it.
//! * [`config`]: targets, LUNs, ACLs and CHAP ([`ServerConfig`], also the `--config` JSON).
//! * [`cli`]: `pvd target`.
//! * [`lu`]: the logical unit: SCSI device server, backing store, disk emulation.
//! * [`busy_poll`]: polling the sockets for a while after activity (also used by the tapdisk).
//! * connection, session, writer, data-out collection, task management: the transport.

pub mod busy_poll;
pub mod cli;
pub mod config;
mod connection;
mod data_out;
mod io_track;
pub mod lu;
mod pdu_reader;
pub mod register;
mod scsi_task;
pub mod server;
mod session;
mod task_mgmt;
pub mod tcp_congestion;
mod writer;

pub use config::{ChapSpec, LunSpec, ServerConfig, TargetSpec};
pub use server::{Target, TargetError, TargetHandle};
