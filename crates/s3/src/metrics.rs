//! Counters of the S3 front-end, rendered as Prometheus text on the gateway's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Requests by operation and status, and body bytes in and out.
#[derive(Debug, Default)]
pub struct S3Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Request body bytes accepted (verified uploads).
    pub bytes_in: AtomicU64,
    /// Response body bytes sent.
    pub bytes_out: AtomicU64,
}

impl S3Metrics {
    /// Counts one request of `op` answered with `status`.
    pub fn record(&self, op: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((op.to_string(), status)).or_default() += 1;
    }

    /// Requests of `op` answered with `status` so far.
    pub fn count(&self, op: &str, status: u16) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&(op.to_string(), status)).copied().unwrap_or(0)
    }

    /// Appends the counters (and the `in_flight` gauge given by the caller) as Prometheus text.
    pub fn render_prometheus(&self, in_flight: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP hugbucket_s3_requests_total S3 requests by operation and HTTP status."
        );
        let _ = writeln!(out, "# TYPE hugbucket_s3_requests_total counter");
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((op, status), n) in m.iter() {
            let _ = writeln!(
                out,
                "hugbucket_s3_requests_total{{operation=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        drop(m);
        for (name, help, v) in [
            (
                "received_bytes",
                "Request body bytes accepted",
                &self.bytes_in,
            ),
            ("sent_bytes", "Response body bytes sent", &self.bytes_out),
        ] {
            let _ = writeln!(out, "# HELP hugbucket_s3_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE hugbucket_s3_{name}_total counter");
            let _ = writeln!(out, "hugbucket_s3_{name}_total {}", v.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP hugbucket_s3_requests_in_flight S3 requests being served (bodies included)."
        );
        let _ = writeln!(out, "# TYPE hugbucket_s3_requests_in_flight gauge");
        let _ = writeln!(out, "hugbucket_s3_requests_in_flight {in_flight}");
    }
}
