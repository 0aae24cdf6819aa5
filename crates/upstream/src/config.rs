//! Client configuration: timeouts, retry budget, limits.

use std::time::Duration;

/// Retry policy for retryable failures (connect errors, timeouts, interrupted transfers,
/// 5xx, 408, 429). Other failures are never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Maximum number of attempts, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles on every further retry.
    pub base_delay: Duration,
    /// Upper bound of one delay (also caps a server's `Retry-After`).
    pub max_delay: Duration,
    /// Total time budget from the start of the first attempt: no retry is started when its
    /// delay would end past this budget.
    pub total_budget: Duration,
    /// How long an interactive call (one an S3 or FTP client is waiting for) may wait for
    /// the Hub's rate limit to reset, from the start of its first attempt: 429s are retried
    /// after the wait the Hub asks for (`RateLimit` reset, else `Retry-After`, else
    /// backoff) while it ends within this budget, and do not count against
    /// `max_attempts`. Default 50 s: below the 60 s read timeout of the AWS SDKs, so a
    /// client gets SlowDown (and retries on its own) rather than a timeout.
    pub rate_limit_budget: Duration,
    /// The same for background work (calls made through [`crate::HubClient::background`]),
    /// which no client is waiting for. Default 330 s: one whole 5-minute window of the Hub
    /// plus margin.
    pub background_rate_limit_budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            total_budget: Duration::from_secs(60),
            rate_limit_budget: Duration::from_secs(50),
            background_rate_limit_budget: Duration::from_secs(330),
        }
    }
}

impl RetryConfig {
    /// A policy that never retries.
    pub fn no_retry() -> Self {
        RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        }
    }
}

/// Configuration shared by [`crate::HubClient`] and [`crate::CasClient`].
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout (reqwest semantics): bounds the time from sending a request to its
    /// response head (so it includes uploading the request body), then each wait for the
    /// next piece of a response body. It catches stalls without limiting long streamed
    /// downloads; keep it above the time a 64 MiB xorb upload takes.
    pub read_timeout: Duration,
    /// Overall timeout of one attempt of a small API call (request sent + whole response
    /// read). Not applied to xorb/shard uploads or to streamed fetches. `None` = only the
    /// connect/read timeouts apply.
    pub request_timeout: Option<Duration>,
    /// Retry policy.
    pub retry: RetryConfig,
    /// `User-Agent` sent on every request.
    pub user_agent: String,
    /// Largest JSON/NDJSON/shard response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// A cached Xet token is refreshed when `exp <= now + token_refresh_margin`
    /// (hf_xet: 30 s).
    pub token_refresh_margin: Duration,
    /// `X-Xet-Session-Id` sent on every CAS request and token fetch; a fresh UUIDv7-shaped
    /// id is generated when `None`.
    pub session_id: Option<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            request_timeout: Some(Duration::from_secs(300)),
            retry: RetryConfig::default(),
            user_agent: concat!("hugbucket/", env!("CARGO_PKG_VERSION"), "; hf_xet/1.8.0").into(),
            max_response_bytes: 512 * 1024 * 1024,
            token_refresh_margin: Duration::from_secs(30),
            session_id: None,
        }
    }
}
