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

/// One emulated spindle: commands are served one after another, each taking
/// [`DiskEmulation::service_time`]. Shared by the target's logical units and by `pvd bench`'s local
/// "physical disk" baseline, so both sides of a comparison pay exactly the same model.
#[derive(Debug)]
pub struct Spindle {
    model: DiskEmulation,
    busy_until: Mutex<Instant>,
}

impl Spindle {
    pub fn new(model: DiskEmulation) -> Spindle {
        Spindle {
            model,
            busy_until: Mutex::new(Instant::now()),
        }
    }

    pub fn model(&self) -> DiskEmulation {
        self.model
    }

    /// Books a command of `bytes` arriving now; returns when the spindle finishes it.
    pub fn book(&self, bytes: u64) -> Instant {
        self.book_at(Instant::now(), bytes)
    }

    /// Books a command of `bytes` that arrived at `arrival`: it starts when the spindle is free
    /// (or at arrival, if idle) and takes the model's service time.
    pub fn book_at(&self, arrival: Instant, bytes: u64) -> Instant {
        let mut busy = self.busy_until.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*busy).max(arrival);
        let end = start + self.model.service_time(bytes);
        *busy = end;
        end
    }
}

/// How close to a deadline [`wait_until`] stops sleeping and spins.
const SPIN_WINDOW: Duration = Duration::from_micros(30);
/// How early [`wait_until`] ends the first sleep of a long wait. A CPU left idle for
/// milliseconds wakes late: on a 2-vCPU virtual machine whose idle vCPUs halt, a 5 ms
/// `clock_nanosleep` overshot by 89-112 us (median of 400), a 200 us one by 34 us. So a long
/// wait sleeps until this far before the deadline, then sleeps the rest (short, so it
/// overshoots little) and spins the last [`SPIN_WINDOW`]. There, the overshoot of a 5 ms wait
/// fell from a median of about 90 us to 15 us (p90 33 us), and a 512 KiB write striped over two
/// emulated disks got 87.4 against 86.1 MB/s (medians of 10 alternated runs).
const LONG_WAIT_GUARD: Duration = Duration::from_micros(200);

/// Blocks the calling thread until `deadline` (no-op for `None` or a past deadline).
///
/// Linux lets a sleeping thread overshoot by its timer slack (50 µs by default), which would add
/// a random cost to every emulated command; the first call on a thread sets the slack to 1 ns,
/// a long wait ends its first sleep [`LONG_WAIT_GUARD`] early, and the last few microseconds
/// are spun.
pub fn wait_until(deadline: Option<Instant>) {
    let Some(deadline) = deadline else { return };
    tighten_timer_slack();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > LONG_WAIT_GUARD + SPIN_WINDOW {
            std::thread::sleep(left - LONG_WAIT_GUARD - SPIN_WINDOW);
        } else if left > SPIN_WINDOW {
            std::thread::sleep(left - SPIN_WINDOW);
        } else {
            std::hint::spin_loop();
        }
    }
}

fn tighten_timer_slack() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.get() {
            // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
            }
            done.set(true);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_never_ends_before_its_deadline() {
        // Spin-only, one short sleep, exactly at the long-wait threshold, and a long wait.
        let lengths = [
            Duration::from_micros(10),
            Duration::from_micros(150),
            LONG_WAIT_GUARD + SPIN_WINDOW,
            LONG_WAIT_GUARD + SPIN_WINDOW + Duration::from_micros(1),
            Duration::from_millis(3),
        ];
        for len in lengths {
            let deadline = Instant::now() + len;
            wait_until(Some(deadline));
            assert!(Instant::now() >= deadline, "a {len:?} wait ended early");
        }
        // No deadline and a past one return at once.
        wait_until(None);
        wait_until(Instant::now().checked_sub(Duration::from_millis(1)));
    }

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
