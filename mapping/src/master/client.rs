//! A client of the master program, retrying until the master answers.
//!
//! ONC RPC over TCP is at-least-once: a call whose reply is lost is sent again, and the
//! master's answers are the same for a repeated call (its state machine records every
//! allocation by (vdisk, extent index)). So the client simply retries transport failures
//! (connection refused, reset, timeout) with backoff until an overall deadline; refusals by the
//! master come back at once as [`ClientError::Refused`].

use super::proto::{self, procs, Reply, Status};
use crate::geometry::Geometry;
use crate::mapfile::MappingFile;
use crate::server::{ExtentReplica, ServerId, ServerInfo};
use pvd_rpc::xdr::{XdrDecode, XdrEncode};
use pvd_rpc::{RpcClient, RpcClientConfig, RpcError};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::Mutex;

/// Why a call to the master failed.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("master {addr} refused: {message} ({status})")]
    Refused {
        addr: String,
        status: &'static str,
        code: Status,
        message: String,
    },
    #[error("no answer from master {addr} within {timeout:?} (last error: {last})")]
    Unreachable {
        addr: String,
        timeout: Duration,
        last: String,
    },
    #[error("master {addr}: {source}")]
    Rpc {
        addr: String,
        #[source]
        source: RpcError,
    },
    #[error("master {addr} answered with an incomplete mapping for {name:?}: {why}")]
    BadMapping {
        addr: String,
        name: String,
        why: String,
    },
}

impl ClientError {
    /// The master's status code when it refused the call.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn transient(e: &RpcError) -> bool {
    matches!(
        e,
        RpcError::Io(_)
            | RpcError::Connect { .. }
            | RpcError::Timeout { .. }
            | RpcError::ConnectionLost { .. }
            | RpcError::Record(_)
            | RpcError::Closed
            | RpcError::SystemErr
    )
}

/// A connection to a master that reconnects and retries until `timeout`.
pub struct MasterClient {
    addr: String,
    timeout: Duration,
    rpc: Mutex<Option<RpcClient>>,
}

