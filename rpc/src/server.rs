//! RFC 5531 sections 9-11: an ONC RPC server on TCP.
//!
//! [`RpcServer`] holds a registry of programs. Each call is dispatched on (program, version,
//! procedure) to an async [`RpcHandler`]; calls on one connection run concurrently and their
//! replies go out in completion order. The server answers itself:
//! - procedure 0 (NULL) of every registered program version, unless a handler is registered
//!   for procedure 0 explicitly;
//! - PROG_UNAVAIL, PROG_MISMATCH (with the lowest and highest registered versions),
//!   PROC_UNAVAIL for procedures without a handler;
//! - MSG_DENIED/RPC_MISMATCH for `rpcvers != 2`, MSG_DENIED/AUTH_ERROR for credentials it
//!   cannot accept (flavors other than AUTH_NONE and AUTH_SYS, or a malformed AUTH_SYS body).
//!
//! Retransmissions are answered from the [duplicate-request cache](crate::drc).

use crate::auth::{AuthFlavor, AuthSysParams, OpaqueAuth};
use crate::drc::{
    ClientIdentity, DrcKey, DrcLookup, DrcTicket, DuplicateRequestCache, DEFAULT_DRC_CAPACITY,
    DEFAULT_DRC_MAX_BYTES,
};
use crate::message::{
    encode_reply, parse_message, AcceptStat, AcceptedStatus, AuthStat, CallHeader, RejectedReply,
    ReplyBody, RpcMessage, RPC_VERSION,
};
use crate::record::{encode_record, RecordReader, DEFAULT_FRAGMENT_SIZE, DEFAULT_MAX_RECORD_SIZE};
use crate::xdr::{self, XdrDecode, XdrEncode};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, trace, warn, Instrument};

/// What a handler returns: the encoded results (SUCCESS), or an `accept_stat` to send instead
/// (e.g. [`AcceptStat::GARBAGE_ARGS`], [`AcceptStat::SYSTEM_ERR`], [`AcceptStat::PROC_UNAVAIL`]).
pub type RpcResult = Result<Bytes, AcceptStat>;

/// Boxed future of a handler.
pub type RpcFuture = Pin<Box<dyn Future<Output = RpcResult> + Send + 'static>>;

/// One decoded call handed to a handler.
#[derive(Debug, Clone)]
pub struct RpcCall {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: OpaqueAuth,
    pub verf: OpaqueAuth,
    /// The encoded arguments.
    pub args: Bytes,
    /// Where the call came from.
    pub peer: SocketAddr,
}

impl RpcCall {
    /// Decodes the arguments (which must fill the rest of the message); GARBAGE_ARGS otherwise,
    /// so handlers can write `let a: Args = call.args()?;`.
    pub fn args<T: XdrDecode>(&self) -> Result<T, AcceptStat> {
        xdr::from_bytes(&self.args).map_err(|e| {
            debug!(xid = self.xid, proc_ = self.proc_, error = %e, "garbage arguments");
            AcceptStat::GARBAGE_ARGS
        })
    }

    /// The AUTH_SYS credential, if the call carries one.
    pub fn auth_sys(&self) -> Option<AuthSysParams> {
        self.cred.as_auth_sys()
    }
}

/// Encodes `results` as a handler's successful answer.
pub fn reply<T: XdrEncode + ?Sized>(results: &T) -> RpcResult {
    Ok(xdr::to_bytes(results))
}

/// Serves calls of one program version (or one procedure of it).
pub trait RpcHandler: Send + Sync + 'static {
    /// Runs the call.
    fn call(&self, call: RpcCall) -> RpcFuture;
}

impl<F, Fut> RpcHandler for F
where
    F: Fn(RpcCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RpcResult> + Send + 'static,
{
    fn call(&self, call: RpcCall) -> RpcFuture {
        Box::pin(self(call))
    }
}

/// Tunables of a server.
#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// Largest call record accepted; a longer one closes the connection.
    pub max_record: usize,
    /// Fragment size of replies.
    pub fragment_size: usize,
    /// Calls executing at once per connection (further reads wait).
    pub max_in_flight: usize,
    /// Calls remembered by the duplicate-request cache (0 disables it).
    pub drc_capacity: usize,
    /// Bytes of replies the duplicate-request cache may hold.
    pub drc_max_bytes: usize,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            max_record: DEFAULT_MAX_RECORD_SIZE,
            fragment_size: DEFAULT_FRAGMENT_SIZE,
            max_in_flight: 128,
            drc_capacity: DEFAULT_DRC_CAPACITY,
            drc_max_bytes: DEFAULT_DRC_MAX_BYTES,
        }
    }
}

#[derive(Default)]
struct Version {
    /// Serves every procedure without a handler of its own.
    all: Option<Arc<dyn RpcHandler>>,
    procs: HashMap<u32, Arc<dyn RpcHandler>>,
}

struct Shared {
    config: RpcServerConfig,
    programs: RwLock<HashMap<u32, BTreeMap<u32, Version>>>,
    drc: DuplicateRequestCache,
}

