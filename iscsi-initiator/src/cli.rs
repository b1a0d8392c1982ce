//! `pvd iscsi`: discovery, inspection, block I/O and a benchmark from the command line, on the
//! initiator library.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use futures_util::stream::{FuturesOrdered, StreamExt};

use crate::config::{ChapSecret, SessionConfig, DEFAULT_INITIATOR_NAME};
use crate::{discover, Session};

/// Talk to an iSCSI target: discover targets, show a LUN, read, write, benchmark.
///
/// Sizes and offsets accept plain bytes or K/M/G/T (KiB, MiB, GiB, TiB; powers of 1024).
/// Offsets and lengths must be multiples of the LUN's block size.
#[derive(Args, Debug)]
pub struct IscsiCommand {
    #[command(subcommand)]
    pub action: IscsiAction,
}

/// What `pvd iscsi` does.
#[derive(Subcommand, Debug)]
pub enum IscsiAction {
    /// List the targets and portals a portal reports (SendTargets=All).
    Discover(DiscoverArgs),
    /// Print INQUIRY data and capacity of a LUN.
    Info(LunArgs),
    /// Write a file (or stdin) to a LUN at an offset.
    Write(WriteArgs),
    /// Read a byte range of a LUN to a file (or stdout).
    Read(ReadArgs),
    /// Measure IOPS, throughput and latency percentiles.
    Bench(BenchArgs),
}

/// Options shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Target portal, HOST:PORT (port 3260 when omitted).
    #[arg(long, value_name = "HOST:PORT")]
    pub portal: String,
    /// Our initiator name (IQN).
    #[arg(long, default_value = DEFAULT_INITIATOR_NAME)]
    pub initiator_name: String,
    /// One-way CHAP: authenticate as USER with SECRET.
    #[arg(long, value_name = "USER:SECRET", value_parser = parse_chap)]
    pub chap: Option<ChapSecret>,
    /// Mutual CHAP: the target must prove itself as USER with SECRET (needs --chap).
    #[arg(long, value_name = "USER:SECRET", value_parser = parse_chap)]
    pub chap_mutual: Option<ChapSecret>,
    /// Require CRC32C header digests.
    #[arg(long)]
    pub header_digest: bool,
    /// Require CRC32C data digests.
    #[arg(long)]
    pub data_digest: bool,
}

/// `discover` options.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options naming a LUN.
#[derive(Args, Debug, Clone)]
pub struct LunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Target name (IQN).
    #[arg(long)]
    pub iqn: String,
    /// Logical unit number.
    #[arg(long, default_value_t = 0)]
    pub lun: u64,
}

/// `write` options.
#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: LunArgs,
    /// Byte offset on the LUN (bytes, or with a K/M/G/KiB/MiB/GiB suffix; a multiple of the
    /// block size).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub offset: u64,
    /// File to write, or - for stdin.
    #[arg(long)]
    pub input: String,
    /// Force unit access on every write, then SYNCHRONIZE CACHE at the end anyway.
    #[arg(long)]
    pub fua: bool,
}

/// `read` options.
#[derive(Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: LunArgs,
    /// Byte offset on the LUN (bytes, or with a K/M/G/KiB/MiB/GiB suffix; a multiple of the
    /// block size).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub offset: u64,
    /// Bytes to read (bytes, or with a K/M/G/KiB/MiB/GiB suffix; a multiple of the block size).
    #[arg(long, value_parser = parse_size)]
    pub length: u64,
    /// Output file, or - for stdout.
    #[arg(long)]
    pub output: String,
}

/// Access pattern of `bench`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Read,
    Write,
    Randread,
    Randwrite,
}

/// `bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: LunArgs,
    /// Access pattern.
    #[arg(long, value_enum, default_value = "randread")]
    pub rw: Pattern,
    /// Bytes per request (bytes, or with a K/M/G/KiB/MiB/GiB suffix).
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    pub bs: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub qd: usize,
    /// Requests in total.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Runtime threads (1: a single event loop).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Only use the first BYTES of the LUN (default: all of it).
    #[arg(long, value_parser = parse_size)]
    pub span: Option<u64>,
}

/// Parses a size: plain bytes, or with K/M/G/T, KB/MB/..., KiB/MiB/GiB/TiB suffixes (all
/// powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "{s:?} is not a size (expected e.g. 4096, 4K, 1MiB)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: number too large"))?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("{s:?}: unknown size suffix {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: size too large"))
}

fn parse_chap(s: &str) -> Result<ChapSecret, String> {
    ChapSecret::parse(s).ok_or_else(|| format!("{s:?}: expected USER:SECRET"))
}

