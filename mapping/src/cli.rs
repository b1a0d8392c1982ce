//! The `pvd master` and `pvd vdisk` subcommands.
//!
//! Default stripe unit: 1 MiB. Every request costs tapdisk a roughly constant amount (the
//! thesis's first lesson), so server requests should be as large as possible; a sequential
//! stream still spreads over all `W` servers (consecutive units alternate columns and the
//! per-server pieces merge again), while a 1 MiB unit keeps an ordinary VM request (<= 1 MiB)
//! in one piece on one server instead of splitting it into 4 requests as a 256 KiB unit would.

use crate::geometry::Geometry;
use crate::lock::{LockError, MappingLock};
use crate::mapfile::MappingFile;
use crate::master::client::{register_luns_with, MasterClient, RegisterOptions};
use crate::master::service::{self, MasterOptions};
use crate::server::ServerInfo;
use crate::size::{format_size, parse_size};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default master address (DESIGN.md "Defaults": master port 20049).
pub const DEFAULT_MASTER: &str = "127.0.0.1:20049";
/// Default stripe unit (see the module docs for why).
pub const DEFAULT_STRIPE_UNIT: u64 = 1 << 20;

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// `pvd master`: run the master, or ask one for its status.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MasterCommand {
    #[command(subcommand)]
    pub action: Option<MasterAction>,
    #[command(flatten)]
    pub serve: MasterServeArgs,
}

/// Options of a running master.
#[derive(Args, Debug)]
pub struct MasterServeArgs {
    /// Address to serve the master RPC program on.
    #[arg(long, default_value = DEFAULT_MASTER)]
    pub listen: SocketAddr,
    /// Directory of the master's journal and snapshot (created if missing).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Extent size servers are carved into (fresh state dirs; default 64MiB).
    #[arg(long, value_parser = size_arg)]
    pub extent_size: Option<u64>,
    /// Register the program with the local rpcbind.
    #[arg(long)]
    pub rpcbind: bool,
    /// Compact the journal into a snapshot after this many records.
    #[arg(long, default_value_t = 1024)]
    pub compact_every: u64,
}

