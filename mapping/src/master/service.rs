//! The master service: the RPC program of `master.x` over the journalled state machine.
//!
//! Each changing call is planned against the state, its records are appended to the journal and
//! fsynced, and only then applied and answered (DESIGN.md "Control path"). Calls are served one
//! at a time under a lock: allocation is rare and must be totally ordered.

use super::journal::{Failpoint, Store, StoreError};
use super::proto::{self, procs, Reply, Status, XVdiskMap};
use super::state::{MasterError, MasterState, VdiskId};
use crate::placement::PlacementError;
use pvd_rpc::server::{reply, RpcResult};
use pvd_rpc::{AcceptStat, RpcCall, RpcServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// Extent size of a fresh master unless told otherwise.
pub const DEFAULT_EXTENT_SIZE: u64 = 64 << 20;

/// How to run a master.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Extent size for a fresh state dir (must match a stored one when given).
    pub extent_size: Option<u64>,
    /// Register with the local rpcbind.
    pub rpcbind: bool,
    /// Compact the journal into a snapshot after this many records.
    pub compact_every: u64,
}

/// The master: state plus journal behind a lock. Cheap to clone.
#[derive(Clone)]
pub struct MasterService {
    store: Arc<Mutex<Store>>,
}

fn status_of(e: &MasterError) -> Status {
    match e {
        MasterError::ServerChanged { .. } => Status::ERR_SERVER_CHANGED,
        MasterError::GeometryMismatch { .. } => Status::ERR_GEOMETRY_MISMATCH,
        MasterError::Placement(PlacementError::NoRoom { .. }) => Status::ERR_NO_ROOM,
        MasterError::Placement(_) => Status::ERR_NOT_ENOUGH_SERVERS,
        MasterError::NoSuchVdisk(_) => Status::ERR_NOT_FOUND,
        _ => Status::ERR_INVALID,
    }
}

