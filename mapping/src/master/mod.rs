//! The master (DESIGN.md "Control path"): hands out extents with an allocation lock each, off
//! the data path. [`state`] is the pure state machine, [`journal`] makes it durable, [`proto`]
//! is its ONC RPC program (`mapping/master.x`), [`service`] serves it and [`client`] calls it.

pub mod client;
pub mod journal;
pub mod proto;
pub mod service;
pub mod state;

pub use client::{register_luns, register_luns_with, ClientError, MasterClient, RegisterOptions};
pub use journal::{Failpoint, ReplayStats, Store, StoreError};
pub use proto::{PVD_MASTER_PROG, PVD_MASTER_V1};
pub use service::{MasterOptions, MasterService};
pub use state::{Allocation, MasterError, MasterState, Record, SlotRef, Totals, VdiskId};
