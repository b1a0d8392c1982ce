//! RFC 7143 sections 6 (login), 7 (full feature phase), 4.2.2 (CmdSN window), 11.18-11.19
//! (NOP-Out/NOP-In) and 11.14-11.15 (logout): one TCP connection from accept to close.
//!
//! After the login phase this task reads and dispatches PDUs. A READ or WRITE that needs no
//! blocking call runs right here; one that blocks goes to an I/O thread, which sends the answer
//! itself; other commands run as tokio tasks of their own. Answers of commands run here, R2Ts
//! and the like are queued and written in one go before this task next waits for the socket.
//! Everything goes out through the connection's [`Outbox`] (see [`crate::writer`]). One
//! connection per session (MaxConnections=1).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iscsi_proto::digest::DigestConfig;
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::limits::Limits;
use iscsi_proto::pdu::{
    self, Bhs, DataOut, LogoutReason, LogoutRequest, LogoutResponse, LogoutResponseCode, NopIn,
    NopOut, Pdu, PduError, Reject, RejectReason, ScsiCommand, TextRequest, TextResponse,
    RESERVED_TAG,
};
use iscsi_proto::scsi::{Asc, Sense};
use iscsi_proto::text::{
    target_text_response, DigestKind, LoginRequestHeader, SessionParams, SessionType, TargetLogin,
    TargetOutcome,
};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::data_out::{BurstRules, DataOutError, WriteCollect};
use crate::lu::{Nexus, MAX_TRANSFER_BYTES};
use crate::pdu_reader::{PduReader, ReadError};
use crate::scsi_task::{self, CommandInfo, Started};
use crate::server::{ServerState, SessionKey, SessionSlot, PORTAL_GROUP_TAG};
use crate::session::{Aborted, SessionShared, TaskEntry};
use crate::task_mgmt;
use crate::writer::{run_writer, sn_lt, CmdWindow, Outbox};

/// The MaxRecvDataSegmentLength the target declares (256 KiB).
pub const MAX_RECV_DATA_SEGMENT_LENGTH: u32 = 256 * 1024;
/// A login must reach the full feature phase within this time.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for in-flight commands at logout or shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the last answers to reach the socket when a session ends.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest data-out buffer one command may ask for (its logical unit refuses more anyway).
const MAX_WRITE_BUFFER: u32 = MAX_TRANSFER_BYTES as u32 + (1 << 20);
/// Most bytes of write buffers one connection may hold for commands still waiting for their
/// data. Without it, a window of commands that announce large transfers and never send them
/// would make the target hold command window x MAX_WRITE_BUFFER bytes. A command that would
/// exceed it gets TASK SET FULL (SAM-5 5.3.1), which initiators retry.
const MAX_PENDING_WRITE_BYTES: u64 = 256 << 20;
/// Most answer bytes one connection queues for an initiator that does not read them: beyond
/// it the target reads no more PDUs until the initiator has taken some (else a peer sending
/// commands or NOP-Out echoes without reading would make the target buffer without limit).
const MAX_UNSENT_BYTES: usize = 256 << 20;
/// How often a connection stalled on [`MAX_UNSENT_BYTES`] looks again.
const UNSENT_RECHECK: Duration = Duration::from_secs(1);

/// Why a connection ended badly.
#[derive(Debug, Error)]
enum ConnError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing: {0}")]
    Write(#[from] std::io::Error),
    #[error("{0:?} PDU during login")]
    NotLogin(pdu::Opcode),
    #[error("login failed: {0}")]
    LoginFailed(String),
    #[error("login not finished within {0:?}")]
    LoginTimeout(Duration),
    #[error("connection closed during login")]
    ClosedInLogin,
}

/// How the full feature phase ended.
#[derive(Debug)]
enum Exit {
    /// The initiator closed the connection.
    Closed,
    /// Logout answered.
    Logout,
    /// The target is shutting down.
    Shutdown,
    /// A newer login reinstated the session.
    Reinstated,
    /// Protocol error or ping timeout.
    Error(String),
}

