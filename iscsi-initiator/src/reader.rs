//! RFC 7143 sections 11.7-11.9, 11.19 and 11.20: the receiving half of a connection. Reads PDUs,
//! matches them to tasks by ITT, places Data-In payloads straight into the task's buffer (read
//! from the socket into it when the data segment is not yet buffered), answers R2Ts with
//! Data-Out and target NOP-Ins with NOP-Outs, and tracks StatSN / ExpCmdSN / MaxCmdSN.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use iscsi_proto::digest::{self, DigestConfig};
use iscsi_proto::limits::{pad4, BHS_LEN, MAX_DATA_SEGMENT_HARD_CAP};
use iscsi_proto::pdu::{
    data_wire_len, AsyncEvent, Bhs, DataIn, NopOut, Opcode, Pdu, R2t, ScsiResponse, ScsiStatus,
    RESERVED_TAG,
};
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::tcp::OwnedReadHalf;

use crate::error::{IscsiError, Result};
use crate::session::{data_out_pdus, Inner};
use crate::splice::{readable_bytes, SplicePipe};
use crate::task::{Reply, ScsiOutcome, TaskKind};
use crate::writer::{OutPdu, OutTx};

/// Minimum read size into the receive buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Remaining payloads of at least this size are followed by only their trailer and the next
/// header in the same read; smaller ones by a whole [`READ_CHUNK`].
const DIRECT_TAIL_THRESHOLD: usize = 16 * 1024;

