//! The sweep: every mode x op x queue depth x block size, one [`run_workload`] each, collected
//! into a [`BenchReport`], with a progress bar on stderr when it is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::report::{BenchPoint, BenchReport, Mode};
use super::workload::{run_workload, AccessPattern, Op, WorkloadSpec, WorkloadTarget};
use super::BenchError;

/// What to measure at each target.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchPlan {
    pub block_sizes: Vec<u32>,
    pub queue_depths: Vec<usize>,
    /// In the order run (writes first fills the disk the reads then read).
    pub ops: Vec<Op>,
    /// Byte budget of one point (the point ends at the first of bytes/time).
    pub bytes_per_point: Option<u64>,
    /// Time budget of one point.
    pub time_per_point: Option<Duration>,
    /// Confine I/O to the first bytes of each target.
    pub region: Option<u64>,
}

impl BenchPlan {
    /// Powers of two from 4 KiB to 1 MiB.
    pub fn default_block_sizes() -> Vec<u32> {
        (12..=20).map(|s| 1u32 << s).collect()
    }

    /// The workload of one point of this plan.
    pub fn spec(&self, op: Op, queue_depth: usize, block_size: u32) -> WorkloadSpec {
        WorkloadSpec {
            op,
            block_size,
            queue_depth,
            bytes: self.bytes_per_point,
            duration: self.time_per_point,
            pattern: AccessPattern::Sequential,
            region: self.region,
        }
    }

    fn points(&self) -> usize {
        self.block_sizes.len() * self.queue_depths.len() * self.ops.len()
    }
}

/// A target to measure under a mode.
pub struct ModeTarget<'a> {
    pub mode: Mode,
    pub target: &'a dyn WorkloadTarget,
}

/// Runs the plan on every target, in the order given.
pub fn run_bench(
    plan: &BenchPlan,
    targets: &[ModeTarget<'_>],
    parallel_servers: usize,
) -> Result<BenchReport, BenchError> {
    let total = (plan.points() * targets.len()) as u64;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} points  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut report = BenchReport {
        parallel_servers,
        ..Default::default()
    };
    for t in targets {
        for &op in &plan.ops {
            for &qd in &plan.queue_depths {
                for &bs in &plan.block_sizes {
                    bar.set_message(format!(
                        "{} {op} QD{qd} {}",
                        t.mode,
                        super::report::block_label(bs)
                    ));
                    let m = run_workload(t.target, &plan.spec(op, qd, bs), &|_| {})?;
                    tracing::debug!(mode = %t.mode, %op, qd, bs, mb_per_s = m.mb_per_s(), ops = m.ops, "point");
                    report
                        .points
                        .push(BenchPoint::from_measurement(t.mode, op, qd, bs, &m));
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(report)
}