/// The outcome of a successful login.
struct LoggedIn {
    params: SessionParams,
    isid: [u8; 6],
    stat_sn: u32,
    exp_cmd_sn: u32,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(sock: TcpStream, peer: SocketAddr, state: Arc<ServerState>) {
    let span = tracing::info_span!("conn", %peer);
    async move {
        match serve_inner(sock, state).await {
            Ok(()) => {}
            // A probe that connects and leaves, or a refused login (logged where refused).
            Err(e @ (ConnError::ClosedInLogin | ConnError::LoginFailed(_))) => {
                tracing::debug!(error = %e, "connection ended")
            }
            Err(e) => tracing::warn!(error = %e, "login aborted: dropping the connection"),
        }
    }
    .instrument(span)
    .await
}

async fn serve_inner(sock: TcpStream, state: Arc<ServerState>) -> Result<(), ConnError> {
    let local = sock.local_addr()?;
    let (rd, mut wr) = sock.into_split();
    let mut reader = PduReader::new(rd, PduDecoder::new(Limits::new(), DigestConfig::NONE));
    let mut shutdown = state.shutdown.clone();
    let logged = tokio::select! {
        r = tokio::time::timeout(LOGIN_TIMEOUT, login(&mut reader, &mut wr, &state)) => {
            r.map_err(|_| ConnError::LoginTimeout(LOGIN_TIMEOUT))??
        }
        // A shutdown abandons logins in progress.
        _ = stopped(&mut shutdown) => return Ok(()),
    };
    full_feature(reader, wr, state, local, logged).await;
    Ok(())
}

/// The login phase (RFC 7143 section 6): Login Requests go through the [`TargetLogin`] state
/// machine until it completes or fails.
async fn login(
    reader: &mut PduReader<OwnedReadHalf>,
    wr: &mut OwnedWriteHalf,
    state: &ServerState,
) -> Result<LoggedIn, ConnError> {
    let mut machine = TargetLogin::new(state.login.clone(), state.new_tsih());
    let mut stat_sn: u32 = rand::random::<u32>() & 0x0fff_ffff;
    let mut out = BytesMut::with_capacity(1024);
    loop {
        let pdu = reader.next().await?.ok_or(ConnError::ClosedInLogin)?;
        let req = match pdu {
            Pdu::LoginRequest(r) => r,
            other => return Err(ConnError::NotLogin(other.opcode())),
        };
        let header = LoginRequestHeader {
            transit: req.transit,
            cont: req.cont,
            csg: iscsi_proto::text::Stage(req.csg.0),
            nsg: iscsi_proto::text::Stage(req.nsg.0),
            version_max: req.version_max,
            version_min: req.version_min,
            isid: req.isid,
            tsih: req.tsih,
        };
        let step = machine.step(&header, &req.data);
        let h = step.response.header;
        let resp = pdu::LoginResponse {
            transit: h.transit,
            cont: h.cont,
            csg: pdu::Stage(h.csg.0),
            nsg: pdu::Stage(h.nsg.0),
            version_max: h.version_max,
            version_active: h.version_active,
            isid: h.isid,
            tsih: h.tsih,
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: req.cmd_sn,
            max_cmd_sn: req.cmd_sn.wrapping_add(state.config.cmd_window - 1),
            status: pdu::LoginStatus(h.status.0),
            data: Bytes::from(step.response.text),
        };
        stat_sn = stat_sn.wrapping_add(1);
        out.clear();
        Pdu::LoginResponse(resp).encode(DigestConfig::NONE, &mut out);
        wr.write_all(&out).await?;
        match step.outcome {
            TargetOutcome::Continue => {}
            TargetOutcome::Complete(params) => {
                return Ok(LoggedIn {
                    params: *params,
                    isid: req.isid,
                    stat_sn,
                    exp_cmd_sn: req.cmd_sn,
                })
            }
            TargetOutcome::Failed(e) => {
                tracing::info!(error = %e, "login refused");
                return Err(ConnError::LoginFailed(e.to_string()));
            }
        }
    }
}

fn digests_of(p: &SessionParams) -> DigestConfig {
    DigestConfig {
        header: p.header_digest == DigestKind::Crc32c,
        data: p.data_digest == DigestKind::Crc32c,
    }
}

async fn full_feature(
    mut reader: PduReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    state: Arc<ServerState>,
    local: SocketAddr,
    logged: LoggedIn,
) {
    let params = logged.params;
    let digests = digests_of(&params);
    reader
        .decoder
        .set_limits(Limits::with_max_recv_data_segment_length(
            params.max_recv_data_segment_length,
        ));
    reader.decoder.set_digests(digests);
    let target_name = params.target_name.clone().unwrap_or_default();
    let discovery = params.session_type == SessionType::Discovery;
    let luns = if discovery {
        Arc::new(Vec::new())
    } else {
        match state.luns.get(&target_name) {
            Some(l) => l.clone(),
            None => return,
        }
    };
    let window = Arc::new(CmdWindow::new(logged.exp_cmd_sn, state.config.cmd_window));
    let out = Arc::new(Outbox::new(wr, window.clone(), digests, logged.stat_sn));
    let writer = tokio::spawn(run_writer(out.clone()));
    let nexus = Nexus::new(
        &params.initiator_name,
        logged.isid,
        &target_name,
        PORTAL_GROUP_TAG,
    );
    let rules = BurstRules {
        first_burst: params.first_burst_length,
        max_burst: params.max_burst_length,
        max_outstanding_r2t: params.max_outstanding_r2t,
        initial_r2t: params.initial_r2t,
    };
    let key: SessionKey = (params.initiator_name.clone(), logged.isid, target_name);
    let id = state.new_session_id();
    let kill = Arc::new(Notify::new());
    let (done_tx, done_rx) = watch::channel(false);
    state
        .reinstate(
            key.clone(),
            SessionSlot {
                id,
                kill: kill.clone(),
                done: done_rx,
            },
        )
        .await;
    let span = tracing::info_span!("session", id, initiator = %params.initiator_name);
    let shared = Arc::new(SessionShared::new(params, nexus, luns, window, out));
    let mut conn = Conn {
        state: state.clone(),
        shared: shared.clone(),
        writes: HashMap::new(),
        rules,
        next_ttt: 1,
        ahead: BTreeSet::new(),
        ping: None,
        last_rx: Instant::now(),
        local,
        discovery,
    };
    let exit = conn.run(&mut reader, &kill).instrument(span.clone()).await;
    // Nothing reads any more: answers still to come are sent by whoever finishes them.
    shared.out.reader_busy(false);
    shared.out.flush();
    span.in_scope(|| match &exit {
        Exit::Error(why) => tracing::info!(%why, "session dropped"),
        other => tracing::debug!(exit = ?other, "session ends"),
    });
    // Commands still waiting for data-out can never finish now.
    let waiting: Vec<u32> = conn.writes.keys().copied().collect();
    shared.abort_where(|itt, _| waiting.contains(&itt));
    conn.writes.clear();
    let aborted = match exit {
        Exit::Logout | Exit::Shutdown => {
            if shared.wait_idle(DRAIN_TIMEOUT).await {
                Aborted::default()
            } else {
                shared.abort_where(|_, _| true)
            }
        }
        Exit::Closed | Exit::Reinstated | Exit::Error(_) => shared.abort_where(|_, _| true),
    };
    shared.out.drain(FLUSH_TIMEOUT).await;
    // A login that reinstates this session waits for `done`: the medium accesses of the
    // aborted commands end first, so none of them lands after the new session's writes.
    for track in &aborted.io {
        track.finished().await;
    }
    writer.abort();
    shared.out.close();
    drop(reader);
    state.remove_session(&key, id);
    let _ = done_tx.send(true);
}

/// The reading side of a full-feature-phase connection.
struct Conn {
    state: Arc<ServerState>,
    shared: Arc<SessionShared>,
    /// Write commands waiting for data-out, by ITT.
    writes: HashMap<u32, WriteCollect>,
    rules: BurstRules,
    next_ttt: u32,
    /// CmdSNs received beyond a gap.
    ahead: BTreeSet<u32>,
    /// Our outstanding NOP-In ping: its TTT and when it left.
    ping: Option<(u32, Instant)>,
    last_rx: Instant,
    local: SocketAddr,
    discovery: bool,
}

impl Conn {
    async fn run(&mut self, reader: &mut PduReader<OwnedReadHalf>, kill: &Notify) -> Exit {
        let mut shutdown = self.state.shutdown.clone();
        let interval = Duration::from_secs(self.state.config.nop_interval_secs);
        let timeout = Duration::from_secs(self.state.config.nop_timeout_secs.max(1));
        let pinging = !interval.is_zero();
        loop {
            let timer = match self.ping {
                Some((_, sent)) => sent + timeout,
                None => self.last_rx + interval,
            };
            if !reader.has_pdu() {
                // Out go the answers of everything read so far, in one write.
                self.shared.out.reader_busy(false);
                self.shared.out.flush();
            }
            let out = self.shared.out.clone();
            let stalled = out.unsent() > MAX_UNSENT_BYTES;
            tokio::select! {
                biased;
                _ = kill.notified() => return Exit::Reinstated,
                _ = stopped(&mut shutdown) => return Exit::Shutdown,
                _ = out.drain(UNSENT_RECHECK), if stalled => {}
                r = reader.next(), if !stalled => match r {
                    Ok(Some(pdu)) => {
                        self.shared.out.reader_busy(true);
                        self.last_rx = Instant::now();
                        if let Some(exit) = self.dispatch(pdu).await {
                            return exit;
                        }
                    }
                    Ok(None) => return Exit::Closed,
                    Err(ReadError::Pdu(PduError::DataDigestMismatch { header, .. })) => {
                        // RFC 7143 section 7.8: the PDU is discarded and rejected.
                        self.reject(RejectReason::DATA_DIGEST_ERROR, &header);
                    }
                    Err(e) => return Exit::Error(e.to_string()),
                },
                _ = tokio::time::sleep_until(timer), if pinging => {
                    if let Some((_, sent)) = self.ping {
                        if sent.elapsed() >= timeout {
                            return Exit::Error("initiator did not answer NOP-In".into());
                        }
                    } else if self.last_rx.elapsed() >= interval {
                        let ttt = self.new_ttt();
                        self.ping = Some((ttt, Instant::now()));
                        self.shared.send(Pdu::NopIn(NopIn {
                            lun: pdu::Lun::default(),
                            itt: RESERVED_TAG,
                            ttt,
                            ..Default::default()
                        }));
                    }
                }
            }
        }
    }

