//! `pvd tapdisk`: serve a virtual disk described by a mapping file over NBD (DESIGN.md "Data
//! path"), and `pvd tapdisk stats` to read its statistics.
//!
//! The daemon holds the mapping file's exclusive lock while serving. SIGTERM or SIGINT stops
//! accepting clients, drains the connections, sends SYNCHRONIZE CACHE to every server,
//! releases the lock and exits 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use tokio::sync::watch;

use crate::nbd::{bind_unix, shutdown_on, NbdConfig, NbdServer};
use crate::stats::control::{control_path, query, serve_control, serve_metrics};
use crate::vdisk::{
    VdiskConfig, VirtualDisk, DEFAULT_DISPATCH_SLOTS, DEFAULT_MAX_REQUEST, DEFAULT_QUEUE_DEPTH,
};
use iscsi_target::busy_poll::{BusyPoll, MAX_POLL_BUDGET};
use iscsi_target::tcp_congestion;

/// Default NBD address when neither `--nbd` nor `--nbd-unix` is given.
pub const DEFAULT_NBD: &str = "127.0.0.1:10809";

/// Serve a virtual disk over NBD from its mapping file, or print a running one's statistics.
///
/// The disk's extents are read and written with iSCSI straight on the storage servers the
/// mapping file names; a control socket `FILE.ctl` next to the mapping file answers
/// `pvd tapdisk stats --map FILE`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TapdiskCommand {
    #[command(subcommand)]
    pub action: Option<TapdiskAction>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum TapdiskAction {
    /// Print the statistics of the tapdisk serving a mapping file (per-stage latencies,
    /// requests and bytes per server, NBD requests against iSCSI commands, merges).
    Stats {
        /// The mapping file the tapdisk serves (its control socket is FILE.ctl).
        #[arg(long, value_name = "FILE")]
        map: PathBuf,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print the Prometheus text format instead of text.
        #[arg(long)]
        prometheus: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The virtual disk's mapping file (written by `pvd vdisk create`); locked while serving.
    #[arg(long, value_name = "FILE", required = true)]
    pub map: Option<PathBuf>,
    /// Serve NBD on this TCP address (default 127.0.0.1:10809 unless --nbd-unix is given).
    #[arg(long, value_name = "HOST:PORT")]
    pub nbd: Option<SocketAddr>,
    /// Serve NBD on this unix socket too (or only, without --nbd).
    #[arg(long, value_name = "PATH")]
    pub nbd_unix: Option<PathBuf>,
    /// Queue depth Q: requests one NBD connection may have in flight, and the most requests
    /// one dispatch sorts and merges.
    #[arg(long, default_value_t = DEFAULT_QUEUE_DEPTH, value_name = "Q")]
    pub queue_depth: usize,
    /// Maximum request size M (largest merged request, advertised to clients), e.g. 4MiB.
    #[arg(long, value_name = "BYTES", value_parser = size_arg, default_value_t = DEFAULT_MAX_REQUEST as u64)]
    pub max_request: u64,
    /// Batches in progress at once; requests arriving while all are busy are merged.
    #[arg(long, default_value_t = DEFAULT_DISPATCH_SLOTS, value_name = "N")]
    pub dispatch_slots: usize,
    /// Serve statistics in the Prometheus text format over HTTP on this address.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Export name announced to NBD clients (default: the virtual disk's name).
    #[arg(long)]
    pub export_name: Option<String>,
    /// Runtime threads serving the disk: 1 runs every connection, queue and iSCSI session on
    /// one thread (no cross-thread wake-ups per request); more spread them over a pool.
    #[arg(long, default_value_t = DEFAULT_THREADS, value_name = "N")]
    pub threads: usize,
    /// Keep polling the sockets for US microseconds after a request arrives or its reply
    /// leaves (one of at most 64 KiB, or any while at most two are in flight), instead of
    /// sleeping until the next packet (0: never poll). Saves the 20-50 us of a sleep and
    /// wake-up per request, at the price of the CPU time spent polling; meant for
    /// `--threads 1`; at most 10000.
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub poll_us: u64,
    /// TCP congestion control of the NBD clients' connections and of the iSCSI sessions
    /// (`system`: the system's, net.ipv4.tcp_congestion_control). BBR, a common default, now
    /// and then held a write's data back for tens of milliseconds on storage traffic.
    #[arg(long, value_name = "NAME", default_value = tcp_congestion::DEFAULT,
          value_parser = tcp_congestion::parse_name)]
    pub tcp_congestion: String,
}

/// Default of `--threads`: measured with scripts/bench-tapdisk on a 2-core machine shared with
/// the storage server and the client, one thread beats a pool.
pub const DEFAULT_THREADS: usize = 1;

/// Largest allocation glibc's malloc serves from the heap instead of a fresh mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory at the top of the heap that glibc's malloc keeps instead of returning it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Data buffers (a 128 KiB read's, a merged write's) come and go with every request: keep
/// them in the heap and keep freed heap memory, so they are not mapped, page-faulted in and
/// unmapped each time (128 KiB reads: 22 page faults per request, 110 -> 60 CPU us/request).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters (under malloc's own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

fn size_arg(s: &str) -> Result<u64, String> {
    pvd_mapping::parse_size(s).map_err(|e| e.to_string())
}

