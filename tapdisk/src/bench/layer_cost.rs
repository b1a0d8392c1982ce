//! The constant cost the virtual layer (NBD frontend and tapdisk) adds to a small request, over
//! the iSCSI transport it sits on: QD1 writes of one block size straight to a server's LUN and
//! through a virtual disk on an identical server, compared by per-request median latency.
//!
//! The two sides are measured in alternating short rounds, the side that goes first switching
//! every round, and the result is the median of the rounds' differences. Measured minutes
//! apart, or by mean latency, the difference moved by tens of microseconds from run to run on a
//! shared 2-vCPU machine: the machine's speed drifts over a run, and a single scheduling hiccup
//! of a few milliseconds among a thousand requests shifts a mean by several microseconds.
//! Alternating puts the drift on both sides alike; medians ignore the hiccups.

use std::time::Duration;

use super::fit::median;
use super::workload::{run_workload, AccessPattern, Op, WorkloadSpec, WorkloadTarget};
use super::BenchError;

/// Rounds of the demo's measurement (each side once per round).
pub const LAYER_COST_ROUNDS: usize = 15;
/// Time each side runs per round: at 4 KiB on the demo's disk model, about a thousand requests.
pub const LAYER_COST_ROUND_TIME: Duration = Duration::from_millis(100);

/// Per-round median latencies of the two sides.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCost {
    pub block_size: u32,
    /// (LUN, virtual disk) median request latency of each round, µs.
    pub rounds: Vec<(f64, f64)>,
}

impl LayerCost {
    /// Each round's virtual-disk median minus its LUN median, µs, in round order.
    pub fn deltas_us(&self) -> Vec<f64> {
        self.rounds.iter().map(|&(lun, virt)| virt - lun).collect()
    }

    /// The median of [`LayerCost::deltas_us`] (the mean of the middle two for an even count);
    /// `None` without rounds.
    pub fn median_delta_us(&self) -> Option<f64> {
        median(&mut self.deltas_us())
    }

    /// Smallest and largest round difference, µs.
    pub fn delta_range_us(&self) -> Option<(f64, f64)> {
        let d = self.deltas_us();
        let lo = d.iter().copied().min_by(f64::total_cmp)?;
        let hi = d.iter().copied().max_by(f64::total_cmp)?;
        Some((lo, hi))
    }
}

/// Runs `rounds` rounds of QD1 writes of `block_size` bytes, `per_round` on each side.
pub fn measure_layer_cost(
    lun: &dyn WorkloadTarget,
    virtual_disk: &dyn WorkloadTarget,
    block_size: u32,
    rounds: usize,
    per_round: Duration,
) -> Result<LayerCost, BenchError> {
    if rounds == 0 || per_round.is_zero() {
        return Err(BenchError::BadSpec(
            "the layer cost needs at least one round of some length".into(),
        ));
    }
    let spec = WorkloadSpec {
        op: Op::Write,
        block_size,
        queue_depth: 1,
        bytes: None,
        duration: Some(per_round),
        pattern: AccessPattern::Sequential,
        region: None,
    };
    let median_us = |target: &dyn WorkloadTarget| -> Result<f64, BenchError> {
        let m = run_workload(target, &spec, &|_| {})?;
        if m.ops == 0 {
            return Err(BenchError::BadSpec(format!(
                "{}: no request completed within {per_round:?}",
                target.describe()
            )));
        }
        Ok(m.percentiles_us(&[50.0])[0])
    };
    let mut out = LayerCost {
        block_size,
        rounds: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        let (lun_us, virt_us) = if round % 2 == 0 {
            let l = median_us(lun)?;
            (l, median_us(virtual_disk)?)
        } else {
            let v = median_us(virtual_disk)?;
            (median_us(lun)?, v)
        };
        out.rounds.push((lun_us, virt_us));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::bench::service_time::{DiskEmulation, ServiceTimeModel, SpindleModel};
    use crate::bench::target_local::LocalFileTarget;

    /// A 16 MiB sparse file in `dir` driven locally, behind a disk of `latency_us` per
    /// request (and next to no transfer time) when given one.
    fn local_disk(dir: &std::path::Path, name: &str, latency_us: Option<u64>) -> LocalFileTarget {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let model = latency_us.map(|latency_us| {
            Arc::new(SpindleModel::new(DiskEmulation {
                latency_us,
                mbps: 1_000_000.0,
            })) as Arc<dyn ServiceTimeModel>
        });
        LocalFileTarget::new(path, model)
    }

    #[test]
    fn medians_and_ranges_of_round_differences() {
        let c = LayerCost {
            block_size: 4096,
            rounds: vec![(100.0, 110.0), (100.0, 160.0), (120.0, 125.0)],
        };
        assert_eq!(c.deltas_us(), vec![10.0, 60.0, 5.0]);
        assert_eq!(c.median_delta_us(), Some(10.0));
        assert_eq!(c.delta_range_us(), Some((5.0, 60.0)));
        let even = LayerCost {
            block_size: 4096,
            rounds: vec![(0.0, 4.0), (0.0, 8.0)],
        };
        assert_eq!(even.median_delta_us(), Some(6.0));
        let none = LayerCost {
            block_size: 4096,
            rounds: Vec::new(),
        };
        assert_eq!(none.median_delta_us(), None);
        assert_eq!(none.delta_range_us(), None);
    }

    /// Two local files behind disk models 400 µs apart: the measured cost is that difference.
    #[test]
    fn finds_the_difference_between_two_disk_models() {
        let dir = tempfile::tempdir().unwrap();
        let fast = local_disk(dir.path(), "fast.img", Some(300));
        let slow = local_disk(dir.path(), "slow.img", Some(700));
        let c = measure_layer_cost(&fast, &slow, 4096, 3, Duration::from_millis(60)).unwrap();
        assert_eq!(c.rounds.len(), 3);
        for &(l, v) in &c.rounds {
            assert!(l >= 300.0 && v >= 700.0, "below the models: {l} / {v}");
        }
        let d = c.median_delta_us().unwrap();
        assert!(
            (300.0..=500.0).contains(&d),
            "difference {d} us, expected about 400"
        );
    }

    #[test]
    fn refuses_an_empty_plan() {
        let dir = tempfile::tempdir().unwrap();
        let t = local_disk(dir.path(), "f.img", None);
        assert!(measure_layer_cost(&t, &t, 4096, 0, Duration::from_millis(10)).is_err());
        assert!(measure_layer_cost(&t, &t, 4096, 1, Duration::ZERO).is_err());
    }
}
