//! HTTP details shared by the object handlers: `Range` parsing, conditional requests
//! (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` and their
//! `x-amz-copy-source-*` forms), object response headers and `response-*` overrides.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Response};
use hugbucket_core::{ByteRange, ObjectMeta};

use crate::error::{S3Error, S3ErrorCode};
use crate::router::Query;
use crate::runtime::ResponseBody;

/// Content type of objects stored without one (as S3).
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Parses a `Range` header. Syntactically invalid or multi-range values are ignored (the
/// whole object is served), as HTTP and S3 do; unsatisfiable ones are left to the core
/// (416).
pub(crate) fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => Some(ByteRange::Suffix(n.parse().ok()?)),
        (a, "") => Some(ByteRange::From(a.parse().ok()?)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some(ByteRange::FromTo(a, b))
        }
    }
}

/// Parses `x-amz-copy-source-range` (`bytes=first-last`, both required).
pub(crate) fn parse_copy_range(value: &str) -> Result<ByteRange, S3Error> {
    let bad = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    match parse_range(value) {
        Some(r @ ByteRange::FromTo(..)) => Ok(r),
        _ => Err(bad()),
    }
}

/// Outcome of evaluating conditional headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve the request.
    Proceed,
    /// 304 Not Modified (GET/HEAD).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The conditional headers of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
}

