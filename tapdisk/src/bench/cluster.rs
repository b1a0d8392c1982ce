//! The seam `pvd demo` starts its storage cluster through.
//!
//! [`Cluster::start`] brings up a virtual disk striped over `stripes` storage servers, each
//! serving a temporary file under the demo's disk model, and returns the NBD export a tapdisk
//! serves it on. [`ProcessCluster`] does it with the `pvd` subcommands (master, target, vdisk
//! create, tapdisk) as child processes on 127.0.0.1; an in-process cluster can implement the
//! same trait.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::nbd_client::NbdTarget;
use super::service_time::{disk_model_arg, DiskEmulation};
use super::stages::StageBreakdown;
use super::target_iscsi::IscsiLunTarget;
use super::BenchError;

/// What every storage server and virtual disk of a demo cluster looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The disk model every target applies to its LUN (`--emulate-disk`).
    pub disk_model: DiskEmulation,
    /// Size of each virtual disk.
    pub vdisk_size: u64,
    /// Stripe unit of the virtual disks (must be <= half the request size for one request to
    /// span two servers).
    pub stripe_unit: u64,
    /// Size of each server's backing file (sparse).
    pub lun_size: u64,
    /// Where backing files, the master's state and mapping files go.
    pub work_dir: PathBuf,
}

/// A storage cluster the demo can ask for virtual disks.
pub trait Cluster {
    /// Makes sure `servers` storage servers run, creates a virtual disk striped over `stripes`
    /// of them (one replica), starts a tapdisk serving it and returns its NBD export.
    fn start(&mut self, servers: usize, stripes: usize) -> Result<NbdTarget, BenchError>;

    /// Per-stage latencies of the most recently started virtual disk, if its tapdisk reports
    /// them (thesis Table 3.2).
    fn stages(&self) -> Vec<StageBreakdown> {
        Vec::new()
    }

    /// Starts a storage server of the same kind outside any virtual disk and returns its LUN,
    /// for measuring the iSCSI transport without the virtual layer; `None` if the cluster
    /// cannot.
    fn start_lun(&mut self) -> Result<Option<IscsiLunTarget>, BenchError> {
        Ok(None)
    }

    /// Stops everything started.
    fn stop(&mut self);
}

/// A child process killed (SIGKILL) when dropped; also killed by the kernel if we die.
struct ChildGuard {
    name: String,
    child: Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`Cluster`] made of `pvd` child processes on 127.0.0.1.
pub struct ProcessCluster {
    pvd: PathBuf,
    config: ClusterConfig,
    master: Option<(ChildGuard, SocketAddr)>,
    /// Running targets, in start order.
    targets: Vec<ChildGuard>,
    tapdisks: Vec<ChildGuard>,
    /// Servers outside any virtual disk ([`Cluster::start_lun`]).
    direct: Vec<ChildGuard>,
    vdisks: usize,
    /// Mapping file and server count of every virtual disk served, in start order.
    maps: Vec<(PathBuf, usize)>,
}

/// How long a started server gets to open its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `pvd tapdisk --threads` of the demo's disks. A connection's requests, the queue and the
/// iSCSI sessions then share one thread: no wake-up crosses threads (each costs 20-25 us on a
/// 2-vCPU machine), and the pieces of a striped request still go out together (alternated
/// runs of 6, QD1 writes: 4K latency virtual - physical +61..+90 us, median +76, against
/// +78..+147 us, median +101, with two threads; 512K on 2 servers 1.82-1.88x against
/// 1.74-1.86x of the physical disk).
const TAPDISK_THREADS: usize = 1;

/// `--poll-us` of the demo's tapdisks and targets: long enough to cover a 4 KiB request's
/// trip to the server and the client's next request, so at queue depth 1 neither daemon's
/// event loop sleeps between them.
const POLL_US: u64 = 300;