/// Reads the rest of a payload straight into `rb` (until it holds `end` bytes) with `readv`,
/// whose second buffer takes up to `tail` bytes that follow into `buf`.
async fn read_payload_direct(
    sock: &OwnedReadHalf,
    rb: &mut BytesMut,
    end: usize,
    buf: &mut BytesMut,
    tail: usize,
) -> Result<()> {
    let stream = sock.as_ref();
    rb.reserve(end - rb.len());
    buf.reserve(tail);
    while rb.len() < end {
        let want = end - rb.len();
        let n = loop {
            stream.readable().await?;
            let r = stream.try_io(Interest::READABLE, || {
                let head = rb.spare_capacity_mut();
                let rest = buf.spare_capacity_mut();
                let iov = [
                    libc::iovec {
                        iov_base: head.as_mut_ptr().cast(),
                        iov_len: want.min(head.len()),
                    },
                    libc::iovec {
                        iov_base: rest.as_mut_ptr().cast(),
                        iov_len: tail.min(rest.len()),
                    },
                ];
                // SAFETY: both iovecs lie inside the spare capacity of live buffers that
                // nothing else touches during the call; the kernel only writes to them.
                let n = unsafe { libc::readv(stream.as_raw_fd(), iov.as_ptr(), 2) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Err(IscsiError::Io("connection closed by the target".into()));
        }
        let into_rb = n.min(want);
        // SAFETY: the kernel initialised the first `n` bytes across the two iovecs, which
        // start at the buffers' current lengths and are no longer than their spare capacity.
        unsafe {
            rb.set_len(rb.len() + into_rb);
            buf.set_len(buf.len() + (n - into_rb));
        }
    }
    Ok(())
}

/// Reads until the buffer holds at least `n` bytes.
async fn fill(sock: &mut OwnedReadHalf, buf: &mut BytesMut, n: usize) -> Result<()> {
    while buf.len() < n {
        buf.reserve((n - buf.len()).max(READ_CHUNK));
        if sock.read_buf(buf).await? == 0 {
            return Err(IscsiError::Io("connection closed by the target".into()));
        }
    }
    Ok(())
}

/// Reads until the buffer holds at least `n` bytes; with `exact`, no more than that (after a
/// spliced payload, so the next PDU's payload stays in the socket for the next splice).
async fn fill_to(
    sock: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    n: usize,
    exact: bool,
) -> Result<()> {
    if !exact {
        return fill(sock, buf, n).await;
    }
    while buf.len() < n {
        let need = n - buf.len();
        buf.reserve(need);
        if (&mut *sock).take(need as u64).read_buf(buf).await? == 0 {
            return Err(IscsiError::Io("connection closed by the target".into()));
        }
    }
    Ok(())
}

/// How far [`splice_payload`] got.
enum Spliced {
    /// The whole payload is in the pipe.
    All,
    /// The pipe ran out of slots after this many bytes of the payload.
    PipeFull(usize),
}

/// Moves a `dlen`-byte payload into `pipe`: the part already read into `buf` by copying
/// (and consuming it from `buf`), the rest from the socket by splice(2).
async fn splice_payload(
    sock: &OwnedReadHalf,
    buf: &mut BytesMut,
    pipe: &SplicePipe,
    dlen: usize,
) -> Result<Spliced> {
    let have = buf.len().min(dlen);
    let mut done = 0;
    if have > 0 {
        done = pipe.push(&buf[..have]).map_err(pipe_error)?;
        buf.advance(done);
        if done < have {
            return Ok(Spliced::PipeFull(done));
        }
    }
    let stream = sock.as_ref();
    let fd = stream.as_raw_fd();
    while done < dlen {
        stream.readable().await?;
        let r = stream.try_io(Interest::READABLE, || {
            match pipe.splice_from(fd, dlen - done) {
                Ok(n) => Ok(Some(n)),
                // Tell "no free slot in the pipe" apart from "nothing to read" (which must
                // clear the readiness, as WouldBlock does). Data may have arrived just after
                // the splice found none, so once the socket has some, splice again: only this
                // task reads the socket, so if that fails too the pipe is full.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if readable_bytes(fd)? == 0 {
                        return Err(e);
                    }
                    match pipe.splice_from(fd, dlen - done) {
                        Ok(n) => Ok(Some(n)),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        });
        match r {
            Ok(Some(0)) => return Err(IscsiError::Io("connection closed by the target".into())),
            Ok(Some(n)) => done += n,
            Ok(None) => return Ok(Spliced::PipeFull(done)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Spliced::All)
}

fn pipe_error(e: std::io::Error) -> IscsiError {
    IscsiError::Io(format!("Data-In pipe: {e}"))
}

/// Runs until the connection fails (error) or the target closes it.
pub(crate) async fn run_reader(
    inner: Arc<Inner>,
    generation: u64,
    mut sock: OwnedReadHalf,
    mut buf: BytesMut,
    digests: DigestConfig,
    max_recv: usize,
    tx: OutTx,
) -> Result<()> {
    let limit = max_recv.min(MAX_DATA_SEGMENT_HARD_CAP);
    // After a spliced payload the next header is read alone (see `fill_to`).
    let mut header_only = false;
    loop {
        fill_to(&mut sock, &mut buf, BHS_LEN, header_only).await?;
        let bhs = Bhs::from_slice(&buf[..BHS_LEN]).expect("48 bytes buffered");
        let header_end = BHS_LEN + bhs.ahs_len();
        let hlen = header_end + digests.header_len();
        fill_to(&mut sock, &mut buf, hlen, header_only).await?;
        if digests.header {
            let mut d = [0u8; 4];
            d.copy_from_slice(&buf[header_end..hlen]);
            let received = u32::from_le_bytes(d);
            let computed = digest::crc32c(&buf[..header_end]);
            if received != computed {
                return Err(IscsiError::Protocol(format!(
                    "header digest mismatch: received {received:#010x}, computed {computed:#010x}"
                )));
            }
        }
        let dlen = bhs.data_segment_length() as usize;
        if dlen > limit {
            return Err(IscsiError::Protocol(format!(
                "data segment of {dlen} bytes exceeds our MaxRecvDataSegmentLength {limit}"
            )));
        }
        inner
            .rx_pdus
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if bhs.opcode() == Opcode::DATA_IN {
            buf.advance(hlen);
            header_only =
                data_in(&inner, generation, &bhs, &mut sock, &mut buf, dlen, digests).await?;
            continue;
        }
        header_only = false;
        let total = hlen + data_wire_len(dlen, digests);
        fill(&mut sock, &mut buf, total).await?;
        let frame = buf.split_to(total).freeze();
        let pdu = Pdu::decode(frame, digests)?;
        handle(&inner, generation, pdu, &tx)?;
    }
}

/// One Data-In PDU whose header has been consumed: its payload goes into the task's pipe or
/// buffer. Returns whether it went into a pipe (by splice, not through `buf`).
async fn data_in(
    inner: &Arc<Inner>,
    generation: u64,
    bhs: &Bhs,
    sock: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    dlen: usize,
    digests: DigestConfig,
) -> Result<bool> {
    let din = DataIn::from_bhs(bhs, Bytes::new());
    let trailer = data_wire_len(dlen, digests) - dlen;
    let taken = {
        let mut st = inner.lock();
        inner.window_from(&mut st, din.exp_cmd_sn, din.max_cmd_sn);
        match st.tasks.get_mut(&din.itt) {
            Some(t) if t.generation == generation => match &mut t.kind {
                TaskKind::Scsi {
                    request,
                    read_buf,
                    sink,
                } => read_buf
                    .take()
                    .map(|b| (b, request.read_len as usize, sink.take())),
                _ => None,
            },
            _ => None,
        }
    };
    let Some((mut rb, read_len, mut sink)) = taken else {
        // A task without a read buffer (or an unknown one): skip the payload, but honour a
        // status carried here (RFC 7143 section 11.7.4).
        fill(sock, buf, dlen + trailer).await?;
        buf.advance(dlen + trailer);
        if let Some(status) = din.status {
            inner.saw_stat_sn(din.stat_sn);
            let task = {
                let mut st = inner.lock();
                match st.tasks.get(&din.itt) {
                    Some(t) if t.generation == generation => st.tasks.remove(&din.itt),
                    _ => None,
                }
            };
            if let Some(mut t) = task {
                t.complete(data_in_outcome(&din, status, Bytes::new(), 0));
            }
        }
        return Ok(false);
    };
    let offset = din.buffer_offset as usize;
    if offset + dlen > read_len {
        return Err(IscsiError::Protocol(format!(
            "Data-In at offset {offset} + {dlen} bytes beyond the expected {read_len}"
        )));
    }
    let end = offset + dlen;
    let mut spliced = false;
    // Part of this payload already taken (into the pipe, then back into `rb`).
    let mut resumed = false;
    if let Some(s) = &mut sink {
        // Only in-order payloads without a data digest (whose check needs the bytes) go
        // into the pipe; otherwise everything moves back into the buffer for good.
        if !digests.data && offset == s.spliced && rb.is_empty() {
            match splice_payload(sock, buf, &s.pipe, dlen).await? {
                Spliced::All => {
                    s.spliced = end;
                    spliced = true;
                }
                Spliced::PipeFull(n) => {
                    s.pipe
                        .drain_into(&mut rb, s.spliced + n)
                        .map_err(pipe_error)?;
                    sink = None;
                    resumed = true;
                }
            }
        } else {
            s.pipe.drain_into(&mut rb, s.spliced).map_err(pipe_error)?;
            sink = None;
        }
    }
    if !spliced && (offset == rb.len() || resumed) {
        // In order (DataPDUInOrder=Yes): take what is buffered, read the rest straight into
        // the task's buffer.
        let have = buf.len().min(end - rb.len());
        rb.extend_from_slice(&buf[..have]);
        buf.advance(have);
        if rb.len() < end {
            // The trailer and the next BHS come with the payload's last read. After a large
            // payload only those: a 64 KiB refill would draw the next PDU's payload into `buf`
            // and cost a second copy. After a small one a whole chunk, so small PDUs batch.
            let tail = if end - rb.len() >= DIRECT_TAIL_THRESHOLD {
                trailer + BHS_LEN
            } else {
                READ_CHUNK
            };
            read_payload_direct(&*sock, &mut rb, end, buf, tail).await?;
        }
    } else if !spliced {
        fill(sock, buf, dlen).await?;
        if rb.len() < end {
            rb.resize(end, 0);
        }
        rb[offset..end].copy_from_slice(&buf[..dlen]);
        buf.advance(dlen);
    }
    fill_to(sock, buf, trailer, spliced).await?;
    if digests.data && dlen > 0 {
        let pad = pad4(dlen) - dlen;
        let mut d = [0u8; 4];
        d.copy_from_slice(&buf[pad..pad + 4]);
        let computed = digest::data_digest(&rb[offset..end]);
        if d != computed {
            return Err(IscsiError::Protocol("Data-In data digest mismatch".into()));
        }
    }
    buf.advance(trailer);
    let mut st = inner.lock();
    if let Some(status) = din.status {
        inner.saw_stat_sn(din.stat_sn);
        if let Some(mut t) = st.tasks.remove(&din.itt) {
            drop(st);
            let piped = sink.as_ref().map_or(0, |s| s.spliced);
            t.complete(data_in_outcome(&din, status, rb.freeze(), piped));
        }
    } else if let Some(t) = st.tasks.get_mut(&din.itt) {
        if let TaskKind::Scsi {
            read_buf,
            sink: task_sink,
            ..
        } = &mut t.kind
        {
            *read_buf = Some(rb);
            *task_sink = sink;
        }
    }
    Ok(spliced)
}

/// The completion of a task whose status came on its final Data-In (RFC 7143 section 11.7.4:
/// response 0, no sense, a residual when the U bit is set).
fn data_in_outcome(din: &DataIn, status: ScsiStatus, data: Bytes, piped: usize) -> Result<Reply> {
    Ok(Reply::Scsi(ScsiOutcome {
        response: 0,
        status,
        sense: Bytes::new(),
        data,
        piped,
        underflow: din.underflow.then_some(din.residual_count),
    }))
}

fn handle(inner: &Arc<Inner>, generation: u64, pdu: Pdu, tx: &OutTx) -> Result<()> {
    match pdu {
        Pdu::ScsiResponse(r) => scsi_response(inner, r),
        Pdu::R2t(r) => r2t(inner, generation, r, tx),
        Pdu::NopIn(n) => {
            let mut st = inner.lock();
            inner.window_from(&mut st, n.exp_cmd_sn, n.max_cmd_sn);
            if n.itt != RESERVED_TAG {
                inner.saw_stat_sn(n.stat_sn);
                if let Some(mut t) = st.tasks.remove(&n.itt) {
                    drop(st);
                    t.complete(Ok(Reply::Nop));
                }
            } else if n.ttt != RESERVED_TAG {
                // The target pings us: answer with the same TTT (RFC 7143 section 11.18).
                let nop = NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: RESERVED_TAG,
                    ttt: n.ttt,
                    cmd_sn: st.cmd_sn,
                    ..Default::default()
                };
                drop(st);
                let _ = tx.send(OutPdu {
                    bhs: nop.to_bhs(),
                    data: if n.data.is_empty() {
                        Vec::new()
                    } else {
                        vec![n.data]
                    },
                });
            }
            Ok(())
        }
        Pdu::TaskMgmtResponse(r) => {
            inner.saw_stat_sn(r.stat_sn);
            let mut st = inner.lock();
            inner.window_from(&mut st, r.exp_cmd_sn, r.max_cmd_sn);
            if let Some(mut t) = st.tasks.remove(&r.itt) {
                drop(st);
                t.complete(Ok(Reply::Tmf(r.response)));
            }
            Ok(())
        }
        Pdu::LogoutResponse(r) => {
            inner.saw_stat_sn(r.stat_sn);
            let mut st = inner.lock();
            if let Some(mut t) = st.tasks.remove(&r.itt) {
                drop(st);
                t.complete(Ok(Reply::Logout));
            }
            Ok(())
        }
        Pdu::Reject(r) => {
            inner.saw_stat_sn(r.stat_sn);
            let itt = r.rejected_bhs().map(|b| b.itt());
            let mut st = inner.lock();
            inner.window_from(&mut st, r.exp_cmd_sn, r.max_cmd_sn);
            if let Some(itt) = itt {
                if let Some(mut t) = st.tasks.remove(&itt) {
                    drop(st);
                    t.complete(Err(IscsiError::Protocol(format!(
                        "target rejected the PDU: {:?}",
                        r.reason
                    ))));
                }
            }
            Ok(())
        }
        Pdu::AsyncMessage(m) => {
            inner.saw_stat_sn(m.stat_sn);
            inner.window_from(&mut inner.lock(), m.exp_cmd_sn, m.max_cmd_sn);
            match m.event {
                AsyncEvent::LOGOUT_REQUEST
                | AsyncEvent::CONNECTION_DROP
                | AsyncEvent::SESSION_DROP => Err(IscsiError::Io(format!(
                    "target asked to end the connection ({:?})",
                    m.event
                ))),
                _ => Ok(()),
            }
        }
        Pdu::TextResponse(r) => {
            inner.saw_stat_sn(r.stat_sn);
            Ok(())
        }
        other => Err(IscsiError::Protocol(format!(
            "unexpected {:?} from the target",
            other.opcode()
        ))),
    }
}

fn scsi_response(inner: &Arc<Inner>, r: ScsiResponse) -> Result<()> {
    inner.saw_stat_sn(r.stat_sn);
    let mut st = inner.lock();
    inner.window_from(&mut st, r.exp_cmd_sn, r.max_cmd_sn);
    let Some(mut t) = st.tasks.remove(&r.itt) else {
        return Ok(());
    };
    drop(st);
    let (data, piped) = match &mut t.kind {
        TaskKind::Scsi { read_buf, sink, .. } => (
            read_buf.take().map(BytesMut::freeze),
            sink.as_ref().map_or(0, |s| s.spliced),
        ),
        _ => (None, 0),
    };
    let data = data.unwrap_or_default();
    let sense = r.sense().unwrap_or_default();
    t.complete(Ok(Reply::Scsi(ScsiOutcome {
        response: r.response.0,
        status: r.status,
        sense,
        data,
        piped,
        underflow: r.underflow.then_some(r.residual_count),
    })));
    Ok(())
}

fn r2t(inner: &Arc<Inner>, generation: u64, r: R2t, tx: &OutTx) -> Result<()> {
    let (write, lun, max_dsl, max_burst) = {
        let mut st = inner.lock();
        inner.window_from(&mut st, r.exp_cmd_sn, r.max_cmd_sn);
        let limits = match &st.conn {
            Some(c) if c.generation == generation => c.limits,
            _ => return Ok(()),
        };
        match st.tasks.get(&r.itt) {
            Some(t) => match &t.kind {
                TaskKind::Scsi { request, .. } => match &request.write {
                    Some(w) => (
                        w.clone(),
                        request.lun,
                        limits.max_send_dsl,
                        limits.max_burst,
                    ),
                    None => {
                        return Err(IscsiError::Protocol(format!(
                            "R2T for task {:#x} that has no data to send",
                            r.itt
                        )))
                    }
                },
                _ => return Ok(()),
            },
            None => return Ok(()),
        }
    };
    let offset = r.buffer_offset as usize;
    let len = r.desired_data_transfer_length as usize;
    if offset + len > write.len || len > max_burst {
        return Err(IscsiError::Protocol(format!(
            "R2T asks for {len} bytes at {offset} of a {} byte write (MaxBurstLength {max_burst})",
            write.len
        )));
    }
    let mut pdus = Vec::with_capacity(len.div_ceil(max_dsl));
    data_out_pdus(&write, lun, r.itt, r.ttt, offset, len, max_dsl, &mut pdus);
    for p in pdus {
        if tx.send(p).is_err() {
            return Err(IscsiError::Io("writer stopped".into()));
        }
    }
    Ok(())
}