    fn new_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    fn reject(&self, reason: RejectReason, header: &Bhs) {
        self.shared
            .send(Pdu::Reject(Reject::quoting(reason, header)));
    }

    /// CmdSN check for a non-immediate request: inside the window (RFC 7143 section 4.2.2.1).
    /// Requests outside are dropped silently.
    fn in_window(&self, cmd_sn: u32) -> bool {
        let ok = self.shared.window.accepts(cmd_sn);
        if !ok {
            tracing::debug!(cmd_sn, "CmdSN outside the window: dropped");
        }
        ok
    }

    /// Records the arrival of non-immediate `cmd_sn`, advancing ExpCmdSN over contiguous ones.
    fn advance(&mut self, cmd_sn: u32) {
        use std::sync::atomic::Ordering;
        let w = &self.shared.window;
        let mut exp = w.exp_cmd_sn.load(Ordering::Acquire);
        if cmd_sn == exp {
            exp = exp.wrapping_add(1);
            while self.ahead.remove(&exp) {
                exp = exp.wrapping_add(1);
            }
            w.exp_cmd_sn.store(exp, Ordering::Release);
        } else if sn_lt(exp, cmd_sn) {
            self.ahead.insert(cmd_sn);
        }
    }

    /// Admits a request that carries no task: window check, then ExpCmdSN advance.
    fn admit(&mut self, immediate: bool, cmd_sn: u32) -> bool {
        if immediate {
            return true;
        }
        if !self.in_window(cmd_sn) {
            return false;
        }
        self.advance(cmd_sn);
        true
    }

