//! RFC 7143 sections 4.2.2 (StatSN, ExpCmdSN, MaxCmdSN) and 11.2 (PDU layout): the sending half
//! of a full-feature-phase connection.
//!
//! Every PDU of a session goes through one [`Outbox`]: PDUs are handed over in order, then,
//! under one lock, each gets its sequence numbers and is encoded onto the end of one byte
//! queue, so StatSN increases strictly in sending order whatever order commands finish in, a
//! PDU's bytes are never interleaved with another's, and a command's Data-In precedes its
//! response. Whoever holds the lock writes the queue's head to the socket without blocking:
//! the thread that finished a command (an I/O thread included) sends its response itself,
//! with no hand-off to another thread; while the reader task is busy with received PDUs it
//! takes those answers along with its own in one write instead. When the socket would block,
//! the bytes stay queued and the writer task ([`run_writer`]) waits for room and sends them.
//! Headers, padding and digests are encoded into one buffer; payloads are the `Bytes` the
//! logical unit produced, never copied (small ones excepted).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::pdu::{trailer, Pdu, RESERVED_TAG};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Payloads up to this size are copied next to their header instead of taking an iovec.
const INLINE_DATA_MAX: usize = 2048;
/// Most buffers handed to one vectored write (IOV_MAX is 1024 on Linux).
const MAX_IOVECS: usize = 128;
/// Capacity the header buffer is given back when it runs low.
const HEADER_BUFFER: usize = 64 * 1024;

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

/// Encoded bytes waiting for the socket, in sending order: `chunks` first, then `tail`.
#[derive(Debug)]
struct Queue {
    /// The socket; None once the connection is closed.
    sock: Option<Arc<OwnedWriteHalf>>,
    /// The next StatSN to assign.
    stat_sn: u32,
    /// PDUs taken from `incoming` (kept for its capacity).
    taken: Vec<Pdu>,
    /// Whole buffers (big payloads, and header runs cut before them).
    chunks: VecDeque<Bytes>,
    /// Bytes of `chunks[0]` already written.
    head_written: usize,
    /// Headers (and small payloads) encoded after the last chunk.
    tail: BytesMut,
    /// Bytes queued and not yet written.
    unsent: usize,
    /// The writer task was told there is work that only it can do.
    writer_kicked: bool,
    /// A write failed or the connection was closed: everything is discarded from now on.
    failed: bool,
}

/// What a write attempt left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    /// Everything queued is on the socket.
    Empty,
    /// The socket would block; bytes remain queued.
    Blocked,
    /// The connection is unusable; nothing will be sent.
    Failed,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    /// Encodes `pdu` (already stamped) after everything queued.
    fn push(&mut self, pdu: &Pdu, digests: DigestConfig) {
        if self.tail.capacity() - self.tail.len() < 1024 {
            self.tail.reserve(HEADER_BUFFER);
        }
        let before = self.tail.len();
        pdu.encode_header(digests, &mut self.tail);
        self.unsent += self.tail.len() - before;
        let Some(data) = pdu.data().filter(|d| !d.is_empty()) else {
            return;
        };
        if data.len() <= INLINE_DATA_MAX {
            self.tail.extend_from_slice(data);
        } else {
            if !self.tail.is_empty() {
                self.chunks.push_back(self.tail.split().freeze());
            }
            self.chunks.push_back(data.clone());
        }
        let (t, n) = trailer(data, digests);
        self.tail.extend_from_slice(&t[..n]);
        self.unsent += data.len() + n;
    }

    /// Drops `n` written bytes off the front.
    fn consume(&mut self, mut n: usize) {
        self.unsent -= n;
        while n > 0 {
            match self.chunks.front() {
                Some(front) => {
                    let left = front.len() - self.head_written;
                    if n >= left {
                        n -= left;
                        self.chunks.pop_front();
                        self.head_written = 0;
                    } else {
                        self.head_written += n;
                        n = 0;
                    }
                }
                None => {
                    self.tail.advance(n);
                    n = 0;
                }
            }
        }
        if self.tail.is_empty() {
            self.tail.clear();
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.chunks.clear();
        self.head_written = 0;
        self.tail.clear();
        self.unsent = 0;
    }

    /// Writes from the front without blocking until the queue is empty or the socket is full.
    fn write_out(&mut self) -> Flushed {
        loop {
            if self.failed {
                return Flushed::Failed;
            }
            if self.is_empty() {
                return Flushed::Empty;
            }
            let Some(sock) = self.sock.as_ref() else {
                self.fail();
                return Flushed::Failed;
            };
            let r = if self.chunks.is_empty() {
                sock.try_write(&self.tail)
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
                let mut n = 0;
                for (i, c) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                    let from = if i == 0 { self.head_written } else { 0 };
                    iov[n] = IoSlice::new(&c[from..]);
                    n += 1;
                }
                if n < MAX_IOVECS && !self.tail.is_empty() {
                    iov[n] = IoSlice::new(&self.tail);
                    n += 1;
                }
                sock.try_write_vectored(&iov[..n])
            };
            match r {
                Ok(0) => {
                    tracing::debug!("socket accepts no more bytes: output discarded");
                    self.fail();
                    return Flushed::Failed;
                }
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "writing to the connection: output discarded");
                    self.fail();
                    return Flushed::Failed;
                }
            }
        }
    }
}

