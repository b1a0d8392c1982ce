//! NBD protocol section "Protocol phases": a server that accepts clients on TCP or unix
//! sockets, negotiates (fixed newstyle) and serves one export from a [`BlockBackend`].
//!
//! Shutdown is graceful: once the shutdown future resolves, listeners stop accepting,
//! connections stop reading new requests, every in-flight request completes and its reply
//! is written, and only then do `serve_*` return (the caller then flushes the backend).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::backend::BlockBackend;
use super::handshake::{negotiate, ExportInfo, HandshakeError};
use super::observer::{RequestObserver, ServerCounters};
use super::transmission::{shutdown_signalled, Connection, RequestLimits, TransmissionError};
use super::wire::TransmissionFlags;
use iscsi_target::busy_poll::BusyPoll;

/// Default number of requests one connection may have in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;
/// Preferred block size advertised in NBD_INFO_BLOCK_SIZE (unless the minimum is larger).
pub const PREFERRED_BLOCK_SIZE: u32 = 4096;
/// How long negotiation may take before the client is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configuration of an [`NbdServer`].
#[derive(Clone, Debug)]
pub struct NbdConfig {
    /// Name of the export; the empty name is always accepted as well.
    pub export_name: String,
    /// Free text shown by `nbdinfo` / `NBD_OPT_LIST`.
    pub description: Option<String>,
    /// Refuse writes (EPERM) and advertise NBD_FLAG_READ_ONLY.
    pub read_only: bool,
    /// Requests one connection may have in flight (queue depth per connection).
    pub max_in_flight: usize,
}

impl Default for NbdConfig {
    fn default() -> Self {
        NbdConfig {
            export_name: String::new(),
            description: None,
            read_only: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Why one client connection ended with an error (other clients are unaffected).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("negotiation failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("negotiation did not finish within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error("transmission failed: {0}")]
    Transmission(#[from] TransmissionError),
}

/// An NBD server for one export. Cheap to clone (shared state behind `Arc`s).
pub struct NbdServer<B: BlockBackend> {
    backend: Arc<B>,
    config: Arc<NbdConfig>,
    observer: Option<Arc<dyn RequestObserver>>,
    counters: Arc<ServerCounters>,
    busy_poll: Option<Arc<BusyPoll>>,
}

impl<B: BlockBackend> Clone for NbdServer<B> {
    fn clone(&self) -> Self {
        NbdServer {
            backend: self.backend.clone(),
            config: self.config.clone(),
            observer: self.observer.clone(),
            counters: self.counters.clone(),
            busy_poll: self.busy_poll.clone(),
        }
    }
}

impl<B: BlockBackend> NbdServer<B> {
    pub fn new(backend: Arc<B>, config: NbdConfig) -> NbdServer<B> {
        NbdServer {
            backend,
            config: Arc::new(config),
            observer: None,
            counters: Arc::new(ServerCounters::default()),
            busy_poll: None,
        }
    }

    /// Reports every answered request's timestamps to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> NbdServer<B> {
        self.observer = Some(observer);
        self
    }

    /// Marks `poll` whenever a connection receives requests or sends replies.
    pub fn with_busy_poll(mut self, poll: Arc<BusyPoll>) -> NbdServer<B> {
        self.busy_poll = Some(poll);
        self
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    pub fn config(&self) -> &NbdConfig {
        &self.config
    }

    /// Counters shared by all connections of this server.
    pub fn counters(&self) -> Arc<ServerCounters> {
        self.counters.clone()
    }

    /// What clients are told about the export.
    pub fn export_info(&self) -> ExportInfo {
        let b = &self.backend;
        let mut flags = TransmissionFlags::HAS_FLAGS
            | TransmissionFlags::SEND_FLUSH
            | TransmissionFlags::SEND_FUA
            | TransmissionFlags::SEND_CACHE;
        if self.config.read_only {
            flags = flags | TransmissionFlags::READ_ONLY;
        } else {
            flags = flags | TransmissionFlags::SEND_TRIM | TransmissionFlags::SEND_WRITE_ZEROES;
        }
        if b.multi_conn_safe() {
            flags = flags | TransmissionFlags::CAN_MULTI_CONN;
        }
        let min_block = b.block_size().max(1);
        ExportInfo {
            name: self.config.export_name.clone(),
            description: self.config.description.clone(),
            size: b.size(),
            flags,
            min_block,
            preferred_block: PREFERRED_BLOCK_SIZE.max(min_block),
            max_block: b.max_request(),
        }
    }

    /// Serves one already-connected client on any byte stream (used by tests with an
    /// in-memory duplex pipe).
    pub async fn serve_stream<S>(
        &self,
        stream: S,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut stream = stream;
        let Some(negotiated) = self.handshake(&mut stream).await? else {
            return Ok(());
        };
        let (r, w) = tokio::io::split(stream);
        self.connection(negotiated).run(r, w, shutdown).await?;
        Ok(())
    }

    async fn handshake<S>(
        &self,
        stream: &mut S,
    ) -> Result<Option<super::handshake::Negotiated>, ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let info = self.export_info();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, negotiate(stream, &info)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => {
                self.counters
                    .handshakes_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
            Err(_) => {
                self.counters
                    .handshakes_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(ConnectionError::HandshakeTimeout)
            }
        }
    }

    fn connection(&self, negotiated: super::handshake::Negotiated) -> Connection<B> {
        let info = self.export_info();
        Connection {
            backend: self.backend.clone(),
            negotiated,
            limits: RequestLimits {
                size: info.size,
                min_block: info.min_block,
                max_request: info.max_block,
                read_only: self.config.read_only,
                structured_replies: negotiated.structured_replies,
            },
            max_in_flight: self.config.max_in_flight.max(1),
            observer: self.observer.clone(),
            counters: self.counters.clone(),
            busy_poll: self.busy_poll.clone(),
        }
    }

    /// Accepts TCP clients until `shutdown` resolves, then drains every connection.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let server = self.clone();
                        let stop = stop_rx.clone();
                        let span = tracing::info_span!("nbd", %peer);
                        conns.spawn(
                            async move { server.handle(stream, |s| s.into_split(), stop).await }
                                .instrument(span),
                        );
                    }
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drain(stop_tx, conns).await;
        Ok(())
    }

