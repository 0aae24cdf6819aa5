//! Cache counters and their Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A point-in-time copy of the cache's counters and gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Gets answered from the cache.
    pub hits: u64,
    /// Gets not answered (absent, or dropped as corrupt).
    pub misses: u64,
    /// Bytes returned by hits.
    pub bytes_served: u64,
    /// Entries stored by `put`.
    pub inserts: u64,
    /// Data bytes stored by `put`.
    pub bytes_inserted: u64,
    /// Entries removed to respect the capacity.
    pub evictions: u64,
    /// Segment bytes reclaimed by eviction.
    pub evicted_bytes: u64,
    /// Entries dropped because they failed validation (checksum, header, truncation, index).
    pub corrupt_dropped: u64,
    /// Xorb range fetches made upstream on misses (reported by the caller).
    pub upstream_fetches: u64,
    /// Bytes fetched upstream on misses (reported by the caller).
    pub upstream_bytes: u64,
    /// Live entries.
    pub entries: u64,
    /// Bytes of all live segment files (the quantity bounded by the capacity).
    pub disk_bytes: u64,
    /// Live segment files.
    pub segments: u64,
    /// The configured capacity in bytes.
    pub capacity: u64,
}

impl CacheStats {
    /// Appends the stats as Prometheus text exposition lines (`# HELP`, `# TYPE`, value),
    /// metric names prefixed with `hugbucket_cache_`.
    pub fn render_prometheus(&self, out: &mut String) {
        let rows: [(&str, &str, &str, u64); 14] = [
            (
                "hits_total",
                "counter",
                "Chunk range gets answered from the cache.",
                self.hits,
            ),
            (
                "misses_total",
                "counter",
                "Chunk range gets not answered from the cache.",
                self.misses,
            ),
            (
                "served_bytes_total",
                "counter",
                "Bytes returned by cache hits.",
                self.bytes_served,
            ),
            (
                "inserts_total",
                "counter",
                "Entries stored in the cache.",
                self.inserts,
            ),
            (
                "inserted_bytes_total",
                "counter",
                "Data bytes stored in the cache.",
                self.bytes_inserted,
            ),
            (
                "evictions_total",
                "counter",
                "Entries evicted to respect the capacity.",
                self.evictions,
            ),
            (
                "evicted_bytes_total",
                "counter",
                "Segment bytes reclaimed by eviction.",
                self.evicted_bytes,
            ),
            (
                "corrupt_dropped_total",
                "counter",
                "Entries dropped after failing validation.",
                self.corrupt_dropped,
            ),
            (
                "upstream_fetches_total",
                "counter",
                "Xorb range fetches made upstream on misses.",
                self.upstream_fetches,
            ),
            (
                "upstream_fetched_bytes_total",
                "counter",
                "Bytes fetched upstream on misses.",
                self.upstream_bytes,
            ),
            ("entries", "gauge", "Live cache entries.", self.entries),
            (
                "disk_bytes",
                "gauge",
                "Bytes of live segment files.",
                self.disk_bytes,
            ),
            ("segments", "gauge", "Live segment files.", self.segments),
            (
                "capacity_bytes",
                "gauge",
                "Configured cache capacity.",
                self.capacity,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP hugbucket_cache_{name} {help}");
            let _ = writeln!(out, "# TYPE hugbucket_cache_{name} {kind}");
            let _ = writeln!(out, "hugbucket_cache_{name} {value}");
        }
    }
}

/// Hot-path counters, one set per shard (so that threads hitting different keys do not
/// share a cache line). Padded to two cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ShardCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
}

/// Counters touched off the hot path (puts, evictions, corruption).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) inserts: AtomicU64,
    pub(crate) bytes_inserted: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) evicted_bytes: AtomicU64,
    pub(crate) corrupt_dropped: AtomicU64,
    pub(crate) upstream_fetches: AtomicU64,
    pub(crate) upstream_bytes: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) disk_bytes: AtomicU64,
    pub(crate) segments: AtomicU64,
}

impl Counters {
    pub(crate) fn fill(&self, s: &mut CacheStats) {
        s.inserts = self.inserts.load(Relaxed);
        s.bytes_inserted = self.bytes_inserted.load(Relaxed);
        s.evictions = self.evictions.load(Relaxed);
        s.evicted_bytes = self.evicted_bytes.load(Relaxed);
        s.corrupt_dropped = self.corrupt_dropped.load(Relaxed);
        s.upstream_fetches = self.upstream_fetches.load(Relaxed);
        s.upstream_bytes = self.upstream_bytes.load(Relaxed);
        s.entries = self.entries.load(Relaxed);
        s.disk_bytes = self.disk_bytes.load(Relaxed);
        s.segments = self.segments.load(Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let stats = CacheStats {
            hits: 3,
            corrupt_dropped: 2,
            capacity: 1024,
            ..CacheStats::default()
        };
        let mut out = String::new();
        stats.render_prometheus(&mut out);
        assert!(out.contains("\nhugbucket_cache_hits_total 3\n"));
        assert!(out.contains("# TYPE hugbucket_cache_corrupt_dropped_total counter\n"));
        assert!(out.contains("\nhugbucket_cache_corrupt_dropped_total 2\n"));
        assert!(out.contains("\nhugbucket_cache_capacity_bytes 1024\n"));
        assert_eq!(out.lines().count(), 14 * 3);
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap();
            assert!(name.starts_with("hugbucket_cache_"), "{line}");
            assert!(parts.next().unwrap().parse::<u64>().is_ok(), "{line}");
        }
    }
}