/// The sending side of one connection, shared by the reader task, the command tasks, the I/O
/// threads and the writer task.
///
/// Handing PDUs over ([`Outbox::queue`]) only appends them to `incoming`, a list no one holds
/// for more than a copy. Writing ([`Outbox::flush`]) needs `queue`: its holder moves everything
/// handed over so far into the byte queue, stamping each PDU, and writes. A thread that finds
/// `queue` held does not wait: the holder looks at `incoming` again after letting go and sends
/// what arrived meanwhile, so a thread that finished a command never waits for another's write.
#[derive(Debug)]
pub(crate) struct Outbox {
    incoming: Mutex<Vec<Pdu>>,
    queue: Mutex<Queue>,
    /// The reader task is handling PDUs and flushes before it next waits for the socket.
    reader_busy: AtomicBool,
    /// `Queue::unsent` as of the last write attempt (read without taking the lock).
    unsent: AtomicUsize,
    window: Arc<CmdWindow>,
    digests: DigestConfig,
    /// Wakes the writer task: bytes are queued behind a full socket.
    kick: Notify,
    /// Signalled whenever the writer task has emptied the queue or given up.
    drained: Notify,
}

impl Outbox {
    /// An outbox writing to `sock`; `stat_sn` is the next StatSN to assign.
    pub(crate) fn new(
        sock: OwnedWriteHalf,
        window: Arc<CmdWindow>,
        digests: DigestConfig,
        stat_sn: u32,
    ) -> Outbox {
        Outbox {
            incoming: Mutex::new(Vec::new()),
            queue: Mutex::new(Queue {
                sock: Some(Arc::new(sock)),
                stat_sn,
                taken: Vec::new(),
                chunks: VecDeque::new(),
                head_written: 0,
                tail: BytesMut::with_capacity(HEADER_BUFFER),
                unsent: 0,
                writer_kicked: false,
                failed: false,
            }),
            reader_busy: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            window,
            digests,
            kick: Notify::new(),
            drained: Notify::new(),
        }
    }

