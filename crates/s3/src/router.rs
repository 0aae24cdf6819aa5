//! Request routing: path-style and virtual-hosted-style addressing, query parsing, the
//! operation enum, request ids and header limits.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use crate::auth::sigv4::parse_query;
use crate::error::{S3Error, S3ErrorCode};

/// Longest object key in bytes (as S3).
pub const MAX_KEY_LEN: usize = 1024;
/// Largest total size of request headers accepted (names + values).
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// Largest total size of user metadata (`x-amz-meta-*`), as S3.
pub const MAX_USER_METADATA: usize = 2 << 10;

/// An S3 operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /health`, `GET /minio/health/live`: unauthenticated liveness probe.
    Health,
    /// `GET /`
    ListBuckets,
    /// `PUT /bucket`
    CreateBucket,
    /// `DELETE /bucket`
    DeleteBucket,
    /// `HEAD /bucket`
    HeadBucket,
    /// `GET /bucket?location`
    GetBucketLocation,
    /// `GET /bucket?versioning`
    GetBucketVersioning,
    /// `GET /bucket?list-type=2`
    ListObjectsV2,
    /// `GET /bucket`
    ListObjects,
    /// `GET /bucket?uploads`
    ListMultipartUploads,
    /// `POST /bucket?delete`
    DeleteObjects,
    /// `PUT /bucket/key`
    PutObject,
    /// `PUT /bucket/key` with `x-amz-copy-source`
    CopyObject,
    /// `GET /bucket/key`
    GetObject,
    /// `HEAD /bucket/key`
    HeadObject,
    /// `DELETE /bucket/key`
    DeleteObject,
    /// `POST /bucket/key?uploads`
    CreateMultipartUpload,
    /// `PUT /bucket/key?partNumber&uploadId`
    UploadPart,
    /// `PUT /bucket/key?partNumber&uploadId` with `x-amz-copy-source`
    UploadPartCopy,
    /// `POST /bucket/key?uploadId`
    CompleteMultipartUpload,
    /// `DELETE /bucket/key?uploadId`
    AbortMultipartUpload,
    /// `GET /bucket/key?uploadId`
    ListParts,
    /// Anything else S3 has but this gateway does not (answered with NotImplemented).
    NotImplemented,
}

impl Operation {
    /// Whether the operation needs no authentication.
    pub fn is_anonymous(self) -> bool {
        self == Self::Health
    }
}

/// Decoded query parameters (order kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Self {
        Self(parse_query(raw))
    }
    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Whether `name` is present (with or without value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
    /// An integer parameter, InvalidArgument if malformed.
    pub fn int(&self, name: &str) -> Result<Option<u64>, S3Error> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!("{name} must be a non-negative integer"),
                    )
                })
            })
            .transpose()
    }
    /// `partNumber`, validated to 1..=10000.
    pub fn part_number(&self) -> Result<Option<u32>, S3Error> {
        match self.int("partNumber") {
            Ok(Some(n)) if (1..=10_000).contains(&n) => Ok(Some(n as u32)),
            Ok(None) => Ok(None),
            _ => Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )),
        }
    }
    /// `max-keys` (or another limit) clamped to 0..=1000, default 1000.
    pub fn max_keys(&self, name: &str) -> Result<usize, S3Error> {
        Ok(self
            .int(name)?
            .map(|n| n.min(1000) as usize)
            .unwrap_or(1000))
    }
    /// `encoding-type=url` was asked (InvalidArgument for other values).
    pub fn encoding_url(&self) -> Result<bool, S3Error> {
        match self.get("encoding-type") {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
            Some(_) => Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Invalid Encoding Method specified in Request",
            )),
        }
    }
}

