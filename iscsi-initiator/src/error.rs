//! Errors of the initiator: SCSI status and sense decoded into typed variants, plus transport,
//! login and protocol failures.

use iscsi_proto::pdu::PduError;
use iscsi_proto::pdu::ScsiStatus;
use iscsi_proto::scsi::SenseKey;
use iscsi_proto::text::{LoginError, TextError};
use thiserror::Error;

/// Everything that can go wrong between a caller and a LUN.
#[derive(Debug, Error, Clone)]
pub enum IscsiError {
    /// The command ended with CHECK CONDITION; the sense data says why (SPC-4 section 4.5).
    #[error("CHECK CONDITION: sense key {sense_key:?}, ASC {asc:#04x}, ASCQ {ascq:#04x}")]
    CheckCondition {
        sense_key: SenseKey,
        asc: u8,
        ascq: u8,
    },
    /// CHECK CONDITION without usable sense data.
    #[error("CHECK CONDITION without decodable sense data")]
    CheckConditionNoSense,
    /// RESERVATION CONFLICT (SPC-4 section 5.13).
    #[error("RESERVATION CONFLICT")]
    ReservationConflict,
    /// BUSY, still busy after retries until the deadline.
    #[error("target BUSY")]
    Busy,
    /// TASK SET FULL, still full after retries until the deadline.
    #[error("TASK SET FULL")]
    TaskSetFull,
    /// TASK ABORTED status, or the task was aborted by task management.
    #[error("task aborted")]
    TaskAborted,
    /// Any other SCSI status.
    #[error("SCSI status {0:?}")]
    Status(ScsiStatus),
    /// The iSCSI Response field was not "command completed at target".
    #[error("iSCSI response {0:#04x}: target failure")]
    TargetFailure(u8),
    /// A task management function was refused.
    #[error("task management function answered {0}")]
    TaskManagement(String),
    /// Connecting or the socket failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// The connection dropped and was not replaced within the replacement timeout.
    #[error("connection lost and not re-established within {0:?}")]
    ReplacementTimeout(std::time::Duration),
    /// Login failed (refused, authentication, negotiation).
    #[error("login failed: {0}")]
    Login(String),
    /// The peer broke a rule of RFC 7143.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Text negotiation or SendTargets parsing failed.
    #[error("text error: {0}")]
    Text(String),
    /// A caller-side mistake (e.g. a write whose length is not a multiple of the block size).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A timeout elapsed (connect, login, NOP).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The session was closed by logout or drop.
    #[error("session closed")]
    Closed,
    /// Response data could not be decoded.
    #[error("bad response data: {0}")]
    BadData(String),
}

impl From<std::io::Error> for IscsiError {
    fn from(e: std::io::Error) -> Self {
        IscsiError::Io(e.to_string())
    }
}

impl From<PduError> for IscsiError {
    fn from(e: PduError) -> Self {
        IscsiError::Protocol(e.to_string())
    }
}

impl From<LoginError> for IscsiError {
    fn from(e: LoginError) -> Self {
        IscsiError::Login(e.to_string())
    }
}

impl From<TextError> for IscsiError {
    fn from(e: TextError) -> Self {
        IscsiError::Text(e.to_string())
    }
}

impl IscsiError {
    /// Whether the error is a transport failure that reconnecting may cure.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            IscsiError::Io(_) | IscsiError::Timeout(_) | IscsiError::Protocol(_)
        )
    }
}

/// Result alias.
pub type Result<T, E = IscsiError> = std::result::Result<T, E>;
