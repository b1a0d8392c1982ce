//! Statistics of the virtual disk in the spirit of the thesis's trace points (sections 3.2 and
//! 3.3): time spent in each stage of the data path as histograms, requests and bytes per
//! server, frontend requests against iSCSI commands, and merges.
//!
//! * [`histogram`]: the lock-free latency histogram.
//! * [`control`]: the control socket `pvd tapdisk stats` reads, and the Prometheus endpoint.

pub mod control;
pub mod histogram;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::StageBreakdown;
use crate::nbd::wire::CommandType;
use crate::nbd::{RequestObserver, RequestTiming};
pub use histogram::{Histogram, HistogramSnapshot};

/// The stages a request goes through, in order (labels used in every report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Received from the socket until handed to the virtual disk (frontend slot wait).
    FrontendWait = 0,
    /// Queued in the virtual disk until a dispatcher took it.
    QueueWait,
    /// Sorting and merging one dispatched batch.
    SortMerge,
    /// Splitting one (merged) request by the layout arithmetic.
    Translate,
    /// From dispatch until every server answered (the slowest piece).
    Servers,
    /// The virtual disk's whole service time of a request (queue to completion).
    Backend,
    /// Completion until the reply is on the socket.
    Reply,
    /// Received until replied.
    Total,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::FrontendWait,
        Stage::QueueWait,
        Stage::SortMerge,
        Stage::Translate,
        Stage::Servers,
        Stage::Backend,
        Stage::Reply,
        Stage::Total,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Stage::FrontendWait => "frontend wait",
            Stage::QueueWait => "queue wait",
            Stage::SortMerge => "sort+merge",
            Stage::Translate => "translate",
            Stage::Servers => "iscsi (all pieces)",
            Stage::Backend => "vdisk service",
            Stage::Reply => "completion+reply",
            Stage::Total => "total",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Stage::FrontendWait => "frontend_wait",
            Stage::QueueWait => "queue_wait",
            Stage::SortMerge => "sort_merge",
            Stage::Translate => "translate",
            Stage::Servers => "servers",
            Stage::Backend => "vdisk_service",
            Stage::Reply => "reply",
            Stage::Total => "total",
        }
    }
}

/// Counters and round trips of one iSCSI server (portal + IQN + LUN).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub name: String,
    pub round_trip: Histogram,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub other_commands: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
}

/// Everything the daemon counts; shared by the data path, the NBD observer hook and reporters.
#[derive(Debug)]
pub struct VdiskStats {
    started: Instant,
    stages: Vec<Histogram>,
    pub servers: Vec<ServerStats>,
    /// NBD requests by command: read, write, flush, trim, write zeroes, other.
    nbd_requests: [AtomicU64; 6],
    nbd_errors: AtomicU64,
    nbd_bytes_read: AtomicU64,
    nbd_bytes_written: AtomicU64,
    /// Requests that went into a merged command instead of their own.
    pub merged_requests: AtomicU64,
    /// Batches the dispatcher took from the queue.
    pub batches: AtomicU64,
    /// Zero-fill fallbacks (WRITE SAME refused).
    pub zero_fallbacks: AtomicU64,
    /// Reads whose payload went from the iSCSI socket to the NBD socket through a pipe.
    pub spliced_reads: AtomicU64,
    /// Reads offered a pipe whose payload came back in a buffer instead (spanning servers,
    /// merged, queued behind writes, or the initiator fell back).
    pub splice_fallbacks: AtomicU64,
}

const NBD_KINDS: [&str; 6] = ["read", "write", "flush", "trim", "write_zeroes", "other"];

impl VdiskStats {
    /// Statistics for a disk whose LUNs are named `servers` (in target index order).
    pub fn new(servers: Vec<String>) -> VdiskStats {
        VdiskStats {
            started: Instant::now(),
            stages: Stage::ALL.iter().map(|_| Histogram::new()).collect(),
            servers: servers
                .into_iter()
                .map(|name| ServerStats {
                    name,
                    ..ServerStats::default()
                })
                .collect(),
            nbd_requests: Default::default(),
            nbd_errors: AtomicU64::new(0),
            nbd_bytes_read: AtomicU64::new(0),
            nbd_bytes_written: AtomicU64::new(0),
            merged_requests: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            zero_fallbacks: AtomicU64::new(0),
            spliced_reads: AtomicU64::new(0),
            splice_fallbacks: AtomicU64::new(0),
        }
    }

    pub fn stage(&self, s: Stage) -> &Histogram {
        &self.stages[s as usize]
    }

    pub fn record(&self, s: Stage, d: Duration) {
        self.stages[s as usize].record(d);
    }

