//! RFC 7143 sections 3.2, 4.2, 6.3.5, 7.1 and 11: a normal session over one connection.
//!
//! [`Session`] is a cheap, clonable handle. Commands are numbered with CmdSN and sent only while
//! the target's window (ExpCmdSN..MaxCmdSN) has room; the writer task batches outgoing PDUs into
//! vectored writes; the reader task ([`crate::reader`]) matches responses to tasks by ITT. When
//! the connection drops, a background task logs in again with the same ISID and TSIH 0
//! (session reinstatement, RFC 7143 section 6.3.5) with backoff, and every command that had
//! not completed is sent again; callers fail only after `replacement_timeout`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use iscsi_proto::pdu::{
    DataOut, LogoutReason, LogoutRequest, Lun, NopOut, ScsiCommand, ScsiStatus, TaskAttr,
    TaskMgmtRequest, TmfFunction, TmfResponse, RESERVED_TAG,
};
use iscsi_proto::scsi::luns::encode_lun;
use iscsi_proto::scsi::{Sense, SenseKey};
use iscsi_proto::text::{SessionParams, SessionType};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

use crate::config::{random_isid, SessionConfig};
use crate::error::{IscsiError, Result};
use crate::login::{connect_and_login, digests_of, LoggedIn};
use crate::splice::SplicePipe;
use crate::task::{Reply, ScsiOutcome, ScsiRequest, Sink, Task, TaskKind, WriteData};
use crate::writer::{run_writer, OutPdu, OutTx};

/// Builds a task's PDUs once it has an ITT: returns whether it takes a CmdSN, and the PDUs.
type BuildPdus<'a> =
    dyn FnMut(&mut State, u32, &Conn, &TaskKind) -> (bool, Vec<OutPdu>) + Send + 'a;

/// What a SCSI command returned.
#[derive(Debug, Clone)]
pub struct ScsiResult {
    pub status: ScsiStatus,
    /// Data-In (empty for commands without).
    pub data: Bytes,
    /// Data-In bytes that went into the caller's pipe instead of `data`
    /// ([`Session::read_to_pipe`]).
    pub piped: usize,
    /// Bytes the target reported as not transferred.
    pub residual: u32,
}

/// The negotiated limits that shape the PDUs of one connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_send_dsl: usize,
    pub first_burst: usize,
    pub max_burst: usize,
    pub immediate_data: bool,
    pub initial_r2t: bool,
}

impl Limits {
    fn of(p: &SessionParams) -> Limits {
        Limits {
            max_send_dsl: p.max_send_data_segment_length.max(512) as usize,
            first_burst: p.first_burst_length as usize,
            max_burst: p.max_burst_length.max(512) as usize,
            immediate_data: p.immediate_data,
            initial_r2t: p.initial_r2t,
        }
    }
}

/// The live connection.
pub(crate) struct Conn {
    pub tx: OutTx,
    pub generation: u64,
    pub limits: Limits,
    tasks: Vec<AbortHandle>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(crate) struct State {
    pub conn: Option<Conn>,
    pub generation: u64,
    pub params: SessionParams,
    pub tsih: u16,
    pub cmd_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
    next_itt: u32,
    pub tasks: HashMap<u32, Task>,
    /// Submitters waiting for the window or a connection.
    pub waiters: usize,
    /// When the connection dropped (None while connected).
    pub down_since: Option<Instant>,
    reconnecting: bool,
}

impl State {
    fn alloc_itt(&mut self) -> u32 {
        loop {
            let itt = self.next_itt;
            self.next_itt = self.next_itt.wrapping_add(1);
            if itt != RESERVED_TAG && !self.tasks.contains_key(&itt) {
                return itt;
            }
        }
    }

    fn window_open(&self) -> bool {
        (self.max_cmd_sn.wrapping_sub(self.cmd_sn) as i32) >= 0
    }

