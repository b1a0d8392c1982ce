//! `pvd target`: the command line of the iSCSI target.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::{ChapSpec, LunSpec, ServerConfig, TargetSpec};
use crate::config::{DEFAULT_CMD_WINDOW, DEFAULT_NOP_INTERVAL_SECS, DEFAULT_NOP_TIMEOUT_SECS};
use crate::server::Target;

/// Serve files or block devices as SCSI disks over iSCSI (RFC 7143).
///
/// LUNs are numbered from 0 in the order of --lun; each LUN's capacity is the size of its file
/// or block device. SIGTERM (or Ctrl-C) lets in-flight commands finish, flushes every LUN and
/// exits 0.
///
/// With --config FILE the whole setup comes from a JSON file instead (several targets, per-LUN
/// options):
///
///   {"listen": "0.0.0.0:3260", "advertise": "10.0.0.5:3260",
///    "targets": [{"iqn": "iqn.2026-11.io.pvd:disk0", "alias": "disk0",
///                 "allow_initiators": ["iqn.2026-11.io.pvd:vm1"],
///                 "chap": {"user": "u", "secret": "s3cret-s3cret"},
///                 "chap_mutual": {"user": "tgt", "secret": "an0ther-s3cret"},
///                 "luns": [{"path": "/srv/d0.img", "block_size": 512, "read_only": false,
///                           "emulate_disk": "latency_us=4000,mbps=120", "serial": "D0",
///                           "io_engine": "adaptive"}]}],
///    "cmd_window": 128, "nop_interval_secs": 10, "nop_timeout_secs": 30,
///    "tcp_congestion": "cubic"}
///
/// Only "listen", "targets[].iqn" and "luns[].path" are required. Command-line options other
/// than --register/--advertise/--poll-us/--tcp-congestion are ignored with --config.
#[derive(Args, Debug, Clone)]
#[command(verbatim_doc_comment)]
pub struct TargetArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:3260")]
    pub listen: SocketAddr,
    /// Target name (iSCSI qualified name) initiators log in to.
    #[arg(long, default_value = "iqn.2026-11.io.pvd:disk0")]
    pub iqn: String,
    /// Backing store of the next LUN (regular file or block device); repeat for more LUNs.
    #[arg(long = "lun", value_name = "PATH")]
    pub luns: Vec<PathBuf>,
    /// Logical block size of every LUN: 512 or 4096.
    #[arg(long, default_value_t = 512, value_parser = parse_block_size)]
    pub block_size: u32,
    /// Refuse writes (WRITE PROTECTED).
    #[arg(long)]
    pub read_only: bool,
    /// Require CHAP from initiators with this user name and secret.
    #[arg(long, value_name = "USER:SECRET")]
    pub chap: Option<ChapSpec>,
    /// Credentials the target proves itself with when an initiator asks for mutual CHAP.
    #[arg(long, value_name = "USER:SECRET")]
    pub chap_mutual: Option<ChapSpec>,
    /// Only these initiator names may log in (repeatable; default: everyone).
    #[arg(long = "allow-initiator", value_name = "IQN")]
    pub allow_initiators: Vec<String>,
    /// Model a spinning disk: fixed latency per command plus transfer time at B MB/s.
    #[arg(long, value_name = "latency_us=L,mbps=B")]
    pub emulate_disk: Option<String>,
    /// JSON configuration file (schema above); replaces the options describing targets.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Register every LUN with the pvd master at this address (retrying until it answers).
    #[arg(long, value_name = "MASTER_ADDR")]
    pub register: Option<String>,
    /// Portal (HOST:PORT) announced to the master and in SendTargets (default: the listen
    /// address, or this host's address towards the master when listening on 0.0.0.0).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Commands one session may have outstanding (CmdSN window).
    #[arg(long, default_value_t = DEFAULT_CMD_WINDOW)]
    pub cmd_window: u32,
    /// Seconds of initiator silence before a NOP-In ping (0: never).
    #[arg(long, default_value_t = DEFAULT_NOP_INTERVAL_SECS)]
    pub nop_interval: u64,
    /// Seconds a pinged initiator has to answer before its connection is dropped.
    #[arg(long, default_value_t = DEFAULT_NOP_TIMEOUT_SECS)]
    pub nop_timeout: u64,
    /// Threads running the network side (1: one event loop thread, the fastest on small
    /// machines; disk I/O runs on the I/O threads either way).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// How backing-store I/O runs: adaptive (page-cache hits on the event loop, the rest on
    /// I/O threads), pool (always on I/O threads) or inline (always on the event loop).
    #[arg(long, default_value = "adaptive", value_parser = ["adaptive", "pool", "inline"])]
    pub io_engine: String,
    /// Most threads doing backing-store I/O at once (a few suffice for files in the page
    /// cache, where writes to one file serialize in the kernel anyway; raise it for block
    /// devices with deep queues).
    #[arg(long, default_value_t = 4)]
    pub io_threads: usize,
    /// Keep polling the sockets for US microseconds after a command of at most 64 KiB arrives
    /// or is answered, instead of sleeping until the next packet (0: never poll). Saves a
    /// sleep and wake-up (20-50 us) per command, at the price of the CPU time spent polling;
    /// at most 10000. Applies to --config too.
    #[arg(long, default_value_t = 0, value_name = "US")]
    pub poll_us: u64,
    /// TCP congestion control of the connections (default cubic; `system`: the system's,
    /// net.ipv4.tcp_congestion_control). BBR, a common default, now and then held a write's
    /// data back for tens of milliseconds on storage traffic. Applies to --config too.
    #[arg(long, value_name = "NAME", value_parser = crate::tcp_congestion::parse_name)]
    pub tcp_congestion: Option<String>,
}

