//! RFC 7143 sections 3.2.2 and 4.2: the initiator's bookkeeping of outstanding tasks, keyed by
//! Initiator Task Tag, and what each one is waiting for.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{Lun, ScsiStatus, TmfResponse};
use tokio::sync::oneshot;

use crate::error::IscsiError;
use crate::splice::SplicePipe;

/// A SCSI command as the session keeps it until it completes (and reissues it after a
/// reconnect).
#[derive(Debug, Clone)]
pub(crate) struct ScsiRequest {
    pub lun: Lun,
    pub cdb: [u8; 16],
    /// Expected Data-In bytes.
    pub read_len: u32,
    /// Data-Out payload, as slices of the caller's buffers.
    pub write: Option<Arc<WriteData>>,
}

/// A write payload made of several buffers.
#[derive(Debug)]
pub(crate) struct WriteData {
    pub segments: Vec<Bytes>,
    pub len: usize,
}

impl WriteData {
    pub fn new(segments: Vec<Bytes>) -> WriteData {
        let len = segments.iter().map(Bytes::len).sum();
        WriteData { segments, len }
    }

    /// Appends the slices covering `[offset, offset + len)` to `out` (no copy).
    pub fn slice_into(&self, mut offset: usize, mut len: usize, out: &mut Vec<Bytes>) {
        for s in &self.segments {
            if len == 0 {
                break;
            }
            if offset >= s.len() {
                offset -= s.len();
                continue;
            }
            let take = (s.len() - offset).min(len);
            out.push(s.slice(offset..offset + take));
            len -= take;
            offset = 0;
        }
    }
}

/// How a task ended, as the reader reports it.
#[derive(Debug)]
pub(crate) enum Reply {
    Scsi(ScsiOutcome),
    Tmf(TmfResponse),
    Nop,
    Logout,
    /// The connection dropped before an answer: send the task again once a new connection is
    /// logged in.
    Reissue,
}

/// A pipe a READ's payload is spliced into, and how much of it is there.
#[derive(Debug)]
pub(crate) struct Sink {
    pub pipe: Arc<SplicePipe>,
    pub spliced: usize,
}

/// Status, sense and data of a completed SCSI command.
#[derive(Debug)]
pub(crate) struct ScsiOutcome {
    pub response: u8,
    pub status: ScsiStatus,
    pub sense: Bytes,
    pub data: Bytes,
    /// Data-In bytes that went into the task's pipe instead of `data` (then `data` is empty).
    pub piped: usize,
    /// Residual underflow reported by the target (bytes not transferred).
    pub underflow: Option<u32>,
}

pub(crate) type Done = oneshot::Sender<Result<Reply, IscsiError>>;

/// What an outstanding ITT is.
#[derive(Debug)]
pub(crate) enum TaskKind {
    Scsi {
        request: ScsiRequest,
        /// Data-In lands here, in order; None while the reader is filling it.
        read_buf: Option<BytesMut>,
        /// Where in-order Data-In is spliced instead (None while the reader uses it, and
        /// for good once it fell back to `read_buf`).
        sink: Option<Sink>,
    },
    Nop,
    Tmf,
    Logout,
}

/// One outstanding task.
#[derive(Debug)]
pub(crate) struct Task {
    pub kind: TaskKind,
    pub done: Option<Done>,
    /// Connection generation the task was sent on.
    pub generation: u64,
    /// The CmdSN the task was sent with (RefCmdSN of an ABORT TASK).
    pub cmd_sn: u32,
}

impl Task {
    pub fn complete(&mut self, r: Result<Reply, IscsiError>) {
        if let Some(d) = self.done.take() {
            let _ = d.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cross_segments_without_copy() {
        let a = Bytes::from_static(b"0123");
        let b = Bytes::from_static(b"456789");
        let w = WriteData::new(vec![a.clone(), b.clone()]);
        assert_eq!(w.len, 10);
        let mut out = Vec::new();
        w.slice_into(2, 5, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0][..], b"23");
        assert_eq!(&out[1][..], b"456");
        assert_eq!(out[0].as_ptr(), a[2..].as_ptr(), "a slice, not a copy");
        let mut out = Vec::new();
        w.slice_into(4, 6, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..], b"456789");
        let mut out = Vec::new();
        w.slice_into(10, 0, &mut out);
        assert!(out.is_empty());
    }
}
