//! NBD protocol section "Transmission phase": requests, simple replies and structured
//! replies, served with many requests in flight per connection.
//!
//! A reader loop parses each request (validating it fully before any I/O), reads a WRITE
//! payload into one buffer, and spawns the backend operation as its own task. Finished
//! operations queue their replies to a writer loop that batches whatever is ready and
//! writes it with one vectored write: replies leave in completion order, never interleaved.
//! At most `max_in_flight` requests of a connection are between "received" and "reply
//! written" at any time. When the reader stops (NBD_CMD_DISC, EOF, a protocol error or
//! server shutdown), in-flight operations still complete and their replies are sent.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::backend::BlockBackend;
use super::handshake::Negotiated;
use super::observer::{RequestObserver, RequestTiming, ServerCounters};
use super::wire::{
    encode_chunk_header, encode_simple_reply, BadRequestMagic, ChunkType, CommandFlags,
    CommandType, Errno, RequestHeader, CHUNK_FLAG_DONE, REQUEST_LEN,
};

/// Largest WRITE payload above the maximum request size that is read and discarded to
/// answer EINVAL and keep the stream in sync; larger ones close the connection.
pub const MAX_DISCARDED_WRITE: u32 = 64 << 20;
/// Most replies gathered into one vectored write.
const MAX_REPLY_BATCH: usize = 64;
/// Read buffer of a connection (headers and small payloads are read through it).
const READ_BUFFER: usize = 64 * 1024;

/// Why a connection's transmission phase ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum TransmissionError {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    BadMagic(#[from] BadRequestMagic),
    #[error("WRITE payload of {len} bytes exceeds the {limit}-byte discard limit")]
    PayloadTooLarge { len: u32, limit: u32 },
}

/// The limits a request is validated against.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    pub size: u64,
    pub min_block: u32,
    pub max_request: u32,
    pub read_only: bool,
    pub structured_replies: bool,
}

/// A validated request, ready for the backend.
#[derive(Debug)]
pub enum Operation {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        data: Bytes,
        fua: bool,
    },
    Flush,
    Trim {
        offset: u64,
        len: u32,
        fua: bool,
    },
    WriteZeroes {
        offset: u64,
        len: u32,
        may_trim: bool,
        fua: bool,
    },
    /// Answered with success without touching the backend (CACHE, zero-length requests).
    Nothing,
}

