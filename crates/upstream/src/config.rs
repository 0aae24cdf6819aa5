//! Client configuration: timeouts, retry budget, limits; and where the Hub token is found.

use std::path::PathBuf;
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
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            total_budget: Duration::from_secs(60),
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
            user_agent: concat!("hugbucket/", env!("CARGO_PKG_VERSION")).into(),
            max_response_bytes: 512 * 1024 * 1024,
            token_refresh_margin: Duration::from_secs(30),
            session_id: None,
        }
    }
}

/// The Hub token as huggingface_hub finds it: `HF_TOKEN` (or the legacy
/// `HUGGING_FACE_HUB_TOKEN`), else the file `HF_TOKEN_PATH`, else `$HF_HOME/token`, where
/// `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (the
/// file `hf auth login` writes). Surrounding whitespace is dropped; empty means none.
pub fn discover_hf_token() -> Option<String> {
    discover_hf_token_with(|k| std::env::var(k).ok())
}

/// [`discover_hf_token`] reading variables through `var` (tests).
pub fn discover_hf_token_with(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let clean = |t: String| Some(t.trim().to_string()).filter(|t| !t.is_empty());
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(t) = set("HF_TOKEN").or_else(|| set("HUGGING_FACE_HUB_TOKEN")) {
        return clean(t);
    }
    let path = match set("HF_TOKEN_PATH") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = match set("HF_HOME") {
                Some(h) => PathBuf::from(h),
                None => {
                    let cache = match set("XDG_CACHE_HOME") {
                        Some(c) => PathBuf::from(c),
                        None => PathBuf::from(set("HOME")?).join(".cache"),
                    };
                    cache.join("huggingface")
                }
            };
            home.join("token")
        }
    };
    std::fs::read_to_string(path).ok().and_then(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_discovery_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let hf_home = dir.path().join("hf");
        std::fs::create_dir_all(home.join(".cache/huggingface")).unwrap();
        std::fs::create_dir_all(&hf_home).unwrap();
        std::fs::write(home.join(".cache/huggingface/token"), "hf_default\n").unwrap();
        std::fs::write(hf_home.join("token"), " hf_home \n").unwrap();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let h = home.display().to_string();
        // HOME only: ~/.cache/huggingface/token.
        assert_eq!(
            discover_hf_token_with(env(vec![("HOME", h.clone())])).as_deref(),
            Some("hf_default")
        );
        // HF_HOME wins over the default, HF_TOKEN over any file.
        let with_home = vec![
            ("HOME", h.clone()),
            ("HF_HOME", hf_home.display().to_string()),
        ];
        assert_eq!(
            discover_hf_token_with(env(with_home.clone())).as_deref(),
            Some("hf_home")
        );
        let mut with_token = with_home.clone();
        with_token.push(("HF_TOKEN", "hf_env".into()));
        assert_eq!(
            discover_hf_token_with(env(with_token)).as_deref(),
            Some("hf_env")
        );
        // An empty HF_TOKEN counts as unset; a missing or blank file is no token.
        let mut empty = with_home;
        empty.push(("HF_TOKEN", String::new()));
        assert_eq!(
            discover_hf_token_with(env(empty)).as_deref(),
            Some("hf_home")
        );
        std::fs::write(hf_home.join("token"), "  \n").unwrap();
        let blank = vec![("HF_HOME", hf_home.display().to_string())];
        assert_eq!(discover_hf_token_with(env(blank)), None);
        assert_eq!(discover_hf_token_with(env(vec![])), None);
    }
}
