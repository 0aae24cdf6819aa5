//! Counting operations: a bounded-memory latency histogram, per-operation statistics,
//! live counters for the progress line, the error log, and the work dispenser that ends
//! a run after a duration or a number of operations.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Values below this are counted exactly.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`] (relative bucket width 1/64).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = LINEAR as usize + (64 - 7) * SUB as usize;

/// Latency histogram in microseconds: exact below 128 µs, then 64 buckets per power of two
/// (every reported percentile is within 1/64 ≈ 1.6 % of the true sample). Fixed size
/// however many operations a run performs.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("n", &self.n)
            .field("max", &self.max)
            .finish()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (e - SUB_BITS)) - SUB; // 0..64
    LINEAR as usize + (e as usize - 7) * SUB as usize + sub as usize
}

/// Largest value that falls into bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let j = i - LINEAR as usize;
    let e = (j / SUB as usize) as u32 + 7;
    let sub = (j % SUB as usize) as u64 + SUB;
    let shift = e - SUB_BITS;
    // (sub + 1) << shift may be 2^64 for the very last bucket.
    ((sub + 1) << shift).wrapping_sub(1).max(sub << shift)
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(us)] += 1;
        self.n += 1;
        self.sum += u128::from(us);
        self.max = self.max.max(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `p`-th percentile (0 < p <= 100) in µs by nearest rank: the smallest recorded
    /// value such that at least p % of the samples are at or below it (bucket precision),
    /// never above the maximum. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.n as f64)
            .ceil()
            .clamp(1.0, self.n as f64) as u64;
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_high(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Largest sample in µs.
    pub fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    /// Mean in µs.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }
}

/// Statistics of one operation type.
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    /// Successful operations.
    pub ops: u64,
    /// Payload bytes moved by successful operations (request body for writes, response
    /// body for reads).
    pub bytes: u64,
    /// Failed operations.
    pub errors: u64,
    /// Latency of the successful operations.
    pub latency: Histogram,
}

impl OpStats {
    /// Adds `other`.
    pub fn merge(&mut self, other: &OpStats) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// Counters read by the progress line while a run is going.
#[derive(Debug, Default)]
pub struct Live {
    /// Successful operations so far.
    pub ops: AtomicU64,
    /// Bytes so far.
    pub bytes: AtomicU64,
    /// Failed operations so far.
    pub errors: AtomicU64,
}

/// How many error messages a report keeps.
pub const ERROR_SAMPLES: usize = 10;

/// The first few error messages of a run.
#[derive(Debug, Default)]
pub struct ErrorLog {
    first: Mutex<Vec<String>>,
}

impl ErrorLog {
    /// Keeps `msg` if fewer than [`ERROR_SAMPLES`] are kept.
    pub fn push(&self, msg: String) {
        if let Ok(mut v) = self.first.lock() {
            if v.len() < ERROR_SAMPLES {
                v.push(msg);
            }
        }
    }

    /// The kept messages.
    pub fn samples(&self) -> Vec<String> {
        self.first.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// One worker's statistics by operation name.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Statistics by operation name.
    pub ops: BTreeMap<&'static str, OpStats>,
}

impl Recorder {
    /// Records a success of `op` that started at `start` and moved `bytes`.
    pub fn ok(&mut self, live: &Live, op: &'static str, start: Instant, bytes: u64) {
        self.ok_elapsed(Some(live), op, start.elapsed(), bytes);
    }