    /// Accepts clients on a unix socket until `shutdown` resolves, then drains.
    pub async fn serve_unix(
        &self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let server = self.clone();
                        let stop = stop_rx.clone();
                        let span = tracing::info_span!("nbd", peer = "unix");
                        conns.spawn(
                            async move { server.handle(stream, |s| s.into_split(), stop).await }
                                .instrument(span),
                        );
                    }
                    Err(e) => accept_failed(e).await,
                },
            }
        }
        drain(stop_tx, conns).await;
        Ok(())
    }

    /// Runs one accepted client: negotiation (abandoned on shutdown), then transmission.
    async fn handle<S, R, W>(
        &self,
        mut stream: S,
        split: impl FnOnce(S) -> (R, W),
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
        R: AsyncRead + Unpin + Send,
        W: super::reply_out::ReplyOut,
    {
        self.counters
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        let result: Result<(), ConnectionError> = async {
            let negotiated = tokio::select! {
                n = self.handshake(&mut stream) => n?,
                _ = shutdown_signalled(&mut stop) => None,
            };
            let Some(n) = negotiated else {
                return Ok(());
            };
            let (r, w) = split(stream);
            self.connection(n).run(r, w, stop).await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => tracing::debug!("NBD client finished"),
            Err(e) => tracing::info!(error = %e, "NBD client dropped"),
        }
        self.counters
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Binds a unix socket listener at `path`, replacing a stale socket file.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

async fn accept_failed(e: std::io::Error) {
    // EMFILE and friends: back off instead of spinning.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn drain(stop_tx: watch::Sender<bool>, mut conns: JoinSet<()>) {
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// A shutdown future for `serve_*` that resolves once `rx` turns true.
pub async fn shutdown_on(mut rx: watch::Receiver<bool>) {
    shutdown_signalled(&mut rx).await
}
