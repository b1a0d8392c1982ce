//! The pvd virtual-disk daemon (tapdisk) and the `pvd` command line.
//!
//! * [`nbd`]: the NBD frontend (fixed newstyle handshake, transmission phase).
//! * [`bench`]: the benchmark harness behind `pvd bench` and `pvd demo`.
//! * [`vdisk`]: the virtual disk data path (queue, merge, striping, replication, iSCSI).
//! * [`stats`]: per-stage histograms and counters; [`daemon`]: `pvd tapdisk`.

pub mod bench;
pub mod daemon;
pub mod nbd;
pub mod stats;
pub mod vdisk;
