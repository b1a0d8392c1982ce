//! NBD protocol section "Transmission phase": requests, simple replies and structured
//! replies, served with many requests in flight per connection.
//!
//! One task serves a connection. It parses every request a socket read brought (validating
//! each fully before any I/O; a WRITE payload is a slice of the read buffer), starts the
//! backend operations as futures of its own, and when some finish writes their replies with
//! one vectored write: replies leave in completion order, never interleaved, and a reply is
//! written by the same poll that saw its operation finish (or, when it finished during a
//! write, by the next one: operations are polled while replies are written). At most `max_in_flight` requests
//! of a connection are between "received" and "reply written" at any time (the socket is not
//! read while that many are). When reading stops (NBD_CMD_DISC, EOF, a protocol error or
//! server shutdown), in-flight operations still complete and their replies are sent (after a
//! shutdown, unless the client leaves a reply unread for `SHUTDOWN_WRITE_GRACE`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use iscsi_initiator::{PipedRead, SplicePipe};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::backend::BlockBackend;
use super::handshake::Negotiated;
use super::observer::{RequestObserver, RequestTiming, ServerCounters};
use super::reply_out::{write_all_vectored, ReplyOut};
use super::wire::{
    encode_chunk_header, encode_simple_reply, BadRequestMagic, ChunkType, CommandFlags,
    CommandType, Errno, RequestHeader, CHUNK_FLAG_DONE, REQUEST_LEN,
};
use iscsi_target::busy_poll::BusyPoll;

/// Largest WRITE payload above the maximum request size that is read and discarded to
/// answer EINVAL and keep the stream in sync; larger ones close the connection.
pub const MAX_DISCARDED_WRITE: u32 = 64 << 20;
/// Most replies gathered into one vectored write.
const MAX_REPLY_BATCH: usize = 64;
/// Stop gathering finished requests for one vectored write at this many bytes of READ data
/// (what the write copies is then still in the cache).
const REPLY_BATCH_BYTES: usize = 256 * 1024;
/// READs of at least this many bytes are offered a pipe when the socket can splice (smaller
/// ones cost less copied than moved by page reference).
const SPLICE_MIN_READ: u32 = 64 * 1024;
/// Most pipes one connection has lent out at once (two descriptors each); READs beyond them
/// are copied.
const MAX_PIPES_PER_CONNECTION: usize = 32;
/// Read buffer of a connection (requests and WRITE payloads are cut from it).
const READ_BUFFER: usize = 64 * 1024;
/// Spare room below which the read buffer grows before a socket read.
const READ_SLACK: usize = 16 * 1024;
/// After server shutdown, how long a reply write may wait for a client that does not read
/// before the connection's remaining replies are dropped (so shutdown cannot hang on it).
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(5);

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
    /// Told when requests arrive and replies leave.
    pub busy_poll: Option<Arc<BusyPoll>>,
}

/// A request's identity and the outcome its reply carries.
struct Reply {
    cookie: u64,
    command: CommandType,
    offset: u64,
    length: u32,
    received: Instant,
    result: Result<Option<Bytes>, Errno>,
    /// The pipe lent to a READ's backend operation, if any.
    pipe: Option<Arc<SplicePipe>>,
    /// Bytes of the READ's data waiting in `pipe` (instead of in `result`).
    piped: usize,
}

impl Reply {
    fn data_len(&self) -> usize {
        match &self.result {
            Ok(Some(d)) => d.len(),
            Ok(None) => self.piped,
            Err(_) => 0,
        }
    }
}

/// Waits until `rx` says true; never returns if the sender goes away without saying it.
pub(crate) async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What the reader found next in its buffer.
enum Step {
    /// A valid request for the backend.
    Run(Operation, Reply),
    /// A request answered without the backend (refused).
    Answer(Reply),
    /// NBD_CMD_DISC.
    Disconnect,
    /// The buffer holds no complete request.
    NeedMore,
}

