//! The pvd virtual-disk daemon (tapdisk) and the `pvd` command line.
//!
//! * [`nbd`]: the NBD frontend (fixed newstyle handshake, transmission phase).

pub mod nbd;