impl CommonArgs {
    fn config(&self, iqn: &str) -> anyhow::Result<SessionConfig> {
        if self.chap_mutual.is_some() && self.chap.is_none() {
            bail!("--chap-mutual needs --chap");
        }
        let mut c = SessionConfig::new(self.portal.clone(), iqn);
        c.initiator_name = self.initiator_name.clone();
        c.chap = self.chap.clone();
        c.mutual_chap = self.chap_mutual.clone();
        c.header_digest = self.header_digest;
        c.data_digest = self.data_digest;
        c.replacement_timeout = Duration::from_secs(10);
        Ok(c)
    }
}

impl LunArgs {
    async fn connect(&self) -> anyhow::Result<Session> {
        let config = self.common.config(&self.iqn)?;
        Session::connect(config)
            .await
            .with_context(|| format!("logging in to {} at {}", self.iqn, self.common.portal))
    }
}

impl IscsiCommand {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.action {
            IscsiAction::Discover(a) => run_discover(a).await,
            IscsiAction::Info(a) => run_info(a).await,
            IscsiAction::Write(a) => run_write(a).await,
            IscsiAction::Read(a) => run_read(a).await,
            IscsiAction::Bench(a) => bench_on_own_runtime(a).await,
        }
    }
}

async fn run_discover(a: DiscoverArgs) -> anyhow::Result<()> {
    let config = a.common.config("")?;
    let targets = discover(&config)
        .await
        .with_context(|| format!("discovery at {}", a.common.portal))?;
    let mut out = std::io::stdout().lock();
    for t in targets {
        writeln!(out, "{}", t.name)?;
        for p in &t.addresses {
            let port = p.port.map(|p| format!(":{p}")).unwrap_or_default();
            let tag = p
                .portal_group_tag
                .map(|t| format!(",{t}"))
                .unwrap_or_default();
            writeln!(out, "  {}{port}{tag}", p.host)?;
        }
    }
    Ok(())
}

fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

async fn run_info(a: LunArgs) -> anyhow::Result<()> {
    let s = a.connect().await?;
    let inq = s.inquiry(a.lun).await.context("INQUIRY")?;
    let cap = s.read_capacity(a.lun).await.context("READ CAPACITY")?;
    let p = s.params();
    println!("target:       {}", a.iqn);
    println!("lun:          {}", a.lun);
    println!("vendor:       {}", ascii(&inq.vendor));
    println!("product:      {}", ascii(&inq.product));
    println!("revision:     {}", ascii(&inq.revision));
    println!("device type:  {:#04x}", inq.device_type);
    println!("block size:   {}", cap.block_len);
    println!("blocks:       {}", cap.blocks);
    println!("capacity:     {} bytes", cap.bytes());
    println!("thin:         {}", cap.thin);
    println!(
        "negotiated:   MaxRecvDataSegmentLength={} (target's {}), MaxBurstLength={}, FirstBurstLength={}, ImmediateData={}, InitialR2T={}, MaxOutstandingR2T={}, HeaderDigest={:?}, DataDigest={:?}",
        p.max_recv_data_segment_length,
        p.max_send_data_segment_length,
        p.max_burst_length,
        p.first_burst_length,
        p.immediate_data,
        p.initial_r2t,
        p.max_outstanding_r2t,
        p.header_digest,
        p.data_digest
    );
    let _ = s.logout().await;
    Ok(())
}

/// Bytes per request of `read` and `write`, and requests in flight.
const CHUNK: usize = 1 << 20;
const DEPTH: usize = 8;

fn check_aligned(what: &str, v: u64, bl: u64) -> anyhow::Result<()> {
    if !v.is_multiple_of(bl) {
        bail!("{what} {v} is not a multiple of the LUN's {bl} byte block size");
    }
    Ok(())
}

async fn run_write(a: WriteArgs) -> anyhow::Result<()> {
    let mut input: Box<dyn Read + Send> = if a.input == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input))?)
    };
    let s = a.target.connect().await?;
    let lun = a.target.lun;
    let cap = s.read_capacity(lun).await.context("READ CAPACITY")?;
    let bl = cap.block_len as u64;
    check_aligned("--offset", a.offset, bl)?;
    let mut offset = a.offset;
    let mut inflight = FuturesOrdered::new();
    let mut total = 0u64;
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            let r = input.read(&mut chunk[n..]).context("reading input")?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        if !(n as u64).is_multiple_of(bl) {
            bail!(
                "input length {} is not a multiple of the LUN's {bl} byte block size",
                total + n as u64
            );
        }
        if offset + n as u64 > cap.bytes() {
            bail!(
                "write of {} bytes at {} goes past the end of the LUN ({} bytes)",
                n,
                offset,
                cap.bytes()
            );
        }
        let s2 = s.clone();
        let lba = offset / bl;
        let fua = a.fua;
        inflight.push_back(async move { s2.write(lun, lba, Bytes::from(chunk), fua).await });
        offset += n as u64;
        total += n as u64;
        if inflight.len() >= DEPTH {
            if let Some(r) = inflight.next().await {
                r.context("WRITE")?;
            }
        }
        if n < CHUNK {
            break;
        }
    }
    while let Some(r) = inflight.next().await {
        r.context("WRITE")?;
    }
    s.flush(lun).await.context("SYNCHRONIZE CACHE")?;
    let _ = s.logout().await;
    eprintln!("wrote {total} bytes at offset {}", a.offset);
    Ok(())
}