    /// Takes ExpCmdSN / MaxCmdSN from a response (RFC 7143 section 4.2.2.1); returns whether
    /// the window grew.
    pub fn update_window(&mut self, exp_cmd_sn: u32, max_cmd_sn: u32) -> bool {
        // MaxCmdSN < ExpCmdSN - 1 (serial) carries no window information.
        if (max_cmd_sn.wrapping_sub(exp_cmd_sn.wrapping_sub(1)) as i32) < 0 {
            return false;
        }
        if (exp_cmd_sn.wrapping_sub(self.exp_cmd_sn) as i32) > 0 {
            self.exp_cmd_sn = exp_cmd_sn;
        }
        if (max_cmd_sn.wrapping_sub(self.max_cmd_sn) as i32) > 0 {
            self.max_cmd_sn = max_cmd_sn;
            return true;
        }
        false
    }
}

/// One submitter counted in [`State::waiters`] while it waits for the window or a connection.
struct Waiting<'a>(&'a Inner);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiters -= 1;
    }
}

/// Shared by the handle and the connection tasks.
pub(crate) struct Inner {
    pub config: SessionConfig,
    pub isid: [u8; 6],
    state: Mutex<State>,
    /// Woken when the window opens or a connection comes up.
    pub window: Notify,
    /// ExpStatSN of the current connection, stamped on every PDU by the writer.
    pub exp_stat_sn: Arc<AtomicU32>,
    pub closed: AtomicBool,
    /// PDUs received so far (the keepalive pings only a quiet connection).
    pub rx_pdus: AtomicU64,
    block_lens: Mutex<HashMap<u64, u32>>,
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a received PDU's ExpCmdSN / MaxCmdSN into `st` and wakes the submitters waiting
    /// for room when the window grew.
    pub fn window_from(&self, st: &mut State, exp_cmd_sn: u32, max_cmd_sn: u32) {
        if st.update_window(exp_cmd_sn, max_cmd_sn) && st.waiters > 0 {
            self.window.notify_waiters();
        }
    }