/// Checks a request header against the export (sections "Request types" and "Error
/// values"); the WRITE payload is attached later.
pub fn validate(h: &RequestHeader, l: &RequestLimits) -> Result<(), Errno> {
    let allowed = match h.command {
        CommandType::READ if l.structured_replies => CommandFlags::DF.0,
        CommandType::READ => 0,
        CommandType::WRITE | CommandType::TRIM => CommandFlags::FUA.0,
        CommandType::WRITE_ZEROES => CommandFlags::FUA.0 | CommandFlags::NO_HOLE.0,
        CommandType::FLUSH | CommandType::CACHE | CommandType::DISC => 0,
        // BLOCK_STATUS needs a negotiated meta context (none is offered); RESIZE and
        // unknown commands are refused.
        _ => return Err(Errno::EINVAL),
    };
    if h.flags.0 & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let writes = matches!(
        h.command,
        CommandType::WRITE | CommandType::TRIM | CommandType::WRITE_ZEROES
    );
    if writes && l.read_only {
        return Err(Errno::EPERM);
    }
    if matches!(h.command, CommandType::FLUSH | CommandType::DISC) {
        return Ok(());
    }
    // READ and WRITE carry data and are bounded by the maximum block size; TRIM,
    // WRITE_ZEROES and CACHE may be larger and are split for the backend.
    if matches!(h.command, CommandType::READ | CommandType::WRITE) && h.length > l.max_request {
        return Err(Errno::EINVAL);
    }
    match h.offset.checked_add(h.length as u64) {
        Some(end) if end <= l.size => {}
        Some(_) if matches!(h.command, CommandType::WRITE | CommandType::WRITE_ZEROES) => {
            return Err(Errno::ENOSPC)
        }
        _ => return Err(Errno::EINVAL),
    }
    if h.command != CommandType::CACHE
        && l.min_block > 1
        && (!h.offset.is_multiple_of(l.min_block as u64) || !h.length.is_multiple_of(l.min_block))
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Everything a connection needs besides its socket.
pub(crate) struct Connection<B> {
    pub backend: Arc<B>,
    pub negotiated: Negotiated,
    pub limits: RequestLimits,
    pub max_in_flight: usize,
    pub observer: Option<Arc<dyn RequestObserver>>,
    pub counters: Arc<ServerCounters>,
}

struct Reply {
    cookie: u64,
    result: Result<Option<Bytes>, Errno>,
    offset: u64,
    timing: RequestTiming,
    _slot: OwnedSemaphorePermit,
}

/// Waits until `rx` says true; never returns if the sender goes away without saying it.
pub(crate) async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl<B: BlockBackend> Connection<B> {
    /// Serves requests until the client disconnects or `shutdown` turns true, then waits
    /// for every in-flight request's reply to be written.
    pub(crate) async fn run<R, W>(
        self,
        reader: R,
        writer: W,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), TransmissionError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let structured = self.negotiated.structured_replies;
        let observer = self.observer.clone();
        let counters = self.counters.clone();
        let reading = self.read_requests(reader, tx, shutdown);
        let writing = write_replies(writer, rx, structured, observer, counters);
        let (r, ()) = tokio::join!(reading, writing);
        r
    }

    async fn read_requests<R: AsyncRead + Unpin>(
        self,
        reader: R,
        tx: mpsc::UnboundedSender<Reply>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), TransmissionError> {
        let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER, reader);
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        loop {
            let mut raw = [0u8; REQUEST_LEN];
            let read = tokio::select! {
                biased;
                _ = shutdown_signalled(&mut shutdown) => return Ok(()),
                r = reader.read_exact(&mut raw) => r,
            };
            match read {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let header = RequestHeader::parse(&raw)?;
            let verdict = validate(&header, &self.limits);
            let mut payload = None;
            if header.command == CommandType::WRITE {
                let got = if header.length <= self.limits.max_request {
                    read_payload(&mut reader, header.length).await.map(Some)
                } else if header.length <= MAX_DISCARDED_WRITE {
                    discard(&mut reader, header.length).await.map(|_| None)
                } else {
                    return Err(TransmissionError::PayloadTooLarge {
                        len: header.length,
                        limit: MAX_DISCARDED_WRITE,
                    });
                };
                match got {
                    Ok(p) => payload = p,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        tracing::debug!("client went away in the middle of a WRITE payload");
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if verdict.is_ok() && header.command == CommandType::DISC {
                tracing::debug!("client sent NBD_CMD_DISC");
                return Ok(());
            }
            let received = Instant::now();
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the slot semaphore is never closed");
            let dispatched = Instant::now();
            let mut timing = RequestTiming {
                command: header.command,
                offset: header.offset,
                length: header.length,
                error: Errno::OK,
                received,
                dispatched,
                completed: dispatched,
                replied: dispatched,
            };
            let op = match verdict {
                Ok(()) => operation(&header, payload),
                Err(errno) => {
                    tracing::debug!(?header, ?errno, "NBD request refused");
                    timing.error = errno;
                    let _ = tx.send(Reply {
                        cookie: header.cookie,
                        result: Err(errno),
                        offset: header.offset,
                        timing,
                        _slot: slot,
                    });
                    continue;
                }
            };
            let backend = self.backend.clone();
            let tx = tx.clone();
            let max = self.limits.max_request;
            tokio::spawn(async move {
                let result = execute(&*backend, op, max).await;
                timing.completed = Instant::now();
                if let Err(errno) = result {
                    timing.error = errno;
                }
                let _ = tx.send(Reply {
                    cookie: header.cookie,
                    result,
                    offset: header.offset,
                    timing,
                    _slot: slot,
                });
            });
        }
    }
}

impl Operation {
    /// Name, offset and length for logs (never the payload).
    fn describe(&self) -> (&'static str, u64, u64) {
        match self {
            Operation::Read { offset, len } => ("read", *offset, *len as u64),
            Operation::Write { offset, data, .. } => ("write", *offset, data.len() as u64),
            Operation::Flush => ("flush", 0, 0),
            Operation::Trim { offset, len, .. } => ("trim", *offset, *len as u64),
            Operation::WriteZeroes { offset, len, .. } => ("write_zeroes", *offset, *len as u64),
            Operation::Nothing => ("nothing", 0, 0),
        }
    }
}

fn operation(h: &RequestHeader, payload: Option<Bytes>) -> Operation {
    let fua = h.flags.contains(CommandFlags::FUA);
    if h.length == 0 && h.command != CommandType::FLUSH {
        return Operation::Nothing;
    }
    match h.command {
        CommandType::READ => Operation::Read {
            offset: h.offset,
            len: h.length,
        },
        CommandType::WRITE => Operation::Write {
            offset: h.offset,
            data: payload.unwrap_or_default(),
            fua,
        },
        CommandType::FLUSH => Operation::Flush,
        CommandType::TRIM => Operation::Trim {
            offset: h.offset,
            len: h.length,
            fua,
        },
        CommandType::WRITE_ZEROES => Operation::WriteZeroes {
            offset: h.offset,
            len: h.length,
            may_trim: !h.flags.contains(CommandFlags::NO_HOLE),
            fua,
        },
        _ => Operation::Nothing,
    }
}

async fn execute<B: BlockBackend>(b: &B, op: Operation, max: u32) -> Result<Option<Bytes>, Errno> {
    let (what, at, bytes) = op.describe();
    let r = match op {
        Operation::Read { offset, len } => match b.read(offset, len).await {
            Ok(d) if d.len() == len as usize => Ok(Some(d)),
            Ok(d) => {
                tracing::error!(offset, len, got = d.len(), "backend returned a short read");
                return Err(Errno::EIO);
            }
            Err(e) => Err(e),
        },
        Operation::Write { offset, data, fua } => b.write(offset, data, fua).await.map(|_| None),
        Operation::Flush => b.flush().await.map(|_| None),
        Operation::Trim { offset, len, fua } => {
            let mut r = Ok(None);
            for (o, n) in pieces(offset, len, max) {
                if let Err(e) = b.trim(o, n).await {
                    r = Err(e);
                    break;
                }
            }
            match r {
                Ok(_) if fua => b.flush().await.map(|_| None),
                r => r,
            }
        }
        Operation::WriteZeroes {
            offset,
            len,
            may_trim,
            fua,
        } => {
            let mut r = Ok(None);
            for (o, n) in pieces(offset, len, max) {
                if let Err(e) = b.write_zeroes(o, n, may_trim).await {
                    r = Err(e);
                    break;
                }
            }
            match r {
                Ok(_) if fua => b.flush().await.map(|_| None),
                r => r,
            }
        }
        Operation::Nothing => Ok(None),
    };
    r.map_err(|e| {
        tracing::warn!(op = what, offset = at, len = bytes, error = %e, "NBD request failed in the backend");
        e.errno()
    })
}

/// Splits `[offset, offset+len)` into pieces of at most `max` bytes.
fn pieces(offset: u64, len: u32, max: u32) -> impl Iterator<Item = (u64, u32)> {
    let max = max.max(1);
    let mut done = 0u32;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let n = (len - done).min(max);
        let piece = (offset + done as u64, n);
        done += n;
        Some(piece)
    })
}

