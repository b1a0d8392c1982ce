//! RFC 7143 sections 4.2.7 (names), 6.3.1 (session reinstatement) and 7.1: the listening
//! target: accepts connections, owns the logical units and the table of live sessions.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use iscsi_target::{ServerConfig, Target};
//! let cfg = ServerConfig::single(
//!     "127.0.0.1:0".parse()?,
//!     "iqn.2026-11.io.pvd:disk0",
//!     &["/tmp/disk.img".into()],
//! );
//! let handle = Target::bind(cfg).await?;
//! println!("serving on {}", handle.local_addr());
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iscsi_proto::text::{
    ChapAlgorithm, ChapCredentials, ExportedTarget, TargetChapConfig, TargetConfig, TargetPortal,
};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::busy_poll::BusyPoll;
use crate::config::{ConfigError, ServerConfig};
use crate::lu::{LogicalUnit, LuError};

/// The portal group tag of every portal (one portal group).
pub const PORTAL_GROUP_TAG: u16 = 1;

/// Why a target could not start.
#[derive(Debug, Error)]
pub enum TargetError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("target {iqn} LUN {lun}: {source}")]
    Lu {
        iqn: String,
        lun: u64,
        source: LuError,
    },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Identity of a session for reinstatement: initiator name, ISID, target name.
pub(crate) type SessionKey = (String, [u8; 6], String);

/// A live session as the registry sees it.
pub(crate) struct SessionSlot {
    pub id: u64,
    /// Signalled to make the session drop its connection (reinstatement).
    pub kill: Arc<Notify>,
    /// Becomes true once the session is gone.
    pub done: watch::Receiver<bool>,
}

/// What every connection of the server shares.
pub(crate) struct ServerState {
    pub config: ServerConfig,
    pub login: Arc<TargetConfig>,
    /// Logical units of each target, by IQN.
    pub luns: HashMap<String, Arc<Vec<Arc<LogicalUnit>>>>,
    next_tsih: AtomicU16,
    next_session: AtomicU64,
    pub sessions: Mutex<HashMap<SessionKey, SessionSlot>>,
    pub shutdown: watch::Receiver<bool>,
    /// Told about small commands arriving and being answered (`poll_us` > 0).
    pub busy_poll: Option<Arc<BusyPoll>>,
}

impl ServerState {
    /// A fresh, non-zero TSIH.
    pub(crate) fn new_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }

    pub(crate) fn new_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Targets as SendTargets should list them, reachable at `portal` unless an address to
    /// advertise is configured.
    pub(crate) fn exported(&self, portal: SocketAddr) -> Vec<ExportedTarget> {
        let portal = match &self.config.advertise {
            Some(a) => TargetPortal::parse(a).unwrap_or_else(|_| {
                TargetPortal::new(portal.ip().to_string(), portal.port(), PORTAL_GROUP_TAG)
            }),
            None => TargetPortal::new(portal.ip().to_string(), portal.port(), PORTAL_GROUP_TAG),
        };
        let mut out = self.login.targets.clone();
        for t in &mut out {
            let mut p = portal.clone();
            p.portal_group_tag = Some(PORTAL_GROUP_TAG);
            t.portals = vec![p];
        }
        out
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, SessionSlot>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session, dropping any older one with the same key (RFC 7143 section
    /// 6.3.1: a login with the ISID of a live session reinstates it). Waits for the old one to
    /// be gone.
    pub(crate) async fn reinstate(&self, key: SessionKey, slot: SessionSlot) {
        let old = self.sessions().insert(key, slot);
        if let Some(old) = old {
            tracing::info!(id = old.id, "reinstating session: dropping the old one");
            old.kill.notify_one();
            let mut done = old.done;
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                crate::connection::stopped(&mut done),
            )
            .await;
        }
    }

    /// Forgets session `id` under `key` (if it is still the registered one).
    pub(crate) fn remove_session(&self, key: &SessionKey, id: u64) {
        let mut s = self.sessions();
        if s.get(key).is_some_and(|slot| slot.id == id) {
            s.remove(key);
        }
    }
}

