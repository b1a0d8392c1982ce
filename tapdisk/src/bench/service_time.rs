//! Service-time models for the local ("physical disk") target, after the thesis's Table 3.1
//! model: a command costs `X + Y * size`, and one spindle serves one command at a time.
//!
//! The storage targets apply the same model to their logical units (`--emulate-disk
//! latency_us=L,mbps=B`), so the physical baseline and the virtual disk run on identical disks.

use std::time::Instant;

use super::workload::Op;

/// When a command issued now would complete on the modelled device.
pub trait ServiceTimeModel: Send + Sync {
    /// Reserves the device for one `op` of `len` bytes that arrives at `arrival`; returns the
    /// instant it completes. The caller waits until then before reporting completion.
    fn complete_at(&self, arrival: Instant, op: Op, len: u64) -> Instant;
}

pub use iscsi_target::lu::DiskEmulation;
use iscsi_target::lu::Spindle;

/// Parses `latency_us=L,mbps=B` exactly as the target's `--emulate-disk` does.
pub fn parse_disk_model(s: &str) -> Result<DiskEmulation, String> {
    s.parse::<DiskEmulation>().map_err(|e| e.to_string())
}

/// The `--emulate-disk` argument that reproduces `model`.
pub fn disk_model_arg(model: &DiskEmulation) -> String {
    format!("latency_us={},mbps={}", model.latency_us, model.mbps)
}

/// One spindle: commands are served one after the other, each for
/// [`DiskEmulation::service_time`] (the booking rule of the target's emulated LUN).
/// The physical disk's model: the very spindle the target's logical units use, so the baseline
/// and the virtual disk pay the same service times with the same precision.
#[derive(Debug)]
pub struct SpindleModel {
    spindle: Spindle,
}

impl SpindleModel {
    pub fn new(spec: DiskEmulation) -> Self {
        SpindleModel {
            spindle: Spindle::new(spec),
        }
    }

    pub fn spec(&self) -> DiskEmulation {
        self.spindle.model()
    }
}

impl ServiceTimeModel for SpindleModel {
    fn complete_at(&self, arrival: Instant, _op: Op, len: u64) -> Instant {
        self.spindle.book_at(arrival, len)
    }
}

/// Blocks until `deadline`, exactly as the target's logical units do.
pub fn sleep_until_precise(deadline: Instant) {
    iscsi_target::lu::emulation::wait_until(Some(deadline));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_and_prints_the_target_syntax() {
        let s = parse_disk_model("latency_us=100,mbps=200").unwrap();
        assert_eq!(
            s,
            DiskEmulation {
                latency_us: 100,
                mbps: 200.0
            }
        );
        assert_eq!(disk_model_arg(&s), "latency_us=100,mbps=200");
        assert_eq!(parse_disk_model(&disk_model_arg(&s)).unwrap(), s);
        assert!(parse_disk_model("latency=1").is_err());
        assert!(parse_disk_model("mbps=x").is_err());
    }

    #[test]
    fn spindle_serializes_commands() {
        // Zero-length commands cost the latency alone.
        let m = SpindleModel::new(DiskEmulation {
            latency_us: 1000,
            mbps: 100.0,
        });
        let t0 = Instant::now();
        let a = m.complete_at(t0, Op::Write, 0);
        let b = m.complete_at(t0, Op::Write, 0);
        assert_eq!(a - t0, Duration::from_millis(1));
        assert_eq!(b - t0, Duration::from_millis(2));
        // An arrival after the device went idle starts at once.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            m.complete_at(later, Op::Read, 0) - later,
            Duration::from_millis(1)
        );
    }
}
