//! Small helpers: time, ISO-8601 formatting, percent-decoding, query strings.

use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::HubError;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// `2026-11-26T02:26:51.123Z` for a time in ms since the epoch.
pub fn iso8601(ms: u64) -> String {
    let t = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_default();
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Percent-decodes one path segment (or query value) to UTF-8.
pub fn decode(s: &str) -> Result<String, HubError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| HubError::BadRequest(format!("invalid percent-encoding in {s:?}")))
}

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Percent-encodes a query value.
pub fn encode_query(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// Percent-encodes a path (keeping `/`).
pub fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH).to_string()
}

/// Parsed query string (`+` means space, values percent-decoded).
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2`.
    pub fn parse(q: Option<&str>) -> Result<Self, HubError> {
        let mut out = Vec::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.push((decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?));
        }
        Ok(Self(out))
    }
    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// Boolean value (`true`/`1`).
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key)
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    }
    /// Numeric value clamped to `1..=max`, or `default`.
    pub fn limit(&self, key: &str, default: usize, max: usize) -> Result<usize, HubError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map(|n| n.clamp(1, max))
                .map_err(|_| HubError::BadRequest(format!("invalid {key} {v:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_732_570_000_123), "2024-11-25T21:26:40.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn query() {
        let q = Query::parse(Some("recursive=true&prefix=a%2Fb&x=a+b&limit=0")).unwrap();
        assert_eq!(q.flag("recursive"), Some(true));
        assert_eq!(q.get("prefix"), Some("a/b"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.limit("limit", 5, 10).unwrap(), 1);
        assert_eq!(q.limit("nope", 5, 10).unwrap(), 5);
        assert_eq!(encode_query("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_path("a/b c"), "a/b%20c");
    }
}