    /// Records a success of `op` that took `elapsed`; the live counters (progress line)
    /// are only advanced when `live` is given.
    pub fn ok_elapsed(
        &mut self,
        live: Option<&Live>,
        op: &'static str,
        elapsed: Duration,
        bytes: u64,
    ) {
        let s = self.ops.entry(op).or_default();
        s.ops += 1;
        s.bytes += bytes;
        s.latency.record(elapsed);
        if let Some(live) = live {
            live.ops.fetch_add(1, Ordering::Relaxed);
            live.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Records a failure of `op` on `target` (a key or path).
    pub fn err(&mut self, live: &Live, log: &ErrorLog, op: &'static str, target: &str, msg: &str) {
        self.ops.entry(op).or_default().errors += 1;
        live.errors.fetch_add(1, Ordering::Relaxed);
        log.push(format!("{op} {target}: {msg}"));
    }

    /// Adds another worker's statistics.
    pub fn merge(&mut self, other: &Recorder) {
        for (k, v) in &other.ops {
            self.ops.entry(k).or_default().merge(v);
        }
    }
}

/// Hands out operation numbers until the run's limit.
#[derive(Debug)]
pub struct Dispenser {
    next: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
}

impl Dispenser {
    /// Stops after `ops` operations, or at `deadline`.
    pub fn new(ops: Option<u64>, deadline: Option<Instant>) -> Self {
        Self {
            next: AtomicU64::new(0),
            limit: ops,
            deadline,
        }
    }

    /// The next operation number, or `None` when the run is over.
    pub fn next(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.limit {
            Some(n) if i >= n => None,
            _ => Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram {
        let mut h = Histogram::default();
        for v in values {
            h.record(Duration::from_micros(v));
        }
        h
    }

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut prev_high = None::<u64>;
        for i in 0..BUCKETS {
            let hi = bucket_high(i);
            if let Some(p) = prev_high {
                assert!(hi > p, "bucket {i}");
                assert_eq!(bucket_of(p + 1), i, "first value of bucket {i}");
            }
            assert_eq!(bucket_of(hi), i, "last value of bucket {i}");
            prev_high = Some(hi);
        }
        assert_eq!(prev_high, Some(u64::MAX));
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        let h = hist(1..=100);
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(90.0), Some(90));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(100.0), Some(100));
        assert_eq!(h.max(), Some(100));
        assert_eq!(h.mean(), Some(50.5));
        assert_eq!(h.len(), 100);
        // Nearest rank: of 10 samples, p50 is the 5th, p51 the 6th.
        let h = hist([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(51.0), Some(60));
        assert_eq!(h.percentile(0.001), Some(10));
    }

    #[test]
    fn large_values_within_bucket_precision() {
        // 1 ms .. 1 s in 1 µs steps, shuffled order does not matter for a histogram.
        let h = hist((1..=1_000_000u64).rev());
        for (p, exact) in [
            (50.0, 500_000u64),
            (90.0, 900_000),
            (99.0, 990_000),
            (99.9, 999_000),
        ] {
            let got = h.percentile(p).unwrap();
            assert!(
                got >= exact && (got - exact) as f64 <= exact as f64 / 64.0,
                "p{p}: got {got}, exact {exact}"
            );
        }
        assert_eq!(h.max(), Some(1_000_000));
        assert_eq!(h.percentile(100.0), Some(1_000_000));
    }

    #[test]
    fn skewed_distribution_and_merge() {
        // 98 fast samples and 2 slow ones: p50/p90 fast, p99 slow.
        let mut a = hist(std::iter::repeat_n(1_000, 98));
        let b = hist([250_000, 400_000]);
        a.merge(&b);
        assert_eq!(a.len(), 100);
        let p50 = a.percentile(50.0).unwrap();
        assert!((1_000..=1_016).contains(&p50), "{p50}");
        assert!(a.percentile(98.0).unwrap() < 1_100);
        let p99 = a.percentile(99.0).unwrap();
        assert!((250_000..=254_000).contains(&p99), "{p99}");
        assert_eq!(a.max(), Some(400_000));
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = Histogram::default();
        assert!(h.is_empty());
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.mean(), None);
    }

    #[test]
    fn dispenser_stops_at_the_op_limit_across_threads() {
        let d = std::sync::Arc::new(Dispenser::new(Some(1000), None));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(i) = d.next() {
                        got.push(i);
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        let past = Dispenser::new(None, Some(Instant::now()));
        assert_eq!(past.next(), None);
    }
}
