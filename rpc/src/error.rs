//! RFC 5531 sections 9 and 11: what can go wrong with a remote procedure call.

use crate::message::{AcceptStat, AuthStat, MessageError};
use crate::record::RecordError;
use crate::xdr::XdrError;

/// Failure of an RPC call, one variant per rule or reply that stopped it.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Arguments or results broke an XDR rule.
    #[error("XDR: {0}")]
    Xdr(#[from] XdrError),
    /// The reply header is malformed (RFC 5531 section 9).
    #[error("{0}")]
    Message(#[from] MessageError),
    /// The record layer failed (RFC 5531 section 11).
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("RPC I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Connecting to the server failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// No reply within the per-call timeout after every retry.
    #[error("RPC call timed out (program {prog}, version {vers}, procedure {proc_}) after {attempts} attempts")]
    Timeout {
        prog: u32,
        vers: u32,
        proc_: u32,
        attempts: u32,
    },
    /// The connection broke and every retry failed.
    #[error("RPC connection lost and {attempts} attempts failed")]
    ConnectionLost { attempts: u32 },
    /// The client was shut down.
    #[error("RPC client closed")]
    Closed,
    /// PROG_UNAVAIL: the server does not export the program.
    #[error("program unavailable (PROG_UNAVAIL)")]
    ProgUnavail,
    /// PROG_MISMATCH: the server supports versions `low..=high` only.
    #[error("program version mismatch (PROG_MISMATCH): server supports {low}..={high}")]
    ProgMismatch { low: u32, high: u32 },
    /// PROC_UNAVAIL: no such procedure.
    #[error("procedure unavailable (PROC_UNAVAIL)")]
    ProcUnavail,
    /// GARBAGE_ARGS: the server could not decode the arguments.
    #[error("server could not decode the arguments (GARBAGE_ARGS)")]
    GarbageArgs,
    /// SYSTEM_ERR: the server failed (e.g. out of memory).
    #[error("server system error (SYSTEM_ERR)")]
    SystemErr,
    /// Another `accept_stat`.
    #[error("call not executed: accept_stat {0}")]
    Accept(AcceptStat),
    /// MSG_DENIED / RPC_MISMATCH: the server speaks RPC versions `low..=high`.
    #[error("RPC version mismatch (RPC_MISMATCH): server supports {low}..={high}")]
    RpcMismatch { low: u32, high: u32 },
    /// MSG_DENIED / AUTH_ERROR.
    #[error("authentication refused (AUTH_ERROR {0})")]
    AuthError(AuthStat),
    /// A reply to our xid that is a CALL or otherwise not a reply.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// An rpcbind answer that is not a usable address.
    #[error("bad universal address {0:?} (RFC 1833 section 2.2)")]
    BadUniversalAddress(String),
    /// rpcbind refused a SET/UNSET or knows no such program.
    #[error("rpcbind: {0}")]
    Rpcbind(String),
}