async fn run_read(a: ReadArgs) -> anyhow::Result<()> {
    let s = a.target.connect().await?;
    let lun = a.target.lun;
    let cap = s.read_capacity(lun).await.context("READ CAPACITY")?;
    let bl = cap.block_len as u64;
    check_aligned("--offset", a.offset, bl)?;
    check_aligned("--length", a.length, bl)?;
    if a.offset + a.length > cap.bytes() {
        bail!(
            "range {}+{} goes past the end of the LUN ({} bytes)",
            a.offset,
            a.length,
            cap.bytes()
        );
    }
    let mut out: Box<dyn Write> = if a.output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&a.output).with_context(|| format!("creating {}", a.output))?,
        ))
    };
    let mut inflight = FuturesOrdered::new();
    let mut at = a.offset;
    let end = a.offset + a.length;
    loop {
        while at < end && inflight.len() < DEPTH {
            let n = (end - at).min(CHUNK as u64);
            let s2 = s.clone();
            let lba = at / bl;
            let blocks = (n / bl) as u32;
            inflight.push_back(async move { s2.read(lun, lba, blocks).await });
            at += n;
        }
        match inflight.next().await {
            Some(r) => out.write_all(&r.context("READ")?)?,
            None => break,
        }
    }
    out.flush()?;
    drop(out);
    let _ = s.logout().await;
    Ok(())
}

/// Latency percentiles over sorted microsecond samples.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark on a runtime of its own: one thread (like QEMU's event loop) unless
/// `--threads` asks for more.
async fn bench_on_own_runtime(a: BenchArgs) -> anyhow::Result<()> {
    let threads = a.threads;
    tokio::task::spawn_blocking(move || {
        let rt = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
        };
        rt.block_on(run_bench(a))
    })
    .await
    .context("bench thread")?
}

async fn run_bench(a: BenchArgs) -> anyhow::Result<()> {
    if a.qd == 0 || a.bs == 0 || a.count == 0 {
        bail!("--qd, --bs and --count must be positive");
    }
    let s = a.target.connect().await?;
    let lun = a.target.lun;
    let cap = s.read_capacity(lun).await.context("READ CAPACITY")?;
    let bl = cap.block_len as u64;
    check_aligned("--bs", a.bs, bl)?;
    let span = a.span.unwrap_or(cap.bytes()).min(cap.bytes());
    let slots = span / a.bs;
    if slots == 0 {
        bail!("--bs {} is larger than the LUN span {span}", a.bs);
    }
    let blocks = u32::try_from(a.bs / bl).context("--bs too large")?;
    let payload = {
        let mut v = vec![0u8; a.bs as usize];
        rand::Rng::fill(&mut rand::thread_rng(), &mut v[..]);
        Bytes::from(v)
    };
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..a.qd {
        let s = s.clone();
        let next = next.clone();
        let payload = payload.clone();
        let (rw, count, bs) = (a.rw, a.count, a.bs);
        workers.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity((count as usize).min(1 << 20));
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(w as u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let slot = match rw {
                    Pattern::Read | Pattern::Write => i % slots,
                    Pattern::Randread | Pattern::Randwrite => {
                        rand::Rng::gen_range(&mut rng, 0..slots)
                    }
                };
                let lba = slot * bs / bl;
                let t = Instant::now();
                match rw {
                    Pattern::Read | Pattern::Randread => {
                        s.read(lun, lba, blocks).await?;
                    }
                    Pattern::Write | Pattern::Randwrite => {
                        s.write(lun, lba, payload.clone(), false).await?;
                    }
                }
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            Ok::<_, crate::IscsiError>(lat)
        }));
    }
    let mut all = Vec::with_capacity(a.count as usize);
    for w in workers {
        all.extend(w.await.context("bench worker")?.context("bench I/O")?);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let iops = all.len() as f64 / secs;
    let mbps = iops * a.bs as f64 / 1e6;
    println!(
        "rw={:?} bs={} qd={} count={} time={:.3}s iops={:.0} MB/s={:.1} lat_us: avg={:.0} p50={} p90={} p99={} p99.9={} max={}",
        a.rw,
        a.bs,
        a.qd,
        all.len(),
        secs,
        iops,
        mbps,
        all.iter().map(|&x| x as f64).sum::<f64>() / all.len().max(1) as f64,
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(0)
    );
    let _ = s.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("128k"), Ok(128 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size(" 16 MiB "), Ok(16 << 20));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18446744073709551615T").is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 51);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