/// Addressing configuration.
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    /// Base domains for virtual-hosted-style requests: `bucket.{base}` names `bucket`.
    /// Requests to other hosts (or to a base itself) are path-style.
    pub base_domains: Vec<String>,
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The operation.
    pub op: Operation,
    /// Bucket, if any.
    pub bucket: Option<String>,
    /// Object key, if any (decoded; may contain `//`, spaces, `+`, `%`, unicode).
    pub key: Option<String>,
    /// The bucket came from the Host header (virtual-hosted-style).
    pub virtual_host: bool,
    /// Decoded query.
    pub query: Query,
}

/// Subresources that select an operation this gateway does not implement.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "acl",
    "accelerate",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "versions",
    "website",
    "attributes",
];

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    host.rsplit_once(':')
        .map(|(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
        .unwrap_or(host)
}

/// Routes a request.
pub fn route(
    cfg: &RouterConfig,
    method: &Method,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
) -> Result<Route, S3Error> {
    let query = Query::parse(raw_query);
    if !raw_path.starts_with('/') {
        return Err(S3Error::new(S3ErrorCode::InvalidURI));
    }
    let decoded = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| S3Error::new(S3ErrorCode::InvalidURI))?;

    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_without_port)
        .unwrap_or("");
    let host = host.to_ascii_lowercase();
    let vhost_bucket = cfg.base_domains.iter().find_map(|base| {
        let base = base.to_ascii_lowercase();
        host.strip_suffix(&base)
            .and_then(|p| p.strip_suffix('.'))
            .filter(|b| !b.is_empty())
            .map(str::to_string)
    });

    if vhost_bucket.is_none()
        && method == Method::GET
        && raw_query.is_empty()
        && (decoded == "/health" || decoded == "/minio/health/live")
    {
        return Ok(Route {
            op: Operation::Health,
            bucket: None,
            key: None,
            virtual_host: false,
            query,
        });
    }

    let rest = &decoded[1..];
    let (bucket, key) = match vhost_bucket.clone() {
        Some(b) => (Some(b), (!rest.is_empty()).then(|| rest.to_string())),
        None if rest.is_empty() => (None, None),
        None => match rest.split_once('/') {
            Some((b, k)) => (Some(b.to_string()), (!k.is_empty()).then(|| k.to_string())),
            None => (Some(rest.to_string()), None),
        },
    };
    if let Some(k) = &key {
        if k.len() > MAX_KEY_LEN {
            return Err(S3Error::new(S3ErrorCode::KeyTooLongError));
        }
    }
    if bucket.as_deref() == Some("") {
        return Err(S3Error::new(S3ErrorCode::InvalidBucketName));
    }

    let unsupported = UNSUPPORTED_SUBRESOURCES.iter().any(|s| query.has(s));
    let copy = headers.contains_key("x-amz-copy-source");
    let op = match (&bucket, &key) {
        (None, _) => match *method {
            Method::GET => Operation::ListBuckets,
            _ => Operation::NotImplemented,
        },
        (Some(_), None) => {
            if unsupported {
                Operation::NotImplemented
            } else {
                match *method {
                    Method::GET if query.has("location") => Operation::GetBucketLocation,
                    Method::GET if query.has("versioning") => Operation::GetBucketVersioning,
                    Method::GET if query.has("uploads") => Operation::ListMultipartUploads,
                    Method::GET if query.get("list-type") == Some("2") => Operation::ListObjectsV2,
                    Method::GET if query.has("list-type") => Operation::NotImplemented,
                    Method::GET => Operation::ListObjects,
                    Method::PUT if query.has("versioning") => Operation::NotImplemented,
                    Method::PUT => Operation::CreateBucket,
                    Method::DELETE => Operation::DeleteBucket,
                    Method::HEAD => Operation::HeadBucket,
                    Method::POST if query.has("delete") => Operation::DeleteObjects,
                    _ => Operation::NotImplemented,
                }
            }
        }
        (Some(_), Some(_)) => {
            if unsupported {
                Operation::NotImplemented
            } else {
                let part = query.has("partNumber") && query.has("uploadId");
                match *method {
                    Method::PUT if part && copy => Operation::UploadPartCopy,
                    Method::PUT if part => Operation::UploadPart,
                    Method::PUT if query.has("uploadId") || query.has("partNumber") => {
                        return Err(S3Error::with_message(
                            S3ErrorCode::InvalidRequest,
                            "UploadPart needs partNumber and uploadId",
                        ));
                    }
                    Method::PUT if copy => Operation::CopyObject,
                    Method::PUT => Operation::PutObject,
                    Method::GET if query.has("uploadId") => Operation::ListParts,
                    Method::GET => Operation::GetObject,
                    Method::HEAD => Operation::HeadObject,
                    Method::DELETE if query.has("uploadId") => Operation::AbortMultipartUpload,
                    Method::DELETE => Operation::DeleteObject,
                    Method::POST if query.has("uploads") => Operation::CreateMultipartUpload,
                    Method::POST if query.has("uploadId") => Operation::CompleteMultipartUpload,
                    _ => Operation::NotImplemented,
                }
            }
        }
    };
    // Validate partNumber early so handlers can rely on it.
    if matches!(op, Operation::UploadPart | Operation::UploadPartCopy) {
        query.part_number()?;
    }
    Ok(Route {
        op,
        bucket,
        key,
        virtual_host: vhost_bucket.is_some(),
        query,
    })
}

