//! The process's one metrics registry, served as Prometheus text on `/metrics` of the
//! admin listener.
//!
//! Every family is a `prometheus-client` metric, registered here and nowhere else: the
//! counters the front-ends and the upstream client bump on their paths (their crates'
//! `register` functions), and collectors that read, at each scrape, what the core, the
//! chunk cache, the embedded hub and the kernel already count. Names are part of the
//! dashboards' contract (`deploy/grafana/hugbucket.json`); counters are registered without
//! the `_total` the encoder appends.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry of every family (the S3 front-end joins once it is started).
#[derive(Debug)]
pub struct Metrics {
    registry: RwLock<Registry>,
}

impl Metrics {
    /// Registers every family known at start: upstream, FTP, core, process memory, the
    /// chunk cache (if enabled) and the embedded hub (if any).
    pub fn new(gateway: &hugbucket_core::Gateway, hub: Option<Arc<hugbucket_hub::Stats>>) -> Self {
        let mut registry = Registry::default();
        hugbucket_upstream::metrics::METRICS.register(&mut registry);
        hugbucket_ftp::metrics::METRICS.register(&mut registry);
        registry.register_collector(Box::new(Core(gateway.clone())));
        registry.register_collector(Box::new(ProcessMemory));
        if let Some(cache) = gateway.cache() {
            registry.register_collector(Box::new(hugbucket_cache::CacheCollector(cache.clone())));
        }
        if let Some(stats) = hub {
            registry.register_collector(Box::new(Hub(stats)));
        }
        Self {
            registry: RwLock::new(registry),
        }
    }

    /// Adds the S3 front-end's families.
    pub fn add_s3(&self, s3: &hugbucket_s3::service::S3Stats) {
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        s3.register(&mut registry);
    }

    /// Every family as Prometheus text (format 0.0.4, [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing to a String cannot fail; a collector's error only truncates the text.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "encoding /metrics");
        }
        out
    }
}

/// Encodes the `# HELP`/`# TYPE` lines of `name` and the single sample of `m`.
fn encode_one(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    m: &impl EncodeMetric,
) -> std::fmt::Result {
    m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)
}

/// The core's gauges and counters (uploads in flight, hash mismatches, key shard calls).
#[derive(Debug)]
struct Core(hugbucket_core::Gateway);

impl Collector for Core {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        encode_one(
            &mut encoder,
            "hugbucket_uploads_in_flight",
            "Objects and parts being uploaded.",
            &ConstGauge::new(self.0.uploads_in_flight() as i64),
        )?;
        encode_one(
            &mut encoder,
            "hugbucket_get_hash_mismatches",
            "Whole-object reads cut short because the bytes read did not hash to the \
             object's file hash.",
            &ConstCounter::new(self.0.read_hash_mismatches()),
        )?;
        let mut family = encoder.encode_descriptor(
            "hugbucket_key_shard_calls",
            "Calls about a key run on its owning key shard.",
            None,
            MetricType::Counter,
        )?;
        for (i, n) in self.0.shard_calls().into_iter().enumerate() {
            let shard = [("shard", i.to_string())];
            ConstCounter::new(n).encode(family.encode_family(&shard)?)?;
        }
        Ok(())
    }
}

/// The embedded hub's counters (`hugbucket_hub_*`), named after its stats' JSON keys.
struct Hub(Arc<hugbucket_hub::Stats>);

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hub").field(&self.0.to_json()).finish()
    }
}

impl Collector for Hub {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let json = self.0.to_json();
        let Some(obj) = json.as_object() else {
            return Ok(());
        };
        for (name, value) in obj {
            if let Some(n) = value.as_u64() {
                let name = format!("hugbucket_hub_{name}");
                encode_one(
                    &mut encoder,
                    &name,
                    "Embedded hub counter.",
                    &ConstCounter::new(n),
                )?;
            }
        }
        if let Some(routes) = obj.get("requests").and_then(|v| v.as_object()) {
            let mut family = encoder.encode_descriptor(
                "hugbucket_hub_requests",
                "Embedded hub requests by route.",
                None,
                MetricType::Counter,
            )?;
            for (route, n) in routes {
                if let Some(n) = n.as_u64() {
                    let route = [("route", route.as_str())];
                    ConstCounter::new(n).encode(family.encode_family(&route)?)?;
                }
            }
        }
        Ok(())
    }
}

/// The `/proc/self/status` fields exported by [`ProcessMemory`], with their label.
const MEMORY_FIELDS: [(&str, &str); 3] = [
    ("RssAnon", "anon"),
    ("RssShmem", "shmem"),
    ("RssFile", "file"),
];

/// The process's resident memory split by kind (`hugbucket_process_resident_bytes`):
/// `anon` + `shmem` is the process's own (private) memory, the figure memory bounds are
/// about; `file` is file pages mapped into it, mostly the chunk cache's memory-mapped
/// segments, which the kernel drops under pressure. `VmRSS` (what `top` shows) is their
/// sum, so a warm cache looks like a large RSS without being a leak. Linux only.
#[derive(Debug)]
struct ProcessMemory;

impl Collector for ProcessMemory {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        match std::fs::read_to_string("/proc/self/status") {
            Ok(status) => encode_memory(&status, &mut encoder),
            Err(_) => Ok(()),
        }
    }
}

fn encode_memory(status: &str, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "hugbucket_process_resident_bytes",
        "Resident memory by kind: anon + shmem is private memory, file is mapped file \
         pages (the chunk cache's segments).",
        None,
        MetricType::Gauge,
    )?;
    for (field, kind) in MEMORY_FIELDS {
        let kib = status.lines().find_map(|l| {
            let v = l.strip_prefix(field)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse::<i64>().ok()
        });
        if let Some(kib) = kib {
            let kind = [("kind", kind)];
            ConstGauge::new(kib * 1024).encode(family.encode_family(&kind)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`encode_memory`] over a fixed `/proc/self/status`.
    #[derive(Debug)]
    struct Status(&'static str);

    impl Collector for Status {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            encode_memory(self.0, &mut encoder)
        }
    }

    fn encode(collector: impl Collector) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn memory_is_split_into_private_and_mapped_file_pages() {
        let status =
            "VmRSS:\t  2400 kB\nRssAnon:\t   300 kB\nRssFile:\t  2090 kB\nRssShmem:\t    10 kB\n";
        let out = encode(Status(status));
        assert!(
            out.contains("# TYPE hugbucket_process_resident_bytes gauge\n"),
            "{out}"
        );
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"anon\"} 307200\n"));
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"shmem\"} 10240\n"));
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"file\"} 2140160\n"));
        // This process has the fields too.
        let out = encode(ProcessMemory);
        assert_eq!(
            out.matches("hugbucket_process_resident_bytes{").count(),
            3,
            "{out}"
        );
    }
}
