//! The workload generator: `dd oflag=direct bs=B`-style sequential (or random) reads or writes
//! with a fixed number of requests in flight, against any [`WorkloadTarget`].
//!
//! A target opens an [`IoEngine`], a submit/complete interface like a kernel AIO ring: the
//! generator fills `queue_depth` slots, and every completion immediately refills its slot, so
//! exactly `queue_depth` requests are outstanding until the budget runs out. Write payloads come
//! from one preallocated random buffer; nothing is allocated per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};

use super::BenchError;

/// Direction of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Read,
    Write,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Result<Op, String> {
        match s.trim() {
            "read" | "r" => Ok(Op::Read),
            "write" | "w" => Ok(Op::Write),
            other => Err(format!("{other}: expected read or write")),
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request handed to an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoRequest {
    pub op: Op,
    pub offset: u64,
    pub len: u32,
}

/// A submit/complete I/O interface over one target, used from a single thread.
pub trait IoEngine {
    /// Bytes addressable on the target.
    fn capacity(&self) -> u64;
    /// Starts `req` in slot `slot` (< the queue depth the engine was opened with; a slot is
    /// reused only after it completed). Writes take their payload from the write pattern.
    fn submit(&mut self, slot: usize, req: IoRequest) -> Result<(), BenchError>;
    /// Blocks until some submitted request completes; returns its slot.
    fn wait_one(&mut self) -> Result<usize, BenchError>;
}

/// Something the generator can drive: a local file behind a disk model, an NBD export...
pub trait WorkloadTarget: Send + Sync {
    /// Short description for logs and errors.
    fn describe(&self) -> String;
    /// Opens an engine for up to `queue_depth` requests of at most `max_len` bytes; writes send
    /// `write_pattern[..len]`.
    fn open(
        &self,
        queue_depth: usize,
        max_len: usize,
        write_pattern: Arc<[u8]>,
    ) -> Result<Box<dyn IoEngine>, BenchError>;
}

/// Which offsets a run visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPattern {
    /// `start, start+B, start+2B, ...`, wrapping inside the region.
    Sequential,
    /// Uniform block-aligned offsets inside the region, from a fixed seed.
    Random { seed: u64 },
}

/// What one measurement point does.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub op: Op,
    pub block_size: u32,
    pub queue_depth: usize,
    /// Stop after this many bytes (whichever of `bytes`/`duration` comes first; at least one).
    pub bytes: Option<u64>,
    /// Stop issuing after this much time.
    pub duration: Option<Duration>,
    pub pattern: AccessPattern,
    /// Confine I/O to the first `region` bytes of the target (`None`: the whole target).
    pub region: Option<u64>,
}

impl WorkloadSpec {
    /// Sequential direct-style I/O of `bytes` bytes, like `dd oflag=direct bs=B` at QD1.
    pub fn sequential(op: Op, block_size: u32, queue_depth: usize, bytes: u64) -> Self {
        WorkloadSpec {
            op,
            block_size,
            queue_depth,
            bytes: Some(bytes),
            duration: None,
            pattern: AccessPattern::Sequential,
            region: None,
        }
    }
}

/// Result of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    pub bytes: u64,
    pub ops: u64,
    pub elapsed: Duration,
    /// Per-request latency (submit to completion), in nanoseconds, in completion order.
    pub latencies_ns: Vec<u64>,
}

impl Measurement {
    /// Throughput in MB/s (10^6 bytes per second, as `dd` reports it).
    pub fn mb_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s == 0.0 {
            return 0.0;
        }
        self.bytes as f64 / 1e6 / s
    }

    pub fn iops(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s == 0.0 {
            return 0.0;
        }
        self.ops as f64 / s
    }

    /// Mean latency in microseconds.
    pub fn mean_latency_us(&self) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        self.latencies_ns.iter().map(|&l| l as f64).sum::<f64>()
            / self.latencies_ns.len() as f64
            / 1e3
    }

    /// Latency percentiles in microseconds (nearest rank), one per entry of `ps` (0..=100).
    pub fn percentiles_us(&self, ps: &[f64]) -> Vec<f64> {
        let mut sorted = self.latencies_ns.clone();
        sorted.sort_unstable();
        ps.iter()
            .map(|&p| percentile_sorted(&sorted, p) as f64 / 1e3)
            .collect()
    }
}

/// Nearest-rank percentile of sorted samples (0 for none).
pub fn percentile_sorted(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A random buffer of `len` bytes from `seed` (the write payload).
pub fn random_pattern(len: usize, seed: u64) -> Arc<[u8]> {
    let mut buf = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut buf);
    buf.into()
}