#[derive(Subcommand, Debug)]
pub enum MasterAction {
    /// Register a LUN of any iSCSI target (e.g. tgtd) with a master by hand; `pvd target
    /// --register` does this for pvd's own target.
    Register {
        #[arg(long, env = "PVD_MASTER", default_value = DEFAULT_MASTER)]
        master: String,
        /// iSCSI portal host:port.
        #[arg(long)]
        portal: String,
        /// Target IQN.
        #[arg(long)]
        iqn: String,
        #[arg(long, default_value_t = 0)]
        lun: u64,
        /// LUN capacity.
        #[arg(long, value_parser = size_arg)]
        capacity: u64,
        #[arg(long, default_value_t = 512)]
        block_size: u32,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Show a master's servers, free and used extents, and vdisks.
    Status {
        /// Master address (host:port).
        #[arg(long, env = "PVD_MASTER", default_value = DEFAULT_MASTER)]
        master: String,
        /// Seconds to keep trying to reach the master.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

impl MasterCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.action {
            Some(MasterAction::Register {
                master,
                portal,
                iqn,
                lun,
                capacity,
                block_size,
                timeout,
            }) => {
                let info = ServerInfo {
                    portal,
                    iqn,
                    lun,
                    capacity_bytes: capacity,
                    block_size,
                };
                let ids = register_luns_with(
                    &master,
                    vec![info],
                    RegisterOptions {
                        overall_timeout: Some(Duration::from_secs(timeout)),
                    },
                )
                .await?;
                println!("registered as server {}", ids[0].0);
                Ok(())
            }
            Some(MasterAction::Status { master, timeout }) => {
                master_status(&master, Duration::from_secs(timeout)).await
            }
            None => {
                let s = self.serve;
                let state_dir = s
                    .state_dir
                    .ok_or_else(|| anyhow!("pvd master needs --state-dir DIR"))?;
                if s.extent_size.is_some_and(|e| e == 0 || e % 4096 != 0) {
                    bail!("--extent-size must be a non-zero multiple of 4096 bytes");
                }
                service::run(MasterOptions {
                    listen: s.listen,
                    state_dir,
                    extent_size: s.extent_size,
                    rpcbind: s.rpcbind,
                    compact_every: s.compact_every,
                })
                .await
            }
        }
    }
}

async fn master_status(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let c = MasterClient::new(addr, timeout);
    let st = c.status().await?;
    let servers = c.list_servers().await?;
    let vdisks = c.list_vdisks().await?;
    println!(
        "master {addr}: extent size {}, {} servers, {} extents ({} used, {} free), {} vdisks",
        format_size(st.extent_size),
        st.servers,
        st.extents_total,
        st.extents_used,
        st.extents_free,
        st.vdisks
    );
    println!("servers:");
    for s in servers {
        println!(
            "  {:>4}  {}  {}  lun {}  capacity {}  block {}  extents {} free {}",
            s.id,
            s.info.portal,
            s.info.iqn,
            s.info.lun,
            format_size(s.info.capacity),
            s.info.block_size,
            s.extents_total,
            s.extents_free
        );
    }
    println!("vdisks:");
    for v in vdisks {
        println!(
            "  {:>4}  {}  size {}  stripes {} x {}  replicas {}  extents {}",
            v.vdisk_id,
            v.name,
            format_size(v.geometry.size),
            v.geometry.stripes,
            format_size(v.geometry.stripe_unit),
            v.geometry.replicas,
            v.extents_allocated
        );
    }
    Ok(())
}

/// `pvd vdisk`: create, show, delete or recover a virtual disk's mapping file.
#[derive(Args, Debug)]
pub struct VdiskCommand {
    #[command(subcommand)]
    pub action: VdiskAction,
}

#[derive(Subcommand, Debug)]
pub enum VdiskAction {
    /// Allocate extents for a new virtual disk and write its mapping file. Retrying a create
    /// with the same name and geometry returns the same extents.
    Create {
        /// Name of the virtual disk (letters, digits, '.', '-', '_').
        name: String,
        /// Master address (host:port).
        #[arg(long, env = "PVD_MASTER", default_value = DEFAULT_MASTER)]
        master: String,
        /// Disk size (bytes, or with K/M/G/T or KiB/MiB/GiB/TiB).
        #[arg(long, value_parser = size_arg)]
        size: u64,
        /// Stripe count W: extents of a group are spread over W servers.
        #[arg(long, default_value_t = 1)]
        stripes: u32,
        /// Stripe unit U.
        #[arg(long, value_parser = size_arg, default_value = "1MiB")]
        stripe_unit: u64,
        /// Replica count R (each extent on R distinct servers).
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Mapping file to write.
        #[arg(long)]
        map: PathBuf,
        /// Seconds to keep trying to reach the master.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print a mapping file and whether a tapdisk serves it.
    Show {
        #[arg(long)]
        map: PathBuf,
    },
    /// Release the disk's extents at the master and remove its mapping file.
    Delete {
        #[arg(long)]
        map: PathBuf,
        /// Master address; default: the one recorded in the mapping file.
        #[arg(long, env = "PVD_MASTER")]
        master: Option<String>,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Rebuild a lost mapping file from the master's records.
    Recover {
        name: String,
        #[arg(long, env = "PVD_MASTER", default_value = DEFAULT_MASTER)]
        master: String,
        #[arg(long)]
        map: PathBuf,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

fn lock(map: &Path) -> anyhow::Result<MappingLock> {
    MappingLock::acquire(map).map_err(|e| match e {
        LockError::Held { .. } => anyhow!("{e}; stop it first"),
        other => anyhow!(other),
    })
}

fn describe(m: &MappingFile, path: &Path) -> String {
    let servers: std::collections::BTreeSet<(&str, &str, u64)> = m
        .extents
        .iter()
        .flat_map(|e| e.replicas.iter())
        .map(|r| (r.portal.as_str(), r.iqn.as_str(), r.lun))
        .collect();
    format!(
        "vdisk {} (id {}): size {}, {} extents of {}, stripes {} x {}, replicas {}, on {} servers; mapping {}",
        m.name,
        m.vdisk_id,
        format_size(m.size),
        m.extents.len(),
        format_size(m.extent_size),
        m.stripes,
        format_size(m.stripe_unit),
        m.replicas,
        servers.len(),
        path.display()
    )
}

impl VdiskCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.action {
            VdiskAction::Create {
                name,
                master,
                size,
                stripes,
                stripe_unit,
                replicas,
                map,
                timeout,
            } => {
                if map.exists() {
                    let old = MappingFile::load(&map)?;
                    if old.name != name {
                        bail!(
                            "mapping file {} already describes vdisk {:?}; delete it or choose another path",
                            map.display(),
                            old.name
                        );
                    }
                }
                let existed = map.exists();
                let held = lock(&map)?;
                let result = async {
                    let client = MasterClient::new(&master, Duration::from_secs(timeout));
                    let extent_size = client.status().await?.extent_size;
                    let geometry = Geometry::new(size, extent_size, stripes, stripe_unit, replicas)
                        .with_context(|| format!("vdisk {name}"))?;
                    let answer = client.allocate(&name, &geometry, &[]).await?;
                    let m = client.mapping_file(&answer)?;
                    m.save(&map)?;
                    println!("{}", describe(&m, &map));
                    anyhow::Ok(())
                }
                .await;
                if result.is_err() && !existed {
                    // Leave no lock sidecar behind for a disk that was never written.
                    let _ = std::fs::remove_file(held.lock_path());
                }
                result
            }
            VdiskAction::Show { map } => {
                let m = MappingFile::load(&map)?;
                println!("{}", describe(&m, &map));
                if let Some(master) = &m.master {
                    println!("master {master}");
                }
                match MappingLock::acquire(&map) {
                    Ok(_) => println!("not served"),
                    Err(LockError::Held { holder, .. }) => println!("served by {holder}"),
                    Err(e) => println!("lock state unknown: {e}"),
                }
                for e in &m.extents {
                    let reps: Vec<String> = e
                        .replicas
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {} lun {} lba {} (bs {})",
                                r.portal, r.iqn, r.lun, r.start_lba, r.block_size
                            )
                        })
                        .collect();
                    println!("extent {:>6}: {}", e.index, reps.join(" | "));
                }
                Ok(())
            }
            VdiskAction::Delete {
                map,
                master,
                timeout,
            } => {
                let held = lock(&map)?;
                let m = MappingFile::load(&map)?;
                let master = master.or(m.master.clone()).ok_or_else(|| {
                    anyhow!(
                        "mapping file {} does not name its master; pass --master",
                        map.display()
                    )
                })?;
                let client = MasterClient::new(&master, Duration::from_secs(timeout));
                let released = client.release(m.vdisk_id, &m.name).await?;
                std::fs::remove_file(&map)
                    .with_context(|| format!("removing {}", map.display()))?;
                let _ = std::fs::remove_file(held.lock_path());
                drop(held);
                if released {
                    println!("vdisk {} released; {} removed", m.name, map.display());
                } else {
                    println!(
                        "vdisk {} was already released; {} removed",
                        m.name,
                        map.display()
                    );
                }
                Ok(())
            }
            VdiskAction::Recover {
                name,
                master,
                map,
                timeout,
            } => {
                let client = MasterClient::new(&master, Duration::from_secs(timeout));
                let answer = client.lookup(0, &name).await?;
                let m = client.mapping_file(&answer)?;
                let _held = lock(&map)?;
                m.save(&map)?;
                println!("{}", describe(&m, &map));
                Ok(())
            }
        }
    }
}
