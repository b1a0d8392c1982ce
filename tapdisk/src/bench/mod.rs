//! The benchmark harness behind `pvd bench` and `pvd demo`: the thesis's experiments (Figure
//! 3.1, Tables 3.1/3.2, Figure 6.1) against the physical disk, the virtual disk on one server and
//! the virtual disk striped over several servers.
//!
//! * [`nbd_client`]: a small pipelining NBD client (the load generator's transport).
//! * [`workload`]: the generator (`dd oflag=direct`-style I/O at a queue depth) over the
//!   [`workload::WorkloadTarget`] seam; [`target_nbd`], [`target_local`] and [`target_iscsi`]
//!   (a LUN straight over iSCSI, the transport baseline) implement it.
//! * [`service_time`]: the disk model the local baseline runs under.
//! * [`runner`]: sweeps block sizes, queue depths and ops over every mode into a
//!   [`report::BenchReport`].
//! * [`fit`], [`report`], [`chart`], [`stages`]: analysis and presentation; [`layer_cost`]: the
//!   virtual layer's own cost at 4 KiB, against a server's LUN in alternating rounds.
//! * [`cluster`]: the seam `pvd demo` starts servers through; [`cli`]: the subcommands' options.

pub mod chart;
pub mod cli;
pub mod cluster;
pub mod fit;
pub mod layer_cost;
pub mod nbd_client;
pub mod report;
pub mod runner;
pub mod service_time;
pub mod stages;
pub mod target_iscsi;
pub mod target_local;
pub mod target_nbd;
pub mod workload;

pub use nbd_client::{NbdAddress, NbdConnection, NbdTarget};
pub use report::{BenchPoint, BenchReport, Mode};
pub use runner::{run_bench, BenchPlan};
pub use stages::StageBreakdown;
pub use workload::{run_workload, Measurement, Op, WorkloadSpec, WorkloadTarget};

use std::path::PathBuf;

/// Errors of the harness; each says which part failed and on what.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{target}: {source}")]
    Nbd {
        target: String,
        #[source]
        source: nbd_client::NbdClientError,
    },
    #[error("{}: {source}", path.display())]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid benchmark: {0}")]
    BadSpec(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("chart: {0}")]
    Chart(String),
    #[error("cluster: {0}")]
    Cluster(String),
}