    async fn dispatch(&mut self, pdu: Pdu) -> Option<Exit> {
        match pdu {
            Pdu::ScsiCommand(cmd) => {
                if self.discovery {
                    self.reject(RejectReason::PROTOCOL_ERROR, &Pdu::ScsiCommand(cmd).bhs());
                } else {
                    self.command(cmd);
                }
            }
            Pdu::DataOut(d) => return self.data_out(d),
            Pdu::NopOut(n) => self.nop_out(n),
            Pdu::TaskMgmtRequest(t) => {
                if self.discovery {
                    self.reject(RejectReason::PROTOCOL_ERROR, &Pdu::TaskMgmtRequest(t).bhs());
                } else if self.admit(t.immediate, t.cmd_sn) {
                    let cold = t.function == pdu::TmfFunction::TARGET_COLD_RESET;
                    let (resp, running) = task_mgmt::execute(&self.shared, &mut self.writes, &t);
                    let complete = resp.response == pdu::TmfResponse::FUNCTION_COMPLETE;
                    if cold && complete {
                        for track in &running {
                            track.finished().await;
                        }
                        self.shared.send(Pdu::TaskMgmtResponse(resp));
                        return Some(Exit::Error("target cold reset".into()));
                    }
                    if running.is_empty() {
                        self.shared.send(Pdu::TaskMgmtResponse(resp));
                    } else {
                        // Answered once the aborted tasks' medium accesses are over; the
                        // reader goes on meanwhile.
                        let shared = self.shared.clone();
                        tokio::spawn(async move {
                            for track in &running {
                                track.finished().await;
                            }
                            shared.out.queue([Pdu::TaskMgmtResponse(resp)]);
                            shared.out.send([]);
                        });
                    }
                }
            }
            Pdu::TextRequest(t) => self.text(t),
            Pdu::LogoutRequest(l) => return self.logout(l).await,
            Pdu::Snack(s) => self.reject(RejectReason::SNACK_REJECT, &Pdu::Snack(s).bhs()),
            Pdu::Unknown { bhs, .. } => self.reject(RejectReason::COMMAND_NOT_SUPPORTED, &bhs),
            other => {
                // Login in the full feature phase, or a target opcode.
                let bhs = other.bhs();
                self.reject(RejectReason::PROTOCOL_ERROR, &bhs);
            }
        }
        None
    }