    /// A plain copy of everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            stages: Stage::ALL
                .iter()
                .map(|&s| (s.label().to_string(), self.stage(s).snapshot()))
                .collect(),
            nbd_requests: NBD_KINDS
                .iter()
                .zip(&self.nbd_requests)
                .map(|(k, v)| (k.to_string(), g(v)))
                .collect(),
            nbd_errors: g(&self.nbd_errors),
            nbd_bytes_read: g(&self.nbd_bytes_read),
            nbd_bytes_written: g(&self.nbd_bytes_written),
            merged_requests: g(&self.merged_requests),
            batches: g(&self.batches),
            zero_fallbacks: g(&self.zero_fallbacks),
            spliced_reads: g(&self.spliced_reads),
            splice_fallbacks: g(&self.splice_fallbacks),
            servers: self
                .servers
                .iter()
                .map(|s| ServerSnapshot {
                    name: s.name.clone(),
                    round_trip: s.round_trip.snapshot(),
                    reads: g(&s.reads),
                    writes: g(&s.writes),
                    other_commands: g(&s.other_commands),
                    bytes_read: g(&s.bytes_read),
                    bytes_written: g(&s.bytes_written),
                    errors: g(&s.errors),
                })
                .collect(),
        }
    }
}

impl RequestObserver for VdiskStats {
    fn on_request(&self, t: &RequestTiming) {
        let kind = match t.command {
            CommandType::READ => 0,
            CommandType::WRITE => 1,
            CommandType::FLUSH => 2,
            CommandType::TRIM => 3,
            CommandType::WRITE_ZEROES => 4,
            _ => 5,
        };
        self.nbd_requests[kind].fetch_add(1, Ordering::Relaxed);
        if t.error != crate::nbd::wire::Errno::OK {
            self.nbd_errors.fetch_add(1, Ordering::Relaxed);
        } else if kind == 0 {
            self.nbd_bytes_read
                .fetch_add(t.length as u64, Ordering::Relaxed);
        } else if kind == 1 {
            self.nbd_bytes_written
                .fetch_add(t.length as u64, Ordering::Relaxed);
        }
        let d = |a: Instant, b: Instant| b.saturating_duration_since(a);
        self.record(Stage::FrontendWait, d(t.received, t.dispatched));
        self.record(Stage::Reply, d(t.completed, t.replied));
        self.record(Stage::Total, d(t.received, t.replied));
    }
}

/// One server's part of a [`StatsSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSnapshot {
    pub name: String,
    pub round_trip: HistogramSnapshot,
    pub reads: u64,
    pub writes: u64,
    pub other_commands: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: u64,
}

impl ServerSnapshot {
    pub fn commands(&self) -> u64 {
        self.reads + self.writes + self.other_commands
    }
}

/// A copy of [`VdiskStats`]; also what the control socket sends as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub uptime_s: f64,
    pub stages: Vec<(String, HistogramSnapshot)>,
    pub nbd_requests: Vec<(String, u64)>,
    pub nbd_errors: u64,
    pub nbd_bytes_read: u64,
    pub nbd_bytes_written: u64,
    pub merged_requests: u64,
    pub batches: u64,
    pub zero_fallbacks: u64,
    #[serde(default)]
    pub spliced_reads: u64,
    #[serde(default)]
    pub splice_fallbacks: u64,
    pub servers: Vec<ServerSnapshot>,
}

impl StatsSnapshot {
    /// NBD requests of every kind.
    pub fn nbd_total(&self) -> u64 {
        self.nbd_requests.iter().map(|(_, n)| n).sum()
    }