/// Parses `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, optional
/// `?versionId=`) into decoded (bucket, key).
pub fn parse_copy_source(value: &str) -> Result<(String, String), S3Error> {
    let bad = || S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid copy source");
    let v = value
        .split_once("?versionId=")
        .map(|(p, _)| p)
        .unwrap_or(value);
    let v = v.strip_prefix('/').unwrap_or(v);
    let decoded = percent_decode_str(v).decode_utf8().map_err(|_| bad())?;
    let (b, k) = decoded.split_once('/').ok_or_else(bad)?;
    if b.is_empty() || k.is_empty() {
        return Err(bad());
    }
    if k.len() > MAX_KEY_LEN {
        return Err(S3Error::new(S3ErrorCode::KeyTooLongError));
    }
    Ok((b.to_string(), k.to_string()))
}

/// Checks header section and user-metadata sizes.
pub fn check_header_limits(headers: &HeaderMap) -> Result<(), S3Error> {
    let mut total = 0usize;
    let mut meta = 0usize;
    for (n, v) in headers {
        let sz = n.as_str().len() + v.len();
        total += sz + 4;
        if let Some(m) = n.as_str().strip_prefix("x-amz-meta-") {
            meta += m.len() + v.len();
        }
    }
    if total > MAX_HEADER_BYTES {
        return Err(S3Error::new(S3ErrorCode::RequestHeaderSectionTooLarge));
    }
    if meta > MAX_USER_METADATA {
        return Err(S3Error::new(S3ErrorCode::MetadataTooLarge));
    }
    Ok(())
}

