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