/// The request side of a connection: one buffer that socket reads fill and requests are cut
/// from. A WRITE payload is a slice of that buffer (no copy), so requests that arrive together
/// are parsed from one read.
struct RequestReader {
    buf: BytesMut,
    /// A refused WRITE whose payload is being skipped: its reply and the bytes still to skip.
    skipping: Option<(Reply, usize)>,
}

impl RequestReader {
    fn new() -> RequestReader {
        RequestReader {
            buf: BytesMut::with_capacity(READ_BUFFER),
            skipping: None,
        }
    }

    /// Takes the next request out of the buffer.
    fn next(
        &mut self,
        limits: &RequestLimits,
        received: Instant,
    ) -> Result<Step, TransmissionError> {
        if let Some((_, left)) = &mut self.skipping {
            let n = (*left).min(self.buf.len());
            self.buf.advance(n);
            *left -= n;
            if *left > 0 {
                return Ok(Step::NeedMore);
            }
            return Ok(match self.skipping.take() {
                Some((reply, _)) => Step::Answer(reply),
                None => Step::NeedMore,
            });
        }
        if self.buf.len() < REQUEST_LEN {
            return Ok(Step::NeedMore);
        }
        let mut raw = [0u8; REQUEST_LEN];
        raw.copy_from_slice(&self.buf[..REQUEST_LEN]);
        let header = RequestHeader::parse(&raw)?;
        let verdict = validate(&header, limits);
        let mut reply = Reply {
            cookie: header.cookie,
            command: header.command,
            offset: header.offset,
            length: header.length,
            received,
            result: Ok(None),
            pipe: None,
            piped: 0,
        };
        let mut payload = None;
        if header.command == CommandType::WRITE {
            let len = header.length as usize;
            if header.length > limits.max_request {
                if header.length > MAX_DISCARDED_WRITE {
                    return Err(TransmissionError::PayloadTooLarge {
                        len: header.length,
                        limit: MAX_DISCARDED_WRITE,
                    });
                }
                // Refused (too long); its payload is read and dropped in pieces.
                self.buf.advance(REQUEST_LEN);
                reply.result = Err(verdict.err().unwrap_or(Errno::EINVAL));
                tracing::debug!(?header, "NBD WRITE longer than the maximum request refused");
                self.skipping = Some((reply, len));
                return self.next(limits, received);
            }
            let total = REQUEST_LEN + len;
            if self.buf.len() < total {
                // Room for the whole payload (and the next headers) before reading on.
                self.buf.reserve(total - self.buf.len() + READ_SLACK);
                return Ok(Step::NeedMore);
            }
            self.buf.advance(REQUEST_LEN);
            payload = Some(self.buf.split_to(len).freeze());
        } else {
            self.buf.advance(REQUEST_LEN);
        }
        match verdict {
            Ok(()) if header.command == CommandType::DISC => Ok(Step::Disconnect),
            Ok(()) => Ok(Step::Run(operation(&header, payload), reply)),
            Err(errno) => {
                tracing::debug!(?header, ?errno, "NBD request refused");
                reply.result = Err(errno);
                Ok(Step::Answer(reply))
            }
        }
    }

    /// Reads what the socket has into the buffer; 0 at end of stream.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_SLACK {
            self.buf.reserve(READ_BUFFER);
        }
        r.read_buf(&mut self.buf).await
    }
}

/// Serves one request on the backend.
async fn serve_request<B: BlockBackend>(b: &B, op: Operation, max: u32, mut reply: Reply) -> Reply {
    reply.result = execute(b, op, max).await;
    reply
}

