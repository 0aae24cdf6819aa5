//! Counters of the S3 front-end, rendered as Prometheus text on the gateway's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (seconds) of the request duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One operation's request durations.
#[derive(Debug, Default, Clone)]
struct Durations {
    /// Requests at or under each bound of [`DURATION_BUCKETS`] (not cumulative).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Durations {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Requests by operation and status, their durations by operation, and body bytes in and
/// out.
#[derive(Debug, Default)]
pub struct S3Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    durations: Mutex<BTreeMap<String, Durations>>,
    /// Request body bytes accepted (verified uploads).
    pub bytes_in: AtomicU64,
    /// Response body bytes sent.
    pub bytes_out: AtomicU64,
}

impl S3Metrics {
    /// Counts one request of `op` answered with `status` after `elapsed` (from its
    /// arrival to its response head; streaming the body is not included).
    pub fn record(&self, op: &str, status: u16, elapsed: std::time::Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((op.to_string(), status)).or_default() += 1;
        drop(m);
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        match d.get_mut(op) {
            Some(h) => h.observe(elapsed.as_secs_f64()),
            None => {
                let mut h = Durations::default();
                h.observe(elapsed.as_secs_f64());
                d.insert(op.to_string(), h);
            }
        }
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
        self.render_durations(out);
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

    fn render_durations(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP hugbucket_s3_request_duration_seconds S3 request time to the response head, by operation."
        );
        let _ = writeln!(
            out,
            "# TYPE hugbucket_s3_request_duration_seconds histogram"
        );
        let d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (op, h) in d.iter() {
            let mut cumulative = 0;
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "hugbucket_s3_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "hugbucket_s3_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "hugbucket_s3_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "hugbucket_s3_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                h.count
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_render_as_a_cumulative_histogram() {
        let m = S3Metrics::default();
        m.record("GetObject", 200, Duration::from_millis(3));
        m.record("GetObject", 404, Duration::from_millis(70));
        m.record("GetObject", 200, Duration::from_secs(100));
        let mut out = String::new();
        m.render_prometheus(0, &mut out);
        let line = |needle: &str| {
            out.lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no {needle} in\n{out}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        let b = "hugbucket_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=";
        assert_eq!(line(&format!("{b}\"0.005\"}}")), "1");
        assert_eq!(line(&format!("{b}\"0.05\"}}")), "1");
        assert_eq!(line(&format!("{b}\"0.1\"}}")), "2");
        assert_eq!(line(&format!("{b}\"30\"}}")), "2");
        assert_eq!(line(&format!("{b}\"+Inf\"}}")), "3");
        assert_eq!(
            line("hugbucket_s3_request_duration_seconds_count{operation=\"GetObject\"}"),
            "3"
        );
        assert_eq!(
            line("hugbucket_s3_requests_total{operation=\"GetObject\",status=\"404\"}"),
            "1"
        );
    }
}
