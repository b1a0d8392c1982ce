//! Service-time models for the local ("physical disk") target, after the thesis's Table 3.1
//! model: a command costs `X + Y * size`, and one spindle serves one command at a time.
//!
//! The storage targets apply the same model to their logical units (`--emulate-disk
//! latency_us=L,mbps=B`), so the physical baseline and the virtual disk run on identical disks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::workload::Op;

/// When a command issued now would complete on the modelled device.
pub trait ServiceTimeModel: Send + Sync {
    /// Reserves the device for one `op` of `len` bytes that arrives at `arrival`; returns the
    /// instant it completes. The caller waits until then before reporting completion.
    fn complete_at(&self, arrival: Instant, op: Op, len: u64) -> Instant;
}

/// `latency_us=L,mbps=B`: a command costs L µs plus `len / B` (B in 10^6 bytes per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskModelSpec {
    pub latency_us: u64,
    pub mbps: u64,
}

impl DiskModelSpec {
    /// Parses `latency_us=L,mbps=B` (either key may be omitted: 0 latency, unlimited rate).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut spec = DiskModelSpec {
            latency_us: 0,
            mbps: 0,
        };
        for kv in s.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv}: expected key=value"))?;
            let v: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{kv}: value is not an integer"))?;
            match k.trim() {
                "latency_us" => spec.latency_us = v,
                "mbps" => spec.mbps = v,
                other => {
                    return Err(format!(
                        "{other}: unknown disk model key (latency_us, mbps)"
                    ))
                }
            }
        }
        Ok(spec)
    }

    /// The cost of one command of `len` bytes on an idle device.
    pub fn service_time(&self, len: u64) -> Duration {
        let transfer_ns = len.saturating_mul(1000).checked_div(self.mbps).unwrap_or(0);
        Duration::from_micros(self.latency_us) + Duration::from_nanos(transfer_ns)
    }
}

impl std::fmt::Display for DiskModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "latency_us={},mbps={}", self.latency_us, self.mbps)
    }
}

/// One spindle: commands are served one after the other, each for
/// [`DiskModelSpec::service_time`].
#[derive(Debug)]
pub struct SpindleModel {
    spec: DiskModelSpec,
    busy_until: Mutex<Option<Instant>>,
}

impl SpindleModel {
    pub fn new(spec: DiskModelSpec) -> Self {
        SpindleModel {
            spec,
            busy_until: Mutex::new(None),
        }
    }

    pub fn spec(&self) -> DiskModelSpec {
        self.spec
    }
}

impl ServiceTimeModel for SpindleModel {
    fn complete_at(&self, arrival: Instant, _op: Op, len: u64) -> Instant {
        let mut busy = self.busy_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = match *busy {
            Some(t) if t > arrival => t,
            _ => arrival,
        };
        let done = start + self.spec.service_time(len);
        *busy = Some(done);
        done
    }
}

/// Sleeps until `deadline` with microsecond precision: the kernel sleep covers all but the last
/// 100 µs, which are spun (timer slack alone makes plain sleeps overshoot by 50 µs or more).
pub fn sleep_until_precise(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(100);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec() {
        let s = DiskModelSpec::parse("latency_us=100,mbps=200").unwrap();
        assert_eq!(
            s,
            DiskModelSpec {
                latency_us: 100,
                mbps: 200
            }
        );
        assert_eq!(s.to_string(), "latency_us=100,mbps=200");
        assert!(DiskModelSpec::parse("latency=1").is_err());
        assert!(DiskModelSpec::parse("mbps=x").is_err());
        assert!(DiskModelSpec::parse("mbps").is_err());
    }

    #[test]
    fn service_time_is_latency_plus_transfer() {
        let s = DiskModelSpec {
            latency_us: 100,
            mbps: 100,
        };
        // 1 MB at 100 MB/s = 10 ms.
        assert_eq!(s.service_time(1_000_000), Duration::from_micros(10_100));
        assert_eq!(
            DiskModelSpec {
                latency_us: 5,
                mbps: 0
            }
            .service_time(1 << 20),
            Duration::from_micros(5)
        );
    }

    #[test]
    fn spindle_serializes_commands() {
        let m = SpindleModel::new(DiskModelSpec {
            latency_us: 1000,
            mbps: 0,
        });
        let t0 = Instant::now();
        let a = m.complete_at(t0, Op::Write, 4096);
        let b = m.complete_at(t0, Op::Write, 4096);
        assert_eq!(a - t0, Duration::from_millis(1));
        assert_eq!(b - t0, Duration::from_millis(2));
        // An arrival after the device went idle starts at once.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            m.complete_at(later, Op::Read, 1) - later,
            Duration::from_millis(1)
        );
    }
}
