//! RFC 7143 sections 4.2.2 (StatSN, ExpCmdSN, MaxCmdSN) and 11.2 (PDU layout): the sending half
//! of a full-feature-phase connection.
//!
//! Every task of a session hands its finished PDUs to one writer task through a channel. The
//! writer stamps the sequence numbers at the moment a PDU goes out (so StatSN is strictly
//! in sending order whatever order commands finish in), drains everything queued, and writes
//! the batch with vectored writes: headers, padding and digests are encoded into one buffer,
//! payloads are the `Bytes` the logical unit produced, never copied (small ones excepted).

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::pdu::{trailer, Pdu, RESERVED_TAG};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Payloads up to this size are copied next to their header instead of taking an iovec.
const INLINE_DATA_MAX: usize = 2048;
/// Most buffers in one vectored write batch (IOV_MAX is 1024 on Linux).
const MAX_BATCH_CHUNKS: usize = 512;
/// Most bytes gathered into one batch before it is written.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// What the tasks of a connection send to its writer.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Pdu(Pdu),
    /// Answered once everything queued before it has been written.
    Barrier(oneshot::Sender<()>),
}

/// Command numbering shared between the reader (which accepts commands), the tasks (which
/// complete them) and the writer (which reports the window in every PDU).
#[derive(Debug)]
pub(crate) struct CmdWindow {
    /// The next CmdSN expected.
    pub exp_cmd_sn: AtomicU32,
    /// Non-immediate commands accepted and not yet answered.
    pub in_flight: AtomicU32,
    /// The highest MaxCmdSN ever reported (never decreases).
    pub max_cmd_sn: AtomicU32,
    pub window: u32,
}

/// `a < b` in serial number arithmetic (RFC 1982, RFC 7143 section 4.2.2.1).
pub(crate) fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < (1 << 31)
}

/// `a <= b` in serial number arithmetic.
pub(crate) fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

impl CmdWindow {
    pub(crate) fn new(exp_cmd_sn: u32, window: u32) -> CmdWindow {
        CmdWindow {
            exp_cmd_sn: AtomicU32::new(exp_cmd_sn),
            in_flight: AtomicU32::new(0),
            max_cmd_sn: AtomicU32::new(exp_cmd_sn.wrapping_add(window).wrapping_sub(1)),
            window,
        }
    }

    /// ExpCmdSN and MaxCmdSN to report now.
    pub(crate) fn current(&self) -> (u32, u32) {
        let exp = self.exp_cmd_sn.load(Ordering::Acquire);
        let busy = self.in_flight.load(Ordering::Acquire).min(self.window);
        // An empty window is reported as MaxCmdSN = ExpCmdSN - 1.
        let want = exp.wrapping_add(self.window - busy).wrapping_sub(1);
        let mut max = self.max_cmd_sn.load(Ordering::Acquire);
        while sn_lt(max, want) {
            match self.max_cmd_sn.compare_exchange_weak(
                max,
                want,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    max = want;
                    break;
                }
                Err(m) => max = m,
            }
        }
        (exp, max)
    }

    /// Whether a non-immediate command numbered `cmd_sn` is inside the window.
    pub(crate) fn accepts(&self, cmd_sn: u32) -> bool {
        let exp = self.exp_cmd_sn.load(Ordering::Acquire);
        let max = self.max_cmd_sn.load(Ordering::Acquire);
        sn_le(exp, cmd_sn) && sn_le(cmd_sn, max)
    }
}

