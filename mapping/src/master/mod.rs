//! The master (DESIGN.md "Control path"): hands out extents with an allocation lock each, off
//! the data path. [`state`] is the pure state machine, [`journal`] makes it durable.

pub mod journal;
pub mod state;

pub use journal::{Failpoint, ReplayStats, Store, StoreError};
pub use state::{Allocation, MasterError, MasterState, Record, SlotRef, Totals, VdiskId};