impl TargetArgs {
    /// The server configuration these options describe.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut cfg = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => {
                anyhow::ensure!(
                    !self.luns.is_empty(),
                    "give at least one --lun PATH (or --config FILE)"
                );
                let luns = self
                    .luns
                    .iter()
                    .map(|p| LunSpec {
                        path: p.clone(),
                        block_size: self.block_size,
                        read_only: self.read_only,
                        emulate_disk: self.emulate_disk.clone(),
                        serial: None,
                        io_engine: Some(self.io_engine.clone()),
                    })
                    .collect();
                ServerConfig {
                    listen: self.listen,
                    advertise: None,
                    targets: vec![TargetSpec {
                        iqn: self.iqn.clone(),
                        alias: None,
                        luns,
                        allow_initiators: self.allow_initiators.clone(),
                        chap: self.chap.clone(),
                        chap_mutual: self.chap_mutual.clone(),
                    }],
                    cmd_window: self.cmd_window,
                    nop_interval_secs: self.nop_interval,
                    nop_timeout_secs: self.nop_timeout,
                    poll_us: 0,
                    tcp_congestion: crate::config::default_tcp_congestion(),
                }
            }
        };
        if self.advertise.is_some() {
            cfg.advertise = self.advertise.clone();
        }
        if let Some(cc) = &self.tcp_congestion {
            cfg.tcp_congestion = cc.clone();
        }
        if self.poll_us > 0 {
            cfg.poll_us = self.poll_us;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Data buffers up to this size come from the allocator's heap instead of fresh mappings.
const HEAP_BUFFER_MAX: usize = 4 << 20;
/// Free heap memory the process keeps before giving any back to the kernel.
const HEAP_KEEP: usize = 64 << 20;

/// Keeps I/O buffers (data-in read by I/O threads, data-out collected by the reader) in the
/// process once freed. With glibc's default, adaptive thresholds every 128 KiB buffer tends to
/// come from fresh pages, and faulting them in cost more than the copy into them (QD32 128 KiB
/// reads: ~10 page faults per command).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, under the allocator's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BUFFER_MAX as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_KEEP as libc::c_int);
    }
}

/// Runs `pvd target` until SIGTERM/SIGINT (builds its own tokio runtime).
pub fn run(args: TargetArgs) -> anyhow::Result<()> {
    tune_allocator();
    let workers = args.workers;
    let blocking = args.io_threads.max(1);
    let mut b = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = b
        .enable_all()
        .max_blocking_threads(blocking)
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(run_async(args))
}

/// [`run`] on the caller's runtime.
pub async fn run_async(args: TargetArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let cfg = args.server_config()?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let handle = Target::bind(cfg.clone()).await?;
    let local = handle.local_addr();
    eprintln!(
        "pvd target: serving {} LUN(s) on {local}",
        cfg.targets.iter().map(|t| t.luns.len()).sum::<usize>()
    );
    let registration = args
        .register
        .clone()
        .map(|master| tokio::spawn(crate::register::register(master, cfg.clone(), local)));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    if let Some(r) = registration {
        r.abort();
    }
    handle.shutdown().await;
    Ok(())
}

fn parse_block_size(s: &str) -> Result<u32, String> {
    match s {
        "512" => Ok(512),
        "4096" => Ok(4096),
        _ => Err(format!("block size {s} is not 512 or 4096")),
    }
}