    /// Advances ExpStatSN from a status-carrying PDU.
    pub fn saw_stat_sn(&self, stat_sn: u32) {
        let next = stat_sn.wrapping_add(1);
        let _ = self
            .exp_stat_sn
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                ((next.wrapping_sub(cur) as i32) > 0).then_some(next)
            });
    }

    /// The connection of generation `generation` failed: drop it, hand every outstanding task
    /// back to its caller for reissue, and start reconnecting.
    pub fn connection_lost(self: &Arc<Self>, generation: u64, why: &IscsiError) {
        let mut st = self.lock();
        if st.generation != generation || st.conn.is_none() {
            return;
        }
        if self.closed.load(Ordering::Acquire) {
            st.conn = None;
            return;
        }
        tracing::warn!(portal = %self.config.portal, error = %why, "iSCSI connection lost");
        st.conn = None;
        st.down_since = Some(Instant::now());
        for (_, mut t) in st.tasks.drain() {
            let r = match t.kind {
                TaskKind::Scsi { .. } => Ok(Reply::Reissue),
                _ => Err(why.clone()),
            };
            t.complete(r);
        }
        let spawn = !st.reconnecting && !self.closed.load(Ordering::Acquire);
        st.reconnecting = spawn || st.reconnecting;
        drop(st);
        self.window.notify_waiters();
        if spawn {
            let inner = self.clone();
            tokio::spawn(async move { inner.reconnect_loop().await });
        }
    }

    async fn reconnect_loop(self: Arc<Self>) {
        let mut delay = Duration::from_millis(50);
        loop {
            if self.closed.load(Ordering::Acquire) {
                self.lock().reconnecting = false;
                return;
            }
            let cmd_sn = self.lock().cmd_sn;
            match connect_and_login(&self.config, SessionType::Normal, self.isid, 0, cmd_sn).await {
                Ok(li) => {
                    tracing::info!(portal = %self.config.portal, "iSCSI session reinstated");
                    self.install(li);
                    self.lock().reconnecting = false;
                    self.window.notify_waiters();
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reconnect failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Makes a logged-in connection the session's connection and starts its tasks.
    fn install(self: &Arc<Self>, li: LoggedIn) {
        let LoggedIn {
            stream,
            params,
            tsih,
            cmd_sn,
            exp_cmd_sn,
            max_cmd_sn,
            exp_stat_sn,
        } = li;
        let digests = digests_of(&params);
        let limits = Limits::of(&params);
        let max_recv = params.max_recv_data_segment_length as usize;
        let (rd, wr) = stream.stream.into_split();
        let leftover = stream.buf;
        let (tx, rx) = mpsc::unbounded_channel::<OutPdu>();
        let mut st = self.lock();
        st.generation += 1;
        let generation = st.generation;
        self.exp_stat_sn.store(exp_stat_sn, Ordering::Release);
        let writer = {
            let inner = self.clone();
            let ess = self.exp_stat_sn.clone();
            tokio::spawn(async move {
                if let Err(e) = run_writer(rx, wr, digests, ess).await {
                    inner.connection_lost(generation, &IscsiError::Io(e.to_string()));
                }
            })
        };
        let reader = {
            let inner = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = crate::reader::run_reader(
                    inner.clone(),
                    generation,
                    rd,
                    leftover,
                    digests,
                    max_recv,
                    tx,
                )
                .await;
                let e = match r {
                    Ok(()) => IscsiError::Io("connection closed by the target".into()),
                    Err(e) => e,
                };
                inner.connection_lost(generation, &e);
            })
        };
        let mut handles = vec![writer.abort_handle(), reader.abort_handle()];
        if let Some(interval) = self.config.nop_interval {
            let weak = Arc::downgrade(self);
            let timeout = self.config.nop_timeout;
            let ka = tokio::spawn(async move {
                keepalive(weak, generation, interval, timeout).await;
            });
            handles.push(ka.abort_handle());
        }
        st.conn = Some(Conn {
            tx,
            generation,
            limits,
            tasks: handles,
        });
        st.params = params;
        st.tsih = tsih;
        st.cmd_sn = cmd_sn;
        st.exp_cmd_sn = exp_cmd_sn;
        st.max_cmd_sn = max_cmd_sn;
        st.down_since = None;
    }
}

/// Pings the target when the connection has been quiet for `interval`; declares the connection
/// dead when a ping stays unanswered for `timeout`.
async fn keepalive(
    weak: std::sync::Weak<Inner>,
    generation: u64,
    interval: Duration,
    timeout: Duration,
) {
    let mut seen = u64::MAX;
    loop {
        tokio::time::sleep(interval).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.lock().generation != generation {
            return;
        }
        let now = inner.rx_pdus.load(Ordering::Relaxed);
        let quiet = now == seen;
        seen = now;
        if !quiet {
            continue;
        }
        let session = Session {
            inner: inner.clone(),
            _owner: None,
        };
        match tokio::time::timeout(timeout, session.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                inner.connection_lost(generation, &IscsiError::Timeout("NOP-Out ping"));
                return;
            }
        }
    }
}

/// Closes the session when the last user handle goes away.
struct Owner(Arc<Inner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        let mut st = self.0.lock();
        st.conn = None;
        for (_, mut t) in st.tasks.drain() {
            t.complete(Err(IscsiError::Closed));
        }
        drop(st);
        self.0.window.notify_waiters();
    }
}

/// A logged-in session to one target. Cheap to clone; usable from many tasks at once.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
    _owner: Option<Arc<Owner>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("portal", &self.inner.config.portal)
            .field("target", &self.inner.config.target_name)
            .finish()
    }
}

/// The SCSI status a command may be retried after.
fn retryable(e: &IscsiError) -> bool {
    matches!(e, IscsiError::Busy | IscsiError::TaskSetFull)
        || matches!(e, IscsiError::CheckCondition { sense_key, .. } if *sense_key == SenseKey::UNIT_ATTENTION)
}

