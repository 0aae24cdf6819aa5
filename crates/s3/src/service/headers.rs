//! HTTP details shared by the object handlers: `Range` parsing, conditional requests
//! (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` and their
//! `x-amz-copy-source-*` forms), conditional writes, stored metadata (`x-amz-meta-*` and
//! the standard headers), object response headers and `response-*` overrides.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Response};
use hugbucket_core::{ByteRange, ObjectExtra, ObjectMeta, PutOptions, WriteCondition};

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

/// The metadata a write stores with its object: `x-amz-meta-*` (at most 2 KiB, as S3:
/// MetadataTooLarge) and the standard headers. The `aws-chunked` content coding of a
/// streaming upload is transport, not the object's: it is dropped.
pub(crate) fn object_extra(h: &HeaderMap) -> Result<ObjectExtra, S3Error> {
    let mut extra = ObjectExtra::default();
    for (name, value) in h {
        let Some(user) = name.as_str().strip_prefix("x-amz-meta-") else {
            continue;
        };
        let value = String::from_utf8_lossy(value.as_bytes()).trim().to_string();
        extra
            .meta
            .entry(user.to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    if extra.user_bytes() > ObjectExtra::MAX_USER_BYTES {
        return Err(S3Error::new(S3ErrorCode::MetadataTooLarge));
    }
    for name in ObjectExtra::HEADERS {
        let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let v = if name == "content-encoding" {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.eq_ignore_ascii_case("aws-chunked") && !c.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            v.trim().to_string()
        };
        if !v.is_empty() {
            extra.headers.insert(name.to_string(), v);
        }
    }
    Ok(extra)
}

/// The modification time a client asks for in `x-amz-meta-mtime` (rclone, s3fs: unix
/// seconds, possibly fractional), in ms since the epoch; the exact text stays in the
/// metadata.
pub(crate) fn client_mtime(extra: &ObjectExtra) -> Option<u64> {
    let secs: f64 = extra.meta.get("mtime")?.trim().parse().ok()?;
    (secs.is_finite() && (0.0..1e11).contains(&secs)).then(|| (secs * 1000.0).round() as u64)
}

/// The options of a write from its headers: content type, metadata, mtime, condition.
pub(crate) fn write_options(h: &HeaderMap, size_hint: Option<u64>) -> Result<PutOptions, S3Error> {
    let extra = object_extra(h)?;
    Ok(PutOptions {
        content_type: h
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        size_hint,
        mtime_ms: client_mtime(&extra),
        extra,
        condition: write_condition(h)?,
    })
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload, and
/// CopyObject's destination): `If-None-Match: *` or `If-Match: <etag>`. S3 accepts no
/// other `If-None-Match` value on writes, and not both headers at once.
pub(crate) fn write_condition(h: &HeaderMap) -> Result<Option<WriteCondition>, S3Error> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    match (get("if-none-match"), get("if-match")) {
        (None, None) => Ok(None),
        (Some("*"), None) => Ok(Some(WriteCondition::IfNoneMatch)),
        (None, Some(etag)) if !etag.is_empty() => {
            Ok(Some(WriteCondition::IfMatch(etag.to_string())))
        }
        (Some(_), None) => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "A header you provided implies functionality that is not implemented: If-None-Match accepts only *",
        )),
        _ => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "If-Match and If-None-Match cannot both be given on a write",
        )),
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

/// The content identity an ETag names: our ETags are `"<64 hex Xet hash>-N"`, and N (the
/// part count of a multipart object) is remembered by the node that completed it only, so
/// two nodes of a fleet may show one object as `-1` and `-N`. The hash decides.
fn content_id(etag: &str) -> &str {
    let s = unquote(etag);
    match s.split_once('-') {
        Some((hash, n)) if hash.len() == 64 && n.bytes().all(|b| b.is_ascii_digit()) => hash,
        _ => s,
    }
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (or is `*`).
fn etag_list_matches(list: &str, etag: &str) -> bool {
    let want = content_id(etag);
    list.split(',')
        .map(str::trim)
        .any(|e| e == "*" || content_id(e) == want)
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
    for (name, value) in &meta.extra.headers {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            set(resp, n, value);
        }
    }
    for (name, value) in &meta.extra.meta {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}

/// Sets `x-amz-mp-parts-count` for a multipart object.
pub(crate) fn parts_count(resp: &mut Response<ResponseBody>, meta: &ObjectMeta) {
    if !meta.parts.is_empty() {
        set(
            resp,
            HeaderName::from_static("x-amz-mp-parts-count"),
            &meta.parts.len().to_string(),
        );
    }
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
    fn stored_metadata_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-meta-mtime",
            HeaderValue::from_static("1700000000.123456789"),
        );
        h.insert("x-amz-meta-Color", HeaderValue::from_static("blue"));
        h.insert("cache-control", HeaderValue::from_static("max-age=60"));
        h.insert(
            "content-encoding",
            HeaderValue::from_static("aws-chunked,gzip"),
        );
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let o = write_options(&h, None).unwrap();
        assert_eq!(o.extra.meta["color"], "blue");
        assert_eq!(o.extra.meta["mtime"], "1700000000.123456789");
        assert_eq!(o.mtime_ms, Some(1_700_000_000_123));
        assert_eq!(o.extra.headers["cache-control"], "max-age=60");
        assert_eq!(o.extra.headers["content-encoding"], "gzip");
        assert!(!o.extra.headers.contains_key("content-type"));
        assert_eq!(o.condition, None);
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        assert!(
            !write_options(&h, None)
                .unwrap()
                .extra
                .headers
                .contains_key("content-encoding")
        );
        h.insert(
            "x-amz-meta-big",
            HeaderValue::from_str(&"x".repeat(2040)).unwrap(),
        );
        assert_eq!(
            write_options(&h, None).unwrap_err().code(),
            S3ErrorCode::MetadataTooLarge
        );
        let mut c = HeaderMap::new();
        c.insert("if-none-match", HeaderValue::from_static("*"));
        assert_eq!(
            write_condition(&c).unwrap(),
            Some(WriteCondition::IfNoneMatch)
        );
        c.insert("if-none-match", HeaderValue::from_static("\"abc\""));
        assert_eq!(
            write_condition(&c).unwrap_err().code(),
            S3ErrorCode::NotImplemented
        );
        c.clear();
        c.insert("if-match", HeaderValue::from_static("\"abc\""));
        assert_eq!(
            write_condition(&c).unwrap(),
            Some(WriteCondition::IfMatch("\"abc\"".into()))
        );
        let mut bad = ObjectExtra::default();
        bad.meta.insert("mtime".into(), "yesterday".into());
        assert_eq!(client_mtime(&bad), None);
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
        // One object, its multipart part count known on one node only: the hash decides.
        let hash = "ab".repeat(32);
        let on_a = format!("\"{hash}-3\"");
        let mut h = HeaderMap::new();
        h.insert(
            "if-match",
            HeaderValue::from_str(&format!("\"{hash}-1\"")).unwrap(),
        );
        let c = Conditions::from_headers(&h, "");
        assert_eq!(c.evaluate(&on_a, t), Verdict::Proceed);
        assert_eq!(
            c.evaluate(&format!("\"{}-3\"", "cd".repeat(32)), t),
            Verdict::Failed
        );
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