fn message(text: String) -> String {
    let max = proto::PVD_MAX_MESSAGE as usize;
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn refuse<T>(e: MasterError) -> Reply<T> {
    Reply::Err(status_of(&e), message(e.to_string()))
}

fn io_refusal<T>(e: StoreError) -> Reply<T> {
    Reply::Err(Status::ERR_IO, message(e.to_string()))
}

/// The extents `indexes` of a vdisk (all when empty) in wire form.
fn vdisk_map(state: &MasterState, id: VdiskId, indexes: &[u64]) -> Option<XVdiskMap> {
    let v = state.vdisks.get(&id)?;
    let pick: Vec<u64> = if indexes.is_empty() {
        v.extents.keys().copied().collect()
    } else {
        let mut p = indexes.to_vec();
        p.sort_unstable();
        p.dedup();
        p
    };
    let extents = pick
        .into_iter()
        .filter_map(|i| {
            v.extents.get(&i).map(|slots| proto::XExtent {
                index: i,
                replicas: slots
                    .iter()
                    .map(|s| {
                        let r = state.replica_of(s);
                        proto::XReplica {
                            server_id: s.server.0,
                            portal: r.portal,
                            iqn: r.iqn,
                            lun: r.lun,
                            start_lba: r.start_lba,
                            block_size: r.block_size,
                        }
                    })
                    .collect(),
            })
        })
        .collect();
    Some(XVdiskMap {
        vdisk_id: id,
        name: v.name.clone(),
        geometry: (&v.geometry).into(),
        extents,
    })
}

impl MasterService {
    /// Opens the state in `dir` (replaying the journal).
    pub fn open(
        dir: &std::path::Path,
        extent_size: Option<u64>,
        compact_every: u64,
    ) -> Result<MasterService, StoreError> {
        let mut store = Store::open(dir, extent_size, DEFAULT_EXTENT_SIZE)?;
        store.set_compact_every(compact_every);
        store.set_failpoint(Failpoint::from_env());
        info!(
            dir = %dir.display(),
            replayed = store.replay.records_replayed,
            torn_bytes = store.replay.torn_bytes_dropped,
            extent_size = store.state().extent_size,
            "master state loaded"
        );
        Ok(MasterService {
            store: Arc::new(Mutex::new(store)),
        })
    }

    /// A copy of the current state.
    pub fn state(&self) -> MasterState {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state()
            .clone()
    }

    /// An RPC server with the master program registered.
    pub fn rpc_server(&self) -> RpcServer {
        let server = RpcServer::new();
        let me = self.clone();
        server.register_program(proto::PVD_MASTER_PROG, proto::PVD_MASTER_V1, move |call| {
            let me = me.clone();
            async move { me.dispatch(call).await }
        });
        server
    }

    async fn dispatch(&self, call: RpcCall) -> RpcResult {
        let store = self.store.clone();
        let proc_ = call.proc_;
        match proc_ {
            procs::REGISTER_SERVER
            | procs::ALLOCATE
            | procs::RELEASE
            | procs::LOOKUP
            | procs::LIST_SERVERS
            | procs::LIST_VDISKS
            | procs::STATUS => {}
            _ => return Err(AcceptStat::PROC_UNAVAIL),
        }
        // Decode first (GARBAGE_ARGS), then run under the lock off the async threads: fsync.
        enum Args {
            Register(proto::XServerInfo),
            Allocate(proto::XAllocateArgs),
            Ref(proto::XVdiskRef),
            None,
        }
        let args = match proc_ {
            procs::REGISTER_SERVER => Args::Register(call.args()?),
            procs::ALLOCATE => Args::Allocate(call.args()?),
            procs::RELEASE | procs::LOOKUP => Args::Ref(call.args()?),
            _ => {
                call.args::<()>()?;
                Args::None
            }
        };
        let peer = call.peer;
        tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
            match (proc_, args) {
                (procs::REGISTER_SERVER, Args::Register(a)) => {
                    let info = crate::server::ServerInfo::from(a);
                    let res: proto::RegisterRes = match store.state().plan_register(&info) {
                        Err(e) => refuse(e),
                        Ok((id, rec)) => {
                            let new = rec.is_some();
                            match store.commit(rec.into_iter().collect()) {
                                Ok(()) => {
                                    if new {
                                        info!(%peer, %id, portal = %info.portal, iqn = %info.iqn, lun = info.lun, capacity = info.capacity_bytes, "server registered");
                                    }
                                    Reply::Ok(id.0)
                                }
                                Err(e) => io_refusal(e),
                            }
                        }
                    };
                    reply(&res)
                }
                (procs::ALLOCATE, Args::Allocate(a)) => {
                    let g: crate::geometry::Geometry = a.geometry.into();
                    let res: proto::MapRes =
                        match store.state().plan_allocate(&a.name, &g, &a.extents) {
                            Err(e) => {
                                warn!(%peer, name = %a.name, error = %e, "allocation refused");
                                refuse(e)
                            }
                            Ok((id, records)) => {
                                let fresh = !records.is_empty();
                                match store.commit(records) {
                                    Ok(()) => {
                                        if fresh {
                                            info!(%peer, name = %a.name, vdisk = id, "extents allocated");
                                        }
                                        match vdisk_map(store.state(), id, &a.extents) {
                                            Some(m) => Reply::Ok(m),
                                            None => Reply::Err(
                                                Status::ERR_NOT_FOUND,
                                                format!("vdisk {id} vanished"),
                                            ),
                                        }
                                    }
                                    Err(e) => io_refusal(e),
                                }
                            }
                        };
                    reply(&res)
                }
                (procs::RELEASE, Args::Ref(r)) => {
                    let res: proto::ReleaseRes =
                        match store.state().plan_release(r.vdisk_id, &r.name) {
                            None => Reply::Ok(false),
                            Some(rec) => match store.commit(vec![rec]) {
                                Ok(()) => {
                                    info!(%peer, vdisk = r.vdisk_id, name = %r.name, "vdisk released");
                                    Reply::Ok(true)
                                }
                                Err(e) => io_refusal(e),
                            },
                        };
                    reply(&res)
                }
                (procs::LOOKUP, Args::Ref(r)) => {
                    let st = store.state();
                    let res: proto::MapRes = match st
                        .find_vdisk(r.vdisk_id, &r.name)
                        .and_then(|v| vdisk_map(st, v.id, &[]))
                    {
                        Some(m) => Reply::Ok(m),
                        None => refuse(MasterError::NoSuchVdisk(if r.vdisk_id != 0 {
                            format!("with id {}", r.vdisk_id)
                        } else {
                            format!("named {:?}", r.name)
                        })),
                    };
                    reply(&res)
                }
                (procs::LIST_SERVERS, _) => {
                    let st = store.state();
                    let list = st
                        .servers
                        .values()
                        .map(|s| proto::XServer {
                            id: s.id.0,
                            info: (&s.info).into(),
                            extents_total: s.slots,
                            extents_free: s.free.len() as u64,
                        })
                        .collect();
                    let res: proto::ListServersRes = Reply::Ok(proto::BoundedList(list));
                    reply(&res)
                }
                (procs::LIST_VDISKS, _) => {
                    let st = store.state();
                    let list = st
                        .vdisks
                        .values()
                        .map(|v| proto::XVdiskSummary {
                            vdisk_id: v.id,
                            name: v.name.clone(),
                            geometry: (&v.geometry).into(),
                            extents_allocated: v.extents.len() as u64,
                        })
                        .collect();
                    let res: proto::ListVdisksRes = Reply::Ok(proto::BoundedList(list));
                    reply(&res)
                }
                (procs::STATUS, _) => {
                    let st = store.state();
                    let t = st.totals();
                    let res: proto::StatusRes = Reply::Ok(proto::XStatusInfo {
                        extent_size: st.extent_size,
                        servers: t.servers,
                        extents_total: t.slots,
                        extents_free: t.free,
                        extents_used: t.used,
                        vdisks: t.vdisks,
                    });
                    reply(&res)
                }
                _ => Err(AcceptStat::PROC_UNAVAIL),
            }
        })
        .await
        .unwrap_or(Err(AcceptStat::SYSTEM_ERR))
    }
}

/// Runs a master until SIGINT/SIGTERM.
pub async fn run(opts: MasterOptions) -> anyhow::Result<()> {
    use anyhow::Context;
    let service = MasterService::open(&opts.state_dir, opts.extent_size, opts.compact_every)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let local = listener.local_addr()?;
    if opts.rpcbind {
        pvd_rpc::register_with_rpcbind(proto::PVD_MASTER_PROG, proto::PVD_MASTER_V1, local.port())
            .await
            .context("registering with rpcbind (is rpcbind running?)")?;
    }
    info!(listen = %local, "pvd master serving program {:#x} version 1", proto::PVD_MASTER_PROG);
    eprintln!("pvd master: listening on {local}");
    let server = service.rpc_server();
    let serve = server.spawn(listener);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve => { r??; }
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    if opts.rpcbind {
        let _ =
            pvd_rpc::unregister_with_rpcbind(proto::PVD_MASTER_PROG, proto::PVD_MASTER_V1).await;
    }
    Ok(())
}
