//! A lock-free latency histogram: log2 buckets with four linear sub-buckets each (about 19%
//! relative error), atomics only, so the data path records without taking a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (as a shift).
const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
/// Buckets: values below `SUB` get one bucket each, then `SUB` per power of two up to 2^64.
pub const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Latencies in nanoseconds.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let log = 63 - v.leading_zeros();
    let sub = ((v >> (log - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (log - SUB_BITS) as usize * SUB + sub
}

/// Smallest and one-past-largest value of bucket `b`.
fn bucket_range(b: usize) -> (u64, u64) {
    if b < SUB {
        return (b as u64, b as u64 + 1);
    }
    let log = (b - SUB) / SUB + SUB_BITS as usize;
    let sub = ((b - SUB) % SUB) as u64;
    let width = 1u64 << (log - SUB_BITS as usize);
    let lo = (1u64 << log) + sub * width;
    (lo, lo.saturating_add(width))
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one value in nanoseconds.
    pub fn record_ns(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn record(&self, d: Duration) {
        self.record_ns(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
            buckets,
        }
    }
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_ns: u64,
    pub buckets: Vec<u64>,
}

impl HistogramSnapshot {
    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64 / 1000.0
        }
    }

    /// The `q` quantile (0..=1) in microseconds, interpolated inside its bucket.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (b, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if seen + n >= rank {
                let (lo, hi) = bucket_range(b);
                let frac = (rank - seen) as f64 / n as f64;
                return (lo as f64 + (hi - lo) as f64 * frac) / 1000.0;
            }
            seen += n;
        }
        0.0
    }

    /// Upper bounds (ns) and cumulative counts of the non-empty buckets (Prometheus `le`).
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut acc = 0;
        let mut out = Vec::new();
        for (b, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            acc += n;
            out.push((bucket_range(b).1, acc));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            1000,
            123_456,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            assert!(b >= last);
            last = b;
            let (lo, hi) = bucket_range(b);
            assert!(
                lo <= v && (v < hi || hi == u64::MAX),
                "{v} not in {lo}..{hi}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = Histogram::new();
        for i in 1..=1000u64 {
            h.record_ns(i * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert!((s.mean_us() - 500.5).abs() < 0.01);
        let p50 = s.quantile_us(0.5);
        assert!((400.0..620.0).contains(&p50), "p50 {p50}");
        let p99 = s.quantile_us(0.99);
        assert!((800.0..1250.0).contains(&p99), "p99 {p99}");
    }
}