impl Session {
    /// Connects to `config.portal` and logs in to `config.target_name`.
    pub async fn connect(config: SessionConfig) -> Result<Session> {
        let isid = config.isid.unwrap_or_else(random_isid);
        let li = connect_and_login(&config, SessionType::Normal, isid, 0, 1).await?;
        let inner = Arc::new(Inner {
            config,
            isid,
            state: Mutex::new(State {
                conn: None,
                generation: 0,
                params: SessionParams::default(),
                tsih: 0,
                cmd_sn: 0,
                exp_cmd_sn: 0,
                max_cmd_sn: 0,
                next_itt: 0x100,
                tasks: HashMap::new(),
                waiters: 0,
                down_since: None,
                reconnecting: false,
            }),
            window: Notify::new(),
            exp_stat_sn: Arc::new(AtomicU32::new(0)),
            closed: AtomicBool::new(false),
            rx_pdus: AtomicU64::new(0),
            block_lens: Mutex::new(HashMap::new()),
        });
        inner.install(li);
        Ok(Session {
            _owner: Some(Arc::new(Owner(inner.clone()))),
            inner,
        })
    }

    /// The parameters negotiated at the latest login.
    pub fn params(&self) -> SessionParams {
        self.inner.lock().params.clone()
    }

    /// The TSIH the target assigned at the latest login.
    pub fn tsih(&self) -> u16 {
        self.inner.lock().tsih
    }

    /// The configuration the session was opened with.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// How many times the session has logged in (1 + reconnects).
    pub fn connection_generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Drops the current connection as if the network failed (the session reconnects).
    pub fn drop_connection(&self) {
        let g = self.inner.lock().generation;
        self.inner
            .connection_lost(g, &IscsiError::Io("connection dropped on request".into()));
    }