impl Conditions {
    /// Reads `{prefix}if-match` etc. (`prefix` is `""` or `"x-amz-copy-source-"`). Dates
    /// that do not parse are ignored, as HTTP says.
    pub(crate) fn from_headers(h: &HeaderMap, prefix: &str) -> Self {
        let get = |n: &str| {
            h.get(format!("{prefix}{n}"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let date = |n: &str| get(n).and_then(|v| crate::dates::parse_http_date(&v));
        Self {
            if_match: get("if-match"),
            if_none_match: get("if-none-match"),
            if_modified_since: date("if-modified-since"),
            if_unmodified_since: date("if-unmodified-since"),
        }
    }

    /// No condition given.
    pub(crate) fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions against an object (RFC 9110 §13.2.2 order, which is also
    /// S3's: a passing If-Match overrides If-Unmodified-Since, a present If-None-Match
    /// overrides If-Modified-Since).
    pub(crate) fn evaluate(&self, etag: &str, last_modified: SystemTime) -> Verdict {
        let lm = whole_seconds(last_modified);
        if let Some(m) = &self.if_match {
            if !etag_list_matches(m, etag) {
                return Verdict::Failed;
            }
        } else if let Some(t) = self.if_unmodified_since {
            if lm > t {
                return Verdict::Failed;
            }
        }
        if let Some(n) = &self.if_none_match {
            if etag_list_matches(n, etag) {
                return Verdict::NotModified;
            }
        } else if let Some(t) = self.if_modified_since {
            if lm <= t {
                return Verdict::NotModified;
            }
        }
        Verdict::Proceed
    }
}

/// HTTP dates have whole seconds: compare at that precision.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (or is `*`).
fn etag_list_matches(list: &str, etag: &str) -> bool {
    let want = unquote(etag);
    list.split(',')
        .map(str::trim)
        .any(|e| e == "*" || unquote(e) == want)
}

fn set(resp: &mut Response<ResponseBody>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Sets the validators of an object: `ETag` and `Last-Modified`.
pub(crate) fn validators(resp: &mut Response<ResponseBody>, meta: &ObjectMeta) {
    set(resp, http::header::ETAG, &meta.etag);
    set(
        resp,
        http::header::LAST_MODIFIED,
        &crate::dates::format_http_date(meta.last_modified),
    );
}

/// Sets the headers of a GET/HEAD object answer carrying `length` bytes.
pub(crate) fn object_headers(resp: &mut Response<ResponseBody>, meta: &ObjectMeta, length: u64) {
    validators(resp, meta);
    set(resp, http::header::CONTENT_LENGTH, &length.to_string());
    set(
        resp,
        http::header::CONTENT_TYPE,
        meta.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE),
    );
    set(resp, http::header::ACCEPT_RANGES, "bytes");
}

/// Sets `Content-Range` for a 206 answer.
pub(crate) fn content_range(resp: &mut Response<ResponseBody>, (a, b): (u64, u64), size: u64) {
    set(
        resp,
        http::header::CONTENT_RANGE,
        &format!("bytes {a}-{b}/{size}"),
    );
}

/// The `response-*` query parameters of GetObject/HeadObject and the header each sets.
const OVERRIDES: &[(&str, HeaderName)] = &[
    ("response-content-type", http::header::CONTENT_TYPE),
    ("response-content-language", http::header::CONTENT_LANGUAGE),
    ("response-expires", http::header::EXPIRES),
    ("response-cache-control", http::header::CACHE_CONTROL),
    (
        "response-content-disposition",
        http::header::CONTENT_DISPOSITION,
    ),
    ("response-content-encoding", http::header::CONTENT_ENCODING),
];

/// Applies the `response-*` overrides.
pub(crate) fn apply_overrides(
    resp: &mut Response<ResponseBody>,
    query: &Query,
) -> Result<(), S3Error> {
    for (param, header) in OVERRIDES {
        if let Some(v) = query.get(param) {
            let v = HeaderValue::from_str(v).map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("invalid value for {param}"),
                )
            })?;
            resp.headers_mut().insert(header.clone(), v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
        assert_eq!(parse_range("bytes=9-5"), None);
        assert_eq!(parse_range("bytes=0-1,3-4"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=x-1"), None);
        assert!(parse_copy_range("bytes=0-").is_err());
        assert_eq!(
            parse_copy_range("bytes=2-4").unwrap(),
            ByteRange::FromTo(2, 4)
        );
    }

    #[test]
    fn conditionals() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let etag = "\"abc\"";
        let mut h = HeaderMap::new();
        let eval = |h: &HeaderMap| Conditions::from_headers(h, "").evaluate(etag, t);
        assert_eq!(eval(&h), Verdict::Proceed);
        h.insert("if-none-match", HeaderValue::from_static("\"abc\""));
        assert_eq!(eval(&h), Verdict::NotModified);
        h.insert("if-none-match", HeaderValue::from_static("\"x\", *"));
        assert_eq!(eval(&h), Verdict::NotModified);
        h.clear();
        h.insert("if-match", HeaderValue::from_static("\"zzz\""));
        assert_eq!(eval(&h), Verdict::Failed);
        h.insert("if-match", HeaderValue::from_static("abc"));
        // A passing If-Match wins over a failing If-Unmodified-Since.
        h.insert(
            "if-unmodified-since",
            HeaderValue::from_static("Sat, 01 Jan 2000 00:00:00 GMT"),
        );
        assert_eq!(eval(&h), Verdict::Proceed);
        h.clear();
        h.insert(
            "if-unmodified-since",
            HeaderValue::from_static("Sat, 01 Jan 2000 00:00:00 GMT"),
        );
        assert_eq!(eval(&h), Verdict::Failed);
        h.clear();
        // Same second as the (sub-second) modification time: not modified.
        let same = crate::dates::format_http_date(t);
        h.insert("if-modified-since", HeaderValue::from_str(&same).unwrap());
        assert_eq!(eval(&h), Verdict::NotModified);
        h.insert(
            "if-modified-since",
            HeaderValue::from_static("Sat, 01 Jan 2000 00:00:00 GMT"),
        );
        assert_eq!(eval(&h), Verdict::Proceed);
        let mut c = HeaderMap::new();
        c.insert(
            "x-amz-copy-source-if-match",
            HeaderValue::from_static("\"nope\""),
        );
        assert_eq!(
            Conditions::from_headers(&c, "x-amz-copy-source-").evaluate(etag, t),
            Verdict::Failed
        );
        assert!(Conditions::from_headers(&c, "").is_empty());
    }
}
