//! RFC 5531 sections 7-11: an ONC RPC client on TCP.
//!
//! [`RpcClient`] pipelines calls over one connection (replies are matched by xid), gives each
//! attempt a timeout, and on timeout or a broken connection retransmits the call with the
//! **same xid** (reconnecting if needed), up to a configured number of retries. ONC RPC is
//! therefore at-least-once; servers that must not run a call twice use a duplicate-request
//! cache keyed by xid (see [`crate::drc`]), which is why AUTH_SYS credentials carry a stamp that
//! stays the same for the client's lifetime.

use crate::auth::{AuthSysParams, OpaqueAuth};
use crate::error::RpcError;
use crate::message::{
    encode_call, parse_message, AcceptedStatus, CallHeader, RejectedReply, ReplyBody, RpcMessage,
    RPC_VERSION,
};
use crate::record::{encode_record, RecordReader, DEFAULT_FRAGMENT_SIZE, DEFAULT_MAX_RECORD_SIZE};
use crate::xdr::{self, XdrDecode, XdrEncode};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// Credentials a client sends.
#[derive(Debug, Clone, Default)]
pub enum RpcAuth {
    /// AUTH_NONE.
    #[default]
    None,
    /// AUTH_SYS with these parameters (keep the stamp stable for the client's lifetime).
    Sys(AuthSysParams),
}

impl RpcAuth {
    /// AUTH_SYS for this process (host name, uid, gid) with a random stamp.
    pub fn sys_for_current_process() -> RpcAuth {
        RpcAuth::Sys(AuthSysParams::current(rand::random()))
    }

    fn credential(&self) -> OpaqueAuth {
        match self {
            RpcAuth::None => OpaqueAuth::none(),
            RpcAuth::Sys(p) => OpaqueAuth::sys(p),
        }
    }
}

/// Tunables of a client.
#[derive(Debug, Clone)]
pub struct RpcClientConfig {
    /// How long one attempt waits for its reply.
    pub timeout: Duration,
    /// Retransmissions after the first attempt (each with the same xid).
    pub retries: u32,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Pause before reconnecting after a failure (multiplied by the attempt number).
    pub reconnect_backoff: Duration,
    /// Largest reply record accepted.
    pub max_record: usize,
    /// Fragment size of calls.
    pub fragment_size: usize,
    /// Credentials.
    pub auth: RpcAuth,
}

impl Default for RpcClientConfig {
    fn default() -> Self {
        RpcClientConfig {
            timeout: Duration::from_secs(10),
            retries: 3,
            connect_timeout: Duration::from_secs(5),
            reconnect_backoff: Duration::from_millis(100),
            max_record: DEFAULT_MAX_RECORD_SIZE,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            auth: RpcAuth::None,
        }
    }
}

type Pending = HashMap<u32, oneshot::Sender<Bytes>>;

/// State shared between a connection's handle and its reader task.
struct ConnState {
    /// `None` once the connection is dead.
    pending: Mutex<Option<Pending>>,
}

impl ConnState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Conn {
    state: Arc<ConnState>,
    tx: mpsc::UnboundedSender<Bytes>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    fn is_alive(&self) -> bool {
        self.state.lock().is_some() && !self.tx.is_closed()
    }
}

struct Inner {
    addr: SocketAddr,
    prog: u32,
    vers: u32,
    config: RpcClientConfig,
    cred: OpaqueAuth,
    next_xid: AtomicU32,
    /// The current connection (read on every call, so a plain mutex held briefly).
    conn: Mutex<Option<Arc<Conn>>>,
    /// Held while connecting, so concurrent callers open one connection, not many.
    connecting: tokio::sync::Mutex<()>,
}

/// A pipelining ONC RPC client for one program version on one server. Cheap to clone; clones
/// share the connection and the xid sequence.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("addr", &self.inner.addr)
            .field("prog", &self.inner.prog)
            .field("vers", &self.inner.vers)
            .finish()
    }
}

