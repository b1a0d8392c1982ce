//! ONC RPC version 2 (RFC 5531) with XDR (RFC 4506), TCP record marking and rpcbind (RFC 1833).
//!
//! - [`xdr`]: the `XdrEncode`/`XdrDecode` traits, a bounded reader, and the
//!   [`xdr_struct!`], [`xdr_union!`], [`xdr_enum!`] macros that declare message types once.
//! - [`message`]: call and reply headers, open newtypes for every status code.
//! - [`auth`]: AUTH_NONE and AUTH_SYS.
//! - [`record`]: TCP record marking with a record-size limit.
//! - [`server`]: [`RpcServer`], async dispatch with a duplicate-request cache ([`drc`]).
//! - [`client`]: [`RpcClient`], pipelined calls with timeouts, reconnect and retransmission.
//! - [`rpcbind`]: PMAP v2 and RPCBIND v3/v4 clients and [`register_with_rpcbind`].

pub use bytes;

pub mod auth;
pub mod client;
pub mod drc;
pub mod error;
pub mod message;
pub mod record;
pub mod rpcbind;
pub mod server;
pub mod xdr;

pub use auth::{AuthFlavor, AuthSysParams, OpaqueAuth};
pub use client::{RpcAuth, RpcClient, RpcClientConfig};
pub use error::RpcError;
pub use message::{AcceptStat, AuthStat};
pub use rpcbind::{register_with_rpcbind, unregister_with_rpcbind};
pub use server::{RpcCall, RpcHandler, RpcServer, RpcServerConfig};
pub use xdr::{XdrDecode, XdrEncode, XdrError};
