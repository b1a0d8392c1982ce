//! Disk emulation: a logical unit that behaves like one spindle with a fixed per-command
//! latency and a streaming bandwidth, so benchmarks can model independent disks on one machine.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

/// `--emulate-disk latency_us=L,mbps=B`: each medium-access command costs `L` microseconds plus
/// its size divided by `B` megabytes (10^6 bytes) per second, one command at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskEmulation {
    pub latency_us: u64,
    pub mbps: f64,
}

/// Why a `--emulate-disk` string was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EmulationParseError {
    #[error("disk emulation item `{0}` is not key=value")]
    NotKeyValue(String),
    #[error("unknown disk emulation key `{0}` (expected latency_us or mbps)")]
    UnknownKey(String),
    #[error("disk emulation value `{value}` for {key} is not a {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("disk emulation needs both latency_us and mbps")]
    Missing,
}

impl std::str::FromStr for DiskEmulation {
    type Err = EmulationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut latency = None;
        let mut mbps = None;
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| EmulationParseError::NotKeyValue(item.to_string()))?;
            match k.trim() {
                "latency_us" => {
                    latency = Some(v.trim().parse::<u64>().map_err(|_| {
                        EmulationParseError::BadValue {
                            key: "latency_us",
                            value: v.to_string(),
                            expected: "whole number of microseconds",
                        }
                    })?)
                }
                "mbps" => {
                    let b = v
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|b| b.is_finite() && *b > 0.0);
                    mbps = Some(b.ok_or_else(|| EmulationParseError::BadValue {
                        key: "mbps",
                        value: v.to_string(),
                        expected: "positive number of MB/s",
                    })?)
                }
                other => return Err(EmulationParseError::UnknownKey(other.to_string())),
            }
        }
        match (latency, mbps) {
            (Some(latency_us), Some(mbps)) => Ok(DiskEmulation { latency_us, mbps }),
            _ => Err(EmulationParseError::Missing),
        }
    }
}

impl DiskEmulation {
    /// Service time of a command moving `bytes`.
    pub fn service_time(&self, bytes: u64) -> Duration {
        Duration::from_micros(self.latency_us)
            + Duration::from_secs_f64(bytes as f64 / (self.mbps * 1e6))
    }
}

/// The emulated spindle: commands are served one after another.
#[derive(Debug)]
pub(crate) struct Spindle {
    model: DiskEmulation,
    busy_until: Mutex<Instant>,
}

impl Spindle {
    pub(crate) fn new(model: DiskEmulation) -> Spindle {
        Spindle {
            model,
            busy_until: Mutex::new(Instant::now()),
        }
    }

    /// Books the spindle for a command of `bytes` and returns when it completes.
    pub(crate) fn book(&self, bytes: u64) -> Instant {
        let now = Instant::now();
        let mut busy = self.busy_until.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*busy).max(now);
        let end = start + self.model.service_time(bytes);
        *busy = end;
        end
    }
}

/// Blocks the calling (blocking-pool) thread until `deadline`: thread sleeps are accurate to
/// tens of microseconds, where tokio timers round up to milliseconds.
pub(crate) fn wait_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        let now = Instant::now();
        if d > now {
            std::thread::sleep(d - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let e: DiskEmulation = "latency_us=5000,mbps=100".parse().unwrap();
        assert_eq!(
            e,
            DiskEmulation {
                latency_us: 5000,
                mbps: 100.0
            }
        );
        assert_eq!(
            e.service_time(1_000_000),
            Duration::from_micros(5000) + Duration::from_millis(10)
        );
        assert!(matches!(
            "latency_us=5".parse::<DiskEmulation>(),
            Err(EmulationParseError::Missing)
        ));
        assert!(matches!(
            "latency_us=x,mbps=1".parse::<DiskEmulation>(),
            Err(EmulationParseError::BadValue { .. })
        ));
        assert!(matches!(
            "latency_us=1,mbps=0".parse::<DiskEmulation>(),
            Err(EmulationParseError::BadValue { .. })
        ));
        assert!(matches!(
            "rpm=7200".parse::<DiskEmulation>(),
            Err(EmulationParseError::NotKeyValue(_)) | Err(EmulationParseError::UnknownKey(_))
        ));
    }
}