    fn incoming(&self) -> MutexGuard<'_, Vec<Pdu>> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, Queue>> {
        match self.queue.try_lock() {
            Ok(q) => Some(q),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Hands `pdus` over to be sent, in this order, after everything handed over before; they
    /// go out with the next [`Outbox::flush`] (by this thread or any other).
    pub(crate) fn queue(&self, pdus: impl IntoIterator<Item = Pdu>) {
        self.incoming().extend(pdus);
    }

    /// Sends what was handed over, as far as the socket takes it without blocking (the writer
    /// task sends the rest). Returns at once if another thread is writing: that one sends it.
    pub(crate) fn flush(&self) {
        while !self.incoming().is_empty() {
            let Some(mut q) = self.try_lock() else {
                return;
            };
            self.pump(&mut q);
        }
    }

    /// The reader task says it is handling PDUs (`true`), or is about to flush and wait for the
    /// socket (`false`, then it flushes).
    pub(crate) fn reader_busy(&self, busy: bool) {
        self.reader_busy.store(busy, Ordering::Relaxed);
        // Pairs with the fence in `send`: either the sender sees the reader idle, or the
        // reader's next flush sees what the sender handed over.
        fence(Ordering::SeqCst);
    }

    /// Hands `pdus` over and sends them: from this thread, unless the reader task is busy and
    /// will flush them with its own answers in one write before it waits for the socket.
    pub(crate) fn send(&self, pdus: impl IntoIterator<Item = Pdu>) {
        self.queue(pdus);
        fence(Ordering::SeqCst);
        if !self.reader_busy.load(Ordering::Relaxed) {
            self.flush();
        }
    }

    /// Moves everything handed over into the byte queue, stamping each PDU in turn, and writes.
    fn pump(&self, q: &mut Queue) -> Flushed {
        let mut taken = std::mem::take(&mut q.taken);
        std::mem::swap(&mut *self.incoming(), &mut taken);
        for mut pdu in taken.drain(..) {
            if !q.failed {
                stamp(&mut pdu, &mut q.stat_sn, &self.window);
                q.push(&pdu, self.digests);
            }
        }
        q.taken = taken;
        let r = q.write_out();
        self.unsent.store(q.unsent, Ordering::Relaxed);
        if r == Flushed::Blocked && !q.writer_kicked {
            q.writer_kicked = true;
            self.kick.notify_one();
        }
        r
    }

    /// [`Outbox::pump`] under a lock taken by waiting, then the look at `incoming` that other
    /// threads count on from a holder.
    fn pump_waiting(&self, after: impl FnOnce(&mut Queue, Flushed)) -> Flushed {
        let r = {
            let mut q = self.lock();
            let r = self.pump(&mut q);
            after(&mut q, r);
            r
        };
        self.flush();
        r
    }

    /// Bytes encoded and waiting for the socket after the last write attempt (PDUs handed
    /// over but not yet encoded aside).
    pub(crate) fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    /// Waits until everything handed over so far is written; false if the connection failed
    /// or `timeout` passed first.
    pub(crate) async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            match self.pump_waiting(|_, _| {}) {
                Flushed::Empty => return true,
                Flushed::Failed => return false,
                Flushed::Blocked => {}
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return false;
            }
        }
    }

    /// Discards whatever is queued and releases the socket (its write side shuts down once
    /// the writer task is gone too); later PDUs are dropped.
    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.fail();
        q.sock = None;
        self.unsent.store(0, Ordering::Relaxed);
        self.incoming().clear();
    }
}

