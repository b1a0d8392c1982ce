//! RFC 5531 section 9: the RPC message protocol (`rpc_msg`, `call_body`, `reply_body`).
//!
//! Arguments and results follow the headers and are opaque here: [`parse_message`] returns the
//! header and the remaining bytes; [`encode_call`] and [`encode_reply`] append them.

use crate::auth::OpaqueAuth;
use crate::xdr::{XdrDecode, XdrEncode, XdrError, XdrReader};
use bytes::{BufMut, Bytes, BytesMut};

/// The only RPC protocol version (RFC 5531 section 9: `rpcvers` must be 2).
pub const RPC_VERSION: u32 = 2;

macro_rules! open_code {
    ($(#[$m:meta])* $name:ident { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u32);
        impl $name {
            $( $(#[$cm])* pub const $c: $name = $name($v); )*
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $( if *self == Self::$c { return f.write_str(stringify!($c)); } )*
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

open_code!(
    /// `enum msg_type` (RFC 5531 section 9).
    MsgType { CALL = 0, REPLY = 1 }
);
open_code!(
    /// `enum reply_stat` (RFC 5531 section 9).
    ReplyStat { MSG_ACCEPTED = 0, MSG_DENIED = 1 }
);
open_code!(
    /// `enum accept_stat` (RFC 5531 section 9).
    AcceptStat {
        SUCCESS = 0,
        PROG_UNAVAIL = 1,
        PROG_MISMATCH = 2,
        PROC_UNAVAIL = 3,
        GARBAGE_ARGS = 4,
        SYSTEM_ERR = 5,
    }
);
open_code!(
    /// `enum reject_stat` (RFC 5531 section 9).
    RejectStat { RPC_MISMATCH = 0, AUTH_ERROR = 1 }
);
open_code!(
    /// `enum auth_stat` (RFC 5531 section 9).
    AuthStat {
        AUTH_OK = 0,
        AUTH_BADCRED = 1,
        AUTH_REJECTEDCRED = 2,
        AUTH_BADVERF = 3,
        AUTH_REJECTEDVERF = 4,
        AUTH_TOOWEAK = 5,
        AUTH_INVALIDRESP = 6,
        AUTH_FAILED = 7,
        AUTH_KERB_GENERIC = 8,
        AUTH_TIMEEXPIRE = 9,
        AUTH_TKT_FILE = 10,
        AUTH_DECODE = 11,
        AUTH_NET_ADDR = 12,
        RPCSEC_GSS_CREDPROBLEM = 13,
        RPCSEC_GSS_CTXPROBLEM = 14,
    }
);

/// `call_body` plus the xid (RFC 5531 section 9); the procedure's arguments follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: OpaqueAuth,
    pub verf: OpaqueAuth,
}

impl XdrEncode for CallHeader {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        buf.put_u32(self.xid);
        buf.put_u32(MsgType::CALL.0);
        buf.put_u32(self.rpcvers);
        buf.put_u32(self.prog);
        buf.put_u32(self.vers);
        buf.put_u32(self.proc_);
        self.cred.encode(buf);
        self.verf.encode(buf);
    }
    fn encoded_len(&self) -> usize {
        24 + self.cred.encoded_len() + self.verf.encoded_len()
    }
}

/// `accepted_reply.reply_data` (RFC 5531 section 9): the outcome of an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptedStatus {
    /// SUCCESS; the results follow.
    Success,
    ProgUnavail,
    /// PROG_MISMATCH with the lowest and highest supported versions.
    ProgMismatch {
        low: u32,
        high: u32,
    },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    /// Any other `accept_stat` (no data known to follow).
    Other(AcceptStat),
}

impl AcceptedStatus {
    /// The `accept_stat` on the wire.
    pub fn stat(&self) -> AcceptStat {
        match self {
            AcceptedStatus::Success => AcceptStat::SUCCESS,
            AcceptedStatus::ProgUnavail => AcceptStat::PROG_UNAVAIL,
            AcceptedStatus::ProgMismatch { .. } => AcceptStat::PROG_MISMATCH,
            AcceptedStatus::ProcUnavail => AcceptStat::PROC_UNAVAIL,
            AcceptedStatus::GarbageArgs => AcceptStat::GARBAGE_ARGS,
            AcceptedStatus::SystemErr => AcceptStat::SYSTEM_ERR,
            AcceptedStatus::Other(s) => *s,
        }
    }

    /// The status for an `accept_stat` without extra data.
    pub fn from_stat(stat: AcceptStat) -> AcceptedStatus {
        match stat {
            AcceptStat::SUCCESS => AcceptedStatus::Success,
            AcceptStat::PROG_UNAVAIL => AcceptedStatus::ProgUnavail,
            AcceptStat::PROC_UNAVAIL => AcceptedStatus::ProcUnavail,
            AcceptStat::GARBAGE_ARGS => AcceptedStatus::GarbageArgs,
            AcceptStat::SYSTEM_ERR => AcceptedStatus::SystemErr,
            other => AcceptedStatus::Other(other),
        }
    }
}

/// `rejected_reply` (RFC 5531 section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectedReply {
    /// RPC_MISMATCH with the lowest and highest supported RPC versions.
    RpcMismatch { low: u32, high: u32 },
    /// AUTH_ERROR with the reason.
    AuthError(AuthStat),
}

/// `reply_body` (RFC 5531 section 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Accepted {
        verf: OpaqueAuth,
        status: AcceptedStatus,
    },
    Denied(RejectedReply),
}

