//! Xet access tokens and their per-(bucket, scope) cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use serde::Deserialize;

use crate::error::{Result, UpstreamError};

/// Which Xet token: uploads use `Write`, downloads use `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenScope {
    /// `xet-read-token`.
    Read,
    /// `xet-write-token`.
    Write,
}

impl TokenScope {
    /// The last path segment of the token route.
    pub fn route(self) -> &'static str {
        match self {
            TokenScope::Read => "xet-read-token",
            TokenScope::Write => "xet-write-token",
        }
    }
}

/// A CAS access token as returned by the token route (`CasJWTInfo`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct XetToken {
    /// The bearer token for CAS calls.
    #[serde(rename = "accessToken")]
    pub access_token: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// The CAS base URL (no trailing slash).
    #[serde(rename = "casUrl")]
    pub cas_url: String,
}

impl std::fmt::Debug for XetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XetToken")
            .field("access_token", &"<redacted>")
            .field("exp", &self.exp)
            .field("cas_url", &self.cas_url)
            .finish()
    }
}

impl XetToken {
    /// True while the token can still be used: `exp > now + margin` (hf_xet refreshes
    /// when `exp <= now + 30 s`).
    pub fn is_fresh(&self, now_unix: u64, margin: Duration) -> bool {
        self.exp > now_unix.saturating_add(margin.as_secs())
    }

    /// Parses the token route answer: the JSON body (what hf_xet reads), else the
    /// `X-Xet-Access-Token` / `X-Xet-Token-Expiration` / `X-Xet-Cas-Url` headers (what
    /// huggingface_hub's `xet_get` reads).
    pub(crate) fn from_response(headers: &HeaderMap, body: &[u8]) -> Result<Self> {
        let parsed = crate::transport::parse_json::<XetToken>("xet token", body);
        let mut token = match parsed {
            Ok(t) => t,
            Err(json_err) => {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                match (
                    h("x-xet-access-token"),
                    h("x-xet-token-expiration").and_then(|v| v.trim().parse::<u64>().ok()),
                    h("x-xet-cas-url"),
                ) {
                    (Some(t), Some(exp), Some(url)) => XetToken {
                        access_token: t.to_string(),
                        exp,
                        cas_url: url.to_string(),
                    },
                    _ => return Err(json_err),
                }
            }
        };
        while token.cas_url.ends_with('/') {
            token.cas_url.pop();
        }
        if token.cas_url.is_empty() || token.access_token.is_empty() {
            return Err(UpstreamError::decode(
                "xet token",
                "empty accessToken or casUrl",
            ));
        }
        Ok(token)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<XetToken>>>;

/// Tokens cached per key; concurrent callers of one key share a single refresh.
#[derive(Debug, Default)]
pub(crate) struct TokenCache<K> {
    slots: Mutex<HashMap<K, Slot>>,
}

impl<K: std::hash::Hash + Eq + Clone> TokenCache<K> {
    pub fn new() -> Self {
        TokenCache {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &K) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// Returns the cached token for `key` when it is fresh at `now`, else calls `fetch`,
    /// caches and returns its result. Errors are not cached.
    pub async fn get_or_refresh<F, Fut>(
        &self,
        key: &K,
        now: impl Fn() -> u64,
        margin: Duration,
        fetch: F,
    ) -> Result<XetToken>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<XetToken>>,
    {
        let slot = self.slot(key);
        let mut guard = slot.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| t.is_fresh(now(), margin)) {
            return Ok(t.clone());
        }
        let token = fetch().await?;
        *guard = Some(token.clone());
        Ok(token)
    }

    /// Drops the cached token of `key`.
    pub fn invalidate(&self, key: &K) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn tok(name: &str, exp: u64) -> XetToken {
        XetToken {
            access_token: name.into(),
            exp,
            cas_url: "http://cas".into(),
        }
    }

    #[test]
    fn freshness_uses_margin() {
        let m = Duration::from_secs(30);
        assert!(tok("a", 1031).is_fresh(1000, m));
        assert!(!tok("a", 1030).is_fresh(1000, m));
        assert!(!tok("a", 900).is_fresh(1000, m));
        assert!(tok("a", u64::MAX).is_fresh(u64::MAX - 31, m));
    }

    #[test]
    fn parse_body_then_headers() {
        let t = XetToken::from_response(
            &HeaderMap::new(),
            br#"{"accessToken":"xet_w","exp":1795651996,"casUrl":"http://127.0.0.1:42971/","extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            t,
            tok("xet_w", 1795651996).with_url("http://127.0.0.1:42971")
        );
        let mut h = HeaderMap::new();
        h.insert("x-xet-access-token", "hx".parse().unwrap());
        h.insert("x-xet-token-expiration", "17".parse().unwrap());
        h.insert("x-xet-cas-url", "http://c".parse().unwrap());
        let t = XetToken::from_response(&h, b"").unwrap();
        assert_eq!(t, tok("hx", 17).with_url("http://c"));
        assert!(XetToken::from_response(&HeaderMap::new(), b"{}").is_err());
        assert!(
            XetToken::from_response(
                &HeaderMap::new(),
                br#"{"accessToken":"","exp":1,"casUrl":"x"}"#
            )
            .is_err()
        );
    }

    impl XetToken {
        fn with_url(mut self, u: &str) -> Self {
            self.cas_url = u.into();
            self
        }
    }

    #[tokio::test]
    async fn cache_refreshes_only_when_stale() {
        let cache = TokenCache::<(String, TokenScope)>::new();
        let calls = AtomicU32::new(0);
        let key = ("u/b".to_string(), TokenScope::Read);
        let margin = Duration::from_secs(30);
        let fetch = |exp: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(tok("t", exp)) }
        };
        // First call fetches.
        let t = cache
            .get_or_refresh(&key, || 1000, margin, || fetch(1100))
            .await
            .unwrap();
        assert_eq!(t.exp, 1100);
        // Fresh: cached.
        let t = cache
            .get_or_refresh(&key, || 1060, margin, || fetch(9999))
            .await
            .unwrap();
        assert_eq!(t.exp, 1100);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // exp <= now + 30: refreshed.
        let t = cache
            .get_or_refresh(&key, || 1070, margin, || fetch(2000))
            .await
            .unwrap();
        assert_eq!(t.exp, 2000);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Other scope has its own slot.
        let wkey = ("u/b".to_string(), TokenScope::Write);
        cache
            .get_or_refresh(&wkey, || 1070, margin, || fetch(3000))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Errors are not cached.
        let err = cache
            .get_or_refresh(
                &wkey,
                || 5000,
                margin,
                || async { Err(UpstreamError::decode("x", "boom")) },
            )
            .await;
        assert!(err.is_err());
        let t = cache
            .get_or_refresh(&wkey, || 5000, margin, || fetch(6000))
            .await
            .unwrap();
        assert_eq!(t.exp, 6000);
        cache.invalidate(&wkey);
        let t = cache
            .get_or_refresh(&wkey, || 5000, margin, || fetch(7000))
            .await
            .unwrap();
        assert_eq!(t.exp, 7000);
    }
}
