//! The pvd virtual-disk daemon (tapdisk) and the `pvd` command line.
//!
//! * [`nbd`]: the NBD frontend (fixed newstyle handshake, transmission phase).
//! * [`bench`]: the benchmark harness behind `pvd bench` and `pvd demo`.

pub mod nbd;
pub mod bench;