/// Serves a READ with `pipe` lent to the backend ([`BlockBackend::read_to_pipe`]).
async fn serve_read_to_pipe<B: BlockBackend>(
    b: &B,
    offset: u64,
    len: u32,
    pipe: Arc<SplicePipe>,
    mut reply: Reply,
) -> Reply {
    reply.result = match b.read_to_pipe(offset, len, &pipe).await {
        Ok(PipedRead::InPipe(n)) if n == len as usize => {
            reply.piped = n;
            Ok(None)
        }
        Ok(PipedRead::Bytes(d)) if d.len() == len as usize => Ok(Some(d)),
        Ok(other) => {
            let got = match other {
                PipedRead::InPipe(n) => n,
                PipedRead::Bytes(d) => d.len(),
            };
            tracing::error!(offset, len, got, "backend returned a short read");
            Err(Errno::EIO)
        }
        Err(e) => Err(failed("read", offset, len as u64, &e)),
    };
    reply.pipe = Some(pipe);
    reply
}

/// The reply side of a connection: writes batches of replies with one vectored write (a READ
/// whose data waits in a pipe ends a vectored write and is spliced after it), keeps the pipes
/// for reuse and reports each request's timing.
struct ReplyWriter<W> {
    w: W,
    structured: bool,
    broken: bool,
    headers: BytesMut,
    spans: Vec<(usize, usize)>,
    observer: Option<Arc<dyn RequestObserver>>,
    counters: Arc<ServerCounters>,
    /// Empty pipes to lend to the next READs.
    pipes: Vec<Arc<SplicePipe>>,
    /// Pipes lent to READs whose replies are not written yet.
    lent: usize,
}

impl<W: ReplyOut> ReplyWriter<W> {
    /// A pipe for a READ of `len` bytes, when the socket can splice and the READ is large
    /// enough to gain from it.
    fn lend_pipe(&mut self, len: u32) -> Option<Arc<SplicePipe>> {
        if len < SPLICE_MIN_READ
            || self.broken
            || self.lent >= MAX_PIPES_PER_CONNECTION
            || !self.w.splices()
        {
            return None;
        }
        let pipe = match self.pipes.pop() {
            Some(p) => p,
            None => match SplicePipe::new() {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::debug!(error = %e, "no pipe for a READ; its data is copied");
                    return None;
                }
            },
        };
        self.lent += 1;
        Some(pipe)
    }

    /// Writes every reply of `batch` (in order, never interleaved) and empties it. Once
    /// `shutdown` turned true, a write stuck longer than [`SHUTDOWN_WRITE_GRACE`] gives up.
    async fn write(
        &mut self,
        batch: &mut Vec<Reply>,
        completed: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        if !self.broken {
            self.headers.clear();
            self.spans.clear();
            for r in batch.iter() {
                let start = self.headers.len();
                encode_reply_header(&mut self.headers, r, self.structured);
                self.spans.push((start, self.headers.len()));
            }
            let (w, headers, spans) = (&mut self.w, &self.headers, &self.spans);
            let written = tokio::select! {
                r = async {
                    let mut bufs: Vec<&[u8]> = Vec::with_capacity(batch.len() * 2);
                    for (r, &(a, b)) in batch.iter().zip(spans) {
                        bufs.push(&headers[a..b]);
                        match (&r.result, &r.pipe) {
                            (Ok(Some(data)), _) if !data.is_empty() => bufs.push(data),
                            (Ok(None), Some(pipe)) if r.piped > 0 => {
                                w.send_piped(&bufs, pipe, r.piped).await?;
                                bufs.clear();
                            }
                            _ => {}
                        }
                    }
                    write_all_vectored(w, &bufs).await?;
                    w.flush().await
                } => r,
                _ = async {
                    shutdown_signalled(shutdown).await;
                    tokio::time::sleep(SHUTDOWN_WRITE_GRACE).await
                } => Err(std::io::ErrorKind::TimedOut.into()),
            };
            if let Err(e) = written {
                tracing::debug!(error = %e, "NBD client stopped reading replies");
                self.broken = true;
            }
        }
        let replied = Instant::now();
        for mut r in batch.drain(..) {
            if let Some(p) = r.pipe.take() {
                // A pipe goes back only empty and unspoiled: after its data was written out
                // it is empty; after a failed write, a read that came back in a buffer or a
                // failed read it may not be, and is asked.
                self.lent -= 1;
                let written_out = r.piped > 0 && matches!(r.result, Ok(None));
                if !self.broken && !p.is_spoiled() && (written_out || p.is_reusable()) {
                    self.pipes.push(p);
                }
            }
            let timing = RequestTiming {
                command: r.command,
                offset: r.offset,
                length: r.length,
                error: match &r.result {
                    Ok(_) => Errno::OK,
                    Err(e) => *e,
                },
                received: r.received,
                dispatched: r.received,
                completed: completed.max(r.received),
                replied,
            };
            self.counters.record(&timing);
            if let Some(o) = &self.observer {
                o.on_request(&timing);
            }
        }
    }
}

