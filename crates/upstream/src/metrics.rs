//! Process-wide counters of upstream traffic (rendered on the gateway's `/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of every [`crate::HubClient`] / [`crate::CasClient`] in the process.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    /// HTTP requests sent (every attempt).
    pub requests: AtomicU64,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: AtomicU64,
    /// Calls that failed after their last attempt.
    pub failures: AtomicU64,
    /// Xet tokens dropped because the CAS answered 401, then fetched again.
    pub token_refreshes: AtomicU64,
}

/// The process's upstream counters.
pub static METRICS: UpstreamMetrics = UpstreamMetrics {
    requests: AtomicU64::new(0),
    retries: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    token_refreshes: AtomicU64::new(0),
};

impl UpstreamMetrics {
    /// Appends the counters as Prometheus text.
    pub fn render_prometheus(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "requests",
                "HTTP requests sent to the Hub and CAS (every attempt)",
                &self.requests,
            ),
            (
                "retries",
                "Attempts that retried a failed one",
                &self.retries,
            ),
            (
                "failures",
                "Calls that failed after their last attempt",
                &self.failures,
            ),
            (
                "token_refreshes",
                "Xet tokens fetched again because the CAS answered 401",
                &self.token_refreshes,
            ),
        ] {
            let _ = writeln!(out, "# HELP hugbucket_upstream_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE hugbucket_upstream_{name}_total counter");
            let _ = writeln!(out, "hugbucket_upstream_{name}_total {}", v.load(Relaxed));
        }
    }
}
