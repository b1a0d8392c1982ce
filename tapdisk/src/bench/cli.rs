//! Options and entry points of `pvd bench` (measure given targets) and `pvd demo` (start a
//! cluster, measure physical vs virtual vs parallel, write CSV and chart).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::chart::write_chart_svg;
use super::cluster::{Cluster, ClusterConfig, ProcessCluster};
use super::layer_cost::{measure_layer_cost, LAYER_COST_ROUNDS, LAYER_COST_ROUND_TIME};
use super::nbd_client::NbdTarget;
use super::report::{BenchReport, Mode};
use super::runner::{run_bench, BenchPlan, ModeTarget};
use super::service_time::{parse_disk_model, DiskEmulation, ServiceTimeModel, SpindleModel};
use super::target_iscsi::IscsiLunTarget;
use super::target_local::LocalFileTarget;
use super::workload::{run_workload, Op};
use super::BenchError;

/// Parses `4096`, `4K`, `512k`, `1M`, `2G` (binary units) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s}: unknown size suffix (K, M, G, T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s}: not a size"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s}: too large"))
}

fn parse_block_size(s: &str) -> Result<u32, String> {
    let v = parse_size(s)?;
    if v == 0 || v > 32 << 20 {
        return Err(format!("{s}: block size must be in 1..=32M"));
    }
    u32::try_from(v).map_err(|_| format!("{s}: too large"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s}: not a number of seconds"))?;
    if !(v > 0.0 && v < 86_400.0) {
        return Err(format!("{s}: seconds must be in (0, 86400)"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `pvd bench`: measures the given targets and prints tables, fit and (optionally) CSV/chart.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The physical baseline: a file or block device driven locally (through --emulate-disk).
    #[arg(long, value_name = "FILE")]
    pub physical: Option<PathBuf>,
    /// The virtual disk on one server: nbd://HOST:PORT[/EXPORT], nbd+unix:///EXPORT?socket=PATH,
    /// HOST:PORT or a socket path.
    #[arg(long = "virtual", value_name = "NBD", value_parser = NbdTarget::parse)]
    pub virtual_disk: Option<NbdTarget>,
    /// The virtual disk striped over several servers (same forms as --virtual).
    #[arg(long, value_name = "NBD", value_parser = NbdTarget::parse)]
    pub parallel: Option<NbdTarget>,
    /// How many servers the --parallel disk stripes over (labels only).
    #[arg(long, default_value_t = 2)]
    pub parallel_servers: usize,
    /// Shorthand for --virtual HOST:PORT.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["virtual_disk", "nbd_unix"])]
    pub nbd: Option<String>,
    /// Shorthand for --virtual with a unix socket.
    #[arg(long, value_name = "PATH", conflicts_with = "virtual_disk")]
    pub nbd_unix: Option<PathBuf>,
    /// Block sizes to sweep.
    #[arg(long, value_delimiter = ',', value_parser = parse_block_size,
          default_value = "4K,8K,16K,32K,64K,128K,256K,512K,1M")]
    pub block_sizes: Vec<u32>,
    /// Queue depths (requests in flight).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub queue_depths: Vec<usize>,
    /// Operations, in the order run.
    #[arg(long, value_delimiter = ',', value_parser = Op::parse, default_value = "write,read")]
    pub ops: Vec<Op>,
    /// Byte budget of each point.
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub bytes_per_point: u64,
    /// Time budget of each point (a point ends at the first budget reached).
    #[arg(long, value_parser = parse_seconds)]
    pub seconds_per_point: Option<Duration>,
    /// Confine I/O to the first SIZE bytes of each target.
    #[arg(long, value_parser = parse_size)]
    pub region: Option<u64>,
    /// Disk model of the physical baseline: latency_us=L,mbps=B (as given to the targets).
    #[arg(long, value_parser = parse_disk_model)]
    pub emulate_disk: Option<DiskEmulation>,
    /// Write the points as CSV (mode,op,queue_depth,block_size,mb_per_s).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw throughput and ratio charts (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
}

impl BenchArgs {
    fn plan(&self) -> BenchPlan {
        BenchPlan {
            block_sizes: self.block_sizes.clone(),
            queue_depths: self.queue_depths.clone(),
            ops: self.ops.clone(),
            bytes_per_point: Some(self.bytes_per_point),
            time_per_point: self.seconds_per_point,
            region: self.region,
        }
    }

    fn virtual_target(&self) -> Option<NbdTarget> {
        if let Some(t) = &self.virtual_disk {
            return Some(t.clone());
        }
        if let Some(a) = &self.nbd {
            return Some(NbdTarget::parse(a).unwrap_or_else(|_| NbdTarget::tcp(a.clone())));
        }
        self.nbd_unix.as_ref().map(NbdTarget::unix)
    }
}

/// Writes the CSV and chart a run asked for and prints the report to stdout.
pub fn emit(report: &BenchReport, csv: Option<&Path>, chart: Option<&Path>) -> anyhow::Result<()> {
    print!("{}", report.format_all());
    if let Some(p) = csv {
        std::fs::write(p, report.to_csv()).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        println!("csv: {}", p.display());
    }
    if let Some(p) = chart {
        write_chart_svg(report, p)?;
        println!("chart: {}", p.display());
    }
    Ok(())
}

/// `pvd bench`.
pub fn run_bench_command(args: &BenchArgs) -> anyhow::Result<()> {
    let plan = args.plan();
    let model: Option<Arc<dyn ServiceTimeModel>> = args
        .emulate_disk
        .map(|s| Arc::new(SpindleModel::new(s)) as Arc<dyn ServiceTimeModel>);
    let physical = args
        .physical
        .as_ref()
        .map(|p| LocalFileTarget::new(p, model));
    let virt = args.virtual_target();
    let mut targets = Vec::new();
    if let Some(p) = &physical {
        targets.push(ModeTarget {
            mode: Mode::Physical,
            target: p,
        });
    }
    if let Some(v) = &virt {
        targets.push(ModeTarget {
            mode: Mode::Virtual,
            target: v,
        });
    }
    if let Some(p) = &args.parallel {
        targets.push(ModeTarget {
            mode: Mode::Parallel,
            target: p,
        });
    }
    if targets.is_empty() {
        anyhow::bail!("nothing to measure: give --physical, --virtual (or --nbd/--nbd-unix) and/or --parallel");
    }
    let mut report = run_bench(&plan, &targets, args.parallel_servers)?;
    report.disk_model = args.emulate_disk;
    emit(&report, args.csv.as_deref(), args.chart.as_deref())
}

/// The demo's disk model: 50 µs per command plus 50 MB/s of transfer.
///
/// It models a commodity disk doing sequential direct writes: no seek between consecutive
/// requests (the workload is sequential), a command overhead of tens of µs with the drive's
/// write cache on, and a modest media rate. Transfer dominates at 512 KiB (10.5 ms of 10.54
/// ms), so splitting a 512 KiB request over two spindles nearly halves its time — the effect of
/// thesis Figure 6.1 — while small requests stay bounded by the constant cost, where the virtual
/// layer's own per-request cost shows (Figure 3.1).
///
/// Why these numbers: with latency L, transfer time T of the request and a per-request cost o
/// of the virtual layer, two servers give `(L + T) / (L + T/2 + o)`, which reaches 1.8x only
/// when `T >= 8 L + 18 o`. With L = 50 µs and o up to ~500 µs (NBD + iSCSI + two extra copies
/// of 512 KiB on a loaded 2-core machine) that needs T >= 9.4 ms, i.e. at most ~55 MB/s; one
/// server then stays >= 0.9x as long as o <= 1.1 ms. A 2-4 ms positioning time per command
/// (random I/O on a 7200 rpm disk) would cap the two-server gain near 1.5x and make the sweep
/// take minutes.
pub const DEMO_DISK_MODEL: DiskEmulation = DiskEmulation {
    latency_us: 50,
    mbps: 50.0,
};

/// [`DEMO_DISK_MODEL`] as an `--emulate-disk` argument.
pub const DEMO_DISK_MODEL_ARG: &str = "latency_us=50,mbps=50";

/// Where `pvd demo` writes its CSV unless told otherwise (the current directory).
pub const DEMO_CSV: &str = "pvd-demo.csv";
/// Where `pvd demo` draws its chart unless told otherwise (the current directory).
pub const DEMO_CHART: &str = "pvd-demo.svg";

/// `pvd demo`: starts a cluster, measures physical / virtual / parallel.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Write the points as CSV (mode,op,queue_depth,block_size,mb_per_s).
    #[arg(long, value_name = "FILE", default_value = DEMO_CSV)]
    pub csv: PathBuf,
    /// Draw throughput and ratio charts (SVG).
    #[arg(long, value_name = "FILE.svg", default_value = DEMO_CHART)]
    pub chart: PathBuf,
    /// Keep the work directory (backing files, logs, mapping files) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Disk model of every server and of the physical baseline.
    #[arg(long, value_parser = parse_disk_model, default_value = DEMO_DISK_MODEL_ARG)]
    pub emulate_disk: DiskEmulation,
    /// Block sizes to sweep.
    #[arg(long, value_delimiter = ',', value_parser = parse_block_size,
          default_value = "4K,8K,16K,32K,64K,128K,256K,512K,1M")]
    pub block_sizes: Vec<u32>,
    /// Queue depths.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub queue_depths: Vec<usize>,
    /// Operations, in the order run.
    #[arg(long, value_delimiter = ',', value_parser = Op::parse, default_value = "write,read")]
    pub ops: Vec<Op>,
    /// Byte budget of each point.
    #[arg(long, value_parser = parse_size, default_value = "32M")]
    pub bytes_per_point: u64,
    /// Time budget of each point; 108 points at 0.35 s keep the sweep under 40 s.
    #[arg(long, value_parser = parse_seconds, default_value = "0.35")]
    pub seconds_per_point: Duration,
    /// Servers of the parallel configuration.
    #[arg(long, default_value_t = 2)]
    pub servers: usize,
    /// Stripe unit (at most half the largest block size so one request spans two servers).
    #[arg(long, value_parser = parse_size, default_value = "256K")]
    pub stripe_unit: u64,
    /// Size of each virtual disk and of the physical file.
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub disk_size: u64,
    /// Parent of the work directory (default: the system temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// `pvd demo` with the `pvd` binary at `pvd` (normally the running executable).