impl TapdiskCommand {
    /// The runtime `run` needs: one thread (`--threads 1`, and for `stats`) or a pool.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let threads = match self.action {
            Some(_) => 1,
            None => self.serve.threads.max(1),
        };
        if self.action.is_none() {
            keep_freed_memory();
        }
        if threads == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()
        }
    }

    pub async fn run(self) -> anyhow::Result<()> {
        match self.action {
            Some(TapdiskAction::Stats {
                map,
                json,
                prometheus,
            }) => {
                let cmd = if json {
                    "json"
                } else if prometheus {
                    "prometheus"
                } else {
                    "text"
                };
                let out = query(&map, cmd).await?;
                print!("{out}");
                Ok(())
            }
            None => serve(self.serve).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let map = args
        .map
        .clone()
        .ok_or_else(|| anyhow!("--map FILE is required"))?;
    if args.queue_depth == 0 || args.queue_depth > crate::vdisk::MAX_QUEUE_DEPTH {
        return Err(anyhow!(
            "--queue-depth {} is outside 1..={}",
            args.queue_depth,
            crate::vdisk::MAX_QUEUE_DEPTH
        ));
    }
    if Duration::from_micros(args.poll_us) > MAX_POLL_BUDGET {
        return Err(anyhow!(
            "--poll-us {} is above {}",
            args.poll_us,
            MAX_POLL_BUDGET.as_micros()
        ));
    }
    if args.dispatch_slots == 0 {
        return Err(anyhow!("--dispatch-slots must be at least 1"));
    }
    let max_request = u32::try_from(args.max_request)
        .ok()
        .filter(|&m| m <= crate::vdisk::MAX_MAX_REQUEST)
        .ok_or_else(|| {
            anyhow!(
                "--max-request {} is above {}",
                args.max_request,
                crate::vdisk::MAX_MAX_REQUEST
            )
        })?;
    let served = pvd_mapping::open_for_serving(&map)
        .with_context(|| format!("cannot serve {}", map.display()))?;
    let mut config = VdiskConfig {
        queue_depth: args.queue_depth,
        max_request,
        dispatch_slots: args.dispatch_slots,
        ..VdiskConfig::default()
    };
    config.session.tcp_congestion =
        tcp_congestion::algorithm(&args.tcp_congestion).map(String::from);
    let disk = VirtualDisk::connect(served.table.clone(), config)
        .await
        .with_context(|| format!("cannot open virtual disk {}", served.file.name))?;
    let stats = disk.stats();

    let nbd_addr = match (&args.nbd, &args.nbd_unix) {
        (None, None) => Some(DEFAULT_NBD.parse::<SocketAddr>()?),
        (a, _) => *a,
    };
    let tcp = match nbd_addr {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen for NBD on {a}"))?;
            // Before any client connects: a connection takes the listener's algorithm when
            // it is established.
            tcp_congestion::apply(socket2::SockRef::from(&l), &args.tcp_congestion);
            Some(l)
        }
        None => None,
    };
    let unix = match &args.nbd_unix {
        Some(p) => Some(bind_unix(p).with_context(|| format!("cannot listen on {}", p.display()))?),
        None => None,
    };
    let ctl = control_path(&map);
    let ctl_listener = bind_unix(&ctl)
        .with_context(|| format!("cannot create control socket {}", ctl.display()))?;
    let metrics = match args.metrics {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen for metrics on {a}"))?,
        ),
        None => None,
    };
    let control_task = tokio::spawn(serve_control(ctl_listener, stats.clone()));
    let metrics_task = metrics.map(|l| tokio::spawn(serve_metrics(l, stats.clone())));

    let nbd_config = NbdConfig {
        export_name: args
            .export_name
            .clone()
            .unwrap_or_else(|| served.file.name.clone()),
        description: Some(format!("pvd virtual disk {}", served.file.name)),
        read_only: false,
        max_in_flight: args.queue_depth,
    };
    let mut server =
        NbdServer::new(Arc::new(disk.clone()), nbd_config).with_observer(stats.clone());
    if args.poll_us > 0 {
        let poll = BusyPoll::new(Duration::from_micros(args.poll_us));
        tokio::spawn(poll.clone().run());
        server = server.with_busy_poll(poll);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: draining");
        let _ = stop_tx.send(true);
    });

    let mut where_ = Vec::new();
    if let Some(l) = &tcp {
        where_.push(format!("nbd://{}", l.local_addr()?));
    }
    if let Some(p) = &args.nbd_unix {
        where_.push(format!("nbd+unix:///?socket={}", p.display()));
    }
    let g = served.table.geometry();
    println!(
        "pvd tapdisk: serving {} ({} bytes, {} stripes x {} replicas over {} LUNs) on {}; control socket {}",
        served.file.name,
        g.size,
        g.stripes,
        g.replicas,
        served.table.targets().len(),
        where_.join(" and "),
        ctl.display()
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let tcp_fut = async {
        match tcp {
            Some(l) => server.serve_tcp(l, shutdown_on(stop_rx.clone())).await,
            None => Ok(()),
        }
    };
    let unix_fut = async {
        match unix {
            Some(l) => server.serve_unix(l, shutdown_on(stop_rx.clone())).await,
            None => Ok(()),
        }
    };
    let (a, b) = tokio::join!(tcp_fut, unix_fut);
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let flushed = disk.shutdown().await;
    cleanup(&ctl, args.nbd_unix.as_deref());
    drop(served);
    a?;
    b?;
    flushed.map_err(|e| anyhow!("final flush failed: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

fn cleanup(ctl: &Path, unix: Option<&Path>) {
    let _ = std::fs::remove_file(ctl);
    if let Some(p) = unix {
        let _ = std::fs::remove_file(p);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