impl MasterClient {
    /// A client for `addr` (`host:port`); nothing is sent until the first call. Every call
    /// retries transport failures for up to `timeout`.
    pub fn new(addr: &str, timeout: Duration) -> MasterClient {
        MasterClient {
            addr: addr.to_string(),
            timeout,
            rpc: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn call<A: XdrEncode, R: XdrDecode>(
        &self,
        proc_: u32,
        args: &A,
    ) -> Result<R, ClientError> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut last;
        loop {
            let client = {
                let mut slot = self.rpc.lock().await;
                match slot.as_ref() {
                    Some(c) => Ok(c.clone()),
                    None => {
                        let config = RpcClientConfig {
                            timeout: Duration::from_secs(5).min(self.timeout),
                            retries: 1,
                            connect_timeout: Duration::from_secs(2),
                            reconnect_backoff: Duration::from_millis(50),
                            ..RpcClientConfig::default()
                        };
                        match RpcClient::connect_with(
                            self.addr.as_str(),
                            proto::PVD_MASTER_PROG,
                            proto::PVD_MASTER_V1,
                            config,
                        )
                        .await
                        {
                            Ok(c) => {
                                *slot = Some(c.clone());
                                Ok(c)
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            };
            let result = match client {
                Ok(c) => c.call::<A, R>(proc_, args).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => return Ok(r),
                Err(e) if transient(&e) => {
                    tracing::debug!(addr = %self.addr, proc_, error = %e, "master call failed; retrying");
                    last = e.to_string();
                    *self.rpc.lock().await = None;
                }
                Err(e) => {
                    return Err(ClientError::Rpc {
                        addr: self.addr.clone(),
                        source: e,
                    })
                }
            }
            if start.elapsed() >= self.timeout {
                return Err(ClientError::Unreachable {
                    addr: self.addr.clone(),
                    timeout: self.timeout,
                    last,
                });
            }
            tokio::time::sleep(backoff.min(self.timeout.saturating_sub(start.elapsed()))).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn answer<T>(&self, r: Reply<T>) -> Result<T, ClientError> {
        match r {
            Reply::Ok(v) => Ok(v),
            Reply::Err(code, message) => Err(ClientError::Refused {
                addr: self.addr.clone(),
                status: code.name().unwrap_or("unknown status"),
                code,
                message,
            }),
        }
    }

    /// NULL: is the master there?
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call::<(), ()>(procs::NULL, &()).await
    }

    /// REGISTER_SERVER: the server's id (the same for the same portal, IQN and LUN).
    pub async fn register_server(&self, info: &ServerInfo) -> Result<ServerId, ClientError> {
        let a: proto::XServerInfo = info.into();
        let r: proto::RegisterRes = self.call(procs::REGISTER_SERVER, &a).await?;
        self.answer(r).map(ServerId)
    }

    /// ALLOCATE extents `indexes` (all when empty) of vdisk `name` with `geometry`.
    pub async fn allocate(
        &self,
        name: &str,
        geometry: &Geometry,
        indexes: &[u64],
    ) -> Result<proto::XVdiskMap, ClientError> {
        let a = proto::XAllocateArgs {
            name: name.to_string(),
            geometry: geometry.into(),
            extents: indexes.to_vec(),
        };
        let r: proto::MapRes = self.call(procs::ALLOCATE, &a).await?;
        self.answer(r)
    }

    /// RELEASE a vdisk by id (or by name when `id` is 0); `false` when it was already gone.
    pub async fn release(&self, id: u64, name: &str) -> Result<bool, ClientError> {
        let a = proto::XVdiskRef {
            vdisk_id: id,
            name: name.to_string(),
        };
        let r: proto::ReleaseRes = self.call(procs::RELEASE, &a).await?;
        self.answer(r)
    }

    /// LOOKUP a vdisk by id (or by name when `id` is 0): every allocated extent.
    pub async fn lookup(&self, id: u64, name: &str) -> Result<proto::XVdiskMap, ClientError> {
        let a = proto::XVdiskRef {
            vdisk_id: id,
            name: name.to_string(),
        };
        let r: proto::MapRes = self.call(procs::LOOKUP, &a).await?;
        self.answer(r)
    }

    pub async fn list_servers(&self) -> Result<Vec<proto::XServer>, ClientError> {
        let r: proto::ListServersRes = self.call(procs::LIST_SERVERS, &()).await?;
        self.answer(r).map(|l| l.0)
    }

    pub async fn list_vdisks(&self) -> Result<Vec<proto::XVdiskSummary>, ClientError> {
        let r: proto::ListVdisksRes = self.call(procs::LIST_VDISKS, &()).await?;
        self.answer(r).map(|l| l.0)
    }

    pub async fn status(&self) -> Result<proto::XStatusInfo, ClientError> {
        let r: proto::StatusRes = self.call(procs::STATUS, &()).await?;
        self.answer(r)
    }

    /// A mapping file from a complete vdisk map (validated).
    pub fn mapping_file(&self, map: &proto::XVdiskMap) -> Result<MappingFile, ClientError> {
        let geometry: Geometry = map.geometry.into();
        let mut extents: Vec<(u64, Vec<ExtentReplica>)> = map
            .extents
            .iter()
            .map(|e| {
                (
                    e.index,
                    e.replicas
                        .iter()
                        .cloned()
                        .map(ExtentReplica::from)
                        .collect(),
                )
            })
            .collect();
        extents.sort_by_key(|e| e.0);
        let mut m = MappingFile::new(
            &map.name,
            map.vdisk_id,
            Some(self.addr.clone()),
            geometry,
            Vec::new(),
        );
        m.extents = extents
            .into_iter()
            .map(|(index, replicas)| crate::mapfile::ExtentEntry { index, replicas })
            .collect();
        m.validate(std::path::Path::new("<answer>"))
            .map_err(|e| ClientError::BadMapping {
                addr: self.addr.clone(),
                name: map.name.clone(),
                why: e.to_string(),
            })?;
        Ok(m)
    }
}

/// Options of [`register_luns_with`].
#[derive(Debug, Clone, Copy)]
pub struct RegisterOptions {
    /// Give up after this long without an answer (None: keep trying forever).
    pub overall_timeout: Option<Duration>,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            overall_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// Registers LUNs with the master at `master_addr`, retrying with backoff until it answers
/// (a target may start before its master). Returns the server ids in the order given.
pub async fn register_luns(
    master_addr: &str,
    luns: Vec<ServerInfo>,
) -> Result<Vec<ServerId>, ClientError> {
    register_luns_with(master_addr, luns, RegisterOptions::default()).await
}

/// [`register_luns`] with options.
pub async fn register_luns_with(
    master_addr: &str,
    luns: Vec<ServerInfo>,
    options: RegisterOptions,
) -> Result<Vec<ServerId>, ClientError> {
    let timeout = options
        .overall_timeout
        .unwrap_or(Duration::from_secs(u64::MAX / 4));
    let client = MasterClient::new(master_addr, timeout);
    let mut ids = Vec::with_capacity(luns.len());
    for lun in &luns {
        let id = client.register_server(lun).await?;
        tracing::info!(master = master_addr, portal = %lun.portal, iqn = %lun.iqn, lun = lun.lun, %id, "registered with master");
        ids.push(id);
    }
    Ok(ids)
}