pub fn run_demo_command(args: &DemoArgs, pvd: PathBuf) -> anyhow::Result<()> {
    let dir = match &args.work_dir {
        Some(parent) => tempfile::Builder::new()
            .prefix("pvd-demo-")
            .tempdir_in(parent)?,
        None => tempfile::Builder::new().prefix("pvd-demo-").tempdir()?,
    };
    let config = ClusterConfig {
        disk_model: args.emulate_disk,
        vdisk_size: args.disk_size,
        stripe_unit: args.stripe_unit,
        lun_size: args.disk_size * 2 + (64 << 20),
        work_dir: dir.path().to_path_buf(),
    };
    let mut cluster = ProcessCluster::new(pvd, config);
    let result = run_demo(args, &mut cluster, dir.path());
    cluster.stop();
    if args.keep {
        let kept = dir.keep();
        eprintln!("work directory kept: {}", kept.display());
    }
    let report = result?;
    emit(&report, Some(&args.csv), Some(&args.chart))
}

/// The demo's measurements against any [`Cluster`]: the physical file in `work_dir`, a virtual
/// disk on one server, and one striped over `args.servers`.
pub fn run_demo(
    args: &DemoArgs,
    cluster: &mut dyn Cluster,
    work_dir: &Path,
) -> Result<BenchReport, BenchError> {
    if args.servers < 2 {
        return Err(BenchError::BadSpec(
            "the parallel configuration needs at least 2 servers".into(),
        ));
    }
    let phys_path = work_dir.join("physical.img");
    let f = std::fs::File::create(&phys_path).map_err(|e| BenchError::Local {
        path: phys_path.clone(),
        source: e,
    })?;
    f.set_len(args.disk_size).map_err(|e| BenchError::Local {
        path: phys_path.clone(),
        source: e,
    })?;
    let model: Arc<dyn ServiceTimeModel> = Arc::new(SpindleModel::new(args.emulate_disk));
    let physical = LocalFileTarget::new(&phys_path, Some(model));
    let virt = cluster.start(1, 1)?;
    let parallel = cluster.start(args.servers, args.servers)?;
    let plan = BenchPlan {
        block_sizes: args.block_sizes.clone(),
        queue_depths: args.queue_depths.clone(),
        ops: args.ops.clone(),
        bytes_per_point: Some(args.bytes_per_point),
        time_per_point: Some(args.seconds_per_point),
        region: None,
    };
    let targets = [
        ModeTarget {
            mode: Mode::Physical,
            target: &physical,
        },
        ModeTarget {
            mode: Mode::Virtual,
            target: &virt,
        },
        ModeTarget {
            mode: Mode::Parallel,
            target: &parallel,
        },
    ];
    let mut report = run_bench(&plan, &targets, args.servers)?;
    report.disk_model = Some(args.emulate_disk);
    report.stages = cluster.stages();
    if plan.ops.contains(&Op::Write) && plan.queue_depths.contains(&1) {
        if let Some(lun) = cluster.start_lun()? {
            report.lun_qd1_writes = measure_lun_qd1_writes(&plan, &lun)?;
            let small = plan.block_sizes.iter().copied().min().unwrap_or(4096);
            report.layer_cost = Some(measure_layer_cost(
                &lun,
                &virt,
                small,
                LAYER_COST_ROUNDS,
                LAYER_COST_ROUND_TIME,
            )?);
        }
    }
    Ok(report)
}

