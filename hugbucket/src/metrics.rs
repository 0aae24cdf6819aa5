//! Prometheus text exposition of every subsystem's counters (served on `/metrics` of the
//! admin listener). Each subsystem keeps its own atomic counters; this module only renders.

use std::fmt::Write;

/// Renders the embedded hub's counters as `hugbucket_hub_*` metrics.
pub fn render_hub(stats: &hugbucket_hub::Stats, out: &mut String) {
    let json = stats.to_json();
    let Some(obj) = json.as_object() else {
        return;
    };
    for (name, value) in obj {
        if let Some(n) = value.as_u64() {
            let _ = writeln!(out, "# TYPE hugbucket_hub_{name}_total counter");
            let _ = writeln!(out, "hugbucket_hub_{name}_total {n}");
        }
    }
    if let Some(routes) = obj.get("requests").and_then(|v| v.as_object()) {
        let _ = writeln!(out, "# TYPE hugbucket_hub_requests_total counter");
        for (route, n) in routes {
            if let Some(n) = n.as_u64() {
                let _ = writeln!(out, "hugbucket_hub_requests_total{{route=\"{route}\"}} {n}");
            }
        }
    }
}

/// Renders the core's metrics (`hugbucket_uploads_in_flight`, per-shard call counts).
pub fn render_core(gateway: &hugbucket_core::Gateway, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hugbucket_uploads_in_flight Objects and parts being uploaded."
    );
    let _ = writeln!(out, "# TYPE hugbucket_uploads_in_flight gauge");
    let _ = writeln!(
        out,
        "hugbucket_uploads_in_flight {}",
        gateway.uploads_in_flight()
    );
    let _ = writeln!(
        out,
        "# HELP hugbucket_get_hash_mismatches_total Whole-object reads cut short because \
         the bytes read did not hash to the object's file hash."
    );
    let _ = writeln!(out, "# TYPE hugbucket_get_hash_mismatches_total counter");
    let _ = writeln!(
        out,
        "hugbucket_get_hash_mismatches_total {}",
        gateway.read_hash_mismatches()
    );
    let _ = writeln!(
        out,
        "# HELP hugbucket_key_shard_calls_total Calls about a key run on its owning key shard."
    );
    let _ = writeln!(out, "# TYPE hugbucket_key_shard_calls_total counter");
    for (i, n) in gateway.shard_calls().iter().enumerate() {
        let _ = writeln!(out, "hugbucket_key_shard_calls_total{{shard=\"{i}\"}} {n}");
    }
}

/// The `/proc/self/status` fields rendered by [`render_memory`], with their label.
const MEMORY_FIELDS: [(&str, &str); 3] = [
    ("RssAnon", "anon"),
    ("RssShmem", "shmem"),
    ("RssFile", "file"),
];

/// Renders the process's resident memory split by kind (`hugbucket_process_resident_bytes`):
/// `anon` + `shmem` is the process's own (private) memory, the figure memory bounds are
/// about; `file` is file pages mapped into it, mostly the chunk cache's memory-mapped
/// segments, which the kernel drops under pressure. `VmRSS` (what `top` shows) is their
/// sum, so a warm cache looks like a large RSS without being a leak. Linux only.
pub fn render_memory(out: &mut String) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        render_memory_from(&status, out);
    }
}

fn render_memory_from(status: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hugbucket_process_resident_bytes Resident memory by kind: anon + shmem is \
         private memory, file is mapped file pages (the chunk cache's segments)."
    );
    let _ = writeln!(out, "# TYPE hugbucket_process_resident_bytes gauge");
    for (field, kind) in MEMORY_FIELDS {
        let kib = status.lines().find_map(|l| {
            let v = l.strip_prefix(field)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse::<u64>().ok()
        });
        if let Some(kib) = kib {
            let _ = writeln!(
                out,
                "hugbucket_process_resident_bytes{{kind=\"{kind}\"}} {}",
                kib * 1024
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_split_into_private_and_mapped_file_pages() {
        let status =
            "VmRSS:\t  2400 kB\nRssAnon:\t   300 kB\nRssFile:\t  2090 kB\nRssShmem:\t    10 kB\n";
        let mut out = String::new();
        render_memory_from(status, &mut out);
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"anon\"} 307200\n"));
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"shmem\"} 10240\n"));
        assert!(out.contains("hugbucket_process_resident_bytes{kind=\"file\"} 2140160\n"));
        // This process has the fields too.
        let mut out = String::new();
        render_memory(&mut out);
        assert_eq!(
            out.matches("hugbucket_process_resident_bytes{").count(),
            3,
            "{out}"
        );
    }
}
