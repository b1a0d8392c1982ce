//! `pvd`: the single user-facing command of the parallel virtual disk.

use clap::{Parser, Subcommand};

/// pvd: a parallel virtual disk. A VM's disk striped and replicated over several iSCSI storage
/// servers, served to the VM over NBD.
#[derive(Parser, Debug)]
#[command(name = "pvd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the master (extent allocation service), or query one (`pvd master status`).
    Master(pvd_mapping::cli::MasterCommand),
    /// Create, show, delete or recover a virtual disk's mapping file.
    Vdisk(pvd_mapping::cli::VdiskCommand),
    /// Serve files or block devices as SCSI disks over iSCSI.
    Target(iscsi_target::cli::TargetArgs),
    /// Talk to an iSCSI target: discover, info, read, write, bench.
    Iscsi(iscsi_initiator::cli::IscsiCommand),
    /// Serve a virtual disk over NBD from its mapping file (`pvd tapdisk stats` to inspect).
    ///
    /// The disk's extents are read and written with iSCSI straight on the storage servers the
    /// mapping file names. Payloads are not copied on the way: a write's data is a slice of
    /// the received request, and a READ of 64 KiB or more on one server goes from the iSCSI
    /// socket to the NBD socket through a pipe (splice), never through the daemon's memory.
    Tapdisk(pvd::daemon::TapdiskCommand),
    /// Measure throughput and per-request cost of a physical file, a virtual disk and a striped
    /// virtual disk (thesis Figures 3.1 and 6.1, Table 3.1); tables, CSV, SVG chart.
    Bench(pvd::bench::cli::BenchArgs),
    /// Start a local cluster (master, 2 targets with emulated disks, tapdisks) and benchmark
    /// physical vs virtual vs parallel.
    Demo(pvd::bench::cli::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PVD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Master(c) => tokio::runtime::Runtime::new()?.block_on(c.run()),
        Command::Vdisk(c) => tokio::runtime::Runtime::new()?.block_on(c.run()),
        Command::Target(a) => iscsi_target::cli::run(a),
        Command::Iscsi(c) => tokio::runtime::Runtime::new()?.block_on(c.run()),
        Command::Tapdisk(c) => c.runtime()?.block_on(c.run()),
        Command::Bench(a) => pvd::bench::cli::run_bench_command(&a),
        Command::Demo(a) => pvd::bench::cli::run_demo_command(&a, std::env::current_exe()?),
    }
}
