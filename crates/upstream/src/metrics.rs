//! Process-wide counters of upstream traffic (rendered on the gateway's `/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// How the Hub budgets a request: `/api/` calls are the scarce class, the bucket file
/// resolver has its own (larger) budget, and the CAS (including presigned fetch URLs)
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum RouteClass {
    /// `/api/...`.
    Api,
    /// `.../resolve/...`.
    Resolve,
    /// Everything else: CAS routes and presigned transfer URLs.
    Cas,
}

impl RouteClass {
    /// Every class, in the order of [`UpstreamMetrics::requests`].
    pub const ALL: [RouteClass; 3] = [RouteClass::Api, RouteClass::Resolve, RouteClass::Cas];

    /// The class of a request to `path`.
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/api/") {
            RouteClass::Api
        } else if path.contains("/resolve/") {
            RouteClass::Resolve
        } else {
            RouteClass::Cas
        }
    }

    /// The `class` label value.
    pub fn label(self) -> &'static str {
        match self {
            RouteClass::Api => "api",
            RouteClass::Resolve => "resolve",
            RouteClass::Cas => "cas",
        }
    }
}

/// Counters of every [`crate::HubClient`] / [`crate::CasClient`] in the process.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    /// HTTP requests sent (every attempt), by [`RouteClass`] (in `RouteClass::ALL` order).
    pub requests: [AtomicU64; 3],
    /// Attempts answered 429 (rate limited).
    pub rate_limited: AtomicU64,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: AtomicU64,
    /// Calls that failed after their last attempt.
    pub failures: AtomicU64,
    /// Xet tokens dropped because the CAS answered 401, then fetched again.
    pub token_refreshes: AtomicU64,
}

/// The process's upstream counters.
pub static METRICS: UpstreamMetrics = UpstreamMetrics {
    requests: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
    rate_limited: AtomicU64::new(0),
    retries: AtomicU64::new(0),
    failures: AtomicU64::new(0),
    token_refreshes: AtomicU64::new(0),
};

impl UpstreamMetrics {
    /// Counts one request sent to `path`.
    pub fn count_request(&self, path: &str) {
        self.requests[RouteClass::of_path(path) as usize].fetch_add(1, Relaxed);
    }

    /// Requests sent so far in `class`.
    pub fn requests_of(&self, class: RouteClass) -> u64 {
        self.requests[class as usize].load(Relaxed)
    }

    /// Appends the counters as Prometheus text.
    pub fn render_prometheus(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP hugbucket_upstream_requests_total HTTP requests sent to the Hub and CAS (every attempt), by route class."
        );
        let _ = writeln!(out, "# TYPE hugbucket_upstream_requests_total counter");
        for class in RouteClass::ALL {
            let _ = writeln!(
                out,
                "hugbucket_upstream_requests_total{{class=\"{}\"}} {}",
                class.label(),
                self.requests_of(class)
            );
        }
        for (name, help, v) in [
            (
                "rate_limited",
                "Attempts the Hub or CAS answered with 429",
                &self.rate_limited,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_classes() {
        assert_eq!(
            RouteClass::of_path("/api/buckets/a/b/tree"),
            RouteClass::Api
        );
        assert_eq!(
            RouteClass::of_path("/buckets/a/b/resolve/k"),
            RouteClass::Resolve
        );
        assert_eq!(RouteClass::of_path("/v1/xorbs/default/h"), RouteClass::Cas);
        let m = UpstreamMetrics::default();
        m.count_request("/api/whoami-v2");
        m.count_request("/api/buckets/a/b");
        m.count_request("/v2/shards");
        let mut out = String::new();
        m.render_prometheus(&mut out);
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"api\"} 2\n"));
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"resolve\"} 0\n"));
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"cas\"} 1\n"));
        assert!(out.contains("hugbucket_upstream_rate_limited_total 0\n"));
    }
}