async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, len: u32) -> std::io::Result<Bytes> {
    let len = len as usize;
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let want = len - buf.len();
        let mut limited = (&mut buf).limit(want);
        if r.read_buf(&mut limited).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.freeze())
}

async fn discard<R: AsyncRead + Unpin>(r: &mut R, len: u32) -> std::io::Result<()> {
    let mut left = len as usize;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = left.min(buf.len());
        r.read_exact(&mut buf[..n]).await?;
        left -= n;
    }
    Ok(())
}

fn encode_reply_header(out: &mut BytesMut, r: &Reply, structured: bool) {
    match (&r.result, structured) {
        (Ok(Some(data)), true) if !data.is_empty() => encode_chunk_header(
            out,
            CHUNK_FLAG_DONE,
            ChunkType::OFFSET_DATA,
            r.cookie,
            8 + data.len() as u32,
        ),
        (Ok(_), true) if r.timing.command == CommandType::READ => {
            encode_chunk_header(out, CHUNK_FLAG_DONE, ChunkType::NONE, r.cookie, 0);
            return;
        }
        (Err(errno), true) if r.timing.command == CommandType::READ => {
            encode_chunk_header(out, CHUNK_FLAG_DONE, ChunkType::ERROR, r.cookie, 6);
            out.put_u32(errno.0);
            out.put_u16(0);
            return;
        }
        (Ok(_), _) => {
            encode_simple_reply(out, Errno::OK, r.cookie);
            return;
        }
        (Err(errno), _) => {
            encode_simple_reply(out, *errno, r.cookie);
            return;
        }
    }
    // Structured OFFSET_DATA: the offset precedes the data.
    out.put_u64(r.offset);
}