/// The writer task: sends whatever stays queued behind a full socket, waiting for room.
pub(crate) async fn run_writer(out: Arc<Outbox>) {
    loop {
        out.kick.notified().await;
        loop {
            let mut sock = None;
            out.pump_waiting(|q, r| match r {
                Flushed::Blocked => sock = q.sock.clone(),
                Flushed::Empty | Flushed::Failed => q.writer_kicked = false,
            });
            let Some(sock) = sock else {
                out.drained.notify_waiters();
                break;
            };
            if let Err(e) = sock.writable().await {
                tracing::debug!(error = %e, "waiting for the connection: output discarded");
                out.lock().fail();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use iscsi_proto::framing::PduDecoder;
    use iscsi_proto::limits::Limits;
    use iscsi_proto::pdu::Lun;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    use super::*;
    use crate::lu::ScsiOutcome;
    use crate::scsi_task::{respond, CommandInfo};

    const SEGMENT: usize = 4096;
    const READ_LEN: usize = 3 * SEGMENT;

    fn pattern(itt: u32) -> Bytes {
        (0..READ_LEN)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(itt) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// Even tags: a 12 KiB READ (three Data-In, status in the last); odd: a WRITE's response.
    fn answer(itt: u32) -> Vec<Pdu> {
        let read = itt.is_multiple_of(2);
        let info = CommandInfo {
            itt,
            lun: Lun::default(),
            lun_index: Some(0),
            cdb: Bytes::new(),
            edtl: if read { READ_LEN as u32 } else { 4096 },
            read,
            write: !read,
            write_len: if read { 0 } else { 4096 },
        };
        let data = if read { pattern(itt) } else { Bytes::new() };
        respond(
            &info,
            ScsiOutcome::good(data),
            info.write_len,
            1,
            SEGMENT,
            1 << 20,
        )
    }

    /// A connected pair: our sending half (with a tiny send buffer) and the peer.
    async fn pair() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_send_buffer_size(4096).unwrap();
        let ours = sock.connect(listener.local_addr().unwrap()).await.unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        let (_read, write) = ours.into_split();
        (write, peer)
    }

    async fn read_pdus(peer: &mut TcpStream, digests: DigestConfig, count: usize) -> Vec<Pdu> {
        let mut decoder = PduDecoder::new(Limits::new(), digests);
        let mut buf = BytesMut::with_capacity(1 << 20);
        let mut got = Vec::with_capacity(count);
        while got.len() < count {
            let n = tokio::time::timeout(Duration::from_secs(30), peer.read_buf(&mut buf))
                .await
                .expect("PDUs stopped coming")
                .unwrap();
            assert!(n > 0, "connection closed after {} PDUs", got.len());
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert!(buf.is_empty(), "bytes after the last PDU");
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_sending_at_once_keep_pdus_whole_and_statsn_in_order() {
        const THREADS: u32 = 4;
        const PER_THREAD: u32 = 150;
        const FIRST_STAT_SN: u32 = u32::MAX - 10;
        let digests = DigestConfig {
            header: true,
            data: true,
        };
        let (write, mut peer) = pair().await;
        let window = Arc::new(CmdWindow::new(7, 64));
        let out = Arc::new(Outbox::new(write, window, digests, FIRST_STAT_SN));
        let writer = tokio::spawn(run_writer(out.clone()));
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let out = out.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        out.queue(answer(t * PER_THREAD + i));
                        out.flush();
                    }
                })
            })
            .collect();
        // Nobody reads for a while: the socket fills and the writer task takes over.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let commands = THREADS * PER_THREAD;
        let total = (0..commands).map(|itt| answer(itt).len()).sum();
        let got = read_pdus(&mut peer, digests, total).await;
        for s in senders {
            s.join().unwrap();
        }
        assert!(out.drain(Duration::from_secs(5)).await);

        let mut stat_sn = FIRST_STAT_SN;
        let mut seen: HashMap<u32, usize> = HashMap::new();
        let mut at = 0;
        while at < got.len() {
            let itt = got[at].itt();
            assert!(seen.insert(itt, at).is_none(), "tag {itt} answered twice");
            let expect = answer(itt);
            for (k, want) in expect.iter().enumerate() {
                let pdu = &got[at + k];
                assert_eq!(pdu.itt(), itt, "answer of tag {itt} interleaved");
                match (pdu, want) {
                    (Pdu::DataIn(d), Pdu::DataIn(w)) => {
                        assert_eq!((d.data_sn, d.buffer_offset), (w.data_sn, w.buffer_offset));
                        assert_eq!(d.data, w.data);
                        assert_eq!(d.status, w.status);
                        if d.status.is_some() {
                            assert_eq!(d.stat_sn, stat_sn);
                            stat_sn = stat_sn.wrapping_add(1);
                        }
                        assert_eq!((d.exp_cmd_sn, d.max_cmd_sn), (7, 70));
                    }
                    (Pdu::ScsiResponse(r), Pdu::ScsiResponse(_)) => {
                        assert_eq!(r.stat_sn, stat_sn);
                        stat_sn = stat_sn.wrapping_add(1);
                    }
                    (g, w) => panic!("got {:?}, expected {:?}", g.opcode(), w.opcode()),
                }
            }
            at += expect.len();
        }
        assert_eq!(seen.len(), commands as usize);
        out.close();
        writer.abort();
    }

    #[tokio::test]
    async fn a_busy_reader_sends_what_finished_meanwhile_with_its_own_answers() {
        let (write, mut peer) = pair().await;
        let window = Arc::new(CmdWindow::new(1, 8));
        let out = Arc::new(Outbox::new(write, window, DigestConfig::NONE, 10));
        // Reader idle: a finished command goes out from the finishing thread at once.
        let t = out.clone();
        std::thread::spawn(move || t.send(answer(1)))
            .join()
            .unwrap();
        let got = read_pdus(&mut peer, DigestConfig::NONE, 1).await;
        assert!(matches!(&got[0], Pdu::ScsiResponse(r) if r.itt == 1 && r.stat_sn == 10));
        // Reader busy: the answer waits for the reader's flush, then both go out in order.
        out.reader_busy(true);
        let t = out.clone();
        std::thread::spawn(move || t.send(answer(3)))
            .join()
            .unwrap();
        assert!(
            !out.incoming().is_empty(),
            "sent although the reader flushes soon"
        );
        out.queue(answer(5));
        out.reader_busy(false);
        out.flush();
        let got = read_pdus(&mut peer, DigestConfig::NONE, 2).await;
        let seen: Vec<(u32, u32)> = got
            .iter()
            .map(|p| match p {
                Pdu::ScsiResponse(r) => (r.itt, r.stat_sn),
                other => panic!("unexpected {:?}", other.opcode()),
            })
            .collect();
        assert_eq!(seen, [(3, 11), (5, 12)]);
    }

    #[test]
    fn unsent_counts_every_queued_byte() {
        let digests = DigestConfig {
            header: true,
            data: true,
        };
        let mut q = Queue {
            sock: None,
            stat_sn: 0,
            taken: Vec::new(),
            chunks: VecDeque::new(),
            head_written: 0,
            tail: BytesMut::new(),
            unsent: 0,
            writer_kicked: false,
            failed: false,
        };
        let held = |q: &Queue| q.chunks.iter().map(Bytes::len).sum::<usize>() + q.tail.len();
        for itt in 0..4 {
            for pdu in answer(itt) {
                q.push(&pdu, digests);
            }
        }
        assert!(q.unsent > 2 * READ_LEN);
        assert_eq!(q.unsent, held(&q));
        q.consume(100);
        assert_eq!(q.unsent, held(&q) - q.head_written);
        q.fail();
        assert_eq!(q.unsent, 0);
    }

    #[tokio::test]
    async fn closed_outbox_discards_and_releases_the_socket() {
        let (write, mut peer) = pair().await;
        let window = Arc::new(CmdWindow::new(1, 8));
        let out = Arc::new(Outbox::new(write, window, DigestConfig::NONE, 5));
        out.queue(answer(1));
        assert!(out.drain(Duration::from_secs(5)).await);
        out.close();
        out.queue(answer(3));
        out.flush();
        assert!(!out.drain(Duration::from_secs(1)).await);
        let got = read_pdus(&mut peer, DigestConfig::NONE, 1).await;
        assert!(matches!(&got[0], Pdu::ScsiResponse(r) if r.stat_sn == 5 && r.itt == 1));
        // The write side is shut down: the peer reads end of stream.
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }
}