impl ProcessCluster {
    /// `pvd`: the binary to run (normally `std::env::current_exe()`).
    pub fn new(pvd: PathBuf, config: ClusterConfig) -> Self {
        ProcessCluster {
            pvd,
            config,
            master: None,
            targets: Vec::new(),
            tapdisks: Vec::new(),
            direct: Vec::new(),
            vdisks: 0,
            maps: Vec::new(),
        }
    }

    fn spawn(&self, name: &str, args: &[String]) -> Result<ChildGuard, BenchError> {
        let log = self.config.work_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| BenchError::Cluster(format!("{}: {e}", log.display())))?;
        let mut cmd = Command::new(&self.pvd);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; it makes the kernel kill the
        // child if the demo dies without running destructors.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        tracing::debug!(name, ?args, "starting");
        let child = cmd.spawn().map_err(|e| {
            BenchError::Cluster(format!("{name}: cannot run {}: {e}", self.pvd.display()))
        })?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
        })
    }

    /// Waits until `addr` accepts connections, failing early if the child exited.
    fn wait_ready(&self, guard: &mut ChildGuard, addr: SocketAddr) -> Result<(), BenchError> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Err(BenchError::Cluster(format!(
                    "{} exited with {status}: {}",
                    guard.name,
                    self.log_tail(&guard.name)
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(BenchError::Cluster(format!(
            "{} did not listen on {addr} within {START_TIMEOUT:?}",
            guard.name
        )))
    }

    fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.config.work_dir.join(format!("{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn run_once(&self, name: &str, args: &[String]) -> Result<(), BenchError> {
        let out = Command::new(&self.pvd).args(args).output().map_err(|e| {
            BenchError::Cluster(format!("{name}: cannot run {}: {e}", self.pvd.display()))
        })?;
        if !out.status.success() {
            return Err(BenchError::Cluster(format!(
                "{name} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn ensure_master(&mut self) -> Result<SocketAddr, BenchError> {
        if let Some((_, addr)) = &self.master {
            return Ok(*addr);
        }
        let addr = free_local_addr()?;
        let state = self.config.work_dir.join("master");
        std::fs::create_dir_all(&state)
            .map_err(|e| BenchError::Cluster(format!("{}: {e}", state.display())))?;
        let mut g = self.spawn(
            "master",
            &[
                "master".into(),
                "--listen".into(),
                addr.to_string(),
                "--state-dir".into(),
                path_arg(&state),
            ],
        )?;
        self.wait_ready(&mut g, addr)?;
        self.master = Some((g, addr));
        Ok(addr)
    }

    fn ensure_targets(&mut self, servers: usize, master: SocketAddr) -> Result<(), BenchError> {
        while self.targets.len() < servers {
            let n = self.targets.len();
            let addr = free_local_addr()?;
            let lun = self.config.work_dir.join(format!("server{n}.img"));
            let f = std::fs::File::create(&lun)
                .map_err(|e| BenchError::Cluster(format!("{}: {e}", lun.display())))?;
            f.set_len(self.config.lun_size)
                .map_err(|e| BenchError::Cluster(format!("{}: {e}", lun.display())))?;
            let name = format!("target{n}");
            let mut g = self.spawn(
                &name,
                &[
                    "target".into(),
                    "--listen".into(),
                    addr.to_string(),
                    "--iqn".into(),
                    format!("iqn.2026-01.org.pvd:demo.server{n}"),
                    "--lun".into(),
                    path_arg(&lun),
                    "--emulate-disk".into(),
                    disk_model_arg(&self.config.disk_model),
                    "--poll-us".into(),
                    POLL_US.to_string(),
                    "--register".into(),
                    master.to_string(),
                    "--advertise".into(),
                    addr.to_string(),
                ],
            )?;
            self.wait_ready(&mut g, addr)?;
            self.targets.push(g);
        }
        Ok(())
    }
}

impl Cluster for ProcessCluster {
    fn start_lun(&mut self) -> Result<Option<IscsiLunTarget>, BenchError> {
        let addr = free_local_addr()?;
        let lun = self.config.work_dir.join("direct.img");
        let f = std::fs::File::create(&lun)
            .map_err(|e| BenchError::Cluster(format!("{}: {e}", lun.display())))?;
        f.set_len(self.config.lun_size)
            .map_err(|e| BenchError::Cluster(format!("{}: {e}", lun.display())))?;
        let iqn = "iqn.2026-01.org.pvd:demo.direct".to_string();
        let mut g = self.spawn(
            "target-direct",
            &[
                "target".into(),
                "--listen".into(),
                addr.to_string(),
                "--iqn".into(),
                iqn.clone(),
                "--lun".into(),
                path_arg(&lun),
                "--emulate-disk".into(),
                disk_model_arg(&self.config.disk_model),
                "--poll-us".into(),
                POLL_US.to_string(),
            ],
        )?;
        self.wait_ready(&mut g, addr)?;
        self.direct.push(g);
        Ok(Some(IscsiLunTarget {
            portal: addr.to_string(),
            iqn,
            lun: 0,
        }))
    }

    fn start(&mut self, servers: usize, stripes: usize) -> Result<NbdTarget, BenchError> {
        if stripes == 0 || stripes > servers {
            return Err(BenchError::Cluster(format!(
                "{stripes} stripes need 1..={servers} servers"
            )));
        }
        let master = self.ensure_master()?;
        self.ensure_targets(servers, master)?;
        let name = format!("demo{}", self.vdisks);
        self.vdisks += 1;
        let map = self.config.work_dir.join(format!("{name}.map"));
        let create: Vec<String> = vec![
            "vdisk".into(),
            "create".into(),
            name.clone(),
            "--master".into(),
            master.to_string(),
            "--size".into(),
            self.config.vdisk_size.to_string(),
            "--stripes".into(),
            stripes.to_string(),
            "--stripe-unit".into(),
            self.config.stripe_unit.to_string(),
            "--replicas".into(),
            "1".into(),
            "--map".into(),
            path_arg(&map),
        ];
        // Targets register asynchronously: until the master has heard from enough of them the
        // create is refused, so it is retried for a while.
        let started = Instant::now();
        loop {
            match self.run_once("vdisk create", &create) {
                Ok(()) => break,
                Err(e) if started.elapsed() > START_TIMEOUT => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "vdisk create refused, retrying");
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        let nbd = free_local_addr()?;
        let tname = format!("tapdisk-{name}");
        let mut g = self.spawn(
            &tname,
            &[
                "tapdisk".into(),
                "--map".into(),
                path_arg(&map),
                "--nbd".into(),
                nbd.to_string(),
                "--threads".into(),
                TAPDISK_THREADS.to_string(),
                "--poll-us".into(),
                POLL_US.to_string(),
            ],
        )?;
        self.wait_ready(&mut g, nbd)?;
        self.tapdisks.push(g);
        self.maps.push((map, stripes));
        Ok(NbdTarget::tcp(nbd.to_string()))
    }

    /// Every served disk's stages from its tapdisk's control socket, each stage prefixed with
    /// the disk's server count; a tapdisk that does not answer contributes nothing.
    fn stages(&self) -> Vec<StageBreakdown> {
        let mut out = Vec::new();
        for (map, servers) in &self.maps {
            match crate::stats::control::fetch_stage_breakdown(map) {
                Ok(stages) => out.extend(stages.into_iter().map(|mut s| {
                    s.stage = format!("{servers} server(s): {}", s.stage);
                    s
                })),
                Err(e) => tracing::warn!(map = %map.display(), error = %e, "no tapdisk statistics"),
            }
        }
        out
    }

    fn stop(&mut self) {
        self.tapdisks.clear();
        self.targets.clear();
        self.direct.clear();
        self.master = None;
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A 127.0.0.1 address whose port was free a moment ago.
pub fn free_local_addr() -> Result<SocketAddr, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::Cluster(format!("no free port: {e}")))?;
    l.local_addr()
        .map_err(|e| BenchError::Cluster(format!("no free port: {e}")))
}
