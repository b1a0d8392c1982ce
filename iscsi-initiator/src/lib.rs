//! An async iSCSI initiator (RFC 7143) on tokio.