    /// Waits for the window and the connection, then registers the task and queues its PDUs.
    /// Returns the receiver of its completion.
    async fn submit(
        &self,
        mut kind: Option<TaskKind>,
        build: &mut BuildPdus<'_>,
    ) -> Result<oneshot::Receiver<Result<Reply>>> {
        let inner = &self.inner;
        loop {
            let notified = inner.window.notified();
            tokio::pin!(notified);
            let deadline = {
                let mut st = inner.lock();
                if inner.closed.load(Ordering::Acquire) {
                    return Err(IscsiError::Closed);
                }
                let kind_ref = kind.as_ref().expect("task kind present until queued");
                let immediate = !matches!(kind_ref, TaskKind::Scsi { .. });
                let ready = st.conn.is_some() && (immediate || st.window_open());
                if ready {
                    let itt = st.alloc_itt();
                    let (tx, rx) = oneshot::channel();
                    let conn = st.conn.take().expect("checked");
                    let (advance, pdus) = build(&mut st, itt, &conn, kind_ref);
                    let mut ok = true;
                    for p in pdus {
                        if conn.tx.send(p).is_err() {
                            ok = false;
                            break;
                        }
                    }
                    let generation = conn.generation;
                    st.conn = Some(conn);
                    let cmd_sn = st.cmd_sn;
                    if advance {
                        st.cmd_sn = st.cmd_sn.wrapping_add(1);
                    }
                    st.tasks.insert(
                        itt,
                        Task {
                            kind: kind.take().expect("checked"),
                            done: Some(tx),
                            generation,
                            cmd_sn,
                        },
                    );
                    if !ok {
                        drop(st);
                        inner.connection_lost(generation, &IscsiError::Io("writer stopped".into()));
                    }
                    return Ok(rx);
                }
                // Register while the state is locked: whoever opens the window or brings the
                // connection up does so under this lock and wakes us after.
                notified.as_mut().enable();
                st.waiters += 1;
                st.down_since.map(|t| t + inner.config.replacement_timeout)
            };
            // Counted out again however the wait ends, a dropped submitter included.
            let waiting = Waiting(inner);
            let timed_out = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), notified).await.is_err(),
                None => {
                    notified.await;
                    false
                }
            };
            drop(waiting);
            if timed_out && inner.lock().conn.is_none() {
                return Err(IscsiError::ReplacementTimeout(
                    inner.config.replacement_timeout,
                ));
            }
        }
    }

    /// Sends one SCSI command and waits for its status, reissuing it across reconnects. With
    /// a `sink`, in-order Data-In is spliced into that pipe; a reissued command uses none
    /// (the pipe is spoiled and `sink` emptied: the dropped connection's reader may still
    /// write to it).
    async fn run_once(
        &self,
        request: &ScsiRequest,
        sink: &mut Option<Arc<SplicePipe>>,
    ) -> Result<ScsiOutcome> {
        loop {
            let kind = TaskKind::Scsi {
                request: request.clone(),
                read_buf: (request.read_len > 0).then(|| match sink {
                    Some(_) => BytesMut::new(),
                    None => BytesMut::with_capacity(request.read_len as usize),
                }),
                sink: sink.clone().map(|pipe| Sink { pipe, spliced: 0 }),
            };
            let rx = self.submit(Some(kind), &mut build_scsi).await?;
            match rx.await {
                Ok(Ok(Reply::Scsi(o))) => return Ok(o),
                // The connection dropped: send it again once a new one is logged in; `submit`
                // gives up when none comes within the replacement timeout.
                Ok(Ok(Reply::Reissue)) => {
                    if let Some(p) = sink.take() {
                        p.spoil();
                    }
                    continue;
                }
                Ok(Ok(other)) => {
                    return Err(IscsiError::Protocol(format!(
                        "SCSI task completed as {other:?}"
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(IscsiError::Closed),
            }
        }
    }

    /// Runs a SCSI command: `cdb` to LUN `lun` with `data_out` as Data-Out and up to
    /// `data_in_len` bytes of Data-In. BUSY, TASK SET FULL and UNIT ATTENTION are retried.
    pub async fn execute(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: &[Bytes],
        data_in_len: u32,
    ) -> Result<ScsiResult> {
        self.execute_into(lun, cdb, data_out, data_in_len, &mut None)
            .await
    }

    /// [`Session::execute`], splicing Data-In into `sink` while it is `Some` (see
    /// [`crate::splice`]); the result's `piped` says how many bytes went there.
    pub(crate) async fn execute_into(
        &self,
        lun: u64,
        cdb: &[u8],
        data_out: &[Bytes],
        data_in_len: u32,
        sink: &mut Option<Arc<SplicePipe>>,
    ) -> Result<ScsiResult> {
        if cdb.len() > 16 {
            return Err(IscsiError::InvalidRequest("CDBs over 16 bytes".into()));
        }
        let mut c = [0u8; 16];
        c[..cdb.len()].copy_from_slice(cdb);
        let write = (!data_out.is_empty()).then(|| Arc::new(WriteData::new(data_out.to_vec())));
        let request = ScsiRequest {
            lun: Lun(encode_lun(lun)),
            cdb: c,
            read_len: data_in_len,
            write,
        };
        let start = Instant::now();
        let mut delay = Duration::from_millis(1);
        let mut unit_attentions = 0;
        loop {
            let o = self.run_once(&request, sink).await?;
            match outcome_to_result(o) {
                Ok(r) => return Ok(r),
                Err(e) if retryable(&e) => {
                    // The finished attempt's bytes (if any) must not precede the next one's.
                    if let Some(p) = sink.as_ref() {
                        p.discard()
                            .map_err(|e| IscsiError::Io(format!("Data-In pipe: {e}")))?;
                    }
                    if let IscsiError::CheckCondition { .. } = e {
                        unit_attentions += 1;
                        if unit_attentions > 8 {
                            return Err(e);
                        }
                        continue;
                    }
                    if start.elapsed() > self.inner.config.busy_retry_timeout {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// NOP-Out ping (RFC 7143 section 11.18); returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration> {
        let t = Instant::now();
        let rx = self
            .submit(Some(TaskKind::Nop), &mut |st, itt, _c, _k| {
                let nop = NopOut {
                    immediate: true,
                    itt,
                    ttt: RESERVED_TAG,
                    cmd_sn: st.cmd_sn,
                    ..Default::default()
                };
                (false, vec![OutPdu::header_only(nop.to_bhs())])
            })
            .await?;
        match rx.await {
            Ok(Ok(_)) => Ok(t.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IscsiError::Closed),
        }
    }

    async fn tmf(&self, function: TmfFunction, lun: u64, referenced: u32) -> Result<()> {
        let rx = self
            .submit(Some(TaskKind::Tmf), &mut |st, itt, _c, _k| {
                let req = TaskMgmtRequest {
                    immediate: true,
                    function,
                    lun: Lun(encode_lun(lun)),
                    itt,
                    referenced_task_tag: referenced,
                    cmd_sn: st.cmd_sn,
                    // RFC 7143 section 11.5.4: the CmdSN of the task to abort.
                    ref_cmd_sn: st.tasks.get(&referenced).map_or(st.cmd_sn, |t| t.cmd_sn),
                    ..Default::default()
                };
                (false, vec![OutPdu::header_only(req.to_bhs())])
            })
            .await?;
        match rx.await {
            Ok(Ok(Reply::Tmf(r))) if r == TmfResponse::FUNCTION_COMPLETE => Ok(()),
            Ok(Ok(Reply::Tmf(r))) if r == TmfResponse::TASK_DOES_NOT_EXIST => Ok(()),
            Ok(Ok(Reply::Tmf(r))) => Err(IscsiError::TaskManagement(format!("{r:?}"))),
            Ok(Ok(other)) => Err(IscsiError::Protocol(format!("TMF answered {other:?}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IscsiError::Closed),
        }
    }

    /// ABORT TASK for the task with Initiator Task Tag `itt` on `lun`.
    pub async fn abort_task(&self, lun: u64, itt: u32) -> Result<()> {
        self.tmf(TmfFunction::ABORT_TASK, lun, itt).await
    }

    /// LOGICAL UNIT RESET.
    pub async fn lun_reset(&self, lun: u64) -> Result<()> {
        self.tmf(TmfFunction::LOGICAL_UNIT_RESET, lun, RESERVED_TAG)
            .await
    }

    /// Logs out (closing the session) and stops reconnecting.
    pub async fn logout(&self) -> Result<()> {
        let rx = self
            .submit(Some(TaskKind::Logout), &mut |st, itt, _c, _k| {
                let req = LogoutRequest {
                    immediate: true,
                    reason: LogoutReason::CLOSE_SESSION,
                    itt,
                    cid: 0,
                    cmd_sn: st.cmd_sn,
                    exp_stat_sn: 0,
                };
                (false, vec![OutPdu::header_only(req.to_bhs())])
            })
            .await?;
        self.inner.closed.store(true, Ordering::Release);
        let r = tokio::time::timeout(self.inner.config.connect_timeout, rx).await;
        let mut st = self.inner.lock();
        st.conn = None;
        for (_, mut t) in st.tasks.drain() {
            t.complete(Err(IscsiError::Closed));
        }
        drop(st);
        self.inner.window.notify_waiters();
        match r {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(IscsiError::Closed),
            Err(_) => Err(IscsiError::Timeout("logout")),
        }
    }

    pub(crate) fn block_len_cached(&self, lun: u64) -> Option<u32> {
        self.inner
            .block_lens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lun)
            .copied()
    }

    pub(crate) fn set_block_len(&self, lun: u64, len: u32) {
        self.inner
            .block_lens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lun, len);
    }
}

/// Builds the SCSI Command PDU and its immediate / unsolicited data (RFC 7143 sections 11.3
/// and 4.2.5.2 on FirstBurstLength).
fn build_scsi(st: &mut State, itt: u32, conn: &Conn, kind: &TaskKind) -> (bool, Vec<OutPdu>) {
    let TaskKind::Scsi { request, .. } = kind else {
        unreachable!("build_scsi called for a SCSI task")
    };
    let l = conn.limits;
    let write_len = request.write.as_ref().map_or(0, |w| w.len);
    let mut cmd = ScsiCommand {
        immediate: false,
        final_bit: true,
        read: request.read_len > 0,
        write: write_len > 0,
        attr: TaskAttr::SIMPLE,
        lun: request.lun,
        itt,
        expected_data_transfer_length: if write_len > 0 {
            write_len as u32
        } else {
            request.read_len
        },
        cmd_sn: st.cmd_sn,
        cdb: request.cdb,
        ..Default::default()
    };
    let mut pdus = Vec::new();
    let mut cmd_data = Vec::new();
    if let Some(w) = &request.write {
        let immediate = if l.immediate_data {
            write_len.min(l.first_burst).min(l.max_send_dsl)
        } else {
            0
        };
        let unsolicited_end = if l.initial_r2t {
            immediate
        } else {
            write_len.min(l.first_burst)
        };
        if immediate > 0 {
            w.slice_into(0, immediate, &mut cmd_data);
        }
        cmd.final_bit = unsolicited_end == immediate;
        let mut bhs = cmd.to_bhs();
        bhs.set_data_segment_length(0);
        pdus.push(OutPdu {
            bhs,
            data: cmd_data,
        });
        data_out_pdus(
            w,
            request.lun,
            itt,
            RESERVED_TAG,
            immediate,
            unsolicited_end - immediate,
            l.max_send_dsl,
            &mut pdus,
        );
    } else {
        pdus.push(OutPdu::header_only(cmd.to_bhs()));
    }
    (true, pdus)
}

/// Data-Out PDUs for `[offset, offset + len)` of `w`, each at most `max_dsl` bytes, DataSN from
/// 0, F on the last (RFC 7143 section 11.7).
#[allow(clippy::too_many_arguments)]
pub(crate) fn data_out_pdus(
    w: &WriteData,
    lun: Lun,
    itt: u32,
    ttt: u32,
    offset: usize,
    len: usize,
    max_dsl: usize,
    out: &mut Vec<OutPdu>,
) {
    let end = offset + len;
    let mut at = offset;
    let mut data_sn = 0u32;
    while at < end {
        let n = (end - at).min(max_dsl);
        let mut data = Vec::with_capacity(1);
        w.slice_into(at, n, &mut data);
        let d = DataOut {
            final_bit: at + n == end,
            lun,
            itt,
            ttt,
            exp_stat_sn: 0,
            data_sn,
            buffer_offset: at as u32,
            data: Bytes::new(),
        };
        out.push(OutPdu {
            bhs: d.to_bhs(),
            data,
        });
        at += n;
        data_sn += 1;
    }
}

/// Turns status and sense into a result.
fn outcome_to_result(o: ScsiOutcome) -> Result<ScsiResult> {
    if o.response != 0 {
        return Err(IscsiError::TargetFailure(o.response));
    }
    match o.status {
        ScsiStatus::GOOD | ScsiStatus::CONDITION_MET => Ok(ScsiResult {
            status: o.status,
            data: o.data,
            piped: o.piped,
            residual: o.underflow.unwrap_or(0),
        }),
        ScsiStatus::CHECK_CONDITION => match Sense::decode(&o.sense) {
            Ok(s) => Err(IscsiError::CheckCondition {
                sense_key: s.key,
                asc: s.asc.asc(),
                ascq: s.asc.ascq(),
            }),
            Err(_) => Err(IscsiError::CheckConditionNoSense),
        },
        ScsiStatus::RESERVATION_CONFLICT => Err(IscsiError::ReservationConflict),
        ScsiStatus::BUSY => Err(IscsiError::Busy),
        ScsiStatus::TASK_SET_FULL => Err(IscsiError::TaskSetFull),
        ScsiStatus::TASK_ABORTED => Err(IscsiError::TaskAborted),
        s => Err(IscsiError::Status(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_proto::pdu::Opcode;

    #[test]
    fn data_out_splits_by_segment_length() {
        let w = WriteData::new(vec![
            Bytes::from(vec![1u8; 5000]),
            Bytes::from(vec![2u8; 3000]),
        ]);
        let mut out = Vec::new();
        data_out_pdus(&w, Lun::default(), 7, 9, 1000, 6000, 2048, &mut out);
        assert_eq!(out.len(), 3);
        let mut expect_off = 1000u32;
        for (i, p) in out.iter().enumerate() {
            assert_eq!(p.bhs.opcode(), Opcode::DATA_OUT);
            let d = DataOut::from_bhs(&p.bhs, Bytes::new());
            assert_eq!(d.itt, 7);
            assert_eq!(d.ttt, 9);
            assert_eq!(d.data_sn, i as u32);
            assert_eq!(d.buffer_offset, expect_off);
            assert_eq!(d.final_bit, i == 2);
            let len: usize = p.data.iter().map(Bytes::len).sum();
            expect_off += len as u32;
        }
        assert_eq!(expect_off, 7000);
        // The second PDU (3048..5096) straddles both buffers.
        assert_eq!(out[1].data.len(), 2);
    }

    #[test]
    fn window_uses_serial_arithmetic() {
        let mut st = State {
            conn: None,
            generation: 0,
            params: SessionParams::default(),
            tsih: 0,
            cmd_sn: u32::MAX - 1,
            exp_cmd_sn: u32::MAX - 1,
            max_cmd_sn: u32::MAX - 1,
            next_itt: 0,
            tasks: HashMap::new(),
            waiters: 0,
            down_since: None,
            reconnecting: false,
        };
        assert!(st.window_open());
        st.cmd_sn = st.cmd_sn.wrapping_add(1);
        assert!(!st.window_open());
        // A window that wraps past 2^32.
        assert!(st.update_window(u32::MAX, 5));
        assert!(st.window_open());
        // MaxCmdSN < ExpCmdSN - 1 carries no window and is ignored.
        assert!(!st.update_window(10, 3));
        assert_eq!(st.max_cmd_sn, 5);
        // A stale (smaller) MaxCmdSN never shrinks the window.
        assert!(!st.update_window(u32::MAX, 2));
        assert_eq!(st.max_cmd_sn, 5);
    }

    #[test]
    fn itts_skip_reserved_and_busy_tags() {
        let mut st = State {
            conn: None,
            generation: 0,
            params: SessionParams::default(),
            tsih: 0,
            cmd_sn: 0,
            exp_cmd_sn: 0,
            max_cmd_sn: 0,
            next_itt: RESERVED_TAG,
            tasks: HashMap::new(),
            waiters: 0,
            down_since: None,
            reconnecting: false,
        };
        assert_eq!(st.alloc_itt(), 0);
        st.tasks.insert(
            1,
            Task {
                kind: TaskKind::Nop,
                done: None,
                generation: 0,
                cmd_sn: 0,
            },
        );
        assert_eq!(st.alloc_itt(), 2);
    }

    #[test]
    fn status_decoding() {
        let sense = Sense::new(
            SenseKey::ILLEGAL_REQUEST,
            iscsi_proto::scsi::Asc::new(0x21, 0x00),
        )
        .to_fixed();
        let o = ScsiOutcome {
            response: 0,
            status: ScsiStatus::CHECK_CONDITION,
            sense: Bytes::copy_from_slice(&sense),
            data: Bytes::new(),
            piped: 0,
            underflow: None,
        };
        match outcome_to_result(o) {
            Err(IscsiError::CheckCondition {
                sense_key,
                asc,
                ascq,
            }) => {
                assert_eq!(sense_key, SenseKey::ILLEGAL_REQUEST);
                assert_eq!((asc, ascq), (0x21, 0));
            }
            other => panic!("{other:?}"),
        }
        let mk = |status| ScsiOutcome {
            response: 0,
            status,
            sense: Bytes::new(),
            data: Bytes::new(),
            piped: 0,
            underflow: None,
        };
        assert!(matches!(
            outcome_to_result(mk(ScsiStatus::RESERVATION_CONFLICT)),
            Err(IscsiError::ReservationConflict)
        ));
        assert!(matches!(
            outcome_to_result(mk(ScsiStatus::TASK_SET_FULL)),
            Err(IscsiError::TaskSetFull)
        ));
        assert!(matches!(
            outcome_to_result(mk(ScsiStatus::BUSY)),
            Err(IscsiError::Busy)
        ));
        assert!(matches!(
            outcome_to_result(mk(ScsiStatus::CHECK_CONDITION)),
            Err(IscsiError::CheckConditionNoSense)
        ));
        assert!(outcome_to_result(mk(ScsiStatus::GOOD)).is_ok());
        let mut failed = mk(ScsiStatus::GOOD);
        failed.response = 1;
        assert!(matches!(
            outcome_to_result(failed),
            Err(IscsiError::TargetFailure(1))
        ));
    }
}