/// Fills StatSN, ExpCmdSN and MaxCmdSN of `pdu`; advances `stat_sn` for status-bearing PDUs.
fn stamp(pdu: &mut Pdu, stat_sn: &mut u32, window: &CmdWindow) {
    let (exp, max) = window.current();
    let mut take = || {
        let s = *stat_sn;
        *stat_sn = stat_sn.wrapping_add(1);
        s
    };
    match pdu {
        Pdu::ScsiResponse(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::DataIn(p) => {
            p.stat_sn = if p.status.is_some() { take() } else { 0 };
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::R2t(p) => {
            p.stat_sn = *stat_sn;
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::NopIn(p) => {
            // A ping of our own (ITT reserved) does not advance StatSN (RFC 7143 11.19).
            p.stat_sn = if p.itt == RESERVED_TAG {
                *stat_sn
            } else {
                take()
            };
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::TaskMgmtResponse(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::TextResponse(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::LogoutResponse(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::Reject(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        Pdu::AsyncMessage(p) => {
            p.stat_sn = take();
            p.exp_cmd_sn = exp;
            p.max_cmd_sn = max;
        }
        _ => {}
    }
}

/// Buffers of one batch: headers (and small payloads) accumulate in `inline`, big payloads
/// become chunks of their own.
struct Batch {
    inline: BytesMut,
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            inline: BytesMut::with_capacity(64 * 1024),
            chunks: Vec::with_capacity(MAX_BATCH_CHUNKS),
            bytes: 0,
        }
    }

    fn push(&mut self, pdu: &Pdu, digests: DigestConfig) {
        let before = self.inline.len();
        pdu.encode_header(digests, &mut self.inline);
        self.bytes += self.inline.len() - before;
        let Some(data) = pdu.data().filter(|d| !d.is_empty()) else {
            return;
        };
        if data.len() <= INLINE_DATA_MAX {
            self.inline.extend_from_slice(data);
        } else {
            if !self.inline.is_empty() {
                self.chunks.push(self.inline.split().freeze());
            }
            self.chunks.push(data.clone());
        }
        let (t, n) = trailer(data, digests);
        self.inline.extend_from_slice(&t[..n]);
        self.bytes += data.len() + n;
    }

    fn full(&self) -> bool {
        self.chunks.len() + 2 >= MAX_BATCH_CHUNKS || self.bytes >= MAX_BATCH_BYTES
    }

    fn take(&mut self) -> Vec<Bytes> {
        if !self.inline.is_empty() {
            self.chunks.push(self.inline.split().freeze());
        }
        if self.inline.capacity() < 16 * 1024 {
            self.inline.reserve(64 * 1024);
        }
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }
}

/// Writes every buffer of `chunks` with as few system calls as the socket allows.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    chunks: &mut [Bytes],
) -> io::Result<()> {
    let mut first = 0;
    let mut skip = 0usize;
    while first < chunks.len() {
        let n = {
            let slices: Vec<IoSlice<'_>> = chunks[first..]
                .iter()
                .enumerate()
                .map(|(i, c)| IoSlice::new(if i == 0 { &c[skip..] } else { &c[..] }))
                .collect();
            w.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed"));
        }
        let mut left = n;
        while left > 0 && first < chunks.len() {
            let avail = chunks[first].len() - skip;
            if left >= avail {
                left -= avail;
                first += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
        while first < chunks.len() && chunks[first].len() == skip {
            first += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// The writer task: runs until every sender is gone or the socket fails. `stat_sn` is the next
/// StatSN to assign.
pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    window: Arc<CmdWindow>,
    digests: DigestConfig,
    mut stat_sn: u32,
) -> io::Result<()> {
    let mut batch = Batch::new();
    let mut barriers: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Outgoing::Pdu(mut pdu) => {
                    stamp(&mut pdu, &mut stat_sn, &window);
                    batch.push(&pdu, digests);
                }
                Outgoing::Barrier(b) => barriers.push(b),
            }
            if batch.full() {
                break;
            }
            next = rx.try_recv().ok();
        }
        let mut chunks = batch.take();
        if !chunks.is_empty() {
            write_all_vectored(&mut w, &mut chunks).await?;
        }
        for b in barriers.drain(..) {
            let _ = b.send(());
        }
    }
    w.flush().await?;
    let _ = w.shutdown().await;
    Ok(())
}