/// Builds the login configuration: every target, its ACL, CHAP and the operational offers.
fn login_config(cfg: &ServerConfig) -> TargetConfig {
    let targets: Vec<ExportedTarget> = cfg
        .targets
        .iter()
        .map(|t| ExportedTarget {
            name: t.iqn.clone(),
            alias: t.alias.clone(),
            portals: Vec::new(),
            allowed_initiators: (!t.allow_initiators.is_empty())
                .then(|| t.allow_initiators.clone()),
        })
        .collect();
    let mut tc = TargetConfig::new(targets);
    let users: Vec<ChapCredentials> = cfg
        .targets
        .iter()
        .filter_map(|t| t.chap.as_ref())
        .map(|c| ChapCredentials::new(c.user.clone(), c.secret.as_bytes().to_vec()))
        .collect();
    if !users.is_empty() {
        tc.chap = Some(TargetChapConfig {
            users,
            mutual: cfg
                .targets
                .iter()
                .find_map(|t| t.chap_mutual.as_ref())
                .map(|c| ChapCredentials::new(c.user.clone(), c.secret.as_bytes().to_vec())),
            algorithms: ChapAlgorithm::ALL.to_vec(),
        });
    }
    tc.portal_group_tag = PORTAL_GROUP_TAG;
    tc.offers.max_recv_data_segment_length = crate::connection::MAX_RECV_DATA_SEGMENT_LENGTH;
    tc.offers.max_burst_length = 16 << 20;
    tc.offers.first_burst_length = 16 << 20;
    tc.offers.max_outstanding_r2t = 8;
    tc.offers.initial_r2t = false;
    tc.offers.immediate_data = true;
    tc
}

/// Entry point: `Target::bind(config)` starts a target.
pub struct Target;

impl Target {
    /// Opens every LUN, binds the listener and starts serving in the background.
    pub async fn bind(config: ServerConfig) -> Result<TargetHandle, TargetError> {
        config.validate()?;
        let mut luns = HashMap::new();
        for t in &config.targets {
            let mut list = Vec::with_capacity(t.luns.len());
            for (n, spec) in t.luns.iter().enumerate() {
                let lu_cfg = spec.lu_config(n as u64)?;
                let lu = LogicalUnit::open(lu_cfg).map_err(|source| TargetError::Lu {
                    iqn: t.iqn.clone(),
                    lun: n as u64,
                    source,
                })?;
                list.push(Arc::new(lu));
            }
            luns.insert(t.iqn.clone(), Arc::new(list));
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TargetError::Listen {
                    addr: config.listen,
                    source,
                })?;
        // Set before any connection is accepted: connections take the listener's algorithm
        // when they are established (switching an established one from BBR would leave it
        // paced).
        crate::tcp_congestion::apply(socket2::SockRef::from(&listener), &config.tcp_congestion);
        let local_addr = listener
            .local_addr()
            .map_err(|source| TargetError::Listen {
                addr: config.listen,
                source,
            })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let busy_poll = (config.poll_us > 0).then(|| {
            let poll = BusyPoll::new(std::time::Duration::from_micros(config.poll_us));
            let mut stop = stop_rx.clone();
            let polling = poll.clone();
            // Polls until the target stops.
            tokio::spawn(async move {
                tokio::select! {
                    _ = polling.run() => {}
                    _ = crate::connection::stopped(&mut stop) => {}
                }
            });
            poll
        });
        let state = Arc::new(ServerState {
            login: Arc::new(login_config(&config)),
            config,
            luns,
            next_tsih: AtomicU16::new(rand::random::<u16>() | 1),
            next_session: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
            shutdown: stop_rx,
            busy_poll,
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        tracing::info!(%local_addr, "iSCSI target listening");
        Ok(TargetHandle {
            local_addr,
            stop: stop_tx,
            task,
            state,
        })
    }
}

/// A running target.
pub struct TargetHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    state: Arc<ServerState>,
}

impl TargetHandle {
    /// The address the target listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `iscsi://ADDR/IQN/LUN` for the first target.
    pub fn url(&self, lun: u64) -> String {
        format!(
            "iscsi://{}/{}/{}",
            self.local_addr, self.state.config.targets[0].iqn, lun
        )
    }

    /// Number of live sessions (normal and discovery).
    pub fn session_count(&self) -> usize {
        self.state.sessions().len()
    }

    /// Stops accepting, lets in-flight commands finish (up to 30 s), closes every connection
    /// and flushes every logical unit.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        for list in self.state.luns.values() {
            for lu in list.iter() {
                if let Err(e) = lu.flush().await {
                    tracing::error!(error = %e, "flushing a logical unit at shutdown");
                }
            }
        }
    }

    /// Waits until the target stops (after [`TargetHandle::shutdown`] from elsewhere or a
    /// listener failure).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    let mut conns = JoinSet::new();
    let mut stop = state.shutdown.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let st = state.clone();
                    conns.spawn(async move {
                        crate::connection::serve(sock, peer, st).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = crate::connection::stopped(&mut stop) => break,
        }
    }
    drop(listener);
    // Connections see the same shutdown signal and finish their in-flight commands.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(35), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}
