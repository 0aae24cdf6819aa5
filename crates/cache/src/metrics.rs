//! Cache counters, and their export as `prometheus-client` families ([`CacheCollector`],
//! registered by the binary with every other family; see `hugbucket/src/metrics.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::ChunkCache;

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
    /// Encodes the stats as the `hugbucket_cache_*` families (counters are named without
    /// the `_total` the encoder appends).
    pub fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let counters = [
            (
                "hits",
                "Chunk range gets answered from the cache.",
                self.hits,
            ),
            (
                "misses",
                "Chunk range gets not answered from the cache.",
                self.misses,
            ),
            (
                "served_bytes",
                "Bytes returned by cache hits.",
                self.bytes_served,
            ),
            ("inserts", "Entries stored in the cache.", self.inserts),
            (
                "inserted_bytes",
                "Data bytes stored in the cache.",
                self.bytes_inserted,
            ),
            (
                "evictions",
                "Entries evicted to respect the capacity.",
                self.evictions,
            ),
            (
                "evicted_bytes",
                "Segment bytes reclaimed by eviction.",
                self.evicted_bytes,
            ),
            (
                "corrupt_dropped",
                "Entries dropped after failing validation.",
                self.corrupt_dropped,
            ),
            (
                "upstream_fetches",
                "Xorb range fetches made upstream on misses.",
                self.upstream_fetches,
            ),
            (
                "upstream_fetched_bytes",
                "Bytes fetched upstream on misses.",
                self.upstream_bytes,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let name = format!("hugbucket_cache_{name}");
            counter.encode(encoder.encode_descriptor(
                &name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            ("entries", "Live cache entries.", self.entries),
            (
                "disk_bytes",
                "Bytes of live segment files.",
                self.disk_bytes,
            ),
            ("segments", "Live segment files.", self.segments),
            (
                "capacity_bytes",
                "Configured cache capacity.",
                self.capacity,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let name = format!("hugbucket_cache_{name}");
            gauge.encode(encoder.encode_descriptor(&name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Exports a cache's [`CacheStats`] at each scrape (register it with
/// `Registry::register_collector`).
pub struct CacheCollector(pub Arc<dyn ChunkCache>);

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheCollector")
            .field(&self.0.stats())
            .finish()
    }
}

impl Collector for CacheCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.0.stats().encode(encoder)
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
    use prometheus_client::registry::Registry;

    #[derive(Debug)]
    struct Fixed(CacheStats);

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            self.0.encode(encoder)
        }
    }

    #[test]
    fn renders_every_metric_with_help_and_type() {
        let stats = CacheStats {
            hits: 3,
            corrupt_dropped: 2,
            capacity: 1024,
            ..CacheStats::default()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(stats)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("\nhugbucket_cache_hits_total 3\n"), "{out}");
        assert!(out.contains("# TYPE hugbucket_cache_corrupt_dropped_total counter\n"));
        assert!(out.contains("\nhugbucket_cache_corrupt_dropped_total 2\n"));
        assert!(out.contains("# TYPE hugbucket_cache_capacity_bytes gauge\n"));
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