    fn nop_out(&mut self, n: NopOut) {
        if n.itt == RESERVED_TAG {
            // The answer to our ping (or an unanswered one-way ping).
            if self.ping.is_some_and(|(ttt, _)| ttt == n.ttt) {
                self.ping = None;
            }
            return;
        }
        if !self.admit(n.immediate, n.cmd_sn) {
            return;
        }
        let max = self.shared.params.max_send_data_segment_length as usize;
        let data = if n.data.len() > max {
            n.data.slice(..max)
        } else {
            n.data
        };
        self.shared.send(Pdu::NopIn(NopIn {
            lun: n.lun,
            itt: n.itt,
            ttt: RESERVED_TAG,
            data,
            ..Default::default()
        }));
    }

    fn text(&mut self, t: TextRequest) {
        if !self.admit(t.immediate, t.cmd_sn) {
            return;
        }
        let p = &self.shared.params;
        let exported = self.state.exported(self.local);
        let data = if t.final_bit {
            target_text_response(
                &exported,
                &t.data,
                &p.initiator_name,
                p.session_type,
                p.target_name.as_deref(),
            )
            .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.shared.send(Pdu::TextResponse(TextResponse {
            final_bit: t.final_bit,
            cont: false,
            lun: t.lun,
            itt: t.itt,
            ttt: if t.final_bit { RESERVED_TAG } else { 1 },
            data: Bytes::from(data),
            ..Default::default()
        }));
    }

    async fn logout(&mut self, l: LogoutRequest) -> Option<Exit> {
        if !self.admit(l.immediate, l.cmd_sn) {
            return None;
        }
        let response = if l.reason == LogoutReason::REMOVE_CONNECTION_FOR_RECOVERY {
            LogoutResponseCode::RECOVERY_NOT_SUPPORTED
        } else {
            LogoutResponseCode::SUCCESS
        };
        // Commands before the logout finish first (RFC 7143 section 11.14).
        let waiting: Vec<u32> = self.writes.keys().copied().collect();
        self.shared.abort_where(|itt, _| waiting.contains(&itt));
        self.writes.clear();
        self.shared.out.reader_busy(false);
        self.shared.out.flush();
        self.shared.wait_idle(DRAIN_TIMEOUT).await;
        self.shared.send(Pdu::LogoutResponse(LogoutResponse {
            response,
            itt: l.itt,
            time2wait: 0,
            time2retain: 0,
            ..Default::default()
        }));
        if response == LogoutResponseCode::SUCCESS {
            Some(Exit::Logout)
        } else {
            None
        }
    }

    fn command(&mut self, cmd: ScsiCommand) {
        if !cmd.immediate && !self.in_window(cmd.cmd_sn) {
            return;
        }
        if let Some(p) = &self.state.busy_poll {
            p.mark_small_request(cmd.expected_data_transfer_length);
        }
        let lun_number = cmd.lun.number();
        let lun_index = lun_number
            .map(|n| n as usize)
            .filter(|&n| n < self.shared.luns.len());
        let cdb = match &cmd.extended_cdb {
            None => Bytes::copy_from_slice(&cmd.cdb),
            Some(ext) => {
                let mut b = BytesMut::with_capacity(16 + ext.len());
                b.extend_from_slice(&cmd.cdb);
                b.extend_from_slice(ext);
                b.freeze()
            }
        };
        let edtl = cmd.expected_data_transfer_length;
        let lu = lun_index.map(|i| self.shared.luns[i].clone());
        let write_len = match (&lu, cmd.write) {
            (Some(lu), true) => lu.expected_data_out_len(&cdb),
            _ => 0,
        };
        let mut info = CommandInfo {
            itt: cmd.itt,
            lun: cmd.lun,
            lun_index,
            cdb,
            edtl,
            read: cmd.read,
            write: cmd.write,
            write_len,
        };
        // RFC 7143 section 11.4.5.1: a WRITE longer than the Expected Data Transfer Length
        // writes only what is transferred (whole blocks), and reports the overflow.
        let mut answer_now: Option<Option<Sense>> = None;
        if let Some(lu) = lu
            .as_ref()
            .filter(|_| cmd.write && (edtl as u64) < write_len)
        {
            let bs = lu.block_size();
            if !edtl.is_multiple_of(bs) {
                answer_now = Some(Some(Sense::new(
                    iscsi_proto::scsi::SenseKey::ILLEGAL_REQUEST,
                    Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                )));
            } else if edtl == 0 {
                answer_now = Some(None);
            } else if let Some(c) = scsi_task::cut_write_cdb(&info.cdb, edtl / bs) {
                info.cdb = c;
            }
        }
        let registered = self.shared.register(
            cmd.itt,
            TaskEntry {
                lun: lun_number.map_or(u64::MAX, u64::from),
                immediate: cmd.immediate,
                abort: None,
                io: None,
            },
        );
        if !cmd.immediate {
            self.advance(cmd.cmd_sn);
        }
        if !registered {
            // RFC 7143 section 11.17.1: a new task with the tag of a live one.
            tracing::debug!(itt = cmd.itt, "ITT already in use");
            let bhs = Pdu::ScsiCommand(cmd).bhs();
            self.reject(RejectReason::TASK_IN_PROGRESS, &bhs);
            return;
        }
        if let Some(sense) = answer_now {
            // Data-out that follows is discarded (the task is no longer known).
            let pdus = scsi_task::answer(&info, sense);
            self.shared.complete(info.itt, pdus);
            return;
        }
        if !cmd.write || edtl == 0 {
            self.run_command(info, Bytes::new(), 0);
            return;
        }
        if edtl > MAX_WRITE_BUFFER {
            let pdus = scsi_task::answer(
                &info,
                Some(Sense::new(
                    iscsi_proto::scsi::SenseKey::ILLEGAL_REQUEST,
                    Asc::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                )),
            );
            self.shared.complete(info.itt, pdus);
            return;
        }
        if cmd.data.len() as u64 >= edtl as u64 {
            let data = cmd.data.slice(..edtl as usize);
            self.run_command(info, data, 0);
            return;
        }
        let pending: u64 = self.writes.values().map(|w| u64::from(w.info.edtl)).sum();
        if pending + u64::from(edtl) > MAX_PENDING_WRITE_BYTES {
            tracing::debug!(
                itt = info.itt,
                pending,
                edtl,
                "write buffers full: TASK SET FULL"
            );
            let pdus =
                scsi_task::answer_status(&info, iscsi_proto::scsi::ScsiStatus::TASK_SET_FULL);
            self.shared.complete(info.itt, pdus);
            return;
        }
        let itt = info.itt;
        let mut wc = WriteCollect::new(info, &cmd.data, cmd.final_bit, &self.rules);
        let rules = self.rules;
        let mut ttt_source = || self.new_ttt_raw();
        let r2ts = wc.solicit(&rules, &mut ttt_source);
        for r in r2ts {
            self.shared.send(r);
        }
        if wc.is_complete() {
            let data = wc.take_buffer();
            let n = wc.r2ts();
            self.run_command(wc.info, data, n);
        } else {
            self.writes.insert(itt, wc);
        }
    }

    fn new_ttt_raw(&mut self) -> u32 {
        self.new_ttt()
    }

    fn data_out(&mut self, d: DataOut) -> Option<Exit> {
        let Some(wc) = self.writes.get_mut(&d.itt) else {
            // Data for a task that was aborted or already refused: discarded.
            return None;
        };
        match wc.accept(&d) {
            Ok(sequence_done) => {
                if sequence_done {
                    let rules = self.rules;
                    let mut next = self.next_ttt;
                    let mut source = || {
                        let t = next;
                        next = next.wrapping_add(1);
                        if next == RESERVED_TAG {
                            next = 1;
                        }
                        t
                    };
                    let r2ts = wc.solicit(&rules, &mut source);
                    self.next_ttt = next;
                    for r in r2ts {
                        self.shared.send(r);
                    }
                }
                if wc.is_complete() {
                    if let Some(mut wc) = self.writes.remove(&d.itt) {
                        let data = wc.take_buffer();
                        let n = wc.r2ts();
                        self.run_command(wc.info, data, n);
                    }
                }
                None
            }
            Err(e @ DataOutError::DataSn { .. }) => {
                // A sequence error fails the command, the connection goes on.
                tracing::info!(itt = d.itt, error = %e, "Data-Out out of sequence: command failed");
                if let Some(wc) = self.writes.remove(&d.itt) {
                    let pdus = scsi_task::answer(
                        &wc.info,
                        Some(Sense::new(
                            iscsi_proto::scsi::SenseKey::ABORTED_COMMAND,
                            Asc::new(0x4b, 0x00),
                        )),
                    );
                    self.shared.complete(d.itt, pdus);
                }
                None
            }
            Err(e) => {
                tracing::warn!(itt = d.itt, error = %e, "bad Data-Out: dropping the connection");
                let bhs = Pdu::DataOut(d).bhs();
                self.reject(RejectReason::PROTOCOL_ERROR, &bhs);
                Some(Exit::Error(e.to_string()))
            }
        }
    }

    /// Runs a command whose data-out (if any) is complete: here if nothing blocks, otherwise
    /// on an I/O thread that answers by itself, or as a task of its own.
    fn run_command(&self, info: CommandInfo, data: Bytes, r2ts: u32) {
        let itt = info.itt;
        match scsi_task::start(&self.shared, &info, &data, r2ts) {
            Started::Done(pdus) => self.shared.complete(itt, pdus),
            Started::Blocking(call) => {
                // Aborted before its access started: it must not touch the medium any more.
                let Some(track) = self.shared.io_track(itt) else {
                    return;
                };
                let access = track.enter();
                let shared = self.shared.clone();
                let poll = self.state.busy_poll.clone();
                // An aborted command still finishes its call (task management waits for it);
                // its answer is dropped then.
                tokio::task::spawn_blocking(move || {
                    let outcome = call.run();
                    drop(access);
                    let pdus = scsi_task::respond_to(&shared, &info, outcome, r2ts);
                    shared.finish(itt, pdus);
                    if let Some(p) = poll {
                        // The next command of a queue-depth-1 initiator comes soon.
                        p.mark_small_request(info.edtl);
                    }
                });
            }
            Started::Run => {
                let Some(track) = self.shared.io_track(itt) else {
                    return;
                };
                let shared = self.shared.clone();
                let handle = tokio::spawn(async move {
                    let pdus = track
                        .scope(scsi_task::run(&shared, &info, data, r2ts))
                        .await;
                    shared.finish(info.itt, pdus);
                });
                self.shared.set_abort(itt, handle.abort_handle());
            }
        }
    }
}

/// Resolves once the flag in `rx` is true (never if its sender is gone first).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