/// Generates `x-amz-request-id` (16 uppercase hex) and `x-amz-id-2` values.
#[derive(Debug)]
pub struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestIds {
    /// A generator seeded from the clock and process id.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        Self {
            seed: h.finish(),
            counter: AtomicU64::new(0),
        }
    }

    /// The next `(x-amz-request-id, x-amz-id-2)` pair; ids are unique per generator.
    pub fn next(&self) -> (String, String) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = mix(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let id = (id & 0xFFFF_FFFF_0000_0000) | (n & 0xFFFF_FFFF);
        let host = mix(id ^ self.seed);
        use base64::Engine as _;
        let id2 = base64::engine::general_purpose::STANDARD
            .encode([id.to_be_bytes(), host.to_be_bytes()].concat());
        (format!("{id:016X}"), id2)
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("host", HeaderValue::from_str(host).unwrap());
        m
    }

    fn cfg() -> RouterConfig {
        RouterConfig {
            base_domains: vec!["s3.example.com".into(), "localhost".into()],
        }
    }

    fn r(method: Method, path: &str, query: &str, host: &str) -> Route {
        route(&cfg(), &method, path, query, &h(host)).unwrap()
    }

    #[test]
    fn path_style_operations() {
        let host = "127.0.0.1:9000";
        assert_eq!(r(Method::GET, "/", "", host).op, Operation::ListBuckets);
        assert_eq!(r(Method::PUT, "/b", "", host).op, Operation::CreateBucket);
        assert_eq!(r(Method::PUT, "/b/", "", host).op, Operation::CreateBucket);
        assert_eq!(
            r(Method::DELETE, "/b", "", host).op,
            Operation::DeleteBucket
        );
        assert_eq!(r(Method::HEAD, "/b", "", host).op, Operation::HeadBucket);
        assert_eq!(
            r(Method::GET, "/b", "location", host).op,
            Operation::GetBucketLocation
        );
        assert_eq!(
            r(Method::GET, "/b", "versioning", host).op,
            Operation::GetBucketVersioning
        );
        assert_eq!(
            r(Method::GET, "/b", "list-type=2&prefix=a", host).op,
            Operation::ListObjectsV2
        );
        assert_eq!(
            r(Method::GET, "/b", "marker=x", host).op,
            Operation::ListObjects
        );
        assert_eq!(
            r(Method::GET, "/b", "uploads", host).op,
            Operation::ListMultipartUploads
        );
        assert_eq!(
            r(Method::POST, "/b", "delete", host).op,
            Operation::DeleteObjects
        );
        assert_eq!(
            r(Method::GET, "/b", "acl", host).op,
            Operation::NotImplemented
        );
        assert_eq!(r(Method::PUT, "/b/k", "", host).op, Operation::PutObject);
        assert_eq!(r(Method::GET, "/b/k", "", host).op, Operation::GetObject);
        assert_eq!(r(Method::HEAD, "/b/k", "", host).op, Operation::HeadObject);
        assert_eq!(
            r(Method::DELETE, "/b/k", "", host).op,
            Operation::DeleteObject
        );
        assert_eq!(
            r(Method::POST, "/b/k", "uploads", host).op,
            Operation::CreateMultipartUpload
        );
        assert_eq!(
            r(Method::PUT, "/b/k", "partNumber=1&uploadId=u", host).op,
            Operation::UploadPart
        );
        assert_eq!(
            r(Method::POST, "/b/k", "uploadId=u", host).op,
            Operation::CompleteMultipartUpload
        );
        assert_eq!(
            r(Method::DELETE, "/b/k", "uploadId=u", host).op,
            Operation::AbortMultipartUpload
        );
        assert_eq!(
            r(Method::GET, "/b/k", "uploadId=u", host).op,
            Operation::ListParts
        );
        assert_eq!(
            r(Method::GET, "/b/k", "tagging", host).op,
            Operation::NotImplemented
        );
        assert_eq!(
            r(Method::PATCH, "/b/k", "", host).op,
            Operation::NotImplemented
        );
        assert_eq!(r(Method::GET, "/health", "", host).op, Operation::Health);
        assert_eq!(
            r(Method::GET, "/minio/health/live", "", host).op,
            Operation::Health
        );
        let mut hh = h(host);
        hh.insert("x-amz-copy-source", HeaderValue::from_static("/a/b"));
        assert_eq!(
            route(&cfg(), &Method::PUT, "/b/k", "", &hh).unwrap().op,
            Operation::CopyObject
        );
        assert_eq!(
            route(&cfg(), &Method::PUT, "/b/k", "partNumber=2&uploadId=x", &hh)
                .unwrap()
                .op,
            Operation::UploadPartCopy
        );
        let e = route(&cfg(), &Method::PUT, "/b/k", "partNumber=0&uploadId=x", &hh).unwrap_err();
        assert_eq!(e.code(), S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn odd_keys() {
        let host = "127.0.0.1";
        let x = r(Method::GET, "/b/a%20b/c+d/%25/%C3%A9", "", host);
        assert_eq!(
            (x.bucket.as_deref(), x.key.as_deref()),
            (Some("b"), Some("a b/c+d/%/é"))
        );
        let x = r(Method::GET, "/b//double//slash", "", host);
        assert_eq!(x.key.as_deref(), Some("/double//slash"));
        let long = format!("/b/{}", "k".repeat(1024));
        assert_eq!(r(Method::GET, &long, "", host).key.unwrap().len(), 1024);
        let too_long = format!("/b/{}", "k".repeat(1025));
        assert_eq!(
            route(&cfg(), &Method::GET, &too_long, "", &h(host))
                .unwrap_err()
                .code(),
            S3ErrorCode::KeyTooLongError
        );
        assert_eq!(
            route(&cfg(), &Method::GET, "/b/%FF", "", &h(host))
                .unwrap_err()
                .code(),
            S3ErrorCode::InvalidURI
        );
    }

    #[test]
    fn virtual_hosted() {
        let x = r(Method::GET, "/a/b", "", "mybucket.s3.example.com:9000");
        assert_eq!(
            (x.bucket.as_deref(), x.key.as_deref(), x.virtual_host),
            (Some("mybucket"), Some("a/b"), true)
        );
        let x = r(
            Method::GET,
            "/",
            "list-type=2",
            "my.dotted.bucket.localhost",
        );
        assert_eq!(
            (x.bucket.as_deref(), x.op),
            (Some("my.dotted.bucket"), Operation::ListObjectsV2)
        );
        // The base domain itself is path-style.
        let x = r(Method::GET, "/b/k", "", "s3.example.com");
        assert_eq!(
            (x.bucket.as_deref(), x.key.as_deref(), x.virtual_host),
            (Some("b"), Some("k"), false)
        );
        let x = r(Method::GET, "/", "", "s3.example.com");
        assert_eq!(x.op, Operation::ListBuckets);
        // vhost /health is a key, not the probe.
        assert_eq!(
            r(Method::GET, "/health", "", "b.localhost").op,
            Operation::GetObject
        );
    }

    #[test]
    fn copy_source() {
        assert_eq!(
            parse_copy_source("/b/a%20b%2Bc").unwrap(),
            ("b".into(), "a b+c".into())
        );
        assert_eq!(
            parse_copy_source("b/k?versionId=1").unwrap(),
            ("b".into(), "k".into())
        );
        assert!(parse_copy_source("b").is_err());
        assert!(parse_copy_source("/b/").is_err());
    }

    #[test]
    fn limits_and_ids() {
        let mut m = HeaderMap::new();
        m.insert(
            "x-amz-meta-a",
            HeaderValue::from_str(&"v".repeat(3000)).unwrap(),
        );
        assert_eq!(
            check_header_limits(&m).unwrap_err().code(),
            S3ErrorCode::MetadataTooLarge
        );
        let mut m = HeaderMap::new();
        m.insert("x-big", HeaderValue::from_str(&"v".repeat(20_000)).unwrap());
        assert_eq!(
            check_header_limits(&m).unwrap_err().code(),
            S3ErrorCode::RequestHeaderSectionTooLarge
        );
        let ids = RequestIds::new();
        let (a, a2) = ids.next();
        let (b, _) = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert!(!a2.is_empty());
        let q = Query::parse("max-keys=5000&encoding-type=url");
        assert_eq!(q.max_keys("max-keys").unwrap(), 1000);
        assert!(q.encoding_url().unwrap());
        assert!(Query::parse("max-keys=-1").max_keys("max-keys").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(path in "/\\PC{0,60}", query in "\\PC{0,60}", host in "[a-z0-9.:\\[\\]]{0,30}", m in 0usize..6) {
            let method = [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::HEAD, Method::OPTIONS][m].clone();
            let mut hm = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&host) { hm.insert("host", v); }
            let _ = route(&cfg(), &method, &path, &query, &hm);
            let _ = parse_copy_source(&path);
        }
    }
}
