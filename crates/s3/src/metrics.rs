//! Counters of the S3 front-end (`prometheus-client` metrics), exported on the gateway's
//! `/metrics` through the registry the binary builds (see `hugbucket/src/metrics.rs`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the request duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The labels of `hugbucket_s3_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: u16,
}

/// The label of `hugbucket_s3_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Requests by operation and status, their durations by operation, and body bytes in and
/// out.
#[derive(Debug)]
pub struct S3Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabel, Histogram, fn() -> Histogram>,
    /// Request body bytes accepted (verified uploads).
    pub bytes_in: Counter,
    /// Response body bytes sent.
    pub bytes_out: Counter,
}

impl Default for S3Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
        }
    }
}

impl S3Metrics {
    /// Counts one request of `op` answered with `status` after `elapsed` (from its
    /// arrival to its response head; streaming the body is not included).
    pub fn record(&self, op: &str, status: u16, elapsed: std::time::Duration) {
        let operation = op.to_string();
        self.durations
            .get_or_create(&OperationLabel {
                operation: operation.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
    }

    /// Requests of `op` answered with `status` so far.
    pub fn count(&self, op: &str, status: u16) -> u64 {
        let labels = RequestLabels {
            operation: op.to_string(),
            status,
        };
        self.requests.get(&labels).map_or(0, |c| c.get())
    }

    /// Registers every `hugbucket_s3_*` family (counter names without the `_total` the
    /// encoder appends); `in_flight` reads the requests in flight at each scrape.
    pub fn register(
        &self,
        registry: &mut Registry,
        in_flight: impl Fn() -> usize + Send + Sync + 'static,
    ) {
        registry.register(
            "hugbucket_s3_requests",
            "S3 requests by operation and HTTP status",
            self.requests.clone(),
        );
        registry.register(
            "hugbucket_s3_request_duration_seconds",
            "S3 request time to the response head, by operation",
            self.durations.clone(),
        );
        registry.register(
            "hugbucket_s3_received_bytes",
            "Request body bytes accepted",
            self.bytes_in.clone(),
        );
        registry.register(
            "hugbucket_s3_sent_bytes",
            "Response body bytes sent",
            self.bytes_out.clone(),
        );
        registry.register_collector(Box::new(InFlight(Box::new(in_flight))));
    }
}

/// `hugbucket_s3_requests_in_flight`, read from the service at scrape time.
struct InFlight(Box<dyn Fn() -> usize + Send + Sync>);

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InFlight").field(&(self.0)()).finish()
    }
}

impl Collector for InFlight {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let gauge = ConstGauge::new((self.0)() as i64);
        let metric = encoder.encode_descriptor(
            "hugbucket_s3_requests_in_flight",
            "S3 requests being served (bodies included).",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
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
        let mut registry = Registry::default();
        m.register(&mut registry, || 2);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
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
        assert_eq!(m.count("GetObject", 200), 2);
        assert_eq!(m.count("PutObject", 200), 0);
        assert_eq!(line("hugbucket_s3_requests_in_flight "), "2");
        assert!(
            out.contains("# TYPE hugbucket_s3_requests_total counter\n"),
            "{out}"
        );
    }
}