/// QD1 writes of every block size of `plan` on a server's LUN straight over iSCSI: the
/// transport baseline the virtual layer's own cost is measured against.
fn measure_lun_qd1_writes(
    plan: &BenchPlan,
    lun: &IscsiLunTarget,
) -> Result<Vec<(u32, f64)>, BenchError> {
    let mut out = Vec::new();
    for &bs in &plan.block_sizes {
        let m = run_workload(lun, &plan.spec(Op::Write, 1, bs), &|_| {})?;
        out.push((bs, m.mean_latency_us()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("1X").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_block_size("0").is_err());
        assert!(parse_block_size("64M").is_err());
    }

    /// `pvd demo` alone (the README's first command) runs with every default.
    #[test]
    fn demo_needs_no_arguments() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            d: DemoArgs,
        }
        use clap::Parser;
        let t = T::try_parse_from(["demo"]).unwrap();
        assert_eq!(t.d.csv, PathBuf::from(DEMO_CSV));
        assert_eq!(t.d.chart, PathBuf::from(DEMO_CHART));
        assert_eq!(t.d.servers, 2);
        assert_eq!(t.d.emulate_disk, DEMO_DISK_MODEL);
        let o =
            T::try_parse_from(["demo", "--csv", "/tmp/a.csv", "--chart", "/tmp/a.svg"]).unwrap();
        assert_eq!(o.d.csv, PathBuf::from("/tmp/a.csv"));
        assert_eq!(o.d.chart, PathBuf::from("/tmp/a.svg"));
    }

    #[test]
    fn bench_args_parse() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            b: BenchArgs,
        }
        use clap::Parser;
        let t = T::try_parse_from([
            "bench",
            "--physical",
            "/tmp/x",
            "--virtual",
            "nbd://127.0.0.1:5000",
            "--block-sizes",
            "4K,1M",
            "--queue-depths",
            "1,32",
            "--ops",
            "write",
            "--emulate-disk",
            "latency_us=50,mbps=100",
        ])
        .unwrap();
        assert_eq!(t.b.block_sizes, vec![4096, 1 << 20]);
        assert_eq!(t.b.queue_depths, vec![1, 32]);
        assert_eq!(t.b.ops, vec![Op::Write]);
        assert_eq!(t.b.virtual_target(), Some(NbdTarget::tcp("127.0.0.1:5000")));
        assert_eq!(
            t.b.emulate_disk,
            Some(DiskEmulation {
                latency_us: 50,
                mbps: 100.0
            })
        );
        let d = T::try_parse_from(["bench", "--nbd-unix", "/run/s"]).unwrap();
        assert_eq!(
            parse_disk_model(DEMO_DISK_MODEL_ARG).unwrap(),
            DEMO_DISK_MODEL
        );
        assert_eq!(d.b.virtual_target(), Some(NbdTarget::unix("/run/s")));
        assert_eq!(d.b.block_sizes.len(), 9);
    }
}