    /// NBD requests of one kind ("read", "write", ...).
    pub fn nbd(&self, kind: &str) -> u64 {
        self.nbd_requests
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// iSCSI commands sent to every server.
    pub fn iscsi_total(&self) -> u64 {
        self.servers.iter().map(ServerSnapshot::commands).sum()
    }

    /// iSCSI WRITE commands sent to every server.
    pub fn iscsi_writes(&self) -> u64 {
        self.servers.iter().map(|s| s.writes).sum()
    }

    /// The thesis Table 3.2 analogue: every stage with samples, then each server's round trip.
    pub fn stage_breakdown(&self) -> Vec<StageBreakdown> {
        let row = |stage: String, h: &HistogramSnapshot| StageBreakdown {
            stage,
            mean_us: h.mean_us(),
            p50_us: h.quantile_us(0.5),
            p99_us: h.quantile_us(0.99),
        };
        let mut out: Vec<StageBreakdown> = self
            .stages
            .iter()
            .filter(|(_, h)| h.count > 0)
            .map(|(name, h)| row(name.clone(), h))
            .collect();
        for s in &self.servers {
            if s.round_trip.count > 0 {
                out.push(row(format!("iscsi round trip {}", s.name), &s.round_trip));
            }
        }
        out
    }

    /// The human-readable report `pvd tapdisk stats` prints.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "uptime {:.1} s", self.uptime_s);
        let _ = writeln!(
            o,
            "nbd requests {} ({}), errors {}, read {} B, written {} B",
            self.nbd_total(),
            self.nbd_requests
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.nbd_errors,
            self.nbd_bytes_read,
            self.nbd_bytes_written
        );
        let _ = writeln!(
            o,
            "iscsi commands {}, batches {}, merged requests {}, zero-fill fallbacks {}",
            self.iscsi_total(),
            self.batches,
            self.merged_requests,
            self.zero_fallbacks
        );
        let _ = writeln!(
            o,
            "reads spliced {}, splice fallbacks {}",
            self.spliced_reads, self.splice_fallbacks
        );
        for s in &self.servers {
            let _ = writeln!(
                o,
                "server {}: reads {}, writes {}, other {}, read {} B, written {} B, errors {}",
                s.name,
                s.reads,
                s.writes,
                s.other_commands,
                s.bytes_read,
                s.bytes_written,
                s.errors
            );
        }
        o.push('\n');
        o.push_str(&crate::bench::stages::format_stage_table(
            &self.stage_breakdown(),
        ));
        o
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# TYPE pvd_tapdisk_uptime_seconds gauge");
        let _ = writeln!(o, "pvd_tapdisk_uptime_seconds {}", self.uptime_s);
        let _ = writeln!(o, "# TYPE pvd_tapdisk_nbd_requests_total counter");
        for (k, n) in &self.nbd_requests {
            let _ = writeln!(o, "pvd_tapdisk_nbd_requests_total{{op=\"{k}\"}} {n}");
        }
        let counters = [
            ("nbd_errors_total", self.nbd_errors),
            ("nbd_read_bytes_total", self.nbd_bytes_read),
            ("nbd_written_bytes_total", self.nbd_bytes_written),
            ("merged_requests_total", self.merged_requests),
            ("batches_total", self.batches),
            ("zero_fill_fallbacks_total", self.zero_fallbacks),
            ("spliced_reads_total", self.spliced_reads),
            ("splice_fallbacks_total", self.splice_fallbacks),
            ("iscsi_commands_total", self.iscsi_total()),
        ];
        for (name, v) in counters {
            let _ = writeln!(o, "# TYPE pvd_tapdisk_{name} counter");
            let _ = writeln!(o, "pvd_tapdisk_{name} {v}");
        }
        let per_server: [(&str, ServerField); 6] = [
            ("server_reads_total", |s| s.reads),
            ("server_writes_total", |s| s.writes),
            ("server_other_commands_total", |s| s.other_commands),
            ("server_read_bytes_total", |s| s.bytes_read),
            ("server_written_bytes_total", |s| s.bytes_written),
            ("server_errors_total", |s| s.errors),
        ];
        for (name, f) in per_server {
            let _ = writeln!(o, "# TYPE pvd_tapdisk_{name} counter");
            for s in &self.servers {
                let _ = writeln!(
                    o,
                    "pvd_tapdisk_{name}{{server=\"{}\"}} {}",
                    escape(&s.name),
                    f(s)
                );
            }
        }
        let _ = writeln!(o, "# TYPE pvd_tapdisk_stage_seconds histogram");
        for (s, (_, h)) in Stage::ALL.iter().zip(&self.stages) {
            histogram_lines(
                &mut o,
                "pvd_tapdisk_stage_seconds",
                &format!("stage=\"{}\"", s.metric()),
                h,
            );
        }
        let _ = writeln!(o, "# TYPE pvd_tapdisk_server_round_trip_seconds histogram");
        for s in &self.servers {
            histogram_lines(
                &mut o,
                "pvd_tapdisk_server_round_trip_seconds",
                &format!("server=\"{}\"", escape(&s.name)),
                &s.round_trip,
            );
        }
        o
    }
}

/// Reads one counter of a server snapshot.
type ServerField = fn(&ServerSnapshot) -> u64;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn histogram_lines(o: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for (le_ns, n) in h.cumulative() {
        let _ = writeln!(
            o,
            "{name}_bucket{{{labels},le=\"{}\"}} {n}",
            le_ns as f64 / 1e9
        );
    }
    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(o, "{name}_sum{{{labels}}} {}", h.sum_ns as f64 / 1e9);
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.count);
}
