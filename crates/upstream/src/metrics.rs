//! Process-wide counters of upstream traffic, exported on the gateway's `/metrics`
//! through the registry the binary builds (see `hugbucket/src/metrics.rs`).

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

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
    /// Every class.
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

/// Counters of every [`crate::HubClient`] / [`crate::CasClient`] in the process
/// (`prometheus-client` metrics; the binary registers them with [`UpstreamMetrics::register`]).
#[derive(Debug)]
pub struct UpstreamMetrics {
    /// HTTP requests sent (every attempt), by [`RouteClass`].
    requests: Family<ClassLabel, Counter>,
    /// Attempts answered 429 (rate limited).
    pub rate_limited: Counter,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: Counter,
    /// Calls that failed after their last attempt.
    pub failures: Counter,
    /// Xet tokens dropped because the CAS answered 401, then fetched again.
    pub token_refreshes: Counter,
    /// Seconds spent waiting for the Hub's rate limits to reset (summed over calls).
    pub throttle_wait_seconds: Counter<f64, AtomicU64>,
    /// Calls that failed because their rate-limit budget could not cover the wait.
    pub throttle_giveups: Counter,
}

/// The process's upstream counters.
pub static METRICS: LazyLock<UpstreamMetrics> = LazyLock::new(UpstreamMetrics::default);

/// The `class` label of `hugbucket_upstream_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

impl ClassLabel {
    fn of(class: RouteClass) -> Self {
        Self {
            class: class.label(),
        }
    }
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        let requests = Family::default();
        // Every class is exported, at zero until its first request.
        for class in RouteClass::ALL {
            let _ = requests.get_or_create_owned(&ClassLabel::of(class));
        }
        Self {
            requests,
            rate_limited: Counter::default(),
            retries: Counter::default(),
            failures: Counter::default(),
            token_refreshes: Counter::default(),
            throttle_wait_seconds: Counter::default(),
            throttle_giveups: Counter::default(),
        }
    }
}

impl UpstreamMetrics {
    /// Counts one request sent to `path`.
    pub fn count_request(&self, path: &str) {
        self.requests
            .get_or_create(&ClassLabel::of(RouteClass::of_path(path)))
            .inc();
    }

    /// Adds time spent waiting for a rate limit to reset.
    pub(crate) fn add_throttle_wait(&self, wait: Duration) {
        self.throttle_wait_seconds.inc_by(wait.as_secs_f64());
    }

    /// Requests sent so far in `class`.
    pub fn requests_of(&self, class: RouteClass) -> u64 {
        self.requests.get_or_create(&ClassLabel::of(class)).get()
    }

    /// Registers every `hugbucket_upstream_*` family (names without the `_total` that
    /// the encoder appends to counters).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hugbucket_upstream_requests",
            "HTTP requests sent to the Hub and CAS (every attempt), by route class",
            self.requests.clone(),
        );
        for (name, help, counter) in [
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
            (
                "throttle_giveups",
                "Calls answered SlowDown because their rate-limit budget could not cover the wait",
                &self.throttle_giveups,
            ),
        ] {
            registry.register(format!("hugbucket_upstream_{name}"), help, counter.clone());
        }
        registry.register(
            "hugbucket_upstream_throttle_wait_seconds",
            "Time calls spent waiting for the Hub's rate limits to reset",
            self.throttle_wait_seconds.clone(),
        );
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
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"api\"} 2\n"));
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"resolve\"} 0\n"));
        assert!(out.contains("hugbucket_upstream_requests_total{class=\"cas\"} 1\n"));
        assert!(out.contains("hugbucket_upstream_rate_limited_total 0\n"));
    }
}