/// Runs one point with a fresh random write pattern.
pub fn run_workload(
    target: &dyn WorkloadTarget,
    spec: &WorkloadSpec,
    progress: &dyn Fn(u64),
) -> Result<Measurement, BenchError> {
    let pattern = random_pattern(
        spec.block_size as usize,
        0x5eed_0000 ^ u64::from(spec.block_size),
    );
    run_workload_with_pattern(target, spec, pattern, progress)
}

/// Runs one point; writes send `pattern[..block_size]`. `progress` is told about completed
/// bytes every few requests.
pub fn run_workload_with_pattern(
    target: &dyn WorkloadTarget,
    spec: &WorkloadSpec,
    pattern: Arc<[u8]>,
    progress: &dyn Fn(u64),
) -> Result<Measurement, BenchError> {
    let bs = u64::from(spec.block_size);
    if bs == 0 || spec.queue_depth == 0 {
        return Err(BenchError::BadSpec(
            "block size and queue depth must be positive".into(),
        ));
    }
    if spec.bytes.is_none() && spec.duration.is_none() {
        return Err(BenchError::BadSpec(
            "a point needs a byte or a time budget".into(),
        ));
    }
    if pattern.len() < spec.block_size as usize {
        return Err(BenchError::BadSpec(
            "write pattern shorter than the block size".into(),
        ));
    }
    let mut engine = target.open(spec.queue_depth, spec.block_size as usize, pattern)?;
    let capacity = engine.capacity();
    let region = spec.region.map_or(capacity, |r| r.min(capacity));
    let blocks_in_region = region / bs;
    if blocks_in_region == 0 {
        return Err(BenchError::BadSpec(format!(
            "{}: region of {region} bytes holds no {bs}-byte block",
            target.describe()
        )));
    }
    let max_ops = spec.bytes.map(|b| b.div_ceil(bs).max(1));
    let mut latencies = Vec::with_capacity(max_ops.map_or(1 << 16, |n| n.min(1 << 24) as usize));
    let mut rng = match spec.pattern {
        AccessPattern::Random { seed } => Some(rand::rngs::StdRng::seed_from_u64(seed)),
        AccessPattern::Sequential => None,
    };
    let mut next_block: u64 = 0;
    let mut next_offset = || -> u64 {
        let block = match rng.as_mut() {
            Some(r) => r.gen_range(0..blocks_in_region),
            None => {
                let b = next_block % blocks_in_region;
                next_block += 1;
                b
            }
        };
        block * bs
    };

    let mut started = vec![Instant::now(); spec.queue_depth];
    let mut issued: u64 = 0;
    let mut completed: u64 = 0;
    let mut unreported: u64 = 0;
    let start = Instant::now();
    let deadline = spec.duration.map(|d| start + d);
    let may_issue = |issued: u64, now: Instant| -> bool {
        max_ops.is_none_or(|m| issued < m) && deadline.is_none_or(|d| now < d)
    };

    for (slot, slot_start) in started.iter_mut().enumerate() {
        let now = Instant::now();
        if !may_issue(issued, now) {
            break;
        }
        *slot_start = now;
        engine.submit(
            slot,
            IoRequest {
                op: spec.op,
                offset: next_offset(),
                len: spec.block_size,
            },
        )?;
        issued += 1;
    }
    while completed < issued {
        let slot = engine.wait_one()?;
        let now = Instant::now();
        latencies.push((now - started[slot]).as_nanos() as u64);
        completed += 1;
        unreported += 1;
        if unreported >= 64 {
            progress(unreported * bs);
            unreported = 0;
        }
        if may_issue(issued, now) {
            started[slot] = now;
            engine.submit(
                slot,
                IoRequest {
                    op: spec.op,
                    offset: next_offset(),
                    len: spec.block_size,
                },
            )?;
            issued += 1;
        }
    }
    let elapsed = start.elapsed();
    progress(unreported * bs);
    drop(engine);
    Ok(Measurement {
        bytes: completed * bs,
        ops: completed,
        elapsed,
        latencies_ns: latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 50);
        assert_eq!(percentile_sorted(&v, 99.0), 99);
        assert_eq!(percentile_sorted(&v, 100.0), 100);
        assert_eq!(percentile_sorted(&v, 0.0), 1);
        assert_eq!(percentile_sorted(&[], 50.0), 0);
    }

    #[test]
    fn measurement_rates() {
        let m = Measurement {
            bytes: 2_000_000,
            ops: 4,
            elapsed: Duration::from_secs(2),
            latencies_ns: vec![1000, 2000, 3000, 6000],
        };
        assert_eq!(m.mb_per_s(), 1.0);
        assert_eq!(m.iops(), 2.0);
        assert_eq!(m.mean_latency_us(), 3.0);
        assert_eq!(m.percentiles_us(&[50.0, 99.0]), vec![2.0, 6.0]);
    }
}