impl<B: BlockBackend> Connection<B> {
    /// Serves requests until the client disconnects or `shutdown` turns true, then waits
    /// for every in-flight request's reply to be written.
    ///
    /// One task does everything: it parses the requests of each socket read, polls their
    /// backend operations (a request's first commands go out before the next read), and
    /// writes the replies of whatever finished together with one vectored write, right where
    /// they finished (no hop to another task).
    pub(crate) async fn run<R, W>(
        self,
        mut reader: R,
        writer: W,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), TransmissionError>
    where
        R: AsyncRead + Unpin + Send,
        W: ReplyOut,
    {
        let backend: &B = &self.backend;
        let max = self.limits.max_request;
        let mut out = ReplyWriter {
            w: writer,
            structured: self.negotiated.structured_replies,
            broken: false,
            headers: BytesMut::with_capacity(MAX_REPLY_BATCH * 32),
            spans: Vec::with_capacity(MAX_REPLY_BATCH),
            observer: self.observer.clone(),
            counters: self.counters.clone(),
            pipes: Vec::new(),
            lent: 0,
        };
        let mut requests = RequestReader::new();
        let mut inflight = FuturesUnordered::new();
        let mut ready: Vec<Reply> = Vec::with_capacity(MAX_REPLY_BATCH);
        // Operations that finished while `ready` was being written.
        let mut finished: Vec<Reply> = Vec::with_capacity(MAX_REPLY_BATCH);
        let mut reading = true;
        let mut failure: Option<TransmissionError> = None;
        let mut received = Instant::now();
        loop {
            while reading && inflight.len() + ready.len() < self.max_in_flight {
                match requests.next(&self.limits, received) {
                    Ok(Step::Run(op, reply)) => {
                        if let Some(p) = &self.busy_poll {
                            p.mark_request(reply.length, inflight.len() + ready.len() + 1);
                        }
                        let pipe = match op {
                            Operation::Read { len, .. } => out.lend_pipe(len),
                            _ => None,
                        };
                        inflight.push(match (op, pipe) {
                            (Operation::Read { offset, len }, Some(pipe)) => {
                                serve_read_to_pipe(backend, offset, len, pipe, reply).left_future()
                            }
                            (op, _) => serve_request(backend, op, max, reply).right_future(),
                        })
                    }
                    Ok(Step::Answer(reply)) => ready.push(reply),
                    Ok(Step::NeedMore) => break,
                    Ok(Step::Disconnect) => {
                        tracing::debug!("client sent NBD_CMD_DISC");
                        reading = false;
                    }
                    Err(e) => {
                        failure = Some(e);
                        reading = false;
                    }
                }
            }
            // Poll the requests (new ones send their commands) and gather the finished ones.
            let mut bytes: usize = ready.iter().map(Reply::data_len).sum();
            while ready.len() < MAX_REPLY_BATCH && bytes < REPLY_BATCH_BYTES {
                match inflight.next().now_or_never() {
                    Some(Some(r)) => {
                        bytes += r.data_len();
                        ready.push(r);
                    }
                    _ => break,
                }
            }
            if !ready.is_empty() {
                // The operations keep going while the replies are written: a client slow to
                // read must not stall them (they may hold the backend's shared resources).
                {
                    if let Some(p) = &self.busy_poll {
                        let least = ready.iter().map(|r| r.length).min().unwrap_or(0);
                        p.mark_request(least, inflight.len() + ready.len());
                    }
                    let write = out.write(&mut ready, Instant::now(), &mut shutdown);
                    tokio::pin!(write);
                    loop {
                        tokio::select! {
                            biased;
                            _ = &mut write => break,
                            Some(r) = inflight.next(), if !inflight.is_empty() => finished.push(r),
                        }
                    }
                }
                std::mem::swap(&mut ready, &mut finished);
                continue;
            }
            if !reading && inflight.is_empty() {
                break;
            }
            let room = reading && inflight.len() < self.max_in_flight;
            tokio::select! {
                biased;
                Some(r) = inflight.next(), if !inflight.is_empty() => ready.push(r),
                _ = shutdown_signalled(&mut shutdown), if reading => reading = false,
                n = requests.fill(&mut reader), if room => match n {
                    Ok(0) => {
                        if !requests.buf.is_empty() || requests.skipping.is_some() {
                            tracing::debug!("client went away in the middle of a request");
                        }
                        reading = false;
                    }
                    Ok(_) => received = Instant::now(),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => reading = false,
                    Err(e) => {
                        failure = Some(e.into());
                        reading = false;
                    }
                },
            }
        }
        let _ = out.w.shutdown().await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
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
    r.map_err(|e| failed(what, at, bytes, &e))
}

/// Logs a backend failure; the error value for the reply.
fn failed(what: &str, at: u64, bytes: u64, e: &super::backend::BackendError) -> Errno {
    tracing::warn!(op = what, offset = at, len = bytes, error = %e, "NBD request failed in the backend");
    e.errno()
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

fn encode_reply_header(out: &mut BytesMut, r: &Reply, structured: bool) {
    let data_len = r.data_len();
    match (&r.result, structured) {
        (Ok(_), true) if data_len > 0 => encode_chunk_header(
            out,
            CHUNK_FLAG_DONE,
            ChunkType::OFFSET_DATA,
            r.cookie,
            8 + data_len as u32,
        ),
        (Ok(_), true) if r.command == CommandType::READ => {
            encode_chunk_header(out, CHUNK_FLAG_DONE, ChunkType::NONE, r.cookie, 0);
            return;
        }
        (Err(errno), true) if r.command == CommandType::READ => {
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

    fn wire(
        command: CommandType,
        cookie: u64,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u32(super::super::wire::REQUEST_MAGIC);
        out.put_u16(0);
        out.put_u16(command.0);
        out.put_u64(cookie);
        out.put_u64(offset);
        out.put_u32(length);
        out.put_slice(payload);
        out
    }

    #[test]
    fn requests_and_write_payloads_are_cut_from_one_read() {
        let l = limits();
        let now = Instant::now();
        let mut r = RequestReader::new();
        r.buf
            .extend_from_slice(&wire(CommandType::WRITE, 1, 0, 512, &[7u8; 512]));
        r.buf
            .extend_from_slice(&wire(CommandType::READ, 2, 512, 512, &[]));
        r.buf
            .extend_from_slice(&wire(CommandType::WRITE, 3, 1024, 1024, &[8u8; 100]));
        let base = r.buf.as_ptr() as usize;
        match r.next(&l, now).unwrap() {
            Step::Run(
                Operation::Write {
                    offset: 0, data, ..
                },
                reply,
            ) => {
                assert_eq!(reply.cookie, 1);
                assert_eq!(&data[..], &[7u8; 512][..]);
                assert_eq!(
                    data.as_ptr() as usize,
                    base + REQUEST_LEN,
                    "a slice, not a copy"
                );
            }
            _ => panic!("expected the first WRITE"),
        }
        assert!(matches!(
            r.next(&l, now).unwrap(),
            Step::Run(
                Operation::Read {
                    offset: 512,
                    len: 512
                },
                _
            )
        ));
        // The third request's payload is not all there yet.
        assert!(matches!(r.next(&l, now).unwrap(), Step::NeedMore));
        assert!(r.buf.capacity() >= REQUEST_LEN + 1024);
        r.buf.extend_from_slice(&[8u8; 924]);
        match r.next(&l, now).unwrap() {
            Step::Run(
                Operation::Write {
                    offset: 1024, data, ..
                },
                reply,
            ) => {
                assert_eq!(reply.cookie, 3);
                assert_eq!(&data[..], &[8u8; 1024][..]);
            }
            _ => panic!("expected the second WRITE"),
        }
        assert!(matches!(r.next(&l, now).unwrap(), Step::NeedMore));
        assert!(r.buf.is_empty());
    }

    #[test]
    fn a_too_long_write_is_skipped_then_refused() {
        let l = limits();
        let now = Instant::now();
        let mut r = RequestReader::new();
        let len = l.max_request + 512;
        r.buf
            .extend_from_slice(&wire(CommandType::WRITE, 9, 0, len, &[1u8; 1000]));
        assert!(matches!(r.next(&l, now).unwrap(), Step::NeedMore));
        assert!(r.buf.is_empty(), "skipped bytes are dropped as they come");
        r.buf.extend_from_slice(&vec![1u8; len as usize - 1000]);
        r.buf
            .extend_from_slice(&wire(CommandType::DISC, 10, 0, 0, &[]));
        match r.next(&l, now).unwrap() {
            Step::Answer(reply) => {
                assert_eq!(reply.cookie, 9);
                assert_eq!(reply.result, Err(Errno::EINVAL));
            }
            _ => panic!("expected the refusal"),
        }
        assert!(matches!(r.next(&l, now).unwrap(), Step::Disconnect));
        r.buf
            .extend_from_slice(&wire(CommandType::WRITE, 11, 0, u32::MAX, &[]));
        assert!(matches!(
            r.next(&l, now),
            Err(TransmissionError::PayloadTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn shutdown_does_not_wait_forever_for_a_client_that_stops_reading() {
        use super::super::mem_backend::MemBackend;
        use super::super::wire::TransmissionFlags;
        let (mut client, server) = tokio::io::duplex(4096);
        let (r, w) = tokio::io::split(server);
        let conn = Connection {
            backend: Arc::new(MemBackend::new(1 << 20)),
            negotiated: Negotiated {
                structured_replies: false,
                flags: TransmissionFlags(0),
            },
            limits: limits(),
            max_in_flight: 4,
            observer: None,
            counters: Arc::new(ServerCounters::default()),
            busy_poll: None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let serving = tokio::spawn(conn.run(r, w, stop_rx));
        for cookie in 0..4 {
            let req = wire(CommandType::READ, cookie, 0, 64 * 1024, &[]);
            client.write_all(&req).await.unwrap();
        }
        // The replies fill the pipe; the client reads none of them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!serving.is_finished());
        stop_tx.send(true).unwrap();
        let t = Instant::now();
        tokio::time::timeout(SHUTDOWN_WRITE_GRACE * 6, serving)
            .await
            .expect("connection ended after shutdown")
            .unwrap()
            .unwrap();
        assert!(t.elapsed() >= SHUTDOWN_WRITE_GRACE / 2);
        drop(client);
    }

    #[test]
    fn pieces_split() {
        let v: Vec<_> = pieces(100, 250, 100).collect();
        assert_eq!(v, vec![(100, 100), (200, 100), (300, 50)]);
        assert_eq!(pieces(0, 0, 100).count(), 0);
    }
}