impl XdrEncode for ReplyBody {
    fn encode<B: BufMut>(&self, buf: &mut B) {
        match self {
            ReplyBody::Accepted { verf, status } => {
                buf.put_u32(ReplyStat::MSG_ACCEPTED.0);
                verf.encode(buf);
                buf.put_u32(status.stat().0);
                if let AcceptedStatus::ProgMismatch { low, high } = status {
                    buf.put_u32(*low);
                    buf.put_u32(*high);
                }
            }
            ReplyBody::Denied(rej) => {
                buf.put_u32(ReplyStat::MSG_DENIED.0);
                match rej {
                    RejectedReply::RpcMismatch { low, high } => {
                        buf.put_u32(RejectStat::RPC_MISMATCH.0);
                        buf.put_u32(*low);
                        buf.put_u32(*high);
                    }
                    RejectedReply::AuthError(stat) => {
                        buf.put_u32(RejectStat::AUTH_ERROR.0);
                        buf.put_u32(stat.0);
                    }
                }
            }
        }
    }
    fn encoded_len(&self) -> usize {
        match self {
            ReplyBody::Accepted { verf, status } => {
                8 + verf.encoded_len()
                    + if matches!(status, AcceptedStatus::ProgMismatch { .. }) {
                        8
                    } else {
                        0
                    }
            }
            ReplyBody::Denied(RejectedReply::RpcMismatch { .. }) => 16,
            ReplyBody::Denied(RejectedReply::AuthError(_)) => 12,
        }
    }
}

/// An RPC message header: a call or a reply, without arguments or results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcMessage {
    Call(CallHeader),
    Reply { xid: u32, body: ReplyBody },
}

impl RpcMessage {
    /// The transaction id.
    pub fn xid(&self) -> u32 {
        match self {
            RpcMessage::Call(c) => c.xid,
            RpcMessage::Reply { xid, .. } => *xid,
        }
    }
}

/// Errors of [`parse_message`] besides malformed XDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed RPC message: {0}")]
    Xdr(#[from] XdrError),
    /// `msg_type` neither CALL nor REPLY (RFC 5531 section 9).
    #[error("unknown RPC msg_type {0}")]
    UnknownMsgType(u32),
    /// `reply_stat` neither MSG_ACCEPTED nor MSG_DENIED.
    #[error("unknown RPC reply_stat {0}")]
    UnknownReplyStat(u32),
    /// `reject_stat` neither RPC_MISMATCH nor AUTH_ERROR.
    #[error("unknown RPC reject_stat {0}")]
    UnknownRejectStat(u32),
}

/// Parses the header of one RPC message (a whole record) and returns it with the bytes that
/// follow it: the call's arguments, or a successful reply's results (empty otherwise).
pub fn parse_message(record: &Bytes) -> Result<(RpcMessage, Bytes), MessageError> {
    let mut r = XdrReader::new(record);
    let xid = r.get_u32()?;
    let mtype = r.get_u32()?;
    let msg = match MsgType(mtype) {
        MsgType::CALL => {
            let rpcvers = r.get_u32()?;
            let prog = r.get_u32()?;
            let vers = r.get_u32()?;
            let proc_ = r.get_u32()?;
            let cred = OpaqueAuth::decode(&mut r)?;
            let verf = OpaqueAuth::decode(&mut r)?;
            RpcMessage::Call(CallHeader {
                xid,
                rpcvers,
                prog,
                vers,
                proc_,
                cred,
                verf,
            })
        }
        MsgType::REPLY => {
            let body = match ReplyStat(r.get_u32()?) {
                ReplyStat::MSG_ACCEPTED => {
                    let verf = OpaqueAuth::decode(&mut r)?;
                    let stat = AcceptStat(r.get_u32()?);
                    let status = if stat == AcceptStat::PROG_MISMATCH {
                        AcceptedStatus::ProgMismatch {
                            low: r.get_u32()?,
                            high: r.get_u32()?,
                        }
                    } else {
                        AcceptedStatus::from_stat(stat)
                    };
                    ReplyBody::Accepted { verf, status }
                }
                ReplyStat::MSG_DENIED => match RejectStat(r.get_u32()?) {
                    RejectStat::RPC_MISMATCH => ReplyBody::Denied(RejectedReply::RpcMismatch {
                        low: r.get_u32()?,
                        high: r.get_u32()?,
                    }),
                    RejectStat::AUTH_ERROR => {
                        ReplyBody::Denied(RejectedReply::AuthError(AuthStat(r.get_u32()?)))
                    }
                    RejectStat(other) => return Err(MessageError::UnknownRejectStat(other)),
                },
                ReplyStat(other) => return Err(MessageError::UnknownReplyStat(other)),
            };
            RpcMessage::Reply { xid, body }
        }
        MsgType(other) => return Err(MessageError::UnknownMsgType(other)),
    };
    let consumed = record.len() - r.remaining();
    Ok((msg, record.slice(consumed..)))
}

/// A whole CALL message: header then the already-encoded arguments.
pub fn encode_call(header: &CallHeader, args: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(header.encoded_len() + args.len());
    header.encode(&mut buf);
    buf.put_slice(args);
    buf.freeze()
}

/// A whole REPLY message: xid, body, then the already-encoded results (only after SUCCESS).
pub fn encode_reply(xid: u32, body: &ReplyBody, results: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + body.encoded_len() + results.len());
    buf.put_u32(xid);
    buf.put_u32(MsgType::REPLY.0);
    body.encode(&mut buf);
    buf.put_slice(results);
    buf.freeze()
}

/// A SUCCESS reply with AUTH_NONE verifier carrying `results`.
pub fn encode_success(xid: u32, results: &[u8]) -> Bytes {
    encode_reply(
        xid,
        &ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status: AcceptedStatus::Success,
        },
        results,
    )
}
