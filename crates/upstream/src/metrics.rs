//! Process-wide counters of upstream traffic (rendered on the gateway's `/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::ratelimit::RouteClass;

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
    /// HTTP requests sent, per [`RouteClass`] (every attempt).
    pub class_requests: [AtomicU64; 3],
    /// 429 answers, per [`RouteClass`].
    pub class_throttled: [AtomicU64; 3],
    /// Milliseconds spent waiting for the Hub's rate limits to reset (summed over calls).
    pub throttle_wait_ms: AtomicU64,
    /// Calls that failed because the rate-limit budget could not cover the wait.
    pub throttle_giveups: AtomicU64,
}

/// The process's upstream counters.
pub static METRICS: UpstreamMetrics = UpstreamMetrics {
    requests: AtomicU64::new(0),
    retries: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    token_refreshes: AtomicU64::new(0),
    class_requests: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    class_throttled: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    throttle_wait_ms: AtomicU64::new(0),
    throttle_giveups: AtomicU64::new(0),
};

impl UpstreamMetrics {
    /// Counts one request of `class`.
    pub(crate) fn count_request(&self, class: RouteClass) {
        self.requests.fetch_add(1, Relaxed);
        self.class_requests[class.index()].fetch_add(1, Relaxed);
    }

    /// Counts a 429 answer of `class`.
    pub(crate) fn count_throttled(&self, class: RouteClass) {
        self.class_throttled[class.index()].fetch_add(1, Relaxed);
    }

    /// Adds time spent waiting for a rate limit.
    pub(crate) fn add_throttle_wait(&self, wait: Duration) {
        self.throttle_wait_ms
            .fetch_add(wait.as_millis() as u64, Relaxed);
    }

    /// Requests sent so far to `class`.
    pub fn requests_of(&self, class: RouteClass) -> u64 {
        self.class_requests[class.index()].load(Relaxed)
    }

    /// Appends the counters as Prometheus text. `hugbucket_upstream_requests_total` has one
    /// sample without labels (all classes: the name existing dashboards use) and one per
    /// `class` (`api`, `resolve`, `cas`: the Hub's rate-limit budgets).
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
            if name == "requests" {
                for c in RouteClass::ALL {
                    let n = self.class_requests[c.index()].load(Relaxed);
                    let _ = writeln!(
                        out,
                        "hugbucket_upstream_requests_total{{class=\"{}\"}} {n}",
                        c.name()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP hugbucket_upstream_throttled_total 429 answers of the Hub, per rate-limit class."
        );
        let _ = writeln!(out, "# TYPE hugbucket_upstream_throttled_total counter");
        for c in RouteClass::ALL {
            let n = self.class_throttled[c.index()].load(Relaxed);
            let _ = writeln!(
                out,
                "hugbucket_upstream_throttled_total{{class=\"{}\"}} {n}",
                c.name()
            );
        }
        let wait = self.throttle_wait_ms.load(Relaxed) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "# HELP hugbucket_upstream_throttle_wait_seconds_total Time calls spent waiting for the Hub's rate limits to reset."
        );
        let _ = writeln!(
            out,
            "# TYPE hugbucket_upstream_throttle_wait_seconds_total counter"
        );
        let _ = writeln!(out, "hugbucket_upstream_throttle_wait_seconds_total {wait}");
        let _ = writeln!(
            out,
            "# HELP hugbucket_upstream_throttle_giveups_total Calls answered SlowDown because the rate-limit budget could not cover the wait."
        );
        let _ = writeln!(
            out,
            "# TYPE hugbucket_upstream_throttle_giveups_total counter"
        );
        let _ = writeln!(
            out,
            "hugbucket_upstream_throttle_giveups_total {}",
            self.throttle_giveups.load(Relaxed)
        );
    }
}