/// An ONC RPC server: a registry of programs served on any number of listeners and
/// connections. Cloning shares the registry and the duplicate-request cache.
#[derive(Clone)]
pub struct RpcServer {
    shared: Arc<Shared>,
}

impl Default for RpcServer {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a call goes.
enum Route {
    Handler(Arc<dyn RpcHandler>),
    Null,
    Status(AcceptedStatus),
}

impl RpcServer {
    /// A server with the default configuration and no programs.
    pub fn new() -> Self {
        Self::with_config(RpcServerConfig::default())
    }

    /// A server with `config` and no programs.
    pub fn with_config(config: RpcServerConfig) -> Self {
        RpcServer {
            shared: Arc::new(Shared {
                drc: DuplicateRequestCache::with_limits(config.drc_capacity, config.drc_max_bytes),
                config,
                programs: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Registers `handler` for every procedure of `prog` version `vers` (procedures with a
    /// handler of their own excepted). The handler answers PROC_UNAVAIL for procedures it
    /// does not know; NULL (0) is answered by the server unless registered explicitly.
    pub fn register_program(&self, prog: u32, vers: u32, handler: impl RpcHandler) -> &Self {
        let mut p = self
            .shared
            .programs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        p.entry(prog).or_default().entry(vers).or_default().all = Some(Arc::new(handler));
        self
    }

    /// Registers `handler` for procedure `proc_` of `prog` version `vers`.
    pub fn register_procedure(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        handler: impl RpcHandler,
    ) -> &Self {
        let mut p = self
            .shared
            .programs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        p.entry(prog)
            .or_default()
            .entry(vers)
            .or_default()
            .procs
            .insert(proc_, Arc::new(handler));
        self
    }

    /// Removes a program version.
    pub fn unregister(&self, prog: u32, vers: u32) {
        let mut p = self
            .shared
            .programs
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(versions) = p.get_mut(&prog) {
            versions.remove(&vers);
            if versions.is_empty() {
                p.remove(&prog);
            }
        }
    }

    /// The duplicate-request cache (for statistics).
    pub fn drc(&self) -> &DuplicateRequestCache {
        &self.shared.drc
    }

    /// Accepts connections on `listener` forever, serving each on its own task. Accept errors
    /// (e.g. out of file descriptors) are logged and retried after a pause.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            let span = tracing::debug_span!("rpc_conn", %peer);
            tokio::spawn(
                async move {
                    me.serve_connection(stream, peer).await;
                }
                .instrument(span),
            );
        }
    }

    /// Spawns [`serve`](Self::serve) on the current runtime.
    pub fn spawn(self, listener: TcpListener) -> tokio::task::JoinHandle<std::io::Result<()>> {
        tokio::spawn(self.serve(listener))
    }

    /// Serves one connection until the peer closes it or breaks the record layer.
    pub async fn serve_connection(&self, stream: TcpStream, peer: SocketAddr) {
        let (rd, mut wr) = stream.into_split();
        let cfg = &self.shared.config;
        let (tx, mut rx) = mpsc::channel::<Bytes>(cfg.max_in_flight.max(1));
        let frag = cfg.fragment_size;
        let writer = tokio::spawn(async move {
            let mut out = BytesMut::new();
            while let Some(msg) = rx.recv().await {
                out.clear();
                encode_record(&msg, frag, &mut out);
                // Coalesce replies that are already waiting into one write.
                while out.len() < 256 << 10 {
                    match rx.try_recv() {
                        Ok(more) => encode_record(&more, frag, &mut out),
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
        let mut reader = RecordReader::new(rd, cfg.max_record);
        let slots = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
        'conn: loop {
            let first = match reader.read_record().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "closing RPC connection");
                    break;
                }
            };
            // Handle every record already buffered before waiting on the socket again, so
            // pipelined calls that need no handler are answered in one batch.
            let mut next = Some(first);
            while let Some(record) = next.take() {
                match self.prepare(record, peer) {
                    Prepared::Done(Some(reply)) => {
                        if tx.send(reply).await.is_err() {
                            break 'conn;
                        }
                    }
                    Prepared::Done(None) => {}
                    Prepared::Run(job) => {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            break 'conn;
                        };
                        let me = self.clone();
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            if let Some(reply) = me.run(job).await {
                                let _ = tx.send(reply).await;
                            }
                            drop(permit);
                        });
                    }
                }
                match reader.try_read_buffered() {
                    Ok(r) => next = r,
                    Err(e) => {
                        debug!(%peer, error = %e, "closing RPC connection");
                        break 'conn;
                    }
                }
            }
        }
        drop(tx);
        let _ = writer.await;
    }

    fn route(&self, h: &CallHeader) -> Route {
        let p = self
            .shared
            .programs
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let Some(versions) = p.get(&h.prog) else {
            return Route::Status(AcceptedStatus::ProgUnavail);
        };
        let Some(v) = versions.get(&h.vers) else {
            let low = versions.keys().next().copied().unwrap_or(0);
            let high = versions.keys().next_back().copied().unwrap_or(0);
            return Route::Status(AcceptedStatus::ProgMismatch { low, high });
        };
        if let Some(handler) = v.procs.get(&h.proc_) {
            return Route::Handler(handler.clone());
        }
        if h.proc_ == 0 {
            return Route::Null;
        }
        match &v.all {
            Some(handler) => Route::Handler(handler.clone()),
            None => Route::Status(AcceptedStatus::ProcUnavail),
        }
    }

    /// Runs one call record; returns the reply message, or `None` when nothing is to be sent
    /// (not a call, or a header too broken to answer).
    pub async fn handle_record(&self, record: Bytes, peer: SocketAddr) -> Option<Bytes> {
        match self.prepare(record, peer) {
            Prepared::Done(reply) => reply,
            Prepared::Run(job) => self.run(job).await,
        }
    }

    /// Everything about a call that needs no waiting: header checks, routing, and the
    /// duplicate-request cache's verdict.
    fn prepare(&self, record: Bytes, peer: SocketAddr) -> Prepared {
        let (msg, args) = match parse_message(&record) {
            Ok(m) => m,
            Err(e) => {
                debug!(%peer, error = %e, "dropping malformed RPC message");
                return Prepared::Done(None);
            }
        };
        let RpcMessage::Call(h) = msg else {
            debug!(%peer, "dropping a REPLY sent to the server");
            return Prepared::Done(None);
        };
        let xid = h.xid;
        trace!(xid, prog = h.prog, vers = h.vers, proc_ = h.proc_, "call");
        if h.rpcvers != RPC_VERSION {
            return Prepared::Done(Some(encode_reply(
                xid,
                &ReplyBody::Denied(RejectedReply::RpcMismatch {
                    low: RPC_VERSION,
                    high: RPC_VERSION,
                }),
                &[],
            )));
        }
        let auth_ok = match h.cred.flavor {
            AuthFlavor::AUTH_NONE => true,
            AuthFlavor::AUTH_SYS => h.cred.as_auth_sys().is_some(),
            _ => false,
        };
        if !auth_ok {
            let stat = if h.cred.flavor == AuthFlavor::AUTH_SYS {
                AuthStat::AUTH_BADCRED
            } else {
                AuthStat::AUTH_REJECTEDCRED
            };
            return Prepared::Done(Some(encode_reply(
                xid,
                &ReplyBody::Denied(RejectedReply::AuthError(stat)),
                &[],
            )));
        }
        let handler = match self.route(&h) {
            Route::Null => return Prepared::Done(Some(success(xid, &[]))),
            Route::Status(status) => return Prepared::Done(Some(accepted(xid, status))),
            Route::Handler(handler) => handler,
        };
        let key = DrcKey {
            client: ClientIdentity::of(&h.cred, peer.ip()),
            xid,
            prog: h.prog,
            vers: h.vers,
            proc_: h.proc_,
        };
        let verdict = match self.shared.drc.lookup(key, &args) {
            DrcLookup::Replay(reply) => {
                debug!(
                    xid,
                    "retransmission answered from the duplicate-request cache"
                );
                return Prepared::Done(Some(reply));
            }
            DrcLookup::InProgress(rx) => {
                debug!(xid, "retransmission of a running call waits for its reply");
                JobKind::Wait(rx)
            }
            DrcLookup::Execute(ticket) => JobKind::Execute(Box::new((
                handler,
                ticket,
                RpcCall {
                    xid,
                    prog: h.prog,
                    vers: h.vers,
                    proc_: h.proc_,
                    cred: h.cred,
                    verf: h.verf,
                    args,
                    peer,
                },
            ))),
        };
        Prepared::Run(Job { xid, kind: verdict })
    }

    /// The waiting part of a call: run the handler (and record its reply), or wait for the
    /// reply of the running original.
    async fn run(&self, job: Job) -> Option<Bytes> {
        let xid = job.xid;
        match job.kind {
            JobKind::Wait(mut rx) => rx.wait_for(|v| v.is_some()).await.ok()?.clone(),
            JobKind::Execute(work) => {
                let (handler, ticket, call) = *work;
                let reply = match handler.call(call).await {
                    Ok(results) => success(xid, &results),
                    Err(AcceptStat::SUCCESS) => {
                        warn!(
                            xid,
                            "handler returned SUCCESS as an error; sending SYSTEM_ERR"
                        );
                        accepted(xid, AcceptedStatus::SystemErr)
                    }
                    Err(stat) => accepted(xid, AcceptedStatus::from_stat(stat)),
                };
                ticket.complete(reply.clone());
                Some(reply)
            }
        }
    }
}

/// A call after [`RpcServer::prepare`].
enum Prepared {
    /// Answered (or dropped) without waiting.
    Done(Option<Bytes>),
    /// Needs a handler run or a wait.
    Run(Job),
}

struct Job {
    xid: u32,
    kind: JobKind,
}

enum JobKind {
    Execute(Box<(Arc<dyn RpcHandler>, DrcTicket, RpcCall)>),
    Wait(watch::Receiver<Option<Bytes>>),
}

fn success(xid: u32, results: &[u8]) -> Bytes {
    crate::message::encode_success(xid, results)
}

fn accepted(xid: u32, status: AcceptedStatus) -> Bytes {
    encode_reply(
        xid,
        &ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status,
        },
        &[],
    )
}