async fn write_replies<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Reply>,
    structured: bool,
    observer: Option<Arc<dyn RequestObserver>>,
    counters: Arc<ServerCounters>,
) {
    let mut broken = false;
    let mut batch: Vec<Reply> = Vec::with_capacity(MAX_REPLY_BATCH);
    let mut headers = BytesMut::with_capacity(MAX_REPLY_BATCH * 32);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(MAX_REPLY_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_REPLY_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if !broken {
            headers.clear();
            spans.clear();
            for r in &batch {
                let start = headers.len();
                encode_reply_header(&mut headers, r, structured);
                spans.push((start, headers.len()));
            }
            let mut bufs: Vec<&[u8]> = Vec::with_capacity(batch.len() * 2);
            for (r, &(a, b)) in batch.iter().zip(&spans) {
                bufs.push(&headers[a..b]);
                if let Ok(Some(data)) = &r.result {
                    if !data.is_empty() {
                        bufs.push(data);
                    }
                }
            }
            let written = async {
                write_all_vectored(&mut w, &bufs).await?;
                w.flush().await
            }
            .await;
            if let Err(e) = written {
                tracing::debug!(error = %e, "NBD client stopped reading replies");
                broken = true;
            }
        }
        let replied = Instant::now();
        for mut r in batch.drain(..) {
            r.timing.replied = replied;
            counters.record(&r.timing);
            if let Some(o) = &observer {
                o.on_request(&r.timing);
            }
        }
    }
    let _ = w.shutdown().await;
}

/// Writes every (non-empty) buffer of `bufs`, in order, with as few syscalls as the socket
/// allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &[&[u8]],
) -> std::io::Result<()> {
    let (mut idx, mut off) = (0usize, 0usize);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len());
    while idx < bufs.len() {
        slices.clear();
        slices.push(IoSlice::new(&bufs[idx][off..]));
        slices.extend(bufs[idx + 1..].iter().map(|b| IoSlice::new(b)));
        let mut n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && idx < bufs.len() {
            let left = bufs[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            size: 1 << 20,
            min_block: 512,
            max_request: 64 * 1024,
            read_only: false,
            structured_replies: false,
        }
    }

    fn req(command: CommandType, flags: u16, offset: u64, length: u32) -> RequestHeader {
        RequestHeader {
            flags: CommandFlags(flags),
            command,
            cookie: 1,
            offset,
            length,
        }
    }

    #[test]
    fn validation_rules() {
        let l = limits();
        assert_eq!(validate(&req(CommandType::READ, 0, 0, 4096), &l), Ok(()));
        assert_eq!(
            validate(&req(CommandType::READ, 0, (1 << 20) - 512, 1024), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::WRITE, 0, (1 << 20) - 512, 1024), &l),
            Err(Errno::ENOSPC)
        );
        assert_eq!(
            validate(&req(CommandType::WRITE_ZEROES, 0, 1 << 20, 512), &l),
            Err(Errno::ENOSPC)
        );
        assert_eq!(
            validate(&req(CommandType::READ, 0, u64::MAX - 10, 512), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::READ, 0, 1, 512), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::READ, 0, 0, 100), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::READ, 0, 0, 128 * 1024), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::TRIM, 0, 0, 512 * 1024), &l),
            Ok(())
        );
        assert_eq!(
            validate(&req(CommandType(42), 0, 0, 0), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::BLOCK_STATUS, 0, 0, 512), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::READ, 1 << 2, 0, 512), &l),
            Err(Errno::EINVAL)
        );
        let s = RequestLimits {
            structured_replies: true,
            ..l
        };
        assert_eq!(
            validate(&req(CommandType::READ, 1 << 2, 0, 512), &s),
            Ok(())
        );
        assert_eq!(validate(&req(CommandType::WRITE, 1, 0, 512), &l), Ok(()));
        assert_eq!(
            validate(&req(CommandType::FLUSH, 1, 0, 0), &l),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            validate(&req(CommandType::WRITE_ZEROES, 3, 0, 512), &l),
            Ok(())
        );
        let ro = RequestLimits {
            read_only: true,
            ..l
        };
        assert_eq!(
            validate(&req(CommandType::WRITE, 0, 0, 512), &ro),
            Err(Errno::EPERM)
        );
        assert_eq!(
            validate(&req(CommandType::TRIM, 0, 0, 512), &ro),
            Err(Errno::EPERM)
        );
        assert_eq!(validate(&req(CommandType::READ, 0, 0, 512), &ro), Ok(()));
    }

    #[test]
    fn pieces_split() {
        let v: Vec<_> = pieces(100, 250, 100).collect();
        assert_eq!(v, vec![(100, 100), (200, 100), (300, 50)]);
        assert_eq!(pieces(0, 0, 100).count(), 0);
    }
}