impl RpcClient {
    /// Connects to `addr` for program `prog` version `vers` with the default configuration.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        prog: u32,
        vers: u32,
    ) -> Result<RpcClient, RpcError> {
        Self::connect_with(addr, prog, vers, RpcClientConfig::default()).await
    }

    /// Connects with `config`.
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        prog: u32,
        vers: u32,
        config: RpcClientConfig,
    ) -> Result<RpcClient, RpcError> {
        let addr = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| RpcError::Connect {
                addr: "?".into(),
                source: e,
            })?
            .next()
            .ok_or_else(|| RpcError::Connect {
                addr: "?".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })?;
        let client = RpcClient {
            inner: Arc::new(Inner {
                addr,
                prog,
                vers,
                cred: config.auth.credential(),
                config,
                next_xid: AtomicU32::new(rand::random()),
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The program and version this client calls.
    pub fn program(&self) -> (u32, u32) {
        (self.inner.prog, self.inner.vers)
    }

    /// The configuration.
    pub fn config(&self) -> &RpcClientConfig {
        &self.inner.config
    }

    /// A fresh xid (random start, then incrementing).
    pub fn next_xid(&self) -> u32 {
        self.inner.next_xid.fetch_add(1, Ordering::Relaxed)
    }

    /// Calls procedure `proc_` with `args` and decodes the results as `R`.
    pub async fn call<A, R>(&self, proc_: u32, args: &A) -> Result<R, RpcError>
    where
        A: XdrEncode + ?Sized,
        R: XdrDecode,
    {
        let results = self.call_raw(proc_, &xdr::to_bytes(args)).await?;
        Ok(xdr::from_bytes(&results)?)
    }

    /// Calls the NULL procedure (0).
    pub async fn null(&self) -> Result<(), RpcError> {
        self.call(0, &()).await
    }

    /// Calls procedure `proc_` with already-encoded arguments; returns the encoded results.
    pub async fn call_raw(&self, proc_: u32, args: &[u8]) -> Result<Bytes, RpcError> {
        let xid = self.next_xid();
        self.call_raw_with_xid(xid, proc_, args).await
    }

    /// Like [`call_raw`](Self::call_raw) with a caller-chosen xid.
    pub async fn call_raw_with_xid(
        &self,
        xid: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<Bytes, RpcError> {
        let inner = &self.inner;
        let header = CallHeader {
            xid,
            rpcvers: RPC_VERSION,
            prog: inner.prog,
            vers: inner.vers,
            proc_,
            cred: inner.cred.clone(),
            verf: OpaqueAuth::none(),
        };
        let msg = encode_call(&header, args);
        let mut rec = BytesMut::new();
        encode_record(&msg, inner.config.fragment_size, &mut rec);
        let rec = rec.freeze();
        let attempts = inner.config.retries.saturating_add(1);
        let mut last_err = None;
        for attempt in 1..=attempts {
            let conn = match self.connection().await {
                Ok(c) => c,
                Err(e) => {
                    debug!(xid, attempt, error = %e, "reconnect failed");
                    last_err = Some(e);
                    if attempt < attempts {
                        tokio::time::sleep(inner.config.reconnect_backoff * attempt).await;
                    }
                    continue;
                }
            };
            let registered = conn.state.lock().as_mut().map(|pending| {
                let (tx, rx) = oneshot::channel();
                pending.insert(xid, tx);
                rx
            });
            let Some(rx) = registered else {
                self.invalidate(&conn).await;
                last_err = Some(RpcError::ConnectionLost { attempts: attempt });
                continue;
            };
            if conn.tx.send(rec.clone()).is_err() {
                self.invalidate(&conn).await;
                last_err = Some(RpcError::ConnectionLost { attempts: attempt });
                continue;
            }
            match tokio::time::timeout(inner.config.timeout, rx).await {
                Ok(Ok(reply)) => return parse_reply(&reply),
                Ok(Err(_)) => {
                    debug!(xid, attempt, "connection lost; retransmitting");
                    self.invalidate(&conn).await;
                    last_err = Some(RpcError::ConnectionLost { attempts: attempt });
                }
                Err(_) => {
                    debug!(xid, attempt, "call timed out; retransmitting");
                    if let Some(p) = conn.state.lock().as_mut() {
                        p.remove(&xid);
                    }
                    last_err = Some(RpcError::Timeout {
                        prog: inner.prog,
                        vers: inner.vers,
                        proc_,
                        attempts: attempt,
                    });
                }
            }
        }
        Err(last_err.unwrap_or(RpcError::Closed))
    }

    /// Drops the current connection (the next call reconnects).
    pub async fn disconnect(&self) {
        self.current().take();
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Arc<Conn>>> {
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alive_connection(&self) -> Option<Arc<Conn>> {
        self.current().as_ref().filter(|c| c.is_alive()).cloned()
    }

    async fn invalidate(&self, conn: &Arc<Conn>) {
        let mut cur = self.current();
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *cur = None;
        }
    }

    async fn connection(&self) -> Result<Arc<Conn>, RpcError> {
        if let Some(c) = self.alive_connection() {
            return Ok(c);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(c) = self.alive_connection() {
            return Ok(c);
        }
        let conn = Arc::new(self.open().await?);
        *self.current() = Some(conn.clone());
        Ok(conn)
    }

    async fn open(&self) -> Result<Conn, RpcError> {
        let inner = &self.inner;
        let addr = inner.addr;
        let stream = tokio::time::timeout(inner.config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RpcError::Connect {
                addr: addr.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|e| RpcError::Connect {
                addr: addr.to_string(),
                source: e,
            })?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let state = Arc::new(ConnState {
            pending: Mutex::new(Some(HashMap::new())),
        });
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        tokio::spawn(async move {
            let mut out = BytesMut::new();
            while let Some(first) = rx.recv().await {
                out.clear();
                out.extend_from_slice(&first);
                while out.len() < 256 << 10 {
                    match rx.try_recv() {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
        let reader_state = state.clone();
        let max_record = inner.config.max_record;
        let reader = tokio::spawn(async move {
            let mut reader = RecordReader::new(rd, max_record);
            loop {
                match reader.read_record().await {
                    Ok(Some(rec)) => {
                        if rec.len() < 4 {
                            continue;
                        }
                        let xid = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
                        let waiter = reader_state.lock().as_mut().and_then(|p| p.remove(&xid));
                        match waiter {
                            Some(w) => {
                                let _ = w.send(rec);
                            }
                            None => debug!(xid, "reply to no pending call (late or duplicate)"),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(%addr, error = %e, "RPC connection failed");
                        break;
                    }
                }
            }
            // Dropping the waiters tells their callers the connection is gone.
            reader_state.lock().take();
        });
        Ok(Conn { state, tx, reader })
    }
}

/// Maps a reply message to its results or the error it reports.
fn parse_reply(reply: &Bytes) -> Result<Bytes, RpcError> {
    let (msg, results) = parse_message(reply)?;
    let RpcMessage::Reply { body, .. } = msg else {
        return Err(RpcError::Protocol(
            "CALL message where a reply was expected",
        ));
    };
    match body {
        ReplyBody::Accepted { status, .. } => match status {
            AcceptedStatus::Success => Ok(results),
            AcceptedStatus::ProgUnavail => Err(RpcError::ProgUnavail),
            AcceptedStatus::ProgMismatch { low, high } => Err(RpcError::ProgMismatch { low, high }),
            AcceptedStatus::ProcUnavail => Err(RpcError::ProcUnavail),
            AcceptedStatus::GarbageArgs => Err(RpcError::GarbageArgs),
            AcceptedStatus::SystemErr => Err(RpcError::SystemErr),
            AcceptedStatus::Other(s) => Err(RpcError::Accept(s)),
        },
        ReplyBody::Denied(RejectedReply::RpcMismatch { low, high }) => {
            Err(RpcError::RpcMismatch { low, high })
        }
        ReplyBody::Denied(RejectedReply::AuthError(stat)) => Err(RpcError::AuthError(stat)),
    }
}
